//! Networks made of Linux network namespaces for the NAT tests: an "internet" (a bridge on the
//! documentation range 203.0.113.0/24, RFC 5737), hosts on it, and home routers that
//! masquerade a private network behind one address of it, as a home router does.
//!
//! Making namespaces needs root, `ip` (iproute2) and `iptables`; [`Net::new`] says why it
//! cannot and returns `None`, so a test can skip with that message. Every namespace is deleted
//! when the [`Net`] is dropped, also when a test fails.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// How a router maps its private network to its public address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// Linux's MASQUERADE: a private address and port keep one public port whoever they talk
    /// to (when it is free), and only the peer talked to may answer: what most home routers do.
    Stable,
    /// MASQUERADE `--random-fully`: a new public port for each destination, so what one peer
    /// observes is no use to another (a "symmetric" NAT).
    PerDestination,
}

/// A namespace with an address.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name (for `ip netns exec`).
    pub ns: String,
    /// Its address: on the internet for a host or a router, on its home network for a host
    /// behind a router.
    pub ip: Ipv4Addr,
}

/// A network of namespaces; deleted when dropped.
pub struct Net {
    prefix: String,
    /// The internet's /24.
    internet: [u8; 3],
    namespaces: Vec<String>,
    next_public: u8,
    next_home: u8,
}

static NETS: AtomicU32 = AtomicU32::new(0);

/// Runs a command, insisting it succeeds.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command in namespace `ns`, insisting it succeeds.
pub fn exec(ns: &str, args: &[&str]) {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all);
}

impl Net {
    /// An empty internet on 203.0.113.0/24, or `None` (with the reason printed) where
    /// namespaces cannot be made.
    pub fn new() -> Option<Net> {
        Net::with_internet([203, 0, 113])
    }

