//! The `failup` binary: parses the command line, finds the home, opens the store for as long as
//! one step needs it, and prints results to stdout and messages to stderr.
//!
//! The store is opened per step, never across a prompt or an editor session, so a person
//! thinking about a reframe question does not lock out their other terminals.

mod args;
mod complete;
mod config;
mod dates;
mod doctor;
mod editor;
mod entries;
mod journal;
mod network;
mod partners;
mod progress;
mod relay;
mod render;
mod report;
mod style;

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, ValueEnum};
use failup_journal::text::shown;
use failup_journal::{Entry, Outcome, Scale};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use journal::Journal;

use args::{Cli, Command, OutcomeArg, ScaleArg};
use config::{ColorChoice, Config};
use editor::Prompts;
use style::Style;

/// How long a command waits for another process to release the journal.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(5);
/// The store's file name inside the home.
pub(crate) use failup_home::STORE_FILE;

/// What every command needs to know about where and when it runs.
pub(crate) struct Ctx {
    home: PathBuf,
    json: bool,
    tz: TimeZone,
    now: Timestamp,
    today: Date,
    config: Config,
    /// Why the config file could not be read, for `doctor` (every other command stops on it).
    config_error: Option<String>,
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
        let config = self.config_with(&mut self.open()?)?;
        Ok(Prompts {
            questions: config.questions()?,
            story: config.value("prompts.story")?,
        })
    }

    /// The settings with the prompts `journal` holds for all the person's devices.
    fn config_with(&self, journal: &mut Journal) -> Result<Config> {
        let config = self.config.clone().with_synced(journal.prompts()?);
        // A synced question may collide with a heading this device's file sets.
        config.distinct_questions()?;
        Ok(config)
    }

    fn editor(&self) -> Result<String> {
        self.config.value("editor")
    }

    pub(crate) fn resolve(&self, prefix: &str) -> Result<Entry> {
        fetch(&mut self.open()?, &self.reference(prefix)?)
    }

    /// What a person wrote to name an entry, as the store resolves it: `@N` is row N of the
    /// last `list` or `today` shown in this home; anything else (an id prefix, `last`) as is.
    pub(crate) fn reference(&self, text: &str) -> Result<String> {
        let Some(n) = text.trim().strip_prefix('@') else {
            return Ok(text.to_owned());
        };
        let n: usize = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("{text:?} is not a row: write @1 for the first row"))?;
        let rows = match std::fs::read_to_string(self.home.join(ROWS_FILE)) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                anyhow::bail!(
                    "{text}: no list shown in this home yet; run `failup list` or `failup today`"
                )
            }
            Err(e) => return Err(e).context("cannot read the rows of the last list"),
        };
        let ids: Vec<&str> = rows.lines().filter(|l| !l.is_empty()).collect();
        ids.get(n - 1).map(|id| (*id).to_owned()).with_context(|| {
            format!(
                "{text}: the last list shown had {} row{}",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" }
            )
        })
    }

    /// Remembers the entries a list showed, in order, for `@N`. A home that cannot be written
    /// still lists: the rows are then not remembered, and the person is told.
    pub(crate) fn remember_rows(&self, ids: impl IntoIterator<Item = failup_journal::EntryId>) {
        let text: String = ids.into_iter().map(|id| format!("{id}\n")).collect();
        let path = self.home.join(ROWS_FILE);
        if let Err(e) = write_atomically(&path, |w| w.write_all(text.as_bytes())) {
            eprintln!("failup: cannot remember the rows for @N: {}", one_line(&e));
        }
    }
}

/// The entries the last `list` or `today` showed, one id per line, for `@N`.
const ROWS_FILE: &str = "rows";

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
    // `COMPLETE=SHELL failup ...`: the shell asking for completions (see `completions`).
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line: clap's message with what it says after it (the missing argument, the
            // valid values, the command meant), without the usage block.
            let rendered = e.render().to_string();
            let said: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let line = said.join(" ");
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            let line = if line.is_empty() {
                "invalid arguments"
            } else {
                line
            };
            let meant = match (e.kind(), e.get(clap::error::ContextKind::InvalidSubcommand)) {
                (
                    clap::error::ErrorKind::InvalidSubcommand,
                    Some(clap::error::ContextValue::String(typed)),
                ) if !line.contains("tip:") => nearest_command(typed)
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let line = format!("{line}{meant}");
            let line = line.as_str();
            eprintln!("failup: {} (see failup --help)", shown(line));
            return ExitCode::from(2);
        }
    };
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let msg = one_line(&e);
            // A message may quote text a person typed or a peer sent: escaped as it is shown.
            eprintln!("failup: {}", shown(&msg));
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
            eprintln!("failup: internal error (please report it): {}", shown(&msg));
            ExitCode::from(70)
        }
    }
}

