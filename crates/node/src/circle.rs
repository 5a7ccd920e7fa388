//! A person's circle of devices as one Automerge document, synced like any other, so that a
//! device paired with one member learns of every other (an introduction) and a revocation made
//! on any member reaches them all.
//!
//! Layout, version 1:
//!
//! ```text
//! { "failup": "circle/1",
//!   "recovery": Bytes,          (the recovery key's public half, in the founding change only)
//!   "devices": { "<device id>": { "name": Str, "addrs": { "<ip:port>": Confirmed },
//!                                 "outside": { "<ip:port>": true },
//!                                 "mapped": { "<ip:port>": true } } },
//!   "revoked/<device id>": Timestamp, ...,
//!   "partners": { "<label>": { "mine": Bytes, "theirs": Bytes,
//!                              "devices": { "<device id>": { "<ip:port>": true } } } },
//!   "partner-revoked/<label>": Timestamp, ...,
//!   "prompts": { "lesson" | "muscle" | "use" | "story": Str } }
//! ```
//!
//! `outside` holds the addresses peers see a device's connections come from (its router's,
//! behind one), written by the device itself (crate::reach). They are for meeting at an agreed
//! moment (hole punching) and never dialed on their own: an unsolicited packet to a router's
//! public port makes a Linux router give that peer another port when the device behind it
//! later dials out, which breaks the very mapping that was published.
//!
//! `mapped` holds the public address the device's router agreed to forward to it (a port
//! mapping), written by the device while it holds the mapping. Unlike `outside` it is dialed
//! like `addrs`, and listed first among them: it is the one that works from anywhere.
//!
//! Each of `addrs` records when the address was last confirmed (a [`Confirmed`]): a Timestamp
//! when the device published it as its own or a device of the circle saw it connect from
//! there, the text `by hand` when the person set it (`failup peer addr`), anything else (the
//! `true` of circles written before) when nobody knows. Readers leave out an address confirmed
//! [`ADDR_STALE_MS`] before the device's newest confirmed one: the device has been seen
//! elsewhere since, so the old address only costs a dial. Aging is relative to the device's
//! own newest address rather than to the reader's clock, so a device away for a month is still
//! looked for where it was last. When the map is full, a new address replaces the one
//! confirmed longest ago; one set by hand is never replaced or aged out.
//!
//! `prompts` holds the person's own wording of the reframe questions and the text a new story
//! starts with, so every device of theirs asks the same; it says nothing about membership.
//!
//! A partner record names the two documents of the space shared with that person (this
//! person's side, `mine`, and theirs) and the partner's devices met at pairing; the partner's
//! other devices are vouched for in their side of the space. A partner revocation is a root key
//! like a device's, for the same reason.
//!
//! Each revocation is its own key at the root, never removed by failup. A device that has not
//! seen a revocation cannot hide it: overwriting a map it lives in is impossible (there is
//! none), and a delete only removes what its writer had seen, so a concurrent one leaves it.
//! Every device also keeps the revocations it has seen in a local list that only grows.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use failup_auth::membership;
use failup_wire::{DeviceId, DocId};

/// The value of the root `failup` key of a circle document.
pub const CIRCLE_MARK: &str = "circle/1";
/// Most addresses remembered per device.
pub const MAX_ADDRS: usize = 8;
/// How long before a device's newest confirmed address one confirmed earlier stops being
/// dialed: two weeks, so a laptop back from a trip is still found at home, and last month's
/// café stops costing a dial attempt.
pub const ADDR_STALE_MS: i64 = 14 * DAY_MS;
/// How old a confirmation is before it is written again: a day, so that reconnecting many
/// times a day does not write the circle each time, and aging still sees a day's precision.
pub const ADDR_REFRESH_MS: i64 = DAY_MS;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// The value of an address the person set by hand.
const BY_HAND: &str = "by hand";

/// When an address of a device was last confirmed, as the circle records it. The order is
/// the order of replacement when a device's addresses are full: unknown first, then the one
/// confirmed longest ago; one set by hand never.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confirmed {
    /// Written before addresses carried a time (`true`), or unreadable.
    Unknown,
    /// Published by the device, or seen in use, at this time (milliseconds since the epoch).
    At(i64),
    /// Set by the person; kept until they remove the device.
    ByHand,
}

impl Confirmed {
    fn read(doc: &AutoCommit, map: &ObjId, key: &str) -> Option<Confirmed> {
        let (value, _) = doc.get(map, key).ok().flatten()?;
        Some(match value {
            automerge::Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Timestamp(ms) => Confirmed::At(*ms),
                ScalarValue::Str(t) if t.as_str() == BY_HAND => Confirmed::ByHand,
                _ => Confirmed::Unknown,
            },
            automerge::Value::Object(_) => Confirmed::Unknown,
        })
    }

    fn value(self) -> ScalarValue {
        match self {
            Confirmed::At(ms) => ScalarValue::Timestamp(ms),
            Confirmed::ByHand => ScalarValue::Str(BY_HAND.into()),
            Confirmed::Unknown => ScalarValue::Boolean(true),
        }
    }
}

/// What [`add_addr`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// The address is new, or its confirmation was written again.
    Changed,
    /// Nothing to write: confirmed recently enough, set by hand already, or no such device.
    Unchanged,
    /// Every address of the device is set by hand, and there is no room for another.
    Full,
}

