//! Asking the home router to forward the QUIC port (UPnP IGD, NAT-PMP or PCP, through the
//! `portmapper` crate, which probes, prefers PCP, renews at half the lifetime and releases).
//! The public address the router grants reaches the engine as [`Event::Mapped`]; the node
//! publishes it for the other devices and partners to dial.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::Event;

/// How long stopping waits for the router to confirm the mapping is removed.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// A port mapping being held; released by [`PortMap::release`].
pub(crate) struct PortMap {
    client: portmapper::Client,
}

impl PortMap {
    /// Starts asking for a mapping of `local`'s port, unless `local` takes no IPv4 from
    /// other machines (a loopback address, or one IPv6 address): the mappings routers grant
    /// are IPv4. `[::]` takes IPv4 too (it is dual-stack).
    pub(crate) fn start(local: SocketAddr, events: mpsc::UnboundedSender<Event>) -> Option<Self> {
        let takes_ipv4 = local.is_ipv4() || local.ip() == std::net::Ipv6Addr::UNSPECIFIED;
        if local.ip().is_loopback() || !takes_ipv4 {
            return None;
        }
        let port = NonZeroU16::new(local.port())?;
        let client = portmapper::Client::new(portmapper::Config::default());
        let mut watch = client.watch_external_address();
        client.update_local_port(port);
        tokio::spawn(async move {
            loop {
                let mapped = (*watch.borrow_and_update()).map(SocketAddr::V4);
                if events.send(Event::Mapped(mapped)).is_err() || watch.changed().await.is_err() {
                    break;
                }
            }
        });
        Some(PortMap { client })
    }

    /// Asks the router to remove the mapping and waits (at most [`RELEASE_WAIT`]) until it
    /// has: the service handles requests in order, so its answer to a probe sent after the
    /// release comes once the release is done.
    pub(crate) async fn release(self) {
        self.client.deactivate();
        let _ = tokio::time::timeout(RELEASE_WAIT, self.client.probe()).await;
    }
}
