//! Discovery on the local network: each daemon announces itself over mDNS (DNS-SD service
//! `_failup._udp.local.`, the device id in a TXT record) and listens for the announcements of
//! others. What is heard is only a hint: an announced address is dialed only for a device
//! already trusted, and the TLS handshake still proves who answers.
//!
//! The announcement names this device's id to everyone on the network, as Syncthing's local
//! discovery does: the id is derived from a public key and grants nothing, but it lets an
//! observer tell that a failup device is present (docs/security.md).

use std::net::{IpAddr, SocketAddr};

use failup_wire::DeviceId;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;

/// The DNS-SD service type failup announces.
pub const SERVICE_TYPE: &str = "_failup._udp.local.";

/// The TXT key that carries the announcing device's id.
const ID_KEY: &str = "id";

/// A device heard on the local network, with the addresses it announced.
#[derive(Debug)]
pub(crate) struct Heard {
    pub(crate) device: DeviceId,
    pub(crate) addrs: Vec<SocketAddr>,
}

/// A running announcement and browse; both stop when it is dropped.
pub(crate) struct Discovery {
    daemon: ServiceDaemon,
}

impl Discovery {
    /// Announces `device` listening at `listen` and reports every other device heard as an
    /// event. Bound to loopback, it stays on loopback; bound to one address, on that
    /// address's interface; bound to all, on every interface.
    pub(crate) fn start(
        device: DeviceId,
        listen: SocketAddr,
        events: mpsc::UnboundedSender<crate::Event>,
    ) -> Result<Discovery, mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        let ip = listen.ip();
        if ip.is_loopback() {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(match ip {
                IpAddr::V4(_) => IfKind::LoopbackV4,
                IpAddr::V6(_) => IfKind::LoopbackV6,
            })?;
        } else if !ip.is_unspecified() {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(IfKind::Addr(ip))?;
        }
        // A DNS label holds at most 63 bytes: the id without its dashes fits (52).
        let name: String = device.to_string().chars().filter(|c| *c != '-').collect();
        let host = format!("{}.local.", name.to_ascii_lowercase());
        let info = if ip.is_unspecified() {
            ServiceInfo::new(
                SERVICE_TYPE,
                &name,
                &host,
                "",
                listen.port(),
                &[(ID_KEY, device.to_string().as_str())][..],
            )?
            .enable_addr_auto()
        } else {
            ServiceInfo::new(
                SERVICE_TYPE,
                &name,
                &host,
                ip,
                listen.port(),
                &[(ID_KEY, device.to_string().as_str())][..],
            )?
        };
        daemon.register(info)?;
        let browse = daemon.browse(SERVICE_TYPE)?;
        tokio::spawn(async move {
            while let Ok(event) = browse.recv_async().await {
                let ServiceEvent::ServiceResolved(service) = event else {
                    continue;
                };
                let Some(Ok(other)) = service
                    .get_property_val_str(ID_KEY)
                    .map(str::parse::<DeviceId>)
                else {
                    continue;
                };
                if other == device {
                    continue;
                }
                // An IPv6 link-local address needs its interface to be dialed, which a
                // socket address taken from here no longer carries: the others do.
                let addrs = service
                    .get_addresses()
                    .iter()
                    .map(|a| a.to_ip_addr())
                    .filter(|ip| !is_v6_link_local(*ip))
                    .map(|ip| SocketAddr::new(ip, service.get_port()))
                    .collect();
                if events
                    .send(crate::Event::Heard(Heard {
                        device: other,
                        addrs,
                    }))
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Discovery { daemon })
    }
}

/// fe80::/10.
pub(crate) fn is_v6_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

impl Drop for Discovery {
    fn drop(&mut self) {
        // Says goodbye on the network, so peers forget this address at once.
        let _ = self.daemon.shutdown();
    }
}
