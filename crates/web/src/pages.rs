//! The pages and the forms they post. Every page reads the journal and every form changes it
//! through the node's own requests ([`Request`]), so what a page accepts or refuses is what the
//! command line accepts or refuses; the only checks here turn form text into typed values
//! (a day, a number) and say which field was wrong.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, http::HeaderValue};
use failup_journal::space::{Field, SharedEntry};
use failup_journal::{
    Entry, EntryId, EntryPatch, Filter, Iteration, IterationId, NewEntry, Outcome,
    REFRAME_QUESTIONS, ReframeField, Scale, Today,
};
use failup_node::Failure;
use failup_node::request::{FeedItem, PartnerInfo, PeerInfo, ShareInfo};
use futures_util::StreamExt;
use jiff::Timestamp;
use jiff::civil::Date;
use maud::{Markup, html};

use crate::guard::{Csrf, Gate, url_pairs};
use crate::view::{self, csrf, page, paragraphs, problem, rows, short, text};
use crate::{Backend, Request, Response as NodeResponse};

/// Entries on one page of the journal.
pub const PAGE: usize = 50;

/// What every handler works with.
#[derive(Clone)]
pub(crate) struct App {
    pub backend: Arc<dyn Backend>,
    pub gate: Arc<Gate>,
    /// Today's sections and the practice's figures, kept until the journal changes.
    pub summary: Arc<tokio::sync::Mutex<Option<Summary>>>,
}

/// What Today and Practice show, made from one read of the whole journal: both need every
/// entry, which at 100,000 entries takes far longer than a page may, so it is made again only
/// once a document changed (the backend's change counter moved) or the day turned.
pub(crate) struct Summary {
    version: u64,
    day: Date,
    /// Today's sections.
    pub today: Arc<Today>,
    /// The practice's figures.
    pub stats: Arc<failup_journal::Stats>,
}

/// A page that could not be made: the node's failure, shown in the frame.
pub(crate) struct Trouble(pub(crate) Failure);

impl IntoResponse for Trouble {
    fn into_response(self) -> Response {
        let status = match self.0.kind {
            failup_node::ErrorKind::NotFound => StatusCode::NOT_FOUND,
            failup_node::ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = page(
            "Trouble",
            "",
            html! { (problem(Some(&self.0.message))) p { a href="/today" { "Back to today" } } },
            None,
        );
        (status, body).into_response()
    }
}

pub(crate) type Page = Result<Response, Trouble>;

pub(crate) fn unexpected(r: NodeResponse) -> Trouble {
    match r {
        NodeResponse::Error(f) => Trouble(f),
        other => Trouble(Failure::new(
            failup_node::ErrorKind::Internal,
            format!("the node answered unexpectedly: {other:?}"),
        )),
    }
}

impl App {
    /// Today's sections and the practice's figures as of `day`.
    pub(crate) async fn summary(
        &self,
        day: Date,
    ) -> Result<(Arc<Today>, Arc<failup_journal::Stats>), Trouble> {
        // One read at a time: pages opened together wait for the first one's read rather
        // than each reading the whole journal on the engine's thread.
        let mut held = self.summary.lock().await;
        // The counter is read before the journal: a change during the read moves it again,
        // so what is kept is never taken for newer than it is.
        let version = *self.backend.changes().borrow();
        if let Some(s) = held
            .as_ref()
            .filter(|s| s.version == version && s.day == day)
        {
            return Ok((s.today.clone(), s.stats.clone()));
        }
        let all = match self
            .call(Request::Scan {
                since: None,
                until: None,
            })
            .await?
        {
            NodeResponse::Entries(v) => v,
            r => return Err(unexpected(r)),
        };
        let mut stats = failup_journal::StatsBuilder::new(jiff::tz::TimeZone::system());
        for e in &all {
            stats.add(e);
        }
        let stats = Arc::new(stats.finish(day, None));
        let today = Arc::new(Today::build(all, day));
        *held = Some(Summary {
            version,
            day,
            today: today.clone(),
            stats: stats.clone(),
        });
        Ok((today, stats))
    }

    pub(crate) async fn call(&self, r: Request) -> Result<NodeResponse, Trouble> {
        match self.backend.call(r).await {
            NodeResponse::Error(f) => Err(Trouble(f)),
            r => Ok(r),
        }
    }

    async fn entry(&self, id: &str) -> Result<Entry, Trouble> {
        let id = match self.call(Request::Resolve { prefix: id.into() }).await? {
            NodeResponse::Id(id) => id,
            r => return Err(unexpected(r)),
        };
        match self.call(Request::Get { id }).await? {
            NodeResponse::MaybeEntry(Some(e)) => Ok(e),
            NodeResponse::MaybeEntry(None) => Err(Trouble(Failure::new(
                failup_node::ErrorKind::NotFound,
                format!("no entry {id}"),
            ))),
            r => Err(unexpected(r)),
        }
    }

    async fn entries(&self, filter: Filter, limit: Option<u64>) -> Result<Vec<Entry>, Trouble> {
        match self.call(Request::List { filter, limit }).await? {
            NodeResponse::Entries(v) => Ok(v),
            r => Err(unexpected(r)),
        }
    }

    async fn shares(&self) -> Result<Vec<ShareInfo>, Trouble> {
        match self.call(Request::Shares).await? {
            NodeResponse::Shares(v) => Ok(v),
            r => Err(unexpected(r)),
        }
    }

    async fn partners(&self) -> Result<Vec<PartnerInfo>, Trouble> {
        match self.call(Request::Partners).await? {
            NodeResponse::Partners(v) => Ok(v),
            r => Err(unexpected(r)),
        }
    }

    async fn prompt(&self, field: ReframeField) -> String {
        let (key, default) = match field {
            ReframeField::Lesson => ("lesson", REFRAME_QUESTIONS[0].1),
            ReframeField::Muscle => ("muscle", REFRAME_QUESTIONS[1].1),
            ReframeField::Use => ("use", REFRAME_QUESTIONS[2].1),
        };
        match self.backend.call(Request::Prompts).await {
            NodeResponse::Prompts(p) => p.get(key).cloned().unwrap_or_else(|| default.into()),
            _ => default.into(),
        }
    }
}

/// Now, and today in the person's time zone.
pub(crate) fn now() -> (Timestamp, Date) {
    let now = Timestamp::now();
    (
        now,
        now.to_zoned_datetime(jiff::tz::TimeZone::system()).date(),
    )
}

/// The fields of a posted form.
pub(crate) struct Form(pub(crate) Vec<(String, String)>);

impl Form {
    pub(crate) fn of(body: &Bytes) -> Form {
        Form(url_pairs(body))
    }

