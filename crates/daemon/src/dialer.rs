//! Carrying out the connection policy (`failup_node::dial`): the engine thread feeds the policy
//! every connection event with the time, and this module does what it answers: dials a device
//! on all its addresses at once in a task of its own, closes the connections it says to close,
//! and arranges a tick for the moment the next dial comes due. Whom to dial and when is the
//! policy's alone, tested there with a fake clock.

use std::net::SocketAddr;
use std::time::Instant;

use failup_node::dial::{Action, ConnId, Event as PolicyEvent};
use failup_sync::Input;
use failup_wire::{ALPN_SYNC, DeviceId};

use crate::connection::run_connection;
use crate::engine::State;
use crate::{CONNECT_TIMEOUT, Event};

/// How long direct attempts go first before the relay is tried as well: a direct path that
/// works usually answers within a round trip or two.
const RELAY_HEAD_START: std::time::Duration = std::time::Duration::from_secs(2);

/// The policy's name for a quinn connection.
pub(crate) fn conn_id(conn: &quinn::Connection) -> ConnId {
    ConnId(conn.stable_id() as u64)
}

impl State {
    /// Tells the policy what happened and carries out its answer.
    pub(crate) fn policy(&mut self, event: PolicyEvent) {
        let now = Instant::now();
        let actions = self.dial_policy.handle(now, event);
        self.carry_out(actions);
    }

    /// A reason to think `device` is reachable now: a backoff wait or head start ends.
    pub(crate) fn wake(&mut self, device: DeviceId) {
        self.policy(PolicyEvent::Wake(device));
    }

    /// Does what the policy answered, then makes sure a tick arrives for its next due dial.
    pub(crate) fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Dial { peer, addrs, relay } => self.dial(peer, addrs, relay),
                // A close of a connection the engine does not hold (one being handed over, or
                // already gone) is the caller's to carry out, or moot.
                Action::Close { peer, conn, reason } => {
                    if self
                        .conns
                        .get(&peer)
                        .is_some_and(|c| conn_id(&c.conn) == conn)
                    {
                        tracing::warn!(peer = %peer.short(), "closing connection: {reason}");
                        if let Some(c) = self.conns.remove(&peer) {
                            c.conn.close(
                                crate::engine::close_code(reason),
                                reason.as_str().as_bytes(),
                            );
                        }
                        self.forget_conn(peer);
                        self.engine(Input::Disconnected(peer));
                    }
                }
            }
        }
        self.schedule_tick();
    }

    /// Makes sure a tick arrives when the policy's next dial comes due. A tick that arrives
    /// early or twice costs one look at the policy, so only an earlier deadline needs a new
    /// timer.
    fn schedule_tick(&mut self) {
        let Some(due) = self.dial_policy.poll_timeout() else {
            return;
        };
        if self.next_tick.is_some_and(|t| t <= due) {
            return;
        }
        self.next_tick = Some(due);
        let events = self.events.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            // A stopped engine needs no tick.
            let _ = events.send(Event::Tick(due));
        });
    }

    /// The timer set for `due` went off.
    pub(crate) fn tick(&mut self, due: Instant) {
        if self.next_tick == Some(due) {
            self.next_tick = None;
        }
        self.policy(PolicyEvent::Tick);
    }

    /// Dials `peer` at every address at once, in a task of its own: the first connection up
    /// is handed to the engine thread as a connection; if none comes up, the policy hears that
    /// the dial failed. Through the relay too unless `relay` is false (a meeting that looks
    /// for a direct path while a relayed connection is up).
    fn dial(&self, peer: DeviceId, addrs: Vec<SocketAddr>, relay: bool) {
        let (events, endpoint, identity) = (
            self.events.clone(),
            self.endpoint.clone(),
            self.identity.clone(),
        );
        // Through the relay too: after the direct attempts had a head start, or at once when
        // they all failed. A link still coming up holds the packets until it is (and when the
        // link comes up later, the devices not connected are woken: `Event::RelayLinked`).
        let mut relay = self
            .relay
            .as_ref()
            .filter(|_| relay)
            .and_then(|r| Some((r.endpoint.clone(), r.socket.addr_of(peer)?)));
        self.runtime.spawn(async move {
            // Every known address at once: a stale one (the device moved, or restarted on
            // another port) would otherwise hold up the good ones for a whole timeout.
            let mut attempts = tokio::task::JoinSet::new();
            let attempt =
                |attempts: &mut tokio::task::JoinSet<_>, endpoint: quinn::Endpoint, addr| {
                    let identity = identity.clone();
                    attempts.spawn(async move {
                        tokio::time::timeout(
                            CONNECT_TIMEOUT,
                            failup_net::connect(&endpoint, &identity, peer, addr, ALPN_SYNC),
                        )
                        .await
                    });
                };
            for addr in addrs {
                attempt(&mut attempts, endpoint.clone(), addr);
            }
            let head_start = tokio::time::sleep(RELAY_HEAD_START);
            tokio::pin!(head_start);
            let mut conn = None;
            loop {
                tokio::select! {
                    done = attempts.join_next() => match done {
                        Some(Ok(Ok(Ok(c)))) => {
                            conn = Some(c);
                            break;
                        }
                        Some(_) => {}
                        None => match relay.take() {
                            Some((ep, addr)) => attempt(&mut attempts, ep, addr),
                            None => break,
                        },
                    },
                    _ = &mut head_start, if relay.is_some() => {
                        if let Some((ep, addr)) = relay.take() {
                            attempt(&mut attempts, ep, addr);
                        }
                    }
                }
            }
            attempts.abort_all();
            let handed = match conn {
                Some(c) => {
                    let handed = run_connection(c.clone(), peer, true, events.clone()).await;
                    if failup_net::refused_as_revoked(&c) {
                        let _ = events.send(Event::RefusedAsRevoked(peer));
                    }
                    handed
                }
                None => false,
            };
            if !handed {
                // A stopped engine needs no answer.
                let _ = events.send(Event::DialFailed(peer));
            }
        });
    }
}
