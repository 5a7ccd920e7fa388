//! `failup relay`: a relay of the person's own (crates/relay), run in the foreground. Its home
//! holds only the relay's key and its access token.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use failup_relay::server::{self, Limits, Stats};
use failup_relay::{RelayCode, TOKEN_BYTES};

use crate::Ctx;
use crate::args::LogFormat;

/// The relay's key, in its home.
const RELAY_KEY: &str = "relay.key";
/// The relay's access token, in its home.
const RELAY_TOKEN: &str = "relay.token";

/// The token kept in `home`, made on the first run.
fn token(home: &std::path::Path) -> Result<[u8; TOKEN_BYTES]> {
    let path = home.join(RELAY_TOKEN);
    match std::fs::read_to_string(&path) {
        Ok(text) => data_encoding::BASE32_NOPAD
            .decode(text.trim().as_bytes())
            .ok()
            .and_then(|t| <[u8; TOKEN_BYTES]>::try_from(t).ok())
            .with_context(|| {
                format!(
                    "{} is damaged; delete it to make a new token (every device then needs the new code)",
                    path.display()
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token: [u8; TOKEN_BYTES] = rand::random();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(failup_home::PRIVATE_MODE)
                .open(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(f, "{}", data_encoding::BASE32_NOPAD.encode(&token))
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Where devices reach a relay listening on `listen`.
fn public_addr(listen: SocketAddr, public: Option<&str>) -> Result<SocketAddr> {
    if let Some(p) = public {
        return p
            .trim()
            .parse()
            .with_context(|| format!("--public {p:?} is not IP:port"));
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    if_addrs::get_if_addrs()
        .ok()
        .into_iter()
        .flatten()
        .find(|i| !i.is_loopback() && i.ip().is_ipv4() == listen.is_ipv4())
        .map(|i| SocketAddr::new(i.ip(), listen.port()))
        .context(
            "no address other than loopback to put in the relay's code; give one with --public",
        )
}

/// `failup relay`: serves until SIGINT or SIGTERM.
pub fn run(
    ctx: &Ctx,
    listen: &str,
    public: Option<&str>,
    max_devices: usize,
    log_format: LogFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let listen: SocketAddr = listen
        .trim()
        .parse()
        .with_context(|| format!("--listen {listen:?} is not IP:port (e.g. 0.0.0.0:7677)"))?;
    if max_devices == 0 {
        bail!("--max-devices must be at least 1");
    }
    crate::ensure_home(&ctx.home)?;
    crate::network::init_logging(log_format)?;
    let identity = failup_net::Identity::load_or_create(&ctx.home.join(RELAY_KEY))?;
    let token = token(&ctx.home)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let endpoint = server::endpoint(&identity, listen)?;
        let bound = endpoint
            .local_addr()
            .context("cannot read the listen address")?;
        let public = public_addr(bound, public)?;
        let code = RelayCode {
            relay: identity.device(),
            token,
            addr: public,
        };
        writeln!(out, "failup relay listening on {bound}")?;
        writeln!(
            out,
            "{}{code}\nthen restart its daemon",
            failup_relay::CODE_LINE
        )?;
        out.flush()?;
        tracing::info!(%bound, %public, max_devices, "relay started");
        let limits = Limits {
            max_devices,
            ..Limits::default()
        };
        let stats = Arc::new(Stats::default());
        let serving = tokio::spawn(server::serve(endpoint.clone(), token, limits, stats));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch for SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        endpoint.close(0u32.into(), b"relay stopping");
        serving.abort();
        tracing::info!("relay stopped");
        Ok::<_, anyhow::Error>(())
    })
}
