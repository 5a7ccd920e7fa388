//! The store's schema: its redb tables, each with what its keys and values are, the schema
//! version, and what opening a store of an older schema does to it.

use std::path::Path;

use redb::{ReadableTable, TableDefinition};

use crate::documents::*;
use crate::{Store, StoreError};

/// Key: setting name. Value: its bytes.
/// Settings: `actor` (16 bytes, this device's Automerge actor id), `open-bucket` (16 bytes,
/// little-endian document id of the bucket new entries go to), `schema` (u32 LE).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta-1");
/// Key: document id. Value: the document saved whole (Automerge's compressed format).
pub(crate) const SNAPSHOTS: TableDefinition<u128, &[u8]> = TableDefinition::new("snapshots-1");
/// Key: (document id, sequence number). Value: one incremental save of that document.
pub(crate) const CHANGES: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("changes-1");
/// Key: document id. Value: the document's heads, 32-byte change hashes concatenated. Kept so
/// that telling a peer what this device holds never loads a document.
pub(crate) const HEADS: TableDefinition<u128, &[u8]> = TableDefinition::new("heads-1");
/// Key: entry id. Value: (id of the document holding it, its day as `YYYYMMDD`).
pub(crate) const ENTRIES: TableDefinition<u128, (u128, u32)> = TableDefinition::new("entries-1");
/// Key: (day as `YYYYMMDD`, entry id). Value: the entry's index record (`record.rs`).
pub(crate) const BY_DAY: TableDefinition<(u32, u128), &[u8]> = TableDefinition::new("by-day-1");

/// Key: (document id, change hash). Value: the change's seal without its hash: kind (1 byte),
/// signer's public key (32), signature (64); see `failup_auth`.
///
/// Invariant: every change a store with a signer holds has its seal here, so sending any
/// change can prove who wrote it: changes written here are sealed in the transaction that
/// writes them, changes received are stored only with a seal that checked out, and changes
/// from before seals existed are vouched for once ([`Store::set_signer`]).
pub(crate) const SEALS: TableDefinition<(u128, [u8; 32]), &[u8]> = TableDefinition::new("seals-1");

/// The store schema this build writes. 2 added `heads-1`; 3 added `seals-1`.
pub(crate) const SCHEMA: u32 = 3;

impl Store {
    /// Creates the tables and this device's actor id on first use; checks the schema after.
    pub(crate) fn init_meta(&mut self) -> Result<[u8; 16], StoreError> {
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
                (Some(s), Some(actor)) => {
                    drop(meta);
                    drop(read);
                    self.migrate(s, actor)?;
                    return Ok(actor);
                }
                _ => return Err(not_a_store(&self.path, "its settings table is incomplete")),
            }
        }
        drop(read);
        let actor: [u8; 16] = rand::random();
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("schema", SCHEMA.to_le_bytes().as_slice())?;
            meta.insert("actor", actor.as_slice())?;
            txn.open_table(SNAPSHOTS)?;
            txn.open_table(CHANGES)?;
            txn.open_table(ENTRIES)?;
            txn.open_table(BY_DAY)?;
            txn.open_table(HEADS)?;
            txn.open_table(SEALS)?;
        }
        txn.commit()?;
        Ok(actor)
    }

    /// Brings an older store to this schema: from 1, records every document's heads; from 2,
    /// adds the empty seals table (the changes held are vouched for once a signer is set).
    pub(crate) fn migrate(&mut self, from: u32, actor: [u8; 16]) -> Result<(), StoreError> {
        if self.read_only() {
            return Err(not_a_store(
                &self.path,
                format!(
                    "it was written with schema {from} and needs an upgrade, which needs write access"
                ),
            ));
        }
        let txn = self.begin_write()?;
        txn.open_table(SEALS)?;
        if from >= 2 {
            txn.open_table(META)?
                .insert("schema", SCHEMA.to_le_bytes().as_slice())?;
            txn.commit()?;
            return Ok(());
        }
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
}

pub(crate) fn not_a_store(path: &Path, err: impl std::fmt::Display) -> StoreError {
    StoreError::NotAStore {
        path: path.to_owned(),
        reason: err.to_string(),
    }
}
