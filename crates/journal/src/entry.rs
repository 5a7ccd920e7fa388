//! The entry model: what one logged setback holds, how its status is derived, and the rules a
//! value must follow before it is written anywhere.
//!
//! Validation lives here, next to the types, so that every path into a journal (the CLI, an
//! import file, and later a peer) is held to the same limits.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::JournalError;
use crate::serde_compact;
use crate::text::{Lines, check_plain};

/// Largest accepted free-text field (the story, a reframe answer, a next step, an iteration), in
/// bytes. A page of writing is a few KiB; this leaves room for long entries while keeping one
/// entry from swelling a shared document.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Largest accepted tag or area name, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;
/// Most tags one entry may carry.
pub const MAX_TAGS: usize = 32;
/// Most iterations one entry may carry.
pub const MAX_ITERATIONS: usize = 1024;
/// Earliest year a day may have.
pub const MIN_YEAR: i16 = 1;
/// Latest year a day may have.
pub const MAX_YEAR: i16 = 9999;
/// Lowest accepted feeling (how hard the setback hit).
pub const MIN_FEELING: u8 = 1;
/// Highest accepted feeling.
pub const MAX_FEELING: u8 = 5;

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(ulid::Ulid);

        impl $name {
            /// Builds an id from its time part (milliseconds since the Unix epoch) and 80 random
            /// bits, both supplied by the caller so this crate never reads a clock or an RNG.
            pub fn from_parts(unix_ms: u64, random: u128) -> Self {
                Self(ulid::Ulid::from_parts(unix_ms, random))
            }

            /// The id as one 128-bit number; its order is the order of creation.
            pub fn as_u128(self) -> u128 {
                self.0.0
            }

            /// The id from its 128-bit number.
            pub fn from_u128(value: u128) -> Self {
                Self(ulid::Ulid(value))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = JournalError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bad = || JournalError::BadId { what: $what, value: s.chars().take(40).collect() };
                // 26 base32 characters hold 130 bits; a ULID uses 128, so its first character is
                // 0 to 7. The ulid crate drops the two extra bits instead of refusing them, which
                // would make "8..." read as "0...".
                if !s.starts_with(|c: char| ('0'..='7').contains(&c)) {
                    return Err(bad());
                }
                ulid::Ulid::from_string(&s.to_ascii_uppercase()).map(Self).map_err(|_| bad())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    s.serialize_u128(self.as_u128())
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    u128::deserialize(d).map(Self::from_u128)
                }
            }
        }
    };
}

ulid_id!(
    /// Identifies an entry everywhere: a ULID, so ids sort by creation time and two devices
    /// never mint the same one.
    EntryId,
    "entry id"
);
ulid_id!(
    /// Identifies one iteration within an entry, so that iterations added concurrently on two
    /// devices are both kept.
    IterationId,
    "iteration id"
);

/// How big a setback was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// An everyday stumble.
    #[default]
    Micro,
    /// A setback that shakes a plan or a season.
    Macro,
}

impl Scale {
    /// The name used in files, documents and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Micro => "micro",
            Scale::Macro => "macro",
        }
    }
}

impl FromStr for Scale {
    type Err = JournalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "micro" => Ok(Scale::Micro),
            "macro" => Ok(Scale::Macro),
            _ => Err(JournalError::Invalid(format!(
                "scale must be micro or macro, not {s:?}"
            ))),
        }
    }
}

/// How a next step went compared with before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It went better.
    Better,
    /// No change.
    Same,
    /// It went worse.
    Worse,
}

impl Outcome {
    /// The name used in files, documents and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Better => "better",
            Outcome::Same => "same",
            Outcome::Worse => "worse",
        }
    }
}

impl FromStr for Outcome {
    type Err = JournalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "better" => Ok(Outcome::Better),
            "same" => Ok(Outcome::Same),
            "worse" => Ok(Outcome::Worse),
            _ => Err(JournalError::Invalid(format!(
                "outcome must be better, same or worse, not {s:?}"
            ))),
        }
    }
}

