//! A device's side of a relay: [`RelaySocket`] is a socket for a quinn endpoint of its own
//! whose every packet travels over one link to the relay ([`keep_linked`]). Each device reached
//! this way gets a made-up address in [`RELAYED_PREFIX`] for quinn to use, so the connections
//! on that endpoint are ordinary quinn connections, with the same TLS and verifiers as direct
//! ones, from end to end.

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use failup_net::Identity;
use failup_wire::DeviceId;
use quinn::udp::{RecvMeta, Transmit};
use tokio::sync::mpsc;

use crate::{
    ALPN_RELAY, Answer, FROM_RELAY, RelayCode, RelayError, hello, packet_frame, read_packet,
};

/// The first 64 bits of every made-up address (a unique local range, RFC 4193).
pub const RELAYED_PREFIX: [u16; 4] = [0xfd66, 0x7570, 0x7265, 0x6c79];
/// Packets queued each way before more are dropped (as UDP would).
const QUEUE: usize = 1024;
/// How long connecting to the relay may take.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// The longest wait between two tries to link.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Devices given a made-up address at most: a hostile relay naming a new device in every
/// packet must not grow the book without end.
const MAX_BOOK: usize = 4096;

/// Whether `addr` is a made-up address of a device reached through the relay.
pub fn is_relayed(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V6(a) => a.ip().segments()[..4] == RELAYED_PREFIX,
        SocketAddr::V4(_) => false,
    }
}

#[derive(Debug, Default)]
struct Book {
    numbers: HashMap<DeviceId, u32>,
    devices: Vec<DeviceId>,
}

/// The socket under the relayed endpoint.
#[derive(Debug)]
pub struct RelaySocket {
    out: mpsc::Sender<(DeviceId, Vec<u8>)>,
    inbox: Mutex<mpsc::Receiver<(DeviceId, Vec<u8>)>>,
    book: Mutex<Book>,
    up: tokio::sync::watch::Receiver<bool>,
    seen: tokio::sync::watch::Receiver<Option<SocketAddr>>,
}

/// The link's ends of a [`RelaySocket`]'s queues, for [`keep_linked`].
#[derive(Debug)]
pub struct LinkEnds {
    out: mpsc::Receiver<(DeviceId, Vec<u8>)>,
    inbox: mpsc::Sender<(DeviceId, Vec<u8>)>,
    up: tokio::sync::watch::Sender<bool>,
    seen: tokio::sync::watch::Sender<Option<SocketAddr>>,
    admits: Arc<dyn failup_net::Trust>,
}

/// A socket and the ends its link takes. Packets that come through the relay from a device
/// `admits` refuses are dropped before quinn sees them (they could only fail the handshake,
/// and each would cost an entry in the address book).
pub fn socket(admits: Arc<dyn failup_net::Trust>) -> (Arc<RelaySocket>, LinkEnds) {
    let (out_tx, out_rx) = mpsc::channel(QUEUE);
    let (in_tx, in_rx) = mpsc::channel(QUEUE);
    let (up, up_rx) = tokio::sync::watch::channel(false);
    let (seen, seen_rx) = tokio::sync::watch::channel(None);
    (
        Arc::new(RelaySocket {
            out: out_tx,
            inbox: Mutex::new(in_rx),
            book: Mutex::default(),
            up: up_rx,
            seen: seen_rx,
        }),
        LinkEnds {
            out: out_rx,
            inbox: in_tx,
            up,
            seen,
            admits,
        },
    )
}

impl RelaySocket {
    /// The made-up address quinn dials `device` at through the relay; `None` once the book
    /// is full.
    pub fn addr_of(&self, device: DeviceId) -> Option<SocketAddr> {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let n = match book.numbers.get(&device) {
            Some(n) => *n,
            None if book.devices.len() >= MAX_BOOK => return None,
            None => {
                let n = book.devices.len() as u32 + 1;
                book.devices.push(device);
                book.numbers.insert(device, n);
                n
            }
        };
        let [a, b, c, d] = RELAYED_PREFIX;
        Some(SocketAddr::new(
            Ipv6Addr::new(a, b, c, d, 0, 0, (n >> 16) as u16, n as u16).into(),
            1,
        ))
    }

    fn device_at(&self, addr: &SocketAddr) -> Option<DeviceId> {
        if !is_relayed(addr) {
            return None;
        }
        let SocketAddr::V6(a) = addr else {
            return None;
        };
        let s = a.ip().segments();
        let n = ((s[6] as usize) << 16) | s[7] as usize;
        let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.devices.get(n.checked_sub(1)?).copied()
    }

    /// How many devices have a made-up address (at most 4,096).
    pub fn devices_known(&self) -> usize {
        self.book.lock().map(|b| b.devices.len()).unwrap_or(0)
    }

    /// Whether the link to the relay is up now.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Changes whenever the link comes up or goes down.
    pub fn watch_up(&self) -> tokio::sync::watch::Receiver<bool> {
        self.up.clone()
    }

