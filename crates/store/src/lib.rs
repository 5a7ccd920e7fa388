//! The journal on disk: Automerge bucket documents kept in one redb file, with an index that
//! answers listings without loading documents.
//!
//! Invariants, each kept by the function named:
//! - Every write is one redb transaction committed with fsync before the caller hears of
//!   success ([`Store::write`]); a process killed at any instant leaves either the old state or
//!   the new one.
//! - The index (`entries-1`, `by-day-1`) is derived from the documents and written in the same
//!   transaction as the change that alters them ([`Store::reindex`]), so the two never disagree;
//!   [`Store::check`] proves it.
//! - A document is its snapshot followed by its incremental changes in sequence order. A write
//!   appends one change, never rewrites the document, so its cost does not grow with history;
//!   after [`COMPACT_AFTER_CHANGES`] changes the document is snapshotted and its changes
//!   dropped, in one transaction ([`Store::persist`]).
//! - A device only ever appends to a bucket it created or to the bucket that holds the entry it
//!   edits; new entries go to the device's open bucket until it holds
//!   [`failup_journal::layout::BUCKET_CAPACITY`] entries.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use failup_journal::layout::BUCKET_CAPACITY;
use failup_journal::{Bucket, Entry, EntryId, EntryPatch, Filter, JournalError, NewEntry};
use jiff::Timestamp;
use jiff::civil::Date;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

/// Changes a document may collect before it is folded into a new snapshot.
pub const COMPACT_AFTER_CHANGES: usize = 32;
/// Candidates listed when an id prefix is ambiguous.
pub const MAX_CANDIDATES: usize = 10;
/// Pause between attempts to open a store another process holds.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Key: setting name. Value: its bytes.
/// Settings: `actor` (16 bytes, this device's Automerge actor id), `open-bucket` (16 bytes,
/// little-endian document id of the bucket new entries go to), `schema` (u32 LE).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta-1");
/// Key: document id. Value: the document saved whole (Automerge's compressed format).
const SNAPSHOTS: TableDefinition<u128, &[u8]> = TableDefinition::new("snapshots-1");
/// Key: (document id, sequence number). Value: one incremental save of that document.
const CHANGES: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("changes-1");
/// Key: document id. Value: the document's heads, 32-byte change hashes concatenated. Kept so
/// that telling a peer what this device holds never loads a document.
const HEADS: TableDefinition<u128, &[u8]> = TableDefinition::new("heads-1");
/// Key: entry id. Value: (id of the document holding it, its day as `YYYYMMDD`).
const ENTRIES: TableDefinition<u128, (u128, u32)> = TableDefinition::new("entries-1");
/// Key: (day as `YYYYMMDD`, entry id). Value: the entry's index record (`record.rs`).
const BY_DAY: TableDefinition<(u32, u128), &[u8]> = TableDefinition::new("by-day-1");

/// The store schema this build writes. 2 added `heads-1`.
const SCHEMA: u32 = 2;

/// Everything that can go wrong with a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process kept the store for longer than the caller was willing to wait.
    #[error("the journal at {0} is busy (another failup command or the daemon has it open)")]
    Busy(PathBuf),
    /// The file exists but is not a failup store, or is damaged beyond what redb repairs.
    #[error("{path} is not a readable failup store: {reason}")]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// What redb or the schema check said.
        reason: String,
    },
    /// The store was written by a newer failup.
    #[error("the store uses schema {0}, newer than this failup understands ({SCHEMA})")]
    NewerSchema(u32),
    /// No entry id starts with the given text.
    #[error("no entry matches {0:?}")]
    NoMatch(String),
    /// Several entry ids start with the given text.
    #[error("{prefix:?} is ambiguous: it matches {}{}", .candidates.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "), if *.more { ", ..." } else { "" })]
    Ambiguous {
        /// The text given.
        prefix: String,
        /// The first matching ids.
        candidates: Vec<EntryId>,
        /// Whether more ids match than are listed.
        more: bool,
    },
    /// A rule of the journal was broken, or a document does not read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A stored index record does not decode.
    #[error("corrupt index record: {0}")]
    Record(String),
    /// redb failed (I/O, a full disk, corruption found while reading).
    #[error("storage error: {0}")]
    Db(#[from] redb::Error),
    /// The file system refused an operation.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Entries added.
    pub added: usize,
    /// Entries skipped because the journal already held their id (or the file repeated it).
    pub skipped: usize,
}

