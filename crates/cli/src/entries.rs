//! The commands on single entries: log, list, show, reflect, iterate, edit, close, reopen and
//! delete, with the editor template and the prompts they fill entries from.

use std::io::{self, BufRead, IsTerminal, Read, Write};

use anyhow::{Context, Result, bail};
use failup_journal::export::EntryView;
use failup_journal::text::shown;
use failup_journal::{
    Entry, EntryPatch, Filter, Iteration, IterationId, NewEntry, REFRAME_QUESTIONS, ReframeField,
    Scale, Status,
};
use jiff::civil::Date;

use crate::args::{EditArgs, FieldArgs, LogArgs, OutcomeArg};
use crate::editor::{self, Section};
use crate::render::{self, short};
use crate::{Ctx, ask, fetch, outcome_of, scale_of};
use crate::{args, partners};

pub(crate) fn log(ctx: &Ctx, args: LogArgs, out: &mut dyn Write) -> Result<()> {
    let mut new = new_entry(ctx, &args.fields)?;
    if args.is_macro {
        new.scale = Scale::Macro;
    }
    let mut draft = None;
    if args.resume && !args.text.is_empty() {
        bail!("--resume opens the kept draft in the editor: give no text with it");
    }
    if !args.text.is_empty() {
        new.text = args.text.join(" ");
    } else if !args.resume && !io::stdin().is_terminal() {
        let max = failup_journal::entry::MAX_TEXT_BYTES;
        let mut bytes = Vec::new();
        io::stdin()
            .lock()
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .context("cannot read the entry from standard input")?;
        // Refuse before trimming: a cut-off story must never pass for a whole one.
        if bytes.len() > max {
            bail!("text is longer than {max} bytes");
        }
        new.text = String::from_utf8(bytes).context("standard input is not UTF-8 text")?;
    } else {
        let written = log_in_editor(ctx, &new, args.resume)?;
        new = written.value.clone();
        draft = Some(written);
    }
    let logged = ctx.open().and_then(|mut j| j.log(new, ctx.now, ctx.today));
    let entry = match (logged, draft) {
        (Ok(entry), draft) => {
            draft.map(editor::Written::stored);
            entry
        }
        (Err(e), Some(_)) => {
            return Err(e.context(
                "not logged; what you wrote is kept: run `failup log --resume` to try again",
            ));
        }
        (Err(e), None) => return Err(e),
    };
    if ctx.json {
        crate::print_json(
            out,
            &serde_json::json!({"id": entry.id.to_string()}),
            crate::JsonLayout::Line,
        )?;
    } else {
        writeln!(out, "{}", entry.id)?;
    }
    if let Some(with) = &args.share {
        // Logged already: a failed share is reported, and the entry stays, private.
        partners::share_id(ctx, entry.id, with, None)
            .with_context(|| format!("logged {}, but not shared", entry.id))?;
    }
    Ok(())
}

/// A new entry written in the editor, on a draft: the newest kept one when resuming (or when
/// the person takes it up when offered), else a fresh one. The form is checked as the store
/// would check it, so a value it refuses reopens the editor instead of losing the story.
fn log_in_editor(ctx: &Ctx, base: &NewEntry, resume: bool) -> Result<editor::Written<NewEntry>> {
    let drafts = editor::Drafts::of(&ctx.home);
    let kept = drafts.find("log-")?;
    let fresh = || drafts.path(&format!("log-{}", ctx.now.as_millisecond()));
    let path = match kept.first() {
        None if resume => bail!("no draft to resume: nothing unfinished was kept in this home"),
        None => fresh(),
        Some(d) if resume => d.path.clone(),
        Some(d) => {
            let answer = ask(&format!(
                "an unfinished entry from {} was kept{}; resume it? [Y/n] ",
                when(ctx, d.modified),
                if d.title.is_empty() {
                    String::new()
                } else {
                    format!(" (\"{}\")", shown(&d.title))
                }
            ))?;
            if crate::yes(&answer, true) {
                d.path.clone()
            } else {
                eprintln!("starting a new entry; the kept one waits for `failup log --resume`");
                fresh()
            }
        }
    };
    if kept.len() > 1 && resume {
        eprintln!(
            "{} more unfinished entries are kept; `failup log --resume` takes them newest first",
            kept.len() - 1
        );
    }
    let prompts = ctx.prompts()?;
    let initial = editor::template(&prompts, None, &ctx.today.to_string());
    let written = editor::session(
        &ctx.editor()?,
        &path,
        &initial,
        &initial,
        "run `failup log --resume`",
        |body| {
            let form = editor::parse(&prompts, body)?;
            // The story template left as it was is no story either.
            if form.text.is_empty() || form.text.trim() == prompts.story.trim() {
                bail!("the story is empty: write what happened on the first line");
            }
            let mut new = base.clone();
            new.text = form.text.clone();
            fill_from_form(ctx, &mut new, &form)?;
            // Checked here as the store checks it, so a refusal comes back to the editor.
            new.clone().into_entry(
                failup_journal::EntryId::from_parts(0, 0),
                ctx.now,
                ctx.today,
            )?;
            Ok(new)
        },
    )?;
    written.context("nothing logged: the story was left empty")
}

