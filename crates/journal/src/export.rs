//! The journal as files a person keeps: the stable JSON export (docs/export-format.md), which
//! `failup import` reads back, and a Markdown diary.
//!
//! Writers take any `io::Write` and an iterator of entries, so a 100,000-entry export streams
//! instead of building one string.

use std::io::{self, Write};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::JournalError;
use crate::entry::{Entry, REFRAME_QUESTIONS, Scale, Status};
use crate::text::{json_escaped, shown};

/// The `format` field of an export file.
pub const EXPORT_FORMAT: &str = "failup-export";
/// The schema version this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;
/// Largest import file accepted, in bytes; about three million typical entries.
pub const MAX_IMPORT_BYTES: u64 = 1 << 30;

/// An entry as shown to people and scripts: every stored field plus its derived status.
#[derive(Serialize)]
pub struct EntryView<'a> {
    /// The entry's fields.
    #[serde(flatten)]
    pub entry: &'a Entry,
    /// Derived from the fields, never read back.
    pub status: Status,
}

impl<'a> From<&'a Entry> for EntryView<'a> {
    fn from(entry: &'a Entry) -> Self {
        EntryView {
            entry,
            status: entry.status(),
        }
    }
}

#[derive(Serialize)]
struct Header<'a> {
    format: &'a str,
    version: u32,
    #[serde(with = "crate::serde_compact::timestamp")]
    exported_at: Timestamp,
}

#[derive(Deserialize)]
struct ExportFile {
    format: String,
    version: u32,
    entries: Vec<Entry>,
}

/// Writes the JSON export: a header object whose `entries` array holds one entry per line.
pub fn write_json<'a>(
    out: &mut dyn Write,
    exported_at: Timestamp,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> io::Result<()> {
    let header = serde_json::to_string(&Header {
        format: EXPORT_FORMAT,
        version: EXPORT_VERSION,
        exported_at,
    })?;
    // Reopen the header object to append the array without buffering every entry.
    let header = header.strip_suffix('}').unwrap_or(&header);
    write!(out, "{header},\"entries\":[")?;
    for (i, entry) in entries.into_iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        // Through a string, so C1 and bidirectional controls left raw by serde_json are
        // escaped too: an export printed on a terminal cannot drive it.
        let line = serde_json::to_string(&EntryView::from(entry))?;
        out.write_all(json_escaped(&line).as_bytes())?;
    }
    out.write_all(b"\n]}\n")
}

/// Reads a JSON export, checking its format, version and every entry.
pub fn read_json(bytes: &[u8]) -> Result<Vec<Entry>, JournalError> {
    let file: ExportFile = serde_json::from_slice(bytes).map_err(|e| {
        JournalError::Import(match e.classify() {
            serde_json::error::Category::Eof => format!("file ends early (line {})", e.line()),
            _ => e.to_string(),
        })
    })?;
    if file.format != EXPORT_FORMAT {
        return Err(JournalError::Import(format!(
            "not a failup export (format is {:?}, expected {EXPORT_FORMAT:?})",
            file.format
        )));
    }
    if file.version != EXPORT_VERSION {
        return Err(JournalError::Import(format!(
            "export version {} is not supported (this failup reads version {EXPORT_VERSION})",
            file.version
        )));
    }
    for entry in &file.entries {
        entry
            .validate()
            .map_err(|e| JournalError::Import(format!("entry {}: {e}", entry.id)))?;
    }
    Ok(file.entries)
}

