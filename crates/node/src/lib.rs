//! The node: everything one device of failup decides, in one synchronous place. It owns the
//! store, the circle of this person's devices, who is trusted and who may see which document,
//! the spaces shared with partners, and the open invites; every operation a person can ask for
//! is a [`Request`] handed to [`Node::execute`] with `now`.
//!
//! The `failup` command with no daemon running opens a node on the store and calls it directly;
//! a running daemon holds one node on its engine thread and calls the same function for each
//! control request, then carries out what changed ([`Node::take_changes`]): it offers changed
//! documents to peers and applies a new trust view to its connections. The node starts no
//! thread, opens no socket and reads no clock, so every rule here is tested without a network.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod authors;
pub mod circle;
pub mod dial;
pub mod error;
pub mod pairing;
pub mod reach;
pub mod request;
pub mod sharing;
mod undo;
mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::ControlFlow;

use failup_journal::Entry;
use failup_store::{Order, Store};
use failup_sync::{DocError, Documents};
use failup_wire::{DeviceId, DocId, InventoryItem, Seal};
use jiff::Timestamp;
use jiff::civil::Date;

use circle::{Added, Confirmed};
pub use error::{ErrorKind, Failure, NodeError};
use pairing::{Code, Invites, Joined, Reply};
pub use request::{
    CommentInfo, FeedItem, PartnerInfo, PeerInfo, Request, Response, ShareInfo, StatusInfo, Unread,
};

/// Setting: the circle document's id.
const CIRCLE: &str = "circle";
/// Setting: the circle this device joined, until its document arrives by sync.
const JOINED_CIRCLE: &str = "joined-circle";
/// Setting: the devices met at a join, known before the circle document arrives.
const BOOTSTRAP: &str = "bootstrap";
/// Setting: every device this device has ever seen revoked.
const REVOKED: &str = "revoked";
/// Setting: the prompts of a device with no circle yet, as postcard `BTreeMap<String,
/// String>`; moved into the circle when it is made, and unused from then on.
const PROMPTS: &str = "prompts";
/// Longest reframe question, in characters.
pub const MAX_QUESTION_CHARS: usize = 200;
/// Longest text a story starts with, in bytes.
pub const MAX_STORY_START_BYTES: usize = 4000;

/// Setting: the partners' devices that refused this device as revoked (their person closed
/// the space), with when, as postcard `Vec<([u8; 32], i64)>` (milliseconds).
pub(crate) const TOLD_REVOKED: &str = "told-revoked";
/// Setting: the changes of each revoked device (or device that never belonged) found void and
/// undone here, as postcard `Vec<([u8; 32], Vec<[u8; 32]>)>`.
const UNDONE: &str = "undone";
/// Setting: the seed of the circle's recovery key, on the device that started the circle,
/// from then until it is shown (and never after).
const RECOVERY_UNSHOWN: &str = "recovery-unshown";

/// What a node needs to know about the device it runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// This device's key, which seals what it writes (its id is the key's).
    pub signer: std::sync::Arc<failup_auth::Signer>,
    /// This device's name, as other devices show it.
    pub name: String,
    /// Where other devices can reach this one, for invites and a new circle.
    pub advertise: Vec<SocketAddr>,
    /// Whether a daemon serves this node to the network: without one an invite could never be
    /// answered, so none is handed out.
    pub networked: bool,
}

/// What the calls since the last [`Node::take_changes`] changed, for the shell to act on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Documents written here, to offer to peers.
    pub docs: Vec<DocId>,
    /// Whether who is trusted, or what a partner's device may see, may have changed.
    pub trust: bool,
}

/// One device's journal, circle and spaces.
pub struct Node {
    store: Store,
    config: Config,
    /// The circle document, once this device has one.
    circle: Option<DocId>,
    /// Devices met at a join, trusted until the circle document arrives and says who belongs.
    bootstrap: BTreeMap<DeviceId, (String, Vec<SocketAddr>)>,
    /// Partners' devices this device has seen revoked (and circle devices revoked before the
    /// membership rules existed). Kept locally and only ever grown. A circle device's
    /// revocation is not kept here: the rules read it from the circle's history, where no
    /// later change can hide it, and a revocation that the rules void (one by a device revoked
    /// first) must not lock a device out for good.
    revoked: BTreeSet<DeviceId>,
    /// Whether `revoked` grew since it was last written (a failed write is retried).
    revoked_unsaved: bool,
    invites: Invites,
    /// Which documents partners' devices may sync and write.
    access: sharing::Access,
    /// Addresses of partners' devices, from pairing and from their side of each space.
    partner_addrs: BTreeMap<DeviceId, Vec<SocketAddr>>,
    /// The devices that may complete a handshake and sync, this one excluded.
    trusted: BTreeSet<DeviceId>,
    trust_changed: bool,
    /// Documents written since the last [`Node::take_changes`].
    pending_docs: Vec<DocId>,
    /// Who may write which document, for changes from outside.
    authors: authors::Authors,
    /// The membership rules' last verdict on the circle.
    verdicts: verdict::Cache,
    /// Rate limits of the pairing exchange.
    throttle: pairing::Throttle,
    /// The void changes undone here, by writer.
    undone: BTreeMap<DeviceId, BTreeSet<[u8; 32]>>,
    /// What the last pass over every bucket undid for: the revoked devices with their
    /// revocations, and who belongs. Another pass is due when it changes.
    undo_basis: Option<Vec<u8>>,
    /// Partners' devices that refused this device as revoked, and when: neither dialed nor
    /// admitted again. Their partner counts as having closed the space
    /// ([`Node::closed_since`]) unless another of their devices delivered a message since.
    told_revoked: BTreeMap<DeviceId, Timestamp>,
    /// When a device of each partner (by their side) last delivered a message here.
    delivered: BTreeMap<DocId, Timestamp>,
    /// What peers see this device's connections come from.
    observations: reach::Observations,
    /// The public address this device's router forwards to it, while it holds one.
    mapped: Option<SocketAddr>,
    /// The introductions that counted here, recently.
    meetings: reach::Meetings,
}

/// The address a joiner connected from, as an address to dial it at: one on a local network
/// is its own; one seen through the internet may be its router's, so the joiner publishes its
/// own addresses itself instead (`Node::publish_own_addrs`).
pub(crate) fn dialable(addr: SocketAddr) -> Vec<SocketAddr> {
    if reach::local_scope(addr.ip()) {
        vec![addr]
    } else {
        Vec::new()
    }
}

/// Checks a prompt as typed text: a known name, plain text, one line for a question, within
/// its length.
fn check_prompt(key: &str, value: &str) -> Result<(), NodeError> {
    use failup_journal::text::{Lines, check_plain};
    let name = format!("prompts.{key}");
    match key {
        "story" => {
            check_plain(&name, value, Lines::Many)?;
            if value.len() > MAX_STORY_START_BYTES {
                return Err(NodeError::Invalid(format!(
                    "{name} is longer than {MAX_STORY_START_BYTES} bytes"
                )));
            }
        }
        "lesson" | "muscle" | "use" => {
            check_plain(&name, value, Lines::One)?;
            if value.trim().is_empty() {
                return Err(NodeError::Invalid(format!("{name} cannot be empty")));
            }
            if value.chars().count() > MAX_QUESTION_CHARS {
                return Err(NodeError::Invalid(format!(
                    "{name} is longer than {MAX_QUESTION_CHARS} characters"
                )));
            }
        }
        _ => {
            return Err(NodeError::Invalid(format!(
                "no prompt called {key:?} (known: {})",
                circle::PROMPT_KEYS.join(", ")
            )));
        }
    }
    Ok(())
}

/// The prompts another device wrote that pass as typed text would; the rest are left out, so
/// the default applies instead of a question that drives the terminal or breaks the editor
/// template.
fn usable_prompts(held: BTreeMap<String, String>) -> BTreeMap<String, String> {
    held.into_iter()
        .filter(|(k, v)| match check_prompt(k, v) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("a synced prompt is left out: {e}");
                false
            }
        })
        .collect()
}

