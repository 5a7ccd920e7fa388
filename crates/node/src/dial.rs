//! Whom to dial, when, and which of two connections to one device to keep: the connection
//! policy of a device, written sans-IO in the style of quinn-proto so that its timing can be
//! tested with a fake clock and reasoned about apart from sockets and tasks. [`Policy`] reads
//! no clock and does no I/O; the daemon feeds it [`Event`]s with the current time, carries out
//! the [`Action`]s it returns, and sleeps until [`Policy::poll_timeout`] to send
//! [`Event::Tick`].
//!
//! The rules, in brief:
//! - every trusted device with a known address is dialed while it is not connected, one dial
//!   at a time, on all its addresses at once, addresses heard on the local network first;
//! - devices known at start-up are dialed at once; a device trusted later whose id is smaller
//!   than ours gets [`DIAL_HEAD_START`] first, because the connection dialed by the smaller id
//!   wins a race, so two devices that learn of each other at once open one connection;
//! - a failed dial waits a backoff that starts at [`INITIAL_BACKOFF`] and doubles up to
//!   [`MAX_BACKOFF`]; a wake (the circle changed, the device was heard, the user asked to sync)
//!   cuts the wait short;
//! - a connection we dialed that closed within [`STABLE_CONNECTION`] holds the full backoff
//!   and no wake cuts it short, so a connection refused or dropped at once cannot become a
//!   redial storm; one that lived longer resets the backoff and is redialed at once;
//! - two connections to one device within [`DIAL_RACE`] are simultaneous dials, and both sides
//!   keep the one dialed by the smaller id; a later connection replaces the old one, since the
//!   device must have lost it (it restarted, say);
//! - a device that leaves the trusted set is disconnected and forgotten.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use failup_wire::DeviceId;

/// The wait after the first failed dial, and the one a device returns to after a connection
/// that proved it healthy by staying up for [`STABLE_CONNECTION`].
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between dials: a device that was away for hours is reached within this
/// long of coming back, even if nothing wakes its dialer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a device waits before dialing a newly trusted device with a smaller id, so that
/// the smaller id's dial (the one both sides would keep) arrives first and no second
/// connection is opened only to be closed.
pub const DIAL_HEAD_START: Duration = Duration::from_secs(1);
/// How long a connection we dialed must live to count as healthy. One closed sooner (refused,
/// a duplicate, an error) holds its backoff in full before the next dial.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(10);
/// Two connections to one device within this window are a race of simultaneous dials, settled
/// by device id; a connection arriving later means the device lost the old one (it restarted,
/// say), so the new one replaces it rather than waiting for the old one to time out.
pub const DIAL_RACE: Duration = Duration::from_secs(2);
/// Least time between two wakes of one device by changes to who is trusted. Such changes come
/// from the circle and from partners' sides, which a partner writes as often as it likes: the
/// bound keeps a partner from turning its writes into a stream of dials.
pub const MIN_TRUST_WAKE: Duration = Duration::from_secs(5);

/// The daemon's name for one connection (quinn's `stable_id`, say): the policy only compares
/// these, so any value unique among a device's live connections will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn {}", self.0)
    }
}

/// Why the policy asks for a connection to be closed; [`CloseReason::as_str`] is what the
/// other side is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The device is not trusted.
    Unknown,
    /// The device is already connected and this connection lost the race of simultaneous dials.
    Duplicate,
    /// A newer connection to the device took this one's place.
    Replaced,
    /// The device left the trusted set.
    Revoked,
}

impl CloseReason {
    /// The reason as the peer reads it in the QUIC close frame.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Unknown => "unknown device",
            CloseReason::Duplicate => "duplicate",
            CloseReason::Replaced => "replaced",
            CloseReason::Revoked => "revoked",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Addresses of one introduction dialed at most.
pub const MAX_MEET_ADDRS: usize = 4;

/// What the daemon tells the policy, always with the time it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The whole set of trusted devices with the addresses known for each, sent once at
    /// start-up and again whenever the circle or the partners change. A device missing from it
    /// is no longer trusted. This device's own id is ignored if present.
    Trusted(BTreeMap<DeviceId, Vec<SocketAddr>>),
    /// The device announced these addresses on the local network; they are dialed first from
    /// now on.
    AddrsHeard {
        /// The device heard.
        peer: DeviceId,
        /// Where it says it listens now.
        addrs: Vec<SocketAddr>,
    },
    /// Something suggests the device is reachable now (it was heard on the local network, the
    /// user asked to sync, an address was added): a backoff wait or a head start ends now.
    Wake(DeviceId),
    /// A device both are connected to says the device dials this one at these addresses now
    /// (hole punching): dial them at once, whatever the backoff, so the two dials cross in the
    /// routers between. The next dial tries them alone (and the relay, as any dial not made
    /// while relayed); the listed addresses wait for the backoff as before.
    Meet {
        /// The device to meet.
        peer: DeviceId,
        /// Where the introducer sees it (its router's public address, behind one).
        addrs: Vec<SocketAddr>,
    },
    /// The dial asked for by [`Action::Dial`] reached none of the addresses.
    DialFailed {
        /// The device dialed.
        peer: DeviceId,
    },
    /// A connection to the device is up and authenticated: the answer to [`Action::Dial`]
    /// when `dialed`, or a connection the device opened to us when not.
    Connected {
        /// The device at the other end.
        peer: DeviceId,
        /// The daemon's name for the connection.
        conn: ConnId,
        /// Whether this device dialed it.
        dialed: bool,
        /// Whether it runs through a relay: a direct connection always replaces a relayed
        /// one, and a relayed one never replaces a direct one.
        relayed: bool,
    },
    /// A connection ended, for whatever reason (including a close the policy asked for).
    Closed {
        /// The device at the other end.
        peer: DeviceId,
        /// The connection that ended.
        conn: ConnId,
    },
    /// Nothing happened; time passed. Sent when [`Policy::poll_timeout`] is reached.
    Tick,
}

