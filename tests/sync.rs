//! Device sync through real daemons: the real binary in separate temporary homes, QUIC on
//! loopback, mDNS off except in the discovery test. Every wait has a deadline; every daemon is stopped when its test ends.

use std::time::Duration;

use failup_tests::{Daemon, wait_until};

/// Deadline for a condition that normally holds within a second or two: generous, so a loaded
/// CI machine fails only on a real stall.
const SOON: Duration = Duration::from_secs(60);

fn has(d: &Daemon, text: &str) -> bool {
    d.texts().iter().any(|t| t == text)
}

#[test]
fn paired_devices_sync_logs_edits_and_deletes_live() {
    let a = Daemon::start("laptop");
    let b = Daemon::start("phone");
    a.ok(&["log", "logged before pairing"]);
    a.pair(&b);
    wait_until("the old entry on B", SOON, || {
        has(&b, "logged before pairing")
    });

    let id = b.ok(&["log", "logged on the phone"]).trim().to_owned();
    wait_until("B's entry on A", SOON, || has(&a, "logged on the phone"));

    a.ok(&[
        "edit",
        &id,
        "--text",
        "edited on the laptop",
        "--tag",
        "synced",
    ]);
    wait_until("A's edit on B", SOON, || has(&b, "edited on the laptop"));
    let shown: serde_json::Value =
        serde_json::from_str(&b.ok(&["--json", "show", &id])).expect("json");
    assert_eq!(shown["tags"], serde_json::json!(["synced"]));

    a.ok(&["delete", &id, "--yes"]);
    wait_until("the delete on B", SOON, || !has(&b, "edited on the laptop"));

    let synced = a.ok(&["sync", "--timeout", "10s"]);
    assert!(synced.contains("in sync"), "{synced}");
    let peers: serde_json::Value = serde_json::from_str(&a.ok(&["--json", "peers"])).expect("json");
    let phone = peers
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "phone"))
        .expect("phone listed");
    assert_eq!(phone["connected"], true);
    assert_eq!(phone["path"], "local", "{phone}");
    assert!(
        phone["via"]
            .as_str()
            .is_some_and(|v| v.starts_with("127.0.0.1:")),
        "{phone}"
    );
    assert_eq!(phone["role"], "device");
    for d in [&a, &b] {
        let check: serde_json::Value =
            serde_json::from_str(&d.ok(&["--json", "check"])).expect("json");
        assert_eq!(check["mismatches"], 0);
    }
}

#[test]
fn an_offline_device_catches_up_and_concurrent_edits_merge() {
    let a = Daemon::start("laptop");
    let mut b = Daemon::start("phone");
    a.pair(&b);
    let id = a.ok(&["log", "shared entry"]).trim().to_owned();
    wait_until("the entry on B", SOON, || has(&b, "shared entry"));

    b.stop();
    // Without its daemon B still lists its circle, from the store.
    let offline = b.ok(&["--json", "peers"]);
    assert!(
        offline.contains("laptop") && offline.contains("\"connected\": false"),
        "{offline}"
    );
    // B edits offline, with no daemon: the command opens the store itself.
    b.ok(&["edit", &id, "--tag", "from-phone"]);
    b.ok(&["iterate", &id, "tried on the phone"]);
    a.ok(&["edit", &id, "--tag", "from-laptop"]);
    a.ok(&["iterate", &id, "tried on the laptop"]);
    for i in 0..5 {
        a.ok(&["log", &format!("while B was away {i}")]);
    }
    b.restart();
    wait_until("B to catch up", SOON, || has(&b, "while B was away 4"));
    b.ok(&["sync", "--timeout", "10s"]);
    let read = |d: &Daemon| -> serde_json::Value {
        serde_json::from_str(&d.ok(&["--json", "show", &id])).expect("json")
    };
    wait_until("the merged entry on both", SOON, || read(&a) == read(&b));
    let merged = read(&a);
    assert_eq!(
        merged["tags"],
        serde_json::json!(["from-laptop", "from-phone"])
    );
    assert_eq!(merged["iterations"].as_array().map(Vec::len), Some(2));
    assert_eq!(a.texts(), b.texts());
}

