//! Store tests against real redb files in temporary directories.

use super::*;
use automerge::ReadDoc;
use failup_journal::layout::BUCKET_CAPACITY;
use failup_journal::{EntryPatch, Filter, Iteration, IterationId, NewEntry, Outcome, Scale};
use jiff::Timestamp;
use jiff::civil::Date;

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).expect("valid")
}

fn day(d: i8) -> Date {
    Date::constant(2026, 11, d)
}

fn new(text: &str) -> NewEntry {
    NewEntry {
        text: text.into(),
        ..NewEntry::default()
    }
}

thread_local! {
    /// The devices of the stores this test opened, which [`Open`] lets write anything.
    static ALL: std::cell::RefCell<std::collections::BTreeSet<failup_wire::DeviceId>> =
        Default::default();
}

/// A store with a fresh device key of its own.
fn open(dir: &tempfile::TempDir) -> Store {
    let mut s =
        Store::open(&dir.path().join("journal.redb"), Duration::from_secs(1)).expect("open");
    let signer = failup_auth::Signer::generate().expect("key");
    ALL.with(|a| a.borrow_mut().insert(signer.device()));
    s.set_signer(std::sync::Arc::new(signer)).expect("signer");
    s
}

/// Lets every device of this test write every document.
struct Open;
impl Gate for Open {
    fn is_device_actor(&self, _: &[u8]) -> bool {
        false
    }
    fn writers(&self, _: failup_wire::DocId, _: &automerge::AutoCommit) -> Writers {
        Writers::Only(ALL.with(|a| a.borrow().clone()))
    }
}

fn pending(seals: &[failup_wire::Seal]) -> PendingSeals {
    seals.iter().map(|s| (s.hash, *s)).collect()
}

#[test]
fn logged_entries_survive_reopening() {
    let dir = tempfile::tempdir().expect("tmp");
    let id = {
        let mut s = open(&dir);
        s.log(new("first"), t(1_000), day(1)).expect("log").id
    };
    let s = open(&dir);
    let e = s.get(id).expect("get").expect("present");
    assert_eq!(e.text, "first");
    assert_eq!(s.len().expect("len"), 1);
}

#[test]
fn list_is_newest_day_first_and_respects_filters_and_limit() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(&dir);
    for (i, d) in [3, 1, 2].into_iter().enumerate() {
        let mut n = new(&format!("day {d}"));
        n.day = Some(day(d));
        n.scale = if d == 2 { Scale::Macro } else { Scale::Micro };
        s.log(n, t(1_000 + i as i64), day(20)).expect("log");
    }
    let all = s.list(&Filter::default(), None).expect("list");
    let texts: Vec<&str> = all.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["day 3", "day 2", "day 1"]);
    assert_eq!(s.list(&Filter::default(), Some(2)).expect("list").len(), 2);
    let since = Filter {
        since: Some(day(2)),
        ..Filter::default()
    };
    assert_eq!(s.list(&since, None).expect("list").len(), 2);
    let macros = Filter {
        scale: Some(Scale::Macro),
        ..Filter::default()
    };
    assert_eq!(s.list(&macros, None).expect("list")[0].text, "day 2");
}

#[test]
fn update_moves_the_day_index_and_survives_compaction() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(&dir);
    let id = s.log(new("edit me"), t(1), day(1)).expect("log").id;
    // More edits than the compaction threshold, so the document is snapshotted on the way.
    for i in 0..(COMPACT_AFTER_CHANGES as i64 * 2 + 3) {
        let patch = EntryPatch {
            add_tags: vec![format!("t{}", i % 5)],
            ..EntryPatch::default()
        };
        s.update(id, patch, t(10 + i)).expect("update");
    }
    let patch = EntryPatch {
        day: Some(day(9)),
        iteration: Some(Iteration {
            id: IterationId::from_parts(5, 5),
            at: t(500),
            tried: "tried again".into(),
            outcome: Some(Outcome::Same),
        }),
        ..EntryPatch::default()
    };
    s.update(id, patch, t(600)).expect("update");
    let only_day_9 = Filter {
        since: Some(day(9)),
        until: Some(day(9)),
        ..Filter::default()
    };
    assert_eq!(s.list(&only_day_9, None).expect("list").len(), 1);
    assert_eq!(s.list(&Filter::default(), None).expect("list").len(), 1);
    let report = s.check().expect("check");
    assert_eq!(report.entries, 1);
    assert_eq!(report.mismatches, 0);
    s.compact().expect("compact");
    drop(s);
    let s = open(&dir);
    let e = s.get(id).expect("get").expect("present");
    assert_eq!(e.tags.len(), 5);
    assert_eq!(e.iterations.len(), 1);
    assert_eq!(s.check().expect("check").mismatches, 0);
}

