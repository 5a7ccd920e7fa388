//! Practice (the stats with their charts) and Settings (the person's prompts, the charts'
//! colour, this device's name). The prompts go through the node like every other change; the
//! colour of the charts is this browser's own choice, kept in a cookie, since it changes how a
//! page looks and nothing in the journal.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use failup_journal::REFRAME_QUESTIONS;
use failup_node::request::PeerInfo;
use failup_report::svg::Palette;
use maud::{Markup, PreEscaped, html};

use crate::guard::Csrf;
use crate::pages::{App, Form, Page, Problems, see, unexpected};
use crate::view::{csrf, page, text};
use crate::{Request, Response as NodeResponse};

/// The cookie that holds this browser's colour for the charts.
const CHARTS_COOKIE: &str = "failup-charts";

/// The prompts a person words for themselves: key, what it is, and whether it may hold lines.
const PROMPTS: [(&str, &str, bool); 4] = [
    ("lesson", "First reframe question", false),
    ("muscle", "Second reframe question", false),
    ("use", "Third reframe question", false),
    ("story", "What a new story starts with in the editor", true),
];

/// This browser's colour for the charts.
fn palette(headers: &HeaderMap) -> Palette {
    crate::guard::cookies(headers, CHARTS_COOKIE)
        .iter()
        .find_map(|v| Palette::named(v))
        .unwrap_or_default()
}

/// The Practice page: the figures and charts of `failup stats --svg`, drawn by the same code.
pub(crate) async fn practice(State(app): State<App>, headers: HeaderMap) -> Page {
    let (_, day) = crate::pages::now();
    let (_, stats) = app.summary(day).await?;
    // Made by failup_report, which escapes every text it draws (tags, areas): markup of ours,
    // not of the journal's.
    let svg = failup_report::svg::stats_in(&stats, day, palette(&headers));
    let body = html! {
        h1 { "Practice" }
        @if stats.reps == 0 {
            p.empty { "Nothing logged yet: the charts fill in as you log." }
        }
        div.chart role="img" aria-label="your practice in charts" { (PreEscaped(svg)) }
        p { a href="/settings#charts" { "Colour of the charts…" } }
    };
    Ok(page("Practice", "/practice", body, None).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct SettingsQuery {
    saved: Option<String>,
}

/// The Settings page.
pub(crate) async fn settings(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    headers: HeaderMap,
    Query(q): Query<SettingsQuery>,
) -> Page {
    let held = prompts_held(&app).await?;
    let body = settings_body(&app, &token, &held, &Problems::default(), palette(&headers)).await?;
    let cleared = (q.saved.as_deref() == Some("prompts")).then_some("prompts");
    Ok(page("Settings", "/settings", body, cleared).into_response())
}

async fn prompts_held(
    app: &App,
) -> Result<std::collections::BTreeMap<String, String>, crate::pages::Trouble> {
    match app.call(Request::Prompts).await? {
        NodeResponse::Prompts(p) => Ok(p),
        r => Err(unexpected(r)),
    }
}

async fn settings_body(
    app: &App,
    token: &str,
    values: &std::collections::BTreeMap<String, String>,
    p: &Problems,
    chosen: Palette,
) -> Result<Markup, crate::pages::Trouble> {
    let peers: Vec<PeerInfo> = match app.call(Request::Peers).await? {
        NodeResponse::Peers(v) => v,
        r => return Err(unexpected(r)),
    };
    let name = peers
        .iter()
        .find(|p| p.role == "self")
        .map(|p| p.name.clone())
        .unwrap_or_default();
    // The first three prompts are the reframe questions, in their order.
    let default_of = |i: usize| REFRAME_QUESTIONS.get(i).map(|(_, q)| *q).unwrap_or("");
    Ok(html! {
        h1 { "Settings" }
        (p.form())
        section id="prompts" {
            h2 { "Your prompts" }
            p { "Your own wording of the questions, the same on every device of yours. Leave one empty for the default." }
            form method="post" action="/settings/prompts" data-draft="prompts" data-filled[!p.is_empty()] {
                (csrf(token))
                @for (i, (key, what, lines)) in PROMPTS.into_iter().enumerate() {
                    label for={ "p-" (key) } { (what) }
                    @let value = values.get(key).map(String::as_str).unwrap_or("");
                    @if lines {
                        textarea id={ "p-" (key) } name=(key) rows="3" placeholder="(empty)" { (value) }
                    } @else {
                        input id={ "p-" (key) } name=(key) value=(value) placeholder=(default_of(i));
                    }
                    (p.of(key))
                }
                button { "Save prompts" }
            }
        }
        section id="charts" {
            h2 { "Colour of the charts" }
            form method="post" action="/settings/charts" {
                (csrf(token))
                @for c in Palette::ALL {
                    label.pick { input type="radio" name="palette" value=(c.name()) checked[c == chosen]; " " (c.name()) }
                }
                button { "Use this colour" }
            }
            p.empty { "Kept by this browser; `failup stats --svg` draws in green." }
        }
        section id="device" {
            h2 { "This device" }
            p { "Called " strong { (text(&name)) } ". Change it with " code { "failup config set name NAME" } "; every other setting is in " code { "failup config list" } "." }
        }
    })
}

/// Saves the prompts that changed; a refused one comes back with what was typed.
pub(crate) async fn prompts(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let f = Form::of(&body);
    let held = prompts_held(&app).await?;
    let mut p = Problems::default();
    let mut typed = std::collections::BTreeMap::new();
    for (key, _, lines) in PROMPTS {
        let raw = f.raw(key);
        // A one-line prompt is one line: what a browser's field sends is trimmed as the command
        // line's argument would be.
        let value = if lines { raw.trim_end() } else { raw.trim() };
        typed.insert(key.to_owned(), raw.to_owned());
        let want = (!value.is_empty()).then_some(value);
        if held.get(key).map(String::as_str) == want {
            continue;
        }
        let request = Request::SetPrompt {
            key: key.to_owned(),
            value: want.map(str::to_owned),
        };
        match app.backend.call(request).await {
            NodeResponse::Done => {}
            NodeResponse::Error(e) => p.add(key, e.message),
            r => return Err(unexpected(r)),
        }
    }
    if p.is_empty() {
        return Ok(see("/settings?saved=prompts#prompts".into()));
    }
    let body = settings_body(&app, &token, &typed, &p, palette(&headers)).await?;
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        page("Settings", "/settings", body, None),
    )
        .into_response())
}

/// Keeps this browser's colour for the charts.
pub(crate) async fn charts(body: Bytes) -> Response {
    let f = Form::of(&body);
    let Some(chosen) = Palette::named(f.raw("palette")) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "no such colour").into_response();
    };
    let mut r = see("/practice".into());
    let cookie = format!(
        "{CHARTS_COOKIE}={}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Strict",
        chosen.name()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
