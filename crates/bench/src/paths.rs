//! `failup-bench paths [N]`: from starting two daemons to the second holding the first's `N`
//! new entries, for each way two devices reach each other across home routers, next to two
//! devices on one home network in the same run. The networks are Linux namespaces built the
//! way the NAT tests build them (`failup_tests::netns`), so this needs root, iproute2 and
//! iptables, and miniupnpd's nftables build for the forwarded port.

use std::time::{Duration, Instant};

use failup_tests::Daemon;
use failup_tests::netns::{Nat, Net, Relay};

use crate::ms;

/// Longest a catch-up may take before the bench gives up on that path.
const DEADLINE: Duration = Duration::from_secs(180);

/// Waits for `check`, or panics with `what` after [`DEADLINE`].
fn wait(what: &str, mut check: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !check() {
        assert!(t0.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ids(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `b` is connected to `a` (whose id is `a_id`), in sync with it, and holds as many
/// documents.
fn caught_up(a: &Daemon, b: &Daemon, a_id: &str) -> bool {
    let (sa, sb) = (a.status(), b.status());
    ids(&sb, "connected").iter().any(|d| d == a_id)
        && !ids(&sb, "out_of_sync").iter().any(|d| d == a_id)
        && sa["documents"].is_u64()
        && sa["documents"] == sb["documents"]
}

/// How `b` reaches `a`, as `peers --json` names the path.
fn path(b: &Daemon, a_id: &str) -> String {
    let peers: serde_json::Value =
        serde_json::from_str(&b.ok(&["--json", "peers"])).unwrap_or_default();
    peers
        .as_array()
        .and_then(|p| p.iter().find(|p| p["device"] == a_id))
        .and_then(|p| p["path"].as_str())
        .unwrap_or("not connected")
        .to_owned()
}

/// With `a` and `b` paired and running: both stop, `a` gets `n` new entries, both start
/// again; the time from the start until `b` caught up, and the path it reached `a` by.
fn catch_up(a: &mut Daemon, b: &mut Daemon, n: usize) -> (Duration, String) {
    let a_id = a.device();
    wait("the first sync", || caught_up(a, b, &a_id));
    b.stop();
    a.stop();
    let dir = tempfile::tempdir().expect("tmp");
    crate::import_entries(&a.home.path(), dir.path(), n);
    let t0 = Instant::now();
    a.restart();
    b.restart();
    wait("the catch-up", || caught_up(a, b, &a_id));
    let took = t0.elapsed();
    (took, path(b, &a_id))
}

/// Two devices on one home network: the reference.
fn local(n: usize) -> Option<(Duration, String)> {
    let mut net = Net::new()?;
    let r = net.router("home", Nat::Stable);
    let (ha, hb) = (net.behind(&r, "a"), net.behind(&r, "b"));
    let mut a = Daemon::start_in(&ha, "a");
    let mut b = Daemon::start_in(&hb, "b");
    a.pair(&b);
    Some(catch_up(&mut a, &mut b, n))
}

/// One device behind a router that forwards a port on request (miniupnpd), the other behind
/// one that gives each peer a port of its own: only the forwarded port joins them.
fn mapped(n: usize) -> Option<(Duration, String)> {
    // miniupnpd takes no documentation range as its public address.
    let mut net = Net::with_internet([198, 0, 0])?;
    let (r1, r2) = (
        net.router("a-home", Nat::Stable),
        net.router("b-home", Nat::PerDestination),
    );
    let (ha, hb) = (net.behind(&r1, "a"), net.behind(&r2, "b"));
    let _upnp = net.offer_upnp(&r1)?;
    let mut a = Daemon::start_in(&ha, "a");
    let mut b = Daemon::start_in(&hb, "b");
    wait("a's router to forward a port", || {
        a.status()["mapped"].is_string()
    });
    a.pair(&b);
    Some(catch_up(&mut a, &mut b, n))
}

/// Two devices behind two routers that keep one public port, and a third of the person's on
/// the internet that introduces them (it stays up).
fn punched(n: usize) -> Option<(Duration, String)> {
    let mut net = Net::new()?;
    let (r1, r2) = (
        net.router("a-home", Nat::Stable),
        net.router("b-home", Nat::Stable),
    );
    let (ha, hb, hc) = (
        net.behind(&r1, "a"),
        net.behind(&r2, "b"),
        net.public_host("c"),
    );
    let c = Daemon::start_in(&hc, "c");
    let mut a = Daemon::start_in(&ha, "a");
    let mut b = Daemon::start_in(&hb, "b");
    c.pair(&a);
    c.pair(&b);
    let a_id = a.device();
    wait("a and b to meet", || {
        ids(&b.status(), "connected").contains(&a_id)
    });
    let got = catch_up(&mut a, &mut b, n);
    drop(c);
    Some(got)
}

/// Two devices behind routers that give each peer a port of their own, set with the person's
/// relay on the internet; the third device that paired them is gone.
fn relayed(n: usize) -> Option<(Duration, String)> {
    let mut net = Net::new()?;
    let (r1, r2) = (
        net.router("a-home", Nat::PerDestination),
        net.router("b-home", Nat::PerDestination),
    );
    let (ha, hb, hc, hr) = (
        net.behind(&r1, "a"),
        net.behind(&r2, "b"),
        net.public_host("c"),
        net.public_host("relay"),
    );
    let relay = Relay::start(&hr);
    let settings = [("relay", relay.code.as_str())];
    let mut c = Daemon::start_in(&hc, "c");
    let mut a = Daemon::start_in_with(&ha, "a", &settings);
    let mut b = Daemon::start_in_with(&hb, "b", &settings);
    c.pair(&a);
    c.pair(&b);
    let a_id = a.device();
    wait("b to know a", || b.ok(&["--json", "peers"]).contains(&a_id));
    c.stop();
    let got = catch_up(&mut a, &mut b, n);
    drop(relay);
    Some(got)
}

/// One device with a public address, the other behind a router: the second dials the first.
fn internet(n: usize) -> Option<(Duration, String)> {
    let mut net = Net::new()?;
    let r = net.router("b-home", Nat::Stable);
    let (ha, hb) = (net.public_host("a"), net.behind(&r, "b"));
    let mut a = Daemon::start_in(&ha, "a");
    let mut b = Daemon::start_in(&hb, "b");
    a.pair(&b);
    Some(catch_up(&mut a, &mut b, n))
}

pub fn bench(n: usize) {
    let Some(reference) = local(n) else {
        eprintln!("failup-bench paths needs root, iproute2 and iptables (see above)");
        std::process::exit(1);
    };
    println!(
        "| way between the two | path `peers` names | start to in sync, {n} new entries | ref: one home network, same run | ÷ ref |"
    );
    println!("|---|---|---|---|---|");
    let row = |what: &str, (took, path): (Duration, String)| {
        println!(
            "| {what} | {path} | {} | {} | {:.2} |",
            ms(took),
            ms(reference.0),
            took.as_secs_f64() / reference.0.as_secs_f64()
        );
    };
    row("one home network (the reference)", reference.clone());
    type Path = fn(usize) -> Option<(Duration, String)>;
    let paths: [(&str, Path); 4] = [
        ("a public address, dialed from behind a router", internet),
        ("a port the router forwards (UPnP, miniupnpd)", mapped),
        ("two homes, met through a third device", punched),
        ("two homes with per-peer ports, the relay", relayed),
    ];
    for (what, measure) in paths {
        match measure(n) {
            Some(got) => row(what, got),
            None => println!("| {what} | skipped (see above) | | | |"),
        }
    }
}
