//! Two failup nodes in one process, paired and syncing over QUIC on loopback.
//!
//! ```sh
//! cargo run -p failup-examples --example two_nodes
//! ```
//!
//! Each node is a daemon with its own home (store, device key, control socket). The program
//! drives them through the same control requests the `failup` command sends: an invite on one,
//! a join on the other, an entry logged on the first, and a wait until the second holds it.

use std::time::{Duration, Instant};

use failup_daemon::control::{Request, Response};
use failup_daemon::{Config, Handle};
use failup_journal::{Filter, NewEntry};
use jiff::Timestamp;

async fn node(home: &std::path::Path, name: &str) -> Handle {
    let config = Config {
        home: home.to_owned(),
        listen: "127.0.0.1:0".parse().expect("address"),
        name: name.to_owned(),
        // Both nodes are in this process and know each other's address from the invite.
        mdns: false,
        // Loopback: no router to ask.
        portmap: false,
        relay: None,
        introduce_partners: false,
        ui: None,
    };
    failup_daemon::start(config).await.expect("daemon starts")
}

fn entries(r: Response) -> Vec<String> {
    match r {
        Response::Entries(list) => list.into_iter().map(|e| e.text).collect(),
        other => panic!("unexpected answer: {other:?}"),
    }
}

#[tokio::main]
async fn main() {
    let (home_a, home_b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let a = node(home_a.path(), "laptop").await;
    let b = node(home_b.path(), "phone").await;
    println!("laptop {} on {}", a.device, a.local_addr);
    println!("phone  {} on {}", b.device, b.local_addr);

    let code = match a.call(Request::Invite { ttl_secs: 600 }).await {
        Response::Invite(code) => code,
        other => panic!("no invite: {other:?}"),
    };
    match b.call(Request::Join { code, name: None }).await {
        Response::Done => println!("paired"),
        other => panic!("join failed: {other:?}"),
    }

    let now = Timestamp::now();
    let new = NewEntry {
        text: "Missed the train; left five minutes too late".into(),
        lesson: Some("leave at the quarter hour".into()),
        ..NewEntry::default()
    };
    let logged = a
        .call(Request::Log {
            new,
            now_ms: now.as_millisecond(),
            today: now
                .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .date()
                .to_string(),
        })
        .await;
    let started = Instant::now();
    println!("logged on the laptop: {logged:?}");

    let list = || Request::List {
        filter: Filter::default(),
        limit: None,
    };
    loop {
        let on_phone = entries(b.call(list()).await);
        if !on_phone.is_empty() {
            println!("on the phone after {:?}: {on_phone:?}", started.elapsed());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the entry never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::task::spawn_blocking(move || {
        a.shutdown();
        b.shutdown();
    })
    .await
    .expect("shutdown");
}
