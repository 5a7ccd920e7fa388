//! Pairing two devices of one person, or a person with a partner, as the node decides it: the
//! invite code and the two messages of the exchange (proto/sync.md), and the open invites with
//! their expiry. The daemon carries the messages over a QUIC connection with ALPN
//! `failup-pair/1`; everything decided about them is here, driven by `now`.

use std::net::SocketAddr;
use std::time::Duration;

use failup_wire::{DeviceId, DocId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Longest an invite may stay valid; a longer `--ttl` is cut to this.
pub const MAX_INVITE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Prefix of every invite code, so a pasted code is recognisable.
pub const CODE_PREFIX: &str = "FAILUP-";
/// Prefix of an invite for an accountability partner rather than another device of one's own
/// (base32 has no `-`, so no device code starts with it).
pub const PARTNER_PREFIX: &str = "FAILUP-PARTNER-";
/// Largest pairing frame, in bytes.
pub const MAX_PAIR_FRAME: u32 = 4096;
/// Longest invite code accepted, in characters.
pub const MAX_CODE_CHARS: usize = 2048;

/// An invite this device handed out.
pub struct Invite {
    /// The secret the joiner must present.
    pub secret: [u8; 16],
    /// When it stops working.
    pub expires: Timestamp,
    /// Whether a device already used it.
    pub used: bool,
    /// `Some` for a partner invite, with the label to give the partner (or the joiner's own
    /// name when `None` inside).
    pub partner: Option<Option<String>>,
}

/// What an invite code holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Code {
    /// The inviting device.
    pub device: [u8; 32],
    /// Where it listens.
    pub addrs: Vec<String>,
    /// The one-time secret.
    pub secret: [u8; 16],
    /// When the invite expires, in milliseconds since the epoch.
    pub expires_ms: i64,
}

impl Code {
    /// The code as people copy it: a device invite, or with `partner` a partner invite.
    pub fn encode(&self, partner: bool) -> String {
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        format!(
            "{}{}",
            if partner { PARTNER_PREFIX } else { CODE_PREFIX },
            data_encoding::BASE32_NOPAD.encode(&bytes)
        )
    }

    /// Reads a code as people paste it; says whether it is a partner invite.
    pub fn decode(text: &str) -> Result<(Code, bool), String> {
        let bad = || "this is not a failup invite code".to_owned();
        let text = text.trim();
        if text.len() > MAX_CODE_CHARS {
            return Err(bad());
        }
        let upper = text.to_ascii_uppercase();
        let (partner, body) = match upper.strip_prefix(PARTNER_PREFIX) {
            Some(body) => (true, body),
            None => (false, upper.strip_prefix(CODE_PREFIX).ok_or_else(bad)?),
        };
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| bad())?;
        postcard::from_bytes(&bytes)
            .map(|c| (c, partner))
            .map_err(|_| bad())
    }
}

/// The joiner's first and only message.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    /// The secret from the code.
    pub secret: [u8; 16],
    /// The joiner's name for itself.
    pub name: String,
    /// The UDP port the joiner listens on.
    pub port: u16,
    /// For a partner invite: the id of the joiner's side of the new space.
    pub space: Option<[u8; 16]>,
}

/// The inviter's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// Paired: the inviter's name and its circle document.
    Accepted {
        /// The inviter's name for itself.
        name: String,
        /// The circle document's id.
        circle: [u8; 16],
    },
    /// Refused, with the reason the joiner shows.
    Refused(String),
    /// Partnered: the inviter's name and the id of the inviter's side of the space.
    Partnered {
        /// The inviter's name for itself.
        name: String,
        /// The inviter's side of the space.
        space: [u8; 16],
    },
}

/// A completed join, for the node to remember.
pub struct Joined {
    /// The inviting device.
    pub inviter: DeviceId,
    /// What to call it.
    pub name: String,
    /// Where it listens.
    pub addrs: Vec<SocketAddr>,
    /// Its circle document (a device join).
    pub circle: Option<DocId>,
    /// Its side of the new space (a partner join).
    pub space: Option<DocId>,
}

/// The invites this device handed out and has not yet seen expire. An unused, unexpired invite
/// holds the TLS handshake open to unknown devices ([`Invites::open_until`]); a used one is
/// remembered until it expires only to tell a replay "already used".
#[derive(Default)]
pub struct Invites {
    list: Vec<Invite>,
}

