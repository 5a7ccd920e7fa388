//! The practice in numbers: reps, how many loops were reflected on, tried and closed, how fast
//! a setback turns into a next step, and how steady the habit is week by week.
//!
//! Built by streaming entries through [`StatsBuilder`], so 100,000 entries never need to be held
//! at once.

use std::collections::{BTreeMap, HashMap};

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::entry::{Entry, Scale, Status};

/// Weeks shown in the chart when no start day is given.
pub const DEFAULT_CHART_WEEKS: i64 = 12;
/// Most weeks shown in the chart, however early the start day.
pub const MAX_CHART_WEEKS: i64 = 104;

/// Entries logged in one week (Monday to Sunday).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WeekCount {
    /// The Monday the week starts on.
    pub week: Date,
    /// Entries whose day falls in that week.
    pub count: usize,
}

/// Entries logged on one day, for the year heatmap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayCount {
    /// The day.
    pub day: Date,
    /// Entries whose day it is.
    pub count: usize,
}

/// A tag or an area and how many entries carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NameCount {
    /// The tag or area.
    pub name: String,
    /// Entries that carry it.
    pub count: usize,
}

/// Micro and macro setbacks in one calendar month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonthCount {
    /// The month as `YYYY-MM`.
    pub month: String,
    /// Micro entries.
    pub micro: usize,
    /// Macro entries.
    #[serde(rename = "macro")]
    pub macro_: usize,
}

/// Weeks in the year heatmap: a full year, like a contribution graph.
pub const HEATMAP_WEEKS: i64 = 53;
/// Months in the micro/macro table when no start day is given.
pub const DEFAULT_MONTHS: i32 = 12;
/// Most months in the micro/macro table.
pub const MAX_MONTHS: i32 = 36;
/// Tags and areas listed.
pub const TOP: usize = 5;

/// What `failup stats` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// Entries logged.
    pub reps: usize,
    /// Micro entries.
    pub micro: usize,
    /// Macro entries.
    #[serde(rename = "macro")]
    pub macro_: usize,
    /// Entries with at least one reframe answer.
    pub reflected: usize,
    /// Entries with at least one iteration.
    pub iterated: usize,
    /// Entries whose loop is closed.
    pub closed: usize,
    /// Median whole days from the day of a setback to its first iteration, over entries that
    /// have one.
    pub median_days_to_first_iteration: Option<f64>,
    /// Median whole days from the day of a setback to the day its loop was closed, over closed
    /// entries.
    pub median_days_to_closed: Option<f64>,
    /// Weeks in a row, ending with this week (or last week, while this one is still empty),
    /// with at least one entry.
    pub streak_weeks: u32,
    /// Entries per week for the chart, oldest first.
    pub weeks: Vec<WeekCount>,
    /// Entries per day for the year heatmap: every day from the Monday [`HEATMAP_WEEKS`] weeks
    /// back to today, oldest first.
    pub days: Vec<DayCount>,
    /// The most used tags, most first (ties by name).
    pub top_tags: Vec<NameCount>,
    /// The most used areas, most first (ties by name).
    pub top_areas: Vec<NameCount>,
    /// Micro and macro entries per month, oldest first, ending with this month.
    pub months: Vec<MonthCount>,
}

impl Stats {
    /// A count as a share of reps, 0 when there are none.
    pub fn share(&self, count: usize) -> f64 {
        if self.reps == 0 {
            0.0
        } else {
            count as f64 / self.reps as f64
        }
    }
}

/// Accumulates [`Stats`] one entry at a time.
pub struct StatsBuilder {
    tz: TimeZone,
    stats: Stats,
    days_to_iteration: Vec<i64>,
    days_to_closed: Vec<i64>,
    per_week: BTreeMap<Date, usize>,
    per_day: BTreeMap<Date, usize>,
    per_month: BTreeMap<(i16, i8), (usize, usize)>,
    tags: HashMap<String, usize>,
    areas: HashMap<String, usize>,
}

fn median(mut v: Vec<i64>) -> Option<f64> {
    v.sort_unstable();
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2] as f64),
        _ => Some((v[n / 2 - 1] + v[n / 2]) as f64 / 2.0),
    }
}

