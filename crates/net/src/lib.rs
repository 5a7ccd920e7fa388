//! failup's transport: each device's key pair and self-signed certificate, and QUIC endpoints
//! whose TLS 1.3 handshakes accept a peer only by the device id its key hashes to.
//!
//! There are no certificate authorities. A device id is the SHA-256 of a certificate's
//! SubjectPublicKeyInfo; a connecting side knows which id it expects and refuses any other; an
//! accepting side asks its [`Trust`] whether the id may complete a handshake at all, so an
//! unknown device is refused before a single protocol byte is read.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use failup_wire::DeviceId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// How often an idle connection sends a keep-alive, so NATs and the peer keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How long a connection may be silent before it is considered lost.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Streams a peer may open on one connection; the protocol needs one.
pub const MAX_STREAMS: u32 = 4;

/// Everything that can go wrong setting up the transport.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The key file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file does not hold a usable key.
    #[error("device key {path} is unusable: {reason}")]
    BadKey {
        /// The key file.
        path: String,
        /// Why.
        reason: String,
    },
    /// TLS or QUIC configuration failed.
    #[error("transport setup failed: {0}")]
    Setup(String),
    /// The peer's TLS refused this device's key (or this side refused the peer's).
    #[error("{addr} refused the handshake: {reason}")]
    Refused {
        /// The address tried.
        addr: SocketAddr,
        /// What TLS said.
        reason: String,
    },
    /// Connecting to a peer failed.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// This device's key pair and certificate.
pub struct Identity {
    device: DeviceId,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?})", self.device)
    }
}

impl Identity {
    /// Loads the device key from `path`, or creates it (Ed25519, owner-only) if missing.
    pub fn load_or_create(path: &Path) -> Result<Identity, NetError> {
        let key = match std::fs::read_to_string(path) {
            Ok(pem) => rcgen::KeyPair::from_pem(&pem).map_err(|e| NetError::BadKey {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
                    .map_err(|e| NetError::Setup(e.to_string()))?;
                if !write_private(path, key.serialize_pem().as_bytes())? {
                    // Another process created the key first: that one is this device's key.
                    return Identity::load_or_create(path);
                }
                key
            }
            Err(source) => {
                return Err(NetError::Io {
                    context: format!("cannot read device key {}", path.display()),
                    source,
                });
            }
        };
        Identity::from_key(key)
    }

    fn from_key(key: rcgen::KeyPair) -> Result<Identity, NetError> {
        let params = rcgen::CertificateParams::new(vec!["failup".to_owned()])
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let cert = cert.der().clone();
        let device = device_of(&cert).map_err(|e| NetError::Setup(e.to_string()))?;
        Ok(Identity {
            device,
            cert,
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// A fresh identity that lives in memory only, for tests and examples.
    pub fn ephemeral() -> Result<Identity, NetError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| NetError::Setup(e.to_string()))?;
        Identity::from_key(key)
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The same key as a signer of seals: one key is both the TLS identity and the author of
    /// this device's changes, so the device a connection authenticates is the device a seal
    /// names.
    pub fn signer(&self) -> Result<failup_auth::Signer, NetError> {
        let signer = failup_auth::Signer::from_pkcs8(self.key.secret_pkcs8_der())
            .map_err(|e| NetError::Setup(e.to_string()))?;
        if signer.device() != self.device {
            return Err(NetError::Setup(
                "the device key signs as another device than its certificate says".into(),
            ));
        }
        Ok(signer)
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone()]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// Writes an owner-only file that appears whole or not at all: written under a temporary name,
/// then linked into place, which fails if another process got there first (returns `false`).
#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<bool, NetError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| NetError::Io {
        context: format!("cannot write device key {}", path.display()),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(e)),
    }
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<bool, NetError> {
    std::fs::write(path, bytes).map_err(|source| NetError::Io {
        context: format!("cannot write device key {}", path.display()),
        source,
    })?;
    Ok(true)
}

/// The device id a certificate's key hashes to.
pub fn device_of(cert: &CertificateDer<'_>) -> Result<DeviceId, rustls::Error> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    Ok(DeviceId::from_public_key(
        parsed.subject_public_key_info().as_ref(),
    ))
}

