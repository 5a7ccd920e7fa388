//! `failup stats --svg FILE`: the same figures and charts as the terminal shows, as one
//! standalone SVG file that any browser or image viewer opens and that can be shared as it is.
//!
//! Hand-written: a handful of rectangles and text elements is less than a plotting crate's
//! setup, and the output stays byte-for-byte reproducible for snapshot tests.

use std::fmt::Write;

use failup_journal::Stats;
use failup_journal::text::shown;
use jiff::civil::Date;

use crate::{days, level, percent};

/// The colours of the charts: the heatmap's five steps, from an empty day to the busiest, and
/// the colour of the bars. Green is the contribution graph's; the others keep its lightness
/// steps, so each reads the same at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Palette {
    /// The contribution graph's greens.
    #[default]
    Green,
    /// Blues.
    Blue,
    /// Purples.
    Purple,
    /// Oranges.
    Orange,
}

impl Palette {
    /// Every palette, in the order a picker shows them.
    pub const ALL: [Palette; 4] = [
        Palette::Green,
        Palette::Blue,
        Palette::Purple,
        Palette::Orange,
    ];

    /// Its name, as settings and forms spell it.
    pub fn name(self) -> &'static str {
        match self {
            Palette::Green => "green",
            Palette::Blue => "blue",
            Palette::Purple => "purple",
            Palette::Orange => "orange",
        }
    }

    /// The palette called `name`, if there is one.
    pub fn named(name: &str) -> Option<Palette> {
        Palette::ALL.into_iter().find(|p| p.name() == name)
    }

    fn steps(self) -> [&'static str; 5] {
        match self {
            Palette::Green => ["#ebedf0", "#9be9a8", "#40c463", "#30a14e", "#216e39"],
            Palette::Blue => ["#ebedf0", "#a5d8ff", "#4dabf7", "#1c7ed6", "#1864ab"],
            Palette::Purple => ["#ebedf0", "#d0bfff", "#9775fa", "#7048e8", "#5f3dc4"],
            Palette::Orange => ["#ebedf0", "#ffd8a8", "#ffa94d", "#f76707", "#d9480f"],
        }
    }
}
const MICRO: &str = "#6ea8fe";
const MACRO: &str = "#e35d6a";
const WIDTH: usize = 760;
const CELL: usize = 11;
const STEP: usize = 13;
const LEFT: usize = 40;

/// Escapes text for SVG element content and attribute values: controls become visible
/// escapes first ([`shown`]), as on a terminal, since XML 1.0 forbids most of them; a newline
/// or a tab left after that is dropped, as every label here is one line.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in shown(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn text(out: &mut String, x: usize, y: usize, size: u8, body: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{y}" font-size="{size}">{}</text>"#,
        esc(body)
    );
}

/// The whole picture for `stats` as of `today`, in green.
pub fn stats(s: &Stats, today: Date) -> String {
    stats_in(s, today, Palette::Green)
}

