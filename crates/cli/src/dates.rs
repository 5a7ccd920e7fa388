//! Days as people type them: an ISO date, `today`, `yesterday`, or a count of days or weeks ago.

use anyhow::{Context, Result, bail};
use jiff::ToSpan;
use jiff::civil::Date;

/// Parses `text` relative to `today`.
pub fn parse_day(text: &str, today: Date) -> Result<Date> {
    let t = text.trim().to_ascii_lowercase();
    let ago = |n: &str, unit_days: i64| -> Result<Date> {
        let n: i64 = n
            .parse()
            .ok()
            .filter(|n| *n >= 0 && *n <= 100_000)
            .with_context(|| {
                format!("{text:?} is not a date (try YYYY-MM-DD, today, yesterday, 3d or 2w)")
            })?;
        Ok(today.checked_sub((n * unit_days).days())?)
    };
    let date = match t.as_str() {
        "today" => today,
        "yesterday" => today.yesterday()?,
        _ if t.ends_with('d') && t.len() > 1 => ago(&t[..t.len() - 1], 1)?,
        _ if t.ends_with('w') && t.len() > 1 => ago(&t[..t.len() - 1], 7)?,
        _ => match t.parse::<Date>() {
            Ok(d) if d.year() >= 1 => d,
            _ => bail!("{text:?} is not a date (try YYYY-MM-DD, today, yesterday, 3d or 2w)"),
        },
    };
    Ok(date)
}

/// Parses a span such as `90s`, `10m`, `2h` or `1d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration> {
    let t = text.trim();
    let bad = || anyhow::anyhow!("{text:?} is not a duration (try 30s, 10m, 2h or 1d)");
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// A duration as a person says it: the largest unit that measures it exactly ("10 minutes",
/// "1 hour", "90 seconds", "7 days").
pub fn spoken(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = [(86_400, "day"), (3600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(size, _)| secs >= *size && secs % size == 0)
        .map_or((secs, "second"), |(size, unit)| (secs / size, unit));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A time (RFC 3339) as how long ago it was, for a terminal: "just now", "3 min ago", "2 h
/// ago", "5 days ago"; the text as it is if it does not read as a time.
pub fn ago(text: &str, now: jiff::Timestamp) -> String {
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => failup_report::ago(t, now),
        Err(_) => text.to_owned(),
    }
}

/// An invite's time to live, `--ttl`: at most seven days.
pub fn invite_ttl(text: &str) -> Result<std::time::Duration> {
    let ttl = parse_duration(text)?;
    let max = failup_node::pairing::MAX_INVITE_TTL;
    if ttl > max {
        anyhow::bail!("--ttl {text}: an invite lasts at most {}", spoken(max));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_how_long_ago() {
        let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().expect("now");
        assert_eq!(ago("2026-12-02T11:59:30Z", now), "just now");
        assert_eq!(ago("2026-12-02T11:57:00Z", now), "3 min ago");
        assert_eq!(ago("2026-12-02T09:00:00Z", now), "3 h ago");
        assert_eq!(ago("2026-12-01T11:00:00Z", now), "1 day ago");
        assert_eq!(ago("not a time", now), "not a time");
    }

    #[test]
    fn durations_are_spoken_in_their_largest_exact_unit() {
        let s = |n| spoken(std::time::Duration::from_secs(n));
        assert_eq!(s(600), "10 minutes");
        assert_eq!(s(60), "1 minute");
        assert_eq!(s(90), "90 seconds");
        assert_eq!(s(3600), "1 hour");
        assert_eq!(s(7 * 86_400), "7 days");
        assert!(invite_ttl("30d").is_err() && invite_ttl("0s").is_err());
        assert_eq!(spoken(invite_ttl("1s").expect("1s")), "1 second");
        assert_eq!(
            invite_ttl("7d").ok(),
            Some(failup_node::pairing::MAX_INVITE_TTL)
        );
    }

    #[test]
    fn accepts_the_documented_forms() {
        let today = Date::constant(2026, 11, 23);
        let p = |s| parse_day(s, today).expect(s);
        assert_eq!(p("2026-01-02"), Date::constant(2026, 1, 2));
        assert_eq!(p("Today"), today);
        assert_eq!(p("yesterday"), Date::constant(2026, 11, 22));
        assert_eq!(p("3d"), Date::constant(2026, 11, 20));
        assert_eq!(p("2w"), Date::constant(2026, 11, 9));
        for bad in ["2026-13-01", "tomorrowish", "d", "-3d", "2026-02-30", ""] {
            assert!(parse_day(bad, today).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").expect("m").as_secs(), 600);
        assert_eq!(parse_duration("30s").expect("s").as_secs(), 30);
        for bad in ["", "m", "10", "10x", "0s", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
