//! The sync engine: a pure state machine that decides what a device sends each connected peer,
//! following proto/sync.md. It never touches a socket, a file or a clock: the daemon feeds it
//! [`Input`]s and carries out the [`Effect`]s it returns, and tests drive it over an in-memory
//! network in microseconds.
//!
//! Documents are reached through the [`Documents`] trait, which the daemon implements over the
//! store (making received changes durable before the engine answers) and tests implement in
//! memory ([`memory::MemoryDocuments`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod memory;
pub mod sim;

use std::collections::{BTreeMap, BTreeSet};

use automerge::sync;
use failup_wire::{DeviceId, DocId, InventoryItem, MAX_SEALS, Message, Seal, journal_digest};

/// Inventory rounds in a row (without a matching summary between them) before the engine stops
/// reconciling and waits for live changes; a guard against two peers that can never agree (say,
/// a document one of them may not hold) exchanging inventories forever.
pub const MAX_ROUNDS: u32 = 8;

/// Most seals held per connection for changes not yet received: two full `seals` messages,
/// about 17 MiB of seals. A peer that announces more is closed.
pub const MAX_PENDING_SEALS: usize = 2 * MAX_SEALS;

/// Seals received for changes not yet applied, by change hash.
pub type Seals = BTreeMap<[u8; 32], Seal>;

/// A document operation failed; the engine closes the connection it came from.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DocError(pub String);

/// What the engine needs from the documents it syncs.
pub trait Documents {
    /// Every document `peer` may sync, with a digest of its heads. An error closes the
    /// connection: an empty list would tell the peer this device holds nothing.
    fn inventory(&mut self, peer: DeviceId) -> Result<Vec<InventoryItem>, DocError>;
    /// Whether `peer` may sync `doc`, existing or not (a new document it offers).
    fn may_sync(&mut self, peer: DeviceId, doc: DocId) -> bool;
    /// Whether changes to `doc` may come from `peer`. A document `peer` may sync but not write
    /// (this person's side of a space, for a partner's device) is synced read-only: this side
    /// sends its changes and applies none of the peer's, and a whole copy from it is ignored.
    fn may_write(&mut self, peer: DeviceId, doc: DocId) -> bool;
    /// Whether this device holds `doc`.
    fn holds(&mut self, doc: DocId) -> bool;
    /// Whether `doc` goes before the others when documents are sent: the circle, which says
    /// who may write the rest, so a receiver can judge the rest by it.
    fn goes_first(&mut self, _doc: DocId) -> bool {
        false
    }
    /// The next Automerge sync message for `doc` (an empty document if not held), with the
    /// seals of the changes it carries.
    fn generate(
        &mut self,
        doc: DocId,
        state: &mut sync::State,
    ) -> Result<Option<(sync::Message, Vec<Seal>)>, DocError>;
    /// Applies a received Automerge sync message to `doc`, creating it if needed, and makes
    /// any new changes durable before returning whether there were any. `seals` came before
    /// it: a new change without a seal that checks out fails the document. The seals of
    /// changes now held are taken out of `seals`; what is left waits for a later message
    /// (Automerge holds back a change until its dependencies arrive).
    fn receive(
        &mut self,
        doc: DocId,
        state: &mut sync::State,
        msg: sync::Message,
        seals: &mut Seals,
    ) -> Result<bool, DocError>;
    /// The whole document as Automerge saves it, with the seals of all its changes, if held.
    fn saved(&mut self, doc: DocId) -> Result<Option<failup_wire::SealedDoc>, DocError>;
    /// Takes in a whole saved document (merging it into the copy held, if any) and makes it
    /// durable before returning whether anything changed; `seals` as for `receive`.
    fn receive_whole(&mut self, doc: DocId, data: &[u8], seals: &Seals) -> Result<bool, DocError>;
}

/// Something that happened, fed to [`Engine::handle`].
#[derive(Debug)]
pub enum Input {
    /// A connection to `peer` is up (either side may have opened it).
    Connected(DeviceId),
    /// The connection to `peer` is gone.
    Disconnected(DeviceId),
    /// `peer` sent a message.
    Received(DeviceId, Message),
    /// This device changed `doc` and the change is durable.
    LocalChange(DocId),
    /// Someone asked to sync now: start a fresh round of summaries with `peer`, keeping the
    /// connection's per-document sync states.
    Resync(DeviceId),
}

/// Something the engine wants done.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send a message to a peer.
    Send(DeviceId, Message),
    /// Close the connection to a peer, logging the reason.
    Close(DeviceId, String),
    /// This device and the peer hold the same documents (their summaries matched).
    InSync(DeviceId),
    /// A document changed because of a peer; the daemon may refresh what depends on it.
    Changed(DocId),
    /// A document could not be read or applied; it is left out of this connection (the peer
    /// was sent `doc-unavailable`) while every other document goes on syncing.
    DocFailed(DeviceId, DocId, String),
}

