//! failup's wire protocol, byte for byte as proto/sync.md specifies it: the ids devices and
//! documents go by, the messages two devices exchange, and how messages are framed on a QUIC
//! stream.
//!
//! Everything here decodes bytes from a peer that may be hostile: every decoder returns an
//! error rather than panicking, and every length is checked against a named limit before
//! anything is allocated for it.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// ALPN of the sync protocol, version 2 (version 1 carried no seals: a device speaking it
/// could not prove who wrote a change, so it is not spoken any more).
pub const ALPN_SYNC: &[u8] = b"failup/2";
/// ALPN of the pairing exchange, version 1.
pub const ALPN_PAIR: &[u8] = b"failup-pair/1";
/// Largest frame payload accepted, in bytes. A bucket document is tens of KiB and Automerge
/// sends a whole document at most, so 16 MiB leaves a wide margin while bounding memory.
pub const MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;
/// Most documents one inventory may list.
pub const MAX_INVENTORY: usize = 1 << 20;
/// Most seals one [`Message::Seals`] may carry: 65,536 seals of 129 bytes are 8.5 MiB, well
/// inside a frame.
pub const MAX_SEALS: usize = 1 << 16;
/// Length of the frame header: a big-endian `u32` payload length.
pub const FRAME_HEADER_BYTES: usize = 4;

/// A device's signature binding one Automerge change to the device key that wrote it (or, for
/// a change written before seals existed, that vouches for it). proto/sync.md, "Seals", says
/// what is signed and how a receiver checks it; `failup-auth` makes and checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// The change's hash.
    #[serde(with = "serde_bytes")]
    pub hash: [u8; 32],
    /// 0: the signer wrote the change (its actor id is the signer's); 1: the signer vouches
    /// for a change written before seals existed.
    pub kind: u8,
    /// The signer's Ed25519 public key.
    #[serde(with = "serde_bytes")]
    pub key: [u8; 32],
    /// The Ed25519 signature over the statement proto/sync.md gives.
    #[serde(with = "serde_bytes")]
    pub sig: [u8; 64],
}

/// A whole document as Automerge saves it, with the seals of all its changes.
pub type SealedDoc = (Vec<u8>, Vec<Seal>);

/// Everything that can be wrong with bytes from a peer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A frame announced a payload over its limit ([`MAX_FRAME_BYTES`] for sync).
    #[error("frame of {0} bytes exceeds the limit")]
    FrameTooLarge(u32),
    /// The payload is not a message of this protocol version.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Text that should be a device id is not one.
    #[error("{0:?} is not a device id")]
    BadDeviceId(String),
    /// A well-formed message of a type this version does not know (a later version's).
    #[error("message of unknown type {0:?}")]
    UnknownType(String),
}

/// A device: the SHA-256 of its certificate's public key (SubjectPublicKeyInfo DER). Knowing
/// it does not let anyone act as the device; presenting the key does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceId(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl DeviceId {
    /// The id of the device whose public key info is `spki_der`.
    pub fn from_public_key(spki_der: &[u8]) -> DeviceId {
        DeviceId(Sha256::digest(spki_der).into())
    }

    /// The first group of the readable form, for logs and short listings.
    pub fn short(&self) -> String {
        self.to_string().chars().take(7).collect()
    }
}

impl fmt::Display for DeviceId {
    /// 52 base32 characters in groups of 7 (the last of 3) joined by dashes, as Syncthing shows
    /// its device ids, so people can compare them aloud.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = data_encoding::BASE32_NOPAD.encode(&self.0);
        let groups: Vec<&str> = text
            .as_bytes()
            .chunks(7)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        f.write_str(&groups.join("-"))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.short())
    }
}

impl FromStr for DeviceId {
    type Err = WireError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String = s
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        let bytes = data_encoding::BASE32_NOPAD
            .decode(compact.as_bytes())
            .map_err(|_| WireError::BadDeviceId(s.chars().take(80).collect()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| WireError::BadDeviceId(s.chars().take(80).collect()))?;
        Ok(DeviceId(arr))
    }
}

/// A document: 16 random bytes, as Automerge Repo names documents.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DocId(#[serde(with = "serde_bytes")] pub [u8; 16]);

impl DocId {
    /// The id as one number, as the store keys documents.
    pub fn as_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The id from its number.
    pub fn from_u128(v: u128) -> DocId {
        DocId(v.to_be_bytes())
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({self})")
    }
}

