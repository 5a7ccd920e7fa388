//! The engine thread: the only owner of the node and the sync engine. It takes [`Event`]s from
//! the async tasks one at a time, hands control requests to the node, peer messages to the
//! engine, and carries out what both decide: frames to send, connections to close, documents
//! to offer, a new trust view to apply.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use failup_net::Identity;
use failup_node::{ErrorKind, Failure, Node, NodeError};
use failup_store::Store;
use failup_sync::{Effect, Engine, Input};
use failup_wire::{DeviceId, DocId, Message};
use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

use failup_node::dial::{Action, CloseReason, ConnId, Event as PolicyEvent, Policy};

use crate::connection::{MAX_UNWRITTEN_BYTES, Opened, Received};
use crate::control::{PeerInfo, Request, Response, StatusInfo};
use crate::dialer::conn_id;
use crate::{Event, TrustState, discovery, pairing};

/// The QUIC close code for a reason: 0 for a connection closed only because another one to the
/// same device is kept, 1 for a refusal.
pub(crate) fn close_code(reason: CloseReason) -> quinn::VarInt {
    match reason {
        CloseReason::Duplicate | CloseReason::Replaced => 0u32.into(),
        CloseReason::Unknown | CloseReason::Revoked => 1u32.into(),
    }
}

/// At most this many queued peer messages share one fsync: enough to amortise it over a first
/// sync, few enough that the first message's reply is not held back for long.
const MAX_GROUP: usize = 32;

pub(crate) struct Conn {
    pub(crate) conn: quinn::Connection,
    /// The address the peer was last told it is seen at (`Message::Observed`): told again
    /// when its connection moves to another (a phone changing networks).
    told: std::net::SocketAddr,
    /// Whether this device dialed it, and whether it came of an introduction: what `peers`
    /// needs, besides where it runs now, to say how it runs.
    dialed: bool,
    punched: bool,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes handed to the writer and not yet written.
    queued: Arc<AtomicUsize>,
}

struct SyncWaiter {
    pending: BTreeSet<DeviceId>,
    done: BTreeSet<DeviceId>,
    reply: oneshot::Sender<Response>,
}

/// What the engine thread is made of, handed over by `start`.
pub(crate) struct Parts {
    pub(crate) node: Node,
    pub(crate) identity: Arc<Identity>,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) trust: Arc<TrustState>,
    pub(crate) events: mpsc::UnboundedSender<Event>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) listen: SocketAddr,
    pub(crate) socket_path: PathBuf,
    pub(crate) discovery: Option<discovery::Discovery>,
    pub(crate) relay: Option<Relay>,
    /// Whether to introduce partners' devices to this person's own (`introduce-partners`).
    pub(crate) introduce_partners: bool,
    /// The web interface's gate, when it is served: it mints the links `failup ui` opens.
    pub(crate) ui: Option<Arc<failup_web::Gate>>,
    /// Moved on every change of a document, for the web interface's open pages.
    pub(crate) changed: tokio::sync::watch::Sender<u64>,
}

/// The person's relay, when one is set: the endpoint whose connections run through it.
pub(crate) struct Relay {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) socket: std::sync::Arc<failup_relay::device::RelaySocket>,
    /// Where the relay listens, as `peers` shows a relayed connection's path.
    pub(crate) addr: SocketAddr,
}

/// The engine thread's state.
pub(crate) struct State {
    pub(crate) node: Node,
    engine: Engine,
    /// Engine effects held back while a group of received messages is not yet durable.
    deferred: Option<Vec<Effect>>,
    pub(crate) identity: Arc<Identity>,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) trust: Arc<TrustState>,
    pub(crate) events: mpsc::UnboundedSender<Event>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) conns: HashMap<DeviceId, Conn>,
    conn_ids: HashMap<DeviceId, usize>,
    seen: HashMap<DeviceId, Timestamp>,
    synced: HashMap<DeviceId, Timestamp>,
    /// Whom to dial and when, and which connection to keep (`failup_node::dial`).
    pub(crate) dial_policy: Policy,
    /// When the tick for the policy's next due dial is set to arrive.
    pub(crate) next_tick: Option<Instant>,
    /// The mDNS announcement and browse, when on; stops when dropped.
    _discovery: Option<discovery::Discovery>,
    waiters: HashMap<u64, SyncWaiter>,
    next_waiter: u64,
    listen: SocketAddr,
    socket_path: PathBuf,
    /// Sync frames and bytes sent since start, for `failup status` and the benchmarks.
    sent: (u64, u64),
    pub(crate) relay: Option<Relay>,
    introduce_partners: bool,
    ui: Option<Arc<failup_web::Gate>>,
    changed: tokio::sync::watch::Sender<u64>,
}

