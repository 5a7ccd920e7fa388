//! What `failup today` shows: the day's and the week's entries, the loops still open, and "on
//! this day", earlier entries from the same day of the month whose lessons are worth checking.

use crate::entry::{Entry, Status};
use crate::stats::week_start;
use jiff::civil::Date;

/// Open loops listed before "and N more".
pub const MAX_OPEN: usize = 10;

/// The practice as of one day.
#[derive(Clone, Debug, Default)]
pub struct Today {
    /// Entries whose day is today, oldest logged first.
    pub today: Vec<Entry>,
    /// Entries from earlier days of this week (Monday on), oldest first.
    pub this_week: Vec<Entry>,
    /// Open loops (no lesson or nothing tried yet), oldest first, at most [`MAX_OPEN`].
    pub open: Vec<Entry>,
    /// How many loops are open in all.
    pub open_total: usize,
    /// Entries from the same day of the month in earlier months and years, newest first.
    pub on_this_day: Vec<Entry>,
}

impl Today {
    /// Sorts `entries` into the day's sections; entries dated after `today` (logged ahead, or
    /// from a device whose clock runs fast) count only as open loops.
    pub fn build(entries: impl IntoIterator<Item = Entry>, today: Date) -> Today {
        let monday = week_start(today);
        let mut t = Today::default();
        let oldest_first = |a: &Entry, b: &Entry| (a.day, a.created).cmp(&(b.day, b.created));
        // Open loops by age, the id settling a tie, so which are shown does not hang on the
        // order the entries come in.
        let by_age = |a: &Entry, b: &Entry| (a.day, a.created, a.id).cmp(&(b.day, b.created, b.id));
        for e in entries {
            if e.status() == Status::Open {
                t.open_total += 1;
                // Only the oldest MAX_OPEN are shown: an entry is copied only while it is among
                // them, so a journal of 100,000 open loops copies a handful, not all of them.
                if t.open.len() < MAX_OPEN {
                    t.open.push(e.clone());
                } else if let Some((at, _)) = t
                    .open
                    .iter()
                    .enumerate()
                    .max_by(|(_, a), (_, b)| by_age(a, b))
                    .filter(|(_, youngest)| by_age(&e, youngest).is_lt())
                {
                    t.open[at] = e.clone();
                }
            }
            if e.day == today {
                t.today.push(e);
            } else if e.day >= monday && e.day < today {
                t.this_week.push(e);
            } else if e.day < today && e.day.day() == today.day() {
                t.on_this_day.push(e);
            }
        }
        t.today.sort_by_key(|e| e.created);
        t.this_week.sort_by(oldest_first);
        t.open.sort_by(by_age);
        t.on_this_day.sort_by(|a, b| oldest_first(b, a));
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryId, Iteration, IterationId, NewEntry};
    use jiff::Timestamp;

    /// An entry, with its loop underway when it has a lesson.
    fn entry(n: u64, day: Date, lesson: Option<&str>) -> Entry {
        let mut e = NewEntry {
            text: format!("setback {n}"),
            lesson: lesson.map(str::to_owned),
            ..NewEntry::default()
        }
        .into_entry(EntryId::from_parts(n, 0), Timestamp::UNIX_EPOCH, day)
        .expect("entry");
        if lesson.is_some() {
            e.iterations.push(Iteration {
                id: IterationId::from_parts(n, 0),
                at: Timestamp::UNIX_EPOCH,
                tried: "again".into(),
                outcome: None,
            });
        }
        e
    }

    #[test]
    fn shows_the_oldest_open_loops_whatever_order_they_come_in() {
        let today = Date::constant(2026, 11, 25);
        let day = |n: u64| Date::constant(2026, 10, 1 + i8::try_from(n).expect("a day"));
        // 25 open loops, one a day, given newest first then oldest first.
        for order in [(0..25).rev().collect::<Vec<u64>>(), (0..25).collect()] {
            let t = Today::build(order.iter().map(|&n| entry(n, day(n), None)), today);
            assert_eq!(t.open_total, 25);
            let shown: Vec<Date> = t.open.iter().map(|e| e.day).collect();
            let oldest: Vec<Date> = (0..MAX_OPEN as u64).map(day).collect();
            assert_eq!(shown, oldest);
        }
    }

    #[test]
    fn sorts_entries_into_sections() {
        let today = Date::constant(2026, 11, 25); // a Wednesday
        let t = Today::build(
            [
                entry(1, today, None),
                entry(2, Date::constant(2026, 11, 23), Some("pause")),
                entry(3, Date::constant(2026, 10, 25), Some("ask early")),
                entry(4, Date::constant(2025, 11, 25), Some("sleep")),
                entry(5, Date::constant(2026, 11, 22), None),
                entry(6, Date::constant(2026, 11, 24), None),
            ],
            today,
        );
        let ids = |v: &[Entry]| v.iter().map(|e| e.text.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&t.today), ["setback 1"]);
        assert_eq!(ids(&t.this_week), ["setback 2", "setback 6"]);
        assert_eq!(ids(&t.open), ["setback 5", "setback 6", "setback 1"]);
        assert_eq!(t.open_total, 3);
        assert_eq!(ids(&t.on_this_day), ["setback 3", "setback 4"]);
    }
}