/// The device at the other end of an established connection.
pub fn peer_device(conn: &quinn::Connection) -> Option<DeviceId> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    device_of(certs.first()?).ok()
}

/// Which unknown devices the accepting side lets complete a handshake.
pub trait Trust: Send + Sync + fmt::Debug {
    /// Whether a device presenting this key may finish the TLS handshake.
    fn admits(&self, device: DeviceId) -> bool;
    /// Whether a device not admitted was revoked: it is then refused with TLS's
    /// `certificate_revoked` alert, so its person learns the door is closed for good
    /// ([`refused_as_revoked`]) instead of retrying forever.
    fn revoked(&self, _device: DeviceId) -> bool {
        false
    }
}

/// TLS's `certificate_revoked` alert (RFC 8446, 6.2), carried as QUIC crypto error 0x12c.
const ALERT_CERTIFICATE_REVOKED: u8 = 44;

/// Whether the device at the other end of `conn`, a connection this device dialed and whose
/// server it verified, closed it because this device's key is revoked there. Only a close
/// after the handshake counts: before it, a CONNECTION_CLOSE could be forged by anyone on the
/// path, but afterwards it is protected by keys only the verified server holds.
pub fn refused_as_revoked(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ConnectionClosed(c))
            if c.error_code == quinn::TransportErrorCode::crypto(ALERT_CERTIFICATE_REVOKED)
    )
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

fn unknown_device() -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
}

/// The accepting side's check of a client certificate: the key must belong to a device the
/// [`Trust`] admits; the handshake signature proves the client holds that key.
#[derive(Debug)]
struct AdmittedClients {
    trust: Arc<dyn Trust>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AdmittedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let device = device_of(end_entity)?;
        if self.trust.admits(device) {
            Ok(ClientCertVerified::assertion())
        } else if self.trust.revoked(device) {
            // Told before the client's signature is checked: whoever shows this (public)
            // certificate learns that it was revoked here, and nothing else.
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ))
        } else {
            Err(unknown_device())
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The connecting side's check of the server: its device id must start with `expected` (all
/// 32 bytes for a known device; an invite code's shorter prefix while pairing).
#[derive(Debug)]
struct ExpectedServer {
    expected: Vec<u8>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ExpectedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.expected.is_empty() && device_of(end_entity)?.0.starts_with(&self.expected) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(unknown_device())
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        t.max_idle_timeout(Some(idle));
    }
    t.max_concurrent_bidi_streams(MAX_STREAMS.into());
    t.max_concurrent_uni_streams(0u32.into());
    Arc::new(t)
}

/// A QUIC endpoint bound to `listen` that accepts the ALPNs given from devices `trust` admits.
///
/// On `[::]` the endpoint is dual-stack whatever the system's default: it takes IPv4 too, and
/// sees an IPv4 peer at an IPv4-mapped address (`::ffff:a.b.c.d`, see [`failup_wire::canonical`]). Where
/// the system has no IPv6 at all, it listens on `0.0.0.0` at the same port instead.
pub fn endpoint(
    identity: &Identity,
    trust: Arc<dyn Trust>,
    listen: SocketAddr,
    alpns: &[&[u8]],
) -> Result<quinn::Endpoint, NetError> {
    let socket = bind(listen).map_err(|e| NetError::Io {
        context: format!("cannot listen on {listen}"),
        source: e,
    })?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server_config(identity, trust, alpns)?),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| NetError::Io {
        context: format!("cannot listen on {listen}"),
        source: e,
    })
}