/// What [`Store::check`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Documents loaded.
    pub documents: usize,
    /// Entries found in documents.
    pub entries: usize,
    /// Entries whose index record is missing or differs from the document.
    pub mismatches: usize,
}

/// Order of a scan over entries by the day they happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Oldest day first.
    OldestFirst,
    /// Newest day first.
    NewestFirst,
}

/// An open journal store. Holding it holds redb's exclusive file lock.
pub struct Store {
    db: Database,
    path: PathBuf,
    actor: [u8; 16],
    /// Documents loaded for syncing, kept between messages of an exchange.
    cache: std::collections::HashMap<u128, automerge::AutoCommit>,
    /// Documents changed by local writes since [`Store::take_changed_docs`].
    changed: Vec<u128>,
    /// Inside a group (see [`Store::begin_group`]): whether a commit is waiting for the flush.
    group: Option<bool>,
    /// Whole documents from peers read ahead on other threads (see [`Store::prepare_whole`]).
    prepared: std::collections::HashMap<u128, sync::Prepared>,
    /// Documents that are never journal buckets, whatever they say (see [`Store::set_foreign`]).
    foreign: std::collections::BTreeSet<u128>,
}

fn day_key(day: Date) -> u32 {
    // Dates before year 0 cannot be entered; the cast keeps the ordering for all others.
    (i32::from(day.year()) * 10_000 + i32::from(day.month()) * 100 + i32::from(day.day())).max(0)
        as u32
}

use record::{decode, encode};

fn not_a_store(path: &Path, err: impl std::fmt::Display) -> StoreError {
    StoreError::NotAStore {
        path: path.to_owned(),
        reason: err.to_string(),
    }
}

