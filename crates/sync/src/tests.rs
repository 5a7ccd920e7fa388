//! The engine over an in-memory network: convergence, live propagation, faults, hostile input.

use std::collections::{BTreeSet, VecDeque};

use automerge::sync::SyncDoc;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};
use failup_wire::{DeviceId, DocId, Message};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::memory::MemoryDocuments;

struct Node {
    id: DeviceId,
    engine: Engine,
    docs: MemoryDocuments,
}

#[derive(Default)]
struct Faults {
    loss: f64,
    duplicate: f64,
    reorder: f64,
}

struct Net {
    nodes: Vec<Node>,
    queue: VecDeque<(usize, usize, Message)>,
    links: BTreeSet<(usize, usize)>,
    in_sync: BTreeSet<(usize, usize)>,
    closed: Vec<(usize, usize, String)>,
    messages: usize,
    bytes: usize,
}

fn device(n: u8) -> DeviceId {
    DeviceId([n; 32])
}

fn doc_id(n: u8) -> DocId {
    DocId([n; 16])
}

/// A document with one map of entries, like a journal bucket.
fn new_doc(actor: u8, entries: &[&str]) -> AutoCommit {
    let mut d = AutoCommit::new().with_actor(automerge::ActorId::from([actor; 16]));
    let map = d.put_object(ROOT, "entries", ObjType::Map).expect("put");
    for e in entries {
        d.put(&map, *e, "text").expect("put");
    }
    d.commit();
    d
}

fn add_entry(d: &mut AutoCommit, key: &str) {
    let map = match d.get(ROOT, "entries").expect("get") {
        Some((_, id)) => id,
        None => d.put_object(ROOT, "entries", ObjType::Map).expect("put"),
    };
    d.put(&map, key, "text").expect("put");
    d.commit();
}

impl Net {
    fn new(n: u8) -> Net {
        Net {
            nodes: (1..=n)
                .map(|i| Node {
                    id: device(i),
                    engine: Engine::new(),
                    docs: MemoryDocuments::new(),
                })
                .collect(),
            queue: VecDeque::new(),
            links: BTreeSet::new(),
            in_sync: BTreeSet::new(),
            closed: Vec::new(),
            messages: 0,
            bytes: 0,
        }
    }

    fn index(&self, id: DeviceId) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .expect("known device")
    }

    fn apply(&mut self, from: usize, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Send(to, msg) => {
                    let to = self.index(to);
                    self.messages += 1;
                    self.bytes += msg.to_frame().len();
                    self.queue.push_back((from, to, msg));
                }
                Effect::Close(to, reason) => {
                    let to = self.index(to);
                    self.closed.push((from, to, reason));
                }
                Effect::InSync(to) => {
                    let to = self.index(to);
                    self.in_sync.insert((from, to));
                }
                Effect::Changed(_) | Effect::DocFailed(..) => {}
            }
        }
    }

    fn input(&mut self, node: usize, input: Input) {
        let n = &mut self.nodes[node];
        let effects = n.engine.handle(&mut n.docs, input);
        self.apply(node, effects);
    }

    fn connect(&mut self, a: usize, b: usize) {
        self.links.insert((a.min(b), a.max(b)));
        let (ida, idb) = (self.nodes[a].id, self.nodes[b].id);
        self.input(a, Input::Connected(idb));
        self.input(b, Input::Connected(ida));
    }

    fn disconnect_all(&mut self) {
        self.queue.clear();
        let links: Vec<_> = self.links.iter().copied().collect();
        for (a, b) in links {
            let (ida, idb) = (self.nodes[a].id, self.nodes[b].id);
            self.input(a, Input::Disconnected(idb));
            self.input(b, Input::Disconnected(ida));
        }
        self.links.clear();
        self.in_sync.clear();
    }

    fn local_change(&mut self, node: usize, doc: DocId) {
        self.input(node, Input::LocalChange(doc));
    }

    /// Delivers messages until none are left (or a step limit), with optional faults.
    fn run(&mut self, faults: &Faults, rng: &mut StdRng) {
        let mut steps = 0;
        while let Some((from, to, msg)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "no quiescence");
            if rng.random_bool(faults.loss) {
                continue;
            }
            if rng.random_bool(faults.reorder) && !self.queue.is_empty() {
                let at = rng.random_range(0..self.queue.len());
                self.queue.insert(at, (from, to, msg));
                continue;
            }
            if rng.random_bool(faults.duplicate) {
                self.queue.push_back((from, to, msg.clone()));
            }
            let from_id = self.nodes[from].id;
            self.input(to, Input::Received(from_id, msg));
        }
    }

    fn settle(&mut self) {
        self.run(&Faults::default(), &mut StdRng::seed_from_u64(0));
    }

    fn assert_converged(&mut self) {
        let first = self.nodes[0].docs.all_heads();
        for i in 1..self.nodes.len() {
            assert_eq!(self.nodes[i].docs.all_heads(), first, "node {i} differs");
        }
        assert!(self.closed.is_empty(), "closed: {:?}", self.closed);
    }
}

