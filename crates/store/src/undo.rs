//! Undoing changes that the membership rules void: a revoked device's changes its revokers had
//! not seen, and changes by devices that never belonged. They stay in the document's history
//! (other changes may depend on them, and every device must hold the same history), and new
//! changes by this device put back what they touched, so every device converges on the journal
//! as it would read without them.
//!
//! What is put back is each entry a void change touched, as it reads in the document without
//! the void changes and what was built on them. An edit made on top of a void change to the
//! same entry goes with it; edits to other entries stay.

use std::collections::{BTreeSet, HashMap};

use automerge::AutoCommit;
use failup_journal::layout::{LAYOUT_MARK, changed_entries, guarded_automerge, layout_of};
use failup_journal::{Bucket, Entry, EntryId};
use failup_wire::DocId;
use jiff::Timestamp;
use redb::ReadableTable;

use crate::documents::*;
use crate::entries::load;
use crate::index::*;
use crate::schema::*;
use crate::{Store, StoreError};

/// What undoing void changes in one document did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Undone {
    /// The void changes found in the document, with who wrote them.
    pub void: Vec<(failup_wire::DeviceId, [u8; 32])>,
    /// Entries put back as they read without them.
    pub entries: usize,
}

/// A change's hash and dependencies.
type Meta = ([u8; 32], Vec<automerge::ChangeHash>);

/// The heads of the part of `am`'s history free of `void` and of everything built on it, and
/// the void changes it holds (with their dependencies).
fn clean_heads(
    am: &mut AutoCommit,
    void: &BTreeSet<[u8; 32]>,
) -> (Vec<automerge::ChangeHash>, Vec<Meta>) {
    let metas: Vec<Meta> = am
        .get_changes_meta(&[])
        .iter()
        .map(|m| (m.hash.0, m.deps.clone()))
        .collect();
    // Automerge lists changes after their dependencies, so one pass finds what is built on a
    // void change.
    let mut tainted: BTreeSet<[u8; 32]> = BTreeSet::new();
    let mut here = Vec::new();
    for (hash, deps) in &metas {
        if void.contains(hash) {
            here.push((*hash, deps.clone()));
            tainted.insert(*hash);
        } else if deps.iter().any(|d| tainted.contains(&d.0)) {
            tainted.insert(*hash);
        }
    }
    let kept: Vec<&Meta> = metas.iter().filter(|(h, _)| !tainted.contains(h)).collect();
    let depended: BTreeSet<[u8; 32]> = kept
        .iter()
        .flat_map(|(_, deps)| deps.iter().map(|d| d.0))
        .collect();
    let heads = kept
        .iter()
        .filter(|(h, _)| !depended.contains(h))
        .map(|(h, _)| automerge::ChangeHash(*h))
        .collect();
    (heads, here)
}

impl Store {
    /// Puts back what the void changes did to the journal bucket `doc`, with new changes by
    /// this device, durably. A change is void if `is_void` says so of its writer (as its seal
    /// names it) and its sequence number among that writer's changes. Idempotent: once what
    /// they touched reads as it would without them, nothing more is written. Documents other
    /// than buckets are left alone.
    pub fn undo(
        &mut self,
        doc: DocId,
        is_void: &dyn Fn(failup_wire::DeviceId, u64) -> bool,
        now: Timestamp,
    ) -> Result<Undone, StoreError> {
        let d = doc.as_u128();
        if self.foreign.contains(&d) {
            return Ok(Undone::default());
        }
        let Some(mut am) = self.document(doc)? else {
            return Ok(Undone::default());
        };
        if layout_of(&am).as_deref() != Some(LAYOUT_MARK) {
            return Ok(Undone::default());
        }
        let writers: HashMap<[u8; 32], failup_wire::DeviceId> = self
            .all_seals(doc)?
            .into_iter()
            .filter(|s| s.kind == 0)
            .map(|s| (s.hash, failup_auth::device_of(&s.key)))
            .collect();
        let mut void: Vec<(failup_wire::DeviceId, [u8; 32])> = Vec::new();
        for m in am.get_changes_meta(&[]) {
            if let Some(w) = writers.get(&m.hash.0) {
                if is_void(*w, m.seq) {
                    void.push((*w, m.hash.0));
                }
            }
        }
        let set: BTreeSet<[u8; 32]> = void.iter().map(|(_, h)| *h).collect();
        let (heads, here) = clean_heads(&mut am, &set);
        if here.is_empty() {
            return Ok(Undone::default());
        }
        let mut touched: BTreeSet<EntryId> = BTreeSet::new();
        for (hash, deps) in &here {
            touched.extend(changed_entries(
                &mut am,
                deps,
                &[automerge::ChangeHash(*hash)],
            )?);
        }
        // A bucket a void change created has nothing left without it.
        let clean = if heads.is_empty() {
            None
        } else {
            Some(Bucket::from_doc(guarded_automerge(|| am.fork_at(&heads))?)?)
        };
        let current = Bucket::from_doc(am)?;
        let mut fixes: HashMap<EntryId, Option<Entry>> = HashMap::new();
        for id in touched {
            let want = match &clean {
                Some(c) => c.entry(id)?,
                None => None,
            };
            if want != current.entry(id)? {
                fixes.insert(id, want);
            }
        }
        let report = Undone {
            void,
            entries: fixes.len(),
        };
        if fixes.is_empty() {
            return Ok(report);
        }
        let signer = self.signer.clone();
        let am = self.write(|txn, actor| {
            let mut bucket = load(txn, d, actor)?;
            let heads = bucket.heads();
            let mut reindexed = Vec::new();
            for (id, want) in &fixes {
                let old = txn
                    .open_table(ENTRIES)?
                    .get(id.as_u128())?
                    .map(|v| (v.value().1, *id));
                if bucket.entry(*id)?.is_some() {
                    bucket.remove(*id, now)?;
                }
                if let Some(e) = want {
                    bucket.insert(std::slice::from_ref(e), now)?;
                }
                reindexed.push((old, want.clone()));
            }
            persist(txn, d, bucket.doc_mut(), &heads, signer.as_deref())?;
            for (old, want) in reindexed {
                if old.is_some() || want.is_some() {
                    reindex(txn, d, old, want.as_ref())?;
                }
            }
            Ok(bucket.into_doc())
        })?;
        self.note_local_change(d, Some(am));
        Ok(report)
    }
}
