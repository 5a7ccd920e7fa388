//! The store's side of syncing: what this device holds, Automerge sync messages generated from
//! stored documents, and received changes made durable and indexed in one transaction before
//! the engine answers the peer.

use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use failup_journal::layout::{LAYOUT_MARK, changed_entries, guarded, guarded_automerge, layout_of};

use failup_wire::{DocId, Seal};

use super::*;

/// Documents kept loaded between the messages of sync exchanges. Past this the cache is
/// emptied: a bucket reloads in under 2 ms, and memory stays bounded however many documents a
/// first sync walks through.
const MAX_CACHED_DOCS: usize = 64;

/// A document's heads: the hashes of its latest changes.
pub type Heads = Vec<[u8; 32]>;

/// A document's stored heads as change hashes.
fn parse_heads(bytes: &[u8]) -> Heads {
    bytes
        .chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok())
        .collect()
}

/// A whole document from a peer, read ahead of [`Store::receive_whole`] by
/// [`Store::prepare_whole`].
pub struct Prepared {
    doc: u128,
    data: Vec<u8>,
    read: Result<(AutoCommit, Option<Vec<Entry>>), StoreError>,
}

/// Loads a whole saved document, and when it is a journal bucket, reads its entries for the
/// index. `None` entries: another kind of document (the circle), indexed by nothing.
fn read_whole(data: &[u8]) -> Result<(AutoCommit, Option<Vec<Entry>>), StoreError> {
    failup_journal::inflate::check_inflated(data)?;
    // A whole load of a saved document is far cheaper than replaying it into an empty one.
    let am = guarded_automerge(|| AutoCommit::load(data))?;
    if layout_of(&am).as_deref() != Some(LAYOUT_MARK) {
        return Ok((am, None));
    }
    let bucket = Bucket::from_doc(am)?;
    let entries = bucket.entries()?;
    Ok((bucket.into_doc(), Some(entries)))
}

/// The setting that says every change held was sealed once (see [`Store::set_signer`]).
const VOUCHED: &str = "sealed-all";

/// A seal as stored: the change hash and `seals-1`'s value.
type SealRow = ([u8; 32], [u8; 97]);

/// Stores checked seals of received changes.
fn put_seals(txn: &redb::WriteTransaction, doc: u128, rows: &[SealRow]) -> Result<(), StoreError> {
    let mut table = txn.open_table(SEALS)?;
    for (hash, value) in rows {
        table.insert((doc, *hash), value.as_slice())?;
    }
    Ok(())
}

impl Store {
    /// Every document this device holds, with its heads, in id order.
    pub fn inventory(&self) -> Result<Vec<(DocId, Heads)>, StoreError> {
        let read = self.db.begin_read()?;
        let heads = read.open_table(HEADS)?;
        let mut out = Vec::new();
        for row in heads.iter()? {
            let (k, v) = row?;
            out.push((DocId::from_u128(k.value()), parse_heads(v.value())));
        }
        Ok(out)
    }

    /// The heads of one document, if held.
    pub fn heads(&self, doc: DocId) -> Result<Option<Heads>, StoreError> {
        let read = self.db.begin_read()?;
        Ok(read
            .open_table(HEADS)?
            .get(doc.as_u128())?
            .map(|v| parse_heads(v.value())))
    }

    /// Whether this device holds `doc`.
    pub fn holds(&self, doc: DocId) -> Result<bool, StoreError> {
        let doc = doc.as_u128();
        if self.cache.contains_key(&doc) {
            return Ok(true);
        }
        let read = self.db.begin_read()?;
        Ok(read.open_table(SNAPSHOTS)?.get(doc)?.is_some())
    }

    /// Whether a stored document carries a layout mark other than a journal bucket's, as the
    /// daemon's circle document does.
    pub(crate) fn is_device_doc(&self, doc: u128) -> Result<bool, StoreError> {
        Ok(self
            .document(DocId::from_u128(doc))?
            .and_then(|d| layout_of(&d))
            .is_some_and(|mark| mark != LAYOUT_MARK))
    }

