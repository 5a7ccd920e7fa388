//! Pairing over the network: a one-time invite code carries the inviter's device id, addresses
//! and a secret; the joining device connects with ALPN `failup-pair/1`, pinned to that id, and
//! proves it holds the secret. proto/sync.md describes the exchange; what the messages mean and
//! whether a joiner is admitted is the node's (`failup_node::pairing`), and this module only
//! carries them.

use std::net::SocketAddr;

use failup_net::Identity;
pub use failup_node::pairing::*;
use failup_wire::{ALPN_PAIR, DeviceId};
use tokio::sync::{mpsc, oneshot};

use crate::Event;
use crate::engine::join_failure;
use crate::frame;

/// What the joiner hears when the inviter's TLS turns it away: it admits unknown devices only
/// while an unused invite is open.
const REFUSED: &str = "pairing refused: the inviting device does not accept this device now \
                       (the invite was already used, has expired, or is not one of its invites)";
/// How long the inviter waits for a joiner's hello.
pub const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
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

async fn write_frame(
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    value: &impl serde::Serialize,
) -> Result<(), String> {
    frame::write_async(w, value, MAX_PAIR_FRAME)
        .await
        .map_err(|e| e.to_string())
}

async fn read_frame<T: serde::de::DeserializeOwned>(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<T, String> {
    frame::read_async(r, MAX_PAIR_FRAME)
        .await
        .map_err(|e| e.to_string())
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
        remote: failup_wire::canonical(conn.remote_address()),
        hello,
        reply: tx,
    };
    if events.send(Event::Pair(incoming)).is_err() {
        return;
    }
    let reply = rx
        .await
        .unwrap_or(Reply::Refused("the inviting daemon is stopping".into()));
    if let Err(e) = write_frame(&mut send, &reply).await {
        // The joiner sees a lost connection, which it reports as a refusal.
        tracing::info!(peer = %peer.short(), "could not answer a pairing: {e}");
    }
    // Already finished or reset by the joiner: nothing more to send either way.
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
) -> Result<Joined, failup_node::Failure> {
    let refused = || join_failure(false, REFUSED.to_owned());
    let addrs = code.addrs.clone();
    let mut last = "the invite lists no address".to_owned();
    for addr in &addrs {
        let attempt = tokio::time::timeout(
            crate::CONNECT_TIMEOUT,
            failup_net::connect_to_prefix(endpoint, identity, &code.device, *addr, ALPN_PAIR),
        )
        .await;
        let conn = match attempt {
            Ok(Ok(c)) => c,
            // The inviter's TLS turned this device away: the same verdict as a lost connection
            // below, only earlier.
            Ok(Err(failup_net::NetError::Refused { .. })) => return Err(refused()),
            Ok(Err(e)) => {
                last = e.to_string();
                continue;
            }
            Err(_) => {
                last = format!("no answer from {addr}");
                continue;
            }
        };
        // The handshake checked the id's prefix; the certificate names the device in full.
        let Some(inviter) = failup_net::peer_device(&conn) else {
            return Err(refused());
        };
        let (mut send, mut recv) = conn.open_bi().await.map_err(|_| refused())?;
        let hello = Hello {
            secret: code.secret,
            name: name.clone(),
            port,
            space,
        };
        if write_frame(&mut send, &hello).await.is_err() {
            return Err(refused());
        }
        // The inviter's TLS refuses unknown devices unless an unused invite is open, and that
        // verdict arrives only after the handshake; a connection lost here is that refusal.
        let reply: Reply = read_frame(&mut recv).await.map_err(|_| refused())?;
        conn.close(0u32.into(), b"paired");
        return match reply {
            Reply::Accepted { name, circle } => Ok(Joined {
                inviter,
                name,
                addrs,
                circle: Some(failup_wire::DocId(circle)),
                space: None,
            }),
            Reply::Partnered { name, space } => Ok(Joined {
                inviter,
                name,
                addrs,
                circle: None,
                space: Some(failup_wire::DocId(space)),
            }),
            Reply::Refused(reason) => {
                Err(join_failure(false, format!("pairing refused: {reason}")))
            }
        };
    }
    Err(join_failure(
        true,
        format!("cannot reach the inviting device: {last}"),
    ))
}
