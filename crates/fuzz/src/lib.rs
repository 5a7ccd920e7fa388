//! Every decoder that takes bytes from outside (a peer, a file, the control socket, the disk),
//! as a target that takes arbitrary bytes, with valid inputs to mutate from. `failup-fuzz`
//! drives them at length and counts panics and runaway allocations; the test suite runs a
//! short campaign on every change.
//!
//! The targets are plain functions, so a coverage-guided fuzzer (cargo-fuzz, which needs a
//! nightly toolchain) can call the same ones.

use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::AutoCommit;
use failup_daemon::control::{self, Request, Response};
use failup_daemon::pairing::{Code, Hello, Reply, SECRET_BYTES};
use failup_journal::export;
use failup_journal::layout::Bucket;
use failup_journal::space::{Field, SharedEntry, Space};
use failup_journal::{Entry, EntryId, NewEntry};
use failup_wire::{DocId, FrameReader, Message};
use jiff::Timestamp;
use rand::{Rng, RngCore};

/// One decoder.
pub struct Target {
    /// Its name in reports.
    pub name: &'static str,
    /// Valid inputs, to mutate from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Feeds it one input; the result is ignored, only a panic or a runaway allocation counts.
    pub run: fn(&[u8]),
}

impl Target {
    /// Its name as a command line and a directory take it: lowercase letters and digits, the
    /// rest as single dashes ("peer document, inflation bounded" is
    /// `peer-document-inflation-bounded`).
    pub fn slug(&self) -> String {
        let mut out = String::new();
        for c in self.name.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_end_matches('-').to_owned()
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn sample_entries() -> Vec<Entry> {
    (0..3u64)
        .filter_map(|i| {
            NewEntry {
                text: format!("missed the train {i}"),
                lesson: Some("leave earlier".into()),
                tags: vec!["work".into()],
                ..NewEntry::default()
            }
            .into_entry(
                EntryId::from_parts(1_000 + i, u128::from(i)),
                ts(1_000),
                jiff::civil::Date::constant(2026, 11, 2),
            )
            .ok()
        })
        .collect()
}

fn bucket_bytes() -> Vec<u8> {
    match Bucket::create(&[1; 16], [7; 16], ts(0)) {
        Ok(mut b) => {
            let _ = b.insert(&sample_entries(), ts(1));
            b.save()
        }
        Err(_) => Vec::new(),
    }
}

fn space_bytes() -> Vec<u8> {
    let Ok(mut s) = Space::create(&[1; 16], [8; 16]) else {
        return Vec::new();
    };
    let fields = Field::ALL.into_iter().collect();
    for e in sample_entries() {
        let _ = s.put(&SharedEntry::project(&e, &fields, ts(2)));
    }
    s.into_doc().save()
}

fn frame<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = control::write_frame(&mut out, value);
    out
}

/// Every target.
pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "wire message",
            seeds: || {
                vec![
                    Message::Sync {
                        doc: DocId([1; 16]),
                        data: vec![1, 2, 3],
                    }
                    .encode(),
                    Message::Doc {
                        doc: DocId([2; 16]),
                        data: bucket_bytes(),
                    }
                    .encode(),
                ]
            },
            run: |b| {
                let _ = Message::decode(b);
            },
        },
        Target {
            name: "wire frames",
            seeds: || {
                let mut two = Message::DocUnavailable {
                    doc: DocId([3; 16]),
                }
                .to_frame();
                two.extend(
                    Message::Request {
                        doc: DocId([4; 16]),
                        data: vec![9; 40],
                    }
                    .to_frame(),
                );
                vec![two]
            },
            run: |b| {
                let mut r = FrameReader::default();
                r.push(b);
                while let Ok(Some(_)) = r.next_message() {}
            },
        },
        Target {
            name: "automerge sync message",
            seeds: || {
                use automerge::sync::SyncDoc;
                let mut doc = AutoCommit::load(&bucket_bytes()).unwrap_or_default();
                doc.sync()
                    .generate_sync_message(&mut automerge::sync::State::new())
                    .map(|m| vec![m.encode()])
                    .unwrap_or_default()
            },
            run: |b| {
                let _ = automerge::sync::Message::decode(b);
            },
        },
        Target {
            name: "invite code",
            seeds: || {
                let code = Code::new(
                    failup_wire::DeviceId([5; 32]),
                    &["127.0.0.1:7676".parse().expect("addr")],
                    [6; SECRET_BYTES],
                    Timestamp::from_second(1_800_000_000).expect("time"),
                );
                vec![
                    code.encode(false).into_bytes(),
                    code.encode(true).into_bytes(),
                ]
            },
            run: |b| {
                let _ = Code::decode(&String::from_utf8_lossy(b));
            },
        },
        Target {
            name: "pairing hello and reply",
            seeds: || {
                vec![
                    postcard::to_allocvec(&Hello {
                        secret: [1; SECRET_BYTES],
                        name: "phone".into(),
                        port: 7676,
                        space: Some([2; 16]),
                    })
                    .unwrap_or_default(),
                    postcard::to_allocvec(&Reply::Partnered {
                        name: "laptop".into(),
                        space: [3; 16],
                    })
                    .unwrap_or_default(),
                ]
            },
            run: |b| {
                let _ = postcard::from_bytes::<Hello>(b);
                let _ = postcard::from_bytes::<Reply>(b);
            },
        },
        Target {
            name: "control request and response",
            seeds: || {
                vec![
                    frame(&Request::Import {
                        entries: sample_entries(),
                        now_ms: 1,
                    }),
                    frame(&Response::Entries(sample_entries())),
                ]
            },
            run: |b| {
                let _ = control::read_frame::<Request>(&mut &b[..]);
                let _ = control::read_frame::<Response>(&mut &b[..]);
            },
        },
        Target {
            name: "import file",
            seeds: || {
                let mut out = Vec::new();
                let _ = export::write_json(&mut out, ts(5), &sample_entries());
                vec![out]
            },
            run: |b| {
                let _ = export::read_json(b);
            },
        },
        Target {
            name: "journal bucket",
            seeds: || vec![bucket_bytes()],
            run: |b| {
                if failup_journal::inflate::check_inflated(b).is_err() {
                    return;
                }
                if let Ok(bucket) = Bucket::load(b, [], &[9; 16]) {
                    let _ = bucket.entries();
                }
            },
        },
        Target {
            name: "peer document, inflation bounded",
            seeds: || {
                let mut sync_bomb = Vec::new();
                sync_bomb.extend(bucket_bytes());
                sync_bomb.extend(failup_journal::inflate::bomb(1 << 20));
                vec![
                    bucket_bytes(),
                    // High-ratio inputs (a thousand to one and more); one past the bound is
                    // in tests/authorship.rs, since inflating 64 MiB per mutation is slow.
                    failup_journal::inflate::bomb(1 << 16),
                    failup_journal::inflate::bomb(1 << 24),
                    sync_bomb,
                ]
            },
            run: |b| {
                // As the store takes a document from a peer: bounded first, then loaded.
                if failup_journal::inflate::check_inflated(b).is_ok() {
                    let _ = catch_unwind(AssertUnwindSafe(|| AutoCommit::load(b)));
                }
            },
        },
        Target {
            name: "space side",
            seeds: || vec![space_bytes()],
            run: |b| {
                if failup_journal::inflate::check_inflated(b).is_err() {
                    return;
                }
                let loaded = catch_unwind(AssertUnwindSafe(|| AutoCommit::load(b)));
                if let Ok(Ok(doc)) = loaded {
                    let circle = doc.clone();
                    let _ = failup_daemon::circle::members(&circle);
                    let _ = failup_daemon::circle::partners(&circle);
                    if let Ok(s) = Space::from_doc(doc) {
                        let _ = s.entries();
                        let _ = s.comments();
                        let _ = s.devices();
                    }
                }
            },
        },
    ]
}

