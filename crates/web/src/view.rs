//! The page frame and the pieces pages share. maud escapes every value put into markup, so a
//! story, a tag or a partner's comment is text on the page whatever it holds; [`shown`] also
//! makes visible the controls that could reorder what a reader sees (bidirectional overrides).

use failup_journal::text::shown;
use failup_journal::{Entry, EntryId};
use maud::{DOCTYPE, Markup, html};

/// How many characters of an id the pages show.
pub const SHORT_ID: usize = 12;

/// The pages of the navigation bar: path and name.
const NAV: [(&str, &str); 7] = [
    ("/today", "Today"),
    ("/log", "Log"),
    ("/journal", "Journal"),
    ("/practice", "Practice"),
    ("/partner", "Partner"),
    ("/devices", "Devices"),
    ("/settings", "Settings"),
];

/// Text as it is safe to show: maud escapes the markup, this the reordering controls.
pub fn text(s: &str) -> String {
    shown(s).into_owned()
}

/// An id's short form.
pub fn short(id: EntryId) -> String {
    id.to_string()[..SHORT_ID].to_owned()
}

/// A page: the frame, the navigation with `current` marked, and `body`. `clear_draft` names a
/// draft the page's script may forget, because what it held has been saved.
pub fn page(title: &str, current: &str, body: Markup, clear_draft: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · failup" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body data-clear-draft=[clear_draft] {
                nav {
                    span.brand { "failup" }
                    @for (path, name) in NAV {
                        @if path == current {
                            a href=(path) aria-current="page" { (name) }
                        } @else {
                            a href=(path) { (name) }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// The hidden field every form carries.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name=(crate::guard::CSRF_FIELD) value=(token); }
}

/// One entry as a row of a list: day, scale, title, status, linking to its page.
pub fn row(e: &Entry) -> Markup {
    html! {
        li.entry {
            a href={ "/entry/" (e.id) } {
                span.day { (e.day.to_string()) }
                " "
                span class={ "scale " (e.scale.as_str()) } { (e.scale.as_str()) }
                " "
                span.title { (text(e.title())) }
            }
            " "
            span class={ "status " (status(e)) } { (status(e)) }
        }
    }
}

/// An entry's status as a word.
pub fn status(e: &Entry) -> &'static str {
    match e.status() {
        failup_journal::Status::Open => "open",
        failup_journal::Status::Iterating => "iterating",
        failup_journal::Status::Closed => "closed",
    }
}

/// A list of entries, or `empty` when there are none.
pub fn rows(entries: &[Entry], empty: &str) -> Markup {
    html! {
        @if entries.is_empty() {
            p.empty { (empty) }
        } @else {
            ul.entries { @for e in entries { (row(e)) } }
        }
    }
}

/// A message at the top of a page: what went wrong, in one line.
pub fn problem(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.problem role="alert" { (text(m)) }
        }
    }
}

/// Multi-line text as paragraphs.
pub fn paragraphs(s: &str) -> Markup {
    html! {
        @for p in s.split("\n\n") {
            p.prose { @for (i, line) in p.lines().enumerate() {
                @if i > 0 { br; }
                (text(line))
            } }
        }
    }
}
