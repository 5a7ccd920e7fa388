//! Authorship is proven, not asserted: a modified client holding the real key of a paired
//! device (or of a partner's) sends changes written under another device's Automerge actor id,
//! sealed with its own key as "written" and as "vouched for"; the daemon refuses each and keeps
//! the journal as it was, and takes the same client's honest, sealed change. A partner's
//! modified client writes no document of the journal and cannot pass its side of a space off
//! as a journal bucket, on the device it reaches nor on a new device that meets the side and
//! the circle in whatever order. A revoked device's real key, at a device that has not yet
//! heard of the revocation, forges nothing and replays nothing, and is shut out once it has. A
//! decompression bomb is refused within the memory bound.

use std::time::Duration;

use automerge::AutoCommit;
use failup_journal::{Bucket, EntryId, EntryPatch};
use failup_tests::{Daemon, wait_until};
use failup_wire::{DocId, Message, Seal};

const SOON: Duration = Duration::from_secs(30);

/// The bucket in `store` that holds `id`, and the document itself.
fn bucket_of(store: &failup_store::Store, id: EntryId) -> (DocId, AutoCommit) {
    for (doc, _) in store.inventory().expect("inventory") {
        let Some(am) = store.document(doc).expect("document") else {
            continue;
        };
        if let Ok(b) = Bucket::from_doc(am.clone()) {
            if b.entry(id).expect("entry").is_some() {
                return (doc, am);
            }
        }
    }
    panic!("no bucket holds {id}");
}

/// A change to `doc` written under `actor`: the entry's text rewritten.
fn rewrite(doc: &AutoCommit, actor: [u8; 16], id: EntryId, text: &str) -> (Vec<u8>, [u8; 32]) {
    let mut am = doc.clone().with_actor(automerge::ActorId::from(actor));
    let heads = am.get_heads();
    let mut bucket = Bucket::from_doc(am).expect("bucket");
    bucket
        .apply(
            id,
            &EntryPatch {
                text: Some(text.into()),
                ..EntryPatch::default()
            },
            jiff::Timestamp::now(),
        )
        .expect("edit");
    let mut am = bucket.into_doc();
    let change = am.save_after(&heads);
    let hash = am.get_heads()[0].0;
    (change, hash)
}

/// Connects to `target` as the device whose key is at `key`, sends `msgs` and waits until the
/// daemon says `doc` is unavailable on this connection (it refused what was sent) or the
/// connection goes quiet; returns whether it refused.
fn send_as(key: &std::path::Path, target: &Daemon, doc: DocId, msgs: Vec<Message>) -> bool {
    let (addr, id) = failup_tests::dial_target(target);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (ep, identity) = failup_tests::client_endpoint(key);
        let conn = failup_net::connect(&ep, &identity, id, addr, failup_wire::ALPN_SYNC)
            .await
            .expect("the paired device is let in");
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        for m in msgs {
            send.write_all(&m.to_frame()).await.expect("write");
        }
        let mut reader = failup_wire::FrameReader::default();
        let mut buf = vec![0u8; 64 * 1024];
        let refused = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(n)) = recv.read(&mut buf).await {
                reader.push(&buf[..n]);
                while let Ok(Some(msg)) = reader.next_message() {
                    if msg == (Message::DocUnavailable { doc }) {
                        return true;
                    }
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        conn.close(0u32.into(), b"done");
        ep.wait_idle().await;
        refused
    })
}

/// A change as a modified client sends it: its seals, then the change itself.
fn sealed(doc: DocId, seals: Vec<Seal>, data: Vec<u8>) -> Vec<Message> {
    vec![Message::Seals { doc, seals }, Message::Doc { doc, data }]
}

