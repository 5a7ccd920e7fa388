//! Never lose what was typed: `log` and `edit` in the editor, driven on a pseudo-terminal with
//! scripted editors. A refused form reopens the editor on the text with the reason at the top;
//! a second refusal, or closing the editor without a change, keeps a draft in the home that
//! `log --resume` (or the next `log`) takes up; a draft left by a killed process is offered
//! back; a Markdown heading typed in a story is kept.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Home, script};

fn drafts(home: &Home) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(home.path().join("drafts")) {
        Ok(r) => r.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    }
}

/// An editor that puts `story` under the opening comments, and `value` under the section
/// `heading`, of a fresh template; on a template failup reopened (it holds `# failup:`), it
/// runs `again` instead. Every file it is shown is appended to `seen`.
fn editor(dir: &Path, name: &str, story: &str, heading: &str, value: &str, again: &str) -> String {
    let seen = dir.join("seen.txt");
    script(
        dir,
        name,
        &format!(
            "cat \"$1\" >> '{seen}'\n\
             echo ==== >> '{seen}'\n\
             if grep -q '^# failup: ' \"$1\"; then {again}; exit 0; fi\n\
             sed -i -e 's/^# Save it unchanged to cancel./&\\n{story}/' \
                    -e 's/^## {heading}.*/&\\n{value}/' \"$1\"",
            seen = seen.display()
        ),
    )
    .display()
    .to_string()
}

#[test]
fn a_refused_value_reopens_the_editor_with_the_reason_and_the_text() {
    let home = Home::new();
    let tools = tempfile::tempdir().expect("tmp");
    // Feeling 9 first; fixed to 3 once failup says why.
    let ed = editor(
        tools.path(),
        "fix.sh",
        "Snapped at my brother",
        "Feeling",
        "9",
        "sed -i 's/^9$/3/' \"$1\"",
    );
    let out = home.on_terminal(&["log"], &[("EDITOR", &ed)], "");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    let seen = std::fs::read_to_string(tools.path().join("seen.txt")).expect("seen");
    let second = seen
        .split("====\n")
        .nth(1)
        .expect("the editor opened twice");
    assert!(second.starts_with("# failup: "), "{second}");
    assert!(second.contains("feeling"), "{second}");
    assert!(second.contains("Snapped at my brother"), "{second}");
    let list = home.json(&["list"]);
    assert_eq!(list[0]["text"], "Snapped at my brother");
    assert_eq!(list[0]["feeling"], 3);
    assert!(drafts(&home).is_empty(), "the draft goes once logged");
}

#[test]
fn a_second_refusal_keeps_a_draft_that_resume_takes_up() {
    for (heading, bad) in [
        ("Scale", "mciro"),
        ("Tags", "work,life"),
        ("Day", "someday"),
    ] {
        let home = Home::new();
        let tools = tempfile::tempdir().expect("tmp");
        // The person saves the same bad value twice.
        let ed = editor(
            tools.path(),
            "stubborn.sh",
            "Forgot the deadline",
            heading,
            bad,
            "sed -i 's/^Forgot the deadline$/&\\n# still thinking/' \"$1\"",
        );
        let out = home.on_terminal(&["log"], &[("EDITOR", &ed)], "");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{heading}: {text}");
        assert!(text.contains("failup log --resume"), "{heading}: {text}");
        assert!(home.json(&["list"]).as_array().is_some_and(Vec::is_empty));
        let kept = drafts(&home);
        assert_eq!(kept.len(), 1, "{heading}");
        let draft = std::fs::read_to_string(&kept[0]).expect("draft");
        assert!(draft.contains("Forgot the deadline") && draft.contains(bad));
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&kept[0]), 0o600);
        assert_eq!(mode(&home.path().join("drafts")), 0o700);

        // Resumed with the value fixed: logged, the typed line kept, the draft gone.
        let fix = script(
            tools.path(),
            "fix.sh",
            &format!("sed -i 's/^{bad}$//' \"$1\""),
        );
        let out = home.on_terminal(
            &["log", "--resume"],
            &[("EDITOR", &fix.display().to_string())],
            "",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let list = home.json(&["list"]);
        assert_eq!(
            list[0]["text"], "Forgot the deadline\n# still thinking",
            "{heading}"
        );
        assert!(drafts(&home).is_empty());
    }
    let home = Home::new();
    let out = home.on_terminal(&["log", "--resume"], &[("EDITOR", "true")], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no draft to resume"));
}

