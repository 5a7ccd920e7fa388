//! The daemon: the IO shell around a node and the sync engine. It owns the store (through the
//! node) while it runs, answers the `failup` command over the control socket, accepts and dials
//! QUIC connections to the devices of this person's circle, and carries out what the node and
//! the engine decide.
//!
//! Shape: async tasks move bytes (the control socket in `control`, each connection's stream in
//! `connection`, dialing in `dialer`, pairing in `pairing`) and send [`Event`]s to one engine
//! thread (`engine`), which alone touches the node and the engine. Store writes are synchronous
//! and fsync'd, so they never block the async runtime, and a change received from a peer is
//! durable before the engine answers.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod connection;
pub mod control;
mod dialer;
mod discovery;
mod engine;
pub mod frame;
pub mod pairing;
mod portmap;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use control::{Request, Response};
use failup_home::{Ensured, Home};
use failup_net::{Identity, Trust};
pub use failup_node::circle;
use failup_node::{ErrorKind, Failure, Node};
use failup_store::{Store, StoreError};
use failup_wire::{ALPN_PAIR, ALPN_SYNC, DeviceId};
use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

/// Default UDP port the daemon listens on.
pub const DEFAULT_PORT: u16 = 7676;
/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the daemon waits for its store at start-up.
pub const STORE_WAIT: Duration = Duration::from_secs(5);

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
    /// Whether to ask the home router to forward the QUIC port (UPnP IGD, NAT-PMP, PCP).
    pub portmap: bool,
    /// A relay of the person's own to reach devices through when nothing else works.
    pub relay: Option<failup_relay::RelayCode>,
    /// Whether to introduce partners' devices connected here to this person's own, so the two
    /// can meet directly across their routers.
    pub introduce_partners: bool,
    /// Where to serve the web interface (a loopback address), if at all.
    pub ui: Option<SocketAddr>,
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node could not start on the store.
    #[error(transparent)]
    Node(#[from] failup_node::NodeError),
    /// The transport could not be set up.
    #[error(transparent)]
    Net(#[from] failup_net::NetError),
    /// The home could not be made ready.
    #[error(transparent)]
    Home(#[from] failup_home::HomeError),
    /// A file or socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The devices that may complete a handshake: the node's trusted devices, and anyone while an
/// invite is open. Shared with the TLS verifier, which runs on the runtime's threads.
#[derive(Debug, Default)]
struct TrustState {
    trusted: RwLock<BTreeSet<DeviceId>>,
    /// Devices revoked here: refused with TLS's `certificate_revoked`, so they learn it.
    revoked: RwLock<BTreeSet<DeviceId>>,
    open_invite_until: RwLock<Option<Timestamp>>,
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
                .is_some_and(|until| Timestamp::now() < until)
    }

    fn revoked(&self, device: DeviceId) -> bool {
        self.revoked
            .read()
            .map(|r| r.contains(&device))
            .unwrap_or(false)
    }
}

/// Things that happen, sent to the engine thread.
enum Event {
    Control(Box<Request>, oneshot::Sender<Response>),
    Connected(connection::Opened),
    Received(connection::Received),
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
        mine: failup_wire::DocId,
        reply: oneshot::Sender<Response>,
    },
    Joined {
        joined: pairing::Joined,
        name: Option<String>,
        reply: oneshot::Sender<Response>,
    },
    SyncDeadline(u64),
    /// Time to introduce the device on this connection to the others connected here (one of
    /// `node::reach::INTRODUCTION_ROUNDS`).
    Introduce {
        peer: DeviceId,
        conn_id: Option<usize>,
    },
    /// The timer for the connection policy's next due dial went off.
    Tick(std::time::Instant),
    /// A dial reached none of the device's addresses.
    DialFailed(DeviceId),
    /// A dialed device refused this one as revoked, after a verified handshake.
    RefusedAsRevoked(DeviceId),
    /// The router forwards this public address to the QUIC port now, or nothing any more.
    Mapped(Option<SocketAddr>),
    /// The link to the person's relay came up: devices not connected may be reachable now.
    RelayLinked,
    /// The relay (its id and address) says it sees this device's link come from `addr`.
    SeenByRelay {
        relay: DeviceId,
        relay_addr: SocketAddr,
        addr: SocketAddr,
    },
    /// Time for a device connected through the relay to be told again where to meet this one
    /// directly (the connection, by id, being still the one up).
    MeetDirectly {
        peer: DeviceId,
        conn_id: Option<usize>,
    },
    Shutdown,
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
    portmap: Option<portmap::PortMap>,
    /// Where the web interface listens, when it is served.
    pub ui: Option<SocketAddr>,
    ui_task: Option<tokio::task::JoinHandle<()>>,
}

/// The web interface's way to the node: the same events the control socket sends.
struct WebBackend {
    events: mpsc::UnboundedSender<Event>,
    changed: tokio::sync::watch::Receiver<u64>,
}

impl failup_web::Backend for WebBackend {
    fn call(
        &self,
        request: Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
        let events = self.events.clone();
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            if events.send(Event::Control(Box::new(request), tx)).is_err() {
                return control::stopping();
            }
            rx.await.unwrap_or_else(|_| control::stopping())
        })
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.clone()
    }
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
            return Response::Error(Failure::new(ErrorKind::Internal, "the daemon has stopped"));
        }
        rx.await.unwrap_or_else(|_| control::stopping())
    }

    /// Stops the daemon and waits until its store is closed.
    pub fn shutdown(mut self) {
        if let Some(ui) = self.ui_task.take() {
            ui.abort();
        }
        // Either the engine hears it, or it has stopped already: both end in the join below.
        let _ = self.events.send(Event::Shutdown);
        if let Some(engine) = self.engine.take() {
            if engine.join().is_err() {
                tracing::error!("the engine thread panicked while stopping");
            }
        }
    }

    /// Stops the daemon, then gives peers a moment to hear the connections close, so they do
    /// not wait for an idle timeout to notice.
    pub async fn stop(mut self) {
        if let Some(map) = self.portmap.take() {
            map.release().await;
        }
        let endpoint = self.endpoint.clone();
        if tokio::task::spawn_blocking(move || self.shutdown())
            .await
            .is_err()
        {
            tracing::error!("could not wait for the engine thread");
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    }
}

