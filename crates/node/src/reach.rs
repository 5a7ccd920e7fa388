//! How this device looks from outside: the addresses its peers see its connections come from
//! (the `observed` message, proto/sync.md "Reach"), and what that says about the router in
//! between. Pure: reports and `now` come in as arguments.
//!
//! A peer's report is a hint, never trust: a lying peer can make this device publish an
//! address that does not work, which costs other devices a dial that fails, and nothing else.
//! Reports are bounded (one per peer, at most [`MAX_REPORTERS`]) and age out after
//! [`FRESH_FOR`].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use failup_wire::DeviceId;
use jiff::Timestamp;

/// Peers whose reports are kept at most; past this the oldest report goes.
pub const MAX_REPORTERS: usize = 16;
/// How long a report counts without being confirmed by a new connection.
pub const FRESH_FOR: Duration = Duration::from_secs(30 * 60);
/// Outside addresses this device publishes at most.
pub const MAX_PUBLISHED: usize = 2;

/// What the reports say about the router between this device and the peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// Fewer than two peers at different addresses have reported an outside address.
    Unknown,
    /// Peers at different addresses see the same outside address and port: a device told that
    /// address can reach this one by dialing it at the same moment (hole punching).
    Stable,
    /// Peers at different addresses see different ports: what one observes is no use to
    /// another, and only a relay (or a port mapping) reaches this device.
    PerDestination,
}

impl Mapping {
    /// A short name, as `status --json` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mapping::Unknown => "unknown",
            Mapping::Stable => "stable",
            Mapping::PerDestination => "per-destination",
        }
    }
}

/// An outside address of this device, as peers saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The address.
    pub addr: SocketAddr,
    /// How many peers saw it.
    pub by: usize,
    /// When it was last seen.
    pub last: Timestamp,
}

#[derive(Clone, Debug)]
struct Report {
    /// Where the reporting peer's connection came from, as this device saw it.
    from: IpAddr,
    /// What the peer saw this device's connection come from.
    addr: SocketAddr,
    at: Timestamp,
}

/// The peers' reports, one per peer.
#[derive(Debug, Default)]
pub struct Observations {
    reports: BTreeMap<DeviceId, Report>,
}

impl Observations {
    /// Records that `reporter`, whose connection comes from `from`, sees this device at
    /// `addr`. Returns whether the outside addresses this device would publish changed.
    pub fn record(
        &mut self,
        reporter: DeviceId,
        from: SocketAddr,
        addr: SocketAddr,
        local: &[IpAddr],
        now: Timestamp,
    ) -> bool {
        let before = self.published(now, local);
        if self.reports.len() >= MAX_REPORTERS && !self.reports.contains_key(&reporter) {
            if let Some(oldest) = self
                .reports
                .iter()
                .min_by_key(|(_, r)| r.at)
                .map(|(d, _)| *d)
            {
                self.reports.remove(&oldest);
            }
        }
        self.reports.insert(
            reporter,
            Report {
                from: from.ip(),
                addr,
                at: now,
            },
        );
        self.published(now, local) != before
    }

    /// Fresh reports of an address that is not one of this device's own (`local`): an
    /// address on this device's network interfaces is how a peer on the same network sees it,
    /// not how the outside does.
    fn outside(&self, now: Timestamp, local: &[IpAddr]) -> impl Iterator<Item = &Report> {
        let fresh = jiff::SignedDuration::try_from(FRESH_FOR).unwrap_or_default();
        self.reports.values().filter(move |r| {
            now.duration_since(r.at) < fresh && !local.contains(&r.addr.ip()) && r.at <= now
        })
    }

    /// The outside addresses peers see, most seen first.
    pub fn public(&self, now: Timestamp, local: &[IpAddr]) -> Vec<Observation> {
        let mut by: BTreeMap<SocketAddr, Observation> = BTreeMap::new();
        for r in self.outside(now, local) {
            let o = by.entry(r.addr).or_insert(Observation {
                addr: r.addr,
                by: 0,
                last: r.at,
            });
            o.by += 1;
            o.last = o.last.max(r.at);
        }
        let mut out: Vec<Observation> = by.into_values().collect();
        out.sort_by(|a, b| b.by.cmp(&a.by).then(b.last.cmp(&a.last)));
        out
    }