/// What the policy asks the daemon to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Dial the device at every address at once and keep the first connection that comes up,
    /// then answer with exactly one [`Event::Connected`] (`dialed: true`) or
    /// [`Event::DialFailed`]. Trying the addresses one by one would let a stale one (the
    /// device moved, or restarted on another port) hold up the good ones for a whole timeout.
    Dial {
        /// The device to dial.
        peer: DeviceId,
        /// Where to dial it, most promising first, without duplicates; never empty.
        addrs: Vec<SocketAddr>,
        /// Whether to try through the relay too: not while a relayed connection is up, when
        /// the dial looks for a direct path to replace it (an agreed meeting).
        relay: bool,
    },
    /// Close this connection with this reason.
    Close {
        /// The device at the other end.
        peer: DeviceId,
        /// The connection to close.
        conn: ConnId,
        /// Why, for the peer and for logs.
        reason: CloseReason,
    },
}

/// A connection the policy keeps for a device.
#[derive(Clone, Copy, Debug)]
struct Conn {
    id: ConnId,
    dialed: bool,
    relayed: bool,
    since: Instant,
}

/// What the policy knows about one trusted device.
#[derive(Clone, Debug)]
struct Peer {
    /// Addresses from the trusted set, in the order given.
    addrs: Vec<SocketAddr>,
    /// Addresses the device announced on the local network, dialed before the others.
    heard: Vec<SocketAddr>,
    /// Addresses to meet it at, from an introduction: dialed alone, in the next dial only.
    meet: Vec<SocketAddr>,
    /// The wait after the next failed dial or short-lived connection.
    backoff: Duration,
    /// The earliest time of the next dial as far as backoff and head start go; a wake moves
    /// it to now.
    ready_at: Instant,
    /// The earliest time of the next dial that no wake changes, after a short-lived
    /// connection.
    hold_until: Option<Instant>,
    /// A dial is in flight: no second one is issued until it is answered.
    dialing: bool,
    /// A wake arrived while the dial was in flight; it cuts short the wait if that dial fails,
    /// since the wake may bring news the dial did not have (a new address, say).
    woken: bool,
    /// The connection kept for the device.
    conn: Option<Conn>,
    /// When a change to who is trusted last woke it.
    trust_woken_at: Option<Instant>,
    /// The last connection to close that was not this device's own short-lived dial was one
    /// the device opened, short-lived: the next such one holds the dial.
    left_early: bool,
}

impl Peer {
    fn new(addrs: Vec<SocketAddr>, ready_at: Instant) -> Peer {
        Peer {
            addrs: dedup(addrs),
            heard: Vec::new(),
            meet: Vec::new(),
            backoff: INITIAL_BACKOFF,
            ready_at,
            hold_until: None,
            dialing: false,
            woken: false,
            conn: None,
            trust_woken_at: None,
            left_early: false,
        }
    }

    /// When the next dial is due, or `None` while none can be issued.
    fn dial_at(&self) -> Option<Instant> {
        // Connected through the relay, a meeting is still dialed: a direct path replaces it.
        let meet_while_relayed = self.conn.is_some_and(|c| c.relayed) && !self.meet.is_empty();
        if (self.conn.is_some() && !meet_while_relayed)
            || self.dialing
            || (self.addrs.is_empty() && self.heard.is_empty() && self.meet.is_empty())
        {
            return None;
        }
        Some(match self.hold_until {
            Some(hold) => hold.max(self.ready_at),
            None => self.ready_at,
        })
    }

    fn wake(&mut self, now: Instant) {
        if self.conn.is_some() {
            return;
        }
        if self.dialing {
            self.woken = true;
        } else {
            // A running hold still applies: `dial_at` takes the later of the two, which is how
            // a wake during a hold is remembered until the hold ends.
            self.ready_at = self.ready_at.min(now);
        }
    }

    /// A wake from a change to who is trusted, at most once per [`MIN_TRUST_WAKE`]: a later one
    /// moves the next dial to the end of that interval instead of to now.
    fn trust_wake(&mut self, now: Instant) {
        match self.trust_woken_at {
            Some(last) if now < last + MIN_TRUST_WAKE => {
                if self.conn.is_none() && !self.dialing {
                    self.ready_at = self.ready_at.min(last + MIN_TRUST_WAKE);
                }
            }
            _ => {
                self.trust_woken_at = Some(now);
                self.wake(now);
            }
        }
    }

