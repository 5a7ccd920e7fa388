//! Accountability partners through real daemons: two people, their devices in separate temporary
//! homes, QUIC on loopback. What one person keeps private must never reach the other's files.

use std::path::Path;
use std::time::Duration;

use failup_tests::{Daemon, wait_until};

/// Deadline for a condition that normally holds within a second or two.
const SOON: Duration = Duration::from_secs(60);

/// `failup --json ARGS`, or null when the command fails (what a wait sees before a condition
/// holds).
fn json(d: &Daemon, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_slice(&d.run(&all).stdout).unwrap_or(serde_json::Value::Null)
}

/// The feed's entries by id: (lesson, text, comment texts).
fn feed(d: &Daemon) -> Vec<(String, serde_json::Value)> {
    json(d, &["feed"])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i["entry"]["id"].as_str().unwrap_or("").to_owned(), i))
        .collect()
}

fn feed_has(d: &Daemon, id: &str, check: impl Fn(&serde_json::Value) -> bool) -> bool {
    feed(d).iter().any(|(i, item)| i == id && check(item))
}

fn comments(item: &serde_json::Value) -> Vec<String> {
    item["comments"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["text"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every file under `dir`, read whole, that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    found
}

fn partner_devices(d: &Daemon, label: &str) -> usize {
    json(d, &["partner", "list"])
        .as_array()
        .and_then(|l| l.iter().find(|p| p["label"] == label).cloned())
        .and_then(|p| p["devices"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn partners_share_comment_and_revoke_and_nothing_private_leaks() {
    let alex_laptop = Daemon::start("alex-laptop");
    let alex_phone = Daemon::start("alex-phone");
    let mut sam_phone = Daemon::start("sam-phone");
    alex_laptop.pair(&alex_phone);

    let code = alex_laptop
        .ok(&["partner", "invite", "--name", "sam"])
        .trim()
        .to_owned();
    assert!(code.starts_with("FAILUP-PARTNER-"), "{code}");
    // A partner code is not a device code, and the other way round.
    let out = sam_phone.run(&["pair", "join", &code]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("partner join"));
    sam_phone.ok(&["partner", "join", &code, "--name", "alex"]);

    // Private, shared whole, and shared with only the lesson and the next step.
    let private = alex_laptop
        .ok(&["log", "PRIVATE-MARKER-4417 the thing I tell no one"])
        .trim()
        .to_owned();
    let whole = alex_laptop
        .ok(&[
            "log",
            "missed the deadline",
            "--lesson",
            "ask for help sooner",
            "--share",
            "sam",
        ])
        .trim()
        .to_owned();
    let lesson_only = alex_laptop
        .ok(&[
            "log",
            "STORY-MARKER-5521 an embarrassing story",
            "--lesson",
            "prepare the night before",
            "--next",
            "lay out clothes",
        ])
        .trim()
        .to_owned();
    alex_laptop.ok(&[
        "share",
        &lesson_only,
        "--with",
        "sam",
        "--only",
        "lesson,next",
    ]);
    // Waits on the partner list, which does not mark the feed read.
    wait_until("both shared entries on sam's phone", SOON, || {
        json(&sam_phone, &["partner", "list"])[0]["shared_with_me"] == 2
    });
    let f = feed(&sam_phone);
    assert!(f.iter().any(|(i, _)| *i == whole), "{f:?}");
    let item = &f.iter().find(|(i, _)| *i == lesson_only).expect("shared").1;
    assert_eq!(item["entry"]["lesson"], "prepare the night before");
    assert_eq!(
        item["entry"]["text"],
        serde_json::Value::Null,
        "the story stays private"
    );
    assert_eq!(item["new"], true, "first read: new");
    assert!(!f.iter().any(|(i, _)| *i == private));
    // Read once, the feed has nothing new.
    assert!(feed(&sam_phone).iter().all(|(_, i)| i["new"] == false));
    // Alex's list says what is shared.
    let list = json(&alex_laptop, &["list"]);
    let shared_with = |id: &str| {
        list.as_array()
            .and_then(|l| l.iter().find(|e| e["id"] == id).cloned())
            .map(|e| e["shared_with"].clone())
    };
    assert_eq!(shared_with(&whole), Some(serde_json::json!(["sam"])));
    assert_eq!(shared_with(&private), Some(serde_json::Value::Null));

    // Comments both ways, and on alex's second device too.
    sam_phone.ok(&["cheer", &whole[..20], "proud of you"]);
    wait_until("sam's comment on alex's phone", SOON, || {
        let shown = json(&alex_phone, &["show", &whole]);
        shown["comments"].to_string().contains("proud of you")
    });
    alex_phone.ok(&["cheer", &whole, "thanks, it helped"]);
    wait_until("alex's reply under the entry in sam's feed", SOON, || {
        feed_has(&sam_phone, &whole, |i| {
            comments(i) == ["proud of you", "thanks, it helped"]
        })
    });

    // The owner's edits reach the partner; the partner has no way to edit them.
    alex_laptop.ok(&["edit", &whole, "--lesson", "ask for help on day one"]);
    wait_until("the edit in sam's feed", SOON, || {
        feed_has(&sam_phone, &whole, |i| {
            i["entry"]["lesson"] == "ask for help on day one"
        })
    });
    let out = sam_phone.run(&["edit", &whole, "--lesson", "sam's words"]);
    assert_eq!(out.status.code(), Some(1), "not in sam's journal");

    // An edit of a field kept private changes nothing the partner sees, not even a time.
    let copy_of = |d: &Daemon, id: &str| {
        feed(d)
            .into_iter()
            .find(|(i, _)| i == id)
            .map(|(_, item)| item["entry"].clone())
    };
    let before = copy_of(&sam_phone, &lesson_only).expect("shared");
    alex_laptop.ok(&[
        "edit",
        &lesson_only,
        "--text",
        "STORY-MARKER-5521 rewritten",
    ]);
    alex_laptop.ok(&["log", "a later private entry, to let sync settle"]);
    alex_laptop.ok(&["edit", &whole, "--next", "book the meeting"]);
    wait_until("the next edit in sam's feed", SOON, || {
        feed_has(&sam_phone, &whole, |i| {
            i["entry"]["next"] == "book the meeting"
        })
    });
    assert_eq!(copy_of(&sam_phone, &lesson_only), Some(before));

    // A deleted entry leaves the space, on the partner's side too.
    let doomed = alex_phone
        .ok(&["log", "soon deleted", "--share", "sam"])
        .trim()
        .to_owned();
    wait_until("the doomed entry in sam's feed", SOON, || {
        feed(&sam_phone).iter().any(|(i, _)| *i == doomed)
    });
    alex_phone.ok(&["delete", &doomed, "--yes"]);
    wait_until("the deleted entry gone from sam's feed", SOON, || {
        !feed(&sam_phone).iter().any(|(i, _)| *i == doomed)
    });

    // Unshare: gone from the feed.
    alex_phone.ok(&["unshare", &lesson_only, "--with", "sam"]);
    wait_until("the unshared entry gone from sam's feed", SOON, || {
        !feed(&sam_phone).iter().any(|(i, _)| *i == lesson_only)
    });

    // Sam adds a second device; alex's devices trust it because sam vouches for it, and sync
    // with it directly once sam's first device is gone.
    let sam_laptop = Daemon::start("sam-laptop");
    sam_phone.pair(&sam_laptop);
    wait_until(
        "alex's laptop to learn of sam's second device",
        SOON,
        || partner_devices(&alex_laptop, "sam") == 2,
    );
    wait_until("sam's second device to hold the space", SOON, || {
        json(&sam_laptop, &["partner", "list"])[0]["shared_with_me"] == 1
    });
    sam_phone.stop();
    let later = alex_laptop
        .ok(&[
            "log",
            "shared after sam's phone went away",
            "--share",
            "sam",
        ])
        .trim()
        .to_owned();
    wait_until("the new entry on sam's second device", SOON, || {
        feed(&sam_laptop).iter().any(|(i, _)| *i == later)
    });

    // Nothing private anywhere on sam's side: not in the stores, the logs, or an export.
    for d in [&sam_phone, &sam_laptop] {
        let export = d.ok(&["export"]);
        assert!(!export.contains("PRIVATE-MARKER-4417"));
        for marker in ["PRIVATE-MARKER-4417", "STORY-MARKER-5521"] {
            let found = files_containing(&d.home.path(), marker);
            assert!(found.is_empty(), "{marker} leaked into {found:?}");
        }
    }
    // The scan would have seen it: alex's own store holds the marker as written.
    assert!(!files_containing(&alex_laptop.home.path(), "PRIVATE-MARKER-4417").is_empty());

    // Revoked on alex's phone; the laptop learns it through the circle and refuses sam.
    alex_phone.ok(&["partner", "revoke", "sam"]);
    wait_until("the revocation on alex's laptop", SOON, || {
        json(&alex_laptop, &["partner", "list"])[0]["revoked"] == true
    });
    let out = alex_laptop.run(&["share", &later, "--with", "sam"]);
    assert_eq!(out.status.code(), Some(1));
    let out = sam_laptop.run(&["sync", "--timeout", "3s"]);
    assert!(!out.status.success(), "a revoked partner still syncs");
}

#[test]
fn a_modified_partner_client_gets_nothing_private() {
    let mut alex = Daemon::start("alex-laptop");
    let mut sam = Daemon::start("sam-phone");
    alex.partner(&sam, "sam", "alex");
    alex.ok(&["log", "PRIVATE-MARKER-8812 not for sam"]);
    let shared = alex
        .ok(&["log", "fine to share", "--share", "sam"])
        .trim()
        .to_owned();
    wait_until("the shared entry in sam's feed", SOON, || {
        feed(&sam).iter().any(|(i, _)| *i == shared)
    });
    sam.stop();
    // Every document alex holds, read from alex's store while the daemon is down.
    alex.stop();
    let docs: Vec<failup_wire::DocId> = {
        let store = failup_store::Store::open(&alex.home.store(), Duration::from_secs(5))
            .expect("alex's store");
        store
            .inventory()
            .expect("inventory")
            .into_iter()
            .map(|(d, _)| d)
            .collect()
    };
    assert!(docs.len() >= 4, "journal, circle and both sides: {docs:?}");
    alex.restart();
    let (addr, alex_id) = failup_tests::dial_target(&alex);
    let key = sam.home.path().join("device.key");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (unavailable, received) = rt.block_on(async {
        let (ep, identity) = failup_tests::client_endpoint(&key);
        let conn = failup_net::connect(&ep, &identity, alex_id, addr, failup_wire::ALPN_SYNC)
            .await
            .expect("sam's device is let in");
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        // Asks for every document by id, the private journal's among them, in both ways the
        // protocol allows.
        for doc in &docs {
            let doc = *doc;
            let first = {
                use automerge::sync::SyncDoc;
                automerge::AutoCommit::new()
                    .sync()
                    .generate_sync_message(&mut automerge::sync::State::new())
                    .map(|m| m.encode())
                    .unwrap_or_default()
            };
            for msg in [
                failup_wire::Message::Request {
                    doc,
                    data: first.clone(),
                },
                failup_wire::Message::Sync { doc, data: first },
            ] {
                send.write_all(&msg.to_frame()).await.expect("write");
            }
        }
        let mut reader = failup_wire::FrameReader::default();
        let mut unavailable = std::collections::BTreeSet::new();
        let mut received: Vec<(u128, Vec<u8>)> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(n)) = recv.read(&mut buf).await {
                reader.push(&buf[..n]);
                while let Ok(Some(msg)) = reader.next_message() {
                    match msg {
                        failup_wire::Message::DocUnavailable { doc } => {
                            unavailable.insert(doc.as_u128());
                        }
                        failup_wire::Message::Sync { doc, data }
                        | failup_wire::Message::Request { doc, data }
                        | failup_wire::Message::Doc { doc, data } => {
                            received.push((doc.as_u128(), data));
                        }
                        _ => {}
                    }
                }
            }
        })
        .await;
        (unavailable, received)
    });
    // Only the two sides of the space may answer; every other document is "unavailable".
    let answered: std::collections::BTreeSet<u128> = received.iter().map(|(d, _)| *d).collect();
    assert!(answered.len() <= 2, "answered for {answered:?}");
    assert_eq!(unavailable.len() + 2, docs.len(), "{unavailable:?}");
    for (_, data) in &received {
        assert!(
            !data
                .windows("PRIVATE-MARKER-8812".len())
                .any(|w| w == b"PRIVATE-MARKER-8812"),
            "a private entry left alex's device"
        );
    }
    let log = std::fs::read_to_string(alex.log_path()).unwrap_or_default();
    assert!(
        log.contains("outside what it may see"),
        "the refused requests are logged"
    );
}

/// What a modified client writes: an OSC that sets the window title (ended by BEL), a colour
/// (CSI), the one-character C1 CSI clearing the screen, and a right-to-left override.
const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\u{1b}[31m\u{9b}2J\u{202e}";
/// [`HOSTILE`] as the commands show it (`failup_journal::text::shown`).
const SHOWN: &str = "\\u{1b}]0;pwned\\u{7}\\u{1b}[31m\\u{9b}2J\\u{202e}";
/// [`HOSTILE`] inside a JSON string as `--json` writes it.
const IN_JSON: &str = "\\u001b]0;pwned\\u0007\\u001b[31m\\u009b2J\\u202e";

/// The raw controls of [`HOSTILE`] found in `bytes`: ESC, BEL, U+009B and U+202E in UTF-8.
fn raw_controls(bytes: &[u8]) -> Vec<&'static str> {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    [
        ("ESC", &b"\x1b"[..]),
        ("BEL", &b"\x07"[..]),
        ("U+009B", &b"\xc2\x9b"[..]),
        ("U+202E", &b"\xe2\x80\xae"[..]),
    ]
    .into_iter()
    .filter(|(_, n)| has(n))
    .map(|(name, _)| name)
    .collect()
}

/// `bytes` without the colours the CLI paints (`ESC [ digits and semicolons m`), for output
/// asked for with `--color always`, where those are the only escape sequences allowed.
fn without_colours(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\x1b[") {
            let len = bytes[i + 2..]
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b';')
                .count();
            if bytes.get(i + 2 + len) == Some(&b'm') {
                i += 3 + len;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Insists `failup ARGS` failed with one line on stderr that names the control character and
/// does not repeat it.
fn refused(d: &Daemon, args: &[&str], says: &str) {
    let out = d.run(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(says), "{args:?}: {err}");
    assert!(raw_controls(&out.stderr).is_empty(), "{err:?}");
}

#[test]
fn a_partners_escape_sequences_reach_the_terminal_only_escaped() {
    let alex = Daemon::start("alex-laptop");
    let mut sam = Daemon::start("sam-phone");
    alex.partner(&sam, "sam", "alex");

    // Typed here, such text is refused, whatever the field, with one line naming it.
    refused(
        &alex,
        &["log", "\u{1b}[31mred"],
        "text contains a control character (U+001B) at position 1; failup keeps text plain",
    );
    refused(
        &alex,
        &["log", "fine", "--lesson", "ok \u{202e}"],
        "lesson contains a control character (U+202E) at position 4",
    );
    refused(&alex, &["log", "fine", "--tag", "a\u{9b}"], "tag contains");
    assert!(alex.texts().is_empty(), "nothing was logged");

    let mine = alex
        .ok(&[
            "log",
            "missed the train",
            "--lesson",
            "leave earlier",
            "--share",
            "sam",
        ])
        .trim()
        .to_owned();
    let sams = sam
        .ok(&["log", "lost the keys", "--share", "alex"])
        .trim()
        .to_owned();
    wait_until("alex's entry in sam's feed", SOON, || {
        feed(&sam).iter().any(|(i, _)| *i == mine)
    });
    wait_until("sam's entry in alex's feed", SOON, || {
        feed(&alex).iter().any(|(i, _)| *i == sams)
    });
    // Sam's own client refuses such a comment too.
    refused(
        &sam,
        &["cheer", &mine, "nice \u{1b}]0;pwned\u{7}"],
        "the comment contains a control character (U+001B) at position 6",
    );

    // So sam's side is written the way a modified client would: sam's daemon stopped, sam's
    // store opened with sam's device key, so what is written is sealed as sam's own writing
    // and alex's daemon accepts it like any change of sam's.
    sam.stop();
    let hostile_id = {
        let mut store = failup_store::Store::open(&sam.home.store(), Duration::from_secs(5))
            .expect("sam's store");
        let signer = failup_net::Identity::load_or_create(&sam.home.path().join("device.key"))
            .expect("sam's key")
            .signer()
            .expect("signer");
        store
            .set_signer(std::sync::Arc::new(signer))
            .expect("signer");
        // Sam's side is the space that holds the entry sam shared.
        let sams_id: failup_journal::EntryId = sams.parse().expect("id");
        let (side, mut am) = store
            .inventory()
            .expect("inventory")
            .into_iter()
            .filter_map(|(doc, _)| Some((doc, store.document(doc).ok().flatten()?)))
            .find(|(_, am)| {
                failup_journal::space::Space::from_doc(am.clone())
                    .ok()
                    .and_then(|s| s.entry(sams_id).ok().flatten())
                    .is_some()
            })
            .expect("sam's side of the space");
        let before = am.get_heads();
        let mut space = failup_journal::space::Space::from_doc(am).expect("space");
        // A new shared entry, with no private entry behind it: sam's daemon brings shared
        // copies back in line with the private entries they copy, and would undo an edit of
        // the one shared through the CLI.
        let now = jiff::Timestamp::now();
        let ms = u64::try_from(now.as_millisecond()).expect("after 1970");
        let id = failup_journal::EntryId::from_parts(ms, rand::random());
        let text = |s: &str| Some(format!("{s} {HOSTILE}"));
        space
            .put(&failup_journal::space::SharedEntry {
                id,
                shared_at: now,
                updated: now,
                day: jiff::civil::Date::constant(2026, 11, 23),
                fields: failup_journal::space::parse_fields("text,area,tags,lesson,next")
                    .expect("fields"),
                text: text("story"),
                scale: None,
                area: text("area"),
                tags: Some([format!("tag{HOSTILE}")].into_iter().collect()),
                feeling: None,
                lesson: text("lesson"),
                muscle: None,
                use_it: None,
                next: text("next"),
                iterations: None,
                closed_at: None,
            })
            .expect("put");
        // Comments are refused by `Space::comment` as by sam's CLI: written clean, then their
        // text replaced in the document itself.
        for (n, under) in [(1u128, sams_id), (2, mine.parse().expect("id"))] {
            space
                .comment(&failup_journal::space::Comment {
                    id: failup_journal::IterationId::from_parts(ms, n),
                    entry: under,
                    at: now,
                    text: "placeholder".into(),
                })
                .expect("comment");
        }
        let mut am = space.into_doc();
        {
            use automerge::ReadDoc;
            use automerge::transaction::Transactable;
            let (_, comments) = am
                .get(automerge::ROOT, "comments")
                .expect("read")
                .expect("comments");
            for n in [1u128, 2] {
                let key = failup_journal::IterationId::from_parts(ms, n).to_string();
                let (_, obj) = am
                    .get(&comments, key.as_str())
                    .expect("read")
                    .expect("comment");
                am.put(&obj, "text", format!("comment {HOSTILE}"))
                    .expect("put");
            }
            am.commit();
        }
        store
            .write_document(side, &mut am, &before)
            .expect("write sam's side");
        id.to_string()
    };
    sam.restart();
    // Only a nudge to dial now rather than after a backoff; the wait below decides.
    let _ = sam.run(&["sync", "--timeout", "20s"]);
    wait_until(
        "the hostile entry and comments on alex's device",
        SOON,
        || {
            let f = feed(&alex);
            f.iter().any(|(i, _)| *i == hostile_id)
                && f.iter().any(|(i, item)| {
                    *i == sams && comments(item).iter().any(|c| c.contains("pwned"))
                })
                && json(&alex, &["show", &mine])["comments"]
                    .to_string()
                    .contains("pwned")
        },
    );

    // Every command that prints them, in a pipe, with colours forced, and as JSON.
    let commands: [&[&str]; 4] = [&["feed"], &["show", &mine], &["list"], &["today"]];
    for args in commands {
        let plain = alex.run(args);
        assert!(plain.status.success(), "{args:?}");
        assert_eq!(raw_controls(&plain.stdout), Vec::<&str>::new(), "{args:?}");

        let coloured = alex.run(&[&["--color", "always"][..], args].concat());
        assert!(coloured.status.success(), "{args:?}");
        let unpainted = without_colours(&coloured.stdout);
        assert_eq!(raw_controls(&unpainted), Vec::<&str>::new(), "{args:?}");

        let as_json = alex.run(&[&["--json"][..], args].concat());
        assert!(as_json.status.success(), "{args:?}");
        assert_eq!(
            raw_controls(&as_json.stdout),
            Vec::<&str>::new(),
            "{args:?}"
        );
        serde_json::from_slice::<serde_json::Value>(&as_json.stdout).expect("valid JSON");

        // Where the partner's text is shown at all, it is shown escaped.
        let text = String::from_utf8_lossy(&plain.stdout);
        let coloured = String::from_utf8_lossy(&unpainted);
        let json_text = String::from_utf8_lossy(&as_json.stdout);
        match args[0] {
            "feed" => {
                for field in ["story", "lesson", "area", "next", "comment"] {
                    let want = format!("{field} {SHOWN}");
                    assert!(text.contains(&want), "{want} not in {text}");
                    assert!(coloured.contains(&want), "{want} not in {coloured}");
                    let want = format!("{field} {IN_JSON}");
                    assert!(json_text.contains(&want), "{want} not in {json_text}");
                }
                assert!(text.contains(&format!("tag{SHOWN}")), "{text}");
            }
            "show" => {
                assert!(text.contains(&format!("comment {SHOWN}")), "{text}");
                assert!(coloured.contains(&format!("comment {SHOWN}")), "{coloured}");
                assert!(
                    json_text.contains(&format!("comment {IN_JSON}")),
                    "{json_text}"
                );
            }
            // The partner's entries and comments are never in alex's own journal, which is all
            // `list` and `today` read: they print alex's entry, as it is.
            _ => {
                assert!(text.contains("missed the train"), "{args:?}: {text}");
                assert!(!text.contains("pwned") && !json_text.contains("pwned"));
            }
        }
    }
}

#[test]
fn share_shows_what_the_partner_will_see_and_asks_first() {
    let a = Daemon::start("me");
    let p = Daemon::start("friend");
    a.partner(&p, "friend", "me");
    let id = a
        .ok(&[
            "log",
            "Cried in the car park",
            "--lesson",
            "rest is work too",
        ])
        .trim()
        .to_owned();
    // --preview: exactly the fields that would go, and nothing shared.
    let seen = a.ok(&[
        "share",
        &id,
        "--with",
        "friend",
        "--only",
        "lesson",
        "--preview",
    ]);
    assert!(seen.contains("friend will see:") && seen.contains("lesson: rest is work too"));
    assert!(!seen.contains("Cried in the car park"), "{seen}");
    let everything = a.ok(&["share", &id, "--with", "friend", "--preview"]);
    assert!(
        everything.contains("what happened: Cried in the car park"),
        "{everything}"
    );
    let shared = || json(&a, &["show", &id]).get("shared_with").is_some();
    assert!(!shared(), "a preview shares nothing");
    // On a terminal, with every field: shown, then asked.
    let said = a.on_terminal(&["share", &id, "--with", "friend"], "n\n");
    assert!(said.contains("what happened: Cried in the car park") && said.contains("not shared"));
    assert!(!shared());
    let said = a.on_terminal(&["share", &id, "--with", "friend"], "y\n");
    assert!(said.contains("shared with friend"), "{said}");
    assert!(shared());
    wait_until("the friend to see it", SOON, || feed_has(&p, &id, |_| true));
}

#[test]
fn cheers_on_my_shared_entries_show_in_today_and_the_feed_until_read() {
    let a = Daemon::start("me");
    let p = Daemon::start("friend");
    a.partner(&p, "friend", "me");
    let id = a
        .ok(&["log", "Fumbled the toast at the wedding"])
        .trim()
        .to_owned();
    a.ok(&["share", &id, "--with", "friend", "--yes"]);
    wait_until("the friend to see it", SOON, || feed_has(&p, &id, |_| true));
    p.ok(&["log", "placeholder so today has something"]);
    wait_until("the friend to be told nothing new once read", SOON, || {
        !p.ok(&["today"]).contains("new entr")
    });
    p.ok(&["cheer", &id, "you still made everyone laugh"]);
    p.ok(&["cheer", &id, "proud of you"]);
    wait_until("me to hear two new cheers", SOON, || {
        a.ok(&["today"])
            .contains("from your partners: 2 new cheers (failup feed)")
    });
    let today: serde_json::Value = json(&a, &["today"]);
    assert_eq!(today["unread"]["comments"], 2, "{today}");
    let feed = a.ok(&["feed"]);
    assert!(feed.contains("yours, shared with friend"), "{feed}");
    assert!(
        feed.contains("* friend") && feed.contains("proud of you"),
        "{feed}"
    );
    // Read: no longer new.
    assert!(!a.ok(&["today"]).contains("new cheer"));
    assert!(!a.ok(&["feed"]).contains("* friend"));
}

/// Revoked by their partner, a person is told on their own side: the partnership shows as
/// closed, what the partner shared stays readable, and writing there fails clearly instead of
/// "comment added".
#[test]
fn a_revoked_partner_is_told_the_space_is_closed_and_cheering_there_fails() {
    let alex = Daemon::start("alex");
    let sam = Daemon::start("sam");
    alex.partner(&sam, "sam", "alex");
    let theirs = alex
        .ok(&["log", "Missed the deadline", "--share", "sam"])
        .trim()
        .to_owned();
    let mine = sam.ok(&["log", "Burnt the rice"]).trim().to_owned();
    wait_until("sam to see alex's entry", SOON, || {
        feed_has(&sam, &theirs, |_| true)
    });
    sam.ok(&["cheer", &theirs, "before the end"]);
    assert_eq!(
        json(&sam, &["partner", "list"])[0]["closed"],
        serde_json::Value::Null
    );

    alex.ok(&["partner", "revoke", "sam"]);
    wait_until("sam's device to be told the space is closed", SOON, || {
        json(&sam, &["partner", "list"])[0]["closed"].is_string()
    });
    let listed = sam.ok(&["partner", "list"]);
    assert!(listed.contains("alex (closed the space on "), "{listed}");
    // What alex shared stays readable, with a line that says why nothing new comes.
    let feed = sam.ok(&["feed"]);
    assert!(feed.contains("Missed the deadline"), "{feed}");
    assert!(
        feed.contains("alex closed the space on ") && feed.contains("nothing more"),
        "{feed}"
    );
    for args in [
        &["cheer", &theirs, "are you there?"][..],
        &["share", &mine, "--with", "alex", "--yes"],
    ] {
        let out = sam.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains("alex closed the space you shared on ")
                && err.contains("reaches them any more"),
            "{args:?}: {err}"
        );
    }
    // Remembered across a restart of sam's daemon, and the same without a daemon.
    let mut sam = sam;
    sam.stop();
    let out = sam.run(&["cheer", &theirs, "still there?"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("alex closed the space"));
}

/// Sends `meet` about `device` at `victim`, as the device whose key is at `key`, to `target`,
/// over a modified client; holds the connection a moment so the message is read.
fn send_meet(
    target: &Daemon,
    key: &Path,
    device: failup_wire::DeviceId,
    victim: std::net::SocketAddr,
) {
    send_meets(target, key, &[(device, victim)], Duration::ZERO);
}

/// [`send_meet`] for each of `meets` in turn on one connection, `gap` apart.
fn send_meets(
    target: &Daemon,
    key: &Path,
    meets: &[(failup_wire::DeviceId, std::net::SocketAddr)],
    gap: Duration,
) {
    let (addr, target_id) = failup_tests::dial_target(target);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (ep, identity) = failup_tests::client_endpoint(key);
        let conn = failup_net::connect(&ep, &identity, target_id, addr, failup_wire::ALPN_SYNC)
            .await
            .expect("let in");
        let (mut send, _recv) = conn.open_bi().await.expect("stream");
        for (i, (device, victim)) in meets.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            let meet = failup_wire::Message::Meet {
                device: *device,
                addrs: vec![*victim],
            };
            send.write_all(&meet.to_frame()).await.expect("write");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        conn.close(0u32.into(), b"done");
    });
}

/// Whether anything arrives at `victim` within `wait`.
fn hears_anything(victim: &std::net::UdpSocket, wait: Duration) -> bool {
    victim.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 2048];
    victim.recv_from(&mut buf).is_ok()
}