#[test]
fn in_sync_reconnect_costs_one_summary_each_way() {
    let mut net = Net::new(2);
    for i in 0..50u8 {
        let d = new_doc(1, &[&format!("e{i}")]);
        net.nodes[1].docs.insert(doc_id(i), d.clone());
        net.nodes[0].docs.insert(doc_id(i), d);
    }
    net.connect(0, 1);
    net.settle();
    assert!(net.in_sync.contains(&(0, 1)) && net.in_sync.contains(&(1, 0)));
    // Two summaries, two replies.
    assert_eq!(net.messages, 4);
    assert!(net.bytes < 1024, "{} bytes", net.bytes);
}

#[test]
fn a_resync_confirms_agreement_in_one_round_trip() {
    let mut net = Net::new(2);
    net.nodes[0].docs.insert(doc_id(1), new_doc(1, &["a"]));
    net.connect(0, 1);
    net.settle();
    net.in_sync.clear();
    let before = net.messages;
    net.input(0, Input::Resync(device(2)));
    net.settle();
    assert!(net.in_sync.contains(&(0, 1)) && net.in_sync.contains(&(1, 0)));
    assert_eq!(net.messages - before, 2, "a summary and its reply");
}

#[test]
fn a_new_device_receives_every_document() {
    let mut net = Net::new(2);
    for i in 0..20u8 {
        net.nodes[0]
            .docs
            .insert(doc_id(i), new_doc(1, &["a", "b", "c"]));
    }
    net.connect(0, 1);
    net.settle();
    net.assert_converged();
    assert_eq!(net.nodes[1].docs.ids().count(), 20);
    assert!(net.in_sync.contains(&(0, 1)) && net.in_sync.contains(&(1, 0)));
}

#[test]
fn concurrent_edits_on_both_sides_merge() {
    let mut net = Net::new(2);
    let base = new_doc(1, &["shared"]);
    net.nodes[0].docs.insert(doc_id(1), base.clone());
    let mut other = base.clone().with_actor(automerge::ActorId::from([2u8; 16]));
    add_entry(&mut other, "from-b");
    net.nodes[1].docs.insert(doc_id(1), other);
    add_entry(net.nodes[0].docs.get_mut(doc_id(1)).expect("doc"), "from-a");
    net.nodes[1].docs.insert(doc_id(2), new_doc(2, &["only-b"]));
    net.connect(0, 1);
    net.settle();
    net.assert_converged();
    let text = net.nodes[0].docs.render(doc_id(1)).expect("doc");
    assert!(text.contains("from-a") && text.contains("from-b"), "{text}");
    assert!(net.in_sync.contains(&(0, 1)) && net.in_sync.contains(&(1, 0)));
}

