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
}
