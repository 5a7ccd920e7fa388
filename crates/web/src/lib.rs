//! failup's web interface: the journal's pages, served over HTTP on a loopback address to the
//! person's own browser, the way Syncthing serves its GUI.
//!
//! Shape: [`Server::bind`] takes a loopback address and gives a [`Gate`], which mints the
//! one-time links `failup ui` opens; [`Server::serve`] answers requests by handing the node's
//! own [`Request`]s to a [`Backend`] (the daemon's engine), so a page validates and acts exactly
//! as the command line does. This crate holds no journal state of its own.
//!
//! What every request passes before a page sees it is in [`guard`]: the Host header, the session
//! cookie, and for a change the Origin header and the form's CSRF token. What every answer
//! carries (a Content-Security-Policy with no inline script, `no-store`) is added there too.

pub mod guard;
mod pages;
mod settings;
mod view;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

pub use failup_node::request::{Request, Response};
pub use guard::Gate;
use tokio::sync::watch;

/// The default address of the web interface.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7677";

/// What the web interface asks of the node it shows.
pub trait Backend: Send + Sync + 'static {
    /// Carries out one request, as the control socket does for the command line.
    fn call(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send>>;
    /// A counter that moves whenever a document changed (here or by sync), so open pages can
    /// refresh themselves.
    fn changes(&self) -> watch::Receiver<u64>;
}

/// Why the web interface could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address is not a loopback one: other machines could reach the journal.
    #[error(
        "the web interface listens on loopback only (127.0.0.1 or [::1]), not {0}: other \
         machines must not reach your journal"
    )]
    NotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr} for the web interface: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A bound web interface, not yet serving.
pub struct Server {
    listener: tokio::net::TcpListener,
    gate: Arc<Gate>,
}

impl Server {
    /// Binds `listen`, which must be a loopback address (port 0 picks a free one).
    pub async fn bind(listen: SocketAddr) -> Result<Server, WebError> {
        if !listen.ip().is_loopback() {
            return Err(WebError::NotLoopback(listen));
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| WebError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| WebError::Bind {
            addr: listen,
            source,
        })?;
        Ok(Server {
            listener,
            gate: Arc::new(Gate::new(addr)),
        })
    }

    /// The gate: where the interface listens, and its one-time links.
    pub fn gate(&self) -> Arc<Gate> {
        self.gate.clone()
    }

    /// Serves until the process ends or `stop` fires.
    pub async fn serve(
        self,
        backend: Arc<dyn Backend>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) {
        let app = pages::router(pages::App {
            backend,
            gate: self.gate.clone(),
            summary: Default::default(),
        });
        let app = guard::wrap(app, self.gate);
        if let Err(e) = axum::serve(self.listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!("the web interface stopped: {e}");
        }
    }
}
