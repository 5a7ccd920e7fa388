//! Accountability partners: spaces shared with another person, and who may see what.
//!
//! A space is two documents, one per person (`failup_journal::space`): each person's devices
//! write their own side (the entries they share, their comments, their devices) and only read
//! the other's. The partner records live in this person's circle document, so every device of
//! the circle knows the partners, and a revocation made on one reaches all.
//!
//! Access, enforced here for the engine on both sending and receiving: a device of this
//! person's circle may sync every document; a partner's device may sync the two sides of its
//! space and nothing else (any other document is left out of its inventory and answered
//! `doc-unavailable`), and may write only its own person's side (this person's side is synced
//! to it read-only). A partner's devices are the devices met at pairing plus those the partner
//! vouches for in their side of the space.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use failup_journal::EntryId;
use failup_journal::space::{Comment, Field, SharedEntry, Space, parse_fields};
use failup_journal::text::{Lines, check_plain};
use failup_store::Store;
use failup_wire::{DeviceId, DocId};
use jiff::Timestamp;

use crate::circle::{self, Partner};
use crate::pairing::{Code, Joined};
use crate::request::{CommentInfo, FeedItem, PartnerInfo, PeerInfo, ShareInfo};
use crate::{Node, NodeError};

/// Longest partner label, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;
/// Most devices of one partner this device trusts and dials: those met at pairing first, then
/// those their side lists, in id order. A partner listing more gets the first ones only.
pub const MAX_PARTNER_DEVICES: usize = 8;
/// Most addresses dialed per partner device, in the order their side lists them.
pub const MAX_PARTNER_ADDRS: usize = 4;

/// Partners' devices as this device knows them.
pub(crate) struct PartnerDevices {
    /// Each trusted partner device with the spaces it is in: (this person's side, theirs).
    pub(crate) access: HashMap<DeviceId, Vec<(DocId, DocId)>>,
    /// Where each can be reached.
    pub(crate) addrs: BTreeMap<DeviceId, Vec<SocketAddr>>,
    /// Devices of revoked partners, refused for good.
    pub(crate) revoked: BTreeSet<DeviceId>,
}

/// Which documents each partner device may sync, and write.
#[derive(Debug, Default, Clone)]
pub(crate) struct Access {
    /// A partner's device: (this person's side, the partner's side) of each space it is in.
    pub(crate) partner: HashMap<DeviceId, Vec<(DocId, DocId)>>,
    /// The circle, which no partner's device ever gets, whatever a space claims.
    pub(crate) circle: Option<DocId>,
    /// Devices of the circle whose revocation is contested: they sync the circle alone.
    pub(crate) contested: BTreeSet<DeviceId>,
}

impl Access {
    /// Whether `peer` may sync `doc`. Devices that are not partners' are this person's own.
    pub(crate) fn may_sync(&self, peer: DeviceId, doc: DocId) -> bool {
        if self.contested.contains(&peer) {
            return Some(doc) == self.circle;
        }
        match self.partner.get(&peer) {
            Some(spaces) => {
                Some(doc) != self.circle && spaces.iter().any(|(m, t)| *m == doc || *t == doc)
            }
            None => true,
        }
    }

    /// Whether changes to `doc` may come from `peer`.
    pub(crate) fn may_write(&self, peer: DeviceId, doc: DocId) -> bool {
        if self.contested.contains(&peer) {
            return Some(doc) == self.circle;
        }
        match self.partner.get(&peer) {
            Some(spaces) => Some(doc) != self.circle && spaces.iter().any(|(_, t)| *t == doc),
            None => true,
        }
    }
}

/// A partner's devices as this device takes them: those met at pairing, then those their
/// side lists (in id order) up to [`MAX_PARTNER_DEVICES`] in all, each with at most
/// [`MAX_PARTNER_ADDRS`] addresses. A partner names its devices; it does not get to name how
/// many, nor point this person's devices at any number of addresses.
pub(crate) fn capped(
    met: &BTreeMap<DeviceId, Vec<SocketAddr>>,
    listed: BTreeMap<String, Vec<String>>,
) -> BTreeMap<DeviceId, Vec<SocketAddr>> {
    let mut devices = met.clone();
    for (id, a) in listed {
        let Some(d) = circle::canonical_device(&id) else {
            continue;
        };
        if !devices.contains_key(&d) && devices.len() >= MAX_PARTNER_DEVICES {
            continue;
        }
        let parsed: Vec<SocketAddr> = a.iter().filter_map(|x| x.parse().ok()).collect();
        devices.entry(d).or_default().extend(parsed);
    }
    for a in devices.values_mut() {
        a.dedup();
        a.truncate(MAX_PARTNER_ADDRS);
    }
    devices
}