/// One device of the circle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The device.
    pub device: DeviceId,
    /// What people call it.
    pub name: String,
    /// Where it was last reachable.
    pub addrs: Vec<SocketAddr>,
    /// Whether it was revoked.
    pub revoked: bool,
}

fn map(
    doc: &mut AutoCommit,
    parent: &ObjId,
    key: &str,
) -> Result<ObjId, automerge::AutomergeError> {
    match doc.get(parent, key)? {
        Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
        _ => doc.put_object(parent, key, ObjType::Map),
    }
}

fn find(doc: &AutoCommit, parent: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(parent, key) {
        Ok(Some((automerge::Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

/// Every map written at `key`, conflicting ones included: a device that writes a fresh map over
/// `revoked` (or `devices`) hides nothing, because readers take the union of all of them.
fn find_all(doc: &AutoCommit, parent: &ObjId, key: &str) -> Vec<ObjId> {
    doc.get_all(parent, key)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, id)| matches!(v, automerge::Value::Object(ObjType::Map)).then_some(id))
        .collect()
}

/// Starts a circle holding this device (its addresses confirmed at `now_ms`), naming its
/// recovery key: only the founding change can, since the circle's id names that change.
pub fn create(
    doc: &mut AutoCommit,
    me: DeviceId,
    name: &str,
    addrs: &[SocketAddr],
    recovery: &[u8; 32],
    now_ms: i64,
) -> Result<(), automerge::AutomergeError> {
    doc.put(ROOT, "failup", CIRCLE_MARK)?;
    doc.put(ROOT, RECOVERY_KEY, ScalarValue::Bytes(recovery.to_vec()))?;
    add(doc, me, name, addrs, now_ms)
}

/// The root key naming the circle's recovery key.
const RECOVERY_KEY: &str = "recovery";

/// Prefix of the root keys that record revocations.
const REVOKED_PREFIX: &str = "revoked/";

/// Adds a device, or refreshes its name, with `addrs` confirmed at `now_ms`.
pub fn add(
    doc: &mut AutoCommit,
    device: DeviceId,
    name: &str,
    addrs: &[SocketAddr],
    now_ms: i64,
) -> Result<(), automerge::AutomergeError> {
    let devices = map(doc, &ROOT, "devices")?;
    let entry = map(doc, &devices, &device.to_string())?;
    doc.put(&entry, "name", name)?;
    for addr in addrs.iter().take(MAX_ADDRS) {
        add_addr(doc, device, *addr, Confirmed::At(now_ms))?;
    }
    Ok(())
}

/// Records that `addr` of a device already in the circle was confirmed (see the module's
/// layout): writes it when it is new, set by hand now, or last confirmed
/// [`ADDR_REFRESH_MS`] or more ago (or, by a clock now known to be wrong, after `now`), and
/// makes room by replacing the address confirmed longest ago.
pub fn add_addr(
    doc: &mut AutoCommit,
    device: DeviceId,
    addr: SocketAddr,
    confirmed: Confirmed,
) -> Result<Added, automerge::AutomergeError> {
    let Some(devices) = find(doc, &ROOT, "devices") else {
        return Ok(Added::Unchanged);
    };
    let Some(entry) = find(doc, &devices, &device.to_string()) else {
        return Ok(Added::Unchanged);
    };
    let a = map(doc, &entry, "addrs")?;
    let key = addr.to_string();
    match (Confirmed::read(doc, &a, &key), confirmed) {
        (Some(Confirmed::ByHand), _) => return Ok(Added::Unchanged),
        (Some(Confirmed::At(then)), Confirmed::At(now))
            if (now - ADDR_REFRESH_MS..=now + ADDR_REFRESH_MS).contains(&then) =>
        {
            return Ok(Added::Unchanged);
        }
        (Some(_), _) => {}
        (None, _) => {
            let held: Vec<(Confirmed, String)> = doc
                .keys(&a)
                .map(|k| {
                    (
                        Confirmed::read(doc, &a, &k).unwrap_or(Confirmed::Unknown),
                        k,
                    )
                })
                .collect();
            if held.len() >= MAX_ADDRS {
                // More than MAX_ADDRS can be held after a merge: one out makes room enough.
                match held.iter().filter(|(c, _)| *c != Confirmed::ByHand).min() {
                    Some((_, oldest)) => doc.delete(&a, oldest.as_str())?,
                    None => return Ok(Added::Full),
                }
            }
        }
    }
    doc.put(&a, key, confirmed.value())?;
    Ok(Added::Changed)
}

/// A device's own addresses, as members list them: those set by hand, then the others newest
/// confirmed first, leaving out those [`ADDR_STALE_MS`] older than its newest.
fn current_addrs(doc: &AutoCommit, entry: &ObjId) -> Vec<SocketAddr> {
    let Some(a) = find(doc, entry, "addrs") else {
        return Vec::new();
    };
    let mut held: Vec<(Confirmed, SocketAddr)> = doc
        .keys(&a)
        .filter_map(|k| {
            let addr = k.parse().ok()?;
            Some((Confirmed::read(doc, &a, &k)?, addr))
        })
        .collect();
    let newest = held
        .iter()
        .filter_map(|(c, _)| match c {
            Confirmed::At(ms) => Some(*ms),
            _ => None,
        })
        .max();
    if let Some(newest) = newest {
        held.retain(
            |(c, _)| !matches!(c, Confirmed::At(ms) if *ms < newest.saturating_sub(ADDR_STALE_MS)),
        );
    }
    // Set by hand first, then newest first, unknown last; equal ones by address.
    held.sort_by(|(c1, a1), (c2, a2)| c2.cmp(c1).then(a1.cmp(a2)));
    held.into_iter().map(|(_, addr)| addr).collect()
}

/// A set of addresses a device writes about itself in its entry, replaced whole each time
/// (see the module's layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    /// `outside`: where peers see its connections come from, for meeting only.
    Outside,
    /// `mapped`: the public address its router forwards to it (UPnP IGD, NAT-PMP or PCP), to
    /// dial like its own addresses.
    Mapped,
}

impl Listed {
    fn key(self) -> &'static str {
        match self {
            Listed::Outside => "outside",
            Listed::Mapped => "mapped",
        }
    }
}

/// Replaces the `which` addresses of `device` with `addrs`; returns whether that changed
/// anything.
pub fn set_listed(
    doc: &mut AutoCommit,
    device: DeviceId,
    which: Listed,
    addrs: &[SocketAddr],
) -> Result<bool, automerge::AutomergeError> {
    let Some(devices) = find(doc, &ROOT, "devices") else {
        return Ok(false);
    };
    let Some(entry) = find(doc, &devices, &device.to_string()) else {
        return Ok(false);
    };
    let held: Vec<SocketAddr> = find(doc, &entry, which.key())
        .map(|o| doc.keys(&o).filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_default();
    let mut want: Vec<SocketAddr> = addrs.iter().take(MAX_ADDRS).copied().collect();
    want.sort();
    if held == want {
        return Ok(false);
    }
    let o = doc.put_object(&entry, which.key(), ObjType::Map)?;
    for a in &want {
        doc.put(&o, a.to_string(), true)?;
    }
    Ok(true)
}

/// Every device's `which` addresses, as each device published them.
pub fn listed(doc: &AutoCommit, which: Listed) -> BTreeMap<DeviceId, Vec<SocketAddr>> {
    let mut out = BTreeMap::new();
    for devices in find_all(doc, &ROOT, "devices") {
        for key in doc.keys(&devices) {
            let (Some(device), Some(entry)) = (canonical_device(&key), find(doc, &devices, &key))
            else {
                continue;
            };
            if let Some(o) = find(doc, &entry, which.key()) {
                let addrs: Vec<SocketAddr> = doc
                    .keys(&o)
                    .filter_map(|k| k.parse().ok())
                    .take(MAX_ADDRS)
                    .collect();
                out.insert(device, addrs);
            }
        }
    }
    out
}

/// What a revocation records besides the device: when, and how much of the device's writing
/// the revoker had seen, so every device can tell which of its changes to undo.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevocationNote {
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// For each document the revoker held changes of the device in: the highest sequence
    /// number among them. Changes past it (and in documents not listed) it had not seen.
    pub seen: Vec<([u8; 16], u64)>,
    /// For a revocation made with the circle's recovery key: its signature, and the devices it
    /// restores.
    pub recovery: Option<RecoveryProof>,
}

/// The recovery key's part of a revocation (`failup_auth::recovery`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveryProof {
    /// The devices whose revocations by the revoked device no longer count, in signed order.
    pub restore: Vec<[u8; 32]>,
    /// The recovery key's signature over `failup_auth::recovery::revocation_statement`.
    pub sig: Vec<u8>,
}

