//! The control protocol between the `failup` command and a running daemon, over a Unix socket
//! in the home (proto/control.md). Each request is one frame, answered by one frame: a 4-byte
//! big-endian length and a postcard-encoded [`Request`] or [`Response`].
//!
//! Journal requests mirror the store's methods one for one, so a command behaves the same
//! whether it opened the store itself or asked the daemon, which owns the store while it runs.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use failup_journal::{Entry, EntryId, EntryPatch, Filter, NewEntry};
use serde::{Deserialize, Serialize};

/// Largest control frame, in bytes: an import of a large journal travels in one request.
pub const MAX_CONTROL_FRAME: u32 = 1 << 30;
/// The socket's file name in the home.
pub const SOCKET_FILE: &str = "control.sock";

/// A request to the daemon.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// `Store::log`.
    Log {
        /// What the person gave.
        new: NewEntry,
        /// Now, in milliseconds since the epoch.
        now_ms: i64,
        /// Today in the person's time zone, `YYYY-MM-DD`.
        today: String,
    },
    /// `Store::update`.
    Update {
        /// The entry.
        id: EntryId,
        /// The change.
        patch: EntryPatch,
        /// Now, in milliseconds since the epoch.
        now_ms: i64,
    },
    /// `Store::delete`.
    Delete {
        /// The entry.
        id: EntryId,
        /// Now, in milliseconds since the epoch.
        now_ms: i64,
    },
    /// `Store::get`.
    Get {
        /// The entry.
        id: EntryId,
    },
    /// `Store::resolve`.
    Resolve {
        /// An id prefix.
        prefix: String,
    },
    /// `Store::list`.
    List {
        /// The filter.
        filter: Filter,
        /// At most this many.
        limit: Option<u64>,
    },
    /// Every entry between two days, oldest first (`Store::scan`).
    Scan {
        /// First day, `YYYY-MM-DD`.
        since: Option<String>,
        /// Last day, `YYYY-MM-DD`.
        until: Option<String>,
    },
    /// `Store::import`.
    Import {
        /// The entries.
        entries: Vec<Entry>,
        /// Now, in milliseconds since the epoch.
        now_ms: i64,
    },
    /// `Store::compact`.
    Compact,
    /// `Store::check`.
    Check,
    /// The daemon's state.
    Status,
    /// Starts pairing: a one-time invite valid for `ttl_secs`.
    Invite {
        /// Seconds the invite stays valid.
        ttl_secs: u64,
    },
    /// Joins the circle of the device that made the invite.
    Join {
        /// The invite code.
        code: String,
        /// What to call the inviting device here.
        name: Option<String>,
    },
    /// The devices of this person's circle.
    Peers,
    /// Adds a known address of a device.
    PeerAddr {
        /// The device, as text.
        device: String,
        /// `host:port`.
        addr: String,
    },
    /// Revokes a device.
    PeerRemove {
        /// The device, as text (any unique prefix).
        device: String,
    },
    /// Syncs with every device now; answers when all are in sync or the time is up.
    Sync {
        /// Milliseconds to wait.
        timeout_ms: u64,
    },
    /// Starts sharing a space with an accountability partner: a one-time partner invite.
    PartnerInvite {
        /// Seconds the invite stays valid.
        ttl_secs: u64,
        /// What to call the partner here (their own name when absent).
        label: Option<String>,
    },
    /// Joins the space of the person who made a partner invite.
    PartnerJoin {
        /// The invite code.
        code: String,
        /// What to call the inviting person here.
        label: String,
    },
    /// The partners.
    Partners,
    /// Revokes a partner for good, on every device of the circle.
    PartnerRevoke {
        /// The partner's label.
        label: String,
    },
    /// Puts an entry into the space shared with a partner (or changes which fields show).
    Share {
        /// The entry.
        id: EntryId,
        /// The partner's label.
        with: String,
        /// Fields to share, comma-separated; every field when absent.
        only: Option<String>,
        /// Now, in milliseconds since the epoch.
        now_ms: i64,
    },
    /// Takes an entry out of the space shared with a partner.
    Unshare {
        /// The entry.
        id: EntryId,
        /// The partner's label.
        with: String,
    },
    /// What partners shared, newest first, with comments; marks it read.
    Feed {
        /// One partner only.
        partner: Option<String>,
        /// Now, in milliseconds since the epoch.
        now_ms: i64,
    },
    /// A comment under a shared entry (this person's or a partner's).
    Cheer {
        /// The entry, as any unique prefix of its id.
        id: String,
        /// The comment.
        text: String,
        /// Now, in milliseconds since the epoch.
        now_ms: i64,
    },
    /// Which of this person's entries are shared, with whom, and their comments.
    Shares,
}

/// A partner, as `failup partner list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartnerInfo {
    /// What this person calls them.
    pub label: String,
    /// Whether the partnership was revoked.
    pub revoked: bool,
    /// Their devices known here.
    pub devices: Vec<PeerInfo>,
    /// How many of this person's entries they can see.
    pub shared_by_me: u64,
    /// How many of theirs this person can see.
    pub shared_with_me: u64,
}

/// Who wrote a comment, and the comment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommentInfo {
    /// `None` for this person, else the partner's label.
    pub by: Option<String>,
    /// The comment.
    pub comment: failup_journal::space::Comment,
}

/// One entry a partner shared, as `failup feed` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedItem {
    /// The partner's label.
    pub partner: String,
    /// What they shared.
    pub entry: failup_journal::space::SharedEntry,
    /// Comments under it, oldest first, from both people.
    pub comments: Vec<CommentInfo>,
    /// Whether it, or a comment under it, is new since the feed was last read.
    pub new: bool,
}