#[test]
fn delete_removes_from_every_index() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(&dir);
    let id = s.log(new("delete me"), t(1), day(1)).expect("log").id;
    s.delete(id, t(2)).expect("delete");
    assert_eq!(s.get(id).expect("get"), None);
    assert!(s.list(&Filter::default(), None).expect("list").is_empty());
    assert!(matches!(
        s.delete(id, t(3)),
        Err(StoreError::Journal(JournalError::NotFound(_)))
    ));
    assert_eq!(s.check().expect("check").mismatches, 0);
}

#[test]
fn prefixes_resolve_like_git() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(&dir);
    let a = s
        .log(new("a"), t(1_700_000_000_000), day(1))
        .expect("log")
        .id;
    let b = s
        .log(new("b"), t(1_700_000_000_000), day(1))
        .expect("log")
        .id;
    let a_text = a.to_string();
    assert_eq!(s.resolve(&a_text).expect("full"), a);
    assert_eq!(s.resolve(&a_text.to_lowercase()).expect("lower"), a);
    // Same millisecond: the first 10 characters are shared.
    match s.resolve(&a_text[..10]) {
        Err(StoreError::Ambiguous { candidates, .. }) => {
            assert!(candidates.contains(&a) && candidates.contains(&b));
        }
        other => panic!("expected ambiguity, got {other:?}"),
    }
    assert!(matches!(s.resolve("7ZZZZ"), Err(StoreError::NoMatch(_))));
    assert!(matches!(s.resolve("ZZZ"), Err(StoreError::NoMatch(_))));
    // A first character above 7 must not wrap around to 0 and match real ids.
    assert!(matches!(s.resolve("8"), Err(StoreError::NoMatch(_))));
    let swapped = format!("8{}", &a_text[1..]);
    assert!(matches!(s.resolve(&swapped), Err(StoreError::NoMatch(_))));
    assert!(s.resolve("not/an/id").is_err());
    assert!(s.resolve("").is_err());
}

#[test]
fn new_entries_fill_buckets_then_start_new_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(&dir);
    for i in 0..(BUCKET_CAPACITY + 5) {
        s.log(new(&format!("entry {i}")), t(i as i64), day(1))
            .expect("log");
    }
    let report = s.check().expect("check");
    assert_eq!(report.documents, 2);
    assert_eq!(report.entries, BUCKET_CAPACITY + 5);
    assert_eq!(report.mismatches, 0);
}

#[test]
fn import_skips_known_ids_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(&dir);
    let existing = s.log(new("already here"), t(1), day(1)).expect("log");
    let mut batch = vec![existing.clone()];
    for i in 0..600u64 {
        let e = new(&format!("imported {i}"))
            .into_entry(EntryId::from_parts(i, u128::from(i)), t(5), day(2))
            .expect("entry");
        batch.push(e);
    }
    batch.push(batch[1].clone());
    let first = s.import(batch.clone(), t(10)).expect("import");
    assert_eq!(
        first,
        ImportReport {
            added: 600,
            skipped: 2
        }
    );
    let again = s.import(batch, t(11)).expect("import");
    assert_eq!(
        again,
        ImportReport {
            added: 0,
            skipped: 602
        }
    );
    assert_eq!(s.len().expect("len"), 601);
    assert_eq!(s.check().expect("check").mismatches, 0);
}

#[test]
fn a_second_opener_waits_then_gives_up_with_busy() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("journal.redb");
    let held = Store::open(&path, Duration::from_secs(1)).expect("open");
    let err = Store::open(&path, Duration::from_millis(100))
        .err()
        .expect("busy");
    assert!(matches!(err, StoreError::Busy(_)));
    drop(held);
    Store::open(&path, Duration::from_millis(100)).expect("free again");
}

#[test]
fn garbage_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("journal.redb");
    let garbage = b"this is not a database, but it is someone's file".repeat(100);
    std::fs::write(&path, &garbage).expect("write");
    let err = Store::open(&path, Duration::from_millis(100))
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).expect("read"), garbage);
}

/// Runs Automerge's sync protocol for one document between two stores until both are quiet.
fn sync_doc(a: &mut Store, b: &mut Store, doc: failup_wire::DocId) {
    let (mut sa, mut sb) = (automerge::sync::State::new(), automerge::sync::State::new());
    // Seals waiting for a held-back change, kept per receiver as the engine keeps them.
    let (mut pa, mut pb) = (PendingSeals::new(), PendingSeals::new());
    for _ in 0..20 {
        let ma = a.sync_generate(doc, &mut sa).expect("gen a");
        let mb = b.sync_generate(doc, &mut sb).expect("gen b");
        if ma.is_none() && mb.is_none() {
            return;
        }
        if let Some((m, seals)) = ma {
            pb.extend(pending(&seals));
            b.sync_receive(doc, &mut sb, m, &mut pb, &Open)
                .expect("recv b");
        }
        if let Some((m, seals)) = mb {
            pa.extend(pending(&seals));
            a.sync_receive(doc, &mut sa, m, &mut pa, &Open)
                .expect("recv a");
        }
    }
    panic!("sync of {doc} did not settle");
}