    /// What to publish for other devices to dial: the most seen outside addresses, and none
    /// when the router gives each peer a port of its own.
    pub fn published(&self, now: Timestamp, local: &[IpAddr]) -> Vec<SocketAddr> {
        if self.mapping(now, local) == Mapping::PerDestination {
            return Vec::new();
        }
        self.public(now, local)
            .into_iter()
            .take(MAX_PUBLISHED)
            .map(|o| o.addr)
            .collect()
    }

    /// What the reports of peers at different addresses say about the router: two peers
    /// behind one address are one view, and one pair seeing different ports settles it.
    pub fn mapping(&self, now: Timestamp, local: &[IpAddr]) -> Mapping {
        let reports: Vec<&Report> = self.outside(now, local).collect();
        let mut verdict = Mapping::Unknown;
        for (i, a) in reports.iter().enumerate() {
            for b in reports.iter().skip(i + 1) {
                if a.from == b.from || a.addr.ip() != b.addr.ip() {
                    continue;
                }
                if a.addr.port() != b.addr.port() {
                    return Mapping::PerDestination;
                }
                verdict = Mapping::Stable;
            }
        }
        verdict
    }
}

/// Whether `ip` belongs to a local network (loopback, private, link-local, unique local,
/// site-local, shared address space, local-use NAT64, or the well-known NAT64 prefix around
/// one of those): an address a connection came from there is the device's own, and
/// two devices seen there may well reach each other without help.
pub fn local_scope(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let s = v6.segments();
            let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            let embedded = std::net::Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
            v6.is_loopback()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || (nat64 && local_scope(embedded.into()))
                || s[..3] == [0x64, 0xff9b, 1]
                || v6.to_ipv4_mapped().is_some_and(|v4| local_scope(v4.into()))
        }
    }
}

/// How a connection runs, as `failup peers` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// To an address of a local network.
    Local,
    /// Through a port a router forwards (a port mapping): dialed at the address the peer's
    /// router forwards to it, or taken in while this device's router forwards one to it.
    Mapped,
    /// Through two routers, the two devices having dialed each other at the moment another
    /// device told them to (hole punching).
    Punched,
    /// Across the internet some other way (a public address, a port forwarded by hand).
    Internet,
    /// Through the person's relay.
    Relayed,
}

impl Path {
    /// A short name, as `peers --json` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Local => "local",
            Path::Mapped => "mapped",
            Path::Punched => "punched",
            Path::Internet => "internet",
            Path::Relayed => "relayed",
        }
    }
}

/// How long after an introduction counted a connection with that device is taken for its
/// result: the dials start at once and a handshake takes a few round trips, so well within.
pub const PUNCH_WINDOW: Duration = Duration::from_secs(30);

/// Least time between two introductions to the same device that count: a device cannot make
/// this one dial another in a loop.
pub const MEET_INTERVAL: Duration = Duration::from_secs(1);

/// Most introductions that count here in a minute: from a partner's devices, per side of that
/// partner's that lists the device named (their half of a space); from own devices, per
/// partner's device named, since a partner's device can make an own device that introduces
/// partners send them by connecting again and again. The rounds of two meetings
/// ([`INTRODUCTION_ROUNDS`]). A hostile partner cannot make this device dial on introductions
/// any faster than that; one partner's introductions never use up another's.
pub const PARTNER_MEETS: usize = 6;

/// Who a device is to this one, as an introduction is judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// This device.
    This,
    /// Another trusted device of this person's circle.
    Own,
    /// A trusted device of a partner's, with the partners' sides (their half of each space)
    /// that list it.
    Partner(Vec<failup_wire::DocId>),
    /// Any other device: not trusted here.
    Unknown,
}

/// The introductions (`meet`, proto/sync.md "Reach") that counted here lately.
#[derive(Debug, Default)]
pub struct Meetings {
    /// When each device was last introduced, for [`MEET_INTERVAL`] and [`punched`]; entries
    /// older than [`PUNCH_WINDOW`] are dropped, so it holds at most the devices introduced
    /// in the last half minute.
    last: BTreeMap<DeviceId, Timestamp>,
    /// When each budget counted an introduction in the last minute, for [`PARTNER_MEETS`];
    /// budgets with none are dropped, so it holds at most the trusted partners' sides and
    /// devices.
    by_partner: BTreeMap<Budget, Vec<Timestamp>>,
}

