use super::*;
use proptest::prelude::*;

fn dev(n: u8) -> DeviceId {
    DeviceId([n; 32])
}

/// Builds circles change by change, each change depending on the given earlier ones.
#[derive(Default)]
struct Dag {
    changes: Vec<Change>,
}

impl Dag {
    fn add(&mut self, author: u8, deps: &[usize], acts: Vec<Act>) -> usize {
        let i = self.changes.len();
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&(i as u64 * 7919 + 13).to_le_bytes());
        hash[31] = author;
        self.changes.push(Change {
            hash,
            deps: deps.iter().map(|&d| self.changes[d].hash).collect(),
            author: Author::Device(dev(author)),
            acts,
        });
        i
    }
    fn hash(&self, i: usize) -> [u8; 32] {
        self.changes[i].hash
    }
    fn verdict(&self) -> Verdict {
        evaluate(Founder::Root(self.hash(0)), &self.changes)
    }
}

/// A founds the circle and adds B and R.
fn three() -> (Dag, usize) {
    let mut d = Dag::default();
    let root = d.add(1, &[], vec![Act::Add(dev(1))]);
    let b = d.add(1, &[root], vec![Act::Add(dev(2))]);
    let r = d.add(1, &[b], vec![Act::Add(dev(3))]);
    (d, r)
}

#[test]
fn the_founder_adds_devices_and_a_stranger_adds_nobody() {
    let (mut d, r) = three();
    let stranger = d.add(9, &[r], vec![Act::Add(dev(10))]);
    let v = d.verdict();
    assert_eq!(v.members, [dev(1), dev(2), dev(3)].into_iter().collect());
    assert!(!v.counted.contains(&d.hash(stranger)));
    assert_eq!(v.founder, Some(dev(1)));
}

#[test]
fn a_revoked_device_that_had_not_seen_its_revocation_pairs_no_one_and_revokes_no_one() {
    // Cases 2 and 3: A revokes R; concurrently R revokes A and adds N.
    let (mut d, r_added) = three();
    let before = d.add(3, &[r_added], vec![Act::Add(dev(3))]);
    let revoke = d.add(1, &[before], vec![Act::Revoke(dev(3))]);
    let rogue = d.add(3, &[before], vec![Act::Revoke(dev(1)), Act::Add(dev(4))]);
    let later = d.add(3, &[rogue, revoke], vec![Act::Revoke(dev(2))]);
    let v = d.verdict();
    assert_eq!(v.members, [dev(1), dev(2)].into_iter().collect());
    assert!(v.revoked.contains_key(&dev(3)));
    assert!(!v.revoked.contains_key(&dev(1)) && !v.revoked.contains_key(&dev(2)));
    assert!(v.void.contains(&d.hash(rogue)) && v.void.contains(&d.hash(later)));
    // Revoked by the founder: nothing to contest.
    assert!(v.contested.is_empty());
    // What R did before its revocation stays.
    assert!(v.counted.contains(&d.hash(before)) && !v.void.contains(&d.hash(before)));
}

#[test]
fn a_senior_device_revoked_by_a_junior_one_is_contested_until_it_answers() {
    // R, reaching only B, revokes A, the founder: B cannot know yet whether A revoked R
    // concurrently, so A stays able to deliver the circle to B.
    let (mut d, r) = three();
    let by_r = d.add(3, &[r], vec![Act::Revoke(dev(1))]);
    let v = d.verdict();
    assert!(v.revoked.contains_key(&dev(1)) && v.contested.contains(&dev(1)));
    // A's concurrent revocation of R arrives: A is back, R is out.
    d.add(1, &[r], vec![Act::Revoke(dev(3))]);
    let v = d.verdict();
    assert!(v.members.contains(&dev(1)) && !v.members.contains(&dev(3)));
    assert!(v.void.contains(&d.hash(by_r)));
    assert!(v.contested.is_empty());
}

#[test]
fn the_circle_id_names_its_founding_change() {
    let (d, _) = three();
    let id = circle_id(&d.hash(0));
    assert_eq!(founder_of(id, &d.changes), Founder::Root(d.hash(0)));
    assert_eq!(founder_of([0; 16], &d.changes), Founder::Legacy);
}