fn sync_all(a: &mut Store, b: &mut Store) {
    let mut docs: Vec<failup_wire::DocId> = a
        .inventory()
        .expect("inv")
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    docs.extend(b.inventory().expect("inv").into_iter().map(|(d, _)| d));
    docs.sort();
    docs.dedup();
    for doc in docs {
        sync_doc(a, b, doc);
    }
}

#[test]
fn synced_changes_are_stored_and_indexed_on_the_other_device() {
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (mut a, mut b) = (open(&da), open(&db));
    let mut ids = Vec::new();
    for i in 0..(BUCKET_CAPACITY + 10) {
        ids.push(
            a.log(new(&format!("entry {i}")), t(i as i64), day(1))
                .expect("log")
                .id,
        );
    }
    assert_eq!(a.take_changed_docs().len(), 2);
    sync_all(&mut a, &mut b);
    assert_eq!(
        b.list(&Filter::default(), None).expect("list"),
        a.list(&Filter::default(), None).expect("list")
    );
    assert_eq!(b.inventory().expect("inv"), a.inventory().expect("inv"));
    // Edits and deletes travel too, and concurrent edits merge.
    a.update(
        ids[0],
        EntryPatch {
            add_tags: vec!["from-a".into()],
            ..EntryPatch::default()
        },
        t(900),
    )
    .expect("edit a");
    b.update(
        ids[0],
        EntryPatch {
            add_tags: vec!["from-b".into()],
            ..EntryPatch::default()
        },
        t(901),
    )
    .expect("edit b");
    b.delete(ids[1], t(902)).expect("delete");
    sync_all(&mut a, &mut b);
    let ea = a.get(ids[0]).expect("get").expect("present");
    assert!(ea.tags.contains("from-a") && ea.tags.contains("from-b"));
    assert_eq!(b.get(ids[0]).expect("get"), Some(ea));
    assert_eq!(a.get(ids[1]).expect("get"), None);
    for s in [&a, &b] {
        let report = s.check().expect("check");
        assert_eq!(report.mismatches, 0);
        assert_eq!(report.entries, BUCKET_CAPACITY + 9);
    }
    // Everything survives reopening on the receiving side.
    drop(b);
    let b = open(&db);
    assert_eq!(b.len().expect("len"), (BUCKET_CAPACITY + 9) as u64);
}

#[test]
fn whole_documents_are_stored_and_indexed_then_merged() {
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (mut a, mut b) = (open(&da), open(&db));
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            a.log(new(&format!("whole {i}")), t(i), day(3))
                .expect("log")
                .id,
        );
    }
    let doc = a.inventory().expect("inv")[0].0;
    let saved = a.saved_document(doc).expect("saved").expect("held");
    assert!(
        b.receive_whole(doc, &saved.0, &pending(&saved.1), &Open)
            .expect("receive")
    );
    assert!(
        !b.receive_whole(doc, &saved.0, &pending(&saved.1), &Open)
            .expect("again"),
        "a second copy changes nothing"
    );
    assert_eq!(
        b.list(&Filter::default(), None).expect("list"),
        a.list(&Filter::default(), None).expect("list")
    );
    a.update(
        ids[0],
        EntryPatch {
            text: Some("changed".into()),
            ..EntryPatch::default()
        },
        t(99),
    )
    .expect("edit");
    let saved = a.saved_document(doc).expect("saved").expect("held");
    assert!(
        b.receive_whole(doc, &saved.0, &pending(&saved.1), &Open)
            .expect("merge")
    );
    assert_eq!(
        b.get(ids[0]).expect("get").map(|e| e.text),
        Some("changed".into())
    );
    assert_eq!(b.check().expect("check").mismatches, 0);
    assert!(
        b.receive_whole(
            failup_wire::DocId::from_u128(doc.as_u128() + 1),
            b"garbage",
            &PendingSeals::new(),
            &Open,
        )
        .is_err()
    );
    assert_eq!(b.check().expect("check").mismatches, 0);
}

/// A sync message of just these changes, as a sender whose Bloom filter misjudged what the
/// receiver holds would send them.
fn changes_message(changes: &[automerge::Change]) -> automerge::sync::Message {
    automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::from(
            changes
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect::<Vec<_>>(),
        ),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
}