fn top(counts: HashMap<String, usize>) -> Vec<NameCount> {
    let mut v: Vec<NameCount> = counts
        .into_iter()
        .map(|(name, count)| NameCount { name, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    v.truncate(TOP);
    v
}

/// The Monday on or before `day`.
pub fn week_start(day: Date) -> Date {
    let back = day.weekday().to_monday_zero_offset();
    day.checked_sub(i64::from(back).days()).unwrap_or(day)
}

impl StatsBuilder {
    /// Starts empty; `tz` turns iteration times into calendar days.
    pub fn new(tz: TimeZone) -> StatsBuilder {
        StatsBuilder {
            tz,
            stats: Stats {
                reps: 0,
                micro: 0,
                macro_: 0,
                reflected: 0,
                iterated: 0,
                closed: 0,
                median_days_to_first_iteration: None,
                median_days_to_closed: None,
                streak_weeks: 0,
                weeks: Vec::new(),
                days: Vec::new(),
                top_tags: Vec::new(),
                top_areas: Vec::new(),
                months: Vec::new(),
            },
            days_to_iteration: Vec::new(),
            days_to_closed: Vec::new(),
            per_week: BTreeMap::new(),
            per_day: BTreeMap::new(),
            per_month: BTreeMap::new(),
            tags: HashMap::new(),
            areas: HashMap::new(),
        }
    }

    /// Counts one entry.
    pub fn add(&mut self, e: &Entry) {
        let s = &mut self.stats;
        s.reps += 1;
        match e.scale {
            Scale::Micro => s.micro += 1,
            Scale::Macro => s.macro_ += 1,
        }
        s.reflected += usize::from(e.is_reflected());
        s.iterated += usize::from(!e.iterations.is_empty());
        s.closed += usize::from(e.status() == Status::Closed);
        if let Some(first) = e.iterations.iter().map(|i| i.at).min() {
            let first_day = first.to_zoned_datetime(self.tz.clone()).date();
            let days = i64::from((first_day - e.day).get_days()).max(0);
            self.days_to_iteration.push(days);
        }
        if let Some(closed) = e.closed_at {
            let closed_day = closed.to_zoned_datetime(self.tz.clone()).date();
            let days = i64::from((closed_day - e.day).get_days()).max(0);
            self.days_to_closed.push(days);
        }
        *self.per_week.entry(week_start(e.day)).or_default() += 1;
        *self.per_day.entry(e.day).or_default() += 1;
        let month = self
            .per_month
            .entry((e.day.year(), e.day.month()))
            .or_default();
        match e.scale {
            Scale::Micro => month.0 += 1,
            Scale::Macro => month.1 += 1,
        }
        for tag in &e.tags {
            *self.tags.entry(tag.clone()).or_default() += 1;
        }
        if let Some(area) = &e.area {
            *self.areas.entry(area.clone()).or_default() += 1;
        }
    }

    /// Finishes the figures as of `today`; the chart starts at `since` (capped) or covers the last
    /// [`DEFAULT_CHART_WEEKS`].
    pub fn finish(mut self, today: Date, since: Option<Date>) -> Stats {
        self.stats.median_days_to_first_iteration =
            median(std::mem::take(&mut self.days_to_iteration));
        self.stats.median_days_to_closed = median(std::mem::take(&mut self.days_to_closed));
        self.stats.top_tags = top(std::mem::take(&mut self.tags));
        self.stats.top_areas = top(std::mem::take(&mut self.areas));
        self.fill_days(today);
        self.fill_months(today, since);

        let this_week = week_start(today);
        let mut week = this_week;
        if !self.per_week.contains_key(&week) {
            week = week.checked_sub(7.days()).unwrap_or(week);
        }
        let mut streak = 0;
        while self.per_week.contains_key(&week) {
            streak += 1;
            match week.checked_sub(7.days()) {
                Ok(w) => week = w,
                Err(_) => break,
            }
        }
        self.stats.streak_weeks = streak;

        let earliest = this_week
            .checked_sub((7 * (MAX_CHART_WEEKS - 1)).days())
            .unwrap_or(this_week);
        let first = match since {
            Some(d) => week_start(d).max(earliest),
            None => this_week
                .checked_sub((7 * (DEFAULT_CHART_WEEKS - 1)).days())
                .unwrap_or(this_week),
        };
        let mut week = first;
        while week <= this_week {
            self.stats.weeks.push(WeekCount {
                week,
                count: self.per_week.get(&week).copied().unwrap_or(0),
            });
            match week.checked_add(7.days()) {
                Ok(w) => week = w,
                Err(_) => break,
            }
        }
        self.stats
    }

    fn fill_days(&mut self, today: Date) {
        let Ok(mut day) = week_start(today).checked_sub((7 * (HEATMAP_WEEKS - 1)).days()) else {
            return;
        };
        while day <= today {
            self.stats.days.push(DayCount {
                day,
                count: self.per_day.get(&day).copied().unwrap_or(0),
            });
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
    }

    fn fill_months(&mut self, today: Date, since: Option<Date>) {
        let index = |d: Date| i32::from(d.year()) * 12 + i32::from(d.month()) - 1;
        let last = index(today);
        let first = match since {
            Some(d) => index(d).max(last - MAX_MONTHS + 1),
            None => last - DEFAULT_MONTHS + 1,
        };
        for i in first..=last {
            let (year, month) = (i.div_euclid(12), i.rem_euclid(12) + 1);
            let (Ok(year), Ok(month)) = (i16::try_from(year), i8::try_from(month)) else {
                continue;
            };
            let (micro, macro_) = self
                .per_month
                .get(&(year, month))
                .copied()
                .unwrap_or((0, 0));
            self.stats.months.push(MonthCount {
                month: format!("{year:04}-{month:02}"),
                micro,
                macro_,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryId, Iteration, IterationId, NewEntry};
    use jiff::Timestamp;

    fn entry(n: u64, day: Date) -> Entry {
        NewEntry {
            text: format!("setback {n}"),
            ..NewEntry::default()
        }
        .into_entry(
            EntryId::from_parts(n, u128::from(n)),
            Timestamp::UNIX_EPOCH,
            day,
        )
        .expect("entry")
    }

    #[test]
    fn streak_counts_consecutive_weeks_and_forgives_an_empty_current_week() {
        let today = Date::constant(2026, 11, 25); // a Wednesday
        let mut b = StatsBuilder::new(TimeZone::UTC);
        // Last week and the two before it, then a gap.
        for (n, d) in [(1, 18), (2, 11), (3, 4)] {
            b.add(&entry(n, Date::constant(2026, 11, d)));
        }
        b.add(&entry(4, Date::constant(2026, 10, 20)));
        let s = b.finish(today, None);
        assert_eq!(s.streak_weeks, 3);
        assert_eq!(s.reps, 4);
        assert_eq!(s.weeks.len(), DEFAULT_CHART_WEEKS as usize);
        assert_eq!(
            s.weeks.last().map(|w| w.week),
            Some(Date::constant(2026, 11, 23))
        );
        assert_eq!(s.weeks.iter().map(|w| w.count).sum::<usize>(), 4);
    }

    #[test]
    fn median_days_to_first_iteration() {
        let mut b = StatsBuilder::new(TimeZone::UTC);
        for (n, lag) in [(1u64, 1i64), (2, 3), (3, 10)] {
            let mut e = entry(n, Date::constant(2026, 1, 1));
            let at: Timestamp = format!("2026-01-{:02}T12:00:00Z", 1 + lag)
                .parse()
                .expect("ts");
            e.iterations.push(Iteration {
                id: IterationId::from_parts(n, 0),
                at,
                tried: "x".into(),
                outcome: None,
            });
            b.add(&e);
        }
        b.add(&entry(4, Date::constant(2026, 1, 1)));
        let s = b.finish(Date::constant(2026, 1, 20), None);
        assert_eq!(s.median_days_to_first_iteration, Some(3.0));
        assert_eq!(s.iterated, 3);
        assert!((s.share(s.iterated) - 0.75).abs() < 1e-9);
    }

    #[test]
    fn heatmap_months_tops_and_time_to_close() {
        let today = Date::constant(2026, 11, 25);
        let mut b = StatsBuilder::new(TimeZone::UTC);
        let mut e = entry(1, Date::constant(2026, 11, 20));
        e.tags = ["work".to_string(), "sleep".to_string()]
            .into_iter()
            .collect();
        e.area = Some("work".into());
        e.closed_at = Some("2026-11-24T08:00:00Z".parse().expect("ts"));
        b.add(&e);
        let mut e = entry(2, Date::constant(2026, 11, 20));
        e.tags = ["work".to_string()].into_iter().collect();
        e.scale = Scale::Macro;
        b.add(&e);
        b.add(&entry(3, Date::constant(2026, 1, 2)));
        b.add(&entry(4, Date::constant(2024, 1, 2)));
        let s = b.finish(today, None);
        assert_eq!(s.median_days_to_closed, Some(4.0));
        assert_eq!(
            s.top_tags[0],
            NameCount {
                name: "work".into(),
                count: 2
            }
        );
        assert_eq!(s.top_tags[1].name, "sleep");
        assert_eq!(s.top_areas.len(), 1);
        assert_eq!(s.days.last().map(|d| d.day), Some(today));
        assert_eq!(
            s.days.first().map(|d| d.day.weekday()),
            Some(jiff::civil::Weekday::Monday)
        );
        assert_eq!(s.days.iter().map(|d| d.count).sum::<usize>(), 3);
        assert_eq!(s.months.len(), 12);
        let nov = s.months.last().expect("month");
        assert_eq!(
            (nov.month.as_str(), nov.micro, nov.macro_),
            ("2026-11", 1, 1)
        );
        assert_eq!(s.months[0].month, "2025-12");
    }

    #[test]
    fn empty_journal_has_no_median_and_no_streak() {
        let s = StatsBuilder::new(TimeZone::UTC).finish(Date::constant(2026, 1, 1), None);
        assert_eq!(s.reps, 0);
        assert_eq!(s.streak_weeks, 0);
        assert_eq!(s.median_days_to_first_iteration, None);
        assert_eq!(s.share(0), 0.0);
    }
}
