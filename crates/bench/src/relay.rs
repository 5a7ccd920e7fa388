//! `failup-bench relay`: catching up through the person's relay against the direct path, both
//! on loopback in the same run, and what a relay holds per linked device.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use failup_daemon::control::{Request, Response};
use failup_relay::RelayCode;

use crate::sync::{Node, free_port, rss_mib};
use crate::{failup_bin, import_entries, ms, run};

/// Links opened at once to measure a relay's memory per linked device.
const LINKS: usize = 50;

struct RelayProcess {
    child: Child,
    code: RelayCode,
}

impl RelayProcess {
    fn start(home: &Path) -> RelayProcess {
        let mut child = Command::new(failup_bin())
            .arg("--home")
            .arg(home)
            .args(["relay", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay");
        let stdout = child.stdout.take().expect("stdout");
        let code = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix(failup_relay::CODE_LINE)
                    .and_then(|c| c.parse().ok())
            })
            .expect("relay code");
        RelayProcess { child, code }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `a` and `b` on the ports given and waits until they hold the same documents, in
/// sync; returns the time from the start and the path `b` reaches `a` by.
fn catch_up(ha: &Path, hb: &Path, pa: u16, pb: u16) -> (Duration, String, Node, Node) {
    let t0 = Instant::now();
    let (a, _) = Node::start(ha, pa);
    let (b, _) = Node::start(hb, pb);
    let device = a.status().device;
    loop {
        // The third device is away: only A counts.
        let (sa, sb) = (a.status(), b.status());
        if sb.connected.contains(&device)
            && !sb.out_of_sync.contains(&device)
            && sa.documents == sb.documents
        {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "never caught up");
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = t0.elapsed();
    let path = match b.call(Request::Peers) {
        Response::Peers(p) => p
            .into_iter()
            .find_map(|p| p.path.filter(|_| p.connected))
            .unwrap_or_default(),
        _ => String::new(),
    };
    (took, path, a, b)
}

/// Memory the relay holds per linked device: `LINKS` links from this process.
fn per_link(relay: &RelayProcess) -> (f64, f64) {
    let before = rss_mib(relay.child.id());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let after = rt.block_on(async {
        let mut sockets = Vec::new();
        for _ in 0..LINKS {
            let id = Arc::new(failup_net::Identity::ephemeral().expect("id"));
            #[derive(Debug)]
            struct Nobody;
            impl failup_net::Trust for Nobody {
                fn admits(&self, _: failup_wire::DeviceId) -> bool {
                    false
                }
            }
            let ep = failup_net::endpoint(
                &id,
                Arc::new(Nobody),
                "127.0.0.1:0".parse().expect("addr"),
                &[b"x"],
            )
            .expect("endpoint");
            let (socket, ends) = failup_relay::device::socket(Arc::new(Nobody));
            tokio::spawn(failup_relay::device::keep_linked(
                ep,
                id,
                relay.code.clone(),
                ends,
            ));
            sockets.push(socket);
        }
        let t0 = Instant::now();
        while !sockets.iter().all(|s| s.is_up()) {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "links never came up"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_mib(relay.child.id())
    });
    (before, after)
}

pub fn bench(sizes: &[usize]) {
    println!(
        "| entries | relayed: start to in sync | ref: direct, same run | relayed ÷ direct | of which the direct attempts' head start | relay RSS idle | relay RSS with {LINKS} links | per link |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        let tmp = tempfile::tempdir().expect("tmp");
        let relay = RelayProcess::start(&tmp.path().join("relay"));
        let (ha, hd, hr) = (
            tmp.path().join("a"),
            tmp.path().join("direct"),
            tmp.path().join("relayed"),
        );
        let code = relay.code.to_string();
        for h in [&ha, &hd, &hr] {
            run(h, &["config", "set", "relay", &code]);
        }
        // Both partners of A paired while all are empty, then stopped.
        let (pa, pd, pr) = (free_port(), free_port(), free_port());
        {
            let (a, _) = Node::start(&ha, pa);
            for (h, p) in [(&hd, pd), (&hr, pr)] {
                let (b, _) = Node::start(h, p);
                let code = match a.call(Request::Invite { ttl_secs: 600 }) {
                    Response::Invite(c) => c,
                    other => panic!("{other:?}"),
                };
                assert!(matches!(
                    b.call(Request::Join { code, name: None }),
                    Response::Done
                ));
                b.call(Request::Sync { timeout_ms: 60_000 });
            }
        }
        // A's journal grows while they are apart.
        import_entries(&ha, tmp.path(), n);

        // Direct: both come back where they were.
        let (direct, dpath, mut a, mut d) = catch_up(&ha, &hd, pa, pd);
        assert_eq!(dpath, "local", "the direct run went {dpath}");
        a.stop();
        d.stop();
        // Relayed: both come back on ports neither knows (mDNS off), so only the relay joins
        // them.
        let (relayed, rpath, mut a, mut r) = catch_up(&ha, &hr, free_port(), free_port());
        assert_eq!(rpath, "relayed", "the relayed run went {rpath}");
        a.stop();
        r.stop();
        let (idle, linked) = per_link(&relay);
        println!(
            "| {n} | {} | {} | {:.2}× | 2 s | {idle:.1} MiB | {linked:.1} MiB | {:.0} KiB |",
            ms(relayed),
            ms(direct),
            relayed.as_secs_f64() / direct.as_secs_f64(),
            (linked - idle).max(0.0) * 1024.0 / LINKS as f64,
        );
    }
}
