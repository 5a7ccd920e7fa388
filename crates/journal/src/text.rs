//! Text that can drive a terminal, and how failup keeps it from doing so.
//!
//! A journal's text is shown in terminals, and a partner's stories, lessons and comments are
//! written by someone else's device, which may run a modified client. An escape sequence in
//! such text could recolour or clear the screen, set the window title, or (with the Unicode
//! bidirectional controls) make text read differently from the bytes it holds. So every
//! command that prints text passes it through [`shown`] first, and text typed or imported on
//! this device is refused by [`check_plain`] before it is written, so the journal never holds
//! such characters in the first place. Text that arrives from a peer is not refused (the
//! sender's client decides what it sends); it is escaped when shown.

use std::borrow::Cow;
use std::fmt::Write;

use crate::JournalError;

/// Whether `c` may act on a terminal or on the order text is shown in: the C0 controls
/// (U+0000 to U+001F) except newline and tab, DEL (U+007F), the C1 controls (U+0080 to U+009F,
/// among them the one-character CSI, U+009B), and the Unicode bidirectional controls (U+061C,
/// U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069).
pub fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}'
            | '\u{b}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `text` as it is safe to print: every character for which [`needs_escape`] holds is replaced by its
/// Rust-style escape, a backslash, `u`, and its code point in lowercase hexadecimal without
/// leading zeros between braces (ESC becomes `\u{1b}`, U+202E becomes `\u{202e}`). Newlines and
/// tabs stay as they are. The form is for people to read, not to parse back: a backslash
/// already in the text is left alone. Text with nothing to escape is borrowed, not copied.
pub fn shown(text: &str) -> Cow<'_, str> {
    escaped(text, |out, c| write!(out, "\\u{{{c:x}}}"))
}

/// JSON text as `serde_json` writes it, with DEL, the C1 controls and the bidirectional
/// controls (which JSON allows raw, and `serde_json` leaves raw) written as `\uXXXX` escapes
/// too, so JSON printed on a terminal cannot drive it either. The JSON stays valid and means
/// the same: `serde_json` already escapes every C0 control, and every other character
/// replaced here can only stand inside a string, where `\uXXXX` (each is in the Basic
/// Multilingual Plane) reads back as the same character. JSON with nothing to escape is
/// borrowed, not copied.
pub fn json_escaped(json: &str) -> Cow<'_, str> {
    escaped(json, |out, c| write!(out, "\\u{c:04x}"))
}