impl Store {
    /// Opens the store at `path`, creating it if the file does not exist, and waits up to `wait`
    /// for another process to let go of it.
    pub fn open(path: &Path, wait: Duration) -> Result<Store, StoreError> {
        let deadline = Instant::now() + wait;
        let existed = path.exists();
        let db = loop {
            match Database::builder().create(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(StoreError::Busy(path.to_owned()));
                }
                Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                    if e.kind() != std::io::ErrorKind::InvalidData =>
                {
                    return Err(StoreError::Io {
                        context: format!("cannot open {}", path.display()),
                        source: e,
                    });
                }
                Err(e) => return Err(not_a_store(path, e)),
            }
        };
        // Only a file this call created gets its mode set: an existing one keeps what its owner
        // chose.
        if !existed {
            restrict_permissions(path)?;
        }
        let mut store = Store {
            db,
            path: path.to_owned(),
            actor: [0; 16],
            cache: std::collections::HashMap::new(),
            changed: Vec::new(),
            group: None,
            prepared: std::collections::HashMap::new(),
            foreign: std::collections::BTreeSet::new(),
        };
        store.actor = store.init_meta()?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables and this device's actor id on first use; checks the schema after.
    fn init_meta(&mut self) -> Result<[u8; 16], StoreError> {
        let read = self.db.begin_read()?;
        if let Ok(meta) = read.open_table(META) {
            let schema = meta
                .get("schema")?
                .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
                .map(u32::from_le_bytes);
            let actor = meta
                .get("actor")?
                .and_then(|v| <[u8; 16]>::try_from(v.value()).ok());
            match (schema, actor) {
                (Some(s), _) if s > SCHEMA => return Err(StoreError::NewerSchema(s)),
                (Some(s), Some(actor)) if s == SCHEMA => return Ok(actor),
                (Some(_), Some(actor)) => {
                    drop(meta);
                    drop(read);
                    self.migrate(actor)?;
                    return Ok(actor);
                }
                _ => return Err(not_a_store(&self.path, "its settings table is incomplete")),
            }
        }
        drop(read);
        let actor: [u8; 16] = rand::random();
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("schema", SCHEMA.to_le_bytes().as_slice())?;
            meta.insert("actor", actor.as_slice())?;
            txn.open_table(SNAPSHOTS)?;
            txn.open_table(CHANGES)?;
            txn.open_table(ENTRIES)?;
            txn.open_table(BY_DAY)?;
            txn.open_table(HEADS)?;
        }
        txn.commit()?;
        Ok(actor)
    }

    /// Brings a schema 1 store to schema 2 by recording every document's heads.
    fn migrate(&mut self, actor: [u8; 16]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        let docs: Vec<u128> = txn
            .open_table(SNAPSHOTS)?
            .iter()?
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?;
        for doc in docs {
            if let Some(mut am) = read_doc(
                &txn.open_table(SNAPSHOTS)?,
                &txn.open_table(CHANGES)?,
                doc,
                &actor,
            )? {
                put_heads(&txn, doc, &am.get_heads())?;
            }
        }
        txn.open_table(META)?
            .insert("schema", SCHEMA.to_le_bytes().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Runs `f` in one write transaction and commits it: durably, unless inside a group.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&redb::WriteTransaction, &[u8; 16]) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write()?;
        if let Some(pending) = &mut self.group {
            txn.set_durability(redb::Durability::None)
                .map_err(redb::Error::from)?;
            *pending = true;
        }
        let out = f(&txn, &self.actor)?;
        txn.commit()?;
        Ok(out)
    }

    /// Starts a group of writes that become durable together at [`Store::end_group`]: each
    /// commit is atomic and visible at once, but only the group's end waits for the disk.
    ///
    /// Invariant: a caller must not report anything written inside a group as stored (to a
    /// user or a peer) before `end_group` returns `Ok`. A crash inside a group rolls the store
    /// back to its state before the group, whole and consistent: redb recovers to the last
    /// durable commit.
    pub fn begin_group(&mut self) {
        self.group.get_or_insert(false);
    }

    /// Ends a group: makes every commit since [`Store::begin_group`] durable with one fsync.
    /// On an error nothing of the group may be counted on, and the document cache, which may
    /// hold the group's changes, is dropped.
    pub fn end_group(&mut self) -> Result<(), StoreError> {
        if self.group.take() != Some(true) {
            return Ok(());
        }
        // An empty transaction committed with immediate durability persists every
        // non-durable commit before it.
        let flushed = self
            .db
            .begin_write()
            .map_err(redb::Error::from)
            .and_then(|txn| txn.commit().map_err(redb::Error::from));
        if flushed.is_err() {
            self.cache.clear();
        }
        Ok(flushed?)
    }

    /// Records a new entry and returns it as stored.
    pub fn log(&mut self, new: NewEntry, now: Timestamp, today: Date) -> Result<Entry, StoreError> {
        let ms = u64::try_from(now.as_millisecond()).unwrap_or(0);
        let entry = new.into_entry(EntryId::from_parts(ms, rand::random()), now, today)?;
        let (entry, doc, am) = self.write(|txn, actor| {
            let mut meta = txn.open_table(META)?;
            let open = meta
                .get("open-bucket")?
                .and_then(|v| <[u8; 16]>::try_from(v.value()).ok())
                .map(u128::from_le_bytes);
            let mut target = None;
            if let Some(doc) = open {
                // A bucket that no longer loads must not stop new entries: they go to a fresh
                // one, and `failup check` reports the damaged document.
                if let Ok(bucket) = load(txn, doc, actor) {
                    if bucket.len() < BUCKET_CAPACITY {
                        target = Some((doc, bucket));
                    }
                }
            }
            let (doc, mut bucket) = match target {
                Some(t) => t,
                None => {
                    let doc: u128 = rand::random();
                    let mut bucket = Bucket::create(actor, doc.to_be_bytes(), now)?;
                    txn.open_table(SNAPSHOTS)?
                        .insert(doc, bucket.save().as_slice())?;
                    meta.insert("open-bucket", doc.to_le_bytes().as_slice())?;
                    (doc, bucket)
                }
            };
            let heads = bucket.heads();
            bucket.insert(std::slice::from_ref(&entry), now)?;
            persist(txn, doc, bucket.doc_mut(), &heads)?;
            reindex(txn, doc, None, Some(&entry))?;
            Ok((entry, doc, bucket.into_doc()))
        })?;
        self.note_local_change(doc, Some(am));
        Ok(entry)
    }

    /// Remembers a document changed here, for [`Store::take_changed_docs`]. The copy loaded for
    /// syncing is replaced by `current` (the document as just written, so offering the change to
    /// peers costs no reload) or dropped.
    fn note_local_change(&mut self, doc: u128, current: Option<automerge::AutoCommit>) {
        self.cache.remove(&doc);
        if let Some(am) = current {
            self.keep_loaded(doc, am);
        }
        if !self.changed.contains(&doc) {
            self.changed.push(doc);
        }
    }

    /// Documents changed by this store's own writes since the last call, so a daemon can offer
    /// them to connected peers.
    pub fn take_changed_docs(&mut self) -> Vec<u128> {
        std::mem::take(&mut self.changed)
    }

    /// Applies a change to an entry and returns it as it now reads.
    pub fn update(
        &mut self,
        id: EntryId,
        patch: EntryPatch,
        now: Timestamp,
    ) -> Result<Entry, StoreError> {
        let patch = patch.normalized()?;
        let (entry, doc, am) = self.write(|txn, actor| {
            let (doc, day) = locate(txn, id)?;
            let mut bucket = load(txn, doc, actor)?;
            let heads = bucket.heads();
            let entry = bucket.apply(id, &patch, now)?;
            persist(txn, doc, bucket.doc_mut(), &heads)?;
            reindex(txn, doc, Some((day, id)), Some(&entry))?;
            Ok((entry, doc, bucket.into_doc()))
        })?;
        self.note_local_change(doc, Some(am));
        Ok(entry)
    }

    /// Removes an entry and returns what it held.
    pub fn delete(&mut self, id: EntryId, now: Timestamp) -> Result<Entry, StoreError> {
        let (entry, doc, am) = self.write(|txn, actor| {
            let (doc, day) = locate(txn, id)?;
            let mut bucket = load(txn, doc, actor)?;
            let entry = bucket.entry(id)?.ok_or(JournalError::NotFound(id))?;
            let heads = bucket.heads();
            bucket.remove(id, now)?;
            persist(txn, doc, bucket.doc_mut(), &heads)?;
            reindex(txn, doc, Some((day, id)), None)?;
            Ok((entry, doc, bucket.into_doc()))
        })?;
        self.note_local_change(doc, Some(am));
        Ok(entry)
    }

    /// One entry by its full id.
    pub fn get(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        let read = self.db.begin_read()?;
        let Some(located) = read.open_table(ENTRIES)?.get(id.as_u128())? else {
            return Ok(None);
        };
        let (_, day) = located.value();
        match read.open_table(BY_DAY)?.get((day, id.as_u128()))? {
            Some(bytes) => decode(id.as_u128(), bytes.value()).map(Some),
            None => Err(StoreError::Record(format!(
                "entry {id} is missing from by-day"
            ))),
        }
    }

    /// Finds the one entry whose id starts with `prefix` (any case), as git does for commits.
    pub fn resolve(&self, prefix: &str) -> Result<EntryId, StoreError> {
        let p = prefix.trim().to_ascii_uppercase();
        let pad = |c: char| {
            format!(
                "{p}{}",
                c.to_string().repeat(26usize.saturating_sub(p.len()))
            )
        };
        let bad = || -> StoreError {
            JournalError::BadId {
                what: "entry id",
                value: prefix.chars().take(40).collect(),
            }
            .into()
        };
        if p.is_empty() || p.len() > 26 || !p.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        // Ids start with 0 to 7 (128 bits in 26 base32 characters): nothing starts higher.
        if !p.starts_with(|c: char| ('0'..='7').contains(&c)) {
            return Err(StoreError::NoMatch(prefix.into()));
        }
        let lo: EntryId = pad('0').parse().map_err(|_| bad())?;
        let hi: EntryId = pad('Z').parse().map_err(|_| bad())?;
        let read = self.db.begin_read()?;
        let table = read.open_table(ENTRIES)?;
        let mut found = Vec::new();
        for row in table
            .range(lo.as_u128()..=hi.as_u128())?
            .take(MAX_CANDIDATES + 1)
        {
            found.push(EntryId::from_u128(row?.0.value()));
        }
        match found.len() {
            0 => Err(StoreError::NoMatch(prefix.into())),
            1 => Ok(found[0]),
            n => {
                found.truncate(MAX_CANDIDATES);
                Err(StoreError::Ambiguous {
                    prefix: prefix.into(),
                    candidates: found,
                    more: n > MAX_CANDIDATES,
                })
            }
        }
    }

    /// Walks entries by the day they happened (ties by creation), within the filter's days,
    /// until `f` breaks.
    pub fn scan(
        &self,
        order: Order,
        since: Option<Date>,
        until: Option<Date>,
        mut f: impl FnMut(Entry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let read = self.db.begin_read()?;
        let table = read.open_table(BY_DAY)?;
        let lo = (since.map(day_key).unwrap_or(0), 0u128);
        let hi = (until.map(day_key).unwrap_or(u32::MAX), u128::MAX);
        let range = table.range(lo..=hi)?;
        let rows: Box<dyn Iterator<Item = _>> = match order {
            Order::OldestFirst => Box::new(range),
            Order::NewestFirst => Box::new(range.rev()),
        };
        for row in rows {
            let (key, value) = row?;
            if f(decode(key.value().1, value.value())?).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Entries matching `filter`, newest first, at most `limit` of them.
    pub fn list(&self, filter: &Filter, limit: Option<usize>) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        let limit = limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(out);
        }
        self.scan(Order::NewestFirst, filter.since, filter.until, |e| {
            if filter.matches(&e) {
                out.push(e);
            }
            if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }

    /// Number of entries.
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self.db.begin_read()?.open_table(ENTRIES)?.len()?)
    }

    /// Whether the journal has no entries.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Adds whole entries (from an export), skipping ids already present. All or nothing: the
    /// import is one transaction.
    pub fn import(
        &mut self,
        entries: Vec<Entry>,
        now: Timestamp,
    ) -> Result<ImportReport, StoreError> {
        let total = entries.len();
        let mut seen = HashSet::new();
        let fresh: Vec<Entry> = {
            let read = self.db.begin_read()?;
            let index = read.open_table(ENTRIES)?;
            let mut fresh = Vec::new();
            for e in entries {
                if seen.insert(e.id) && index.get(e.id.as_u128())?.is_none() {
                    fresh.push(e);
                }
            }
            fresh
        };
        let report = ImportReport {
            added: fresh.len(),
            skipped: total - fresh.len(),
        };
        if fresh.is_empty() {
            return Ok(report);
        }
        let docs = self.write(|txn, actor| {
            let mut snapshots = txn.open_table(SNAPSHOTS)?;
            let mut docs = Vec::new();
            let mut located = Vec::with_capacity(fresh.len());
            let mut records = Vec::with_capacity(fresh.len());
            for chunk in fresh.chunks(BUCKET_CAPACITY) {
                let doc: u128 = rand::random();
                docs.push(doc);
                let mut bucket = Bucket::create(actor, doc.to_be_bytes(), now)?;
                bucket.insert(chunk, now)?;
                snapshots.insert(doc, bucket.save().as_slice())?;
                put_heads(txn, doc, &bucket.heads())?;
                // Index what the document holds, not what the file said: the document is the
                // truth (it orders iterations, for one).
                for e in bucket.entries()? {
                    let day = day_key(e.day);
                    located.push((e.id.as_u128(), (doc, day)));
                    records.push(((day, e.id.as_u128()), encode(&e)?));
                }
            }
            drop(snapshots);
            insert_sorted(txn, located, records)?;
            Ok(docs)
        })?;
        for doc in docs {
            self.note_local_change(doc, None);
        }
        Ok(report)
    }

    /// Folds every document's pending changes into its snapshot, then returns free space in
    /// the file to the file system.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.write(|txn, actor| {
            let docs: Vec<u128> = {
                let changes = txn.open_table(CHANGES)?;
                let mut docs: Vec<u128> = Vec::new();
                for row in changes.iter()? {
                    let doc = row?.0.value().0;
                    if docs.last() != Some(&doc) {
                        docs.push(doc);
                    }
                }
                docs
            };
            for doc in docs {
                let mut bucket = load(txn, doc, actor)?;
                snapshot(txn, doc, bucket.doc_mut())?;
            }
            // Rewrite the index in key order so its pages are full again.
            let mut entries = txn.open_table(ENTRIES)?;
            let mut by_day = txn.open_table(BY_DAY)?;
            let located = entries
                .iter()?
                .map(|r| r.map(|(k, v)| (k.value(), v.value())))
                .collect::<Result<Vec<_>, _>>()?;
            let records = by_day
                .iter()?
                .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<Vec<_>, _>>()?;
            entries.retain(|_, _| false)?;
            by_day.retain(|_, _| false)?;
            drop((entries, by_day));
            insert_sorted(txn, located, records)
        })?;
        // redb wants a few passes to move every page down before it can truncate.
        while self.db.compact()? {}
        Ok(())
    }

    /// Loads every document and compares it with the index.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let read = self.db.begin_read()?;
        let snapshots = read.open_table(SNAPSHOTS)?;
        let changes = read.open_table(CHANGES)?;
        let entries = read.open_table(ENTRIES)?;
        let by_day = read.open_table(BY_DAY)?;
        let mut report = CheckReport::default();
        for row in snapshots.iter()? {
            let (doc, snap) = row?;
            let doc = doc.value();
            let incs: Vec<Vec<u8>> = changes
                .range((doc, 0)..=(doc, u64::MAX))?
                .map(|r| r.map(|(_, v)| v.value().to_vec()))
                .collect::<Result<_, _>>()?;
            let bucket =
                match Bucket::load(snap.value(), incs.iter().map(Vec::as_slice), &self.actor) {
                    Ok(b) => b,
                    // Device-level documents (the circle of devices) hold no entries.
                    Err(_) if self.is_device_doc(doc)? => continue,
                    Err(e) => return Err(e.into()),
                };
            report.documents += 1;
            for entry in bucket.entries()? {
                report.entries += 1;
                let indexed = match entries.get(entry.id.as_u128())? {
                    Some(loc) if loc.value().0 == doc => by_day
                        .get((loc.value().1, entry.id.as_u128()))?
                        .map(|v| decode(entry.id.as_u128(), v.value()))
                        .transpose()?,
                    _ => None,
                };
                if indexed.as_ref() != Some(&entry) {
                    report.mismatches += 1;
                }
            }
        }
        let indexed = entries.len()?;
        report.mismatches += usize::try_from(indexed)
            .unwrap_or(usize::MAX)
            .saturating_sub(report.entries);
        // Listings read by-day alone: every row there must be an indexed entry on that day.
        for row in by_day.iter()? {
            let (key, _) = row?;
            let (day, id) = key.value();
            if entries.get(id)?.map(|v| v.value().1) != Some(day) {
                report.mismatches += 1;
            }
        }
        Ok(report)
    }
}

