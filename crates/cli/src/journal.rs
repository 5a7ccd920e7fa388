//! The journal as a command reaches it: the store opened directly, or a running daemon (which
//! holds the store) over the control socket. Both run the same store code, so every command
//! behaves the same either way; errors arrive as the store's own messages.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use failup_daemon::control::{Client, Request, Response};
use failup_journal::{Entry, EntryId, EntryPatch, Filter, NewEntry};
use failup_store::{CheckReport, ImportReport, Order, Store};
use jiff::Timestamp;
use jiff::civil::Date;

/// The store, opened here or held by the daemon.
pub enum Journal {
    /// Opened by this process.
    Local(Box<Store>),
    /// Held by a running daemon.
    Daemon(Client),
}

fn unexpected(r: Response) -> anyhow::Error {
    match r {
        Response::Error(e) => anyhow!(e),
        other => anyhow!("the daemon answered unexpectedly: {other:?}"),
    }
}

impl Journal {
    /// The daemon of `home` if one answers, else the store opened here.
    pub fn open(home: &Path, store_file: &str, wait: Duration) -> Result<Journal> {
        if let Some(client) = Client::connect(home) {
            return Ok(Journal::Daemon(client));
        }
        Ok(Journal::Local(Box::new(Store::open(
            &home.join(store_file),
            wait,
        )?)))
    }

    fn call(&mut self, request: Request) -> Result<Response> {
        match self {
            Journal::Daemon(c) => c.call(&request, None).context("talking to the daemon"),
            Journal::Local(_) => bail!("internal: no daemon"),
        }
    }

    /// This person's shared entries, with whom and their comments.
    pub fn shares(&mut self) -> Result<Vec<failup_daemon::control::ShareInfo>> {
        match self {
            Journal::Local(s) => failup_daemon::sharing::shares(s).map_err(|e| anyhow!(e)),
            Journal::Daemon(_) => match self.call(Request::Shares)? {
                Response::Shares(list) => Ok(list),
                r => Err(unexpected(r)),
            },
        }
    }

    /// `Store::log`.
    pub fn log(&mut self, new: NewEntry, now: Timestamp, today: Date) -> Result<Entry> {
        match self {
            Journal::Local(s) => Ok(s.log(new, now, today)?),
            Journal::Daemon(_) => match self.call(Request::Log {
                new,
                now_ms: now.as_millisecond(),
                today: today.to_string(),
            })? {
                Response::Entry(e) => Ok(e),
                r => Err(unexpected(r)),
            },
        }
    }

    /// `Store::update`.
    pub fn update(&mut self, id: EntryId, patch: EntryPatch, now: Timestamp) -> Result<Entry> {
        match self {
            Journal::Local(s) => Ok(s.update(id, patch, now)?),
            Journal::Daemon(_) => match self.call(Request::Update {
                id,
                patch,
                now_ms: now.as_millisecond(),
            })? {
                Response::Entry(e) => Ok(e),
                r => Err(unexpected(r)),
            },
        }
    }

    /// `Store::delete`.
    pub fn delete(&mut self, id: EntryId, now: Timestamp) -> Result<Entry> {
        match self {
            Journal::Local(s) => Ok(s.delete(id, now)?),
            Journal::Daemon(_) => match self.call(Request::Delete {
                id,
                now_ms: now.as_millisecond(),
            })? {
                Response::Entry(e) => Ok(e),
                r => Err(unexpected(r)),
            },
        }
    }

    /// `Store::get`.
    pub fn get(&mut self, id: EntryId) -> Result<Option<Entry>> {
        match self {
            Journal::Local(s) => Ok(s.get(id)?),
            Journal::Daemon(_) => match self.call(Request::Get { id })? {
                Response::MaybeEntry(e) => Ok(e),
                r => Err(unexpected(r)),
            },
        }
    }

    /// `Store::resolve`.
    pub fn resolve(&mut self, prefix: &str) -> Result<EntryId> {
        match self {
            Journal::Local(s) => Ok(s.resolve(prefix)?),
            Journal::Daemon(_) => match self.call(Request::Resolve {
                prefix: prefix.to_owned(),
            })? {
                Response::Id(id) => Ok(id),
                r => Err(unexpected(r)),
            },
        }
    }

    /// `Store::list`.
    pub fn list(&mut self, filter: &Filter, limit: Option<usize>) -> Result<Vec<Entry>> {
        match self {
            Journal::Local(s) => Ok(s.list(filter, limit)?),
            Journal::Daemon(_) => match self.call(Request::List {
                filter: filter.clone(),
                limit: limit.map(|l| l as u64),
            })? {
                Response::Entries(e) => Ok(e),
                r => Err(unexpected(r)),
            },
        }
    }

    /// Every entry between two days, oldest first.
    pub fn scan(&mut self, since: Option<Date>, until: Option<Date>) -> Result<Vec<Entry>> {
        match self {
            Journal::Local(s) => {
                let mut all = Vec::new();
                s.scan(Order::OldestFirst, since, until, |e| {
                    all.push(e);
                    std::ops::ControlFlow::Continue(())
                })?;
                Ok(all)
            }
            Journal::Daemon(_) => match self.call(Request::Scan {
                since: since.map(|d| d.to_string()),
                until: until.map(|d| d.to_string()),
            })? {
                Response::Entries(e) => Ok(e),
                r => Err(unexpected(r)),
            },
        }
    }

    /// `Store::import`.
    pub fn import(&mut self, entries: Vec<Entry>, now: Timestamp) -> Result<ImportReport> {
        match self {
            Journal::Local(s) => Ok(s.import(entries, now)?),
            Journal::Daemon(_) => match self.call(Request::Import {
                entries,
                now_ms: now.as_millisecond(),
            })? {
                Response::Imported { added, skipped } => Ok(ImportReport {
                    added: added as usize,
                    skipped: skipped as usize,
                }),
                r => Err(unexpected(r)),
            },
        }
    }

    /// `Store::compact`.
    pub fn compact(&mut self) -> Result<()> {
        match self {
            Journal::Local(s) => Ok(s.compact()?),
            Journal::Daemon(_) => match self.call(Request::Compact)? {
                Response::Done => Ok(()),
                r => Err(unexpected(r)),
            },
        }
    }

    /// `Store::check`.
    pub fn check(&mut self) -> Result<CheckReport> {
        match self {
            Journal::Local(s) => Ok(s.check()?),
            Journal::Daemon(_) => match self.call(Request::Check)? {
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
            },
        }
    }
}