#[test]
fn a_change_held_back_for_its_dependencies_keeps_its_seal_until_they_come() {
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (mut a, mut b) = (open(&da), open(&db));
    let id = a.log(new("first"), t(1), day(1)).expect("log").id;
    let doc = a.inventory().expect("inv")[0].0;
    sync_doc(&mut a, &mut b, doc);
    let known = b.heads(doc).expect("heads").expect("held");
    for (i, tag) in ["later", "later-still"].into_iter().enumerate() {
        a.update(
            id,
            EntryPatch {
                add_tags: vec![tag.into()],
                ..EntryPatch::default()
            },
            t(2 + i as i64),
        )
        .expect("edit");
    }
    let mut am = a.document(doc).expect("doc").expect("held");
    let known: Vec<automerge::ChangeHash> = known.into_iter().map(automerge::ChangeHash).collect();
    let changes: Vec<automerge::Change> = am.get_changes(&known);
    assert!(changes.len() >= 2);
    let seals = pending(&a.all_seals(doc).expect("seals"));
    let (last, earlier) = changes.split_last().expect("changes");
    let seal_of = |c: &automerge::Change| {
        let h = c.hash().0;
        (h, seals[&h])
    };
    let mut state = automerge::sync::State::new();
    // The newest change first, with its seal: Automerge holds it back, nothing is stored.
    let mut waiting: PendingSeals = [seal_of(last)].into_iter().collect();
    assert!(
        !b.sync_receive(
            doc,
            &mut state,
            changes_message(std::slice::from_ref(last)),
            &mut waiting,
            &Open
        )
        .expect("held back")
    );
    assert_eq!(waiting.len(), 1, "the held-back change's seal waits");
    // Then what it depends on, with only their own seals: all of it goes in.
    waiting.extend(earlier.iter().map(seal_of));
    assert!(
        b.sync_receive(
            doc,
            &mut state,
            changes_message(earlier),
            &mut waiting,
            &Open
        )
        .expect("the held-back change is sealed")
    );
    assert!(waiting.is_empty(), "every seal used: {}", waiting.len());
    assert_eq!(b.get(id).expect("get"), a.get(id).expect("get"));
    assert_eq!(
        b.all_seals(doc).expect("seals").len(),
        a.all_seals(doc).expect("seals").len()
    );
    assert_eq!(b.check().expect("check").mismatches, 0);
}

#[test]
fn garbage_sync_messages_are_errors_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(&dir);
    s.log(new("safe"), t(1), day(1)).expect("log");
    let doc = s.inventory().expect("inv")[0].0;
    let before = s.inventory().expect("inv");
    assert!(automerge::sync::Message::decode(b"\x42garbage").is_err());
    let mut state = automerge::sync::State::new();
    // A well-formed message with changes that do not parse as Automerge changes.
    let msg = automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::from(vec![b"not a change".to_vec()]),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    let _ = s.sync_receive(doc, &mut state, msg, &mut PendingSeals::new(), &Open);
    assert_eq!(s.inventory().expect("inv"), before);
    assert_eq!(s.check().expect("check").mismatches, 0);
}

#[test]
fn a_group_of_writes_is_visible_at_once_and_durable_after_its_end() {
    let dir = tempfile::tempdir().expect("tmp");
    let ids: Vec<EntryId> = {
        let mut s = open(&dir);
        s.begin_group();
        let ids = (0..5)
            .map(|i| {
                s.log(new(&format!("grouped {i}")), t(1_000 + i), day(1))
                    .expect("log")
                    .id
            })
            .collect();
        assert_eq!(s.len().expect("len"), 5, "visible inside the group");
        s.end_group().expect("flush");
        // A second end, or one without a group, has nothing to do.
        s.end_group().expect("nothing to flush");
        ids
    };
    let s = open(&dir);
    for id in ids {
        assert!(s.get(id).expect("get").is_some());
    }
    assert_eq!(s.check().expect("check").mismatches, 0);
}