fn text_of(d: &Daemon, id: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["--json", "show", id])).expect("json");
    v["text"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_paired_device_cannot_write_under_another_devices_actor_id() {
    let a = Daemon::start("laptop");
    let mut b = Daemon::start("phone");
    a.pair(&b);
    let id = a.ok(&["log", "what the laptop wrote"]).trim().to_owned();
    wait_until("the phone to hold the entry", SOON, || {
        b.run(&["show", &id]).status.success()
    });
    b.stop();
    let (doc, am, entry) = {
        let store = failup_store::Store::open(&b.home.store(), Duration::from_secs(5))
            .expect("the phone's store");
        let entry = store.resolve(&id).expect("id");
        let (doc, am) = bucket_of(&store, entry);
        (doc, am, entry)
    };
    let key = b.home.path().join("device.key");
    let phone = failup_net::Identity::load_or_create(&key)
        .expect("key")
        .signer()
        .expect("signer");
    let laptop: failup_wire::DeviceId = a.device().parse().expect("device id");
    let laptops_actor = failup_auth::actor_of(&laptop);

    // Under the laptop's actor id, sealed by the phone as written, then as vouched for.
    for kind in [failup_auth::Kind::Wrote, failup_auth::Kind::Vouched] {
        let (change, hash) = rewrite(&am, laptops_actor, entry, "FORGED by the phone");
        let seal: Seal = phone.seal(kind, doc, hash);
        let refused = send_as(&key, &a, doc, sealed(doc, vec![seal], change));
        assert!(
            refused,
            "a change under the laptop's actor id ({kind:?}) was not refused"
        );
        assert_eq!(text_of(&a, &id), "what the laptop wrote");
    }
    // A seal replayed from another change, and no seal at all.
    let (_, other) = rewrite(&am, phone.actor(), entry, "something else");
    let (change, _) = rewrite(&am, phone.actor(), entry, "REPLAYED seal");
    for seals in [
        vec![phone.seal(failup_auth::Kind::Wrote, doc, other)],
        vec![],
    ] {
        let refused = send_as(&key, &a, doc, sealed(doc, seals, change.clone()));
        assert!(refused, "a change without its own seal was not refused");
        assert_eq!(text_of(&a, &id), "what the laptop wrote");
    }
    let log = std::fs::read_to_string(a.log_path()).unwrap_or_default();
    assert!(log.contains("refused"), "the refusals are logged: {log}");

    // The same client, honest: its own actor id, its own seal. The laptop takes it.
    let (change, hash) = rewrite(&am, phone.actor(), entry, "edited on the phone");
    let refused = send_as(
        &key,
        &a,
        doc,
        sealed(
            doc,
            vec![phone.seal(failup_auth::Kind::Wrote, doc, hash)],
            change,
        ),
    );
    assert!(!refused);
    wait_until("the honest edit on the laptop", SOON, || {
        text_of(&a, &id) == "edited on the phone"
    });
    let check: serde_json::Value = serde_json::from_str(&a.ok(&["--json", "check"])).expect("json");
    assert_eq!(check["mismatches"], 0);
}

/// The peak resident memory of a process, in KiB (`VmHWM`).
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The bound docs/security.md states for what a daemon holds while refusing a decompression
/// bomb: the 64 MiB inflation limit with room for the daemon itself.
const BOMB_PEAK_KIB: u64 = 384 * 1024;

#[test]
fn a_decompression_bomb_is_refused_within_the_memory_bound_and_syncing_goes_on() {
    let a = Daemon::start("laptop");
    let mut b = Daemon::start("phone");
    let c = Daemon::start("tablet");
    a.pair(&b);
    a.pair(&c);
    let id = a.ok(&["log", "a story before the bomb"]).trim().to_owned();
    wait_until("the phone to hold the entry", SOON, || {
        b.run(&["show", &id]).status.success()
    });
    b.stop();
    let (doc, _) = {
        let store = failup_store::Store::open(&b.home.store(), Duration::from_secs(5))
            .expect("the phone's store");
        let entry = store.resolve(&id).expect("id");
        bucket_of(&store, entry)
    };
    let key = b.home.path().join("device.key");
    // 1 GiB of zeros in about a megabyte, three ways: merged into a document A holds, as a
    // new document, and as the changes of a sync message.
    let bomb = failup_journal::inflate::bomb(1 << 30);
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let sync = automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::from(vec![bomb.clone()]),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode();
    let pid = a.pid().expect("pid");
    let before = peak_kib(pid);
    for (target, msg) in [
        (
            doc,
            Message::Doc {
                doc,
                data: bomb.clone(),
            },
        ),
        (
            DocId([0x42; 16]),
            Message::Doc {
                doc: DocId([0x42; 16]),
                data: bomb.clone(),
            },
        ),
        (doc, Message::Sync { doc, data: sync }),
    ] {
        assert!(
            send_as(&key, &a, target, vec![msg]),
            "the bomb was not refused"
        );
    }
    let peak = peak_kib(pid);
    assert!(
        peak < BOMB_PEAK_KIB,
        "the daemon's peak memory reached {peak} KiB (it was {before} KiB before the bombs)"
    );
    // A keeps syncing with its other device.
    a.ok(&["log", "after the bomb"]);
    wait_until(
        "the tablet to get the entry written after the bombs",
        SOON,
        || c.ok(&["list"]).contains("after the bomb"),
    );
    let check: serde_json::Value = serde_json::from_str(&a.ok(&["--json", "check"])).expect("json");
    assert_eq!(check["mismatches"], 0);
}

/// The changes made to `am` since `before`, as one message's bytes, each sealed by `signer` as
/// written by it.
fn sealed_since(
    am: &mut AutoCommit,
    before: &[automerge::ChangeHash],
    doc: DocId,
    signer: &failup_auth::Signer,
) -> Vec<Message> {
    let seals = am
        .get_changes(before)
        .iter()
        .map(|c| signer.seal(failup_auth::Kind::Wrote, doc, c.hash().0))
        .collect();
    sealed(doc, seals, am.save_after(before))
}

/// An entry for `Bucket::insert`, as a modified client plants it.
fn planted(text: &str) -> failup_journal::Entry {
    let now = jiff::Timestamp::now();
    let ms = u64::try_from(now.as_millisecond()).expect("after 1970");
    failup_journal::NewEntry {
        text: text.into(),
        ..failup_journal::NewEntry::default()
    }
    .into_entry(
        EntryId::from_parts(ms, rand::random()),
        now,
        jiff::civil::Date::constant(2026, 11, 30),
    )
    .expect("entry")
}

#[test]
fn a_partners_modified_client_cannot_write_the_journal_nor_pass_its_side_off_as_a_bucket() {
    let mut a = Daemon::start("alex-laptop");
    let mut s = Daemon::start("sam-phone");
    a.partner(&s, "sam", "alex");
    let mine = a.ok(&["log", "alex's own setback"]).trim().to_owned();
    let shared = s
        .ok(&["log", "sam shares this", "--share", "alex"])
        .trim()
        .to_owned();
    let in_feed = |d: &Daemon| d.ok(&["feed"]).contains("sam shares this");
    wait_until("sam's shared entry in alex's feed", SOON, || in_feed(&a));
    s.stop();

    // Sam's real key, and both sides of the space as sam's store holds them.
    let key = s.home.path().join("device.key");
    let signer = failup_net::Identity::load_or_create(&key)
        .expect("key")
        .signer()
        .expect("signer");
    let sides: Vec<(DocId, AutoCommit)> = {
        let store = failup_store::Store::open(&s.home.store(), Duration::from_secs(5))
            .expect("sam's store");
        store
            .inventory()
            .expect("inventory")
            .into_iter()
            .filter_map(|(doc, _)| Some((doc, store.document(doc).ok().flatten()?)))
            .filter(|(_, am)| failup_journal::space::Space::from_doc(am.clone()).is_ok())
            .collect()
    };
    let shared_id: EntryId = shared.parse().expect("id");
    let holds_shared = |am: &AutoCommit| {
        failup_journal::space::Space::from_doc(am.clone())
            .ok()
            .and_then(|sp| sp.entry(shared_id).ok().flatten())
            .is_some()
    };
    let (sams_side, sams_doc) = sides
        .iter()
        .find(|(_, am)| holds_shared(am))
        .cloned()
        .expect("sam's side");
    let (alexs_side, alexs_doc) = sides
        .iter()
        .find(|(_, am)| !holds_shared(am))
        .cloned()
        .expect("alex's side");
    let alex: failup_wire::DeviceId = a.device().parse().expect("device id");
    let before_check: serde_json::Value =
        serde_json::from_str(&a.ok(&["--json", "check"])).expect("json");

    // 1. A new document shaped like a journal bucket, sealed by sam: a partner writes no
    //    document of alex's journal.
    let mut bucket =
        failup_journal::Bucket::create(&signer.actor(), [0x5a; 16], jiff::Timestamp::now())
            .expect("bucket");
    let new_entry = planted("PLANTED as a new bucket");
    bucket
        .insert(std::slice::from_ref(&new_entry), jiff::Timestamp::now())
        .expect("insert");
    let mut am = bucket.into_doc();
    let msgs = sealed_since(&mut am, &[], DocId([0x5a; 16]), &signer);
    assert!(
        send_as(&key, &a, DocId([0x5a; 16]), msgs),
        "a partner's new bucket was not refused"
    );

    // 2. A change under alex's actor id, sealed by sam: to alex's side, which a partner may
    //    read but not write, it is ignored (checked in alex's store below); to sam's side,
    //    which sam may write, the seal does not match the actor id and it is refused.
    let forge = |doc: &AutoCommit, id: DocId| {
        let mut forged = doc
            .clone()
            .with_actor(automerge::ActorId::from(failup_auth::actor_of(&alex)));
        let heads = forged.get_heads();
        {
            use automerge::transaction::Transactable;
            forged
                .put(
                    automerge::ROOT,
                    "failup",
                    failup_journal::layout::LAYOUT_MARK,
                )
                .expect("put");
            forged.commit();
        }
        let hash = forged.get_heads()[0];
        (sealed_since(&mut forged, &heads, id, &signer), hash)
    };
    let (msgs, forged_on_alexs) = forge(&alexs_doc, alexs_side);
    send_as(&key, &a, alexs_side, msgs);
    let (msgs, _) = forge(&sams_doc, sams_side);
    assert!(
        send_as(&key, &a, sams_side, msgs),
        "a change to sam's side under alex's actor id was not refused"
    );
    assert!(in_feed(&a), "sam's side is as it was");

    // 3. Sam's own side, which sam may write, rewritten as a journal bucket with an entry in
    //    it: taken as sam's writing, never as alex's journal.
    let mut side = sams_doc
        .clone()
        .with_actor(automerge::ActorId::from(signer.actor()));
    let heads = side.get_heads();
    {
        use automerge::transaction::Transactable;
        side.put(
            automerge::ROOT,
            "failup",
            failup_journal::layout::LAYOUT_MARK,
        )
        .expect("put");
        side.put_object(automerge::ROOT, "entries", automerge::ObjType::Map)
            .expect("entries");
        side.commit();
    }
    let mut bucket = failup_journal::Bucket::from_doc(side).expect("bucket-shaped");
    let side_entry = planted("PLANTED through the partner's side");
    bucket
        .insert(std::slice::from_ref(&side_entry), jiff::Timestamp::now())
        .expect("insert");
    let mut side = bucket.into_doc();
    let msgs = sealed_since(&mut side, &heads, sams_side, &signer);
    assert!(
        !send_as(&key, &a, sams_side, msgs),
        "sam's change to sam's own side was refused"
    );
    // The side no longer reads as a space, so sam's entry leaves alex's feed: alex took it.
    wait_until("alex to take the rewritten side", SOON, || !in_feed(&a));

    // A new device of alex's, which meets the side and the circle in whatever order they come.
    let n = Daemon::start("alex-tablet");
    a.pair(&n);
    wait_until("the tablet to hold every document", SOON, || {
        let want: serde_json::Value =
            serde_json::from_str(&a.ok(&["--json", "check"])).expect("json");
        let got: serde_json::Value =
            serde_json::from_str(&n.ok(&["--json", "check"])).expect("json");
        got["documents"] == want["documents"] && n.run(&["show", &mine]).status.success()
    });
    for d in [&a, &n] {
        let list = d.ok(&["list"]);
        assert!(list.contains("alex's own setback"), "{list}");
        assert!(!list.contains("PLANTED"), "{list}");
        for e in [&new_entry, &side_entry] {
            assert!(!d.run(&["show", &e.id.to_string()]).status.success());
        }
        let check: serde_json::Value =
            serde_json::from_str(&d.ok(&["--json", "check"])).expect("json");
        assert_eq!(check["mismatches"], 0);
        assert_eq!(check["entries"], before_check["entries"]);
    }
    // Alex's side in alex's store: still a space, without the forged change.
    a.stop();
    let store =
        failup_store::Store::open(&a.home.store(), Duration::from_secs(5)).expect("alex's store");
    let mut side = store.document(alexs_side).expect("read").expect("held");
    assert!(side.get_change_by_hash(&forged_on_alexs).is_none());
    assert!(failup_journal::space::Space::from_doc(side).is_ok());
}

/// Whether the device whose key is at `key` gets a sync connection to `target` at all.
fn connects(key: &std::path::Path, target: &Daemon) -> bool {
    let (addr, id) = failup_tests::dial_target(target);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (ep, identity) = failup_tests::client_endpoint(key);
        let got = tokio::time::timeout(
            Duration::from_secs(10),
            failup_net::connect(&ep, &identity, id, addr, failup_wire::ALPN_SYNC),
        )
        .await;
        let ok = match got {
            // A connection the daemon admits and then closes at once is refused too.
            Ok(Ok(conn)) => tokio::time::timeout(Duration::from_secs(2), conn.closed())
                .await
                .is_err(),
            _ => false,
        };
        ep.close(0u32.into(), b"done");
        ep.wait_idle().await;
        ok
    })
}

