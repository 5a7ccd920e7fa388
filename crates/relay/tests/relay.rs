//! A relay and devices in one process, on loopback: devices holding the token reach each other
//! through it with their own TLS; a device without it gets nothing through.

use std::sync::Arc;
use std::time::Duration;

use failup_net::{Identity, Trust};
use failup_relay::device::{self, RelaySocket};
use failup_relay::server::{self, Limits, Stats};
use failup_relay::{RelayCode, TOKEN_BYTES};
use failup_wire::DeviceId;

#[derive(Debug)]
struct Only(DeviceId);

impl Trust for Only {
    fn admits(&self, d: DeviceId) -> bool {
        d == self.0
    }
}

struct Device {
    identity: Arc<Identity>,
    socket: Arc<RelaySocket>,
    relayed: quinn::Endpoint,
}

fn identity(dir: &std::path::Path, name: &str) -> Arc<Identity> {
    Arc::new(Identity::load_or_create(&dir.join(name)).expect("key"))
}

/// A device linked to the relay with `code`, trusting `peer`.
fn device(identity: Arc<Identity>, peer: DeviceId, code: RelayCode) -> Device {
    let (socket, ends) = device::socket(Arc::new(Only(peer)));
    let relayed =
        failup_net::endpoint_on(&identity, Arc::new(Only(peer)), socket.clone(), &[b"test"])
            .expect("relayed endpoint");
    let own = failup_net::endpoint(
        &identity,
        Arc::new(Only(peer)),
        "127.0.0.1:0".parse().expect("addr"),
        &[b"test"],
    )
    .expect("endpoint");
    tokio::spawn(device::keep_linked(own, identity.clone(), code, ends));
    Device {
        identity,
        socket,
        relayed,
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_holding_the_token_talk_through_the_relay_and_a_stranger_does_not() {
    let dir = tempfile::tempdir().expect("dir");
    let relay_id = identity(dir.path(), "relay.key");
    let endpoint =
        server::endpoint(&relay_id, "127.0.0.1:0".parse().expect("addr")).expect("relay");
    let token = [5u8; TOKEN_BYTES];
    let code = RelayCode {
        relay: relay_id.device(),
        token,
        addr: endpoint.local_addr().expect("addr"),
    };
    let stats = Arc::new(Stats::default());
    tokio::spawn(server::serve(
        endpoint,
        token,
        Limits::default(),
        stats.clone(),
    ));
    let (ka, kb) = (identity(dir.path(), "a.key"), identity(dir.path(), "b.key"));
    let a = device(ka.clone(), kb.device(), code.clone());
    let b = device(kb.clone(), ka.device(), code.clone());
    until("both linked", || a.socket.is_up() && b.socket.is_up()).await;

    // A dials B through the relay; B accepts on its relayed endpoint; bytes go both ways.
    let accept = {
        let relayed = b.relayed.clone();
        tokio::spawn(async move {
            let conn = relayed
                .accept()
                .await
                .expect("incoming")
                .await
                .expect("handshake");
            let (mut send, mut recv) = conn.accept_bi().await.expect("stream");
            let got = recv.read_to_end(1 << 20).await.expect("read");
            send.write_all(&got).await.expect("echo");
            send.finish().expect("finish");
            let _ = conn.closed().await;
            failup_net::peer_device(&conn)
        })
    };
    let conn = failup_net::connect(
        &a.relayed,
        &a.identity,
        kb.device(),
        a.socket.addr_of(kb.device()).expect("room"),
        b"test",
    )
    .await
    .expect("connect through the relay");
    assert!(device::is_relayed(&conn.remote_address()));
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let story = vec![b'x'; 200_000];
    send.write_all(&story).await.expect("write");
    send.finish().expect("finish");
    let back = recv.read_to_end(1 << 20).await.expect("echo");
    assert_eq!(back, story);
    conn.close(0u32.into(), b"done");
    assert_eq!(accept.await.expect("join"), Some(ka.device()));
    assert!(stats.forwarded.load(std::sync::atomic::Ordering::Relaxed) >= 400_000);

    // A device with a wrong token is refused, and a dial through it reaches no one.
    let kc = identity(dir.path(), "c.key");
    let mut wrong = code.clone();
    wrong.token[0] ^= 1;
    let c = device(kc.clone(), kb.device(), wrong);
    until("the wrong token refused", || {
        stats.refused.load(std::sync::atomic::Ordering::Relaxed) == 1
    })
    .await;
    assert!(!c.socket.is_up());
    let tried = tokio::time::timeout(
        Duration::from_secs(3),
        failup_net::connect(
            &c.relayed,
            &c.identity,
            kb.device(),
            c.socket.addr_of(kb.device()).expect("room"),
            b"test",
        ),
    )
    .await;
    assert!(
        !matches!(tried, Ok(Ok(_))),
        "no connection without the token"
    );
}

#[derive(Debug)]
struct Anyone;

impl Trust for Anyone {
    fn admits(&self, _: DeviceId) -> bool {
        true
    }
}

/// Opens a link the way a modified client would, returning the connection once welcomed.
async fn raw_link(identity: &Identity, code: &RelayCode) -> quinn::Connection {
    let ep = failup_net::endpoint(
        identity,
        Arc::new(Anyone),
        "127.0.0.1:0".parse().expect("addr"),
        &[b"x"],
    )
    .expect("endpoint");
    let conn = failup_net::connect(
        &ep,
        identity,
        code.relay,
        code.addr,
        failup_relay::ALPN_RELAY,
    )
    .await
    .expect("connect");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    send.write_all(&failup_relay::hello(&code.token))
        .await
        .expect("hello");
    let mut answer = [0u8; 1];
    recv.read_exact(&mut answer).await.expect("answer");
    assert_eq!(answer, [0], "welcomed");
    // Keep the stream open: dropping it would end the link.
    std::mem::forget((send, recv));
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_linking_again_ends_its_earlier_link() {
    let dir = tempfile::tempdir().expect("dir");
    let relay_id = identity(dir.path(), "relay.key");
    let endpoint =
        server::endpoint(&relay_id, "127.0.0.1:0".parse().expect("addr")).expect("relay");
    let code = RelayCode {
        relay: relay_id.device(),
        token: [6; TOKEN_BYTES],
        addr: endpoint.local_addr().expect("addr"),
    };
    let stats = Arc::new(Stats::default());
    tokio::spawn(server::serve(
        endpoint,
        code.token,
        Limits::default(),
        stats.clone(),
    ));
    let thief = identity(dir.path(), "thief.key");
    let first = raw_link(&thief, &code).await;
    let _second = raw_link(&thief, &code).await;
    // Without this, one key could hold any number of links, each with a rate of its own.
    tokio::time::timeout(Duration::from_secs(10), first.closed())
        .await
        .expect("the first link is closed");
    assert_eq!(stats.linked.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_relay_naming_new_devices_does_not_grow_the_device() {
    let dir = tempfile::tempdir().expect("dir");
    let relay_id = identity(dir.path(), "relay.key");
    let endpoint = failup_net::endpoint(
        &relay_id,
        Arc::new(Anyone),
        "127.0.0.1:0".parse().expect("addr"),
        &[failup_relay::ALPN_RELAY],
    )
    .expect("fake relay");
    let code = RelayCode {
        relay: relay_id.device(),
        token: [7; TOKEN_BYTES],
        addr: endpoint.local_addr().expect("addr"),
    };
    let (ka, friend) = (identity(dir.path(), "a.key"), DeviceId([42; 32]));
    // The fake relay welcomes the device, then sends packets from 10,000 made-up devices and
    // last one from the device it trusts.
    tokio::spawn(async move {
        let conn = endpoint
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("conn");
        let (mut send, mut recv) = conn.accept_bi().await.expect("stream");
        let mut hello = [0u8; failup_relay::HELLO_BYTES];
        recv.read_exact(&mut hello).await.expect("hello");
        send.write_all(&[0]).await.expect("welcome");
        for i in 0..10_000u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            id[31] = 1;
            let frame = failup_relay::packet_frame(DeviceId(id), &[0; 40]).expect("frame");
            send.write_all(&frame).await.expect("frame");
        }
        let last = failup_relay::packet_frame(friend, &[0; 40]).expect("frame");
        send.write_all(&last).await.expect("frame");
        let _ = conn.closed().await;
    });
    let a = device(ka, friend, code);
    until("the trusted device's packet", || {
        a.socket.devices_known() >= 1
    })
    .await;
    assert_eq!(
        a.socket.devices_known(),
        1,
        "only the trusted device got an address"
    );
}
