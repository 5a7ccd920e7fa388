//! Real processes under load: three paired daemons on loopback, a writer logging entries on
//! each, while daemons are killed (SIGKILL) and restarted at random, dropping every connection
//! they had. At the end all three must hold every entry whose `failup log` reported success.
//!
//! `FAILUP_LOAD_ENTRIES` sets the entries per writer (100 in CI) for a longer run.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failup_tests::{Daemon, wait_until};
use rand::{Rng, SeedableRng};

fn ids(d: &Daemon) -> BTreeSet<String> {
    let out = d.run(&["--json", "list"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .map(|a| {
            a.iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn daemons_killed_under_load_converge_and_lose_nothing_acknowledged() {
    let per_writer: usize = std::env::var("FAILUP_LOAD_ENTRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let mut daemons = vec![
        Daemon::start("one"),
        Daemon::start("two"),
        Daemon::start("three"),
    ];
    daemons[0].pair(&daemons[1]);
    daemons[0].pair(&daemons[2]);
    wait_until(
        "the three to know each other",
        Duration::from_secs(60),
        || daemons[1].ok(&["peers"]).contains("three"),
    );

    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let writers: Vec<_> = daemons
        .iter()
        .enumerate()
        .map(|(w, d)| {
            let home = d.home.path();
            let acknowledged = acknowledged.clone();
            std::thread::spawn(move || {
                for i in 0..per_writer {
                    let out = std::process::Command::new(failup_tests::failup_bin())
                        .env("FAILUP_HOME", &home)
                        .args(["log", &format!("writer {w} entry {i}")])
                        .output()
                        .expect("run failup");
                    // Killed daemons make some attempts fail; only a reported success counts.
                    if out.status.success() {
                        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                        assert!(
                            !id.is_empty(),
                            "`failup log` succeeded without printing an id: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                        acknowledged.lock().expect("lock").insert(id);
                    }
                }
            })
        })
        .collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut kills = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(rng.random_range(150..500)));
        let victim = rng.random_range(0..daemons.len());
        daemons[victim].kill();
        kills += 1;
        std::thread::sleep(Duration::from_millis(rng.random_range(0..200)));
        daemons[victim].restart();
    }
    for w in writers {
        w.join().expect("writer");
    }
    let last_fault = Instant::now();

    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= per_writer,
        "too few writes got through: {}",
        acknowledged.len()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !daemons.iter().all(|d| ids(d).is_superset(&acknowledged)) {
        if Instant::now() > deadline {
            for d in &daemons {
                let gone: Vec<String> = acknowledged.difference(&ids(d)).cloned().collect();
                for id in gone.iter().take(3) {
                    let shown = d.run(&["show", id]);
                    eprintln!(
                        "missing {id}: show says {} {}",
                        String::from_utf8_lossy(&shown.stdout),
                        String::from_utf8_lossy(&shown.stderr)
                    );
                }
                let missing = gone.len();
                eprintln!("{}: missing {missing}, status {}", d.device(), d.status());
                let log = std::fs::read_to_string(d.log_path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(25).collect();
                eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
            panic!("every acknowledged entry on every device: timed out");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let converged = last_fault.elapsed();
    let lost: usize = daemons
        .iter()
        .map(|d| acknowledged.difference(&ids(d)).count())
        .sum();
    for d in &daemons {
        let check: serde_json::Value =
            serde_json::from_str(&d.ok(&["--json", "check"])).expect("json");
        assert_eq!(check["mismatches"], 0);
    }
    eprintln!(
        "load: 3 daemons, {} entries acknowledged of {} written, {kills} kills, {lost} lost, \
         converged {:.1} s after the last fault",
        acknowledged.len(),
        per_writer * 3,
        converged.as_secs_f64()
    );
    assert_eq!(lost, 0);
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_flood_of_connections_and_huge_prefixes_stays_within_the_memory_bound() {
    use std::os::unix::fs::PermissionsExt;
    let a = Daemon::start("laptop");
    let mut hostile = Daemon::start("hostile");
    a.pair(&hostile);
    wait_until("paired", Duration::from_secs(60), || {
        a.ok(&["peers"]).contains("hostile")
    });
    hostile.stop();
    // The key, the socket and the store are the owner's alone.
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    assert_eq!(mode(&a.home.path().join("device.key")), 0o600);
    assert_eq!(mode(&a.home.path().join("control.sock")), 0o600);
    assert_eq!(mode(&a.home.path()), 0o700);

    let pid = a.pid().expect("running");
    let before = rss_kib(pid);
    let (addr, a_id) = failup_tests::dial_target(&a);
    let key = hostile.home.path().join("device.key");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (opened, peak) = rt.block_on(async {
        let (ep, identity) = failup_tests::client_endpoint(&key);
        let mut opened = 0;
        let mut peak = 0;
        let mut held = Vec::new();
        for round in 0..40u32 {
            let Ok(conn) =
                failup_net::connect(&ep, &identity, a_id, addr, failup_wire::ALPN_SYNC).await
            else {
                continue;
            };
            opened += 1;
            // Many streams on one connection, each announcing a frame near the limit and
            // sending a part of it, so a naive reader would buffer all of them.
            // Flow control may hold a writer back: that is the daemon defending itself, so each
            // step gets a short timeout rather than waiting.
            let step = Duration::from_millis(200);
            for _ in 0..8 {
                if let Ok(Ok((mut send, _recv))) = tokio::time::timeout(step, conn.open_bi()).await
                {
                    let mut bytes = (failup_wire::MAX_FRAME_BYTES - 1).to_be_bytes().to_vec();
                    bytes.extend(vec![0xAB; 256 * 1024]);
                    let _ = tokio::time::timeout(step, send.write_all(&bytes)).await;
                    held.push(send);
                }
            }
            held.truncate(64);
            if round % 8 == 0 {
                peak = peak.max(rss_kib(pid));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        (opened, peak.max(rss_kib(pid)))
    });
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "flood: {opened} connections, 8 streams each, daemon RSS {} MiB before, {} MiB at peak",
        before / 1024,
        peak / 1024
    );
    assert!(opened > 0, "the paired key should connect");
    // One connection at a time per device, one stream read per connection, at most 16 MiB of
    // frame buffered: the growth stays far under a naive 40 x 8 x 256 KiB = 80 MiB.
    assert!(grew_mib < 64, "the daemon grew by {grew_mib} MiB");
    // And it still works.
    a.ok(&["log", "after the flood"]);
    let check: serde_json::Value = serde_json::from_str(&a.ok(&["--json", "check"])).expect("json");
    assert_eq!(check["mismatches"], 0);
}
