//! How entries and figures look in a terminal. Pure functions from values to text, so the
//! output can be checked in tests without running a command.
//!
//! Every piece of text from an entry or a setting goes through [`shown`] before it is placed
//! (and before it is painted, so the colours this module adds are the only escape sequences in
//! what it returns).

use std::fmt::Write;

use failup_journal::text::shown;
use failup_journal::{Entry, EntryId, ReframeField, Scale, Stats, Status, Today};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use failup_report::{days, level, percent};

use crate::style::{Role, Style};

/// Characters of an id shown in listings: the millisecond timestamp plus two random characters.
pub const SHORT_ID: usize = 12;
/// Widest bar in the weekly chart.
const BAR_WIDTH: usize = 40;
/// Longest title shown in a listing line, in characters.
/// Most characters of a title a row shows.
pub const TITLE_WIDTH: usize = 60;

/// A time as a local `YYYY-MM-DD HH:MM`.
pub fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// The short form of an id shown in listings.
pub fn short(id: EntryId) -> String {
    id.to_string()[..SHORT_ID].to_owned()
}

fn shorten(s: &str, width: usize, style: &Style) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let ellipsis = style.ellipsis();
        let mut out: String = s.chars().take(width - ellipsis.chars().count()).collect();
        out.push_str(ellipsis);
        out
    }
}

fn status(e: &Entry, style: &Style) -> String {
    let s = e.status();
    let text = format!("{:9}", s.as_str());
    match s {
        Status::Open => style.paint(Role::Open, &text),
        Status::Closed => style.paint(Role::Closed, &text),
        Status::Iterating => text,
    }
}

/// `n` and the noun, singular or plural as `n` needs: "1 entry", "2 entries".
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `text` as a QR code drawn with half blocks (two rows of modules per line), dark on light
/// with the quiet zone around it, as a phone's camera reads it from a terminal.
pub fn qr(text: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot draw the code as a QR code: {e}"))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build()
        + "\n")
}

/// One line per entry for `failup list`, the title cut to `title_width` characters.
pub fn list_line(e: &Entry, style: &Style, title_width: usize) -> String {
    let scale = format!("{:5}", e.scale.as_str());
    let mut line = format!(
        "{}  {}  {}  {}  {}",
        style.paint(Role::Id, &short(e.id)),
        e.day,
        if e.scale == Scale::Macro {
            style.paint(Role::Macro, &scale)
        } else {
            scale
        },
        status(e, style),
        shorten(&shown(e.title()), title_width.max(2), style)
    );
    for tag in &e.tags {
        let tag = format!("#{}", shown(tag));
        line.push_str(&format!("  {}", style.paint(Role::Tag, &tag)));
    }
    line
}

/// The full entry for `failup show`, with the reframe questions in force.
pub fn entry(
    e: &Entry,
    tz: &TimeZone,
    questions: &[(ReframeField, String); 3],
    style: &Style,
) -> String {
    let mut out = String::new();
    let mut facts = vec![e.status().as_str().to_owned()];
    if e.scale == Scale::Macro {
        facts.push(style.paint(Role::Macro, "macro"));
    }
    if let Some(f) = e.feeling {
        facts.push(format!("felt {f}/5"));
    }
    let _ = writeln!(
        out,
        "{}  ({})",
        style.paint(Role::Id, &e.id.to_string()),
        facts.join(", ")
    );
    let _ = writeln!(out, "day:      {} ({})", e.day, e.day.strftime("%A"));
    if let Some(area) = &e.area {
        let _ = writeln!(out, "area:     {}", shown(area));
    }
    if !e.tags.is_empty() {
        let tags: Vec<String> = e
            .tags
            .iter()
            .map(|t| style.paint(Role::Tag, &format!("#{}", shown(t))))
            .collect();
        let _ = writeln!(out, "tags:     {}", tags.join(" "));
    }
    let _ = writeln!(out, "logged:   {}", local(e.created, tz));
    if e.updated != e.created {
        let _ = writeln!(out, "updated:  {}", local(e.updated, tz));
    }
    let _ = writeln!(out, "\n{}\n", shown(&e.text));
    for (field, question) in questions {
        let answer = shown(e.reframe(*field).unwrap_or("(not answered yet)"));
        let _ = writeln!(
            out,
            "{}\n  {answer}",
            style.paint(Role::Heading, &shown(question))
        );
    }
    let _ = writeln!(
        out,
        "\n{} {}",
        style.paint(Role::Heading, "next step:"),
        shown(e.next.as_deref().unwrap_or("(none yet)"))
    );
    if !e.iterations.is_empty() {
        let _ = writeln!(out, "\n{}", style.paint(Role::Heading, "iterations:"));
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
                shown(&it.tried)
            );
        }
    }
    if let Some(closed) = e.closed_at {
        let _ = writeln!(
            out,
            "\n{}",
            style.paint(Role::Closed, &format!("loop closed {}", local(closed, tz)))
        );
    }
    out
}