/// Where an entry lives: its document and its day key.
fn locate(txn: &redb::WriteTransaction, id: EntryId) -> Result<(u128, u32), StoreError> {
    match txn.open_table(ENTRIES)?.get(id.as_u128())? {
        Some(v) => Ok(v.value()),
        None => Err(JournalError::NotFound(id).into()),
    }
}

/// A bucket as stored: its snapshot and then its changes in order.
fn load(txn: &redb::WriteTransaction, doc: u128, actor: &[u8; 16]) -> Result<Bucket, StoreError> {
    let snapshots = txn.open_table(SNAPSHOTS)?;
    let snap = snapshots
        .get(doc)?
        .ok_or_else(|| StoreError::Record(format!("document {doc:032x} has no snapshot")))?;
    let changes = txn.open_table(CHANGES)?;
    let incs: Vec<Vec<u8>> = changes
        .range((doc, 0)..=(doc, u64::MAX))?
        .map(|r| r.map(|(_, v)| v.value().to_vec()))
        .collect::<Result<_, _>>()?;
    Ok(Bucket::load(
        snap.value(),
        incs.iter().map(Vec::as_slice),
        actor,
    )?)
}

/// Any document as stored, whatever its layout; `None` if this device does not hold it.
fn read_doc(
    snapshots: &impl ReadableTable<u128, &'static [u8]>,
    changes: &impl ReadableTable<(u128, u64), &'static [u8]>,
    doc: u128,
    actor: &[u8; 16],
) -> Result<Option<automerge::AutoCommit>, StoreError> {
    let Some(snap) = snapshots.get(doc)? else {
        return Ok(None);
    };
    let incs: Vec<Vec<u8>> = changes
        .range((doc, 0)..=(doc, u64::MAX))?
        .map(|r| r.map(|(_, v)| v.value().to_vec()))
        .collect::<Result<_, _>>()?;
    let am = failup_journal::layout::guarded_automerge(|| {
        let mut am = automerge::AutoCommit::load(snap.value())?;
        for inc in &incs {
            am.load_incremental(inc)?;
        }
        Ok(am)
    })?;
    Ok(Some(am.with_actor(automerge::ActorId::from(actor))))
}

