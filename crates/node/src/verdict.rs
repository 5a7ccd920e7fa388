//! The circle as the membership rules read it (`failup_auth::membership`): who belongs, who is
//! revoked, which changes are void. Worked out from the circle's changes and the seals that
//! say who wrote them, never from the circle's content alone, which any member can write.

use std::collections::HashMap;
use std::sync::Arc;

use failup_auth::membership::{self, Author, Verdict};
use failup_store::Store;
use failup_wire::DocId;

use crate::circle;

/// The verdict on `circle` as `store` holds it; an empty one without a circle or if it does
/// not read.
pub(crate) fn of(store: &Store, circle: Option<DocId>) -> Verdict {
    let Some(id) = circle else {
        return Verdict::default();
    };
    let Ok(Some(mut doc)) = store.document(id) else {
        return Verdict::default();
    };
    let Ok(seals) = store.all_seals(id) else {
        return Verdict::default();
    };
    let authors: HashMap<[u8; 32], Author> = seals
        .iter()
        .map(|s| {
            let who = if s.kind == 0 {
                Author::Device(failup_auth::device_of(&s.key))
            } else {
                Author::Legacy
            };
            (s.hash, who)
        })
        .collect();
    let changes = circle::changes(&mut doc, |h| authors.get(h).copied());
    membership::evaluate(membership::founder_of(id.0, &changes), &changes)
}

/// A verdict with the circle heads it was worked out at.
type AtHeads = (Vec<[u8; 32]>, Arc<Verdict>);

/// The last verdict, kept while the circle's heads stay the same: reading every change of the
/// circle on each question would cost a load and a decode.
#[derive(Default)]
pub(crate) struct Cache {
    last: std::cell::RefCell<Option<AtHeads>>,
}

impl Cache {
    /// The verdict on `circle`, worked out again only if its heads moved.
    pub(crate) fn get(&self, store: &Store, circle: Option<DocId>) -> Arc<Verdict> {
        let heads: Vec<[u8; 32]> = circle
            .and_then(|c| store.heads(c).ok().flatten())
            .unwrap_or_default();
        if let Some((h, v)) = self.last.borrow().as_ref() {
            if *h == heads {
                return v.clone();
            }
        }
        let v = Arc::new(of(store, circle));
        *self.last.borrow_mut() = Some((heads, v.clone()));
        v
    }
}
