//! The journal on disk: Automerge bucket documents kept in one redb file, with an index that
//! answers listings without loading documents.
//!
//! Invariants, each kept by the function named:
//! - Every write is one redb transaction committed with fsync before the caller hears of
//!   success ([`Store::write`]); a process killed at any instant leaves either the old state or
//!   the new one.
//! - The index (`entries-1`, `by-day-1`) is derived from the documents and written in the same
//!   transaction as the change that alters them (`index::reindex`), so the two never disagree;
//!   [`Store::check`] proves it.
//! - A document is its snapshot followed by its incremental changes in sequence order. A write
//!   appends one change, never rewrites the document, so its cost does not grow with history;
//!   after [`COMPACT_AFTER_CHANGES`] changes the document is snapshotted and its changes
//!   dropped, in one transaction (`documents::persist`).
//! - A device only ever appends to a bucket it created or to the bucket that holds the entry it
//!   edits; new entries go to the device's open bucket until it holds
//!   [`failup_journal::layout::BUCKET_CAPACITY`] entries.

//!
//! Code map: `schema` (the tables and migrations), `entries` (entry operations), `documents`
//! (how a document is stored and compacted), `index` (the index rows and `check`), `record`
//! (the index record's bytes), `sync` (the store's side of syncing).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use failup_journal::{Bucket, Entry, EntryId, JournalError};
use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable};

/// Changes a document may collect before it is folded into a new snapshot.
pub const COMPACT_AFTER_CHANGES: usize = 32;
/// Candidates listed when an id prefix is ambiguous.
pub const MAX_CANDIDATES: usize = 10;
/// Pause between attempts to open a store another process holds.
const LOCK_RETRY: Duration = Duration::from_millis(20);

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
    /// A change from outside was refused: its seal is missing or does not check out, or its
    /// signer may not write the document. Nothing of the message that carried it is kept.
    #[error("change {hash} refused: {reason}")]
    Refused {
        /// The change, in hex.
        hash: String,
        /// Why.
        reason: String,
    },
    /// The store could only be opened for reading (its file or the file system under it
    /// refuses writes), and this operation writes.
    #[error(
        "the journal at {0} is read-only here: reading works, but nothing can be changed (make the home writable, or copy it somewhere writable)"
    )]
    ReadOnly(PathBuf),
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

/// The redb file: open for writing, or for reading only where the file or the file system under
/// it refuses writes (a home on a read-only medium, a file of mode 0400). A person must be able
/// to read and export a journal they cannot change.
enum Db {
    Writable(Database),
    ReadOnly(ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Db::Writable(db) => db.begin_read(),
            Db::ReadOnly(db) => db.begin_read(),
        }
    }
}

/// An open journal store. Holding it holds redb's exclusive file lock (a shared one when it is
/// open for reading only).
pub struct Store {
    db: Db,
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
    /// The device key: changes written here are sealed with it (see [`Store::set_signer`]).
    signer: Option<std::sync::Arc<failup_auth::Signer>>,
}

/// What the store asks before it keeps a change from outside, once the change's seal checked
/// out: the rules of who may write what belong to the node, which knows the circle and the
/// partners.
pub trait Gate {
    /// Whether `actor` is the actor id of a device this device knows, which no vouch may
    /// stand for.
    fn is_device_actor(&self, actor: &[u8]) -> bool;
    /// The devices that may write `doc`, which reads as `incoming` with the new changes
    /// applied (a document may name further writers, as a partner's side names the partner's
    /// devices).
    fn writers(&self, doc: failup_wire::DocId, incoming: &automerge::AutoCommit) -> Writers;
    /// Whether [`Gate::writers`] of `doc` reads the document's content. For such a document a
    /// change is admitted only by the writers its own causal past names, so a device can
    /// neither list itself in the change it writes nor be listed after the fact.
    fn names_writers(&self, _doc: failup_wire::DocId) -> bool {
        false
    }
}

/// Who may write a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writers {
    /// Any device whose seal checks out: a document whose rules are read from its changes
    /// (the circle, where a change by a device that does not belong counts for nothing).
    Anyone,
    /// These devices only.
    Only(std::collections::BTreeSet<failup_wire::DeviceId>),
}

impl Writers {
    /// Whether `device` may write.
    pub fn admit(&self, device: failup_wire::DeviceId) -> bool {
        match self {
            Writers::Anyone => true,
            Writers::Only(set) => set.contains(&device),
        }
    }
}

/// Seals received for changes not yet applied, by change hash.
pub type PendingSeals = std::collections::BTreeMap<[u8; 32], failup_wire::Seal>;

impl Store {
    /// Opens the store at `path`, creating it if the file does not exist, and waits up to `wait`
    /// for another process to let go of it.
    pub fn open(path: &Path, wait: Duration) -> Result<Store, StoreError> {
        let deadline = Instant::now() + wait;
        let existed = path.exists();
        let db = loop {
            match Database::builder().create(path) {
                Ok(db) => break Db::Writable(db),
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(StoreError::Busy(path.to_owned()));
                }
                Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                    if existed && refuses_writes(&e) =>
                {
                    break Db::ReadOnly(open_read_only(path, e)?);
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
            signer: None,
        };
        store.actor = store.init_meta()?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store is open for reading only: every write fails with
    /// [`StoreError::ReadOnly`].
    pub fn read_only(&self) -> bool {
        matches!(self.db, Db::ReadOnly(_))
    }

    /// A write transaction, or [`StoreError::ReadOnly`].
    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        match &self.db {
            Db::Writable(db) => Ok(db.begin_write()?),
            Db::ReadOnly(_) => Err(StoreError::ReadOnly(self.path.clone())),
        }
    }

    /// Runs `f` in one write transaction and commits it: durably, unless inside a group.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&redb::WriteTransaction, &[u8; 16]) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.begin_write()?;
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
            .begin_write()
            .and_then(|txn| txn.commit().map_err(StoreError::from));
        if flushed.is_err() {
            self.cache.clear();
        }
        flushed
    }
}

/// Whether an error opening the store for writing means the file or its file system refuses
/// writes, so that reading may still work.
fn refuses_writes(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Opens an existing store for reading only; `why` is the error that refused writing, reported
/// if reading is refused too.
fn open_read_only(path: &Path, why: std::io::Error) -> Result<ReadOnlyDatabase, StoreError> {
    match redb::Builder::new().open_read_only(path) {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::Busy(path.to_owned())),
        // A file last closed by a killed process needs a repair, which redb does only with
        // write access.
        Err(redb::DatabaseError::RepairAborted) => Err(not_a_store(
            path,
            format!(
                "it was not closed cleanly and needs a repair, which needs write access ({why})"
            ),
        )),
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))) => Err(StoreError::Io {
            context: format!("cannot open {}", path.display()),
            source: e,
        }),
        Err(e) => Err(not_a_store(path, format!("{e} (opened read-only: {why})"))),
    }
}

fn restrict_permissions(path: &Path) -> Result<(), StoreError> {
    failup_home::restrict(path, failup_home::PRIVATE_MODE).map_err(|e| StoreError::Io {
        context: e.context,
        source: e.source,
    })
}

mod documents;
mod entries;
mod index;
mod record;
mod schema;
mod sync;
mod undo;
use documents::*;
use index::*;
use record::encode;
use schema::*;
pub use sync::{Heads, Prepared};
pub use undo::Undone;

#[cfg(test)]
mod tests;
