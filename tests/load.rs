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
                let missing = acknowledged.difference(&ids(d)).count();
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
