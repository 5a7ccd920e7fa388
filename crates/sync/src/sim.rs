//! A deterministic simulation of one person's devices and an accountability partner's device
//! over the engine, with a bad network: messages lost, duplicated, reordered and delayed,
//! links cut and healed (partitions), and random concurrent edits everywhere. After healing,
//! every one of the person's devices must hold identical documents, the partner's device must
//! hold the two sides of the space identical to the person's, and nothing else: no private
//! document may ever reach it.
//!
//! Run by the test suite over a fixed set of seeds, and at length by `failup-bench sim`; a
//! failing seed is reported so [`run`] can replay it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};
use failup_wire::{DeviceId, DocId, Message};

use crate::memory::MemoryDocuments;
use crate::{Effect, Engine, Input};

/// What one seed did and found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Devices of the person (the partner has one more).
    pub devices: usize,
    /// Edits made.
    pub operations: usize,
    /// Messages delivered.
    pub messages: usize,
    /// Documents that differ between devices that should agree, after healing.
    pub divergences: usize,
    /// Documents the partner's device holds that it must not (or saw at any time).
    pub privacy_violations: usize,
    /// Edits a modified partner client made to the person's side that reached the person.
    pub forgeries_accepted: usize,
    /// Connections closed for a protocol error.
    pub closed: usize,
}

impl Report {
    /// Whether the seed found nothing wrong: no divergence, no privacy violation, no accepted
    /// forgery, no connection closed for a protocol error.
    pub fn is_clean(&self) -> bool {
        self.divergences + self.privacy_violations + self.forgeries_accepted + self.closed == 0
    }
}

/// A tiny deterministic generator (xorshift64*): the simulation must replay exactly from its
/// seed, with no dependency on a random crate's version.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct Node {
    id: DeviceId,
    engine: Engine,
    docs: MemoryDocuments,
}

/// The private documents are 1..=3; the person's side of the space is 10, the partner's 11.
const PRIVATE: [u8; 3] = [1, 2, 3];
const MINE: u8 = 10;
const THEIRS: u8 = 11;

fn doc(n: u8) -> DocId {
    DocId([n; 16])
}

/// Which of the simulated documents an edit touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One of the person's private documents (journal buckets).
    Private,
    /// The person's side of the space.
    Mine,
    /// The partner's side of the space.
    Theirs,
}

/// What the simulated people do to their documents: plain map edits by default ([`Plain`]);
/// the integration tests run the real journal operations through the same network.
pub trait Workload {
    /// A new document of `kind`, written by `actor`.
    fn create(&self, kind: Kind, actor: u8) -> AutoCommit;
    /// One edit of `doc`, chosen with `pick` (which returns a number below its argument);
    /// `tag` is unique to this edit and names who made it (it ends with `-n<node>`).
    fn edit(
        &self,
        kind: Kind,
        doc: &mut AutoCommit,
        pick: &mut dyn FnMut(usize) -> usize,
        tag: &str,
    );
    /// Whether `doc` (the person's side, as a device of the person holds it) contains an edit
    /// tagged as made by node `node`.
    fn made_by(&self, doc: &AutoCommit, node: usize) -> bool;
}

/// Edits as keys added to one map.
pub struct Plain;

impl Workload for Plain {
    fn create(&self, kind: Kind, actor: u8) -> AutoCommit {
        new_doc(actor, &format!("{kind:?}"))
    }

    fn edit(&self, _: Kind, doc: &mut AutoCommit, _: &mut dyn FnMut(usize) -> usize, tag: &str) {
        edit(doc, tag);
    }

    fn made_by(&self, doc: &AutoCommit, node: usize) -> bool {
        let forged = format!("-n{node}");
        match doc.get(ROOT, "entries") {
            Ok(Some((_, entries))) => doc.keys(&entries).any(|k| k.ends_with(&forged)),
            _ => false,
        }
    }
}

fn new_doc(actor: u8, what: &str) -> AutoCommit {
    let mut d = AutoCommit::new().with_actor(automerge::ActorId::from([actor; 16]));
    if let Ok(map) = d.put_object(ROOT, "entries", ObjType::Map) {
        let _ = d.put(&map, what, "created");
    }
    d.commit();
    d
}

fn edit(d: &mut AutoCommit, key: &str) {
    let map = match d.get(ROOT, "entries") {
        Ok(Some((_, id))) => id,
        _ => match d.put_object(ROOT, "entries", ObjType::Map) {
            Ok(id) => id,
            Err(_) => return,
        },
    };
    let _ = d.put(&map, key, "edited");
    d.commit();
}