/// When a draft was last written, as a person reads it.
fn when(ctx: &Ctx, t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| {
            t.to_zoned_datetime(ctx.tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| "earlier".into())
}

pub(crate) fn new_entry(ctx: &Ctx, f: &FieldArgs) -> Result<NewEntry> {
    Ok(NewEntry {
        text: String::new(),
        scale: Scale::Micro,
        day: f.on.as_deref().map(|d| ctx.parse_day(d)).transpose()?,
        area: f.area.clone(),
        tags: f.tags.clone(),
        feeling: f.feeling.and_then(|f| f.0),
        lesson: f.lesson.clone(),
        muscle: f.muscle.clone(),
        use_it: f.use_it.clone(),
        next: f.next.clone(),
    })
}

pub(crate) fn form_values(ctx: &Ctx, form: &editor::Form) -> Result<FormValues> {
    let text = |s| form.get(s).map(str::to_owned);
    let reframe = REFRAME_QUESTIONS.map(|(f, _)| (f, text(Section::Reframe(f))));
    let feeling = form
        .get(Section::Feeling)
        .map(|f| {
            f.parse::<u8>()
                .with_context(|| format!("feeling {f:?} is not a number from 1 to 5"))
        })
        .transpose()?;
    Ok(FormValues {
        reframe,
        next: text(Section::Next),
        area: text(Section::Area),
        tags: form
            .get(Section::Tags)
            .map(|t| t.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        feeling,
        scale: form.get(Section::Scale).map(str::parse).transpose()?,
        day: form
            .get(Section::Day)
            .map(|d| ctx.parse_day(d))
            .transpose()?,
    })
}

/// Fields typed on the command line win over the same fields in the form.
pub(crate) fn fill_from_form(ctx: &Ctx, new: &mut NewEntry, form: &editor::Form) -> Result<()> {
    let v = form_values(ctx, form)?;
    for (field, value) in v.reframe {
        let slot = match field {
            ReframeField::Lesson => &mut new.lesson,
            ReframeField::Muscle => &mut new.muscle,
            ReframeField::Use => &mut new.use_it,
        };
        if slot.is_none() {
            *slot = value;
        }
    }
    new.next = new.next.take().or(v.next);
    new.area = new.area.take().or(v.area);
    new.tags.extend(v.tags);
    new.feeling = new.feeling.or(v.feeling);
    new.day = new.day.or(v.day);
    if new.scale == Scale::Micro {
        new.scale = v.scale.unwrap_or(Scale::Micro);
    }
    Ok(())
}

pub(crate) fn list(ctx: &Ctx, a: args::ListArgs, out: &mut dyn Write) -> Result<()> {
    let filter = Filter {
        since: a.since.map(|d| ctx.parse_day(&d)).transpose()?,
        until: a.until.map(|d| ctx.parse_day(&d)).transpose()?,
        tags: a
            .tags
            .iter()
            .map(|t| failup_journal::entry::normalize_tag(t))
            .collect::<Result<_, _>>()?,
        area: a.area,
        scale: a.scale.map(scale_of),
        open: a.open,
        search: Vec::new(),
    };
    let filter = match &a.search {
        Some(words) => filter.with_search(words),
        None => filter,
    };
    let mut journal = ctx.open()?;
    let entries = journal.list(&filter, a.limit)?;
    let shared: std::collections::HashMap<failup_journal::EntryId, Vec<String>> = journal
        .shares()?
        .into_iter()
        .map(|s| (s.id, s.with))
        .collect();
    if ctx.json {
        let mut views = Vec::with_capacity(entries.len());
        for e in &entries {
            let mut v = serde_json::to_value(EntryView::from(e))?;
            if let (Some(with), Some(obj)) = (shared.get(&e.id), v.as_object_mut()) {
                obj.insert("shared_with".into(), serde_json::json!(with));
            }
            views.push(v);
        }
        crate::print_json(out, &views, crate::JsonLayout::Pretty)?;
    } else if entries.is_empty() {
        eprintln!("no entries");
    } else {
        let numbered = io::stdout().is_terminal();
        // On a terminal each row fits its width: what does not fit is cut with an ellipsis.
        let width = numbered
            .then(|| console::Term::stdout().size_checked())
            .flatten()
            .map(|(_, cols)| usize::from(cols));
        for (n, e) in entries.iter().enumerate() {
            let row = |title_width: usize| {
                let mut line = render::list_line(e, &ctx.style, title_width);
                if numbered {
                    line = format!("{:<5}{line}", format!("@{}", n + 1));
                }
                if let Some(with) = shared.get(&e.id) {
                    line.push_str(&format!("  [shared with {}]", shown(&with.join(", "))));
                }
                line
            };
            let mut line = row(render::TITLE_WIDTH);
            if let Some(w) = width {
                // The title gives way first, down to a dozen characters; then the row's end.
                let over = console::measure_text_width(&line).saturating_sub(w);
                if over > 0 {
                    let title = shown(e.title()).chars().count().min(render::TITLE_WIDTH);
                    line = row(title.saturating_sub(over).max(12));
                }
                line = console::truncate_str(&line, w, ctx.style.ellipsis()).into_owned();
            }
            writeln!(out, "{line}")?;
        }
    }
    if !ctx.json && !entries.is_empty() {
        ctx.remember_rows(entries.iter().map(|e| e.id));
    }
    Ok(())
}

pub(crate) fn reflect(ctx: &Ctx, a: args::ReflectArgs) -> Result<()> {
    let entry = ctx.resolve(&a.id)?;
    let mut patch = EntryPatch {
        lesson: a.lesson.map(Some),
        muscle: a.muscle.map(Some),
        use_it: a.use_it.map(Some),
        ..EntryPatch::default()
    };
    let mut stopped = false;
    if patch.is_empty() {
        eprintln!("{}: {}", short(entry.id), shown(entry.title()));
        let mut lines = Answers::new()?;
        let questions = ctx.config_with(&mut ctx.open()?)?.questions()?;
        for (field, question) in questions {
            let current = entry.reframe(field).unwrap_or("");
            let Some(answer) = lines.ask(&question, current)? else {
                stopped = true;
                break;
            };
            if answer.trim().is_empty() || answer.trim() == current.trim() {
                continue;
            }
            let slot = match field {
                ReframeField::Lesson => &mut patch.lesson,
                ReframeField::Muscle => &mut patch.muscle,
                ReframeField::Use => &mut patch.use_it,
            };
            *slot = Some(Some(answer));
        }
        if patch.is_empty() {
            eprintln!("nothing changed");
            return Ok(());
        }
    }
    if stopped {
        eprintln!("stopped: keeping the answers given");
    }
    let entry = ctx.open()?.update(entry.id, patch, ctx.now)?;
    eprintln!(
        "reflected on {} (status: {})",
        short(entry.id),
        entry.status().as_str()
    );
    Ok(())
}

/// Where the answers of `reflect` are read: a line editor on a terminal (arrow keys, history
/// of this session, the current answer there to change, Alt-Enter or a line ending in `\` for
/// a new line), else lines of standard input.
enum Answers {
    Terminal(Box<rustyline::DefaultEditor>),
    Piped,
}

impl Answers {
    fn new() -> Result<Answers> {
        if !io::stdin().is_terminal() {
            return Ok(Answers::Piped);
        }
        use rustyline::{Cmd, KeyCode, KeyEvent, Modifiers};
        let mut editor = rustyline::DefaultEditor::new().context("cannot read the terminal")?;
        editor.bind_sequence(KeyEvent(KeyCode::Enter, Modifiers::ALT), Cmd::Newline);
        eprintln!(
            "(Enter keeps an answer as it is; Alt-Enter, or a line ending in \\, starts a new \
             line; Ctrl-C stops and keeps the answers given)"
        );
        Ok(Answers::Terminal(Box::new(editor)))
    }

    /// The answer to `question`; `None` when the person stopped (Ctrl-C, Ctrl-D, end of input).
    fn ask(&mut self, question: &str, current: &str) -> Result<Option<String>> {
        match self {
            Answers::Piped => {
                let shown_now = if current.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", shown(current))
                };
                eprint!("{}{shown_now}\n> ", shown(question));
                io::stderr().flush()?;
                let mut line = String::new();
                if io::stdin().lock().read_line(&mut line)? == 0 {
                    return Ok(None);
                }
                Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()))
            }
            Answers::Terminal(editor) => {
                use rustyline::error::ReadlineError;
                eprintln!("{}", shown(question));
                let mut answer = String::new();
                let mut initial = current.to_owned();
                let mut prompt = "> ";
                loop {
                    match editor.readline_with_initial(prompt, (&initial, "")) {
                        Ok(line) => {
                            let _ = editor.add_history_entry(line.as_str());
                            match line.strip_suffix('\\') {
                                Some(more) => {
                                    answer.push_str(more);
                                    answer.push('\n');
                                    initial.clear();
                                    prompt = ". ";
                                }
                                None => {
                                    answer.push_str(&line);
                                    return Ok(Some(answer));
                                }
                            }
                        }
                        // Stopped: the answers already given are kept, this unfinished one
                        // is not (it would replace the answer it was changing).
                        Err(ReadlineError::Interrupted | ReadlineError::Eof) => return Ok(None),
                        Err(e) => return Err(e).context("cannot read the answer"),
                    }
                }
            }
        }
    }
}

