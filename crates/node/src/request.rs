//! The operations of a node, as one request type and one response type: the `failup` command
//! with no daemon running hands them to [`crate::Node::execute`] itself, and the control protocol
//! (proto/control.md) carries the same values, postcard-encoded, to a running daemon, which
//! hands them to the same function. One definition of each operation, whichever way it travels.

use failup_journal::{Entry, EntryId, EntryPatch, Filter, NewEntry};
use serde::{Deserialize, Serialize};

use crate::error::Failure;

/// A request to a node.
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
        /// The circle's recovery key, as written down, to revoke with it (rule 5 of
        /// `failup_auth::membership`): the revocation then counts whatever the device did.
        recovery: Option<String>,
        /// With `recovery`: other devices (as text) whose revocations by the device no longer
        /// count. This device is always restored.
        restore: Vec<String>,
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
    /// The circle's recovery key, once: kept on the founding device only until shown.
    RecoveryKey,
    /// What is new in the feed, without marking it read.
    Unread,
    /// The person's prompts (reframe questions, story start) this journal holds, by name
    /// (`lesson`, `muscle`, `use`, `story`); synced across the person's devices.
    Prompts,
    /// Sets a prompt, or with `None` removes it so the default applies again.
    SetPrompt {
        /// `lesson`, `muscle`, `use` or `story`.
        key: String,
        /// The text.
        value: Option<String>,
    },
    /// A one-time link that opens the web interface in a browser (`failup ui`): only a
    /// running daemon serves it.
    UiLink,
    /// What [`Request::Feed`] shows, without marking it read: a page that refreshes itself
    /// while it is open keeps what was new marked new until the person comes back to it.
    FeedPeek {
        /// One partner only.
        partner: Option<String>,
    },
}

/// A partner, as `failup partner list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartnerInfo {
    /// What this person calls them.
    pub label: String,
    /// Whether the partnership was revoked.
    pub revoked: bool,
    /// Since when the partner has closed the space on this person (revoked this person's
    /// devices on theirs), as far as this device has been told: RFC 3339.
    #[serde(default)]
    pub closed: Option<String>,
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
    /// Whether it is new since the feed was last read (a partner's only).
    #[serde(default)]
    pub new: bool,
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
    /// Whether it is this person's own entry, shared with the partner, here for the
    /// partner's comments under it.
    #[serde(default)]
    pub yours: bool,
}

/// What is new in the feed since it was last read, without reading it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Unread {
    /// Entries partners shared or changed.
    pub entries: u64,
    /// Partners' comments, under their entries and this person's.
    pub comments: u64,
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
    /// The addresses peers see it at from outside (its router's), for meeting at an agreed
    /// moment only.
    #[serde(default)]
    pub outside: Vec<String>,
    /// Whether a connection is up.
    pub connected: bool,
    /// The address the live connection runs to, if one is up.
    #[serde(default)]
    pub via: Option<String>,
    /// How the live connection runs: `local`, `mapped`, `punched`, `internet` or `relayed`
    /// (see `reach::Path`).
    #[serde(default)]
    pub path: Option<String>,
    /// When it was last connected (RFC 3339), if ever since the daemon started.
    pub last_seen: Option<String>,
    /// When the last sync with it completed (RFC 3339), if ever since the daemon started.
    pub last_sync: Option<String>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// How many of its changes were found void (written after its revocation, unseen by its
    /// revoker) and undone here.
    #[serde(default)]
    pub undone: u64,
    /// Whether it was revoked with the circle's recovery key.
    #[serde(default)]
    pub recovered: bool,
    /// For this device: whether it holds the circle's recovery key, not yet shown.
    #[serde(default)]
    pub recovery_unshown: bool,
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
    /// How peers see this device from outside (its router's address, behind one).
    #[serde(default)]
    pub observed: Vec<ObservedInfo>,
    /// What that says about the router: `unknown`, `stable` (one public port whoever this
    /// device talks to) or `per-destination` (a port per peer: only a relay reaches it).
    #[serde(default)]
    pub mapping: String,
    /// The public address the router forwards to this device (a port mapping), if any.
    #[serde(default)]
    pub mapped: Option<String>,
    /// The person's relay, when one is set.
    #[serde(default)]
    pub relay: Option<RelayInfo>,
}

/// The relay a daemon uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayInfo {
    /// Where it listens.
    pub addr: String,
    /// Whether the link to it is up.
    pub linked: bool,
}

/// An outside address of this device, as peers saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservedInfo {
    /// `ip:port`.
    pub addr: String,
    /// How many peers saw it.
    pub by: u64,
    /// When last, RFC 3339.
    pub last: String,
}

/// A node's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// The request failed: what kind of failure, and the error as the node would print it.
    Error(Failure),
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
    /// The circle's recovery key, as a person writes it down.
    Recovery(String),
    /// What is new in the feed.
    Unread(Unread),
    /// The prompts, by name.
    Prompts(std::collections::BTreeMap<String, String>),
    /// A one-time link to the web interface.
    UiLink(String),
}