struct Sim {
    nodes: Vec<Node>,
    partner: usize,
    links: BTreeSet<(usize, usize)>,
    queue: VecDeque<(usize, usize, Message)>,
    report: Report,
}

impl Sim {
    fn apply(&mut self, from: usize, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Send(to, msg) => {
                    if let Some(to) = self.nodes.iter().position(|n| n.id == to) {
                        if to == self.partner {
                            if let Message::Sync { doc, .. } | Message::Doc { doc, .. } = &msg {
                                if *doc != self::doc(MINE) && *doc != self::doc(THEIRS) {
                                    self.report.privacy_violations += 1;
                                }
                            }
                        }
                        self.queue.push_back((from, to, msg));
                    }
                }
                Effect::Close(..) => self.report.closed += 1,
                Effect::InSync(_) | Effect::Changed(_) | Effect::DocFailed(..) => {}
            }
        }
    }

    fn input(&mut self, node: usize, input: Input) {
        let n = &mut self.nodes[node];
        let effects = n.engine.handle(&mut n.docs, input);
        self.apply(node, effects);
    }

    fn allowed(&self, a: usize, b: usize) -> bool {
        // The partner's device talks to the person's devices, never to itself.
        a != b
    }

    fn connect(&mut self, a: usize, b: usize) {
        let key = (a.min(b), a.max(b));
        if !self.allowed(a, b) || !self.links.insert(key) {
            return;
        }
        let (ida, idb) = (self.nodes[a].id, self.nodes[b].id);
        self.input(a, Input::Connected(idb));
        self.input(b, Input::Connected(ida));
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        let key = (a.min(b), a.max(b));
        if !self.links.remove(&key) {
            return;
        }
        // What was in flight on that connection is lost with it.
        self.queue
            .retain(|(f, t, _)| !((*f == a && *t == b) || (*f == b && *t == a)));
        let (ida, idb) = (self.nodes[a].id, self.nodes[b].id);
        self.input(a, Input::Disconnected(idb));
        self.input(b, Input::Disconnected(ida));
    }

    /// Delivers up to `steps` messages with faults (`faults` false: none, until quiet).
    fn deliver(&mut self, rng: &mut Rng, steps: usize, faults: bool) {
        let mut n = 0;
        while let Some((from, to, msg)) = self.queue.pop_front() {
            n += 1;
            if n > steps {
                self.queue.push_front((from, to, msg));
                return;
            }
            let linked = self.links.contains(&(from.min(to), from.max(to)));
            if !linked {
                continue;
            }
            if faults {
                if rng.chance(5) {
                    continue;
                }
                if rng.chance(5) && !self.queue.is_empty() {
                    let at = rng.below(self.queue.len());
                    self.queue.insert(at, (from, to, msg));
                    continue;
                }
                if rng.chance(5) {
                    self.queue.push_back((from, to, msg.clone()));
                }
            }
            self.report.messages += 1;
            let from_id = self.nodes[from].id;
            self.input(to, Input::Received(from_id, msg));
        }
    }
}

