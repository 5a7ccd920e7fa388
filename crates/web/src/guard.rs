//! What stands between the loopback port and the journal.
//!
//! Loopback is reachable by every local user and, through the person's own browser, by every web
//! page they visit. So, in this order, every request must:
//! 1. name the interface's own address in its Host header (a DNS-rebinding page names its own);
//! 2. carry a session cookie, which only a one-time link from `failup ui` gives: the link's
//!    token comes over the owner-only control socket, and is good once, for two minutes;
//! 3. for anything but GET and HEAD, come from the interface's own origin (Origin header) and
//!    carry the session's CSRF token in its form.
//!
//! Every answer says `Cache-Control: no-store` (entries stay out of the browser's disk cache)
//! and carries a Content-Security-Policy with no inline script and `frame-ancestors 'none'`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;

/// How long a link from `failup ui` can be opened.
pub const LINK_TTL: Duration = Duration::from_secs(120);
/// How long a session lasts without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Links waiting to be opened, at most; the oldest goes first.
const MAX_LINKS: usize = 16;
/// Sessions at once, at most; the least recently used goes first.
const MAX_SESSIONS: usize = 32;
/// The largest form a page sends (an entry's text is at most 64 KiB; every field of an entry
/// at once fits many times over).
pub const MAX_FORM_BYTES: usize = 1 << 20;
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// The policy every answer carries: scripts and styles from this origin only, never inline;
/// no frames around it; forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' \
                       data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                       base-uri 'none'";

struct Session {
    csrf: String,
    used: Instant,
}

#[derive(Default)]
struct Keys {
    links: HashMap<String, Instant>,
    sessions: HashMap<String, Session>,
}

/// The interface's address, its one-time links and its sessions.
pub struct Gate {
    addr: SocketAddr,
    keys: Mutex<Keys>,
}

/// The session a request belongs to, for the pages: its CSRF token goes into every form.
#[derive(Clone, Debug)]
pub struct Csrf(pub String);

fn secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

/// Compares two secrets in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Gate {
    /// A gate for an interface listening on `addr`.
    pub fn new(addr: SocketAddr) -> Gate {
        Gate {
            addr,
            keys: Mutex::new(Keys::default()),
        }
    }

    /// Where the interface listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The name of the session cookie. Cookies do not keep to a port, so the port is in the
    /// name: two interfaces on one machine (two homes) keep their sessions apart.
    pub fn cookie_name(&self) -> String {
        format!("failup-{}", self.addr.port())
    }

    /// A new one-time link that opens a session, good for [`LINK_TTL`].
    pub fn link(&self) -> String {
        let token = secret();
        let now = Instant::now();
        if let Ok(mut k) = self.keys.lock() {
            k.links.retain(|_, until| *until > now);
            if k.links.len() >= MAX_LINKS {
                if let Some(oldest) = k
                    .links
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(t, _)| t.clone())
                {
                    k.links.remove(&oldest);
                }
            }
            k.links.insert(token.clone(), now + LINK_TTL);
        }
        format!("http://{}/login?token={token}", self.addr)
    }

    /// Trades a link's token for a new session's id, once.
    pub fn redeem(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut k = self.keys.lock().ok()?;
        let found = k
            .links
            .keys()
            .find(|t| same(t, token))
            .cloned()
            .and_then(|t| k.links.remove(&t))?;
        if found <= now {
            return None;
        }
        k.sessions
            .retain(|_, s| now.duration_since(s.used) < SESSION_IDLE);
        if k.sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = k
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(id, _)| id.clone())
            {
                k.sessions.remove(&oldest);
            }
        }
        let id = secret();
        k.sessions.insert(
            id.clone(),
            Session {
                csrf: secret(),
                used: now,
            },
        );
        Some(id)
    }

    /// The CSRF token of the session a cookie names, if it is a live session.
    fn session(&self, id: &str) -> Option<String> {
        let now = Instant::now();
        let mut k = self.keys.lock().ok()?;
        let key = k.sessions.keys().find(|s| same(s, id)).cloned()?;
        let s = k.sessions.get_mut(&key)?;
        if now.duration_since(s.used) >= SESSION_IDLE {
            k.sessions.remove(&key);
            return None;
        }
        s.used = now;
        Some(s.csrf.clone())
    }

    /// Whether a Host header names this interface: its address as bound, or `localhost` with
    /// its port. Anything else is a page that had its own name resolve to loopback.
    pub fn host_ok(&self, host: &str) -> bool {
        let port = self.addr.port();
        host == self.addr.to_string()
            || host == format!("localhost:{port}")
            || (port == 80 && (host == self.addr.ip().to_string() || host == "localhost"))
    }
}

