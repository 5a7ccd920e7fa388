//! The `failup` binary: parses the command line, finds the home, opens the store for as long as
//! one step needs it, and prints results to stdout and messages to stderr.
//!
//! The store is opened per step, never across a prompt or an editor session, so a person
//! thinking about a reframe question does not lock out their other terminals.

mod args;
mod config;
mod dates;
mod doctor;
mod editor;
mod journal;
mod network;
mod partners;
mod progress;
mod render;
mod style;
mod svg;

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, ValueEnum};
use failup_journal::export::{self, EntryView, MAX_IMPORT_BYTES};
use failup_journal::{
    Entry, EntryPatch, Filter, Iteration, IterationId, NewEntry, Outcome, REFRAME_QUESTIONS,
    ReframeField, Scale, StatsBuilder, Status, Today,
};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use journal::Journal;

use args::{Cli, Command, EditArgs, ExportFormat, FieldArgs, LogArgs, OutcomeArg, ScaleArg};
use config::{ColorChoice, Config};
use editor::{Prompts, Section};
use render::short;
use style::Style;

/// How long a command waits for another process to release the journal.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(5);
/// The store's file name inside the home.
pub(crate) const STORE_FILE: &str = "journal.redb";

/// What every command needs to know about where and when it runs.
pub(crate) struct Ctx {
    home: PathBuf,
    json: bool,
    tz: TimeZone,
    now: Timestamp,
    today: Date,
    config: Config,
    style: Style,
}

impl Ctx {
    fn open(&self) -> Result<Journal> {
        ensure_home(&self.home)?;
        Journal::open(&self.home, STORE_FILE, LOCK_WAIT)
    }

    fn parse_day(&self, text: &str) -> Result<Date> {
        dates::parse_day(text, self.today)
    }

    fn prompts(&self) -> Result<Prompts> {
        Ok(Prompts {
            questions: self.config.questions()?,
            story: self.config.value("prompts.story")?,
        })
    }

    fn editor(&self) -> Result<String> {
        self.config.value("editor")
    }

    pub(crate) fn resolve(&self, prefix: &str) -> Result<Entry> {
        fetch(&mut self.open()?, prefix)
    }
}

/// The entry an id prefix names.
fn fetch(journal: &mut Journal, prefix: &str) -> Result<Entry> {
    let id = journal.resolve(prefix)?;
    journal
        .get(id)?
        .with_context(|| format!("entry {id} vanished while reading it"))
}

fn main() -> ExitCode {
    // Panics are reported once, below, as one line; panics that a library catches on purpose
    // (automerge on damaged bytes) must print nothing.
    std::panic::set_hook(Box::new(|_| {}));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("failup: {first} (see failup --help)");
            return ExitCode::from(2);
        }
    };
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("failup: {msg}");
            if e.downcast_ref::<Unreachable>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic")
                .replace('\n', " ");
            eprintln!("failup: internal error (please report it): {msg}");
            ExitCode::from(70)
        }
    }
}

/// Whether the command failed only because whoever reads standard output stopped reading
/// (`failup list | head`), which is not a failure. Any other broken pipe (a daemon that died
/// in the middle of a request, say) is one: its write may not have happened.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

/// Some device could not be reached or brought in sync: exit code 3, so a script can tell it
/// from a mistake (1) or a bad command line (2).
#[derive(Debug)]
pub(crate) struct Unreachable(pub(crate) String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// The reader of standard output went away.
#[derive(Debug)]
struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Standard output, with its broken pipe told apart from every other one.
struct Stdout(io::StdoutLock<'static>);

fn mark_closed(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        e
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark_closed)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark_closed)
    }
}

