//! The commands about devices: running the daemon, this device's id, pairing, peers, sync and
//! status. Pairing, sync and status need the running daemon; `peers` works without one, on the
//! node opened here.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use failup_daemon::control::{Client, PeerInfo, Request, Response};
use failup_journal::text::shown;

use crate::Ctx;
use crate::args::{LogFormat, PairCommand, PeersCommand};
use crate::journal::Journal;

pub use failup_home::KEY_FILE;

pub(crate) fn client(ctx: &Ctx, what: &str) -> Result<Client> {
    crate::ensure_home(&ctx.home)?;
    match Client::connect(&ctx.home) {
        Some(c) => Ok(c),
        None => bail!("{what} needs a running daemon: start `failup daemon` first"),
    }
}

pub(crate) fn ask(c: &mut Client, request: Request, timeout: Option<Duration>) -> Result<Response> {
    match c.call(&request, timeout).context("talking to the daemon")? {
        Response::Error(f) => Err(crate::journal::failure(f)),
        r => Ok(r),
    }
}

/// This machine's host name, the default device name.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "failup device".to_owned())
}

use failup_home::PID_FILE;

/// What `failup daemon` runs with, each setting already resolved from its flag, the
/// environment, the config file or its default.
pub struct DaemonSettings {
    /// Where to listen.
    pub listen: String,
    /// This device's name.
    pub name: String,
    /// Whether to use mDNS.
    pub mdns: bool,
    /// Whether to ask the router for a port mapping.
    pub portmap: bool,
    /// The person's relay, if set.
    pub relay: Option<failup_relay::RelayCode>,
    /// Whether to introduce partners' devices to this person's own.
    pub introduce_partners: bool,
    /// How log lines look.
    pub log_format: LogFormat,
    /// Where to serve the web interface.
    pub ui: SocketAddr,
    /// Once started, open the web interface in a browser (`failup ui` with no daemon running).
    pub open_ui: Option<bool>,
}