/// Where an entry stands in the failing-up loop. Derived from the entry, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Still needs a lesson or a first attempt at a next step.
    Open,
    /// Reflected on and tried, but the loop is not closed yet.
    Iterating,
    /// The loop is closed: what was tried worked.
    Closed,
}

impl Status {
    /// The name shown to people and written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Iterating => "iterating",
            Status::Closed => "closed",
        }
    }
}

/// One attempt at a next step, and how it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iteration {
    /// Unique within the entry.
    pub id: IterationId,
    /// When it was recorded.
    #[serde(with = "serde_compact::timestamp")]
    pub at: Timestamp,
    /// What was tried.
    pub tried: String,
    /// How it went, if known.
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

/// One logged setback with its reframe and the loop that follows it.
///
/// The serde form is the export schema (docs/export-format.md) in JSON and the control
/// protocol's form in postcard; fields are never skipped, because binary formats are
/// positional. The store keeps entries in a record type of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's id.
    pub id: EntryId,
    /// When it was logged.
    #[serde(with = "serde_compact::timestamp")]
    pub created: Timestamp,
    /// When any field last changed.
    #[serde(with = "serde_compact::timestamp")]
    pub updated: Timestamp,
    /// The day the setback happened (the person's local calendar day).
    #[serde(with = "serde_compact::date")]
    pub day: Date,
    /// What happened.
    pub text: String,
    /// Micro or macro.
    #[serde(default)]
    pub scale: Scale,
    /// Area of life, such as work or health.
    #[serde(default)]
    pub area: Option<String>,
    /// Free tags, lowercase, kept sorted.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// How hard it hit, 1 to 5.
    #[serde(default)]
    pub feeling: Option<u8>,
    /// "What did this teach me about my next level?"
    #[serde(default)]
    pub lesson: Option<String>,
    /// "What muscle is this moment building in me?"
    #[serde(default)]
    pub muscle: Option<String>,
    /// "How can I use this instead of resenting it?"
    #[serde(default, rename = "use")]
    pub use_it: Option<String>,
    /// The next step to try.
    #[serde(default)]
    pub next: Option<String>,
    /// What was tried, oldest first.
    #[serde(default)]
    pub iterations: Vec<Iteration>,
    /// When the loop was closed; `None` while it is not.
    #[serde(default, with = "serde_compact::opt_timestamp")]
    pub closed_at: Option<Timestamp>,
}

/// The three reframe questions, each with the field that holds its answer.
pub const REFRAME_QUESTIONS: [(ReframeField, &str); 3] = [
    (
        ReframeField::Lesson,
        "What did this teach me about my next level?",
    ),
    (
        ReframeField::Muscle,
        "What muscle is this moment building in me?",
    ),
    (
        ReframeField::Use,
        "How can I use this instead of resenting it?",
    ),
];

/// Names a reframe answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReframeField {
    /// The lesson.
    Lesson,
    /// The muscle being built.
    Muscle,
    /// How to use it.
    Use,
}

impl Entry {
    /// Where the entry stands: closed once closed; open while it has no lesson or no iteration;
    /// iterating in between.
    pub fn status(&self) -> Status {
        if self.closed_at.is_some() {
            Status::Closed
        } else if self.lesson.is_none() || self.iterations.is_empty() {
            Status::Open
        } else {
            Status::Iterating
        }
    }

    /// Whether any reframe question has an answer.
    pub fn is_reflected(&self) -> bool {
        self.lesson.is_some() || self.muscle.is_some() || self.use_it.is_some()
    }

    /// The answer to one reframe question.
    pub fn reframe(&self, field: ReframeField) -> Option<&str> {
        match field {
            ReframeField::Lesson => self.lesson.as_deref(),
            ReframeField::Muscle => self.muscle.as_deref(),
            ReframeField::Use => self.use_it.as_deref(),
        }
    }