fn run(cli: Cli) -> Result<()> {
    let home = match cli.home {
        Some(h) => h,
        None => directories::ProjectDirs::from("", "", "failup")
            .context("cannot find the platform data directory; pass --home or set FAILUP_HOME")?
            .data_dir()
            .to_owned(),
    };
    let tz = TimeZone::system();
    // FAILUP_NOW pins the clock, for reproducible output and tests.
    let now = match std::env::var("FAILUP_NOW") {
        Ok(t) if !t.is_empty() => t.parse::<Timestamp>().with_context(|| {
            format!("FAILUP_NOW={t:?} is not a time such as 2026-11-24T09:00:00Z")
        })?,
        _ => Timestamp::now(),
    };
    let config = Config::load(&home)?;
    // The config commands must run on a file with a mistake in it: they are how it is fixed.
    let fixing = matches!(cli.command, Command::Config(_) | Command::Doctor);
    if !fixing {
        config.validate()?;
    }
    let color = match config.value("color") {
        Ok(c) => c,
        // A bad colour setting must not stop the commands that report or fix it.
        Err(_) if fixing => "auto".to_owned(),
        Err(e) => return Err(e),
    };
    let choice = cli
        .color
        .unwrap_or_else(|| ColorChoice::from_str(&color, false).unwrap_or(ColorChoice::Auto));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
        || std::env::var("TERM").is_ok_and(|t| t == "dumb");
    let style = Style::detect(choice, no_color, io::stdout().is_terminal());
    let ctx = Ctx {
        home,
        json: cli.json,
        today: now.to_zoned_datetime(tz.clone()).date(),
        tz,
        now,
        config,
        style,
    };
    let mut out = Stdout(io::stdout().lock());
    match cli.command {
        Command::Init => {
            ctx.open()?;
            writeln!(out, "{}", ctx.home.display())?;
            eprintln!("journal ready in {}", ctx.home.display());
        }
        Command::Log(args) => log(&ctx, args, &mut out)?,
        Command::List(args) => list(&ctx, args, &mut out)?,
        Command::Show { id } => {
            let mut journal = ctx.open()?;
            let entry = fetch(&mut journal, &id)?;
            let share = journal.shares()?.into_iter().find(|s| s.id == entry.id);
            if ctx.json {
                let mut v = serde_json::to_value(EntryView::from(&entry))?;
                if let (Some(share), Some(obj)) = (&share, v.as_object_mut()) {
                    obj.insert("shared_with".into(), serde_json::json!(share.with));
                    obj.insert("comments".into(), partners::comments_json(&share.comments));
                }
                serde_json::to_writer_pretty(&mut out, &v)?;
                writeln!(out)?;
            } else {
                let questions = ctx.config.questions()?;
                write!(
                    out,
                    "{}",
                    render::entry(&entry, &ctx.tz, &questions, &ctx.style)
                )?;
                if let Some(share) = &share {
                    writeln!(out, "\nShared with {}", share.with.join(", "))?;
                    write!(out, "{}", partners::comments_text(&share.comments, &ctx.tz))?;
                }
            }
        }
        Command::Reflect(args) => reflect(&ctx, args)?,
        Command::Iterate { id, text, outcome } => {
            let entry = ctx.resolve(&id)?;
            let ms = u64::try_from(ctx.now.as_millisecond()).unwrap_or(0);
            let patch = EntryPatch {
                iteration: Some(Iteration {
                    id: IterationId::from_parts(ms, rand::random()),
                    at: ctx.now,
                    tried: text.join(" "),
                    outcome: outcome.map(outcome_of),
                }),
                ..EntryPatch::default()
            };
            let entry = ctx.open()?.update(entry.id, patch, ctx.now)?;
            eprintln!(
                "iteration {} recorded on {}: {}",
                entry.iterations.len(),
                short(entry.id),
                entry.title()
            );
        }
        Command::Edit(args) => edit(&ctx, args)?,
        Command::Close { id } => set_closed(&ctx, &id, true)?,
        Command::Reopen { id } => set_closed(&ctx, &id, false)?,
        Command::Delete { id, yes } => {
            let entry = ctx.resolve(&id)?;
            if !yes {
                if !io::stdin().is_terminal() {
                    bail!("refusing to delete without confirmation: pass --yes");
                }
                let answer = ask(&format!(
                    "delete {} \"{}\"? [y/N] ",
                    short(entry.id),
                    entry.title()
                ))?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("kept {}", short(entry.id));
                    return Ok(());
                }
            }
            // The node takes a deleted entry out of every space as it deletes it.
            ctx.open()?.delete(entry.id, ctx.now)?;
            eprintln!("deleted {}: {}", short(entry.id), entry.title());
        }
        Command::Today => today(&ctx, &mut out)?,
        Command::Stats { since, svg } => {
            let since = since.map(|s| ctx.parse_day(&s)).transpose()?;
            let mut builder = StatsBuilder::new(ctx.tz.clone());
            for e in ctx.open()?.scan(since, None)? {
                builder.add(&e);
            }
            let stats = builder.finish(ctx.today, since);
            if let Some(path) = &svg {
                let picture = svg::stats(&stats, ctx.today);
                write_atomically(path, |w| w.write_all(picture.as_bytes()))?;
                // A picture made to be shared: readable by others, like any file a person saves.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                        .with_context(|| format!("cannot set permissions of {}", path.display()))?;
                }
                eprintln!("wrote the charts to {}", path.display());
            }
            if ctx.json {
                serde_json::to_writer_pretty(&mut out, &stats)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", render::stats(&stats, &ctx.style))?;
            }
        }
        Command::Export { format, out: path } => export_journal(&ctx, format, path, &mut out)?,
        Command::Import { file } => import(&ctx, &file)?,
        Command::Check => {
            let report = ctx.open()?.check()?;
            if ctx.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "documents": report.documents,
                        "entries": report.entries,
                        "mismatches": report.mismatches,
                    })
                )?;
            } else {
                writeln!(
                    out,
                    "{} documents, {} entries, {} mismatches",
                    report.documents, report.entries, report.mismatches
                )?;
            }
            if report.mismatches > 0 {
                bail!(
                    "the index disagrees with the documents in {} places",
                    report.mismatches
                );
            }
        }
        Command::Compact => {
            let mut journal = ctx.open()?;
            let path = ctx.home.join(STORE_FILE);
            let before = file_size(&path);
            journal.compact()?;
            eprintln!(
                "compacted {}: {} → {} bytes",
                path.display(),
                before,
                file_size(&path)
            );
        }
        Command::Daemon {
            listen,
            no_mdns,
            name,
            log_format,
        } => {
            let settings = network::DaemonSettings {
                listen: match listen {
                    Some(l) => config::check("listen", &l).context("--listen")?,
                    None => ctx.config.value("listen")?,
                },
                name: match name {
                    Some(n) => config::check("name", &n).context("--name")?,
                    None => ctx.config.value("name")?,
                },
                mdns: !no_mdns && ctx.config.flag("mdns")?,
                log_format,
            };
            network::daemon(&ctx.home, settings)?
        }
        Command::Id => network::id(&ctx, &mut out)?,
        Command::Pair(cmd) => network::pair(&ctx, cmd, &mut out)?,
        Command::Peers { action } => network::peers(&ctx, action, &mut out)?,
        Command::Sync { timeout } => network::sync(&ctx, &timeout, &mut out)?,
        Command::Status => network::status(&ctx, &mut out)?,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "failup", &mut out);
        }
        Command::Man => clap_mangen::Man::new(Cli::command()).render(&mut out)?,
        Command::Config(cmd) => config_command(&ctx, cmd, &mut out)?,
        Command::Doctor => doctor::run(&ctx, &mut out)?,
        Command::Partner(cmd) => partners::partner(&ctx, cmd, &mut out)?,
        Command::Share { id, with, only } => partners::share(&ctx, &id, &with, only)?,
        Command::Unshare { id, with } => partners::unshare(&ctx, &id, &with)?,
        Command::Feed { partner } => partners::feed(&ctx, partner, &mut out)?,
        Command::Cheer { id, text } => partners::cheer(&ctx, &id, &text.join(" "))?,
    }
    out.flush()?;
    Ok(())
}