/// Records a document's heads.
fn put_heads(
    txn: &redb::WriteTransaction,
    doc: u128,
    heads: &[automerge::ChangeHash],
) -> Result<(), StoreError> {
    let bytes: Vec<u8> = heads.iter().flat_map(|h| h.0).collect();
    txn.open_table(HEADS)?.insert(doc, bytes.as_slice())?;
    Ok(())
}

/// Appends the changes made since `heads` to the document's change log, snapshotting the
/// document instead once the log is long.
fn persist(
    txn: &redb::WriteTransaction,
    doc: u128,
    am: &mut automerge::AutoCommit,
    heads: &[automerge::ChangeHash],
) -> Result<(), StoreError> {
    let bytes = am.save_after(heads);
    if bytes.is_empty() {
        return Ok(());
    }
    put_heads(txn, doc, &am.get_heads())?;
    let mut changes = txn.open_table(CHANGES)?;
    // Sequence numbers restart at 0 after each snapshot, so the next one is also the count.
    let next = changes
        .range((doc, 0)..=(doc, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, _)| k.value().1 + 1);
    if usize::try_from(next + 1).unwrap_or(usize::MAX) >= COMPACT_AFTER_CHANGES {
        drop(changes);
        return snapshot(txn, doc, am);
    }
    changes.insert((doc, next), bytes.as_slice())?;
    Ok(())
}

