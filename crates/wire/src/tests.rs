//! Wire tests: the test vectors of proto/sync.md, limits at and past their edge, and hostile
//! bytes.

use super::*;
use proptest::prelude::*;

/// The messages whose frames proto/sync.md lists, by vector name.
pub fn vectors() -> Vec<(&'static str, Message)> {
    let doc = DocId([0x11; 16]);
    vec![
        (
            "summary",
            Message::Summary {
                digest: [0xab; 32],
                docs: 3,
                reply: false,
            },
        ),
        (
            "inventory",
            Message::Inventory {
                items: vec![InventoryItem {
                    doc,
                    heads: [1, 2, 3, 4, 5, 6, 7, 8],
                }],
            },
        ),
        (
            "sync",
            Message::Sync {
                doc,
                data: vec![0x42, 0x01, 0x00],
            },
        ),
        (
            "request",
            Message::Request {
                doc,
                data: vec![0x42],
            },
        ),
        (
            "doc",
            Message::Doc {
                doc,
                data: vec![0x85, 0x6f],
            },
        ),
        ("doc-unavailable", Message::DocUnavailable { doc }),
        (
            "observed",
            Message::Observed {
                addr: "203.0.113.7:7676".parse().expect("addr"),
            },
        ),
        (
            "meet",
            Message::Meet {
                device: DeviceId([0x55; 32]),
                addrs: vec![
                    "203.0.113.7:7676".parse().expect("addr"),
                    "[2001:db8::7]:7676".parse().expect("addr"),
                ],
            },
        ),
        (
            "seals",
            Message::Seals {
                doc,
                seals: vec![Seal {
                    hash: [0x22; 32],
                    kind: 0,
                    key: [0x33; 32],
                    sig: [0x44; 64],
                }],
            },
        ),
    ]
}

fn spec_frames() -> Vec<(String, Vec<u8>)> {
    let spec = include_str!("../../../proto/sync.md");
    spec.lines()
        .filter_map(|l| l.strip_prefix("frame "))
        .map(|l| {
            let (name, hex) = l.split_once(':').expect("frame NAME: HEX");
            let hex: String = hex.split_whitespace().collect();
            let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).expect("hex");
            (name.trim().to_owned(), bytes)
        })
        .collect()
}

#[test]
fn frames_match_the_spec_byte_for_byte() {
    let frames = spec_frames();
    let vectors = vectors();
    assert_eq!(frames.len(), vectors.len(), "every vector is in the spec");
    for (name, msg) in vectors {
        let (_, bytes) = frames
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("vector {name} missing from proto/sync.md"));
        assert_eq!(
            &msg.to_frame(),
            bytes,
            "{name}: {}",
            data_encoding::HEXLOWER.encode(&msg.to_frame())
        );
        let mut reader = FrameReader::default();
        reader.push(bytes);
        assert_eq!(reader.next_message().expect("decode"), Some(msg));
    }
}

#[test]
fn frame_limit_is_exact() {
    assert_eq!(
        frame_len(MAX_FRAME_BYTES.to_be_bytes()),
        Ok(MAX_FRAME_BYTES as usize)
    );
    assert_eq!(
        frame_len((MAX_FRAME_BYTES + 1).to_be_bytes()),
        Err(WireError::FrameTooLarge(MAX_FRAME_BYTES + 1))
    );
    let mut reader = FrameReader::default();
    reader.push(&u32::MAX.to_be_bytes());
    assert!(reader.next_message().is_err());
}

#[test]
fn frames_split_anywhere_reassemble() {
    let msgs: Vec<Message> = vectors().into_iter().map(|(_, m)| m).collect();
    let bytes: Vec<u8> = msgs.iter().flat_map(Message::to_frame).collect();
    for split in 0..bytes.len() {
        let mut reader = FrameReader::default();
        let mut got = Vec::new();
        reader.push(&bytes[..split]);
        while let Some(m) = reader.next_message().expect("ok") {
            got.push(m);
        }
        reader.push(&bytes[split..]);
        while let Some(m) = reader.next_message().expect("ok") {
            got.push(m);
        }
        assert_eq!(got, msgs);
    }
}

