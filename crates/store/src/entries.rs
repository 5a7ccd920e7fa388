//! Entry operations: logging, editing, deleting, reading, listing and importing entries, each
//! one redb transaction that changes a bucket document and its index rows together.

use std::collections::HashSet;
use std::ops::ControlFlow;

use failup_journal::layout::BUCKET_CAPACITY;
use failup_journal::{Bucket, Entry, EntryId, EntryPatch, Filter, JournalError, NewEntry};
use jiff::Timestamp;
use jiff::civil::Date;
use redb::{ReadableTable, ReadableTableMetadata};

use crate::documents::*;
use crate::index::*;
use crate::record::{decode, encode};
use crate::schema::*;
use crate::{ImportReport, MAX_CANDIDATES, Order, Store, StoreError};

impl Store {
    /// Records a new entry and returns it as stored.
    pub fn log(&mut self, new: NewEntry, now: Timestamp, today: Date) -> Result<Entry, StoreError> {
        let ms = u64::try_from(now.as_millisecond()).unwrap_or(0);
        let entry = new.into_entry(EntryId::from_parts(ms, rand::random()), now, today)?;
        let signer = self.signer.clone();
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
                    seal_own(txn, doc, bucket.doc_mut(), &[], signer.as_deref())?;
                    txn.open_table(SNAPSHOTS)?
                        .insert(doc, bucket.save().as_slice())?;
                    meta.insert("open-bucket", doc.to_le_bytes().as_slice())?;
                    (doc, bucket)
                }
            };
            let heads = bucket.heads();
            bucket.insert(std::slice::from_ref(&entry), now)?;
            persist(txn, doc, bucket.doc_mut(), &heads, signer.as_deref())?;
            reindex(txn, doc, None, Some(&entry))?;
            Ok((entry, doc, bucket.into_doc()))
        })?;
        self.note_local_change(doc, Some(am));
        Ok(entry)
    }

    /// Applies a change to an entry and returns it as it now reads.
    pub fn update(
        &mut self,
        id: EntryId,
        patch: EntryPatch,
        now: Timestamp,
    ) -> Result<Entry, StoreError> {
        let patch = patch.normalized()?;
        let signer = self.signer.clone();
        let (entry, doc, am) = self.write(|txn, actor| {
            let (doc, day) = locate(txn, id)?;
            let mut bucket = load(txn, doc, actor)?;
            let heads = bucket.heads();
            let entry = bucket.apply(id, &patch, now)?;
            persist(txn, doc, bucket.doc_mut(), &heads, signer.as_deref())?;
            reindex(txn, doc, Some((day, id)), Some(&entry))?;
            Ok((entry, doc, bucket.into_doc()))
        })?;
        self.note_local_change(doc, Some(am));
        Ok(entry)
    }

    /// Removes an entry and returns what it held.
    pub fn delete(&mut self, id: EntryId, now: Timestamp) -> Result<Entry, StoreError> {
        let signer = self.signer.clone();
        let (entry, doc, am) = self.write(|txn, actor| {
            let (doc, day) = locate(txn, id)?;
            let mut bucket = load(txn, doc, actor)?;
            let entry = bucket.entry(id)?.ok_or(JournalError::NotFound(id))?;
            let heads = bucket.heads();
            bucket.remove(id, now)?;
            persist(txn, doc, bucket.doc_mut(), &heads, signer.as_deref())?;
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

    /// Finds the one entry whose id starts with `prefix` (any case), as git does for commits;
    /// `last` is the newest entry.
    pub fn resolve(&self, prefix: &str) -> Result<EntryId, StoreError> {
        let p = prefix.trim().to_ascii_uppercase();
        // `last`: the newest entry. Ids begin with their creation time, so it is the last key.
        // (No id prefix can be `LAST`: ids start with 0 to 7, and L is not a digit of theirs.)
        if p == "LAST" {
            let read = self.db.begin_read()?;
            let table = read.open_table(ENTRIES)?;
            return match table.last()? {
                Some((k, _)) => Ok(EntryId::from_u128(k.value())),
                None => Err(StoreError::NoMatch(prefix.into())),
            };
        }
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
        let signer = self.signer.clone();
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
                seal_own(txn, doc, bucket.doc_mut(), &[], signer.as_deref())?;
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
}

/// Where an entry lives: its document and its day key.
pub(crate) fn locate(txn: &redb::WriteTransaction, id: EntryId) -> Result<(u128, u32), StoreError> {
    match txn.open_table(ENTRIES)?.get(id.as_u128())? {
        Some(v) => Ok(v.value()),
        None => Err(JournalError::NotFound(id).into()),
    }
}

/// A bucket as stored: its snapshot and then its changes in order.
pub(crate) fn load(
    txn: &redb::WriteTransaction,
    doc: u128,
    actor: &[u8; 16],
) -> Result<Bucket, StoreError> {
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