#[test]
fn live_changes_reach_every_connected_device_through_the_middle() {
    let mut net = Net::new(3);
    net.nodes[0].docs.insert(doc_id(1), new_doc(1, &["start"]));
    net.connect(0, 1);
    net.connect(1, 2);
    net.settle();
    net.assert_converged();
    add_entry(net.nodes[0].docs.get_mut(doc_id(1)).expect("doc"), "live");
    net.local_change(0, doc_id(1));
    net.settle();
    net.assert_converged();
    assert!(
        net.nodes[2]
            .docs
            .render(doc_id(1))
            .expect("doc")
            .contains("live")
    );
}

#[test]
fn lost_duplicated_and_reordered_messages_converge_after_reconnect() {
    for seed in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut net = Net::new(3);
        for i in 0..6u8 {
            let owner = rng.random_range(0..3);
            net.nodes[owner]
                .docs
                .insert(doc_id(i), new_doc(owner as u8 + 1, &["x"]));
        }
        let faults = Faults {
            loss: 0.1,
            duplicate: 0.1,
            reorder: 0.1,
        };
        net.connect(0, 1);
        net.connect(1, 2);
        net.connect(0, 2);
        for round in 0..10 {
            let node = rng.random_range(0..3);
            let doc = doc_id(rng.random_range(0..6));
            if let Some(d) = net.nodes[node].docs.get_mut(doc) {
                add_entry(d, &format!("edit-{seed}-{round}-{node}"));
                net.local_change(node, doc);
            }
            net.run(&faults, &mut rng);
        }
        // A garbled stream is a broken connection; reconnecting starts fresh sync states.
        net.closed.clear();
        net.disconnect_all();
        net.connect(0, 1);
        net.connect(1, 2);
        net.connect(0, 2);
        net.settle();
        net.assert_converged();
        for a in 0..3 {
            for b in 0..3 {
                if a != b {
                    assert!(
                        net.in_sync.contains(&(a, b)),
                        "seed {seed}: {a}->{b} not in sync"
                    );
                }
            }
        }
    }
}

#[test]
fn garbage_sync_data_closes_only_that_connection() {
    let mut net = Net::new(3);
    net.nodes[0].docs.insert(doc_id(1), new_doc(1, &["a"]));
    net.connect(0, 1);
    net.connect(0, 2);
    net.settle();
    let peer = net.nodes[1].id;
    let effects = {
        let n = &mut net.nodes[0];
        n.engine.handle(
            &mut n.docs,
            Input::Received(
                peer,
                Message::Sync {
                    doc: doc_id(1),
                    data: vec![0xde, 0xad, 0xbe, 0xef],
                },
            ),
        )
    };
    assert!(matches!(effects.as_slice(), [Effect::Close(p, _)] if *p == peer));
    assert_eq!(net.nodes[0].engine.peers().count(), 1);
    // The other connection still carries live changes.
    add_entry(net.nodes[0].docs.get_mut(doc_id(1)).expect("doc"), "still");
    net.local_change(0, doc_id(1));
    net.settle();
    assert!(
        net.nodes[2]
            .docs
            .render(doc_id(1))
            .expect("doc")
            .contains("still")
    );
}

#[test]
fn a_message_before_connect_closes() {
    let mut engine = Engine::new();
    let mut docs = MemoryDocuments::new();
    let effects = engine.handle(
        &mut docs,
        Input::Received(device(9), Message::DocUnavailable { doc: doc_id(1) }),
    );
    assert!(matches!(effects.as_slice(), [Effect::Close(..)]));
}

#[test]
fn a_store_that_cannot_list_its_documents_closes_the_connection() {
    // An empty inventory would tell the peer this device holds nothing; the session ends
    // instead, on connecting and on a summary from the peer alike.
    let mut docs = Poisoned {
        inner: MemoryDocuments::new(),
        bad: doc_id(0),
        no_inventory: true,
    };
    docs.inner.insert(doc_id(1), new_doc(1, &["x"]));
    let mut engine = Engine::new();
    let effects = engine.handle(&mut docs, Input::Connected(device(9)));
    assert!(
        matches!(effects.as_slice(), [Effect::Close(_, reason)] if reason == "storage error"),
        "{effects:?}"
    );
    assert!(engine.peers().next().is_none());
    docs.no_inventory = false;
    let effects = engine.handle(&mut docs, Input::Connected(device(9)));
    assert!(
        matches!(effects.as_slice(), [Effect::Send(..)]),
        "{effects:?}"
    );
    docs.no_inventory = true;
    let summary = Message::Summary {
        digest: [0; 32],
        docs: 0,
        reply: false,
    };
    let effects = engine.handle(&mut docs, Input::Received(device(9), summary));
    assert!(
        matches!(effects.as_slice(), [Effect::Close(..)]),
        "{effects:?}"
    );
}

