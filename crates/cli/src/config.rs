//! The config file, `config.toml` in the home, and where each setting's value comes from.
//!
//! A setting is looked up in this order, and the first place that has it wins: the command line
//! (where the setting has a flag), then the environment (`FAILUP_*`), then the file, then the
//! default. `failup config set` edits the file with `toml_edit`, so comments and the order a
//! person gave their file survive.
//!
//! Unknown keys and values of the wrong type are errors, not silently ignored: a typo such as
//! `colour = "never"` would otherwise look like a setting that does nothing. The `config`
//! commands themselves still run on such a file, so `failup config unset colour` can fix it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use failup_journal::text::{Lines, check_plain, shown};
use failup_journal::{REFRAME_QUESTIONS, ReframeField};
use toml_edit::{DocumentMut, Item, Table, Value};

/// The config file's name in the home.
pub use failup_home::CONFIG_FILE;

/// Longest reframe question, in characters.
const MAX_QUESTION: usize = 200;
/// Longest story template, in bytes.
const MAX_STORY_TEMPLATE: usize = 4000;
/// Longest device name, in characters.
const MAX_NAME: usize = 64;

/// How a setting's text is checked and stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A device name: one line of at most [`MAX_NAME`] characters.
    Name,
    /// `host:port`.
    Addr,
    /// `host:port` on a loopback address.
    Loopback,
    /// `true` or `false`.
    Bool,
    /// A shell command.
    Command,
    /// `auto`, `always` or `never`.
    Color,
    /// One line of at most [`MAX_QUESTION`] characters.
    Question,
    /// Free text of at most [`MAX_STORY_TEMPLATE`] bytes.
    Story,
    /// A relay code, as `failup relay` prints it.
    Relay,
}

/// One setting.
struct Key {
    name: &'static str,
    kind: Kind,
    env: Option<&'static str>,
    help: &'static str,
}

/// Every setting, in the order `config list` shows them.
const KEYS: [Key; 13] = [
    Key {
        name: "name",
        kind: Kind::Name,
        env: Some("FAILUP_NAME"),
        help: "what other devices call this one (default: the host name)",
    },
    Key {
        name: "listen",
        kind: Kind::Addr,
        env: Some("FAILUP_LISTEN"),
        help: "address and UDP port the daemon listens on",
    },
    Key {
        name: "ui.listen",
        kind: Kind::Loopback,
        env: Some("FAILUP_UI_LISTEN"),
        help: "address and TCP port of the web interface (loopback only; failup ui opens it)",
    },
    Key {
        name: "mdns",
        kind: Kind::Bool,
        env: Some("FAILUP_MDNS"),
        help: "announce and look for devices on the local network",
    },
    Key {
        name: "portmap",
        kind: Kind::Bool,
        env: Some("FAILUP_PORTMAP"),
        help: "ask the home router to forward the daemon's port (UPnP, NAT-PMP, PCP)",
    },
    Key {
        name: "relay",
        kind: Kind::Relay,
        env: Some("FAILUP_RELAY"),
        help: "a relay of yours to reach your devices through when nothing else works (the code `failup relay` prints)",
    },
    Key {
        name: "introduce-partners",
        kind: Kind::Bool,
        env: Some("FAILUP_INTRODUCE_PARTNERS"),
        help: "help partners' devices and yours meet directly across routers (they learn from this device where it sees the other)",
    },
    Key {
        name: "editor",
        kind: Kind::Command,
        env: Some("FAILUP_EDITOR"),
        help: "editor for log and edit (default: $VISUAL, then $EDITOR, then vi)",
    },
    Key {
        name: "color",
        kind: Kind::Color,
        env: Some("FAILUP_COLOR"),
        help: "auto (on a terminal, unless NO_COLOR is set), always or never",
    },
    Key {
        name: "prompts.lesson",
        kind: Kind::Question,
        env: None,
        help: "the first reframe question",
    },
    Key {
        name: "prompts.muscle",
        kind: Kind::Question,
        env: None,
        help: "the second reframe question",
    },
    Key {
        name: "prompts.use",
        kind: Kind::Question,
        env: None,
        help: "the third reframe question",
    },
    Key {
        name: "prompts.story",
        kind: Kind::Story,
        env: None,
        help: "text the editor starts a new story with (default: empty)",
    },
];

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nobody set it.
    Default,
    /// The config file.
    File,
    /// An environment variable.
    Env(&'static str),
    /// The journal, synced across the person's devices (the prompts).
    Journal,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File => f.write_str("file"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Journal => f.write_str("journal, on all your devices"),
        }
    }
}

