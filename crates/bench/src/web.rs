//! `failup-bench web`: how long the web interface takes to answer its heaviest pages, Today,
//! the Journal's first page and Practice, in a real daemon over real HTTP on loopback (and the
//! first Today after a change, which reads the whole journal again), next to
//! the same server answering its stylesheet (the HTTP stack with no journal work) and the
//! command line doing the same work (`today`, `list --limit 50`, `stats`) in the same run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use failup_daemon::control::{Request, Response};

use crate::sync::{Node, free_port};
use crate::{import_entries, median, ms, percentile, run};

/// One GET over a fresh connection; the time until the whole answer is read.
fn get(addr: &str, path: &str, cookie: &str) -> (u16, Duration, usize) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect to the interface");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let took = start.elapsed();
    let head = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, took, raw.len())
}

/// Opens a session: the daemon's one-time link, traded for the cookie.
fn session(node: &Node) -> (String, String) {
    let link = match node.call(Request::UiLink) {
        Response::UiLink(l) => l,
        other => panic!("no link: {other:?}"),
    };
    let rest = link.strip_prefix("http://").expect("an http link");
    let (addr, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut s = TcpStream::connect(addr).expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let cookie = raw
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie: {raw}"))
        .to_owned();
    (addr.to_owned(), cookie)
}

/// Median and p90 of `n` GETs of `path`, and the answer's size.
fn timed(addr: &str, path: &str, cookie: &str, n: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..n {
        let (status, took, len) = get(addr, path, cookie);
        assert_eq!(status, 200, "GET {path}");
        times.push(took);
        bytes = len;
    }
    (
        percentile(times.clone(), 0.5),
        percentile(times, 0.9),
        bytes,
    )
}

pub(crate) fn bench(sizes: &[usize]) {
    println!(
        "| entries | Today p50 (p90) | Journal, first page | Practice | Today, first after a `log` | ref: stylesheet | ref: `today` | ref: `list --limit 50` | ref: `stats` |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("home");
        import_entries(&home, tmp.path(), n);
        run(&home, &["compact"]);
        let cli = |args: &[&str]| median((0..5).map(|_| run(&home, args)).collect());
        let (today_cli, list_cli, stats_cli) = (
            cli(&["today"]),
            cli(&["list", "--limit", "50"]),
            cli(&["stats"]),
        );
        let (mut node, _) = Node::start_with(
            &home,
            free_port(),
            &[
                ("FAILUP_UI_LISTEN", "127.0.0.1:0"),
                ("FAILUP_PORTMAP", "false"),
            ],
        );
        let (addr, cookie) = session(&node);
        // A first answer of each, untimed: the store's pages into the cache, as after any use.
        for path in ["/today", "/journal", "/practice", "/assets/app.css"] {
            get(&addr, path, &cookie);
        }
        let rounds = 11;
        let (today, today90, _) = timed(&addr, "/today", &cookie, rounds);
        let (journal, journal90, _) = timed(&addr, "/journal", &cookie, rounds);
        let (practice, practice90, _) = timed(&addr, "/practice", &cookie, rounds);
        let (css, _, _) = timed(&addr, "/assets/app.css", &cookie, rounds);
        // The first Today after a change reads the whole journal again.
        let after_log = median(
            (0..5)
                .map(|i| {
                    run(&home, &["log", &format!("web bench {i}")]);
                    let (status, took, _) = get(&addr, "/today", &cookie);
                    assert_eq!(status, 200);
                    took
                })
                .collect(),
        );
        node.stop();
        println!(
            "| {n} | {} ({}) | {} ({}) | {} ({}) | {} | {} | {} | {} | {} |",
            ms(today),
            ms(today90),
            ms(journal),
            ms(journal90),
            ms(practice),
            ms(practice90),
            ms(after_log),
            ms(css),
            ms(today_cli),
            ms(list_cli),
            ms(stats_cli),
        );
    }
}