#[derive(Default)]
struct Session {
    /// Automerge sync state per document, for this connection only.
    states: BTreeMap<DocId, sync::State>,
    /// Documents with an exchange in progress.
    active: BTreeSet<DocId>,
    /// Whether documents were exchanged since this side last sent a summary.
    dirty: bool,
    /// Documents sent whole on this connection: never sent whole twice.
    sent_whole: BTreeSet<DocId>,
    /// Documents that failed on this connection and are left out of it.
    failed: BTreeSet<DocId>,
    /// Seals received for the next `sync` or `doc` message of each document.
    seals: BTreeMap<DocId, Seals>,
    /// How many seals `seals` holds in all.
    pending_seals: usize,
    rounds: u32,
    in_sync: bool,
}

/// The engine: one [`Session`] per connected peer.
#[derive(Default)]
pub struct Engine {
    sessions: BTreeMap<DeviceId, Session>,
}

impl Engine {
    /// An engine with no peers.
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Peers with a live session.
    pub fn peers(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.sessions.keys().copied()
    }

    /// Whether the last summaries exchanged with `peer` matched and nothing changed since.
    pub fn is_in_sync(&self, peer: DeviceId) -> bool {
        self.sessions.get(&peer).is_some_and(|s| s.in_sync)
    }

    /// Handles one input and returns what to do about it, in order.
    pub fn handle(&mut self, docs: &mut dyn Documents, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Connected(peer) => {
                let session = self.sessions.entry(peer).or_default();
                *session = Session::default();
                if let Err(reason) = send_summary(docs, peer, session, false, &mut out) {
                    self.sessions.remove(&peer);
                    out.push(Effect::Close(peer, reason));
                }
            }
            Input::Disconnected(peer) => {
                self.sessions.remove(&peer);
            }
            Input::LocalChange(doc) => self.push_doc(docs, doc, None, &mut out),
            Input::Resync(peer) => {
                if let Some(session) = self.sessions.get_mut(&peer) {
                    // What failed may go through now (a document whose writer the circle
                    // named since, say).
                    session.failed.clear();
                    session.sent_whole.clear();
                    session.rounds = 0;
                    session.in_sync = false;
                    if let Err(reason) = send_summary(docs, peer, session, false, &mut out) {
                        self.sessions.remove(&peer);
                        out.push(Effect::Close(peer, reason));
                    }
                }
            }
            Input::Received(peer, msg) => {
                if let Err(reason) = self.received(docs, peer, msg, &mut out) {
                    self.sessions.remove(&peer);
                    out.push(Effect::Close(peer, reason));
                }
            }
        }
        out
    }

    fn received(
        &mut self,
        docs: &mut dyn Documents,
        peer: DeviceId,
        msg: Message,
        out: &mut Vec<Effect>,
    ) -> Result<(), String> {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return Err("message from a peer with no session".into());
        };
        match msg {
            Message::Summary { digest, reply, .. } => {
                let ours = docs.inventory(peer).map_err(|e| e.0)?;
                if journal_digest(&ours) == digest {
                    session.in_sync = true;
                    session.rounds = 0;
                    session.active.clear();
                    out.push(Effect::InSync(peer));
                    if !reply {
                        send_summary(docs, peer, session, true, out)?;
                    }
                } else if session.rounds < MAX_ROUNDS {
                    session.rounds += 1;
                    session.in_sync = false;
                    out.push(Effect::Send(peer, Message::Inventory { items: ours }));
                }
            }
            Message::Inventory { items } => {
                session.in_sync = false;
                let ours: BTreeMap<DocId, _> = docs
                    .inventory(peer)
                    .map_err(|e| e.0)?
                    .into_iter()
                    .map(|i| (i.doc, i.heads))
                    .collect();
                let theirs: BTreeMap<DocId, _> =
                    items.into_iter().map(|i| (i.doc, i.heads)).collect();
                // Documents the peer lacks travel whole; the peer does the same for ours, so
                // documents only they hold need nothing from this side.
                let mut missing: Vec<DocId> = ours
                    .keys()
                    .filter(|d| !theirs.contains_key(*d))
                    .copied()
                    .collect();
                // Stable: the first documents, then the rest in id order.
                missing.sort_by_key(|d| !docs.goes_first(*d));
                for doc in missing {
                    if session.sent_whole.contains(&doc) || session.failed.contains(&doc) {
                        continue;
                    }
                    match docs.saved(doc) {
                        Ok(Some((data, seals))) => {
                            session.dirty = true;
                            session.sent_whole.insert(doc);
                            send_seals(peer, doc, seals, out);
                            out.push(Effect::Send(peer, Message::Doc { doc, data }));
                        }
                        Ok(None) => {}
                        Err(e) => fail_doc(session, peer, doc, e.0, out),
                    }
                }
                let mut differing: Vec<DocId> = ours
                    .iter()
                    .filter(|(d, h)| theirs.get(*d).is_some_and(|t| t != *h))
                    .map(|(d, _)| *d)
                    .collect();
                differing.sort_by_key(|d| !docs.goes_first(*d));
                for doc in differing {
                    if !session.active.contains(&doc) {
                        offer(docs, peer, session, doc, out);
                    }
                }
                maybe_resummarize(docs, peer, session, out)?;
            }
            Message::Sync { doc, data } | Message::Request { doc, data } => {
                if !docs.may_sync(peer, doc) {
                    refuse(peer, doc, out);
                    return Ok(());
                }
                let msg = sync::Message::decode(&data)
                    .map_err(|e| format!("undecodable automerge sync message: {e}"))?;
                if session.failed.contains(&doc) {
                    // Say it again, so the sender stops waiting on this document.
                    out.push(Effect::Send(peer, Message::DocUnavailable { doc }));
                    return Ok(());
                }
                session.in_sync = false;
                session.dirty = true;
                let mut seals = session.take_seals(doc);
                let state = session
                    .states
                    .entry(doc)
                    .or_insert_with(|| new_state(docs, peer, doc));
                let received = docs.receive(doc, state, msg, &mut seals);
                // Seals of changes held back for their dependencies wait for the message that
                // brings those, counting against the limit until used.
                if !seals.is_empty() {
                    session.pending_seals += seals.len();
                    session.seals.entry(doc).or_default().extend(seals);
                }
                let changed = match received {
                    Ok(c) => c,
                    Err(e) => {
                        fail_doc(session, peer, doc, e.0, out);
                        return Ok(());
                    }
                };
                match docs.generate(doc, state) {
                    Ok(Some((reply, seals))) => {
                        session.active.insert(doc);
                        send_seals(peer, doc, seals, out);
                        out.push(Effect::Send(peer, sync_message(docs, doc, reply)));
                    }
                    Ok(None) => {
                        session.active.remove(&doc);
                        maybe_resummarize(docs, peer, session, out)?;
                    }
                    Err(e) => fail_doc(session, peer, doc, e.0, out),
                }
                if changed {
                    out.push(Effect::Changed(doc));
                    self.push_doc(docs, doc, Some(peer), out);
                }
            }
            Message::Doc { doc, data } => {
                if !docs.may_sync(peer, doc) {
                    refuse(peer, doc, out);
                    return Ok(());
                }
                session.in_sync = false;
                let seals = session.take_seals(doc);
                // Received documents change this side's summary: say so once things settle.
                session.dirty = true;
                // Whatever sync state this connection had for the document no longer matches.
                session.states.remove(&doc);
                // No summary from this side: the sender summarizes once it has sent every
                // document, and that summary arrives after them on the ordered stream.
                if session.failed.contains(&doc) {
                    return Ok(());
                }
                if !docs.may_write(peer, doc) {
                    out.push(Effect::DocFailed(
                        peer,
                        doc,
                        "a whole copy of a document this peer may not write was ignored".into(),
                    ));
                    return Ok(());
                }
                let changed = match docs.receive_whole(doc, &data, &seals) {
                    Ok(c) => c,
                    Err(e) => {
                        fail_doc(session, peer, doc, e.0, out);
                        return Ok(());
                    }
                };
                if changed {
                    out.push(Effect::Changed(doc));
                    self.push_doc(docs, doc, Some(peer), out);
                }
            }
            Message::Seals { doc, seals } => {
                if !docs.may_sync(peer, doc) {
                    refuse(peer, doc, out);
                    return Ok(());
                }
                session.pending_seals += seals.len();
                if session.pending_seals > MAX_PENDING_SEALS {
                    return Err(format!(
                        "more than {MAX_PENDING_SEALS} seals sent ahead of their changes"
                    ));
                }
                let held = session.seals.entry(doc).or_default();
                for seal in seals {
                    held.insert(seal.hash, seal);
                }
            }
            Message::DocUnavailable { doc } => {
                session.active.remove(&doc);
                session.states.remove(&doc);
                maybe_resummarize(docs, peer, session, out)?;
            }
            // About the connection, not the documents: the daemon reads it before the engine
            // (the node keeps what peers observe).
            Message::Observed { .. } | Message::Meet { .. } => {}
        }
        Ok(())
    }

    /// Offers a changed document to every peer but `except`.
    fn push_doc(
        &mut self,
        docs: &mut dyn Documents,
        doc: DocId,
        except: Option<DeviceId>,
        out: &mut Vec<Effect>,
    ) {
        for (peer, session) in self.sessions.iter_mut() {
            if Some(*peer) != except && docs.may_sync(*peer, doc) {
                offer(docs, *peer, session, doc, out);
            }
        }
    }
}