pub(crate) fn edit(ctx: &Ctx, a: EditArgs) -> Result<()> {
    let entry = ctx.resolve(&a.id)?;
    let f = &a.fields;
    let clearable = |v: &Option<String>| v.clone().map(|v| Some(v).filter(|v| !v.is_empty()));
    let patch = EntryPatch {
        text: a.text.clone(),
        scale: a.scale.map(scale_of),
        day: f.on.as_deref().map(|d| ctx.parse_day(d)).transpose()?,
        area: clearable(&f.area),
        add_tags: f.tags.clone(),
        remove_tags: a.untag.clone(),
        feeling: f.feeling.map(|f| f.0),
        lesson: clearable(&f.lesson),
        muscle: clearable(&f.muscle),
        use_it: clearable(&f.use_it),
        next: clearable(&f.next),
        ..EntryPatch::default()
    };
    // A tag the entry does not have is named, not silently "updated".
    let absent: Vec<String> = a
        .untag
        .iter()
        .filter(|t| failup_journal::entry::normalize_tag(t).is_ok_and(|t| !entry.tags.contains(&t)))
        .map(|t| format!("#{}", shown(t.trim_start_matches('#'))))
        .collect();
    if !absent.is_empty() {
        eprintln!("not a tag of this entry: {}", absent.join(" "));
        let only_absent = EntryPatch {
            remove_tags: Vec::new(),
            ..patch.clone()
        }
        .is_empty()
            && absent.len() == a.untag.len();
        if only_absent {
            eprintln!("nothing changed");
            return Ok(());
        }
    }
    if patch.is_empty() {
        if !io::stdin().is_terminal() {
            bail!(
                "nothing to change: give a field such as --text or --lesson (see failup edit --help)"
            );
        }
        let prompts = ctx.prompts()?;
        let drafts = editor::Drafts::of(&ctx.home);
        let name = format!("edit-{}", entry.id);
        let path = drafts.path(&name);
        if let Some(d) = drafts.find(&name)?.first() {
            let answer = ask(&format!(
                "an unfinished edit of this entry from {} was kept; resume it? [Y/n] ",
                when(ctx, d.modified)
            ))?;
            if !crate::yes(&answer, true) {
                std::fs::remove_file(&d.path)
                    .with_context(|| format!("cannot remove {}", d.path.display()))?;
                eprintln!("discarded the kept edit");
            }
        }
        let initial = editor::template(&prompts, Some(&entry), &entry.day.to_string());
        let resume = format!("run `failup edit {}` again", short(entry.id));
        let written =
            editor::session(&ctx.editor()?, &path, &initial, &initial, &resume, |body| {
                let form = editor::parse(&prompts, body)?;
                if form.text.is_empty() {
                    bail!("the story is empty: to delete the entry, use `failup delete`");
                }
                let patch = patch_from_form(ctx, &entry, &form)?;
                // Checked as the store checks it, so a refusal comes back to the editor.
                patch.clone().normalized()?;
                Ok(patch)
            })?;
        let Some(written) = written else {
            eprintln!("nothing changed");
            return Ok(());
        };
        if written.value.is_empty() {
            written.stored();
            eprintln!("nothing changed");
            return Ok(());
        }
        let updated = ctx
            .open()
            .and_then(|mut j| j.update(entry.id, written.value.clone(), ctx.now));
        let entry = match updated {
            Ok(e) => {
                written.stored();
                e
            }
            Err(e) => {
                return Err(e.context(format!("not changed; what you wrote is kept: {resume}")));
            }
        };
        eprintln!("updated {}: {}", short(entry.id), shown(entry.title()));
        return Ok(());
    }
    let entry = ctx.open()?.update(entry.id, patch, ctx.now)?;
    eprintln!("updated {}: {}", short(entry.id), shown(entry.title()));
    Ok(())
}

