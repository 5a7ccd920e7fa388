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
/// The version byte that opens an invite code's payload.
pub const CODE_VERSION: u8 = 2;
/// Bytes of the inviting device's id an invite code carries: 96 bits, so making a key whose id
/// starts with them takes about 2^96 tries, within an invite's life of at most 7 days.
pub const DEVICE_PREFIX_BYTES: usize = 12;
/// Random bytes of an invite's secret: 80 bits, guessed at most
/// [`MAX_ATTEMPTS_PER_SOURCE`] times a minute per address, for at most 7 days.
pub const SECRET_BYTES: usize = 10;
/// Addresses an invite code lists at most.
pub const MAX_CODE_ADDRS: usize = 4;

/// An invite's one-time secret.
pub type Secret = [u8; SECRET_BYTES];

/// An invite this device handed out.
pub struct Invite {
    /// The secret the joiner must present.
    pub secret: Secret,
    /// When it stops working.
    pub expires: Timestamp,
    /// Whether a device already used it.
    pub used: bool,
    /// `Some` for a partner invite, with the label to give the partner (or the joiner's own
    /// name when `None` inside).
    pub partner: Option<Option<String>>,
}

/// What an invite code holds. Its bytes are the postcard encoding of this struct, fields in
/// order (proto/sync.md, "Pairing"); every field is as short as it can be, because people copy
/// the code by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    /// [`CODE_VERSION`].
    pub version: u8,
    /// The first [`DEVICE_PREFIX_BYTES`] bytes of the inviting device's id; the handshake
    /// refuses a server whose id does not start with them, and names the device in full.
    pub device: [u8; DEVICE_PREFIX_BYTES],
    /// The one-time secret.
    pub secret: Secret,
    /// When the invite expires, in minutes since the epoch (rounded up; the inviter holds the
    /// exact time).
    pub expires_min: u32,
    /// Where the inviter listens, at most [`MAX_CODE_ADDRS`].
    pub addrs: Vec<SocketAddr>,
}

impl Code {
    /// The code for an invite of `device`, listening on `addrs`, expiring at `expires`.
    pub fn new(device: DeviceId, addrs: &[SocketAddr], secret: Secret, expires: Timestamp) -> Code {
        let mut prefix = [0; DEVICE_PREFIX_BYTES];
        prefix.copy_from_slice(&device.0[..DEVICE_PREFIX_BYTES]);
        let minutes = expires.as_millisecond().div_euclid(60_000)
            + i64::from(expires.as_millisecond().rem_euclid(60_000) > 0);
        Code {
            version: CODE_VERSION,
            device: prefix,
            secret,
            expires_min: u32::try_from(minutes.max(0)).unwrap_or(u32::MAX),
            addrs: addrs.iter().take(MAX_CODE_ADDRS).copied().collect(),
        }
    }

    /// Whether `device` is the device this code names.
    pub fn names(&self, device: DeviceId) -> bool {
        device.0.starts_with(&self.device)
    }

    /// Whether the invite has expired at `now`, as far as the code tells.
    pub fn expired(&self, now: Timestamp) -> bool {
        i64::from(self.expires_min) * 60_000 < now.as_millisecond()
    }

    /// The code as people copy it: a device invite, or with `partner` a partner invite.
    pub fn encode(&self, partner: bool) -> String {
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        format!(
            "{}{}",
            if partner { PARTNER_PREFIX } else { CODE_PREFIX },
            data_encoding::BASE32_NOPAD.encode(&bytes)
        )
    }

    /// Reads a code as people paste it (any case, spaces and line breaks anywhere, as a QR
    /// reader or a mail program may leave them); says whether it is a partner invite.
    pub fn decode(text: &str) -> Result<(Code, bool), String> {
        let bad = || "this is not a failup invite code".to_owned();
        if text.len() > MAX_CODE_CHARS {
            return Err(bad());
        }
        let upper: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let (partner, body) = match upper.strip_prefix(PARTNER_PREFIX) {
            Some(body) => (true, body),
            None => (false, upper.strip_prefix(CODE_PREFIX).ok_or_else(bad)?),
        };
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| bad())?;
        // Any code of another version is longer than this (a device prefix and a secret).
        let code_sized = bytes.len() > DEVICE_PREFIX_BYTES + SECRET_BYTES;
        if bytes.first() != Some(&CODE_VERSION) && code_sized {
            return Err(
                "this invite code is from another version of failup: update both devices, then make a new invite"
                    .to_owned(),
            );
        }
        match postcard::take_from_bytes::<Code>(&bytes) {
            Ok((code, []))
                if code.version == CODE_VERSION && code.addrs.len() <= MAX_CODE_ADDRS =>
            {
                Ok((code, partner))
            }
            _ => Err(bad()),
        }
    }
}

