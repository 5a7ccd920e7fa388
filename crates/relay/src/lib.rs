//! failup's relay (proto/relay.md): a small server a person runs on a machine they control, so
//! that two of their devices that cannot dial each other (a router that gives each peer a port
//! of its own) still sync. It is blind: it forwards the QUIC packets of the devices' own
//! connections, whose TLS runs end to end between the devices with the usual verifiers, so it
//! sees ciphertext and the device ids of both ends, and nothing else.
//!
//! - [`server`]: the relay itself, serving only devices that hold its token, with limits on
//!   devices, bytes and time.
//! - [`device`]: a device's side: a socket that quinn runs a second endpoint on, whose packets
//!   travel over one link to the relay.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use failup_wire::DeviceId;

pub mod device;
pub mod server;

/// What `failup relay` prints before its code, on a line of its own: scripts, the benchmarks
/// and the tests read the code after it.
pub const CODE_LINE: &str = "on each of your devices: failup config set relay ";

/// The ALPN a device speaks to a relay.
pub const ALPN_RELAY: &[u8] = b"failup-relay/1";
/// Largest QUIC packet carried, in bytes: above any UDP payload quinn sends.
pub const MAX_PACKET: usize = 2048;
/// What starts a link: magic, version, then the token.
const MAGIC: &[u8; 4] = b"FURL";
/// 2: the relay tells each device where it sees it ([`FROM_RELAY`]); 1 was never released.
const VERSION: u8 = 2;
/// Bytes of a relay's access token.
pub const TOKEN_BYTES: usize = 32;
/// Bytes of the hello a device sends first.
pub const HELLO_BYTES: usize = MAGIC.len() + 1 + TOKEN_BYTES;

/// The relay's one-byte answer to a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The token is right: packets may flow.
    Welcome = 0,
    /// Wrong token, magic or version.
    Refused = 1,
    /// The relay serves as many devices as it may.
    Full = 2,
}

impl Answer {
    fn from_byte(b: u8) -> Option<Answer> {
        match b {
            0 => Some(Answer::Welcome),
            1 => Some(Answer::Refused),
            2 => Some(Answer::Full),
            _ => None,
        }
    }
}

/// Why relaying failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The transport failed to set up or connect.
    #[error(transparent)]
    Net(#[from] failup_net::NetError),
    /// The link broke.
    #[error("relay link: {0}")]
    Link(String),
    /// The relay said no.
    #[error("the relay refused this device: {0}")]
    Refused(&'static str),
    /// A relay code that does not read.
    #[error(
        "not a relay code ({0}); it looks like RELAY-ID.TOKEN@IP:PORT, as `failup relay` prints it"
    )]
    BadCode(&'static str),
}

/// What a device needs to use a relay: where it is, the relay's own id (its TLS key, checked
/// on every connection) and the access token. Written `RELAY-ID.TOKEN@IP:PORT`.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayCode {
    /// The relay's key.
    pub relay: DeviceId,
    /// The token it asks for.
    pub token: [u8; TOKEN_BYTES],
    /// Where it listens.
    pub addr: SocketAddr,
}

impl fmt::Debug for RelayCode {
    // The token is a secret: logs name the relay, not it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayCode({} at {})", self.relay.short(), self.addr)
    }
}

impl fmt::Display for RelayCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}@{}",
            self.relay,
            data_encoding::BASE32_NOPAD.encode(&self.token),
            self.addr
        )
    }
}

impl FromStr for RelayCode {
    type Err = RelayError;

    fn from_str(s: &str) -> Result<RelayCode, RelayError> {
        let (keys, addr) = s
            .trim()
            .rsplit_once('@')
            .ok_or(RelayError::BadCode("no @ before the address"))?;
        let (relay, token) = keys.split_once('.').ok_or(RelayError::BadCode(
            "no . between the relay's id and the token",
        ))?;
        let relay = relay
            .parse()
            .map_err(|_| RelayError::BadCode("the relay's id does not read"))?;
        let token = data_encoding::BASE32_NOPAD
            .decode(token.to_ascii_uppercase().as_bytes())
            .ok()
            .and_then(|t| <[u8; TOKEN_BYTES]>::try_from(t).ok())
            .ok_or(RelayError::BadCode("the token does not read"))?;
        let addr = addr
            .parse()
            .map_err(|_| RelayError::BadCode("the address is not IP:PORT"))?;
        Ok(RelayCode { relay, token, addr })
    }
}

