//! Documents held in memory: the engine's [`Documents`] for tests, simulations and examples.
//! They neither make nor check seals: the engine only carries seals, the store checks them
//! (failup-store's tests and the integration tests show it).

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ReadDoc};
use failup_wire::{DeviceId, DocId, InventoryItem, heads_digest};

use crate::{DocError, Documents, Seals};
use failup_wire::Seal;

/// Automerge documents in a map; every peer may sync every document, unless limited with
/// [`MemoryDocuments::limit`].
#[derive(Default)]
pub struct MemoryDocuments {
    docs: BTreeMap<DocId, AutoCommit>,
    limits: BTreeMap<DeviceId, BTreeSet<DocId>>,
    read_only: BTreeMap<DeviceId, BTreeSet<DocId>>,
}

impl MemoryDocuments {
    /// No documents.
    pub fn new() -> MemoryDocuments {
        MemoryDocuments::default()
    }

    /// Lets `peer` sync only `docs` (as a partner's device may sync only the shared spaces):
    /// other documents are left out of its inventory and refused when it asks or sends.
    pub fn limit(&mut self, peer: DeviceId, docs: impl IntoIterator<Item = DocId>) {
        self.limits.insert(peer, docs.into_iter().collect());
    }

    /// Takes no changes to `docs` from `peer` (as a partner's device may not write this
    /// person's side of a space): they are synced to it, never from it.
    pub fn read_only(&mut self, peer: DeviceId, docs: impl IntoIterator<Item = DocId>) {
        self.read_only.insert(peer, docs.into_iter().collect());
    }

    /// Adds or replaces a document.
    pub fn insert(&mut self, id: DocId, doc: AutoCommit) {
        self.docs.insert(id, doc);
    }

    /// A document, to read or edit. Tell the engine about edits with `Input::LocalChange`.
    pub fn get_mut(&mut self, id: DocId) -> Option<&mut AutoCommit> {
        self.docs.get_mut(&id)
    }

    /// Every document id held.
    pub fn ids(&self) -> impl Iterator<Item = DocId> + '_ {
        self.docs.keys().copied()
    }

    /// The heads of every document, to compare two holders.
    pub fn all_heads(&mut self) -> BTreeMap<DocId, Vec<automerge::ChangeHash>> {
        self.docs
            .iter_mut()
            .map(|(id, d)| (*id, d.get_heads()))
            .collect()
    }

    /// The document's content as JSON-like text, to compare two holders.
    pub fn render(&mut self, id: DocId) -> Option<String> {
        self.docs
            .get_mut(&id)
            .map(|d| format!("{:?}", d.hydrate(automerge::ROOT, None)))
    }
}

impl Documents for MemoryDocuments {
    fn saved(&mut self, doc: DocId) -> Result<Option<failup_wire::SealedDoc>, DocError> {
        Ok(self.docs.get_mut(&doc).map(|d| (d.save(), Vec::new())))
    }

    fn receive_whole(&mut self, doc: DocId, data: &[u8], _: &Seals) -> Result<bool, DocError> {
        let d = self.docs.entry(doc).or_default();
        let before = d.get_heads();
        catch_unwind(AssertUnwindSafe(|| d.load_incremental(data)))
            .map_err(|_| DocError("automerge panicked on a document".into()))?
            .map_err(|e| DocError(e.to_string()))?;
        Ok(d.get_heads() != before)
    }

    fn inventory(&mut self, peer: DeviceId) -> Result<Vec<InventoryItem>, DocError> {
        let limit = self.limits.get(&peer);
        Ok(self
            .docs
            .iter_mut()
            .filter(|(id, _)| limit.is_none_or(|l| l.contains(*id)))
            .map(|(id, d)| {
                let heads: Vec<[u8; 32]> = d.get_heads().iter().map(|h| h.0).collect();
                InventoryItem {
                    doc: *id,
                    heads: heads_digest(&heads),
                }
            })
            .collect())
    }

    fn may_sync(&mut self, peer: DeviceId, doc: DocId) -> bool {
        self.limits.get(&peer).is_none_or(|l| l.contains(&doc))
    }

    fn may_write(&mut self, peer: DeviceId, doc: DocId) -> bool {
        self.may_sync(peer, doc) && !self.read_only.get(&peer).is_some_and(|r| r.contains(&doc))
    }

    fn holds(&mut self, doc: DocId) -> bool {
        self.docs.contains_key(&doc)
    }

    fn generate(
        &mut self,
        doc: DocId,
        state: &mut sync::State,
    ) -> Result<Option<(sync::Message, Vec<Seal>)>, DocError> {
        let msg = match self.docs.get_mut(&doc) {
            Some(d) => d.sync().generate_sync_message(state),
            None => AutoCommit::new().sync().generate_sync_message(state),
        };
        Ok(msg.map(|m| (m, Vec::new())))
    }

    fn receive(
        &mut self,
        doc: DocId,
        state: &mut sync::State,
        msg: sync::Message,
        seals: &mut Seals,
    ) -> Result<bool, DocError> {
        let d = self.docs.entry(doc).or_default();
        let before = d.get_heads();
        catch_unwind(AssertUnwindSafe(|| {
            d.sync().receive_sync_message(state, msg)
        }))
        .map_err(|_| DocError("automerge panicked on a sync message".into()))?
        .map_err(|e| DocError(e.to_string()))?;
        seals.retain(|h, _| d.get_change_by_hash(&automerge::ChangeHash(*h)).is_none());
        let changed = d.get_heads() != before;
        if !changed && d.is_empty() {
            // A request for a document we never had leaves nothing behind.
            self.docs.remove(&doc);
        }
        Ok(changed)
    }
}
