//! Writing an entry in `$EDITOR`: a template that holds the reframe questions as sections, and
//! the parser that reads it back.
//!
//! The template is plain text so any editor works: the story comes first, then one `## `
//! section per field. Lines starting with `#` are comments or headings; a story line that
//! starts with `#` is written with a backslash before it (`\# Heading`) and read back without
//! it, so Markdown headings in a story survive the round trip. Saving an empty story aborts, as
//! git does with an empty commit message.

use std::io::Write;
use std::process::Command;

use anyhow::{Context, Result, bail};
use failup_journal::{Entry, REFRAME_QUESTIONS, ReframeField};

/// The questions and the story's starting text, from the config file or the defaults.
#[derive(Clone, Debug)]
pub struct Prompts {
    /// The three reframe questions, in template order.
    pub questions: [(ReframeField, String); 3],
    /// Text a new story starts with.
    pub story: String,
}

impl Default for Prompts {
    fn default() -> Prompts {
        Prompts {
            questions: REFRAME_QUESTIONS.map(|(f, q)| (f, q.to_owned())),
            story: String::new(),
        }
    }
}

/// The sections after the story, in template order, each with the field it fills.
fn sections(prompts: &Prompts) -> Vec<(Section, String)> {
    let mut v: Vec<(Section, String)> = prompts
        .questions
        .iter()
        .map(|(f, q)| (Section::Reframe(*f), q.clone()))
        .collect();
    v.extend(FIXED.map(|(s, h)| (s, h.to_owned())));
    v
}

/// The sections whose headings are not questions a person can change.
const FIXED: [(Section, &str); 6] = [
    (Section::Next, "Next step"),
    (Section::Area, "Area"),
    (Section::Tags, "Tags (separated by spaces)"),
    (Section::Feeling, "Feeling (1-5)"),
    (Section::Scale, "Scale (micro or macro)"),
    (Section::Day, "Day (YYYY-MM-DD)"),
];

/// Headings a reframe question must not take: the template could not tell the sections apart.
pub fn fixed_headings() -> impl Iterator<Item = &'static str> {
    FIXED.iter().map(|(_, h)| *h)
}

/// A field the template can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// One of the reframe answers.
    Reframe(ReframeField),
    /// The next step.
    Next,
    /// The area.
    Area,
    /// The tags.
    Tags,
    /// The feeling.
    Feeling,
    /// The scale.
    Scale,
    /// The day.
    Day,
}

/// What the person wrote: the story and the text of every section (empty when left empty).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Form {
    /// The story.
    pub text: String,
    /// Section texts, trimmed.
    pub sections: Vec<(Section, String)>,
}

impl Form {
    /// Whether the section's heading was in the text at all.
    pub fn has(&self, section: Section) -> bool {
        self.sections.iter().any(|(s, _)| *s == section)
    }

