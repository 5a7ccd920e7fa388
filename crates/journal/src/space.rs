//! One person's side of a space shared with an accountability partner: a document only that
//! person's devices write and the partner's devices read. It holds *copies* of the entries the
//! person chose to share, cut down to the fields chosen, the comments the person wrote (under
//! their own shared entries or the partner's), and the person's devices, which the partner's
//! devices trust for this space because the person vouches for them here. The space is the
//! pair of both sides.
//!
//! Privacy rests on this being a separate document with its own history: a shared entry is
//! written here from the owner's private entry by [`SharedEntry::project`], field by field, so
//! no byte of a field the owner did not choose, and no past version of the private entry, is
//! ever part of this document. Unsharing deletes the copy here; what the partner already
//! received stays with them.
//!
//! Document shape, version 1:
//!
//! ```text
//! { "failup": "space/1",                        -- required, marks the layout
//!   "id": Bytes,                                -- the document's own id
//!   "entries": { "<ENTRY ULID>": {
//!       "shared_at": Timestamp, "updated": Timestamp, "day": "YYYY-MM-DD",   -- required
//!       "fields": Str (the shared fields, comma-joined),                     -- required
//!       "text": Str, "scale": Str, "area": Str, "feeling": Uint, "tags": Str (comma-joined),
//!       "lesson": Str, "muscle": Str, "use": Str, "next": Str,
//!       "iterations": Uint (how many), "closed_at": Timestamp } },
//!   "comments": { "<COMMENT ULID>": {
//!       "entry": "<ENTRY ULID>", "at": Timestamp, "text": Str } },
//!   "devices": { "<device id>": Str (addresses, comma-joined) } }
//! ```
//!
//! Every field of a shared entry is a whole scalar rewritten from the private entry, so the
//! person's devices converge on the same copy; comments are keyed by their own ULID, so comments
//! written at once on two devices are all kept.

use std::collections::BTreeSet;
use std::str::FromStr;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::JournalError;
use crate::entry::{Entry, EntryId, IterationId, MAX_TEXT_BYTES, Scale};
use crate::text::{Lines, check_plain};

/// The value of the root `failup` key for a shared space.
pub const SPACE_MARK: &str = "space/1";

/// A field of an entry that can be shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// What happened: the story.
    Text,
    /// Micro or macro.
    Scale,
    /// Area of life.
    Area,
    /// Tags.
    Tags,
    /// How hard it hit.
    Feeling,
    /// The lesson.
    Lesson,
    /// The muscle it builds.
    Muscle,
    /// How to use it.
    Use,
    /// The next step.
    Next,
    /// How many things were tried, and whether the loop is closed.
    Progress,
}

impl Field {
    /// Every field, in the order they are listed to people.
    pub const ALL: [Field; 10] = [
        Field::Text,
        Field::Scale,
        Field::Area,
        Field::Tags,
        Field::Feeling,
        Field::Lesson,
        Field::Muscle,
        Field::Use,
        Field::Next,
        Field::Progress,
    ];

    /// The name people type in `--only`.
    pub fn name(self) -> &'static str {
        match self {
            Field::Text => "text",
            Field::Scale => "scale",
            Field::Area => "area",
            Field::Tags => "tags",
            Field::Feeling => "feeling",
            Field::Lesson => "lesson",
            Field::Muscle => "muscle",
            Field::Use => "use",
            Field::Next => "next",
            Field::Progress => "progress",
        }
    }
}

impl FromStr for Field {
    type Err = JournalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let want = s.trim().to_ascii_lowercase();
        Field::ALL
            .into_iter()
            .find(|f| f.name() == want || (want == "story" && *f == Field::Text))
            .ok_or_else(|| {
                JournalError::Invalid(format!(
                    "{s:?} is not a field that can be shared (one of: {})",
                    Field::ALL.map(Field::name).join(", ")
                ))
            })
    }
}