/// Replaces a document's snapshot with its current state and drops its change log.
fn snapshot(
    txn: &redb::WriteTransaction,
    doc: u128,
    am: &mut automerge::AutoCommit,
) -> Result<(), StoreError> {
    txn.open_table(SNAPSHOTS)?
        .insert(doc, am.save().as_slice())?;
    put_heads(txn, doc, &am.get_heads())?;
    let mut changes = txn.open_table(CHANGES)?;
    changes.retain_in((doc, 0)..=(doc, u64::MAX), |_, _| false)?;
    Ok(())
}

/// Inserts index rows in key order. redb fills pages densely when keys arrive in order and
/// leaves them about half empty when they arrive at random, which was a third of the file.
fn insert_sorted(
    txn: &redb::WriteTransaction,
    mut located: Vec<(u128, (u128, u32))>,
    mut records: Vec<((u32, u128), Vec<u8>)>,
) -> Result<(), StoreError> {
    located.sort_unstable_by_key(|(k, _)| *k);
    records.sort_unstable_by_key(|(k, _)| *k);
    let mut entries = txn.open_table(ENTRIES)?;
    for (id, loc) in located {
        entries.insert(id, loc)?;
    }
    let mut by_day = txn.open_table(BY_DAY)?;
    for (key, record) in records {
        by_day.insert(key, record.as_slice())?;
    }
    Ok(())
}

/// Brings the index in line with an entry's new state: `old` is its previous (day, id) key if it
/// was indexed, `new` its state now (`None` once deleted).
fn reindex(
    txn: &redb::WriteTransaction,
    doc: u128,
    old: Option<(u32, EntryId)>,
    new: Option<&Entry>,
) -> Result<(), StoreError> {
    let mut entries = txn.open_table(ENTRIES)?;
    let mut by_day = txn.open_table(BY_DAY)?;
    if let Some((day, id)) = old {
        by_day.remove((day, id.as_u128()))?;
        if new.is_none() {
            entries.remove(id.as_u128())?;
        }
    }
    if let Some(e) = new {
        let day = day_key(e.day);
        entries.insert(e.id.as_u128(), (doc, day))?;
        by_day.insert((day, e.id.as_u128()), encode(e)?.as_slice())?;
    }
    Ok(())
}

fn restrict_permissions(path: &Path) -> Result<(), StoreError> {
    failup_home::restrict(path, failup_home::PRIVATE_MODE).map_err(|e| StoreError::Io {
        context: e.context,
        source: e.source,
    })
}

mod record;
mod sync;
pub use sync::{Heads, Prepared};

#[cfg(test)]
mod tests;
