//! `failup partner`, `share`, `unshare`, `feed`, `cheer`: the accountability partner commands.
//! Each is one request, answered by the running daemon or, with none running, by the node
//! opened here (`network::call`), so every command works either way except those that must
//! reach the other person (`partner invite`, `partner join`).

use std::io::Write;

use anyhow::{Result, bail};
use failup_daemon::control::{CommentInfo, FeedItem, Request, Response};
use failup_journal::EntryId;
use failup_journal::space::SharedEntry;
use failup_journal::text::shown;

use crate::Ctx;
use crate::args::PartnerCommand;
use crate::network::{self, done};
use crate::render;

/// `failup partner ...`.
pub fn partner(ctx: &Ctx, cmd: PartnerCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        PartnerCommand::Invite { name, ttl, qr } => {
            let ttl = crate::dates::invite_ttl(&ttl)?;
            let mut c = network::client(ctx, "a partner invite")?;
            let request = Request::PartnerInvite {
                ttl_secs: ttl.as_secs(),
                label: name,
            };
            match network::ask(&mut c, request, None)? {
                Response::Invite(code) => {
                    writeln!(out, "{code}")?;
                    if qr {
                        eprint!("{}", crate::render::qr(&code)?);
                    }
                    eprintln!(
                        "give this code to your partner; they run: failup partner join CODE --name YOUR-NAME \
                         (valid for {}, once)",
                        crate::dates::spoken(ttl)
                    );
                }
                r => bail!("the daemon answered unexpectedly: {r:?}"),
            }
        }
        PartnerCommand::Join { code, name } => {
            let mut c = network::client(ctx, "joining a partner")?;
            done(network::ask(
                &mut c,
                Request::PartnerJoin { code, label: name },
                None,
            )?)?;
            eprintln!(
                "partnered: share entries with `failup share ID --with LABEL`; \
                 nothing is shared until you do"
            );
        }
        PartnerCommand::List => {
            let Response::Partners(list) = network::call(ctx, Request::Partners)? else {
                bail!("the daemon answered unexpectedly");
            };
            if ctx.json {
                crate::print_json(out, &list_json(&list), crate::JsonLayout::Pretty)?;
            } else if list.is_empty() {
                eprintln!("no partners yet: run `failup partner invite`");
            } else {
                for p in &list {
                    let state = match (&p.revoked, &p.closed) {
                        (true, _) => " (revoked)".to_owned(),
                        (false, Some(at)) => format!(" (closed the space on {})", day_of(at)),
                        (false, None) => String::new(),
                    };
                    writeln!(
                        out,
                        "{}{state}  you share {}, they share {}",
                        shown(&p.label),
                        p.shared_by_me,
                        p.shared_with_me
                    )?;
                    for d in &p.devices {
                        let state = if d.connected {
                            network::how_connected(d)
                        } else {
                            d.last_seen
                                .as_ref()
                                .map_or("not seen yet".to_owned(), |t| format!("last seen {t}"))
                        };
                        let synced = d
                            .last_sync
                            .as_ref()
                            .map_or(String::new(), |t| format!(", last sync {t}"));
                        let line = format!("  {}  {state}{synced}", d.device);
                        writeln!(out, "{}", shown(&line))?;
                    }
                }
            }
        }
        PartnerCommand::Revoke { label } => {
            done(network::call(
                ctx,
                Request::PartnerRevoke {
                    label: label.clone(),
                },
            )?)?;
            eprintln!(
                "revoked: no device of {}'s syncs with yours again; they keep what they already received",
                shown(&label)
            );
        }
    }
    Ok(())
}

