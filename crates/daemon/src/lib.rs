//! The daemon: the IO shell around the sync engine. It owns the store while it runs, answers the
//! `failup` command over the control socket, accepts and dials QUIC connections to the devices
//! of this person's circle, and carries out what the engine decides.
//!
//! Shape: async tasks move bytes (the control socket, each connection's stream, dialing with
//! backoff) and send [`Event`]s to one engine thread, which alone touches the store and the
//! engine. Store writes are synchronous and fsync'd, so they never block the async runtime, and
//! a change received from a peer is durable before the engine answers.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod circle;
pub mod control;
mod discovery;
mod ops;
pub mod pairing;
pub mod sharing;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use control::{PeerInfo, Request, Response, StatusInfo};
use failup_journal::Entry;
use failup_net::{Identity, Trust};
use failup_store::{Order, Store, StoreError};
use failup_sync::{DocError, Documents, Effect, Engine, Input};
use failup_wire::{ALPN_PAIR, ALPN_SYNC, DeviceId, DocId, FrameReader, InventoryItem, Message};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot};

/// Default UDP port the daemon listens on.
pub const DEFAULT_PORT: u16 = 7676;
/// Longest wait between two attempts to reach a device.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the device with the larger id waits before its first dial to a newly trusted device.
pub const DIAL_HEAD_START: Duration = Duration::from_secs(1);
/// A connection that lasted this long resets the redial backoff.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(10);
/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the daemon waits for its store at start-up.
pub const STORE_WAIT: Duration = Duration::from_secs(5);
/// Bytes read from a stream at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes of one connection's messages waiting for the engine, at most (one larger message is
/// let through alone): reading stops until the engine catches up, and QUIC flow control then
/// stops the peer.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;
/// Unit of the queue budget.
const QUEUE_UNIT: usize = 1024;

/// What a received message holds in memory, roughly, in queue units.
fn queue_units(msg: &Message) -> u32 {
    let bytes = match msg {
        Message::Doc { data, .. } | Message::Sync { data, .. } | Message::Request { data, .. } => {
            data.len()
        }
        Message::Inventory { items } => items.len() * 64,
        Message::Summary { .. } | Message::DocUnavailable { .. } => 64,
    };
    let units = bytes
        .div_ceil(QUEUE_UNIT)
        .clamp(1, MAX_QUEUED_BYTES / QUEUE_UNIT);
    u32::try_from(units).unwrap_or(u32::MAX)
}
/// Bytes waiting to be written to one peer, at most: past this the peer is not reading, and
/// the connection is closed rather than left to grow.
pub const MAX_UNWRITTEN_BYTES: usize = 64 * 1024 * 1024;
/// At most this many queued peer messages share one fsync: enough to amortise it over a first
/// sync, few enough that the first message's reply is not held back for long.
const MAX_GROUP: usize = 32;