    /// An empty internet on `internet`.0/24, for a test whose router refuses documentation
    /// ranges as public addresses (see [`Net::offer_upnp`]).
    pub fn with_internet(internet: [u8; 3]) -> Option<Net> {
        let missing: Vec<&str> = ["ip", "iptables"]
            .into_iter()
            .filter(|tool| {
                Command::new(tool)
                    .arg("-V")
                    .output()
                    .map_or(true, |o| !o.status.success())
            })
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "skipped: the NAT tests need {} (apt-get install iproute2 iptables)",
                missing.join(" and ")
            );
            return None;
        }
        let n = NETS.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("fu{}x{n}", std::process::id());
        let inet = format!("{prefix}-inet");
        let made = Command::new("ip").args(["netns", "add", &inet]).output();
        if !made.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: cannot make network namespaces here (the NAT tests need root)");
            return None;
        }
        let net = Net {
            prefix,
            internet,
            namespaces: vec![inet.clone()],
            next_public: 1,
            next_home: 1,
        };
        exec(&inet, &["ip", "link", "add", "br0", "type", "bridge"]);
        exec(&inet, &["ip", "link", "set", "br0", "up"]);
        exec(&inet, &["ip", "link", "set", "lo", "up"]);
        Some(net)
    }

    fn inet(&self) -> String {
        format!("{}-inet", self.prefix)
    }

    fn namespace(&mut self, name: &str) -> String {
        let ns = format!("{}-{name}", self.prefix);
        run("ip", &["netns", "add", &ns]);
        exec(&ns, &["ip", "link", "set", "lo", "up"]);
        self.namespaces.push(ns.clone());
        ns
    }

    /// Plugs `ns` into the internet's bridge as `wan` with the next public address.
    fn plug(&mut self, ns: &str) -> Ipv4Addr {
        let [a, b, c] = self.internet;
        let ip = Ipv4Addr::new(a, b, c, self.next_public);
        self.next_public += 1;
        let port = format!("p{}", self.next_public);
        run(
            "ip",
            &[
                "link",
                "add",
                "wan",
                "netns",
                ns,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.inet(),
            ],
        );
        exec(&self.inet(), &["ip", "link", "set", &port, "master", "br0"]);
        exec(&self.inet(), &["ip", "link", "set", &port, "up"]);
        exec(
            ns,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "wan"],
        );
        exec(ns, &["ip", "link", "set", "wan", "up"]);
        ip
    }

    /// A host on the internet, with a public address of its own.
    pub fn public_host(&mut self, name: &str) -> Host {
        let ns = self.namespace(name);
        let ip = self.plug(&ns);
        Host { ns, ip }
    }

    /// Moves `host`, a [`Net::public_host`], from IPv4 to IPv6: it gets the global address
    /// 2001:db8::N (the documentation range, RFC 3849) on the internet and loses its IPv4 one,
    /// so it is reached over IPv6 alone. `None` (with the reason printed) where the kernel has
    /// no IPv6.
    pub fn ipv6_only(&mut self, host: &Host) -> Option<Ipv6Addr> {
        let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(host.ip.octets()[3]));
        // `nodad`: usable at once, not after duplicate address detection's second or two.
        let added = Command::new("ip")
            .args(["netns", "exec", &host.ns, "ip", "-6", "addr", "add"])
            .args([&format!("{ip}/64"), "dev", "wan", "nodad"])
            .output();
        if !added.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: no IPv6 in this kernel's namespaces");
            return None;
        }
        exec(
            &host.ns,
            &[
                "ip",
                "addr",
                "del",
                &format!("{}/24", host.ip),
                "dev",
                "wan",
            ],
        );
        Some(ip)
    }

    /// A home router: a public address on the internet, and a private network
    /// 192.168.N.0/24 behind it, translated as `nat` says.
    pub fn router(&mut self, name: &str, nat: Nat) -> Host {
        let ns = self.namespace(name);
        let ip = self.plug(&ns);
        exec(&ns, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        let mut rule = vec![
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "wan",
            "-j",
            "MASQUERADE",
        ];
        if nat == Nat::PerDestination {
            rule.push("--random-fully");
        }
        exec(&ns, &rule);
        // Nothing from the internet reaches the home network unless it answers something
        // sent from inside (or a mapping the router was asked for lets it in).
        exec(
            &ns,
            &[
                "iptables",
                "-A",
                "FORWARD",
                "-i",
                "wan",
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED,DNAT",
                "-j",
                "ACCEPT",
            ],
        );
        exec(
            &ns,
            &["iptables", "-A", "FORWARD", "-i", "wan", "-j", "DROP"],
        );
        // And nothing unasked reaches the router itself, as on a home router's firewall: a
        // dropped packet leaves no connection-tracking entry behind.
        exec(
            &ns,
            &[
                "iptables",
                "-A",
                "INPUT",
                "-i",
                "wan",
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "ACCEPT",
            ],
        );
        exec(&ns, &["iptables", "-A", "INPUT", "-i", "wan", "-j", "DROP"]);
        Host { ns, ip }
    }

    /// A host on `router`'s home network, whose only way out is the router.
    pub fn behind(&mut self, router: &Host, name: &str) -> Host {
        let ns = self.namespace(name);
        let ip = self.attach(&ns, router);
        Host { ns, ip }
    }

    /// Moves `host` from the network it is on to `router`'s, as a device that changes
    /// networks: its old link goes away, and it gets the next address of the new network.
    pub fn move_behind(&mut self, host: &Host, router: &Host) {
        exec(&host.ns, &["ip", "link", "del", "eth0"]);
        self.attach(&host.ns, router);
    }

    /// Links `ns` to a new home network 192.168.N.0/24 of `router` as `eth0`, with the router
    /// as its way out; returns the address `ns` gets there.
    fn attach(&mut self, ns: &str, router: &Host) -> Ipv4Addr {
        let n = self.next_home;
        self.next_home += 1;
        let (gateway, ip) = (Ipv4Addr::new(192, 168, n, 1), Ipv4Addr::new(192, 168, n, 2));
        let port = format!("lan{n}");
        run(
            "ip",
            &[
                "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", &port, "netns",
                &router.ns,
            ],
        );
        exec(
            &router.ns,
            &["ip", "addr", "add", &format!("{gateway}/24"), "dev", &port],
        );
        exec(&router.ns, &["ip", "link", "set", &port, "up"]);
        exec(
            ns,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
        exec(ns, &["ip", "link", "set", "eth0", "up"]);
        exec(
            ns,
            &["ip", "route", "add", "default", "via", &gateway.to_string()],
        );
        ip
    }
}

/// A UPnP IGD, NAT-PMP and PCP server (Debian's `miniupnpd-nftables`) on a router; stopped
/// when dropped.
pub struct Upnp {
    child: std::process::Child,
    router: String,
    dir: tempfile::TempDir,
}

impl Upnp {
    /// The router's current port forwards, as `nft` lists them.
    pub fn forwards(&self) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.router,
                "nft",
                "list",
                "table",
                "inet",
                "upnp",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines()
            .filter(|l| l.contains("dnat"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What miniupnpd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("miniupnpd.log")).unwrap_or_default()
    }
}

impl Drop for Upnp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Net {
    /// Makes `router` offer port mapping to its home networks (call it after [`Net::behind`]),
    /// or returns `None` with the reason printed where miniupnpd or nft is missing.
    ///
    /// miniupnpd grants nothing when the router's public address lies in a reserved range,
    /// documentation ranges included ("Port forwarding is impossible"), so a test using it
    /// makes its internet with [`Net::with_internet`] on a range miniupnpd takes for public.
    /// The namespaces have no route to the real internet, so no packet can leave for it.
    pub fn offer_upnp(&self, router: &Host) -> Option<Upnp> {
        let nft = Command::new("nft").arg("--version").output();
        if !nft.is_ok_and(|o| o.status.success())
            || !std::path::Path::new("/usr/sbin/miniupnpd").exists()
        {
            eprintln!(
                "skipped: the port-mapping test needs miniupnpd and nft (apt-get install miniupnpd-nftables nftables)"
            );
            return None;
        }
        // miniupnpd adds its forwards to chains it expects to exist; these hook them in.
        let rules = "table inet upnp {\n\
            chain miniupnpd {\n}\n\
            chain prerouting_miniupnpd {\n}\n\
            chain postrouting_miniupnpd {\n}\n\
            chain prerouting {\n type nat hook prerouting priority -100; policy accept;\n jump prerouting_miniupnpd;\n}\n\
            chain postrouting {\n type nat hook postrouting priority 100; policy accept;\n jump postrouting_miniupnpd;\n}\n\
            }\n";
        let dir = tempfile::tempdir().expect("temp dir");
        let rules_file = dir.path().join("upnp.nft");
        std::fs::write(&rules_file, rules).expect("write rules");
        exec(&router.ns, &["nft", "-f", &rules_file.to_string_lossy()]);
        let out = Command::new("ip")
            .args(["-n", &router.ns, "-o", "link", "show"])
            .output()
            .expect("ip link");
        let lans: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .filter(|name| name.starts_with("lan"))
            .collect();
        assert!(
            !lans.is_empty(),
            "offer_upnp after behind: the router has no home network"
        );
        let mut conf = String::from(
            "ext_ifname=wan\nenable_natpmp=yes\nenable_upnp=yes\nsecure_mode=yes\n\
             upnp_table_name=upnp\nupnp_nat_table_name=upnp\n\
             uuid=3fd0c0a2-1d9b-4d8e-9f3c-0a8b1c2d3e4f\n\
             allow 1024-65535 192.168.0.0/16 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
        );
        for lan in &lans {
            conf.push_str(&format!("listening_ip={lan}\n"));
        }
        let conf_file = dir.path().join("miniupnpd.conf");
        std::fs::write(&conf_file, conf).expect("write miniupnpd.conf");
        let log = std::fs::File::create(dir.path().join("miniupnpd.log")).expect("log file");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &router.ns,
                "/usr/sbin/miniupnpd",
                "-d",
                "-P",
            ])
            .arg(dir.path().join("miniupnpd.pid"))
            .arg("-f")
            .arg(&conf_file)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start miniupnpd");
        let upnp = Upnp {
            child,
            router: router.ns.clone(),
            dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !upnp.log().contains("Listening for NAT-PMP") {
            assert!(
                std::time::Instant::now() < deadline,
                "miniupnpd did not start: {}",
                upnp.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(upnp)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Processes still inside would keep a namespace's network alive; the daemons are
        // stopped by their own drop first (declare the Net before them).
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// `failup relay` run in a namespace of its own on the internet, read for its code.
pub struct Relay {
    child: std::process::Child,
    home: tempfile::TempDir,
    /// The code devices are set with (`failup config set relay CODE`).
    pub code: String,
}

impl Relay {
    /// Starts `failup relay` in namespace `host`, listening on its address at port 7677.
    pub fn start(host: &Host) -> Relay {
        use std::io::BufRead;
        let home = tempfile::tempdir().expect("relay home");
        let log = std::fs::File::create(home.path().join("relay.log")).expect("log");
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &host.ns])
            .arg(crate::failup_bin())
            .arg("--home")
            .arg(home.path())
            .args(["relay", "--listen", &format!("{}:7677", host.ip)])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(log);
        crate::isolate(&mut cmd);
        let mut child = cmd.spawn().expect("start the relay");
        let stdout = child.stdout.take().expect("stdout");
        let code = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix(failup_relay::CODE_LINE).map(str::to_owned))
            .expect("the relay prints its code");
        Relay { child, home, code }
    }

    /// Everything the relay wrote: its home's files and its log.
    pub fn written(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for f in std::fs::read_dir(self.home.path())
            .expect("relay home")
            .flatten()
        {
            all.extend(std::fs::read(f.path()).unwrap_or_default());
        }
        all
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
