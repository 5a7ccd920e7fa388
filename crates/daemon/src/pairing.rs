//! Pairing two devices of one person: a one-time invite code carries the inviter's device id,
//! addresses and a secret; the joining device connects with ALPN `failup-pair/1`, pinned to
//! that id, and proves it holds the secret. proto/sync.md describes the exchange.

use std::net::SocketAddr;
use std::time::Instant;

use failup_net::Identity;
use failup_wire::{ALPN_PAIR, DeviceId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::Event;

/// Prefix of every invite code, so a pasted code is recognisable.
pub const CODE_PREFIX: &str = "FAILUP-";
/// Prefix of an invite for an accountability partner rather than another device of one's own
/// (base32 has no `-`, so no device code starts with it).
pub const PARTNER_PREFIX: &str = "FAILUP-PARTNER-";
/// Largest pairing frame, in bytes.
pub const MAX_PAIR_FRAME: u32 = 4096;
/// What the joiner hears when the inviter's TLS turns it away: it admits unknown devices only
/// while an unused invite is open.
const REFUSED: &str = "pairing refused: the inviting device does not accept this device now \
                       (the invite was already used, has expired, or is not one of its invites)";
/// How long the inviter waits for a joiner's hello.
pub const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest invite code accepted, in characters.
pub const MAX_CODE_CHARS: usize = 2048;

/// An invite this device handed out.
pub struct Invite {
    /// The secret the joiner must present.
    pub secret: [u8; 16],
    /// When it stops working.
    pub expires: Instant,
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

/// A pairing attempt that reached the inviter, handed to the engine thread to decide.
pub struct Incoming {
    /// The joining device, from its certificate.
    pub peer: DeviceId,
    /// Where it connected from.
    pub remote: SocketAddr,
    /// What it sent.
    pub hello: Hello,
    /// Where the decision goes.
    pub reply: oneshot::Sender<Reply>,
}

/// A completed join, handed to the engine thread to remember.
pub struct Joined {
    /// The inviting device.
    pub inviter: DeviceId,
    /// What to call it.
    pub name: String,
    /// Where it listens.
    pub addrs: Vec<SocketAddr>,
    /// Its circle document (a device join).
    pub circle: Option<u128>,
    /// Its side of the new space (a partner join).
    pub space: Option<u128>,
}

async fn write_frame(
    w: &mut (impl AsyncWrite + Unpin),
    value: &impl Serialize,
) -> Result<(), String> {
    let bytes = postcard::to_allocvec(value).map_err(|e| e.to_string())?;
    w.write_all(&(bytes.len() as u32).to_be_bytes())
        .await
        .map_err(|e| e.to_string())?;
    w.write_all(&bytes).await.map_err(|e| e.to_string())
}

async fn read_frame<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<T, String> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header).await.map_err(|e| e.to_string())?;
    let len = u32::from_be_bytes(header);
    if len > MAX_PAIR_FRAME {
        return Err(format!("pairing frame of {len} bytes"));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    postcard::from_bytes(&buf).map_err(|e| e.to_string())
}

/// The inviter's side of one pairing connection.
pub(crate) async fn serve(
    conn: quinn::Connection,
    peer: DeviceId,
    events: mpsc::UnboundedSender<Event>,
) {
    // A joiner opens its stream and says hello at once; anyone slower is not pairing and must
    // not hold a connection.
    let greeted = tokio::time::timeout(HELLO_TIMEOUT, async {
        let (send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        let hello = read_frame::<Hello>(&mut recv).await?;
        Ok::<_, String>((send, hello))
    })
    .await;
    let (mut send, hello) = match greeted {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            conn.close(1u32.into(), e.as_bytes());
            return;
        }
        Err(_) => {
            conn.close(1u32.into(), b"no hello");
            return;
        }
    };
    let (tx, rx) = oneshot::channel();
    let incoming = Incoming {
        peer,
        remote: conn.remote_address(),
        hello,
        reply: tx,
    };
    if events.send(Event::Pair(incoming)).is_err() {
        return;
    }
    let reply = rx
        .await
        .unwrap_or(Reply::Refused("the inviting daemon is stopping".into()));
    let _ = write_frame(&mut send, &reply).await;
    let _ = send.finish();
    // Let the joiner read the answer and close first.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn.closed()).await;
}

/// The joiner's side: connect to the inviter, present the secret, read the verdict.
pub(crate) async fn join(
    endpoint: &quinn::Endpoint,
    identity: &Identity,
    code: &Code,
    name: String,
    port: u16,
    space: Option<[u8; 16]>,
) -> Result<Joined, String> {
    let inviter = DeviceId(code.device);
    let addrs: Vec<SocketAddr> = code.addrs.iter().filter_map(|a| a.parse().ok()).collect();
    let mut last = "the invite lists no address".to_owned();
    for addr in &addrs {
        let attempt = tokio::time::timeout(
            crate::CONNECT_TIMEOUT,
            failup_net::connect(endpoint, identity, inviter, *addr, ALPN_PAIR),
        )
        .await;
        let conn = match attempt {
            Ok(Ok(c)) => c,
            // The inviter's TLS turned this device away: the same verdict as a lost connection
            // below, only earlier.
            Ok(Err(failup_net::NetError::Refused { .. })) => return Err(REFUSED.to_owned()),
            Ok(Err(e)) => {
                last = e.to_string();
                continue;
            }
            Err(_) => {
                last = format!("no answer from {addr}");
                continue;
            }
        };
        let (mut send, mut recv) = conn.open_bi().await.map_err(|_| REFUSED.to_owned())?;
        let hello = Hello {
            secret: code.secret,
            name: name.clone(),
            port,
            space,
        };
        if write_frame(&mut send, &hello).await.is_err() {
            return Err(
                "pairing refused: the inviting device does not accept this device now \
                 (the invite was already used, has expired, or is not one of its invites)"
                    .to_owned(),
            );
        }
        // The inviter's TLS refuses unknown devices unless an unused invite is open, and that
        // verdict arrives only after the handshake; a connection lost here is that refusal.
        let reply: Reply = read_frame(&mut recv)
            .await
            .map_err(|_| REFUSED.to_owned())?;
        conn.close(0u32.into(), b"paired");
        return match reply {
            Reply::Accepted { name, circle } => Ok(Joined {
                inviter,
                name,
                addrs,
                circle: Some(u128::from_be_bytes(circle)),
                space: None,
            }),
            Reply::Partnered { name, space } => Ok(Joined {
                inviter,
                name,
                addrs,
                circle: None,
                space: Some(u128::from_be_bytes(space)),
            }),
            Reply::Refused(reason) => Err(format!("pairing refused: {reason}")),
        };
    }
    Err(format!("cannot reach the inviting device: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