#[test]
fn a_document_read_ahead_is_used_only_for_the_same_bytes() {
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (mut a, mut b) = (open(&da), open(&db));
    for i in 0..10 {
        a.log(new(&format!("ahead {i}")), t(i), day(4))
            .expect("log");
    }
    let doc = a.inventory().expect("inv")[0].0;
    let saved = a.saved_document(doc).expect("saved").expect("held");

    // Read ahead from other bytes (garbage here): the real bytes are read afresh.
    b.stash_prepared(Store::prepare_whole(doc, b"garbage".to_vec()));
    assert!(
        b.receive_whole(doc, &saved.0, &pending(&saved.1), &Open)
            .expect("receive")
    );
    assert_eq!(b.len().expect("len"), 10);

    // Read ahead from the same bytes, on another thread: the same result as reading inline.
    let dc = tempfile::tempdir().expect("tmp");
    let mut c = open(&dc);
    let copy = saved.0.clone();
    let prepared = std::thread::spawn(move || Store::prepare_whole(doc, copy))
        .join()
        .expect("thread");
    c.stash_prepared(prepared);
    assert!(
        c.receive_whole(doc, &saved.0, &pending(&saved.1), &Open)
            .expect("receive")
    );
    assert_eq!(
        c.list(&Filter::default(), None).expect("list"),
        a.list(&Filter::default(), None).expect("list")
    );
    assert_eq!(c.check().expect("check").mismatches, 0);

    // Garbage read ahead for garbage bytes is still an error, and stores nothing.
    let dd = tempfile::tempdir().expect("tmp");
    let mut d = open(&dd);
    d.stash_prepared(Store::prepare_whole(doc, b"garbage".to_vec()));
    assert!(
        d.receive_whole(doc, b"garbage", &PendingSeals::new(), &Open)
            .is_err()
    );
    assert_eq!(d.len().expect("len"), 0);
}

#[test]
fn a_foreign_document_never_takes_over_journal_entries() {
    // A partner's side of a space, written by a modified client to look like a journal bucket
    // holding one of this person's entry ids, must not be indexed: otherwise the next edit of
    // that entry would be written into a document the partner reads.
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (mut mine, mut forger) = (open(&da), open(&db));
    let real = mine
        .log(new("my private story"), t(1), day(5))
        .expect("log");
    let real_doc = mine.inventory().expect("inv")[0].0;
    // The forger's bucket holds an entry under the same id.
    forger
        .import(
            vec![Entry {
                text: "forged".into(),
                ..real.clone()
            }],
            t(2),
        )
        .expect("import");
    let forged_doc = forger.inventory().expect("inv")[0].0;
    let forged = forger
        .saved_document(forged_doc)
        .expect("saved")
        .expect("held");

    mine.set_foreign([forged_doc]).expect("foreign");
    assert!(
        mine.receive_whole(forged_doc, &forged.0, &pending(&forged.1), &Open)
            .expect("stored")
    );
    let e = mine.get(real.id).expect("get").expect("still there");
    assert_eq!(e.text, "my private story");
    let edited = mine
        .update(
            real.id,
            EntryPatch {
                text: Some("edited in private".into()),
                ..EntryPatch::default()
            },
            t(3),
        )
        .expect("edit");
    assert_eq!(edited.text, "edited in private");
    let foreign_now = mine.document(forged_doc).expect("doc").expect("held");
    assert!(
        !format!("{:?}", foreign_now.clone().hydrate(automerge::ROOT, None))
            .contains("edited in private"),
        "the edit went into the foreign document"
    );
    assert!(
        format!(
            "{:?}",
            mine.document(real_doc)
                .expect("doc")
                .expect("held")
                .hydrate(automerge::ROOT, None)
        )
        .contains("edited in private")
    );
    // And `check` reads the journal as the index does: the foreign document is not part of it.
    let report = mine.check().expect("check");
    assert_eq!(
        (report.documents, report.entries, report.mismatches),
        (1, 1, 0)
    );

    // Learned too late: a document indexed before it was known to be foreign loses its rows.
    let dc = tempfile::tempdir().expect("tmp");
    let mut late = open(&dc);
    assert!(
        late.receive_whole(forged_doc, &forged.0, &pending(&forged.1), &Open)
            .expect("stored")
    );
    assert_eq!(late.len().expect("len"), 1);
    late.set_foreign([forged_doc]).expect("foreign");
    assert_eq!(late.len().expect("len"), 0);
    assert!(late.get(real.id).expect("get").is_none());
    assert_eq!(late.check().expect("check").mismatches, 0);
}

/// Lets only the devices named write.
struct Only(std::collections::BTreeSet<failup_wire::DeviceId>);
impl Gate for Only {
    fn is_device_actor(&self, _: &[u8]) -> bool {
        false
    }
    fn writers(&self, _: failup_wire::DocId, _: &automerge::AutoCommit) -> Writers {
        Writers::Only(self.0.clone())
    }
}

