//! Revocation that sticks, with real daemons: a lost device that its owner revoked while
//! another device was offline reaches that device and tries to lock the owner out (by
//! revoking the owner's device at the same time) and to bring in a device of its own. Once
//! the owner's devices meet, both come to nothing on every device.

use std::time::Duration;

use failup_tests::{Daemon, wait_until};

const SOON: Duration = Duration::from_secs(40);

fn peers(d: &Daemon) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&d.ok(&["--json", "peers"]))
        .ok()
        .and_then(|p| p.as_array().cloned())
        .unwrap_or_default()
}

/// Whether `d` lists the device named `name`, revoked or not.
fn lists(d: &Daemon, name: &str, revoked: bool) -> bool {
    peers(d)
        .iter()
        .any(|p| p["name"] == name && p["revoked"] == revoked)
}

fn has(d: &Daemon, text: &str) -> bool {
    d.ok(&["list", "--limit", "100"]).contains(text)
}

/// A founds the circle with B and R, all three in touch.
fn circle() -> (Daemon, Daemon, Daemon) {
    let a = Daemon::start("laptop");
    let b = Daemon::start("phone");
    let r = Daemon::start("lost-tablet");
    a.pair(&b);
    a.pair(&r);
    wait_until("everyone to know everyone", SOON, || {
        lists(&b, "lost-tablet", false) && lists(&r, "phone", false)
    });
    (a, b, r)
}

#[test]
fn a_revoked_device_that_revokes_its_owner_at_the_same_time_comes_to_nothing() {
    let (mut a, mut b, r) = circle();
    // A revokes R while B is offline.
    b.stop();
    let r_id = r.device();
    a.ok(&["peers", "remove", &r_id]);
    a.stop();
    // R, reaching only B, revokes A: concurrently with A's revocation of R.
    b.restart();
    wait_until("R and B to meet", SOON, || {
        lists(&r, "phone", false) && {
            peers(&r)
                .iter()
                .any(|p| p["name"] == "phone" && p["connected"] == true)
        }
    });
    let a_id = a.device();
    r.ok(&["peers", "remove", &a_id]);
    wait_until("B to hear of R's revocation of A", SOON, || {
        lists(&b, "laptop", true)
    });
    // The owner's devices meet again: A's revocation of R stands (A founded the circle), R's
    // of A is void, on both.
    a.restart();
    wait_until("B to take A back and drop R", SOON, || {
        lists(&b, "laptop", false) && lists(&b, "lost-tablet", true)
    });
    wait_until("A to agree", SOON, || {
        lists(&a, "phone", false) && lists(&a, "lost-tablet", true)
    });
    // And they sync: new private entries reach B, never R.
    a.ok(&["log", "after the storm, from the laptop"]);
    b.ok(&["log", "after the storm, from the phone"]);
    wait_until("A and B to sync both ways", SOON, || {
        has(&b, "after the storm, from the laptop") && has(&a, "after the storm, from the phone")
    });
    let out = r.run(&["sync", "--timeout", "3s"]);
    assert!(!out.status.success(), "the revoked tablet still syncs");
    assert!(
        !has(&r, "after the storm"),
        "the revoked tablet got a new entry"
    );
}

#[test]
fn a_device_paired_by_a_revoked_device_receives_nothing_once_the_owner_is_heard() {
    let (mut a, mut b, mut r) = circle();
    b.stop();
    let r_id = r.device();
    a.ok(&["peers", "remove", &r_id]);
    a.stop();
    // R, reaching only B, pairs a device of the thief's.
    b.restart();
    let n = Daemon::start("thiefs-phone");
    r.pair(&n);
    wait_until("B to hear of the new device", SOON, || {
        lists(&b, "thiefs-phone", false)
    });
    a.restart();
    wait_until("B to learn A's revocation of R", SOON, || {
        lists(&b, "lost-tablet", true)
    });
    wait_until("the thief's device gone from A and B", SOON, || {
        !lists(&b, "thiefs-phone", false) && !lists(&a, "thiefs-phone", false)
    });
    a.ok(&["log", "secret written after the owner was heard"]);
    wait_until("B to have it", SOON, || {
        has(&b, "secret written after the owner was heard")
    });
    // The thief's two devices still trust each other; none of the owner's trusts either.
    assert!(!has(&r, "secret written after the owner was heard"));
    r.stop();
    let out = n.run(&["sync", "--timeout", "3s"]);
    assert!(
        !out.status.success(),
        "the thief's device syncs with the owner's devices"
    );
    assert!(!has(&n, "secret written after the owner was heard"));
}

fn text_of(d: &Daemon, id: &str) -> Option<String> {
    let out = d.run(&["--json", "show", id]);
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["text"].as_str().map(str::to_owned)
}

fn undone(d: &Daemon, name: &str) -> u64 {
    peers(d)
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["undone"].as_u64())
        .unwrap_or(0)
}