/// Parses `lesson,next` into a set of fields; an empty list is refused.
pub fn parse_fields(list: &str) -> Result<BTreeSet<Field>, JournalError> {
    let fields = list
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Field::from_str)
        .collect::<Result<BTreeSet<_>, _>>()?;
    if fields.is_empty() {
        return Err(JournalError::Invalid(
            "name at least one field to share".into(),
        ));
    }
    Ok(fields)
}

/// The copy of an entry that lives in a shared space: only the chosen fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedEntry {
    /// The entry's id (the same as in the owner's journal).
    pub id: EntryId,
    /// When it was first shared.
    #[serde(with = "crate::serde_compact::timestamp")]
    pub shared_at: Timestamp,
    /// When the owner last changed it.
    #[serde(with = "crate::serde_compact::timestamp")]
    pub updated: Timestamp,
    /// The day the setback happened: always shared, it orders the feed.
    #[serde(with = "crate::serde_compact::date")]
    pub day: Date,
    /// Which fields are shared, so an edit of the private entry is copied the same way.
    pub fields: BTreeSet<Field>,
    /// What happened.
    pub text: Option<String>,
    /// Micro or macro.
    pub scale: Option<Scale>,
    /// Area of life.
    pub area: Option<String>,
    /// Tags.
    pub tags: Option<BTreeSet<String>>,
    /// How hard it hit.
    pub feeling: Option<u8>,
    /// The lesson.
    pub lesson: Option<String>,
    /// The muscle it builds.
    pub muscle: Option<String>,
    /// How to use it.
    pub use_it: Option<String>,
    /// The next step.
    pub next: Option<String>,
    /// How many things were tried.
    pub iterations: Option<u32>,
    /// When the loop was closed.
    #[serde(with = "crate::serde_compact::opt_timestamp")]
    pub closed_at: Option<Timestamp>,
}

impl SharedEntry {
    /// The copy of `entry` that shows only `fields`. This is the one place where a private
    /// entry's content is chosen for a partner: a field not in `fields` is not read.
    pub fn project(entry: &Entry, fields: &BTreeSet<Field>, shared_at: Timestamp) -> SharedEntry {
        let has = |f| fields.contains(&f);
        let progress = has(Field::Progress);
        SharedEntry {
            id: entry.id,
            shared_at,
            updated: entry.updated,
            day: entry.day,
            fields: fields.clone(),
            text: has(Field::Text).then(|| entry.text.clone()),
            scale: has(Field::Scale).then_some(entry.scale),
            area: if has(Field::Area) {
                entry.area.clone()
            } else {
                None
            },
            tags: has(Field::Tags).then(|| entry.tags.clone()),
            feeling: if has(Field::Feeling) {
                entry.feeling
            } else {
                None
            },
            lesson: if has(Field::Lesson) {
                entry.lesson.clone()
            } else {
                None
            },
            muscle: if has(Field::Muscle) {
                entry.muscle.clone()
            } else {
                None
            },
            use_it: if has(Field::Use) {
                entry.use_it.clone()
            } else {
                None
            },
            next: if has(Field::Next) {
                entry.next.clone()
            } else {
                None
            },
            iterations: progress.then(|| u32::try_from(entry.iterations.len()).unwrap_or(u32::MAX)),
            closed_at: if progress { entry.closed_at } else { None },
        }
    }
}

/// A comment under a shared entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// The comment's own id (a ULID, so comments sort by time).
    pub id: IterationId,
    /// The shared entry it is about.
    pub entry: EntryId,
    /// When.
    #[serde(with = "crate::serde_compact::timestamp")]
    pub at: Timestamp,
    /// What they wrote.
    pub text: String,
}

/// One shared space document.
pub struct Space {
    doc: AutoCommit,
    entries: ObjId,
    comments: ObjId,
}

fn am(e: automerge::AutomergeError) -> JournalError {
    JournalError::Corrupt(e.to_string())
}

fn corrupt(what: &str) -> JournalError {
    JournalError::Corrupt(format!("shared space: {what}"))
}

fn map_at(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<Option<ObjId>, JournalError> {
    match doc.get(obj, key).map_err(am)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(Some(id)),
        Some(_) => Err(corrupt(&format!("{key} is not a map"))),
        None => Ok(None),
    }
}

