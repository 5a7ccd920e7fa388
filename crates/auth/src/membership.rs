//! Who belongs to a circle: a pure function of the circle's signed changes and their causal
//! order, so every device reaches the same answer whatever order the changes reached it in.
//!
//! The rules, each checked against a change's causal past (the changes it depends on,
//! directly or not), never against arrival order or clocks:
//!
//! 1. The **founder** is a member from the start: the author of the root change the circle's
//!    id was derived from (see [`Founder`]).
//! 2. A change **counts** (its adds and revocations take effect) only if its author is a
//!    member in its causal past: the founder, or a device a counting change added, and not
//!    revoked by a counting revocation in that past.
//! 3. A device's changes that none of its revokers had seen are **void**: not in the causal
//!    past of any revocation of it that counts. They never count, and the node undoes what they
//!    did. What it wrote before (in a revocation's past) stays.
//! 4. Two devices that revoke each other concurrently: the **senior** one's revocation stands
//!    and the other's is overruled. The founder is senior to every device; otherwise a device
//!    added in the causal past of the other's addition is senior, and between devices added
//!    concurrently the smaller device id is (a rule anyone can check, and that a thief cannot
//!    change after the fact).
//!
//! 5. A revocation signed with the circle's **recovery key** (the key the founding change
//!    names, see [`crate::recovery`]) counts whoever wrote it, is never overruled, and its
//!    device is never contested. The devices it restores are no longer revoked by the revoked
//!    device's revocations, wherever those stand: a thief holding the founding device cannot
//!    keep the owner out with the founder's seniority. The revoked device's other revocations
//!    stand (a device it revoked before it was stolen stays revoked).
//!
//! Changes from before seals existed have no author here ([`Author::Legacy`]): they count as
//! they are, and can neither be revoked nor be void.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use failup_wire::DeviceId;

/// Who wrote a change, as its seal says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Author {
    /// A device, by a seal of kind "written".
    Device(DeviceId),
    /// A change from before seals, vouched for by whichever device first held it.
    Legacy,
}

/// What a circle change does to membership.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Act {
    /// Adds a device (or refreshes its name and addresses).
    Add(DeviceId),
    /// Revokes a device for good.
    Revoke(DeviceId),
    /// Records a partner (or a device met at pairing with one).
    AddPartner(String),
    /// Revokes a partner for good.
    RevokePartner(String),
    /// Names a side of a partner's space: this person's (`theirs` false) or the partner's.
    PartnerSide {
        /// The partner's label.
        label: String,
        /// Whether it is the partner's side.
        theirs: bool,
        /// The side's document id.
        doc: [u8; 16],
    },
    /// Records a device of a partner's, met at pairing.
    PartnerDevice {
        /// The partner's label.
        label: String,
        /// The device.
        device: DeviceId,
    },
    /// Records an address of a partner's device.
    PartnerAddr {
        /// The partner's label.
        label: String,
        /// The device.
        device: DeviceId,
        /// The address, as written.
        addr: String,
    },
    /// Names the circle's recovery key: honoured only in the founding change.
    RecoveryKey([u8; 32]),
    /// A revocation signed with the recovery key (rule 5).
    Recover {
        /// The device revoked.
        device: DeviceId,
        /// The devices whose revocations by `device` no longer count, in the order signed.
        restore: Vec<DeviceId>,
        /// The recovery key's signature ([`crate::recovery::revocation_statement`]).
        sig: Vec<u8>,
    },
}

/// One change of the circle document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Its hash.
    pub hash: [u8; 32],
    /// The hashes of the changes it depends on.
    pub deps: Vec<[u8; 32]>,
    /// Who wrote it.
    pub author: Author,
    /// What it does to membership.
    pub acts: Vec<Act>,
}

/// A partner's two sides as named so far: this person's, then the partner's.
pub type Sides = (Option<[u8; 16]>, Option<[u8; 16]>);

/// How the circle's founder is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Founder {
    /// The author of this root change: the circle's id is derived from its hash, so no other
    /// change can stand in for it.
    Root([u8; 32]),
    /// A circle from before seals: its root changes are legacy and count as they are.
    Legacy,
}

