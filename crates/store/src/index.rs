//! The index over the documents: `entries-1` (where each entry lives) and `by-day-1` (the
//! entries by day, as records), rewritten from a document's new state by the write that changes
//! it, and checked against the documents by [`Store::check`].

use failup_journal::{Bucket, Entry, EntryId};
use jiff::civil::Date;
use redb::{ReadableTable, ReadableTableMetadata};

use crate::record::{decode, encode};
use crate::schema::*;
use crate::{CheckReport, Store, StoreError};

impl Store {
    /// Loads every document of the journal (not the circle, nor the sides of spaces named by
    /// [`Store::set_foreign`]) and compares it with the index.
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
            // A side of a space is never the journal, whatever it holds: the index leaves it
            // out, and so does the check.
            if self.foreign.contains(&doc) {
                continue;
            }
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

pub(crate) fn day_key(day: Date) -> u32 {
    // Dates before year 0 cannot be entered; the cast keeps the ordering for all others.
    (i32::from(day.year()) * 10_000 + i32::from(day.month()) * 100 + i32::from(day.day())).max(0)
        as u32
}

/// Inserts index rows in key order. redb fills pages densely when keys arrive in order and
/// leaves them about half empty when they arrive at random, which was a third of the file.
pub(crate) fn insert_sorted(
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
pub(crate) fn reindex(
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