/// Answers a peer that asked for, or sent, a document it may not see: "unavailable", the same
/// answer as for a document that does not exist, and a record of the attempt.
fn refuse(peer: DeviceId, doc: DocId, out: &mut Vec<Effect>) {
    out.push(Effect::Send(peer, Message::DocUnavailable { doc }));
    out.push(Effect::DocFailed(
        peer,
        doc,
        "the peer asked for a document outside what it may see: refused".into(),
    ));
}

/// A fresh sync state for `doc` with `peer`: read-only when the peer may not write it, so
/// Automerge neither applies its changes nor asks for them.
fn new_state(docs: &mut dyn Documents, peer: DeviceId, doc: DocId) -> sync::State {
    if docs.may_write(peer, doc) {
        sync::State::new()
    } else {
        sync::State::new_read_only()
    }
}

/// Sends the peer the next Automerge sync message for `doc`, if there is one; a document that
/// failed on this connection is skipped.
fn offer(
    docs: &mut dyn Documents,
    peer: DeviceId,
    session: &mut Session,
    doc: DocId,
    out: &mut Vec<Effect>,
) {
    if session.failed.contains(&doc) {
        return;
    }
    let state = session
        .states
        .entry(doc)
        .or_insert_with(|| new_state(docs, peer, doc));
    match docs.generate(doc, state) {
        Ok(Some((m, seals))) => {
            session.active.insert(doc);
            session.dirty = true;
            session.in_sync = false;
            send_seals(peer, doc, seals, out);
            out.push(Effect::Send(peer, sync_message(docs, doc, m)));
        }
        Ok(None) => {}
        Err(e) => fail_doc(session, peer, doc, e.0, out),
    }
}