/// A document id kept as a setting (its 16 bytes).
fn setting_doc(store: &Store, key: &str) -> Result<Option<DocId>, NodeError> {
    Ok(store
        .setting(key)?
        .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
        .map(DocId))
}

fn postcard_setting<T: serde::de::DeserializeOwned + Default>(
    store: &Store,
    key: &str,
) -> Result<T, NodeError> {
    match store.setting(key)? {
        None => Ok(T::default()),
        Some(b) => postcard::from_bytes(&b)
            .map_err(|e| NodeError::Corrupt(format!("the {key} setting does not read: {e}"))),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, NodeError> {
    postcard::to_allocvec(value).map_err(|e| NodeError::Corrupt(e.to_string()))
}

fn ts(ms: i64) -> Result<Timestamp, NodeError> {
    Timestamp::from_millisecond(ms).map_err(|e| NodeError::Invalid(e.to_string()))
}

fn day(text: &str) -> Result<Date, NodeError> {
    text.parse()
        .map_err(|e| NodeError::Invalid(format!("bad day {text:?}: {e}")))
}

impl Node {
    /// A node over `store`. Reads the circle's settings only: trust is worked out by
    /// [`Node::start`] (the daemon) or by the first operation that changes the circle.
    pub fn open(mut store: Store, config: Config) -> Result<Node, NodeError> {
        let sealed = store.set_signer(config.signer.clone())?;
        if sealed > 0 {
            tracing::info!("sealed {sealed} changes written before seals existed");
        }
        let mut circle = setting_doc(&store, CIRCLE)?;
        // A circle that arrived just before the daemon was stopped is adopted now.
        if circle.is_none() {
            if let Some(doc) = setting_doc(&store, JOINED_CIRCLE)? {
                if is_circle_doc(&store, doc)? {
                    store.set_setting(CIRCLE, &doc.0)?;
                    circle = Some(doc);
                }
            }
        }
        let revoked: Vec<[u8; 32]> = postcard_setting(&store, REVOKED)?;
        let bootstrap: Vec<([u8; 32], String, Vec<String>)> = postcard_setting(&store, BOOTSTRAP)?;
        let undone: Vec<([u8; 32], Vec<[u8; 32]>)> = postcard_setting(&store, UNDONE)?;
        let told: Vec<([u8; 32], i64)> = postcard_setting(&store, TOLD_REVOKED)?;
        let mut node = Node {
            store,
            config,
            circle,
            bootstrap: bootstrap
                .into_iter()
                .map(|(d, name, addrs)| {
                    let addrs = addrs.iter().filter_map(|a| a.parse().ok()).collect();
                    (DeviceId(d), (name, addrs))
                })
                .collect(),
            revoked: revoked.into_iter().map(DeviceId).collect(),
            revoked_unsaved: false,
            invites: Invites::default(),
            access: sharing::Access::default(),
            partner_addrs: BTreeMap::new(),
            trusted: BTreeSet::new(),
            trust_changed: false,
            pending_docs: Vec::new(),
            authors: authors::Authors::default(),
            verdicts: verdict::Cache::default(),
            undone: undone
                .into_iter()
                .map(|(d, hs)| (DeviceId(d), hs.into_iter().collect()))
                .collect(),
            undo_basis: None,
            throttle: pairing::Throttle::default(),
            told_revoked: told
                .into_iter()
                .filter_map(|(d, ms)| Some((DeviceId(d), Timestamp::from_millisecond(ms).ok()?)))
                .collect(),
            delivered: BTreeMap::new(),
            observations: reach::Observations::default(),
            mapped: None,
            meetings: reach::Meetings::default(),
        };
        node.carry_prompts();
        Ok(node)
    }

    /// Gets a node ready to serve peers: works out trust, and brings shared copies up to date
    /// with edits made while no daemon ran.
    pub fn start(&mut self, now: Timestamp) -> Result<(), NodeError> {
        self.refresh_trust()?;
        self.reproject();
        self.publish_own_addrs(now);
        Ok(())
    }

    /// Puts the addresses of this device's network interfaces into its entry of the circle:
    /// the addresses others may dial (on a home network behind a router, they reach it from
    /// that network only). A device is the one that knows them; what others saw it connect
    /// from is its router's address when it is behind one. Confirmed at `now`, so addresses
    /// of networks the device has since left age out (see `circle`).
    fn publish_own_addrs(&mut self, now: Timestamp) {
        if !self.config.networked {
            return;
        }
        let (me, addrs) = (self.device(), self.config.advertise.clone());
        let written = self.edit_circle(|am| {
            let mut changed = false;
            for a in &addrs {
                changed |= circle::add_addr(am, me, *a, Confirmed::At(now.as_millisecond()))?
                    == Added::Changed;
            }
            Ok(changed)
        });
        if let Err(e) = written {
            tracing::warn!("cannot publish this device's addresses: {e}");
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, for the daemon's group commits.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.config.signer.device()
    }

    /// This device's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Carries out one request. Documents it wrote and whether trust changed are collected for
    /// [`Node::take_changes`], failed or not (a delete may be done and still fail to leave a
    /// space).
    pub fn execute(&mut self, request: Request, now: Timestamp) -> Result<Response, NodeError> {
        let response = self.answer(request, now);
        let changed = self.store.take_changed_docs();
        // Shared copies follow every edit of the entries they copy.
        if !changed.is_empty() {
            self.pending_docs.extend(changed);
            self.reproject();
        }
        response
    }

    fn answer(&mut self, request: Request, now: Timestamp) -> Result<Response, NodeError> {
        let s = &mut self.store;
        Ok(match request {
            Request::Log { new, now_ms, today } => {
                Response::Entry(s.log(new, ts(now_ms)?, day(&today)?)?)
            }
            Request::Update { id, patch, now_ms } => {
                Response::Entry(s.update(id, patch, ts(now_ms)?)?)
            }
            Request::Delete { id, now_ms } => {
                let gone = s.delete(id, ts(now_ms)?)?;
                // Deleted either way; a space it could not leave is the person's to know of.
                self.unshare_all(id)
                    .map_err(|why| NodeError::Incomplete(format!("deleted {id}, but {why}")))?;
                Response::Entry(gone)
            }
            Request::Get { id } => Response::MaybeEntry(s.get(id)?),
            Request::Resolve { prefix } => Response::Id(s.resolve(&prefix)?),
            Request::List { filter, limit } => Response::Entries(s.list(
                &filter,
                limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
            )?),
            Request::Scan { since, until } => {
                let since = since.as_deref().map(day).transpose()?;
                let until = until.as_deref().map(day).transpose()?;
                // The whole journal is read into one vector: sized once, it is not copied over
                // and over as it grows (at 100,000 entries that copying was a third of the time).
                let expected = match (since, until) {
                    (None, None) => usize::try_from(s.len()?).unwrap_or(0),
                    _ => 0,
                };
                let mut all: Vec<Entry> = Vec::with_capacity(expected);
                s.scan(Order::OldestFirst, since, until, |en| {
                    all.push(en);
                    ControlFlow::Continue(())
                })?;
                Response::Entries(all)
            }
            Request::Import { entries, now_ms } => {
                let r = s.import(entries, ts(now_ms)?)?;
                Response::Imported {
                    added: r.added as u64,
                    skipped: r.skipped as u64,
                }
            }
            Request::Compact => {
                s.compact()?;
                Response::Done
            }
            Request::Check => {
                let r = s.check()?;
                Response::Checked {
                    documents: r.documents as u64,
                    entries: r.entries as u64,
                    mismatches: r.mismatches as u64,
                }
            }
            Request::Invite { ttl_secs } => Response::Invite(self.invite(ttl_secs, None, now)?),
            Request::Peers => Response::Peers(self.peers()?),
            Request::PeerAddr { device, addr } => {
                let device = self.find_device(&device)?;
                let addr: SocketAddr = addr.parse().map_err(|_| {
                    NodeError::Invalid(format!(
                        "{addr:?} is not an address (use host:port, e.g. 192.168.1.20:7676)"
                    ))
                })?;
                self.add_addr(device, addr)?;
                Response::Done
            }
            Request::PeerRemove {
                device,
                recovery: None,
                ..
            } => {
                let device = self.find_device(&device)?;
                self.revoke(device, None, now)?;
                Response::Done
            }
            Request::PeerRemove {
                device,
                recovery: Some(code),
                restore,
            } => {
                let device = self.find_device(&device)?;
                let mut restored = vec![self.device()];
                for r in &restore {
                    restored.push(self.find_device(r)?);
                }
                restored.sort();
                restored.dedup();
                self.revoke(device, Some((&code, restored)), now)?;
                Response::Done
            }
            Request::RecoveryKey => Response::Recovery(self.show_recovery()?),
            Request::PartnerInvite { ttl_secs, label } => {
                Response::Invite(self.invite(ttl_secs, Some(label), now)?)
            }
            Request::Partners => Response::Partners(self.partner_list()?),
            Request::Prompts => Response::Prompts(self.prompts()?),
            Request::SetPrompt { key, value } => {
                self.set_prompt(&key, value.as_deref())?;
                Response::Done
            }
            Request::PartnerRevoke { label } => {
                self.partner_revoke(&label, now)?;
                Response::Done
            }
            Request::Share {
                id,
                with,
                only,
                now_ms,
            } => {
                self.share(id, &with, only.as_deref(), ts(now_ms)?)?;
                Response::Done
            }
            Request::Unshare { id, with } => {
                self.unshare(id, &with)?;
                Response::Done
            }
            Request::Feed { partner, now_ms } => {
                Response::Feed(self.feed(partner.as_deref(), Some(ts(now_ms)?))?)
            }
            Request::FeedPeek { partner } => Response::Feed(self.feed(partner.as_deref(), None)?),
            Request::Unread => {
                let items = self.feed(None, None)?;
                let newer_comments = |i: &FeedItem| -> u64 {
                    i.comments
                        .iter()
                        .filter(|c| c.by.is_some() && c.new)
                        .count() as u64
                };
                Response::Unread(Unread {
                    entries: items.iter().filter(|i| i.new && !i.yours).count() as u64,
                    comments: items.iter().map(newer_comments).sum(),
                })
            }
            Request::Cheer { id, text, now_ms } => {
                self.cheer(&id, &text, ts(now_ms)?)?;
                Response::Done
            }
            Request::Shares => Response::Shares(self.shares()?),
            Request::Status
            | Request::Join { .. }
            | Request::PartnerJoin { .. }
            | Request::Sync { .. }
            | Request::UiLink => {
                return Err(NodeError::Unavailable(
                    "this needs a running daemon: start `failup daemon` first".into(),
                ));
            }
        })
    }

    /// What changed since the last call: documents to offer to peers, and whether trust must
    /// be applied again.
    pub fn take_changes(&mut self) -> Changes {
        self.pending_docs.extend(self.store.take_changed_docs());
        let mut docs: Vec<DocId> = std::mem::take(&mut self.pending_docs);
        // In the order written, each once.
        let mut seen = BTreeSet::new();
        docs.retain(|d| seen.insert(*d));
        Changes {
            docs,
            trust: std::mem::take(&mut self.trust_changed),
        }
    }

    /// A peer changed `doc` (the engine said so): a new circle, a partner's new devices or an
    /// edit of an entry that is shared each change something here.
    pub fn doc_changed(&mut self, doc: DocId) {
        let partners = self.partners();
        let result = if Some(doc) == self.circle || partners.iter().any(|p| p.theirs == doc) {
            // Who belongs, or a partner's list of devices, may have changed.
            self.refresh_trust()
        } else if partners.iter().any(|p| p.mine == doc) {
            Ok(())
        } else if self.circle.is_none() && self.pending_circle() == Some(doc) {
            // The circle this device joined arrived.
            self.adopt_circle(doc)
        } else {
            // A journal bucket from another device of this person: what arrived may include
            // changes of a revoked device that its revoker had not seen.
            let undone = self.undo_void(Some(doc), Timestamp::now());
            if !partners.is_empty() {
                self.reproject();
            }
            undone
        };
        if let Err(e) = result {
            tracing::error!("cannot take in a change to {doc}: {e}");
        }
    }

    fn adopt_circle(&mut self, doc: DocId) -> Result<(), NodeError> {
        if !is_circle_doc(&self.store, doc)? {
            return Ok(());
        }
        self.store.set_setting(CIRCLE, &doc.0)?;
        self.circle = Some(doc);
        self.carry_prompts();
        let now = Timestamp::now();
        if let Err(e) = self.publish_outside(now) {
            tracing::warn!("cannot publish this device's outside addresses yet: {e}");
        }
        self.publish_own_addrs(now);
        self.refresh_trust()
    }

    /// Moves the prompts set before there was a circle into it, for the names it has none
    /// for (a device joining another's circle takes that circle's wording), then forgets them:
    /// from then on the circle alone says, so a prompt another device removes stays removed.
    /// A failure (a read-only home) leaves them for the next try.
    fn carry_prompts(&mut self) {
        let carried = (|| -> Result<(), NodeError> {
            let local: BTreeMap<String, String> = postcard_setting(&self.store, PROMPTS)?;
            if local.is_empty() || self.circle.is_none() {
                return Ok(());
            }
            self.edit_circle(|am| {
                let held = circle::prompts(am);
                let mut changed = false;
                for (k, v) in local.iter().filter(|(k, _)| !held.contains_key(*k)) {
                    circle::set_prompt(am, k, Some(v))?;
                    changed = true;
                }
                Ok(changed)
            })?;
            Ok(self.store.remove_setting(PROMPTS)?)
        })();
        if let Err(e) = carried {
            tracing::warn!("cannot move this device's prompts into the circle yet: {e}");
        }
    }

    /// The store as the sync engine sees it, with this node's access rules.
    pub fn documents(&mut self) -> NodeDocuments<'_> {
        NodeDocuments {
            store: &mut self.store,
            access: &self.access,
            authors: &mut self.authors,
            me: self.config.signer.device(),
            bootstrap: self.bootstrap.keys().copied().collect(),
        }
    }

    /// The devices that may complete a handshake and sync.
    pub fn trusted(&self) -> &BTreeSet<DeviceId> {
        &self.trusted
    }

    /// Each trusted device with every address known for it.
    pub fn trusted_addrs(&self) -> BTreeMap<DeviceId, Vec<SocketAddr>> {
        let members = self.members();
        self.trusted
            .iter()
            .map(|device| {
                let mut addrs: Vec<SocketAddr> = members
                    .iter()
                    .find(|m| m.device == *device)
                    .map(|m| m.addrs.clone())
                    .unwrap_or_default();
                if let Some((_, extra)) = self.bootstrap.get(device) {
                    addrs.extend(extra.iter().copied());
                }
                if let Some(extra) = self.partner_addrs.get(device) {
                    addrs.extend(extra.iter().copied());
                }
                addrs.sort();
                addrs.dedup();
                (*device, addrs)
            })
            .collect()
    }

    /// Whether `device` is revoked: by the circle's rules, or in the local list.
    pub fn is_revoked(&self, device: DeviceId) -> bool {
        self.revoked.contains(&device) || self.verdict().revoked.contains_key(&device)
    }

    /// The devices revoked here, own or partners': the TLS verifier tells them so.
    pub fn revoked(&self) -> &BTreeSet<DeviceId> {
        &self.revoked
    }

    /// The membership rules' verdict on the circle as held now.
    fn verdict(&self) -> std::sync::Arc<failup_auth::membership::Verdict> {
        self.verdicts.get(&self.store, self.circle)
    }

    /// Until when unknown devices may complete a handshake (an unused invite is open).
    pub fn open_invite_until(&self) -> Option<Timestamp> {
        self.invites.open_until()
    }

    fn pending_circle(&self) -> Option<DocId> {
        setting_doc(&self.store, JOINED_CIRCLE).ok().flatten()
    }

    /// Every device ever in the circle, revoked ones marked (none without a circle): the
    /// devices the rules count, with the names and addresses the circle gives them. A device
    /// written into the circle by a change that does not count is not a member, whatever the
    /// circle's content says.
    fn members(&self) -> Vec<circle::Member> {
        let Some(doc) = self
            .circle
            .and_then(|doc| self.store.document(doc).ok().flatten())
        else {
            return Vec::new();
        };
        let v = self.verdict();
        let mut out: Vec<circle::Member> = circle::members(&doc)
            .into_iter()
            .filter(|m| v.members.contains(&m.device) || v.revoked.contains_key(&m.device))
            .map(|mut m| {
                m.revoked = v.revoked.contains_key(&m.device);
                m
            })
            .collect();
        for d in v.members.iter().chain(v.revoked.keys()) {
            if !out.iter().any(|m| m.device == *d) {
                out.push(circle::Member {
                    device: *d,
                    name: String::new(),
                    addrs: Vec::new(),
                    revoked: v.revoked.contains_key(d),
                });
            }
        }
        out.sort_by_key(|m| m.device);
        out
    }

    /// Changes the circle document with `edit` (which says whether it changed anything) and
    /// makes the change durable; does nothing without a circle.
    fn edit_circle(
        &mut self,
        edit: impl FnOnce(&mut automerge::AutoCommit) -> Result<bool, automerge::AutomergeError>,
    ) -> Result<(), NodeError> {
        let Some(doc) = self.circle else {
            return Ok(());
        };
        let mut am = self
            .store
            .document(doc)?
            .ok_or_else(|| NodeError::Corrupt("the circle document is missing".into()))?;
        let before = am.get_heads();
        if edit(&mut am)? {
            am.commit();
            self.store.write_document(doc, &mut am, &before)?;
        }
        Ok(())
    }

    /// The prompts in force for this person: the circle's, synced across their devices, or
    /// before there is a circle this device's own. Text from the circle was written by another
    /// device and is checked as typed text is; what does not pass is left out, so the default
    /// applies.
    fn prompts(&self) -> Result<BTreeMap<String, String>, NodeError> {
        let Some(doc) = self.circle else {
            return postcard_setting(&self.store, PROMPTS);
        };
        let held = self
            .store
            .document(doc)?
            .map(|am| circle::prompts(&am))
            .unwrap_or_default();
        Ok(usable_prompts(held))
    }

    /// Sets or removes a prompt: in the circle, so every device of the person asks the same,
    /// or on a device with no circle yet in a setting the circle takes over when it is made.
    fn set_prompt(&mut self, key: &str, value: Option<&str>) -> Result<(), NodeError> {
        let value = value.map(str::trim_end);
        if let Some(v) = value {
            check_prompt(key, v)?;
        } else if !circle::PROMPT_KEYS.contains(&key) {
            check_prompt(key, "")?;
        }
        if self.circle.is_some() {
            return self.edit_circle(|am| {
                let held = circle::prompts(am);
                if held.get(key).map(String::as_str) == value {
                    return Ok(false);
                }
                circle::set_prompt(am, key, value).map(|()| true)
            });
        }
        let mut local: BTreeMap<String, String> = postcard_setting(&self.store, PROMPTS)?;
        match value {
            Some(v) => local.insert(key.to_owned(), v.to_owned()),
            None => local.remove(key),
        };
        self.store.set_setting(PROMPTS, &encode(&local)?)?;
        Ok(())
    }

    fn save_revoked(&mut self) -> Result<(), NodeError> {
        let list: Vec<[u8; 32]> = self.revoked.iter().map(|d| d.0).collect();
        let bytes = encode(&list)?;
        self.store.set_setting(REVOKED, &bytes)?;
        Ok(())
    }

    fn save_bootstrap(&mut self) -> Result<(), NodeError> {
        let list: Vec<([u8; 32], String, Vec<String>)> = self
            .bootstrap
            .iter()
            .map(|(d, (n, a))| (d.0, n.clone(), a.iter().map(|a| a.to_string()).collect()))
            .collect();
        let bytes = encode(&list)?;
        self.store.set_setting(BOOTSTRAP, &bytes)?;
        Ok(())
    }

    /// Works out again which devices are trusted and what partners' devices may see, from the
    /// circle, the devices met at a join, the partners' sides and the local list of revoked
    /// devices. The new view is in force before anything is written: a write that fails (a
    /// full disk) is reported, but never keeps a revoked device trusted, and the revoked list
    /// is written again by the next refresh.
    fn refresh_trust(&mut self) -> Result<(), NodeError> {
        let partners = self.partners();
        let me = self.device();
        let members = self.members();
        let verdict = self.verdict();
        let before = self.revoked.len();
        // Once the circle is here, it alone says who belongs.
        if self.circle.is_some() && !self.bootstrap.is_empty() {
            let in_circle: BTreeSet<DeviceId> = members.iter().map(|m| m.device).collect();
            self.bootstrap.retain(|d, _| !in_circle.contains(d));
        }
        // The local list counts too: a circle whose revocation key someone deleted later still
        // does not bring the device back here.
        let mut trusted: BTreeSet<DeviceId> = members
            .iter()
            .filter(|m| !m.revoked && !self.revoked.contains(&m.device))
            .map(|m| m.device)
            .collect();
        // A device revoked only by devices junior to it may have revoked them first: it may
        // still deliver the circle (and sync nothing else) until the circle settles.
        let contested: BTreeSet<DeviceId> = verdict
            .contested
            .iter()
            .filter(|d| !self.revoked.contains(d))
            .copied()
            .collect();
        trusted.extend(contested.iter().copied());
        trusted.extend(self.bootstrap.keys().filter(|d| !self.revoked.contains(d)));
        let sharing::PartnerDevices {
            access: partner_access,
            addrs: partner_addrs,
            revoked: partners_revoked,
        } = self.partner_devices(&members, &partners);
        self.revoked.extend(partners_revoked);
        if self.revoked.len() != before {
            self.revoked_unsaved = true;
        }
        let partner_access: std::collections::HashMap<DeviceId, Vec<(DocId, DocId)>> =
            partner_access
                .into_iter()
                .filter(|(d, _)| {
                    !self.revoked.contains(d)
                        && !trusted.contains(d)
                        && !self.told_revoked.contains_key(d)
                })
                .collect();
        trusted.extend(partner_access.keys().copied());
        self.access = sharing::Access {
            partner: partner_access,
            circle: self.circle.or(self.pending_circle()),
            contested,
        };
        self.authors = authors::Authors::compute(
            &self.store,
            self.access.circle,
            me,
            self.bootstrap.keys().copied(),
        );
        self.partner_addrs = partner_addrs;
        trusted.remove(&me);
        self.trusted = trusted;
        self.trust_changed = true;
        // Sides of spaces are never journal buckets, whatever a partner writes into them.
        let sides: Vec<DocId> = partners.iter().flat_map(|p| [p.mine, p.theirs]).collect();
        let foreign = self.store.set_foreign(sides);
        if self.revoked_unsaved {
            self.save_revoked()?;
            self.revoked_unsaved = false;
        }
        foreign?;
        // Partners' devices trust a device of this person's once this side lists it.
        self.vouch(&members, &partners);
        // A revocation may have voided changes already here. The trust view above stands
        // whatever happens; a failed pass is tried again on the next refresh.
        if let Err(e) = self.undo_void(None, Timestamp::now()) {
            tracing::error!("cannot undo the changes of a revoked device yet: {e}");
        }
        Ok(())
    }

    /// The circle as this node knows it: nothing is connected, and last-seen times are known
    /// only to a running daemon (which fills them in).
    pub fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        let me = self.device();
        let recovered = self.verdict().recovered.clone();
        let unshown = self.store.setting(RECOVERY_UNSHOWN)?.is_some();
        let mut members = self.members();
        for (d, (name, addrs)) in &self.bootstrap {
            if !members.iter().any(|m| m.device == *d) {
                members.push(circle::Member {
                    device: *d,
                    name: name.clone(),
                    addrs: addrs.clone(),
                    revoked: false,
                });
            }
        }
        let outside = self
            .circle
            .and_then(|doc| self.store.document(doc).ok().flatten())
            .map(|am| circle::listed(&am, circle::Listed::Outside))
            .unwrap_or_default();
        Ok(members
            .into_iter()
            .map(|m| PeerInfo {
                device: m.device.to_string(),
                name: m.name,
                role: if m.device == me { "self" } else { "device" }.into(),
                addrs: m.addrs.iter().map(|a| a.to_string()).collect(),
                outside: outside
                    .get(&m.device)
                    .map(|a| a.iter().map(|a| a.to_string()).collect())
                    .unwrap_or_default(),
                connected: false,
                via: None,
                path: None,
                last_seen: None,
                last_sync: None,
                revoked: m.revoked || self.revoked.contains(&m.device),
                undone: self.undone_of(m.device) as u64,
                recovered: recovered.contains(&m.device),
                recovery_unshown: unshown && m.device == me,
            })
            .collect())
    }

    /// A device of the circle by its name (any case), its id written with or without dashes,
    /// or a unique prefix of the id. Names are chosen by the devices themselves, so a text
    /// that fits two devices (by name or by id) is refused as ambiguous, never guessed.
    fn find_device(&self, text: &str) -> Result<DeviceId, NodeError> {
        let mut named: Vec<DeviceId> = self
            .members()
            .iter()
            // A revoked device keeps its name in the circle but answers only to its id.
            .filter(|m| {
                !m.revoked && !m.name.is_empty() && m.name.eq_ignore_ascii_case(text.trim())
            })
            .map(|m| m.device)
            .collect();
        named.extend(
            self.bootstrap
                .iter()
                .filter(|(_, (n, _))| !n.is_empty() && n.eq_ignore_ascii_case(text.trim()))
                .map(|(d, _)| *d),
        );
        named.sort();
        named.dedup();
        let by_id = self.find_device_by_id(text);
        match (named.as_slice(), by_id) {
            ([], by_id) => by_id,
            ([one], Ok(d)) if *one != d => Err(NodeError::Invalid(format!(
                "{text:?} is the name of one device and the start of another's id; give more of the id"
            ))),
            ([one], _) => Ok(*one),
            _ => Err(NodeError::Invalid(format!(
                "several devices are called {:?}; give the id instead (failup peers lists them)",
                failup_journal::text::shown(text)
            ))),
        }
    }

    /// A device of the circle by its id, written with or without dashes, or a unique prefix.
    fn find_device_by_id(&self, text: &str) -> Result<DeviceId, NodeError> {
        let want: String = text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_uppercase();
        if want.is_empty() {
            return Err(NodeError::Invalid("give a device id".into()));
        }
        let mut known: Vec<DeviceId> = self.members().iter().map(|m| m.device).collect();
        known.extend(self.bootstrap.keys().copied());
        known.sort();
        known.dedup();
        let found: Vec<DeviceId> = known
            .into_iter()
            .filter(|d| d.to_string().replace('-', "").starts_with(&want))
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(NodeError::NotFound(format!(
                "no device of this circle matches {text:?}"
            ))),
            _ => Err(NodeError::Invalid(format!(
                "{text:?} matches several devices; give more of the id"
            ))),
        }
    }

    fn add_addr(&mut self, device: DeviceId, addr: SocketAddr) -> Result<(), NodeError> {
        match self.circle {
            Some(_) => {
                let mut full = false;
                self.edit_circle(|am| {
                    let added = circle::add_addr(am, device, addr, Confirmed::ByHand)?;
                    full = added == Added::Full;
                    Ok(added == Added::Changed)
                })?;
                if full {
                    return Err(NodeError::Invalid(format!(
                        "this device already has {} addresses set by hand; no room for {addr}",
                        circle::MAX_ADDRS
                    )));
                }
            }
            None => {
                if let Some((_, addrs)) = self.bootstrap.get_mut(&device) {
                    addrs.push(addr);
                }
                self.save_bootstrap()?;
            }
        }
        self.refresh_trust()
    }

    /// Records where a device connected from: with one socket for both directions, that is
    /// where it listens, and the circle passes it on to devices that have never met it.
    pub fn learn_addr(
        &mut self,
        peer: DeviceId,
        addr: SocketAddr,
        now: Timestamp,
    ) -> Result<(), NodeError> {
        // An address on a local network can be dialed again. One seen through the internet
        // is the peer's router's: dialed unasked it fails, and worse, a Linux router then
        // gives that peer another port when the device behind it dials out, so the peer
        // publishes it itself, for punching only (`observed`).
        if !reach::local_scope(addr.ip()) {
            return Ok(());
        }
        self.edit_circle(|am| {
            circle::add_addr(am, peer, addr, Confirmed::At(now.as_millisecond()))
                .map(|added| added == Added::Changed)
        })
    }

    /// Revokes `device`; with a recovery key (as written down) and the devices to restore,
    /// signs the revocation with it.
    fn revoke(
        &mut self,
        device: DeviceId,
        recovery: Option<(&str, Vec<DeviceId>)>,
        now: Timestamp,
    ) -> Result<(), NodeError> {
        if device == self.device() {
            return Err(NodeError::Refused(
                "a device cannot revoke itself; revoke it from another device".into(),
            ));
        }
        let recovery = match (recovery, self.circle) {
            (Some((code, restore)), Some(circle)) => {
                Some(self.recovery_proof(code, circle, device, restore)?)
            }
            (Some(_), None) => {
                return Err(NodeError::Unavailable(
                    "this device's circle has not arrived yet; connect to another device once"
                        .into(),
                ));
            }
            (None, _) => None,
        };
        if self.circle.is_some() {
            let note = circle::RevocationNote {
                at_ms: now.as_millisecond(),
                seen: self.seen_of(device)?,
                recovery,
            };
            self.edit_circle(|am| circle::revoke(am, device, &note).map(|()| true))?;
        }
        self.bootstrap.remove(&device);
        self.save_bootstrap()?;
        self.refresh_trust()?;
        tracing::warn!(peer = %device.short(), "revoked");
        Ok(())
    }

    /// The recovery key's signature on the revocation of `device`, restoring `restore`.
    fn recovery_proof(
        &self,
        code: &str,
        circle: DocId,
        device: DeviceId,
        restore: Vec<DeviceId>,
    ) -> Result<circle::RecoveryProof, NodeError> {
        use failup_auth::recovery::{MAX_RESTORE, RecoveryKey};
        let key = RecoveryKey::from_code(code).map_err(|e| NodeError::Invalid(e.to_string()))?;
        match self.verdict().recovery {
            Some(public) if public == key.public() => {}
            Some(_) => {
                return Err(NodeError::Refused(
                    "this is not this circle's recovery key".into(),
                ));
            }
            None => {
                return Err(NodeError::Refused(
                    "this circle has no recovery key (it was started before they existed)".into(),
                ));
            }
        }
        if restore.len() > MAX_RESTORE {
            return Err(NodeError::Invalid(format!(
                "one recovery restores at most {MAX_RESTORE} devices"
            )));
        }
        let sig = key.sign_revocation(circle.0, device, &restore);
        Ok(circle::RecoveryProof {
            restore: restore.iter().map(|d| d.0).collect(),
            sig: sig.to_vec(),
        })
    }

    /// The circle's recovery key, shown once: erased here before it is handed out.
    fn show_recovery(&mut self) -> Result<String, NodeError> {
        if let Some(seed) = self.store.setting(RECOVERY_UNSHOWN)? {
            let seed = <[u8; 32]>::try_from(seed.as_slice())
                .map_err(|_| NodeError::Corrupt("the stored recovery key is damaged".into()))?;
            let key = failup_auth::recovery::RecoveryKey::from_seed(seed)
                .map_err(|e| NodeError::Corrupt(e.to_string()))?;
            self.store.remove_setting(RECOVERY_UNSHOWN)?;
            return Ok(key.code());
        }
        let v = self.verdict();
        if self.circle.is_none() {
            return Err(NodeError::NotFound(
                "this device has no circle yet: the recovery key is made with it, when this \
                 device first pairs with another device or a partner"
                    .into(),
            ));
        }
        if v.recovery.is_none() {
            return Err(NodeError::NotFound(
                "this circle has no recovery key (it was started before they existed)".into(),
            ));
        }
        if v.founder != Some(self.device()) {
            let name = self
                .members()
                .into_iter()
                .find(|m| Some(m.device) == v.founder)
                .map(|m| m.name)
                .unwrap_or_default();
            return Err(NodeError::NotFound(format!(
                "the recovery key was shown on the device that started this circle ({}), once",
                failup_journal::text::shown(&name)
            )));
        }
        Err(NodeError::Refused(
            "the recovery key was shown once already and is kept nowhere: it cannot be shown again"
                .into(),
        ))
    }

    fn invite(
        &mut self,
        ttl_secs: u64,
        partner: Option<Option<String>>,
        now: Timestamp,
    ) -> Result<String, NodeError> {
        if !self.config.networked {
            return Err(NodeError::Unavailable(
                "an invite needs a running daemon to answer it: start `failup daemon` first".into(),
            ));
        }
        if !(1..=pairing::MAX_INVITE_TTL.as_secs()).contains(&ttl_secs) {
            return Err(NodeError::Invalid(format!(
                "an invite lasts from 1 second to {} days",
                pairing::MAX_INVITE_TTL.as_secs() / 86_400
            )));
        }
        if let Some(Some(label)) = &partner {
            self.check_new_label(label)?;
        }
        if self.circle.is_none() && self.pending_circle().is_some() {
            return Err(NodeError::Unavailable(
                "this device joined a circle whose list of devices has not arrived yet; \
                 connect to the inviting device once, then invite"
                    .into(),
            ));
        }
        let secret: pairing::Secret = rand::random();
        let is_partner = partner.is_some();
        self.invites.prune(now);
        let expires = self.invites.add(
            secret,
            std::time::Duration::from_secs(ttl_secs),
            partner,
            now,
        );
        // The router's forwarded address first: the one that works from outside the home.
        let addrs: Vec<SocketAddr> = self
            .mapped
            .into_iter()
            .chain(self.config.advertise.iter().copied())
            .collect();
        Ok(Code::new(self.device(), &addrs, secret, expires).encode(is_partner))
    }

    fn advertised(&self) -> Vec<String> {
        self.config
            .advertise
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    fn local_ips(&self) -> Vec<std::net::IpAddr> {
        self.config.advertise.iter().map(SocketAddr::ip).collect()
    }

    /// A trusted peer, whose connection comes from `from`, says it sees this device at
    /// `addr`. When that changes how this device looks from outside, the circle says so (as
    /// the device's `outside` addresses, for meeting at an agreed moment; never dialed on their
    /// own). A report from a device not trusted is ignored.
    pub fn observed(
        &mut self,
        reporter: DeviceId,
        from: SocketAddr,
        addr: SocketAddr,
        now: Timestamp,
    ) -> Result<(), NodeError> {
        if !self.trusted.contains(&reporter) {
            return Ok(());
        }
        self.record_seen(reporter, from, addr, now)
    }

    fn record_seen(
        &mut self,
        reporter: DeviceId,
        from: SocketAddr,
        addr: SocketAddr,
        now: Timestamp,
    ) -> Result<(), NodeError> {
        let (from, addr) = (failup_wire::canonical(from), failup_wire::canonical(addr));
        let local = self.local_ips();
        if self.observations.record(reporter, from, addr, &local, now) {
            let published = self.observations.published(now, &local);
            tracing::info!(?published, "seen from outside at these addresses");
        }
        self.publish_outside(now)
    }

    /// The person's relay (`relay`, at `relay_addr`, authenticated by the key in its code)
    /// sees this device's link come from `addr`: a report like a trusted peer's.
    pub fn seen_by_relay(
        &mut self,
        relay: DeviceId,
        relay_addr: SocketAddr,
        addr: SocketAddr,
        now: Timestamp,
    ) -> Result<(), NodeError> {
        self.record_seen(relay, relay_addr, addr, now)
    }

    /// Where another own device, connected through the relay, may meet this one directly
    /// now: the address the router forwards, then the outside addresses peers and the relay
    /// see it at (none where the router gives each peer a port of its own); at most
    /// [`failup_wire::MAX_MEET_ADDRS`].
    pub fn meet_me_at(&self, now: Timestamp) -> Vec<SocketAddr> {
        let mut at: Vec<SocketAddr> = self.mapped.into_iter().collect();
        for a in self.observations.published(now, &self.local_ips()) {
            if !at.contains(&a) {
                at.push(a);
            }
        }
        at.truncate(failup_wire::MAX_MEET_ADDRS);
        at
    }

    /// Whether `peer` is one of this person's own devices, trusted now (not a partner's).
    pub fn is_own(&self, peer: DeviceId) -> bool {
        self.trusted.contains(&peer)
            && self
                .members()
                .iter()
                .any(|m| m.device == peer && !m.revoked)
    }

    /// Puts this device's outside and mapped addresses into the circle, if it says otherwise
    /// (also once the circle arrives after the reports or the mapping did).
    fn publish_outside(&mut self, now: Timestamp) -> Result<(), NodeError> {
        let me = self.device();
        let published = self.observations.published(now, &self.local_ips());
        let mapped: Vec<SocketAddr> = self.mapped.into_iter().collect();
        self.edit_circle(|am| {
            let outside = circle::set_listed(am, me, circle::Listed::Outside, &published)?;
            Ok(circle::set_listed(am, me, circle::Listed::Mapped, &mapped)? || outside)
        })
    }

    /// The router forwards `addr` to this device now (a port mapping the daemon holds), or no
    /// longer forwards anything (`None`): the circle says so, so the other devices dial it
    /// there, and so do partners' devices (this person's side of each space lists it).
    pub fn set_mapped(
        &mut self,
        addr: Option<SocketAddr>,
        now: Timestamp,
    ) -> Result<(), NodeError> {
        if self.mapped == addr {
            return Ok(());
        }
        self.mapped = addr;
        self.publish_outside(now)?;
        // This person's side of each space lists the devices' addresses for partners.
        self.refresh_trust()
    }

    /// Whether a connection with `peer` that opened `now` came of an introduction.
    pub fn punched(&self, peer: DeviceId, now: Timestamp) -> bool {
        reach::punched(self.meetings.last(peer), now)
    }

    /// How a connection with `peer`, running to `remote` now, runs (see [`reach::path`]).
    pub fn path(
        &self,
        peer: DeviceId,
        remote: SocketAddr,
        dialed: bool,
        relayed: bool,
        punched: bool,
    ) -> reach::Path {
        let peer_mapped = self
            .circle
            .and_then(|doc| self.store.document(doc).ok().flatten())
            .and_then(|doc| circle::listed(&doc, circle::Listed::Mapped).remove(&peer))
            .unwrap_or_default();
        reach::path(reach::Opened {
            remote: failup_wire::canonical(remote),
            relayed,
            dialed,
            peer_mapped: &peer_mapped,
            own_mapped: self.mapped.is_some(),
            punched,
        })
    }

    /// The public address this device's router forwards to it, while it holds one.
    pub fn mapped(&self) -> Option<SocketAddr> {
        self.mapped
    }

    /// The introductions to make now that `peer`, seen at `remote`, connected, among the
    /// other devices connected here (`others`, with where each is seen): of this person's own
    /// devices to each other, both trusted; and with `partners` (the device opted in with
    /// `introduce-partners`), of a partner's device to an own one and back. Two partners'
    /// devices are never introduced to each other: neither learns from this device where the
    /// other is. Where either is a partner's device, an address on a local network is not
    /// told ([`reach::may_tell`]).
    pub fn introductions(
        &self,
        peer: DeviceId,
        remote: SocketAddr,
        others: &[(DeviceId, SocketAddr)],
        partners: bool,
    ) -> Vec<reach::Introduction> {
        let who: BTreeMap<DeviceId, reach::Who> = others
            .iter()
            .map(|(d, _)| *d)
            .chain([peer])
            .map(|d| (d, self.who(d)))
            .collect();
        let is = |d: &DeviceId| who.get(d).unwrap_or(&reach::Who::Unknown);
        let others: Vec<(DeviceId, SocketAddr)> = others
            .iter()
            .filter(|(d, _)| reach::may_introduce(is(&peer), is(d), partners))
            .copied()
            .collect();
        reach::introductions(peer, remote, &others)
            .into_iter()
            .filter(|i| reach::may_tell(is(&i.to), is(&i.about), i.at))
            .collect()
    }

    /// Device `from` says `device` dials this one now at `addrs`: the addresses to dial it at
    /// in turn, or `None` when the introduction does not count (see
    /// [`reach::Meetings::admit`]: from an own device about an own or a partner's device; from
    /// a partner's device about a device of that partner's only, within a budget) or names no
    /// address this device may dial on that word ([`reach::may_dial`]).
    pub fn meet(
        &mut self,
        from: DeviceId,
        device: DeviceId,
        addrs: Vec<SocketAddr>,
        now: Timestamp,
    ) -> Option<Vec<SocketAddr>> {
        let (from_is, device_is) = (self.who(from), self.who(device));
        let own_outside: Vec<std::net::IpAddr> =
            self.meet_me_at(now).iter().map(SocketAddr::ip).collect();
        let mut addrs: Vec<SocketAddr> = addrs
            .into_iter()
            .map(failup_wire::canonical)
            .filter(|a| reach::may_dial(&from_is, &device_is, *a, &own_outside))
            .collect();
        addrs.truncate(failup_wire::MAX_MEET_ADDRS);
        if addrs.is_empty() {
            return None;
        }
        self.meetings
            .admit(&from_is, device, &device_is, now)
            .then_some(addrs)
    }

    /// Who `device` is to this one, as an introduction is judged. An own device stays own
    /// whatever a partner's side says: a partner may list any device id there.
    fn who(&self, device: DeviceId) -> reach::Who {
        if device == self.device() {
            reach::Who::This
        } else if !self.trusted.contains(&device) {
            reach::Who::Unknown
        } else if self.is_own(device) {
            reach::Who::Own
        } else if let Some(spaces) = self.access.partner.get(&device) {
            reach::Who::Partner(spaces.iter().map(|(_, theirs)| *theirs).collect())
        } else {
            reach::Who::Unknown
        }
    }

    /// How peers see this device from outside, and what that says about its router.
    pub fn reach(&self, now: Timestamp) -> (Vec<reach::Observation>, reach::Mapping) {
        let local = self.local_ips();
        (
            self.observations.public(now, &local),
            self.observations.mapping(now, &local),
        )
    }

    /// Decides a pairing attempt that reached this device: the joiner `peer`, connected from
    /// `remote`, said `hello`.
    pub fn pair_incoming(
        &mut self,
        peer: DeviceId,
        remote: SocketAddr,
        hello: pairing::Hello,
        now: Timestamp,
    ) -> Reply {
        if !self.throttle.admit(remote.ip(), now) {
            if let Some(unlogged) = self.throttle.log_refusal(now) {
                tracing::warn!(
                    "pairing attempts from {} refused: too many ({unlogged} more refusals not \
                     logged)",
                    remote.ip()
                );
            }
            return Reply::Refused(
                "too many pairing attempts from this address; wait a minute and try again".into(),
            );
        }
        let verdict = match self.invites.check(&hello.secret, now) {
            Err(reason) => Err(reason),
            // Checked before the invite is spent, so a revoked device cannot burn it.
            Ok(_) if self.is_revoked(peer) => Err("this device was revoked".to_owned()),
            Ok((at, invite)) => {
                let addr = SocketAddr::new(remote.ip(), hello.port);
                let result = match (invite.partner.clone(), hello.space) {
                    (None, None) => {
                        self.admit(peer, &hello.name, addr, now)
                            .map(|circle| Reply::Accepted {
                                name: self.config.name.clone(),
                                circle: circle.0,
                            })
                    }
                    (Some(label), Some(theirs)) => {
                        let label = label.unwrap_or_else(|| {
                            hello.name.chars().filter(|c| !c.is_control()).collect()
                        });
                        self.admit_partner(peer, &label, DocId(theirs), addr)
                            .map(|mine| Reply::Partnered {
                                name: self.config.name.clone(),
                                space: mine.0,
                            })
                    }
                    (None, Some(_)) => Err(NodeError::Refused(
                        "this invite is for another device of the same person, not a partner"
                            .to_owned(),
                    )),
                    (Some(_), None) => Err(NodeError::Refused(
                        "this invite is for a partner; join it with `failup partner join`"
                            .to_owned(),
                    )),
                };
                // Spent only once the joiner is admitted: a failed admission leaves it usable.
                if result.is_ok() {
                    self.invites.spend(at);
                }
                result.map_err(|e| e.to_string())
            }
        };
        self.invites.prune(now);
        match verdict {
            Ok(reply) => reply,
            Err(reason) => {
                if let Some(unlogged) = self.throttle.log_refusal(now) {
                    tracing::warn!(
                        peer = %peer.short(),
                        "pairing refused: {reason} ({unlogged} more refusals not logged)"
                    );
                }
                Reply::Refused(reason)
            }
        }
    }

    /// Adds a device to the circle, creating the circle on first use; returns its document.
    fn admit(
        &mut self,
        device: DeviceId,
        name: &str,
        addr: SocketAddr,
        now: Timestamp,
    ) -> Result<DocId, NodeError> {
        if self.circle.is_none() && self.pending_circle().is_some() {
            return Err(NodeError::Unavailable(
                "the inviting device is still waiting for its own circle".into(),
            ));
        }
        let doc = self.ensure_circle()?;
        let seen = dialable(addr);
        self.edit_circle(|am| {
            circle::add(am, device, name, &seen, now.as_millisecond()).map(|()| true)
        })?;
        // The device is in the circle now, so the pairing has happened: a failure to write
        // what follows from it must not refuse the joiner and leave the invite usable.
        if let Err(e) = self.refresh_trust() {
            tracing::error!("paired, but cannot record what follows from it: {e}");
        }
        tracing::info!(peer = %device.short(), "paired");
        Ok(doc)
    }

    /// The circle document, created (holding this device alone) if there is none yet: partner
    /// records live there even for a person with one device.
    fn ensure_circle(&mut self) -> Result<DocId, NodeError> {
        if let Some(doc) = self.circle {
            return Ok(doc);
        }
        if self.pending_circle().is_some() {
            return Err(NodeError::Unavailable(
                "this device joined a circle whose list of devices has not arrived yet; \
                 connect to the inviting device once first"
                    .into(),
            ));
        }
        // Kept until shown, and written first: a circle whose key was lost in a crash before
        // it was kept would have a recovery key nobody holds.
        let recovery = failup_auth::recovery::RecoveryKey::generate()
            .map_err(|e| NodeError::Corrupt(e.to_string()))?;
        self.store.set_setting(RECOVERY_UNSHOWN, &recovery.seed())?;
        let mut am = self.store.new_document();
        circle::create(
            &mut am,
            self.device(),
            &self.config.name,
            &self.config.advertise,
            &recovery.public(),
            // The founding moment, not a decision's: nothing waits on it but aging.
            Timestamp::now().as_millisecond(),
        )?;
        am.commit();
        // The id names the founding change, so no other change can claim to found the circle.
        let root = am
            .get_heads()
            .first()
            .map(|h| h.0)
            .ok_or_else(|| NodeError::Corrupt("a new circle has no change".into()))?;
        let doc = DocId(failup_auth::membership::circle_id(&root));
        self.store.write_document(doc, &mut am, &[])?;
        self.store.set_setting(CIRCLE, &doc.0)?;
        self.circle = Some(doc);
        self.carry_prompts();
        Ok(doc)
    }

    /// Checks a device invite before the daemon connects to the inviter.
    pub fn check_join(&self, code: &str, now: Timestamp) -> Result<Code, NodeError> {
        if self.partners().iter().any(|p| !p.revoked) {
            return Err(NodeError::Refused(
                "this device already shares spaces with partners; pair it with your other \
                 devices from those devices instead (`failup pair invite` here)"
                    .into(),
            ));
        }
        let me = self.device();
        if self.circle.is_some() && self.members().iter().any(|m| m.device != me && !m.revoked) {
            return Err(NodeError::Refused(
                "this device already belongs to a circle of devices; it cannot join another".into(),
            ));
        }
        let code = match Code::decode(code).map_err(NodeError::Invalid)? {
            (_, true) => {
                return Err(NodeError::Invalid(
                    "this is a partner invite: join it with `failup partner join CODE --name LABEL`"
                        .into(),
                ));
            }
            (c, false) => c,
        };
        self.check_code(&code, now)?;
        // A join still waiting for its circle may be retried with the same device, not another.
        if self.circle.is_none()
            && (self.pending_circle().is_some() || !self.bootstrap.is_empty())
            && !self.bootstrap.keys().any(|d| code.names(*d))
        {
            return Err(NodeError::Refused(
                "this device already joined another device's circle; it cannot join a second"
                    .into(),
            ));
        }
        Ok(code)
    }

    fn check_code(&self, code: &Code, now: Timestamp) -> Result<(), NodeError> {
        if code.expired(now) {
            return Err(NodeError::Refused("this invite has expired".into()));
        }
        if code.names(self.device()) {
            return Err(NodeError::Invalid(
                "this invite was made by this device".into(),
            ));
        }
        Ok(())
    }

    /// Remembers the device this one just joined until the circle document arrives by sync.
    pub fn joined(&mut self, joined: Joined, name: Option<String>) -> Result<(), NodeError> {
        let Joined {
            inviter,
            name: inviter_name,
            addrs,
            circle,
            space: _,
        } = joined;
        let Some(circle) = circle else {
            return Err(NodeError::Refused(
                "the inviting device answered as a partner, not as a device of this person".into(),
            ));
        };
        let name = name.unwrap_or(inviter_name);
        self.bootstrap.insert(inviter, (name.clone(), addrs));
        self.save_bootstrap()?;
        self.store.set_setting(JOINED_CIRCLE, &circle.0)?;
        // Invites made before joining would start a second circle: they are void now.
        self.invites.clear();
        self.refresh_trust()?;
        tracing::info!(peer = %inviter.short(), "joined the circle of {name}");
        Ok(())
    }
}

fn is_circle_doc(store: &Store, doc: DocId) -> Result<bool, NodeError> {
    Ok(setting_doc(store, JOINED_CIRCLE)? == Some(doc)
        && store.document(doc)?.is_some_and(|d| circle::is_circle(&d)))
}

/// The store as the sync engine sees it: every document may be synced with every device of the
/// circle; a partner's device sees only its space (see [`sharing::Access`]).
pub struct NodeDocuments<'a> {
    store: &'a mut Store,
    access: &'a sharing::Access,
    authors: &'a mut authors::Authors,
    me: DeviceId,
    bootstrap: Vec<DeviceId>,
}