/// An introduction (`meet`) makes a device dial where it is told at once. From a partner's
/// device, a modified client, an introduction of one of this person's own devices counts for
/// nothing: no packet goes to the address it names. The same message from one of the
/// person's own devices is obeyed, which shows the check is what stops the partner's.
#[test]
fn a_partner_cannot_make_a_device_dial_where_it_says() {
    let laptop = Daemon::start("alex-laptop");
    let mut phone = Daemon::start("alex-phone");
    let mut tablet = Daemon::start("alex-tablet");
    let mut sam = Daemon::start("sam-phone");
    laptop.pair(&phone);
    laptop.pair(&tablet);
    laptop.partner(&sam, "sam", "alex");
    let tablet_id: failup_wire::DeviceId = tablet.status()["device"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("tablet id");
    wait_until("the laptop to know sam's device", SOON, || {
        partner_devices(&laptop, "sam") == 1
    });
    for d in [&mut phone, &mut tablet, &mut sam] {
        d.stop();
    }
    let victim = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let at = victim.local_addr().expect("addr");

    // At an address on the laptop's network, and at one across the internet, which only the
    // rule about whom a partner may introduce refuses.
    let internet: std::net::SocketAddr = "203.0.113.77:7676".parse().expect("addr");
    send_meets(
        &laptop,
        &sam.home.path().join("device.key"),
        &[(tablet_id, at), (tablet_id, internet)],
        Duration::from_millis(1500),
    );
    assert!(
        !hears_anything(&victim, Duration::from_secs(3)),
        "a partner's introduction made the laptop dial"
    );
    let log = std::fs::read_to_string(laptop.log_path()).unwrap_or_default();
    assert!(
        !log.contains("meeting at the introduced addresses"),
        "{log}"
    );

    send_meet(
        &laptop,
        &phone.home.path().join("device.key"),
        tablet_id,
        at,
    );
    assert!(
        hears_anything(&victim, Duration::from_secs(10)),
        "an own device's introduction is obeyed"
    );
}

/// How many introductions `d` obeyed, as its log says.
fn meetings(d: &Daemon) -> usize {
    std::fs::read_to_string(d.log_path())
        .unwrap_or_default()
        .matches("meeting at the introduced addresses")
        .count()
}

/// A partner's device may introduce another device of the same partner (as the partner's
/// device set with `introduce-partners` does), but a modified client cannot use that to point
/// this device at another partner's device or at an address on its own network, nor make it
/// dial addresses of its choosing more than six times a minute.
#[test]
fn a_partner_introduces_only_its_own_devices_and_no_more_than_six_a_minute() {
    let laptop = Daemon::start("alex-laptop");
    let mut sam = Daemon::start("sam-phone");
    let mut sam_tablet = Daemon::start("sam-tablet");
    let mut kim = Daemon::start("kim-phone");
    sam.pair(&sam_tablet);
    laptop.partner(&sam, "sam", "alex");
    laptop.partner(&kim, "kim", "alex");
    wait_until("the laptop to know both of sam's devices", SOON, || {
        partner_devices(&laptop, "sam") == 2
    });
    // Else kim's device is a stranger to the laptop, and refused for that, not for being
    // another partner's.
    wait_until("the laptop to know kim's device", SOON, || {
        partner_devices(&laptop, "kim") == 1
    });
    let (kim_id, tablet_id) = (kim.device(), sam_tablet.device());
    let id = |d: &str| d.parse::<failup_wire::DeviceId>().expect("device id");
    for d in [&mut sam, &mut sam_tablet, &mut kim] {
        d.stop();
    }
    let key = sam.home.path().join("device.key");
    wait_until("the laptop to see the others gone", SOON, || {
        laptop.status()["connected"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });

    // About kim's device, on sam's word, even across the internet: not obeyed. About sam's
    // own tablet, at an address on the laptop's own network (here its loopback): not obeyed
    // either.
    let victim = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let at = victim.local_addr().expect("addr");
    let internet: std::net::SocketAddr = "203.0.113.66:7676".parse().expect("addr");
    send_meets(
        &laptop,
        &key,
        &[(id(&kim_id), internet), (id(&tablet_id), at)],
        Duration::from_millis(100),
    );
    assert!(
        !hears_anything(&victim, Duration::from_secs(3)),
        "sam made the laptop dial on its own network"
    );
    assert_eq!(meetings(&laptop), 0);

    // About sam's own tablet across the internet (documentation addresses): obeyed, eight
    // times asked, six counted. Two seconds apart: a second introduction of one device within
    // a second of the last never counts, judged when the laptop reads it, and it would take
    // three reads late by a second each to leave fewer than six of the eight counted.
    let meets: Vec<_> = (1..=8u8)
        .map(|i| {
            (
                id(&tablet_id),
                std::net::SocketAddr::from(([203, 0, 113, i], 7676)),
            )
        })
        .collect();
    let sam_short: String = sam.device().chars().take(7).collect();
    let ends = || {
        std::fs::read_to_string(laptop.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("disconnected") && l.contains(&sam_short))
            .count()
    };
    let ended = ends();
    send_meets(&laptop, &key, &meets, Duration::from_secs(2));
    // A connection reads one message at a time, so once its end is logged every introduction
    // on it was judged.
    wait_until("the introducing connection to end", SOON, || ends() > ended);
    assert_eq!(
        meetings(&laptop),
        6,
        "a partner's introductions past the limit were obeyed"
    );
    let log = std::fs::read_to_string(laptop.log_path()).unwrap_or_default();
    assert!(log.contains("203.0.113.1:7676"), "{log}");
    assert!(!log.contains("203.0.113.66"), "{log}");
}