/// `text` with every character for which [`needs_escape`] holds written by `escape` (given its
/// code point), borrowed when there is none.
fn escaped(text: &str, escape: fn(&mut String, u32) -> std::fmt::Result) -> Cow<'_, str> {
    let Some(first) = text.find(needs_escape) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if needs_escape(c) {
            // Writing to a String cannot fail.
            let _ = escape(&mut out, u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether a field may span several lines (and hold tabs), or must be one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    /// A story, a reflection, a comment: newlines and tabs are part of the text.
    Many,
    /// A label, a tag, a name: a newline or a tab is refused too.
    One,
}

/// Refuses text with a character that could drive a terminal ([`needs_escape`]), and for a
/// one-line field also a newline or a tab, naming the field, the character and its position
/// (counted in characters from 1): `text contains a control character (U+001B) at position 3;
/// failup keeps text plain`.
pub fn check_plain(field: &str, text: &str, lines: Lines) -> Result<(), JournalError> {
    let refused = |c: char| needs_escape(c) || (lines == Lines::One && matches!(c, '\n' | '\t'));
    match text.chars().enumerate().find(|(_, c)| refused(*c)) {
        None => Ok(()),
        Some((at, c)) => Err(JournalError::Invalid(format!(
            "{field} contains a control character (U+{:04X}) at position {}; failup keeps text \
             plain",
            u32::from(c),
            at + 1
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first and last character of every range that is escaped.
    const EDGES: [(char, &str); 16] = [
        ('\u{0}', "\\u{0}"),
        ('\u{8}', "\\u{8}"),
        ('\u{b}', "\\u{b}"),
        ('\u{d}', "\\u{d}"),
        ('\u{1b}', "\\u{1b}"),
        ('\u{1f}', "\\u{1f}"),
        ('\u{7f}', "\\u{7f}"),
        ('\u{80}', "\\u{80}"),
        ('\u{9b}', "\\u{9b}"),
        ('\u{9f}', "\\u{9f}"),
        ('\u{61c}', "\\u{61c}"),
        ('\u{200e}', "\\u{200e}"),
        ('\u{200f}', "\\u{200f}"),
        ('\u{202a}', "\\u{202a}"),
        ('\u{202e}', "\\u{202e}"),
        ('\u{2066}', "\\u{2066}"),
    ];

    #[test]
    fn every_class_is_escaped_at_both_ends_of_its_range() {
        let mut all = EDGES.to_vec();
        all.push(('\u{2069}', "\\u{2069}"));
        for (c, escaped) in all {
            assert!(needs_escape(c), "{:?}", c);
            assert_eq!(shown(&format!("a{c}b")), format!("a{escaped}b"));
        }
    }

    #[test]
    fn neighbours_of_the_ranges_and_plain_text_are_untouched() {
        for c in [
            '\n', '\t', ' ', '~', '\u{a0}', '\u{61b}', '\u{61d}', '\u{200d}', '\u{2010}',
            '\u{2029}', '\u{202f}', '\u{2065}', '\u{206a}', 'é', '😀',
        ] {
            assert!(!needs_escape(c), "{:?}", c);
        }
        let plain = "missed the bus\n\tagain, naïvely — 😀 \\u{1b} stays as typed";
        assert!(matches!(shown(plain), Cow::Borrowed(s) if s == plain));
        assert!(matches!(shown(""), Cow::Borrowed("")));
    }

    #[test]
    fn escape_sequences_come_out_inert() {
        let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[31mred\u{9b}2J\u{202e}txt.exe";
        let out = shown(hostile);
        assert_eq!(
            out,
            "\\u{1b}]0;pwned\\u{7}\\u{1b}[31mred\\u{9b}2J\\u{202e}txt.exe"
        );
        assert!(!out.chars().any(needs_escape));
    }

    #[test]
    fn json_keeps_its_meaning_and_loses_its_raw_controls() {
        let value = serde_json::json!({
            "text": "\u{1b}]0;pwned\u{7} \u{7f}\u{9b}2J \u{202e}txt\u{2069}\n\tok",
            "plain": "é 😀",
        });
        for json in [
            serde_json::to_string(&value).expect("json"),
            serde_json::to_string_pretty(&value).expect("json"),
        ] {
            let safe = json_escaped(&json);
            assert!(!safe.chars().any(needs_escape), "{safe}");
            assert!(
                safe.contains("\\u009b") && safe.contains("\\u202e"),
                "{safe}"
            );
            let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
            assert_eq!(back, value);
        }
        let plain = serde_json::to_string(&serde_json::json!({"a": "b\nc"})).expect("json");
        assert!(matches!(json_escaped(&plain), Cow::Borrowed(_)));
    }

    #[test]
    fn check_plain_names_the_field_the_character_and_where() {
        let err = check_plain("text", "ab\u{1b}[31m", Lines::Many).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "text contains a control character (U+001B) at position 3; failup keeps text plain"
        );
        let err = check_plain("comment", "\u{202e}x", Lines::Many).expect_err("refused");
        assert!(err.to_string().contains("(U+202E) at position 1"), "{err}");
        assert!(check_plain("text", "two\nlines\twith a tab", Lines::Many).is_ok());
        let err = check_plain("tag", "a\tb", Lines::One).expect_err("one line");
        assert!(err.to_string().contains("(U+0009) at position 2"), "{err}");
        assert!(check_plain("tag", "a\nb", Lines::One).is_err());
        assert!(check_plain("area", "plain área", Lines::One).is_ok());
        for (c, _) in EDGES {
            assert!(check_plain("text", &c.to_string(), Lines::Many).is_err());
        }
    }
}
