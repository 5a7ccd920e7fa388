//! Kills writers at random instants and then checks that every entry a writer reported as
//! logged is present, that the store opens, and that its index agrees with its documents.
//!
//! The instants are drawn from a seeded generator; which rounds die mid-write depends on the
//! machine's speed, but the property checked holds for every outcome, so the test cannot flake.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use failup_store::Store;
use failup_tests::Home;
use rand::{Rng, SeedableRng};

/// Rounds of log-then-kill in CI; `FAILUP_CRASH_ROUNDS` runs a longer campaign.
const ROUNDS: usize = 80;

fn rounds(default: usize) -> usize {
    std::env::var("FAILUP_CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn store_ids(home: &Home) -> HashSet<String> {
    let out = home.cmd().args(["--json", "list"]).output().expect("list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    list.as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

fn assert_store_consistent(home: &Home) {
    let store = Store::open(&home.store(), Duration::from_secs(5)).expect("store opens");
    let report = store.check().expect("check");
    assert_eq!(report.mismatches, 0, "index disagrees with documents");
}

#[test]
fn killed_writers_lose_nothing_they_acknowledged() {
    let home = Home::new();
    let status = home.cmd().arg("init").output().expect("init").status;
    assert!(status.success());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_fa11);
    let mut acknowledged = Vec::new();
    let mut killed = 0;
    let total = rounds(ROUNDS);
    for round in 0..total {
        let mut child = home
            .cmd()
            .args(["log", &format!("crash round {round}"), "--tag", "crash"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        let finished = child.try_wait().expect("try_wait").is_some();
        if !finished {
            killed += 1;
        }
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        if out.status.success() {
            let id = String::from_utf8(out.stdout)
                .expect("utf8")
                .trim()
                .to_owned();
            assert_eq!(id.len(), 26, "acknowledged output {id:?}");
            acknowledged.push(id);
        }
    }
    let present = store_ids(&home);
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !present.contains(*id))
        .collect();
    eprintln!(
        "crash: {total} rounds, {} acknowledged, {killed} killed while running, {} lost",
        acknowledged.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged entries lost: {lost:?}");
    assert!(
        killed > 0,
        "no writer was killed mid-run; the test proved nothing"
    );
    assert_store_consistent(&home);
}

#[test]
fn killed_edits_lose_no_acknowledged_iteration() {
    let home = Home::new();
    let out = home
        .cmd()
        .args(["log", "edited while crashing"])
        .output()
        .expect("log");
    assert!(out.status.success());
    let id = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xed17);
    let mut acknowledged = Vec::new();
    // Well past the snapshot threshold, so kills also land while a document is re-saved and its
    // change log dropped.
    let total = rounds(90);
    for round in 0..total {
        let tried = format!("attempt {round}");
        let mut child = home
            .cmd()
            .args(["iterate", &id, &tried])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Every other round runs to completion, so the document surely passes the snapshot
        // threshold however fast or slow this machine is; the others die at a random instant.
        if round % 2 == 1 {
            std::thread::sleep(Duration::from_micros(rng.random_range(0..15_000)));
            let _ = child.kill();
        }
        if child.wait().expect("wait").success() {
            acknowledged.push(tried);
        }
    }
    let out = home
        .cmd()
        .args(["--json", "show", &id])
        .output()
        .expect("show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entry: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let present: HashSet<&str> = entry["iterations"]
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["tried"].as_str().expect("tried"))
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|t| !present.contains(t.as_str()))
        .collect();
    eprintln!(
        "crash (edits): {total} rounds, {} acknowledged, {} lost",
        acknowledged.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged iterations lost: {lost:?}");
    assert!(
        acknowledged.len() >= 45,
        "the rounds left to finish did not all succeed"
    );
    assert_store_consistent(&home);
}

#[test]
fn a_held_journal_makes_the_next_command_wait_then_say_busy() {
    let home = Home::new();
    assert!(
        home.cmd()
            .arg("init")
            .output()
            .expect("init")
            .status
            .success()
    );
    let held = Store::open(&home.store(), Duration::from_secs(5)).expect("open");
    let out = home.cmd().args(["log", "blocked"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is busy"), "{stderr}");
    drop(held);
    assert!(
        home.cmd()
            .args(["log", "free"])
            .output()
            .expect("run")
            .status
            .success()
    );
}

#[test]
fn a_killed_import_is_all_or_nothing() {
    let home = Home::new();
    let source = Home::new();
    // Build an export of 3,000 entries through the real binary's import of a generated file.
    let mut entries = Vec::new();
    for i in 0..3_000u64 {
        entries.push(serde_json::json!({
            "id": failup_journal::EntryId::from_parts(1_700_000_000_000 + i, u128::from(i)).to_string(),
            "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z",
            "day": "2026-01-01", "text": format!("imported {i}"),
        }));
    }
    let file = source.dir.path().join("big.json");
    let doc = serde_json::json!({"format": "failup-export", "version": 1, "entries": entries});
    std::fs::write(&file, serde_json::to_vec(&doc).expect("json")).expect("write");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..5 {
        let mut child = home
            .cmd()
            .args(["import", file.to_str().expect("utf8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(rng.random_range(0..200_000)));
        let _ = child.kill();
        let status = child.wait().expect("wait");
        let n = store_ids(&home).len();
        assert!(n == 0 || n == 3_000, "a killed import left {n} entries");
        if status.success() {
            assert_eq!(n, 3_000);
        }
        assert_store_consistent(&home);
    }
}