/// The partners of a circle as the membership rules count them: recorded by a change that
/// counts, with the sides the first such change named and only the devices (and addresses)
/// such changes recorded. The circle's content alone is not enough: a void change (a revoked device's) can
/// overwrite a partner's `mine` with the id of a private bucket, or add a device of its own.
pub(crate) fn counted_partners(
    doc: &automerge::AutoCommit,
    v: &failup_auth::membership::Verdict,
) -> Vec<circle::Partner> {
    circle::partners(doc)
        .into_iter()
        .filter(|p| v.partners.contains(&p.label))
        .filter_map(|mut p| {
            let (mine, theirs) = v.partner_sides.get(&p.label).copied()?;
            p.mine = DocId(mine?);
            p.theirs = DocId(theirs?);
            let met = v.partner_devices.get(&p.label);
            p.devices.retain(|d, addrs| {
                let Some(counted) = met.and_then(|m| m.get(d)) else {
                    return false;
                };
                addrs.retain(|a| counted.contains(&a.to_string()));
                true
            });
            p.revoked = v.partners_revoked.contains(&p.label);
            Some(p)
        })
        .collect()
}

/// One side of a space, if held (the partner's side arrives by sync after pairing).
fn space(store: &Store, doc: DocId) -> Result<Option<Space>, NodeError> {
    match store.document(doc)? {
        Some(am) => Ok(Some(Space::from_doc(am)?)),
        None => Ok(None),
    }
}

fn comments_for(
    mine: &Option<Space>,
    theirs: &Option<Space>,
    label: &str,
    entry: EntryId,
) -> Vec<CommentInfo> {
    let mut out: Vec<CommentInfo> = Vec::new();
    for (side, by) in [(mine, None), (theirs, Some(label.to_owned()))] {
        if let Some(s) = side {
            for c in s.comments().unwrap_or_default() {
                if c.entry == entry {
                    out.push(CommentInfo {
                        by: by.clone(),
                        comment: c,
                        new: false,
                    });
                }
            }
        }
    }
    out.sort_by_key(|c| c.comment.id);
    out
}

impl Node {
    /// This person's shared entries: with whom, and the comments under them.
    pub(crate) fn shares(&self) -> Result<Vec<ShareInfo>, NodeError> {
        let store = &self.store;
        let mut out: BTreeMap<EntryId, ShareInfo> = BTreeMap::new();
        for p in self.partners().into_iter().filter(|p| !p.revoked) {
            // A side that does not read (damaged, or written by a modified client) is left out
            // rather than making every listing fail.
            let mine = space(store, p.mine).ok().flatten();
            let theirs = space(store, p.theirs).ok().flatten();
            let Some(m) = &mine else { continue };
            for e in m.entries().unwrap_or_default() {
                let info = out.entry(e.id).or_insert_with(|| ShareInfo {
                    id: e.id,
                    with: Vec::new(),
                    comments: Vec::new(),
                });
                info.with.push(p.label.clone());
                info.comments
                    .extend(comments_for(&mine, &theirs, &p.label, e.id));
            }
        }
        Ok(out.into_values().collect())
    }

    /// The partner records, from the circle: those a change that counts recorded, revoked
    /// if a change that counts revoked them.
    pub(crate) fn partners(&self) -> Vec<Partner> {
        let Some(doc) = self
            .circle
            .and_then(|doc| self.store.document(doc).ok().flatten())
        else {
            return Vec::new();
        };
        counted_partners(&doc, &self.verdict())
    }

    fn partner(&self, label: &str) -> Result<Partner, NodeError> {
        self.partners()
            .into_iter()
            .find(|p| p.label == label && !p.revoked)
            .ok_or_else(|| {
                NodeError::NotFound(format!(
                    "no partner called {label:?} (see `failup partner list`)"
                ))
            })
    }

