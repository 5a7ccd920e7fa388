//! The index record: how an entry is kept in `by-day-1`, a layout of the store's own. It is
//! not the export schema (`Entry`'s serde form): a field added to the export must not change
//! what stores already hold, and a change here is a schema change of the store.
//!
//! Layout (postcard, fields in this order, never skipped since postcard is positional): created
//! and updated as milliseconds since the epoch, the day as `YYYYMMDD`, the text, scale, area,
//! tags, feeling, the three reframe answers, the next step, the iterations (id as a 128-bit
//! varint, time in milliseconds, what was tried, outcome), and when the loop was closed. The id
//! is the record's key and is not repeated. These are the bytes schema 1 and 2 wrote.

use std::borrow::Cow;
use std::collections::BTreeSet;

use failup_journal::{Entry, EntryId, Iteration, IterationId, Outcome, Scale};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::StoreError;

#[derive(Serialize, Deserialize)]
struct IterationRecord<'a> {
    id: u128,
    at_ms: i64,
    tried: Cow<'a, str>,
    outcome: Option<Outcome>,
}

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    created_ms: i64,
    updated_ms: i64,
    day: i32,
    text: Cow<'a, str>,
    scale: Scale,
    area: Option<Cow<'a, str>>,
    tags: Cow<'a, BTreeSet<String>>,
    feeling: Option<u8>,
    lesson: Option<Cow<'a, str>>,
    muscle: Option<Cow<'a, str>>,
    use_it: Option<Cow<'a, str>>,
    next: Option<Cow<'a, str>>,
    iterations: Vec<IterationRecord<'a>>,
    closed_ms: Option<i64>,
}

fn day_number(d: Date) -> i32 {
    i32::from(d.year()) * 10_000 + i32::from(d.month()) * 100 + i32::from(d.day())
}

fn bad(e: impl std::fmt::Display) -> StoreError {
    StoreError::Record(e.to_string())
}

fn date(n: i32) -> Result<Date, StoreError> {
    let (year, month, day) = (n / 10_000, (n / 100) % 100, n % 100);
    Date::new(
        i16::try_from(year).map_err(bad)?,
        i8::try_from(month).map_err(bad)?,
        i8::try_from(day).map_err(bad)?,
    )
    .map_err(bad)
}

fn time(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(bad)
}

fn text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(Cow::Borrowed)
}

fn owned(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(Cow::into_owned)
}

/// The index record of `entry`, without its id.
pub(crate) fn encode(entry: &Entry) -> Result<Vec<u8>, StoreError> {
    let record = Record {
        created_ms: entry.created.as_millisecond(),
        updated_ms: entry.updated.as_millisecond(),
        day: day_number(entry.day),
        text: Cow::Borrowed(&entry.text),
        scale: entry.scale,
        area: text(&entry.area),
        tags: Cow::Borrowed(&entry.tags),
        feeling: entry.feeling,
        lesson: text(&entry.lesson),
        muscle: text(&entry.muscle),
        use_it: text(&entry.use_it),
        next: text(&entry.next),
        iterations: entry
            .iterations
            .iter()
            .map(|i| IterationRecord {
                id: i.id.as_u128(),
                at_ms: i.at.as_millisecond(),
                tried: Cow::Borrowed(&i.tried),
                outcome: i.outcome,
            })
            .collect(),
        closed_ms: entry.closed_at.map(|t| t.as_millisecond()),
    };
    postcard::to_allocvec(&record).map_err(bad)
}

/// The entry `id` from its index record.
pub(crate) fn decode(id: u128, bytes: &[u8]) -> Result<Entry, StoreError> {
    let r: Record = postcard::from_bytes(bytes).map_err(bad)?;
    Ok(Entry {
        id: EntryId::from_u128(id),
        created: time(r.created_ms)?,
        updated: time(r.updated_ms)?,
        day: date(r.day)?,
        text: r.text.into_owned(),
        scale: r.scale,
        area: owned(r.area),
        tags: r.tags.into_owned(),
        feeling: r.feeling,
        lesson: owned(r.lesson),
        muscle: owned(r.muscle),
        use_it: owned(r.use_it),
        next: owned(r.next),
        iterations: r
            .iterations
            .into_iter()
            .map(|i| {
                Ok(Iteration {
                    id: IterationId::from_u128(i.id),
                    at: time(i.at_ms)?,
                    tried: i.tried.into_owned(),
                    outcome: i.outcome,
                })
            })
            .collect::<Result<_, StoreError>>()?,
        closed_at: r.closed_ms.map(time).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        let t: Timestamp = "2026-11-30T08:15:00.123Z".parse().expect("time");
        Entry {
            id: EntryId::from_u128(0x0193_0000_0000_0000_0000_0000_0000_0042),
            created: t,
            updated: t + jiff::SignedDuration::from_secs(60),
            day: "2026-11-29".parse().expect("day"),
            text: "Missed the grant deadline".into(),
            scale: Scale::Macro,
            area: Some("work".into()),
            tags: ["career".to_owned(), "grants".to_owned()].into(),
            feeling: Some(4),
            lesson: Some("start two weeks earlier".into()),
            muscle: None,
            use_it: Some("a calendar".into()),
            next: Some("draft by the 1st".into()),
            iterations: vec![Iteration {
                id: IterationId::from_u128(7),
                at: t,
                tried: "asked Sam to review".into(),
                outcome: Some(Outcome::Better),
            }],
            closed_at: Some(t),
        }
    }

    #[test]
    fn a_record_round_trips() {
        let e = sample();
        let bytes = encode(&e).expect("encode");
        assert_eq!(decode(e.id.as_u128(), &bytes).expect("decode"), e);
    }

    #[test]
    fn records_written_before_the_record_type_still_read() {
        // Schemas 1 and 2 wrote the entry's own binary serde form with the id cut off the
        // front: those bytes must be exactly what a record is now.
        let e = sample();
        let id_len = postcard::to_allocvec(&e.id).expect("id").len();
        let mut old = postcard::to_allocvec(&e).expect("entry");
        old.drain(..id_len);
        assert_eq!(encode(&e).expect("encode"), old);
        assert_eq!(decode(e.id.as_u128(), &old).expect("decode"), e);
    }

    #[test]
    fn a_damaged_record_is_an_error() {
        let e = sample();
        let bytes = encode(&e).expect("encode");
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(1, &bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