/// A note as first written, before recovery keys: the same fields, without the last.
#[derive(serde::Deserialize)]
struct FirstNote {
    at_ms: i64,
    seen: Vec<([u8; 16], u64)>,
}

impl RevocationNote {
    /// Reads a note in either layout. Postcard is not self-describing: a note of the first
    /// layout ends where this one's `recovery` would begin, so it fails to read as this one and
    /// is read as the first; a note of this layout reads as the first with bytes to spare.
    pub fn decode(bytes: &[u8]) -> Option<RevocationNote> {
        postcard::from_bytes(bytes).ok().or_else(|| {
            postcard::from_bytes::<FirstNote>(bytes)
                .ok()
                .map(|n| RevocationNote {
                    at_ms: n.at_ms,
                    seen: n.seen,
                    recovery: None,
                })
        })
    }
}

/// Revokes a device for good, noting what of its writing this device had seen.
pub fn revoke(
    doc: &mut AutoCommit,
    device: DeviceId,
    note: &RevocationNote,
) -> Result<(), automerge::AutomergeError> {
    // Encoding a vector of fixed-size pairs into memory cannot fail.
    let bytes = postcard::to_allocvec(note).unwrap_or_default();
    doc.put(
        ROOT,
        format!("{REVOKED_PREFIX}{device}"),
        ScalarValue::Bytes(bytes),
    )?;
    Ok(())
}