#[test]
fn concurrent_mutual_revocation_keeps_the_senior_device() {
    // B (added before R) and R revoke each other concurrently: B stays, R goes, on any side.
    let (mut d, r) = three();
    let by_b = d.add(2, &[r], vec![Act::Revoke(dev(3))]);
    let by_r = d.add(3, &[r], vec![Act::Revoke(dev(2))]);
    let v = d.verdict();
    assert!(v.members.contains(&dev(2)) && !v.members.contains(&dev(3)));
    assert!(v.void.contains(&d.hash(by_r)) && v.counted.contains(&d.hash(by_b)));
    // Even against the founder, a thief's device loses a race.
    let (mut d, r) = three();
    d.add(1, &[r], vec![Act::Revoke(dev(3))]);
    d.add(3, &[r], vec![Act::Revoke(dev(1))]);
    let v = d.verdict();
    assert!(v.members.contains(&dev(1)) && !v.members.contains(&dev(3)));
}

#[test]
fn a_revocation_seen_before_acting_stands_and_devices_added_concurrently_rank_by_id() {
    let mut d = Dag::default();
    let root = d.add(1, &[], vec![]);
    let b = d.add(1, &[root], vec![Act::Add(dev(2))]);
    let c = d.add(1, &[root], vec![Act::Add(dev(5))]);
    let both = d.add(1, &[b, c], vec![]);
    d.add(2, &[both], vec![Act::Revoke(dev(5))]);
    d.add(5, &[both], vec![Act::Revoke(dev(2))]);
    let v = d.verdict();
    assert!(v.members.contains(&dev(2)) && !v.members.contains(&dev(5)));
}

#[test]
fn a_root_that_is_not_the_circles_founds_nothing() {
    let (mut d, r) = three();
    let fake_root = d.add(3, &[], vec![Act::Add(dev(3)), Act::Add(dev(7))]);
    let merge = d.add(1, &[r, fake_root], vec![]);
    let v = d.verdict();
    assert!(!v.members.contains(&dev(7)));
    assert!(!v.counted.contains(&d.hash(fake_root)));
    assert!(v.counted.contains(&d.hash(merge)));
}

#[test]
fn a_legacy_circle_counts_its_legacy_changes() {
    let changes = vec![
        Change {
            hash: [1; 32],
            deps: vec![],
            author: Author::Legacy,
            acts: vec![Act::Add(dev(1)), Act::Add(dev(2))],
        },
        Change {
            hash: [2; 32],
            deps: vec![[1; 32]],
            author: Author::Device(dev(2)),
            acts: vec![Act::Add(dev(3))],
        },
        Change {
            hash: [3; 32],
            deps: vec![[2; 32]],
            author: Author::Device(dev(9)),
            acts: vec![Act::Add(dev(8))],
        },
    ];
    let v = evaluate(Founder::Legacy, &changes);
    assert_eq!(v.members, [dev(1), dev(2), dev(3)].into_iter().collect());
}