/// What the rules make of a circle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The founder, when known.
    pub founder: Option<DeviceId>,
    /// Devices that belong: added by a change that counts (or the founder), not revoked.
    pub members: BTreeSet<DeviceId>,
    /// Revoked devices, each with the revocations of it that count.
    pub revoked: BTreeMap<DeviceId, BTreeSet<[u8; 32]>>,
    /// Changes whose acts count.
    pub counted: BTreeSet<[u8; 32]>,
    /// Changes by revoked devices that no revoker had seen: to undo.
    pub void: BTreeSet<[u8; 32]>,
    /// Partners recorded by a change that counts.
    pub partners: BTreeSet<String>,
    /// Partners revoked by a change that counts.
    pub partners_revoked: BTreeSet<String>,
    /// Each partner's sides (this person's, the partner's) as the first change that counts to
    /// name them named them, in causal order: a later change cannot point a partnership at
    /// another document.
    pub partner_sides: BTreeMap<String, Sides>,
    /// Each partner's devices met at pairing, with their addresses, as changes that count
    /// recorded them.
    pub partner_devices: BTreeMap<String, BTreeMap<DeviceId, BTreeSet<String>>>,
    /// Revoked devices whose every revocation is by a device junior to them: a concurrent
    /// revocation by them would overrule it, so until the circle settles they may still sync
    /// the circle (and nothing else) to deliver it.
    pub contested: BTreeSet<DeviceId>,
    /// The circle's recovery key, as its founding change names it.
    pub recovery: Option<[u8; 32]>,
    /// Devices revoked with the recovery key.
    pub recovered: BTreeSet<DeviceId>,
}

/// The id of a circle whose first change is `root`: the first 16 bytes of
/// SHA-256("failup circle/1" ‖ root hash). Only that change founds the circle.
pub fn circle_id(root: &[u8; 32]) -> [u8; 16] {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"failup circle/1")
        .chain_update(root)
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// How the founder of the circle `id` is known among `changes`.
pub fn founder_of(id: [u8; 16], changes: &[Change]) -> Founder {
    changes
        .iter()
        .find(|c| c.deps.is_empty() && circle_id(&c.hash) == id)
        .map_or(Founder::Legacy, |c| Founder::Root(c.hash))
}

/// A set of change indices, as bits.
#[derive(Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