/// An error and its causes on one line, each cause once: a message that already ends with its
/// cause's text (thiserror's `"{context}: {source}"`) does not repeat it.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace('\n', " ")
}

/// The command nearest to a mistyped one (`lgo` → `log`), if one is near enough.
fn nearest_command(typed: &str) -> Option<String> {
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_owned())
        .map(|name| (strsim::damerau_levenshtein(typed, &name), name))
        .filter(|(d, name)| *d <= 2 && *d < name.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
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
    // An empty variable means unset, as for NO_COLOR and the shell's own variables.
    let from_env = std::env::var_os("FAILUP_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let home = match cli.home.or(from_env) {
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
    // The config commands must run on a file with a mistake in it: they are how it is fixed.
    let fixing = matches!(cli.command, Command::Config(_) | Command::Doctor);
    // A file that is not TOML at all: doctor says so and goes on with its other checks.
    let (config, config_error) = match Config::load(&home) {
        Ok(c) => (c, None),
        Err(e) if matches!(cli.command, Command::Doctor) => {
            (Config::empty(&home), Some(format!("{e:#}")))
        }
        Err(e) => return Err(e),
    };
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
        config_error,
        style,
    };
    let mut out = Stdout(io::stdout().lock());
    match cli.command {
        Command::Init => {
            ctx.open()?;
            writeln!(out, "{}", ctx.home.display())?;
            eprintln!("journal ready in {}", ctx.home.display());
        }
        Command::Log(args) => entries::log(&ctx, args, &mut out)?,
        Command::List(args) => entries::list(&ctx, args, &mut out)?,
        Command::Search { words, mut list } => {
            if list.search.is_some() {
                anyhow::bail!(
                    "give the words once: `failup search WORDS` or `failup list --search WORDS`"
                );
            }
            list.search = Some(words.join(" "));
            entries::list(&ctx, list, &mut out)?
        }
        Command::Show { id } => entries::show(&ctx, &id, &mut out)?,
        Command::Reflect(args) => entries::reflect(&ctx, args)?,
        Command::Iterate {
            id,
            text,
            outcome,
            on,
        } => entries::iterate(&ctx, &id, text, outcome, on.as_deref())?,
        Command::Edit(args) => entries::edit(&ctx, args)?,
        Command::Close { id } => entries::set_closed(&ctx, &id, true)?,
        Command::Reopen { id } => entries::set_closed(&ctx, &id, false)?,
        Command::Delete { id, yes } => entries::delete(&ctx, &id, yes)?,
        Command::Today => report::today(&ctx, &mut out)?,
        Command::Stats { since, svg } => report::stats(&ctx, since, svg, &mut out)?,
        Command::Export { format, out: path } => {
            report::export_journal(&ctx, format, path, &mut out)?
        }
        Command::Import { file } => report::import(&ctx, &file)?,
        Command::Check => report::check(&ctx, &mut out)?,
        Command::Compact => report::compact(&ctx)?,
        Command::Daemon {
            listen,
            no_mdns,
            name,
            log_format,
        } => network::daemon_command(&ctx, listen, no_mdns, name, log_format, None)?,
        Command::Relay {
            listen,
            public,
            max_devices,
            log_format,
        } => relay::run(
            &ctx,
            &listen,
            public.as_deref(),
            max_devices,
            log_format,
            &mut out,
        )?,
        Command::Id => network::id(&ctx, &mut out)?,
        Command::Pair(cmd) => network::pair(&ctx, cmd, &mut out)?,
        Command::Peers { action } => network::peers(&ctx, action, &mut out)?,
        Command::Sync { timeout } => network::sync(&ctx, &timeout, &mut out)?,
        Command::Status => network::status(&ctx, &mut out)?,
        Command::Ui { no_browser } => network::ui(&ctx, no_browser)?,
        Command::Completions { shell } => {
            // The shell calls back into failup to complete (`COMPLETE=SHELL failup`), so ids
            // complete with their titles. Into memory first, so a closed pipe ends it quietly.
            let name = shell.to_string();
            let shells = clap_complete::env::Shells::builtins();
            let completer = shells
                .completer(&name)
                .with_context(|| format!("no completion for the shell {name}"))?;
            let mut script = Vec::new();
            completer.write_registration("COMPLETE", "failup", "failup", "failup", &mut script)?;
            out.write_all(&script)?;
        }
        Command::Man { dir: None } => clap_mangen::Man::new(Cli::command()).render(&mut out)?,
        Command::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            // Built, so the generated `help` command gets the page the main page names too.
            let mut cmd = Cli::command();
            cmd.build();
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write the pages into {}", dir.display()))?;
            eprintln!("wrote the manual pages into {}", dir.display());
        }
        Command::Config(cmd) => config::command(&ctx, cmd, &mut out)?,
        Command::Doctor => doctor::run(&ctx, &mut out)?,
        Command::Partner(cmd) => partners::partner(&ctx, cmd, &mut out)?,
        Command::Share {
            id,
            with,
            only,
            preview,
            yes,
        } => partners::share(&ctx, &id, &with, only, preview, yes, &mut out)?,
        Command::Unshare { id, with } => partners::unshare(&ctx, &id, &with)?,
        Command::Feed { partner } => partners::feed(&ctx, partner, &mut out)?,
        Command::Cheer { id, text } => partners::cheer(&ctx, &id, &text.join(" "))?,
    }
    out.flush()?;
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
    // Said without the temporary file's name, which the person never chose.
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                anyhow::anyhow!("the folder {} does not exist", dir.display())
            }
            kind => anyhow::anyhow!("{kind} in {}", dir.display()),
        })
        .with_context(what)?;
    {
        let mut w = io::BufWriter::new(tmp.as_file_mut());
        write(&mut w).with_context(what)?;
        w.flush().with_context(what)?;
    }
    tmp.as_file().sync_all().with_context(what)?;
    // The error alone: its message would name the temporary file, which the person never made.
    tmp.persist(&target)
        .map_err(|e| e.error)
        .with_context(what)?;
    #[cfg(unix)]
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(what)?;
    Ok(())
}