#[test]
fn a_killed_daemon_loses_nothing_and_resumes() {
    let a = Daemon::start("laptop");
    let mut b = Daemon::start("phone");
    a.pair(&b);
    for i in 0..30 {
        a.ok(&["log", &format!("burst {i}")]);
        if i == 10 {
            b.kill();
        }
    }
    b.restart();
    wait_until("B to catch up after SIGKILL", SOON, || has(&b, "burst 29"));
    assert_eq!(a.texts(), b.texts());
    let check: serde_json::Value = serde_json::from_str(&b.ok(&["--json", "check"])).expect("json");
    assert_eq!(check["mismatches"], 0);
}

#[test]
fn a_third_device_is_introduced_and_revocation_reaches_everyone() {
    let mut a = Daemon::start("laptop");
    let b = Daemon::start("phone");
    let c = Daemon::start("tablet");
    a.pair(&b);
    a.pair(&c);
    wait_until("B and C to know each other", SOON, || {
        let peers = b.ok(&["--json", "peers"]);
        peers.contains("tablet")
            && peers.contains("\"connected\": true")
            && serde_json::from_str::<serde_json::Value>(&peers)
                .ok()
                .and_then(|p| p.as_array().cloned())
                .is_some_and(|p| {
                    p.iter()
                        .any(|x| x["name"] == "tablet" && x["connected"] == true)
                })
    });
    // With A gone, B and C still sync directly.
    a.stop();
    b.ok(&["log", "from the phone, A offline"]);
    wait_until("B's entry on C without A", SOON, || {
        has(&c, "from the phone, A offline")
    });

    // Revoke C from B; A learns it when it comes back, and C is refused everywhere.
    let c_id = c.device();
    b.ok(&["peers", "remove", &c_id]);
    a.restart();
    wait_until("A to learn the revocation", SOON, || {
        serde_json::from_str::<serde_json::Value>(&a.ok(&["--json", "peers"]))
            .ok()
            .and_then(|p| p.as_array().cloned())
            .is_some_and(|p| {
                p.iter()
                    .any(|x| x["name"] == "tablet" && x["revoked"] == true)
            })
    });
    c.ok(&["log", "written by the revoked tablet"]);
    let out = c.run(&["sync", "--timeout", "3s"]);
    assert!(!out.status.success(), "a revoked device still syncs");
    b.ok(&["log", "after the revocation"]);
    wait_until("A and B in sync", SOON, || has(&a, "after the revocation"));
    assert!(!has(&a, "written by the revoked tablet"));
    assert!(!has(&b, "written by the revoked tablet"));
    assert!(!has(&c, "after the revocation"));
}