/// `failup daemon`: runs until SIGINT or SIGTERM, then closes the store cleanly. Settings are
/// read once, at start: nothing is reloaded while it runs, so a restart applies a change.
pub fn daemon(home: &Path, settings: DaemonSettings) -> Result<()> {
    crate::ensure_home(home)?;
    let l = &settings.listen;
    let listen: SocketAddr = l
        .parse()
        .with_context(|| format!("{l:?} is not an address (use host:port, e.g. [::]:7676)"))?;
    init_logging(settings.log_format)?;
    let pid_file = home.join(PID_FILE);
    if let Some(mut c) = Client::connect(home) {
        if let Ok(Response::Status(_)) = c.call(&Request::Status, Some(Duration::from_secs(5))) {
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .map(|p| format!(" (pid {})", p.trim()))
                .unwrap_or_default();
            bail!(
                "a failup daemon already runs on {}{pid}; stop it first",
                home.display()
            );
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (ui, open_ui) = (settings.ui, settings.open_ui);
    let (name, mdns, portmap, relay, introduce_partners) = (
        settings.name,
        settings.mdns,
        settings.portmap,
        settings.relay,
        settings.introduce_partners,
    );
    runtime.block_on(async {
        let config = failup_daemon::Config {
            home: home.to_owned(),
            listen,
            name: name.clone(),
            mdns,
            portmap,
            relay,
            introduce_partners,
            ui: Some(ui),
        };
        let handle = failup_daemon::start(config).await?;
        tracing::info!(
            addr = %handle.local_addr,
            device = %handle.device,
            name = %name,
            mdns,
            "failup daemon {name:?} listening on {} as {}",
            handle.local_addr,
            handle.device
        );
        // Only to name the running daemon to a second one started by mistake: without it the
        // second one is still refused, just without the pid.
        if let Err(e) = std::fs::write(&pid_file, std::process::id().to_string()) {
            tracing::warn!("cannot write {}: {e}", pid_file.display());
        }
        if let Some(browser) = open_ui {
            match handle.call(Request::UiLink).await {
                Response::UiLink(link) => show_link(home, &link, browser),
                Response::Error(f) => tracing::warn!("{}", f.message),
                _ => {}
            }
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch for SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        handle.stop().await;
        if let Err(e) = std::fs::remove_file(&pid_file) {
            tracing::warn!("cannot remove {}: {e}", pid_file.display());
        }
        tracing::info!("failup daemon stopped");
        Ok::<_, anyhow::Error>(())
    })
}

/// Log lines on standard error, as `format` says, at the levels RUST_LOG names (default info).
pub(crate) fn init_logging(format: LogFormat) -> Result<()> {
    // Automerge instruments its loaders with info-level spans whose fields are the whole change
    // graph, formatted with Debug on every load (a third of a first sync's time went there):
    // they stay off unless RUST_LOG names automerge itself.
    let mut filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    if !filter.contains("automerge") {
        filter.push_str(",automerge=warn");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|e| anyhow::anyhow!("RUST_LOG={filter:?} is not a log filter: {e}"))?;
    // Colour codes only on a terminal: a service's log file or journal must stay plain text.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => subscriber.try_init(),
        LogFormat::Json => subscriber.json().flatten_event(true).try_init(),
    };
    Ok(())
}

/// `failup daemon`, its settings resolved from flags, the environment and the config.
pub(crate) fn daemon_command(
    ctx: &Ctx,
    listen: Option<String>,
    no_mdns: bool,
    name: Option<String>,
    log_format: LogFormat,
    open_ui: Option<bool>,
) -> Result<()> {
    let settings = DaemonSettings {
        listen: match listen {
            Some(l) => crate::config::check("listen", &l).context("--listen")?,
            None => ctx.config.value("listen")?,
        },
        name: match name {
            Some(n) => crate::config::check("name", &n).context("--name")?,
            None => ctx.config.value("name")?,
        },
        mdns: !no_mdns && ctx.config.flag("mdns")?,
        portmap: ctx.config.flag("portmap")?,
        relay: match ctx.config.value("relay")?.trim() {
            "" => None,
            code => Some(code.parse().map_err(|e| anyhow::anyhow!("relay: {e}"))?),
        },
        introduce_partners: ctx.config.flag("introduce-partners")?,
        log_format,
        ui: ui_listen(ctx)?,
        open_ui,
    };
    daemon(&ctx.home, settings)
}

/// `failup id`.
pub fn id(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    crate::ensure_home(&ctx.home)?;
    let identity = failup_net::Identity::load_or_create(&ctx.home.join(KEY_FILE))?;
    let listen = match Client::connect(&ctx.home) {
        Some(mut c) => match c.call(&Request::Status, Some(Duration::from_secs(5)))? {
            Response::Status(s) => s.listen,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    if ctx.json {
        crate::print_json(
            out,
            &serde_json::json!({"device": identity.device().to_string(), "listen": listen}),
            crate::JsonLayout::Line,
        )?;
        return Ok(());
    }
    writeln!(out, "{}", identity.device())?;
    for addr in &listen {
        writeln!(out, "{addr}")?;
    }
    if listen.is_empty() {
        eprintln!("the daemon is not running, so this device listens nowhere");
    }
    Ok(())
}

/// `failup pair invite|join`.
pub fn pair(ctx: &Ctx, cmd: PairCommand, out: &mut dyn Write) -> Result<()> {
    let mut c = client(ctx, "pairing")?;
    match cmd {
        PairCommand::Invite { ttl, qr } => {
            let ttl = crate::dates::invite_ttl(&ttl)?;
            match ask(
                &mut c,
                Request::Invite {
                    ttl_secs: ttl.as_secs(),
                },
                None,
            )? {
                Response::Invite(code) => {
                    writeln!(out, "{code}")?;
                    if qr {
                        eprint!("{}", crate::render::qr(&code)?);
                    }
                    eprintln!(
                        "on your other device, run: failup pair join CODE (valid for {}, once)",
                        crate::dates::spoken(ttl)
                    );
                }
                r => bail!("the daemon answered unexpectedly: {r:?}"),
            }
        }
        PairCommand::Join { code, name } => {
            // Held to the rules of the `name` setting: the name is shown in every listing.
            let name = name
                .map(|n| crate::config::check("name", &n).context("--name"))
                .transpose()?;
            ask(&mut c, Request::Join { code, name }, None)?;
            eprintln!("paired: the devices now trust each other and will sync");
        }
    }
    Ok(())
}

/// How a connected device is reached, with the address the connection runs to.
pub(crate) fn how_connected(p: &PeerInfo) -> String {
    match (&p.via, p.path.as_deref()) {
        (Some(via), Some("local")) => format!("connected on this network ({via})"),
        (Some(via), Some("mapped")) => {
            format!("connected through a router's forwarded port ({via})")
        }
        (Some(via), Some("punched")) if p.role == "partner" => {
            format!(
                "connected across the internet, met through a device that introduced you ({via})"
            )
        }
        (Some(via), Some("punched")) => {
            format!(
                "connected across the internet, met through another of your devices or your relay ({via})"
            )
        }
        (Some(via), Some("internet")) => format!("connected across the internet ({via})"),
        (Some(via), Some("relayed")) => format!("connected through your relay ({via})"),
        _ => "connected".to_owned(),
    }
}

/// One device as `failup peers` lists it; its name and addresses come from the circle, which
/// other devices write, so the whole line is escaped ([`shown`]).
fn peer_line(p: &PeerInfo, when: impl Fn(&str) -> String) -> String {
    let state = if p.revoked && p.undone > 0 {
        format!(
            "revoked, {} change{} it made after its revocation undone",
            p.undone,
            if p.undone == 1 { "" } else { "s" }
        )
    } else if p.revoked && p.recovered {
        "revoked with the recovery key".to_owned()
    } else if p.revoked {
        "revoked".to_owned()
    } else if p.role == "self" {
        "this device".to_owned()
    } else if p.connected {
        how_connected(p)
    } else {
        match &p.last_seen {
            Some(t) => format!("last seen {}", when(t)),
            None => "not seen since the daemon started".to_owned(),
        }
    };
    let synced = p
        .last_sync
        .as_deref()
        .map(|t| format!(", synced {}", when(t)))
        .unwrap_or_default();
    let line = format!(
        "{}  {}  {}  {}  [{}]{synced}",
        if p.name.is_empty() {
            "(unnamed)"
        } else {
            &p.name
        },
        p.device,
        p.role,
        state,
        p.addrs.join(" ")
    );
    shown(&line).into_owned()
}

/// `failup peers [addr|remove]`: through the daemon, or with none running, the node opened
/// here (which knows the circle but not who is connected).
pub fn peers(ctx: &Ctx, action: Option<PeersCommand>, out: &mut dyn Write) -> Result<()> {
    let mut journal = ctx.open()?;
    let running = matches!(journal, Journal::Daemon(_));
    let wait = Some(Duration::from_secs(10));
    match action {
        None => match journal.call_within(Request::Peers, ctx.now, wait)? {
            Response::Peers(list) => print_peers(ctx, &list, out)?,
            r => bail!("the daemon answered unexpectedly: {r:?}"),
        },
        Some(PeersCommand::Addr { id, addr }) => {
            // A host name is looked up here (the node decides, it does no lookups): the
            // address kept is what it names now.
            let addr = match addr.parse::<std::net::SocketAddr>() {
                Ok(a) => a.to_string(),
                Err(_) => {
                    use std::net::ToSocketAddrs;
                    let found = addr
                        .to_socket_addrs()
                        .with_context(|| {
                            format!("{addr:?} is not host:port, or the host name does not resolve")
                        })?
                        .next()
                        .with_context(|| format!("{addr:?} resolves to no address"))?;
                    eprintln!("{addr} is {found}");
                    found.to_string()
                }
            };
            let request = Request::PeerAddr { device: id, addr };
            done(journal.call_within(request, ctx.now, wait)?)?;
            eprintln!("address remembered");
        }
        Some(PeersCommand::Remove {
            id,
            recovery: true,
            restore,
        }) => {
            let code = read_recovery_key()?;
            let request = Request::PeerRemove {
                device: id,
                recovery: Some(code),
                restore,
            };
            done(journal.call_within(request, ctx.now, wait)?)?;
            eprintln!(
                "revoked with the recovery key: nothing the device does can undo it, and its \
                 revocations of this device (and of any device given with --restore) no longer \
                 count; the other devices learn of it at the next sync"
            );
        }
        Some(PeersCommand::RecoveryKey) => {
            match journal.call_within(Request::RecoveryKey, ctx.now, wait)? {
                Response::Recovery(code) => {
                    writeln!(out, "{code}")?;
                    eprintln!(
                        "this is your circle's recovery key, shown this once and kept nowhere: write \
                     it down and keep it away from your devices. If a device is lost or stolen, \
                     even this one, `failup peers remove ID --recovery` on any other device shuts \
                     it out for good with it"
                    );
                }
                r => bail!("the daemon answered unexpectedly: {r:?}"),
            }
        }
        Some(PeersCommand::Remove { id, .. }) => {
            let request = Request::PeerRemove {
                device: id,
                recovery: None,
                restore: Vec::new(),
            };
            done(journal.call_within(request, ctx.now, wait)?)?;
            if running {
                eprintln!("revoked: the device is disconnected and will be refused from now on");
            } else {
                eprintln!(
                    "revoked: the device will be refused from now on; the other devices learn of it at the next sync"
                );
            }
        }
    }
    Ok(())
}

/// The recovery key from standard input: one line, asked for on a terminal.
fn read_recovery_key() -> Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("recovery key: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the recovery key from standard input")?;
    if line.trim().is_empty() {
        bail!("no recovery key given: type it, or pipe it in on standard input");
    }
    Ok(line.trim().to_owned())
}

/// What this person calls each device known here, by id: their own devices by name, a
/// partner's by the partner's label. Empty if the daemon does not answer.
fn device_names(ctx: &Ctx) -> std::collections::HashMap<String, String> {
    let mut names = std::collections::HashMap::new();
    let Some(mut c) = Client::connect(&ctx.home) else {
        return names;
    };
    let wait = Some(Duration::from_secs(5));
    if let Ok(Response::Peers(list)) = c.call(&Request::Peers, wait) {
        names.extend(list.into_iter().map(|p| (p.device, p.name)));
    }
    if let Ok(Response::Partners(list)) = c.call(&Request::Partners, wait) {
        for p in list {
            for d in p.devices {
                names.insert(d.device, format!("{} (partner)", p.label));
            }
        }
    }
    names
}

/// How each connected device is reached, by id, with what this person calls it (as in
/// [`device_names`]); empty where the daemon does not answer.
fn connections(c: &mut Client) -> std::collections::HashMap<String, (String, String)> {
    let mut out = std::collections::HashMap::new();
    let wait = Some(Duration::from_secs(5));
    if let Ok(Response::Peers(list)) = c.call(&Request::Peers, wait) {
        for p in list.into_iter().filter(|p| p.connected) {
            let name = if p.name.is_empty() {
                "(unnamed)".to_owned()
            } else {
                p.name.clone()
            };
            out.insert(p.device.clone(), (name, how_connected(&p)));
        }
    }
    if let Ok(Response::Partners(list)) = c.call(&Request::Partners, wait) {
        for partner in list {
            for p in partner.devices.into_iter().filter(|p| p.connected) {
                let name = format!("{} (partner)", partner.label);
                out.insert(p.device.clone(), (name, how_connected(&p)));
            }
        }
    }
    out
}

/// A device as a person reads it: its name and the start of its id, escaped (names are chosen
/// by the devices).
fn named(names: &std::collections::HashMap<String, String>, device: &str) -> String {
    let short: String = device.chars().take(7).collect();
    match names.get(device).filter(|n| !n.is_empty()) {
        Some(name) => shown(&format!("{name} ({short})")).into_owned(),
        None => shown(device).into_owned(),
    }
}

/// Insists the daemon answered a change with `Done`.
pub(crate) fn done(r: Response) -> Result<()> {
    match r {
        Response::Done => Ok(()),
        r => bail!("the daemon answered unexpectedly: {r:?}"),
    }
}

/// Carries out `request` through the running daemon, or with none running, on the node opened
/// here: what it changes reaches other devices when this one next syncs.
pub fn call(ctx: &Ctx, request: Request) -> Result<Response> {
    ctx.open()?
        .call_within(request, ctx.now, Some(Duration::from_secs(30)))
}

fn print_peers(ctx: &Ctx, list: &[PeerInfo], out: &mut dyn Write) -> Result<()> {
    if ctx.json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|p| {
                serde_json::json!({
                    "device": p.device, "name": p.name, "role": p.role,
                    "addrs": p.addrs, "outside": p.outside, "connected": p.connected,
                    "via": p.via, "path": p.path,
                    "last_seen": p.last_seen, "last_sync": p.last_sync,
                    "revoked": p.revoked, "undone": p.undone, "recovered": p.recovered,
                })
            })
            .collect();
        crate::print_json(out, &v, crate::JsonLayout::Pretty)?;
    } else if list.is_empty() {
        eprintln!("no paired devices yet: run `failup pair invite` on this device");
    } else {
        for p in list {
            let relative = std::io::stdout().is_terminal();
            let when = |t: &str| {
                if relative {
                    crate::dates::ago(t, ctx.now)
                } else {
                    t.to_owned()
                }
            };
            writeln!(out, "{}", peer_line(p, when))?;
        }
        if list.iter().any(|p| p.recovery_unshown) {
            eprintln!(
                "this device holds your circle's recovery key, not yet written down: run \
                 `failup peers recovery-key` (it is shown once)"
            );
        }
    }
    Ok(())
}

/// `failup sync`: exit 0 when every device is in sync, otherwise an error naming the others.
pub fn sync(ctx: &Ctx, timeout: &str, out: &mut dyn Write) -> Result<()> {
    let timeout = crate::dates::parse_duration(timeout)?;
    let mut c = client(ctx, "sync")?;
    let request = Request::Sync {
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let wait = Some(timeout + Duration::from_secs(10));
    let answer = if std::io::stderr().is_terminal() {
        // The sync call blocks; a second connection polls the daemon's counters meanwhile.
        let bar = crate::progress::spinner();
        bar.set_message("syncing: asking each device what it lacks");
        let worker = std::thread::spawn(move || ask(&mut c, request, wait));
        let mut watch = Client::connect(&ctx.home);
        while !worker.is_finished() {
            if let Some(Ok(Response::Status(s))) = watch
                .as_mut()
                .map(|w| w.call(&Request::Status, Some(Duration::from_secs(2))))
            {
                bar.set_message(format!(
                    "syncing: {} device(s) to go, {} documents here, {} sent",
                    s.out_of_sync.len(),
                    s.documents,
                    indicatif::HumanBytes(s.bytes_sent)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bar.finish_and_clear();
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("the sync thread failed"))??
    } else {
        ask(&mut c, request, wait)?
    };
    match answer {
        Response::Synced { in_sync, missing } => {
            if ctx.json {
                crate::print_json(
                    out,
                    &serde_json::json!({"in_sync": in_sync, "missing": missing}),
                    crate::JsonLayout::Line,
                )?;
            } else {
                let names = device_names(ctx);
                for d in &in_sync {
                    writeln!(out, "in sync: {}", named(&names, d))?;
                }
            }
            if !missing.is_empty() {
                let names = device_names(ctx);
                let missing: Vec<String> = missing.iter().map(|d| named(&names, d)).collect();
                return Err(anyhow::Error::new(crate::Unreachable(format!(
                    "not in sync with {}",
                    missing.join(", ")
                ))));
            }
            if in_sync.is_empty() {
                eprintln!("no paired devices to sync with");
            }
            Ok(())
        }
        r => bail!("the daemon answered unexpectedly: {r:?}"),
    }
}

/// `failup status`.
pub fn status(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    crate::ensure_home(&ctx.home)?;
    let Some(mut c) = Client::connect(&ctx.home) else {
        if ctx.json {
            crate::print_json(
                out,
                &serde_json::json!({"running": false}),
                crate::JsonLayout::Line,
            )?;
        } else {
            writeln!(out, "daemon: not running")?;
        }
        return Ok(());
    };
    match ask(&mut c, Request::Status, Some(Duration::from_secs(10)))? {
        Response::Status(s) => {
            if ctx.json {
                crate::print_json(
                    out,
                    &serde_json::json!({
                        "running": true, "device": s.device, "listen": s.listen,
                        "connected": s.connected, "out_of_sync": s.out_of_sync,
                        "documents": s.documents, "frames_sent": s.frames_sent,
                        "bytes_sent": s.bytes_sent,
                        "observed": s.observed.iter().map(|o| serde_json::json!({
                            "addr": o.addr, "by": o.by, "last": o.last,
                        })).collect::<Vec<_>>(),
                        "mapping": s.mapping,
                        "mapped": s.mapped,
                        "relay": s.relay.as_ref().map(|r| serde_json::json!({
                            "addr": r.addr, "linked": r.linked,
                        })),
                    }),
                    crate::JsonLayout::Line,
                )?;
            } else {
                writeln!(out, "daemon: running")?;
                writeln!(out, "device: {}", shown(&s.device))?;
                writeln!(out, "listening: {}", shown(&s.listen.join(" ")))?;
                writeln!(out, "connected: {}", s.connected.len())?;
                let how = connections(&mut c);
                for d in &s.connected {
                    match how.get(d) {
                        Some((name, how)) => {
                            let short: String = d.chars().take(7).collect();
                            writeln!(out, "  {}", shown(&format!("{name} ({short}): {how}")))?;
                        }
                        None => writeln!(out, "  {}", shown(d))?,
                    }
                }
                for o in &s.observed {
                    let line = format!(
                        "seen from outside as: {} (by {})",
                        o.addr,
                        crate::render::count(o.by, "device", "devices")
                    );
                    writeln!(out, "{}", shown(&line))?;
                }
                let router = match s.mapping.as_str() {
                    "stable" => {
                        Some("keeps one public port for every peer: devices can meet directly")
                    }
                    "per-destination" => Some(
                        "gives each peer a port of its own: only a relay or a forwarded port reaches this device",
                    ),
                    _ => None,
                };
                if let Some(router) = router {
                    writeln!(out, "router: {router}")?;
                }
                if let Some(r) = &s.relay {
                    let state = if r.linked { "linked" } else { "not linked now" };
                    writeln!(out, "{}", shown(&format!("relay: {} ({state})", r.addr)))?;
                }
                if let Some(m) = &s.mapped {
                    writeln!(
                        out,
                        "{}",
                        shown(&format!("port forwarded by the router: {m}"))
                    )?;
                }
                writeln!(out, "documents: {}", s.documents)?;
                writeln!(
                    out,
                    "devices not known to be in sync: {}",
                    s.out_of_sync.len()
                )?;
            }
            Ok(())
        }
        r => bail!("the daemon answered unexpectedly: {r:?}"),
    }
}

/// The `ui.listen` setting as an address.
fn ui_listen(ctx: &Ctx) -> Result<SocketAddr> {
    let v = ctx.config.value("ui.listen")?;
    v.trim()
        .parse()
        .with_context(|| format!("ui.listen: {v:?} is not an address"))
}

/// Prints a one-time link to the web interface, and opens it in a browser when `browser`.
fn show_link(home: &Path, link: &str, browser: bool) {
    // The link is a key: it goes to this terminal only, never to the log.
    println!("{link}");
    let opened = browser && open_in_browser(home, link);
    if opened {
        eprintln!(
            "asked your browser to open it; if it cannot (a sandboxed browser may not read the \
             home), open the link above instead: it works once, for two minutes"
        );
    } else {
        eprintln!("open this link in your browser (it works once, for two minutes)");
    }
}

/// Asks the desktop to open `link` in the browser. The opener gets the path of an owner-only
/// page in the home that forwards to the link, never the link itself: a command line is
/// readable by every local user in `/proc`, and whoever redeems the link first gets the
/// session.
fn open_in_browser(home: &Path, link: &str) -> bool {
    let page = failup_home::Home::new(home).ui_open();
    // The link is the daemon's own `http://127.0.0.1:PORT/login?token=…` (or `[::1]`, base64url):
    // nothing in it needs escaping, and anything else is not opened.
    if !link
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b":/.?=_-[]".contains(&c))
    {
        return false;
    }
    let html = format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta http-equiv=\"refresh\" content=\"0;url={link}\">\n<title>failup</title>\n\
         <p>Opening failup… <a href=\"{link}\">continue</a></p>\n"
    );
    let written = crate::write_atomically(&page, |w| w.write_all(html.as_bytes()))
        .and_then(|()| failup_home::restrict(&page, failup_home::PRIVATE_MODE).map_err(Into::into));
    if let Err(e) = written {
        eprintln!("failup: {e:#}");
        return false;
    }
    // macOS opens files with `open`; elsewhere `open` may be another program (Debian's openvt).
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(&page)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// `failup ui`: a link to the running daemon's web interface, opened in a browser; with no
/// daemon running, runs one in the foreground (syncing as `failup daemon` does) until Ctrl-C.
pub(crate) fn ui(ctx: &Ctx, no_browser: bool) -> Result<()> {
    if let Some(mut c) = Client::connect(&ctx.home) {
        match ask(&mut c, Request::UiLink, Some(Duration::from_secs(10)))? {
            Response::UiLink(link) => {
                show_link(&ctx.home, &link, !no_browser);
                return Ok(());
            }
            r => bail!("the daemon answered unexpectedly: {r:?}"),
        }
    }
    eprintln!("no daemon runs: serving the web interface here until Ctrl-C (it syncs meanwhile)");
    daemon_command(ctx, None, false, None, LogFormat::Pretty, Some(!no_browser))
}