#[test]
fn a_revoked_devices_real_key_forges_nothing_replays_nothing_and_is_then_shut_out() {
    let mut a = Daemon::start("laptop");
    let mut b = Daemon::start("phone");
    let mut r = Daemon::start("lost-tablet");
    a.pair(&b);
    a.pair(&r);
    let id = a.ok(&["log", "what the laptop wrote"]).trim().to_owned();
    let old = r.ok(&["log", "the tablet's own entry"]).trim().to_owned();
    wait_until("everyone to hold both entries", SOON, || {
        [&a, &b, &r].iter().all(|d| {
            d.run(&["show", &id]).status.success() && d.run(&["show", &old]).status.success()
        })
    });
    let key = r.home.path().join("device.key");
    assert!(
        connects(&key, &a),
        "before its revocation, the tablet's key is let in"
    );
    // A revokes R while B is offline; R's thief then runs a modified client with R's key.
    b.stop();
    r.stop();
    a.ok(&["peers", "remove", &r.device()]);
    a.stop();
    b.restart();
    let tablet = failup_net::Identity::load_or_create(&key)
        .expect("key")
        .signer()
        .expect("signer");
    let (doc, am, entry) = {
        let store = failup_store::Store::open(&r.home.store(), Duration::from_secs(5))
            .expect("the tablet's store");
        let entry = store.resolve(&id).expect("id");
        let (doc, am) = bucket_of(&store, entry);
        (doc, am, entry)
    };
    let laptop: failup_wire::DeviceId = a.device().parse().expect("device id");

    // B has not heard of the revocation, so it lets R in; a change under the laptop's actor
    // id, sealed by the tablet, is still refused.
    let (change, hash) = rewrite(
        &am,
        failup_auth::actor_of(&laptop),
        entry,
        "FORGED by the thief",
    );
    assert!(
        send_as(
            &key,
            &b,
            doc,
            sealed(
                doc,
                vec![tablet.seal(failup_auth::Kind::Wrote, doc, hash)],
                change
            ),
        ),
        "a change under the laptop's actor id was not refused"
    );
    // The tablet's old, honestly sealed changes, sent again whole with their seals: B holds
    // them already, and nothing changes.
    let (whole, seals) = {
        let mut store = failup_store::Store::open(&r.home.store(), Duration::from_secs(5))
            .expect("the tablet's store");
        store.saved_document(doc).expect("saved").expect("held")
    };
    send_as(&key, &b, doc, sealed(doc, seals, whole));
    assert_eq!(text_of(&b, &id), "what the laptop wrote");
    assert_eq!(text_of(&b, &old), "the tablet's own entry");

    // Once B hears of the revocation, neither device lets the tablet's key in.
    a.restart();
    wait_until("the phone to learn of the revocation", SOON, || {
        b.ok(&["--json", "peers"]).contains("\"revoked\":true")
            || b.ok(&["--json", "peers"]).contains("\"revoked\": true")
    });
    wait_until("the tablet's key to be shut out", SOON, || {
        !connects(&key, &a) && !connects(&key, &b)
    });
    for d in [&a, &b] {
        assert_eq!(text_of(d, &id), "what the laptop wrote");
        let check: serde_json::Value =
            serde_json::from_str(&d.ok(&["--json", "check"])).expect("json");
        assert_eq!(check["mismatches"], 0);
    }
}