impl NodeDocuments<'_> {
    /// After the circle changed, judges what arrives next by the circle as it is now: who may
    /// write each document, and which documents are sides of spaces (never indexed as journal
    /// buckets), decided before the next document is accepted.
    fn received(&mut self, doc: DocId, changed: bool) {
        if changed && Some(doc) == self.access.circle {
            *self.authors = authors::Authors::compute(
                self.store,
                self.access.circle,
                self.me,
                self.bootstrap.iter().copied(),
            );
            if let Err(e) = self.store.set_foreign(self.authors.spaces.iter().copied()) {
                tracing::error!("cannot mark the sides of spaces: {e}");
            }
        }
    }
}

fn doc_error(e: failup_store::StoreError) -> DocError {
    DocError(e.to_string())
}

impl Documents for NodeDocuments<'_> {
    fn saved(&mut self, doc: DocId) -> Result<Option<failup_wire::SealedDoc>, DocError> {
        self.store.saved_document(doc).map_err(doc_error)
    }

    fn receive_whole(
        &mut self,
        doc: DocId,
        data: &[u8],
        seals: &failup_sync::Seals,
    ) -> Result<bool, DocError> {
        let changed = self
            .store
            .receive_whole(doc, data, seals, &*self.authors)
            .map_err(doc_error)?;
        self.received(doc, changed);
        Ok(changed)
    }

    fn goes_first(&mut self, doc: DocId) -> bool {
        Some(doc) == self.access.circle
    }

    fn inventory(&mut self, peer: DeviceId) -> Result<Vec<InventoryItem>, DocError> {
        Ok(self
            .store
            .inventory()
            .map_err(doc_error)?
            .into_iter()
            .filter(|(doc, _)| self.access.may_sync(peer, *doc))
            .map(|(doc, heads)| InventoryItem {
                doc,
                heads: failup_wire::heads_digest(&heads),
            })
            .collect())
    }

    fn may_sync(&mut self, peer: DeviceId, doc: DocId) -> bool {
        self.access.may_sync(peer, doc)
    }

    fn may_write(&mut self, peer: DeviceId, doc: DocId) -> bool {
        self.access.may_write(peer, doc)
    }

    fn holds(&mut self, doc: DocId) -> bool {
        self.store.holds(doc).unwrap_or(false)
    }

    fn generate(
        &mut self,
        doc: DocId,
        state: &mut automerge::sync::State,
    ) -> Result<Option<(automerge::sync::Message, Vec<Seal>)>, DocError> {
        self.store.sync_generate(doc, state).map_err(doc_error)
    }

    fn receive(
        &mut self,
        doc: DocId,
        state: &mut automerge::sync::State,
        msg: automerge::sync::Message,
        seals: &mut failup_sync::Seals,
    ) -> Result<bool, DocError> {
        let changed = self
            .store
            .sync_receive(doc, state, msg, seals, &*self.authors)
            .map_err(doc_error)?;
        self.received(doc, changed);
        Ok(changed)
    }
}