/// Documents that refuse to take in one document, as a store whose copy of it is damaged would,
/// and with `no_inventory` cannot list what they hold, as a store that fails to read would.
struct Poisoned {
    inner: MemoryDocuments,
    bad: DocId,
    no_inventory: bool,
}

impl Documents for Poisoned {
    fn inventory(&mut self, peer: DeviceId) -> Result<Vec<failup_wire::InventoryItem>, DocError> {
        if self.no_inventory {
            return Err(DocError("storage error".into()));
        }
        self.inner.inventory(peer)
    }
    fn may_sync(&mut self, peer: DeviceId, doc: DocId) -> bool {
        self.inner.may_sync(peer, doc)
    }

    fn may_write(&mut self, peer: DeviceId, doc: DocId) -> bool {
        self.inner.may_write(peer, doc)
    }
    fn holds(&mut self, doc: DocId) -> bool {
        self.inner.holds(doc)
    }
    fn generate(
        &mut self,
        doc: DocId,
        state: &mut automerge::sync::State,
    ) -> Result<Option<(automerge::sync::Message, Vec<failup_wire::Seal>)>, DocError> {
        self.inner.generate(doc, state)
    }
    fn receive(
        &mut self,
        doc: DocId,
        state: &mut automerge::sync::State,
        msg: automerge::sync::Message,
        seals: &mut Seals,
    ) -> Result<bool, DocError> {
        if doc == self.bad {
            return Err(DocError("damaged".into()));
        }
        self.inner.receive(doc, state, msg, seals)
    }
    fn saved(&mut self, doc: DocId) -> Result<Option<failup_wire::SealedDoc>, DocError> {
        self.inner.saved(doc)
    }
    fn receive_whole(&mut self, doc: DocId, data: &[u8], seals: &Seals) -> Result<bool, DocError> {
        if doc == self.bad {
            return Err(DocError("damaged".into()));
        }
        self.inner.receive_whole(doc, data, seals)
    }
}

#[test]
fn one_failing_document_leaves_the_others_syncing() {
    let (ia, ib) = (device(1), device(2));
    let mut a_docs = MemoryDocuments::new();
    for i in 0..5u8 {
        a_docs.insert(doc_id(i), new_doc(1, &["x"]));
    }
    let mut b_docs = Poisoned {
        inner: MemoryDocuments::new(),
        bad: doc_id(2),
        no_inventory: false,
    };
    let (mut a, mut b) = (Engine::new(), Engine::new());
    let mut queue: VecDeque<(bool, Effect)> = VecDeque::new();
    let mut failed = Vec::new();
    let mut closed = false;
    queue.extend(
        a.handle(&mut a_docs, Input::Connected(ib))
            .into_iter()
            .map(|e| (true, e)),
    );
    queue.extend(
        b.handle(&mut b_docs, Input::Connected(ia))
            .into_iter()
            .map(|e| (false, e)),
    );
    let mut steps = 0;
    while let Some((from_a, effect)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 10_000, "no quiescence");
        match effect {
            Effect::Send(_, msg) if from_a => queue.extend(
                b.handle(&mut b_docs, Input::Received(ia, msg))
                    .into_iter()
                    .map(|e| (false, e)),
            ),
            Effect::Send(_, msg) => queue.extend(
                a.handle(&mut a_docs, Input::Received(ib, msg))
                    .into_iter()
                    .map(|e| (true, e)),
            ),
            Effect::DocFailed(_, doc, _) => failed.push(doc),
            Effect::Close(..) => closed = true,
            _ => {}
        }
    }
    assert!(!closed, "the connection was closed");
    assert_eq!(failed, vec![doc_id(2)]);
    let held: Vec<DocId> = b_docs.inner.ids().collect();
    assert_eq!(held, vec![doc_id(0), doc_id(1), doc_id(3), doc_id(4)]);
}