    /// A label for a new partner must be free and sensible.
    pub(crate) fn check_new_label(&self, label: &str) -> Result<(), NodeError> {
        // Named first, with the character: a label is shown in every feed line and listing.
        check_plain("a partner's label", label, Lines::One)?;
        if label.trim().is_empty()
            || label.len() > MAX_LABEL_BYTES
            || label.contains('/')
            || label.chars().any(char::is_control)
        {
            return Err(NodeError::Invalid(format!(
                "{label:?} cannot name a partner: use 1 to {MAX_LABEL_BYTES} bytes, no '/' or \
                 control characters"
            )));
        }
        if self.partners().iter().any(|p| p.label == label) {
            return Err(NodeError::Invalid(format!(
                "there is already a partner called {label:?}"
            )));
        }
        Ok(())
    }

    /// The other person's side of a new space must be a document nobody here knows: an id
    /// that names the circle, a journal bucket or another space would hand that document to
    /// the partner.
    fn check_new_space(&self, theirs: DocId) -> Result<(), NodeError> {
        let known = self.store.holds(theirs)?
            || Some(theirs) == self.circle
            || self.pending_circle() == Some(theirs)
            || self
                .partners()
                .iter()
                .any(|p| p.mine == theirs || p.theirs == theirs);
        if known {
            tracing::warn!("a partner offered a space id this device already uses: refused");
            return Err(NodeError::Refused(
                "the partner's space id is already in use here: refused".into(),
            ));
        }
        Ok(())
    }

    /// Starts this person's side of a new space.
    fn new_space(&mut self, doc: DocId) -> Result<(), NodeError> {
        let actor = self.store.new_document().get_actor().to_bytes().to_vec();
        let mut am = Space::create(&actor, doc.0)?.into_doc();
        self.store.write_document(doc, &mut am, &[])?;
        Ok(())
    }

    /// The inviter's side of a partner pairing: records the partner and starts this side of
    /// the space; returns its id.
    pub(crate) fn admit_partner(
        &mut self,
        device: DeviceId,
        label: &str,
        theirs: DocId,
        addr: SocketAddr,
    ) -> Result<DocId, NodeError> {
        self.check_new_label(label)?;
        self.check_new_space(theirs)?;
        self.ensure_circle()?;
        let mine = DocId(rand::random());
        self.new_space(mine)?;
        self.edit_circle(|am| {
            circle::add_partner(am, label, mine, theirs, device, &crate::dialable(addr))
                .map(|()| true)
        })?;
        // Recorded: the pairing has happened, whatever a later write says (see `admit`).
        if let Err(e) = self.refresh_trust() {
            tracing::error!("partnered, but cannot record what follows from it: {e}");
        }
        tracing::info!(peer = %device.short(), "partnered with {label}");
        Ok(mine)
    }

    /// Checks a partner invite before the daemon connects to the inviter.
    pub fn check_partner_join(
        &self,
        code: &str,
        label: &str,
        now: Timestamp,
    ) -> Result<Code, NodeError> {
        let code = match Code::decode(code).map_err(NodeError::Invalid)? {
            (c, true) => c,
            (_, false) => {
                return Err(NodeError::Invalid(
                    "this invite is for another device of the inviting person: join it with \
                     `failup pair join`"
                        .into(),
                ));
            }
        };
        self.check_new_label(label)?;
        self.check_code(&code, now)?;
        if self
            .members()
            .iter()
            .any(|m| code.names(m.device) && !m.revoked)
        {
            return Err(NodeError::Invalid(
                "this invite was made by another device of this person, not a partner".into(),
            ));
        }
        Ok(code)
    }

    /// Records the partner just joined.
    /// Records the partner just joined; `mine` is the id of this person's side of the space,
    /// chosen before the join so the inviter learned it in the hello.
    pub fn partner_joined(
        &mut self,
        joined: Joined,
        label: String,
        mine: DocId,
    ) -> Result<(), NodeError> {
        let Some(theirs) = joined.space else {
            return Err(NodeError::Refused(
                "the inviting device answered as a device of this person, not a partner".into(),
            ));
        };
        self.check_new_label(&label)?;
        self.check_new_space(theirs)?;
        if theirs == mine {
            return Err(NodeError::Refused(
                "the partner's space id is already in use here: refused".into(),
            ));
        }
        self.ensure_circle()?;
        self.new_space(mine)?;
        self.edit_circle(|am| {
            circle::add_partner(am, &label, mine, theirs, joined.inviter, &joined.addrs)
                .map(|()| true)
        })?;
        self.refresh_trust()?;
        tracing::info!(peer = %joined.inviter.short(), "partnered with {label}");
        Ok(())
    }