/// How a command's JSON is laid out.
#[derive(Clone, Copy)]
pub(crate) enum JsonLayout {
    /// Indented, for a whole listing.
    Pretty,
    /// One line, for a short answer.
    Line,
}

/// Writes `value` as JSON and a newline: every command's `--json` output goes through here, so
/// the C1 and bidirectional controls serde_json leaves raw are escaped as `\uXXXX` too
/// (`failup_journal::text::json_escaped`), and a partner's text cannot drive a terminal that
/// shows the JSON either.
pub(crate) fn print_json(
    out: &mut dyn Write,
    value: &impl serde::Serialize,
    layout: JsonLayout,
) -> Result<()> {
    let json = match layout {
        JsonLayout::Pretty => serde_json::to_string_pretty(value)?,
        JsonLayout::Line => serde_json::to_string(value)?,
    };
    writeln!(out, "{}", failup_journal::text::json_escaped(&json))?;
    Ok(())
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

/// Creates the home, readable by its owner alone, and this device's key in it; an existing
/// home open to others is made the owner's alone, with a note.
pub(crate) fn ensure_home(home: &Path) -> Result<()> {
    match failup_home::Home::new(home).ensure()? {
        failup_home::Ensured::Ready => {}
        failup_home::Ensured::Tightened => eprintln!(
            "note: {} was readable by others; it is now the owner's alone",
            home.display()
        ),
        failup_home::Ensured::Created => {
            failup_net::Identity::load_or_create(&home.join(failup_home::KEY_FILE))?;
        }
    }
    Ok(())
}

/// Whether an answer to a `[y/N]` (or, with `default`, `[Y/n]`) question is yes.
fn yes(answer: &str, default: bool) -> bool {
    match answer.trim() {
        "" => default,
        a => matches!(a, "y" | "Y" | "yes"),
    }
}

/// Prints a question on stderr and reads one line of answer; `None` at end of input.
fn ask(question: &str) -> Result<String> {
    eprint!("{question}");
    io::stderr().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
