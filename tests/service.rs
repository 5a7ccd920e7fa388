//! Running failup as a service: the systemd unit and the launchd plist in examples/service start
//! a daemon that works, logs one JSON object per line and stops cleanly on SIGTERM; the daemon
//! takes its settings from the config file and the environment; and `doctor` reports each
//! paired device as in sync or not reachable.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use failup_tests::{Daemon, Home, failup_bin, wait_until};

/// A child process killed when the test ends, however it ends.
struct Running(Option<Child>);

impl Running {
    /// Sends SIGTERM and waits (with a deadline) for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let end = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            assert!(std::time::Instant::now() < end, "daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join("service")
}

/// The arguments after the program in the unit's ExecStart line.
fn unit_args() -> Vec<String> {
    let unit = std::fs::read_to_string(examples().join("failup.service")).expect("unit");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = line.split_whitespace();
    let program = words.next().expect("program");
    assert!(program.ends_with("/failup"), "{program}");
    assert!(unit.contains("WantedBy=default.target"));
    words.map(str::to_owned).collect()
}

/// The plist's ProgramArguments, after the program.
fn plist_args() -> Vec<String> {
    let plist = std::fs::read_to_string(examples().join("com.failup.daemon.plist")).expect("plist");
    let start = plist
        .find("<key>ProgramArguments</key>")
        .expect("ProgramArguments");
    let array = &plist[start..];
    let array = &array[..array.find("</array>").expect("array end")];
    let strings: Vec<String> = array
        .split("<string>")
        .skip(1)
        .map(|s| s.split("</string>").next().expect("string end").to_owned())
        .collect();
    assert!(strings[0].ends_with("/failup"), "{strings:?}");
    assert!(plist.contains("<key>RunAtLoad</key>"));
    strings[1..].to_vec()
}

/// Starts `failup ARGS` as the service would, with settings from the environment only.
fn start_as_service(home: &Home, args: &[String], log: &Path) -> Running {
    let child = std::process::Command::new(failup_bin())
        .args(args)
        .env("FAILUP_HOME", home.path())
        .env("FAILUP_LISTEN", "127.0.0.1:0")
        .env("FAILUP_MDNS", "off")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn");
    let running = Running(Some(child));
    wait_until(
        "the service's daemon to answer",
        Duration::from_secs(30),
        || home.status()["running"] == true,
    );
    running
}

#[test]
fn the_service_files_start_a_daemon_that_logs_json_and_stops_on_sigterm() {
    assert_eq!(
        unit_args(),
        plist_args(),
        "both services run the same command"
    );
    let home = Home::new();
    let log = home.path().with_extension("log");
    let mut daemon = start_as_service(&home, &unit_args(), &log);
    let listen = home.status()["listen"][0]
        .as_str()
        .expect("listen")
        .to_owned();
    assert!(
        listen.starts_with("127.0.0.1:"),
        "FAILUP_LISTEN applied: {listen}"
    );
    // The service's home works for the CLI while it runs.
    let id = home
        .cmd()
        .args(["log", "logged while it runs"])
        .output()
        .expect("log");
    assert!(id.status.success());
    wait_until(
        "the daemon to log its start",
        Duration::from_secs(30),
        || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("listening on")),
    );
    assert!(daemon.terminate().success(), "a clean stop exits 0");

    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("listening on"))
            && l["level"] == "INFO"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "failup daemon stopped"),
        "{text}"
    );
    assert!(
        !text.contains("logged while it runs"),
        "entries never reach the log"
    );
}

#[test]
fn the_daemon_takes_its_settings_from_the_config_file_and_flags_beat_it() {
    let home = Home::new();
    for (k, v) in [
        ("listen", "127.0.0.1:0"),
        ("mdns", "false"),
        ("name", "desk"),
    ] {
        let out = home
            .cmd()
            .args(["config", "set", k, v])
            .output()
            .expect("set");
        assert!(out.status.success(), "{out:?}");
    }
    let log = home.path().with_extension("log");
    let spawn = |extra: &[&str]| {
        let child = home
            .cmd()
            .arg("daemon")
            .args(extra)
            .env_remove("FAILUP_LISTEN")
            .env_remove("FAILUP_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn");
        let r = Running(Some(child));
        // The first log line comes just after the control socket opens.
        wait_until(
            "the daemon to log its start",
            Duration::from_secs(30),
            || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("listening on")),
        );
        r
    };
    // The daemon names itself, and says whether mDNS is on, in its first log line.
    let started = || std::fs::read_to_string(&log).expect("log");
    let mut d = spawn(&[]);
    assert!(
        home.status()["listen"][0]
            .as_str()
            .is_some_and(|l| l.starts_with("127.0.0.1:"))
    );
    let text = started();
    assert!(
        text.contains("failup daemon \"desk\" listening on 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("mdns=false"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes in a log file: {text:?}"
    );
    assert!(d.terminate().success());
    let mut d = spawn(&["--name", "laptop"]);
    let text = started();
    assert!(
        text.contains("failup daemon \"laptop\""),
        "the flag beats the file: {text}"
    );
    assert!(d.terminate().success());

    // A bad listen address in the file stops the daemon at once with one line.
    let out = home
        .cmd()
        .args(["config", "set", "listen", "nowhere"])
        .output()
        .expect("set");
    assert!(!out.status.success());
    std::fs::write(home.path().join("config.toml"), "listen = \"nowhere\"\n").expect("write");
    let out = home.cmd().arg("daemon").output().expect("daemon");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("listen"), "{err}");
}

#[test]
fn doctor_reports_each_paired_device_in_sync_or_not_reachable() {
    let a = Daemon::start("alpha");
    let mut b = Daemon::start("beta");
    a.pair(&b);
    a.ok(&["log", "one for both"]);
    let out = a.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok      daemon   running"), "{text}");
    assert!(text.contains("ok      devices  beta"), "{text}");
    assert!(text.contains("is in sync"), "{text}");

    b.stop();
    let out = a.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "an unreachable device is a warning: {text}"
    );
    assert!(text.contains("warn    devices  beta"), "{text}");
    assert!(text.contains("is not reachable now"), "{text}");
    assert!(text.contains("failup peers addr"), "{text}");
}

#[test]
fn sync_shows_progress_on_a_terminal_and_only_the_result_in_a_pipe() {
    let a = Daemon::start("alpha");
    let b = Daemon::start("beta");
    a.pair(&b);
    for n in 0..50 {
        a.ok(&["log", &format!("setback {n}")]);
    }
    let piped = a.run(&["sync", "--timeout", "20s"]);
    assert!(piped.status.success(), "{piped:?}");
    assert!(String::from_utf8_lossy(&piped.stdout).starts_with("in sync: "));
    assert!(
        piped.stderr.is_empty(),
        "no progress in a pipe: {:?}",
        String::from_utf8_lossy(&piped.stderr)
    );

    // On a pseudo-terminal (util-linux `script`), the spinner draws on stderr.
    let line = format!(
        "'{}' sync --timeout 20s",
        failup_bin().display().to_string().replace('\'', r"'\''")
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("FAILUP_HOME", a.home.path())
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let drawn = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{drawn}");
    assert!(drawn.contains("syncing: "), "{drawn:?}");
    assert!(drawn.contains("in sync: "), "{drawn:?}");
}
