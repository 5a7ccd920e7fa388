use super::*;

fn signer(seed: u8) -> Signer {
    let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).expect("seed");
    let key = <[u8; 32]>::try_from(pair.public_key().as_ref()).expect("32 bytes");
    Signer { pair, key }
}

fn hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

const DOC: DocId = DocId([1; 16]);
const HASH: [u8; 32] = [2; 32];

#[test]
fn a_seal_checks_out_for_its_writer_and_names_it() {
    let s = signer(7);
    let seal = s.seal(Kind::Wrote, DOC, HASH);
    let author = check(&seal, DOC, &HASH, &s.actor(), |_| false).expect("checks out");
    assert_eq!(author.device, s.device());
    assert_eq!(author.kind, Kind::Wrote);
}

#[test]
fn a_change_under_another_devices_actor_is_refused() {
    let (owner, thief) = (signer(7), signer(8));
    let seal = thief.seal(Kind::Wrote, DOC, HASH);
    assert_eq!(
        check(&seal, DOC, &HASH, &owner.actor(), |_| false),
        Err(SealError::ForeignActor)
    );
    // Nor may the thief vouch for a change under the owner's actor id.
    let vouch = thief.seal(Kind::Vouched, DOC, HASH);
    let owners = owner.actor();
    assert_eq!(
        check(&vouch, DOC, &HASH, &owners, |a| a == owners.as_slice()),
        Err(SealError::VouchForDevice)
    );
    assert_eq!(
        check(&vouch, DOC, &HASH, &thief.actor(), |_| false),
        Err(SealError::VouchForDevice)
    );
    // A vouch for a legacy actor id checks out, and names the voucher.
    let legacy = [9u8; 16];
    let author = check(&vouch, DOC, &HASH, &legacy, |_| false).expect("vouch");
    assert_eq!(
        (author.device, author.kind),
        (thief.device(), Kind::Vouched)
    );
}

#[test]
fn a_seal_does_not_move_to_another_change_document_or_kind() {
    let s = signer(7);
    let seal = s.seal(Kind::Wrote, DOC, HASH);
    assert_eq!(
        check(&seal, DOC, &[3; 32], &s.actor(), |_| false),
        Err(SealError::OtherChange)
    );
    assert_eq!(
        check(&seal, DocId([4; 16]), &HASH, &s.actor(), |_| false),
        Err(SealError::BadSignature)
    );
    let mut flipped = seal;
    flipped.kind = 1;
    assert_eq!(
        check(&flipped, DOC, &HASH, &[9; 16], |_| false),
        Err(SealError::BadSignature)
    );
    let mut bent = seal;
    bent.sig[10] ^= 1;
    assert_eq!(
        check(&bent, DOC, &HASH, &s.actor(), |_| false),
        Err(SealError::BadSignature)
    );
    let mut odd = seal;
    odd.kind = 2;
    assert_eq!(
        check(&odd, DOC, &HASH, &s.actor(), |_| false),
        Err(SealError::UnknownKind(2))
    );
    // Another key claiming the signature.
    let mut other = seal;
    other.key = signer(8).key();
    assert!(
        check(
            &other,
            DOC,
            &HASH,
            &actor_of(&device_of(&other.key)),
            |_| false
        )
        .is_err()
    );
}

/// The vectors in proto/sync.md, sections "Seals" and "Membership" (checked against PyNaCl and
/// hashlib).
#[test]
fn test_vectors() {
    let s = signer(7);
    assert_eq!(
        hex(&s.key()),
        "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
    );
    assert_eq!(hex(&s.actor()), "2687f954edacb8d6f062b25381980e50");
    assert_eq!(
        hex(&s.device().0),
        "324be2dea8bc44461b0233e51fa48902ed6b1cc671e7739af2551e0bfe68f54e"
    );
    assert_eq!(
        hex(&statement(0, DOC, &HASH)),
        concat!(
            "6661696c7570207365616c2f3100",
            "01010101010101010101010101010101",
            "0202020202020202020202020202020202020202020202020202020202020202"
        )
    );
    assert_eq!(
        hex(&s.seal(Kind::Wrote, DOC, HASH).sig),
        concat!(
            "fd7044f6ce48c4658237d9664936fb11695bf3575cb20549c392f78a04e74e73",
            "db00044fc5779373f63f797f468c7ab73e709be869af4bdb8db5816a80db410e"
        )
    );
    // Section "Membership": the id of a circle whose founding change has hash 32 × 11.
    assert_eq!(
        hex(&crate::membership::circle_id(&[0x11; 32])),
        "429318826048709511c5f85de17dfbde"
    );
}

#[test]
fn recovery_vectors_match_the_spec() {
    // proto/sync.md, section "Recovery"; checked against PyNaCl as well.
    let spec = include_str!("../../../proto/sync.md");
    let k = crate::recovery::RecoveryKey::from_seed([0x21; 32]).expect("key");
    let restore = [DeviceId([0x03; 32])];
    let st = crate::recovery::revocation_statement([0x01; 16], DeviceId([0x02; 32]), &restore);
    let sig = k.sign_revocation([0x01; 16], DeviceId([0x02; 32]), &restore);
    let vectors = [
        ("public key", hex(&k.public())),
        ("code", k.code()),
        ("statement", hex(&st)),
        ("signature", hex(&sig)),
    ];
    for (name, value) in vectors {
        let line = format!("recovery {name}: `{value}`");
        assert!(spec.contains(&line), "proto/sync.md lacks {line}");
    }
    assert!(crate::recovery::check_revocation(
        &k.public(),
        [0x01; 16],
        DeviceId([0x02; 32]),
        &restore,
        &sig
    ));
    assert!(!crate::recovery::check_revocation(
        &k.public(),
        [0x01; 16],
        DeviceId([0x02; 32]),
        &[],
        &sig
    ));
}
