//! `failup-bench sync`: two real daemons on loopback, and the references beside them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use automerge::AutoCommit;
use automerge::sync::{State, SyncDoc};
use failup_daemon::control::{Client, Request, Response, StatusInfo};
use failup_journal::layout::{BUCKET_CAPACITY, Bucket};
use jiff::Timestamp;

use crate::{failup_bin, import_entries, ms, percentile, run};

pub(crate) struct Node {
    home: std::path::PathBuf,
    child: Option<Child>,
}

/// A free UDP port on loopback, so a restarted daemon comes back where it was, as one with the
/// default fixed port does.
pub(crate) fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Node {
    pub(crate) fn start(home: &Path, port: u16) -> (Node, Duration) {
        Node::start_with(home, port, &[])
    }

    /// [`Node::start`] with `env` set for the daemon.
    pub(crate) fn start_with(home: &Path, port: u16, env: &[(&str, &str)]) -> (Node, Duration) {
        let started = Instant::now();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(failup_bin())
            .env("FAILUP_HOME", home)
            .envs(env.iter().copied())
            .args(["daemon", "--listen", &listen, "--no-mdns"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("daemon");
        let node = Node {
            home: home.to_owned(),
            child: Some(child),
        };
        loop {
            if let Some(mut c) = Client::connect(home) {
                if let Ok(Response::Status(_)) = c.call(&Request::Status, None) {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "daemon did not start"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        (node, started.elapsed())
    }

    pub(crate) fn call(&self, r: Request) -> Response {
        let mut c = Client::connect(&self.home).expect("daemon answers");
        c.call(&r, None).expect("call")
    }

    pub(crate) fn status(&self) -> StatusInfo {
        match self.call(Request::Status) {
            Response::Status(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn proc_field(pid: u32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default()
}

pub(crate) fn rss_mib(pid: u32) -> f64 {
    proc_field(pid, "status")
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = proc_field(pid, "stat");
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// The in-process reference: Automerge's sync loop between two documents per bucket, with no
/// store, network or framing.
fn inprocess_sync(all: &[failup_journal::Entry]) -> (Duration, usize) {
    let mut docs = Vec::new();
    for (i, chunk) in all.chunks(BUCKET_CAPACITY).enumerate() {
        let mut b = Bucket::create(&[1; 16], (i as u128).to_be_bytes(), Timestamp::UNIX_EPOCH)
            .expect("bucket");
        b.insert(chunk, Timestamp::UNIX_EPOCH).expect("insert");
        docs.push(b.save());
    }
    let saved: usize = docs.iter().map(Vec::len).sum();
    let start = Instant::now();
    for bytes in &docs {
        let mut a = AutoCommit::load(bytes).expect("load");
        let mut b = AutoCommit::new();
        let (mut sa, mut sb) = (State::new(), State::new());
        loop {
            let ma = a.sync().generate_sync_message(&mut sa);
            let mb = b.sync().generate_sync_message(&mut sb);
            if ma.is_none() && mb.is_none() {
                break;
            }
            if let Some(m) = ma {
                b.sync().receive_sync_message(&mut sb, m).expect("recv");
            }
            if let Some(m) = mb {
                a.sync().receive_sync_message(&mut sa, m).expect("recv");
            }
        }
    }
    (start.elapsed(), saved)
}

/// The transport reference: the same number of bytes over one bare quinn stream on loopback.
fn bare_quinn(bytes: usize) -> Duration {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        #[derive(Debug)]
        struct All;
        impl failup_net::Trust for All {
            fn admits(&self, _: failup_wire::DeviceId) -> bool {
                true
            }
        }
        let (a, b) = (
            failup_net::Identity::ephemeral().expect("id"),
            failup_net::Identity::ephemeral().expect("id"),
        );
        let any = "127.0.0.1:0".parse().expect("addr");
        let alpn: &[u8] = failup_wire::ALPN_SYNC;
        let server = failup_net::endpoint(&b, std::sync::Arc::new(All), any, &[alpn]).expect("ep");
        let client = failup_net::endpoint(&a, std::sync::Arc::new(All), any, &[alpn]).expect("ep");
        let addr = server.local_addr().expect("addr");
        let sink = tokio::spawn(async move {
            let conn = server
                .accept()
                .await
                .expect("incoming")
                .await
                .expect("conn");
            let (_, mut recv) = conn.accept_bi().await.expect("stream");
            let _ = recv.read_to_end(usize::MAX).await;
        });
        let conn = failup_net::connect(&client, &a, b.device(), addr, alpn)
            .await
            .expect("connect");
        let start = Instant::now();
        let (mut send, _) = conn.open_bi().await.expect("stream");
        let chunk = vec![7u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            send.write_all(&chunk[..n]).await.expect("write");
            left -= n;
        }
        send.finish().expect("finish");
        sink.await.expect("sink");
        start.elapsed()
    })
}

pub fn bench(sizes: &[usize]) {
    println!(
        "| entries | initial sync | ref: in-process loop | bytes on the wire | ref: saved size | ref: bare quinn | new entry durable on B p50 / p99 | in-sync reconnect | one new entry after reconnect | cold start | RSS A / B | idle CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        let tmp = tempfile::tempdir().expect("tmp");
        let (ha, hb) = (tmp.path().join("a"), tmp.path().join("b"));
        let all = import_entries(&ha, tmp.path(), n);
        run(&ha, &["compact"]);

        let (pa, pb) = (free_port(), free_port());
        let (a, cold) = Node::start(&ha, pa);
        let (mut b, _) = Node::start(&hb, pb);
        let code = match a.call(Request::Invite { ttl_secs: 600 }) {
            Response::Invite(c) => c,
            other => panic!("{other:?}"),
        };
        let started = Instant::now();
        assert!(matches!(
            b.call(Request::Join { code, name: None }),
            Response::Done
        ));
        let synced = b.call(Request::Sync {
            timeout_ms: 600_000,
        });
        let initial = started.elapsed();
        assert!(
            matches!(&synced, Response::Synced { missing, .. } if missing.is_empty()),
            "{synced:?}"
        );
        let wire = a.status().bytes_sent + b.status().bytes_sent;
        let (inproc, saved) = inprocess_sync(&all);
        let quinn = bare_quinn(wire as usize);

        // New entries: durable on A (the call returns after A's commit) until readable on B.
        let mut lat = Vec::new();
        for i in 0..200 {
            let now = Timestamp::now();
            let new = failup_journal::NewEntry {
                text: format!("live {i}"),
                ..Default::default()
            };
            let mut c = Client::connect(&hb).expect("b");
            let id = match a.call(Request::Log {
                new,
                now_ms: now.as_millisecond(),
                today: "2026-11-23".into(),
            }) {
                Response::Entry(e) => e.id,
                other => panic!("{other:?}"),
            };
            // The log call returns once A's commit is durable; B answers a read only from its
            // store, after its own durable commit.
            let t0 = Instant::now();
            loop {
                if let Ok(Response::MaybeEntry(Some(_))) = c.call(&Request::Get { id }, None) {
                    break;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "entry never arrived"
                );
            }
            lat.push(t0.elapsed());
        }

        // In-sync reconnect: B restarts; what both send until they agree.
        b.stop();
        let before = a.status();
        let (b2, _) = Node::start(&hb, pb);
        b = b2;
        let t0 = Instant::now();
        // Connected and in sync by the connection's own summaries, no `failup sync` asked.
        loop {
            let s = b.status();
            if !s.connected.is_empty() && s.out_of_sync.is_empty() {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "no reconnect");
            std::thread::sleep(Duration::from_micros(200));
        }
        let reconnect = t0.elapsed();
        let after = a.status();
        let bs = b.status();
        let re_bytes = after.bytes_sent - before.bytes_sent + bs.bytes_sent;
        let re_frames = after.frames_sent - before.frames_sent + bs.frames_sent;

        // One new entry on A while B is away, then the reconnect that carries it.
        b.stop();
        let before = a.status();
        let now = Timestamp::now();
        let new = failup_journal::NewEntry {
            text: "while away".into(),
            ..Default::default()
        };
        a.call(Request::Log {
            new,
            now_ms: now.as_millisecond(),
            today: "2026-11-23".into(),
        });
        let (b3, _) = Node::start(&hb, pb);
        b = b3;
        let t0 = Instant::now();
        let mut c = Client::connect(&hb).expect("b");
        let want = failup_journal::Filter::default().with_search("while away");
        loop {
            if let Ok(Response::Entries(e)) = c.call(
                &Request::List {
                    filter: want.clone(),
                    limit: Some(1),
                },
                None,
            ) {
                if !e.is_empty() {
                    break;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "entry never arrived"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let one = t0.elapsed();
        let one_bytes = a.status().bytes_sent - before.bytes_sent + b.status().bytes_sent;

        let (rss_a, rss_b) = (rss_mib(a.pid()), rss_mib(b.pid()));
        let c0 = cpu_ticks(a.pid()) + cpu_ticks(b.pid());
        std::thread::sleep(Duration::from_secs(5));
        let idle = (cpu_ticks(a.pid()) + cpu_ticks(b.pid()) - c0) as f64 / 100.0 / 5.0 * 100.0;
        println!(
            "| {n} | {} = {:.2}× loop | {} | {} KiB = {:.2}× saved | {} KiB | {} | {} / {} | {} B, {} frames, {} | {} B, {} | {} | {:.0} / {:.0} MiB | {:.2}% |",
            ms(initial),
            initial.as_secs_f64() / inproc.as_secs_f64(),
            ms(inproc),
            wire / 1024,
            wire as f64 / saved as f64,
            saved / 1024,
            ms(quinn),
            ms(percentile(lat.clone(), 0.5)),
            ms(percentile(lat, 0.99)),
            re_bytes,
            re_frames,
            ms(reconnect),
            one_bytes,
            ms(one),
            ms(cold),
            rss_a,
            rss_b,
            idle,
        );
    }
}