/// The joiner's first and only message.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    /// The secret from the code.
    pub secret: Secret,
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
        secret: Secret,
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
    pub fn check(&self, secret: &Secret, now: Timestamp) -> Result<(usize, &Invite), String> {
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
/// refused without looking at the code. A code holds 80 random bits, so this is not what keeps
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
        let device = DeviceId([7; 32]);
        let addrs: Vec<SocketAddr> = vec![
            "192.168.1.20:7676".parse().expect("addr"),
            "[2001:db8::20]:7676".parse().expect("addr"),
        ];
        let expires: Timestamp = "2026-12-02T10:00:30Z".parse().expect("time");
        let code = Code::new(device, &addrs, [9; SECRET_BYTES], expires);
        let text = code.encode(false);
        assert!(text.starts_with(CODE_PREFIX));
        // Short enough to copy: the postcard bytes of 12 + 10 + 4 bytes and two addresses.
        assert!(text.len() <= 100, "{} chars: {text}", text.len());
        assert!(code.names(device));
        assert!(!code.names(DeviceId([8; 32])));
        // Rounded up to the minute: not expired at the exact time, expired a minute after.
        assert!(!code.expired(expires));
        assert!(code.expired(expires + jiff::SignedDuration::from_secs(60)));
        let (back, partner) = Code::decode(&format!("  {text}\n")).expect("decode");
        assert!(!partner);
        assert_eq!(back, code);
        let text = code.encode(true);
        assert!(text.starts_with(PARTNER_PREFIX));
        // Any case, and broken over lines by whatever carried it.
        let (mid, end) = text.split_at(30);
        let (back, partner) =
            Code::decode(&format!("{}\n  {}", mid, end.to_lowercase())).expect("decode");
        assert!(partner);
        assert_eq!(back, code);
        let five = Code {
            addrs: vec![addrs[0]; MAX_CODE_ADDRS + 1],
            ..code.clone()
        };
        let mut trailing = postcard::to_allocvec(&code).expect("bytes");
        trailing.push(0);
        for bad in [
            String::new(),
            "FAILUP-".into(),
            "FAILUP-!!!!".into(),
            "hello".into(),
            "FAILUP-A".repeat(1000),
            five.encode(false),
            format!("FAILUP-{}", data_encoding::BASE32_NOPAD.encode(&trailing)),
        ] {
            assert!(Code::decode(&bad).is_err(), "{bad}");
        }
        // A code of the first format (a 32-byte id first) is told apart.
        let old = format!("FAILUP-{}", data_encoding::BASE32_NOPAD.encode(&[5; 60]));
        assert!(
            Code::decode(&old)
                .err()
                .is_some_and(|e| e.contains("another version of failup"))
        );
    }

    /// The vector of proto/sync.md, "Pairing".
    #[test]
    fn invite_code_vector_matches_the_spec() {
        let code = Code::new(
            DeviceId([7; 32]),
            &[
                "192.168.1.20:7676".parse().expect("addr"),
                "[2001:db8::20]:7676".parse().expect("addr"),
            ],
            [9; SECRET_BYTES],
            "2026-12-02T10:00:30Z".parse().expect("time"),
        );
        let bytes = postcard::to_allocvec(&code).expect("bytes");
        assert_eq!(
            data_encoding::HEXLOWER.encode(&bytes),
            "02070707070707070707070707090909090909090909\
             09f998a30e0200c0a80114fc3b0120010db8000000000000000000000020fc3b"
        );
        assert_eq!(
            code.encode(false),
            "FAILUP-AIDQOBYHA4DQOBYHA4DQOCIJBEEQSCIJBEEQT6MYUMHAEAGAVAARJ7B3AEQACDNYAAAAAAAAAAAAAAAAAAQPYOY"
        );
    }

    #[test]
    fn an_invite_opens_the_handshake_until_it_is_used_or_expires() {
        let t0: Timestamp = "2026-12-01T10:00:00Z".parse().expect("time");
        let at = |secs: i64| t0 + jiff::SignedDuration::from_secs(secs);
        let mut invites = Invites::default();
        assert_eq!(invites.open_until(), None);
        let expires = invites.add([1; SECRET_BYTES], Duration::from_secs(600), None, t0);
        assert_eq!(expires, at(600));
        assert_eq!(invites.open_until(), Some(at(600)));
        assert_eq!(
            invites.check(&[2; SECRET_BYTES], at(1)).err().as_deref(),
            Some("wrong invite code")
        );
        // One second before the end it works; at the end it has expired.
        let (idx, _) = invites.check(&[1; SECRET_BYTES], at(599)).expect("valid");
        assert_eq!(
            invites.check(&[1; SECRET_BYTES], at(600)).err().as_deref(),
            Some("this invite has expired")
        );
        invites.spend(idx);
        assert_eq!(
            invites.open_until(),
            None,
            "a used invite holds nothing open"
        );
        assert_eq!(
            invites.check(&[1; SECRET_BYTES], at(10)).err().as_deref(),
            Some("this invite was already used")
        );
        invites.prune(at(600));
        assert_eq!(
            invites.check(&[1; SECRET_BYTES], at(10)).err().as_deref(),
            Some("wrong invite code"),
            "an expired invite is forgotten"
        );
        // A longer time to live is cut to the longest allowed.
        let far = invites.add(
            [3; SECRET_BYTES],
            Duration::from_secs(u64::MAX / 4),
            Some(None),
            t0,
        );
        assert_eq!(far, at(MAX_INVITE_TTL.as_secs() as i64));
        invites.clear();
        assert_eq!(invites.open_until(), None);
    }
}