#[test]
fn both_sides_sending_whole_documents_end_in_sync() {
    let mut net = Net::new(2);
    for i in 0..4u8 {
        net.nodes[0].docs.insert(doc_id(i), new_doc(1, &["a"]));
        net.nodes[1].docs.insert(doc_id(10 + i), new_doc(2, &["b"]));
    }
    net.connect(0, 1);
    net.settle();
    net.assert_converged();
    assert_eq!(net.nodes[0].docs.ids().count(), 8);
    assert!(net.in_sync.contains(&(0, 1)) && net.in_sync.contains(&(1, 0)));
}

#[test]
fn a_limited_peer_gets_only_its_documents_however_it_asks() {
    // Node 0 is my device with a private journal document and a shared space; node 1 is a
    // partner's device, limited to the space on my side (and I to it on theirs).
    let mut net = Net::new(2);
    let (private, space) = (doc_id(1), doc_id(2));
    net.nodes[0]
        .docs
        .insert(private, new_doc(1, &["PRIVATE-MARKER"]));
    net.nodes[0].docs.insert(space, new_doc(1, &["shared"]));
    let partner_doc = doc_id(3);
    net.nodes[1]
        .docs
        .insert(partner_doc, new_doc(2, &["partner's own private entry"]));
    let (me, partner) = (net.nodes[0].id, net.nodes[1].id);
    net.nodes[0].docs.limit(partner, [space]);
    net.nodes[1].docs.limit(me, [space]);
    net.connect(0, 1);
    net.settle();
    assert_eq!(
        net.nodes[1].docs.ids().collect::<Vec<_>>(),
        [space, partner_doc]
    );
    assert_eq!(
        net.nodes[0].docs.ids().collect::<Vec<_>>(),
        [private, space]
    );
    assert!(net.in_sync.contains(&(0, 1)) && net.in_sync.contains(&(1, 0)));

    // Live: an edit of the private document is offered to nobody limited away from it.
    add_entry(
        net.nodes[0].docs.get_mut(private).expect("held"),
        "PRIVATE-2",
    );
    net.local_change(0, private);
    let before = net.messages;
    net.settle();
    assert_eq!(
        net.messages, before,
        "nothing sent about the private document"
    );

    // A modified partner client asks for the private document in every way the protocol
    // has: each gets "unavailable", and no byte of it.
    let empty = AutoCommit::new()
        .sync()
        .generate_sync_message(&mut automerge::sync::State::new())
        .expect("a first message")
        .encode();
    let asks = [
        Message::Request {
            doc: private,
            data: empty.clone(),
        },
        Message::Sync {
            doc: private,
            data: empty,
        },
    ];
    for ask in asks {
        let effects = {
            let n = &mut net.nodes[0];
            n.engine.handle(&mut n.docs, Input::Received(partner, ask))
        };
        assert_eq!(effects.len(), 2, "{effects:?}");
        assert!(matches!(
            &effects[0],
            Effect::Send(to, Message::DocUnavailable { doc }) if *to == partner && *doc == private
        ));
        assert!(
            matches!(&effects[1], Effect::DocFailed(to, doc, _) if *to == partner && *doc == private)
        );
    }
    // Nor may it push documents outside the space into my store.
    let intruder = doc_id(9);
    let effects = {
        let n = &mut net.nodes[0];
        n.engine.handle(
            &mut n.docs,
            Input::Received(
                partner,
                Message::Doc {
                    doc: intruder,
                    data: new_doc(2, &["pushed"]).save(),
                },
            ),
        )
    };
    assert!(matches!(
        effects.as_slice(),
        [
            Effect::Send(_, Message::DocUnavailable { .. }),
            Effect::DocFailed(..)
        ]
    ));
    assert!(!net.nodes[0].docs.ids().any(|d| d == intruder));
}

