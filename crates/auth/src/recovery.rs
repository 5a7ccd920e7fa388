//! The owner's way back: a circle's recovery key. The device that starts a circle makes an
//! Ed25519 key whose public half goes into the circle's founding change (which the circle's id
//! names, so no later change can replace it) and whose secret half is shown to the person once
//! and kept nowhere. A revocation signed with it counts whoever wrote it and whatever the
//! revoked device did; it is how a person takes their circle back from a thief who holds the
//! founding device, which the seniority rule alone would leave in charge.
//!
//! proto/sync.md, section "Recovery", is the specification, with a test vector this crate
//! checks.

use data_encoding::BASE32_NOPAD;
use failup_wire::DeviceId;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

/// Most devices one recovery revocation restores: a circle has few devices, and each costs
/// 32 bytes of statement to every device that checks it.
pub const MAX_RESTORE: usize = 16;

/// Why a recovery code does not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodeError {
    /// Not base32, or not the length of a code.
    #[error("this is not a recovery key (it should be 11 groups of 5 letters and digits)")]
    Shape,
    /// The check digits do not match: a mistyped letter.
    #[error("this recovery key has a typo in it (its check does not match)")]
    Check,
}

/// A circle's recovery key, in memory for as long as it takes to show it or sign with it.
pub struct RecoveryKey {
    pair: Ed25519KeyPair,
    seed: [u8; 32],
}

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, even in a log.
        write!(f, "RecoveryKey({})", hex(&self.public()[..4]))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The two check bytes of a code: SHA-256("failup recovery code/1" ‖ seed), first two bytes.
fn check_of(seed: &[u8; 32]) -> [u8; 2] {
    let d = Sha256::new()
        .chain_update(b"failup recovery code/1")
        .chain_update(seed)
        .finalize();
    [d[0], d[1]]
}

impl RecoveryKey {
    /// A fresh key from the system's random source.
    pub fn generate() -> Result<RecoveryKey, crate::KeyError> {
        let seed: [u8; 32] = rand_seed()?;
        RecoveryKey::from_seed(seed)
    }

    /// The key whose secret seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Result<RecoveryKey, crate::KeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| crate::KeyError(e.to_string()))?;
        Ok(RecoveryKey { pair, seed })
    }

    /// The secret seed, to keep until the key is shown.
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The public key, as the founding change holds it.
    pub fn public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// The key as a person writes it down: the seed and two check bytes in base32, in 11
    /// groups of 5 separated by dashes.
    pub fn code(&self) -> String {
        let mut bytes = self.seed.to_vec();
        bytes.extend_from_slice(&check_of(&self.seed));
        let text = BASE32_NOPAD.encode(&bytes);
        let groups: Vec<&str> = text
            .as_bytes()
            .chunks(5)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        groups.join("-")
    }

    /// Reads a code as [`RecoveryKey::code`] writes it; case, spaces and dashes do not matter.
    pub fn from_code(text: &str) -> Result<RecoveryKey, CodeError> {
        let clean: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = BASE32_NOPAD
            .decode(clean.as_bytes())
            .map_err(|_| CodeError::Shape)?;
        let (seed, check) = match bytes.as_slice() {
            [seed @ .., a, b] if seed.len() == 32 => (seed, [*a, *b]),
            _ => return Err(CodeError::Shape),
        };
        let seed = <[u8; 32]>::try_from(seed).map_err(|_| CodeError::Shape)?;
        if check_of(&seed) != check {
            return Err(CodeError::Check);
        }
        RecoveryKey::from_seed(seed).map_err(|_| CodeError::Shape)
    }

    /// Signs the revocation of `device` in the circle `circle`, restoring `restore`.
    pub fn sign_revocation(
        &self,
        circle: [u8; 16],
        device: DeviceId,
        restore: &[DeviceId],
    ) -> [u8; 64] {
        let sig = self
            .pair
            .sign(&revocation_statement(circle, device, restore));
        let mut out = [0u8; 64];
        out.copy_from_slice(sig.as_ref());
        out
    }
}

fn rand_seed() -> Result<[u8; 32], crate::KeyError> {
    use ring::rand::SecureRandom;
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| crate::KeyError("no random source".into()))?;
    Ok(seed)
}

/// The bytes a recovery revocation signs: "failup recovery/1" ‖ circle id ‖ revoked device ‖
/// the number of restored devices (one byte) ‖ each restored device, in the order given.
/// The circle id keeps a signature from being replayed in another circle.
pub fn revocation_statement(circle: [u8; 16], device: DeviceId, restore: &[DeviceId]) -> Vec<u8> {
    let restore = &restore[..restore.len().min(MAX_RESTORE)];
    let mut out = Vec::with_capacity(17 + 16 + 32 + 1 + 32 * restore.len());
    out.extend_from_slice(b"failup recovery/1");
    out.extend_from_slice(&circle);
    out.extend_from_slice(&device.0);
    out.push(restore.len() as u8);
    for d in restore {
        out.extend_from_slice(&d.0);
    }
    out
}

/// Whether `sig` is the recovery key `public`'s signature on the revocation of `device` in
/// `circle`, restoring `restore`.
pub fn check_revocation(
    public: &[u8; 32],
    circle: [u8; 16],
    device: DeviceId,
    restore: &[DeviceId],
    sig: &[u8],
) -> bool {
    restore.len() <= MAX_RESTORE
        && UnparsedPublicKey::new(&ED25519, public)
            .verify(&revocation_statement(circle, device, restore), sig)
            .is_ok()
}