    /// The first line of the text, for one-line listings.
    pub fn title(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }

    /// Every free-text field, for searching.
    pub fn text_fields(&self) -> impl Iterator<Item = &str> {
        [
            Some(self.text.as_str()),
            self.area.as_deref(),
            self.lesson.as_deref(),
            self.muscle.as_deref(),
            self.use_it.as_deref(),
            self.next.as_deref(),
        ]
        .into_iter()
        .flatten()
        .chain(self.tags.iter().map(String::as_str))
        .chain(self.iterations.iter().map(|i| i.tried.as_str()))
    }

    /// Checks every field against the journal's rules; used for entries that arrive whole, as
    /// from an import file.
    pub fn validate(&self) -> Result<(), JournalError> {
        check_day(self.day)?;
        check_text("text", &self.text)?;
        if let Some(area) = &self.area {
            check_label("area", area)?;
        }
        if self.tags.len() > MAX_TAGS {
            return Err(JournalError::Invalid(format!(
                "an entry may carry at most {MAX_TAGS} tags"
            )));
        }
        for tag in &self.tags {
            if normalize_tag(tag)? != *tag {
                return Err(JournalError::Invalid(format!(
                    "tag {tag:?} must be lowercase and trimmed"
                )));
            }
        }
        if let Some(feeling) = self.feeling {
            check_feeling(feeling)?;
        }
        for (name, value) in [
            ("lesson", &self.lesson),
            ("muscle", &self.muscle),
            ("use", &self.use_it),
            ("next", &self.next),
        ] {
            if let Some(value) = value {
                check_text(name, value)?;
            }
        }
        if self.iterations.len() > MAX_ITERATIONS {
            return Err(JournalError::Invalid(format!(
                "an entry may carry at most {MAX_ITERATIONS} iterations"
            )));
        }
        let mut seen = BTreeSet::new();
        for iteration in &self.iterations {
            check_text("iteration", &iteration.tried)?;
            if !seen.insert(iteration.id) {
                return Err(JournalError::Invalid(format!(
                    "iteration {} appears twice",
                    iteration.id
                )));
            }
        }
        Ok(())
    }
}

/// Checks that a day lies in the years a journal accepts.
pub fn check_day(day: Date) -> Result<(), JournalError> {
    if (MIN_YEAR..=MAX_YEAR).contains(&day.year()) {
        Ok(())
    } else {
        Err(JournalError::Invalid(format!(
            "day {day} is outside the years {MIN_YEAR} to {MAX_YEAR}"
        )))
    }
}

/// What a person gives when logging a setback; everything else is minted by the journal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEntry {
    /// What happened.
    pub text: String,
    /// Micro or macro.
    pub scale: Scale,
    /// The day it happened.
    pub day: Option<Date>,
    /// Area of life.
    pub area: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// How hard it hit.
    pub feeling: Option<u8>,
    /// Reframe answer: the lesson.
    pub lesson: Option<String>,
    /// Reframe answer: the muscle.
    pub muscle: Option<String>,
    /// Reframe answer: how to use it.
    pub use_it: Option<String>,
    /// The next step.
    pub next: Option<String>,
}

impl NewEntry {
    /// Validates and normalizes the input into an entry with the given id, time and default day.
    pub fn into_entry(
        self,
        id: EntryId,
        now: Timestamp,
        today: Date,
    ) -> Result<Entry, JournalError> {
        let mut tags = BTreeSet::new();
        for tag in &self.tags {
            tags.insert(normalize_tag(tag)?);
        }
        let entry = Entry {
            id,
            created: now,
            updated: now,
            day: self.day.unwrap_or(today),
            text: normalize_text("text", &self.text)?,
            scale: self.scale,
            area: optional_label("area", self.area)?,
            tags,
            feeling: self.feeling,
            lesson: optional_text("lesson", self.lesson)?,
            muscle: optional_text("muscle", self.muscle)?,
            use_it: optional_text("use", self.use_it)?,
            next: optional_text("next", self.next)?,
            iterations: Vec::new(),
            closed_at: None,
        };
        entry.validate()?;
        Ok(entry)
    }
}