    fn grow_backoff(&mut self) {
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Accounts for the end of `old`, a connection of this device, at `now`, closed or
    /// replaced: a short-lived one this device dialed holds the next dial.
    fn ended(&mut self, old: Conn, now: Instant) {
        if !old.dialed {
            return;
        }
        if lasted(old, now) {
            self.backoff = INITIAL_BACKOFF;
        } else {
            self.hold(now);
        }
    }

    /// Accounts for the close of `old` (not a replacement: the device is gone from it). A
    /// short-lived one the device opened is redialed at once (the device may have restarted),
    /// but not twice in a row: a device that connects and leaves again and again (a partner's
    /// modified client, say) would otherwise make this one dial every address it lists each
    /// time it leaves.
    fn closed(&mut self, old: Conn, now: Instant) {
        self.ended(old, now);
        if lasted(old, now) {
            self.left_early = false;
        } else if !old.dialed {
            if self.left_early {
                self.hold(now);
            }
            self.left_early = true;
        }
    }

    /// Holds the next dial for the full backoff, whatever wakes the device meanwhile.
    fn hold(&mut self, now: Instant) {
        self.hold_until = Some(now + self.backoff);
        self.grow_backoff();
    }

    fn dial_addrs(&self) -> Vec<SocketAddr> {
        // What the device announces now beats what it was once seen at.
        dedup(self.heard.iter().chain(&self.addrs).copied().collect())
    }
}

/// Whether `old` lasted past [`STABLE_CONNECTION`] at `now` (exactly that still counts as
/// short-lived, as it always has).
fn lasted(old: Conn, now: Instant) -> bool {
    now.saturating_duration_since(old.since) > STABLE_CONNECTION
}

/// Removes repeated addresses, keeping the first of each and the order.
fn dedup(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for a in addrs {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The connection policy of one device: feed it every [`Event`] with [`Policy::handle`], carry
/// out the [`Action`]s it returns in order, and call `handle(now, Event::Tick)` when
/// [`Policy::poll_timeout`] is reached.
///
/// Whether a new connection was kept: after `handle(now, Event::Connected { peer, conn, .. })`,
/// [`Policy::current`]`(peer) == Some(conn)` if it was; if it was not, the returned actions
/// hold a [`Action::Close`] for `conn`. A kept connection that displaced another comes with a
/// [`Action::Close`] for the old one with [`CloseReason::Replaced`].
#[derive(Clone, Debug)]
pub struct Policy {
    me: DeviceId,
    /// Whether the first [`Event::Trusted`] has been handled: only devices trusted after it
    /// get a head start, since the ones known at start-up may be waiting for us already.
    live: bool,
    peers: BTreeMap<DeviceId, Peer>,
}

impl Policy {
    /// The policy of device `me`, trusting no one until the first [`Event::Trusted`]; send
    /// that before any other event, or connections arriving first are closed as unknown.
    pub fn new(me: DeviceId) -> Policy {
        Policy {
            me,
            live: false,
            peers: BTreeMap::new(),
        }
    }

    /// This device.
    pub fn me(&self) -> DeviceId {
        self.me
    }

    /// Whether `peer` is in the trusted set.
    pub fn is_trusted(&self, peer: DeviceId) -> bool {
        self.peers.contains_key(&peer)
    }

    /// The connection kept for `peer`, if it is connected.
    pub fn current(&self, peer: DeviceId) -> Option<ConnId> {
        self.peers.get(&peer)?.conn.map(|c| c.id)
    }

    /// Whether a connection to `peer` is kept.
    pub fn is_connected(&self, peer: DeviceId) -> bool {
        self.current(peer).is_some()
    }

    /// The connected devices, in id order.
    pub fn connected(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| p.conn.is_some())
            .map(|(d, _)| *d)
    }

    /// The earliest time at which `handle(t, Event::Tick)` would issue a dial, or `None` if
    /// no dial is waiting (every device is connected, being dialed, or has no address).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers.values().filter_map(Peer::dial_at).min()
    }

    /// Takes in `event`, which happened at `now`, and returns what to do, dials that have come
    /// due included.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Trusted(trusted) => self.trusted(now, trusted, &mut actions),
            Event::AddrsHeard { peer, addrs } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    let addrs = dedup(addrs);
                    // The same announcement again is no news; the device repeats it.
                    if !addrs.is_empty() && addrs != p.heard {
                        p.heard = addrs;
                        p.wake(now);
                    }
                }
            }
            Event::Wake(peer) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.wake(now);
                }
            }
            Event::Meet { peer, addrs } => {
                let direct = |p: &&mut Peer| p.conn.is_none_or(|c| c.relayed);
                if let Some(p) = self.peers.get_mut(&peer).filter(direct) {
                    p.meet = dedup(addrs.into_iter().take(MAX_MEET_ADDRS).collect());
                    // The other device dials at this moment too: no backoff or hold waits.
                    p.hold_until = None;
                    p.ready_at = now;
                    if p.dialing {
                        p.woken = true;
                    }
                }
            }
            Event::DialFailed { peer } => {
                // A result for a device no longer trusted, or no dial at all, is stale.
                if let Some(p) = self.peers.get_mut(&peer).filter(|p| p.dialing) {
                    p.dialing = false;
                    if p.conn.is_none() {
                        p.ready_at = if p.woken { now } else { now + p.backoff };
                        p.grow_backoff();
                    }
                    // Else a meeting was missed while the relayed connection carries on: the
                    // backoff is for reaching a device at all, and it is reached.
                    p.woken = false;
                }
            }
            Event::Connected {
                peer,
                conn,
                dialed,
                relayed,
            } => self.connected_event(now, peer, conn, (dialed, relayed), &mut actions),
            Event::Closed { peer, conn } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    // A connection already replaced, or closed as a duplicate, was accounted
                    // for when the policy closed it.
                    if let Some(old) = p.conn.filter(|c| c.id == conn) {
                        p.conn = None;
                        p.closed(old, now);
                        p.wake(now);
                    }
                }
            }
            Event::Tick => {}
        }
        self.dial_due(now, &mut actions);
        actions
    }

    fn trusted(
        &mut self,
        now: Instant,
        mut trusted: BTreeMap<DeviceId, Vec<SocketAddr>>,
        actions: &mut Vec<Action>,
    ) {
        trusted.remove(&self.me);
        let gone: Vec<DeviceId> = self
            .peers
            .keys()
            .filter(|d| !trusted.contains_key(d))
            .copied()
            .collect();
        for peer in gone {
            // Dropping the state is what makes a late answer to an in-flight dial stale.
            if let Some(conn) = self.peers.remove(&peer).and_then(|p| p.conn) {
                actions.push(Action::Close {
                    peer,
                    conn: conn.id,
                    reason: CloseReason::Revoked,
                });
            }
        }
        for (peer, addrs) in trusted {
            match self.peers.get_mut(&peer) {
                Some(p) => {
                    p.addrs = dedup(addrs);
                    // The circle changed, so the other side may have just come to trust this
                    // device: a dialer backing off after a refusal tries again now (or soon,
                    // if such a change woke it a moment ago).
                    p.trust_wake(now);
                }
                None => {
                    let head_start = if self.live && peer < self.me {
                        DIAL_HEAD_START
                    } else {
                        Duration::ZERO
                    };
                    self.peers.insert(peer, Peer::new(addrs, now + head_start));
                }
            }
        }
        self.live = true;
    }

    fn connected_event(
        &mut self,
        now: Instant,
        peer: DeviceId,
        conn: ConnId,
        (dialed, relayed): (bool, bool),
        actions: &mut Vec<Action>,
    ) {
        let me = self.me;
        let Some(p) = self.peers.get_mut(&peer) else {
            actions.push(Action::Close {
                peer,
                conn,
                reason: CloseReason::Unknown,
            });
            return;
        };
        if dialed && p.dialing {
            p.dialing = false;
            p.woken = false;
        }
        if let Some(existing) = p.conn {
            if existing.id == conn {
                return;
            }
            // Both sides may dial at once; both keep the connection dialed by the smaller id.
            // A direct path beats a relayed one whenever it comes, on both sides alike.
            let preferred = |dialed: bool| if dialed { me < peer } else { peer < me };
            let race = now.saturating_duration_since(existing.since) < DIAL_RACE;
            let keep_existing = if existing.relayed != relayed {
                relayed
            } else {
                race && (preferred(existing.dialed) || !preferred(dialed))
            };
            if keep_existing {
                actions.push(Action::Close {
                    peer,
                    conn,
                    reason: CloseReason::Duplicate,
                });
                if dialed {
                    // A dialed connection closed at once, like any other.
                    p.hold(now);
                }
                return;
            }
            actions.push(Action::Close {
                peer,
                conn: existing.id,
                reason: CloseReason::Replaced,
            });
            p.ended(existing, now);
        }
        // A meeting that came while a dial was in flight is over once a connection is up: a
        // later dial, maybe hours on, goes to the listed addresses again.
        if !relayed {
            p.meet.clear();
        }
        p.conn = Some(Conn {
            id: conn,
            dialed,
            relayed,
            since: now,
        });
    }

    fn dial_due(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for (peer, p) in self.peers.iter_mut() {
            if p.dial_at().is_some_and(|at| at <= now) {
                p.dialing = true;
                p.woken = false;
                p.hold_until = None;
                let relayed = p.conn.is_some();
                // A meeting dials the meeting's addresses only: they are the news, and the
                // dial skips the backoff, which is not to hurry the listed addresses along
                // (a partner's device, introducing itself, would otherwise make this device
                // dial every address its side lists whenever it likes).
                let meeting = !p.meet.is_empty();
                actions.push(Action::Dial {
                    peer: *peer,
                    addrs: if meeting {
                        p.meet.clone()
                    } else {
                        p.dial_addrs()
                    },
                    relay: !relayed,
                });
                p.meet.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake clock: every time is an offset from one base instant.
    struct Clock(Instant);

    impl Clock {
        fn new() -> Clock {
            Clock(Instant::now())
        }

        fn ms(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn dev(b: u8) -> DeviceId {
        DeviceId([b; 32])
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn circle(devices: &[(DeviceId, Vec<SocketAddr>)]) -> Event {
        Event::Trusted(devices.iter().cloned().collect())
    }

    fn dial(peer: DeviceId, addrs: &[SocketAddr]) -> Action {
        Action::Dial {
            peer,
            addrs: addrs.to_vec(),
            relay: true,
        }
    }

    fn close(peer: DeviceId, conn: u64, reason: CloseReason) -> Action {
        Action::Close {
            peer,
            conn: ConnId(conn),
            reason,
        }
    }

    fn connected(peer: DeviceId, conn: u64, dialed: bool) -> Event {
        Event::Connected {
            peer,
            conn: ConnId(conn),
            dialed,
            relayed: false,
        }
    }

    fn closed(peer: DeviceId, conn: u64) -> Event {
        Event::Closed {
            peer,
            conn: ConnId(conn),
        }
    }

    /// A policy for `me` that trusted `peer` at start-up and has dialed it at time 0.
    fn dialing(clock: &Clock, me: DeviceId, peer: DeviceId) -> Policy {
        let mut p = Policy::new(me);
        let actions = p.handle(clock.ms(0), circle(&[(peer, vec![addr(1)])]));
        assert_eq!(actions, vec![dial(peer, &[addr(1)])]);
        p
    }

    #[test]
    fn start_up_dials_every_device_at_once() {
        let clock = Clock::new();
        let mut p = Policy::new(dev(5));
        assert_eq!(p.poll_timeout(), None);
        let actions = p.handle(
            clock.ms(0),
            circle(&[(dev(2), vec![addr(1)]), (dev(8), vec![addr(2), addr(3)])]),
        );
        // Smaller ids too: at start-up the other side may be waiting for us.
        assert_eq!(
            actions,
            vec![dial(dev(2), &[addr(1)]), dial(dev(8), &[addr(2), addr(3)])]
        );
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.handle(clock.ms(5000), Event::Tick), vec![]);
    }

    #[test]
    fn own_id_in_the_trusted_set_is_ignored() {
        let clock = Clock::new();
        let mut p = Policy::new(dev(5));
        let actions = p.handle(
            clock.ms(0),
            circle(&[(dev(5), vec![addr(9)]), (dev(8), vec![addr(1)])]),
        );
        assert_eq!(actions, vec![dial(dev(8), &[addr(1)])]);
        assert!(!p.is_trusted(dev(5)));
        assert_eq!(
            p.handle(clock.ms(10), connected(dev(5), 1, false)),
            vec![close(dev(5), 1, CloseReason::Unknown)]
        );
    }

    #[test]
    fn newly_trusted_smaller_id_gets_a_head_start() {
        let clock = Clock::new();
        let mut p = Policy::new(dev(5));
        assert_eq!(p.handle(clock.ms(0), circle(&[])), vec![]);
        assert_eq!(
            p.handle(clock.ms(100), circle(&[(dev(2), vec![addr(1)])])),
            vec![]
        );
        assert_eq!(p.poll_timeout(), Some(clock.ms(1100)));
        assert_eq!(p.handle(clock.ms(1099), Event::Tick), vec![]);
        assert_eq!(
            p.handle(clock.ms(1100), Event::Tick),
            vec![dial(dev(2), &[addr(1)])]
        );
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn newly_trusted_larger_id_is_dialed_at_once() {
        let clock = Clock::new();
        let mut p = Policy::new(dev(5));
        assert_eq!(p.handle(clock.ms(0), circle(&[])), vec![]);
        assert_eq!(
            p.handle(clock.ms(100), circle(&[(dev(8), vec![addr(1)])])),
            vec![dial(dev(8), &[addr(1)])]
        );
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn a_wake_cuts_the_head_start_short() {
        let clock = Clock::new();
        let mut p = Policy::new(dev(5));
        p.handle(clock.ms(0), circle(&[]));
        assert_eq!(
            p.handle(clock.ms(100), circle(&[(dev(2), vec![addr(1)])])),
            vec![]
        );
        assert_eq!(
            p.handle(clock.ms(400), Event::Wake(dev(2))),
            vec![dial(dev(2), &[addr(1)])]
        );
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.handle(clock.ms(1100), Event::Tick), vec![]);
    }

    #[test]
    fn an_introduction_dials_at_once_through_a_backoff_and_only_once() {
        let clock = Clock::new();
        // The first dial fails: a backoff holds the next one.
        let mut p = dialing(&clock, dev(1), dev(2));
        assert_eq!(
            p.handle(clock.ms(10), Event::DialFailed { peer: dev(2) }),
            vec![]
        );
        let outside: SocketAddr = "203.0.113.9:7676".parse().expect("addr");
        // Introduced: dialed now, at the meeting's address alone.
        assert_eq!(
            p.handle(
                clock.ms(20),
                Event::Meet {
                    peer: dev(2),
                    addrs: vec![outside, outside]
                }
            ),
            vec![dial(dev(2), &[outside])]
        );
        // That dial fails too: the next one is the old addresses alone, after the backoff.
        assert_eq!(
            p.handle(clock.ms(30), Event::DialFailed { peer: dev(2) }),
            vec![]
        );
        let later = p.handle(clock.ms(10_000), Event::Tick);
        assert_eq!(later, vec![dial(dev(2), &[addr(1)])]);
        // A device not trusted is not dialed, whoever introduces it.
        p.handle(clock.ms(10_001), Event::DialFailed { peer: dev(2) });
        assert_eq!(
            p.handle(
                clock.ms(10_002),
                Event::Meet {
                    peer: dev(7),
                    addrs: vec![outside]
                }
            ),
            vec![]
        );
    }

    #[test]
    fn a_meeting_through_the_relay_dials_direct_and_a_miss_keeps_the_relayed_connection() {
        let clock = Clock::new();
        let (me, peer) = (dev(2), dev(8));
        let mut p = dialing(&clock, me, peer);
        let relayed = Event::Connected {
            peer,
            conn: ConnId(1),
            dialed: true,
            relayed: true,
        };
        assert_eq!(p.handle(clock.ms(10), relayed), vec![]);
        // Connected through the relay, nothing more is dialed on its own.
        assert_eq!(p.handle(clock.ms(60_000), Event::Tick), vec![]);
        assert_eq!(p.poll_timeout(), None);
        let outside: SocketAddr = "203.0.113.9:7676".parse().expect("addr");
        let meet = || Event::Meet {
            peer,
            addrs: vec![outside],
        };
        // The peer says where it can be met: dialed at once, there alone, not through the relay.
        let direct_only = Action::Dial {
            peer,
            addrs: vec![outside],
            relay: false,
        };
        assert_eq!(
            p.handle(clock.ms(60_010), meet()),
            vec![direct_only.clone()]
        );
        // Missed: the relayed connection carries on, with no backoff and no redial.
        assert_eq!(
            p.handle(clock.ms(60_020), Event::DialFailed { peer }),
            vec![]
        );
        assert_eq!(p.current(peer), Some(ConnId(1)));
        assert_eq!(p.poll_timeout(), None);
        // The next round of the meeting is dialed at once again.
        assert_eq!(p.handle(clock.ms(63_000), meet()), vec![direct_only]);
        // It wins: the direct connection replaces the relayed one.
        assert_eq!(
            p.handle(clock.ms(63_010), connected(peer, 2, true)),
            vec![close(peer, 1, CloseReason::Replaced)]
        );
        assert_eq!(p.current(peer), Some(ConnId(2)));
        // Connected directly, a further meeting is not dialed.
        assert_eq!(p.handle(clock.ms(66_000), meet()), vec![]);
    }

    #[test]
    fn simultaneous_dials_settle_on_the_smaller_ids_connection_on_both_sides() {
        let (small, large) = (dev(2), dev(8));
        // Connection 1 is the one the smaller id dialed, 2 the one the larger id dialed. Each
        // side sees either its own dial or the other's first.
        for own_first in [false, true] {
            let clock = Clock::new();
            let mut a = dialing(&clock, small, large);
            let mut b = dialing(&clock, large, small);
            let (a_actions, b_actions) = if own_first {
                (
                    [
                        a.handle(clock.ms(10), connected(large, 1, true)),
                        a.handle(clock.ms(20), connected(large, 2, false)),
                    ],
                    [
                        b.handle(clock.ms(15), connected(small, 2, true)),
                        b.handle(clock.ms(25), connected(small, 1, false)),
                    ],
                )
            } else {
                (
                    [
                        a.handle(clock.ms(10), connected(large, 2, false)),
                        a.handle(clock.ms(20), connected(large, 1, true)),
                    ],
                    [
                        b.handle(clock.ms(15), connected(small, 1, false)),
                        b.handle(clock.ms(25), connected(small, 2, true)),
                    ],
                )
            };
            if own_first {
                assert_eq!(
                    a_actions,
                    [vec![], vec![close(large, 2, CloseReason::Duplicate)]]
                );
                assert_eq!(
                    b_actions,
                    [vec![], vec![close(small, 2, CloseReason::Replaced)]]
                );
            } else {
                assert_eq!(
                    a_actions,
                    [vec![], vec![close(large, 2, CloseReason::Replaced)]]
                );
                assert_eq!(
                    b_actions,
                    [vec![], vec![close(small, 2, CloseReason::Duplicate)]]
                );
            }
            assert_eq!(a.current(large), Some(ConnId(1)));
            assert_eq!(b.current(small), Some(ConnId(1)));
            // The closed duplicate's end is old news and changes nothing.
            assert_eq!(a.handle(clock.ms(30), closed(large, 2)), vec![]);
            assert_eq!(b.handle(clock.ms(30), closed(small, 2)), vec![]);
            assert_eq!(a.connected().collect::<Vec<_>>(), vec![large]);
            assert_eq!(b.connected().collect::<Vec<_>>(), vec![small]);
            assert_eq!(a.poll_timeout(), None);
            assert_eq!(b.poll_timeout(), None);
        }
    }

    #[test]
    fn a_duplicate_we_dialed_holds_the_backoff_if_the_kept_connection_drops() {
        let clock = Clock::new();
        let (me, peer) = (dev(8), dev(2));
        let mut p = dialing(&clock, me, peer);
        assert_eq!(p.handle(clock.ms(10), connected(peer, 1, false)), vec![]);
        assert_eq!(
            p.handle(clock.ms(20), connected(peer, 2, true)),
            vec![close(peer, 2, CloseReason::Duplicate)]
        );
        // The kept connection drops soon after: the next dial waits out the hold that the
        // duplicate started (20 + 250 ms).
        assert_eq!(p.handle(clock.ms(100), closed(peer, 1)), vec![]);
        assert_eq!(p.poll_timeout(), Some(clock.ms(270)));
        assert_eq!(p.handle(clock.ms(150), Event::Wake(peer)), vec![]);
        assert_eq!(
            p.handle(clock.ms(270), Event::Tick),
            vec![dial(peer, &[addr(1)])]
        );
        // And the backoff doubled.
        assert_eq!(p.handle(clock.ms(300), Event::DialFailed { peer }), vec![]);
        assert_eq!(p.poll_timeout(), Some(clock.ms(800)));
    }

    #[test]
    fn a_direct_connection_replaces_a_relayed_one_and_never_the_other_way() {
        let clock = Clock::new();
        // The dial rule alone would keep our own dial (the smaller id dials).
        let (me, peer) = (dev(2), dev(8));
        let mut p = dialing(&clock, me, peer);
        let relayed = |conn: u64, dialed: bool| Event::Connected {
            peer,
            conn: ConnId(conn),
            dialed,
            relayed: true,
        };
        assert_eq!(p.handle(clock.ms(0), relayed(1, true)), vec![]);
        // Within the race window, a direct connection the peer dialed still wins.
        assert_eq!(
            p.handle(clock.ms(10), connected(peer, 2, false)),
            vec![close(peer, 1, CloseReason::Replaced)]
        );
        assert_eq!(p.current(peer), Some(ConnId(2)));
        // A relayed one arriving later, however it was dialed, is a duplicate.
        assert_eq!(
            p.handle(clock.ms(5000), relayed(3, true)),
            vec![close(peer, 3, CloseReason::Duplicate)]
        );
        assert_eq!(p.current(peer), Some(ConnId(2)));
    }

    #[test]
    fn a_connection_past_the_race_window_replaces_the_old_one() {
        let clock = Clock::new();
        let (me, peer) = (dev(2), dev(8));
        let mut p = dialing(&clock, me, peer);
        assert_eq!(p.handle(clock.ms(0), connected(peer, 1, true)), vec![]);
        // Within the window our own dial wins...
        assert_eq!(
            p.handle(clock.ms(1999), connected(peer, 2, false)),
            vec![close(peer, 2, CloseReason::Duplicate)]
        );
        assert_eq!(p.current(peer), Some(ConnId(1)));
        // ...past it the peer must have restarted, and its new connection wins.
        assert_eq!(
            p.handle(clock.ms(2000), connected(peer, 3, false)),
            vec![close(peer, 1, CloseReason::Replaced)]
        );
        assert_eq!(p.current(peer), Some(ConnId(3)));
        assert_eq!(p.handle(clock.ms(2010), closed(peer, 1)), vec![]);
        assert!(p.is_connected(peer));
        // The replaced connection was ours and short-lived, so it held until 2250 ms; the
        // accepted one ending after that is redialed at once.
        assert_eq!(
            p.handle(clock.ms(3000), closed(peer, 3)),
            vec![dial(peer, &[addr(1)])]
        );
    }

    #[test]
    fn a_refused_peer_backs_off_doubling_up_to_the_cap() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        let mut t = 0;
        for wait in [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000] {
            t += 40;
            assert_eq!(p.handle(clock.ms(t), Event::DialFailed { peer }), vec![]);
            assert_eq!(p.poll_timeout(), Some(clock.ms(t + wait)));
            assert_eq!(p.handle(clock.ms(t + wait - 1), Event::Tick), vec![]);
            t += wait;
            assert_eq!(
                p.handle(clock.ms(t), Event::Tick),
                vec![dial(peer, &[addr(1)])]
            );
            assert_eq!(p.poll_timeout(), None);
        }
    }

    #[test]
    fn a_failure_answer_without_a_dial_is_ignored() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        p.handle(clock.ms(0), Event::DialFailed { peer });
        assert_eq!(p.handle(clock.ms(10), Event::DialFailed { peer }), vec![]);
        assert_eq!(p.poll_timeout(), Some(clock.ms(250)));
    }

    #[test]
    fn a_stable_connection_resets_the_backoff() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        // Three failures: the backoff is now 2 s.
        p.handle(clock.ms(0), Event::DialFailed { peer });
        p.handle(clock.ms(250), Event::Tick);
        p.handle(clock.ms(250), Event::DialFailed { peer });
        p.handle(clock.ms(750), Event::Tick);
        p.handle(clock.ms(750), Event::DialFailed { peer });
        assert_eq!(
            p.handle(clock.ms(1750), Event::Tick),
            vec![dial(peer, &[addr(1)])]
        );
        assert_eq!(p.handle(clock.ms(1800), connected(peer, 1, true)), vec![]);
        assert_eq!(p.poll_timeout(), None);
        // It lived just over 10 s: redialed at once, and the next failure waits 250 ms again.
        assert_eq!(
            p.handle(clock.ms(11_801), closed(peer, 1)),
            vec![dial(peer, &[addr(1)])]
        );
        p.handle(clock.ms(11_900), Event::DialFailed { peer });
        assert_eq!(p.poll_timeout(), Some(clock.ms(12_150)));
    }

    #[test]
    fn a_short_lived_dialed_connection_holds_the_full_backoff_even_when_woken() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        p.handle(clock.ms(0), Event::DialFailed { peer });
        assert_eq!(
            p.handle(clock.ms(250), Event::Tick),
            vec![dial(peer, &[addr(1)])]
        );
        assert_eq!(p.handle(clock.ms(300), connected(peer, 1, true)), vec![]);
        // Closed after 1 s (refused by the other side, say): held for the 500 ms backoff.
        assert_eq!(p.handle(clock.ms(1300), closed(peer, 1)), vec![]);
        assert_eq!(p.poll_timeout(), Some(clock.ms(1800)));
        assert_eq!(p.handle(clock.ms(1400), Event::Wake(peer)), vec![]);
        assert_eq!(
            p.handle(clock.ms(1500), circle(&[(peer, vec![addr(1)])])),
            vec![]
        );
        assert_eq!(
            p.handle(
                clock.ms(1600),
                Event::AddrsHeard {
                    peer,
                    addrs: vec![addr(2)]
                }
            ),
            vec![]
        );
        assert_eq!(p.poll_timeout(), Some(clock.ms(1800)));
        assert_eq!(p.handle(clock.ms(1799), Event::Tick), vec![]);
        assert_eq!(
            p.handle(clock.ms(1800), Event::Tick),
            vec![dial(peer, &[addr(2), addr(1)])]
        );
        // The backoff doubled: the next failure waits 1 s.
        p.handle(clock.ms(1900), Event::DialFailed { peer });
        assert_eq!(p.poll_timeout(), Some(clock.ms(2900)));
    }

    #[test]
    fn exactly_stable_connection_still_counts_as_short_lived() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        p.handle(clock.ms(0), connected(peer, 1, true));
        assert_eq!(p.handle(clock.ms(10_000), closed(peer, 1)), vec![]);
        assert_eq!(p.poll_timeout(), Some(clock.ms(10_250)));
    }

    #[test]
    fn a_circle_change_wakes_a_backed_off_dialer() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        p.handle(clock.ms(0), Event::DialFailed { peer });
        p.handle(clock.ms(250), Event::Tick);
        p.handle(clock.ms(250), Event::DialFailed { peer });
        assert_eq!(p.poll_timeout(), Some(clock.ms(750)));
        // Another device joined; the peer is still listed, so it may trust us now.
        assert_eq!(
            p.handle(
                clock.ms(300),
                circle(&[(peer, vec![addr(1)]), (dev(9), vec![addr(3)])])
            ),
            vec![dial(peer, &[addr(1)]), dial(dev(9), &[addr(3)])]
        );
        // The backoff kept growing: this failure waits 1 s.
        p.handle(clock.ms(400), Event::DialFailed { peer });
        assert_eq!(p.poll_timeout(), Some(clock.ms(1400)));
    }

    #[test]
    fn a_circle_change_leaves_a_connected_peer_alone() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        p.handle(clock.ms(0), connected(peer, 1, true));
        assert_eq!(
            p.handle(clock.ms(100), circle(&[(peer, vec![addr(1), addr(2)])])),
            vec![]
        );
        assert_eq!(p.current(peer), Some(ConnId(1)));
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn a_wake_during_a_dial_retries_at_once_if_it_fails() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        // No second dial while one is in flight...
        assert_eq!(p.handle(clock.ms(10), Event::Wake(peer)), vec![]);
        // ...but its failure is retried at once, since the wake may bring news.
        assert_eq!(
            p.handle(clock.ms(20), Event::DialFailed { peer }),
            vec![dial(peer, &[addr(1)])]
        );
        // The backoff still grew, and the wake was used up.
        p.handle(clock.ms(30), Event::DialFailed { peer });
        assert_eq!(p.poll_timeout(), Some(clock.ms(530)));
    }

    #[test]
    fn a_closed_accepted_connection_is_redialed_at_once_without_resetting_the_backoff() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        p.handle(clock.ms(0), Event::DialFailed { peer });
        assert_eq!(p.handle(clock.ms(100), connected(peer, 1, false)), vec![]);
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.handle(clock.ms(250), Event::Tick), vec![]);
        // Short-lived or not, the connection was the peer's, so nothing is held.
        assert_eq!(
            p.handle(clock.ms(500), closed(peer, 1)),
            vec![dial(peer, &[addr(1)])]
        );
        p.handle(clock.ms(600), Event::DialFailed { peer });
        assert_eq!(p.poll_timeout(), Some(clock.ms(1100)));
    }

    #[test]
    fn a_device_that_connects_and_leaves_again_and_again_is_not_redialed_each_time() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        p.handle(clock.ms(0), Event::DialFailed { peer });
        p.handle(clock.ms(100), connected(peer, 1, false));
        assert_eq!(
            p.handle(clock.ms(500), closed(peer, 1)),
            vec![dial(peer, &[addr(1)])]
        );
        p.handle(clock.ms(510), Event::DialFailed { peer });
        // In and out again at once: this time the dial waits out the backoff, whatever wakes it.
        p.handle(clock.ms(520), connected(peer, 2, false));
        assert_eq!(p.handle(clock.ms(530), closed(peer, 2)), vec![]);
        assert_eq!(p.handle(clock.ms(540), Event::Wake(peer)), vec![]);
        assert_eq!(p.poll_timeout(), Some(clock.ms(1530)));
        // A connection that lasts makes the next short one redialed at once again.
        p.handle(clock.ms(600), connected(peer, 3, false));
        assert_eq!(
            p.handle(clock.ms(20_000), closed(peer, 3)),
            vec![dial(peer, &[addr(1)])]
        );
        p.handle(clock.ms(20_010), Event::DialFailed { peer });
        p.handle(clock.ms(20_020), connected(peer, 4, false));
        assert_eq!(
            p.handle(clock.ms(20_030), closed(peer, 4)),
            vec![dial(peer, &[addr(1)])]
        );
    }

    #[test]
    fn a_connection_replaced_is_not_the_device_leaving() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = dialing(&clock, dev(2), peer);
        p.handle(clock.ms(0), Event::DialFailed { peer });
        let relayed = Event::Connected {
            peer,
            conn: ConnId(1),
            dialed: false,
            relayed: true,
        };
        p.handle(clock.ms(100), relayed);
        // The device meets this one directly: the relayed connection is replaced, and the
        // device is still here.
        assert_eq!(
            p.handle(clock.ms(200), connected(peer, 2, false)),
            vec![close(peer, 1, CloseReason::Replaced)]
        );
        // So when the direct one ends soon after, that is the first time it left: redialed.
        assert_eq!(
            p.handle(clock.ms(300), closed(peer, 2)),
            vec![dial(peer, &[addr(1)])]
        );
    }

    #[test]
    fn revocation_closes_the_connection_and_ignores_late_answers() {
        let clock = Clock::new();
        let (a, b) = (dev(8), dev(9));
        let mut p = Policy::new(dev(2));
        p.handle(
            clock.ms(0),
            circle(&[(a, vec![addr(1)]), (b, vec![addr(2)])]),
        );
        assert_eq!(p.handle(clock.ms(10), connected(a, 1, true)), vec![]);
        // Both leave the circle: the connected one is closed, the dial to the other is moot.
        assert_eq!(
            p.handle(clock.ms(100), circle(&[])),
            vec![close(a, 1, CloseReason::Revoked)]
        );
        assert!(!p.is_connected(a));
        assert!(!p.is_trusted(a));
        assert_eq!(p.connected().count(), 0);
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.handle(clock.ms(110), closed(a, 1)), vec![]);
        assert_eq!(
            p.handle(clock.ms(120), connected(b, 2, true)),
            vec![close(b, 2, CloseReason::Unknown)]
        );
        assert_eq!(
            p.handle(clock.ms(130), Event::DialFailed { peer: b }),
            vec![]
        );
        assert_eq!(p.handle(clock.ms(140), Event::Wake(b)), vec![]);
        assert_eq!(
            p.handle(
                clock.ms(150),
                Event::AddrsHeard {
                    peer: b,
                    addrs: vec![addr(3)]
                }
            ),
            vec![]
        );
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn an_untrusted_connection_is_closed_as_unknown() {
        let clock = Clock::new();
        let mut p = Policy::new(dev(2));
        assert_eq!(
            p.handle(clock.ms(0), connected(dev(8), 1, false)),
            vec![close(dev(8), 1, CloseReason::Unknown)]
        );
        p.handle(clock.ms(10), circle(&[(dev(9), vec![addr(1)])]));
        assert_eq!(
            p.handle(clock.ms(20), connected(dev(8), 2, false)),
            vec![close(dev(8), 2, CloseReason::Unknown)]
        );
        assert!(!p.is_connected(dev(8)));
    }

    #[test]
    fn a_device_without_addresses_waits_for_some() {
        let clock = Clock::new();
        let (a, b) = (dev(8), dev(9));
        let mut p = Policy::new(dev(2));
        assert_eq!(
            p.handle(clock.ms(0), circle(&[(a, vec![]), (b, vec![])])),
            vec![]
        );
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.handle(clock.ms(100), Event::Wake(a)), vec![]);
        assert_eq!(p.handle(clock.ms(60_000), Event::Tick), vec![]);
        // Heard on the local network...
        assert_eq!(
            p.handle(
                clock.ms(60_100),
                Event::AddrsHeard {
                    peer: a,
                    addrs: vec![addr(1)]
                }
            ),
            vec![dial(a, &[addr(1)])]
        );
        // ...or given an address in the circle.
        assert_eq!(
            p.handle(clock.ms(60_200), circle(&[(a, vec![]), (b, vec![addr(2)])])),
            vec![dial(b, &[addr(2)])]
        );
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn heard_addresses_come_first_without_duplicates() {
        let clock = Clock::new();
        let peer = dev(8);
        let mut p = Policy::new(dev(2));
        p.handle(
            clock.ms(0),
            circle(&[(peer, vec![addr(1), addr(2), addr(1)])]),
        );
        p.handle(clock.ms(0), Event::DialFailed { peer });
        assert_eq!(
            p.handle(
                clock.ms(10),
                Event::AddrsHeard {
                    peer,
                    addrs: vec![addr(2), addr(3), addr(3)]
                }
            ),
            vec![dial(peer, &[addr(2), addr(3), addr(1)])]
        );
        p.handle(clock.ms(20), Event::DialFailed { peer });
        assert_eq!(p.poll_timeout(), Some(clock.ms(520)));
        // The same announcement again is no reason to dial early; an empty one changes nothing.
        assert_eq!(
            p.handle(
                clock.ms(30),
                Event::AddrsHeard {
                    peer,
                    addrs: vec![addr(2), addr(3)]
                }
            ),
            vec![]
        );
        assert_eq!(
            p.handle(
                clock.ms(40),
                Event::AddrsHeard {
                    peer,
                    addrs: vec![]
                }
            ),
            vec![]
        );
        assert_eq!(p.poll_timeout(), Some(clock.ms(520)));
        assert_eq!(
            p.handle(clock.ms(520), Event::Tick),
            vec![dial(peer, &[addr(2), addr(3), addr(1)])]
        );
    }

    #[test]
    fn poll_timeout_is_the_earliest_pending_dial() {
        let clock = Clock::new();
        let (a, b, c) = (dev(3), dev(8), dev(9));
        let mut p = Policy::new(dev(5));
        assert_eq!(p.poll_timeout(), None);
        p.handle(
            clock.ms(0),
            circle(&[(b, vec![addr(1)]), (c, vec![addr(2)])]),
        );
        // Both dials in flight.
        assert_eq!(p.poll_timeout(), None);
        p.handle(clock.ms(100), Event::DialFailed { peer: b });
        assert_eq!(p.poll_timeout(), Some(clock.ms(350)));
        p.handle(clock.ms(200), Event::DialFailed { peer: c });
        assert_eq!(p.poll_timeout(), Some(clock.ms(350)));
        // A newly trusted smaller id's head start ends later than both.
        p.handle(
            clock.ms(300),
            circle(&[(a, vec![addr(3)]), (b, vec![addr(1)]), (c, vec![addr(2)])]),
        );
        // The circle change woke b and c, leaving only a's head start.
        assert_eq!(p.poll_timeout(), Some(clock.ms(1300)));
        p.handle(clock.ms(1300), Event::Tick);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn close_reasons_read_as_the_peer_sees_them() {
        assert_eq!(CloseReason::Unknown.as_str(), "unknown device");
        assert_eq!(CloseReason::Duplicate.as_str(), "duplicate");
        assert_eq!(CloseReason::Replaced.as_str(), "replaced");
        assert_eq!(CloseReason::Revoked.as_str(), "revoked");
        assert_eq!(CloseReason::Revoked.to_string(), "revoked");
    }

    #[test]
    fn changes_to_who_is_trusted_wake_a_device_at_most_once_per_interval() {
        // A partner rewriting its side every 100 ms: each write changes the trusted set.
        let clock = Clock::new();
        let (me, them) = (dev(1), dev(2));
        let mut p = dialing(&clock, me, them);
        let mut dials = 0;
        p.handle(clock.ms(10), Event::DialFailed { peer: them });
        for i in 0..100u64 {
            let now = clock.ms(100 + i * 100);
            let port = 1000 + u16::try_from(i).expect("port");
            let actions = p.handle(now, circle(&[(them, vec![addr(port)])]));
            dials += actions
                .iter()
                .filter(|a| matches!(a, Action::Dial { .. }))
                .count();
            for a in actions {
                if matches!(a, Action::Dial { .. }) {
                    p.handle(now, Event::DialFailed { peer: them });
                }
            }
            dials += p
                .handle(now, Event::Tick)
                .iter()
                .filter(|a| matches!(a, Action::Dial { .. }))
                .count();
        }
        // Ten seconds of writes: a wake now and then, and the backoff between.
        let bound = (10_000 / MIN_TRUST_WAKE.as_millis() as usize) + 6;
        assert!(
            dials <= bound,
            "{dials} dials in ten seconds (bound {bound})"
        );
        assert!(dials >= 1);
        // An explicit wake (the user asked to sync) still dials at once.
        let now = clock.ms(10_150);
        let d = p.handle(now, Event::Wake(them));
        assert!(
            d.iter().any(|a| matches!(a, Action::Dial { .. })) || p.peers[&them].dialing,
            "{d:?}"
        );
    }
}
