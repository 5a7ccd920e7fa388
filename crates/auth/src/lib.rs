//! Who wrote what. Automerge actor ids are self-asserted: any device can write a change under
//! any actor id, and a device that relays a change cannot tell who made it. A [`Seal`] binds
//! one change to the Ed25519 key that wrote it, so every device checks authorship on receipt,
//! whoever relays the change.
//!
//! Two facts make a seal enough on its own, with no registry to consult:
//! - a device's actor id is derived from its device id, itself the hash of its public key ([`actor_of`]), so a seal of kind
//!   [`Kind::Wrote`] proves the change's actor id belongs to the signer, and a change written
//!   under another device's actor id has no seal that checks out;
//! - a device id is the SHA-256 of the key's SubjectPublicKeyInfo ([`device_of`]), so the
//!   seal names the device that signed it.
//!
//! Changes written before seals existed carry random actor ids that prove nothing. A device
//! that held them when it first started with seals vouches for them ([`Kind::Vouched`]); they
//! then count as the voucher's, for revocation as for everything else. A vouch can never stand
//! for a change under a derived actor id: that would let one device forge another's changes.
//!
//! proto/sync.md, section "Seals", is the specification, with test vectors this crate checks.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod membership;
pub mod recovery;

use failup_wire::{DeviceId, DocId, Seal};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

/// What a seal says of its change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The signer wrote the change: its actor id is [`actor_of`] the signer's key.
    Wrote,
    /// The signer vouches for a change written before seals existed, under an actor id that
    /// is no device's.
    Vouched,
}

impl Kind {
    /// The kind as seals carry it on the wire and in the store: 0 or 1.
    pub fn byte(self) -> u8 {
        match self {
            Kind::Wrote => 0,
            Kind::Vouched => 1,
        }
    }
}

/// Why a seal does not check out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The seal is for another change.
    #[error("the seal is for another change")]
    OtherChange,
    /// The kind byte is neither 0 nor 1.
    #[error("unknown seal kind {0}")]
    UnknownKind(u8),
    /// The signature does not verify under the key.
    #[error("the seal's signature does not verify")]
    BadSignature,
    /// A seal of kind "wrote" for a change whose actor id is not the signer's.
    #[error("the change's actor id is not the signer's")]
    ForeignActor,
    /// A vouch for a change under a device's actor id.
    #[error("a vouch cannot stand for a change under a device's actor id")]
    VouchForDevice,
    /// No seal came with the change.
    #[error("no seal for change {0}")]
    Missing(String),
}

/// A key that cannot be used for signing.
#[derive(Debug, thiserror::Error)]
#[error("the device key cannot sign: {0}")]
pub struct KeyError(String);

/// The device whose public key is `key`: the SHA-256 of its SubjectPublicKeyInfo, as TLS
/// presents it, so the device a seal names is the device a connection authenticates.
pub fn device_of(key: &[u8; 32]) -> DeviceId {
    DeviceId::from_public_key(&spki(key))
}

/// The DER SubjectPublicKeyInfo of an Ed25519 public key (RFC 8410): a fixed 12-byte prefix,
/// then the key.
fn spki(key: &[u8; 32]) -> [u8; 44] {
    const PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let mut out = [0u8; 44];
    out[..12].copy_from_slice(&PREFIX);
    out[12..].copy_from_slice(key);
    out
}

/// The Automerge actor id of `device`: the first 16 bytes of SHA-256("failup actor/1" ‖
/// device id). Derived from the id rather than the key, so any device can tell the actor ids
/// of the devices it knows by id alone.
pub fn actor_of(device: &DeviceId) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"failup actor/1")
        .chain_update(device.0)
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The bytes a seal signs: "failup seal/1" ‖ kind ‖ document id ‖ change hash. The document
/// id keeps a seal from being replayed for the same change bytes in another document.
pub fn statement(kind: u8, doc: DocId, hash: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + 1 + 16 + 32);
    out.extend_from_slice(b"failup seal/1");
    out.push(kind);
    out.extend_from_slice(&doc.0);
    out.extend_from_slice(hash);
    out
}

/// A device's signing key.
pub struct Signer {
    pair: Ed25519KeyPair,
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.device().short())
    }
}

impl Signer {
    /// The signer for a PKCS#8 Ed25519 key, as the device key file holds it.
    pub fn from_pkcs8(der: &[u8]) -> Result<Signer, KeyError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| KeyError(e.to_string()))?;
        let key = <[u8; 32]>::try_from(pair.public_key().as_ref())
            .map_err(|_| KeyError("public key is not 32 bytes".into()))?;
        Ok(Signer { pair, key })
    }

    /// A fresh key that lives in memory only, for tests and benchmarks.
    pub fn generate() -> Result<Signer, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let der = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| KeyError(e.to_string()))?;
        Signer::from_pkcs8(der.as_ref())
    }

    /// The public key.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// The device this key is.
    pub fn device(&self) -> DeviceId {
        device_of(&self.key)
    }

    /// The actor id this device writes changes under.
    pub fn actor(&self) -> [u8; 16] {
        actor_of(&self.device())
    }

    /// A seal for the change `hash` of `doc`.
    pub fn seal(&self, kind: Kind, doc: DocId, hash: [u8; 32]) -> Seal {
        let sig = self.pair.sign(&statement(kind.byte(), doc, &hash));
        let mut out = [0u8; 64];
        out.copy_from_slice(sig.as_ref());
        Seal {
            hash,
            kind: kind.byte(),
            key: self.key,
            sig: out,
        }
    }
}

/// Who a checked seal says wrote (or vouched for) a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Author {
    /// The signer.
    pub device: DeviceId,
    /// What it signed.
    pub kind: Kind,
}

/// Checks that `seal` proves who made the change `hash` of `doc`, written under `actor`.
/// A vouch is refused for any actor id `is_device_actor` names (the actor ids of the devices
/// this device knows), as well as for the signer's own.
pub fn check(
    seal: &Seal,
    doc: DocId,
    hash: &[u8; 32],
    actor: &[u8],
    is_device_actor: impl Fn(&[u8]) -> bool,
) -> Result<Author, SealError> {
    if &seal.hash != hash {
        return Err(SealError::OtherChange);
    }
    let kind = match seal.kind {
        0 => Kind::Wrote,
        1 => Kind::Vouched,
        k => return Err(SealError::UnknownKind(k)),
    };
    let device = device_of(&seal.key);
    let own = actor_of(&device);
    match kind {
        Kind::Wrote if actor != own.as_slice() => return Err(SealError::ForeignActor),
        Kind::Vouched if actor == own.as_slice() || is_device_actor(actor) => {
            return Err(SealError::VouchForDevice);
        }
        _ => {}
    }
    UnparsedPublicKey::new(&ED25519, &seal.key)
        .verify(&statement(seal.kind, doc, hash), &seal.sig)
        .map_err(|_| SealError::BadSignature)?;
    Ok(Author { device, kind })
}

#[cfg(test)]
mod tests;