#[test]
fn a_recovery_forged_by_a_revoked_device_overturns_nothing() {
    let mut a = Daemon::start("laptop");
    let mut b = Daemon::start("phone");
    let mut r = Daemon::start("lost-tablet");
    a.pair(&b);
    a.pair(&r);
    let listed = |d: &Daemon, name: &str, revoked: bool| {
        let v: serde_json::Value =
            serde_json::from_str(&d.ok(&["--json", "peers"])).unwrap_or_default();
        v.as_array().is_some_and(|l| {
            l.iter()
                .any(|p| p["name"] == name && p["revoked"] == revoked)
        })
    };
    wait_until("the phone and the tablet to know each other", SOON, || {
        listed(&b, "lost-tablet", false) && listed(&r, "phone", false)
    });
    // A revokes R while B is offline.
    b.stop();
    r.stop();
    a.ok(&["peers", "remove", &r.device()]);
    a.stop();
    b.restart();
    // R's thief writes, with R's real key, a revocation of the laptop (which founded the
    // circle) carrying a recovery signature by a key of its own, restoring the tablet.
    let key = r.home.path().join("device.key");
    let tablet = failup_net::Identity::load_or_create(&key)
        .expect("key")
        .signer()
        .expect("signer");
    let laptop: failup_wire::DeviceId = a.device().parse().expect("device id");
    let (circle, mut am) = {
        let store = failup_store::Store::open(&r.home.store(), Duration::from_secs(5))
            .expect("the tablet's store");
        let id = store.setting("circle").expect("read").expect("a circle");
        let circle = DocId(id.as_slice().try_into().expect("16 bytes"));
        (circle, store.document(circle).expect("read").expect("held"))
    };
    am.set_actor(automerge::ActorId::from(tablet.actor().as_slice()));
    let before = am.get_heads();
    let own = failup_auth::recovery::RecoveryKey::generate().expect("key");
    let note = failup_node::circle::RevocationNote {
        at_ms: 0,
        seen: Vec::new(),
        recovery: Some(failup_node::circle::RecoveryProof {
            restore: vec![tablet.device().0],
            sig: own
                .sign_revocation(circle.0, laptop, &[tablet.device()])
                .to_vec(),
        }),
    };
    failup_node::circle::revoke(&mut am, laptop, &note).expect("revoke");
    am.commit();
    let msgs = sealed_since(&mut am, &before, circle, &tablet);
    assert!(
        !send_as(&key, &b, circle, msgs),
        "the phone, not knowing of the revocation yet, takes the tablet's sealed change"
    );
    // Once the laptop is back, the forged recovery counts for nothing: the tablet stays
    // revoked and the laptop belongs, on both devices.
    a.restart();
    wait_until("the phone to side with the laptop", SOON, || {
        listed(&b, "lost-tablet", true) && listed(&b, "laptop", false)
    });
    wait_until("the laptop to agree", SOON, || {
        listed(&a, "lost-tablet", true) && listed(&a, "phone", false)
    });
    wait_until("the tablet's key to be shut out", SOON, || {
        !connects(&key, &b)
    });
}