fn list_json(list: &[failup_daemon::control::PartnerInfo]) -> serde_json::Value {
    serde_json::Value::Array(
        list.iter()
            .map(|p| {
                serde_json::json!({
                    "label": p.label, "revoked": p.revoked, "closed": p.closed,
                    "shared_by_me": p.shared_by_me, "shared_with_me": p.shared_with_me,
                    "devices": p.devices.iter().map(|d| serde_json::json!({
                        "device": d.device, "addrs": d.addrs, "connected": d.connected,
                        "via": d.via, "path": d.path, "last_seen": d.last_seen, "last_sync": d.last_sync,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// `failup share`: with `--preview`, what the partner would see and nothing shared; on a
/// terminal with every field (no `--only`) and no `--yes`, that view and a question first.
pub fn share(
    ctx: &Ctx,
    id: &str,
    with: &str,
    only: Option<String>,
    preview: bool,
    yes: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let entry = ctx.resolve(id)?;
    let ask_first = !yes && only.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdin());
    if preview || ask_first {
        let fields = match &only {
            Some(list) => failup_journal::space::parse_fields(list)?,
            None => failup_journal::space::Field::ALL.into_iter().collect(),
        };
        let seen = SharedEntry::project(&entry, &fields, ctx.now);
        let view = format!(
            "{} will see:\n{}  {}\n{}",
            shown(with),
            render::short(seen.id),
            seen.day,
            shared_fields_text(&seen)
        );
        if preview {
            write!(out, "{view}")?;
            return Ok(());
        }
        eprint!("{view}");
        let answer = crate::ask(&format!("share this with {}? [y/N] ", shown(with)))?;
        if !crate::yes(&answer, false) {
            eprintln!("not shared");
            return Ok(());
        }
    }
    share_id(ctx, entry.id, with, only)
}

/// Shares the entry `id` (already resolved, as `log --share` has it) with `with`.
pub fn share_id(ctx: &Ctx, id: EntryId, with: &str, only: Option<String>) -> Result<()> {
    done(network::call(
        ctx,
        Request::Share {
            id,
            with: with.to_owned(),
            only,
            now_ms: ctx.now.as_millisecond(),
        },
    )?)?;
    eprintln!("shared with {}", shown(with));
    Ok(())
}

/// `failup unshare`.
pub fn unshare(ctx: &Ctx, id: &str, with: &str) -> Result<()> {
    let id = ctx.open()?.resolve(&ctx.reference(id)?)?;
    done(network::call(
        ctx,
        Request::Unshare {
            id,
            with: with.to_owned(),
        },
    )?)?;
    eprintln!(
        "no longer shared with {}; what they already received stays with them",
        shown(with)
    );
    Ok(())
}

/// `failup cheer`.
pub fn cheer(ctx: &Ctx, id: &str, text: &str) -> Result<()> {
    done(network::call(
        ctx,
        Request::Cheer {
            id: id.to_owned(),
            text: text.to_owned(),
            now_ms: ctx.now.as_millisecond(),
        },
    )?)?;
    eprintln!("comment added");
    Ok(())
}

/// A shared entry as JSON: only the fields it carries.
pub fn shared_json(e: &SharedEntry) -> serde_json::Value {
    serde_json::to_value(e).unwrap_or(serde_json::Value::Null)
}

/// Comments as JSON.
pub fn comments_json(comments: &[CommentInfo]) -> serde_json::Value {
    serde_json::Value::Array(
        comments
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.comment.id.to_string(), "by": c.by.clone().unwrap_or_else(|| "me".into()),
                    "at": c.comment.at.to_string(), "text": c.comment.text, "new": c.new,
                })
            })
            .collect(),
    )
}

/// Comments as text, indented under an entry; who wrote them and what they wrote escaped, as
/// a partner's client may have written anything.
pub fn comments_text(comments: &[CommentInfo], tz: &jiff::tz::TimeZone) -> String {
    let mut s = String::new();
    for c in comments {
        let when = render::local(c.comment.at, tz);
        s.push_str(&format!(
            "  {}{} ({when}): {}\n",
            if c.new { "* " } else { "" },
            shown(c.by.as_deref().unwrap_or("me")),
            shown(&c.comment.text)
        ));
    }
    s
}

/// `failup feed`.
pub fn feed(ctx: &Ctx, partner: Option<String>, out: &mut dyn Write) -> Result<()> {
    let Response::Feed(items) = network::call(
        ctx,
        Request::Feed {
            partner,
            now_ms: ctx.now.as_millisecond(),
        },
    )?
    else {
        bail!("the daemon answered unexpectedly");
    };
    if ctx.json {
        let v: Vec<serde_json::Value> = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "partner": i.partner, "new": i.new, "yours": i.yours,
                    "entry": shared_json(&i.entry),
                    "comments": comments_json(&i.comments),
                })
            })
            .collect();
        crate::print_json(out, &v, crate::JsonLayout::Pretty)?;
        return Ok(());
    }
    if items.is_empty() {
        eprintln!("nothing shared with you yet");
    }
    for i in &items {
        write!(out, "{}", feed_text(i, &ctx.tz))?;
    }
    // A partner who closed the space: what they shared stays, and the person is told why
    // nothing new comes.
    if let Ok(Response::Partners(list)) = network::call(ctx, Request::Partners) {
        for p in list.iter().filter(|p| !p.revoked) {
            if let Some(at) = &p.closed {
                writeln!(
                    out,
                    "{} closed the space on {}: what they shared stays here, and nothing more \
                     goes to them or comes from them",
                    shown(&p.label),
                    day_of(at)
                )?;
            }
        }
    }
    Ok(())
}