    /// The trimmed text of a section, `None` when empty.
    pub fn get(&self, section: Section) -> Option<&str> {
        self.sections
            .iter()
            .find(|(s, _)| *s == section)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// The template, filled with an existing entry's values when editing.
pub fn template(prompts: &Prompts, entry: Option<&Entry>, today: &str) -> String {
    let mut out = String::from(
        "# Write what happened below. The first line is its title.\n\
         # Lines starting with '# ' are ignored (write \\# to start a line with #);\n\
         # an empty story cancels.\n",
    );
    match entry {
        Some(e) => out.push_str(&escape(&e.text)),
        None => out.push_str(&escape(&prompts.story)),
    }
    out.push_str("\n\n");
    for (section, heading) in sections(prompts) {
        let value = match (entry, section) {
            (Some(e), Section::Reframe(f)) => e.reframe(f).unwrap_or("").to_owned(),
            (Some(e), Section::Next) => e.next.clone().unwrap_or_default(),
            (Some(e), Section::Area) => e.area.clone().unwrap_or_default(),
            (Some(e), Section::Tags) => e.tags.iter().cloned().collect::<Vec<_>>().join(" "),
            (Some(e), Section::Feeling) => e.feeling.map(|f| f.to_string()).unwrap_or_default(),
            (Some(e), Section::Scale) => e.scale.as_str().to_owned(),
            (Some(e), Section::Day) => e.day.to_string(),
            (None, Section::Scale) => "micro".to_owned(),
            (None, Section::Day) => today.to_owned(),
            (None, _) => String::new(),
        };
        out.push_str(&format!("## {heading}\n{}\n\n", escape(&value)));
    }
    out
}

/// Puts a backslash before every line that starts with `#` or a backslash.
fn escape(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with('#') || l.starts_with('\\') {
                format!("\\{l}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a filled template back. The built-in questions are understood as headings too, so a
/// template written before the questions were changed still reads back.
pub fn parse(prompts: &Prompts, text: &str) -> Result<Form> {
    let mut known = sections(prompts);
    known.extend(sections(&Prompts::default()));
    let mut form = Form::default();
    let mut current: Option<Section> = None;
    let mut buf = String::new();
    let flush = |form: &mut Form, current: Option<Section>, buf: &mut String| {
        let value = buf.trim().to_owned();
        match current {
            None => form.text = value,
            Some(s) => form.sections.push((s, value)),
        }
        buf.clear();
    };
    for line in text.lines() {
        if line.starts_with("# ") || line == "#" {
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            let section = known
                .iter()
                .find(|(_, h)| h.eq_ignore_ascii_case(heading.trim()))
                .map(|(s, _)| *s)
                .with_context(|| format!("unknown section {:?} in the template", heading.trim()))?;
            flush(&mut form, current, &mut buf);
            if form.has(section) || current == Some(section) {
                bail!(
                    "the section {:?} appears twice in the template",
                    heading.trim()
                );
            }
            current = Some(section);
            continue;
        }
        buf.push_str(line.strip_prefix('\\').unwrap_or(line));
        buf.push('\n');
    }
    flush(&mut form, current, &mut buf);
    Ok(form)
}

/// Opens `editor` (the `editor` setting) on `initial` and returns what was saved.
pub fn edit(editor: &str, initial: &str) -> Result<String> {
    let mut file = tempfile::Builder::new()
        .prefix("failup-")
        .suffix(".md")
        .tempfile()
        .context("cannot create a file for the editor")?;
    file.write_all(initial.as_bytes())
        .and_then(|()| file.flush())
        .context("cannot write the editor file")?;
    // Through the shell, so EDITOR may carry arguments ("code --wait").
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .with_context(|| format!("cannot start editor {editor:?}"))?;
    if !status.success() {
        bail!("editor {editor:?} exited with {status}; nothing was saved");
    }
    std::fs::read_to_string(file.path()).context("cannot read back the editor file")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_questions_and_story_make_the_template_and_read_back() {
        let mut p = Prompts {
            story: "What happened:\n# not a comment".into(),
            ..Prompts::default()
        };
        p.questions[0].1 = "Where is the lesson?".into();
        let t = template(&p, None, "2026-11-23");
        assert!(t.contains("What happened:\n\\# not a comment\n"), "{t}");
        assert!(t.contains("## Where is the lesson?\n"), "{t}");
        let t = t.replacen(
            "## Where is the lesson?\n",
            "## Where is the lesson?\nslow down\n",
            1,
        );
        let form = parse(&p, &t).expect("parse");
        assert_eq!(form.text, "What happened:\n# not a comment");
        assert_eq!(
            form.get(Section::Reframe(ReframeField::Lesson)),
            Some("slow down")
        );
        // A template from before the change still reads back.
        let old = template(&Prompts::default(), None, "2026-11-23");
        assert!(parse(&p, &old).is_ok());
    }

    #[test]
    fn empty_template_parses_to_nothing_but_defaults() {
        let form = parse(
            &Prompts::default(),
            &template(&Prompts::default(), None, "2026-11-23"),
        )
        .expect("parse");
        assert_eq!(form.text, "");
        assert_eq!(form.get(Section::Scale), Some("micro"));
        assert_eq!(form.get(Section::Day), Some("2026-11-23"));
        assert_eq!(form.get(Section::Reframe(ReframeField::Lesson)), None);
    }

    #[test]
    fn filled_template_reads_back() {
        let t = template(&Prompts::default(), None, "2026-11-23").replacen(
            "cancels.\n\n",
            "cancels.\nLost my temper\nin the meeting\n",
            1,
        );
        let t = t.replacen(
            "## What did this teach me about my next level?\n",
            "## What did this teach me about my next level?\nPause first\n",
            1,
        );
        let form = parse(&Prompts::default(), &t).expect("parse");
        assert_eq!(form.text, "Lost my temper\nin the meeting");
        assert_eq!(
            form.get(Section::Reframe(ReframeField::Lesson)),
            Some("Pause first")
        );
        assert!(parse(&Prompts::default(), "story\n## Nonsense\n").is_err());
    }

    #[test]
    fn story_lines_that_look_like_markup_survive_a_round_trip() {
        use failup_journal::{EntryId, NewEntry};
        let e = NewEntry {
            text: "Title\n# a markdown heading\n## not a section\n\\ a backslash line".into(),
            lesson: Some("# hashes in a lesson".into()),
            ..NewEntry::default()
        }
        .into_entry(
            EntryId::from_parts(1, 1),
            jiff::Timestamp::UNIX_EPOCH,
            jiff::civil::Date::constant(2026, 1, 1),
        )
        .expect("entry");
        let p = Prompts::default();
        let form = parse(&p, &template(&p, Some(&e), "2026-01-01")).expect("parse");
        assert_eq!(form.text, e.text);
        assert_eq!(
            form.get(Section::Reframe(ReframeField::Lesson)),
            Some("# hashes in a lesson")
        );
    }
}