#[test]
fn closing_the_reopened_editor_without_a_change_keeps_the_draft() {
    let home = Home::new();
    let tools = tempfile::tempdir().expect("tmp");
    let ed = editor(
        tools.path(),
        "quit.sh",
        "Missed the train",
        "Feeling",
        "9",
        "true",
    );
    let out = home.on_terminal(&["log"], &[("EDITOR", &ed)], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("closed without a change") && text.contains("--resume"),
        "{text}"
    );
    assert_eq!(drafts(&home).len(), 1);
    // An editor that fails keeps the draft too.
    let fail = script(tools.path(), "fail.sh", "echo more >> \"$1\"; exit 3");
    let out = home.on_terminal(
        &["log", "--resume"],
        &[("EDITOR", &fail.display().to_string())],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let draft = std::fs::read_to_string(&drafts(&home)[0]).expect("draft");
    assert!(
        draft.contains("Missed the train") && draft.contains("more"),
        "{draft}"
    );
}

#[test]
fn a_draft_left_by_a_killed_process_is_offered_back_by_the_next_log() {
    let home = Home::new();
    let tools = tempfile::tempdir().expect("tmp");
    // The editor saves a story, then the failup process that opened it is killed.
    let killer = script(
        tools.path(),
        "kill.sh",
        "sed -i 's/^# Save it unchanged to cancel./&\\nLost the thread in the talk\\n# Why it matters/' \"$1\"\n\
         kill -9 $(ps -o ppid= -p $PPID)",
    );
    let out = home.on_terminal(&["log"], &[("EDITOR", &killer.display().to_string())], "");
    assert!(!out.status.success());
    assert_eq!(drafts(&home).len(), 1, "the killed session left its draft");
    // Offered back; taken up as it is.
    let out = home.on_terminal(&["log"], &[("EDITOR", "true")], "y\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("resume it? [Y/n]") && text.contains("Lost the thread"),
        "{text}"
    );
    let list = home.json(&["list"]);
    assert_eq!(
        list[0]["text"],
        "Lost the thread in the talk\n# Why it matters"
    );
    assert!(drafts(&home).is_empty());
}

#[test]
fn an_edit_refused_twice_is_kept_and_offered_back_for_that_entry() {
    let home = Home::new();
    let tools = tempfile::tempdir().expect("tmp");
    let id = home.ok(&["log", "First version"]).trim().to_owned();
    let bad = script(
        tools.path(),
        "bad.sh",
        "sed -i -e 's/^First version$/Second version/' -e 's/^micro$/mciro/' \"$1\"",
    );
    let out = home.on_terminal(
        &["edit", &id],
        &[("EDITOR", &bad.display().to_string())],
        "",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("failup edit"), "{text}");
    assert_eq!(home.json(&["show", &id])["text"], "First version");
    let fix = script(tools.path(), "fix.sh", "sed -i 's/^mciro$/macro/' \"$1\"");
    let out = home.on_terminal(
        &["edit", &id],
        &[("EDITOR", &fix.display().to_string())],
        "y\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let e = home.json(&["show", &id]);
    assert_eq!(
        (e["text"].as_str(), e["scale"].as_str()),
        (Some("Second version"), Some("macro"))
    );
    assert!(drafts(&home).is_empty());
}

/// `failup reflect ID` on a real pseudo-terminal, driven keystroke by keystroke.
fn reflect_session(home: &Home, id: &str) -> rexpect::session::PtySession {
    let mut cmd = home.std_cmd();
    cmd.env("TERM", "xterm-256color").args(["reflect", id]);
    rexpect::session::spawn_command(cmd, Some(20_000)).expect("spawn on a pty")
}

/// Types `keys` (rexpect buffers until flushed).
fn send(p: &mut rexpect::session::PtySession, keys: &str) {
    p.send(keys).expect("send");
    p.flush().expect("flush");
}

#[test]
fn reflect_edits_answers_in_place_takes_several_lines_and_keeps_them_on_ctrl_c() {
    let home = Home::new();
    let id = home
        .ok(&["log", "Blanked in the demo", "--lesson", "old lesson"])
        .trim()
        .to_owned();
    let mut p = reflect_session(&home, &id);
    p.exp_string("What did this teach me about my next level?")
        .expect("first question");
    // The current answer is there to change: wipe it (Ctrl-U), write two lines.
    p.exp_string("old lesson")
        .expect("the current answer, ready to edit");
    send(&mut p, "\x15rehearse with someone\\\r");
    p.exp_string(". ").expect("a continuation line");
    send(&mut p, "out loud\r");
    p.exp_string("What muscle is this moment building in me?")
        .expect("second question");
    // Alt-Enter starts a new line too.
    send(&mut p, "composure\x1b\runder pressure\r");
    p.exp_string("How can I use this instead of resenting it?")
        .expect("third question");
    send(&mut p, "half an ans");
    p.send_control('c').expect("ctrl-c");
    p.exp_string("stopped: keeping the answers given")
        .expect("kept");
    p.exp_eof().expect("ends");
    let e = home.json(&["show", &id]);
    assert_eq!(e["lesson"], "rehearse with someone\nout loud");
    assert_eq!(e["muscle"], "composure\nunder pressure");
    assert!(e["use"].is_null(), "{e}");

    // Enter keeps an answer as it is; Ctrl-C at the first question changes nothing.
    let mut p = reflect_session(&home, &id);
    p.exp_string("out loud").expect("current answer");
    send(&mut p, "\r");
    p.exp_string("composure").expect("second question");
    p.send_control('c').expect("ctrl-c");
    p.exp_string("nothing changed").expect("nothing changed");
    p.exp_eof().expect("ends");
    assert_eq!(
        home.json(&["show", &id])["lesson"],
        "rehearse with someone\nout loud"
    );
}
