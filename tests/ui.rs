//! The web interface over raw HTTP, against the real binary: only the browser `failup ui`
//! opened gets in, a change must come from the interface's own page with its session's token,
//! and what a story holds is shown as text.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use failup_tests::Daemon;

/// One HTTP answer.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends `request` (a whole HTTP/1.1 request, `Connection: close`) and reads the answer.
fn http(addr: &str, request: &str) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect to the web interface");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(addr: &str, host: &str, path: &str, cookie: Option<&str>) -> Answer {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n"),
    )
}

fn post(addr: &str, path: &str, cookie: &str, origin: Option<&str>, form: &str) -> Answer {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n{origin}Content-Type: \
             application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: \
             close\r\n\r\n{form}",
            form.len()
        ),
    )
}

/// `failup ui --no-browser`: the one-time link, and the interface's `host:port`.
fn link(d: &Daemon) -> (String, String) {
    let link = d.ok(&["ui", "--no-browser"]).trim().to_owned();
    let addr = link
        .strip_prefix("http://")
        .and_then(|r| r.split_once('/'))
        .map(|(a, _)| a.to_owned())
        .unwrap_or_else(|| panic!("not a link: {link:?}"));
    (link, addr)
}

/// The path and query of a link.
fn path_of(link: &str) -> String {
    let rest = link.strip_prefix("http://").expect("http link");
    rest[rest.find('/').expect("path")..].to_owned()
}

/// Opens a session the way the browser does: the link, traded for a cookie.
fn session(d: &Daemon) -> (String, String) {
    let (link, addr) = link(d);
    let a = get(&addr, &addr, &path_of(&link), None);
    assert_eq!(a.status, 200, "{}", a.head);
    let set = a.header("set-cookie").expect("a session cookie");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().expect("name=value").to_owned();
    (addr, cookie)
}

fn csrf_of(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &body[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("end of token")].to_owned()
}