#[test]
fn a_change_without_a_seal_that_checks_out_is_refused_and_nothing_of_it_kept() {
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (mut a, mut b) = (open(&da), open(&db));
    a.log(new("sealed story"), t(1), day(1)).expect("log");
    let doc = a.inventory().expect("inv")[0].0;
    let (data, seals) = a.saved_document(doc).expect("saved").expect("held");
    assert!(!seals.is_empty(), "every change has its seal");
    let refused = |r: Result<bool, StoreError>| {
        assert!(matches!(r, Err(StoreError::Refused { .. })), "{r:?}")
    };
    // No seals, a bent signature, a seal moved to another document's statement.
    refused(b.receive_whole(doc, &data, &PendingSeals::new(), &Open));
    let mut bent = pending(&seals);
    for s in bent.values_mut() {
        s.sig[0] ^= 1;
    }
    refused(b.receive_whole(doc, &data, &bent, &Open));
    // A writer the gate does not name.
    refused(b.receive_whole(doc, &data, &pending(&seals), &Only(Default::default())));
    assert!(b.inventory().expect("inv").is_empty(), "nothing kept");
    assert_eq!(b.len().expect("len"), 0);
    // The same over the sync protocol, seals stripped.
    let (mut sa, mut sb) = (automerge::sync::State::new(), automerge::sync::State::new());
    let mut refusals = 0;
    for _ in 0..10 {
        if let Some((m, _)) = a.sync_generate(doc, &mut sa).expect("gen") {
            if b.sync_receive(doc, &mut sb, m, &mut PendingSeals::new(), &Open)
                .is_err()
            {
                refusals += 1;
            }
        }
        if let Some((m, s)) = b.sync_generate(doc, &mut sb).expect("gen") {
            a.sync_receive(doc, &mut sa, m, &mut pending(&s), &Open)
                .expect("a takes b's nothing");
        }
    }
    assert!(refusals > 0);
    assert_eq!(b.len().expect("len"), 0);
    // And with its seals, in it goes, seals kept to pass on.
    assert!(
        b.receive_whole(doc, &data, &pending(&seals), &Open)
            .expect("sealed")
    );
    assert_eq!(b.len().expect("len"), 1);
    assert_eq!(b.all_seals(doc).expect("seals").len(), seals.len());
}

#[test]
fn a_store_from_before_seals_vouches_once_for_everything_it_holds() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("journal.redb");
    let doc = {
        let mut s = Store::open(&path, Duration::from_secs(1)).expect("open");
        for i in 0..3 {
            s.log(new(&format!("old {i}")), t(i), day(1)).expect("log");
        }
        let doc = s.inventory().expect("inv")[0].0;
        assert!(s.all_seals(doc).expect("seals").is_empty());
        doc
    };
    let signer = std::sync::Arc::new(failup_auth::Signer::generate().expect("key"));
    let mut s = Store::open(&path, Duration::from_secs(1)).expect("open");
    let changes = s
        .document(doc)
        .expect("doc")
        .expect("held")
        .get_changes(&[])
        .len();
    assert_eq!(s.set_signer(signer.clone()).expect("vouch"), changes);
    assert_eq!(s.set_signer(signer.clone()).expect("once"), 0);
    let seals = s.all_seals(doc).expect("seals");
    assert_eq!(seals.len(), changes);
    assert!(seals.iter().all(|x| x.kind == 1), "vouched, not claimed");
    // Another device takes them in, as the voucher's.
    let other = tempfile::tempdir().expect("tmp");
    let mut b = open(&other);
    let (data, seals) = s.saved_document(doc).expect("saved").expect("held");
    let gate = Only([signer.device()].into_iter().collect());
    assert!(
        b.receive_whole(doc, &data, &pending(&seals), &gate)
            .expect("in")
    );
    // New writes are under the device's own actor id, sealed as written.
    s.log(new("new"), t(9), day(2)).expect("log");
    let fresh = s.all_seals(doc).expect("seals");
    assert_eq!(fresh.iter().filter(|x| x.kind == 0).count(), 1);
}