/// When to colour output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always, even into a pipe (for `less -R`).
    Always,
    /// Never.
    Never,
}

/// A relay code with its token left out.
fn masked_relay(code: &str) -> String {
    match code.parse::<failup_relay::RelayCode>() {
        Ok(c) => format!("{}.(token hidden)@{}", c.relay, c.addr),
        Err(_) => code.to_owned(),
    }
}

fn key(name: &str) -> Result<&'static Key> {
    KEYS.iter().find(|k| k.name == name).with_context(|| {
        let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        format!("unknown setting {name:?} (known: {})", known.join(", "))
    })
}

fn default_of(k: &Key) -> String {
    match k.name {
        "listen" => {
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, failup_daemon::DEFAULT_PORT))
                .to_string()
        }
        "ui.listen" => failup_web::DEFAULT_LISTEN.into(),
        "mdns" | "portmap" => "true".into(),
        "relay" => String::new(),
        "introduce-partners" => "false".into(),
        "color" => "auto".into(),
        "name" => crate::network::host_name(),
        "editor" => std::env::var("VISUAL")
            .or_else(|_| std::env::var("EDITOR"))
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "vi".into()),
        name => REFRAME_QUESTIONS
            .iter()
            .find(|(f, _)| prompt_key(*f) == name)
            .map(|(_, q)| (*q).to_owned())
            .unwrap_or_default(),
    }
}

/// The setting that holds a reframe question.
fn prompt_key(field: ReframeField) -> &'static str {
    match field {
        ReframeField::Lesson => "prompts.lesson",
        ReframeField::Muscle => "prompts.muscle",
        ReframeField::Use => "prompts.use",
    }
}

/// Checks `text` as a value of `k` and returns it in the form the file stores.
fn parse_value(k: &Key, text: &str) -> Result<Value> {
    let one_line = |max: usize, what: &str| -> Result<Value> {
        let t = text.trim();
        if t.is_empty() {
            bail!("{} cannot be empty", k.name);
        }
        // One line: a newline or a tab is refused with every character that drives a
        // terminal, naming the character.
        check_plain(k.name, t, Lines::One)?;
        if t.chars().count() > max {
            bail!("{} is longer than {max} characters ({what})", k.name);
        }
        Ok(Value::from(t))
    };
    match k.kind {
        Kind::Name => one_line(MAX_NAME, "a device name"),
        Kind::Question => one_line(MAX_QUESTION, "a question"),
        Kind::Command => one_line(1000, "a command"),
        Kind::Addr => {
            let t = text.trim();
            t.parse::<SocketAddr>().with_context(|| {
                format!(
                    "{t:?} is not an address for {} (use IP:port, e.g. [::]:7676)",
                    k.name
                )
            })?;
            Ok(Value::from(t))
        }
        Kind::Loopback => {
            let t = text.trim();
            let addr = t.parse::<SocketAddr>().with_context(|| {
                format!(
                    "{t:?} is not an address for {} (use IP:port, e.g. {})",
                    k.name,
                    failup_web::DEFAULT_LISTEN
                )
            })?;
            if !addr.ip().is_loopback() {
                bail!(
                    "{} must be a loopback address (127.0.0.1 or [::1]), not {t}: other machines \
                     must not reach your journal",
                    k.name
                );
            }
            Ok(Value::from(t))
        }
        Kind::Relay => {
            let t = text.trim();
            // The code holds the relay's token: the error says what is wrong, not the code.
            t.parse::<failup_relay::RelayCode>()
                .map_err(|e| anyhow::anyhow!("{}: {e}", k.name))?;
            Ok(Value::from(t))
        }
        Kind::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Ok(Value::from(true)),
            "false" | "off" | "no" | "0" => Ok(Value::from(false)),
            _ => bail!("{} must be true or false, not {text:?}", k.name),
        },
        Kind::Color => match text.trim() {
            "auto" | "always" | "never" => Ok(Value::from(text.trim())),
            _ => bail!("{} must be auto, always or never, not {text:?}", k.name),
        },
        Kind::Story => {
            if text.len() > MAX_STORY_TEMPLATE {
                bail!("{} is longer than {MAX_STORY_TEMPLATE} bytes", k.name);
            }
            // It starts every new story, which would then be refused.
            check_plain(k.name, text, Lines::Many)?;
            Ok(Value::from(text))
        }
    }
}

/// A stored value as text, checked against its key.
fn value_text(k: &Key, item: &Item) -> Result<String> {
    let text = match (k.kind, item.as_value()) {
        (Kind::Bool, Some(Value::Boolean(b))) => b.value().to_string(),
        (Kind::Bool, _) => bail!("{} must be true or false", k.name),
        (_, Some(Value::String(s))) => s.value().clone(),
        _ => bail!("{} must be a string", k.name),
    };
    parse_value(k, &text)?;
    Ok(text)
}