    /// Where the relay says it sees this device's link come from (its router's public address
    /// behind one), each time it says so. A hint like a peer's `observed`: the relay is the
    /// person's own, and a wrong address costs failed dials, nothing else.
    pub fn watch_seen(&self) -> tokio::sync::watch::Receiver<Option<SocketAddr>> {
        self.seen.clone()
    }
}

#[derive(Debug)]
struct Writable;

impl quinn::UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        // Sending never waits: a full queue drops the packet, as a full network does.
        Poll::Ready(Ok(()))
    }
}

impl quinn::AsyncUdpSocket for RelaySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn quinn::UdpPoller>> {
        Box::pin(Writable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let Some(device) = self.device_at(&transmit.destination) else {
            return Ok(());
        };
        let size = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        for packet in transmit.contents.chunks(size) {
            let _ = self.out.try_send((device, packet.to_vec()));
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        let mut filled = 0;
        while filled < bufs.len().min(meta.len()) {
            let next = if filled == 0 {
                match inbox.poll_recv(cx) {
                    Poll::Ready(Some(p)) => p,
                    // The link's end is gone only when the daemon stops.
                    Poll::Ready(None) | Poll::Pending => return Poll::Pending,
                }
            } else {
                match inbox.try_recv() {
                    Ok(p) => p,
                    Err(_) => break,
                }
            };
            let (from, packet) = next;
            let Some(addr) = self.addr_of(from) else {
                continue;
            };
            let len = packet.len().min(bufs[filled].len());
            bufs[filled][..len].copy_from_slice(&packet[..len]);
            meta[filled] = RecvMeta {
                addr,
                len,
                stride: len,
                ecn: None,
                dst_ip: None,
            };
            filled += 1;
        }
        Poll::Ready(Ok(filled))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        // IPv6, so quinn takes the made-up addresses.
        Ok(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0))
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

/// Keeps a link to the relay up from `endpoint` (the device's own, so the relay sees it come
/// from where its other connections do), linking again after a backoff whenever it drops.
/// Returns when the socket is gone.
pub async fn keep_linked(
    endpoint: quinn::Endpoint,
    identity: Arc<Identity>,
    code: RelayCode,
    mut ends: LinkEnds,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let result = link_once(&endpoint, &identity, &code, &mut ends).await;
        ends.up.send_replace(false);
        match result {
            Ok(()) => return,
            Err(RelayError::Refused(why)) => {
                tracing::error!(relay = %code.addr, "the relay refused this device: {why}");
                backoff = MAX_BACKOFF;
            }
            Err(e) => tracing::info!(relay = %code.addr, "no link to the relay: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if ends.inbox.is_closed() {
            return;
        }
    }
}

async fn link_once(
    endpoint: &quinn::Endpoint,
    identity: &Identity,
    code: &RelayCode,
    ends: &mut LinkEnds,
) -> Result<(), RelayError> {
    let broken = |e: &dyn std::fmt::Display| RelayError::Link(e.to_string());
    let conn = tokio::time::timeout(
        CONNECT_WAIT,
        failup_net::connect(endpoint, identity, code.relay, code.addr, ALPN_RELAY),
    )
    .await
    .map_err(|e| broken(&e))??;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| broken(&e))?;
    send.write_all(&hello(&code.token))
        .await
        .map_err(|e| broken(&e))?;
    let mut answer = [0u8; 1];
    tokio::time::timeout(CONNECT_WAIT, recv.read_exact(&mut answer))
        .await
        .map_err(|e| broken(&e))?
        .map_err(|e| broken(&e))?;
    match Answer::from_byte(answer[0]) {
        Some(Answer::Welcome) => {}
        Some(Answer::Full) => {
            return Err(RelayError::Refused("it serves as many devices as it may"));
        }
        _ => return Err(RelayError::Refused("wrong token")),
    }
    tracing::info!(relay = %code.addr, "linked to the relay");
    ends.up.send_replace(true);
    let (inbox, admits, seen) = (ends.inbox.clone(), ends.admits.clone(), ends.seen.clone());
    let mut reader = tokio::spawn(async move {
        loop {
            match read_packet(&mut recv).await {
                Ok((from, body)) if from == FROM_RELAY => {
                    let addr = std::str::from_utf8(&body).ok().and_then(|t| t.parse().ok());
                    if let Some(addr) = addr {
                        seen.send_replace(Some(addr));
                    }
                }
                Ok((from, _)) if !admits.admits(from) => {}
                // A full queue drops the packet, as a full network does.
                Ok(p) => {
                    if let Err(mpsc::error::TrySendError::Closed(_)) = inbox.try_send(p) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::info!("the relay link broke: {e}");
                    return;
                }
            }
        }
    });
    loop {
        tokio::select! {
            _ = &mut reader => return Err(RelayError::Link("the relay closed the link".into())),
            out = ends.out.recv() => {
                let Some((to, packet)) = out else {
                    reader.abort();
                    conn.close(0u32.into(), b"bye");
                    return Ok(());
                };
                if let Some(frame) = packet_frame(to, &packet) {
                    if let Err(e) = send.write_all(&frame).await {
                        reader.abort();
                        return Err(broken(&e));
                    }
                }
            }
        }
    }
}