#[test]
fn what_a_revoked_device_did_after_its_revocation_is_undone_and_nothing_else() {
    let (mut a, mut b, r) = circle();
    let deleted = a
        .ok(&["log", "an entry the thief deletes"])
        .trim()
        .to_owned();
    let edited = a.ok(&["log", "words the thief rewrites"]).trim().to_owned();
    // Before its revocation, R writes something of its own: that stays.
    let before = r
        .ok(&["log", "written on the tablet before it was lost"])
        .trim()
        .to_owned();
    wait_until("everything everywhere", SOON, || {
        [&a, &b, &r].iter().all(|d| {
            text_of(d, &deleted).is_some()
                && text_of(d, &edited).is_some()
                && text_of(d, &before).is_some()
        })
    });
    b.stop();
    let r_id = r.device();
    a.ok(&["peers", "remove", &r_id]);
    a.stop();
    // R, reaching only B, deletes, rewrites and plants.
    b.restart();
    r.ok(&["delete", &deleted, "--yes"]);
    r.ok(&["edit", &edited, "--text", "REWRITTEN by the thief"]);
    let planted = r.ok(&["log", "PLANTED by the thief"]).trim().to_owned();
    wait_until("B to take the thief's changes", SOON, || {
        text_of(&b, &deleted).is_none()
            && text_of(&b, &planted).is_some()
            && text_of(&b, &edited).as_deref() == Some("REWRITTEN by the thief")
    });
    a.restart();
    for (d, who) in [(&a, "laptop"), (&b, "phone")] {
        wait_until(&format!("the journal put back on the {who}"), SOON, || {
            text_of(d, &deleted).as_deref() == Some("an entry the thief deletes")
                && text_of(d, &edited).as_deref() == Some("words the thief rewrites")
                && text_of(d, &planted).is_none()
        });
        assert_eq!(
            text_of(d, &before).as_deref(),
            Some("written on the tablet before it was lost"),
            "what R wrote before its revocation stays"
        );
        let check: serde_json::Value =
            serde_json::from_str(&d.ok(&["--json", "check"])).expect("json");
        assert_eq!(check["mismatches"], 0);
    }
    // Whichever device learned of the revocation after the changes undid them, and says so.
    wait_until("the undone changes reported", SOON, || {
        undone(&a, "lost-tablet") + undone(&b, "lost-tablet") >= 3
    });
    let line = if undone(&a, "lost-tablet") > 0 {
        a.ok(&["peers"])
    } else {
        b.ok(&["peers"])
    };
    assert!(line.contains("undone"), "{line}");
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_recovery_key_takes_the_circle_back_from_a_thief_holding_the_founding_device() {
    let (a, b, c) = circle();
    let (a_id, b_id, c_id) = (a.device(), b.device(), c.device());
    // Until shown, `peers` and `doctor` on the founding device say it is there to write down.
    assert!(stderr(&a.run(&["peers"])).contains("failup peers recovery-key"));
    assert!(String::from_utf8_lossy(&a.run(&["doctor"]).stdout).contains("recovery"));
    // Shown once, on the device that started the circle, and kept nowhere after.
    let key = a.ok(&["peers", "recovery-key"]).trim().to_owned();
    assert!(!stderr(&a.run(&["peers"])).contains("recovery-key"));
    assert_eq!(key.split('-').count(), 11, "{key}");
    let again = a.run(&["peers", "recovery-key"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("shown once already"),
        "{}",
        stderr(&again)
    );
    let elsewhere = b.run(&["peers", "recovery-key"]);
    assert!(
        stderr(&elsewhere).contains("laptop"),
        "{}",
        stderr(&elsewhere)
    );
    b.ok(&["log", "before the theft, from the phone"]);
    wait_until("the phone's entry to reach everyone", SOON, || {
        has(&a, "before the theft, from the phone") && has(&c, "before the theft, from the phone")
    });

    // The thief, holding the founding laptop, shuts out the owner's phone and tablet. Against
    // the founder's seniority the owner's plain revocations would lose.
    // The tablet hears of the phone's revocation before its own shuts it out: removed at
    // once, the laptop may close the connection before the first change reaches it.
    a.ok(&["peers", "remove", &b_id]);
    wait_until("the tablet to hear of the phone's revocation", SOON, || {
        lists(&c, "phone", true)
    });
    a.ok(&["peers", "remove", &c_id]);

    // A key the thief made, a mistyped key and no key are each one clear refusal.
    let other = "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA";
    let out = c.run_with_input(&["peers", "remove", &a_id, "--recovery"], other);
    assert!(
        !out.status.success() && stderr(&out).contains("typo"),
        "{}",
        stderr(&out)
    );
    let mut typo: Vec<char> = key.chars().collect();
    typo[1] = if typo[1] == 'Q' { 'R' } else { 'Q' };
    let typo: String = typo.into_iter().collect();
    let out = c.run_with_input(&["peers", "remove", &a_id, "--recovery"], &typo);
    assert!(!out.status.success(), "{}", stderr(&out));
    let out = c.run_with_input(&["peers", "remove", &a_id, "--recovery"], "");
    assert!(!out.status.success() && stderr(&out).contains("no recovery key"));
    assert!(
        lists(&c, "laptop", false),
        "a refused recovery changed nothing"
    );

    // The owner types the key on each device the thief shut out, taking back the other.
    for (d, other) in [(&c, &b_id), (&b, &c_id)] {
        let out = d.run_with_input(
            &["peers", "remove", &a_id, "--recovery", "--restore", other],
            &format!("{}\n", key.to_lowercase()),
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    wait_until("phone and tablet to take each other back", SOON, || {
        lists(&c, "phone", false)
            && lists(&c, "laptop", true)
            && lists(&b, "lost-tablet", false)
            && lists(&b, "laptop", true)
    });
    assert!(
        c.ok(&["peers"]).contains("revoked with the recovery key"),
        "{}",
        c.ok(&["peers"])
    );
    // They sync again; what the thief writes from now on reaches neither.
    a.ok(&["log", "written by the thief"]);
    b.ok(&["log", "after the recovery, from the phone"]);
    c.ok(&["log", "after the recovery, from the tablet"]);
    wait_until("phone and tablet to sync both ways", SOON, || {
        has(&c, "after the recovery, from the phone")
            && has(&b, "after the recovery, from the tablet")
    });
    let out = a.run(&["sync", "--timeout", "3s"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("phone"));
    for d in [&b, &c] {
        assert!(!has(d, "written by the thief"));
        assert!(
            has(d, "before the theft, from the phone"),
            "nothing else is lost"
        );
    }
}
