//! Who may write which document, asked by the store before it keeps any change from outside
//! (after the change's seal has shown who made it). A document is what its writers make it:
//! a partner's side is written only by that partner's devices, and every other document
//! (the circle, journal buckets, this person's sides) only by devices of this person's
//! circle. So a partner's device can author nothing of the journal, whatever a document it
//! writes looks like and whichever device relays it.
//!
//! The answer is worked out from the circle as stored, again right after the circle itself
//! changes, so documents that arrive after the circle in one batch are judged by it.

use std::collections::{BTreeSet, HashMap, HashSet};

use failup_auth::actor_of;
use failup_journal::space::Space;
use failup_store::{Gate, Store, Writers};
use failup_wire::{DeviceId, DocId};

use crate::circle;

/// The writers of every document, as far as this device knows.
#[derive(Debug, Default, Clone)]
pub(crate) struct Authors {
    /// This person's devices: this one, the circle's (revoked ones too: what they wrote before
    /// their revocation stays), and the devices met at a join before the circle arrived.
    own: BTreeSet<DeviceId>,
    /// Each partner's side, with the partner's devices that may write it.
    sides: HashMap<DocId, BTreeSet<DeviceId>>,
    /// The actor ids of every device above, which no vouch may stand for.
    actors: HashSet<[u8; 16]>,
    /// The circle, which any device with a good seal may write: the membership rules decide
    /// what its changes count for.
    circle: Option<DocId>,
    /// Both sides of every space: never journal buckets, whatever they hold.
    pub(crate) spaces: Vec<DocId>,
}

impl Authors {
    /// Works the writers out from the circle `circle` in `store`.
    pub(crate) fn compute(
        store: &Store,
        circle: Option<DocId>,
        me: DeviceId,
        bootstrap: impl IntoIterator<Item = DeviceId>,
    ) -> Authors {
        let mut own: BTreeSet<DeviceId> = bootstrap.into_iter().collect();
        own.insert(me);
        let mut sides: HashMap<DocId, BTreeSet<DeviceId>> = HashMap::new();
        let mut spaces = Vec::new();
        if let Some(doc) = circle.and_then(|c| store.document(c).ok().flatten()) {
            // Devices the membership rules count, revoked ones included: what they wrote
            // before their revocation stays, and the rules undo the rest.
            let v = crate::verdict::of(store, circle);
            own.extend(v.members.iter().chain(v.revoked.keys()).copied());
            for p in crate::sharing::counted_partners(&doc, &v) {
                spaces.extend([p.mine, p.theirs]);
                let mut writers: BTreeSet<DeviceId> = p.devices.keys().copied().collect();
                // The partner's other devices are vouched for in their side, by a device met
                // at pairing or one vouched for before it.
                if let Ok(Some(Ok(side))) = store.document(p.theirs).map(|d| d.map(Space::from_doc))
                {
                    writers.extend(
                        side.devices()
                            .unwrap_or_default()
                            .keys()
                            .filter_map(|k| circle::canonical_device(k)),
                    );
                }
                // A partner cannot make one of this person's devices theirs.
                writers.retain(|d| !own.contains(d));
                sides.entry(p.theirs).or_default().extend(writers);
            }
        }
        let actors = own
            .iter()
            .chain(sides.values().flatten())
            .map(actor_of)
            .collect();
        Authors {
            own,
            sides,
            actors,
            circle,
            spaces,
        }
    }
}

impl Gate for Authors {
    fn is_device_actor(&self, actor: &[u8]) -> bool {
        <[u8; 16]>::try_from(actor).is_ok_and(|a| self.actors.contains(&a))
    }

    fn names_writers(&self, doc: DocId) -> bool {
        self.sides.contains_key(&doc)
    }

    fn writers(&self, doc: DocId, incoming: &automerge::AutoCommit) -> Writers {
        if Some(doc) == self.circle {
            return Writers::Anyone;
        }
        let Some(side) = self.sides.get(&doc) else {
            return Writers::Only(self.own.clone());
        };
        let mut writers = side.clone();
        // The partner's devices as their side, with the new changes, lists them: a partner
        // vouches for its new devices there. Whoever relays a side to this device is the
        // partner's device or one of this person's, which took it from the partner's.
        if let Ok(space) = Space::from_doc(incoming.clone()) {
            writers.extend(
                space
                    .devices()
                    .unwrap_or_default()
                    .keys()
                    .filter_map(|k| circle::canonical_device(k))
                    .filter(|d| !self.own.contains(d)),
            );
        }
        Writers::Only(writers)
    }
}
