//! The commands over the whole journal: today, stats, check, compact, export and import.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use failup_journal::export::{self, EntryView, MAX_IMPORT_BYTES};
use failup_journal::{Entry, StatsBuilder, Today};

use crate::args::ExportFormat;
use crate::progress;
use crate::render::{self};
use crate::{Ctx, STORE_FILE, write_atomically};

/// `failup today`.
pub(crate) fn today(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let t = Today::build(ctx.open()?.scan(None, None)?, ctx.today);
    if ctx.json {
        fn views(v: &[Entry]) -> Vec<EntryView<'_>> {
            v.iter().map(EntryView::from).collect()
        }
        let v = serde_json::json!({
            "today": ctx.today,
            "logged_today": views(&t.today),
            "this_week": views(&t.this_week),
            "open": views(&t.open),
            "open_total": t.open_total,
            "on_this_day": views(&t.on_this_day),
            "unread": unread(ctx).map(|r| serde_json::json!({
                "entries": r.entries, "comments": r.comments,
            })),
        });
        crate::print_json(out, &v, crate::JsonLayout::Pretty)?;
    } else {
        let question = ctx.config.value("prompts.lesson")?;
        let numbered = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let (text, rows) = render::today(&t, ctx.today, &question, &ctx.style, numbered);
        write!(out, "{text}")?;
        if let Some(line) = unread_line(ctx) {
            writeln!(out, "\n{line}")?;
        }
        ctx.remember_rows(rows);
    }
    Ok(())
}

/// What is new from partners, without reading the feed; `None` if it cannot be asked.
fn unread(ctx: &Ctx) -> Option<failup_node::Unread> {
    match ctx.open().ok()?.call(failup_node::Request::Unread).ok()? {
        failup_node::Response::Unread(r) => Some(r),
        _ => None,
    }
}

/// "from your partners: 1 new entry, 2 new cheers (failup feed)", when there is something
/// new; nothing for a person with no partner, or when the feed cannot be asked.
fn unread_line(ctx: &Ctx) -> Option<String> {
    let r = unread(ctx)?;
    let mut parts = Vec::new();
    if r.entries > 0 {
        parts.push(render::count(r.entries, "new entry", "new entries"));
    }
    if r.comments > 0 {
        parts.push(render::count(r.comments, "new cheer", "new cheers"));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "{}: {} (failup feed)",
            ctx.style
                .paint(crate::style::Role::Heading, "from your partners"),
            parts.join(", ")
        )
    })
}

pub(crate) fn export_journal(
    ctx: &Ctx,
    format: ExportFormat,
    path: Option<PathBuf>,
    stdout: &mut dyn Write,
) -> Result<()> {
    let entries = ctx.open()?.scan(None, None)?;
    let bar = progress::unless_small(entries.len(), || progress::bytes("exporting"));
    let write = |w: &mut dyn Write| -> io::Result<()> {
        // Buffered above the bar, so it counts 8 KiB chunks rather than every small write.
        let mut w = io::BufWriter::new(bar.wrap_write(w));
        match format {
            ExportFormat::Json => export::write_json(&mut w, ctx.now, &entries)?,
            ExportFormat::Markdown => export::write_markdown(&mut w, &ctx.tz, &entries)?,
        }
        w.flush()
    };
    // `-` is standard output, as it is standard input for import.
    match path.filter(|p| p != Path::new("-")) {
        None => {
            write(stdout)?;
            bar.finish_and_clear();
        }
        Some(path) => {
            write_atomically(&path, write)?;
            bar.finish_and_clear();
            eprintln!(
                "exported {} to {}",
                render::count(entries.len() as u64, "entry", "entries"),
                path.display()
            );
        }
    }
    Ok(())
}

pub(crate) fn import(ctx: &Ctx, file: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    let what = file.display().to_string();
    let reader: Box<dyn Read> = if file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("cannot open {what}"))?)
    };
    reader
        .take(MAX_IMPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what}"))?;
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        bail!("{what} is larger than the {MAX_IMPORT_BYTES}-byte import limit");
    }
    let entries = export::read_json(&bytes).with_context(|| format!("cannot import {what}"))?;
    // One commit for the whole file, so a killed import leaves all of it or none (the crash
    // suite holds us to that); the spinner only says the work goes on.
    let bar = progress::unless_small(entries.len(), || {
        let bar = progress::spinner();
        bar.set_message(format!("importing {} entries", entries.len()));
        bar
    });
    let report = ctx.open()?.import(entries, ctx.now)?;
    bar.finish_and_clear();
    let (added, skipped) = (report.added, report.skipped);
    eprintln!(
        "imported {} ({skipped} already present)",
        render::count(added as u64, "entry", "entries")
    );
    Ok(())
}

pub(crate) fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// `failup stats`.
pub(crate) fn stats(
    ctx: &Ctx,
    since: Option<String>,
    svg: Option<PathBuf>,
    out: &mut dyn Write,
) -> Result<()> {
    let since = since.map(|s| ctx.parse_day(&s)).transpose()?;
    let mut builder = StatsBuilder::new(ctx.tz.clone());
    for e in ctx.open()?.scan(since, None)? {
        builder.add(&e);
    }
    let stats = builder.finish(ctx.today, since);
    if let Some(path) = &svg {
        let picture = failup_report::svg::stats(&stats, ctx.today);
        write_atomically(path, |w| w.write_all(picture.as_bytes()))?;
        // A picture made to be shared: readable by others, like any file a person saves.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                .with_context(|| format!("cannot set permissions of {}", path.display()))?;
        }
        eprintln!("wrote the charts to {}", path.display());
    }
    if ctx.json {
        crate::print_json(out, &stats, crate::JsonLayout::Pretty)?;
    } else {
        write!(out, "{}", render::stats(&stats, &ctx.style))?;
    }
    Ok(())
}

/// `failup check`.
pub(crate) fn check(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let report = ctx.open()?.check()?;
    if ctx.json {
        crate::print_json(
            out,
            &serde_json::json!({
                "documents": report.documents,
                "entries": report.entries,
                "mismatches": report.mismatches,
            }),
            crate::JsonLayout::Line,
        )?;
    } else {
        writeln!(
            out,
            "{}, {}, {}",
            render::count(report.documents as u64, "document", "documents"),
            render::count(report.entries as u64, "entry", "entries"),
            render::count(report.mismatches as u64, "mismatch", "mismatches")
        )?;
    }
    if report.mismatches > 0 {
        bail!(
            "the index disagrees with the documents in {} places",
            report.mismatches
        );
    }
    Ok(())
}

/// `failup compact`.
pub(crate) fn compact(ctx: &Ctx) -> Result<()> {
    let mut journal = ctx.open()?;
    let path = ctx.home.join(STORE_FILE);
    let before = file_size(&path);
    journal.compact()?;
    eprintln!(
        "compacted {}: {} → {} bytes",
        path.display(),
        before,
        file_size(&path)
    );
    Ok(())
}