fn scalar(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<Option<ScalarValue>, JournalError> {
    match doc.get(obj, key).map_err(am)? {
        Some((Value::Scalar(v), _)) => Ok(Some(v.into_owned())),
        Some(_) => Err(corrupt(&format!("{key} is not a value"))),
        None => Ok(None),
    }
}

fn string(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<Option<String>, JournalError> {
    match scalar(doc, obj, key)? {
        Some(ScalarValue::Str(s)) => Ok(Some(s.to_string())),
        Some(_) => Err(corrupt(&format!("{key} is not text"))),
        None => Ok(None),
    }
}

fn time(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<Option<Timestamp>, JournalError> {
    match scalar(doc, obj, key)? {
        Some(ScalarValue::Timestamp(ms)) => Timestamp::from_millisecond(ms)
            .map(Some)
            .map_err(|_| corrupt(&format!("{key} is out of range"))),
        Some(_) => Err(corrupt(&format!("{key} is not a time"))),
        None => Ok(None),
    }
}

fn uint(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<Option<u64>, JournalError> {
    match scalar(doc, obj, key)? {
        Some(ScalarValue::Uint(n)) => Ok(Some(n)),
        Some(ScalarValue::Int(n)) if n >= 0 => Ok(Some(n as u64)),
        Some(_) => Err(corrupt(&format!("{key} is not a count"))),
        None => Ok(None),
    }
}

fn bounded(text: &str, max: usize, what: &str) -> Result<(), JournalError> {
    if text.len() > max {
        return Err(JournalError::Invalid(format!(
            "{what} is longer than {max} bytes"
        )));
    }
    Ok(())
}

impl Space {
    /// Starts an empty space written by `actor`, whose document id is `id`.
    pub fn create(actor: &[u8], id: [u8; 16]) -> Result<Space, JournalError> {
        let mut doc = AutoCommit::new().with_actor(actor.into());
        doc.put(ROOT, "failup", SPACE_MARK).map_err(am)?;
        doc.put(ROOT, "id", ScalarValue::Bytes(id.to_vec()))
            .map_err(am)?;
        let entries = doc.put_object(ROOT, "entries", ObjType::Map).map_err(am)?;
        let comments = doc.put_object(ROOT, "comments", ObjType::Map).map_err(am)?;
        doc.commit();
        Ok(Space {
            doc,
            entries,
            comments,
        })
    }

    /// Wraps a loaded document, checking that it is a shared space.
    pub fn from_doc(doc: AutoCommit) -> Result<Space, JournalError> {
        if string(&doc, &ROOT, "failup")?.as_deref() != Some(SPACE_MARK) {
            return Err(corrupt("not a shared space document"));
        }
        let entries = map_at(&doc, &ROOT, "entries")?.ok_or_else(|| corrupt("no entries"))?;
        let comments = map_at(&doc, &ROOT, "comments")?.ok_or_else(|| corrupt("no comments"))?;
        Ok(Space {
            doc,
            entries,
            comments,
        })
    }

    /// The Automerge document, for saving and syncing.
    pub fn into_doc(self) -> AutoCommit {
        self.doc
    }

    /// Puts (or rewrites) the owner's copy of an entry. Fields the copy leaves out are removed,
    /// so narrowing what is shared takes effect for the partner too.
    pub fn put(&mut self, shared: &SharedEntry) -> Result<(), JournalError> {
        let key = shared.id.to_string();
        let obj = match map_at(&self.doc, &self.entries, &key)? {
            Some(o) => o,
            None => self
                .doc
                .put_object(&self.entries, key.as_str(), ObjType::Map)
                .map_err(am)?,
        };
        let d = &mut self.doc;
        let set_time = |d: &mut AutoCommit, k: &str, t: Option<Timestamp>| match t {
            Some(t) => d.put(&obj, k, ScalarValue::Timestamp(t.as_millisecond())),
            None => d.delete(&obj, k),
        };
        let set_str = |d: &mut AutoCommit, k: &str, v: Option<&str>| match v {
            Some(v) => d.put(&obj, k, v),
            None => d.delete(&obj, k),
        };
        set_time(d, "shared_at", Some(shared.shared_at)).map_err(am)?;
        set_time(d, "updated", Some(shared.updated)).map_err(am)?;
        set_str(d, "day", Some(&shared.day.to_string())).map_err(am)?;
        let fields: Vec<&str> = shared.fields.iter().map(|f| f.name()).collect();
        set_str(d, "fields", Some(&fields.join(","))).map_err(am)?;
        set_str(d, "text", shared.text.as_deref()).map_err(am)?;
        set_str(d, "scale", shared.scale.map(|s| s.as_str())).map_err(am)?;
        set_str(d, "area", shared.area.as_deref()).map_err(am)?;
        let tags = shared
            .tags
            .as_ref()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(","));
        set_str(d, "tags", tags.as_deref()).map_err(am)?;
        match shared.feeling {
            Some(f) => d.put(&obj, "feeling", ScalarValue::Uint(u64::from(f))),
            None => d.delete(&obj, "feeling"),
        }
        .map_err(am)?;
        set_str(d, "lesson", shared.lesson.as_deref()).map_err(am)?;
        set_str(d, "muscle", shared.muscle.as_deref()).map_err(am)?;
        set_str(d, "use", shared.use_it.as_deref()).map_err(am)?;
        set_str(d, "next", shared.next.as_deref()).map_err(am)?;
        match shared.iterations {
            Some(n) => d.put(&obj, "iterations", ScalarValue::Uint(u64::from(n))),
            None => d.delete(&obj, "iterations"),
        }
        .map_err(am)?;
        set_time(d, "closed_at", shared.closed_at).map_err(am)?;
        d.commit();
        Ok(())
    }

    /// Records this person's devices (id and addresses), replacing the list; returns whether
    /// anything changed.
    pub fn set_devices(
        &mut self,
        devices: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<bool, JournalError> {
        if &self.devices()? == devices {
            return Ok(false);
        }
        let obj = match map_at(&self.doc, &ROOT, "devices")? {
            Some(o) => o,
            None => self
                .doc
                .put_object(ROOT, "devices", ObjType::Map)
                .map_err(am)?,
        };
        let old: Vec<String> = self.doc.keys(&obj).collect();
        for key in old.iter().filter(|k| !devices.contains_key(*k)) {
            self.doc.delete(&obj, key.as_str()).map_err(am)?;
        }
        for (id, addrs) in devices {
            self.doc
                .put(&obj, id.as_str(), addrs.join(","))
                .map_err(am)?;
        }
        self.doc.commit();
        Ok(true)
    }

    /// This person's devices, as they vouch for them, with their addresses.
    pub fn devices(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>, JournalError> {
        let Some(obj) = map_at(&self.doc, &ROOT, "devices")? else {
            return Ok(Default::default());
        };
        let mut out = std::collections::BTreeMap::new();
        for key in self.doc.keys(&obj) {
            let addrs = string(&self.doc, &obj, &key)?.unwrap_or_default();
            out.insert(
                key,
                addrs
                    .split(',')
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        Ok(out)
    }

    /// Takes an entry out of the space (its comments go with it). Returns whether it was there.
    pub fn remove(&mut self, id: EntryId) -> Result<bool, JournalError> {
        let key = id.to_string();
        if map_at(&self.doc, &self.entries, &key)?.is_none() {
            return Ok(false);
        }
        self.doc.delete(&self.entries, key.as_str()).map_err(am)?;
        for c in self.comments()?.into_iter().filter(|c| c.entry == id) {
            self.doc
                .delete(&self.comments, c.id.to_string().as_str())
                .map_err(am)?;
        }
        self.doc.commit();
        Ok(true)
    }

    /// Adds a comment under a shared entry (this side's or the partner's: the caller checks
    /// that the entry is shared in the space).
    pub fn comment(&mut self, comment: &Comment) -> Result<(), JournalError> {
        if comment.text.trim().is_empty() {
            return Err(JournalError::Invalid("a comment needs some text".into()));
        }
        bounded(&comment.text, MAX_TEXT_BYTES, "the comment")?;
        // Written here, by this person: held to the rule for typed text. A partner's comments
        // are read by [`Space::comments`] as they are, and escaped when shown.
        check_plain("the comment", &comment.text, Lines::Many)?;
        let obj = self
            .doc
            .put_object(
                &self.comments,
                comment.id.to_string().as_str(),
                ObjType::Map,
            )
            .map_err(am)?;
        let d = &mut self.doc;
        d.put(&obj, "entry", comment.entry.to_string())
            .map_err(am)?;
        d.put(
            &obj,
            "at",
            ScalarValue::Timestamp(comment.at.as_millisecond()),
        )
        .map_err(am)?;
        d.put(&obj, "text", comment.text.as_str()).map_err(am)?;
        d.commit();
        Ok(())
    }

    /// One shared entry, if it is in the space.
    pub fn entry(&self, id: EntryId) -> Result<Option<SharedEntry>, JournalError> {
        match map_at(&self.doc, &self.entries, &id.to_string())? {
            Some(obj) => self.read_entry(id, &obj).map(Some),
            None => Ok(None),
        }
    }

    /// Every shared entry, newest day first.
    pub fn entries(&self) -> Result<Vec<SharedEntry>, JournalError> {
        let mut out = Vec::new();
        for item in self.doc.map_range(&self.entries, ..) {
            let id: EntryId = item.key.parse()?;
            let Some(obj) = map_at(&self.doc, &self.entries, &item.key)? else {
                return Err(corrupt("a shared entry is not a map"));
            };
            out.push(self.read_entry(id, &obj)?);
        }
        out.sort_by(|a, b| b.day.cmp(&a.day).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Every comment, oldest first.
    pub fn comments(&self) -> Result<Vec<Comment>, JournalError> {
        let mut out = Vec::new();
        for item in self.doc.map_range(&self.comments, ..) {
            let id: IterationId = item.key.parse()?;
            let Some(obj) = map_at(&self.doc, &self.comments, &item.key)? else {
                return Err(corrupt("a comment is not a map"));
            };
            let need = |v: Option<String>, k: &str| {
                v.ok_or_else(|| corrupt(&format!("a comment has no {k}")))
            };
            out.push(Comment {
                id,
                entry: need(string(&self.doc, &obj, "entry")?, "entry")?.parse()?,
                at: time(&self.doc, &obj, "at")?.ok_or_else(|| corrupt("a comment has no time"))?,
                text: need(string(&self.doc, &obj, "text")?, "text")?,
            });
        }
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    fn read_entry(&self, id: EntryId, obj: &ObjId) -> Result<SharedEntry, JournalError> {
        let d = &self.doc;
        let day = string(d, obj, "day")?.ok_or_else(|| corrupt("a shared entry has no day"))?;
        Ok(SharedEntry {
            id,
            shared_at: time(d, obj, "shared_at")?
                .ok_or_else(|| corrupt("a shared entry has no sharing time"))?,
            updated: time(d, obj, "updated")?
                .ok_or_else(|| corrupt("a shared entry has no update time"))?,
            day: day
                .parse()
                .map_err(|_| corrupt("a shared entry's day is not a date"))?,
            fields: parse_fields(&string(d, obj, "fields")?.unwrap_or_default())
                .map_err(|_| corrupt("a shared entry's fields do not read"))?,
            text: string(d, obj, "text")?,
            scale: string(d, obj, "scale")?.map(|s| s.parse()).transpose()?,
            area: string(d, obj, "area")?,
            tags: string(d, obj, "tags")?.map(|t| {
                t.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            feeling: uint(d, obj, "feeling")?.map(|f| u8::try_from(f).unwrap_or(u8::MAX)),
            lesson: string(d, obj, "lesson")?,
            muscle: string(d, obj, "muscle")?,
            use_it: string(d, obj, "use")?,
            next: string(d, obj, "next")?,
            iterations: uint(d, obj, "iterations")?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            closed_at: time(d, obj, "closed_at")?,
        })
    }
}

#[cfg(test)]
mod tests;