impl Invites {
    /// Hands out an invite valid for `ttl` (at most [`MAX_INVITE_TTL`]); returns its expiry.
    pub fn add(
        &mut self,
        secret: [u8; 16],
        ttl: Duration,
        partner: Option<Option<String>>,
        now: Timestamp,
    ) -> Timestamp {
        let ttl = ttl.min(MAX_INVITE_TTL);
        let expires = jiff::SignedDuration::try_from(ttl)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .unwrap_or(now);
        self.list.push(Invite {
            secret,
            expires,
            used: false,
            partner,
        });
        expires
    }

    /// Forgets invites that have expired.
    pub fn prune(&mut self, now: Timestamp) {
        self.list.retain(|i| i.expires > now);
    }

    /// Until when unknown devices may complete a handshake: the latest expiry of an unused
    /// invite, if any.
    pub fn open_until(&self) -> Option<Timestamp> {
        self.list
            .iter()
            .filter(|i| !i.used)
            .map(|i| i.expires)
            .max()
    }

    /// The invite a joiner's secret names, judged at `now`: its index and the invite, or the
    /// reason the joiner hears. Every byte is compared, so timing does not tell how much of a
    /// guess was right.
    pub fn check(&self, secret: &[u8; 16], now: Timestamp) -> Result<(usize, &Invite), String> {
        let matches = |i: &Invite| {
            i.secret
                .iter()
                .zip(secret.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        };
        let found = self.list.iter().position(matches);
        match found.and_then(|at| self.list.get(at).map(|i| (at, i))) {
            None => Err("wrong invite code".to_owned()),
            Some((_, i)) if i.used => Err("this invite was already used".to_owned()),
            Some((_, i)) if i.expires <= now => Err("this invite has expired".to_owned()),
            Some(found) => Ok(found),
        }
    }

    /// Marks the invite at `at` used.
    pub fn spend(&mut self, at: usize) {
        if let Some(i) = self.list.get_mut(at) {
            i.used = true;
        }
    }

    /// Voids every invite (a device that joined another circle must not start a second one).
    pub fn clear(&mut self) {
        self.list.clear();
    }
}

/// Pairing attempts one source address may make per [`ATTEMPT_WINDOW`]; past it, attempts are
/// refused without looking at the code. A code holds 128 random bits, so this is not what keeps
/// guessing hopeless: it keeps one address from making this device do unbounded work.
pub const MAX_ATTEMPTS_PER_SOURCE: u32 = 10;
/// The window [`MAX_ATTEMPTS_PER_SOURCE`] counts over.
pub const ATTEMPT_WINDOW: Duration = Duration::from_secs(60);
/// Least time between two log lines about refused pairing attempts; the ones between are
/// counted and told in the next line.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Sources remembered at most; past this the oldest windows are forgotten.
const MAX_SOURCES: usize = 1024;

/// Rate limits for the pairing exchange: attempts per source address, and log lines about
/// refused attempts. Driven by `now`, so it is tested with a fake clock.
#[derive(Debug, Default)]
pub struct Throttle {
    sources: std::collections::HashMap<std::net::IpAddr, (Timestamp, u32)>,
    last_log: Option<Timestamp>,
    unlogged: u64,
}

impl Throttle {
    /// Whether an attempt from `source` at `now` may be looked at.
    pub fn admit(&mut self, source: std::net::IpAddr, now: Timestamp) -> bool {
        let window = jiff::SignedDuration::try_from(ATTEMPT_WINDOW).unwrap_or_default();
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            self.sources
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            if self.sources.len() >= MAX_SOURCES {
                // Still full of live windows: the oldest goes.
                if let Some(oldest) = self
                    .sources
                    .iter()
                    .min_by_key(|(_, (t, _))| *t)
                    .map(|(k, _)| *k)
                {
                    self.sources.remove(&oldest);
                }
            }
        }
        let entry = self.sources.entry(source).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= MAX_ATTEMPTS_PER_SOURCE
    }