/// The year heatmap: one column per week, one row per weekday, month names above.
pub fn heatmap(s: &Stats, style: &Style) -> String {
    let mut out = String::new();
    let Some(first) = s.days.first().map(|d| d.day) else {
        return out;
    };
    let weeks = s.days.len().div_ceil(7);
    let max = s.days.iter().map(|d| d.count).max().unwrap_or(0);
    // Month names where a month's first Monday-started column begins.
    let mut labels = vec![' '; weeks + 4];
    let mut w = 0;
    while w < weeks {
        let day = s.days.get(w * 7).map(|d| d.day).unwrap_or(first);
        if day.day() <= 7 {
            let name = day.strftime("%b").to_string();
            if w + name.len() <= labels.len() && labels[w..w + name.len()].iter().all(|c| *c == ' ')
            {
                for (i, c) in name.chars().enumerate() {
                    labels[w + i] = c;
                }
                w += name.len();
                continue;
            }
        }
        w += 1;
    }
    let label_line: String = labels.into_iter().collect();
    let _ = writeln!(out, "    {}", label_line.trim_end());
    for (row, name) in ["Mon", "", "Wed", "", "Fri", "", "Sun"].iter().enumerate() {
        let mut line = format!("{name:3} ");
        for week in 0..weeks {
            match s.days.get(week * 7 + row) {
                Some(d) => line.push_str(&style.cell(level(d.count, max))),
                None => line.push(' '),
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let legend: Vec<String> = (0..=4).map(|l| style.cell(l)).collect();
    let _ = writeln!(out, "    less {} more", legend.join(" "));
    out
}

/// The figures and charts for `failup stats`.
pub fn stats(s: &Stats, style: &Style) -> String {
    let mut out = String::new();
    let h = |t: &str| style.paint(Role::Heading, t);
    let _ = writeln!(
        out,
        "reps:       {} ({} micro, {} macro)",
        s.reps, s.micro, s.macro_
    );
    let _ = writeln!(out, "reflected:  {}", percent(s, s.reflected));
    let _ = writeln!(out, "iterated:   {}", percent(s, s.iterated));
    let _ = writeln!(out, "closed:     {}", percent(s, s.closed));
    let _ = writeln!(
        out,
        "median time from setback to first iteration: {}",
        days(s.median_days_to_first_iteration, "no iterations yet")
    );
    let _ = writeln!(
        out,
        "median time from setback to closed loop:     {}",
        days(s.median_days_to_closed, "no closed loops yet")
    );
    let weeks = if s.streak_weeks == 1 { "week" } else { "weeks" };
    let _ = writeln!(
        out,
        "streak:     {} {weeks} in a row with at least one entry",
        s.streak_weeks
    );

    let _ = writeln!(out, "\n{}", h("reps by day, last year"));
    out.push_str(&heatmap(s, style));

    let _ = writeln!(out, "\n{}", h("entries per week (week starting)"));
    let max = s.weeks.iter().map(|w| w.count).max().unwrap_or(0).max(1);
    for w in &s.weeks {
        let len = (w.count * BAR_WIDTH).div_ceil(max);
        let _ = writeln!(
            out,
            "{} {}{} {}",
            w.week,
            style.rule(),
            style.bar(len),
            w.count
        );
    }

    let _ = writeln!(out, "\n{}", h("micro / macro per month"));
    for m in &s.months {
        let total = m.micro + m.macro_;
        let ratio = if total == 0 {
            String::new()
        } else {
            format!("  ({:.0}% macro)", m.macro_ as f64 * 100.0 / total as f64)
        };
        let _ = writeln!(
            out,
            "{}  {:4} micro  {:4} macro{ratio}",
            m.month, m.micro, m.macro_
        );
    }

    for (title, list) in [("top tags", &s.top_tags), ("top areas", &s.top_areas)] {
        let _ = writeln!(out, "\n{}", h(title));
        if list.is_empty() {
            let _ = writeln!(out, "  (none yet)");
        }
        for n in list {
            let name = if title == "top tags" {
                style.paint(Role::Tag, &format!("#{}", shown(&n.name)))
            } else {
                shown(&n.name).into_owned()
            };
            let _ = writeln!(out, "  {:4}  {name}", n.count);
        }
    }
    out
}

fn short_line(e: &Entry, style: &Style) -> String {
    format!(
        "  {}  {}  {}",
        style.paint(Role::Id, &short(e.id)),
        e.day,
        shorten(&shown(e.title()), TITLE_WIDTH, style)
    )
}

/// `failup today`: the day, the week, open loops and "on this day".
/// `failup today`, and the entries it shows in the order shown (for `@N`); `numbered` puts
/// each row's `@N` in front of it.
pub fn today(
    t: &Today,
    today: Date,
    lesson_question: &str,
    style: &Style,
    numbered: bool,
) -> (String, Vec<failup_journal::EntryId>) {
    let mut out = String::new();
    let mut rows = Vec::new();
    let mut short_line = |e: &Entry, style: &Style| {
        rows.push(e.id);
        let line = short_line(e, style);
        if numbered {
            format!("{:<4}{}", format!("@{}", rows.len()), &line[2..])
        } else {
            line
        }
    };
    let h = |t: &str| style.paint(Role::Heading, t);
    let _ = writeln!(
        out,
        "{}",
        h(&format!("today, {}", today.strftime("%A %Y-%m-%d")))
    );
    if t.today.is_empty() {
        let _ = writeln!(out, "  nothing logged yet: failup log \"what happened\"");
    }
    for e in &t.today {
        let _ = writeln!(out, "{}", short_line(e, style));
    }
    let _ = writeln!(out, "\n{}", h("earlier this week"));
    if t.this_week.is_empty() {
        let _ = writeln!(out, "  (nothing)");
    }
    for e in &t.this_week {
        let _ = writeln!(out, "{}", short_line(e, style));
    }
    let _ = writeln!(
        out,
        "\n{}",
        h(&format!("open loops, oldest first ({})", t.open_total))
    );
    if t.open.is_empty() {
        let _ = writeln!(out, "  (none: every loop has a lesson and a try)");
    }
    for e in &t.open {
        let missing = match (e.lesson.is_some(), e.iterations.is_empty()) {
            (false, true) => "needs a lesson and a try",
            (false, false) => "needs a lesson",
            _ => "needs a try",
        };
        let _ = writeln!(
            out,
            "{}  {}",
            short_line(e, style),
            style.paint(Role::Open, &format!("[{missing}]"))
        );
    }
    if t.open_total > t.open.len() {
        let _ = writeln!(
            out,
            "  ... and {} more: failup list --open",
            t.open_total - t.open.len()
        );
    }
    if !t.on_this_day.is_empty() {
        let _ = writeln!(out, "\n{}", h("on this day"));
        for e in &t.on_this_day {
            let _ = writeln!(out, "{}", short_line(e, style));
            match &e.lesson {
                Some(lesson) => {
                    let _ = writeln!(out, "      {} {}", shown(lesson_question), shown(lesson));
                    let _ = writeln!(
                        out,
                        "      {} failup iterate {} \"...\" --outcome better|same|worse",
                        style.paint(Role::Dim, "did the lesson hold?"),
                        short(e.id)
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "      {} failup reflect {}",
                        style.paint(Role::Dim, "no lesson yet:"),
                        short(e.id)
                    );
                }
            }
        }
    }
    (out, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use failup_journal::{EntryId, NewEntry, StatsBuilder};

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
        let line = list_line(&e, &Style::PLAIN, TITLE_WIDTH);
        assert_eq!(
            line,
            format!(
                "{}  2026-11-23  macro  open       Missed the deadline  #work",
                short(e.id)
            )
        );
    }

    /// Text that reached the journal without passing the rules (written before them, or by
    /// another device's client), in every field `show`, `list`, `today` and `stats` print.
    fn hostile_entry() -> Entry {
        let bad = "\u{1b}]0;pwned\u{7}\u{1b}[31m\u{9b}2J\u{202e}";
        let mut e = NewEntry {
            text: "fine".into(),
            ..NewEntry::default()
        }
        .into_entry(
            EntryId::from_parts(1_700_000_000_000, 1),
            Timestamp::UNIX_EPOCH,
            Date::constant(2026, 11, 23),
        )
        .expect("entry");
        e.text = format!("title {bad}\nmore {bad}");
        e.area = Some(format!("area{bad}"));
        e.tags = [format!("tag{bad}")].into_iter().collect();
        e.lesson = Some(format!("lesson {bad}"));
        e.next = Some(format!("next {bad}"));
        e.iterations.push(failup_journal::Iteration {
            id: failup_journal::IterationId::from_parts(1, 1),
            at: Timestamp::UNIX_EPOCH,
            tried: format!("tried {bad}"),
            outcome: None,
        });
        e
    }

    #[test]
    fn text_is_escaped_before_it_is_painted() {
        let e = hostile_entry();
        let colour = Style {
            color: true,
            unicode: true,
        };
        let mut questions = default_questions();
        questions[0].1 = "what \u{1b}[2J?".into();
        let mut builder = StatsBuilder::new(TimeZone::UTC);
        builder.add(&e);
        let figures = builder.finish(Date::constant(2026, 11, 24), None);
        let today_view = Today::build(vec![e.clone()], Date::constant(2026, 11, 23));
        for style in [Style::PLAIN, colour] {
            for out in [
                list_line(&e, &style, TITLE_WIDTH),
                entry(&e, &TimeZone::UTC, &questions, &style),
                stats(&figures, &style),
                today(
                    &today_view,
                    Date::constant(2026, 11, 23),
                    "lesson?",
                    &style,
                    true,
                )
                .0,
            ] {
                // The only escape sequences left are the colours this module paints.
                let unpainted = without_colours(&out);
                assert!(
                    !unpainted.chars().any(failup_journal::text::needs_escape),
                    "{out:?}"
                );
                assert!(
                    !out.contains("\u{1b}]0;") && !out.contains('\u{7}'),
                    "{out:?}"
                );
                assert!(
                    !out.contains('\u{9b}') && !out.contains('\u{202e}'),
                    "{out:?}"
                );
                assert!(out.contains("\\u{9b}"), "{out:?}");
            }
        }
        let shown = entry(&e, &TimeZone::UTC, &questions, &Style::PLAIN);
        assert!(shown.contains("what \\u{1b}[2J?"), "{shown}");
        assert!(
            shown.contains("lesson \\u{1b}]0;pwned\\u{7}\\u{1b}[31m\\u{9b}2J\\u{202e}"),
            "{shown}"
        );
    }

    /// `text` without its SGR sequences (`ESC [ digits and semicolons m`).
    fn without_colours(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("\u{1b}[") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let len = after
                .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                .unwrap_or(after.len());
            if after[len..].starts_with('m') {
                rest = &after[len + 1..];
            } else {
                // Not a colour: kept, so the check sees it.
                out.push_str(&rest[at..at + 2]);
                rest = after;
            }
        }
        out.push_str(rest);
        out
    }

    fn default_questions() -> [(ReframeField, String); 3] {
        failup_journal::REFRAME_QUESTIONS.map(|(f, q)| (f, q.to_owned()))
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
        let s = b.finish(Date::constant(2026, 11, 24), None);
        let text = stats(&s, &Style::PLAIN);
        assert!(text.contains("reps:       4 (4 micro, 0 macro)"));
        assert!(text.contains(&format!("2026-11-23 |{} 4", "#".repeat(BAR_WIDTH))));
        assert!(text.contains("2026-11-16 | 0"));
        let unicode = Style {
            color: false,
            unicode: true,
        };
        assert!(stats(&s, &unicode).contains(&format!("2026-11-23 │{} 4", "█".repeat(BAR_WIDTH))));
    }
}
