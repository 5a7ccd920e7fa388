//! The relay server: takes links from devices that hold its token and forwards each packet to
//! the device it names, if that device is linked too. It keeps nothing on disk but its own key
//! and token, and logs device ids and byte counts, never a packet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failup_net::{Identity, Trust};
use failup_wire::DeviceId;
use tokio::sync::mpsc;

use crate::{
    ALPN_RELAY, Answer, HELLO_BYTES, RelayError, TOKEN_BYTES, hello_admits, packet_frame,
    seen_frame,
};

/// How often the relay looks whether a device's link moved (a phone changing networks), to
/// tell it where it is seen now.
const SEEN_CHECK: Duration = Duration::from_secs(2);
/// How often the relay tells a device where it sees it even when that did not change: well
/// within the half hour a device counts a report (`failup_node::reach::FRESH_FOR`).
const SEEN_AGAIN: Duration = Duration::from_secs(10 * 60);
/// How long a device has to say hello.
const HELLO_WAIT: Duration = Duration::from_secs(10);
/// Packets queued for one device before more are dropped (as UDP would).
const QUEUE: usize = 512;
/// Connections between their first packet and a right hello, at most: past this new ones are
/// refused, so strangers cannot tie the relay up before saying anything.
const MAX_UNLINKED: usize = 256;

/// What a relay allows each device.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Devices linked at once.
    pub max_devices: usize,
    /// Bytes a second a device may send through the relay, on average.
    pub rate: u64,
    /// Bytes a device may send at once above the average.
    pub burst: u64,
    /// Bytes one link may carry before the relay closes it (the device links again).
    pub max_bytes: u64,
    /// How long one link may last before the relay closes it.
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_devices: 64,
            rate: 4 << 20,
            burst: 8 << 20,
            max_bytes: 8 << 30,
            max_time: Duration::from_secs(24 * 3600),
        }
    }
}

/// Counters, for the log and the benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Devices linked now.
    pub linked: AtomicUsize,
    /// Packet bytes forwarded.
    pub forwarded: AtomicU64,
    /// Packets dropped: to a device not linked, over a rate, or to a full queue.
    pub dropped: AtomicU64,
    /// Links refused: wrong token, or the relay full.
    pub refused: AtomicU64,
}

/// Any key may finish the handshake: the token decides after it.
#[derive(Debug)]
struct AnyDevice;

impl Trust for AnyDevice {
    fn admits(&self, _device: DeviceId) -> bool {
        true
    }
}

/// The relay's endpoint, listening on `listen` with the relay's own key.
pub fn endpoint(identity: &Identity, listen: SocketAddr) -> Result<quinn::Endpoint, RelayError> {
    Ok(failup_net::endpoint(
        identity,
        Arc::new(AnyDevice),
        listen,
        &[ALPN_RELAY],
    )?)
}

struct Link {
    id: u64,
    tx: mpsc::Sender<(DeviceId, Vec<u8>)>,
    conn: quinn::Connection,
}

type Hub = Arc<Mutex<HashMap<DeviceId, Link>>>;

/// Serves links on `endpoint` until it closes.
pub async fn serve(
    endpoint: quinn::Endpoint,
    token: [u8; TOKEN_BYTES],
    limits: Limits,
    stats: Arc<Stats>,
) {
    let hub: Hub = Arc::default();
    let unlinked = Arc::new(tokio::sync::Semaphore::new(MAX_UNLINKED));
    let mut next = 0u64;
    while let Some(incoming) = endpoint.accept().await {
        // A spoofed source gets a retry, not a handshake it could amplify.
        if !incoming.remote_address_validated() {
            let _ = incoming.retry();
            continue;
        }
        let Ok(permit) = unlinked.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            incoming.refuse();
            continue;
        };
        next += 1;
        let (hub, limits, stats) = (hub.clone(), limits.clone(), stats.clone());
        tokio::spawn(async move {
            if let Err(e) = link(incoming, next, token, &limits, &hub, &stats, permit).await {
                tracing::debug!("a link ended: {e}");
            }
        });
    }
}

/// A connection that has said its hello, right or not.
struct Hello {
    conn: quinn::Connection,
    device: DeviceId,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    hello: [u8; HELLO_BYTES],
}

/// Takes a connection as far as its hello (the caller bounds it with [`HELLO_WAIT`]).
async fn hello(incoming: quinn::Incoming) -> Result<Hello, RelayError> {
    let broken = |e: &dyn std::fmt::Display| RelayError::Link(e.to_string());
    let conn = incoming.await.map_err(|e| broken(&e))?;
    let device = failup_net::peer_device(&conn).ok_or(RelayError::Link("no key".into()))?;
    let (send, mut recv) = conn.accept_bi().await.map_err(|e| broken(&e))?;
    let mut hello = [0u8; HELLO_BYTES];
    recv.read_exact(&mut hello).await.map_err(|e| broken(&e))?;
    Ok(Hello {
        conn,
        device,
        send,
        recv,
        hello,
    })
}

