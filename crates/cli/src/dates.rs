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

#[cfg(test)]
mod tests {
    use super::*;

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
}