/// The revocation notes of the circle, by the change that wrote each, with the device it
/// revokes. A revocation from before notes existed (a timestamp) notes nothing seen.
pub fn notes(
    doc: &mut AutoCommit,
) -> std::collections::HashMap<[u8; 32], Vec<(DeviceId, RevocationNote)>> {
    use automerge::legacy::{Key, ObjectId, OpType};
    let mut out: std::collections::HashMap<[u8; 32], Vec<(DeviceId, RevocationNote)>> =
        Default::default();
    for change in doc.get_changes(&[]) {
        for op in change.decode().operations {
            let (ObjectId::Root, Key::Map(key), OpType::Put(value)) =
                (&op.obj, &op.key, &op.action)
            else {
                continue;
            };
            let Some(device) = key
                .strip_prefix(REVOKED_PREFIX)
                .and_then(|d| d.parse::<DeviceId>().ok())
            else {
                continue;
            };
            let note = match value {
                ScalarValue::Bytes(b) => RevocationNote::decode(b).unwrap_or_default(),
                _ => RevocationNote::default(),
            };
            out.entry(change.hash().0).or_default().push((device, note));
        }
    }
    out
}

/// The device a map key names, if it is written in the canonical spelling: any other spelling
/// is ignored, so no two keys can name one device.
pub fn canonical_device(key: &str) -> Option<DeviceId> {
    key.parse::<DeviceId>()
        .ok()
        .filter(|d| d.to_string() == key)
}

/// Prefix of the root keys that record partner revocations.
const PARTNER_REVOKED_PREFIX: &str = "partner-revoked/";

/// A person this person shares a space with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partner {
    /// What this person calls them.
    pub label: String,
    /// This person's side of the space: the document only this person's devices write.
    pub mine: DocId,
    /// The partner's side.
    pub theirs: DocId,
    /// The partner's devices met at pairing, with their addresses.
    pub devices: BTreeMap<DeviceId, Vec<SocketAddr>>,
    /// Whether the partnership was revoked.
    pub revoked: bool,
}

/// The names under `prompts`.
pub const PROMPT_KEYS: [&str; 4] = ["lesson", "muscle", "use", "story"];

/// The prompts the circle holds, by name; values that are not text are left out (the reader
/// checks the text itself).
pub fn prompts(doc: &AutoCommit) -> BTreeMap<String, String> {
    let text = |obj: &ObjId, k: &str| match doc.get(obj, k).ok().flatten() {
        Some((automerge::Value::Scalar(v), _)) => match v.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    };
    // Two devices that set a first prompt at once each made a map: what either holds counts,
    // the winning map's value first.
    let winner = find(doc, &ROOT, "prompts");
    let mut out = BTreeMap::new();
    for obj in find_all(doc, &ROOT, "prompts")
        .into_iter()
        .filter(|o| Some(o) != winner.as_ref())
        .chain(winner.clone())
    {
        for k in PROMPT_KEYS {
            if let Some(v) = text(&obj, k) {
                out.insert(k.to_owned(), v);
            }
        }
    }
    out
}

/// Sets (or with `None` removes) the prompt `key`.
pub fn set_prompt(
    doc: &mut AutoCommit,
    key: &str,
    value: Option<&str>,
) -> Result<(), automerge::AutomergeError> {
    let obj = map(doc, &ROOT, "prompts")?;
    match value {
        Some(v) => doc.put(&obj, key, v),
        None => doc.delete(&obj, key),
    }
}

/// Records a partner (or another device of a partner's, with its addresses).
pub fn add_partner(
    doc: &mut AutoCommit,
    label: &str,
    mine: DocId,
    theirs: DocId,
    device: DeviceId,
    addrs: &[SocketAddr],
) -> Result<(), automerge::AutomergeError> {
    let partners = map(doc, &ROOT, "partners")?;
    let entry = map(doc, &partners, label)?;
    doc.put(&entry, "mine", ScalarValue::Bytes(mine.0.to_vec()))?;
    doc.put(&entry, "theirs", ScalarValue::Bytes(theirs.0.to_vec()))?;
    let devices = map(doc, &entry, "devices")?;
    let a = map(doc, &devices, &device.to_string())?;
    for addr in addrs.iter().take(MAX_ADDRS) {
        doc.put(&a, addr.to_string(), true)?;
    }
    Ok(())
}

/// Revokes a partner for good: no device of theirs syncs with this person's devices again.
pub fn revoke_partner(
    doc: &mut AutoCommit,
    label: &str,
    now_ms: i64,
) -> Result<(), automerge::AutomergeError> {
    doc.put(
        ROOT,
        format!("{PARTNER_REVOKED_PREFIX}{label}"),
        ScalarValue::Timestamp(now_ms),
    )?;
    Ok(())
}