/// A short digest of a document's heads, for inventories.
pub type HeadsDigest = [u8; 8];

/// One document in an inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryItem {
    /// The document.
    pub doc: DocId,
    /// The first 8 bytes of [`heads_digest`] of its heads.
    #[serde(with = "serde_bytes")]
    pub heads: HeadsDigest,
}

/// The messages of the sync protocol. CBOR maps with a `type` key, close to Automerge Repo's
/// vocabulary (`sync`, `request`, `doc-unavailable`) so other Automerge clients can be
/// connected later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// Everything the sender holds that it may share with this peer, in one digest. Equal
    /// digests mean the two are in sync: one round trip, a few dozen bytes.
    Summary {
        /// [`journal_digest`] of the sender's shareable documents.
        #[serde(with = "serde_bytes")]
        digest: [u8; 32],
        /// How many documents that covers.
        docs: u64,
        /// Whether this answers a summary that matched: a reply is never answered, which ends
        /// the exchange.
        reply: bool,
    },
    /// Sent when summaries differ: every shareable document and a digest of its heads.
    Inventory {
        /// The documents, in id order.
        items: Vec<InventoryItem>,
    },
    /// One Automerge sync message for a document the sender holds.
    Sync {
        /// The document.
        doc: DocId,
        /// `automerge::sync::Message::encode()` output.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// One Automerge sync message for a document the sender does not hold yet.
    Request {
        /// The document.
        doc: DocId,
        /// `automerge::sync::Message::encode()` output.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A whole document the receiver does not hold, as Automerge saves it (compressed): for a
    /// document the peer lacks entirely this is about half the bytes of its changes.
    Doc {
        /// The document.
        doc: DocId,
        /// `automerge::AutoCommit::save()` output.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Proof of who wrote changes the next `Sync` or `Doc` message for this document carries:
    /// one seal per change, sent just before it. A change that arrives without a seal that
    /// checks out is refused, whoever relays it.
    Seals {
        /// The document.
        doc: DocId,
        /// The seals, at most [`MAX_SEALS`].
        seals: Vec<Seal>,
    },
    /// The sender will not sync this document: it does not exist for this peer. A document
    /// the peer may not see gets exactly this answer too.
    DocUnavailable {
        /// The document.
        doc: DocId,
    },
    /// The address the sender sees this connection come from: how the receiver looks from
    /// outside (its router's public address and port, when it is behind one). Sent once by
    /// each side when a connection opens.
    Observed {
        /// The address, as `ip:port` text.
        #[serde(with = "addr_text")]
        addr: std::net::SocketAddr,
    },
    /// The sender, connected to the receiver and to `device`, tells both to dial each other at
    /// once at the addresses it sees them at (hole punching): the two dials cross in the
    /// routers between, each opening the way for the other.
    Meet {
        /// The device to dial.
        device: DeviceId,
        /// Where the sender sees it, as `ip:port` texts; at most [`MAX_MEET_ADDRS`].
        #[serde(with = "addrs_text")]
        addrs: Vec<std::net::SocketAddr>,
    },
}

/// Addresses one `meet` message carries at most.
pub const MAX_MEET_ADDRS: usize = 4;

/// `addr` as a peer's own: an IPv4-mapped IPv6 address (how a dual-stack socket sees an IPv4
/// peer, `::ffff:a.b.c.d`) back to plain IPv4, so one peer has one spelling in the circle, in
/// `Observed` and `Meet`, and in the rules that look at an address's scope.
pub fn canonical(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// A list of socket addresses as `ip:port` texts.
mod addrs_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(
        addrs: &[std::net::SocketAddr],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(addrs.len()))?;
        for a in addrs {
            seq.serialize_element(&a.to_string())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<std::net::SocketAddr>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        if texts.len() > super::MAX_MEET_ADDRS {
            return Err(D::Error::custom(format!(
                "{} addresses exceed {}",
                texts.len(),
                super::MAX_MEET_ADDRS
            )));
        }
        texts
            .iter()
            .map(|t| {
                t.parse()
                    .map_err(|_| D::Error::custom(format!("{t:?} is not an ip:port address")))
            })
            .collect()
    }
}

/// A socket address as `ip:port` text (`[ip]:port` for IPv6) on the wire, whatever the
/// encoding's idea of a socket address.
mod addr_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(addr: &std::net::SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(addr)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::net::SocketAddr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("{text:?} is not an ip:port address")))
    }
}