/// What the daemon needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The home: store, device key, control socket.
    pub home: PathBuf,
    /// Where to listen for QUIC.
    pub listen: SocketAddr,
    /// This device's name, as other devices show it.
    pub name: String,
    /// Whether to announce this device and look for trusted ones on the local network.
    pub mdns: bool,
    /// Whether to talk to peers at all. Off, the daemon neither accepts nor dials nor
    /// announces: the `failup` command runs one with the network off to carry out a peer
    /// command (`peers addr`, `peers remove`) exactly as a running daemon would, when none runs.
    pub network: bool,
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The transport could not be set up.
    #[error(transparent)]
    Net(#[from] failup_net::NetError),
    /// A file or socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The devices that may complete a handshake: the circle, and anyone while an invite is open.
#[derive(Debug, Default)]
struct TrustState {
    trusted: RwLock<BTreeSet<DeviceId>>,
    open_invite_until: RwLock<Option<Instant>>,
}

impl TrustState {
    fn is_trusted(&self, d: DeviceId) -> bool {
        self.trusted.read().map(|t| t.contains(&d)).unwrap_or(false)
    }
}

impl Trust for TrustState {
    fn admits(&self, device: DeviceId) -> bool {
        self.is_trusted(device)
            || self
                .open_invite_until
                .read()
                .ok()
                .and_then(|u| *u)
                .is_some_and(|until| Instant::now() < until)
    }
}

/// A document id kept as a setting (`circle`, `joined-circle`).
pub(crate) fn setting_u128(store: &Store, key: &str) -> Option<u128> {
    store
        .setting(key)
        .ok()
        .flatten()
        .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
        .map(u128::from_be_bytes)
}

/// The devices this one refuses whatever the circle says (the `revoked` setting).
fn revoked_setting(store: &Store) -> Vec<[u8; 32]> {
    store
        .setting("revoked")
        .ok()
        .flatten()
        .and_then(|b| postcard::from_bytes(&b).ok())
        .unwrap_or_default()
}

/// The circle as the store holds it, for `failup peers` when no daemon runs: nothing is
/// connected, and last-seen times are known only to a running daemon.
pub fn offline_peers(store: &Store, me: DeviceId) -> Vec<PeerInfo> {
    let mut members = setting_u128(store, "circle")
        .and_then(|doc| store.document(doc).ok().flatten())
        .map(|d| circle::members(&d))
        .unwrap_or_default();
    if let Ok(Some(bytes)) = store.setting("bootstrap") {
        if let Ok(list) = postcard::from_bytes::<Vec<([u8; 32], String, Vec<String>)>>(&bytes) {
            for (d, name, addrs) in list {
                if !members.iter().any(|m| m.device.0 == d) {
                    members.push(circle::Member {
                        device: DeviceId(d),
                        name,
                        addrs: addrs.iter().filter_map(|a| a.parse().ok()).collect(),
                        revoked: false,
                    });
                }
            }
        }
    }
    let local_revoked = revoked_setting(store);
    members
        .into_iter()
        .map(|m| PeerInfo {
            device: m.device.to_string(),
            name: m.name,
            role: if m.device == me { "self" } else { "device" }.into(),
            addrs: m.addrs.iter().map(|a| a.to_string()).collect(),
            connected: false,
            last_seen: None,
            last_sync: None,
            revoked: m.revoked || local_revoked.contains(&m.device.0),
        })
        .collect()
}

/// Things that happen, sent to the engine thread.
enum Event {
    Control(Box<Request>, oneshot::Sender<Response>),
    Connected {
        peer: DeviceId,
        conn: quinn::Connection,
        dialed: bool,
        tx: mpsc::UnboundedSender<Vec<u8>>,
        queued: Arc<AtomicUsize>,
    },
    Received {
        peer: DeviceId,
        conn_id: usize,
        msg: Message,
        /// Held until the engine has handled the message: a connection has at most
        /// `MAX_QUEUED_BYTES` of messages waiting.
        _permit: tokio::sync::OwnedSemaphorePermit,
    },
    Closed {
        peer: DeviceId,
        conn_id: usize,
        reason: String,
    },
    Pair(pairing::Incoming),
    Heard(discovery::Heard),
    PartnerJoined {
        joined: pairing::Joined,
        label: String,
        mine: u128,
        reply: oneshot::Sender<Response>,
    },
    Joined(pairing::Joined, oneshot::Sender<Response>),
    SyncDeadline(u64),
    Shutdown,
}

struct Conn {
    conn: quinn::Connection,
    dialed: bool,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes handed to the writer and not yet written.
    queued: Arc<AtomicUsize>,
    since: Instant,
}

/// Two connections to one device within this window are a race of simultaneous dials, settled
/// by device id; a connection arriving later means the device lost the old one (it restarted,
/// say), so the new one replaces it rather than waiting for the old one to time out.
const DIAL_RACE: Duration = Duration::from_secs(2);

struct SyncWaiter {
    pending: BTreeSet<DeviceId>,
    done: BTreeSet<DeviceId>,
    reply: oneshot::Sender<Response>,
}

/// A handle on a running daemon.
pub struct Handle {
    /// Where it listens.
    pub local_addr: SocketAddr,
    /// Its device id.
    pub device: DeviceId,
    events: mpsc::UnboundedSender<Event>,
    engine: Option<std::thread::JoinHandle<()>>,
    endpoint: quinn::Endpoint,
}

impl Handle {
    /// Sends a control request, as the `failup` command does over the socket.
    pub async fn call(&self, request: Request) -> Response {
        let (tx, rx) = oneshot::channel();
        if self
            .events
            .send(Event::Control(Box::new(request), tx))
            .is_err()
        {
            return Response::Error("the daemon has stopped".into());
        }
        rx.await
            .unwrap_or(Response::Error("the daemon has stopped".into()))
    }

    /// Stops the daemon and waits until its store is closed.
    pub fn shutdown(mut self) {
        let _ = self.events.send(Event::Shutdown);
        if let Some(engine) = self.engine.take() {
            let _ = engine.join();
        }
    }

    /// Stops the daemon, then gives peers a moment to hear the connections close, so they do
    /// not wait for an idle timeout to notice.
    pub async fn stop(self) {
        let endpoint = self.endpoint.clone();
        let _ = tokio::task::spawn_blocking(move || self.shutdown()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    }
}

/// Starts a daemon on the current tokio runtime. Returns once it listens and its control
/// socket accepts.
pub async fn start(config: Config) -> Result<Handle, DaemonError> {
    let io = |context: String| move |source| DaemonError::Io { context, source };
    if !config.home.is_dir() {
        std::fs::create_dir_all(&config.home)
            .map_err(io(format!("cannot create home {}", config.home.display())))?;
        restrict(&config.home, 0o700)?;
    }
    let store = Store::open(&config.home.join("journal.redb"), STORE_WAIT)?;
    let identity = Arc::new(Identity::load_or_create(&config.home.join("device.key"))?);
    let trust = Arc::new(TrustState::default());
    let endpoint = failup_net::endpoint(
        &identity,
        trust.clone(),
        config.listen,
        &[ALPN_SYNC, ALPN_PAIR],
    )?;
    let local_addr = endpoint
        .local_addr()
        .map_err(io("cannot read the listen address".into()))?;
    let socket_path = config.home.join(control::SOCKET_FILE);
    // The store's lock proves no other daemon runs on this home, so a socket file left here is
    // stale.
    let _ = std::fs::remove_file(&socket_path);
    let listener = bind_private(&socket_path)?;

    let (events, rx) = mpsc::unbounded_channel();
    let device = identity.device();
    let mut state = State {
        store,
        deferred: None,
        engine: Engine::new(),
        identity,
        endpoint: endpoint.clone(),
        trust,
        events: events.clone(),
        runtime: tokio::runtime::Handle::current(),
        conns: HashMap::new(),
        conn_ids: HashMap::new(),
        seen: HashMap::new(),
        synced: HashMap::new(),
        invites: Vec::new(),
        circle: None,
        bootstrap: BTreeMap::new(),
        dialers: HashMap::new(),
        waiters: HashMap::new(),
        next_waiter: 0,
        listen: local_addr,
        name: config.name.clone(),
        socket_path,
        sent: (0, 0),
        revoked: BTreeSet::new(),
        live: false,
        discovered: HashMap::new(),
        discovery: None,
        network: config.network,
        access: sharing::Access::default(),
        partner_addrs: BTreeMap::new(),
    };
    state.load_circle();
    state.refresh_trust();
    // Edits made while no daemon ran reach the shared copies now.
    state.reproject();
    state.live = true;
    if config.mdns && config.network {
        match discovery::Discovery::start(device, local_addr, events.clone()) {
            Ok(d) => state.discovery = Some(d),
            // Devices still find each other through invites, the circle and known addresses.
            Err(e) => tracing::warn!("local network discovery (mDNS) is off: {e}"),
        }
    }

    if config.network {
        tokio::spawn(accept_loop(
            endpoint.clone(),
            events.clone(),
            state.trust.clone(),
        ));
    }
    tokio::spawn(control_loop(listener, events.clone()));
    let engine = std::thread::Builder::new()
        .name("failup-engine".into())
        .spawn(move || state.run(rx))
        .map_err(io("cannot start the engine thread".into()))?;
    tracing::info!(%local_addr, device = %device, "daemon started");
    Ok(Handle {
        local_addr,
        device,
        events,
        engine: Some(engine),
        endpoint,
    })
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> Result<(), DaemonError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        DaemonError::Io {
            context: format!("cannot restrict {}", path.display()),
            source,
        }
    })
}