/// Addresses to put in an invite and a new circle: the listen address, or when listening on
/// every interface, each interface's address (IPv4, then IPv6 on `[::]`, loopback last).
fn advertised(listen: SocketAddr) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let mut addrs: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.is_loopback() && takes(listen, i.ip()))
        .map(|i| SocketAddr::new(i.ip(), listen.port()))
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs.truncate(circle::MAX_ADDRS - 1);
    // On `[::]` too: the socket is dual-stack, and every device has IPv4's loopback.
    addrs.push(SocketAddr::from((
        std::net::Ipv4Addr::LOCALHOST,
        listen.port(),
    )));
    addrs
}

/// Whether a socket listening on every address of `listen`'s family takes peers dialing `ip`:
/// `0.0.0.0` IPv4 alone, `[::]` both (it is dual-stack, see `failup_net::endpoint`). An IPv6
/// link-local address is left out: dialing it needs the interface, which an address in the
/// circle cannot carry.
fn takes(listen: SocketAddr, ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(_) => true,
        std::net::IpAddr::V6(_) => listen.is_ipv6() && !discovery::is_v6_link_local(ip),
    }
}

/// Starts a daemon on the current tokio runtime. Returns once it listens and its control
/// socket accepts.
pub async fn start(config: Config) -> Result<Handle, DaemonError> {
    let io = |context: String| move |source| DaemonError::Io { context, source };
    let home = Home::new(&config.home);
    if home.ensure()? == Ensured::Tightened {
        tracing::warn!(
            "{} was readable by others; it is now the owner's alone",
            config.home.display()
        );
    }
    let store = Store::open(&home.store(), STORE_WAIT)?;
    let identity = Arc::new(Identity::load_or_create(&home.key())?);
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
    let device = identity.device();
    let mut node = Node::open(
        store,
        failup_node::Config {
            signer: Arc::new(identity.signer()?),
            name: config.name.clone(),
            advertise: advertised(local_addr),
            networked: true,
        },
    )?;
    node.start(Timestamp::now())?;
    let socket_path = home.socket();
    // The store's lock proves no other daemon runs on this home, so a socket file left here is
    // stale; a missing one is the usual case.
    let _ = std::fs::remove_file(&socket_path);
    let listener = bind_private(&socket_path)?;

    let (events, rx) = mpsc::unbounded_channel();
    let discovery = if config.mdns {
        match discovery::Discovery::start(device, local_addr, events.clone()) {
            Ok(d) => Some(d),
            // Devices still find each other through invites, the circle and known addresses.
            Err(e) => {
                tracing::warn!("local network discovery (mDNS) is off: {e}");
                None
            }
        }
    } else {
        None
    };
    let relay = match &config.relay {
        Some(code) => {
            let (socket, ends) = failup_relay::device::socket(trust.clone());
            let relayed =
                failup_net::endpoint_on(&identity, trust.clone(), socket.clone(), &[ALPN_SYNC])?;
            tokio::spawn(failup_relay::device::keep_linked(
                endpoint.clone(),
                identity.clone(),
                code.clone(),
                ends,
            ));
            tokio::spawn(connection::accept_loop(
                relayed.clone(),
                events.clone(),
                trust.clone(),
            ));
            let mut up = socket.watch_up();
            let tell = events.clone();
            tokio::spawn(async move {
                while up.changed().await.is_ok() {
                    if *up.borrow_and_update() && tell.send(Event::RelayLinked).is_err() {
                        break;
                    }
                }
            });
            let mut seen = socket.watch_seen();
            let (tell, relay, relay_addr) = (events.clone(), code.relay, code.addr);
            tokio::spawn(async move {
                while seen.changed().await.is_ok() {
                    let Some(addr) = *seen.borrow_and_update() else {
                        continue;
                    };
                    let event = Event::SeenByRelay {
                        relay,
                        relay_addr,
                        addr,
                    };
                    if tell.send(event).is_err() {
                        break;
                    }
                }
            });
            Some(engine::Relay {
                endpoint: relayed,
                socket,
                addr: code.addr,
            })
        }
        None => None,
    };
    // A web interface that cannot listen (its port taken, say) leaves the daemon syncing: the
    // log says why, and `failup ui` says it is not served.
    let web = match config.ui {
        Some(addr) => match failup_web::Server::bind(addr).await {
            Ok(server) => Some(server),
            Err(e) => {
                tracing::warn!("the web interface is off: {e}");
                None
            }
        },
        None => None,
    };
    let (changed, changes) = tokio::sync::watch::channel(0u64);
    let mut state = engine::State::new(engine::Parts {
        node,
        identity,
        endpoint: endpoint.clone(),
        trust: trust.clone(),
        events: events.clone(),
        runtime: tokio::runtime::Handle::current(),
        listen: local_addr,
        socket_path,
        discovery,
        relay,
        introduce_partners: config.introduce_partners,
        ui: web.as_ref().map(|w| w.gate()),
        changed,
    });
    state.begin();
    tokio::spawn(connection::accept_loop(
        endpoint.clone(),
        events.clone(),
        trust,
    ));
    tokio::spawn(control::serve(listener, events.clone()));
    let ui = web.as_ref().map(|w| w.gate().addr());
    let ui_task = web.map(|server| {
        let backend = Arc::new(WebBackend {
            events: events.clone(),
            changed: changes,
        });
        tokio::spawn(server.serve(backend, std::future::pending()))
    });
    if let Some(addr) = ui {
        tracing::info!(%addr, "web interface at http://{addr}/ (open it with `failup ui`)");
    }
    let engine = std::thread::Builder::new()
        .name("failup-engine".into())
        .spawn(move || state.run(rx))
        .map_err(io("cannot start the engine thread".into()))?;
    tracing::info!(%local_addr, device = %device, "daemon started");
    let portmap = if config.portmap {
        portmap::PortMap::start(local_addr, events.clone())
    } else {
        None
    };
    Ok(Handle {
        local_addr,
        device,
        events,
        engine: Some(engine),
        endpoint,
        portmap,
        ui,
        ui_task,
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
    failup_home::restrict(&staged, failup_home::PRIVATE_MODE)?;
    std::fs::rename(&staged, socket_path).map_err(io(format!(
        "cannot create control socket {}",
        socket_path.display()
    )))?;
    let _ = std::fs::remove_dir(&staging);
    Ok(listener)
}