/// One mutation of `seed`, or random bytes.
pub fn mutate(rng: &mut impl RngCore, seed: &[u8]) -> Vec<u8> {
    if seed.is_empty() || rng.random_bool(0.2) {
        let len = rng.random_range(0..512);
        return (0..len).map(|_| rng.random()).collect();
    }
    let mut b = seed.to_vec();
    match rng.random_range(0..5) {
        0 => {
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..b.len());
                b[at] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => b.truncate(rng.random_range(0..b.len())),
        2 => {
            let at = rng.random_range(0..=b.len());
            let extra: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
            b.splice(at..at, extra);
        }
        3 => {
            // A length or count field made huge.
            let at = rng.random_range(0..b.len());
            for x in b.iter_mut().skip(at).take(4) {
                *x = 0xFF;
            }
        }
        _ => {
            let at = rng.random_range(0..b.len());
            let piece = b[at..].to_vec();
            b.extend(piece);
        }
    }
    b
}

/// What a campaign found for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    /// The target.
    pub target: &'static str,
    /// Inputs tried.
    pub inputs: usize,
    /// Inputs that panicked.
    pub panics: Vec<Vec<u8>>,
    /// Inputs during which the heap grew past the bound.
    pub runaway: Vec<Vec<u8>>,
    /// The most the heap grew for one input, in bytes.
    pub peak: usize,
}

/// Runs `inputs` inputs through every target. `peak` reports how far the heap grew since the
/// previous call (and starts a new measure): a process-wide allocator does the counting, so
/// the caller, which owns it, passes it in. Growth past `bound` bytes counts as a runaway
/// allocation.
pub fn campaign(inputs: usize, seed: u64, bound: usize, peak: &dyn Fn() -> usize) -> Vec<Findings> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    targets()
        .into_iter()
        .map(|t| {
            let seeds = (t.seeds)();
            let mut f = Findings {
                target: t.name,
                inputs,
                panics: Vec::new(),
                runaway: Vec::new(),
                peak: 0,
            };
            for i in 0..inputs {
                let input = match seeds.get(i % (seeds.len() + 1)) {
                    Some(s) if i < seeds.len() => s.clone(),
                    Some(s) => mutate(&mut rng, s),
                    None => mutate(&mut rng, &[]),
                };
                let _ = peak();
                let run = t.run;
                let outcome = catch_unwind(AssertUnwindSafe(|| run(&input)));
                let grew = peak();
                f.peak = f.peak.max(grew);
                if outcome.is_err() {
                    f.panics.push(input.clone());
                }
                if grew > bound {
                    f.runaway.push(input);
                }
            }
            f
        })
        .collect()
}