/// The hello that opens a link.
pub fn hello(token: &[u8; TOKEN_BYTES]) -> [u8; HELLO_BYTES] {
    let mut h = [0u8; HELLO_BYTES];
    h[..4].copy_from_slice(MAGIC);
    h[4] = VERSION;
    h[5..].copy_from_slice(token);
    h
}

/// Whether `hello` is a right one for `token`, compared in time that does not depend on where
/// they differ.
pub fn hello_admits(hello: &[u8; HELLO_BYTES], token: &[u8; TOKEN_BYTES]) -> bool {
    let expected = self::hello(token);
    hello
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// The id a frame from the relay itself carries, in place of a device's: no device's key
/// hashes to it. Its body is the address the relay sees the device's link come from, as text
/// (`ip:port`): behind a router, the router's public address and port, which the device
/// publishes for its own devices to meet it at (proto/relay.md).
pub const FROM_RELAY: DeviceId = DeviceId([0; 32]);

/// The frame that tells a device the relay sees it at `addr`.
pub fn seen_frame(addr: SocketAddr) -> Option<Vec<u8>> {
    packet_frame(
        FROM_RELAY,
        failup_wire::canonical(addr).to_string().as_bytes(),
    )
}

/// One packet on a link: `len` (u16, big-endian, of what follows), the other end's device id,
/// the packet. From a device the id names where it goes; from the relay, where it came from.
pub fn packet_frame(peer: DeviceId, packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() > MAX_PACKET {
        return None;
    }
    let len = u16::try_from(32 + packet.len()).ok()?;
    let mut f = Vec::with_capacity(2 + len as usize);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&peer.0);
    f.extend_from_slice(packet);
    Some(f)
}

/// Reads one packet frame; an error for a cut-off, short or oversized one.
pub async fn read_packet(recv: &mut quinn::RecvStream) -> Result<(DeviceId, Vec<u8>), RelayError> {
    let broken = |e: quinn::ReadExactError| RelayError::Link(e.to_string());
    let mut len = [0u8; 2];
    recv.read_exact(&mut len).await.map_err(broken)?;
    let len = u16::from_be_bytes(len) as usize;
    if !(32..=32 + MAX_PACKET).contains(&len) {
        return Err(RelayError::Link(format!("a frame of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(broken)?;
    let packet = body.split_off(32);
    let mut id = [0u8; 32];
    id.copy_from_slice(&body);
    Ok((DeviceId(id), packet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_code_reads_back_and_a_bad_one_says_why() {
        let code = RelayCode {
            relay: DeviceId([7; 32]),
            token: [9; TOKEN_BYTES],
            addr: "203.0.113.9:7677".parse().expect("addr"),
        };
        let text = code.to_string();
        assert_eq!(text.parse::<RelayCode>().expect("reads"), code);
        let token = data_encoding::BASE32_NOPAD.encode(&code.token);
        assert!(
            !format!("{code:?}").contains(&token),
            "the token stays out of logs"
        );
        for (bad, why) in [
            ("nothing", "no @"),
            ("abc@203.0.113.9:7677", "no ."),
            (
                &text.replace("203.0.113.9:7677", "relay.example")[..],
                "IP:PORT",
            ),
            (&text.replacen('.', ".X", 1)[..], "token"),
        ] {
            let e = bad.parse::<RelayCode>().expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_hello_admits_its_token_only() {
        let token = [3u8; TOKEN_BYTES];
        assert!(hello_admits(&hello(&token), &token));
        let mut other = token;
        other[31] ^= 1;
        assert!(!hello_admits(&hello(&other), &token));
        let mut wrong_version = hello(&token);
        wrong_version[4] = 1;
        assert!(!hello_admits(&wrong_version, &token));
    }

    #[test]
    fn frames_have_the_layout_of_the_spec() {
        let f = packet_frame(DeviceId([1; 32]), b"abc").expect("frame");
        assert_eq!(&f[..2], &[0, 35]);
        assert_eq!(&f[2..34], &[1; 32]);
        assert_eq!(&f[34..], b"abc");
        assert!(packet_frame(DeviceId([1; 32]), &[0; MAX_PACKET + 1]).is_none());
        assert_eq!(&hello(&[0xAA; TOKEN_BYTES])[..5], b"FURL\x02");
        let seen = seen_frame("[::ffff:203.0.113.7]:4000".parse().expect("addr")).expect("frame");
        assert_eq!(&seen[..2], &[0, 32 + 16]);
        assert_eq!(&seen[2..34], &[0; 32]);
        assert_eq!(&seen[34..], b"203.0.113.7:4000");
    }
}