/// `failup today`.
fn today(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let t = Today::build(ctx.open()?.scan(None, None)?, ctx.today);
    if ctx.json {
        fn views(v: &[Entry]) -> Vec<EntryView<'_>> {
            v.iter().map(EntryView::from).collect()
        }
        let v = serde_json::json!({
            "today": ctx.today,
            "logged_today": views(&t.today),
            "this_week": views(&t.this_week),
            "open": views(&t.open),
            "open_total": t.open_total,
            "on_this_day": views(&t.on_this_day),
        });
        serde_json::to_writer_pretty(&mut *out, &v)?;
        writeln!(out)?;
    } else {
        let question = ctx.config.value("prompts.lesson")?;
        write!(
            out,
            "{}",
            render::today(&t, ctx.today, &question, &ctx.style)
        )?;
    }
    Ok(())
}

/// `failup config`.
fn config_command(ctx: &Ctx, cmd: args::ConfigCommand, out: &mut dyn Write) -> Result<()> {
    use args::ConfigCommand as C;
    match cmd {
        C::List => {
            let mut rows = Vec::new();
            for (key, help) in config::keys() {
                // A bad value is listed with its error, so the list shows what to fix.
                let (value, source) = match ctx.config.get(key) {
                    Ok((v, s)) => (v, s.to_string()),
                    Err(e) => (String::new(), format!("error: {e:#}")),
                };
                rows.push((key, value, source, help));
            }
            if ctx.json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(k, v, s, h)| {
                        serde_json::json!({"key": k, "value": v, "source": s, "help": h})
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut *out, &v)?;
                writeln!(out)?;
            } else {
                for (key, value, source, _) in &rows {
                    let value = config::display(key, value);
                    writeln!(out, "{key} = {value}  ({source})")?;
                }
            }
            for k in ctx.config.unknown_keys() {
                eprintln!(
                    "warning: {} has an unknown setting {k:?}; remove it with `failup config unset {k}`",
                    ctx.config.path().display()
                );
            }
        }
        C::Get { key } => {
            let (value, source) = ctx.config.get(&key)?;
            if ctx.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"key": key, "value": value, "source": source.to_string()})
                )?;
            } else {
                writeln!(out, "{value}")?;
            }
        }
        C::Set { key, value } => {
            ensure_home(&ctx.home)?;
            let mut config = Config::load(&ctx.home)?;
            config.set(&key, &value)?;
            config.save()?;
            let (now, source) = config.get(&key)?;
            if let config::Source::Env(var) = source {
                eprintln!("set {key} in the file, but ${var} overrides it: {now}");
            } else {
                eprintln!("set {key} = {now}");
            }
        }
        C::Unset { key } => {
            let mut config = Config::load(&ctx.home)?;
            if config.unset(&key)? {
                config.save()?;
                eprintln!("removed {key} from {}", config.path().display());
            } else {
                eprintln!("{key} was not set in {}", config.path().display());
            }
        }
        C::Path => writeln!(out, "{}", ctx.config.path().display())?,
    }
    Ok(())
}