async fn link(
    incoming: quinn::Incoming,
    id: u64,
    token: [u8; TOKEN_BYTES],
    limits: &Limits,
    hub: &Hub,
    stats: &Stats,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), RelayError> {
    let broken = |e: &dyn std::fmt::Display| RelayError::Link(e.to_string());
    let Hello {
        conn,
        device,
        mut send,
        mut recv,
        hello,
    } = tokio::time::timeout(HELLO_WAIT, hello(incoming))
        .await
        .map_err(|e| broken(&e))??;
    let (tx, mut rx) = mpsc::channel::<(DeviceId, Vec<u8>)>(QUEUE);
    // Decided and taken in one lock, so parallel hellos cannot all find room.
    let answer = if !hello_admits(&hello, &token) {
        Answer::Refused
    } else {
        match hub.lock() {
            Ok(mut h) if h.len() < limits.max_devices || h.contains_key(&device) => {
                let old = h.insert(
                    device,
                    Link {
                        id,
                        tx,
                        conn: conn.clone(),
                    },
                );
                stats.linked.store(h.len(), Ordering::Relaxed);
                // One link per device: the one it made before ends now.
                if let Some(old) = old {
                    old.conn.close(0u32.into(), b"linked again");
                }
                Answer::Welcome
            }
            _ => Answer::Full,
        }
    };
    drop(permit);
    send.write_all(&[answer as u8])
        .await
        .map_err(|e| broken(&e))?;
    if answer != Answer::Welcome {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        // Debug only: refusals must not let strangers fill the relay's log.
        tracing::debug!(device = %device.short(), remote = %conn.remote_address(), ?answer, "refused a link");
        let _ = send.finish();
        // Let the answer arrive before the close does.
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
        return Ok(());
    }
    tracing::info!(device = %device.short(), remote = %conn.remote_address(), "linked");
    let seen_by = conn.clone();
    let writer = tokio::spawn(async move {
        let mut check = tokio::time::interval(SEEN_CHECK);
        let mut told: Option<(SocketAddr, Instant)> = None;
        loop {
            let frame = tokio::select! {
                next = rx.recv() => match next {
                    Some((from, packet)) => packet_frame(from, &packet),
                    None => break,
                },
                _ = check.tick() => {
                    let at = seen_by.remote_address();
                    let stale = told.is_none_or(|(addr, when)| {
                        addr != at || when.elapsed() >= SEEN_AGAIN
                    });
                    if !stale {
                        continue;
                    }
                    told = Some((at, Instant::now()));
                    seen_frame(at)
                }
            };
            let Some(frame) = frame else {
                continue;
            };
            if send.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let mut carried = 0u64;
    let forward = async {
        let mut bucket = Bucket::new(limits.burst, Instant::now());
        loop {
            let (to, packet) = crate::read_packet(&mut recv).await?;
            carried += packet.len() as u64;
            if carried > limits.max_bytes {
                return Err(RelayError::Link("the link's byte limit".into()));
            }
            let target = hub
                .lock()
                .ok()
                .and_then(|h| h.get(&to).map(|l| l.tx.clone()));
            let allowed = bucket.take(packet.len() as u64, limits, Instant::now());
            let len = packet.len() as u64;
            match target {
                Some(tx) if allowed && tx.try_send((device, packet)).is_ok() => {
                    stats.forwarded.fetch_add(len, Ordering::Relaxed);
                }
                _ => {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    };
    let ended = match tokio::time::timeout(limits.max_time, forward).await {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(())) => "closed".into(),
        Err(_) => "the link's time limit".into(),
    };
    writer.abort();
    if let Ok(mut h) = hub.lock() {
        if h.get(&device).is_some_and(|l| l.id == id) {
            h.remove(&device);
        }
        stats.linked.store(h.len(), Ordering::Relaxed);
    }
    conn.close(0u32.into(), b"bye");
    tracing::info!(device = %device.short(), bytes = carried, "link ended: {ended}");
    Ok(())
}

/// A token bucket: `rate` bytes a second, at most `burst` at once.
struct Bucket {
    tokens: u64,
    at: Instant,
}

impl Bucket {
    fn new(burst: u64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn take(&mut self, n: u64, limits: &Limits, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at);
        let refill = (elapsed.as_micros() as u64).saturating_mul(limits.rate) / 1_000_000;
        if refill > 0 {
            self.tokens = self.tokens.saturating_add(refill).min(limits.burst);
            self.at = now;
        }
        if self.tokens < n {
            return false;
        }
        self.tokens -= n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_lets_a_burst_through_then_the_rate() {
        let limits = Limits {
            rate: 1000,
            burst: 2000,
            ..Limits::default()
        };
        let t0 = Instant::now();
        let mut b = Bucket::new(limits.burst, t0);
        assert!(b.take(2000, &limits, t0));
        assert!(!b.take(1, &limits, t0));
        assert!(b.take(500, &limits, t0 + Duration::from_millis(500)));
        assert!(!b.take(600, &limits, t0 + Duration::from_millis(600)));
        // Never more than the burst, however long the wait.
        assert!(!b.take(2001, &limits, t0 + Duration::from_secs(3600)));
    }
}