#[test]
fn void_changes_are_undone_by_new_changes_and_nothing_else_is() {
    let (da, dr) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (mut a, mut r) = (open(&da), open(&dr));
    let kept = a.log(new("kept as it was"), t(1), day(1)).expect("log");
    let edited = a.log(new("the original words"), t(2), day(1)).expect("log");
    sync_all(&mut a, &mut r);
    let hashes = |s: &Store| -> std::collections::BTreeSet<[u8; 32]> {
        s.inventory()
            .expect("inv")
            .into_iter()
            .flat_map(|(d, _)| {
                let mut am = s.document(d).expect("doc").expect("held");
                let own: Vec<[u8; 32]> = am
                    .get_changes_meta(&[])
                    .iter()
                    .filter(|m| m.actor.to_bytes() == s.actor.as_slice())
                    .map(|m| m.hash.0)
                    .collect();
                own
            })
            .collect()
    };
    let before = hashes(&r);
    // What the revoked device does after its revocation.
    r.delete(kept.id, t(3)).expect("delete");
    r.update(
        edited.id,
        EntryPatch {
            text: Some("rewritten by the thief".into()),
            ..EntryPatch::default()
        },
        t(4),
    )
    .expect("edit");
    let planted = r
        .log(new("planted by the thief"), t(5), day(1))
        .expect("log");
    // And an honest edit made concurrently, on this side, to an entry the thief left alone.
    let honest = a.log(new("written meanwhile"), t(6), day(1)).expect("log");
    sync_all(&mut a, &mut r);
    assert!(a.get(kept.id).expect("get").is_none());
    let void: std::collections::BTreeSet<[u8; 32]> =
        hashes(&r).difference(&before).copied().collect();
    // Delete, edit, a new bucket and the entry in it.
    assert_eq!(void.len(), 4);
    let docs: Vec<failup_wire::DocId> = a
        .inventory()
        .expect("inv")
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(
        docs.len(),
        2,
        "the thief's entry went into a bucket of its own"
    );

    // The thief's changes since `before`: its seq numbers past those it had then.
    let thief = r.signer.as_ref().expect("signer").device();
    let seen: std::collections::BTreeMap<failup_wire::DocId, u64> = docs
        .iter()
        .map(|d| {
            let mut am = a.document(*d).expect("doc").expect("held");
            let max = am
                .get_changes_meta(&[])
                .iter()
                .filter(|m| before.contains(&m.hash.0))
                .map(|m| m.seq)
                .max()
                .unwrap_or(0);
            (*d, max)
        })
        .collect();
    let undone: Vec<Undone> = docs
        .iter()
        .map(|d| {
            let limit = seen.get(d).copied().unwrap_or(0);
            a.undo(*d, &|w, seq| w == thief && seq > limit, t(7))
                .expect("undo")
        })
        .collect();
    let found: std::collections::BTreeSet<[u8; 32]> = undone
        .iter()
        .flat_map(|u| u.void.iter().map(|(_, h)| *h))
        .collect();
    assert_eq!(found, void);
    assert_eq!(undone.iter().map(|u| u.entries).sum::<usize>(), 3);
    assert_eq!(
        a.get(kept.id).expect("get").map(|e| e.text).as_deref(),
        Some("kept as it was")
    );
    assert_eq!(
        a.get(edited.id).expect("get").map(|e| e.text).as_deref(),
        Some("the original words")
    );
    assert!(a.get(planted.id).expect("get").is_none());
    assert!(
        a.get(honest.id).expect("get").is_some(),
        "nothing else undone"
    );
    assert_eq!(a.check().expect("check").mismatches, 0);
    // Once undone, nothing more to write; and the undo syncs like any change.
    for d in &docs {
        let limit = seen.get(d).copied().unwrap_or(0);
        let again = a.undo(*d, &|w, seq| w == thief && seq > limit, t(8));
        assert_eq!(again.expect("again").entries, 0);
    }
    let dc = tempfile::tempdir().expect("tmp");
    let mut c = open(&dc);
    sync_all(&mut a, &mut c);
    for d in &docs {
        let limit = seen.get(d).copied().unwrap_or(0);
        let again = c.undo(*d, &|w, seq| w == thief && seq > limit, t(9));
        assert_eq!(again.expect("converged").entries, 0);
    }

    assert_eq!(
        c.list(&Filter::default(), None).expect("list"),
        a.list(&Filter::default(), None).expect("list")
    );
}

#[test]
fn a_vouch_for_a_change_after_a_sealed_one_or_for_a_second_history_is_refused() {
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (mut a, mut b) = (open(&da), open(&db));
    a.log(new("sealed story"), t(1), day(1)).expect("log");
    let doc = a.inventory().expect("inv")[0].0;
    let (data, seals) = a.saved_document(doc).expect("saved").expect("held");
    assert!(
        b.receive_whole(doc, &data, &pending(&seals), &Open)
            .expect("sealed")
    );
    // A device b trusts writes after the sealed changes under a random actor id and vouches
    // for it, as if it were from before seals.
    let signer = failup_auth::Signer::generate().expect("key");
    ALL.with(|x| x.borrow_mut().insert(signer.device()));
    let mut am = b.document(doc).expect("doc").expect("held");
    let before = am.get_heads();
    let mut forged = am.fork().with_actor(automerge::ActorId::random());
    {
        use automerge::transaction::Transactable;
        forged.put(automerge::ROOT, "planted", 1).expect("put");
        forged.commit();
    }
    let change = forged.save_after(&before);
    let hash = forged.get_heads()[0].0;
    let vouched = pending(&[signer.seal(failup_auth::Kind::Vouched, doc, hash)]);
    let r = b.receive_whole(doc, &change, &vouched, &Open);
    assert!(
        matches!(&r, Err(StoreError::Refused { reason, .. }) if reason.contains("follows a sealed one")),
        "{r:?}"
    );
    // A second history, vouched for, in a document b holds.
    let mut root = automerge::AutoCommit::new().with_actor(automerge::ActorId::random());
    {
        use automerge::transaction::Transactable;
        root.put(automerge::ROOT, "other", 1).expect("put");
        root.commit();
    }
    let hash = root.get_heads()[0].0;
    let vouched = pending(&[signer.seal(failup_auth::Kind::Vouched, doc, hash)]);
    let r = b.receive_whole(doc, &root.save(), &vouched, &Open);
    assert!(
        matches!(&r, Err(StoreError::Refused { reason, .. }) if reason.contains("second history")),
        "{r:?}"
    );
    am = b.document(doc).expect("doc").expect("held");
    assert_eq!(am.get_heads(), before, "nothing of either kept");
    // Sealed as written by the same device, the change goes in.
    let mut honest = am
        .fork()
        .with_actor(automerge::ActorId::from(signer.actor()));
    {
        use automerge::transaction::Transactable;
        honest.put(automerge::ROOT, "honest", 1).expect("put");
        honest.commit();
    }
    let hash = honest.get_heads()[0].0;
    let sealed = pending(&[signer.seal(failup_auth::Kind::Wrote, doc, hash)]);
    assert!(
        b.receive_whole(doc, &honest.save_after(&before), &sealed, &Open)
            .expect("sealed as written")
    );
}