    /// A field's value as sent (empty when absent).
    pub(crate) fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// A field's value, `None` when empty.
    fn get(&self, name: &str) -> Option<String> {
        let v = self.raw(name).trim();
        (!v.is_empty()).then(|| self.raw(name).to_owned())
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// Which field of a form a node's message is about, by the word it starts with.
fn field_of(message: &str) -> Option<&'static str> {
    let first = message
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .find(|w| !w.is_empty())?;
    Some(match first {
        "text" | "story" => "text",
        "area" => "area",
        "tag" | "tags" => "tags",
        "feeling" => "feeling",
        "day" => "day",
        "lesson" => "lesson",
        "muscle" => "muscle",
        "use" => "use",
        "next" => "next",
        "outcome" => "outcome",
        "tried" | "iteration" => "tried",
        _ => return None,
    })
}

/// Problems with a form's fields: each one's message, by field name (`""` for the form).
#[derive(Default)]
pub(crate) struct Problems(Vec<(&'static str, String)>);

impl Problems {
    pub(crate) fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }

    fn from_failure(f: &Failure) -> Problems {
        let mut p = Problems::default();
        p.add(field_of(&f.message).unwrap_or(""), f.message.clone());
        p
    }

    pub(crate) fn of(&self, field: &str) -> Markup {
        html! {
            @for (_, m) in self.0.iter().filter(|(f, _)| *f == field) {
                span.field-error id={ "error-" (field) } role="alert" { (text(m)) }
            }
        }
    }

    pub(crate) fn form(&self) -> Markup {
        let general: Vec<&str> = self
            .0
            .iter()
            .filter(|(f, _)| f.is_empty())
            .map(|(_, m)| m.as_str())
            .collect();
        html! { @for m in general { (problem(Some(m))) } }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/today") }))
        .route("/login", get(login))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/events", get(events))
        .route("/today", get(today))
        .route("/log", get(log_form).post(log))
        .route("/journal", get(journal))
        .route("/entry/{id}", get(entry))
        .route("/entry/{id}/reflect", post(reflect))
        .route("/entry/{id}/iterate", post(iterate))
        .route("/entry/{id}/close", post(close))
        .route("/entry/{id}/reopen", post(reopen))
        .route("/entry/{id}/edit", post(edit))
        .route("/entry/{id}/delete", get(delete_confirm).post(delete))
        .route("/entry/{id}/share", get(share_picker).post(share))
        .route("/entry/{id}/unshare", post(unshare))
        .route("/cheer", post(cheer))
        .route("/partner", get(partner))
        .route("/devices", get(devices))
        .route("/devices/invite", post(device_invite))
        .route("/devices/partner-invite", post(partner_invite))
        .route("/devices/{device}/revoke", get(revoke_confirm).post(revoke))
        .route("/practice", get(crate::settings::practice))
        .route("/settings", get(crate::settings::settings))
        .route("/settings/prompts", post(crate::settings::prompts))
        .route("/settings/charts", post(crate::settings::charts))
        .with_state(app)
}

#[derive(serde::Deserialize)]
struct Login {
    token: Option<String>,
}

async fn login(State(app): State<App>, Query(q): Query<Login>) -> Response {
    match q.token.as_deref().and_then(|t| app.gate.redeem(t)) {
        Some(session) => {
            let cookie = format!(
                "{}={session}; HttpOnly; SameSite=Strict; Path=/",
                app.gate.cookie_name()
            );
            // A page that moves on to Today, not a redirect: a browser sent here from another
            // site or from the opener's local page holds back a SameSite=Strict cookie for the
            // rest of that navigation, while this page's own move to Today is same-site.
            let mut r = html! {
                (maud::DOCTYPE)
                html lang="en" {
                    head {
                        meta charset="utf-8";
                        meta http-equiv="refresh" content="0;url=/today";
                        title { "failup" }
                    }
                    body { p { "Signed in. " a href="/today" { "Open Today" } } }
                }
            }
            .into_response();
            match HeaderValue::from_str(&cookie) {
                Ok(v) => {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                    r
                }
                Err(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot set the session\n",
                )
                    .into_response(),
            }
        }
        None => (
            StatusCode::FORBIDDEN,
            "this link was used already or has expired: run `failup ui` again for a new one\n",
        )
            .into_response(),
    }
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/app.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/app.js"),
    )
        .into_response()
}

/// One event each time a document changes, so an open page can fetch itself again.
async fn events(State(app): State<App>) -> Response {
    let mut changes = app.backend.changes();
    // A clone of a stored receiver counts every change since that one last looked as unseen:
    // without this, each page would refresh itself the moment it opened.
    changes.mark_unchanged();
    let stream = tokio_stream::wrappers::WatchStream::from_changes(changes)
        .map(|n| Ok::<_, Infallible>(Event::default().event("change").data(n.to_string())));
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub(crate) fn see(path: String) -> Response {
    Redirect::to(&path).into_response()
}

async fn today(State(app): State<App>, Extension(Csrf(token)): Extension<Csrf>) -> Page {
    let (_, day) = now();
    let (t, _) = app.summary(day).await?;
    let unread = match app.backend.call(Request::Unread).await {
        NodeResponse::Unread(u) => Some(u),
        _ => None,
    };
    let lesson_q = app.prompt(ReframeField::Lesson).await;
    let body = html! {
        h1 { "Today, " (day.strftime("%A %Y-%m-%d").to_string()) }
        (quick_log(&token))
        @if let Some(u) = unread.filter(|u| u.entries > 0 || u.comments > 0) {
            p.unread { a href="/partner" {
                "From your partners: " (u.entries) " new entries, " (u.comments) " new cheers"
            } }
        }
        section {
            h2 { "Logged today" }
            (rows(&t.today, "Nothing logged yet today."))
        }
        section {
            h2 { "Earlier this week" }
            (rows(&t.this_week, "Nothing."))
        }
        section {
            h2 { "Open loops, oldest first (" (t.open_total) ")" }
            (rows(&t.open, "None: every loop has a lesson and a try."))
            @if t.open_total > t.open.len() {
                p { a href="/journal?open=on" { "… and " (t.open_total - t.open.len()) " more" } }
            }
        }
        @if !t.on_this_day.is_empty() {
            section {
                h2 { "On this day" }
                @for e in &t.on_this_day {
                    (view::row(e))
                    @if let Some(lesson) = &e.lesson {
                        p.lesson { (text(&lesson_q)) " " (text(lesson)) }
                        form.inline method="post" action={ "/entry/" (e.id) "/iterate" } {
                            (csrf(&token))
                            input type="hidden" name="back" value="/today";
                            label { "Did the lesson hold? "
                                input name="tried" required placeholder="what you tried";
                            }
                            @for o in ["better", "same", "worse"] {
                                button name="outcome" value=(o) { (o) }
                            }
                        }
                    } @else {
                        p { a href={ "/entry/" (e.id) "#reflect" } { "No lesson yet: reflect" } }
                    }
                }
            }
        }
    };
    Ok(page("Today", "/today", body, None).into_response())
}

/// The one-line capture at the top of Today and Log.
fn quick_log(token: &str) -> Markup {
    html! {
        form.quick method="post" action="/log" data-draft="quick" {
            (csrf(token))
            label for="quick-text" { "What happened?" }
            input id="quick-text" name="text" required autocomplete="off"
                placeholder="One line and Enter logs a micro setback";
            button { "Log" }
        }
    }
}

/// What a log form holds, to fill it again after a refusal.
#[derive(Default)]
struct LogValues {
    text: String,
    scale_macro: bool,
    area: String,
    tags: String,
    feeling: String,
    day: String,
    lesson: String,
    muscle: String,
    use_it: String,
    next: String,
}

impl LogValues {
    fn of(f: &Form) -> LogValues {
        LogValues {
            text: f.raw("text").into(),
            scale_macro: f.raw("scale") == "macro",
            area: f.raw("area").into(),
            tags: f.raw("tags").into(),
            feeling: f.raw("feeling").into(),
            day: f.raw("day").into(),
            lesson: f.raw("lesson").into(),
            muscle: f.raw("muscle").into(),
            use_it: f.raw("use").into(),
            next: f.raw("next").into(),
        }
    }
}

async fn log_page(app: &App, token: &str, v: &LogValues, p: &Problems) -> Markup {
    let (q_lesson, q_muscle, q_use) = (
        app.prompt(ReframeField::Lesson).await,
        app.prompt(ReframeField::Muscle).await,
        app.prompt(ReframeField::Use).await,
    );
    let refused = !p.is_empty();
    let body = html! {
        h1 { "Log a setback" }
        (p.form())
        form.log method="post" action="/log" data-draft="log" data-filled[refused] {
            (csrf(token))
            label for="text" { "What happened?" }
            textarea id="text" name="text" rows="3" required { (v.text) }
            (p.of("text"))
            details open[refused || v.scale_macro] {
                summary { "More: macro, area, tags, feeling, day, reframe, next step" }
                fieldset.scale {
                    legend { "Scale" }
                    label { input type="radio" name="scale" value="micro" checked[!v.scale_macro]; " micro" }
                    label { input type="radio" name="scale" value="macro" checked[v.scale_macro]; " macro" }
                }
                label for="area" { "Area" }
                input id="area" name="area" value=(v.area) placeholder="work, health, …";
                (p.of("area"))
                label for="tags" { "Tags" }
                input id="tags" name="tags" value=(v.tags) placeholder="comma or space separated";
                (p.of("tags"))
                label for="feeling" { "How hard did it hit? (1–5)" }
                input id="feeling" name="feeling" value=(v.feeling) inputmode="numeric";
                (p.of("feeling"))
                label for="day" { "Day it happened" }
                input id="day" name="day" value=(v.day) placeholder="YYYY-MM-DD (today when empty)";
                (p.of("day"))
                label for="lesson" { (text(&q_lesson)) }
                textarea id="lesson" name="lesson" rows="2" { (v.lesson) }
                (p.of("lesson"))
                label for="muscle" { (text(&q_muscle)) }
                textarea id="muscle" name="muscle" rows="2" { (v.muscle) }
                (p.of("muscle"))
                label for="use" { (text(&q_use)) }
                textarea id="use" name="use" rows="2" { (v.use_it) }
                (p.of("use"))
                label for="next" { "Next step" }
                input id="next" name="next" value=(v.next);
                (p.of("next"))
            }
            button { "Log it" }
        }
    };
    page("Log", "/log", body, None)
}

async fn log_form(State(app): State<App>, Extension(Csrf(token)): Extension<Csrf>) -> Response {
    log_page(&app, &token, &LogValues::default(), &Problems::default())
        .await
        .into_response()
}

/// Tags as a person types them: separated by commas or spaces, `#` allowed.
fn tags_of(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A day from a form, or a problem for `field`.
fn day_of(p: &mut Problems, field: &'static str, s: &str) -> Option<Date> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    match s.parse::<Date>() {
        Ok(d) => Some(d),
        Err(_) => {
            p.add(
                field,
                format!("day {s:?} is not a day: write it as YYYY-MM-DD"),
            );
            None
        }
    }
}

/// A feeling from a form, or a problem.
fn feeling_of(p: &mut Problems, s: &str) -> Option<u8> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    match s.parse::<u8>() {
        Ok(n) => Some(n),
        Err(_) => {
            p.add(
                "feeling",
                format!("feeling must be a number from 1 to 5, not {s:?}"),
            );
            None
        }
    }
}

async fn log(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    body: Bytes,
) -> Response {
    let f = Form::of(&body);
    let mut p = Problems::default();
    let new = NewEntry {
        text: f.raw("text").into(),
        scale: if f.raw("scale") == "macro" {
            Scale::Macro
        } else {
            Scale::Micro
        },
        day: day_of(&mut p, "day", f.raw("day")),
        area: f.get("area"),
        tags: tags_of(f.raw("tags")),
        feeling: feeling_of(&mut p, f.raw("feeling")),
        lesson: f.get("lesson"),
        muscle: f.get("muscle"),
        use_it: f.get("use"),
        next: f.get("next"),
    };
    if p.is_empty() {
        let (now, today) = now();
        let request = Request::Log {
            new,
            now_ms: now.as_millisecond(),
            today: today.to_string(),
        };
        match app.backend.call(request).await {
            NodeResponse::Entry(e) => {
                return see(format!("/entry/{}?saved={}", e.id, draft_name(&f)));
            }
            NodeResponse::Error(e) => p = Problems::from_failure(&e),
            r => return unexpected(r).into_response(),
        }
    }
    let page = log_page(&app, &token, &LogValues::of(&f), &p).await;
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

/// Which draft a form was saved from: the quick line or the full form.
fn draft_name(f: &Form) -> &'static str {
    if f.has("scale") { "log" } else { "quick" }
}

/// A query value that says something.
fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

#[derive(serde::Deserialize, Default)]
struct JournalQuery {
    q: Option<String>,
    tag: Option<String>,
    area: Option<String>,
    scale: Option<String>,
    open: Option<String>,
    since: Option<String>,
    until: Option<String>,
    page: Option<usize>,
}

async fn journal(State(app): State<App>, Query(q): Query<JournalQuery>) -> Page {
    let mut p = Problems::default();
    let mut filter = Filter::default().with_search(nonempty(&q.q).unwrap_or(""));
    filter.tags = nonempty(&q.tag)
        .map(tags_of)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| failup_journal::entry::normalize_tag(t).ok())
        .collect();
    filter.area = nonempty(&q.area).map(str::to_owned);
    filter.scale = match nonempty(&q.scale) {
        Some("micro") => Some(Scale::Micro),
        Some("macro") => Some(Scale::Macro),
        _ => None,
    };
    filter.open = nonempty(&q.open).is_some();
    filter.since = day_of(&mut p, "since", q.since.as_deref().unwrap_or(""));
    filter.until = day_of(&mut p, "until", q.until.as_deref().unwrap_or(""));
    let page_no = q.page.unwrap_or(1).clamp(1, 100_000);
    let wanted = page_no * PAGE + 1;
    let mut found = app.entries(filter, Some(wanted as u64)).await?;
    let more = found.len() == wanted;
    let shown: Vec<Entry> = found
        .drain(..)
        .skip((page_no - 1) * PAGE)
        .take(PAGE)
        .collect();
    let link = |n: usize| {
        let mut pairs: Vec<(String, String)> = [
            ("q", &q.q),
            ("tag", &q.tag),
            ("area", &q.area),
            ("scale", &q.scale),
            ("open", &q.open),
            ("since", &q.since),
            ("until", &q.until),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
        .collect();
        pairs.push(("page".into(), n.to_string()));
        format!(
            "/journal?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    let val = |s: &Option<String>| s.clone().unwrap_or_default();
    let body = html! {
        h1 { "Journal" }
        (p.form())
        form.filters method="get" action="/journal" {
            input name="q" value=(val(&q.q)) placeholder="search" aria-label="search";
            input name="tag" value=(val(&q.tag)) placeholder="tag" aria-label="tag";
            input name="area" value=(val(&q.area)) placeholder="area" aria-label="area";
            select name="scale" aria-label="scale" {
                option value="" { "any scale" }
                option value="micro" selected[q.scale.as_deref() == Some("micro")] { "micro" }
                option value="macro" selected[q.scale.as_deref() == Some("macro")] { "macro" }
            }
            label { input type="checkbox" name="open" checked[q.open.is_some()]; " open only" }
            input name="since" value=(val(&q.since)) placeholder="since YYYY-MM-DD" aria-label="since";
            input name="until" value=(val(&q.until)) placeholder="until YYYY-MM-DD" aria-label="until";
            button { "Filter" }
        }
        (rows(&shown, "No entries match."))
        nav.pages {
            @if page_no > 1 { a rel="prev" href=(link(page_no - 1)) { "← newer" } }
            " page " (page_no) " "
            @if more { a rel="next" href=(link(page_no + 1)) { "older →" } }
        }
    };
    Ok(page("Journal", "/journal", body, None).into_response())
}

#[derive(serde::Deserialize, Default)]
struct EntryQuery {
    saved: Option<String>,
}

async fn entry(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    Path(id): Path<String>,
    Query(q): Query<EntryQuery>,
) -> Page {
    let e = app.entry(&id).await?;
    let body = entry_body(&app, &token, &e, &Problems::default(), None).await?;
    let own = [
        "log".to_owned(),
        "quick".to_owned(),
        format!("reflect-{}", e.id),
        format!("iterate-{}", e.id),
        format!("edit-{}", e.id),
    ];
    let clear = q.saved.as_deref().filter(|s| own.iter().any(|o| o == s));
    Ok(page(&text(e.title()), "", body, clear).into_response())
}

/// What a refused form on the entry page held, to fill it again.
struct Kept<'a> {
    form: &'static str,
    values: &'a Form,
}

async fn entry_body(
    app: &App,
    token: &str,
    e: &Entry,
    p: &Problems,
    kept: Option<Kept<'_>>,
) -> Result<Markup, Trouble> {
    let shares = app.shares().await?;
    let mine = shares.iter().find(|s| s.id == e.id);
    let partners = app.partners().await?;
    let questions = [
        ("lesson", app.prompt(ReframeField::Lesson).await, &e.lesson),
        ("muscle", app.prompt(ReframeField::Muscle).await, &e.muscle),
        ("use", app.prompt(ReframeField::Use).await, &e.use_it),
    ];
    let kept_value = |form: &str, field: &str, current: &str| -> String {
        match &kept {
            Some(k) if k.form == form => k.values.raw(field).to_owned(),
            _ => current.to_owned(),
        }
    };
    let id = e.id;
    let (tz_now, _) = now();
    Ok(html! {
        (p.form())
        article.entry-page {
            p.meta {
                span.day { (e.day.to_string()) }
                " · " span class={ "scale " (e.scale.as_str()) } { (e.scale.as_str()) }
                @if let Some(a) = &e.area { " · " span.area { (text(a)) } }
                @for t in &e.tags { " " span.tag { "#" (text(t)) } }
                @if let Some(f) = e.feeling { " · felt " (f) "/5" }
                " · " span class={ "status " (view::status(e)) } { (view::status(e)) }
                " · " span.id title=(id.to_string()) { (short(id)) }
            }
            div.story { (paragraphs(&e.text)) }
            @if let Some(n) = &e.next { p.next { strong { "Next step: " } (text(n)) } }
        }
        section id="reflect" {
            h2 { "Reflect" }
            form method="post" action={ "/entry/" (id) "/reflect" } data-draft={ "reflect-" (id) } {
                (csrf(token))
                @for (name, question, answer) in &questions {
                    label for={ "r-" (name) } { (text(question)) }
                    textarea id={ "r-" (name) } name=(name) rows="3" {
                        (kept_value("reflect", name, answer.as_deref().unwrap_or("")))
                    }
                    (p.of(name))
                }
                button { "Save reflection" }
            }
        }
        section id="iterate" {
            h2 { "What was tried" }
            @if e.iterations.is_empty() { p.empty { "Nothing tried yet." } }
            ol.iterations {
                @for it in &e.iterations {
                    li {
                        span.day { (it.at.strftime("%Y-%m-%d").to_string()) } " "
                        (text(&it.tried))
                        @if let Some(o) = it.outcome { " " span class={ "outcome " (o.as_str()) } { (o.as_str()) } }
                    }
                }
            }
            form method="post" action={ "/entry/" (id) "/iterate" } data-draft={ "iterate-" (id) } {
                (csrf(token))
                label for="tried" { "What did you try?" }
                input id="tried" name="tried" required value=(kept_value("iterate", "tried", ""));
                (p.of("tried"))
                label for="outcome" { "How did it go?" }
                select id="outcome" name="outcome" {
                    option value="" { "not known yet" }
                    @for o in ["better", "same", "worse"] { option value=(o) { (o) } }
                }
                (p.of("outcome"))
                button { "Record the try" }
            }
        }
        section id="loop" {
            @if e.closed_at.is_some() {
                form.inline method="post" action={ "/entry/" (id) "/reopen" } {
                    (csrf(token)) "The loop is closed. " button { "Reopen" }
                }
            } @else {
                form.inline method="post" action={ "/entry/" (id) "/close" } {
                    (csrf(token)) button { "Close the loop" }
                }
            }
        }
        section id="sharing" {
            h2 { "Sharing" }
            @if partners.is_empty() {
                p.empty { "No partner yet: pair one on the Devices page." }
            }
            @if let Some(s) = mine {
                p { "Shared with " (s.with.iter().map(|w| text(w)).collect::<Vec<_>>().join(", ")) "." }
                @for w in &s.with {
                    form.inline method="post" action={ "/entry/" (id) "/unshare" } {
                        (csrf(token)) input type="hidden" name="with" value=(w);
                        button { "Stop sharing with " (text(w)) }
                    }
                }
            }
            @for partner in partners.iter().filter(|p| !p.revoked) {
                p { a href={ "/entry/" (id) "/share?" (serde_urlencoded::to_string([("with", &partner.label)]).unwrap_or_default()) } {
                    "Share with " (text(&partner.label)) "…"
                } }
            }
            @if let Some(s) = mine {
                (comments(&s.comments))
                (cheer_form(token, id, &format!("/entry/{id}")))
            }
        }
        details.edit {
            summary { "Edit" }
            form method="post" action={ "/entry/" (id) "/edit" } data-draft={ "edit-" (id) } {
                (csrf(token))
                label for="e-text" { "What happened" }
                textarea id="e-text" name="text" rows="4" required { (kept_value("edit", "text", &e.text)) }
                (p.of("text"))
                label for="e-area" { "Area" }
                input id="e-area" name="area" value=(kept_value("edit", "area", e.area.as_deref().unwrap_or("")));
                (p.of("area"))
                label for="e-tags" { "Tags" }
                input id="e-tags" name="tags" value=(kept_value("edit", "tags", &e.tags.iter().cloned().collect::<Vec<_>>().join(" ")));
                (p.of("tags"))
                label for="e-feeling" { "Feeling (1–5)" }
                input id="e-feeling" name="feeling" value=(kept_value("edit", "feeling", &e.feeling.map(|f| f.to_string()).unwrap_or_default()));
                (p.of("feeling"))
                label for="e-day" { "Day" }
                input id="e-day" name="day" value=(kept_value("edit", "day", &e.day.to_string()));
                (p.of("day"))
                label for="e-next" { "Next step" }
                input id="e-next" name="next" value=(kept_value("edit", "next", e.next.as_deref().unwrap_or("")));
                (p.of("next"))
                fieldset.scale {
                    legend { "Scale" }
                    label { input type="radio" name="scale" value="micro" checked[e.scale == Scale::Micro]; " micro" }
                    label { input type="radio" name="scale" value="macro" checked[e.scale == Scale::Macro]; " macro" }
                }
                button { "Save changes" }
            }
        }
        p.danger { a href={ "/entry/" (id) "/delete" } { "Delete this entry…" } }
        p.updated { "Last changed " (failup_report::ago(e.updated, tz_now)) "." }
    })
}

/// Comments under a shared entry.
fn comments(list: &[failup_node::request::CommentInfo]) -> Markup {
    html! {
        @if !list.is_empty() {
            ul.comments {
                @for c in list {
                    li class=[c.new.then_some("new")] {
                        strong { (c.by.as_deref().map(text).unwrap_or_else(|| "you".into())) }
                        ": " (text(&c.comment.text))
                        @if c.new { " " span.badge { "new" } }
                    }
                }
            }
        }
    }
}

fn cheer_form(token: &str, id: EntryId, back: &str) -> Markup {
    html! {
        form.inline.cheer method="post" action="/cheer" {
            (csrf(token))
            input type="hidden" name="id" value=(id.to_string());
            input type="hidden" name="back" value=(back);
            input name="text" required placeholder="a cheer or a comment" aria-label="comment";
            button { "Cheer" }
        }
    }
}

/// Where a form goes back to: a path of this interface only, never another site.
fn back(f: &Form, default: String) -> String {
    let b = f.raw("back");
    // Letters, digits and a few marks only: no `//`, backslash, tab or other control a browser
    // would strip or read as another host, and nothing a Location header cannot hold.
    let plain = b
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"/_.#?=&-".contains(&c));
    if plain && b.starts_with('/') && !b.starts_with("//") {
        b.to_owned()
    } else {
        default
    }
}

/// Applies `patch` to the entry, then goes back; a refusal shows the entry page with the form
/// filled as it was sent and the message beside the field.
async fn patch_entry(
    app: &App,
    token: &str,
    id: &str,
    f: &Form,
    form: &'static str,
    patch: Result<EntryPatch, Problems>,
) -> Page {
    let e = app.entry(id).await?;
    let p = match patch {
        Ok(patch) => {
            let (now, _) = now();
            let request = Request::Update {
                id: e.id,
                patch,
                now_ms: now.as_millisecond(),
            };
            match app.backend.call(request).await {
                NodeResponse::Entry(e) => {
                    let saved = format!("/entry/{}?saved={form}-{}#{form}", e.id, e.id);
                    return Ok(see(back(f, saved)));
                }
                NodeResponse::Error(fail) => Problems::from_failure(&fail),
                r => return Err(unexpected(r)),
            }
        }
        Err(p) => p,
    };
    let body = entry_body(app, token, &e, &p, Some(Kept { form, values: f })).await?;
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        page(&text(e.title()), "", body, None),
    )
        .into_response())
}

async fn reflect(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = Form::of(&body);
    let patch = EntryPatch {
        lesson: Some(Some(f.raw("lesson").into())),
        muscle: Some(Some(f.raw("muscle").into())),
        use_it: Some(Some(f.raw("use").into())),
        ..EntryPatch::default()
    };
    patch_entry(&app, &token, &id, &f, "reflect", Ok(patch)).await
}

async fn iterate(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = Form::of(&body);
    let mut p = Problems::default();
    let outcome = match f.raw("outcome") {
        "" => None,
        o => match o.parse::<Outcome>() {
            Ok(o) => Some(o),
            Err(e) => {
                p.add("outcome", e.to_string());
                None
            }
        },
    };
    let (now, _) = now();
    let ms = u64::try_from(now.as_millisecond()).unwrap_or(0);
    let patch = EntryPatch {
        iteration: Some(Iteration {
            id: IterationId::from_parts(ms, rand::random()),
            at: now,
            tried: f.raw("tried").into(),
            outcome,
        }),
        ..EntryPatch::default()
    };
    let patch = if p.is_empty() { Ok(patch) } else { Err(p) };
    patch_entry(&app, &token, &id, &f, "iterate", patch).await
}

async fn close(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = Form::of(&body);
    let patch = EntryPatch {
        closed_at: Some(Some(now().0)),
        ..EntryPatch::default()
    };
    patch_entry(&app, &token, &id, &f, "loop", Ok(patch)).await
}

async fn reopen(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = Form::of(&body);
    let patch = EntryPatch {
        closed_at: Some(None),
        ..EntryPatch::default()
    };
    patch_entry(&app, &token, &id, &f, "loop", Ok(patch)).await
}

async fn edit(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = Form::of(&body);
    let e = app.entry(&id).await?;
    let mut p = Problems::default();
    let day = day_of(&mut p, "day", f.raw("day"));
    let feeling = feeling_of(&mut p, f.raw("feeling"));
    let wanted: BTreeSet<String> = tags_of(f.raw("tags"))
        .iter()
        .map(|t| failup_journal::entry::normalize_tag(t).unwrap_or_else(|_| t.clone()))
        .collect();
    let patch = EntryPatch {
        text: Some(f.raw("text").into()).filter(|t: &String| *t != e.text),
        scale: Some(if f.raw("scale") == "macro" {
            Scale::Macro
        } else {
            Scale::Micro
        })
        .filter(|s| *s != e.scale),
        day: day.filter(|d| *d != e.day),
        area: Some(f.get("area")).filter(|a| *a != e.area),
        add_tags: wanted.difference(&e.tags).cloned().collect(),
        remove_tags: e.tags.difference(&wanted).cloned().collect(),
        feeling: Some(feeling).filter(|f| *f != e.feeling),
        next: Some(f.get("next")).filter(|n| *n != e.next),
        ..EntryPatch::default()
    };
    let patch = if p.is_empty() { Ok(patch) } else { Err(p) };
    patch_entry(&app, &token, &id, &f, "edit", patch).await
}

async fn delete_confirm(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    Path(id): Path<String>,
) -> Page {
    let e = app.entry(&id).await?;
    let body = html! {
        h1 { "Delete this entry?" }
        blockquote { (paragraphs(&e.text)) }
        p { "It leaves this journal on every one of your devices, and every partner's feed it is shared in. This cannot be undone." }
        form method="post" action={ "/entry/" (e.id) "/delete" } {
            (csrf(&token))
            button.danger { "Delete it" } " "
            a href={ "/entry/" (e.id) } { "Keep it" }
        }
    };
    Ok(page("Delete", "", body, None).into_response())
}

async fn delete(State(app): State<App>, Path(id): Path<String>) -> Page {
    let e = app.entry(&id).await?;
    let request = Request::Delete {
        id: e.id,
        now_ms: now().0.as_millisecond(),
    };
    app.call(request).await?;
    Ok(see("/journal".into()))
}

/// The fields a share form picked; every field when the form names none.
fn picked(pairs: &[(String, String)]) -> BTreeSet<Field> {
    let named: BTreeSet<Field> = pairs
        .iter()
        .filter(|(k, _)| k == "field")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    if pairs.iter().any(|(k, _)| k == "picked") {
        named
    } else {
        Field::ALL.into_iter().collect()
    }
}

async fn share_picker(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    Path(id): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Page {
    let e = app.entry(&id).await?;
    let pairs = url_pairs(query.unwrap_or_default().as_bytes());
    let with = pairs
        .iter()
        .find(|(k, _)| k == "with")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let fields = picked(&pairs);
    let preview = SharedEntry::project(&e, &fields, now().0);
    let body = html! {
        h1 { "Share with " (text(&with)) }
        p { "Pick what " (text(&with)) " will see. The preview below is exactly what reaches them." }
        form.picker method="get" action={ "/entry/" (e.id) "/share" } {
            input type="hidden" name="with" value=(with);
            input type="hidden" name="picked" value="1";
            @for f in Field::ALL {
                label.pick { input type="checkbox" name="field" value=(f.name()) checked[fields.contains(&f)]; " " (f.name()) }
            }
            button { "Update the preview" }
        }
        section.preview aria-label="what your partner will see" {
            h2 { "What " (text(&with)) " will see" }
            (shared(&preview))
        }
        form method="post" action={ "/entry/" (e.id) "/share" } {
            (csrf(&token))
            input type="hidden" name="with" value=(with);
            @for f in &fields { input type="hidden" name="field" value=(f.name()); }
            button { "Share these fields" } " "
            a href={ "/entry/" (e.id) } { "Cancel" }
        }
    };
    Ok(page("Share", "", body, None).into_response())
}

/// A shared entry as the partner's feed shows it.
fn shared(s: &SharedEntry) -> Markup {
    html! {
        div.shared {
            p.meta {
                span.day { (s.day.to_string()) }
                @if let Some(sc) = s.scale { " · " (sc.as_str()) }
                @if let Some(a) = &s.area { " · " (text(a)) }
                @if let Some(tags) = &s.tags { @for t in tags { " " span.tag { "#" (text(t)) } } }
                @if let Some(f) = s.feeling { " · felt " (f) "/5" }
            }
            @if let Some(t) = &s.text { div.story { (paragraphs(t)) } } @else { p.empty { "(the story is not shared)" } }
            @if let Some(l) = &s.lesson { p { strong { "Lesson: " } (text(l)) } }
            @if let Some(m) = &s.muscle { p { strong { "Muscle: " } (text(m)) } }
            @if let Some(u) = &s.use_it { p { strong { "Use: " } (text(u)) } }
            @if let Some(n) = &s.next { p { strong { "Next: " } (text(n)) } }
            @if let Some(n) = s.iterations {
                p { (n) " tried" @if s.closed_at.is_some() { ", loop closed" } }
            }
        }
    }
}

async fn share(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Page {
    let f = Form::of(&body);
    let e = app.entry(&id).await?;
    let names: Vec<&str> =
        f.0.iter()
            .filter(|(k, _)| k == "field")
            .map(|(_, v)| v.as_str())
            .collect();
    if names.is_empty() {
        return Err(Trouble(Failure::new(
            failup_node::ErrorKind::Invalid,
            "pick at least one field to share",
        )));
    }
    let request = Request::Share {
        id: e.id,
        with: f.raw("with").into(),
        only: Some(names.join(",")),
        now_ms: now().0.as_millisecond(),
    };
    app.call(request).await?;
    Ok(see(format!("/entry/{}#sharing", e.id)))
}

async fn unshare(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Page {
    let f = Form::of(&body);
    let e = app.entry(&id).await?;
    app.call(Request::Unshare {
        id: e.id,
        with: f.raw("with").into(),
    })
    .await?;
    Ok(see(format!("/entry/{}#sharing", e.id)))
}

async fn cheer(State(app): State<App>, body: Bytes) -> Page {
    let f = Form::of(&body);
    let request = Request::Cheer {
        id: f.raw("id").into(),
        text: f.raw("text").into(),
        now_ms: now().0.as_millisecond(),
    };
    app.call(request).await?;
    Ok(see(back(&f, "/partner".into())))
}

/// The header `app.js` sends when it fetches the open page again after a change.
const REFRESH: &str = "x-failup-refresh";

async fn partner(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    headers: axum::http::HeaderMap,
) -> Page {
    // Opening the page reads the feed; the page refreshing itself only looks, so what was new
    // when the person came stays marked while they are there.
    let request = if headers.contains_key(REFRESH) {
        Request::FeedPeek { partner: None }
    } else {
        Request::Feed {
            partner: None,
            now_ms: now().0.as_millisecond(),
        }
    };
    let items: Vec<FeedItem> = match app.call(request).await? {
        NodeResponse::Feed(v) => v,
        r => return Err(unexpected(r)),
    };
    let (theirs, yours): (Vec<&FeedItem>, Vec<&FeedItem>) = items.iter().partition(|i| !i.yours);
    let body = html! {
        h1 { "Partner" }
        section.feed {
            h2 { "What your partners shared" }
            @if theirs.is_empty() { p.empty { "Nothing shared with you yet." } }
            @for i in &theirs {
                article.item class=[i.new.then_some("new")] id={ "item-" (i.entry.id) } {
                    p.from { strong { (text(&i.partner)) } @if i.new { " " span.badge { "new" } } }
                    (shared(&i.entry))
                    (comments(&i.comments))
                    (cheer_form(&token, i.entry.id, "/partner"))
                }
            }
        }
        section.yours {
            h2 { "Your shared entries" }
            @if yours.is_empty() { p.empty { "You have shared nothing yet." } }
            @for i in &yours {
                article.item id={ "mine-" (i.entry.id) } {
                    p.from { "Shared with " strong { (text(&i.partner)) } " · " a href={ "/entry/" (i.entry.id) } { "open" } }
                    (shared(&i.entry))
                    (comments(&i.comments))
                }
            }
        }
    };
    Ok(page("Partner", "/partner", body, None).into_response())
}

fn peer_row(p: &PeerInfo, now: Timestamp) -> Markup {
    let seen = p
        .last_seen
        .as_deref()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| failup_report::ago(t, now));
    html! {
        li.device {
            strong { (text(&p.name)) }
            " " span.role { (p.role) }
            @if p.role == "self" {
                " · this device"
            } @else if p.connected {
                " · connected" @if let Some(path) = &p.path { " (" (path) ")" }
            } @else if let Some(s) = seen {
                " · last seen " (s)
            } @else {
                " · not seen since the daemon started"
            }
            " " code.device-id { (p.device.chars().take(12).collect::<String>()) }
            @if p.role != "self" {
                " " a href={ "/devices/" (p.device) "/revoke" } { "Revoke…" }
            }
        }
    }
}

async fn devices(State(app): State<App>, Extension(Csrf(token)): Extension<Csrf>) -> Page {
    Ok(devices_page(&app, &token, &Problems::default(), "")
        .await?
        .into_response())
}

async fn devices_page(
    app: &App,
    token: &str,
    p: &Problems,
    label: &str,
) -> Result<Markup, Trouble> {
    let peers = match app.call(Request::Peers).await? {
        NodeResponse::Peers(v) => v,
        r => return Err(unexpected(r)),
    };
    let partners = app.partners().await?;
    let now = now().0;
    let body = html! {
        h1 { "Devices" }
        section {
            h2 { "Your devices" }
            ul.devices { @for p in &peers { (peer_row(p, now)) } }
            form.inline method="post" action="/devices/invite" {
                (csrf(token)) button { "Pair another device" }
            }
        }
        section {
            h2 { "Partners" }
            @if partners.is_empty() { p.empty { "No partner yet." } }
            @for partner in &partners {
                h3 { (text(&partner.label)) @if partner.revoked { " (revoked)" } }
                p { "They see " (partner.shared_by_me) " of your entries; you see " (partner.shared_with_me) " of theirs." }
                ul.devices { @for d in &partner.devices { (peer_row(d, now)) } }
            }
            form method="post" action="/devices/partner-invite" {
                (csrf(token))
                label for="label" { "Invite an accountability partner, by the name you call them" }
                input id="label" name="label" value=(label) placeholder="their name (optional)";
                (p.of("label"))
                button { "Invite a partner" }
            }
        }
    };
    Ok(page("Devices", "/devices", body, None))
}

async fn device_invite(State(app): State<App>) -> Page {
    let code = match app.call(Request::Invite { ttl_secs: 600 }).await? {
        NodeResponse::Invite(code) => code,
        r => return Err(unexpected(r)),
    };
    let body = html! {
        h1 { "Pair a device" }
        p { "On your other device, run " code { "failup pair join CODE" } " with this code, or scan it (valid for 10 minutes, once):" }
        (invite(&code))
        p { a href="/devices" { "Done" } }
    };
    Ok(page("Pair", "/devices", body, None).into_response())
}

async fn partner_invite(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    body: Bytes,
) -> Page {
    let f = Form::of(&body);
    let label = f.get("label");
    let request = Request::PartnerInvite {
        ttl_secs: 600,
        label: label.clone(),
    };
    let code = match app.backend.call(request).await {
        NodeResponse::Invite(code) => code,
        NodeResponse::Error(e) => {
            let mut p = Problems::default();
            p.add("label", e.message);
            let page = devices_page(&app, &token, &p, label.as_deref().unwrap_or("")).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
        r => return Err(unexpected(r)),
    };
    let who = label
        .as_deref()
        .map(text)
        .unwrap_or_else(|| "your partner".into());
    let body = html! {
        h1 { "Invite " (who) }
        p { "Give them this code, or let them scan it (valid for 10 minutes, once). They run " code { "failup partner join CODE" } ":" }
        (invite(&code))
        p { a href="/devices" { "Done" } }
    };
    Ok(page("Invite a partner", "/devices", body, None).into_response())
}

/// An invite code as text and as a QR code of it.
fn invite(code: &str) -> Markup {
    // The QR code is drawn by the qrcode crate from the code alone: dark and light modules, no
    // text of anyone's, so it goes into the page as it is.
    let qr = qrcode::QrCode::new(code.as_bytes()).ok().map(|q| {
        q.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build()
    });
    html! {
        p.code { code id="invite-code" { (code) } }
        @if let Some(svg) = qr { div.qr role="img" aria-label="the code as a QR code" { (maud::PreEscaped(svg)) } }
    }
}

async fn revoke_confirm(
    State(app): State<App>,
    Extension(Csrf(token)): Extension<Csrf>,
    Path(device): Path<String>,
) -> Page {
    let peers = match app.call(Request::Peers).await? {
        NodeResponse::Peers(v) => v,
        r => return Err(unexpected(r)),
    };
    // Only a device of the circle: the id then holds nothing that could bend the form's action.
    let Some(peer) = peers
        .iter()
        .find(|p| p.device == device && p.role != "self")
    else {
        return Err(Trouble(Failure::new(
            failup_node::ErrorKind::NotFound,
            "no such device of yours",
        )));
    };
    let (name, device) = (peer.name.clone(), peer.device.clone());
    let body = html! {
        h1 { "Revoke " (text(&name)) "?" }
        p { "It stops syncing at once, on every device of yours, and cannot come back with its key. Use this for a lost or stolen device." }
        form method="post" action={ "/devices/" (device) "/revoke" } {
            (csrf(&token))
            button.danger { "Revoke it" } " "
            a href="/devices" { "Keep it" }
        }
    };
    Ok(page("Revoke", "/devices", body, None).into_response())
}

async fn revoke(State(app): State<App>, Path(device): Path<String>) -> Page {
    app.call(Request::PeerRemove {
        device,
        recovery: None,
        restore: Vec::new(),
    })
    .await?;
    Ok(see("/devices".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_names_its_field() {
        assert_eq!(
            field_of("feeling must be between 1 and 5, not 9"),
            Some("feeling")
        );
        assert_eq!(field_of("tag \"a b\" may not contain spaces"), Some("tags"));
        assert_eq!(field_of("text is empty"), Some("text"));
        assert_eq!(field_of("no entry with id 01"), None);
    }

    #[test]
    fn back_stays_on_this_interface() {
        let f = |b: &str| Form(vec![("back".into(), b.into())]);
        assert_eq!(back(&f("/partner"), "/x".into()), "/partner");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "/\t/evil.example",
            "/x\ny",
            "",
        ] {
            assert_eq!(back(&f(bad), "/x".into()), "/x", "{bad:?}");
        }
    }
}