/// The difference between an entry and what the person left in the editor.
pub(crate) fn patch_from_form(ctx: &Ctx, e: &Entry, form: &editor::Form) -> Result<EntryPatch> {
    let v = form_values(ctx, form)?;
    // A section whose heading was deleted leaves its field as it was: only text written (or
    // emptied) under a heading changes anything.
    let changed = |section: Section, old: Option<&str>, new: Option<String>| {
        (form.has(section) && old != new.as_deref()).then_some(new)
    };
    let mut patch = EntryPatch {
        text: (form.text != e.text).then(|| form.text.clone()),
        scale: v.scale.filter(|s| *s != e.scale),
        day: v.day.filter(|d| *d != e.day),
        area: changed(Section::Area, e.area.as_deref(), v.area),
        next: changed(Section::Next, e.next.as_deref(), v.next),
        feeling: (form.has(Section::Feeling) && v.feeling != e.feeling).then_some(v.feeling),
        ..EntryPatch::default()
    };
    for (field, value) in v.reframe {
        let c = changed(Section::Reframe(field), e.reframe(field), value);
        match field {
            ReframeField::Lesson => patch.lesson = c,
            ReframeField::Muscle => patch.muscle = c,
            ReframeField::Use => patch.use_it = c,
        }
    }
    let wanted: Vec<String> = v
        .tags
        .iter()
        .map(|t| failup_journal::entry::normalize_tag(t))
        .collect::<Result<_, _>>()?;
    if !form.has(Section::Tags) {
        return Ok(patch);
    }
    patch.add_tags = wanted
        .iter()
        .filter(|t| !e.tags.contains(*t))
        .cloned()
        .collect();
    patch.remove_tags = e
        .tags
        .iter()
        .filter(|t| !wanted.contains(t))
        .cloned()
        .collect();
    Ok(patch)
}