#[test]
fn unknown_types_are_told_apart_and_garbage_is_malformed() {
    let mut unknown = Vec::new();
    ciborium::into_writer(
        &std::collections::BTreeMap::from([("type", "ephemeral")]),
        &mut unknown,
    )
    .expect("cbor");
    assert!(matches!(
        Message::decode(&unknown),
        Err(WireError::UnknownType(_))
    ));
    let mut untyped = Vec::new();
    ciborium::into_writer(
        &std::collections::BTreeMap::from([("kind", "summary")]),
        &mut untyped,
    )
    .expect("cbor");
    assert!(matches!(
        Message::decode(&untyped),
        Err(WireError::Malformed(_))
    ));
    assert!(Message::decode(b"").is_err());
    assert!(Message::decode(&[0xff; 64]).is_err());
    // A deeply nested array must not exhaust the stack.
    assert!(Message::decode(&[0x81; 100_000]).is_err());
}

#[test]
fn device_ids_read_back_in_any_grouping_and_case() {
    let id = DeviceId::from_public_key(b"some public key");
    let text = id.to_string();
    assert_eq!(text.len(), 52 + 7);
    assert_eq!(text.parse::<DeviceId>(), Ok(id));
    assert_eq!(
        text.replace('-', "").to_lowercase().parse::<DeviceId>(),
        Ok(id)
    );
    assert!("ABC".parse::<DeviceId>().is_err());
    assert!(text[..20].parse::<DeviceId>().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(&bytes);
        let mut reader = FrameReader::default();
        reader.push(&bytes);
        while let Ok(Some(_)) = reader.next_message() {}
    }

    #[test]
    fn sync_messages_round_trip(doc in any::<[u8; 16]>(), data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let msg = Message::Sync { doc: DocId(doc), data };
        prop_assert_eq!(Message::decode(&msg.encode()), Ok(msg));
    }
}

#[test]
fn a_message_of_a_later_version_is_skipped_and_garbage_is_not() {
    let mut later = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Map(vec![(
            ciborium::Value::Text("type".into()),
            ciborium::Value::Text("from-the-future".into()),
        )]),
        &mut later,
    )
    .expect("cbor");
    assert!(matches!(
        Message::decode(&later),
        Err(WireError::UnknownType(t)) if t == "from-the-future"
    ));
    let next = Message::DocUnavailable {
        doc: DocId([1; 16]),
    };
    let mut reader = FrameReader::default();
    reader.push(&frame(&later));
    reader.push(&next.to_frame());
    assert_eq!(reader.next_message().expect("skips"), Some(next));
    // A known type with bad fields is still an error, and so is a map with no type.
    let mut bad = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("type".into()),
                ciborium::Value::Text("observed".into()),
            ),
            (
                ciborium::Value::Text("addr".into()),
                ciborium::Value::Text("not an address".into()),
            ),
        ]),
        &mut bad,
    )
    .expect("cbor");
    assert!(matches!(
        Message::decode(&bad),
        Err(WireError::Malformed(_))
    ));
    let mut reader = FrameReader::default();
    reader.push(&frame(&bad));
    assert!(reader.next_message().is_err());
}

#[test]
fn an_ipv4_peer_seen_by_a_dual_stack_socket_is_spelled_as_ipv4() {
    let mapped: std::net::SocketAddr = "[::ffff:203.0.113.7]:7676".parse().expect("addr");
    assert_eq!(canonical(mapped).to_string(), "203.0.113.7:7676");
    for kept in ["[2001:db8::1]:7676", "192.168.1.2:7676", "[::1]:9"] {
        let addr: std::net::SocketAddr = kept.parse().expect("addr");
        assert_eq!(canonical(addr), addr);
    }
}