    /// A copy of a stored document, whatever its layout.
    pub fn document(&self, doc: DocId) -> Result<Option<AutoCommit>, StoreError> {
        let doc = doc.as_u128();
        if let Some(d) = self.cache.get(&doc) {
            return Ok(Some(d.clone()));
        }
        let read = self.db.begin_read()?;
        read_doc(
            &read.open_table(SNAPSHOTS)?,
            &read.open_table(CHANGES)?,
            doc,
            &self.actor,
        )
    }

    /// A device-level setting (the daemon's circle document id, for one).
    pub fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let read = self.db.begin_read()?;
        Ok(read
            .open_table(META)?
            .get(format!("daemon/{key}").as_str())?
            .map(|v| v.value().to_vec()))
    }

    /// Sets a device-level setting durably.
    pub fn set_setting(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(|txn, _| {
            txn.open_table(META)?
                .insert(format!("daemon/{key}").as_str(), value)?;
            Ok(())
        })
    }

    /// Removes a device-level setting durably.
    pub fn remove_setting(&mut self, key: &str) -> Result<(), StoreError> {
        self.write(|txn, _| {
            txn.open_table(META)?
                .remove(format!("daemon/{key}").as_str())?;
            Ok(())
        })
    }

    /// A new, empty document written by this device, to fill and pass to
    /// [`Store::write_document`].
    pub fn new_document(&self) -> AutoCommit {
        AutoCommit::new().with_actor(automerge::ActorId::from(&self.actor))
    }

    /// Makes a device-level document's changes since `before` durable (the circle of devices,
    /// for one); journal entries go through [`Store::log`] and friends instead.
    pub fn write_document(
        &mut self,
        doc: DocId,
        am: &mut AutoCommit,
        before: &[automerge::ChangeHash],
    ) -> Result<(), StoreError> {
        let doc = doc.as_u128();
        let existed = self.holds(DocId::from_u128(doc))?;
        let signer = self.signer.clone();
        self.write(|txn, _| {
            if existed {
                persist(txn, doc, am, before, signer.as_deref())
            } else {
                seal_own(txn, doc, am, &[], signer.as_deref())?;
                snapshot(txn, doc, am)
            }
        })?;
        self.note_local_change(doc, None);
        Ok(())
    }

    fn take_loaded(&mut self, doc: u128) -> Result<(AutoCommit, bool), StoreError> {
        if let Some(d) = self.cache.remove(&doc) {
            return Ok((d, true));
        }
        match self.document(DocId::from_u128(doc))? {
            Some(d) => Ok((d, true)),
            None => Ok((self.new_document(), false)),
        }
    }

    pub(crate) fn keep_loaded(&mut self, doc: u128, am: AutoCommit) {
        if self.cache.len() >= MAX_CACHED_DOCS {
            self.cache.clear();
        }
        self.cache.insert(doc, am);
    }

    /// The next Automerge sync message for `doc` under `state`, with the seals of the changes
    /// it carries; an empty document stands in for one this device does not hold.
    pub fn sync_generate(
        &mut self,
        doc: DocId,
        state: &mut sync::State,
    ) -> Result<Option<(sync::Message, Vec<Seal>)>, StoreError> {
        let doc = doc.as_u128();
        let (mut am, held) = self.take_loaded(doc)?;
        let msg = guarded(|| Ok(am.sync().generate_sync_message(state)))?;
        let out = match msg {
            Some(m) => {
                // Each chunk is one change, or (version 2) several changes or the whole
                // document in one chunk: then the seals of what the peer lacks go along.
                let mut hashes: Vec<[u8; 32]> = Vec::new();
                let mut whole = false;
                for c in m.changes.iter() {
                    match automerge::Change::try_from(c) {
                        Ok(c) => hashes.push(c.hash().0),
                        Err(_) => whole = true,
                    }
                }
                if whole {
                    // What the peer lacks as of the heads it last named, when this side holds
                    // them all; otherwise every change.
                    let theirs = state
                        .their_heads
                        .clone()
                        .filter(|h| h.iter().all(|h| am.get_change_by_hash(h).is_some()))
                        .unwrap_or_default();
                    hashes = am
                        .get_changes_meta(&theirs)
                        .iter()
                        .map(|c| c.hash.0)
                        .collect();
                }
                let seals = self.seals(doc, &hashes)?;
                Some((m, seals))
            }
            None => None,
        };
        if held {
            self.keep_loaded(doc, am);
        }
        Ok(out)
    }

    /// The stored seals of some changes of `doc`.
    fn seals(&self, doc: u128, hashes: &[[u8; 32]]) -> Result<Vec<Seal>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let read = self.db.begin_read()?;
        let table = read.open_table(SEALS)?;
        let mut out = Vec::with_capacity(hashes.len());
        for h in hashes {
            if let Some(v) = table.get((doc, *h))? {
                out.extend(seal_from(*h, v.value()));
            }
        }
        Ok(out)
    }

    /// Every stored seal of `doc`: by the invariant of `SEALS`, one per change it holds.
    pub fn all_seals(&self, doc: DocId) -> Result<Vec<Seal>, StoreError> {
        let doc = doc.as_u128();
        let read = self.db.begin_read()?;
        let table = read.open_table(SEALS)?;
        let mut out = Vec::new();
        for row in table.range((doc, [0u8; 32])..=(doc, [0xff; 32]))? {
            let (k, v) = row?;
            out.extend(seal_from(k.value().1, v.value()));
        }
        Ok(out)
    }

    /// Applies a sync message from a peer. New changes are kept only if each has a seal among
    /// `seals` that checks out and `gate` lets its signer write the document; then they are
    /// committed with their seals (with fsync) and the entries they touch re-indexed, in one
    /// transaction, before this returns `true`.
    ///
    /// The seals of changes now held are taken out of `seals`; the rest stay, for the next
    /// message. Automerge holds back a change whose dependencies have not arrived (the
    /// sender's Bloom filter took one of them for held, about one time in a hundred) and
    /// applies it when they come, in a later message that does not carry its seal again.
    pub fn sync_receive(
        &mut self,
        doc: DocId,
        state: &mut sync::State,
        msg: sync::Message,
        seals: &mut PendingSeals,
        gate: &dyn Gate,
    ) -> Result<bool, StoreError> {
        // What the message's changes inflate to is bounded before Automerge sees them.
        failup_journal::inflate::check_inflated_all(msg.changes.iter())?;
        let doc = doc.as_u128();
        let (mut am, held) = self.take_loaded(doc)?;
        let before = am.get_heads();
        guarded_automerge(|| am.sync().receive_sync_message(state, msg))?;
        let changed = self.commit_received(doc, am, held, before, seals, gate)?;
        self.keep_waiting_seals(doc, seals)?;
        Ok(changed)
    }

    /// Leaves in `seals` only those of changes not stored: by the invariant of `SEALS`, a
    /// stored change has its seal stored.
    fn keep_waiting_seals(&self, doc: u128, seals: &mut PendingSeals) -> Result<(), StoreError> {
        if seals.is_empty() {
            return Ok(());
        }
        let read = self.db.begin_read()?;
        let table = read.open_table(SEALS)?;
        let mut waiting = PendingSeals::new();
        for (hash, seal) in std::mem::take(seals) {
            if table.get((doc, hash))?.is_none() {
                waiting.insert(hash, seal);
            }
        }
        *seals = waiting;
        Ok(())
    }

    /// Checks the seal of every change of `am` since `before`; returns the rows to store.
    /// On a refusal `am` must be dropped: it holds changes this device does not keep.
    fn check_new(
        &self,
        doc: u128,
        am: &mut AutoCommit,
        before: &[automerge::ChangeHash],
        seals: &PendingSeals,
        gate: &dyn Gate,
    ) -> Result<Vec<SealRow>, StoreError> {
        let id = DocId::from_u128(doc);
        type Meta = ([u8; 32], Vec<u8>, Vec<[u8; 32]>);
        let new: Vec<Meta> = am
            .get_changes_meta(before)
            .iter()
            .map(|m| {
                (
                    m.hash.0,
                    m.actor.to_bytes().to_vec(),
                    m.deps.iter().map(|d| d.0).collect(),
                )
            })
            .collect();
        let writers = if new.is_empty() {
            Writers::Only(Default::default())
        } else {
            gate.writers(id, am)
        };
        // The kinds of the seals of this message's changes, and of stored ones as needed.
        let mut kinds: std::collections::HashMap<[u8; 32], u8> = new
            .iter()
            .filter_map(|(h, _, _)| seals.get(h).map(|s| (*h, s.kind)))
            .collect();
        // Stored seals are read only for a message that carries a vouch.
        let vouched = failup_auth::Kind::Vouched.byte();
        let read = if kinds.values().any(|k| *k == vouched) {
            Some(self.db.begin_read()?)
        } else {
            None
        };
        let stored = match &read {
            Some(r) => Some(r.open_table(SEALS)?),
            None => None,
        };
        let mut held_writers: Option<Writers> = None;
        let mut rows = Vec::with_capacity(new.len());
        for (hash, actor, deps) in new {
            let refused = |reason: String| StoreError::Refused {
                hash: automerge::ChangeHash(hash).to_string(),
                reason,
            };
            let seal = seals
                .get(&hash)
                .ok_or_else(|| refused("no seal came with it".into()))?;
            let author = failup_auth::check(seal, id, &hash, &actor, |a| gate.is_device_actor(a))
                .map_err(|e| refused(e.to_string()))?;
            if !writers.admit(author.device) {
                return Err(refused(format!(
                    "device {} may not write this document",
                    author.device.short()
                )));
            }
            // A writer the document named before this message was named by a change already
            // checked; any other must be named in the change's own past.
            if gate.names_writers(id) {
                if held_writers.is_none() {
                    let held = guarded_automerge(|| am.fork_at(before))?;
                    held_writers = Some(gate.writers(id, &held));
                }
                let named_before = held_writers
                    .as_ref()
                    .is_some_and(|w| w.admit(author.device));
                let heads: Vec<automerge::ChangeHash> =
                    deps.iter().copied().map(automerge::ChangeHash).collect();
                if !named_before
                    && !gate
                        .writers(id, &guarded_automerge(|| am.fork_at(&heads))?)
                        .admit(author.device)
                {
                    return Err(refused(format!(
                        "device {} is not named a writer by what came before its change",
                        author.device.short()
                    )));
                }
            }
            // A vouch covers only a change written before seals existed: such a change never
            // follows a sealed one, nor starts a second history in a document already held.
            // By induction over what is stored, no vouched change descends from a sealed one.
            if seal.kind == vouched {
                if deps.is_empty() && !before.is_empty() {
                    return Err(refused(
                        "a vouched change that starts a second history of this document".into(),
                    ));
                }
                for d in &deps {
                    let kind = match kinds.get(d) {
                        Some(k) => Some(*k),
                        None => match &stored {
                            Some(t) => t.get((doc, *d))?.and_then(|v| v.value().first().copied()),
                            None => None,
                        },
                    };
                    if kind == Some(failup_auth::Kind::Wrote.byte()) {
                        return Err(refused(
                            "a vouched change that follows a sealed one (vouches are for \
                             changes from before seals)"
                                .into(),
                        ));
                    }
                    if let Some(k) = kind {
                        kinds.insert(*d, k);
                    }
                }
            }
            rows.push((hash, seal_value(seal)));
        }
        Ok(rows)
    }

    /// Gives this store the device key, whose actor id it writes under from now on and with
    /// which it seals what it writes. The first time (a store from before seals), every change
    /// held is sealed: this device's own as written, any other's as vouched for. Returns how
    /// many changes that sealed.
    pub fn set_signer(
        &mut self,
        signer: std::sync::Arc<failup_auth::Signer>,
    ) -> Result<usize, StoreError> {
        self.actor = signer.actor();
        self.cache.clear();
        self.prepared.clear();
        self.signer = Some(signer.clone());
        let done = {
            let read = self.db.begin_read()?;
            read.open_table(META)?.get(VOUCHED)?.is_some()
        };
        // A store open for reading only seals nothing: its changes are sealed the next time it
        // opens writable, and until then it syncs nothing.
        if done || self.read_only() {
            return Ok(0);
        }
        let mut rows: Vec<(u128, [u8; 32], [u8; 97])> = Vec::new();
        for (doc, _) in self.inventory()? {
            let Some(mut am) = self.document(doc)? else {
                continue;
            };
            let metas: Vec<([u8; 32], bool)> = am
                .get_changes_meta(&[])
                .iter()
                .map(|m| (m.hash.0, m.actor.to_bytes() == signer.actor().as_slice()))
                .collect();
            let have: std::collections::BTreeSet<[u8; 32]> =
                self.all_seals(doc)?.into_iter().map(|s| s.hash).collect();
            for (hash, own) in metas {
                if !have.contains(&hash) {
                    let kind = if own {
                        failup_auth::Kind::Wrote
                    } else {
                        failup_auth::Kind::Vouched
                    };
                    rows.push((
                        doc.as_u128(),
                        hash,
                        seal_value(&signer.seal(kind, doc, hash)),
                    ));
                }
            }
        }
        let sealed = rows.len();
        self.write(|txn, _| {
            let mut table = txn.open_table(SEALS)?;
            for (doc, hash, value) in &rows {
                table.insert((*doc, *hash), value.as_slice())?;
            }
            txn.open_table(META)?.insert(VOUCHED, [1u8].as_slice())?;
            Ok(())
        })?;
        Ok(sealed)
    }

    /// The whole document as Automerge saves it, with the seals of all its changes, if held:
    /// the stored snapshot itself when no changes are pending, so sending a document to a new
    /// device costs no re-encoding.
    pub fn saved_document(
        &mut self,
        doc: DocId,
    ) -> Result<Option<failup_wire::SealedDoc>, StoreError> {
        let Some(data) = self.saved_bytes(doc)? else {
            return Ok(None);
        };
        Ok(Some((data, self.all_seals(doc)?)))
    }

    fn saved_bytes(&mut self, doc: DocId) -> Result<Option<Vec<u8>>, StoreError> {
        let doc = doc.as_u128();
        if let Some(d) = self.cache.get_mut(&doc) {
            return Ok(Some(d.save()));
        }
        {
            let read = self.db.begin_read()?;
            let snap = read
                .open_table(SNAPSHOTS)?
                .get(doc)?
                .map(|v| v.value().to_vec());
            let pending = read
                .open_table(CHANGES)?
                .range((doc, 0)..=(doc, u64::MAX))?
                .next()
                .is_some();
            match snap {
                None => return Ok(None),
                Some(bytes) if !pending => return Ok(Some(bytes)),
                Some(_) => {}
            }
        }
        Ok(self.document(DocId::from_u128(doc))?.map(|mut d| d.save()))
    }

    /// Takes in a whole saved document from a peer, its changes checked as by
    /// [`Store::sync_receive`]: a new one is stored as received and its entries indexed in key
    /// order; one already held is merged. Durable before returning (outside a group).
    pub fn receive_whole(
        &mut self,
        doc: DocId,
        data: &[u8],
        seals: &PendingSeals,
        gate: &dyn Gate,
    ) -> Result<bool, StoreError> {
        let doc = doc.as_u128();
        let (mut am, held) = self.take_loaded(doc)?;
        let before = am.get_heads();
        if held {
            failup_journal::inflate::check_inflated(data)?;
            guarded_automerge(|| am.load_incremental(data))?;
            return self.commit_received(doc, am, held, before, seals, gate);
        }
        let read = match self.prepared.remove(&doc).filter(|p| p.data == data) {
            Some(p) => p.read,
            None => read_whole(data),
        };
        let (loaded, entries) = read?;
        let mut am = loaded.with_actor(automerge::ActorId::from(&self.actor));
        let Some(entries) = entries.filter(|_| !self.foreign.contains(&doc)) else {
            return self.commit_received(doc, am, held, before, seals, gate);
        };
        if am.get_heads() == before {
            return Ok(false);
        }
        let rows = self.check_new(doc, &mut am, &before, seals, gate)?;
        let heads = am.get_heads();
        self.write(|txn, _| {
            put_seals(txn, doc, &rows)?;
            txn.open_table(SNAPSHOTS)?.insert(doc, data)?;
            put_heads(txn, doc, &heads)?;
            let mut located = Vec::with_capacity(entries.len());
            let mut records = Vec::with_capacity(entries.len());
            for e in &entries {
                let old = txn
                    .open_table(ENTRIES)?
                    .get(e.id.as_u128())?
                    .map(|v| v.value().1);
                match old {
                    // An id this device indexes already (it should not happen): re-index it.
                    Some(day) => reindex(txn, doc, Some((day, e.id)), Some(e))?,
                    None => {
                        let day = day_key(e.day);
                        located.push((e.id.as_u128(), (doc, day)));
                        records.push(((day, e.id.as_u128()), encode(e)?));
                    }
                }
            }
            insert_sorted(txn, located, records)
        })?;
        self.keep_loaded(doc, am);
        Ok(true)
    }

    /// Names the documents that are never journal buckets, whatever their content says: the
    /// sides of spaces shared with partners, which a partner's device writes. Their entries are
    /// never indexed, so no edit of this person's journal can land in them; index rows that
    /// point at a document newly named here (one that arrived before this device learned what
    /// it is) are removed.
    pub fn set_foreign(&mut self, docs: impl IntoIterator<Item = DocId>) -> Result<(), StoreError> {
        let docs: std::collections::BTreeSet<u128> = docs.into_iter().map(DocId::as_u128).collect();
        let new: Vec<u128> = docs.difference(&self.foreign).copied().collect();
        self.foreign = docs;
        if new.is_empty() {
            return Ok(());
        }
        let stale: Vec<(u32, EntryId)> = {
            let read = self.db.begin_read()?;
            let entries = read.open_table(ENTRIES)?;
            let mut out = Vec::new();
            for row in entries.iter()? {
                let (id, located) = row?;
                let (doc, day) = located.value();
                if new.contains(&doc) {
                    out.push((day, EntryId::from_u128(id.value())));
                }
            }
            out
        };
        if stale.is_empty() {
            return Ok(());
        }
        self.write(|txn, _| {
            for (day, id) in stale {
                let doc = txn
                    .open_table(ENTRIES)?
                    .get(id.as_u128())?
                    .map(|v| v.value().0)
                    .unwrap_or_default();
                reindex(txn, doc, Some((day, id)), None)?;
            }
            Ok(())
        })
    }

    /// Reads a whole document as [`Store::receive_whole`] would, without touching the store:
    /// the costly part of taking in a document (parsing it, reading its entries back), so it
    /// may run on another thread while the store's owner commits the previous one.
    pub fn prepare_whole(doc: DocId, data: Vec<u8>) -> Prepared {
        let doc = doc.as_u128();
        Prepared {
            doc,
            read: read_whole(&data),
            data,
        }
    }

    /// Keeps a prepared document for the next [`Store::receive_whole`] of the same bytes.
    /// Never more than a group's worth is kept: older ones are dropped.
    pub fn stash_prepared(&mut self, prepared: Prepared) {
        if self.prepared.len() >= MAX_CACHED_DOCS {
            self.prepared.clear();
        }
        self.prepared.insert(prepared.doc, prepared);
    }

    /// Makes what a peer sent durable: appends the new changes (or stores a new document) and
    /// re-indexes the entries they touch, in one transaction.
    fn commit_received(
        &mut self,
        doc: u128,
        mut am: AutoCommit,
        held: bool,
        before: Vec<automerge::ChangeHash>,
        seals: &PendingSeals,
        gate: &dyn Gate,
    ) -> Result<bool, StoreError> {
        let after = am.get_heads();
        if before == after {
            if held {
                self.keep_loaded(doc, am);
            }
            return Ok(false);
        }
        let rows = self.check_new(doc, &mut am, &before, seals, gate)?;
        let is_bucket =
            !self.foreign.contains(&doc) && layout_of(&am).as_deref() == Some(LAYOUT_MARK);
        let touched = if is_bucket {
            changed_entries(&mut am, &before, &after)?
        } else {
            Vec::new()
        };
        let am = self.write(move |txn, _| {
            put_seals(txn, doc, &rows)?;
            if held {
                persist(txn, doc, &mut am, &before, None)?;
            } else {
                snapshot(txn, doc, &mut am)?;
            }
            if !is_bucket {
                return Ok(am);
            }
            let bucket = Bucket::from_doc(am)?;
            for id in touched {
                let old = txn
                    .open_table(ENTRIES)?
                    .get(id.as_u128())?
                    .map(|v| (v.value().1, id));
                let now = bucket.entry(id)?;
                if old.is_some() || now.is_some() {
                    reindex(txn, doc, old, now.as_ref())?;
                }
            }
            Ok(bucket.into_doc())
        })?;
        self.keep_loaded(doc, am);
        Ok(true)
    }
}
