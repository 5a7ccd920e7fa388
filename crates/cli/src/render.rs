//! How entries and figures look in a terminal. Pure functions from values to text, so the
//! output can be checked in tests without running a command.

use std::fmt::Write;

use failup_journal::{Entry, REFRAME_QUESTIONS, Scale, Stats};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Characters of an id shown in listings: the millisecond timestamp plus two random characters.
pub const SHORT_ID: usize = 12;
/// Widest bar in the weekly chart.
const BAR_WIDTH: usize = 40;
/// Longest title shown in a listing line, in characters.
const TITLE_WIDTH: usize = 60;

fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

fn shorten(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(width - 1).collect();
        out.push('…');
        out
    }
}

/// One line per entry for `failup list`.
pub fn list_line(e: &Entry) -> String {
    let id = e.id.to_string();
    let mut line = format!(
        "{}  {}  {:5}  {:9}  {}",
        &id[..SHORT_ID],
        e.day,
        e.scale.as_str(),
        e.status().as_str(),
        shorten(e.title(), TITLE_WIDTH)
    );
    for tag in &e.tags {
        line.push_str(&format!("  #{tag}"));
    }
    line
}

/// The full entry for `failup show`.
pub fn entry(e: &Entry, tz: &TimeZone) -> String {
    let mut out = String::new();
    let mut facts = vec![e.status().as_str().to_owned()];
    if e.scale == Scale::Macro {
        facts.push("macro".into());
    }
    if let Some(f) = e.feeling {
        facts.push(format!("felt {f}/5"));
    }
    let _ = writeln!(out, "{}  ({})", e.id, facts.join(", "));
    let _ = writeln!(out, "day:      {} ({})", e.day, e.day.strftime("%A"));
    if let Some(area) = &e.area {
        let _ = writeln!(out, "area:     {area}");
    }
    if !e.tags.is_empty() {
        let tags: Vec<String> = e.tags.iter().map(|t| format!("#{t}")).collect();
        let _ = writeln!(out, "tags:     {}", tags.join(" "));
    }
    let _ = writeln!(out, "logged:   {}", local(e.created, tz));
    if e.updated != e.created {
        let _ = writeln!(out, "updated:  {}", local(e.updated, tz));
    }
    let _ = writeln!(out, "\n{}\n", e.text);
    for (field, question) in REFRAME_QUESTIONS {
        let answer = e.reframe(field).unwrap_or("(not answered yet)");
        let _ = writeln!(out, "{question}\n  {answer}");
    }
    let _ = writeln!(
        out,
        "\nnext step: {}",
        e.next.as_deref().unwrap_or("(none yet)")
    );
    if !e.iterations.is_empty() {
        let _ = writeln!(out, "\niterations:");
        for (n, it) in e.iterations.iter().enumerate() {
            let outcome = it
                .outcome
                .map(|o| format!("  ({})", o.as_str()))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}. {}  {}{outcome}",
                n + 1,
                local(it.at, tz),
                it.tried
            );
        }
    }
    if let Some(closed) = e.closed_at {
        let _ = writeln!(out, "\nloop closed {}", local(closed, tz));
    }
    out
}

fn percent(stats: &Stats, count: usize) -> String {
    format!("{count} ({:.0}%)", stats.share(count) * 100.0)
}

/// The figures and the weekly bar chart for `failup stats`.
pub fn stats(s: &Stats) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "reps:       {} ({} micro, {} macro)",
        s.reps, s.micro, s.macro_
    );
    let _ = writeln!(out, "reflected:  {}", percent(s, s.reflected));
    let _ = writeln!(out, "iterated:   {}", percent(s, s.iterated));
    let _ = writeln!(out, "closed:     {}", percent(s, s.closed));
    let median = s
        .median_days_to_first_iteration
        .map(|d| format!("{d} days"))
        .unwrap_or_else(|| "no iterations yet".into());
    let _ = writeln!(out, "median time from setback to first iteration: {median}");
    let weeks = if s.streak_weeks == 1 { "week" } else { "weeks" };
    let _ = writeln!(
        out,
        "streak:     {} {weeks} in a row with at least one entry",
        s.streak_weeks
    );
    let _ = writeln!(out, "\nentries per week (week starting)");
    let max = s.weeks.iter().map(|w| w.count).max().unwrap_or(0).max(1);
    for w in &s.weeks {
        let len = (w.count * BAR_WIDTH).div_ceil(max);
        let _ = writeln!(out, "{} │{} {}", w.week, "█".repeat(len), w.count);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use failup_journal::{EntryId, NewEntry, StatsBuilder};
    use jiff::civil::Date;

    #[test]
    fn list_line_shows_short_id_day_scale_status_title_and_tags() {
        let e = NewEntry {
            text: "Missed the deadline\nmore detail".into(),
            tags: vec!["work".into()],
            scale: Scale::Macro,
            ..NewEntry::default()
        }
        .into_entry(
            EntryId::from_parts(1_700_000_000_000, 1),
            Timestamp::UNIX_EPOCH,
            Date::constant(2026, 11, 23),
        )
        .expect("entry");
        let line = list_line(&e);
        assert_eq!(
            line,
            format!(
                "{}  2026-11-23  macro  open       Missed the deadline  #work",
                &e.id.to_string()[..SHORT_ID]
            )
        );
    }

    #[test]
    fn chart_scales_bars_to_the_busiest_week() {
        let mut b = StatsBuilder::new(TimeZone::UTC);
        for n in 0..4u64 {
            let e = NewEntry {
                text: "x".into(),
                ..NewEntry::default()
            }
            .into_entry(
                EntryId::from_parts(n, 0),
                Timestamp::UNIX_EPOCH,
                Date::constant(2026, 11, 23),
            )
            .expect("entry");
            b.add(&e);
        }
        let text = stats(&b.finish(Date::constant(2026, 11, 24), None));
        assert!(text.contains("reps:       4 (4 micro, 0 macro)"));
        assert!(text.contains(&format!("2026-11-23 │{} 4", "█".repeat(BAR_WIDTH))));
        assert!(text.contains("2026-11-16 │ 0"));
    }
}