/// The whole picture for `stats` as of `today`, in `palette`.
pub fn stats_in(s: &Stats, today: Date, palette: Palette) -> String {
    let steps = palette.steps();
    let mut body = String::new();
    let mut y = 30;
    text(
        &mut body,
        LEFT,
        y,
        18,
        &format!("failup: the practice as of {today}"),
    );
    y += 26;
    let pct = |n: usize| percent(s, n);
    for line in [
        format!("reps {} ({} micro, {} macro)", s.reps, s.micro, s.macro_),
        format!(
            "reflected {} · iterated {} · closed {}",
            pct(s.reflected),
            pct(s.iterated),
            pct(s.closed)
        ),
        format!(
            "median to first iteration {} · median to closed {} · streak {} week{}",
            days(s.median_days_to_first_iteration, "-"),
            days(s.median_days_to_closed, "-"),
            s.streak_weeks,
            if s.streak_weeks == 1 { "" } else { "s" }
        ),
    ] {
        text(&mut body, LEFT, y, 12, &line);
        y += 18;
    }

    // Year heatmap.
    y += 14;
    text(&mut body, LEFT, y, 14, "reps by day, last year");
    y += 20;
    let max = s.days.iter().map(|d| d.count).max().unwrap_or(0);
    for (week, chunk) in s.days.chunks(7).enumerate() {
        if let Some(first) = chunk.first() {
            if first.day.day() <= 7 {
                text(
                    &mut body,
                    LEFT + week * STEP,
                    y,
                    10,
                    &first.day.strftime("%b").to_string(),
                );
            }
        }
    }
    y += 6;
    for (row, name) in ["Mon", "Wed", "Fri"].iter().enumerate() {
        text(&mut body, 8, y + (row * 2) * STEP + CELL - 2, 9, name);
    }
    for (i, d) in s.days.iter().enumerate() {
        let (week, row) = (i / 7, i % 7);
        let _ = writeln!(
            body,
            r#"<rect x="{}" y="{}" width="{CELL}" height="{CELL}" rx="2" fill="{}"><title>{}: {}</title></rect>"#,
            LEFT + week * STEP,
            y + row * STEP,
            steps[usize::from(level(d.count, max))],
            d.day,
            d.count
        );
    }
    y += 7 * STEP + 24;

    // Entries per week, as the terminal shows them: one bar per week with its count.
    text(&mut body, LEFT, y, 14, "entries per week (week starting)");
    y += 8;
    let most_week = s.weeks.iter().map(|w| w.count).max().unwrap_or(0).max(1);
    let bar_room = WIDTH - 2 * LEFT - 120;
    for w in &s.weeks {
        y += 14;
        text(&mut body, LEFT, y, 10, &w.week.to_string());
        let len = (w.count * bar_room).div_ceil(most_week);
        let _ = writeln!(
            body,
            r#"<rect x="{}" y="{}" width="{len}" height="10" fill="{}"/>"#,
            LEFT + 80,
            y - 9,
            steps[3]
        );
        text(&mut body, LEFT + 86 + len, y, 10, &w.count.to_string());
    }
    y += 30;

    // Micro and macro per month, stacked.
    text(&mut body, LEFT, y, 14, "micro / macro per month");
    let _ = writeln!(
        body,
        r#"<rect x="{}" y="{}" width="10" height="10" fill="{MICRO}"/><rect x="{}" y="{}" width="10" height="10" fill="{MACRO}"/>"#,
        LEFT + 200,
        y - 10,
        LEFT + 260,
        y - 10
    );
    text(&mut body, LEFT + 214, y, 10, "micro");
    text(&mut body, LEFT + 274, y, 10, "macro");
    y += 12;
    let chart_h = 100;
    let most = s
        .months
        .iter()
        .map(|m| m.micro + m.macro_)
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = (WIDTH - 2 * LEFT) / s.months.len().max(1);
    for (i, m) in s.months.iter().enumerate() {
        let x = LEFT + i * slot;
        let hm = m.micro * chart_h / most;
        let hx = m.macro_ * chart_h / most;
        let base = y + chart_h;
        let _ = writeln!(
            body,
            r#"<rect x="{x}" y="{}" width="{}" height="{hm}" fill="{MICRO}"><title>{}: {} micro</title></rect>"#,
            base - hm,
            slot.saturating_sub(6),
            m.month,
            m.micro
        );
        let _ = writeln!(
            body,
            r#"<rect x="{x}" y="{}" width="{}" height="{hx}" fill="{MACRO}"><title>{}: {} macro</title></rect>"#,
            base - hm - hx,
            slot.saturating_sub(6),
            m.month,
            m.macro_
        );
        text(&mut body, x, base + 14, 9, &m.month);
    }
    y += chart_h + 40;

    // Top tags and areas, side by side.
    let top_y = y;
    for (col, (title, list, prefix)) in [
        ("top tags", &s.top_tags, "#"),
        ("top areas", &s.top_areas, ""),
    ]
    .into_iter()
    .enumerate()
    {
        let x = LEFT + col * 340;
        let mut y = top_y;
        text(&mut body, x, y, 14, title);
        y += 8;
        let most = list.first().map(|n| n.count).unwrap_or(1).max(1);
        if list.is_empty() {
            text(&mut body, x, y + 14, 11, "(none yet)");
        }
        for n in list {
            let w = n.count * 180 / most;
            let _ = writeln!(
                body,
                r#"<rect x="{x}" y="{}" width="{w}" height="12" fill="{}"/>"#,
                y + 4,
                steps[3]
            );
            text(
                &mut body,
                x + w + 6,
                y + 14,
                11,
                &format!("{prefix}{} ({})", n.name, n.count),
            );
            y += 18;
        }
    }
    let rows = s.top_tags.len().max(s.top_areas.len()).max(1);
    let height = top_y + 8 + rows * 18 + 24;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" fill="#24292f">"##
    );
    let _ = writeln!(
        out,
        r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a & \"b\">\u{7}\n"),
            "&lt;a &amp; &quot;b&quot;&gt;\\u{7}"
        );
        assert_eq!(
            esc("\u{1b}[31m\u{9b}\u{202e}"),
            "\\u{1b}[31m\\u{9b}\\u{202e}"
        );
    }
}