/// A change to an existing entry. `None` leaves a field alone; for clearable fields,
/// `Some(None)` clears it. (Serialized only in binary formats, which keep the two apart.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPatch {
    /// New text.
    pub text: Option<String>,
    /// New scale.
    pub scale: Option<Scale>,
    /// New day.
    pub day: Option<Date>,
    /// New or cleared area.
    pub area: Option<Option<String>>,
    /// Tags to add.
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
    /// New or cleared feeling.
    pub feeling: Option<Option<u8>>,
    /// New or cleared lesson.
    pub lesson: Option<Option<String>>,
    /// New or cleared muscle.
    pub muscle: Option<Option<String>>,
    /// New or cleared use.
    pub use_it: Option<Option<String>>,
    /// New or cleared next step.
    pub next: Option<Option<String>>,
    /// Close (`Some(Some(t))`) or reopen (`Some(None)`).
    pub closed_at: Option<Option<Timestamp>>,
    /// An iteration to append.
    pub iteration: Option<Iteration>,
}

impl EntryPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == EntryPatch::default()
    }

    /// Validates and normalizes the patch: trims text, lowercases tags, turns empty optional
    /// text into a clear.
    pub fn normalized(self) -> Result<EntryPatch, JournalError> {
        let norm_opt = |name, v: Option<Option<String>>| -> Result<_, JournalError> {
            v.map(|v| optional_text(name, v)).transpose()
        };
        let iteration = match self.iteration {
            Some(mut it) => {
                it.tried = normalize_text("iteration", &it.tried)?;
                Some(it)
            }
            None => None,
        };
        if let Some(Some(feeling)) = self.feeling {
            check_feeling(feeling)?;
        }
        if let Some(day) = self.day {
            check_day(day)?;
        }
        let add_tags: Vec<String> = self
            .add_tags
            .iter()
            .map(|t| normalize_tag(t))
            .collect::<Result<_, _>>()?;
        let remove_tags: Vec<String> = self
            .remove_tags
            .iter()
            .map(|t| normalize_tag(t))
            .collect::<Result<_, _>>()?;
        if let Some(both) = add_tags.iter().find(|t| remove_tags.contains(t)) {
            return Err(JournalError::Invalid(format!(
                "tag {both:?} is both added and removed"
            )));
        }
        Ok(EntryPatch {
            text: self.text.map(|t| normalize_text("text", &t)).transpose()?,
            scale: self.scale,
            day: self.day,
            area: self.area.map(|a| optional_label("area", a)).transpose()?,
            add_tags,
            remove_tags,
            feeling: self.feeling,
            lesson: norm_opt("lesson", self.lesson)?,
            muscle: norm_opt("muscle", self.muscle)?,
            use_it: norm_opt("use", self.use_it)?,
            next: norm_opt("next", self.next)?,
            closed_at: self.closed_at,
            iteration,
        })
    }
}

/// Checks a feeling value.
pub fn check_feeling(feeling: u8) -> Result<(), JournalError> {
    if (MIN_FEELING..=MAX_FEELING).contains(&feeling) {
        Ok(())
    } else {
        Err(JournalError::Invalid(format!(
            "feeling must be between {MIN_FEELING} and {MAX_FEELING}, not {feeling}"
        )))
    }
}

/// Lowercases and trims a tag, refusing empty ones, whitespace inside, commas and long ones.
pub fn normalize_tag(tag: &str) -> Result<String, JournalError> {
    let tag = tag.trim().trim_start_matches('#').to_lowercase();
    check_label("tag", &tag)?;
    if tag.chars().any(|c| c.is_whitespace() || c == ',') {
        return Err(JournalError::Invalid(format!(
            "tag {tag:?} may not contain spaces or commas"
        )));
    }
    Ok(tag)
}