#[test]
fn bad_invites_are_refused_with_a_clear_error() {
    let a = Daemon::start("laptop");
    let b = Daemon::start("phone");
    let c = Daemon::start("stranger");
    let fail = |d: &Daemon, args: &[&str]| -> String {
        let out = d.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        err
    };
    let err = fail(&b, &["pair", "join", "FAILUP-NOTACODE"]);
    assert!(err.contains("not a failup invite code"), "{err}");

    let code = a.ok(&["pair", "invite"]).trim().to_owned();
    // Short enough to copy by hand, and copied carelessly it still works: wrapped over two
    // lines, partly in lower case.
    assert!(code.len() <= 100, "{} characters: {code}", code.len());
    let careless = format!("{}\n  {}", &code[..30], code[30..].to_lowercase());
    b.ok(&["pair", "join", &careless]);
    let err = fail(&c, &["pair", "join", &code]);
    assert!(
        err.contains("pairing refused") && err.contains("already used"),
        "{err}"
    );
    // While another invite is open the handshake passes, and the used code is named as such.
    let _open = a.ok(&["pair", "invite"]);
    let err = fail(&c, &["pair", "join", &code]);
    assert!(err.contains("this invite was already used"), "{err}");

    // A code whose secret was altered: after the version byte and the 12 bytes of the device id
    // come the secret's 10 bytes, base32 characters 21 to 36 of the body.
    let fresh = a.ok(&["pair", "invite"]).trim().to_owned();
    let mut chars: Vec<char> = fresh.chars().collect();
    let at = "FAILUP-".len() + 25;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let err = fail(&c, &["pair", "join", &tampered]);
    assert!(err.contains("wrong invite code"), "{err}");

    // Out of range, refused; in range, said as a person says it.
    let out = a.run(&["pair", "invite", "--ttl", "30d"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("at most 7 days"), "{err}");
    let out = a.run(&["pair", "invite", "--ttl", "1s"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("valid for 1 second, once"));
    let short = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::thread::sleep(Duration::from_millis(1100));
    let err = fail(&c, &["pair", "join", &short]);
    assert!(err.contains("expired"), "{err}");
    assert!(!a.ok(&["--json", "peers"]).contains("stranger"));
}

/// An invite whose device is gone: the join says it could not reach it, in one line, with exit
/// code 3 (a device could not be reached), told apart from a refusal (1).
#[test]
fn a_join_that_cannot_reach_the_inviter_exits_3() {
    let mut a = Daemon::start("laptop");
    let b = Daemon::start("phone");
    let code = a.ok(&["pair", "invite"]).trim().to_owned();
    a.stop();
    let out = b.run(&["pair", "join", &code]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach the inviting device"), "{err}");
    assert!(!b.ok(&["--json", "peers"]).contains("laptop"));
}

/// A device outside the circle, with its own key, is refused at the handshake; a paired device
/// that sends garbage loses only its own connection.
#[test]
fn strangers_and_garbage_are_refused_without_harm() {
    let a = Daemon::start("laptop");
    let b = Daemon::start("phone");
    let mut hostile = Daemon::start("hostile");
    a.pair(&b);
    a.pair(&hostile);
    wait_until("the hostile device paired", SOON, || {
        a.ok(&["peers"]).contains("hostile")
    });
    hostile.stop();
    let (addr, a_id) = failup_tests::dial_target(&a);
    let key = hostile.home.path().join("device.key");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let any = "127.0.0.1:0".parse().expect("addr");
        #[derive(Debug)]
        struct Nobody;
        impl failup_net::Trust for Nobody {
            fn admits(&self, _: failup_wire::DeviceId) -> bool {
                false
            }
        }
        let trust = std::sync::Arc::new(Nobody);

        // A stranger: a fresh key nobody paired.
        let stranger = failup_net::Identity::ephemeral().expect("identity");
        let ep = failup_net::endpoint(&stranger, trust.clone(), any, &[]).expect("endpoint");
        let refused = async {
            let conn =
                failup_net::connect(&ep, &stranger, a_id, addr, failup_wire::ALPN_SYNC).await?;
            let (mut send, mut recv) = conn.open_bi().await?;
            send.write_all(
                &failup_wire::Message::DocUnavailable {
                    doc: failup_wire::DocId([0; 16]),
                }
                .to_frame(),
            )
            .await?;
            let mut buf = [0u8; 16];
            recv.read(&mut buf).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        assert!(
            tokio::time::timeout(Duration::from_secs(10), refused)
                .await
                .map(|r| r.is_err())
                .unwrap_or(true),
            "a stranger got a working connection"
        );

        // The paired but hostile device: version 1 of the protocol (which carried no seals) and
        // a version nobody speaks, garbage, then a frame over the size limit.
        let (ep, identity) = failup_tests::client_endpoint(&key);
        for alpn in [b"failup/1", b"failup/9"] {
            let future = tokio::time::timeout(
                Duration::from_secs(10),
                failup_net::connect(&ep, &identity, a_id, addr, alpn),
            )
            .await;
            assert!(
                !matches!(future, Ok(Ok(_))),
                "a connection with protocol {alpn:?} was accepted"
            );
        }
        for payload in [
            b"\x00\x00\x00\x05garbage!".to_vec(),
            (failup_wire::MAX_FRAME_BYTES + 1).to_be_bytes().to_vec(),
        ] {
            let conn = failup_net::connect(&ep, &identity, a_id, addr, failup_wire::ALPN_SYNC)
                .await
                .expect("a paired device connects");
            let (mut send, mut recv) = conn.open_bi().await.expect("stream");
            send.write_all(&payload).await.expect("write");
            let closed = tokio::time::timeout(Duration::from_secs(10), async {
                let mut buf = vec![0u8; 4096];
                while let Ok(Some(_)) = recv.read(&mut buf).await {}
                conn.closed().await
            })
            .await;
            assert!(
                closed.is_ok(),
                "the daemon kept a garbage-sending connection open"
            );
        }
    });
    // The daemon and its other connection carry on.
    a.ok(&["log", "still fine"]);
    wait_until("B still syncing", SOON, || has(&b, "still fine"));
    let check: serde_json::Value = serde_json::from_str(&a.ok(&["--json", "check"])).expect("json");
    assert_eq!(check["mismatches"], 0);
}

#[test]
fn devices_that_moved_find_each_other_on_the_local_network() {
    let mut a = Daemon::start_with_mdns("laptop");
    let mut b = Daemon::start_with_mdns("phone");
    a.pair(&b);
    a.ok(&["log", "before the move"]);
    wait_until("the first entry on B", SOON, || has(&b, "before the move"));
    // Both come back on new ports, so every address either knows of the other is stale: only
    // the mDNS announcements can bring them together again.
    a.stop();
    b.stop();
    a.restart_elsewhere();
    b.restart_elsewhere();
    a.ok(&["log", "after the move"]);
    wait_until("the entry logged after the move on B", SOON, || {
        has(&b, "after the move")
    });
    let peers: serde_json::Value = serde_json::from_str(&b.ok(&["--json", "peers"])).expect("json");
    let laptop = peers
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "laptop"))
        .expect("laptop listed");
    assert_eq!(laptop["connected"], true);
}