/// What an introduction about a partner's device is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Budget {
    /// A partner's side: their devices' introductions of devices it lists.
    Side(failup_wire::DocId),
    /// A partner's device: own devices' introductions of it.
    Device(DeviceId),
}

impl Meetings {
    /// Whether an introduction from `from` about `device` (who is `about`) counts at `now`,
    /// and if so records it. An own device may introduce another own device or a partner's (it
    /// saw where the connection comes from). A partner's device may introduce only a device
    /// listed by no side but its own partner's (itself included): the addresses are that
    /// partner's to choose, as in their side, and a device that a second partner also lists
    /// is not the first's to place (only own devices introduce it). An introduction about a
    /// partner's device counts against [`PARTNER_MEETS`]: of each side that lists it when a
    /// partner's device sends it, of the device itself when an own device does. Never this
    /// device, a device not trusted, or one of this person's devices on a partner's word;
    /// never the same device twice within [`MEET_INTERVAL`]. A record from ahead of `now` (the
    /// clock stepped back) is forgotten rather than kept for the length of the step.
    pub fn admit(&mut self, from: &Who, device: DeviceId, about: &Who, now: Timestamp) -> bool {
        let budgets: Vec<Budget> = match (from, about) {
            (Who::Own, Who::Own) => Vec::new(),
            (Who::Own, Who::Partner(_)) => vec![Budget::Device(device)],
            (Who::Partner(theirs), Who::Partner(its))
                if !its.is_empty() && its.iter().all(|side| theirs.contains(side)) =>
            {
                its.iter().copied().map(Budget::Side).collect()
            }
            _ => return false,
        };
        let window = jiff::SignedDuration::try_from(PUNCH_WINDOW).unwrap_or_default();
        self.last
            .retain(|_, t| *t <= now && now.duration_since(*t) < window);
        let interval = jiff::SignedDuration::try_from(MEET_INTERVAL).unwrap_or_default();
        if self
            .last
            .get(&device)
            .is_some_and(|t| now.duration_since(*t) < interval)
        {
            return false;
        }
        let minute = jiff::SignedDuration::from_secs(60);
        self.by_partner.retain(|_, recent| {
            recent.retain(|t| *t <= now && now.duration_since(*t) < minute);
            !recent.is_empty()
        });
        let full = |budget: &Budget| {
            self.by_partner
                .get(budget)
                .is_some_and(|recent| recent.len() >= PARTNER_MEETS)
        };
        if budgets.iter().any(full) {
            return false;
        }
        for budget in budgets {
            self.by_partner.entry(budget).or_default().push(now);
        }
        self.last.insert(device, now);
        true
    }

    /// When an introduction about `device` last counted.
    pub fn last(&self, device: DeviceId) -> Option<Timestamp> {
        self.last.get(&device).copied()
    }
}

/// Whether this device introduces two devices connected here, who are `a` and `b` to it:
/// two own devices, always; an own device and a partner's, when this device is set to
/// (`partners`, the `introduce-partners` setting). Never two partners' devices: neither learns
/// from this device where the other is.
pub fn may_introduce(a: &Who, b: &Who, partners: bool) -> bool {
    match (a, b) {
        (Who::Own, Who::Own) => true,
        (Who::Own, Who::Partner(_)) | (Who::Partner(_), Who::Own) => partners,
        _ => false,
    }
}

/// Whether `addr` may be dialed on an introduction from `from` about `about`: never an
/// address no device listens at ([`nowhere`]), and where a partner's device sends it or is
/// the one named, only an address across the internet. A partner is not to make this device
/// probe its own network (the router's admin page, a printer, this device's loopback), neither
/// by saying so nor by connecting to an own introducer from an address of its choosing. Nor
/// at one of this device's own public addresses (`own_outside`): dialed from inside, those
/// reach the home router itself, and what it forwards.
pub fn may_dial(from: &Who, about: &Who, addr: SocketAddr, own_outside: &[IpAddr]) -> bool {
    let partners = matches!(from, Who::Partner(_)) || matches!(about, Who::Partner(_));
    let inside = local_scope(addr.ip()) || own_outside.contains(&addr.ip());
    !(nowhere(addr) || (partners && inside))
}

