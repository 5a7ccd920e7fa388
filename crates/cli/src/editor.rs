//! Writing an entry in `$EDITOR`: a template that holds the reframe questions as sections, and
//! the parser that reads it back.
//!
//! The template is plain text so any editor works: the story comes first, then one `## `
//! section per field. The template's own comment lines (its three opening lines, and the
//! `# failup: ` lines that say why a form was refused) are dropped when it is read back; every
//! other line is kept, so a Markdown heading typed in a story stays. A story line of an entry
//! that starts with `#` is written with a backslash before it (`\# Heading`) and read back
//! without it. A template saved as it was shown cancels, as git does with an empty message.
//!
//! Nothing typed is lost: the file the editor works on is a draft in the home (`drafts/`,
//! owner-only) for as long as the session lasts, so a killed process leaves it behind to be
//! offered back; a refused form reopens the editor on what was written with the reason at the
//! top, and a second refusal, or quitting the editor, keeps the draft.

use std::io::Write;
use std::path::{Path, PathBuf};
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
    let mut out = String::new();
    for line in HEADER {
        out.push_str(line);
        out.push('\n');
    }
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

/// The template's opening comment lines, dropped when it is read back.
const HEADER: [&str; 3] = [
    "# Write what happened below. The first line is its title.",
    "# These three lines are dropped; every other line is kept. '## ' lines start sections.",
    "# Save it unchanged to cancel.",
];

/// The start of a comment line failup adds to say why a form was refused.
const REFUSAL: &str = "# failup: ";

/// Whether `line` is one of the template's own comments.
fn is_comment(line: &str) -> bool {
    HEADER.contains(&line) || line.starts_with(REFUSAL) || OLD_HEADER.contains(&line)
}

/// The opening lines of templates before drafts (one may be resumed).
const OLD_HEADER: [&str; 3] = [
    "# Write what happened below. The first line is its title.",
    "# Lines starting with '# ' are ignored (write \\# to start a line with #);",
    "# an empty story cancels.",
];

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
        if is_comment(line) {
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

/// The drafts of a home: `drafts/`, owner-only, one file per unfinished form.
pub struct Drafts {
    dir: PathBuf,
}

/// A draft found in the home.
pub struct Draft {
    /// Its file.
    pub path: PathBuf,
    /// When it was last written.
    pub modified: std::time::SystemTime,
    /// Its story's first line, for the person to recognise it.
    pub title: String,
}

impl Drafts {
    /// The drafts of `home`.
    pub fn of(home: &Path) -> Drafts {
        Drafts {
            dir: home.join("drafts"),
        }
    }

    /// The file for the draft `name` (`log-<ms>` for a new entry, `edit-<id>` for an entry).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.md"))
    }

    /// Drafts whose name starts with `prefix`, newest first.
    pub fn find(&self, prefix: &str) -> Result<Vec<Draft>> {
        let read = match std::fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.dir.display()));
            }
        };
        let mut out = Vec::new();
        for item in read {
            let item = item.with_context(|| format!("cannot read {}", self.dir.display()))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !name.starts_with(prefix) || !name.ends_with(".md") {
                continue;
            }
            let path = item.path();
            let modified = item
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let title = text
                .lines()
                .find(|l| !is_comment(l) && !l.trim().is_empty())
                .unwrap_or("")
                .chars()
                .take(60)
                .collect();
            out.push(Draft {
                path,
                modified,
                title,
            });
        }
        out.sort_by_key(|d| std::cmp::Reverse(d.modified));
        Ok(out)
    }
}

/// Writes `text` to `path`, owner-only, creating the drafts directory, durably: a draft is
/// what stands between a person and losing what they wrote.
fn write_draft(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(failup_home::HOME_MODE)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(failup_home::PRIVATE_MODE)
        .open(path)
        .with_context(|| format!("cannot write the draft {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the draft {}", path.display()))
}

/// What an editor session gave: a value the form was accepted as, with its draft, which the
/// caller removes once the value is stored ([`Written::stored`]).
pub struct Written<T> {
    /// What the form was accepted as.
    pub value: T,
    draft: PathBuf,
}

impl<T> Written<T> {
    /// The value is stored: the draft goes.
    pub fn stored(self) -> T {
        // A draft that cannot be removed is only a stale offer next time, never a loss.
        let _ = std::fs::remove_file(&self.draft);
        self.value
    }
}

/// Runs `editor` on the draft at `draft` (written with `initial` unless `resumed`) until
/// `accept` takes what was written. `pristine` is the text that means "nothing typed": saved
/// as it is, the session is cancelled and the draft removed (`Ok(None)`). A form `accept`
/// refuses reopens the editor once with the reason at the top; a second refusal, quitting the
/// editor, or an editor that fails keeps the draft and ends with an error that says `resume`.
pub fn session<T>(
    editor: &str,
    draft: &Path,
    initial: &str,
    pristine: &str,
    resume: &str,
    mut accept: impl FnMut(&str) -> Result<T>,
) -> Result<Option<Written<T>>> {
    if !draft.exists() {
        write_draft(draft, initial)?;
    }
    let kept = |why: String| anyhow::anyhow!("{why}; what you wrote is kept: {resume}");
    let mut reopened: Option<String> = None;
    for attempt in 0..2 {
        // Through the shell, so EDITOR may carry arguments ("code --wait").
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(draft)
            .status()
            .with_context(|| format!("cannot start editor {editor:?}"))?;
        let text = std::fs::read_to_string(draft)
            .with_context(|| format!("cannot read back the draft {}", draft.display()))?;
        let body = without_refusals(&text);
        if body == without_refusals(pristine) {
            let _ = std::fs::remove_file(draft);
            if !status.success() {
                bail!("editor {editor:?} exited with {status}; nothing was written");
            }
            return Ok(None);
        }
        if !status.success() {
            return Err(kept(format!("editor {editor:?} exited with {status}")));
        }
        if reopened.as_deref() == Some(text.as_str()) {
            return Err(kept("the editor was closed without a change".into()));
        }
        match accept(&body) {
            Ok(value) => {
                return Ok(Some(Written {
                    value,
                    draft: draft.to_owned(),
                }));
            }
            Err(e) if attempt == 0 => {
                let mut again = String::new();
                for line in format!("{e:#}").lines() {
                    again.push_str(REFUSAL);
                    again.push_str(line);
                    again.push('\n');
                }
                again.push_str(REFUSAL);
                again.push_str(
                    "fix it and save; close the editor without saving to keep this as a draft\n",
                );
                again.push_str(&body);
                write_draft(draft, &again)?;
                reopened = Some(again);
            }
            Err(e) => return Err(kept(format!("{e:#}"))),
        }
    }
    Err(kept("the form was refused twice".into()))
}

/// `text` without the lines that say why it was refused before.
fn without_refusals(text: &str) -> String {
    let mut out: String = text
        .lines()
        .filter(|l| !l.starts_with(REFUSAL))
        .collect::<Vec<_>>()
        .join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
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
            "# Save it unchanged to cancel.\n\n",
            "# Save it unchanged to cancel.\nLost my temper\nin the meeting\n",
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
    fn a_heading_typed_in_a_story_is_kept_and_only_failups_comments_go() {
        let t = template(&Prompts::default(), None, "2026-11-23").replacen(
            "# Save it unchanged to cancel.\n\n",
            "# Save it unchanged to cancel.\n# failup: feeling 9 is not from 1 to 5\nThe launch\n# What went wrong\n#\nall of it\n",
            1,
        );
        let form = parse(&Prompts::default(), &t).expect("parse");
        assert_eq!(form.text, "The launch\n# What went wrong\n#\nall of it");
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