/// Applies the rules to `changes` (in any order; duplicates and changes whose dependencies
/// are missing are ignored, as Automerge would not hold them either).
pub fn evaluate(founder: Founder, changes: &[Change]) -> Verdict {
    // Deterministic order: by hash, then topologically (Kahn's algorithm, ties by hash).
    let mut by_hash: BTreeMap<[u8; 32], &Change> = BTreeMap::new();
    for c in changes {
        by_hash.entry(c.hash).or_insert(c);
    }
    let mut order: Vec<&Change> = Vec::with_capacity(by_hash.len());
    {
        let mut waiting: HashMap<[u8; 32], usize> = HashMap::new();
        let mut children: HashMap<[u8; 32], Vec<[u8; 32]>> = HashMap::new();
        let mut ready: BTreeSet<[u8; 32]> = BTreeSet::new();
        for c in by_hash.values() {
            let deps: BTreeSet<&[u8; 32]> = c.deps.iter().collect();
            waiting.insert(c.hash, deps.len());
            for d in deps {
                children.entry(*d).or_default().push(c.hash);
            }
            if c.deps.is_empty() {
                ready.insert(c.hash);
            }
        }
        while let Some(h) = ready.pop_first() {
            if let Some(c) = by_hash.get(&h) {
                order.push(c);
            }
            for child in children.get(&h).into_iter().flatten() {
                if let Some(w) = waiting.get_mut(child) {
                    *w -= 1;
                    if *w == 0 {
                        ready.insert(*child);
                    }
                }
            }
        }
    }
    let n = order.len();
    let index: HashMap<[u8; 32], usize> =
        order.iter().enumerate().map(|(i, c)| (c.hash, i)).collect();
    // past[i]: every ancestor of change i.
    let mut past: Vec<Bits> = Vec::with_capacity(n);
    for c in &order {
        let mut bits = Bits::new(n);
        for d in &c.deps {
            if let Some(&j) = index.get(d) {
                bits.set(j);
                if let Some(p) = past.get(j) {
                    let p = p.clone();
                    bits.union(&p);
                }
            }
        }
        past.push(bits);
    }
    let founder_device = match founder {
        Founder::Root(h) => index.get(&h).and_then(|&i| match order.get(i) {
            Some(c) if c.deps.is_empty() => match c.author {
                Author::Device(d) => Some(d),
                Author::Legacy => None,
            },
            _ => None,
        }),
        Founder::Legacy => None,
    };
    let legacy_counts = founder == Founder::Legacy;
    // Rule 5: the recovery key is the one the founding change names, and no other.
    let recovery_key: Option<[u8; 32]> = match (founder, founder_device) {
        (Founder::Root(h), Some(_)) => by_hash.get(&h).and_then(|c| {
            c.acts.iter().find_map(|a| match a {
                Act::RecoveryKey(k) => Some(*k),
                _ => None,
            })
        }),
        _ => None,
    };
    // Every revocation the recovery key signed: (change, revoked device, restored devices).
    // Checked once: a signature does not depend on which changes count.
    let mut recoveries: Vec<(usize, DeviceId, BTreeSet<DeviceId>)> = Vec::new();
    if let (Some(key), Founder::Root(root)) = (recovery_key, founder) {
        let id = circle_id(&root);
        for (i, c) in order.iter().enumerate() {
            for a in &c.acts {
                if let Act::Recover {
                    device,
                    restore,
                    sig,
                } = a
                {
                    if crate::recovery::check_revocation(&key, id, *device, restore, sig) {
                        recoveries.push((i, *device, restore.iter().copied().collect()));
                    }
                }
            }
        }
    }
    let is_recovery =
        |r: usize, target: DeviceId| recoveries.iter().any(|(i, d, _)| *i == r && *d == target);
    // A legacy change counts only in a legacy circle, and only if no sealed change is in its
    // causal past: every real legacy change was written before seals existed, so one that
    // follows a sealed change was vouched for afterwards, by anyone, and counts for nothing.
    let mut after_sealed = vec![false; n];
    for (i, c) in order.iter().enumerate() {
        after_sealed[i] = c.deps.iter().filter_map(|d| index.get(d)).any(|&j| {
            matches!(order[j].author, Author::Device(_)) || after_sealed.get(j) == Some(&true)
        });
    }

    // Iterate to a fixed point: which changes count depends on which revocations count,
    // which depends on which changes count.
    let mut counted = vec![false; n];
    let mut void = vec![false; n];
    // Revocations that do not stand: (change, device it revokes).
    let mut overruled: BTreeSet<(usize, DeviceId)> = BTreeSet::new();
    for _round in 0..=n.max(1) {
        let adds = acts_of(&order, &counted, |a| match a {
            Act::Add(d) => Some(*d),
            _ => None,
        });
        let mut revokes = acts_of(&order, &counted, |a| match a {
            Act::Revoke(d) => Some(*d),
            _ => None,
        });
        // Rule 5: a recovery revocation stands whoever wrote it.
        for (i, d, _) in &recoveries {
            let list = revokes.entry(*d).or_default();
            if !list.contains(i) {
                list.push(*i);
            }
        }
        let in_past = |list: Option<&Vec<usize>>, i: usize| {
            list.is_some_and(|l| l.iter().any(|&j| past[i].get(j)))
        };
        // Rule 4: a revocation of a senior device by a device it revoked concurrently is
        // overruled. (Its author is then revoked and the overruled revocation, which its
        // revoker had not seen, void: it ends up among `void`.)
        let mut new_overruled: BTreeSet<(usize, DeviceId)> = BTreeSet::new();
        for (&target, rs) in &revokes {
            for &r in rs {
                if is_recovery(r, target) {
                    continue;
                }
                let Some(Author::Device(by)) = order.get(r).map(|c| c.author) else {
                    continue;
                };
                let counter = revokes.get(&by).into_iter().flatten().any(|&r2| {
                    order.get(r2).map(|c| c.author) == Some(Author::Device(target))
                        && !past[r].get(r2)
                        && !past[r2].get(r)
                });
                if counter && senior(target, by, founder_device, &adds, &past) {
                    new_overruled.insert((r, target));
                }
            }
        }
        // Rule 5: what a recovery restores, the recovered device's revocations no longer take.
        for (_, x, restore) in &recoveries {
            for t in restore {
                for &r in revokes.get(t).into_iter().flatten() {
                    let by_x = order.get(r).map(|c| c.author) == Some(Author::Device(*x));
                    if by_x && !is_recovery(r, *t) {
                        new_overruled.insert((r, *t));
                    }
                }
            }
        }
        let standing: BTreeMap<DeviceId, Vec<usize>> = revokes
            .iter()
            .map(|(d, rs)| {
                (
                    *d,
                    rs.iter()
                        .copied()
                        .filter(|&r| !new_overruled.contains(&(r, *d)))
                        .collect(),
                )
            })
            .filter(|(_, rs): &(DeviceId, Vec<usize>)| !rs.is_empty())
            .collect();
        let mut new_counted = vec![false; n];
        let mut new_void = vec![false; n];
        for (i, c) in order.iter().enumerate() {
            match c.author {
                Author::Legacy => new_counted[i] = legacy_counts && !after_sealed[i],
                Author::Device(a) => {
                    if let Some(rs) = standing.get(&a) {
                        if !rs.iter().any(|&r| past[r].get(i)) {
                            new_void[i] = true;
                            continue;
                        }
                    }
                    // A sealed change with no past founds nothing: only the change a circle's
                    // id names does (and a legacy circle's founding changes are legacy).
                    let member = Some(a) == founder_device || in_past(adds.get(&a), i);
                    let revoked = in_past(standing.get(&a), i);
                    new_counted[i] = member && !revoked;
                }
            }
        }
        let settled = new_counted == counted && new_void == void && new_overruled == overruled;
        counted = new_counted;
        void = new_void;
        overruled = new_overruled;
        if settled {
            break;
        }
    }

    let mut verdict = Verdict {
        founder: founder_device,
        ..Verdict::default()
    };
    let hash = |i: usize| order.get(i).map(|c| c.hash);
    for (i, c) in order.iter().enumerate() {
        if void[i] {
            verdict.void.extend(hash(i));
        }
        if !counted[i] {
            continue;
        }
        verdict.counted.insert(c.hash);
        for a in &c.acts {
            match a {
                Act::Add(d) => {
                    verdict.members.insert(*d);
                }
                Act::Revoke(d) if !overruled.contains(&(i, *d)) => {
                    verdict.revoked.entry(*d).or_default().insert(c.hash);
                }
                Act::Revoke(_) | Act::RecoveryKey(_) | Act::Recover { .. } => {}
                Act::AddPartner(l) => {
                    verdict.partners.insert(l.clone());
                }
                Act::RevokePartner(l) => {
                    verdict.partners_revoked.insert(l.clone());
                }
                Act::PartnerSide { label, theirs, doc } => {
                    let sides = verdict.partner_sides.entry(label.clone()).or_default();
                    let side = if *theirs { &mut sides.1 } else { &mut sides.0 };
                    side.get_or_insert(*doc);
                }
                Act::PartnerDevice { label, device } => {
                    verdict
                        .partner_devices
                        .entry(label.clone())
                        .or_default()
                        .entry(*device)
                        .or_default();
                }
                Act::PartnerAddr {
                    label,
                    device,
                    addr,
                } => {
                    verdict
                        .partner_devices
                        .entry(label.clone())
                        .or_default()
                        .entry(*device)
                        .or_default()
                        .insert(addr.clone());
                }
            }
        }
    }
    for (i, d, _) in &recoveries {
        verdict.revoked.entry(*d).or_default().extend(hash(*i));
        verdict.recovered.insert(*d);
    }
    verdict.recovery = recovery_key;
    verdict.members.extend(founder_device);
    for d in verdict.revoked.keys() {
        verdict.members.remove(d);
    }
    let adds = acts_of(&order, &counted, |a| match a {
        Act::Add(d) => Some(*d),
        _ => None,
    });
    for (d, rs) in &verdict.revoked {
        let junior_only = rs.iter().all(|r| {
            let by = index.get(r).and_then(|&i| order.get(i)).map(|c| c.author);
            matches!(by, Some(Author::Device(b)) if senior(*d, b, founder_device, &adds, &past))
        });
        if junior_only && !verdict.recovered.contains(d) {
            verdict.contested.insert(*d);
        }
    }
    verdict
}

