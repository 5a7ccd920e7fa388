//! Peer connections: accepting QUIC connections (sync from trusted devices, pairing from anyone
//! holding an open invite) and moving one connection's frames between its stream and the
//! engine thread, with bounded memory both ways.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use failup_wire::{ALPN_PAIR, ALPN_SYNC, DeviceId, FrameReader, Message};
use tokio::sync::mpsc;

use crate::{Event, TrustState, pairing};

/// Bytes read from a stream at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes of one connection's messages waiting for the engine, at most (one larger message is
/// let through alone): reading stops until the engine catches up, and QUIC flow control then
/// stops the peer.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;
/// Unit of the queue budget.
const QUEUE_UNIT: usize = 1024;
/// Bytes waiting to be written to one peer, at most: past this the peer is not reading, and
/// the connection is closed rather than left to grow.
pub const MAX_UNWRITTEN_BYTES: usize = 64 * 1024 * 1024;

/// What a received message holds in memory, roughly, in queue units.
fn queue_units(msg: &Message) -> u32 {
    let bytes = match msg {
        Message::Doc { data, .. } | Message::Sync { data, .. } | Message::Request { data, .. } => {
            data.len()
        }
        Message::Inventory { items } => items.len() * 64,
        Message::Seals { seals, .. } => seals.len() * 160,
        Message::Summary { .. }
        | Message::DocUnavailable { .. }
        | Message::Observed { .. }
        | Message::Meet { .. } => 64,
    };
    let units = bytes
        .div_ceil(QUEUE_UNIT)
        .clamp(1, MAX_QUEUED_BYTES / QUEUE_UNIT);
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// A connection whose stream is open, handed to the engine thread.
pub(crate) struct Opened {
    pub(crate) peer: DeviceId,
    pub(crate) conn: quinn::Connection,
    pub(crate) dialed: bool,
    /// Frames for the writer task.
    pub(crate) tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes handed to the writer and not yet written.
    pub(crate) queued: Arc<AtomicUsize>,
}

/// A message from a peer, handed to the engine thread.
pub(crate) struct Received {
    pub(crate) peer: DeviceId,
    pub(crate) conn_id: usize,
    pub(crate) msg: Message,
    /// Held until the engine has handled the message: a connection has at most
    /// `MAX_QUEUED_BYTES` of messages waiting.
    pub(crate) _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Accepts connections: sync from trusted devices, pairing from anyone holding an open invite.
pub(crate) async fn accept_loop(
    endpoint: quinn::Endpoint,
    events: mpsc::UnboundedSender<Event>,
    trust: Arc<TrustState>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let events = events.clone();
        let trust = trust.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!("refused a connection: {e}");
                    return;
                }
            };
            let Some(peer) = failup_net::peer_device(&conn) else {
                conn.close(1u32.into(), b"no device id");
                return;
            };
            match failup_net::alpn_of(&conn).as_deref() {
                Some(ALPN_PAIR) => pairing::serve(conn, peer, events).await,
                Some(ALPN_SYNC) if trust.is_trusted(peer) => {
                    run_connection(conn, peer, false, events).await;
                }
                _ => {
                    tracing::warn!(peer = %peer.short(), "refused a device outside the circle");
                    conn.close(1u32.into(), b"unknown device");
                }
            }
        });
    }
}

/// Moves frames between one connection's stream and the engine until either side ends it.
/// Returns whether the connection reached the engine thread (then its end is reported as
/// [`Event::Closed`]); one whose stream never opened did not.
pub(crate) async fn run_connection(
    conn: quinn::Connection,
    peer: DeviceId,
    dialed: bool,
    events: mpsc::UnboundedSender<Event>,
) -> bool {
    let streams = if dialed {
        conn.open_bi().await
    } else {
        conn.accept_bi().await
    };
    let Ok((mut send, mut recv)) = streams else {
        return false;
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let queued = Arc::new(AtomicUsize::new(0));
    let conn_id = conn.stable_id();
    if events
        .send(Event::Connected(Opened {
            peer,
            conn: conn.clone(),
            dialed,
            tx,
            queued: queued.clone(),
        }))
        .is_err()
    {
        return false;
    }
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let written = send.write_all(&frame).await;
            queued.fetch_sub(frame.len(), Ordering::SeqCst);
            if written.is_err() {
                break;
            }
        }
        // The stream may already be finished or reset by the peer; nothing is lost either way.
        let _ = send.finish();
    });
    let budget = Arc::new(tokio::sync::Semaphore::new(MAX_QUEUED_BYTES / QUEUE_UNIT));
    let mut reader = FrameReader::default();
    let mut buf = vec![0u8; READ_CHUNK];
    let reason = loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                reader.push(buf.get(..n).unwrap_or_default());
                let mut failed = None;
                loop {
                    match reader.next_message() {
                        Ok(Some(msg)) => {
                            let units = queue_units(&msg);
                            let Ok(permit) = budget.clone().acquire_many_owned(units).await else {
                                failed = Some("shutting down".to_owned());
                                break;
                            };
                            // A closed channel means the engine stopped; the read loop ends
                            // with the connection.
                            let _ = events.send(Event::Received(Received {
                                peer,
                                conn_id,
                                msg,
                                _permit: permit,
                            }));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            failed = Some(e.to_string());
                            break;
                        }
                    }
                }
                if let Some(reason) = failed {
                    tracing::warn!(peer = %peer.short(), "closing connection: {reason}");
                    conn.close(1u32.into(), reason.as_bytes());
                    break reason;
                }
            }
            Ok(None) => break "stream finished".to_owned(),
            Err(e) => break e.to_string(),
        }
    };
    writer.abort();
    // A stopped engine no longer needs to hear of it.
    let _ = events.send(Event::Closed {
        peer,
        conn_id,
        reason,
    });
    true
}