/// Lets write one device, and every device listed at the root's `devices` map of the
/// document as it is given: a partner's side names its writers this way.
struct Listing(failup_wire::DeviceId);
impl Gate for Listing {
    fn is_device_actor(&self, _: &[u8]) -> bool {
        false
    }
    fn names_writers(&self, _: failup_wire::DocId) -> bool {
        true
    }
    fn writers(&self, _: failup_wire::DocId, doc: &automerge::AutoCommit) -> Writers {
        use automerge::ReadDoc;
        let mut out: std::collections::BTreeSet<_> = [self.0].into();
        if let Ok(Some((_, devices))) = doc.get(automerge::ROOT, "devices") {
            out.extend(
                doc.keys(&devices)
                    .filter_map(|k| k.parse::<failup_wire::DeviceId>().ok()),
            );
        }
        Writers::Only(out)
    }
}

#[test]
fn a_device_is_a_writer_only_if_what_came_before_its_change_names_it() {
    use automerge::transaction::Transactable;
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = open(&dir);
    let (p, x) = (
        failup_auth::Signer::generate().expect("key"),
        failup_auth::Signer::generate().expect("key"),
    );
    let doc = failup_wire::DocId([0x77; 16]);
    let gate = Listing(p.device());
    let sealed = |am: &mut automerge::AutoCommit,
                  before: &[automerge::ChangeHash],
                  s: &failup_auth::Signer| {
        let seals: Vec<_> = am
            .get_changes(before)
            .iter()
            .map(|c| s.seal(failup_auth::Kind::Wrote, doc, c.hash().0))
            .collect();
        (am.save_after(before), pending(&seals))
    };
    // P starts the document.
    let mut am = automerge::AutoCommit::new().with_actor(automerge::ActorId::from(p.actor()));
    am.put_object(automerge::ROOT, "devices", automerge::ObjType::Map)
        .expect("devices");
    am.commit();
    let (data, seals) = sealed(&mut am, &[], &p);
    assert!(store.receive_whole(doc, &data, &seals, &gate).expect("p's"));
    // X lists itself in the change it writes: refused.
    let before = am.get_heads();
    let mut by_x = am.fork().with_actor(automerge::ActorId::from(x.actor()));
    let (_, devices) = by_x
        .get(automerge::ROOT, "devices")
        .expect("read")
        .expect("devices");
    by_x.put(&devices, x.device().to_string(), true)
        .expect("list");
    by_x.put(automerge::ROOT, "comment", "from x").expect("put");
    by_x.commit();
    let (data, seals) = sealed(&mut by_x, &before, &x);
    let r = store.receive_whole(doc, &data, &seals, &gate);
    assert!(
        matches!(&r, Err(StoreError::Refused { reason, .. }) if reason.contains("not named a writer")),
        "{r:?}"
    );
    // P lists X, and X's change that follows, in one message: both go in.
    let (_, devices) = am
        .get(automerge::ROOT, "devices")
        .expect("read")
        .expect("devices");
    am.put(&devices, x.device().to_string(), true)
        .expect("list");
    am.commit();
    let listed = am.get_heads();
    let mut then_x = am.fork().with_actor(automerge::ActorId::from(x.actor()));
    then_x
        .put(automerge::ROOT, "comment", "from x")
        .expect("put");
    then_x.commit();
    let (mut data, mut seals) = sealed(&mut am, &before, &p);
    let (more, more_seals) = sealed(&mut then_x, &listed, &x);
    data.extend(more);
    seals.extend(more_seals);
    assert!(
        store
            .receive_whole(doc, &data, &seals, &gate)
            .expect("listed first")
    );
}