/// Writes a file beside `path` with `write` and renames it into place once it is whole and on
/// disk, so a failed write never leaves half a file where an older, complete one stood. A
/// symlink (a config file kept with a person's dotfiles) stays a symlink: its target is
/// replaced. The directory is synced too, so the rename itself survives a power cut.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let what = || format!("cannot write {}", path.display());
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).with_context(what)?,
        _ => path.to_owned(),
    };
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).with_context(what)?;
    {
        let mut w = io::BufWriter::new(tmp.as_file_mut());
        write(&mut w).with_context(what)?;
        w.flush().with_context(what)?;
    }
    tmp.as_file().sync_all().with_context(what)?;
    tmp.persist(&target).with_context(what)?;
    #[cfg(unix)]
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(what)?;
    Ok(())
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn outcome_of(o: OutcomeArg) -> Outcome {
    match o {
        OutcomeArg::Better => Outcome::Better,
        OutcomeArg::Same => Outcome::Same,
        OutcomeArg::Worse => Outcome::Worse,
    }
}

fn scale_of(s: ScaleArg) -> Scale {
    match s {
        ScaleArg::Micro => Scale::Micro,
        ScaleArg::Macro => Scale::Macro,
    }
}

/// Creates the home, readable by its owner alone, and this device's key in it. An existing
/// directory keeps the mode its owner gave it: `--home .` must not change a project folder's
/// permissions.
pub(crate) fn ensure_home(home: &Path) -> Result<()> {
    if home.is_dir() {
        // A home made by hand (or by an older tool) may be open to others: the journal inside
        // is private writing, so the directory is made the owner's alone, once, with a note.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(home)
                .map(|m| m.permissions().mode())
                .unwrap_or(0o700);
            if mode & 0o077 != 0 {
                std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("cannot make home {} owner-only", home.display()))?;
                eprintln!(
                    "note: {} was readable by others; it is now the owner's alone",
                    home.display()
                );
            }
        }
        return Ok(());
    }
    std::fs::create_dir_all(home)
        .with_context(|| format!("cannot create home {}", home.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict permissions of home {}", home.display()))?;
    }
    failup_net::Identity::load_or_create(&home.join(network::KEY_FILE))?;
    Ok(())
}