fn check_label(name: &str, value: &str) -> Result<(), JournalError> {
    if value.trim().is_empty() {
        return Err(JournalError::Invalid(format!("{name} may not be empty")));
    }
    if value.len() > MAX_LABEL_BYTES {
        return Err(JournalError::Invalid(format!(
            "{name} is longer than {MAX_LABEL_BYTES} bytes"
        )));
    }
    // One line: a newline or a tab is refused along with everything that drives a terminal.
    check_plain(name, value, Lines::One)
}

fn check_text(name: &str, value: &str) -> Result<(), JournalError> {
    if value.trim().is_empty() {
        return Err(JournalError::Invalid(format!("{name} may not be empty")));
    }
    if value.len() > MAX_TEXT_BYTES {
        return Err(JournalError::Invalid(format!(
            "{name} is longer than {MAX_TEXT_BYTES} bytes"
        )));
    }
    check_plain(name, value, Lines::Many)
}

fn normalize_text(name: &str, value: &str) -> Result<String, JournalError> {
    let value = value.trim();
    // Windows line endings are line endings, not a carriage return to refuse: a story piped
    // from such a file reads as the editor path (which splits on lines) already reads it.
    let value = if value.contains("\r\n") {
        value.replace("\r\n", "\n")
    } else {
        value.to_owned()
    };
    check_text(name, &value)?;
    Ok(value)
}

/// Empty or blank optional text means "no answer", so a person can clear a field with `""`.
fn optional_text(name: &str, value: Option<String>) -> Result<Option<String>, JournalError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(Some(normalize_text(name, &v)?)),
        _ => Ok(None),
    }
}