#[test]
fn a_read_only_document_flows_one_way_and_still_settles() {
    // My side of a space (doc 2) goes to the partner's device and never comes back from it,
    // however the partner's copy changes; their side (doc 3) flows the other way.
    let mut net = Net::new(2);
    let (mine, theirs) = (doc_id(2), doc_id(3));
    net.nodes[0]
        .docs
        .insert(mine, new_doc(1, &["my shared entry"]));
    net.nodes[1]
        .docs
        .insert(theirs, new_doc(2, &["their shared entry"]));
    let (me, partner) = (net.nodes[0].id, net.nodes[1].id);
    net.nodes[0].docs.limit(partner, [mine, theirs]);
    net.nodes[0].docs.read_only(partner, [mine]);
    net.nodes[1].docs.limit(me, [mine, theirs]);
    net.nodes[1].docs.read_only(me, [theirs]);
    net.connect(0, 1);
    net.settle();
    assert_eq!(
        net.nodes[1].docs.render(mine),
        net.nodes[0].docs.render(mine)
    );
    assert_eq!(
        net.nodes[0].docs.render(theirs),
        net.nodes[1].docs.render(theirs)
    );

    // A modified partner client writes into my side: its change never reaches my copy.
    add_entry(net.nodes[1].docs.get_mut(mine).expect("held"), "FORGED");
    net.local_change(1, mine);
    net.settle();
    assert!(
        !net.nodes[0]
            .docs
            .render(mine)
            .expect("mine")
            .contains("FORGED")
    );
    // My next change still reaches it, and both sides settle.
    add_entry(net.nodes[0].docs.get_mut(mine).expect("held"), "second");
    net.local_change(0, mine);
    net.settle();
    assert!(
        net.nodes[1]
            .docs
            .render(mine)
            .expect("copy")
            .contains("second")
    );
    assert!(net.closed.is_empty(), "{:?}", net.closed);
}

#[test]
fn devices_and_a_partner_converge_under_faults_and_nothing_private_crosses() {
    // FAILUP_SIM_SEED replays one seed; FAILUP_SIM_SEEDS runs more than the default.
    let seeds = crate::sim::seeds(60);
    let mut operations = 0;
    for seed in &seeds {
        let r = crate::sim::run(*seed);
        assert!(
            r.is_clean(),
            "seed {seed} failed (replay with FAILUP_SIM_SEED={seed}): {r:?}"
        );
        assert!(
            r.operations > 0 && r.messages > 0,
            "seed {seed} did nothing: {r:?}"
        );
        operations += r.operations;
    }
    eprintln!(
        "simulation: {} seeds, {operations} operations, 0 divergences, 0 privacy violations, \
         0 forgeries accepted",
        seeds.len()
    );
}

/// Memory documents that attach one seal per message sent (its hash the message's first head)
/// and record the seals each received message came with.
struct Sealing {
    inner: MemoryDocuments,
    received: Vec<(DocId, usize)>,
}

fn fake_seal(hash: [u8; 32]) -> failup_wire::Seal {
    failup_wire::Seal {
        hash,
        kind: 0,
        key: [0; 32],
        sig: [0; 64],
    }
}