/// For each device, the changes that count and carry the act `pick` finds.
fn acts_of(
    order: &[&Change],
    counted: &[bool],
    pick: impl Fn(&Act) -> Option<DeviceId>,
) -> BTreeMap<DeviceId, Vec<usize>> {
    let mut out: BTreeMap<DeviceId, Vec<usize>> = BTreeMap::new();
    for (i, c) in order.iter().enumerate() {
        if counted.get(i) == Some(&true) {
            for d in c.acts.iter().filter_map(&pick) {
                out.entry(d).or_default().push(i);
            }
        }
    }
    out
}

/// Whether `a` is senior to `b` (rule 4).
fn senior(
    a: DeviceId,
    b: DeviceId,
    founder: Option<DeviceId>,
    adds: &BTreeMap<DeviceId, Vec<usize>>,
    past: &[Bits],
) -> bool {
    if Some(a) == founder {
        return true;
    }
    if Some(b) == founder {
        return false;
    }
    let (Some(aa), Some(bb)) = (adds.get(&a), adds.get(&b)) else {
        return adds.contains_key(&a);
    };
    let a_first = aa.iter().any(|&i| bb.iter().any(|&j| past[j].get(i)));
    let b_first = bb.iter().any(|&j| aa.iter().any(|&i| past[i].get(j)));
    match (a_first, b_first) {
        (true, false) => true,
        (false, true) => false,
        _ => a < b,
    }
}

#[cfg(test)]
mod tests;