fn optional_label(name: &str, value: Option<String>) -> Result<Option<String>, JournalError> {
    match value {
        Some(v) if !v.trim().is_empty() => {
            let v = v.trim().to_owned();
            check_label(name, &v)?;
            Ok(Some(v))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(text: &str) -> NewEntry {
        NewEntry {
            text: text.into(),
            ..NewEntry::default()
        }
    }

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).expect("valid")
    }

    #[test]
    fn id_round_trips_through_text_in_any_case() {
        let id = EntryId::from_parts(1_700_000_000_000, 42);
        let text = id.to_string();
        assert_eq!(text.parse::<EntryId>().expect("parse"), id);
        assert_eq!(text.to_lowercase().parse::<EntryId>().expect("parse"), id);
        assert!("not-an-id".parse::<EntryId>().is_err());
        // A first character above 7 would overflow 128 bits; it must not wrap around.
        let swapped = format!("8{}", &text[1..]);
        assert!(swapped.parse::<EntryId>().is_err());
        assert!("ZZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<EntryId>().is_err());
    }

    #[test]
    fn empty_text_is_refused() {
        let id = EntryId::from_parts(1, 1);
        let err = new("   ")
            .into_entry(id, ts(0), Date::constant(2026, 1, 1))
            .expect_err("empty");
        assert!(err.to_string().contains("text may not be empty"));
    }

    #[test]
    fn feeling_limits_are_inclusive() {
        assert!(check_feeling(MIN_FEELING).is_ok());
        assert!(check_feeling(MAX_FEELING).is_ok());
        assert!(check_feeling(MIN_FEELING - 1).is_err());
        assert!(check_feeling(MAX_FEELING + 1).is_err());
    }

    #[test]
    fn text_limit_is_exact() {
        let id = EntryId::from_parts(1, 1);
        let day = Date::constant(2026, 1, 1);
        assert!(
            new(&"a".repeat(MAX_TEXT_BYTES))
                .into_entry(id, ts(0), day)
                .is_ok()
        );
        assert!(
            new(&"a".repeat(MAX_TEXT_BYTES + 1))
                .into_entry(id, ts(0), day)
                .is_err()
        );
    }

    #[test]
    fn tags_are_normalized_and_checked() {
        assert_eq!(normalize_tag(" #Work ").expect("tag"), "work");
        assert!(normalize_tag("two words").is_err());
        assert!(normalize_tag("").is_err());
        assert!(normalize_tag(&"t".repeat(MAX_LABEL_BYTES)).is_ok());
        assert!(normalize_tag(&"t".repeat(MAX_LABEL_BYTES + 1)).is_err());
    }

    #[test]
    fn control_characters_are_refused_in_every_field_typed() {
        let id = EntryId::from_parts(1, 1);
        let day = Date::constant(2026, 1, 1);
        let make = |f: &dyn Fn(&mut NewEntry)| {
            let mut n = new("fine");
            f(&mut n);
            n.into_entry(id, ts(0), day)
        };
        let err = make(&|n| n.text = "\u{1b}[31mred".into()).expect_err("text");
        assert_eq!(
            err.to_string(),
            "text contains a control character (U+001B) at position 1; failup keeps text plain"
        );
        let err = make(&|n| n.lesson = Some("ok \u{9b}2J".into())).expect_err("lesson");
        assert!(err.to_string().starts_with("lesson contains"), "{err}");
        let err = make(&|n| n.area = Some("wo\u{202e}rk".into())).expect_err("area");
        assert!(err.to_string().contains("area contains"), "{err}");
        let err = make(&|n| n.tags = vec!["a\u{7}".into()]).expect_err("tag");
        assert!(err.to_string().contains("tag contains"), "{err}");
        // A multi-line field keeps its newlines and tabs; a one-line field does not.
        assert!(make(&|n| n.use_it = Some("one\n\ttwo".into())).is_ok());
        assert!(make(&|n| n.area = Some("one\ttwo".into())).is_err());

        let patch = |p: EntryPatch| p.normalized();
        let err = patch(EntryPatch {
            iteration: Some(Iteration {
                id: IterationId::from_parts(2, 2),
                at: ts(1),
                tried: "left \u{1b}]0;x\u{7}".into(),
                outcome: None,
            }),
            ..EntryPatch::default()
        })
        .expect_err("iteration");
        assert!(err.to_string().starts_with("iteration contains"), "{err}");
        assert!(
            patch(EntryPatch {
                next: Some(Some("\u{2066}x".into())),
                ..EntryPatch::default()
            })
            .is_err()
        );

        // An entry that arrives whole (an import) is held to the same rule.
        let mut whole = make(&|_| {}).expect("entry");
        whole.muscle = Some("pa\u{0}tience".into());
        assert!(whole.validate().is_err());
    }

    #[test]
    fn windows_line_endings_are_line_endings() {
        let e = new("first line\r\nsecond line\r\n")
            .into_entry(EntryId::from_parts(1, 1), ts(0), Date::constant(2026, 1, 1))
            .expect("crlf is not a control character to refuse");
        assert_eq!(e.text, "first line\nsecond line");
        assert!(
            new("a lone\rcarriage return")
                .into_entry(EntryId::from_parts(1, 1), ts(0), Date::constant(2026, 1, 1))
                .is_err()
        );
    }

    #[test]
    fn status_is_derived() {
        let id = EntryId::from_parts(1, 1);
        let mut e = new("missed the bus")
            .into_entry(id, ts(0), Date::constant(2026, 1, 1))
            .expect("entry");
        assert_eq!(e.status(), Status::Open);
        e.lesson = Some("leave earlier".into());
        assert_eq!(e.status(), Status::Open);
        e.iterations.push(Iteration {
            id: IterationId::from_parts(2, 2),
            at: ts(1),
            tried: "left at 8".into(),
            outcome: Some(Outcome::Better),
        });
        assert_eq!(e.status(), Status::Iterating);
        e.closed_at = Some(ts(2));
        assert_eq!(e.status(), Status::Closed);
    }
}
