//! Prints failup's speed and size figures, each next to a reference measured in the same run,
//! so a reader sees overhead as a ratio rather than a bare number.
//!
//! ```text
//! cargo build --release -p failup -p failup-bench
//! target/release/failup-bench journal [SIZES]   # default 1000,10000,100000
//! target/release/failup-bench layout            # bucket capacity trade-off
//! target/release/failup-bench sync [SIZES]      # two daemons on loopback
//! target/release/failup-bench sim [SEEDS]       # devices and a partner over a bad network
//! target/release/failup-bench relay [SIZES]     # through the person's relay, on loopback
//! target/release/failup-bench web [SIZES]       # the web interface's pages, over HTTP
//! sudo target/release/failup-bench paths [N]    # each path across namespace routers
//! ```
//!
//! `journal` times the real `failup` binary (process start to exit) in a fresh home per size.
//! `layout` measures what one bucket of a given capacity costs to load and to write to.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use automerge::AutoCommit;
use failup_journal::layout::{BUCKET_CAPACITY, Bucket};
use failup_journal::{Entry, EntryId, Iteration, IterationId, NewEntry, Outcome, Scale};
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod paths;
mod relay;
mod sync;
mod web;

const WORDS: &[&str] = &[
    "missed",
    "deadline",
    "meeting",
    "forgot",
    "call",
    "argued",
    "with",
    "my",
    "sister",
    "presentation",
    "froze",
    "interview",
    "run",
    "skipped",
    "gym",
    "again",
    "late",
    "train",
    "budget",
    "overspent",
    "feedback",
    "harsh",
    "code",
    "review",
    "bug",
    "shipped",
    "launch",
    "slipped",
    "promise",
    "broken",
    "patience",
    "lost",
    "temper",
    "sleep",
    "too",
    "little",
    "the",
    "a",
    "and",
    "because",
    "after",
    "before",
    "week",
    "today",
    "plan",
    "failed",
    "first",
];
const TAGS: &[&str] = &[
    "work", "family", "health", "money", "friends", "craft", "focus", "sleep", "fitness",
];
const AREAS: &[&str] = &["work", "home", "health", "money", "relationships"];

fn sentence(rng: &mut StdRng, min: usize, max: usize) -> String {
    let n = rng.random_range(min..=max);
    (0..n)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A journal of `n` plausible entries spread over three years, the same for the same seed.
pub(crate) fn entries(n: usize, seed: u64) -> Vec<Entry> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Date::constant(2023, 1, 1);
    let t0: i64 = 1_672_531_200_000;
    (0..n)
        .map(|i| {
            let created = Timestamp::from_millisecond(t0 + i as i64 * 60_000).expect("ts");
            let mut tags = Vec::new();
            for _ in 0..rng.random_range(0..=2) {
                tags.push(TAGS[rng.random_range(0..TAGS.len())].to_owned());
            }
            let day = start
                .checked_add(rng.random_range(0..1000i64).days())
                .expect("day");
            let mut e = NewEntry {
                text: sentence(&mut rng, 8, 16),
                scale: if rng.random_bool(0.2) {
                    Scale::Macro
                } else {
                    Scale::Micro
                },
                day: Some(day),
                area: rng
                    .random_bool(0.5)
                    .then(|| AREAS[rng.random_range(0..AREAS.len())].to_owned()),
                tags,
                feeling: rng.random_bool(0.7).then(|| rng.random_range(1..=5)),
                lesson: rng.random_bool(0.5).then(|| sentence(&mut rng, 4, 9)),
                muscle: None,
                use_it: None,
                next: rng.random_bool(0.3).then(|| sentence(&mut rng, 3, 6)),
            }
            .into_entry(
                EntryId::from_parts(created.as_millisecond() as u64, rng.random()),
                created,
                day,
            )
            .expect("valid entry");
            if rng.random_bool(0.2) {
                e.iterations.push(Iteration {
                    id: IterationId::from_parts(created.as_millisecond() as u64 + 1, rng.random()),
                    at: created,
                    tried: sentence(&mut rng, 3, 8),
                    outcome: Some(Outcome::Better),
                });
            }
            e
        })
        .collect()
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn failup_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe.with_file_name("failup");
    if !bin.exists() {
        eprintln!(
            "{} not found: build it with `cargo build --release -p failup -p failup-bench`",
            bin.display()
        );
        std::process::exit(1);
    }
    bin
}