impl Documents for Sealing {
    fn inventory(&mut self, peer: DeviceId) -> Result<Vec<failup_wire::InventoryItem>, DocError> {
        self.inner.inventory(peer)
    }
    fn may_sync(&mut self, peer: DeviceId, doc: DocId) -> bool {
        self.inner.may_sync(peer, doc)
    }
    fn may_write(&mut self, peer: DeviceId, doc: DocId) -> bool {
        self.inner.may_write(peer, doc)
    }
    fn holds(&mut self, doc: DocId) -> bool {
        self.inner.holds(doc)
    }
    fn generate(
        &mut self,
        doc: DocId,
        state: &mut automerge::sync::State,
    ) -> Result<Option<(automerge::sync::Message, Vec<failup_wire::Seal>)>, DocError> {
        Ok(self.inner.generate(doc, state)?.map(|(m, _)| {
            let seals = m.heads.iter().map(|h| fake_seal(h.0)).collect();
            (m, seals)
        }))
    }
    fn receive(
        &mut self,
        doc: DocId,
        state: &mut automerge::sync::State,
        msg: automerge::sync::Message,
        seals: &mut Seals,
    ) -> Result<bool, DocError> {
        self.received.push((doc, seals.len()));
        self.inner.receive(doc, state, msg, seals)
    }
    fn saved(&mut self, doc: DocId) -> Result<Option<failup_wire::SealedDoc>, DocError> {
        Ok(self
            .inner
            .saved(doc)?
            .map(|(d, _)| (d, vec![fake_seal([7; 32]), fake_seal([8; 32])])))
    }
    fn receive_whole(&mut self, doc: DocId, data: &[u8], seals: &Seals) -> Result<bool, DocError> {
        self.received.push((doc, seals.len()));
        self.inner.receive_whole(doc, data, seals)
    }
}

#[test]
fn seals_travel_just_before_the_changes_they_prove_and_are_used_once() {
    let (ia, ib) = (device(1), device(2));
    let mut a_docs = Sealing {
        inner: MemoryDocuments::new(),
        received: Vec::new(),
    };
    a_docs.inner.insert(doc_id(1), new_doc(1, &["x"]));
    let mut b_docs = Sealing {
        inner: MemoryDocuments::new(),
        received: Vec::new(),
    };
    let (mut a, mut b) = (Engine::new(), Engine::new());
    let mut queue: std::collections::VecDeque<(DeviceId, DeviceId, Message)> = Default::default();
    let mut last_seals: Option<DocId> = None;
    let push = |from: DeviceId, effects: Vec<Effect>, q: &mut std::collections::VecDeque<_>| {
        for e in effects {
            if let Effect::Send(to, m) = e {
                q.push_back((from, to, m));
            }
        }
    };
    let e = a.handle(&mut a_docs, Input::Connected(ib));
    push(ia, e, &mut queue);
    let e = b.handle(&mut b_docs, Input::Connected(ia));
    push(ib, e, &mut queue);
    let mut steps = 0;
    while let Some((from, to, msg)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 200, "did not settle");
        match &msg {
            Message::Seals { doc, .. } => last_seals = Some(*doc),
            Message::Doc { doc, .. } => {
                assert_eq!(
                    last_seals.take(),
                    Some(*doc),
                    "a whole document without its seals"
                )
            }
            Message::Sync { doc, data } | Message::Request { doc, data } => {
                let carries = !automerge::sync::Message::decode(data)
                    .expect("sync message")
                    .changes
                    .is_empty();
                let sealed = last_seals.take() == Some(*doc);
                assert!(
                    sealed || !carries,
                    "changes from {from:?} without their seals"
                );
            }
            _ => {}
        }
        let e = if to == ia {
            a.handle(&mut a_docs, Input::Received(from, msg))
        } else {
            b.handle(&mut b_docs, Input::Received(from, msg))
        };
        push(to, e, &mut queue);
    }
    assert_eq!(b_docs.received.first(), Some(&(doc_id(1), 2)));
    assert_eq!(b_docs.inner.ids().collect::<Vec<_>>(), vec![doc_id(1)]);
}

#[test]
fn a_peer_that_sends_seals_past_the_limit_is_closed() {
    let ib = device(2);
    let mut docs = MemoryDocuments::new();
    let mut engine = Engine::new();
    engine.handle(&mut docs, Input::Connected(ib));
    let batch = |n: usize, base: u8| Message::Seals {
        doc: doc_id(1),
        seals: (0..n)
            .map(|i| {
                let mut h = [base; 32];
                h[..8].copy_from_slice(&(i as u64).to_le_bytes());
                fake_seal(h)
            })
            .collect(),
    };
    let e = engine.handle(
        &mut docs,
        Input::Received(ib, batch(failup_wire::MAX_SEALS, 1)),
    );
    assert!(!e.iter().any(|e| matches!(e, Effect::Close(..))));
    let e = engine.handle(
        &mut docs,
        Input::Received(ib, batch(failup_wire::MAX_SEALS, 2)),
    );
    assert!(
        !e.iter().any(|e| matches!(e, Effect::Close(..))),
        "exactly the limit is fine"
    );
    let e = engine.handle(&mut docs, Input::Received(ib, batch(1, 3)));
    assert!(e.iter().any(|e| matches!(e, Effect::Close(..))), "{e:?}");
}