/// Whether `to` may be told that `about` is seen at `at`: where either is a partner's device,
/// not at an address on a local network. It would reach nothing across the internet, and
/// the device told would not dial it ([`may_dial`]).
pub fn may_tell(to: &Who, about: &Who, at: SocketAddr) -> bool {
    may_dial(to, about, at, &[])
}

/// Whether no device can listen at `addr`: port 0, unspecified, "this network" (0.0.0.0/8),
/// multicast, broadcast, reserved (240.0.0.0/4), or an IPv4-compatible IPv6 address
/// (`::a.b.c.d`, deprecated, which a router may take for the IPv4 address inside).
pub fn nowhere(addr: SocketAddr) -> bool {
    let ip = addr.ip();
    addr.port() == 0
        || ip.is_unspecified()
        || ip.is_multicast()
        || match ip {
            IpAddr::V4(v4) => {
                let [a, ..] = v4.octets();
                a == 0 || a >= 240
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                s[..6] == [0; 6] && !v6.is_loopback()
            }
        }
}

/// Whether a connection with a device that opened `now` is the result of an introduction
/// that counted at `met` (`Node::meet`).
pub fn punched(met: Option<Timestamp>, now: Timestamp) -> bool {
    let window = jiff::SignedDuration::try_from(PUNCH_WINDOW).unwrap_or_default();
    met.is_some_and(|t| t <= now && now.duration_since(t) <= window)
}

/// What is known of a connection, to tell its [`Path`].
#[derive(Clone, Copy, Debug)]
pub struct Opened<'a> {
    /// The address it runs to now (canonical).
    pub remote: SocketAddr,
    /// Whether it runs through the relay (its address is then made up).
    pub relayed: bool,
    /// Whether this device dialed it.
    pub dialed: bool,
    /// The addresses the peer's router forwards to it, as the circle lists them.
    pub peer_mapped: &'a [SocketAddr],
    /// Whether this device's router forwards a port to it now.
    pub own_mapped: bool,
    /// Whether it opened as the result of an introduction ([`punched`]).
    pub punched: bool,
}

/// How a connection runs: through the relay, on a local network, met through another device,
/// to (or from) the port the peer's router forwards to it, into the port this device's router
/// forwards, or across the internet some other way.
pub fn path(opened: Opened<'_>) -> Path {
    if opened.relayed {
        Path::Relayed
    } else if local_scope(opened.remote.ip()) {
        Path::Local
    } else if opened.punched {
        Path::Punched
    } else if opened.peer_mapped.contains(&opened.remote) || (!opened.dialed && opened.own_mapped) {
        Path::Mapped
    } else {
        Path::Internet
    }
}

/// When, after a device connects, to introduce it to the others connected: at once, and again
/// twice, since a device that just joined learns of the others only when the circle reaches it,
/// and a first meeting may fail. A device introduced to one it is already connected to ignores
/// it.
pub const INTRODUCTION_ROUNDS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_secs(3),
    Duration::from_secs(10),
];

/// One half of an introduction: tell `to` to dial `about` at `at` now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Introduction {
    /// Who is told.
    pub to: DeviceId,
    /// Whom to dial.
    pub about: DeviceId,
    /// Where this device sees it.
    pub at: SocketAddr,
}