/// Sends the seals of the changes the next message for `doc` carries, in messages of at most
/// [`MAX_SEALS`].
fn send_seals(peer: DeviceId, doc: DocId, seals: Vec<Seal>, out: &mut Vec<Effect>) {
    for chunk in seals.chunks(MAX_SEALS) {
        out.push(Effect::Send(
            peer,
            Message::Seals {
                doc,
                seals: chunk.to_vec(),
            },
        ));
    }
}

impl Session {
    /// The seals received for `doc`'s next message, which uses them up.
    fn take_seals(&mut self, doc: DocId) -> Seals {
        let seals = self.seals.remove(&doc).unwrap_or_default();
        self.pending_seals = self.pending_seals.saturating_sub(seals.len());
        seals
    }
}

/// Leaves one document out of a connection after it failed, telling the peer, so the others go
/// on syncing instead of the whole connection closing and failing again on every reconnect.
fn fail_doc(
    session: &mut Session,
    peer: DeviceId,
    doc: DocId,
    reason: String,
    out: &mut Vec<Effect>,
) {
    session.failed.insert(doc);
    session.active.remove(&doc);
    session.states.remove(&doc);
    out.push(Effect::Send(peer, Message::DocUnavailable { doc }));
    out.push(Effect::DocFailed(peer, doc, reason));
}

fn send_summary(
    docs: &mut dyn Documents,
    peer: DeviceId,
    session: &mut Session,
    reply: bool,
    out: &mut Vec<Effect>,
) -> Result<(), String> {
    let items = docs.inventory(peer).map_err(|e| e.0)?;
    session.dirty = false;
    out.push(Effect::Send(
        peer,
        Message::Summary {
            digest: journal_digest(&items),
            docs: items.len() as u64,
            reply,
        },
    ));
    Ok(())
}

fn sync_message(docs: &mut dyn Documents, doc: DocId, m: sync::Message) -> Message {
    let data = m.encode();
    if docs.holds(doc) {
        Message::Sync { doc, data }
    } else {
        Message::Request { doc, data }
    }
}

/// Once every exchange on this connection has settled, says so with a fresh summary; a
/// matching summary is answered once with a reply, which ends the round on both sides.
fn maybe_resummarize(
    docs: &mut dyn Documents,
    peer: DeviceId,
    session: &mut Session,
    out: &mut Vec<Effect>,
) -> Result<(), String> {
    if session.active.is_empty() && session.dirty {
        send_summary(docs, peer, session, false, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
