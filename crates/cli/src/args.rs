//! The command line as clap sees it. Parsing only: no behaviour lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// failup: a journal for failing up. Log setbacks, reframe them, record what you try next.
#[derive(Parser, Debug)]
#[command(name = "failup", version, about, max_term_width = 100)]
pub struct Cli {
    /// Where the journal lives (default: $FAILUP_HOME when set and not empty, else the
    /// platform data directory)
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Print results as JSON (every command that prints a record or a list)
    #[arg(long, global = true)]
    pub json: bool,

    /// Colour: auto (on a terminal unless NO_COLOR is set), always or never [env: FAILUP_COLOR]
    #[arg(long, global = true, value_enum, value_name = "WHEN")]
    pub color: Option<crate::config::ColorChoice>,

    #[command(subcommand)]
    pub command: Command,
}

/// Every failup command.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the home and this device's journal (done by any first command anyway)
    Init,
    /// Record a setback; prints the new entry's id
    Log(LogArgs),
    /// List entries, newest first
    List(ListArgs),
    /// Entries containing every one of these words: `list --search` for short
    Search {
        /// The words
        #[arg(required = true)]
        words: Vec<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one entry in full
    Show {
        /// Entry id or any unique prefix of it, `last`, or `@N` (row N of the last list)
        #[arg(add = clap_complete::ArgValueCompleter::new(crate::complete::entries))]
        id: String,
    },
    /// Answer the three reframe questions
    Reflect(ReflectArgs),
    /// Record what you tried next and how it went
    Iterate {
        /// Entry id or any unique prefix of it, `last`, or `@N` (row N of the last list)
        #[arg(add = clap_complete::ArgValueCompleter::new(crate::complete::entries))]
        id: String,
        /// What you tried
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// How it went
        #[arg(long, value_enum)]
        outcome: Option<OutcomeArg>,
        /// The day you tried it, when you record it later (default: now)
        #[arg(long, value_name = "DATE")]
        on: Option<String>,
    },
    /// Change fields of an entry (opens $EDITOR when no field is given on a terminal)
    Edit(EditArgs),
    /// Close the loop: what you tried worked
    Close {
        /// Entry id or any unique prefix of it, `last`, or `@N` (row N of the last list)
        #[arg(add = clap_complete::ArgValueCompleter::new(crate::complete::entries))]
        id: String,
    },
    /// Reopen a closed loop
    Reopen {
        /// Entry id or any unique prefix of it, `last`, or `@N` (row N of the last list)
        #[arg(add = clap_complete::ArgValueCompleter::new(crate::complete::entries))]
        id: String,
    },
    /// Delete an entry
    Delete {
        /// Entry id or any unique prefix of it, `last`, or `@N` (row N of the last list)
        #[arg(add = clap_complete::ArgValueCompleter::new(crate::complete::entries))]
        id: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Today and this week, open loops oldest first, and "on this day" in earlier months
    Today,
    /// Your practice in numbers: figures, a year heatmap, months, top tags and areas
    Stats {
        /// Only count setbacks on or after this day
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Also write the charts as a standalone SVG picture to this file
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Write the whole journal as JSON (importable) or Markdown (a diary)
    Export {
        /// Output format
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Write to this file instead of standard output
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Add the entries of a failup JSON export; entries already present are skipped
    Import {
        /// The export file, or - for standard input
        file: PathBuf,
    },
    /// Fold change history into snapshots and give free space back to the file system
    Compact,
    /// Verify the journal: load every document and compare it with the index
    Check,
    /// Run the sync daemon in the foreground until interrupted
    Daemon {
        /// Address and UDP port to listen on (default: the listen setting, [::]:7676, which takes
        /// IPv6 and IPv4; port 0 picks a free one)
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Do not announce or look for devices on the local network (default: the mdns setting)
        #[arg(long)]
        no_mdns: bool,
        /// What other devices call this one (default: the name setting, or the host name)
        #[arg(long)]
        name: Option<String>,
        /// How log lines look on standard error: pretty for people, json for log collectors.
        /// Levels come from RUST_LOG (default info)
        #[arg(long, value_enum, default_value_t = LogFormat::Pretty, value_name = "FORMAT")]
        log_format: LogFormat,
    },
    /// Run a relay of your own in the foreground, for your devices to reach each other through
    /// when nothing else works (on a machine with a public address or a forwarded port)
    Relay {
        /// Address and UDP port to listen on
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7677")]
        listen: String,
        /// The address devices reach the relay at, put in its code (default: the listen address,
        /// or when listening on all addresses the first that is not loopback)
        #[arg(long, value_name = "ADDR")]
        public: Option<String>,
        /// Devices linked at once
        #[arg(long, value_name = "N", default_value_t = 64)]
        max_devices: usize,
        /// How log lines look on standard error
        #[arg(long, value_enum, default_value_t = LogFormat::Pretty, value_name = "FORMAT")]
        log_format: LogFormat,
    },
    /// This device's id and the addresses its daemon listens on
    Id,
    /// Pair this device with another of your devices
    #[command(subcommand)]
    Pair(PairCommand),
    /// Your paired devices; add an address or revoke a device
    Peers {
        #[command(subcommand)]
        action: Option<PeersCommand>,
    },
    /// Sync with every reachable device now and wait until each is in sync
    Sync {
        /// How long to wait, such as 30s or 2m
        #[arg(long, default_value = "30s")]
        timeout: String,
    },
    /// Whether the daemon runs, where it listens, which devices are connected
    Status,
    /// Open the journal in your browser: the running daemon serves it, or with none running
    /// this command does until Ctrl-C
    Ui {
        /// Print the one-time link instead of opening a browser
        #[arg(long)]
        no_browser: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `failup man > failup.1`
    Man {
        /// Write every page (failup.1 and one per command, which it refers to) into DIR
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
    /// Read and change settings in the home's config.toml
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Look for problems (permissions, store, daemon, devices, clock) and say what to do
    Doctor,
    /// Share a space with an accountability partner: invite, join, list, revoke
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Put an entry into the space shared with a partner (again, to change the fields shown)
    Share {
        /// Entry id or any unique prefix of it, `last`, or `@N` (row N of the last list)
        #[arg(add = clap_complete::ArgValueCompleter::new(crate::complete::entries))]
        id: String,
        /// The partner's label
        #[arg(long = "with", value_name = "LABEL")]
        with: String,
        /// Share only these fields, comma-separated (text, scale, area, tags, feeling, lesson,
        /// muscle, use, next, progress); every field by default
        #[arg(long, value_name = "FIELDS")]
        only: Option<String>,
        /// Print what the partner would see, and share nothing
        #[arg(long, conflicts_with = "yes")]
        preview: bool,
        /// Share without showing it and asking first (for scripts)
        #[arg(long)]
        yes: bool,
    },
    /// Take an entry out of the space shared with a partner
    Unshare {
        /// Entry id or any unique prefix of it, `last`, or `@N` (row N of the last list)
        #[arg(add = clap_complete::ArgValueCompleter::new(crate::complete::entries))]
        id: String,
        /// The partner's label
        #[arg(long = "with", value_name = "LABEL")]
        with: String,
    },
    /// What your partners shared, newest first, with comments; new items are marked
    Feed {
        /// Only this partner
        #[arg(long, value_name = "LABEL")]
        partner: Option<String>,
    },
    /// Comment on a shared entry (yours or your partner's): encouragement, a question, "me too"
    Cheer {
        /// Entry id or any unique prefix of it, `last`, or `@N` (row N of the last list)
        #[arg(add = clap_complete::ArgValueCompleter::new(crate::complete::entries))]
        id: String,
        /// What to say
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
}

/// `failup config`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Every setting, its value in force and where that value comes from
    List,
    /// The value in force for one setting
    Get {
        /// The setting, such as color or prompts.lesson
        key: String,
    },
    /// Set a setting in the config file, after checking the value
    Set {
        /// The setting, such as color or prompts.lesson
        key: String,
        /// The new value
        value: String,
    },
    /// Remove a setting from the config file, so its default applies again
    Unset {
        /// The setting
        key: String,
    },
    /// Where the config file is
    Path,
}

/// Log line formats of the daemon.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines
    Pretty,
    /// One JSON object per line
    Json,
}

/// `failup partner`.
#[derive(Subcommand, Debug)]
pub enum PartnerCommand {
    /// Print a one-time invite code for your partner (needs a running daemon)
    Invite {
        /// What to call the partner here (default: the name their device gives)
        #[arg(long, value_name = "LABEL")]
        name: Option<String>,
        /// How long the code stays valid, such as 10m or 1h
        #[arg(long, default_value = "10m")]
        ttl: String,
        /// Also draw the code as a QR code, for a phone's camera
        #[arg(long)]
        qr: bool,
    },
    /// Join the space of the person who printed CODE (needs a running daemon)
    Join {
        /// The invite code
        code: String,
        /// What to call the inviting person here
        #[arg(long, value_name = "LABEL")]
        name: String,
    },
    /// Your partners, their devices and what each side shares
    List,
    /// Stop syncing with every device of a partner, on all your devices, for good
    Revoke {
        /// The partner's label
        label: String,
    },
}

/// `failup pair`.
#[derive(Subcommand, Debug)]
pub enum PairCommand {
    /// Print a one-time invite code for another device (needs a running daemon)
    Invite {
        /// How long the code stays valid, such as 10m or 1h
        #[arg(long, default_value = "10m")]
        ttl: String,
        /// Also draw the code as a QR code, for a phone's camera
        #[arg(long)]
        qr: bool,
    },
    /// Join the devices of the one that printed CODE (needs a running daemon)
    Join {
        /// The invite code
        code: String,
        /// What to call the inviting device here
        #[arg(long)]
        name: Option<String>,
    },
}

/// `failup peers`.
#[derive(Subcommand, Debug)]
pub enum PeersCommand {
    /// Remember an address where a device can be reached
    Addr {
        /// The device: its name, its id, or a unique prefix of its id
        id: String,
        /// host:port
        addr: String,
    },
    /// Revoke a device: disconnect it now and refuse it from then on
    Remove {
        /// The device: its name, its id, or a unique prefix of its id
        id: String,
        /// Revoke it with the circle's recovery key (read from standard input): for a lost
        /// device that started the circle, or one that revoked this device
        #[arg(long)]
        recovery: bool,
        /// With --recovery: another device of yours that the lost one revoked, to take back
        /// (this device always is); repeat for several
        #[arg(long, value_name = "ID", requires = "recovery")]
        restore: Vec<String>,
    },
    /// Show the circle's recovery key, once, on the device that started the circle
    RecoveryKey,
}

/// `--feeling` as typed: a number, or empty for none.
#[derive(Clone, Copy, Debug)]
pub struct FeelingArg(pub Option<u8>);

fn feeling_arg(text: &str) -> Result<FeelingArg, String> {
    if text.trim().is_empty() {
        return Ok(FeelingArg(None));
    }
    text.trim()
        .parse::<u8>()
        .map(|n| FeelingArg(Some(n)))
        .map_err(|_| format!("{text:?} is not a number from 1 to 5"))
}

/// Scale as typed on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScaleArg {
    /// An everyday stumble
    Micro,
    /// A setback that shakes a plan or a season
    Macro,
}

/// Outcome as typed on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutcomeArg {
    /// It went better
    Better,
    /// No change
    Same,
    /// It went worse
    Worse,
}

/// Export formats.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ExportFormat {
    /// The documented, importable JSON schema
    Json,
    /// A diary to read
    Markdown,
}

/// Fields shared by `log` and `edit`.
#[derive(Args, Debug, Default)]
pub struct FieldArgs {
    /// Area of life, such as work or health ("" clears it when editing)
    #[arg(long)]
    pub area: Option<String>,
    /// A tag; repeat for more
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// How hard it hit, 1 (a scratch) to 5 (floored); "" clears it in edit
    #[arg(long, value_name = "1-5", value_parser = feeling_arg)]
    pub feeling: Option<FeelingArg>,
    /// The day it happened: YYYY-MM-DD, today, yesterday, or Nd / Nw ago (3d, 2w)
    #[arg(long = "on", value_name = "DATE")]
    pub on: Option<String>,
    /// What did this teach me about my next level?
    #[arg(long)]
    pub lesson: Option<String>,
    /// What muscle is this moment building in me?
    #[arg(long)]
    pub muscle: Option<String>,
    /// How can I use this instead of resenting it?
    #[arg(long = "use", value_name = "USE")]
    pub use_it: Option<String>,
    /// The next step to try
    #[arg(long)]
    pub next: Option<String>,
}

/// `failup log`.
#[derive(Args, Debug)]
pub struct LogArgs {
    /// What happened (read from standard input when piped, or from $EDITOR on a terminal)
    pub text: Vec<String>,
    /// A big setback, not an everyday one
    #[arg(long = "macro")]
    pub is_macro: bool,
    #[command(flatten)]
    pub fields: FieldArgs,
    /// Share it at once with this partner
    #[arg(long = "share", value_name = "LABEL")]
    pub share: Option<String>,
    /// Open the newest unfinished entry kept in this home (one the editor left, or one that
    /// was refused) in the editor again
    #[arg(long)]
    pub resume: bool,
}

/// `failup list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only setbacks on or after this day
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only setbacks on or before this day
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Only entries with this tag; repeat to require several
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only entries in this area
    #[arg(long)]
    pub area: Option<String>,
    /// Only micro or only macro setbacks
    #[arg(long, value_enum)]
    pub scale: Option<ScaleArg>,
    /// Only open loops: no lesson yet, or no next step tried
    #[arg(long)]
    pub open: bool,
    /// Only entries containing every one of these words in any text field
    #[arg(long, value_name = "WORDS")]
    pub search: Option<String>,
    /// Show at most N entries
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// `failup reflect`.
#[derive(Args, Debug)]
pub struct ReflectArgs {
    /// Entry id or any unique prefix of it, `last`, or `@N` (row N of the last list)
    #[arg(add = clap_complete::ArgValueCompleter::new(crate::complete::entries))]
    pub id: String,
    /// What did this teach me about my next level?
    #[arg(long)]
    pub lesson: Option<String>,
    /// What muscle is this moment building in me?
    #[arg(long)]
    pub muscle: Option<String>,
    /// How can I use this instead of resenting it?
    #[arg(long = "use", value_name = "USE")]
    pub use_it: Option<String>,
}

/// `failup edit`.
#[derive(Args, Debug)]
pub struct EditArgs {
    /// Entry id or any unique prefix of it, `last`, or `@N` (row N of the last list)
    #[arg(add = clap_complete::ArgValueCompleter::new(crate::complete::entries))]
    pub id: String,
    /// New text
    #[arg(long)]
    pub text: Option<String>,
    /// New scale
    #[arg(long, value_enum)]
    pub scale: Option<ScaleArg>,
    /// Remove a tag; repeat for more
    #[arg(long = "untag", value_name = "TAG")]
    pub untag: Vec<String>,
    #[command(flatten)]
    pub fields: FieldArgs,
}