/// Prints a question on stderr and reads one line of answer; `None` at end of input.
fn ask(question: &str) -> Result<String> {
    eprint!("{question}");
    io::stderr().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn log(ctx: &Ctx, args: LogArgs, out: &mut dyn Write) -> Result<()> {
    let mut new = new_entry(ctx, &args.fields)?;
    if args.is_macro {
        new.scale = Scale::Macro;
    }
    if !args.text.is_empty() {
        new.text = args.text.join(" ");
    } else if !io::stdin().is_terminal() {
        let max = failup_journal::entry::MAX_TEXT_BYTES;
        let mut bytes = Vec::new();
        io::stdin()
            .lock()
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .context("cannot read the entry from standard input")?;
        // Refuse before trimming: a cut-off story must never pass for a whole one.
        if bytes.len() > max {
            bail!("text is longer than {max} bytes");
        }
        new.text = String::from_utf8(bytes).context("standard input is not UTF-8 text")?;
    } else {
        let prompts = ctx.prompts()?;
        let written = editor::edit(
            &ctx.editor()?,
            &editor::template(&prompts, None, &ctx.today.to_string()),
        )?;
        let form = editor::parse(&prompts, &written)?;
        // The story template left as it was is no story either.
        if form.text.is_empty() || form.text.trim() == prompts.story.trim() {
            bail!("nothing logged: the story was left empty");
        }
        new.text = form.text.clone();
        fill_from_form(ctx, &mut new, &form)?;
    }
    let entry = ctx.open()?.log(new, ctx.now, ctx.today)?;
    writeln!(out, "{}", entry.id)?;
    if let Some(with) = &args.share {
        // Logged already: a failed share is reported, and the entry stays, private.
        partners::share_id(ctx, entry.id, with, None)
            .with_context(|| format!("logged {}, but not shared", entry.id))?;
    }
    Ok(())
}

fn new_entry(ctx: &Ctx, f: &FieldArgs) -> Result<NewEntry> {
    Ok(NewEntry {
        text: String::new(),
        scale: Scale::Micro,
        day: f.on.as_deref().map(|d| ctx.parse_day(d)).transpose()?,
        area: f.area.clone(),
        tags: f.tags.clone(),
        feeling: f.feeling,
        lesson: f.lesson.clone(),
        muscle: f.muscle.clone(),
        use_it: f.use_it.clone(),
        next: f.next.clone(),
    })
}

/// Typed values of an editor form's sections.
struct FormValues {
    reframe: [(ReframeField, Option<String>); 3],
    next: Option<String>,
    area: Option<String>,
    tags: Vec<String>,
    feeling: Option<u8>,
    scale: Option<Scale>,
    day: Option<Date>,
}

fn form_values(ctx: &Ctx, form: &editor::Form) -> Result<FormValues> {
    let text = |s| form.get(s).map(str::to_owned);
    let reframe = REFRAME_QUESTIONS.map(|(f, _)| (f, text(Section::Reframe(f))));
    let feeling = form
        .get(Section::Feeling)
        .map(|f| {
            f.parse::<u8>()
                .with_context(|| format!("feeling {f:?} is not a number from 1 to 5"))
        })
        .transpose()?;
    Ok(FormValues {
        reframe,
        next: text(Section::Next),
        area: text(Section::Area),
        tags: form
            .get(Section::Tags)
            .map(|t| t.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        feeling,
        scale: form.get(Section::Scale).map(str::parse).transpose()?,
        day: form
            .get(Section::Day)
            .map(|d| ctx.parse_day(d))
            .transpose()?,
    })
}

/// Fields typed on the command line win over the same fields in the form.
fn fill_from_form(ctx: &Ctx, new: &mut NewEntry, form: &editor::Form) -> Result<()> {
    let v = form_values(ctx, form)?;
    for (field, value) in v.reframe {
        let slot = match field {
            ReframeField::Lesson => &mut new.lesson,
            ReframeField::Muscle => &mut new.muscle,
            ReframeField::Use => &mut new.use_it,
        };
        if slot.is_none() {
            *slot = value;
        }
    }
    new.next = new.next.take().or(v.next);
    new.area = new.area.take().or(v.area);
    new.tags.extend(v.tags);
    new.feeling = new.feeling.or(v.feeling);
    new.day = new.day.or(v.day);
    if new.scale == Scale::Micro {
        new.scale = v.scale.unwrap_or(Scale::Micro);
    }
    Ok(())
}

fn list(ctx: &Ctx, a: args::ListArgs, out: &mut dyn Write) -> Result<()> {
    let filter = Filter {
        since: a.since.map(|d| ctx.parse_day(&d)).transpose()?,
        until: a.until.map(|d| ctx.parse_day(&d)).transpose()?,
        tags: a
            .tags
            .iter()
            .map(|t| failup_journal::entry::normalize_tag(t))
            .collect::<Result<_, _>>()?,
        area: a.area,
        scale: a.scale.map(scale_of),
        open: a.open,
        search: Vec::new(),
    };
    let filter = match &a.search {
        Some(words) => filter.with_search(words),
        None => filter,
    };
    let mut journal = ctx.open()?;
    let entries = journal.list(&filter, a.limit)?;
    let shared: std::collections::HashMap<failup_journal::EntryId, Vec<String>> = journal
        .shares()?
        .into_iter()
        .map(|s| (s.id, s.with))
        .collect();
    if ctx.json {
        let mut views = Vec::with_capacity(entries.len());
        for e in &entries {
            let mut v = serde_json::to_value(EntryView::from(e))?;
            if let (Some(with), Some(obj)) = (shared.get(&e.id), v.as_object_mut()) {
                obj.insert("shared_with".into(), serde_json::json!(with));
            }
            views.push(v);
        }
        serde_json::to_writer_pretty(&mut *out, &views)?;
        writeln!(out)?;
    } else if entries.is_empty() {
        eprintln!("no entries");
    } else {
        for e in &entries {
            let mut line = render::list_line(e, &ctx.style);
            if let Some(with) = shared.get(&e.id) {
                line.push_str(&format!("  [shared with {}]", with.join(", ")));
            }
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

fn reflect(ctx: &Ctx, a: args::ReflectArgs) -> Result<()> {
    let entry = ctx.resolve(&a.id)?;
    let mut patch = EntryPatch {
        lesson: a.lesson.map(Some),
        muscle: a.muscle.map(Some),
        use_it: a.use_it.map(Some),
        ..EntryPatch::default()
    };
    if patch.is_empty() {
        eprintln!("{}: {}", short(entry.id), entry.title());
        eprintln!("(press Enter to keep an answer as it is)");
        for (field, question) in ctx.config.questions()? {
            let current = entry
                .reframe(field)
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default();
            let answer = ask(&format!("{question}{current}\n> "))?;
            if answer.trim().is_empty() {
                continue;
            }
            let slot = match field {
                ReframeField::Lesson => &mut patch.lesson,
                ReframeField::Muscle => &mut patch.muscle,
                ReframeField::Use => &mut patch.use_it,
            };
            *slot = Some(Some(answer));
        }
        if patch.is_empty() {
            eprintln!("nothing changed");
            return Ok(());
        }
    }
    let entry = ctx.open()?.update(entry.id, patch, ctx.now)?;
    eprintln!(
        "reflected on {} (status: {})",
        short(entry.id),
        entry.status().as_str()
    );
    Ok(())
}

fn edit(ctx: &Ctx, a: EditArgs) -> Result<()> {
    let entry = ctx.resolve(&a.id)?;
    let f = &a.fields;
    let clearable = |v: &Option<String>| v.clone().map(|v| Some(v).filter(|v| !v.is_empty()));
    let mut patch = EntryPatch {
        text: a.text.clone(),
        scale: a.scale.map(scale_of),
        day: f.on.as_deref().map(|d| ctx.parse_day(d)).transpose()?,
        area: clearable(&f.area),
        add_tags: f.tags.clone(),
        remove_tags: a.untag.clone(),
        feeling: f.feeling.map(Some),
        lesson: clearable(&f.lesson),
        muscle: clearable(&f.muscle),
        use_it: clearable(&f.use_it),
        next: clearable(&f.next),
        ..EntryPatch::default()
    };
    if patch.is_empty() {
        if !io::stdin().is_terminal() {
            bail!(
                "nothing to change: give a field such as --text or --lesson (see failup edit --help)"
            );
        }
        let prompts = ctx.prompts()?;
        let written = editor::edit(
            &ctx.editor()?,
            &editor::template(&prompts, Some(&entry), &entry.day.to_string()),
        )?;
        let form = editor::parse(&prompts, &written)?;
        if form.text.is_empty() {
            bail!("nothing changed: the story was left empty");
        }
        patch = patch_from_form(ctx, &entry, &form)?;
        if patch.is_empty() {
            eprintln!("nothing changed");
            return Ok(());
        }
    }
    let entry = ctx.open()?.update(entry.id, patch, ctx.now)?;
    eprintln!("updated {}: {}", short(entry.id), entry.title());
    Ok(())
}

/// The difference between an entry and what the person left in the editor.
fn patch_from_form(ctx: &Ctx, e: &Entry, form: &editor::Form) -> Result<EntryPatch> {
    let v = form_values(ctx, form)?;
    // A section whose heading was deleted leaves its field as it was: only text written (or
    // emptied) under a heading changes anything.
    let changed = |section: Section, old: Option<&str>, new: Option<String>| {
        (form.has(section) && old != new.as_deref()).then_some(new)
    };
    let mut patch = EntryPatch {
        text: (form.text != e.text).then(|| form.text.clone()),
        scale: v.scale.filter(|s| *s != e.scale),
        day: v.day.filter(|d| *d != e.day),
        area: changed(Section::Area, e.area.as_deref(), v.area),
        next: changed(Section::Next, e.next.as_deref(), v.next),
        feeling: (form.has(Section::Feeling) && v.feeling != e.feeling).then_some(v.feeling),
        ..EntryPatch::default()
    };
    for (field, value) in v.reframe {
        let c = changed(Section::Reframe(field), e.reframe(field), value);
        match field {
            ReframeField::Lesson => patch.lesson = c,
            ReframeField::Muscle => patch.muscle = c,
            ReframeField::Use => patch.use_it = c,
        }
    }
    let wanted: Vec<String> = v
        .tags
        .iter()
        .map(|t| failup_journal::entry::normalize_tag(t))
        .collect::<Result<_, _>>()?;
    if !form.has(Section::Tags) {
        return Ok(patch);
    }
    patch.add_tags = wanted
        .iter()
        .filter(|t| !e.tags.contains(*t))
        .cloned()
        .collect();
    patch.remove_tags = e
        .tags
        .iter()
        .filter(|t| !wanted.contains(t))
        .cloned()
        .collect();
    Ok(patch)
}

fn set_closed(ctx: &Ctx, prefix: &str, close: bool) -> Result<()> {
    let entry = ctx.resolve(prefix)?;
    let closed = entry.status() == Status::Closed;
    if closed == close {
        eprintln!(
            "{} is already {}",
            short(entry.id),
            if close { "closed" } else { "open" }
        );
        return Ok(());
    }
    let patch = EntryPatch {
        closed_at: Some(close.then_some(ctx.now)),
        ..EntryPatch::default()
    };
    let entry = ctx.open()?.update(entry.id, patch, ctx.now)?;
    eprintln!(
        "{} {}: {}",
        if close { "closed" } else { "reopened" },
        short(entry.id),
        entry.title()
    );
    Ok(())
}

fn export_journal(
    ctx: &Ctx,
    format: ExportFormat,
    path: Option<PathBuf>,
    stdout: &mut dyn Write,
) -> Result<()> {
    let entries = ctx.open()?.scan(None, None)?;
    let bar = progress::unless_small(entries.len(), || progress::bytes("exporting"));
    let write = |w: &mut dyn Write| -> io::Result<()> {
        // Buffered above the bar, so it counts 8 KiB chunks rather than every small write.
        let mut w = io::BufWriter::new(bar.wrap_write(w));
        match format {
            ExportFormat::Json => export::write_json(&mut w, ctx.now, &entries)?,
            ExportFormat::Markdown => export::write_markdown(&mut w, &ctx.tz, &entries)?,
        }
        w.flush()
    };
    match path {
        None => {
            write(stdout)?;
            bar.finish_and_clear();
        }
        Some(path) => {
            write_atomically(&path, write)?;
            bar.finish_and_clear();
            eprintln!("exported {} entries to {}", entries.len(), path.display());
        }
    }
    Ok(())
}

fn import(ctx: &Ctx, file: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    let what = file.display().to_string();
    let reader: Box<dyn Read> = if file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("cannot open {what}"))?)
    };
    reader
        .take(MAX_IMPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what}"))?;
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        bail!("{what} is larger than the {MAX_IMPORT_BYTES}-byte import limit");
    }
    let entries = export::read_json(&bytes).with_context(|| format!("cannot import {what}"))?;
    // One commit for the whole file, so a killed import leaves all of it or none (the crash
    // suite holds us to that); the spinner only says the work goes on.
    let bar = progress::unless_small(entries.len(), || {
        let bar = progress::spinner();
        bar.set_message(format!("importing {} entries", entries.len()));
        bar
    });
    let report = ctx.open()?.import(entries, ctx.now)?;
    bar.finish_and_clear();
    let (added, skipped) = (report.added, report.skipped);
    eprintln!("imported {added} entries ({skipped} already present)");
    Ok(())
}