    /// Every partner's devices with the two sides of the space each may sync: those met at
    /// pairing and those the partner vouches for in their side. Devices of revoked partners
    /// come back separately, to be refused for good.
    pub(crate) fn partner_devices(
        &self,
        members: &[circle::Member],
        partners: &[Partner],
    ) -> PartnerDevices {
        let mut access: HashMap<DeviceId, Vec<(DocId, DocId)>> = HashMap::new();
        let mut addrs: BTreeMap<DeviceId, Vec<SocketAddr>> = BTreeMap::new();
        let mut revoked = BTreeSet::new();
        let own: BTreeSet<DeviceId> = members.iter().map(|m| m.device).collect();
        for p in partners {
            let listed = match space(&self.store, p.theirs) {
                Ok(Some(side)) => side.devices().unwrap_or_default(),
                _ => BTreeMap::new(),
            };
            for (d, a) in capped(&p.devices, listed) {
                // A partner cannot make one of this person's devices theirs.
                if own.contains(&d) || d == self.device() {
                    continue;
                }
                if p.revoked {
                    revoked.insert(d);
                    continue;
                }
                access.entry(d).or_default().push((p.mine, p.theirs));
                let known = addrs.entry(d).or_default();
                known.extend(a);
                known.sort();
                known.dedup();
            }
        }
        // A device another, still trusted, partner vouches for is theirs to lose, not this
        // revoked partner's to take down.
        revoked.retain(|d| !access.contains_key(d));
        PartnerDevices {
            access,
            addrs,
            revoked,
        }
    }

    /// Keeps this person's side of every space listing this person's devices, so partners'
    /// devices trust a device paired later without anyone asking them.
    pub(crate) fn vouch(&mut self, members: &[circle::Member], partners: &[Partner]) {
        let mut devices: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in members.iter().filter(|m| !m.revoked) {
            devices.insert(
                m.device.to_string(),
                m.addrs.iter().map(|a| a.to_string()).collect(),
            );
        }
        if devices.is_empty() {
            devices.insert(self.device().to_string(), self.advertised());
        }
        for p in partners.iter().filter(|p| !p.revoked) {
            let result = self.edit_space(p.mine, |s| Ok(s.set_devices(&devices)?));
            if let Err(e) = result {
                tracing::warn!("cannot list this person's devices for {}: {e}", p.label);
            }
        }
    }

    /// Changes this person's side of a space with `edit` (which says whether it changed
    /// anything) and makes it durable; the daemon offers it to peers from
    /// [`Node::take_changes`].
    fn edit_space(
        &mut self,
        doc: DocId,
        edit: impl FnOnce(&mut Space) -> Result<bool, NodeError>,
    ) -> Result<(), NodeError> {
        let Some(am) = self.store.document(doc)? else {
            // The side arrives from this person's other device by sync; nothing to do yet.
            return Ok(());
        };
        let mut am = am;
        let before = am.get_heads();
        let mut side = Space::from_doc(am)?;
        if !edit(&mut side)? {
            return Ok(());
        }
        let mut am = side.into_doc();
        self.store.write_document(doc, &mut am, &before)?;
        Ok(())
    }