fn bind(listen: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    if listen.ip() != std::net::Ipv6Addr::UNSPECIFIED {
        return std::net::UdpSocket::bind(listen);
    }
    // No IPv6 on this system (a kernel without it, or disabled): IPv4 alone still works. A
    // port in use is not that, and stays an error.
    let v4_only = |e: std::io::Error| {
        tracing::warn!("no IPv6 here ({e}); listening on IPv4 only");
        std::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], listen.port())))
    };
    let socket = match Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)) {
        Ok(s) => s,
        Err(e) => return v4_only(e),
    };
    socket.set_only_v6(false)?;
    match socket.bind(&listen.into()) {
        Ok(()) => Ok(socket.into()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => v4_only(e),
        Err(e) => Err(e),
    }
}

/// An endpoint like [`endpoint`]'s, on a socket of the caller's (a relay's paths instead of
/// UDP): the same keys, verifiers and transport settings.
pub fn endpoint_on(
    identity: &Identity,
    trust: Arc<dyn Trust>,
    socket: Arc<dyn quinn::AsyncUdpSocket>,
    alpns: &[&[u8]],
) -> Result<quinn::Endpoint, NetError> {
    quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::default(),
        Some(server_config(identity, trust, alpns)?),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| NetError::Io {
        context: "cannot start an endpoint on the relay".into(),
        source: e,
    })
}

fn server_config(
    identity: &Identity,
    trust: Arc<dyn Trust>,
    alpns: &[&[u8]],
) -> Result<quinn::ServerConfig, NetError> {
    let setup = |e: &dyn fmt::Display| NetError::Setup(e.to_string());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setup(&e))?
        .with_client_cert_verifier(Arc::new(AdmittedClients {
            trust,
            algs: algorithms(),
        }))
        .with_single_cert(identity.chain(), identity.key())
        .map_err(|e| setup(&e))?;
    tls.alpn_protocols = alpns.iter().map(|a| a.to_vec()).collect();
    // A resumed handshake restores the client's certificate without asking the verifier, so a
    // device that was admitted once (during an invite, or before its revocation) could come
    // back unchecked: no session cache, no tickets.
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(tls).map_err(|e| setup(&e))?,
    ));
    server.transport_config(transport());
    Ok(server)
}

/// Connects to the device `expected` at `addr`, speaking `alpn`; any other key is refused.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    identity: &Identity,
    expected: DeviceId,
    addr: SocketAddr,
    alpn: &[u8],
) -> Result<quinn::Connection, NetError> {
    connect_to_prefix(endpoint, identity, &expected.0, addr, alpn).await
}

/// Connects to the device at `addr` whose id starts with `prefix` (an invite code's), speaking
/// `alpn`; any other key is refused, and so is an empty prefix. [`peer_device`] then names the
/// device in full.
pub async fn connect_to_prefix(
    endpoint: &quinn::Endpoint,
    identity: &Identity,
    prefix: &[u8],
    addr: SocketAddr,
    alpn: &[u8],
) -> Result<quinn::Connection, NetError> {
    let fail = |reason: String| NetError::Connect { addr, reason };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| fail(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ExpectedServer {
            expected: prefix.to_vec(),
            algs: algorithms(),
        }))
        .with_client_auth_cert(identity.chain(), identity.key())
        .map_err(|e| fail(e.to_string()))?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls.resumption = rustls::client::Resumption::disabled();
    let mut config = quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls).map_err(|e| fail(e.to_string()))?,
    ));
    config.transport_config(transport());
    endpoint
        .connect_with(config, addr, "failup")
        .map_err(|e| fail(e.to_string()))?
        .await
        .map_err(|e| {
            // TLS alerts travel as QUIC crypto errors (0x100 to 0x1ff), whichever side sent
            // them.
            let crypto =
                |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
            match &e {
                quinn::ConnectionError::ConnectionClosed(c) if crypto(c.error_code) => {
                    NetError::Refused {
                        addr,
                        reason: e.to_string(),
                    }
                }
                quinn::ConnectionError::TransportError(t) if crypto(t.code) => NetError::Refused {
                    addr,
                    reason: e.to_string(),
                },
                _ => fail(e.to_string()),
            }
        })
}

/// The ALPN a connection negotiated.
pub fn alpn_of(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

#[cfg(test)]
mod tests;