/// `n` generated entries imported into `home` through an export file in `dir`.
pub(crate) fn import_entries(home: &Path, dir: &Path, n: usize) -> Vec<Entry> {
    let all = entries(n, 42);
    let source = dir.join("source.json");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&source).expect("create"));
    failup_journal::export::write_json(&mut file, jiff::Timestamp::UNIX_EPOCH, &all)
        .expect("write");
    drop(file);
    run(home, &["import", source.to_str().expect("utf8")]);
    all
}

pub(crate) fn run(home: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(failup_bin())
        .env("FAILUP_HOME", home)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("spawn failup");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "failup {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A bare redb write: one small row committed with fsync, in a fresh file.
fn redb_commit(dir: &Path) -> Duration {
    const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");
    let db = redb::Database::create(dir.join("bare.redb")).expect("redb");
    let mut times = Vec::new();
    for i in 0..21u64 {
        let start = Instant::now();
        let txn = db.begin_write().expect("txn");
        txn.open_table(T)
            .expect("table")
            .insert(i, [0u8; 200].as_slice())
            .expect("insert");
        txn.commit().expect("commit");
        times.push(start.elapsed());
    }
    median(times)
}

/// A bare Automerge load of one document holding every entry.
fn automerge_load(all: &[Entry]) -> (Duration, usize) {
    let mut bucket = Bucket::create(&[9; 16], [9; 16], Timestamp::UNIX_EPOCH).expect("bucket");
    for chunk in all.chunks(10_000) {
        bucket.insert(chunk, Timestamp::UNIX_EPOCH).expect("insert");
    }
    let bytes = bucket.save();
    let times = (0..3)
        .map(|_| {
            let start = Instant::now();
            let doc = AutoCommit::load(&bytes).expect("load");
            let took = start.elapsed();
            drop(doc);
            took
        })
        .collect();
    (median(times), bytes.len())
}

fn journal(sizes: &[usize]) {
    println!(
        "| entries | log p50 (p90) | list --limit 20 | stats | export | import | store / export size | ref: process start | ref: redb commit | ref: automerge load |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("home");
        let all = entries(n, 42);
        let source = tmp.path().join("source.json");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source).expect("create"));
        failup_journal::export::write_json(&mut file, Timestamp::UNIX_EPOCH, &all).expect("write");
        drop(file);

        let import = run(&home, &["import", source.to_str().expect("utf8")]);
        run(&home, &["compact"]);
        let store = home.join("journal.redb");
        let export_path = tmp.path().join("export.json");
        let export = median(
            (0..3)
                .map(|_| {
                    run(
                        &home,
                        &["export", "--out", export_path.to_str().expect("utf8")],
                    )
                })
                .collect(),
        );
        let (store_size, export_size) = (size(&store), size(&export_path));
        let list = median(
            (0..21)
                .map(|_| run(&home, &["list", "--limit", "20"]))
                .collect(),
        );
        let stats = median((0..3).map(|_| run(&home, &["stats"])).collect());
        // Fill the open bucket close to capacity first, so the timed writes load the largest
        // bucket a write ever loads, with pending changes, and cross into a fresh one.
        for i in 0..(BUCKET_CAPACITY - 20) {
            run(&home, &["log", &format!("filler {i}")]);
        }
        let logs: Vec<Duration> = (0..41)
            .map(|i| {
                run(
                    &home,
                    &["log", &format!("bench entry {i}"), "--tag", "bench"],
                )
            })
            .collect();
        let (log50, log90) = (percentile(logs.clone(), 0.5), percentile(logs, 0.9));
        let redb = redb_commit(tmp.path());
        let start = median((0..21).map(|_| run(&home, &["--version"])).collect());
        let (am_load, am_bytes) = automerge_load(&all);
        println!(
            "| {n} | {} ({}) = {:.1}× start + redb | {} = {:.1}× start | {} = {:.2}× load | {} = {:.2}× load | {} ({:.0}/s) = {:.1}× load | {} / {} = {:.2} | {} | {} | {} ({} KiB) |",
            ms(log50),
            ms(log90),
            log50.as_secs_f64() / (start + redb).as_secs_f64(),
            ms(list),
            list.as_secs_f64() / start.as_secs_f64(),
            ms(stats),
            stats.as_secs_f64() / am_load.as_secs_f64(),
            ms(export),
            export.as_secs_f64() / am_load.as_secs_f64(),
            ms(import),
            n as f64 / import.as_secs_f64(),
            import.as_secs_f64() / am_load.as_secs_f64(),
            store_size,
            export_size,
            store_size as f64 / export_size as f64,
            ms(start),
            ms(redb),
            ms(am_load),
            am_bytes / 1024,
        );
    }
}