pub(crate) fn set_closed(ctx: &Ctx, prefix: &str, close: bool) -> Result<()> {
    let entry = ctx.resolve(prefix)?;
    let closed = entry.status() == Status::Closed;
    if closed == close {
        eprintln!(
            "{} is already {}",
            short(entry.id),
            if close { "closed" } else { "open" }
        );
        return Ok(());
    }
    let patch = EntryPatch {
        closed_at: Some(close.then_some(ctx.now)),
        ..EntryPatch::default()
    };
    let entry = ctx.open()?.update(entry.id, patch, ctx.now)?;
    eprintln!(
        "{} {}: {}",
        if close { "closed" } else { "reopened" },
        short(entry.id),
        shown(entry.title())
    );
    Ok(())
}

/// Typed values of an editor form's sections.
pub(crate) struct FormValues {
    reframe: [(ReframeField, Option<String>); 3],
    next: Option<String>,
    area: Option<String>,
    tags: Vec<String>,
    feeling: Option<u8>,
    scale: Option<Scale>,
    day: Option<Date>,
}

/// `failup show`.
pub(crate) fn show(ctx: &Ctx, id: &str, out: &mut dyn Write) -> Result<()> {
    let mut journal = ctx.open()?;
    let entry = fetch(&mut journal, &ctx.reference(id)?)?;
    let share = journal.shares()?.into_iter().find(|s| s.id == entry.id);
    if ctx.json {
        let mut v = serde_json::to_value(EntryView::from(&entry))?;
        if let (Some(share), Some(obj)) = (&share, v.as_object_mut()) {
            obj.insert("shared_with".into(), serde_json::json!(share.with));
            obj.insert("comments".into(), partners::comments_json(&share.comments));
        }
        crate::print_json(out, &v, crate::JsonLayout::Pretty)?;
    } else {
        let questions = ctx.config_with(&mut journal)?.questions()?;
        write!(
            out,
            "{}",
            render::entry(&entry, &ctx.tz, &questions, &ctx.style)
        )?;
        if let Some(share) = &share {
            writeln!(out, "\nShared with {}", shown(&share.with.join(", ")))?;
            write!(out, "{}", partners::comments_text(&share.comments, &ctx.tz))?;
        }
    }
    Ok(())
}