/// The `type` of every message this version knows; a frame of another type is skipped.
const KNOWN_TYPES: [&str; 9] = [
    "summary",
    "inventory",
    "sync",
    "request",
    "doc",
    "seals",
    "doc-unavailable",
    "observed",
    "meet",
];

/// The `type` of a payload that is a CBOR map with a text `type`, if it is one this version
/// does not know: a message of a later version, skipped so that devices of two versions
/// still sync.
fn unknown_type(bytes: &[u8]) -> Option<String> {
    let value: ciborium::Value = ciborium::de::from_reader_with_recursion_limit(bytes, 16).ok()?;
    let ty = value.as_map()?.iter().find_map(|(k, v)| match (k, v) {
        (ciborium::Value::Text(k), ciborium::Value::Text(v)) if k == "type" => Some(v.clone()),
        _ => None,
    })?;
    (!KNOWN_TYPES.contains(&ty.as_str())).then_some(ty)
}

impl Message {
    /// The message as a frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing CBOR into a Vec cannot fail for these types.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// A frame payload as a message.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        if bytes.len() > MAX_FRAME_BYTES as usize {
            return Err(WireError::FrameTooLarge(
                u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            ));
        }
        let msg: Message = match ciborium::de::from_reader_with_recursion_limit(bytes, 16) {
            Ok(msg) => msg,
            Err(e) => {
                return Err(match unknown_type(bytes) {
                    Some(ty) => WireError::UnknownType(ty),
                    None => WireError::Malformed(e.to_string()),
                });
            }
        };
        match &msg {
            Message::Inventory { items } if items.len() > MAX_INVENTORY => {
                return Err(WireError::Malformed(format!(
                    "inventory of {} documents exceeds {MAX_INVENTORY}",
                    items.len()
                )));
            }
            Message::Seals { seals, .. } if seals.len() > MAX_SEALS => {
                return Err(WireError::Malformed(format!(
                    "{} seals exceed {MAX_SEALS}",
                    seals.len()
                )));
            }
            _ => {}
        }
        Ok(msg)
    }

    /// The message framed: a 4-byte big-endian length, then the payload.
    pub fn to_frame(&self) -> Vec<u8> {
        frame(&self.encode())
    }
}

/// A payload framed as every failup stream frames it (sync, pairing and control alike): a
/// 4-byte big-endian length, then the payload. A payload longer than `u32::MAX` bytes cannot be
/// framed; callers bound their payloads far below that.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// Reads a frame header and checks the announced length against `max` before anything is
/// allocated for it.
pub fn frame_len_within(header: [u8; FRAME_HEADER_BYTES], max: u32) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(header);
    if len > max {
        return Err(WireError::FrameTooLarge(len));
    }
    Ok(len as usize)
}

/// Reads a sync frame header and checks the announced length before anything is allocated.
pub fn frame_len(header: [u8; FRAME_HEADER_BYTES]) -> Result<usize, WireError> {
    frame_len_within(header, MAX_FRAME_BYTES)
}

/// Splits complete frames off the front of a byte buffer, for transports that deliver bytes in
/// arbitrary pieces.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if the buffer holds one.
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        loop {
            let Some(header) = self.buf.first_chunk::<FRAME_HEADER_BYTES>() else {
                return Ok(None);
            };
            let len = frame_len(*header)?;
            let Some(payload) = self.buf.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
                return Ok(None);
            };
            let decoded = Message::decode(payload);
            self.buf.drain(..FRAME_HEADER_BYTES + len);
            match decoded {
                // A later version's message: skipped, so two versions still sync.
                Err(WireError::UnknownType(_)) => continue,
                other => return other.map(Some),
            }
        }
    }
}

/// Digest of one document's heads: SHA-256 over the heads sorted, truncated to 8 bytes.
pub fn heads_digest(heads: &[[u8; 32]]) -> HeadsDigest {
    let mut sorted = heads.to_vec();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    for head in &sorted {
        h.update(head);
    }
    let full: [u8; 32] = h.finalize().into();
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

/// Digest of a set of documents: SHA-256 over each (document id, heads digest) in id order.
pub fn journal_digest(items: &[InventoryItem]) -> [u8; 32] {
    let mut sorted: Vec<&InventoryItem> = items.iter().collect();
    sorted.sort_unstable_by_key(|i| i.doc);
    let mut h = Sha256::new();
    for item in sorted {
        h.update(item.doc.0);
        h.update(item.heads);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests;