/// The config file as read, with edits not yet saved, and the prompts the journal holds for
/// every device of the person ([`Config::with_synced`]).
#[derive(Clone)]
pub struct Config {
    path: PathBuf,
    doc: DocumentMut,
    /// The journal's prompts by name (`lesson`, `muscle`, `use`, `story`).
    synced: std::collections::BTreeMap<String, String>,
}

impl Config {
    /// Reads the home's config file; a missing file is an empty one. Only TOML syntax is
    /// checked here; [`Config::validate`] checks keys and values.
    pub fn load(home: &Path) -> Result<Config> {
        let path = home.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // A home not made yet has no settings; whether it can be made is for the command
            // that needs it to find out and report.
            Err(_) if !home.is_dir() => String::new(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let doc = text.parse::<DocumentMut>().map_err(|e| {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid TOML").to_owned();
            anyhow::anyhow!("{} is not valid TOML: {first}", path.display())
        })?;
        Ok(Config {
            path,
            doc,
            synced: Default::default(),
        })
    }

    /// No settings, for the file of `home`: what `doctor` works with when the file does not
    /// read.
    pub fn empty(home: &Path) -> Config {
        Config {
            path: home.join(CONFIG_FILE),
            doc: DocumentMut::new(),
            synced: Default::default(),
        }
    }

    /// This config with the journal's prompts, which apply where the file sets none.
    pub fn with_synced(mut self, synced: std::collections::BTreeMap<String, String>) -> Config {
        self.synced = synced;
        self
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn item(&self, name: &str) -> Option<&Item> {
        match name.split_once('.') {
            Some((table, key)) => self.doc.get(table)?.get(key),
            None => self.doc.get(name),
        }
    }

    /// Every key in the file, dotted.
    fn file_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for (k, item) in self.doc.iter() {
            match item.as_table_like() {
                Some(t) => {
                    for (sub, _) in t.iter() {
                        keys.push(format!("{k}.{sub}"));
                    }
                }
                _ => keys.push(k.to_owned()),
            }
        }
        keys
    }

    /// Fails on the first unknown key or bad value in the file, naming the file.
    pub fn validate(&self) -> Result<()> {
        for name in self.file_keys() {
            let k = key(&name).with_context(|| format!("in {}", self.path.display()))?;
            if let Some(item) = self.item(&name) {
                value_text(k, item).with_context(|| format!("in {}", self.path.display()))?;
            }
        }
        self.distinct_questions()
            .with_context(|| format!("in {}", self.path.display()))
    }

    /// The editor template tells sections apart by their headings: two questions alike, or a
    /// question spelled like a fixed heading, would make one answer overwrite another.
    pub fn distinct_questions(&self) -> Result<()> {
        let questions = self.questions()?;
        let mut seen: Vec<String> = crate::editor::fixed_headings()
            .map(str::to_lowercase)
            .collect();
        for (field, q) in &questions {
            let q = q.trim().to_lowercase();
            if seen.contains(&q) {
                let key = prompt_key(*field);
                bail!(
                    "{key} {q:?} is the same as another heading of the editor template; give it its own words"
                );
            }
            seen.push(q);
        }
        Ok(())
    }

    /// The value in force for `name` and where it came from.
    pub fn get(&self, name: &str) -> Result<(String, Source)> {
        let k = key(name)?;
        if let Some(var) = k.env {
            if let Some(text) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
                let v = parse_value(k, &text).with_context(|| format!("in ${var}"))?;
                let text = match v {
                    Value::Boolean(b) => b.value().to_string(),
                    Value::String(s) => s.value().clone(),
                    other => other.to_string(),
                };
                return Ok((text, Source::Env(var)));
            }
        }
        match self.item(name) {
            Some(item) => Ok((
                value_text(k, item).with_context(|| format!("in {}", self.path.display()))?,
                Source::File,
            )),
            None => match k
                .name
                .strip_prefix("prompts.")
                .and_then(|p| self.synced.get(p))
            {
                Some(v) => Ok((v.clone(), Source::Journal)),
                None => Ok((default_of(k), Source::Default)),
            },
        }
    }

    /// The value in force for `name`, without its source.
    pub fn value(&self, name: &str) -> Result<String> {
        Ok(self.get(name)?.0)
    }

    /// A boolean setting.
    pub fn flag(&self, name: &str) -> Result<bool> {
        Ok(self.value(name)? == "true")
    }