#[test]
fn peer_commands_work_without_a_daemon_and_take_effect_when_it_starts() {
    let mut a = Daemon::start("laptop");
    let b = Daemon::start("phone");
    a.pair(&b);
    a.ok(&["log", "before the revocation"]);
    wait_until("the entry on B", SOON, || has(&b, "before the revocation"));
    a.stop();
    let b_id = b.device();

    let out = a.run(&["peers", "addr", &b_id, "not an address"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not host:port"));
    a.ok(&["peers", "addr", &b_id, "127.0.0.1:9"]);
    // A host name is looked up, and the address it names is kept.
    a.ok(&["peers", "addr", "phone", "localhost:10"]);
    assert!(a.ok(&["peers"]).contains("127.0.0.1:10") || a.ok(&["peers"]).contains("[::1]:10"));
    a.ok(&["peers", "remove", &b_id[..10]]);
    let out = a.run(&["peers", "remove", "ZZZZ"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device of this circle matches"));

    let peers: serde_json::Value = serde_json::from_str(&a.ok(&["--json", "peers"])).expect("json");
    let phone = peers
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "phone"))
        .cloned()
        .expect("phone listed");
    assert_eq!(phone["revoked"], true);
    assert!(
        phone["addrs"].to_string().contains("127.0.0.1:9"),
        "{phone}"
    );

    // Back up, A refuses the revoked phone.
    a.restart();
    a.ok(&["log", "after the revocation"]);
    let out = b.run(&["sync", "--timeout", "3s"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a revoked device still syncs, or the wrong exit code"
    );
    assert!(!has(&b, "after the revocation"));
}

#[test]
fn a_second_daemon_on_one_home_is_refused_naming_the_first() {
    let a = Daemon::start("laptop");
    let pid = a.pid().expect("running");
    // Spawned with a deadline: a second daemon that did start would otherwise run forever.
    let mut second = a
        .home
        .cmd()
        .args(["daemon", "--listen", "127.0.0.1:0", "--no-mdns"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut status = None;
    wait_until("the second daemon to give up", SOON, || {
        status = second.try_wait().ok().flatten();
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    let mut err = String::new();
    if let Some(mut e) = second.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        err.contains("already runs") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    // The first one carries on.
    a.ok(&["log", "still here"]);
}

/// Guessing invite secrets: ten wrong guesses a minute from one address are answered, the
/// next is refused unseen, and the inviter's log says so in a bounded number of lines.
#[test]
fn pairing_guesses_are_limited_per_address_and_logged_at_a_bounded_rate() {
    let a = Daemon::start("laptop");
    let c = Daemon::start("guesser");
    let fresh = a.ok(&["pair", "invite"]).trim().to_owned();
    let mut chars: Vec<char> = fresh.chars().collect();
    // A character of the secret (see `bad_invites_are_refused_with_a_clear_error`).
    let at = "FAILUP-".len() + 25;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let guess = || {
        let out = c.run(&["pair", "join", &tampered]);
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).trim_end().to_owned()
    };
    for n in 1..=10 {
        let err = guess();
        assert!(err.contains("wrong invite code"), "guess {n}: {err}");
    }
    for _ in 0..3 {
        let err = guess();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("too many pairing attempts from this address"),
            "{err}"
        );
    }
    // The real code is refused too until the minute is out: the limit is on the address.
    let out = c.run(&["pair", "join", &fresh]);
    assert_eq!(out.status.code(), Some(1));
    let log = std::fs::read_to_string(a.log_path()).unwrap_or_default();
    let lines = log.lines().filter(|l| l.contains("refused")).count();
    assert!(
        (1..=3).contains(&lines),
        "14 refusals in a few seconds logged in {lines} lines: {log}"
    );
    assert!(!a.ok(&["--json", "peers"]).contains("guesser"));
}

#[test]
fn compact_works_on_a_home_paired_with_a_device_and_a_partner() {
    let a = Daemon::start("laptop");
    let b = Daemon::start("phone");
    let p = Daemon::start("friend");
    a.pair(&b);
    a.partner(&p, "friend", "me");
    let id = a.ok(&["log", "kept through compaction"]).trim().to_owned();
    a.ok(&["share", &id, "--with", "friend"]);
    wait_until("the phone and the friend to hold it", SOON, || {
        b.run(&["show", &id]).status.success()
            && p.ok(&["feed"]).contains("kept through compaction")
    });
    // The circle and the sides of the space are documents too: compact takes them as they are.
    for d in [&a, &b, &p] {
        d.ok(&["compact"]);
        let check: serde_json::Value =
            serde_json::from_str(&d.ok(&["--json", "check"])).expect("json");
        assert_eq!(check["mismatches"], 0);
    }
    assert!(a.ok(&["peers"]).contains("phone"));
    a.ok(&["log", "after compaction"]);
    wait_until("sync to go on", SOON, || {
        b.ok(&["list"]).contains("after compaction")
    });
    assert!(p.ok(&["feed"]).contains("kept through compaction"));
}

#[test]
fn devices_are_named_by_their_names_in_sync_and_peers_remove() {
    let a = Daemon::start("laptop");
    let b = Daemon::start("phone");
    let c = Daemon::start("Phone");
    a.pair(&b);
    wait_until("the laptop to know the phone", SOON, || {
        a.ok(&["peers"]).contains("phone")
    });
    let out = a.ok(&["sync", "--timeout", "20s"]);
    assert!(out.contains("in sync: phone ("), "{out}");
    a.pair(&c);
    wait_until("the laptop to know both", SOON, || {
        a.ok(&["peers"]).contains("Phone")
    });
    // Two devices answer to "phone": refused, never guessed.
    let out = a.run(&["peers", "remove", "phone"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("several devices are called"), "{err}");
    // By its exact id, then the other one by name once it is the only one.
    a.ok(&["peers", "remove", &c.device()]);
    a.ok(&["peers", "remove", "PHONE"]);
    let peers = a.ok(&["--json", "peers"]);
    let v: serde_json::Value = serde_json::from_str(&peers).expect("json");
    let revoked = v
        .as_array()
        .map(|l| l.iter().filter(|p| p["revoked"] == true).count())
        .unwrap_or(0);
    assert_eq!(revoked, 2, "{peers}");
}

#[test]
fn invites_can_be_drawn_as_qr_codes_of_exactly_the_code() {
    let a = Daemon::start("laptop");
    for args in [
        &["pair", "invite", "--qr"][..],
        &["partner", "invite", "--qr", "--name", "friend"][..],
    ] {
        let out = a.run(args);
        assert!(out.status.success(), "{args:?}");
        let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let drawn = qrcode::QrCode::new(code.as_bytes())
            .expect("qr")
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&drawn),
            "{args:?}: the QR code drawn is not the code's"
        );
        assert!(err.lines().count() > 20, "{err}");
    }
    // Without --qr, nothing is drawn.
    let out = a.run(&["pair", "invite"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains('▀'));
}

/// The reframe questions are the person's, not one device's: set on one device (before or
/// after pairing), they are asked on every device, and a removal reaches all of them too.
#[test]
fn reframe_prompts_set_on_one_device_are_asked_on_all() {
    let a = Daemon::start("laptop");
    let b = Daemon::start("phone");
    let get = |d: &Daemon, key: &str| d.ok(&["config", "get", key]).trim().to_owned();
    // Set before the two were paired: each carries its own into the circle.
    a.ok(&[
        "config",
        "set",
        "prompts.lesson",
        "What will I do differently?",
    ]);
    b.ok(&["config", "set", "prompts.story", "What happened:"]);
    a.pair(&b);
    wait_until("the phone to ask the laptop's question", SOON, || {
        get(&b, "prompts.lesson") == "What will I do differently?"
    });
    wait_until(
        "the laptop to start stories as the phone does",
        SOON,
        || get(&a, "prompts.story") == "What happened:",
    );
    let listed = b.ok(&["config", "list"]);
    assert!(
        listed.contains(
            "prompts.lesson = \"What will I do differently?\"  (journal, on all your devices)"
        ),
        "{listed}"
    );
    let id = b.ok(&["log", "Dropped the glass"]).trim().to_owned();
    let shown = b.ok(&["show", &id]);
    assert!(shown.contains("What will I do differently?"), "{shown}");

    // Changed on the phone, removed on the laptop: both reach the other.
    b.ok(&["config", "set", "prompts.muscle", "Which muscle grew?"]);
    wait_until("the laptop to hear the phone's change", SOON, || {
        get(&a, "prompts.muscle") == "Which muscle grew?"
    });
    a.ok(&["config", "unset", "prompts.lesson"]);
    wait_until("the phone to be back on the default question", SOON, || {
        get(&b, "prompts.lesson") == "What did this teach me about my next level?"
    });

    // A question in one device's config.toml is moved into the journal by `config set`, so
    // it no longer hides the journal's on that device.
    let file = a.home.path().join("config.toml");
    std::fs::write(&file, "[prompts]\nuse = \"Only here?\"\n").expect("write config");
    assert_eq!(get(&a, "prompts.use"), "Only here?");
    a.ok(&["config", "set", "prompts.use", "How do I use it?"]);
    let left = std::fs::read_to_string(&file).expect("read config");
    assert!(!left.contains("Only here?"), "{left}");
    wait_until("the phone to ask the moved question", SOON, || {
        get(&b, "prompts.use") == "How do I use it?"
    });
}