/// Binds the control socket where only the owner can reach it from its first instant: bound
/// inside a fresh owner-only directory, made owner-only, then moved into place.
fn bind_private(socket_path: &Path) -> Result<tokio::net::UnixListener, DaemonError> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |context: String| move |source| DaemonError::Io { context, source };
    let parent = socket_path.parent().unwrap_or(Path::new("."));
    let staging = parent.join(format!(".control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(io(format!("cannot create {}", staging.display())))?;
    let staged = staging.join("control.sock");
    let listener = tokio::net::UnixListener::bind(&staged).map_err(io(format!(
        "cannot create control socket {}",
        socket_path.display()
    )))?;
    restrict(&staged, 0o600)?;
    std::fs::rename(&staged, socket_path).map_err(io(format!(
        "cannot create control socket {}",
        socket_path.display()
    )))?;
    let _ = std::fs::remove_dir(&staging);
    Ok(listener)
}

/// Serves the control socket: one request, one answer, as many as a client sends.
async fn control_loop(listener: tokio::net::UnixListener, events: mpsc::UnboundedSender<Event>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let events = events.clone();
        tokio::spawn(async move {
            loop {
                let mut header = [0u8; 4];
                if stream.read_exact(&mut header).await.is_err() {
                    return;
                }
                let len = u32::from_be_bytes(header);
                if len > control::MAX_CONTROL_FRAME {
                    return;
                }
                let mut buf = vec![0u8; len as usize];
                if stream.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let response = match postcard::from_bytes::<Request>(&buf) {
                    Ok(request) => {
                        let (tx, rx) = oneshot::channel();
                        if events.send(Event::Control(Box::new(request), tx)).is_err() {
                            return;
                        }
                        rx.await
                            .unwrap_or(Response::Error("the daemon is stopping".into()))
                    }
                    Err(e) => Response::Error(format!("malformed control request: {e}")),
                };
                let Ok(bytes) = postcard::to_allocvec(&response) else {
                    return;
                };
                let len = (bytes.len() as u32).to_be_bytes();
                if stream.write_all(&len).await.is_err() || stream.write_all(&bytes).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

/// Accepts connections: sync from trusted devices, pairing from anyone holding an open invite.
async fn accept_loop(
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
async fn run_connection(
    conn: quinn::Connection,
    peer: DeviceId,
    dialed: bool,
    events: mpsc::UnboundedSender<Event>,
) {
    let streams = if dialed {
        conn.open_bi().await
    } else {
        conn.accept_bi().await
    };
    let Ok((mut send, mut recv)) = streams else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let queued = Arc::new(AtomicUsize::new(0));
    let conn_id = conn.stable_id();
    if events
        .send(Event::Connected {
            peer,
            conn: conn.clone(),
            dialed,
            tx,
            queued: queued.clone(),
        })
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let written = send.write_all(&frame).await;
            queued.fetch_sub(frame.len(), Ordering::SeqCst);
            if written.is_err() {
                break;
            }
        }
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
                            let _ = events.send(Event::Received {
                                peer,
                                conn_id,
                                msg,
                                _permit: permit,
                            });
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
    let _ = events.send(Event::Closed {
        peer,
        conn_id,
        reason,
    });
}

/// The engine thread's state: the only owner of the store and the engine.
struct State {
    /// Which documents partners' devices may sync and write.
    access: sharing::Access,
    /// Addresses of partners' devices, from pairing and from their side of each space.
    partner_addrs: BTreeMap<DeviceId, Vec<SocketAddr>>,
    /// Addresses trusted devices announced on the local network, dialed first.
    discovered: HashMap<DeviceId, Vec<SocketAddr>>,
    /// The mDNS announcement and browse, when on.
    discovery: Option<discovery::Discovery>,
    /// Whether peers are dialed (see [`Config::network`]).
    network: bool,
    store: Store,
    /// Engine effects held back while a group of received messages is not yet durable.
    deferred: Option<Vec<Effect>>,
    engine: Engine,
    identity: Arc<Identity>,
    endpoint: quinn::Endpoint,
    trust: Arc<TrustState>,
    events: mpsc::UnboundedSender<Event>,
    runtime: tokio::runtime::Handle,
    conns: HashMap<DeviceId, Conn>,
    conn_ids: HashMap<DeviceId, usize>,
    seen: HashMap<DeviceId, Timestamp>,
    synced: HashMap<DeviceId, Timestamp>,
    invites: Vec<pairing::Invite>,
    circle: Option<u128>,
    bootstrap: BTreeMap<DeviceId, (String, Vec<SocketAddr>)>,
    dialers: HashMap<DeviceId, Dialer>,
    waiters: HashMap<u64, SyncWaiter>,
    next_waiter: u64,
    listen: SocketAddr,
    name: String,
    socket_path: PathBuf,
    /// Sync frames and bytes sent since start, for `failup status` and the benchmarks.
    sent: (u64, u64),
    /// Every device this device has ever seen revoked. Kept locally and only ever grown, so
    /// nothing merged into the circle later can bring a revoked device back.
    revoked: BTreeSet<DeviceId>,
    /// False while starting: devices known at start-up are dialed at once, since the other side
    /// may be a peer that restarted and is waiting for us.
    live: bool,
}

/// The store as the engine sees it: every document may be synced with every device of the
/// circle; a partner's device sees only its space (see `sharing`).
struct StoreDocs<'a>(&'a mut Store, &'a sharing::Access);

fn doc_error(e: StoreError) -> DocError {
    DocError(e.to_string())
}

impl Documents for StoreDocs<'_> {
    fn saved(&mut self, doc: DocId) -> Result<Option<Vec<u8>>, DocError> {
        self.0.saved_document(doc.as_u128()).map_err(doc_error)
    }

    fn receive_whole(&mut self, doc: DocId, data: &[u8]) -> Result<bool, DocError> {
        self.0.receive_whole(doc.as_u128(), data).map_err(doc_error)
    }

    fn inventory(&mut self, peer: DeviceId) -> Vec<InventoryItem> {
        self.0
            .inventory()
            .unwrap_or_default()
            .into_iter()
            .filter(|(doc, _)| self.1.may_sync(peer, *doc))
            .map(|(doc, heads)| InventoryItem {
                doc: DocId::from_u128(doc),
                heads: failup_wire::heads_digest(&heads),
            })
            .collect()
    }

    fn may_sync(&mut self, peer: DeviceId, doc: DocId) -> bool {
        self.1.may_sync(peer, doc.as_u128())
    }

    fn may_write(&mut self, peer: DeviceId, doc: DocId) -> bool {
        self.1.may_write(peer, doc.as_u128())
    }

    fn holds(&mut self, doc: DocId) -> bool {
        self.0.holds(doc.as_u128()).unwrap_or(false)
    }

    fn generate(
        &mut self,
        doc: DocId,
        state: &mut automerge::sync::State,
    ) -> Result<Option<automerge::sync::Message>, DocError> {
        self.0
            .sync_generate(doc.as_u128(), state)
            .map_err(doc_error)
    }

    fn receive(
        &mut self,
        doc: DocId,
        state: &mut automerge::sync::State,
        msg: automerge::sync::Message,
    ) -> Result<bool, DocError> {
        self.0
            .sync_receive(doc.as_u128(), state, msg)
            .map_err(doc_error)
    }
}

impl State {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        let mut next = None;
        while let Some(event) = next.take().or_else(|| rx.blocking_recv()) {
            if matches!(event, Event::Shutdown) {
                break;
            }
            if matches!(event, Event::Received { .. }) && !rx.is_empty() {
                next = self.received_group(event, &mut rx);
            } else {
                self.handle(event);
            }
        }
        self.endpoint.close(0u32.into(), b"shutdown");
        let _ = std::fs::remove_file(&self.socket_path);
        tracing::info!("daemon stopped");
    }

    fn engine(&mut self, input: Input) {
        let effects = self
            .engine
            .handle(&mut StoreDocs(&mut self.store, &self.access), input);
        match &mut self.deferred {
            Some(later) => later.extend(effects),
            None => self.apply(effects),
        }
    }

    /// Handles peer messages that are already queued as one group of store commits with a
    /// single fsync (a first sync brings hundreds of documents back to back), and returns the
    /// first other event met. Nothing the group did is sent or reported before the group is
    /// durable: the effects wait for [`Store::end_group`].
    fn received_group(
        &mut self,
        first: Event,
        rx: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Option<Event> {
        let mut batch = vec![first];
        let mut next = None;
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(event @ Event::Received { .. }) => batch.push(event),
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        // Reading a whole document (parsing it, reading its entries for the index) costs more
        // than committing it, so a helper thread reads every second one ahead while this
        // thread reads the others and commits in order.
        let whole = |e: &Event| match e {
            Event::Received {
                msg: Message::Doc { doc, data },
                ..
            } => Some((doc.as_u128(), data.clone())),
            _ => None,
        };
        let ahead: Vec<(u128, Vec<u8>)> =
            batch.iter().filter_map(whole).skip(1).step_by(2).collect();
        self.store.begin_group();
        self.deferred = Some(Vec::new());
        std::thread::scope(|scope| {
            let (tx, prepared) = std::sync::mpsc::channel();
            if !ahead.is_empty() {
                scope.spawn(move || {
                    for (doc, data) in ahead {
                        if tx.send(Store::prepare_whole(doc, data)).is_err() {
                            break;
                        }
                    }
                });
            } else {
                drop(tx);
            }
            let mut docs = 0usize;
            for event in batch {
                if whole(&event).is_some() {
                    if docs % 2 == 1 {
                        if let Ok(p) = prepared.recv() {
                            self.store.stash_prepared(p);
                        }
                    }
                    docs += 1;
                }
                self.handle(event);
            }
        });
        let effects = self.deferred.take().unwrap_or_default();
        match self.store.end_group() {
            Ok(()) => self.apply(effects),
            Err(e) => {
                // The peers were about to hear of changes that are not on disk: drop those
                // connections, so the next ones start from what this device really holds.
                tracing::error!("could not make received changes durable: {e}");
                let peers: Vec<DeviceId> = self.conns.keys().copied().collect();
                for peer in peers {
                    self.apply(vec![Effect::Close(peer, "store error".into())]);
                }
            }
        }
        next
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send(peer, msg) => {
                    let Some(c) = self.conns.get(&peer) else {
                        continue;
                    };
                    let frame = msg.to_frame();
                    let waiting = c.queued.fetch_add(frame.len(), Ordering::SeqCst);
                    if waiting + frame.len() > MAX_UNWRITTEN_BYTES {
                        tracing::warn!(peer = %peer.short(), "closing connection: the peer does not read what it asked for");
                        if let Some(c) = self.conns.remove(&peer) {
                            c.conn.close(1u32.into(), b"not reading");
                        }
                        self.conn_ids.remove(&peer);
                        self.engine(Input::Disconnected(peer));
                        continue;
                    }
                    self.sent.0 += 1;
                    self.sent.1 += frame.len() as u64;
                    let _ = c.tx.send(frame);
                }
                Effect::Close(peer, reason) => {
                    tracing::warn!(peer = %peer.short(), "closing connection: {reason}");
                    if let Some(c) = self.conns.remove(&peer) {
                        c.conn.close(1u32.into(), reason.as_bytes());
                    }
                }
                Effect::DocFailed(peer, doc, reason) => {
                    tracing::warn!(peer = %peer.short(), %doc, "document left out of this connection: {reason}");
                }
                Effect::InSync(peer) => {
                    self.synced.insert(peer, Timestamp::now());
                    self.sync_progress(peer);
                }
                Effect::Changed(doc) => {
                    let partners = self.partners();
                    if Some(doc.as_u128()) == self.circle {
                        self.refresh_trust();
                    } else if partners.iter().any(|p| p.theirs == doc.as_u128()) {
                        // A partner's list of devices may have changed.
                        self.refresh_trust();
                    } else if partners.iter().any(|p| p.mine == doc.as_u128()) {
                    } else if !partners.is_empty() && !self.is_circle_doc(doc.as_u128()) {
                        // A journal bucket from another device of this person.
                        self.reproject();
                    } else if self.circle.is_none() && self.is_circle_doc(doc.as_u128()) {
                        // The circle this device joined arrived.
                        self.circle = Some(doc.as_u128());
                        let _ = self
                            .store
                            .set_setting("circle", &doc.as_u128().to_be_bytes());
                        self.refresh_trust();
                    }
                }
            }
        }
    }

    fn is_circle_doc(&self, doc: u128) -> bool {
        self.pending_circle() == Some(doc)
            && self
                .store
                .document(doc)
                .ok()
                .flatten()
                .is_some_and(|d| circle::is_circle(&d))
    }

    fn pending_circle(&self) -> Option<u128> {
        setting_u128(&self.store, "joined-circle")
    }

    fn local_changes(&mut self) {
        let changed = self.store.take_changed_docs();
        if changed.is_empty() {
            return;
        }
        for doc in changed {
            self.engine(Input::LocalChange(DocId::from_u128(doc)));
        }
        self.reproject();
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Control(request, reply) => {
                self.control(*request, reply);
                self.local_changes();
            }
            Event::Connected {
                peer,
                conn,
                dialed,
                tx,
                queued,
            } => self.connected(peer, conn, dialed, tx, queued),
            Event::Received {
                peer,
                conn_id,
                msg,
                _permit: permit,
            } => {
                if self.conn_ids.get(&peer) == Some(&conn_id) {
                    self.engine(Input::Received(peer, msg));
                }
                // Only now may the connection read another message.
                drop(permit);
            }
            Event::Closed {
                peer,
                conn_id,
                reason,
            } => {
                if self.conn_ids.get(&peer) == Some(&conn_id) {
                    tracing::info!(peer = %peer.short(), "disconnected: {reason}");
                    self.conns.remove(&peer);
                    self.conn_ids.remove(&peer);
                    self.seen.insert(peer, Timestamp::now());
                    self.engine(Input::Disconnected(peer));
                    self.wake(peer);
                }
            }
            Event::Pair(incoming) => self.pair_incoming(incoming),
            Event::Heard(heard) => self.heard(heard),
            Event::PartnerJoined {
                joined,
                label,
                mine,
                reply,
            } => {
                let answer = match self.partner_joined(joined, label, mine) {
                    Ok(()) => Response::Done,
                    Err(e) => Response::Error(e),
                };
                let _ = reply.send(answer);
            }
            Event::Joined(joined, reply) => self.joined(joined, reply),
            Event::SyncDeadline(id) => {
                if let Some(w) = self.waiters.remove(&id) {
                    let _ = w.reply.send(Response::Synced {
                        in_sync: w.done.iter().map(|d| d.to_string()).collect(),
                        missing: w.pending.iter().map(|d| d.to_string()).collect(),
                    });
                }
            }
            Event::Shutdown => {}
        }
    }

    fn connected(
        &mut self,
        peer: DeviceId,
        conn: quinn::Connection,
        dialed: bool,
        tx: mpsc::UnboundedSender<Vec<u8>>,
        queued: Arc<AtomicUsize>,
    ) {
        if !self.trust.is_trusted(peer) {
            conn.close(1u32.into(), b"unknown device");
            return;
        }
        let me = self.identity.device();
        // Both sides may dial at once; both keep the connection dialed by the smaller id.
        let preferred = |dialed: bool| if dialed { me < peer } else { peer < me };
        if let Some(existing) = self.conns.get(&peer) {
            let race = existing.since.elapsed() < DIAL_RACE;
            if race && (preferred(existing.dialed) || !preferred(dialed)) {
                conn.close(0u32.into(), b"duplicate");
                return;
            }
            existing.conn.close(0u32.into(), b"replaced");
            self.engine(Input::Disconnected(peer));
        }
        let remote = conn.remote_address();
        self.conn_ids.insert(peer, conn.stable_id());
        self.conns.insert(
            peer,
            Conn {
                conn,
                dialed,
                tx,
                queued,
                since: Instant::now(),
            },
        );
        self.seen.insert(peer, Timestamp::now());
        tracing::info!(peer = %peer.short(), %remote, dialed, "connected");
        if !dialed {
            self.learn_addr(peer, remote);
        }
        if let Some(d) = self.dialers.get(&peer) {
            d.connected.store(true, Ordering::SeqCst);
        }
        self.engine(Input::Connected(peer));
        self.local_changes();
    }

    /// Records where a device connected from: with one socket for both directions, that is
    /// where it listens, and the circle passes it on to devices that have never met it.
    fn learn_addr(&mut self, peer: DeviceId, addr: SocketAddr) {
        if let Err(e) = self.edit_circle(|am| circle::add_addr(am, peer, addr)) {
            tracing::warn!("cannot record the address of {}: {e}", peer.short());
        }
    }

    /// Changes the circle document with `edit` (which says whether it changed anything) and
    /// makes the change durable; does nothing without a circle.
    fn edit_circle(
        &mut self,
        edit: impl FnOnce(&mut automerge::AutoCommit) -> Result<bool, automerge::AutomergeError>,
    ) -> Result<(), String> {
        let Some(doc) = self.circle else {
            return Ok(());
        };
        let mut am = self
            .store
            .document(doc)
            .map_err(|e| e.to_string())?
            .ok_or("the circle document is missing")?;
        let before = am.get_heads();
        if edit(&mut am).map_err(|e| e.to_string())? {
            am.commit();
            self.store
                .write_document(doc, &mut am, &before)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn load_circle(&mut self) {
        self.circle = setting_u128(&self.store, "circle");
        // A circle that arrived just before the daemon was stopped is adopted now.
        if self.circle.is_none() {
            if let Some(doc) = self.pending_circle().filter(|d| self.is_circle_doc(*d)) {
                self.circle = Some(doc);
                let _ = self.store.set_setting("circle", &doc.to_be_bytes());
            }
        }
        self.revoked = revoked_setting(&self.store)
            .into_iter()
            .map(DeviceId)
            .collect();
        if let Ok(Some(bytes)) = self.store.setting("bootstrap") {
            if let Ok(list) = postcard::from_bytes::<Vec<([u8; 32], String, Vec<String>)>>(&bytes) {
                for (d, name, addrs) in list {
                    let addrs = addrs.iter().filter_map(|a| a.parse().ok()).collect();
                    self.bootstrap.insert(DeviceId(d), (name, addrs));
                }
            }
        }
    }

    fn members(&self) -> Vec<circle::Member> {
        self.circle
            .and_then(|doc| self.store.document(doc).ok().flatten())
            .map(|d| circle::members(&d))
            .unwrap_or_default()
    }

    pub(crate) fn is_revoked(&self, device: DeviceId) -> bool {
        self.revoked.contains(&device)
    }

    /// Recomputes which devices are trusted from the circle, dials new ones, drops revoked ones.
    fn refresh_trust(&mut self) {
        // Sides of spaces are never journal buckets, whatever a partner writes into them.
        let partners = self.partners();
        let sides: Vec<u128> = partners.iter().flat_map(|p| [p.mine, p.theirs]).collect();
        if let Err(e) = self.store.set_foreign(sides) {
            tracing::error!("cannot keep shared spaces out of the journal index: {e}");
        }
        let me = self.identity.device();
        let members = self.members();
        let before = self.revoked.len();
        self.revoked
            .extend(members.iter().filter(|m| m.revoked).map(|m| m.device));
        if self.revoked.len() != before {
            let list: Vec<[u8; 32]> = self.revoked.iter().map(|d| d.0).collect();
            if let Ok(bytes) = postcard::to_allocvec(&list) {
                let _ = self.store.set_setting("revoked", &bytes);
            }
        }
        // Once the circle is here, it alone says who belongs.
        if self.circle.is_some() && !self.bootstrap.is_empty() {
            let in_circle: BTreeSet<DeviceId> = members.iter().map(|m| m.device).collect();
            self.bootstrap.retain(|d, _| !in_circle.contains(d));
        }
        let revoked = self.revoked.clone();
        // The local list counts too: a circle whose revocation key someone deleted later still
        // does not bring the device back here.
        let mut trusted: BTreeSet<DeviceId> = members
            .iter()
            .filter(|m| !m.revoked && !self.revoked.contains(&m.device))
            .map(|m| m.device)
            .collect();
        trusted.extend(self.bootstrap.keys().filter(|d| !revoked.contains(d)));
        let sharing::PartnerDevices {
            access: partner_access,
            addrs: partner_addrs,
            revoked: partners_revoked,
        } = self.partner_devices(&members, &partners);
        if !partners_revoked.is_subset(&self.revoked) {
            self.revoked.extend(partners_revoked);
            let list: Vec<[u8; 32]> = self.revoked.iter().map(|d| d.0).collect();
            if let Ok(bytes) = postcard::to_allocvec(&list) {
                let _ = self.store.set_setting("revoked", &bytes);
            }
        }
        let partner_access: HashMap<DeviceId, Vec<(u128, u128)>> = partner_access
            .into_iter()
            .filter(|(d, _)| !self.revoked.contains(d) && !trusted.contains(d))
            .collect();
        trusted.extend(partner_access.keys().copied());
        self.access = sharing::Access {
            partner: partner_access,
            circle: self.circle.or(self.pending_circle()),
        };
        self.partner_addrs = partner_addrs;
        trusted.remove(&me);
        if let Ok(mut t) = self.trust.trusted.write() {
            *t = trusted.clone();
        }
        for gone in self
            .conns
            .keys()
            .copied()
            .filter(|d| !trusted.contains(d))
            .collect::<Vec<_>>()
        {
            tracing::warn!(peer = %gone.short(), "revoked: disconnecting");
            if let Some(c) = self.conns.remove(&gone) {
                c.conn.close(1u32.into(), b"revoked");
            }
            self.conn_ids.remove(&gone);
            self.engine(Input::Disconnected(gone));
        }
        // Dialers of devices no longer trusted wake, see it, and end.
        for (device, d) in self.dialers.iter() {
            if !trusted.contains(device) {
                d.connected.store(false, Ordering::SeqCst);
                d.wake.notify_one();
            }
        }
        self.dialers.retain(|device, _| trusted.contains(device));
        for device in trusted {
            match self.dialers.get(&device) {
                Some(d) => {
                    if let Ok(mut a) = d.addrs.write() {
                        *a = self.addrs_of(device);
                    }
                    // The circle changed, so the other side may have just come to trust this
                    // device: a dialer backing off after a refusal tries again now.
                    if !self.conns.contains_key(&device) {
                        d.wake.notify_one();
                    }
                }
                None if self.network => self.spawn_dialer(device),
                None => {}
            }
        }
        // Partners' devices trust a device of this person's once this side lists it.
        self.vouch(&members, &partners);
    }

    fn addrs_of(&self, device: DeviceId) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self
            .members()
            .into_iter()
            .find(|m| m.device == device)
            .map(|m| m.addrs)
            .unwrap_or_default();
        if let Some((_, extra)) = self.bootstrap.get(&device) {
            addrs.extend(extra.iter().copied());
        }
        if let Some(extra) = self.partner_addrs.get(&device) {
            addrs.extend(extra.iter().copied());
        }
        addrs.sort();
        addrs.dedup();
        // What the device announces now beats what it was once seen at.
        if let Some(heard) = self.discovered.get(&device) {
            addrs.retain(|a| !heard.contains(a));
            addrs.splice(0..0, heard.iter().copied());
        }
        addrs
    }

    /// A device announced itself on the local network: if it is trusted, its announced
    /// addresses are dialed first from now on, at once if it is not connected.
    fn heard(&mut self, heard: discovery::Heard) {
        if !self.trust.is_trusted(heard.device) || heard.addrs.is_empty() {
            return;
        }
        if self.discovered.get(&heard.device) == Some(&heard.addrs) {
            return;
        }
        tracing::info!(peer = %heard.device.short(), addrs = ?heard.addrs, "heard on the local network");
        self.discovered.insert(heard.device, heard.addrs);
        if let Some(d) = self.dialers.get(&heard.device) {
            if let Ok(mut a) = d.addrs.write() {
                *a = self.addrs_of(heard.device);
            }
        }
        if !self.conns.contains_key(&heard.device) {
            self.wake(heard.device);
        }
    }

    fn wake(&self, device: DeviceId) {
        if let Some(d) = self.dialers.get(&device) {
            d.connected
                .store(self.conns.contains_key(&device), Ordering::SeqCst);
            d.wake.notify_one();
        }
    }

    /// One long-lived task per trusted device: dial while not connected, back off on failure,
    /// and sleep without polling while connected or until woken.
    fn spawn_dialer(&mut self, device: DeviceId) {
        let dialer = Dialer {
            wake: Arc::new(Notify::new()),
            addrs: Arc::new(RwLock::new(self.addrs_of(device))),
            connected: Arc::new(AtomicBool::new(self.conns.contains_key(&device))),
        };
        let (wake, addrs, connected) = (
            dialer.wake.clone(),
            dialer.addrs.clone(),
            dialer.connected.clone(),
        );
        self.dialers.insert(device, dialer);
        let (events, endpoint, identity, trust) = (
            self.events.clone(),
            self.endpoint.clone(),
            self.identity.clone(),
            self.trust.clone(),
        );
        // The connection dialed by the smaller id wins a race, so the larger id gives the other
        // side a head start: two devices that learn of each other at once (a pairing, an
        // introduction) then open one connection, not two that each carry every document.
        let head_start = if self.live && identity.device() > device {
            DIAL_HEAD_START
        } else {
            Duration::ZERO
        };
        self.runtime.spawn(async move {
            let mut backoff = Duration::from_millis(250);
            tokio::select! {
                _ = tokio::time::sleep(head_start) => {}
                _ = wake.notified() => {}
            }
            loop {
                if !trust.is_trusted(device) {
                    return;
                }
                if connected.load(Ordering::SeqCst) {
                    wake.notified().await;
                    continue;
                }
                let targets = addrs.read().map(|a| a.clone()).unwrap_or_default();
                // Every known address at once: a stale one (the device moved, or restarted on
                // another port) would otherwise hold up the good ones for a whole timeout.
                let mut attempts = tokio::task::JoinSet::new();
                for addr in targets {
                    let (endpoint, identity) = (endpoint.clone(), identity.clone());
                    attempts.spawn(async move {
                        tokio::time::timeout(
                            CONNECT_TIMEOUT,
                            failup_net::connect(&endpoint, &identity, device, addr, ALPN_SYNC),
                        )
                        .await
                    });
                }
                let mut conn = None;
                while let Some(attempt) = attempts.join_next().await {
                    if let Ok(Ok(Ok(c))) = attempt {
                        conn = Some(c);
                        break;
                    }
                }
                attempts.abort_all();
                let mut short_lived = false;
                if let Some(c) = conn {
                    let began = Instant::now();
                    run_connection(c, device, true, events.clone()).await;
                    // A connection that lived a while proves the device healthy; one closed at
                    // once (refused, a duplicate, an error) must not turn into a redial storm,
                    // so its backoff is slept in full, whatever wakes the dialer meanwhile.
                    if began.elapsed() > STABLE_CONNECTION {
                        backoff = Duration::from_millis(250);
                    } else {
                        short_lived = true;
                    }
                }
                if short_lived {
                    tokio::time::sleep(backoff).await;
                } else {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = wake.notified() => {}
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }
}

/// What the engine thread keeps about a device's dialing task.
struct Dialer {
    wake: Arc<Notify>,
    addrs: Arc<RwLock<Vec<SocketAddr>>>,
    connected: Arc<AtomicBool>,
}
