//! Helpers for the cross-crate tests: where the real `failup` binary is, and a temporary home
//! to run it in.

use std::path::PathBuf;
use std::process::Command;

pub mod netns;

/// The `failup` binary built for this test run.
///
/// `cargo test --workspace` builds it with the `failup` package's own integration tests; a
/// run that selects only this package must build it first (`cargo build -p failup`).
pub fn failup_bin() -> PathBuf {
    let path = assert_cmd::cargo::cargo_bin("failup");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p failup` or `cargo test --workspace`",
        path.display()
    );
    path
}

/// What a daemon in a namespace listens on: the default, every address of both IP versions
/// (IPv4 peers are then seen at IPv4-mapped addresses, which the daemon must read as IPv4).
pub const DEFAULT_LISTEN: &str = "[::]:7676";

/// Variables from the developer's or CI's environment that would change what failup does:
/// settings, the editor, colour, the pinned clock.
pub const OUTSIDE_SETTINGS: [&str; 13] = [
    "EDITOR",
    "VISUAL",
    "NO_COLOR",
    "FAILUP_COLOR",
    "FAILUP_EDITOR",
    "FAILUP_NOW",
    "FAILUP_MDNS",
    "FAILUP_NAME",
    "FAILUP_LISTEN",
    "FAILUP_PORTMAP",
    "FAILUP_RELAY",
    "FAILUP_UI_LISTEN",
    "FAILUP_INTRODUCE_PARTNERS",
];

/// Removes [`OUTSIDE_SETTINGS`] from `cmd`'s environment, so a test sees only what it sets.
pub fn isolate(cmd: &mut Command) {
    for var in OUTSIDE_SETTINGS {
        cmd.env_remove(var);
    }
    // Tests run many daemons at once: each web interface takes a free port.
    cmd.env("FAILUP_UI_LISTEN", "127.0.0.1:0");
}

/// A temporary home for one test.
pub struct Home {
    /// Removed when the test ends.
    pub dir: tempfile::TempDir,
}

impl Home {
    /// A fresh, empty home.
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The home directory failup uses.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The store file inside the home.
    pub fn store(&self) -> PathBuf {
        self.path().join("journal.redb")
    }

    /// `failup --json status` in this home; `Null` when it does not answer with JSON.
    pub fn status(&self) -> serde_json::Value {
        let out = self
            .cmd()
            .args(["--json", "status"])
            .output()
            .expect("status");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// `failup` set up to use this home.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(failup_bin());
        cmd.env("FAILUP_HOME", self.path()).env("TZ", "UTC");
        isolate(&mut cmd);
        cmd
    }
}

/// Waits until `check` holds, polling every 20 ms, and panics with `what` after `deadline`.
pub fn wait_until(what: &str, deadline: std::time::Duration, mut check: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + deadline;
    while !check() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A `failup daemon` running on loopback for one test; stopped (SIGTERM, then SIGKILL) when
/// dropped.
pub struct Daemon {
    /// Its home.
    pub home: Home,
    child: Option<std::process::Child>,
    name: String,
    mdns: bool,
    /// The UDP port it listened on last.
    port: Option<u16>,
    /// The network namespace it runs in, if not the test's own.
    netns: Option<String>,
}

impl Daemon {
    /// Starts a daemon in a fresh home, with local network discovery off, and waits until it
    /// answers.
    pub fn start(name: &str) -> Daemon {
        Daemon::start_with(name, false)
    }

    /// Starts a daemon in a fresh home that announces itself and listens for its peers over
    /// mDNS on loopback, and waits until it answers.
    pub fn start_with_mdns(name: &str) -> Daemon {
        Daemon::start_with(name, true)
    }

    fn start_with(name: &str, mdns: bool) -> Daemon {
        let mut d = Daemon {
            home: Home::new(),
            child: None,
            name: name.to_owned(),
            mdns,
            port: None,
            netns: None,
        };
        d.restart();
        d
    }

    /// Starts a daemon inside network namespace `host` (see [`netns`]), listening on every
    /// address there at the default port, and waits until it answers. Commands run in the
    /// test's own namespace and reach it over its control socket, a file in the home.
    pub fn start_in(host: &netns::Host, name: &str) -> Daemon {
        Daemon::start_in_with(host, name, &[])
    }

    /// [`Daemon::start_in`], with `failup config set KEY VALUE` for each of `settings` first.
    pub fn start_in_with(host: &netns::Host, name: &str, settings: &[(&str, &str)]) -> Daemon {
        let mut d = Daemon {
            home: Home::new(),
            child: None,
            name: name.to_owned(),
            mdns: false,
            port: None,
            netns: Some(host.ns.clone()),
        };
        for (key, value) in settings {
            d.ok(&["config", "set", key, value]);
        }
        d.launch(DEFAULT_LISTEN);
        d
    }

    /// Starts (again) the daemon of this home, on the port it had before (as a daemon on the
    /// default fixed port comes back), and waits until it answers.
    pub fn restart(&mut self) {
        if self.netns.is_some() {
            return self.launch(DEFAULT_LISTEN);
        }
        let listen = self
            .port
            .map_or("127.0.0.1:0".to_owned(), |p| format!("127.0.0.1:{p}"));
        self.launch(&listen);
    }

    /// Starts (again) the daemon of this home on a new port, as a device that moved, and waits
    /// until it answers.
    pub fn restart_elsewhere(&mut self) {
        self.launch("127.0.0.1:0");
    }

    fn launch(&mut self, listen: &str) {
        assert!(self.child.is_none(), "already running");
        let mut args = vec!["daemon", "--listen", listen, "--name", &self.name];
        if !self.mdns {
            args.push("--no-mdns");
        }
        let mut cmd = match &self.netns {
            None => self.home.cmd(),
            Some(ns) => {
                // `ip netns exec` execs the daemon in place: the child is the daemon itself.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns])
                    .arg(failup_bin())
                    .env("FAILUP_HOME", self.home.path())
                    .env("TZ", "UTC");
                isolate(&mut c);
                c
            }
        };
        let child = cmd
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .expect("spawn daemon");
        self.child = Some(child);
        wait_until(
            "the daemon to answer",
            std::time::Duration::from_secs(30),
            || self.status()["running"] == true,
        );
        self.port = self.status()["listen"][0]
            .as_str()
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.port());
    }

    /// Where the daemon's log goes: a file in its home, so a test can read what it logged.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.home.path().join("daemon.log")
    }

    fn log_file(&self) -> std::process::Stdio {
        let _ = std::fs::create_dir_all(self.home.path());
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map(std::process::Stdio::from)
            .unwrap_or_else(|_| std::process::Stdio::null())
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// `failup --json status`.
    pub fn status(&self) -> serde_json::Value {
        self.home.status()
    }

    /// Runs `failup ARGS` against this home and returns the output.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.home.cmd().args(args).output().expect("run failup")
    }

    /// Runs `failup ARGS` on a pseudo-terminal here (through util-linux `script`), with `input`
    /// typed; returns the terminal's output.
    pub fn on_terminal(&self, args: &[&str], input: &str) -> String {
        let out = on_terminal(&self.home.path(), args, &[], input);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `failup ARGS` with `input` on its standard input.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .home
            .cmd()
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run failup");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("wait for failup")
    }

    /// Runs `failup ARGS`, insists on success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} failup {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// The texts of every entry, sorted.
    pub fn texts(&self) -> Vec<String> {
        let out = self.run(&["--json", "list"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut texts: Vec<String> = list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["text"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        texts.sort();
        texts
    }

    /// This device's id.
    pub fn device(&self) -> String {
        self.ok(&["id"])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// Pairs `other` into this daemon's circle.
    pub fn pair(&self, other: &Daemon) {
        let code = self.ok(&["pair", "invite"]).trim().to_owned();
        other.ok(&["pair", "join", &code]);
    }

    /// Makes `other` this daemon's partner: this side calls it `theirs`, `other` calls this
    /// side `mine`.
    pub fn partner(&self, other: &Daemon, theirs: &str, mine: &str) {
        let code = self
            .ok(&["partner", "invite", "--name", theirs])
            .trim()
            .to_owned();
        other.ok(&["partner", "join", &code, "--name", mine]);
    }

    /// Stops the daemon with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::time::Instant::now() > end {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Default for Home {
    fn default() -> Self {
        Home::new()
    }
}

/// A client-only QUIC endpoint that acts as the device whose key is at `key` (a test playing a
/// modified client), admitting no incoming connection. Needs a tokio runtime.
pub fn client_endpoint(key: &std::path::Path) -> (quinn::Endpoint, failup_net::Identity) {
    #[derive(Debug)]
    struct Nobody;
    impl failup_net::Trust for Nobody {
        fn admits(&self, _: failup_wire::DeviceId) -> bool {
            false
        }
    }
    let identity = failup_net::Identity::load_or_create(key).expect("device key");
    let ep = failup_net::endpoint(
        &identity,
        std::sync::Arc::new(Nobody),
        "127.0.0.1:0".parse().expect("addr"),
        &[],
    )
    .expect("endpoint");
    (ep, identity)
}

/// Where a running daemon listens, and its device id.
pub fn dial_target(d: &Daemon) -> (std::net::SocketAddr, failup_wire::DeviceId) {
    let addr = d.status()["listen"][0]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("listen address");
    (addr, d.device().parse().expect("device id"))
}

/// Runs `failup ARGS` in the home `home` on a pseudo-terminal (through util-linux `script`),
/// with `env` set and `input` typed; returns the terminal's output.
pub fn on_terminal(
    home: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: &str,
) -> std::process::Output {
    use std::io::Write;
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = quote(&failup_bin().display().to_string());
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env("FAILUP_HOME", home)
        .env("TZ", "UTC")
        .env("TERM", "xterm-256color")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    isolate(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run script");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("type");
    }
    child.wait_with_output().expect("wait for script")
}