/// The day of an RFC 3339 time, or the text itself if it does not read.
fn day_of(at: &str) -> String {
    at.parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| shown(at).into_owned())
}

/// One item of the feed as text. Everything in it but the id and the day was written by the
/// partner's device, so every string is escaped ([`shown`]).
fn feed_text(i: &FeedItem, tz: &jiff::tz::TimeZone) -> String {
    let e = &i.entry;
    let whose = if i.yours {
        format!("yours, shared with {}", shown(&i.partner))
    } else {
        format!("from {}", shown(&i.partner))
    };
    let mut s = format!(
        "{}{}  {}  {whose}\n",
        if i.new { "* " } else { "" },
        render::short(e.id),
        e.day,
    );
    s.push_str(&shared_fields_text(e));
    s.push_str(&comments_text(&i.comments, tz));
    s.push('\n');
    s
}

/// The fields of a shared entry, one `  name: value` line each, as the partner's feed shows
/// them.
fn shared_fields_text(e: &SharedEntry) -> String {
    let mut s = String::new();
    let mut field = |name: &str, v: &Option<String>| {
        if let Some(v) = v {
            s.push_str(&format!("  {name}: {}\n", shown(v)));
        }
    };
    field("what happened", &e.text);
    field("lesson", &e.lesson);
    field("muscle", &e.muscle);
    field("use", &e.use_it);
    field("next", &e.next);
    field("area", &e.area);
    if let Some(tags) = &e.tags {
        if !tags.is_empty() {
            let tags: Vec<String> = tags.iter().map(|t| shown(t).into_owned()).collect();
            s.push_str(&format!("  tags: {}\n", tags.join(", ")));
        }
    }
    if let Some(n) = e.iterations {
        s.push_str(&format!(
            "  tried {n} thing{}{}\n",
            if n == 1 { "" } else { "s" },
            if e.closed_at.is_some() {
                ", loop closed"
            } else {
                ""
            }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use failup_journal::space::{Comment, parse_fields};
    use failup_journal::{IterationId, NewEntry};

    #[test]
    fn a_partners_text_is_escaped_in_the_feed() {
        let bad = "\u{1b}]0;pwned\u{7}\u{1b}[31m\u{9b}2J\u{202e}";
        let mut entry = SharedEntry::project(
            &NewEntry {
                text: "fine".into(),
                ..NewEntry::default()
            }
            .into_entry(
                EntryId::from_parts(1_700_000_000_000, 1),
                jiff::Timestamp::UNIX_EPOCH,
                jiff::civil::Date::constant(2026, 11, 23),
            )
            .expect("entry"),
            &parse_fields("text,lesson,area,tags").expect("fields"),
            jiff::Timestamp::UNIX_EPOCH,
        );
        // What a modified client may have written into its side.
        entry.text = Some(format!("story {bad}"));
        entry.lesson = Some(format!("lesson {bad}"));
        entry.area = Some(format!("area {bad}"));
        entry.tags = Some([format!("tag{bad}")].into_iter().collect());
        let item = FeedItem {
            partner: format!("sam{bad}"),
            comments: vec![CommentInfo {
                by: Some(format!("sam{bad}")),
                comment: Comment {
                    id: IterationId::from_parts(1, 1),
                    entry: entry.id,
                    at: jiff::Timestamp::UNIX_EPOCH,
                    text: format!("comment {bad}"),
                },
                new: true,
            }],
            entry,
            new: true,
            yours: false,
        };
        let text = feed_text(&item, &jiff::tz::TimeZone::UTC);
        assert!(
            !text.chars().any(failup_journal::text::needs_escape),
            "{text:?}"
        );
        for field in ["story", "lesson", "area", "comment"] {
            assert!(
                text.contains(&format!(
                    "{field} \\u{{1b}}]0;pwned\\u{{7}}\\u{{1b}}[31m\\u{{9b}}2J\\u{{202e}}"
                )),
                "{field}: {text}"
            );
        }
        let json = comments_json(&item.comments).to_string();
        assert!(failup_journal::text::json_escaped(&json).contains("\\u202e"));
    }
}