/// Writes the journal as a Markdown diary, one section per day in the order given. A diary is
/// for reading, so its text is escaped as the commands show it ([`shown`]).
pub fn write_markdown<'a>(
    out: &mut dyn Write,
    tz: &TimeZone,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> io::Result<()> {
    writeln!(out, "# Failing up: my journal")?;
    let mut day = None;
    for e in entries {
        if day != Some(e.day) {
            day = Some(e.day);
            writeln!(out, "\n## {}", e.day.strftime("%A, %-d %B %Y"))?;
        }
        let scale = match e.scale {
            Scale::Micro => "",
            Scale::Macro => " (macro)",
        };
        writeln!(out, "\n### {}{scale}\n", shown(e.title()))?;
        let mut facts = vec![format!("status: {}", e.status().as_str())];
        if let Some(area) = &e.area {
            facts.push(format!("area: {}", shown(area)));
        }
        if !e.tags.is_empty() {
            let tags: Vec<String> = e.tags.iter().map(|t| format!("#{}", shown(t))).collect();
            facts.push(tags.join(" "));
        }
        if let Some(f) = e.feeling {
            facts.push(format!("felt {f}/5"));
        }
        facts.push(format!("id {}", e.id));
        writeln!(out, "*{}*\n", facts.join(" · "))?;
        let rest: Vec<&str> = e.text.lines().skip(1).collect();
        if !rest.is_empty() {
            writeln!(out, "{}\n", shown(rest.join("\n").trim()))?;
        }
        for (field, question) in REFRAME_QUESTIONS {
            if let Some(answer) = e.reframe(field) {
                writeln!(out, "**{question}** {}\n", shown(answer))?;
            }
        }
        if let Some(next) = &e.next {
            writeln!(out, "**Next step:** {}\n", shown(next))?;
        }
        for it in &e.iterations {
            let when = it
                .at
                .to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M");
            let outcome = it
                .outcome
                .map(|o| format!(" ({})", o.as_str()))
                .unwrap_or_default();
            writeln!(out, "- {when}: {}{outcome}", shown(&it.tried))?;
        }
        if let Some(closed) = e.closed_at {
            let when = closed.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%d");
            writeln!(out, "\nLoop closed on {when}.")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryId, Iteration, IterationId, NewEntry, Outcome};
    use jiff::civil::Date;

    fn sample() -> Vec<Entry> {
        let mut e = NewEntry {
            text: "Froze in the interview\nThe second question threw me.".into(),
            tags: vec!["career".into()],
            feeling: Some(4),
            lesson: Some("prepare stories, not answers".into()),
            area: Some("work".into()),
            ..NewEntry::default()
        }
        .into_entry(
            EntryId::from_parts(1_700_000_000_000, 7),
            "2026-11-20T10:00:00Z".parse().expect("ts"),
            Date::constant(2026, 11, 20),
        )
        .expect("entry");
        e.iterations.push(Iteration {
            id: IterationId::from_parts(1_700_000_000_001, 1),
            at: "2026-11-21T10:00:00Z".parse().expect("ts"),
            tried: "mock interview with Sam".into(),
            outcome: Some(Outcome::Better),
        });
        vec![e]
    }

    #[test]
    fn json_round_trips() {
        let entries = sample();
        let mut out = Vec::new();
        write_json(&mut out, Timestamp::UNIX_EPOCH, &entries).expect("write");
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(value["format"], EXPORT_FORMAT);
        assert_eq!(value["entries"][0]["status"], "iterating");
        assert_eq!(value["entries"][0]["use"], serde_json::Value::Null);
        assert_eq!(read_json(&out).expect("read"), entries);
    }

    #[test]
    fn empty_export_round_trips() {
        let mut out = Vec::new();
        write_json(&mut out, Timestamp::UNIX_EPOCH, &[]).expect("write");
        assert_eq!(read_json(&out).expect("read"), Vec::<Entry>::new());
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let mut out = Vec::new();
        write_json(&mut out, Timestamp::UNIX_EPOCH, &sample()).expect("write");
        let truncated = &out[..out.len() / 2];
        assert!(
            read_json(truncated)
                .expect_err("truncated")
                .to_string()
                .contains("ends early")
        );
        let other = br#"{"format":"something","version":1,"entries":[]}"#;
        assert!(
            read_json(other)
                .expect_err("format")
                .to_string()
                .contains("not a failup export")
        );
        let future = br#"{"format":"failup-export","version":9,"entries":[]}"#;
        assert!(
            read_json(future)
                .expect_err("version")
                .to_string()
                .contains("version 9")
        );
        let text = String::from_utf8(out)
            .expect("utf8")
            .replace("\"feeling\":4", "\"feeling\":7");
        assert!(
            read_json(text.as_bytes())
                .expect_err("feeling")
                .to_string()
                .contains("feeling")
        );
    }

    #[test]
    fn an_import_with_control_characters_is_refused_and_exports_are_inert() {
        let mut out = Vec::new();
        write_json(&mut out, Timestamp::UNIX_EPOCH, &sample()).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let hostile = text.replace("mock interview", "mock \\u001b[31minterview");
        let err = read_json(hostile.as_bytes()).expect_err("refused");
        assert!(
            err.to_string()
                .contains("iteration contains a control character (U+001B) at position 6"),
            "{err}"
        );
        // Entries written before the rule (or by another device) still export, inertly.
        let mut entries = sample();
        entries[0].lesson = Some("\u{9b}2J \u{202e}gnirts".into());
        let mut json = Vec::new();
        write_json(&mut json, Timestamp::UNIX_EPOCH, &entries).expect("write");
        let json = String::from_utf8(json).expect("utf8");
        assert!(json.contains("\\u009b2J \\u202egnirts"), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid json");
        assert_eq!(value["entries"][0]["lesson"], "\u{9b}2J \u{202e}gnirts");
        let mut md = Vec::new();
        write_markdown(&mut md, &TimeZone::UTC, &entries).expect("write");
        let md = String::from_utf8(md).expect("utf8");
        assert!(md.contains("\\u{9b}2J \\u{202e}gnirts"), "{md}");
        assert!(!md.chars().any(crate::text::needs_escape));
    }

    #[test]
    fn markdown_reads_as_a_diary() {
        let mut out = Vec::new();
        write_markdown(&mut out, &TimeZone::UTC, &sample()).expect("write");
        let md = String::from_utf8(out).expect("utf8");
        assert!(md.contains("## Friday, 20 November 2026"));
        assert!(md.contains("### Froze in the interview"));
        assert!(md.contains("**What did this teach me about my next level?** prepare stories"));
        assert!(md.contains("- 2026-11-21 10:00: mock interview with Sam (better)"));
    }
}
