//! Authorship is proven, not asserted: a modified client holding the real key of a paired
//! device (or of a partner's) sends changes written under another device's Automerge actor id,
//! sealed with its own key as "written" and as "vouched for"; the daemon refuses each and keeps
//! the journal as it was, and takes the same client's honest, sealed change.

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
        let refused = send_as(
            &key,
            &a,
            doc,
            vec![
                Message::Seals {
                    doc,
                    seals: vec![seal],
                },
                Message::Doc { doc, data: change },
            ],
        );
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
        let refused = send_as(
            &key,
            &a,
            doc,
            vec![
                Message::Seals { doc, seals },
                Message::Doc {
                    doc,
                    data: change.clone(),
                },
            ],
        );
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
        vec![
            Message::Seals {
                doc,
                seals: vec![phone.seal(failup_auth::Kind::Wrote, doc, hash)],
            },
            Message::Doc { doc, data: change },
        ],
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