/// The seeds a test runs: `FAILUP_SIM_SEED` replays one, `FAILUP_SIM_SEEDS` runs that many,
/// else `default` many.
pub fn seeds(default: u64) -> Vec<u64> {
    if let Some(one) = std::env::var("FAILUP_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![one];
    }
    let n = std::env::var("FAILUP_SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    (0..n).collect()
}

/// Runs one seed of the [`Plain`] workload.
pub fn run(seed: u64) -> Report {
    run_with(seed, &Plain)
}

/// Runs one seed: 3 to 5 devices of one person and one device of a partner, a few hundred
/// edits of `work` under faults and partitions, then healing.
pub fn run_with(seed: u64, work: &dyn Workload) -> Report {
    let mut rng = Rng::new(seed);
    let devices = 3 + rng.below(3);
    let partner = devices;
    let mut nodes: Vec<Node> = (0..=devices)
        .map(|i| Node {
            id: DeviceId([i as u8 + 1; 32]),
            engine: Engine::new(),
            docs: MemoryDocuments::new(),
        })
        .collect();
    for p in PRIVATE {
        let owner = rng.below(devices);
        nodes[owner]
            .docs
            .insert(doc(p), work.create(Kind::Private, owner as u8 + 1));
    }
    nodes[rng.below(devices)]
        .docs
        .insert(doc(MINE), work.create(Kind::Mine, 50));
    nodes[partner]
        .docs
        .insert(doc(THEIRS), work.create(Kind::Theirs, 60));
    let partner_id = nodes[partner].id;
    let mine: Vec<DeviceId> = nodes[..devices].iter().map(|n| n.id).collect();
    for n in &mut nodes[..devices] {
        n.docs.limit(partner_id, [doc(MINE), doc(THEIRS)]);
        n.docs.read_only(partner_id, [doc(MINE)]);
    }
    for d in &mine {
        nodes[partner].docs.limit(*d, [doc(MINE), doc(THEIRS)]);
        nodes[partner].docs.read_only(*d, [doc(THEIRS)]);
    }
    let mut sim = Sim {
        nodes,
        partner,
        links: BTreeSet::new(),
        queue: VecDeque::new(),
        report: Report {
            devices,
            ..Report::default()
        },
    };
    let all = devices + 1;
    for a in 0..all {
        for b in a + 1..all {
            sim.connect(a, b);
        }
    }
    for round in 0..60 {
        // Partitions: cut or heal a random link now and then.
        if rng.chance(20) {
            let (a, b) = (rng.below(all), rng.below(all));
            if rng.chance(50) {
                sim.disconnect(a, b);
            } else {
                sim.connect(a, b);
            }
        }
        // A few concurrent edits, each where its writer may write.
        for _ in 0..1 + rng.below(3) {
            let node = rng.below(all);
            // Now and then the partner's client misbehaves and writes the person's side.
            let target = if node == partner && rng.chance(10) {
                MINE
            } else if node == partner {
                THEIRS
            } else if rng.chance(30) {
                MINE
            } else {
                PRIVATE[rng.below(PRIVATE.len())]
            };
            let kind = match target {
                MINE => Kind::Mine,
                THEIRS => Kind::Theirs,
                _ => Kind::Private,
            };
            let mut choices = Rng::new(rng.next());
            if let Some(d) = sim.nodes[node].docs.get_mut(doc(target)) {
                work.edit(
                    kind,
                    d,
                    &mut |n| choices.below(n),
                    &format!("s{seed}-r{round}-n{node}"),
                );
                sim.report.operations += 1;
                sim.input(node, Input::LocalChange(doc(target)));
            }
        }
        // Delay: only part of the traffic moves each round.
        let steps = 5 + rng.below(40);
        sim.deliver(&mut rng, steps, true);
    }
    // Heal: every connection starts afresh, and the network is good.
    let links: Vec<(usize, usize)> = sim.links.iter().copied().collect();
    for (a, b) in links {
        sim.disconnect(a, b);
    }
    sim.queue.clear();
    for a in 0..all {
        for b in a + 1..all {
            sim.connect(a, b);
        }
    }
    sim.deliver(&mut rng, usize::MAX, false);

    // Every device of the person holds the same documents; the partner the same space, only.
    let heads: Vec<BTreeMap<DocId, Vec<automerge::ChangeHash>>> =
        sim.nodes.iter_mut().map(|n| n.docs.all_heads()).collect();
    for h in &heads[1..devices] {
        for d in heads[0].keys().chain(h.keys()).collect::<BTreeSet<_>>() {
            if heads[0].get(d) != h.get(d) {
                sim.report.divergences += 1;
            }
        }
    }
    let theirs = &heads[partner];
    for d in theirs.keys() {
        if *d != doc(MINE) && *d != doc(THEIRS) {
            sim.report.privacy_violations += 1;
        }
    }
    if theirs.get(&doc(THEIRS)) != heads[0].get(&doc(THEIRS)) {
        sim.report.divergences += 1;
    }
    // The partner's copy of the person's side holds everything the person wrote (plus whatever
    // its own client forged there, which stays with it).
    let my_heads = heads[0].get(&doc(MINE)).cloned().unwrap_or_default();
    if let Some(copy) = sim.nodes[partner].docs.get_mut(doc(MINE)) {
        if my_heads
            .iter()
            .any(|h| copy.get_change_by_hash(h).is_none())
        {
            sim.report.divergences += 1;
        }
    } else if !my_heads.is_empty() {
        sim.report.divergences += 1;
    }
    // No edit the partner's client made in the person's side reached any of their devices.
    for n in &mut sim.nodes[..devices] {
        if let Some(d) = n.docs.get_mut(doc(MINE)) {
            if work.made_by(d, partner) {
                sim.report.forgeries_accepted += 1;
            }
        }
    }
    sim.report
}