#[cfg(test)]
mod prompt_tests {
    use super::*;

    #[test]
    fn a_synced_prompt_that_would_drive_the_terminal_or_break_the_template_is_left_out() {
        let mut am = automerge::AutoCommit::new();
        circle::set_prompt(&mut am, "lesson", Some("What now?")).expect("put");
        circle::set_prompt(&mut am, "muscle", Some("Which \u{1b}[2J muscle?")).expect("put");
        circle::set_prompt(&mut am, "use", Some("two\nlines")).expect("put");
        circle::set_prompt(&mut am, "story", Some("What happened:\n\n")).expect("put");
        circle::set_prompt(&mut am, "next", Some("not a prompt")).expect("put");
        let usable = usable_prompts(circle::prompts(&am));
        assert_eq!(
            usable.into_iter().collect::<Vec<_>>(),
            vec![
                ("lesson".to_owned(), "What now?".to_owned()),
                ("story".to_owned(), "What happened:\n\n".to_owned()),
            ]
        );
        assert!(check_prompt("lesson", &"x".repeat(MAX_QUESTION_CHARS + 1)).is_err());
        assert!(check_prompt("lesson", "  ").is_err());
    }

    #[test]
    fn prompts_set_at_once_on_two_devices_both_count() {
        let mut a = automerge::AutoCommit::new();
        let mut b = a.fork();
        circle::set_prompt(&mut a, "lesson", Some("From a?")).expect("put");
        circle::set_prompt(&mut b, "muscle", Some("From b?")).expect("put");
        a.merge(&mut b).expect("merge");
        let held = circle::prompts(&a);
        assert_eq!(held.get("lesson").map(String::as_str), Some("From a?"));
        assert_eq!(held.get("muscle").map(String::as_str), Some("From b?"));
    }
}