/// Every value of the cookie `name` in a request's Cookie headers. Cookies do not keep to a
/// port, so a page on another loopback port may have set one of the same name (with a longer
/// path, so it comes first): each is tried, and a planted one cannot lock the person out.
pub(crate) fn cookies(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .take(8)
        .collect()
}

/// A refusal: a status and one line saying why and what to do.
fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// The CSRF token a form carries.
fn form_csrf(body: &[u8]) -> Option<String> {
    url_pairs(body)
        .into_iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v)
}

/// The fields of an `application/x-www-form-urlencoded` body.
pub(crate) fn url_pairs(body: &[u8]) -> Vec<(String, String)> {
    // A malformed body reads as no fields at all: the page then says what is missing.
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

async fn check(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !gate.host_ok(&host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            &format!(
                "refused: this is failup's web interface at {}, not {host:?}",
                gate.addr()
            ),
        );
    }
    let path = request.uri().path();
    if path == "/login" || path.starts_with("/assets/") {
        return next.run(request).await;
    }
    let Some(csrf) = cookies(request.headers(), &gate.cookie_name())
        .into_iter()
        .find_map(|id| gate.session(&id))
    else {
        return refuse(
            StatusCode::FORBIDDEN,
            "no session: open the journal with `failup ui`, which gives this browser a key",
        );
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(Csrf(csrf.clone()));
    if parts.method == Method::GET || parts.method == Method::HEAD {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("");
    if origin != format!("http://{host}") {
        return refuse(
            StatusCode::FORBIDDEN,
            &format!("refused: a change must come from this page, not from {origin:?}"),
        );
    }
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "refused: the form is too large",
        );
    };
    if !form_csrf(&bytes).is_some_and(|t| same(&t, &csrf)) {
        return refuse(
            StatusCode::FORBIDDEN,
            "refused: the form lacks this session's token; reload the page and send it again",
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it browsers send `Origin: null` with a page's own form posts,
    // and the Origin check would refuse every change. `same-origin` still tells other sites
    // nothing.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Puts the checks in front of every route of `app`, and the headers on every answer
/// (refusals included).
pub(crate) fn wrap(app: Router, gate: Arc<Gate>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(gate, check))
        .layer(axum::middleware::from_fn(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate::new("127.0.0.1:7677".parse().expect("addr"))
    }

    fn token(link: &str) -> &str {
        link.split_once("token=").map(|(_, t)| t).expect("token")
    }

    #[test]
    fn a_link_opens_one_session_only() {
        let g = gate();
        let link = g.link();
        assert!(link.starts_with("http://127.0.0.1:7677/login?token="));
        let id = g.redeem(token(&link)).expect("first use");
        assert!(g.session(&id).is_some());
        assert!(g.redeem(token(&link)).is_none(), "a link is good once");
        assert!(g.redeem("made-up").is_none());
        assert!(g.session("made-up").is_none());
    }

    #[test]
    fn only_the_interfaces_own_host_names_pass() {
        let g = gate();
        assert!(g.host_ok("127.0.0.1:7677"));
        assert!(g.host_ok("localhost:7677"));
        for bad in [
            "evil.example:7677",
            "127.0.0.1",
            "127.0.0.1:80",
            "localhost",
            "",
            "127.0.0.1:7677.evil.example",
        ] {
            assert!(!g.host_ok(bad), "{bad:?} passed");
        }
    }

    #[test]
    fn too_many_links_drop_the_oldest() {
        let g = gate();
        let first = g.link();
        for _ in 0..MAX_LINKS {
            g.link();
        }
        assert!(g.redeem(token(&first)).is_none());
    }

    #[test]
    fn the_csrf_token_is_read_from_the_form() {
        assert_eq!(form_csrf(b"a=1&csrf=abc%2B&b=2").as_deref(), Some("abc+"));
        assert_eq!(form_csrf(b"a=1"), None);
        assert_eq!(form_csrf(&[0xff, 0xfe]), None);
    }
}