fn layout() {
    println!(
        "| entries per document | saved bytes per entry | load one document | write one entry (load + change + incremental save) |"
    );
    println!("|---|---|---|---|");
    let all = entries(4096, 7);
    for cap in [1usize, 16, 64, 256, 1024, 4096] {
        let mut bucket = Bucket::create(&[1; 16], [1; 16], Timestamp::UNIX_EPOCH).expect("bucket");
        bucket
            .insert(&all[..cap], Timestamp::UNIX_EPOCH)
            .expect("insert");
        let bytes = bucket.save();
        let extra = entries(1, 99).remove(0);
        let mut loads = Vec::new();
        let mut writes = Vec::new();
        for _ in 0..21 {
            let start = Instant::now();
            let mut b = Bucket::load(&bytes, [], &[2; 16]).expect("load");
            loads.push(start.elapsed());
            let heads = b.heads();
            b.insert(std::slice::from_ref(&extra), Timestamp::UNIX_EPOCH)
                .expect("insert");
            let inc = b.changes_since(&heads);
            writes.push(start.elapsed());
            assert!(!inc.is_empty());
        }
        println!(
            "| {cap} | {} | {} | {} |",
            bytes.len() / cap,
            ms(median(loads)),
            ms(median(writes))
        );
    }
}

/// Journal sizes from a comma-separated argument, or the default three.
fn sizes(arg: Option<&String>) -> Vec<usize> {
    arg.map(|s| {
        s.split(',')
            .map(|n| n.trim().parse().expect("sizes are numbers"))
            .collect()
    })
    .unwrap_or_else(|| vec![1_000, 10_000, 100_000])
}

/// The convergence simulation (`failup_sync::sim`) over many seeds, with its figures.
fn sim(seeds: u64) {
    let started = Instant::now();
    let mut total = failup_sync::sim::Report::default();
    let mut failed = Vec::new();
    for seed in 0..seeds {
        let r = failup_sync::sim::run(seed);
        if !r.is_clean() {
            failed.push(seed);
        }
        total.operations += r.operations;
        total.messages += r.messages;
        total.divergences += r.divergences;
        total.privacy_violations += r.privacy_violations;
        total.forgeries_accepted += r.forgeries_accepted;
        total.closed += r.closed;
    }
    println!(
        "| seeds | operations | messages | divergences | privacy violations | forgeries accepted | protocol closes | time |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {seeds} | {} | {} | {} | {} | {} | {} | {:.1} s |",
        total.operations,
        total.messages,
        total.divergences,
        total.privacy_violations,
        total.forgeries_accepted,
        total.closed,
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!(
            "failing seeds (replay with FAILUP_SIM_SEED=N cargo test -p failup-sync): {failed:?}"
        );
        std::process::exit(1);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("layout") => layout(),
        Some("sync") => sync::bench(&sizes(args.get(1))),
        Some("relay") => relay::bench(&sizes(args.get(1))),
        Some("web") => web::bench(&sizes(args.get(1))),
        Some("paths") => paths::bench(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1_000)),
        Some("sim") => sim(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(2_000)),
        Some("journal") | None => journal(&sizes(args.get(1))),
        Some(other) => {
            eprintln!(
                "failup-bench: unknown mode {other:?} (journal, sync, relay, web, paths, sim or layout)"
            );
            std::process::exit(2);
        }
    }
}
