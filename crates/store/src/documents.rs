//! Documents as stored: a snapshot followed by incremental changes, written so that a write
//! costs the change and not the document's history, re-snapshotted by compaction.

use redb::ReadableTable;

use crate::index::*;
use crate::schema::*;
use crate::{COMPACT_AFTER_CHANGES, Db, Store, StoreError};

impl Store {
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
            // Every document, read as Automerge alone: the circle and the sides of spaces are
            // documents too, and not buckets.
            for doc in docs {
                let am = {
                    let snapshots = txn.open_table(SNAPSHOTS)?;
                    let changes = txn.open_table(CHANGES)?;
                    read_doc(&snapshots, &changes, doc, actor)?
                };
                if let Some(mut am) = am {
                    snapshot(txn, doc, &mut am)?;
                }
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
        match &mut self.db {
            Db::Writable(db) => while db.compact()? {},
            Db::ReadOnly(_) => return Err(StoreError::ReadOnly(self.path.clone())),
        }
        Ok(())
    }

    /// Remembers a document changed here, for [`Store::take_changed_docs`]. The copy loaded for
    /// syncing is replaced by `current` (the document as just written, so offering the change to
    /// peers costs no reload) or dropped.
    pub(crate) fn note_local_change(&mut self, doc: u128, current: Option<automerge::AutoCommit>) {
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
    pub fn take_changed_docs(&mut self) -> Vec<failup_wire::DocId> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(failup_wire::DocId::from_u128)
            .collect()
    }
}

/// Any document as stored, whatever its layout; `None` if this device does not hold it.
pub(crate) fn read_doc(
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
pub(crate) fn put_heads(
    txn: &redb::WriteTransaction,
    doc: u128,
    heads: &[automerge::ChangeHash],
) -> Result<(), StoreError> {
    let bytes: Vec<u8> = heads.iter().flat_map(|h| h.0).collect();
    txn.open_table(HEADS)?.insert(doc, bytes.as_slice())?;
    Ok(())
}

/// A seal as `seals-1` stores it: kind, key, signature (the hash is in the key).
pub(crate) fn seal_value(seal: &failup_wire::Seal) -> [u8; 97] {
    let mut out = [0u8; 97];
    out[0] = seal.kind;
    out[1..33].copy_from_slice(&seal.key);
    out[33..].copy_from_slice(&seal.sig);
    out
}

/// A stored seal back; `None` if the row is not 97 bytes.
pub(crate) fn seal_from(hash: [u8; 32], value: &[u8]) -> Option<failup_wire::Seal> {
    let (&kind, rest) = value.split_first()?;
    let (key, sig) = rest.split_at_checked(32)?;
    Some(failup_wire::Seal {
        hash,
        kind,
        key: key.try_into().ok()?,
        sig: sig.try_into().ok()?,
    })
}

/// Seals every change of `am` since `since` that this device wrote, in the transaction that
/// stores them (see `SEALS`).
pub(crate) fn seal_own(
    txn: &redb::WriteTransaction,
    doc: u128,
    am: &mut automerge::AutoCommit,
    since: &[automerge::ChangeHash],
    signer: Option<&failup_auth::Signer>,
) -> Result<(), StoreError> {
    let Some(signer) = signer else {
        return Ok(());
    };
    let actor = signer.actor();
    let id = failup_wire::DocId::from_u128(doc);
    let mut seals = txn.open_table(SEALS)?;
    for m in am.get_changes_meta(since) {
        if m.actor.to_bytes() == actor.as_slice() {
            let seal = signer.seal(failup_auth::Kind::Wrote, id, m.hash.0);
            seals.insert((doc, m.hash.0), seal_value(&seal).as_slice())?;
        }
    }
    Ok(())
}

/// Appends the changes made since `heads` to the document's change log (sealing those this
/// device wrote), snapshotting the document instead once the log is long.
pub(crate) fn persist(
    txn: &redb::WriteTransaction,
    doc: u128,
    am: &mut automerge::AutoCommit,
    heads: &[automerge::ChangeHash],
    signer: Option<&failup_auth::Signer>,
) -> Result<(), StoreError> {
    seal_own(txn, doc, am, heads, signer)?;
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
pub(crate) fn snapshot(
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