    /// Sets `name` in the file (not yet saved), after checking the value.
    pub fn set(&mut self, name: &str, text: &str) -> Result<()> {
        let k = key(name)?;
        let value = parse_value(k, text)?;
        match name.split_once('.') {
            Some((table, sub)) => {
                let t = self
                    .doc
                    .entry(table)
                    .or_insert_with(|| Item::Table(Table::new()));
                let Some(t) = t.as_table_like_mut() else {
                    bail!("{table} in {} is not a table", self.path.display());
                };
                t.insert(sub, Item::Value(value));
            }
            None => {
                self.doc.insert(name, Item::Value(value));
            }
        }
        self.distinct_questions()
    }

    /// Removes `name` from the file (not yet saved), so its default applies again. Unknown keys
    /// can be removed too: that is how a typo is fixed.
    pub fn unset(&mut self, name: &str) -> Result<bool> {
        let removed = match name.split_once('.') {
            Some((table, sub)) => self
                .doc
                .get_mut(table)
                .and_then(Item::as_table_like_mut)
                .and_then(|t| t.remove(sub))
                .is_some(),
            None => self.doc.remove(name).is_some(),
        };
        if !removed {
            key(name)?;
        }
        Ok(removed)
    }

    /// Writes the file beside itself and renames it into place, readable by the owner alone.
    pub fn save(&self) -> Result<()> {
        let text = self.doc.to_string();
        crate::write_atomically(&self.path, |w| w.write_all(text.as_bytes()))
    }

    /// The file's keys that are not settings, for `config list` to point out.
    pub fn unknown_keys(&self) -> Vec<String> {
        self.file_keys()
            .into_iter()
            .filter(|k| key(k).is_err())
            .collect()
    }

    /// The three reframe questions in force, in template order.
    pub fn questions(&self) -> Result<[(ReframeField, String); 3]> {
        let [a, b, c] = REFRAME_QUESTIONS.map(|(f, _)| f);
        Ok([
            (a, self.value(prompt_key(a))?),
            (b, self.value(prompt_key(b))?),
            (c, self.value(prompt_key(c))?),
        ])
    }
}

/// Checks a value given for `name` on the command line by the rules of the file, and returns it
/// as it will be used (trimmed).
pub fn check(name: &str, text: &str) -> Result<String> {
    Ok(match parse_value(key(name)?, text)? {
        Value::String(s) => s.value().clone(),
        other => other.to_string(),
    })
}

/// A value as `config list` shows it: TOML's spelling, so it can be pasted into the file.
pub fn display(name: &str, value: &str) -> String {
    match key(name) {
        Ok(k) if k.kind == Kind::Bool => value.to_owned(),
        _ => Value::from(value).to_string(),
    }
}

/// Every setting's name and help, in order.
pub fn keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    KEYS.iter().map(|k| (k.name, k.help))
}