#[test]
fn only_the_browser_failup_ui_opened_gets_in_and_changes_come_from_its_own_pages() {
    let d = Daemon::start("laptop");
    let (link, addr) = link(&d);

    // No cookie, no page; and no journal text in the refusal.
    let a = get(&addr, &addr, "/today", None);
    assert_eq!(a.status, 403, "{}", a.head);
    assert!(a.body.contains("failup ui"), "{}", a.body);

    // The link opens one session, once.
    let first = get(&addr, &addr, &path_of(&link), None);
    assert_eq!(first.status, 200);
    let cookie = first
        .header("set-cookie")
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .expect("cookie");
    let again = get(&addr, &addr, &path_of(&link), None);
    assert_eq!(again.status, 403, "a link is good once: {}", again.head);
    assert!(again.header("set-cookie").is_none());
    let made_up = get(
        &addr,
        &addr,
        "/login?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        None,
    );
    assert_eq!(made_up.status, 403);
    let wrong_cookie = get(&addr, &addr, "/today", Some(&format!("{}x", cookie)));
    assert_eq!(wrong_cookie.status, 403);
    // A cookie of the same name planted by a page on another loopback port (cookies do not
    // keep to a port) and sent first does not lock the person out.
    let name = cookie.split('=').next().expect("a name");
    let planted = get(
        &addr,
        &addr,
        "/today",
        Some(&format!("{name}=planted; {cookie}")),
    );
    assert_eq!(planted.status, 200, "{}", planted.head);

    // A page that had its own name resolve to loopback (DNS rebinding) names itself in Host.
    let port = addr.rsplit(':').next().expect("port");
    for host in [
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
    ] {
        let a = get(&addr, &host, "/today", Some(&cookie));
        assert_eq!(a.status, 421, "Host {host}: {}", a.head);
        assert!(!a.body.contains("Today"), "{}", a.body);
    }

    // The session's page: no inline script allowed, no frame around it, kept out of caches.
    let today = get(&addr, &addr, "/today", Some(&cookie));
    assert_eq!(today.status, 200, "{}", today.head);
    let csp = today.header("content-security-policy").expect("CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(today.header("cache-control").as_deref(), Some("no-store"));
    // Under `no-referrer` a browser sends `Origin: null` with the page's own form posts.
    assert_eq!(
        today.header("referrer-policy").as_deref(),
        Some("same-origin")
    );
    assert!(
        !today.body.contains("<script>"),
        "no inline script on the page"
    );
    let csrf = csrf_of(&today.body);

    // A change from another origin, with no origin, or without the token: refused, and
    // nothing is logged.
    let form = format!("csrf={csrf}&text=from+elsewhere");
    let refusals = [
        post(&addr, "/log", &cookie, Some("http://evil.example"), &form),
        post(
            &addr,
            "/log",
            &cookie,
            Some(&format!("http://evil.example:{port}")),
            &form,
        ),
        post(&addr, "/log", &cookie, None, &form),
        post(&addr, "/log", &cookie, Some("null"), &form),
        post(
            &addr,
            "/log",
            &cookie,
            Some(&format!("http://{addr}")),
            "text=from+elsewhere",
        ),
        post(
            &addr,
            "/log",
            &cookie,
            Some(&format!("http://{addr}")),
            "csrf=not-the-token&text=from+elsewhere",
        ),
    ];
    for (i, a) in refusals.iter().enumerate() {
        assert_eq!(a.status, 403, "refusal {i}: {}", a.head);
    }
    assert!(
        d.texts().is_empty(),
        "a refused change logged {:?}",
        d.texts()
    );

    // From the page itself, with the token: logged, as the command line would.
    let ok = post(
        &addr,
        "/log",
        &cookie,
        Some(&format!("http://{addr}")),
        &format!("csrf={csrf}&text=Missed+the+train"),
    );
    assert_eq!(ok.status, 303, "{}{}", ok.head, ok.body);
    assert_eq!(d.texts(), vec!["Missed the train".to_owned()]);

    // A second browser session has its own token: the first one's does not do.
    let (_, other) = session(&d);
    let crossed = post(
        &addr,
        "/log",
        &other,
        Some(&format!("http://{addr}")),
        &format!("csrf={csrf}&text=crossed"),
    );
    assert_eq!(crossed.status, 403);
    assert_eq!(d.texts().len(), 1);
}

#[test]
fn a_story_is_shown_as_text_and_a_refused_field_keeps_what_was_typed() {
    let d = Daemon::start("laptop");
    d.ok(&[
        "log",
        "<script>alert(1)</script><img src=x onerror=alert(2)>",
    ]);
    let (addr, cookie) = session(&d);
    let journal = get(&addr, &addr, "/journal", Some(&cookie));
    assert_eq!(journal.status, 200);
    assert!(!journal.body.contains("<script>alert"), "{}", journal.body);
    assert!(!journal.body.contains("<img src=x"), "{}", journal.body);
    assert!(
        journal
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        journal.body
    );

    let csrf = csrf_of(&get(&addr, &addr, "/log", Some(&cookie)).body);
    let refused = post(
        &addr,
        "/log",
        &cookie,
        Some(&format!("http://{addr}")),
        &format!(
            "csrf={csrf}&text=Lost+my+temper+at+standup&scale=macro&feeling=9&lesson=breathe+first"
        ),
    );
    assert_eq!(refused.status, 422, "{}", refused.head);
    assert!(
        refused.body.contains("Lost my temper at standup"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("breathe first"), "{}", refused.body);
    assert!(
        refused.body.contains("id=\"error-feeling\""),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("feeling must be between 1 and 5"),
        "{}",
        refused.body
    );
    assert_eq!(d.texts().len(), 1, "nothing logged by a refused form");
}

#[test]
fn the_web_interface_listens_on_loopback_only() {
    let d = Daemon::start("laptop");
    for addr in ["0.0.0.0:7677", "192.168.1.2:7677", "[::]:7677"] {
        let out = d.run(&["config", "set", "ui.listen", addr]);
        assert!(!out.status.success(), "{addr} was taken");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("loopback"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    d.ok(&["config", "set", "ui.listen", "127.0.0.1:7677"]);
}

#[test]
fn with_no_daemon_failup_ui_serves_the_journal_itself_until_interrupted() {
    let home = failup_tests::Home::new();
    let mut child = home
        .cmd()
        .args(["ui", "--no-browser"])
        .env("FAILUP_LISTEN", "127.0.0.1:0")
        .env("FAILUP_MDNS", "false")
        .env("FAILUP_PORTMAP", "false")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn failup ui");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    // Stopped whatever happens below, so a failed assertion leaves no process behind.
    struct Stop(u32);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &self.0.to_string()])
                .status();
        }
    }
    let stop = Stop(child.id());
    let mut link = String::new();
    // The line arrives once the daemon listens; a closed pipe (a failed start) ends the read.
    std::io::BufRead::read_line(&mut out, &mut link).expect("read the link");
    let link = link.trim().to_owned();
    let addr = link
        .strip_prefix("http://")
        .and_then(|r| r.split_once('/'))
        .map(|(a, _)| a.to_owned())
        .unwrap_or_else(|| panic!("not a link: {link:?}"));
    let a = get(&addr, &addr, &path_of(&link), None);
    assert_eq!(a.status, 200, "{}", a.head);
    let cookie = a
        .header("set-cookie")
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .expect("cookie");
    // Other commands go through it meanwhile.
    let logged = home
        .cmd()
        .args(["log", "Forgot the keys"])
        .output()
        .expect("log");
    assert!(
        logged.status.success(),
        "{}",
        String::from_utf8_lossy(&logged.stderr)
    );
    let today = get(&addr, &addr, "/today", Some(&cookie));
    assert_eq!(today.status, 200);
    assert!(today.body.contains("Forgot the keys"), "{}", today.body);
    drop(stop);
    let status = child.wait().expect("wait");
    assert!(status.success(), "failup ui ended with {status}");
}