fn doc_id(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<DocId> {
    match doc.get(obj, key) {
        Ok(Some((automerge::Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Bytes(b) => <[u8; 16]>::try_from(b.as_slice()).ok().map(DocId),
            _ => None,
        },
        _ => None,
    }
}

/// Every partner, revoked ones marked.
pub fn partners(doc: &AutoCommit) -> Vec<Partner> {
    let revoked: std::collections::BTreeSet<String> = doc
        .keys(ROOT)
        .filter_map(|k| k.strip_prefix(PARTNER_REVOKED_PREFIX).map(str::to_owned))
        .collect();
    let mut out: BTreeMap<String, Partner> = BTreeMap::new();
    for partners in find_all(doc, &ROOT, "partners") {
        for label in doc.keys(&partners) {
            let Some(entry) = find(doc, &partners, &label) else {
                continue;
            };
            let (Some(mine), Some(theirs)) =
                (doc_id(doc, &entry, "mine"), doc_id(doc, &entry, "theirs"))
            else {
                continue;
            };
            let mut devices = BTreeMap::new();
            for dmap in find_all(doc, &entry, "devices") {
                for key in doc.keys(&dmap) {
                    let Some(device) = canonical_device(&key) else {
                        continue;
                    };
                    let addrs: Vec<SocketAddr> = find(doc, &dmap, &key)
                        .map(|a| doc.keys(&a).filter_map(|k| k.parse().ok()).collect())
                        .unwrap_or_default();
                    devices.insert(device, addrs);
                }
            }
            out.entry(label.clone()).or_insert(Partner {
                revoked: revoked.contains(&label),
                label,
                mine,
                theirs,
                devices,
            });
        }
    }
    out.into_values().collect()
}

/// Whether a document is a circle.
pub fn is_circle(doc: &AutoCommit) -> bool {
    matches!(doc.get(ROOT, "failup"), Ok(Some((automerge::Value::Scalar(s), _))) if s.as_str() == Some(CIRCLE_MARK))
}

/// Every device ever in the circle, revoked ones marked.
pub fn members(doc: &AutoCommit) -> Vec<Member> {
    // Revocations by parsed id, so no spelling of an id escapes them: the root keys, and the
    // `revoked` maps an earlier layout wrote.
    let mut revoked: std::collections::BTreeSet<DeviceId> = doc
        .keys(ROOT)
        .filter_map(|k| {
            k.strip_prefix(REVOKED_PREFIX)
                .and_then(|id| id.parse().ok())
        })
        .collect();
    for map in find_all(doc, &ROOT, "revoked") {
        revoked.extend(doc.keys(&map).filter_map(|k| k.parse::<DeviceId>().ok()));
    }
    let mut out: BTreeMap<DeviceId, Member> = BTreeMap::new();
    for devices in find_all(doc, &ROOT, "devices") {
        for key in doc.keys(&devices) {
            let Some(device) = canonical_device(&key) else {
                continue;
            };
            let Some(entry) = find(doc, &devices, &key) else {
                continue;
            };
            let name = match doc.get(&entry, "name") {
                Ok(Some((automerge::Value::Scalar(s), _))) => s.as_str().unwrap_or("").to_owned(),
                _ => String::new(),
            };
            let mut addrs: Vec<SocketAddr> = find(doc, &entry, Listed::Mapped.key())
                .map(|a| doc.keys(&a).filter_map(|k| k.parse().ok()).collect())
                .unwrap_or_default();
            addrs.truncate(MAX_ADDRS);
            for a in current_addrs(doc, &entry) {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
            out.entry(device).or_insert(Member {
                device,
                name,
                addrs,
                revoked: false,
            });
        }
    }
    // A revoked device may be known only by its revocation.
    for device in &revoked {
        out.entry(*device).or_insert(Member {
            device: *device,
            name: String::new(),
            addrs: Vec::new(),
            revoked: true,
        });
    }
    for m in out.values_mut() {
        m.revoked = revoked.contains(&m.device);
    }
    out.into_values().collect()
}

/// What each change of a circle does to membership, read from its operations: a put at the
/// root key `revoked/<id>` (or into an old-layout `revoked` map) revokes, an object or value
/// written at `<id>` in a `devices` map adds, and the same for partners, whose sides (`mine`,
/// `theirs`) and devices met at pairing are acts of their own. `author` says who
/// wrote each change (from its seal); a change with no seal here is left out, as if never
/// received.
pub fn changes(
    doc: &mut AutoCommit,
    author: impl Fn(&[u8; 32]) -> Option<membership::Author>,
) -> Vec<membership::Change> {
    use automerge::legacy::{Key, ObjectId, OpId, OpType};
    use std::collections::HashSet;
    let all = doc.get_changes(&[]);
    // Objects made at the root under `devices`, `revoked` and `partners`, and the entries of
    // `partners` (each a label's map, whose `devices` map lists the partner's devices).
    let mut devices: HashSet<OpId> = HashSet::new();
    let mut revoked_maps: HashSet<OpId> = HashSet::new();
    let mut partner_maps: HashSet<OpId> = HashSet::new();
    let mut partner_entries: std::collections::HashMap<OpId, String> = Default::default();
    let mut partner_devices: std::collections::HashMap<OpId, String> = Default::default();
    let mut partner_device_maps: std::collections::HashMap<OpId, (String, DeviceId)> =
        Default::default();
    let mut out = Vec::with_capacity(all.len());
    for change in &all {
        let hash = change.hash().0;
        let Some(who) = author(&hash) else {
            continue;
        };
        let expanded = change.decode();
        let actor = expanded.actor_id.clone();
        let start = expanded.start_op.get();
        let mut acts = Vec::new();
        for (i, op) in expanded.operations.iter().enumerate() {
            let id = OpId(start + i as u64, actor.clone());
            let Key::Map(key) = &op.key else {
                continue;
            };
            let key = key.as_str();
            match (&op.obj, &op.action) {
                (ObjectId::Root, OpType::Make(ObjType::Map)) if key == "devices" => {
                    devices.insert(id);
                }
                (ObjectId::Root, OpType::Make(ObjType::Map)) if key == "revoked" => {
                    revoked_maps.insert(id);
                }
                (ObjectId::Root, OpType::Make(ObjType::Map)) if key == "partners" => {
                    partner_maps.insert(id);
                }
                (ObjectId::Root, OpType::Put(value)) => {
                    if let Some(d) = key
                        .strip_prefix(REVOKED_PREFIX)
                        .and_then(|d| d.parse().ok())
                    {
                        acts.push(membership::Act::Revoke(d));
                        let proof = match value {
                            ScalarValue::Bytes(b) => {
                                RevocationNote::decode(b).and_then(|n| n.recovery)
                            }
                            _ => None,
                        };
                        if let Some(p) = proof {
                            acts.push(membership::Act::Recover {
                                device: d,
                                restore: p.restore.into_iter().map(DeviceId).collect(),
                                sig: p.sig,
                            });
                        }
                    } else if key == RECOVERY_KEY {
                        if let ScalarValue::Bytes(b) = value {
                            if let Ok(k) = <[u8; 32]>::try_from(b.as_slice()) {
                                acts.push(membership::Act::RecoveryKey(k));
                            }
                        }
                    } else if let Some(l) = key.strip_prefix(PARTNER_REVOKED_PREFIX) {
                        acts.push(membership::Act::RevokePartner(l.to_owned()));
                    }
                }
                (ObjectId::Id(obj), OpType::Delete) => {
                    let _ = obj;
                }
                (ObjectId::Id(obj), action) if devices.contains(obj) => {
                    if let (Some(d), OpType::Make(_) | OpType::Put(_)) =
                        (canonical_device(key), action)
                    {
                        acts.push(membership::Act::Add(d));
                    }
                }
                (ObjectId::Id(obj), OpType::Put(_)) if revoked_maps.contains(obj) => {
                    if let Ok(d) = key.parse() {
                        acts.push(membership::Act::Revoke(d));
                    }
                }
                (ObjectId::Id(obj), OpType::Make(ObjType::Map)) if partner_maps.contains(obj) => {
                    partner_entries.insert(id, key.to_owned());
                    acts.push(membership::Act::AddPartner(key.to_owned()));
                }
                (ObjectId::Id(obj), OpType::Make(ObjType::Map))
                    if key == "devices" && partner_entries.contains_key(obj) =>
                {
                    if let Some(label) = partner_entries.get(obj).cloned() {
                        partner_devices.insert(id, label);
                    }
                }
                (ObjectId::Id(obj), OpType::Put(value)) if partner_entries.contains_key(obj) => {
                    if let Some(label) = partner_entries.get(obj) {
                        acts.push(membership::Act::AddPartner(label.clone()));
                        let side = match value {
                            ScalarValue::Bytes(b) => <[u8; 16]>::try_from(b.as_slice()).ok(),
                            _ => None,
                        };
                        if let (Some(doc), "mine" | "theirs") = (side, key) {
                            acts.push(membership::Act::PartnerSide {
                                label: label.clone(),
                                theirs: key == "theirs",
                                doc,
                            });
                        }
                    }
                }
                (ObjectId::Id(obj), action) if partner_devices.contains_key(obj) => {
                    if let Some(label) = partner_devices.get(obj) {
                        acts.push(membership::Act::AddPartner(label.clone()));
                        if let (Some(device), OpType::Make(_) | OpType::Put(_)) =
                            (canonical_device(key), action)
                        {
                            if matches!(action, OpType::Make(ObjType::Map)) {
                                partner_device_maps.insert(id.clone(), (label.clone(), device));
                            }
                            acts.push(membership::Act::PartnerDevice {
                                label: label.clone(),
                                device,
                            });
                        }
                    }
                }
                (ObjectId::Id(obj), OpType::Put(_)) if partner_device_maps.contains_key(obj) => {
                    if let Some((label, device)) = partner_device_maps.get(obj) {
                        acts.push(membership::Act::AddPartner(label.clone()));
                        acts.push(membership::Act::PartnerAddr {
                            label: label.clone(),
                            device: *device,
                            addr: key.to_owned(),
                        });
                    }
                }
                _ => {}
            }
        }
        acts.sort();
        acts.dedup();
        out.push(membership::Change {
            hash,
            deps: change.deps().iter().map(|h| h.0).collect(),
            author: who,
            acts,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_survives_a_concurrent_re_add() {
        let (a, b) = (DeviceId([1; 32]), DeviceId([2; 32]));
        let mut one = AutoCommit::new();
        create(
            &mut one,
            a,
            "laptop",
            &["127.0.0.1:1".parse().expect("addr")],
            &[0; 32],
            0,
        )
        .expect("create");
        add(&mut one, b, "phone", &[], 0).expect("add");
        let mut two = one.fork();
        revoke(&mut one, b, &RevocationNote::default()).expect("revoke");
        add(
            &mut two,
            b,
            "phone again",
            &["127.0.0.1:2".parse().expect("addr")],
            0,
        )
        .expect("re-add");
        one.merge(&mut two).expect("merge");
        let m = members(&one);
        assert!(m.iter().any(|m| m.device == b && m.revoked));
        assert!(
            m.iter()
                .any(|m| m.device == a && !m.revoked && m.addrs.len() == 1)
        );
        assert!(is_circle(&one));
    }

    #[test]
    fn a_mapped_address_is_dialed_first_and_outside_ones_never() {
        let a = DeviceId([1; 32]);
        let own: SocketAddr = "192.168.1.2:7676".parse().expect("addr");
        let (mapped, outside): (SocketAddr, SocketAddr) = (
            "198.0.0.1:7676".parse().expect("addr"),
            "198.0.0.1:40000".parse().expect("addr"),
        );
        let mut doc = AutoCommit::new();
        create(&mut doc, a, "laptop", &[own], &[0; 32], 0).expect("create");
        assert!(set_listed(&mut doc, a, Listed::Outside, &[outside]).expect("outside"));
        assert!(set_listed(&mut doc, a, Listed::Mapped, &[mapped]).expect("mapped"));
        assert!(!set_listed(&mut doc, a, Listed::Mapped, &[mapped]).expect("again"));
        let m = members(&doc);
        assert_eq!(m[0].addrs, vec![mapped, own]);
        assert_eq!(listed(&doc, Listed::Outside)[&a], vec![outside]);
        // The mapping lost: only the device's own address is left to dial.
        assert!(set_listed(&mut doc, a, Listed::Mapped, &[]).expect("lost"));
        assert_eq!(members(&doc)[0].addrs, vec![own]);
    }

    #[test]
    fn a_device_that_did_not_see_its_revocation_cannot_hide_it() {
        let (a, r) = (DeviceId([1; 32]), DeviceId([2; 32]));
        let mut one = AutoCommit::new();
        create(&mut one, a, "laptop", &[], &[0; 32], 0).expect("create");
        add(&mut one, r, "stolen", &[], 0).expect("add");
        let mut rogue = one.fork();
        revoke(&mut one, r, &RevocationNote::default()).expect("revoke");
        // Concurrently, the device to be revoked deletes every revocation key it knows, tries
        // the old map layout, and rewrites the devices map.
        let key = format!("{REVOKED_PREFIX}{r}");
        let _ = rogue.delete(ROOT, key.as_str());
        rogue
            .put_object(ROOT, "revoked", ObjType::Map)
            .expect("overwrite");
        rogue
            .put_object(ROOT, "devices", ObjType::Map)
            .expect("overwrite");
        one.merge(&mut rogue).expect("merge");
        assert!(members(&one).iter().any(|m| m.device == r && m.revoked));
    }

    #[test]
    fn another_spelling_of_a_revoked_id_stays_revoked() {
        let (a, r) = (DeviceId([1; 32]), DeviceId([2; 32]));
        let mut doc = AutoCommit::new();
        create(&mut doc, a, "laptop", &[], &[0; 32], 0).expect("create");
        add(&mut doc, r, "stolen", &[], 0).expect("add");
        let devices = find(&doc, &ROOT, "devices").expect("devices");
        let sneaky = r.to_string().to_lowercase().replace('-', "");
        let e = doc
            .put_object(&devices, sneaky.as_str(), ObjType::Map)
            .expect("put");
        doc.put(&e, "name", "still me").expect("put");
        revoke(&mut doc, r, &RevocationNote::default()).expect("revoke");
        let m = members(&doc);
        assert!(m.iter().filter(|m| m.device == r).all(|m| m.revoked));
        assert_eq!(m.iter().filter(|m| m.device == r).count(), 1);
        // The layout before root keys: a revoked map.
        let mut old = AutoCommit::new();
        create(&mut old, a, "laptop", &[], &[0; 32], 0).expect("create");
        let map = old.put_object(ROOT, "revoked", ObjType::Map).expect("map");
        old.put(&map, r.to_string(), 1i64).expect("put");
        assert!(members(&old).iter().any(|m| m.device == r && m.revoked));
    }

    #[test]
    fn revocation_notes_of_either_layout_read_and_carry_a_recovery_act() {
        // The first layout, as devices wrote it before recovery keys: at_ms, seen.
        let first = postcard::to_allocvec(&(1234i64, vec![([5u8; 16], 7u64)])).expect("encode");
        let note = RevocationNote::decode(&first).expect("reads");
        assert_eq!(
            (note.at_ms, note.seen.len(), note.recovery),
            (1234, 1, None)
        );
        let proof = RecoveryProof {
            restore: vec![[3; 32]],
            sig: vec![9; 64],
        };
        let note = RevocationNote {
            at_ms: 5,
            seen: vec![],
            recovery: Some(proof.clone()),
        };
        let bytes = postcard::to_allocvec(&note).expect("encode");
        assert_eq!(RevocationNote::decode(&bytes), Some(note.clone()));
        // In a circle: the founding change names the key, the revocation carries the proof.
        let (a, r) = (DeviceId([1; 32]), DeviceId([2; 32]));
        let mut doc = AutoCommit::new();
        create(&mut doc, a, "laptop", &[], &[8; 32], 0).expect("create");
        doc.commit();
        revoke(&mut doc, r, &note).expect("revoke");
        doc.commit();
        let acts: Vec<membership::Act> = changes(&mut doc, |_| Some(membership::Author::Device(a)))
            .into_iter()
            .flat_map(|c| c.acts)
            .collect();
        assert!(acts.contains(&membership::Act::RecoveryKey([8; 32])));
        assert!(acts.contains(&membership::Act::Recover {
            device: r,
            restore: vec![DeviceId([3; 32])],
            sig: vec![9; 64],
        }));
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("addr")
    }

    const DAY: i64 = 24 * 3600 * 1000;

    #[test]
    fn an_address_not_confirmed_for_two_weeks_after_the_newest_ages_out() {
        let a = DeviceId([1; 32]);
        let (home, cafe, office) = (
            addr("192.168.1.2:7676"),
            addr("10.0.0.7:7676"),
            addr("172.16.0.9:7676"),
        );
        let mut doc = AutoCommit::new();
        create(&mut doc, a, "laptop", &[home], &[0; 32], 0).expect("create");
        let at = |d: i64| Confirmed::At(d * DAY);
        assert_eq!(
            add_addr(&mut doc, a, cafe, at(3)).expect("add"),
            Added::Changed
        );
        // Seen there again within a day: nothing to write.
        assert_eq!(
            add_addr(&mut doc, a, cafe, at(3)).expect("again"),
            Added::Unchanged
        );
        assert_eq!(members(&doc)[0].addrs, vec![cafe, home], "newest first");
        // Two weeks later at the office: home (day 0) is more than 14 days older, the café
        // (day 3) is not yet.
        add_addr(&mut doc, a, office, at(15)).expect("add");
        assert_eq!(members(&doc)[0].addrs, vec![office, cafe]);
        // Back home: confirmed again, it is dialed again, first.
        assert_eq!(
            add_addr(&mut doc, a, home, at(16)).expect("home"),
            Added::Changed
        );
        assert_eq!(members(&doc)[0].addrs, vec![home, office, cafe]);
        // A device long away is still looked for where it was: aging needs a newer address.
        assert_eq!(members(&doc)[0].addrs.len(), 3);
    }

    #[test]
    fn a_full_list_drops_the_oldest_and_never_one_set_by_hand() {
        let a = DeviceId([1; 32]);
        let mut doc = AutoCommit::new();
        create(&mut doc, a, "laptop", &[], &[0; 32], 0).expect("create");
        let forwarded = addr("198.51.100.4:7676");
        assert_eq!(
            add_addr(&mut doc, a, forwarded, Confirmed::ByHand).expect("by hand"),
            Added::Changed
        );
        // A circle written before addresses carried a time: `true`, age unknown.
        let legacy = addr("10.1.1.1:7676");
        let devices = find(&doc, &ROOT, "devices").expect("devices");
        let entry = find(&doc, &devices, &a.to_string()).expect("entry");
        let map = find(&doc, &entry, "addrs").expect("addrs");
        doc.put(&map, legacy.to_string(), true).expect("put");
        for i in 1..MAX_ADDRS as u8 - 1 {
            let each = addr(&format!("192.168.0.{i}:7676"));
            add_addr(&mut doc, a, each, Confirmed::At(i64::from(i) * DAY)).expect("add");
        }
        let m = &members(&doc)[0].addrs;
        assert_eq!(m.len(), MAX_ADDRS);
        assert_eq!((m[0], m[MAX_ADDRS - 1]), (forwarded, legacy));
        // Full: the unknown one goes first, then the one confirmed longest ago.
        add_addr(
            &mut doc,
            a,
            addr("192.168.0.100:7676"),
            Confirmed::At(10 * DAY),
        )
        .expect("add");
        assert!(!members(&doc)[0].addrs.contains(&legacy));
        add_addr(
            &mut doc,
            a,
            addr("192.168.0.101:7676"),
            Confirmed::At(10 * DAY),
        )
        .expect("add");
        let m = &members(&doc)[0].addrs;
        assert!(!m.contains(&addr("192.168.0.1:7676")));
        assert!(m.contains(&forwarded));
        assert_eq!(m.len(), MAX_ADDRS);
        // Seen in use, an address set by hand stays set by hand.
        assert_eq!(
            add_addr(&mut doc, a, forwarded, Confirmed::At(11 * DAY)).expect("seen"),
            Added::Unchanged
        );
        // Every address set by hand: no room, and nothing replaced.
        let mut pinned = AutoCommit::new();
        create(&mut pinned, a, "laptop", &[], &[0; 32], 0).expect("create");
        for i in 0..MAX_ADDRS as u8 {
            let each = addr(&format!("198.51.100.{i}:7676"));
            add_addr(&mut pinned, a, each, Confirmed::ByHand).expect("add");
        }
        assert_eq!(
            add_addr(&mut pinned, a, addr("203.0.113.1:7676"), Confirmed::ByHand).expect("add"),
            Added::Full
        );
        assert_eq!(members(&pinned)[0].addrs.len(), MAX_ADDRS);
    }

    #[test]
    fn a_confirmation_from_a_clock_in_the_future_is_written_again() {
        let a = DeviceId([1; 32]);
        let home = addr("192.168.1.2:7676");
        let mut doc = AutoCommit::new();
        create(&mut doc, a, "laptop", &[home], &[0; 32], 400 * DAY).expect("create");
        // A device whose clock is right sees a time far ahead of its own and writes its own.
        assert_eq!(
            add_addr(&mut doc, a, home, Confirmed::At(20 * DAY)).expect("add"),
            Added::Changed
        );
        add_addr(&mut doc, a, addr("10.0.0.1:7676"), Confirmed::At(20 * DAY)).expect("add");
        assert_eq!(members(&doc)[0].addrs.len(), 2);
    }
}
