//! Undoing what the membership rules void, across the journal: the changes a revoked device
//! made that none of its revokers had seen (each revocation notes how far it had seen the
//! device's writing in each document), and every change by a device that never belonged (one
//! a revoked device paired, say). The store puts back what they touched with new changes
//! (`failup_store::Store::undo`), so every device that learns of a revocation converges on the
//! same journal.

use std::collections::{BTreeMap, BTreeSet};

use failup_wire::{DeviceId, DocId};
use jiff::Timestamp;

use crate::{Node, NodeError, UNDONE, circle, encode};

/// How far each revoked device's writing was seen, per document, by the revocations of it that
/// count.
type Seen = BTreeMap<DeviceId, BTreeMap<DocId, u64>>;

impl Node {
    /// How much of `device`'s writing this device holds: the highest sequence number of its
    /// changes in each document.
    pub(crate) fn seen_of(&self, device: DeviceId) -> Result<Vec<([u8; 16], u64)>, NodeError> {
        let actor = failup_auth::actor_of(&device);
        let mut out = Vec::new();
        for (doc, _) in self.store.inventory()? {
            let Some(mut am) = self.store.document(doc)? else {
                continue;
            };
            let max = am
                .get_changes_meta(&[])
                .iter()
                .filter(|m| m.actor.to_bytes() == actor.as_slice())
                .map(|m| m.seq)
                .max();
            if let Some(seq) = max {
                out.push((doc.0, seq));
            }
        }
        Ok(out)
    }

    /// What the revocations that count say was seen, and who belongs, from the circle.
    fn void_basis(&self) -> Option<(Seen, BTreeSet<DeviceId>)> {
        let v = self.verdict();
        if v.revoked.is_empty() {
            return None;
        }
        let mut doc = self
            .circle
            .and_then(|c| self.store.document(c).ok().flatten())?;
        let notes = circle::notes(&mut doc);
        let mut seen: Seen = v.revoked.keys().map(|d| (*d, BTreeMap::new())).collect();
        for (device, hashes) in &v.revoked {
            for h in hashes {
                for (d, note) in notes.get(h).into_iter().flatten() {
                    if d != device {
                        continue;
                    }
                    let per_doc = seen.entry(*device).or_default();
                    for (doc, seq) in &note.seen {
                        let e = per_doc.entry(DocId(*doc)).or_insert(0);
                        *e = (*e).max(*seq);
                    }
                }
            }
        }
        let mut belongs: BTreeSet<DeviceId> = v.members.iter().copied().collect();
        belongs.extend(v.revoked.keys().copied());
        belongs.extend(self.bootstrap.keys().copied());
        belongs.insert(self.device());
        Some((seen, belongs))
    }

    /// Undoes the void changes in `doc`, or in every bucket of the journal when a revocation
    /// (or who belongs) changed since the last pass.
    pub(crate) fn undo_void(
        &mut self,
        doc: Option<DocId>,
        now: Timestamp,
    ) -> Result<(), NodeError> {
        let Some((seen, belongs)) = self.void_basis() else {
            return Ok(());
        };
        let docs: Vec<DocId> = match doc {
            Some(d) => vec![d],
            None => {
                let basis = encode(&(
                    seen.iter()
                        .map(|(d, s)| (d.0, s.iter().map(|(k, v)| (k.0, *v)).collect::<Vec<_>>()))
                        .collect::<Vec<_>>(),
                    belongs.iter().map(|d| d.0).collect::<Vec<_>>(),
                ))?;
                if self.undo_basis.as_ref() == Some(&basis) {
                    return Ok(());
                }
                self.undo_basis = Some(basis);
                self.store
                    .inventory()?
                    .into_iter()
                    .map(|(d, _)| d)
                    .collect()
            }
        };
        let is_void = |writer: DeviceId, doc: DocId, seq: u64| match seen.get(&writer) {
            Some(per_doc) => seq > per_doc.get(&doc).copied().unwrap_or(0),
            None => !belongs.contains(&writer),
        };
        let before: usize = self.undone.values().map(BTreeSet::len).sum();
        let mut failed = None;
        for d in docs {
            if Some(d) == self.circle {
                continue;
            }
            match self.store.undo(d, &|w, seq| is_void(w, d, seq), now) {
                Ok(u) => {
                    if u.entries > 0 {
                        tracing::warn!(
                            "undid {} changes to {d} by revoked devices or devices that never \
                             belonged ({} entries put back)",
                            u.void.len(),
                            u.entries
                        );
                    }
                    for (w, h) in u.void {
                        self.undone.entry(w).or_default().insert(h);
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        if self.undone.values().map(BTreeSet::len).sum::<usize>() != before {
            let list: Vec<([u8; 32], Vec<[u8; 32]>)> = self
                .undone
                .iter()
                .map(|(d, hs)| (d.0, hs.iter().copied().collect()))
                .collect();
            self.store.set_setting(UNDONE, &encode(&list)?)?;
        }
        match failed {
            // Tried again on the next pass.
            Some(e) => {
                self.undo_basis = None;
                Err(e.into())
            }
            None => Ok(()),
        }
    }

    /// How many changes of `device` were found void and undone here.
    pub fn undone_of(&self, device: DeviceId) -> usize {
        self.undone.get(&device).map_or(0, BTreeSet::len)
    }

    /// Every writer with changes undone here, and how many.
    pub fn undone(&self) -> Vec<(DeviceId, usize)> {
        self.undone.iter().map(|(d, hs)| (*d, hs.len())).collect()
    }
}
