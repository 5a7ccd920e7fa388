//! Handshakes on loopback between real endpoints.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::*;
use failup_wire::ALPN_SYNC;

#[derive(Debug, Default)]
struct Allow(Mutex<BTreeSet<DeviceId>>);

impl Trust for Allow {
    fn admits(&self, device: DeviceId) -> bool {
        self.0.lock().map(|s| s.contains(&device)).unwrap_or(false)
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

#[tokio::test]
async fn trusted_devices_connect_and_learn_each_others_ids() {
    let (a, b) = (
        Identity::ephemeral().expect("a"),
        Identity::ephemeral().expect("b"),
    );
    let trust_b = Arc::new(Allow::default());
    trust_b.0.lock().expect("lock").insert(a.device());
    let server = endpoint(&b, trust_b, loopback(), &[ALPN_SYNC]).expect("server");
    let client =
        endpoint(&a, Arc::new(Allow::default()), loopback(), &[ALPN_SYNC]).expect("client");
    let addr = server.local_addr().expect("addr");
    let accept = tokio::spawn(async move {
        let conn = server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("handshake");
        (peer_device(&conn), alpn_of(&conn))
    });
    let conn = connect(&client, &a, b.device(), addr, ALPN_SYNC)
        .await
        .expect("connect");
    assert_eq!(peer_device(&conn), Some(b.device()));
    let (seen, alpn) = accept.await.expect("join");
    assert_eq!(seen, Some(a.device()));
    assert_eq!(alpn.as_deref(), Some(ALPN_SYNC));
}

#[tokio::test]
async fn an_unknown_device_is_refused_at_the_handshake() {
    let (b, stranger) = (
        Identity::ephemeral().expect("b"),
        Identity::ephemeral().expect("c"),
    );
    let server =
        endpoint(&b, Arc::new(Allow::default()), loopback(), &[ALPN_SYNC]).expect("server");
    let client = endpoint(
        &stranger,
        Arc::new(Allow::default()),
        loopback(),
        &[ALPN_SYNC],
    )
    .expect("client");
    let addr = server.local_addr().expect("addr");
    tokio::spawn(async move {
        if let Some(incoming) = server.accept().await {
            let _ = incoming.await;
        }
    });
    let result = connect(&client, &stranger, b.device(), addr, ALPN_SYNC).await;
    // TLS 1.3 lets the client finish before the server's verdict arrives; the first use of the
    // connection then fails.
    match result {
        Err(_) => {}
        Ok(conn) => {
            let opened = async {
                let (mut send, mut recv) = conn.open_bi().await?;
                send.write_all(b"x").await?;
                recv.read_to_end(10).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            };
            assert!(opened.await.is_err(), "stranger's stream worked");
        }
    }
}

#[tokio::test]
async fn a_server_with_another_key_is_refused() {
    let (a, b, impostor) = (
        Identity::ephemeral().expect("a"),
        Identity::ephemeral().expect("b"),
        Identity::ephemeral().expect("i"),
    );
    let trust = Arc::new(Allow::default());
    trust.0.lock().expect("lock").insert(a.device());
    let server = endpoint(&impostor, trust, loopback(), &[ALPN_SYNC]).expect("server");
    let client =
        endpoint(&a, Arc::new(Allow::default()), loopback(), &[ALPN_SYNC]).expect("client");
    let addr = server.local_addr().expect("addr");
    tokio::spawn(async move {
        if let Some(incoming) = server.accept().await {
            let _ = incoming.await;
        }
    });
    assert!(
        connect(&client, &a, b.device(), addr, ALPN_SYNC)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_prefix_of_the_id_finds_that_device_and_no_other() {
    let (a, b, impostor) = (
        Identity::ephemeral().expect("a"),
        Identity::ephemeral().expect("b"),
        Identity::ephemeral().expect("i"),
    );
    let serve = |id: &Identity| {
        let trust = Arc::new(Allow::default());
        trust.0.lock().expect("lock").insert(a.device());
        let server = endpoint(id, trust, loopback(), &[ALPN_SYNC]).expect("server");
        let addr = server.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Some(incoming) = server.accept().await {
                if let Ok(conn) = incoming.await {
                    // Held open until the client is done with it.
                    conn.closed().await;
                }
            }
        });
        addr
    };
    let (at_b, at_impostor) = (serve(&b), serve(&impostor));
    let client =
        endpoint(&a, Arc::new(Allow::default()), loopback(), &[ALPN_SYNC]).expect("client");
    let prefix = &b.device().0[..12];
    let conn = connect_to_prefix(&client, &a, prefix, at_b, ALPN_SYNC)
        .await
        .expect("connect by prefix");
    assert_eq!(peer_device(&conn), Some(b.device()), "named in full");
    conn.close(0u32.into(), b"done");
    assert!(
        connect_to_prefix(&client, &a, prefix, at_impostor, ALPN_SYNC)
            .await
            .is_err(),
        "another key with a prefix of its own"
    );
    assert!(
        connect_to_prefix(&client, &a, &[], at_b, ALPN_SYNC)
            .await
            .is_err(),
        "an empty prefix names nobody"
    );
}

/// Trusts nobody; says `revoked` of one device.
#[derive(Debug)]
struct RevokedOne(DeviceId);

impl Trust for RevokedOne {
    fn admits(&self, _device: DeviceId) -> bool {
        false
    }
    fn revoked(&self, device: DeviceId) -> bool {
        device == self.0
    }
}

#[tokio::test]
async fn a_revoked_device_is_told_so_and_a_stranger_is_not() {
    let (server_id, revoked, stranger) = (
        Identity::ephemeral().expect("s"),
        Identity::ephemeral().expect("r"),
        Identity::ephemeral().expect("x"),
    );
    let server = endpoint(
        &server_id,
        Arc::new(RevokedOne(revoked.device())),
        loopback(),
        &[ALPN_SYNC],
    )
    .expect("server");
    let addr = server.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            let _ = incoming.await;
        }
    });
    for (who, told) in [(&revoked, true), (&stranger, false)] {
        let client =
            endpoint(who, Arc::new(Allow::default()), loopback(), &[ALPN_SYNC]).expect("client");
        // The client's side of the handshake completes before the server's verdict arrives.
        let conn = connect(&client, who, server_id.device(), addr, ALPN_SYNC)
            .await
            .expect("handshake");
        let _ = conn.closed().await;
        assert_eq!(refused_as_revoked(&conn), told, "{:?}", conn.close_reason());
    }
}

#[test]
fn keys_persist_owner_only_and_garbage_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("device.key");
    let first = Identity::load_or_create(&path).expect("create");
    let again = Identity::load_or_create(&path).expect("load");
    assert_eq!(first.device(), again.device());
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::write(&path, "not a key").expect("write");
    assert!(matches!(
        Identity::load_or_create(&path),
        Err(NetError::BadKey { .. })
    ));
}