    /// Brings every shared copy up to date with the private entry it copies, so an edit
    /// reaches the partner. An entry this device does not hold (yet: its bucket may still be on
    /// the way) is left as it is; a deleted entry leaves the space through [`State::unshare_all`]
    /// on the device that deleted it.
    pub(crate) fn reproject(&mut self) {
        for p in self.partners().into_iter().filter(|p| !p.revoked) {
            let current: Vec<(SharedEntry, failup_journal::Entry)> =
                match space(&self.store, p.mine) {
                    Ok(Some(side)) => side
                        .entries()
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|e| {
                            let private = self.store.get(e.id).ok().flatten()?;
                            Some((e, private))
                        })
                        .collect(),
                    _ => continue,
                };
            let result = self.edit_space(p.mine, |side| {
                let mut changed = false;
                for (shared, entry) in current {
                    let mut fresh = SharedEntry::project(&entry, &shared.fields, shared.shared_at);
                    // The copy's time moves only when a shared field does: an edit of a field
                    // kept private must not be announced to the partner either.
                    fresh.updated = shared.updated;
                    if fresh != shared {
                        fresh.updated = entry.updated;
                        side.put(&fresh)?;
                        changed = true;
                    }
                }
                Ok(changed)
            });
            if let Err(e) = result {
                tracing::warn!("cannot update what {} sees: {e}", p.label);
            }
        }
    }

    /// Takes a deleted entry out of every space it was shared in.
    pub(crate) fn unshare_all(&mut self, id: EntryId) -> Result<(), String> {
        let mut failed = Vec::new();
        for p in self.partners().into_iter().filter(|p| !p.revoked) {
            if let Err(e) = self.edit_space(p.mine, |side| Ok(side.remove(id)?)) {
                tracing::warn!(
                    "cannot take a deleted entry out of what {} sees: {e}",
                    p.label
                );
                failed.push(format!("{} ({e})", p.label));
            }
        }
        match failed.is_empty() {
            true => Ok(()),
            false => Err(format!("still shared with {}", failed.join(", "))),
        }
    }

    /// `failup share`.
    pub(crate) fn share(
        &mut self,
        id: EntryId,
        with: &str,
        only: Option<&str>,
        now: Timestamp,
    ) -> Result<(), NodeError> {
        let p = self.partner(with)?;
        if let Some(e) = self.closed_error(&p) {
            return Err(e);
        }
        let entry = self
            .store
            .get(id)?
            .ok_or_else(|| NodeError::NotFound(format!("no entry {id}")))?;
        let fields: BTreeSet<Field> = match only {
            Some(list) => parse_fields(list)?,
            None => Field::ALL.into_iter().collect(),
        };
        if self.store.document(p.mine)?.is_none() {
            return Err(NodeError::Unavailable(format!(
                "the space shared with {with} has not reached this device yet; sync with your \
                 other devices first"
            )));
        }
        self.edit_space(p.mine, |side| {
            let shared_at = side.entry(id)?.map_or(now, |e| e.shared_at);
            side.put(&SharedEntry::project(&entry, &fields, shared_at))?;
            Ok(true)
        })
    }

    /// `failup unshare`.
    pub(crate) fn unshare(&mut self, id: EntryId, with: &str) -> Result<(), NodeError> {
        let p = self.partner(with)?;
        let mut found = false;
        self.edit_space(p.mine, |side| {
            found = side.remove(id)?;
            Ok(found)
        })?;
        if !found {
            return Err(NodeError::NotFound(format!(
                "entry {id} is not shared with {with}"
            )));
        }
        Ok(())
    }

    /// Every device of partner `p` known here: met at pairing, or listed in their side.
    fn devices_of(&self, p: &Partner) -> BTreeSet<DeviceId> {
        let mut devices: BTreeSet<DeviceId> = p.devices.keys().copied().collect();
        if let Ok(Some(side)) = space(&self.store, p.theirs) {
            devices.extend(
                side.devices()
                    .unwrap_or_default()
                    .keys()
                    .filter_map(|k| k.parse::<DeviceId>().ok()),
            );
        }
        devices
    }

    /// Since when partner `p` has closed the space on this person: one of their devices
    /// refused this device as revoked, and none of their devices delivered a message since (a
    /// device of theirs that has not heard of the revocation yet still syncs, and a stolen
    /// device of theirs that says so falsely closes nothing for long).
    pub(crate) fn closed_since(&self, p: &Partner) -> Option<Timestamp> {
        let told = self
            .devices_of(p)
            .iter()
            .filter_map(|d| self.told_revoked.get(d))
            .max()
            .copied()?;
        match self.delivered.get(&p.theirs) {
            Some(at) if *at > told => None,
            _ => Some(told),
        }
    }

    /// A partner's device refused this device with TLS's `certificate_revoked`, after a
    /// handshake in which this device verified it: it is neither dialed nor admitted again,
    /// and its partner's space counts as closed. Returns the partner's label the first time;
    /// `None` for a device that is not a partner's (an own device revoked by another is told
    /// by the circle, which the rules read).
    pub fn refused_as_revoked(
        &mut self,
        peer: DeviceId,
        now: Timestamp,
    ) -> Result<Option<String>, NodeError> {
        let Some(p) = self
            .partners()
            .into_iter()
            .find(|p| !p.revoked && self.devices_of(p).contains(&peer))
        else {
            return Ok(None);
        };
        if self.told_revoked.contains_key(&peer) {
            return Ok(None);
        }
        self.told_revoked.insert(peer, now);
        let list: Vec<([u8; 32], i64)> = self
            .told_revoked
            .iter()
            .map(|(d, t)| (d.0, t.as_millisecond()))
            .collect();
        // In force before it is written: a failed write is reported and tried again by the
        // next refusal.
        let saved = crate::encode(&list)
            .and_then(|b| Ok(self.store.set_setting(crate::TOLD_REVOKED, &b)?));
        self.refresh_trust()?;
        saved?;
        Ok(Some(p.label))
    }

    /// A partner's device delivered a message: its person still syncs with this one.
    pub fn delivered_by(&mut self, peer: DeviceId, now: Timestamp) {
        if self.told_revoked.is_empty() {
            return;
        }
        if let Some(pairs) = self.access.partner.get(&peer) {
            for (_, theirs) in pairs.clone() {
                self.delivered.insert(theirs, now);
            }
        }
    }

    /// The error for writing into a space partner `p` closed.
    fn closed_error(&self, p: &Partner) -> Option<NodeError> {
        self.closed_since(p).map(|at| {
            NodeError::Refused(format!(
                "{} closed the space you shared on {}: nothing you write there reaches them any \
                 more; what they shared stays readable (`failup feed`)",
                p.label,
                at.strftime("%Y-%m-%d")
            ))
        })
    }

    /// `failup partner revoke`: on every device of the circle, for good.
    pub(crate) fn partner_revoke(&mut self, label: &str, now: Timestamp) -> Result<(), NodeError> {
        let p = self.partner(label)?;
        let ms = now.as_millisecond();
        self.edit_circle(|am| circle::revoke_partner(am, &p.label, ms).map(|()| true))?;
        self.refresh_trust()?;
        tracing::warn!("partner {label} revoked");
        Ok(())
    }

    /// The partners as this node knows them: nothing is connected, and last-seen times are
    /// known only to a running daemon (which fills them in).
    pub fn partner_list(&self) -> Result<Vec<PartnerInfo>, NodeError> {
        let partners = self.partners();
        let addrs = self.partner_devices(&self.members(), &partners).addrs;
        Ok(partners
            .into_iter()
            .map(|p| {
                let count = |doc| {
                    space(&self.store, doc)
                        .ok()
                        .flatten()
                        .and_then(|s| s.entries().ok())
                        .map_or(0, |e| e.len() as u64)
                };
                let devices = self.devices_of(&p);
                PartnerInfo {
                    label: p.label.clone(),
                    revoked: p.revoked,
                    closed: self.closed_since(&p).map(|t| t.to_string()),
                    devices: devices
                        .into_iter()
                        .map(|d| PeerInfo {
                            device: d.to_string(),
                            name: p.label.clone(),
                            role: "partner".into(),
                            addrs: addrs
                                .get(&d)
                                .map(|a| a.iter().map(|a| a.to_string()).collect())
                                .unwrap_or_default(),
                            outside: Vec::new(),
                            connected: false,
                            via: None,
                            path: None,
                            last_seen: None,
                            last_sync: None,
                            revoked: p.revoked,
                            undone: 0,
                            recovered: false,
                            recovery_unshown: false,
                        })
                        .collect(),
                    shared_by_me: count(p.mine),
                    shared_with_me: count(p.theirs),
                }
            })
            .collect())
    }

    /// `failup feed`: what partners shared, newest first; what is newer than the last read is
    /// marked new, and the feed counts as read from now.
    /// What partners shared, and this person's shared entries that partners commented on,
    /// with what is new since the feed was last read; read at `now` (marked read then), or
    /// only looked at with `None`.
    pub(crate) fn feed(
        &mut self,
        only: Option<&str>,
        now: Option<Timestamp>,
    ) -> Result<Vec<FeedItem>, NodeError> {
        if let Some(label) = only {
            self.partner(label)?;
        }
        let mut out = Vec::new();
        for p in self.partners().into_iter().filter(|p| !p.revoked) {
            if only.is_some_and(|l| l != p.label) {
                continue;
            }
            let key = format!("feed-read/{}", p.label);
            let last_read = self
                .store
                .setting(&key)
                .ok()
                .flatten()
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map(i64::from_be_bytes)
                .and_then(|ms| Timestamp::from_millisecond(ms).ok());
            let mine = space(&self.store, p.mine).ok().flatten();
            let theirs = match space(&self.store, p.theirs) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("what {} shared does not read: {e}", p.label);
                    None
                }
            };
            let newer = |t: Timestamp| last_read.is_none_or(|r| t > r);
            let marked = |mut comments: Vec<CommentInfo>| {
                for c in &mut comments {
                    c.new = c.by.is_some() && newer(c.comment.at);
                }
                comments
            };
            if let Some(t) = &theirs {
                for e in t.entries().unwrap_or_default() {
                    let comments = marked(comments_for(&mine, &theirs, &p.label, e.id));
                    let new = newer(e.updated.max(e.shared_at)) || comments.iter().any(|c| c.new);
                    out.push(FeedItem {
                        partner: p.label.clone(),
                        entry: e,
                        comments,
                        new,
                        yours: false,
                    });
                }
            }
            // This person's own shared entries the partner commented on: the other half of
            // the loop.
            if let Some(m) = &mine {
                for e in m.entries().unwrap_or_default() {
                    let comments = marked(comments_for(&mine, &theirs, &p.label, e.id));
                    if !comments.iter().any(|c| c.by.is_some()) {
                        continue;
                    }
                    let new = comments.iter().any(|c| c.new);
                    out.push(FeedItem {
                        partner: p.label.clone(),
                        entry: e,
                        comments,
                        new,
                        yours: true,
                    });
                }
            }
            if let Some(now) = now {
                self.store
                    .set_setting(&key, &now.as_millisecond().to_be_bytes())?;
            }
        }
        out.sort_by(|a, b| {
            b.entry
                .day
                .cmp(&a.entry.day)
                .then(b.entry.id.cmp(&a.entry.id))
        });
        Ok(out)
    }

    /// `failup cheer`: a comment, in this person's side of the space the entry is shared in.
    pub(crate) fn cheer(
        &mut self,
        prefix: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<(), NodeError> {
        let want = prefix.trim().to_ascii_uppercase();
        if want.is_empty() {
            return Err(NodeError::Invalid("give an entry id".into()));
        }
        let mut found: Vec<(EntryId, DocId)> = Vec::new();
        let partners: Vec<Partner> = self.partners().into_iter().filter(|p| !p.revoked).collect();
        for p in &partners {
            for doc in [p.mine, p.theirs] {
                if let Some(s) = space(&self.store, doc).ok().flatten() {
                    for e in s.entries().unwrap_or_default() {
                        if e.id.to_string().starts_with(&want) {
                            found.push((e.id, p.mine));
                        }
                    }
                }
            }
        }
        found.sort();
        found.dedup();
        if let [(_, side)] = found.as_slice() {
            if let Some(e) = partners
                .iter()
                .find(|p| p.mine == *side)
                .and_then(|p| self.closed_error(p))
            {
                return Err(e);
            }
        }
        let (id, side) = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(NodeError::NotFound(format!(
                    "no shared entry matches {prefix:?}"
                )));
            }
            _ => {
                return Err(NodeError::Invalid(format!(
                    "{prefix:?} matches several shared entries; give more of the id"
                )));
            }
        };
        let ms = u64::try_from(now.as_millisecond()).unwrap_or(0);
        let comment = Comment {
            id: failup_journal::IterationId::from_parts(ms, rand::random()),
            entry: id,
            at: now,
            text: text.to_owned(),
        };
        self.edit_space(side, |s| {
            s.comment(&comment)?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_void_change_neither_redirects_a_partners_side_nor_adds_a_partner_device_or_address() {
        use failup_auth::membership::{self, Author};
        let (a, r, bob, x) = (
            DeviceId([1; 32]),
            DeviceId([2; 32]),
            DeviceId([3; 32]),
            DeviceId([4; 32]),
        );
        let actor = |d: DeviceId| automerge::ActorId::from(failup_auth::actor_of(&d));
        let mut doc = automerge::AutoCommit::new().with_actor(actor(a));
        circle::create(&mut doc, a, "laptop", &[], &[0; 32], 0).expect("create");
        doc.commit();
        circle::add(&mut doc, r, "tablet", &[], 0).expect("add");
        let real: SocketAddr = "192.0.2.1:7".parse().expect("addr");
        circle::add_partner(
            &mut doc,
            "bob",
            DocId([5; 16]),
            DocId([6; 16]),
            bob,
            &[real],
        )
        .expect("partner");
        doc.commit();
        // R, on a fork that has not seen its revocation, points bob's side at a private bucket
        // and records a device of its own as bob's.
        let mut theirs = doc.fork().with_actor(actor(r));
        circle::add_partner(&mut theirs, "bob", DocId([9; 16]), DocId([6; 16]), x, &[])
            .expect("redirect");
        let lure: SocketAddr = "203.0.113.9:1".parse().expect("addr");
        circle::add_partner(
            &mut theirs,
            "bob",
            DocId([9; 16]),
            DocId([6; 16]),
            bob,
            &[lure],
        )
        .expect("an address of R's choosing for bob's device");
        theirs.commit();
        circle::revoke(&mut doc, r, &circle::RevocationNote::default()).expect("revoke");
        doc.commit();
        doc.merge(&mut theirs).expect("merge");
        let by_actor = |h: &[u8; 32]| {
            let c = doc.clone().get_change_by_hash(&automerge::ChangeHash(*h))?;
            [a, r]
                .into_iter()
                .find(|d| c.actor_id() == &actor(*d))
                .map(Author::Device)
        };
        let mut reading = doc.clone();
        let changes = circle::changes(&mut reading, by_actor);
        let root = changes
            .iter()
            .find(|c| c.deps.is_empty())
            .expect("root")
            .hash;
        let v = membership::evaluate(membership::Founder::Root(root), &changes);
        assert!(v.revoked.contains_key(&r), "{v:?}");
        // The content says what R wrote last (its put is the later one)...
        let content = circle::partners(&doc);
        assert!(content.iter().any(|p| p.devices.contains_key(&x)));
        // ...but the partnership is what the changes that count say.
        let counted = counted_partners(&doc, &v);
        assert_eq!(counted.len(), 1);
        assert_eq!(
            (counted[0].mine, counted[0].theirs),
            (DocId([5; 16]), DocId([6; 16]))
        );
        assert_eq!(
            counted[0].devices.keys().copied().collect::<Vec<_>>(),
            vec![bob]
        );
        assert!(
            content
                .iter()
                .any(|p| p.devices.get(&bob).is_some_and(|a| a.contains(&lure)))
        );
        assert_eq!(counted[0].devices[&bob], vec![real]);
    }

    #[test]
    fn a_partner_cannot_list_devices_or_addresses_past_the_caps() {
        let met: BTreeMap<DeviceId, Vec<SocketAddr>> = [(
            DeviceId([9; 32]),
            vec!["192.0.2.9:1".parse().expect("addr")],
        )]
        .into();
        let listed: BTreeMap<String, Vec<String>> = (0..50u8)
            .map(|i| {
                let addrs = (0..20u16)
                    .map(|p| format!("192.0.2.{i}:{}", 1000 + p))
                    .collect();
                (DeviceId([i; 32]).to_string(), addrs)
            })
            .collect();
        let got = capped(&met, listed);
        assert_eq!(got.len(), MAX_PARTNER_DEVICES);
        assert!(
            got.contains_key(&DeviceId([9; 32])),
            "the device met at pairing stays"
        );
        assert!(got.values().all(|a| a.len() <= MAX_PARTNER_ADDRS));
        // Exactly at the caps, nothing is dropped.
        let listed: BTreeMap<String, Vec<String>> = (0..7u8)
            .map(|i| {
                let addrs = (0..4u16)
                    .map(|p| format!("192.0.2.{i}:{}", 1000 + p))
                    .collect();
                (DeviceId([i; 32]).to_string(), addrs)
            })
            .collect();
        let got = capped(&met, listed);
        assert_eq!(got.len(), 8);
        assert_eq!(got.values().map(Vec::len).sum::<usize>(), 1 + 7 * 4);
    }
}
