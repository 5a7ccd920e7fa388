//! How entries map onto Automerge documents.
//!
//! A journal is split into *buckets*: plain Automerge documents that each hold up to
//! [`BUCKET_CAPACITY`] entries. A device fills its own open bucket and starts a new one when it
//! is full, so the cost of writing one entry (load the bucket, add a change) does not grow with
//! the journal, while the per-document overhead stays small next to one document per entry.
//! docs/ARCHITECTURE.md has the measurements behind the capacity.
//!
//! Document shape, version 1 (every key optional unless noted, absent means "no value"):
//!
//! ```text
//! { "failup": "journal/1",                      -- required, marks the layout
//!   "id": Bytes,                                -- the document's own id, so no two buckets
//!                                               -- ever share a first change
//!   "entries": { "<ENTRY ULID>": {
//!       "created": Timestamp, "updated": Timestamp, "day": "YYYY-MM-DD", "text": Str,  -- required
//!       "scale": "micro"|"macro", "area": Str, "feeling": Uint,
//!       "tags": { "<tag>": true },              -- a map, so concurrent adds are all kept
//!       "lesson": Str, "muscle": Str, "use": Str, "next": Str,
//!       "iterations": { "<ITERATION ULID>": { "at": Timestamp, "tried": Str, "outcome": Str } },
//!       "closed_at": Timestamp } } }
//! ```
//!
//! Text fields are scalar strings, not Automerge Text: they cost far less to store and load, and
//! a concurrent edit of the same field resolves to one whole value (Automerge's deterministic
//! winner) rather than an interleaving of two rewrites.

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::hydrate::{Map as HMap, Value as HValue};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use jiff::Timestamp;
use jiff::civil::Date;

use crate::JournalError;
use crate::entry::{Entry, EntryId, EntryPatch, Iteration, IterationId, MAX_ITERATIONS, MAX_TAGS};

/// Entries a device puts in one bucket before it starts a new one.
pub const BUCKET_CAPACITY: usize = 256;
/// The value of the root `failup` key for this layout.
pub const LAYOUT_MARK: &str = "journal/1";

/// One Automerge document holding a group of entries.
pub struct Bucket {
    doc: AutoCommit,
    entries: ObjId,
}

/// Runs a call into Automerge with bytes from outside (disk or a peer); automerge has panicked
/// on malformed input before, and a panic must become an error, never a dead process. The one
/// guard of the workspace: the store and the journal both go through it.
pub fn guarded<T>(f: impl FnOnce() -> Result<T, JournalError>) -> Result<T, JournalError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(JournalError::Corrupt(
            "automerge panicked on this document".into(),
        ))
    })
}

/// [`guarded`] for a call that fails with Automerge's own error: both a panic and an error say
/// the document is corrupt.
pub fn guarded_automerge<T>(
    f: impl FnOnce() -> Result<T, automerge::AutomergeError>,
) -> Result<T, JournalError> {
    guarded(|| f().map_err(am))
}

fn am(e: automerge::AutomergeError) -> JournalError {
    JournalError::Corrupt(e.to_string())
}

fn commit(doc: &mut AutoCommit, message: &str, now: Timestamp) {
    doc.commit_with(
        CommitOptions::default()
            .with_message(message)
            .with_time(now.as_second()),
    );
}

impl Bucket {
    /// Starts an empty bucket written by `actor`, whose document id is `id`.
    pub fn create(actor: &[u8], id: [u8; 16], now: Timestamp) -> Result<Bucket, JournalError> {
        let mut doc = AutoCommit::new().with_actor(actor.into());
        doc.put(ROOT, "failup", LAYOUT_MARK).map_err(am)?;
        doc.put(ROOT, "id", ScalarValue::Bytes(id.to_vec()))
            .map_err(am)?;
        let entries = doc.put_object(ROOT, "entries", ObjType::Map).map_err(am)?;
        commit(&mut doc, "create bucket", now);
        Ok(Bucket { doc, entries })
    }