#[test]
fn a_seal_waits_with_a_change_held_back_for_its_dependencies() {
    let ib = device(2);
    let base = new_doc(1, &["x"]);
    let mut ahead = base.clone();
    add_entry(&mut ahead, "y");
    add_entry(&mut ahead, "z");
    let heads = base.clone().get_heads();
    let newer = ahead.get_changes(&heads);
    let [middle, last] = newer.as_slice() else {
        panic!("two new changes")
    };
    let mut docs = Sealing {
        inner: MemoryDocuments::new(),
        received: Vec::new(),
    };
    docs.inner.insert(doc_id(1), base);
    let mut engine = Engine::new();
    engine.handle(&mut docs, Input::Connected(ib));
    // As a sender sends when its Bloom filter took `middle` for held: `last` alone first.
    let mut send = |c: &automerge::Change, docs: &mut Sealing| {
        let seals = vec![fake_seal(c.hash().0)];
        engine.handle(
            docs,
            Input::Received(
                ib,
                Message::Seals {
                    doc: doc_id(1),
                    seals,
                },
            ),
        );
        let msg = automerge::sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: automerge::sync::ChunkList::from(vec![c.raw_bytes().to_vec()]),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        };
        engine.handle(
            docs,
            Input::Received(
                ib,
                Message::Sync {
                    doc: doc_id(1),
                    data: msg.encode(),
                },
            ),
        )
    };
    send(last, &mut docs);
    let e = send(middle, &mut docs);
    assert!(!e.iter().any(|e| matches!(e, Effect::Close(..))), "{e:?}");
    assert_eq!(
        docs.received,
        vec![(doc_id(1), 1), (doc_id(1), 2)],
        "the held-back change's seal came along the second time"
    );
    let (saved, _) = docs.inner.saved(doc_id(1)).expect("saved").expect("held");
    let mut held = AutoCommit::load(&saved).expect("load");
    assert_eq!(held.get_heads(), ahead.get_heads());
}

/// A modified client that sends seals no change uses, each batch followed by an empty sync
/// message, cannot make them pile up: the seals left waiting still count, and past the limit
/// the connection closes.
#[test]
fn seals_left_waiting_by_sync_messages_still_count_against_the_limit() {
    let ib = device(2);
    let mut docs = MemoryDocuments::new();
    docs.insert(doc_id(1), new_doc(1, &["x"]));
    let mut engine = Engine::new();
    engine.handle(&mut docs, Input::Connected(ib));
    let empty = automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::from(Vec::<Vec<u8>>::new()),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode();
    let mut closed = false;
    for base in 1..=3u8 {
        let seals = (0..failup_wire::MAX_SEALS)
            .map(|i| {
                let mut h = [base; 32];
                h[..8].copy_from_slice(&(i as u64).to_le_bytes());
                fake_seal(h)
            })
            .collect();
        let mut e = engine.handle(
            &mut docs,
            Input::Received(
                ib,
                Message::Seals {
                    doc: doc_id(1),
                    seals,
                },
            ),
        );
        e.extend(engine.handle(
            &mut docs,
            Input::Received(
                ib,
                Message::Sync {
                    doc: doc_id(1),
                    data: empty.clone(),
                },
            ),
        ));
        closed = e.iter().any(|e| matches!(e, Effect::Close(..)));
        if closed {
            assert_eq!(base, 3, "closed only past the limit");
            break;
        }
    }
    assert!(closed, "unused seals piled up past the limit");
}
