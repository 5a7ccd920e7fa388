//! The journal as a command reaches it: a node opened here on the store, or a running daemon
//! (which holds the node) over the control socket. Either way the same [`Request`] goes to the
//! same `Node::execute`, so every command behaves the same; a failure arrives with its kind,
//! which decides the exit code ([`failure`]).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use failup_daemon::control::{Client, Request, Response, ShareInfo};
use failup_journal::{Entry, EntryId, EntryPatch, Filter, NewEntry};
use failup_node::{ErrorKind, Failure, Node};
use failup_store::{CheckReport, ImportReport, Store};
use jiff::Timestamp;
use jiff::civil::Date;

/// A node opened by this process, or a running daemon's.
pub enum Journal {
    /// Opened here.
    Local(Box<Node>),
    /// Held by a running daemon.
    Daemon(Client),
}

/// A failure as an error of this binary: one that says a device could not be reached exits 3,
/// the others 1.
pub(crate) fn failure(f: Failure) -> anyhow::Error {
    match f.kind {
        ErrorKind::Unreachable => anyhow::Error::new(crate::Unreachable(f.message)),
        _ => anyhow!(f.message),
    }
}

fn unexpected(r: Response) -> anyhow::Error {
    match r {
        Response::Error(f) => failure(f),
        other => anyhow!("the daemon answered unexpectedly: {other:?}"),
    }
}

/// Opens a node on the store of `home`, for a command run with no daemon.
fn local_node(home: &Path, store_file: &str, wait: Duration) -> Result<Node> {
    let store = Store::open(&home.join(store_file), wait)?;
    let identity = failup_net::Identity::load_or_create(&home.join(crate::network::KEY_FILE))?;
    let config = failup_node::Config {
        signer: std::sync::Arc::new(identity.signer()?),
        name: crate::network::host_name(),
        advertise: Vec::new(),
        networked: false,
    };
    Node::open(store, config).map_err(|e| failure(e.to_failure()))
}

impl Journal {
    /// The daemon of `home` if one answers, else a node opened here.
    pub fn open(home: &Path, store_file: &str, wait: Duration) -> Result<Journal> {
        if let Some(client) = Client::connect(home) {
            return Ok(Journal::Daemon(client));
        }
        Ok(Journal::Local(Box::new(local_node(
            home, store_file, wait,
        )?)))
    }

    /// Carries out `request`, here or in the daemon, waiting at most `timeout` for a daemon
    /// (none: as long as it takes). `now` is this command's clock.
    pub fn call_within(
        &mut self,
        request: Request,
        now: Timestamp,
        timeout: Option<Duration>,
    ) -> Result<Response> {
        let response = match self {
            Journal::Local(node) => node
                .execute(request, now)
                .unwrap_or_else(|e| Response::Error(e.to_failure())),
            Journal::Daemon(c) => c.call(&request, timeout).context("talking to the daemon")?,
        };
        match response {
            Response::Error(f) => Err(failure(f)),
            r => Ok(r),
        }
    }

    /// Carries out `request`, here or in the daemon.
    pub fn call(&mut self, request: Request) -> Result<Response> {
        self.call_within(request, Timestamp::now(), None)
    }

    /// This person's shared entries, with whom and their comments.
    pub fn shares(&mut self) -> Result<Vec<ShareInfo>> {
        match self.call(Request::Shares)? {
            Response::Shares(list) => Ok(list),
            r => Err(unexpected(r)),
        }
    }

    /// Logs a new entry.
    pub fn log(&mut self, new: NewEntry, now: Timestamp, today: Date) -> Result<Entry> {
        let request = Request::Log {
            new,
            now_ms: now.as_millisecond(),
            today: today.to_string(),
        };
        match self.call(request)? {
            Response::Entry(e) => Ok(e),
            r => Err(unexpected(r)),
        }
    }

    /// Changes an entry.
    pub fn update(&mut self, id: EntryId, patch: EntryPatch, now: Timestamp) -> Result<Entry> {
        let request = Request::Update {
            id,
            patch,
            now_ms: now.as_millisecond(),
        };
        match self.call(request)? {
            Response::Entry(e) => Ok(e),
            r => Err(unexpected(r)),
        }
    }

    /// Deletes an entry, taking it out of every space it is shared in.
    pub fn delete(&mut self, id: EntryId, now: Timestamp) -> Result<Entry> {
        let request = Request::Delete {
            id,
            now_ms: now.as_millisecond(),
        };
        match self.call(request)? {
            Response::Entry(e) => Ok(e),
            r => Err(unexpected(r)),
        }
    }

    /// An entry by id.
    pub fn get(&mut self, id: EntryId) -> Result<Option<Entry>> {
        match self.call(Request::Get { id })? {
            Response::MaybeEntry(e) => Ok(e),
            r => Err(unexpected(r)),
        }
    }

    /// The entry an id prefix names.
    pub fn resolve(&mut self, prefix: &str) -> Result<EntryId> {
        let request = Request::Resolve {
            prefix: prefix.to_owned(),
        };
        match self.call(request)? {
            Response::Id(id) => Ok(id),
            r => Err(unexpected(r)),
        }
    }

    /// Entries matching a filter, newest first.
    pub fn list(&mut self, filter: &Filter, limit: Option<usize>) -> Result<Vec<Entry>> {
        let request = Request::List {
            filter: filter.clone(),
            limit: limit.map(|l| l as u64),
        };
        match self.call(request)? {
            Response::Entries(e) => Ok(e),
            r => Err(unexpected(r)),
        }
    }

    /// Every entry between two days, oldest first.
    pub fn scan(&mut self, since: Option<Date>, until: Option<Date>) -> Result<Vec<Entry>> {
        let request = Request::Scan {
            since: since.map(|d| d.to_string()),
            until: until.map(|d| d.to_string()),
        };
        match self.call(request)? {
            Response::Entries(e) => Ok(e),
            r => Err(unexpected(r)),
        }
    }

    /// Imports entries, skipping those already here.
    pub fn import(&mut self, entries: Vec<Entry>, now: Timestamp) -> Result<ImportReport> {
        let request = Request::Import {
            entries,
            now_ms: now.as_millisecond(),
        };
        match self.call(request)? {
            Response::Imported { added, skipped } => Ok(ImportReport {
                added: added as usize,
                skipped: skipped as usize,
            }),
            r => Err(unexpected(r)),
        }
    }

    /// Rewrites the store compactly.
    pub fn compact(&mut self) -> Result<()> {
        match self.call(Request::Compact)? {
            Response::Done => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    /// The prompts the journal holds for every device of the person, by name.
    pub fn prompts(&mut self) -> Result<std::collections::BTreeMap<String, String>> {
        match self.call(Request::Prompts)? {
            Response::Prompts(p) => Ok(p),
            r => Err(unexpected(r)),
        }
    }

    /// Sets a prompt for every device of the person, or removes it with `None`.
    pub fn set_prompt(&mut self, key: &str, value: Option<String>) -> Result<()> {
        match self.call(Request::SetPrompt {
            key: key.to_owned(),
            value,
        })? {
            Response::Done => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    /// Checks every document against the index.
    pub fn check(&mut self) -> Result<CheckReport> {
        match self.call(Request::Check)? {
            Response::Checked {
                documents,
                entries,
                mismatches,
            } => Ok(CheckReport {
                documents: documents as usize,
                entries: entries as usize,
                mismatches: mismatches as usize,
            }),
            r => Err(unexpected(r)),
        }
    }
}