fn failure(e: &NodeError) -> Response {
    Response::Error(e.to_failure())
}

impl State {
    pub(crate) fn new(parts: Parts) -> State {
        State {
            dial_policy: Policy::new(parts.identity.device()),
            next_tick: None,
            node: parts.node,
            engine: Engine::new(),
            deferred: None,
            identity: parts.identity,
            endpoint: parts.endpoint,
            trust: parts.trust,
            events: parts.events,
            runtime: parts.runtime,
            conns: HashMap::new(),
            conn_ids: HashMap::new(),
            seen: HashMap::new(),
            synced: HashMap::new(),
            _discovery: parts.discovery,
            waiters: HashMap::new(),
            next_waiter: 0,
            listen: parts.listen,
            socket_path: parts.socket_path,
            sent: (0, 0),
            relay: parts.relay,
            introduce_partners: parts.introduce_partners,
            ui: parts.ui,
            changed: parts.changed,
        }
    }

    /// Applies the node's first trust view (the policy dials every device known at start-up
    /// at once) and offers what the node changed while starting.
    pub(crate) fn begin(&mut self) {
        self.drain();
    }

    pub(crate) fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        let mut next = None;
        while let Some(event) = next.take().or_else(|| rx.blocking_recv()) {
            if matches!(event, Event::Shutdown) {
                break;
            }
            if matches!(event, Event::Received(_)) && !rx.is_empty() {
                next = self.received_group(event, &mut rx);
            } else {
                self.handle(event);
            }
        }
        self.endpoint.close(0u32.into(), b"shutdown");
        if let Some(r) = &self.relay {
            r.endpoint.close(0u32.into(), b"shutdown");
        }
        if let Err(e) = std::fs::remove_file(&self.socket_path) {
            tracing::warn!("cannot remove the control socket: {e}");
        }
        tracing::info!("daemon stopped");
    }

    pub(crate) fn engine(&mut self, input: Input) {
        let effects = self.engine.handle(&mut self.node.documents(), input);
        match &mut self.deferred {
            Some(later) => later.extend(effects),
            None => self.apply(effects),
        }
    }

    /// Carries out what the node changed: a new trust view, documents to offer to peers, the
    /// window in which unknown devices may pair.
    fn drain(&mut self) {
        let changes = self.node.take_changes();
        if !changes.docs.is_empty() || changes.trust {
            self.changed.send_modify(|n| *n = n.wrapping_add(1));
        }
        if changes.trust {
            self.apply_trust();
        }
        for doc in changes.docs {
            self.engine(Input::LocalChange(doc));
        }
        if let Ok(mut u) = self.trust.open_invite_until.write() {
            *u = self.node.open_invite_until();
        }
    }

    /// Handles peer messages that are already queued as one group of store commits with a
    /// single fsync (a first sync brings hundreds of documents back to back), and returns the
    /// first other event met. Nothing the group did is sent or reported before the group is
    /// durable: the effects wait for [`Store::end_group`].
    fn received_group(
        &mut self,
        first: Event,
        rx: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Option<Event> {
        let mut batch = vec![first];
        let mut next = None;
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(event @ Event::Received(_)) => batch.push(event),
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        // Reading a whole document (parsing it, reading its entries for the index) costs more
        // than committing it, so a helper thread reads every second one ahead while this
        // thread reads the others and commits in order.
        let whole = |e: &Event| match e {
            Event::Received(Received {
                msg: Message::Doc { doc, data },
                ..
            }) => Some((*doc, data.clone())),
            _ => None,
        };
        let ahead: Vec<(DocId, Vec<u8>)> =
            batch.iter().filter_map(whole).skip(1).step_by(2).collect();
        self.node.store_mut().begin_group();
        self.deferred = Some(Vec::new());
        std::thread::scope(|scope| {
            let (tx, prepared) = std::sync::mpsc::channel();
            if !ahead.is_empty() {
                scope.spawn(move || {
                    for (doc, data) in ahead {
                        if tx.send(Store::prepare_whole(doc, data)).is_err() {
                            break;
                        }
                    }
                });
            } else {
                drop(tx);
            }
            let mut docs = 0usize;
            for event in batch {
                if whole(&event).is_some() {
                    if docs % 2 == 1 {
                        if let Ok(p) = prepared.recv() {
                            self.node.store_mut().stash_prepared(p);
                        }
                    }
                    docs += 1;
                }
                self.handle(event);
            }
        });
        let effects = self.deferred.take().unwrap_or_default();
        match self.node.store_mut().end_group() {
            Ok(()) => self.apply(effects),
            Err(e) => {
                // The peers were about to hear of changes that are not on disk: drop those
                // connections, so the next ones start from what this device really holds.
                tracing::error!("could not make received changes durable: {e}");
                let peers: Vec<DeviceId> = self.conns.keys().copied().collect();
                for peer in peers {
                    self.apply(vec![Effect::Close(peer, "store error".into())]);
                }
            }
        }
        next
    }

    fn drop_conn(&mut self, peer: DeviceId, reason: &str) {
        if let Some(c) = self.conns.remove(&peer) {
            c.conn.close(1u32.into(), reason.as_bytes());
            self.closed_here(peer, &c.conn);
        }
        self.forget_conn(peer);
        self.engine(Input::Disconnected(peer));
    }

    /// Tells the policy at once of a connection the daemon closed itself, so a new connection
    /// from the peer is not taken for a duplicate of it; its later `Closed` event is then stale.
    fn closed_here(&mut self, peer: DeviceId, conn: &quinn::Connection) {
        self.policy(PolicyEvent::Closed {
            peer,
            conn: conn_id(conn),
        });
    }

    /// Stops taking messages from `peer`'s connection: its last messages and its end are
    /// stale from now on (the policy still hears of its end).
    pub(crate) fn forget_conn(&mut self, peer: DeviceId) {
        self.conn_ids.remove(&peer);
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send(peer, msg) => {
                    let Some(c) = self.conns.get(&peer) else {
                        continue;
                    };
                    let frame = msg.to_frame();
                    let waiting = c.queued.fetch_add(frame.len(), Ordering::SeqCst);
                    if waiting + frame.len() > MAX_UNWRITTEN_BYTES {
                        tracing::warn!(peer = %peer.short(), "closing connection: the peer does not read what it asked for");
                        self.drop_conn(peer, "not reading");
                        continue;
                    }
                    self.sent.0 += 1;
                    self.sent.1 += frame.len() as u64;
                    if c.tx.send(frame).is_err() {
                        // The writer ended with its stream; the connection's Closed event is
                        // on its way.
                        tracing::debug!(peer = %peer.short(), "frame for a closed stream dropped");
                    }
                }
                Effect::Close(peer, reason) => {
                    tracing::warn!(peer = %peer.short(), "closing connection: {reason}");
                    if let Some(c) = self.conns.remove(&peer) {
                        c.conn.close(1u32.into(), reason.as_bytes());
                        self.closed_here(peer, &c.conn);
                    }
                }
                Effect::DocFailed(peer, doc, reason) => {
                    tracing::warn!(peer = %peer.short(), %doc, "document left out of this connection: {reason}");
                }
                Effect::InSync(peer) => {
                    self.synced.insert(peer, Timestamp::now());
                    self.sync_progress(peer);
                }
                Effect::Changed(doc) => {
                    self.changed.send_modify(|n| *n = n.wrapping_add(1));
                    self.node.doc_changed(doc);
                    self.drain();
                }
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Control(request, reply) => self.control(*request, reply),
            Event::Connected(opened) => self.connected(opened),
            Event::Received(Received {
                peer,
                conn_id,
                msg,
                _permit: permit,
            }) => {
                if self.conn_ids.get(&peer) == Some(&conn_id) {
                    self.node.delivered_by(peer, Timestamp::now());
                    self.tell_if_moved(peer);
                    match msg {
                        failup_wire::Message::Observed { addr } => {
                            // Through a relay both ends see made-up addresses.
                            let from = self
                                .conns
                                .get(&peer)
                                .map(|c| failup_wire::canonical(c.conn.remote_address()))
                                .filter(|a| !failup_relay::device::is_relayed(a));
                            if let Some(from) = from {
                                if let Err(e) =
                                    self.node.observed(peer, from, addr, Timestamp::now())
                                {
                                    tracing::warn!("cannot publish an outside address: {e}");
                                }
                                self.drain();
                            }
                        }
                        failup_wire::Message::Meet { device, addrs } => {
                            // Through the relay is no reason not to meet: a direct path
                            // replaces the relayed one.
                            let connected = self.conns.get(&device).is_some_and(|c| {
                                !failup_relay::device::is_relayed(&c.conn.remote_address())
                            });
                            // Connected directly already, the introduction is no news,
                            // and it is not counted against anyone's budget.
                            if let Some(addrs) = (!connected)
                                .then(|| self.node.meet(peer, device, addrs, Timestamp::now()))
                                .flatten()
                            {
                                tracing::info!(peer = %device.short(), ?addrs, "meeting at the introduced addresses");
                                self.policy(PolicyEvent::Meet {
                                    peer: device,
                                    addrs,
                                });
                            }
                        }
                        msg => self.engine(Input::Received(peer, msg)),
                    }
                }
                // Only now may the connection read another message.
                drop(permit);
            }
            Event::Closed {
                peer,
                conn_id,
                reason,
            } => {
                if self.conn_ids.get(&peer) == Some(&conn_id) {
                    tracing::info!(peer = %peer.short(), "disconnected: {reason}");
                    self.conns.remove(&peer);
                    self.conn_ids.remove(&peer);
                    self.seen.insert(peer, Timestamp::now());
                    self.engine(Input::Disconnected(peer));
                }
                // Every end, even of a connection the daemon closed itself: the policy decides
                // when to dial again.
                self.policy(PolicyEvent::Closed {
                    peer,
                    conn: ConnId(conn_id as u64),
                });
            }
            Event::Mapped(addr) => {
                match addr {
                    Some(a) => {
                        tracing::info!(mapped = %a, "the router forwards {a} to this device")
                    }
                    None if self.node.mapped().is_some() => {
                        tracing::info!("the router no longer forwards a port to this device")
                    }
                    None => {}
                }
                if let Err(e) = self.node.set_mapped(addr, Timestamp::now()) {
                    tracing::warn!("cannot publish the mapped address: {e}");
                }
                self.drain();
            }
            Event::SeenByRelay {
                relay,
                relay_addr,
                addr,
            } => {
                if let Err(e) = self
                    .node
                    .seen_by_relay(relay, relay_addr, addr, Timestamp::now())
                {
                    tracing::warn!("cannot publish where the relay sees this device: {e}");
                }
                self.drain();
            }
            Event::MeetDirectly { peer, conn_id } => self.meet_directly(peer, conn_id),
            Event::RelayLinked => {
                let away: Vec<DeviceId> = self
                    .node
                    .trusted()
                    .iter()
                    .filter(|d| !self.conns.contains_key(d))
                    .copied()
                    .collect();
                for d in away {
                    self.wake(d);
                }
            }
            Event::Tick(due) => self.tick(due),
            Event::DialFailed(peer) => self.policy(PolicyEvent::DialFailed { peer }),
            Event::RefusedAsRevoked(peer) => {
                match self.node.refused_as_revoked(peer, Timestamp::now()) {
                    Ok(Some(label)) => tracing::warn!(
                        peer = %peer.short(),
                        "{label} closed the space: their device refused this one as revoked"
                    ),
                    Ok(None) => {
                        tracing::info!(peer = %peer.short(), "refused as revoked");
                    }
                    Err(e) => tracing::error!("cannot record that a partner closed the space: {e}"),
                }
                self.drain();
            }
            Event::Pair(incoming) => {
                let pairing::Incoming {
                    peer,
                    remote,
                    hello,
                    reply,
                } = incoming;
                let answer = self
                    .node
                    .pair_incoming(peer, remote, hello, Timestamp::now());
                self.drain();
                // The pairing task may have given up on the joiner meanwhile.
                let _ = reply.send(answer);
            }
            Event::Heard(heard) => self.heard(heard),
            Event::PartnerJoined {
                joined,
                label,
                mine,
                reply,
            } => {
                let peer = joined.inviter;
                let answer = match self.node.partner_joined(joined, label.clone(), mine) {
                    Ok(()) => {
                        tracing::info!(peer = %peer.short(), "partnered with {label}");
                        Response::Done
                    }
                    Err(e) => failure(&e),
                };
                self.drain();
                // The command may have stopped waiting; the partner is recorded all the same.
                let _ = reply.send(answer);
            }
            Event::Joined {
                joined,
                name,
                reply,
            } => {
                let answer = match self.node.joined(joined, name) {
                    Ok(()) => Response::Done,
                    Err(e) => failure(&e),
                };
                // No wake: the new dialer's head start keeps the two devices from dialing each
                // other at once.
                self.drain();
                let _ = reply.send(answer);
            }
            Event::Introduce { peer, conn_id } => self.introduce(peer, conn_id),
            Event::SyncDeadline(id) => {
                if let Some(w) = self.waiters.remove(&id) {
                    let _ = w.reply.send(Response::Synced {
                        in_sync: w.done.iter().map(|d| d.to_string()).collect(),
                        missing: w.pending.iter().map(|d| d.to_string()).collect(),
                    });
                }
            }
            Event::Shutdown => {}
        }
    }

    fn connected(&mut self, opened: Opened) {
        let Opened {
            peer,
            conn,
            dialed,
            tx,
            queued,
        } = opened;
        let id = conn_id(&conn);
        let remote = failup_wire::canonical(conn.remote_address());
        let relayed = failup_relay::device::is_relayed(&remote);
        let actions = self.dial_policy.handle(
            Instant::now(),
            PolicyEvent::Connected {
                peer,
                conn: id,
                dialed,
                relayed,
            },
        );
        if self.dial_policy.current(peer) != Some(id) {
            // Refused (a device outside the circle) or a duplicate of a simultaneous dial.
            let reason = actions
                .iter()
                .find_map(|a| match a {
                    Action::Close { conn, reason, .. } if *conn == id => Some(*reason),
                    _ => None,
                })
                .unwrap_or(CloseReason::Unknown);
            conn.close(close_code(reason), reason.as_str().as_bytes());
            self.carry_out(actions);
            return;
        }
        // Closes the connection this one replaces, if any.
        self.carry_out(actions);
        self.conn_ids.insert(peer, conn.stable_id());
        let punched = self.node.punched(peer, Timestamp::now());
        self.conns.insert(
            peer,
            Conn {
                conn,
                tx,
                queued,
                told: remote,
                dialed,
                punched,
            },
        );
        self.seen.insert(peer, Timestamp::now());
        tracing::info!(peer = %peer.short(), %remote, dialed, relayed, "connected");
        if relayed {
            // A made-up address: nothing to learn, report or introduce from. An own device
            // is told where to meet this one directly instead, a few times, as an
            // introduction would: both do so, so their dials cross in the routers between.
            if self.node.is_own(peer) {
                let conn_id = conn_id_of(&self.conns, peer);
                self.at_each_round(move || Event::MeetDirectly { peer, conn_id });
            }
            self.engine(Input::Connected(peer));
            self.drain();
            return;
        }
        if !dialed {
            if let Err(e) = self.node.learn_addr(peer, remote, Timestamp::now()) {
                tracing::warn!("cannot record the address of {}: {e}", peer.short());
            }
        }
        // Tells the peer how it looks from here: behind a router, that is the router's public
        // address and port, which the peer cannot learn any other way.
        self.apply(vec![Effect::Send(
            peer,
            failup_wire::Message::Observed { addr: remote },
        )]);
        // Devices that may not reach each other, both connected here, are told of each other
        // at once, so their dials cross in the routers between; again a few times, since a
        // device that just joined learns of the others only when the circle reaches it.
        let conn_id = conn_id_of(&self.conns, peer);
        self.at_each_round(move || Event::Introduce { peer, conn_id });
        self.engine(Input::Connected(peer));
        self.drain();
    }

    /// Hands the engine the event `make` makes at each of
    /// [`failup_node::reach::INTRODUCTION_ROUNDS`] from now.
    fn at_each_round(&self, make: impl Fn() -> Event + Clone + Send + 'static) {
        for after in failup_node::reach::INTRODUCTION_ROUNDS {
            let (events, make) = (self.events.clone(), make.clone());
            self.runtime.spawn(async move {
                tokio::time::sleep(after).await;
                // A stopped daemon introduces nobody.
                let _ = events.send(make());
            });
        }
    }

    /// Tells `peer` again where it is seen if its connection moved since (QUIC follows a
    /// device to its new address without a new connection).
    fn tell_if_moved(&mut self, peer: DeviceId) {
        let Some(c) = self.conns.get_mut(&peer) else {
            return;
        };
        let now_at = failup_wire::canonical(c.conn.remote_address());
        if now_at == c.told || failup_relay::device::is_relayed(&now_at) {
            return;
        }
        tracing::info!(peer = %peer.short(), from = %c.told, to = %now_at, "peer moved");
        c.told = now_at;
        self.apply(vec![Effect::Send(
            peer,
            failup_wire::Message::Observed { addr: now_at },
        )]);
    }

    /// Tells `peer`, connected through the relay, where to meet this device directly, if the
    /// connection is still the one up and this device knows where it is seen from outside.
    fn meet_directly(&mut self, peer: DeviceId, conn_id: Option<usize>) {
        let still_relayed = self
            .conns
            .get(&peer)
            .filter(|_| conn_id_of(&self.conns, peer) == conn_id)
            .is_some_and(|c| failup_relay::device::is_relayed(&c.conn.remote_address()));
        let addrs = self.node.meet_me_at(Timestamp::now());
        if !still_relayed || addrs.is_empty() {
            return;
        }
        tracing::debug!(to = %peer.short(), ?addrs, "telling a relayed device where to meet");
        let me = self.identity.device();
        self.apply(vec![Effect::Send(
            peer,
            failup_wire::Message::Meet { device: me, addrs },
        )]);
    }

    /// Tells `peer`, still on connection `conn_id`, and each other device connected here that
    /// the node would have meet, where this device sees the other.
    fn introduce(&mut self, peer: DeviceId, conn_id: Option<usize>) {
        let Some(remote) = self
            .conns
            .get(&peer)
            .filter(|_| conn_id_of(&self.conns, peer) == conn_id)
            .map(|c| failup_wire::canonical(c.conn.remote_address()))
        else {
            return;
        };
        let others: Vec<(DeviceId, std::net::SocketAddr)> = self
            .conns
            .iter()
            .filter(|(d, _)| **d != peer)
            .map(|(d, c)| (*d, failup_wire::canonical(c.conn.remote_address())))
            .filter(|(_, at)| !failup_relay::device::is_relayed(at))
            .collect();
        let meets: Vec<Effect> = self
            .node
            .introductions(peer, remote, &others, self.introduce_partners)
            .into_iter()
            .map(|i| {
                tracing::debug!(to = %i.to.short(), about = %i.about.short(), at = %i.at, "introducing");
                Effect::Send(
                    i.to,
                    failup_wire::Message::Meet {
                        device: i.about,
                        addrs: vec![i.at],
                    },
                )
            })
            .collect();
        self.apply(meets);
    }

    /// Applies the node's trust view: the policy drops connections of devices no longer
    /// trusted and dials devices newly trusted; the TLS verifier admits exactly the trusted.
    fn apply_trust(&mut self) {
        let trusted = self.node.trusted().clone();
        if let Ok(mut t) = self.trust.trusted.write() {
            *t = trusted.clone();
        }
        if let Ok(mut r) = self.trust.revoked.write() {
            r.clone_from(self.node.revoked());
        }
        self.policy(PolicyEvent::Trusted(self.node.trusted_addrs()));
        for gone in self
            .conns
            .keys()
            .copied()
            .filter(|d| !trusted.contains(d))
            .collect::<Vec<_>>()
        {
            tracing::warn!(peer = %gone.short(), "revoked: disconnecting");
            self.drop_conn(gone, "revoked");
        }
        // What a peer may sync may have changed (a device whose revocation was contested is
        // back, a partner's device was vouched for): start a fresh round with each, in which
        // documents refused before are tried again.
        let peers: Vec<DeviceId> = self.conns.keys().copied().collect();
        for peer in peers {
            self.engine(Input::Resync(peer));
        }
    }

    /// A device announced itself on the local network: if it is trusted, its announced
    /// addresses are dialed first from now on, at once if it is not connected.
    fn heard(&mut self, heard: discovery::Heard) {
        if !self.dial_policy.is_trusted(heard.device) {
            return;
        }
        tracing::debug!(peer = %heard.device.short(), addrs = ?heard.addrs, "heard on the local network");
        self.policy(PolicyEvent::AddrsHeard {
            peer: heard.device,
            addrs: heard.addrs,
        });
    }

    /// Answers one control request; slow ones (join, sync) answer later through `reply`.
    fn control(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        let now = Timestamp::now();
        let answer = match request {
            Request::Join { code, name } => return self.join(&code, name, reply, now),
            Request::PartnerJoin { code, label } => {
                return self.partner_join(&code, label, reply, now);
            }
            Request::Sync { timeout_ms } => return self.sync(timeout_ms, reply),
            Request::Status => Ok(Response::Status(self.status())),
            Request::UiLink => match &self.ui {
                Some(gate) => Ok(Response::UiLink(gate.link())),
                None => Err(NodeError::Unavailable(
                    "this daemon does not serve the web interface (its address could not be \
                     listened on: see the daemon's log)"
                        .into(),
                )),
            },
            Request::Peers => self
                .node
                .peers()
                .map(|list| Response::Peers(list.into_iter().map(|p| self.live_view(p)).collect())),
            Request::Partners => self.node.partner_list().map(|list| {
                Response::Partners(
                    list.into_iter()
                        .map(|mut p| {
                            p.devices = p.devices.into_iter().map(|d| self.live_view(d)).collect();
                            p
                        })
                        .collect(),
                )
            }),
            other => self.node.execute(other, now),
        };
        self.drain();
        // The command may have gone away; what it asked for is done all the same.
        let _ = reply.send(answer.unwrap_or_else(|e| failure(&e)));
    }

    /// A device as the node knows it, with what only a running daemon knows: whether it is
    /// connected, and when it was last seen and synced.
    fn live_view(&self, mut p: PeerInfo) -> PeerInfo {
        if let Ok(d) = p.device.parse::<DeviceId>() {
            let (via, path) = match self.conns.get(&d) {
                Some(c) => {
                    let remote = failup_wire::canonical(c.conn.remote_address());
                    let relayed = failup_relay::device::is_relayed(&remote);
                    let path = self.node.path(d, remote, c.dialed, relayed, c.punched);
                    // Through the relay, the address the connection runs to is the relay's.
                    let via = if relayed {
                        self.relay.as_ref().map(|r| r.addr)
                    } else {
                        Some(remote)
                    };
                    (via, Some(path))
                }
                None => (None, None),
            };
            p.connected = path.is_some();
            p.via = via.map(|a| a.to_string());
            p.path = path.map(|p| p.as_str().to_owned());
            p.last_seen = self.seen.get(&d).map(|t| t.to_string());
            p.last_sync = self.synced.get(&d).map(|t| t.to_string());
        }
        p
    }

    fn status(&mut self) -> StatusInfo {
        let trusted = self.node.trusted().clone();
        let (seen, mapping) = self.node.reach(Timestamp::now());
        StatusInfo {
            device: self.identity.device().to_string(),
            listen: vec![self.listen.to_string()],
            connected: self.conns.keys().map(|d| d.to_string()).collect(),
            out_of_sync: trusted
                .iter()
                .filter(|d| !self.engine.is_in_sync(**d))
                .map(|d| d.to_string())
                .collect(),
            documents: self
                .node
                .store()
                .inventory()
                .map(|i| i.len() as u64)
                .unwrap_or(0),
            frames_sent: self.sent.0,
            bytes_sent: self.sent.1,
            observed: seen
                .iter()
                .map(|o| failup_node::request::ObservedInfo {
                    addr: o.addr.to_string(),
                    by: o.by as u64,
                    last: o.last.to_string(),
                })
                .collect(),
            mapping: mapping.as_str().to_owned(),
            mapped: self.node.mapped().map(|a| a.to_string()),
            relay: self
                .relay
                .as_ref()
                .map(|r| failup_node::request::RelayInfo {
                    addr: r.addr.to_string(),
                    linked: r.socket.is_up(),
                }),
        }
    }

    fn join(
        &mut self,
        code: &str,
        name: Option<String>,
        reply: oneshot::Sender<Response>,
        now: Timestamp,
    ) {
        match self.node.check_join(code, now) {
            Ok(code) => self.spawn_join(code, None, reply, move |joined, reply| Event::Joined {
                joined,
                name,
                reply,
            }),
            Err(e) => {
                let _ = reply.send(failure(&e));
            }
        }
    }

    fn partner_join(
        &mut self,
        code: &str,
        label: String,
        reply: oneshot::Sender<Response>,
        now: Timestamp,
    ) {
        match self.node.check_partner_join(code, &label, now) {
            Ok(code) => {
                // Chosen now, so the inviter learns it in the hello; the document is written
                // once the inviter accepts.
                let mine = DocId(rand::random());
                self.spawn_join(code, Some(mine), reply, move |joined, reply| {
                    Event::PartnerJoined {
                        joined,
                        label,
                        mine,
                        reply,
                    }
                });
            }
            Err(e) => {
                let _ = reply.send(failure(&e));
            }
        }
    }

    /// Runs the joiner's side of a pairing in the background; once the inviter accepts, `done`
    /// makes the event that hands the result to the engine thread. A failure answers `reply`.
    fn spawn_join(
        &self,
        code: pairing::Code,
        space: Option<DocId>,
        reply: oneshot::Sender<Response>,
        done: impl FnOnce(pairing::Joined, oneshot::Sender<Response>) -> Event + Send + 'static,
    ) {
        let (endpoint, identity, events) = (
            self.endpoint.clone(),
            self.identity.clone(),
            self.events.clone(),
        );
        let (my_name, port) = (self.node.name().to_owned(), self.listen.port());
        self.runtime.spawn(async move {
            let space = space.map(|d| d.0);
            match pairing::join(&endpoint, &identity, &code, my_name, port, space).await {
                Ok(joined) => {
                    if let Err(e) = events.send(done(joined, reply)) {
                        // The daemon stopped before it could record the join.
                        if let Event::Joined { reply, .. } | Event::PartnerJoined { reply, .. } =
                            e.0
                        {
                            let _ = reply.send(crate::control::stopping());
                        }
                    }
                }
                Err(e) => {
                    let _ = reply.send(Response::Error(e));
                }
            }
        });
    }

    fn sync(&mut self, timeout_ms: u64, reply: oneshot::Sender<Response>) {
        let pending: BTreeSet<DeviceId> = self.node.trusted().clone();
        if pending.is_empty() {
            let _ = reply.send(Response::Synced {
                in_sync: Vec::new(),
                missing: Vec::new(),
            });
            return;
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        self.waiters.insert(
            id,
            SyncWaiter {
                pending: pending.clone(),
                done: BTreeSet::new(),
                reply,
            },
        );
        for peer in pending {
            if self.conns.contains_key(&peer) {
                // A fresh round of summaries, so "in sync" means in sync now.
                self.engine(Input::Resync(peer));
            } else {
                self.wake(peer);
            }
        }
        let events = self.events.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
            // A stopped daemon has answered every waiter already.
            let _ = events.send(Event::SyncDeadline(id));
        });
    }

    /// A peer reported in sync: settles the `failup sync` requests waiting for it.
    fn sync_progress(&mut self, peer: DeviceId) {
        let finished: Vec<u64> = self
            .waiters
            .iter_mut()
            .filter_map(|(id, w)| {
                if w.pending.remove(&peer) {
                    w.done.insert(peer);
                }
                w.pending.is_empty().then_some(*id)
            })
            .collect();
        for id in finished {
            if let Some(w) = self.waiters.remove(&id) {
                let _ = w.reply.send(Response::Synced {
                    in_sync: w.done.iter().map(|d| d.to_string()).collect(),
                    missing: Vec::new(),
                });
            }
        }
    }
}

/// A failure of the joiner's side of a pairing, with its kind: an inviter that could not be
/// reached, or one that refused.
pub(crate) fn join_failure(unreachable: bool, message: String) -> Failure {
    let kind = if unreachable {
        ErrorKind::Unreachable
    } else {
        ErrorKind::Refused
    };
    Failure::new(kind, message)
}

/// The id of the connection kept for `peer`, if any.
fn conn_id_of(conns: &HashMap<DeviceId, Conn>, peer: DeviceId) -> Option<usize> {
    conns.get(&peer).map(|c| c.conn.stable_id())
}
