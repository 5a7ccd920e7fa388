//! failup's figures as people read them, the same on a terminal and in the browser: the
//! practice's charts as one standalone SVG ([`svg::stats`]), a count with its share, a number of
//! days, a heatmap level, and how long ago a time was.
//!
//! Pure functions over [`failup_journal::Stats`] and times: no store, no terminal, no markup
//! engine, so both front ends draw the same picture from the same figures.

use failup_journal::Stats;
use jiff::Timestamp;

pub mod svg;

/// A count with its share of reps: `3 (60%)`.
pub fn percent(stats: &Stats, count: usize) -> String {
    format!("{count} ({:.0}%)", stats.share(count) * 100.0)
}

/// A number of days, or `none` when there is nothing to measure.
pub fn days(d: Option<f64>, none: &str) -> String {
    d.map(|d| format!("{d} days"))
        .unwrap_or_else(|| none.into())
}

/// A heatmap level from 0 (nothing) to 4 (the busiest day).
pub fn level(count: usize, max: usize) -> u8 {
    if count == 0 || max == 0 {
        0
    } else {
        u8::try_from((count * 4).div_ceil(max).clamp(1, 4)).unwrap_or(4)
    }
}

/// How long before `now` the time `t` was: "just now", "3 min ago", "2 h ago", "1 day ago",
/// "5 days ago". A time after `now` (another device's clock ahead) reads as "just now".
pub fn ago(t: Timestamp, now: Timestamp) -> String {
    match now.as_second().saturating_sub(t.as_second()) {
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => {
            let days = s / 86_400;
            format!("{days} day{} ago", if days == 1 { "" } else { "s" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_how_long_ago() {
        let now: Timestamp = "2026-12-02T12:00:00Z".parse().expect("a time");
        let at = |s: &str| s.parse::<Timestamp>().expect("a time");
        assert_eq!(ago(at("2026-12-02T11:59:30Z"), now), "just now");
        assert_eq!(ago(at("2026-12-02T12:05:00Z"), now), "just now");
        assert_eq!(ago(at("2026-12-02T11:57:00Z"), now), "3 min ago");
        assert_eq!(ago(at("2026-12-02T09:00:00Z"), now), "3 h ago");
        assert_eq!(ago(at("2026-12-01T11:00:00Z"), now), "1 day ago");
        assert_eq!(ago(at("2026-11-27T11:00:00Z"), now), "5 days ago");
    }

    #[test]
    fn levels_spread_over_four_steps() {
        assert_eq!(level(0, 10), 0);
        assert_eq!(level(1, 10), 1);
        assert_eq!(level(10, 10), 4);
        assert_eq!(level(3, 0), 0);
    }
}