/// The introductions to make when `peer`, seen at `remote`, has just connected, given the
/// other devices connected here and where they are seen: each pair of which at least one
/// is seen through the internet (two devices on one local network find each other without
/// help) is told of each other at the same moment, both halves together.
pub fn introductions(
    peer: DeviceId,
    remote: SocketAddr,
    others: &[(DeviceId, SocketAddr)],
) -> Vec<Introduction> {
    let mut out = Vec::new();
    for (other, seen) in others.iter().filter(|(d, _)| *d != peer) {
        if local_scope(remote.ip()) && local_scope(seen.ip()) {
            continue;
        }
        out.push(Introduction {
            to: peer,
            about: *other,
            at: *seen,
        });
        out.push(Introduction {
            to: *other,
            about: peer,
            at: remote,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("time")
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    const LOCAL: [IpAddr; 1] = [IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 2))];

    #[test]
    fn peers_outside_tell_the_public_address_and_a_stable_mapping() {
        let mut o = Observations::default();
        // A peer on the same network sees the local address: not an outside view.
        assert!(!o.record(
            DeviceId([1; 32]),
            addr("192.168.1.3:7676"),
            addr("192.168.1.2:7676"),
            &LOCAL,
            at(0)
        ));
        assert!(o.public(at(0), &LOCAL).is_empty());
        assert!(o.record(
            DeviceId([2; 32]),
            addr("203.0.113.1:7676"),
            addr("203.0.113.9:7676"),
            &LOCAL,
            at(1)
        ));
        assert_eq!(o.mapping(at(1), &LOCAL), Mapping::Unknown);
        assert_eq!(o.published(at(1), &LOCAL), vec![addr("203.0.113.9:7676")]);
        // A second peer elsewhere sees the same port: the router keeps one mapping.
        assert!(!o.record(
            DeviceId([3; 32]),
            addr("198.51.100.4:7676"),
            addr("203.0.113.9:7676"),
            &LOCAL,
            at(2)
        ));
        assert_eq!(o.mapping(at(2), &LOCAL), Mapping::Stable);
        assert_eq!(
            o.public(at(2), &LOCAL),
            vec![Observation {
                addr: addr("203.0.113.9:7676"),
                by: 2,
                last: at(2)
            }]
        );
        // Unconfirmed for longer than FRESH_FOR, it is forgotten.
        let later = at(2 + FRESH_FOR.as_secs() as i64);
        assert!(o.public(later, &LOCAL).is_empty());
        assert_eq!(o.mapping(later, &LOCAL), Mapping::Unknown);
    }

    #[test]
    fn devices_seen_through_the_internet_are_introduced_in_pairs_and_neighbours_are_not() {
        let (new, a, b) = (DeviceId([1; 32]), DeviceId([2; 32]), DeviceId([3; 32]));
        let got = introductions(
            new,
            addr("203.0.113.5:7676"),
            &[
                (a, addr("198.51.100.9:40000")),
                (b, addr("192.168.1.7:7676")),
                (new, addr("203.0.113.5:7676")),
            ],
        );
        assert_eq!(
            got,
            vec![
                Introduction {
                    to: new,
                    about: a,
                    at: addr("198.51.100.9:40000")
                },
                Introduction {
                    to: a,
                    about: new,
                    at: addr("203.0.113.5:7676")
                },
                Introduction {
                    to: new,
                    about: b,
                    at: addr("192.168.1.7:7676")
                },
                Introduction {
                    to: b,
                    about: new,
                    at: addr("203.0.113.5:7676")
                },
            ]
        );
        // Two on this device's own network: nothing to arrange.
        assert!(
            introductions(
                new,
                addr("192.168.1.5:7676"),
                &[(b, addr("192.168.1.7:7676"))]
            )
            .is_empty()
        );
    }

    #[test]
    fn own_devices_are_introduced_to_partners_only_when_set_and_partners_never_to_each_other() {
        let (own, sam, kim) = (
            Who::Own,
            Who::Partner(vec![failup_wire::DocId([7; 16])]),
            Who::Partner(vec![failup_wire::DocId([8; 16])]),
        );
        assert!(may_introduce(&own, &own, false));
        assert!(!may_introduce(&own, &sam, false));
        assert!(may_introduce(&own, &sam, true));
        assert!(may_introduce(&sam, &own, true));
        // Two partners' devices, of one partner or two: not this device's to arrange.
        assert!(!may_introduce(&sam, &kim, true));
        assert!(!may_introduce(&sam, &sam, true));
        for stranger in [Who::Unknown, Who::This] {
            assert!(!may_introduce(&own, &stranger, true));
            assert!(!may_introduce(&stranger, &own, true));
        }
    }

    #[test]
    fn a_partner_introduces_only_its_own_devices_and_no_faster_than_its_budget() {
        let (side, other_side) = (failup_wire::DocId([7; 16]), failup_wire::DocId([8; 16]));
        let sam = Who::Partner(vec![side]);
        let mut m = Meetings::default();
        let dev = |i: u8| DeviceId([i; 32]);
        // Not about this person's devices, this one, a stranger, or another partner's device,
        // nor a device another partner lists too (Kim listing Sam's device in Kim's side).
        let both = Who::Partner(vec![other_side, side]);
        for about in [
            Who::Own,
            Who::This,
            Who::Unknown,
            Who::Partner(vec![other_side]),
            Who::Partner(vec![]),
            both.clone(),
        ] {
            assert!(!m.admit(&sam, dev(1), &about, at(0)), "{about:?}");
        }
        assert!(!m.admit(&Who::Unknown, dev(1), &Who::Own, at(0)));
        // About a device of the same partner: one listed in no other side.
        assert!(m.admit(&sam, dev(1), &sam, at(0)));
        assert_eq!(m.last(dev(1)), Some(at(0)));
        // The same device again at once does not count.
        assert!(!m.admit(&sam, dev(1), &sam, at(0)));
        // Six a minute about one partner's devices from that partner, whichever they are.
        for i in 2..=PARTNER_MEETS as u8 {
            assert!(m.admit(&sam, dev(i), &sam, at(i64::from(i))), "{i}");
        }
        assert!(!m.admit(&sam, dev(40), &sam, at(30)));
        assert_eq!(m.last(dev(40)), None);
        // Another partner's budget is their own: Kim's introductions are not refused for
        // Sam's, and Kim cannot use up what own devices say about Sam's devices.
        let kim = Who::Partner(vec![other_side]);
        assert!(m.admit(&kim, dev(43), &kim, at(30)));
        assert!(m.admit(&Who::Own, dev(40), &sam, at(30)));
        // Own devices' introductions of a partner's device: six a minute for that device,
        // one a second at most.
        for t in 32..32 + PARTNER_MEETS as i64 - 1 {
            assert!(m.admit(&Who::Own, dev(40), &sam, at(t)), "{t}");
        }
        assert!(!m.admit(&Who::Own, dev(40), &sam, at(50)));
        assert!(m.admit(&Who::Own, dev(41), &sam, at(50)));
        // Own devices about own devices are nobody's budget.
        for t in 51..60 {
            assert!(m.admit(&Who::Own, dev(42), &Who::Own, at(t)), "{t}");
        }
        // A minute after the first, there is room again.
        assert!(m.admit(&sam, dev(44), &sam, at(60)));
        assert!(!m.admit(&sam, dev(45), &sam, at(60)));
        // What counted long ago is forgotten: the record stays as small as the last half
        // minute, and a clock stepped back forgets what it recorded ahead.
        assert!(m.admit(&Who::Own, dev(46), &Who::Own, at(200)));
        assert_eq!(m.last(dev(1)), None);
        assert_eq!(m.last.len(), 1);
        assert!(m.by_partner.is_empty());
        assert!(m.admit(&Who::Own, dev(46), &Who::Own, at(100)));
    }

    #[test]
    fn a_partner_names_only_addresses_across_the_internet_and_learns_no_local_one() {
        let sam = Who::Partner(vec![failup_wire::DocId([7; 16])]);
        for local in [
            "127.0.0.1:22",
            "192.168.1.1:80",
            "10.0.0.1:7676",
            "100.64.0.1:7676",
            "[fe80::1]:7676",
            "[fec0::1]:7676",
            "[fd00::1]:7676",
            "[::1]:7676",
            "[64:ff9b::c0a8:101]:7676",
            "[64:ff9b:1::1]:7676",
        ] {
            let at = addr(local);
            // Said by a partner's device, or about one (from where it connected to an own
            // introducer): not dialed, not told.
            assert!(!may_dial(&sam, &sam, at, &[]), "{local}");
            assert!(!may_dial(&Who::Own, &sam, at, &[]), "{local}");
            assert!(!may_tell(&sam, &Who::Own, at), "{local}");
            assert!(!may_tell(&Who::Own, &sam, at), "{local}");
            // Between own devices, a local address is the point.
            assert!(may_dial(&Who::Own, &Who::Own, at, &[]), "{local}");
            assert!(may_tell(&Who::Own, &Who::Own, at), "{local}");
        }
        for nowhere in [
            "0.0.0.0:7676",
            "0.1.2.3:7676",
            "203.0.113.9:0",
            "224.0.0.1:7676",
            "240.0.0.1:7676",
            "255.255.255.255:7676",
            "[::]:7676",
            "[::127.0.0.1]:7676",
            "[ff02::1]:7676",
        ] {
            assert!(
                !may_dial(&Who::Own, &Who::Own, addr(nowhere), &[]),
                "{nowhere}"
            );
        }
        assert!(may_dial(&sam, &sam, addr("203.0.113.9:7676"), &[]));
        assert!(may_dial(&Who::Own, &sam, addr("[2001:db8::9]:7676"), &[]));
        // This device's own public address is its router, from inside.
        let own: [IpAddr; 1] = ["198.51.100.7".parse().expect("ip")];
        assert!(!may_dial(&sam, &sam, addr("198.51.100.7:80"), &own));
        assert!(may_dial(
            &Who::Own,
            &Who::Own,
            addr("198.51.100.7:80"),
            &own
        ));
        assert!(may_tell(&sam, &Who::Own, addr("203.0.113.9:7676")));
    }

    #[test]
    fn a_port_per_destination_is_told_and_nothing_is_published() {
        let mut o = Observations::default();
        o.record(
            DeviceId([2; 32]),
            addr("203.0.113.1:7676"),
            addr("203.0.113.9:40001"),
            &LOCAL,
            at(0),
        );
        assert!(o.record(
            DeviceId([3; 32]),
            addr("198.51.100.4:7676"),
            addr("203.0.113.9:52002"),
            &LOCAL,
            at(1)
        ));
        assert_eq!(o.mapping(at(1), &LOCAL), Mapping::PerDestination);
        assert!(o.published(at(1), &LOCAL).is_empty());
        assert_eq!(o.public(at(1), &LOCAL).len(), 2);
    }

    #[test]
    fn two_peers_behind_one_address_count_once_and_reporters_are_bounded() {
        let mut o = Observations::default();
        for (i, port) in [(2u8, 40001u16), (3, 52002)] {
            o.record(
                DeviceId([i; 32]),
                addr("203.0.113.1:7676"),
                SocketAddr::new("203.0.113.9".parse().expect("ip"), port),
                &LOCAL,
                at(i.into()),
            );
        }
        assert_eq!(o.mapping(at(5), &LOCAL), Mapping::Unknown);
        for i in 0..100u8 {
            o.record(
                DeviceId([i; 32]),
                addr("203.0.113.1:7676"),
                addr("203.0.113.9:7676"),
                &LOCAL,
                at(10 + i64::from(i)),
            );
        }
        assert!(o.reports.len() <= MAX_REPORTERS);
    }

    #[test]
    fn a_connection_is_named_by_how_it_was_reached() {
        let public = addr("198.51.100.7:7676");
        let forwarded = [public];
        let opened = |remote: &str, dialed: bool, punched: bool| Opened {
            remote: addr(remote),
            relayed: false,
            dialed,
            peer_mapped: &forwarded,
            own_mapped: false,
            punched,
        };
        assert_eq!(path(opened("192.168.1.9:7676", true, false)), Path::Local);
        // To the peer's forwarded port, whoever dialed.
        for dialed in [true, false] {
            assert_eq!(
                path(opened("198.51.100.7:7676", dialed, false)),
                Path::Mapped
            );
        }
        // Somewhere else than the forwarded port: just the internet.
        assert_eq!(
            path(opened("198.51.100.7:40000", true, false)),
            Path::Internet
        );
        assert_eq!(
            path(opened("203.0.113.4:50000", false, true)),
            Path::Punched
        );
        // Taken in while this device's router forwards its port.
        let inbound = Opened {
            own_mapped: true,
            ..opened("203.0.113.4:50000", false, false)
        };
        assert_eq!(path(inbound), Path::Mapped);
        let relayed = Opened {
            relayed: true,
            ..opened("192.168.1.9:7676", true, true)
        };
        assert_eq!(path(relayed), Path::Relayed);
        // Met through another device a moment ago, not long ago, not by a clock ahead.
        assert!(punched(Some(at(95)), at(100)));
        assert!(!punched(Some(at(60)), at(100)));
        assert!(!punched(Some(at(200)), at(100)));
        assert!(!punched(None, at(100)));
    }
}