    /// Loads a bucket from a saved document followed by any number of incremental saves, all of
    /// them outside bytes: anything malformed is an error.
    pub fn load<'a>(
        snapshot: &[u8],
        increments: impl IntoIterator<Item = &'a [u8]>,
        actor: &[u8],
    ) -> Result<Bucket, JournalError> {
        guarded(|| {
            let mut doc = AutoCommit::load(snapshot)
                .map_err(am)?
                .with_actor(actor.into());
            for inc in increments {
                doc.load_incremental(inc).map_err(am)?;
            }
            Bucket::from_doc(doc)
        })
    }

    /// Wraps a loaded document, checking that it is a journal bucket of this layout.
    pub fn from_doc(doc: AutoCommit) -> Result<Bucket, JournalError> {
        guarded(|| {
            let entries = match doc.get(ROOT, "entries").map_err(am)? {
                Some((automerge::Value::Object(ObjType::Map), id)) => id,
                _ => return Err(JournalError::Corrupt("document has no entries map".into())),
            };
            match doc.get(ROOT, "failup").map_err(am)? {
                Some((automerge::Value::Scalar(s), _)) if s.as_str() == Some(LAYOUT_MARK) => {}
                _ => {
                    return Err(JournalError::Corrupt(
                        "document is not a failup journal bucket of a known version".into(),
                    ));
                }
            }
            Ok(Bucket { doc, entries })
        })
    }

    /// The underlying Automerge document.
    pub fn into_doc(self) -> AutoCommit {
        self.doc
    }

    /// The underlying Automerge document, to save or sync it.
    pub fn doc_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    /// Number of entries in the bucket.
    pub fn len(&self) -> usize {
        self.doc.length(&self.entries)
    }

    /// Whether the bucket holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole document, compressed, for a snapshot.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// The document's current heads, to pass to [`Bucket::changes_since`] after an edit.
    pub fn heads(&mut self) -> Vec<automerge::ChangeHash> {
        self.doc.get_heads()
    }

    /// The changes made after `heads`, as one incremental save.
    pub fn changes_since(&mut self, heads: &[automerge::ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    fn entry_obj(&self, id: EntryId) -> Result<Option<ObjId>, JournalError> {
        match self.doc.get(&self.entries, id.to_string()).map_err(am)? {
            Some((automerge::Value::Object(ObjType::Map), obj)) => Ok(Some(obj)),
            Some(_) => Err(JournalError::Corrupt(format!("entry {id} is not a map"))),
            None => Ok(None),
        }
    }

    /// Ids of every entry in the bucket.
    pub fn ids(&self) -> Result<Vec<EntryId>, JournalError> {
        self.doc.keys(&self.entries).map(|k| k.parse()).collect()
    }

    /// One entry, if the bucket holds it.
    pub fn entry(&self, id: EntryId) -> Result<Option<Entry>, JournalError> {
        guarded(|| {
            let Some(obj) = self.entry_obj(id)? else {
                return Ok(None);
            };
            match self.doc.hydrate(&obj, None).map_err(am)? {
                HValue::Map(map) => read_entry(id, &map).map(Some),
                _ => Err(JournalError::Corrupt(format!("entry {id} is not a map"))),
            }
        })
    }

    /// Every entry in the bucket, in id order.
    pub fn entries(&self) -> Result<Vec<Entry>, JournalError> {
        guarded(
            || match self.doc.hydrate(&self.entries, None).map_err(am)? {
                HValue::Map(map) => {
                    let mut out = Vec::with_capacity(map.len());
                    for (key, value) in map.iter() {
                        let id: EntryId = key.parse()?;
                        match &value.value {
                            HValue::Map(m) => out.push(read_entry(id, m)?),
                            _ => {
                                return Err(JournalError::Corrupt(format!(
                                    "entry {id} is not a map"
                                )));
                            }
                        }
                    }
                    out.sort_by_key(|e| e.id);
                    Ok(out)
                }
                _ => Err(JournalError::Corrupt("entries is not a map".into())),
            },
        )
    }

    /// Adds entries, all in one change.
    pub fn insert(&mut self, entries: &[Entry], now: Timestamp) -> Result<(), JournalError> {
        guarded(|| self.insert_inner(entries, now))
    }

    fn insert_inner(&mut self, entries: &[Entry], now: Timestamp) -> Result<(), JournalError> {
        for entry in entries {
            entry.validate()?;
            if self.entry_obj(entry.id)?.is_some() {
                return Err(JournalError::Invalid(format!(
                    "entry {} already exists",
                    entry.id
                )));
            }
            self.doc
                .batch_create_object(
                    &self.entries,
                    entry.id.to_string(),
                    &HValue::Map(entry_value(entry)),
                    false,
                )
                .map_err(am)?;
        }
        commit(&mut self.doc, "log", now);
        Ok(())
    }

    /// Applies a patch to one entry as one change and returns the entry as it now reads.
    pub fn apply(
        &mut self,
        id: EntryId,
        patch: &EntryPatch,
        now: Timestamp,
    ) -> Result<Entry, JournalError> {
        guarded(|| self.apply_inner(id, patch, now))
    }

    fn apply_inner(
        &mut self,
        id: EntryId,
        patch: &EntryPatch,
        now: Timestamp,
    ) -> Result<Entry, JournalError> {
        let obj = self.entry_obj(id)?.ok_or(JournalError::NotFound(id))?;
        let before = self.entry(id)?.ok_or(JournalError::NotFound(id))?;
        let d = &mut self.doc;
        let put_opt = |d: &mut AutoCommit, key: &str, v: &Option<String>| match v {
            Some(v) => d.put(&obj, key, v.as_str()).map(|_| ()),
            None => d.delete(&obj, key),
        };
        if let Some(text) = &patch.text {
            d.put(&obj, "text", text.as_str()).map_err(am)?;
        }
        if let Some(scale) = patch.scale {
            d.put(&obj, "scale", scale.as_str()).map_err(am)?;
        }
        if let Some(day) = patch.day {
            d.put(&obj, "day", day.to_string()).map_err(am)?;
        }
        if let Some(area) = &patch.area {
            put_opt(d, "area", area).map_err(am)?;
        }
        if let Some(feeling) = patch.feeling {
            match feeling {
                Some(f) => d.put(&obj, "feeling", u64::from(f)).map(|_| ()),
                None => d.delete(&obj, "feeling"),
            }
            .map_err(am)?;
        }
        for (key, value) in [
            ("lesson", &patch.lesson),
            ("muscle", &patch.muscle),
            ("use", &patch.use_it),
            ("next", &patch.next),
        ] {
            if let Some(value) = value {
                put_opt(d, key, value).map_err(am)?;
            }
        }
        if let Some(closed) = patch.closed_at {
            match closed {
                Some(t) => d
                    .put(
                        &obj,
                        "closed_at",
                        ScalarValue::Timestamp(t.as_millisecond()),
                    )
                    .map(|_| ()),
                None => d.delete(&obj, "closed_at"),
            }
            .map_err(am)?;
        }
        if !patch.add_tags.is_empty() || !patch.remove_tags.is_empty() {
            let after: BTreeSet<&String> = before
                .tags
                .iter()
                .chain(&patch.add_tags)
                .filter(|t| !patch.remove_tags.contains(t))
                .collect();
            if after.len() > MAX_TAGS {
                return Err(JournalError::Invalid(format!(
                    "an entry may carry at most {MAX_TAGS} tags"
                )));
            }
            let tags = child_map(d, &obj, "tags")?;
            for tag in &patch.remove_tags {
                d.delete(&tags, tag.as_str()).map_err(am)?;
            }
            for tag in &patch.add_tags {
                d.put(&tags, tag.as_str(), true).map_err(am)?;
            }
        }
        if let Some(iteration) = &patch.iteration {
            if before.iterations.len() >= MAX_ITERATIONS {
                return Err(JournalError::Invalid(format!(
                    "an entry may carry at most {MAX_ITERATIONS} iterations"
                )));
            }
            let iterations = child_map(d, &obj, "iterations")?;
            d.batch_create_object(
                &iterations,
                iteration.id.to_string(),
                &HValue::Map(iteration_value(iteration)),
                false,
            )
            .map_err(am)?;
        }
        d.put(
            &obj,
            "updated",
            ScalarValue::Timestamp(now.as_millisecond()),
        )
        .map_err(am)?;
        commit(d, "edit", now);
        self.entry(id)?.ok_or(JournalError::NotFound(id))
    }

    /// Removes an entry. A concurrent edit of the same entry on another device does not bring it
    /// back: Automerge's map delete wins over changes inside the deleted object.
    pub fn remove(&mut self, id: EntryId, now: Timestamp) -> Result<(), JournalError> {
        guarded(|| {
            if self.entry_obj(id)?.is_none() {
                return Err(JournalError::NotFound(id));
            }
            self.doc.delete(&self.entries, id.to_string()).map_err(am)?;
            commit(&mut self.doc, "delete", now);
            Ok(())
        })
    }
}

/// The layout mark of a document (`journal/1` for a bucket), if it has one.
pub fn layout_of(doc: &AutoCommit) -> Option<String> {
    match doc.get(ROOT, "failup") {
        Ok(Some((automerge::Value::Scalar(s), _))) => s.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Ids of the bucket entries that differ between two states of a document: those added,
/// changed or removed. Used to refresh the index after changes arrive from a peer.
pub fn changed_entries(
    doc: &mut AutoCommit,
    before: &[automerge::ChangeHash],
    after: &[automerge::ChangeHash],
) -> Result<Vec<EntryId>, JournalError> {
    guarded(|| {
        let entries = match doc.get(ROOT, "entries").map_err(am)? {
            Some((automerge::Value::Object(ObjType::Map), id)) => id,
            _ => return Ok(Vec::new()),
        };
        let mut ids = BTreeSet::new();
        for patch in doc.diff(before, after) {
            // A patch inside an entry has the entry's key second in its path; a patch on the
            // entries map itself names the entry as its key.
            let key = match (patch.path.get(1), &patch.action) {
                (Some((obj, automerge::Prop::Map(k))), _) if *obj == entries => Some(k.clone()),
                (None, automerge::PatchAction::PutMap { key, .. })
                | (None, automerge::PatchAction::DeleteMap { key })
                    if patch.obj == entries =>
                {
                    Some(key.clone())
                }
                _ => None,
            };
            if let Some(id) = key.and_then(|k| k.parse::<EntryId>().ok()) {
                ids.insert(id);
            }
        }
        Ok(ids.into_iter().collect())
    })
}

/// Finds the nested map at `key`, creating it if an older writer left it out.
fn child_map(d: &mut AutoCommit, obj: &ObjId, key: &str) -> Result<ObjId, JournalError> {
    match d.get(obj, key).map_err(am)? {
        Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
        _ => d.put_object(obj, key, ObjType::Map).map_err(am),
    }
}

fn ts(t: Timestamp) -> HValue {
    HValue::Scalar(ScalarValue::Timestamp(t.as_millisecond()))
}

fn s(v: &str) -> HValue {
    HValue::Scalar(ScalarValue::Str(v.into()))
}

fn iteration_value(it: &Iteration) -> HMap {
    let mut m: HashMap<&str, HValue> = HashMap::new();
    m.insert("at", ts(it.at));
    m.insert("tried", s(&it.tried));
    if let Some(outcome) = it.outcome {
        m.insert("outcome", s(outcome.as_str()));
    }
    m.into()
}

fn entry_value(e: &Entry) -> HMap {
    let mut m: HashMap<&str, HValue> = HashMap::new();
    m.insert("created", ts(e.created));
    m.insert("updated", ts(e.updated));
    m.insert("day", s(&e.day.to_string()));
    m.insert("text", s(&e.text));
    m.insert("scale", s(e.scale.as_str()));
    for (key, value) in [
        ("area", &e.area),
        ("lesson", &e.lesson),
        ("muscle", &e.muscle),
        ("use", &e.use_it),
        ("next", &e.next),
    ] {
        if let Some(v) = value {
            m.insert(key, s(v));
        }
    }
    if let Some(f) = e.feeling {
        m.insert("feeling", HValue::Scalar(ScalarValue::Uint(u64::from(f))));
    }
    if let Some(t) = e.closed_at {
        m.insert("closed_at", ts(t));
    }
    let tags: HashMap<String, HValue> = e
        .tags
        .iter()
        .map(|t| (t.clone(), HValue::Scalar(ScalarValue::Boolean(true))))
        .collect();
    m.insert("tags", HValue::Map(tags.into()));
    let iterations: HashMap<String, HValue> = e
        .iterations
        .iter()
        .map(|it| (it.id.to_string(), HValue::Map(iteration_value(it))))
        .collect();
    m.insert("iterations", HValue::Map(iterations.into()));
    m.into()
}

fn corrupt(id: EntryId, field: &str) -> JournalError {
    JournalError::Corrupt(format!("entry {id} has a malformed {field}"))
}

fn get_str(id: EntryId, m: &HMap, key: &str) -> Result<Option<String>, JournalError> {
    match m.get(key) {
        None | Some(HValue::Scalar(ScalarValue::Null)) => Ok(None),
        Some(HValue::Scalar(ScalarValue::Str(v))) => Ok(Some(v.to_string())),
        Some(_) => Err(corrupt(id, key)),
    }
}

fn get_ts(id: EntryId, m: &HMap, key: &str) -> Result<Option<Timestamp>, JournalError> {
    match m.get(key) {
        None | Some(HValue::Scalar(ScalarValue::Null)) => Ok(None),
        Some(HValue::Scalar(ScalarValue::Timestamp(ms) | ScalarValue::Int(ms))) => {
            Timestamp::from_millisecond(*ms)
                .map(Some)
                .map_err(|_| corrupt(id, key))
        }
        Some(_) => Err(corrupt(id, key)),
    }
}

fn read_iteration(id: EntryId, key: &str, value: &HValue) -> Result<Iteration, JournalError> {
    let HValue::Map(m) = value else {
        return Err(corrupt(id, "iteration"));
    };
    Ok(Iteration {
        id: key.parse::<IterationId>()?,
        at: get_ts(id, m, "at")?.ok_or_else(|| corrupt(id, "iteration time"))?,
        tried: get_str(id, m, "tried")?.ok_or_else(|| corrupt(id, "iteration"))?,
        outcome: get_str(id, m, "outcome")?
            .map(|o| o.parse())
            .transpose()
            .map_err(|_| corrupt(id, "iteration outcome"))?,
    })
}

fn read_entry(id: EntryId, m: &HMap) -> Result<Entry, JournalError> {
    let req_ts = |key| get_ts(id, m, key)?.ok_or_else(|| corrupt(id, key));
    let day: Date = get_str(id, m, "day")?
        .ok_or_else(|| corrupt(id, "day"))?
        .parse()
        .map_err(|_| corrupt(id, "day"))?;
    let feeling = match m.get("feeling") {
        None | Some(HValue::Scalar(ScalarValue::Null)) => None,
        Some(HValue::Scalar(ScalarValue::Uint(f))) => {
            Some(u8::try_from(*f).map_err(|_| corrupt(id, "feeling"))?)
        }
        Some(HValue::Scalar(ScalarValue::Int(f))) => {
            Some(u8::try_from(*f).map_err(|_| corrupt(id, "feeling"))?)
        }
        Some(_) => return Err(corrupt(id, "feeling")),
    };
    let tags = match m.get("tags") {
        None => BTreeSet::new(),
        Some(HValue::Map(tags)) => tags.iter().map(|(t, _)| t.clone()).collect(),
        Some(_) => return Err(corrupt(id, "tags")),
    };
    let mut iterations = match m.get("iterations") {
        None => Vec::new(),
        Some(HValue::Map(its)) => its
            .iter()
            .map(|(k, v)| read_iteration(id, k, &v.value))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(corrupt(id, "iterations")),
    };
    iterations.sort_by_key(|it| (it.at, it.id));
    Ok(Entry {
        id,
        created: req_ts("created")?,
        updated: req_ts("updated")?,
        day,
        text: get_str(id, m, "text")?.ok_or_else(|| corrupt(id, "text"))?,
        scale: get_str(id, m, "scale")?
            .map(|v| v.parse())
            .transpose()
            .map_err(|_| corrupt(id, "scale"))?
            .unwrap_or_default(),
        area: get_str(id, m, "area")?,
        tags,
        feeling,
        lesson: get_str(id, m, "lesson")?,
        muscle: get_str(id, m, "muscle")?,
        use_it: get_str(id, m, "use")?,
        next: get_str(id, m, "next")?,
        iterations,
        closed_at: get_ts(id, m, "closed_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{NewEntry, Outcome, Scale};

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).expect("valid")
    }

    fn entry(n: u64, text: &str) -> Entry {
        NewEntry {
            text: text.into(),
            tags: vec!["work".into()],
            feeling: Some(3),
            lesson: Some("slow down".into()),
            ..NewEntry::default()
        }
        .into_entry(
            EntryId::from_parts(1_700_000_000_000 + n, u128::from(n)),
            t(1_700_000_000_000),
            Date::constant(2026, 11, 23),
        )
        .expect("entry")
    }

    #[test]
    fn entries_round_trip_through_save_and_load() {
        let mut b = Bucket::create(&[1; 16], [7; 16], t(0)).expect("create");
        let e = entry(1, "missed the deadline");
        b.insert(std::slice::from_ref(&e), t(1)).expect("insert");
        let saved = b.save();
        let loaded = Bucket::load(&saved, [], &[1; 16]).expect("load");
        assert_eq!(loaded.entry(e.id).expect("read"), Some(e.clone()));
        assert_eq!(loaded.entries().expect("all"), vec![e]);
    }

    #[test]
    fn incremental_changes_rebuild_the_same_state() {
        let mut b = Bucket::create(&[1; 16], [7; 16], t(0)).expect("create");
        let snapshot = b.save();
        let e = entry(1, "first");
        let heads = b.heads();
        b.insert(std::slice::from_ref(&e), t(1)).expect("insert");
        let inc1 = b.changes_since(&heads);
        let heads = b.heads();
        let patch = EntryPatch {
            scale: Some(Scale::Macro),
            add_tags: vec!["health".into()],
            iteration: Some(Iteration {
                id: IterationId::from_parts(5, 5),
                at: t(5),
                tried: "asked for help".into(),
                outcome: Some(Outcome::Better),
            }),
            ..EntryPatch::default()
        };
        let edited = b.apply(e.id, &patch, t(6)).expect("apply");
        let inc2 = b.changes_since(&heads);
        let loaded =
            Bucket::load(&snapshot, [inc1.as_slice(), inc2.as_slice()], &[2; 16]).expect("load");
        assert_eq!(loaded.entry(e.id).expect("read"), Some(edited.clone()));
        assert_eq!(edited.scale, Scale::Macro);
        assert!(edited.tags.contains("health") && edited.tags.contains("work"));
        assert_eq!(edited.iterations.len(), 1);
        assert_eq!(edited.updated, t(6));
    }

    #[test]
    fn concurrent_tag_and_iteration_adds_are_all_kept() {
        let mut a = Bucket::create(&[1; 16], [7; 16], t(0)).expect("create");
        let e = entry(1, "shared entry");
        a.insert(std::slice::from_ref(&e), t(1)).expect("insert");
        let saved = a.save();
        let mut b = Bucket::load(&saved, [], &[2; 16]).expect("load");
        let add = |tag: &str, it: u64| EntryPatch {
            add_tags: vec![tag.into()],
            iteration: Some(Iteration {
                id: IterationId::from_parts(it, u128::from(it)),
                at: t(it as i64),
                tried: format!("try {it}"),
                outcome: None,
            }),
            ..EntryPatch::default()
        };
        a.apply(e.id, &add("a", 10), t(10)).expect("a");
        b.apply(e.id, &add("b", 11), t(11)).expect("b");
        a.doc.merge(&mut b.doc).expect("merge");
        b.doc.merge(&mut a.doc).expect("merge");
        let ea = a.entry(e.id).expect("read").expect("present");
        let eb = b.entry(e.id).expect("read").expect("present");
        assert_eq!(ea, eb);
        assert!(ea.tags.contains("a") && ea.tags.contains("b"));
        assert_eq!(ea.iterations.len(), 2);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Bucket::load(b"definitely not automerge", [], &[1; 16]).is_err());
        let mut b = Bucket::create(&[1; 16], [7; 16], t(0)).expect("create");
        let mut saved = b.save();
        saved.truncate(saved.len() / 2);
        assert!(Bucket::load(&saved, [], &[1; 16]).is_err());
        let other = AutoCommit::new().save();
        assert!(Bucket::load(&other, [], &[1; 16]).is_err());
    }

    #[test]
    fn changed_entries_names_what_a_merge_touched() {
        let mut a = Bucket::create(&[1; 16], [7; 16], t(0)).expect("create");
        let (e1, e2, e3) = (entry(1, "one"), entry(2, "two"), entry(3, "three"));
        a.insert(&[e1.clone(), e2.clone()], t(1)).expect("insert");
        let mut b = Bucket::load(&a.save(), [], &[2; 16]).expect("load");
        let before = b.heads();
        a.apply(
            e1.id,
            &EntryPatch {
                next: Some(Some("x".into())),
                ..EntryPatch::default()
            },
            t(2),
        )
        .expect("edit");
        a.remove(e2.id, t(3)).expect("remove");
        a.insert(std::slice::from_ref(&e3), t(4)).expect("insert");
        b.doc.merge(&mut a.doc).expect("merge");
        let after = b.heads();
        let mut changed = changed_entries(&mut b.doc, &before, &after).expect("diff");
        changed.sort();
        assert_eq!(changed, vec![e1.id, e2.id, e3.id]);
        assert_eq!(layout_of(&b.doc).as_deref(), Some(LAYOUT_MARK));
    }

    #[test]
    fn remove_deletes_and_unknown_is_not_found() {
        let mut b = Bucket::create(&[1; 16], [7; 16], t(0)).expect("create");
        let e = entry(1, "gone");
        b.insert(std::slice::from_ref(&e), t(1)).expect("insert");
        b.remove(e.id, t(2)).expect("remove");
        assert_eq!(b.entry(e.id).expect("read"), None);
        assert!(matches!(
            b.remove(e.id, t(3)),
            Err(JournalError::NotFound(_))
        ));
    }
}