/// `failup iterate`.
pub(crate) fn iterate(
    ctx: &Ctx,
    id: &str,
    text: Vec<String>,
    outcome: Option<OutcomeArg>,
    on: Option<&str>,
) -> Result<()> {
    let entry = ctx.resolve(id)?;
    // Backdated: noon of that day here, so the day reads the same in any nearby time zone.
    let at = match on.map(|d| ctx.parse_day(d)).transpose()? {
        None => ctx.now,
        Some(day) if day == ctx.today => ctx.now,
        Some(day) if day > ctx.today => bail!("--on {day}: an iteration cannot be in the future"),
        Some(day) if day < entry.day => bail!(
            "--on {day}: the setback was on {}, and what you tried came after it",
            entry.day
        ),
        Some(day) => day
            .at(12, 0, 0, 0)
            .to_zoned_datetime(ctx.tz.clone())
            .context("that day has no noon in this time zone")?
            .timestamp(),
    };
    let ms = u64::try_from(ctx.now.as_millisecond()).unwrap_or(0);
    let patch = EntryPatch {
        iteration: Some(Iteration {
            id: IterationId::from_parts(ms, rand::random()),
            at,
            tried: text.join(" "),
            outcome: outcome.map(outcome_of),
        }),
        ..EntryPatch::default()
    };
    let entry = ctx.open()?.update(entry.id, patch, ctx.now)?;
    eprintln!(
        "iteration {} recorded on {}: {}",
        entry.iterations.len(),
        short(entry.id),
        shown(entry.title())
    );
    Ok(())
}

/// `failup delete`.
pub(crate) fn delete(ctx: &Ctx, id: &str, yes: bool) -> Result<()> {
    let entry = ctx.resolve(id)?;
    if !yes {
        if !io::stdin().is_terminal() {
            bail!("refusing to delete without confirmation: pass --yes");
        }
        let answer = ask(&format!(
            "delete {} \"{}\"? [y/N] ",
            short(entry.id),
            shown(entry.title())
        ))?;
        if !crate::yes(&answer, false) {
            eprintln!("kept {}", short(entry.id));
            return Ok(());
        }
    }
    // The node takes a deleted entry out of every space as it deletes it.
    ctx.open()?.delete(entry.id, ctx.now)?;
    eprintln!("deleted {}: {}", short(entry.id), shown(entry.title()));
    Ok(())
}