/// A random circle: devices join, act and revoke one another, on branches that merge now and
/// then.
fn random_dag(seed: Vec<(u8, u8, u8, u8)>) -> Dag {
    let key = crate::recovery::RecoveryKey::from_seed([42; 32]).expect("key");
    let mut d = Dag::default();
    d.add(
        1,
        &[],
        vec![Act::Add(dev(1)), Act::RecoveryKey(key.public())],
    );
    for (who, what, target, dep) in seed {
        let n = d.changes.len();
        let a = usize::from(dep) % n;
        let b = usize::from(what) % n;
        let deps: Vec<usize> = if what % 3 == 0 && a != b {
            vec![a, b]
        } else {
            vec![a]
        };
        let act = match what % 5 {
            0 | 1 => Act::Add(dev(1 + target % 6)),
            2 => Act::Revoke(dev(1 + target % 6)),
            3 => Act::AddPartner(format!("p{}", target % 3)),
            _ => recover(&d, &key, 1 + target % 6, &[1 + who % 6]),
        };
        d.add(1 + who % 6, &deps, vec![act]);
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_arrival_order_gives_the_same_verdict(
        seed in proptest::collection::vec(any::<(u8, u8, u8, u8)>(), 1..40),
        shuffle in any::<u64>(),
    ) {
        let d = random_dag(seed);
        let v = d.verdict();
        let mut shuffled = d.changes.clone();
        // A Fisher-Yates shuffle from a fixed seed.
        let mut s = shuffle | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let w = evaluate(Founder::Root(d.hash(0)), &shuffled);
        prop_assert_eq!(&v, &w);
        // Nobody is both a member and revoked; the founder is never void.
        prop_assert!(v.members.iter().all(|m| !v.revoked.contains_key(m)));
        prop_assert!(!v.void.contains(&d.hash(0)));
    }
}

#[test]
fn a_vouched_change_after_a_sealed_one_and_a_sealed_second_root_count_for_nothing() {
    let legacy = |hash: u8, deps: &[u8], acts: Vec<Act>| Change {
        hash: [hash; 32],
        deps: deps.iter().map(|&d| [d; 32]).collect(),
        author: Author::Legacy,
        acts,
    };
    let changes = vec![
        legacy(1, &[], vec![Act::Add(dev(1)), Act::Add(dev(2))]),
        // Device 2, sealed, after the legacy founding.
        Change {
            hash: [2; 32],
            deps: vec![[1; 32]],
            author: Author::Device(dev(2)),
            acts: vec![Act::Add(dev(3))],
        },
        // Vouched for after a sealed change: a made-up legacy change revoking devices 1 and 2.
        legacy(3, &[2], vec![Act::Revoke(dev(1)), Act::Revoke(dev(2))]),
        // A sealed change with no past, by a stranger, in a legacy circle.
        Change {
            hash: [4; 32],
            deps: vec![],
            author: Author::Device(dev(9)),
            acts: vec![Act::Add(dev(8)), Act::Revoke(dev(1))],
        },
    ];
    let v = evaluate(Founder::Legacy, &changes);
    assert_eq!(v.members, [dev(1), dev(2), dev(3)].into_iter().collect());
    assert!(v.revoked.is_empty(), "{:?}", v.revoked);
    assert!(!v.counted.contains(&[3; 32]) && !v.counted.contains(&[4; 32]));
}

/// A founds the circle with a recovery key and adds B and C; returns the key too.
fn with_recovery() -> (Dag, usize, crate::recovery::RecoveryKey) {
    let key = crate::recovery::RecoveryKey::generate().expect("key");
    let mut d = Dag::default();
    let root = d.add(
        1,
        &[],
        vec![Act::Add(dev(1)), Act::RecoveryKey(key.public())],
    );
    let b = d.add(1, &[root], vec![Act::Add(dev(2))]);
    let c = d.add(1, &[b], vec![Act::Add(dev(3))]);
    (d, c, key)
}

fn recover(d: &Dag, key: &crate::recovery::RecoveryKey, device: u8, restore: &[u8]) -> Act {
    let id = circle_id(&d.hash(0));
    let restore: Vec<DeviceId> = restore.iter().map(|&r| dev(r)).collect();
    Act::Recover {
        device: dev(device),
        sig: key.sign_revocation(id, dev(device), &restore).to_vec(),
        restore,
    }
}

#[test]
fn the_recovery_key_takes_the_circle_back_from_a_stolen_founder() {
    let (mut d, c, key) = with_recovery();
    // Long before the theft, the founder revoked an old tablet (4).
    let tablet = d.add(1, &[c], vec![Act::Add(dev(4))]);
    let gone = d.add(1, &[tablet], vec![Act::Revoke(dev(4))]);
    // The thief, on the founder, revokes B and C; they had seen it when B fought back.
    let thief = d.add(1, &[gone], vec![Act::Revoke(dev(2)), Act::Revoke(dev(3))]);
    // B's plain revocation of the founder loses: the founder is senior.
    let plain = d.add(2, &[thief], vec![Act::Revoke(dev(1))]);
    let v = d.verdict();
    assert!(v.members.contains(&dev(1)) && !v.members.contains(&dev(2)));
    assert!(v.void.contains(&d.hash(plain)));
    // With the recovery key, B revokes the founder and restores itself and C.
    let rescue = d.add(
        2,
        &[plain],
        vec![Act::Revoke(dev(1)), recover(&d, &key, 1, &[2, 3])],
    );
    // What the thief writes afterwards (and concurrently) is void: revoking B again included.
    let again = d.add(1, &[thief], vec![Act::Revoke(dev(2)), Act::Add(dev(9))]);
    let after = d.add(3, &[rescue], vec![Act::AddPartner("friend".into())]);
    let v = d.verdict();
    assert_eq!(v.members, [dev(2), dev(3)].into_iter().collect());
    assert!(v.recovered.contains(&dev(1)) && v.revoked.contains_key(&dev(1)));
    assert!(v.revoked[&dev(1)].contains(&d.hash(rescue)));
    assert!(v.void.contains(&d.hash(again)) && !v.members.contains(&dev(9)));
    assert!(v.counted.contains(&d.hash(after)) && v.partners.contains("friend"));
    assert!(
        v.contested.is_empty(),
        "a recovered device is never contested"
    );
    // The old tablet, revoked before the theft and not restored, stays revoked.
    assert!(v.revoked.contains_key(&dev(4)) && !v.members.contains(&dev(4)));
    assert_eq!(v.recovery, Some(key.public()));
}

#[test]
fn a_forged_or_misplaced_recovery_counts_for_nothing() {
    let (mut d, c, key) = with_recovery();
    let thief = d.add(1, &[c], vec![Act::Revoke(dev(2))]);
    // A key of the thief's own, signing as if it were the circle's.
    let own = crate::recovery::RecoveryKey::generate().expect("key");
    let forged = d.add(2, &[thief], vec![recover(&d, &own, 1, &[2])]);
    // The real key's signature, with the restore list changed after signing.
    let Act::Recover { sig, .. } = recover(&d, &key, 1, &[3]) else {
        unreachable!()
    };
    let altered = d.add(
        2,
        &[forged],
        vec![Act::Recover {
            device: dev(1),
            restore: vec![dev(2)],
            sig,
        }],
    );
    // The right signature for another circle.
    let elsewhere = Act::Recover {
        device: dev(1),
        restore: vec![dev(2)],
        sig: key.sign_revocation([7; 16], dev(1), &[dev(2)]).to_vec(),
    };
    d.add(2, &[altered], vec![elsewhere]);
    let v = d.verdict();
    assert!(v.members.contains(&dev(1)) && !v.members.contains(&dev(2)));
    assert!(v.recovered.is_empty());

    // A recovery key named anywhere but the founding change is no recovery key.
    let mut d = Dag::default();
    let root = d.add(1, &[], vec![Act::Add(dev(1))]);
    let b = d.add(1, &[root], vec![Act::Add(dev(2))]);
    let named = d.add(1, &[b], vec![Act::RecoveryKey(own.public())]);
    let thief = d.add(1, &[named], vec![Act::Revoke(dev(2))]);
    d.add(2, &[thief], vec![recover(&d, &own, 1, &[2])]);
    let v = d.verdict();
    assert_eq!(v.recovery, None);
    assert!(v.members.contains(&dev(1)) && !v.members.contains(&dev(2)));
}

#[test]
fn recovery_codes_read_back_and_catch_typos() {
    let key = crate::recovery::RecoveryKey::generate().expect("key");
    let code = key.code();
    assert_eq!(code.split('-').count(), 11, "{code}");
    let back = crate::recovery::RecoveryKey::from_code(&code.to_lowercase().replace('-', " "))
        .expect("reads");
    assert_eq!(back.public(), key.public());
    let mut typo: Vec<char> = code.chars().collect();
    typo[3] = if typo[3] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    assert_eq!(
        crate::recovery::RecoveryKey::from_code(&typo).map(|k| k.public()),
        Err(crate::recovery::CodeError::Check)
    );
    assert_eq!(
        crate::recovery::RecoveryKey::from_code("not a key").map(|k| k.public()),
        Err(crate::recovery::CodeError::Shape)
    );
}