    /// Whether to log a refusal at `now`; when it is, also how many refusals went unlogged
    /// since the last line.
    pub fn log_refusal(&mut self, now: Timestamp) -> Option<u64> {
        let interval = jiff::SignedDuration::try_from(REFUSAL_LOG_INTERVAL).unwrap_or_default();
        match self.last_log {
            Some(t) if now.duration_since(t) < interval => {
                self.unlogged += 1;
                None
            }
            _ => {
                self.last_log = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_gets_a_bounded_number_of_attempts_per_window() {
        let mut t = Throttle::default();
        let a: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
        let b: std::net::IpAddr = "192.0.2.2".parse().expect("ip");
        let at = |s: i64| Timestamp::from_second(1_000_000 + s).expect("time");
        for _ in 0..MAX_ATTEMPTS_PER_SOURCE {
            assert!(t.admit(a, at(0)));
        }
        assert!(!t.admit(a, at(1)), "one past the limit");
        assert!(t.admit(b, at(1)), "another source is not held up");
        assert!(!t.admit(a, at(59)));
        assert!(t.admit(a, at(60)), "a new window");
        // Many sources: memory stays bounded.
        for i in 0..5000u32 {
            let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.admit(ip, at(61));
        }
        assert!(t.sources.len() <= MAX_SOURCES);
    }

    #[test]
    fn refusals_are_logged_at_a_bounded_rate_with_a_count() {
        let mut t = Throttle::default();
        let at = |s: i64| Timestamp::from_second(1_000_000 + s).expect("time");
        assert_eq!(t.log_refusal(at(0)), Some(0));
        for s in 1..10 {
            assert_eq!(t.log_refusal(at(s)), None);
        }
        assert_eq!(t.log_refusal(at(10)), Some(9));
    }

    #[test]
    fn codes_round_trip_and_garbage_is_refused() {
        let code = Code {
            device: [7; 32],
            addrs: vec!["127.0.0.1:7676".into()],
            secret: [9; 16],
            expires_ms: 1_700_000_000_000,
        };
        let text = code.encode(false);
        assert!(text.starts_with(CODE_PREFIX));
        let (back, partner) = Code::decode(&format!("  {text}\n")).expect("decode");
        assert!(!partner);
        assert_eq!(back.secret, code.secret);
        assert_eq!(back.addrs, code.addrs);
        let text = code.encode(true);
        assert!(text.starts_with(PARTNER_PREFIX));
        let (back, partner) = Code::decode(&text.to_lowercase()).expect("decode");
        assert!(partner);
        assert_eq!(back.secret, code.secret);
        for bad in [
            "",
            "FAILUP-",
            "FAILUP-!!!!",
            "hello",
            &"FAILUP-A".repeat(1000),
        ] {
            assert!(Code::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_invite_opens_the_handshake_until_it_is_used_or_expires() {
        let t0: Timestamp = "2026-12-01T10:00:00Z".parse().expect("time");
        let at = |secs: i64| t0 + jiff::SignedDuration::from_secs(secs);
        let mut invites = Invites::default();
        assert_eq!(invites.open_until(), None);
        let expires = invites.add([1; 16], Duration::from_secs(600), None, t0);
        assert_eq!(expires, at(600));
        assert_eq!(invites.open_until(), Some(at(600)));
        assert_eq!(
            invites.check(&[2; 16], at(1)).err().as_deref(),
            Some("wrong invite code")
        );
        // One second before the end it works; at the end it has expired.
        let (idx, _) = invites.check(&[1; 16], at(599)).expect("valid");
        assert_eq!(
            invites.check(&[1; 16], at(600)).err().as_deref(),
            Some("this invite has expired")
        );
        invites.spend(idx);
        assert_eq!(
            invites.open_until(),
            None,
            "a used invite holds nothing open"
        );
        assert_eq!(
            invites.check(&[1; 16], at(10)).err().as_deref(),
            Some("this invite was already used")
        );
        invites.prune(at(600));
        assert_eq!(
            invites.check(&[1; 16], at(10)).err().as_deref(),
            Some("wrong invite code"),
            "an expired invite is forgotten"
        );
        // A longer time to live is cut to the longest allowed.
        let far = invites.add([3; 16], Duration::from_secs(u64::MAX / 4), Some(None), t0);
        assert_eq!(far, at(MAX_INVITE_TTL.as_secs() as i64));
        invites.clear();
        assert_eq!(invites.open_until(), None);
    }
}
