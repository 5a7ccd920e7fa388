//! `failup doctor`: looks at everything that can quietly go wrong on a device (the home's
//! permissions, the config file, the store, the daemon, each paired device, the clock) and, for
//! each problem, says what to do about it.
//!
//! Problems make the command exit 1; warnings (no daemon running, say) do not, because every
//! command still works without them.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use failup_daemon::control::{Client, PeerInfo, Request, Response};
use failup_journal::text::shown;
use jiff::{Timestamp, ToSpan};

use crate::Ctx;

/// How far in the future an entry's timestamp may be before this device's clock is suspect.
const CLOCK_SLACK_MINUTES: i64 = 5;
/// How long to wait for each paired device to answer.
const PROBE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Problem,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Problem => "problem",
        }
    }
}

struct Finding {
    check: &'static str,
    level: Level,
    detail: String,
    fix: Option<String>,
}

fn finding(check: &'static str, level: Level, detail: String, fix: Option<String>) -> Finding {
    Finding {
        check,
        level,
        detail,
        fix,
    }
}

fn home(ctx: &Ctx) -> Vec<Finding> {
    let mut v = Vec::new();
    let shown = ctx.home.display();
    let meta = match std::fs::metadata(&ctx.home) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            return vec![finding(
                "home",
                Level::Problem,
                format!("{shown} is not a directory"),
                Some("move it away, or pass --home with another directory".into()),
            )];
        }
        Err(_) => {
            return vec![finding(
                "home",
                Level::Warn,
                format!("{shown} does not exist yet"),
                Some("run `failup init` (any command creates it)".into()),
            )];
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            v.push(finding(
                "home",
                Level::Problem,
                format!("{shown} is readable by others (mode {mode:o})"),
                Some(format!("chmod 700 {shown}")),
            ));
        } else if mode & 0o300 != 0o300 {
            // Without write and search for its owner, nothing can be logged or synced.
            v.push(finding(
                "home",
                Level::Problem,
                format!("{shown} cannot be written by its owner (mode {mode:o})"),
                Some(format!("chmod 700 {shown}")),
            ));
        } else if let Err(e) = tempfile::tempfile_in(&ctx.home) {
            // The mode allows writing, but the file system may not (a read-only mount, a
            // backup medium): reading and export still work.
            v.push(finding(
                "home",
                Level::Problem,
                format!("{shown} cannot be written ({e}): reading and export work, nothing can be logged"),
                Some("mount it writable, or copy the home somewhere writable and use `failup --home DIR`".into()),
            ));
        } else {
            v.push(finding(
                "home",
                Level::Ok,
                format!("{shown} is the owner's alone (mode {mode:o})"),
                None,
            ));
        }
        let key = ctx.home.join(crate::network::KEY_FILE);
        if let Ok(m) = std::fs::metadata(&key) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                v.push(finding(
                    "home",
                    Level::Problem,
                    format!("the device key {} is readable by others", key.display()),
                    Some(format!("chmod 600 {}", key.display())),
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    v
}

fn config(ctx: &Ctx) -> Finding {
    if let Some(e) = &ctx.config_error {
        return finding(
            "config",
            Level::Problem,
            e.clone(),
            Some(format!(
                "fix the file by hand, or move it away to start from the defaults ({})",
                ctx.config.path().display()
            )),
        );
    }
    match ctx.config.validate() {
        Ok(()) => finding(
            "config",
            Level::Ok,
            format!("{} is valid", ctx.config.path().display()),
            None,
        ),
        Err(e) => finding(
            "config",
            Level::Problem,
            crate::one_line(&e),
            Some("`failup config set KEY VALUE`, or `failup config unset KEY` for a key that is not a setting".into()),
        ),
    }
}

/// The store's check, and the newest timestamp in the journal for the clock check.
fn store(ctx: &Ctx) -> (Finding, Option<Timestamp>) {
    let result = (|| -> Result<_> {
        let mut journal = ctx.open()?;
        let report = journal.check()?;
        let newest = journal
            .scan(None, None)?
            .iter()
            .flat_map(|e| [e.updated, e.created])
            .max();
        Ok((report, newest))
    })();
    match result {
        Ok((r, newest)) if r.mismatches == 0 => (
            finding(
                "store",
                Level::Ok,
                format!(
                    "{}, {}, index agrees",
                    crate::render::count(r.documents as u64, "document", "documents"),
                    crate::render::count(r.entries as u64, "entry", "entries")
                ),
                None,
            ),
            newest,
        ),
        Ok((r, newest)) => (
            finding(
                "store",
                Level::Problem,
                format!("the index disagrees with the documents in {} places", r.mismatches),
                Some(
                    "export a backup (`failup export --out backup.json`), then report it; the documents are the truth".into(),
                ),
            ),
            newest,
        ),
        Err(e) => (
            finding(
                "store",
                Level::Problem,
                crate::one_line(&e),
                Some("if another failup holds it, wait and retry; otherwise restore from an export".into()),
            ),
            None,
        ),
    }
}

fn clock(ctx: &Ctx, newest: Option<Timestamp>) -> Finding {
    if ctx.now.as_second() < Timestamp::constant(1_704_067_200, 0).as_second() {
        return finding(
            "clock",
            Level::Problem,
            format!("this device's clock says {}, before 2024", ctx.now),
            Some("set the clock (for example `timedatectl set-ntp true`)".into()),
        );
    }
    match newest {
        // A warning: the fast clock may be another device's, and its entries stay dated so.
        Some(t) if t > ctx.now + CLOCK_SLACK_MINUTES.minutes() => {
            let ahead = (t.as_second() - ctx.now.as_second()) / 60;
            finding(
                "clock",
                Level::Warn,
                format!(
                    "an entry was written at {t}, {ahead} minutes after this device's clock: this clock is behind, or another device's is ahead"
                ),
                Some(
                    "set the clocks of your devices from the network (`timedatectl set-ntp true`)"
                        .into(),
                ),
            )
        }
        _ => finding(
            "clock",
            Level::Ok,
            format!("{} (no entry is from the future)", ctx.now),
            None,
        ),
    }
}

/// The daemon, then each paired device, probed by a short sync when the daemon runs.
fn devices(ctx: &Ctx) -> Vec<Finding> {
    let mut v = Vec::new();
    let Some(mut c) = Client::connect(&ctx.home) else {
        v.push(finding(
            "daemon",
            Level::Warn,
            "not running: commands work, but nothing syncs".into(),
            Some("run `failup daemon`, or install it as a service (see the user guide)".into()),
        ));
        return v;
    };
    let status = match c.call(&Request::Status, Some(PROBE)) {
        Ok(Response::Status(s)) => s,
        other => {
            v.push(finding(
                "daemon",
                Level::Problem,
                format!("its control socket does not answer properly: {other:?}"),
                Some("restart it (stop it with Ctrl-C or SIGTERM, then `failup daemon`)".into()),
            ));
            return v;
        }
    };
    v.push(finding(
        "daemon",
        Level::Ok,
        format!("running, listening on {}", status.listen.join(" ")),
        None,
    ));
    v.extend(reach(&status));
    let port = status
        .listen
        .first()
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or("7676")
        .to_owned();
    let peers: Vec<PeerInfo> = match c.call(&Request::Peers, Some(PROBE)) {
        Ok(Response::Peers(p)) => p,
        _ => Vec::new(),
    };
    if peers.iter().any(|p| p.recovery_unshown) {
        v.push(finding(
            "recovery",
            Level::Warn,
            "the circle's recovery key has not been shown yet, and sits on this device".into(),
            Some("run `failup peers recovery-key`, write the key down and keep it apart".into()),
        ));
    }
    for p in peers.iter().filter(|p| p.revoked && p.undone > 0) {
        let name = if p.name.is_empty() {
            &p.device
        } else {
            &p.name
        };
        v.push(finding(
            "revoked",
            Level::Ok,
            format!(
                "{name}: {} change{} it made after its revocation undone",
                p.undone,
                if p.undone == 1 { "" } else { "s" }
            ),
            None,
        ));
    }
    let peers: Vec<PeerInfo> = peers
        .into_iter()
        .filter(|p| p.role != "self" && !p.revoked)
        .collect();
    if peers.is_empty() {
        v.push(finding(
            "devices",
            Level::Ok,
            "no paired devices".into(),
            None,
        ));
        return v;
    }
    let missing = match c.call(
        &Request::Sync {
            timeout_ms: u64::try_from(PROBE.as_millis()).unwrap_or(5000),
        },
        Some(PROBE + Duration::from_secs(5)),
    ) {
        Ok(Response::Synced { missing, .. }) => missing,
        _ => peers.iter().map(|p| p.device.clone()).collect(),
    };
    // Synced names devices by name or id; a peer is missing if either is named.
    for p in &peers {
        let name = if p.name.is_empty() {
            p.device.clone()
        } else {
            format!("{} ({})", p.name, &p.device)
        };
        let unreachable = missing
            .iter()
            .any(|m| *m == p.device || (!p.name.is_empty() && *m == p.name));
        if unreachable {
            let seen = p
                .last_seen
                .as_deref()
                .map(|t| format!(", last seen {t}"))
                .unwrap_or_default();
            v.push(finding(
                "devices",
                Level::Warn,
                format!("{name} ({}) is not reachable now{seen}", p.role),
                Some(format!(
                    "make sure it runs `failup daemon`; if its address changed, `failup peers addr {} HOST:PORT`; \
                     on another network, turn on UPnP (or forward UDP port {port}) on one of the routers, \
                     or run `failup relay` on a machine both reach and set its code on both",
                    &p.device
                )),
            ));
        } else {
            v.push(finding(
                "devices",
                Level::Ok,
                format!("{name} ({}) is in sync", p.role),
                None,
            ));
        }
    }
    v
}

/// How this device can be reached from outside its network, and what would help.
fn reach(status: &failup_daemon::control::StatusInfo) -> Vec<Finding> {
    let mut v = Vec::new();
    if let Some(r) = &status.relay {
        v.push(if r.linked {
            finding("relay", Level::Ok, format!("linked to {}", r.addr), None)
        } else {
            finding(
                "relay",
                Level::Warn,
                format!("not linked to {} now", r.addr),
                Some(
                    "check that `failup relay` runs there and that its port is open; the daemon's log says why (a wrong code says `refused`)"
                        .into(),
                ),
            )
        });
    }
    let relay_linked = status.relay.as_ref().is_some_and(|r| r.linked);
    match &status.mapped {
        Some(m) => v.push(finding(
            "reach",
            Level::Ok,
            format!("the router forwards {m} to this device"),
            None,
        )),
        None if status.mapping == "per-destination" && !relay_linked => v.push(finding(
            "reach",
            Level::Warn,
            "this device's router gives each peer a port of its own: devices elsewhere cannot reach it directly".into(),
            Some(
                "turn on UPnP or NAT-PMP on the router, forward a UDP port to this device, or run `failup relay` on a machine you control and set its code on your devices"
                    .into(),
            ),
        )),
        None => {}
    }
    v
}

/// Runs every check and prints what it found; fails when a problem was found.
pub fn run(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let mut findings = home(ctx);
    findings.push(config(ctx));
    let home_ok = ctx.home.is_dir();
    // Looking must not create: a home with no journal yet is reported, not given one.
    let has_store = ctx.home.join(crate::STORE_FILE).is_file();
    if home_ok && !has_store {
        findings.push(finding(
            "store",
            Level::Warn,
            "no journal here yet".into(),
            Some("log a first entry, or `failup init`".into()),
        ));
    }
    let newest = if has_store {
        let (f, newest) = store(ctx);
        findings.push(f);
        newest
    } else {
        None
    };
    findings.push(clock(ctx, newest));
    if home_ok {
        findings.extend(devices(ctx));
    }
    let problems = findings
        .iter()
        .filter(|f| f.level == Level::Problem)
        .count();
    if ctx.json {
        let v: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "check": f.check, "status": f.level.as_str(),
                    "detail": f.detail, "fix": f.fix,
                })
            })
            .collect();
        crate::print_json(
            out,
            &serde_json::json!({"checks": v, "problems": problems}),
            crate::JsonLayout::Pretty,
        )?;
    } else {
        use crate::style::Role;
        for f in &findings {
            let tag = format!("{:7}", f.level.as_str());
            let tag = match f.level {
                Level::Ok => ctx.style.paint(Role::Closed, &tag),
                Level::Warn => ctx.style.paint(Role::Open, &tag),
                Level::Problem => ctx.style.paint(Role::Macro, &tag),
            };
            // A finding quotes device names, which other devices chose: escaped as shown.
            writeln!(out, "{tag} {:8} {}", f.check, shown(&f.detail))?;
            if let Some(fix) = &f.fix {
                writeln!(out, "{:16} fix: {}", "", shown(fix))?;
            }
        }
    }
    if problems > 0 {
        anyhow::bail!(
            "doctor found {problems} problem{}",
            if problems == 1 { "" } else { "s" }
        );
    }
    Ok(())
}