/// One of this person's entries that is shared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareInfo {
    /// The entry.
    pub id: EntryId,
    /// The partners who see it.
    pub with: Vec<String>,
    /// Comments under it, oldest first, from both people.
    pub comments: Vec<CommentInfo>,
}

/// One device of the circle, as `failup peers` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The device id, as text.
    pub device: String,
    /// Its name.
    pub name: String,
    /// `self` for this device, `device` for another of this person's devices.
    pub role: String,
    /// Known addresses.
    pub addrs: Vec<String>,
    /// Whether a connection is up.
    pub connected: bool,
    /// When it was last connected (RFC 3339), if ever since the daemon started.
    pub last_seen: Option<String>,
    /// When the last sync with it completed (RFC 3339), if ever since the daemon started.
    pub last_sync: Option<String>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// What `failup status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusInfo {
    /// This device's id.
    pub device: String,
    /// Addresses the daemon listens on.
    pub listen: Vec<String>,
    /// Connected devices, as text.
    pub connected: Vec<String>,
    /// Devices of the circle not known to be in sync.
    pub out_of_sync: Vec<String>,
    /// Documents this device holds.
    pub documents: u64,
    /// Sync frames sent since the daemon started.
    pub frames_sent: u64,
    /// Sync bytes sent since the daemon started, frame headers included.
    pub bytes_sent: u64,
}

/// The daemon's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// The request failed; the text is the error as the store would print it.
    Error(String),
    /// An entry.
    Entry(Entry),
    /// An entry, or none.
    MaybeEntry(Option<Entry>),
    /// An id.
    Id(EntryId),
    /// Entries.
    Entries(Vec<Entry>),
    /// `Store::import`'s report.
    Imported {
        /// Entries added.
        added: u64,
        /// Entries skipped.
        skipped: u64,
    },
    /// `Store::check`'s report.
    Checked {
        /// Documents loaded.
        documents: u64,
        /// Entries found.
        entries: u64,
        /// Disagreements.
        mismatches: u64,
    },
    /// Done, nothing to report.
    Done,
    /// The daemon's state.
    Status(StatusInfo),
    /// An invite code.
    Invite(String),
    /// The circle.
    Peers(Vec<PeerInfo>),
    /// The result of a sync: devices that could not be brought in sync.
    Synced {
        /// Devices in sync.
        in_sync: Vec<String>,
        /// Devices not reached or not in sync before the timeout.
        missing: Vec<String>,
    },
    /// The partners.
    Partners(Vec<PartnerInfo>),
    /// The feed.
    Feed(Vec<FeedItem>),
    /// This person's shared entries.
    Shares(Vec<ShareInfo>),
}

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be used.
    #[error("daemon connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// A frame was malformed.
    #[error("daemon sent a malformed answer: {0}")]
    Malformed(String),
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, value: &impl Serialize) -> Result<(), ControlError> {
    let bytes = postcard::to_allocvec(value).map_err(|e| ControlError::Malformed(e.to_string()))?;
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|l| *l <= MAX_CONTROL_FRAME)
        .ok_or_else(|| ControlError::Malformed("frame too large".into()))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&bytes)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<T, ControlError> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)?;
    let len = u32::from_be_bytes(header);
    if len > MAX_CONTROL_FRAME {
        return Err(ControlError::Malformed(format!("frame of {len} bytes")));
    }
    let mut buf = Vec::new();
    r.take(u64::from(len)).read_to_end(&mut buf)?;
    if buf.len() != len as usize {
        return Err(ControlError::Malformed("frame ends early".into()));
    }
    postcard::from_bytes(&buf).map_err(|e| ControlError::Malformed(e.to_string()))
}

/// A connection to a running daemon, used by the `failup` command.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the daemon of `home`, if one is running.
    pub fn connect(home: &Path) -> Option<Client> {
        let stream = UnixStream::connect(home.join(SOCKET_FILE)).ok()?;
        Some(Client { stream })
    }

    /// Sends a request and waits for the answer, at most `timeout` (none: wait as long as it
    /// takes).
    pub fn call(
        &mut self,
        request: &Request,
        timeout: Option<Duration>,
    ) -> Result<Response, ControlError> {
        self.stream.set_read_timeout(timeout)?;
        write_frame(&mut self.stream, request)?;
        read_frame(&mut self.stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: &impl Serialize) -> String {
        let mut out = Vec::new();
        write_frame(&mut out, value).expect("frame");
        data_encoding::HEXLOWER.encode(&out)
    }

    #[test]
    fn frames_match_the_spec() {
        let spec = include_str!("../../../proto/control.md");
        let vectors = [
            ("status", frame(&Request::Status)),
            ("invite-600", frame(&Request::Invite { ttl_secs: 600 })),
            (
                "resolve-01k",
                frame(&Request::Resolve {
                    prefix: "01K".into(),
                }),
            ),
            ("done", frame(&Response::Done)),
            ("error", frame(&Response::Error("busy".into()))),
        ];
        for (name, hex) in vectors {
            let line = format!("frame {name}: {hex}");
            assert!(spec.contains(&line), "proto/control.md lacks `{line}`");
        }
        let mut bytes: &[u8] = &[0, 0, 0, 1, 10];
        assert!(matches!(
            read_frame::<Request>(&mut bytes),
            Ok(Request::Status)
        ));
    }

    #[test]
    fn short_oversized_and_garbage_frames_are_errors() {
        let mut short: &[u8] = &[0, 0, 0, 9, 1];
        assert!(read_frame::<Request>(&mut short).is_err());
        let mut huge: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(read_frame::<Request>(&mut huge).is_err());
        let mut garbage: &[u8] = &[0, 0, 0, 2, 0xff, 0xff];
        assert!(read_frame::<Request>(&mut garbage).is_err());
    }
}