/// `failup config`.
pub(crate) fn command(
    ctx: &crate::Ctx,
    cmd: crate::args::ConfigCommand,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    use crate::args::ConfigCommand as C;
    if let C::Set { key, .. } | C::Unset { key } = &cmd {
        if let Some(name) = key.strip_prefix("prompts.") {
            let value = match &cmd {
                C::Set { value, .. } => Some(value.as_str()),
                _ => None,
            };
            return set_prompt(ctx, key, name, value);
        }
    }
    let with_synced = ctx.config.clone().with_synced(synced_prompts(ctx));
    let config = &with_synced;
    match cmd {
        C::List => {
            let mut rows = Vec::new();
            for (key, help) in keys() {
                // A bad value is listed with its error, so the list shows what to fix.
                let (value, source) = match config.get(key) {
                    Ok((v, s)) => (v, s.to_string()),
                    Err(e) => (String::new(), format!("error: {e:#}")),
                };
                // The relay's token is a secret: a list (pasted into a bug report, say) shows
                // which relay and not the token; `config get relay` gives it whole.
                let value = match key {
                    "relay" => masked_relay(&value),
                    _ => value,
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
                crate::print_json(out, &v, crate::JsonLayout::Pretty)?;
            } else {
                for (key, value, source, _) in &rows {
                    let value = display(key, value);
                    // The source may be an error quoting what the file holds.
                    writeln!(out, "{}", shown(&format!("{key} = {value}  ({source})")))?;
                }
            }
            for k in ctx.config.unknown_keys() {
                eprintln!(
                    "warning: {} has an unknown setting {k:?}; remove it with `failup config unset {}`",
                    ctx.config.path().display(),
                    shown(&k)
                );
            }
        }
        C::Get { key } => {
            let (value, source) = config.get(&key)?;
            if ctx.json {
                crate::print_json(
                    out,
                    &serde_json::json!({"key": key, "value": value, "source": source.to_string()}),
                    crate::JsonLayout::Line,
                )?;
            } else {
                writeln!(out, "{}", shown(&value))?;
            }
        }
        C::Set { key, value } => {
            crate::ensure_home(&ctx.home)?;
            let mut config = Config::load(&ctx.home)?;
            config.set(&key, &value)?;
            config.save()?;
            let (now, source) = config.get(&key)?;
            if let Source::Env(var) = source {
                eprintln!(
                    "set {} in the file, but ${var} overrides it: {}",
                    shown(&key),
                    shown(&now)
                );
            } else if key == "relay" {
                eprintln!("set relay = {}", shown(&masked_relay(&now)));
            } else {
                eprintln!("set {} = {}", shown(&key), shown(&now));
            }
        }
        C::Unset { key } => {
            let mut config = Config::load(&ctx.home)?;
            if config.unset(&key)? {
                config.save()?;
                eprintln!("removed {} from {}", shown(&key), config.path().display());
            } else {
                eprintln!("{} was not set in {}", shown(&key), config.path().display());
            }
        }
        C::Path => writeln!(out, "{}", ctx.config.path().display())?,
    }
    Ok(())
}

/// The journal's prompts, for showing where a setting comes from; none if the home has no
/// journal yet (listing settings creates nothing) or it cannot be opened now (said once).
fn synced_prompts(ctx: &crate::Ctx) -> std::collections::BTreeMap<String, String> {
    if !ctx.home.join(crate::STORE_FILE).exists() {
        return Default::default();
    }
    match ctx.open().and_then(|mut j| j.prompts()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "warning: the journal's prompts cannot be read now: {}",
                crate::one_line(&e)
            );
            Default::default()
        }
    }
}

/// `config set|unset prompts.NAME`: the prompts live in the journal, so every device of the
/// person asks the same; a value in this device's config.toml, which would hide it here, is
/// moved out.
fn set_prompt(ctx: &crate::Ctx, key: &str, name: &str, value: Option<&str>) -> Result<()> {
    let value = value.map(|v| check(key, v)).transpose()?;
    let mut journal = ctx.open()?;
    let mut synced = journal.prompts()?;
    match &value {
        Some(v) => synced.insert(name.to_owned(), v.clone()),
        None => synced.remove(name),
    };
    let mut file = Config::load(&ctx.home)?;
    let was_in_file = file.unset(key)?;
    let file = file.with_synced(synced);
    file.distinct_questions()?;
    journal.set_prompt(name, value.clone())?;
    drop(journal);
    if was_in_file {
        file.save()?;
        eprintln!(
            "moved {} from {} into the journal",
            shown(key),
            file.path().display()
        );
    }
    match value {
        Some(v) => eprintln!("set {} = {} on all your devices", shown(key), shown(&v)),
        None => eprintln!(
            "unset {} on all your devices: the default applies again",
            shown(key)
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(CONFIG_FILE), text).expect("write");
        Config::load(dir.path()).expect("load")
    }

    #[test]
    fn set_keeps_comments_and_order() {
        let mut c = config("# mine\ncolor = \"never\" # quiet\n\n[prompts]\nuse = \"How?\"\n");
        c.set("mdns", "off").expect("set");
        c.set("prompts.lesson", "What now?").expect("set");
        let text = c.doc.to_string();
        assert!(
            text.starts_with("# mine\ncolor = \"never\" # quiet\n"),
            "{text}"
        );
        assert!(text.contains("mdns = false"), "{text}");
        assert!(text.contains("lesson = \"What now?\""), "{text}");
        assert_eq!(c.value("prompts.use").expect("use"), "How?");
    }

    #[test]
    fn bad_files_and_values_are_named() {
        let c = config("colour = \"never\"\n");
        assert!(format!("{:#}", c.validate().unwrap_err()).contains("unknown setting \"colour\""));
        let c = config("mdns = \"maybe\"\n");
        assert!(c.validate().is_err());
        let c = config("listen = \"nowhere\"\n");
        assert!(c.validate().is_err());
        let mut c = config("");
        assert!(c.set("color", "sometimes").is_err());
        assert!(c.set("prompts.lesson", "two\nlines").is_err());
        assert!(c.set("nope", "x").is_err());
        let err = c
            .set(
                "prompts.lesson",
                "What muscle is this moment building in me?",
            )
            .unwrap_err();
        assert!(format!("{err:#}").contains("the same as another heading"));
        assert!(c.set("prompts.use", "next step").is_err());
    }
}
