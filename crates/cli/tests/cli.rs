//! Every journal command driven through the real binary in a temporary home, the way a person
//! or a script would use it, including the inputs it must refuse.

mod common;

use common::{Home, assert_one_line_failure, script};
use serde_json::Value;

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect()
}

#[test]
fn first_command_creates_an_owner_only_home_and_init_is_idempotent() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    home.log(&["first setback"]);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&home.path()), 0o700);
    assert_eq!(mode(&home.store()), 0o600);
    let printed = home.ok(&["init"]);
    assert_eq!(printed.trim(), home.path().display().to_string());
    home.ok(&["init"]);
    assert_eq!(home.json(&["list"]).as_array().map(Vec::len), Some(1));
}

#[test]
fn log_records_every_field_and_show_prints_it() {
    let home = Home::new();
    let id = home.log(&[
        "Missed the grant deadline",
        "--macro",
        "--area",
        "work",
        "--tag",
        "Deadlines",
        "--tag",
        "#focus",
        "--feeling",
        "4",
        "--on",
        "2026-03-02",
        "--lesson",
        "start two weeks earlier",
        "--muscle",
        "patience",
        "--use",
        "fuel for the next application",
        "--next",
        "block Friday mornings",
    ]);
    let e = home.json(&["show", &id]);
    assert_eq!(e["id"], id.as_str());
    assert_eq!(e["text"], "Missed the grant deadline");
    assert_eq!(e["scale"], "macro");
    assert_eq!(e["area"], "work");
    assert_eq!(e["tags"], serde_json::json!(["deadlines", "focus"]));
    assert_eq!(e["feeling"], 4);
    assert_eq!(e["day"], "2026-03-02");
    assert_eq!(e["lesson"], "start two weeks earlier");
    assert_eq!(e["muscle"], "patience");
    assert_eq!(e["use"], "fuel for the next application");
    assert_eq!(e["next"], "block Friday mornings");
    assert_eq!(e["status"], "open");
    let text = home.ok(&["show", &id[..14]]);
    assert!(text.contains("Missed the grant deadline"));
    assert!(text.contains("What muscle is this moment building in me?\n  patience"));
    assert!(text.contains("tags:     #deadlines #focus"));
}

#[test]
fn log_reads_a_piped_story_from_stdin() {
    let home = Home::new();
    let out = home
        .cmd()
        .arg("log")
        .write_stdin("Froze in the interview\nThe second question threw me.\n")
        .output()
        .expect("run");
    assert!(out.status.success());
    let id = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    let e = home.json(&["show", &id]);
    assert_eq!(
        e["text"],
        "Froze in the interview\nThe second question threw me."
    );
}

#[test]
fn log_on_a_terminal_opens_the_editor_with_the_reframe_questions() {
    let home = Home::new();
    let tools = tempfile::tempdir().expect("tmp");
    // The "person" fills the story, a lesson and a tag, and keeps a copy of what they were shown.
    let editor = script(
        tools.path(),
        "fill.sh",
        &format!(
            "cp \"$1\" '{shown}'\n\
             sed -i -e 's/^# Save it unchanged.*/&\\nDropped the ball on the launch/' \
             -e 's/^## What did this teach me about my next level?/&\\nask for help sooner/' \
             -e 's/^## Tags (separated by spaces)/&\\nwork launch/' \"$1\"",
            shown = tools.path().join("shown.txt").display()
        ),
    );
    let out = home.on_terminal(&["log"], &[("EDITOR", &editor.display().to_string())], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let shown = std::fs::read_to_string(tools.path().join("shown.txt")).expect("template");
    for q in [
        "What did this teach me about my next level?",
        "What muscle is this moment building in me?",
        "How can I use this instead of resenting it?",
    ] {
        assert!(shown.contains(q), "template lacks {q:?}: {shown}");
    }
    let list = home.json(&["list"]);
    assert_eq!(list[0]["text"], "Dropped the ball on the launch");
    assert_eq!(list[0]["lesson"], "ask for help sooner");
    assert_eq!(list[0]["tags"], serde_json::json!(["launch", "work"]));

    // Leaving the story empty logs nothing.
    let noop = script(tools.path(), "noop.sh", "true");
    let out = home.on_terminal(&["log"], &[("EDITOR", &noop.display().to_string())], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("story was left empty"));
    assert_eq!(home.json(&["list"]).as_array().map(Vec::len), Some(1));
}

#[test]
fn list_filters_combine_and_come_newest_first() {
    let home = Home::new();
    let old = home.log(&[
        "old work thing",
        "--on",
        "2026-01-05",
        "--tag",
        "work",
        "--area",
        "Work",
    ]);
    let mid = home.log(&[
        "family dinner argument",
        "--on",
        "2026-02-10",
        "--tag",
        "family",
        "--macro",
    ]);
    let new = home.log(&[
        "work presentation flop",
        "--on",
        "2026-03-15",
        "--tag",
        "work",
        "--lesson",
        "rehearse",
    ]);
    assert_eq!(
        ids(&home.json(&["list"])),
        [new.as_str(), mid.as_str(), old.as_str()]
    );
    assert_eq!(
        ids(&home.json(&["list", "--limit", "2"])),
        [new.as_str(), mid.as_str()]
    );
    assert_eq!(
        ids(&home.json(&["list", "--tag", "work"])),
        [new.as_str(), old.as_str()]
    );
    assert_eq!(
        ids(&home.json(&["list", "--since", "2026-02-01"])),
        [new.as_str(), mid.as_str()]
    );
    assert_eq!(
        ids(&home.json(&["list", "--until", "2026-02-10"])),
        [mid.as_str(), old.as_str()]
    );
    assert_eq!(
        ids(&home.json(&["list", "--scale", "macro"])),
        [mid.as_str()]
    );
    assert_eq!(ids(&home.json(&["list", "--area", "work"])), [old.as_str()]);
    assert_eq!(
        ids(&home.json(&["list", "--search", "WORK flop"])),
        [new.as_str()]
    );
    assert_eq!(
        ids(&home.json(&["list", "--search", "rehearse"])),
        [new.as_str()]
    );
    assert_eq!(
        ids(&home.json(&["list", "--tag", "work", "--since", "2026-02-01"])),
        [new.as_str()]
    );
    home.ok(&["iterate", &new, "ran it past a friend"]);
    assert_eq!(
        ids(&home.json(&["list", "--open"])),
        [mid.as_str(), old.as_str()]
    );
    let text = home.ok(&["list"]);
    assert_eq!(text.lines().count(), 3);
    assert!(text.lines().next().expect("line").starts_with(&new[..12]));
}

#[test]
fn ids_resolve_by_unique_prefix_and_ambiguity_lists_candidates() {
    let home = Home::new();
    let a = home.log(&["a"]);
    let b = home.log(&["b"]);
    assert_eq!(home.json(&["show", &a.to_lowercase()])["id"], a.as_str());
    // Both ids share their leading timestamp characters.
    let shared: String = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    let err = home.fails(&["show", &shared], 1);
    assert!(
        err.contains("ambiguous") && err.contains(&a) && err.contains(&b),
        "{err}"
    );
    let err = home.fails(&["show", "7ZZZZZZZZZ"], 1);
    assert!(err.contains("no entry matches"), "{err}");
    let err = home.fails(&["show", "not-an-id"], 1);
    assert!(err.contains("not a valid entry id"), "{err}");
}

#[test]
fn reflect_iterate_close_and_reopen_walk_the_loop() {
    let home = Home::new();
    let id = home.log(&["Lost my temper in standup"]);
    home.ok(&["reflect", &id, "--lesson", "pause before replying"]);
    assert_eq!(home.json(&["show", &id])["status"], "open");
    home.ok(&[
        "iterate",
        &id,
        "counted",
        "to",
        "five",
        "--outcome",
        "better",
    ]);
    let e = home.json(&["show", &id]);
    assert_eq!(e["status"], "iterating");
    assert_eq!(e["iterations"][0]["tried"], "counted to five");
    assert_eq!(e["iterations"][0]["outcome"], "better");
    home.ok(&["close", &id]);
    let e = home.json(&["show", &id]);
    assert_eq!(e["status"], "closed");
    assert!(e["closed_at"].is_string());
    home.ok(&["reopen", &id]);
    assert_eq!(home.json(&["show", &id])["status"], "iterating");
    let err = home.fails(&["iterate", &id, "x", "--outcome", "great"], 2);
    assert!(err.contains("great"), "{err}");
}

#[test]
fn reflect_without_flags_asks_each_question() {
    let home = Home::new();
    let id = home.log(&["Shipped a bug to production"]);
    // Piped answers: the second question is skipped with an empty line.
    let out = home
        .cmd()
        .args(["reflect", &id])
        .write_stdin("add a test first\n\nshare the postmortem\n")
        .output()
        .expect("run");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("What did this teach me about my next level?"));
    assert!(stderr.contains("How can I use this instead of resenting it?"));
    let e = home.json(&["show", &id]);
    assert_eq!(e["lesson"], "add a test first");
    assert_eq!(e["muscle"], Value::Null);
    assert_eq!(e["use"], "share the postmortem");
    // On a terminal the answers are read with a line editor: tests/typing.rs drives it key by
    // key (input written ahead of a prompt is not an answer there).
}

#[test]
fn edit_changes_fields_and_clears_with_empty_values() {
    let home = Home::new();
    let id = home.log(&[
        "typo in the title",
        "--tag",
        "a",
        "--tag",
        "b",
        "--area",
        "work",
        "--feeling",
        "2",
    ]);
    home.ok(&[
        "edit",
        &id,
        "--text",
        "the real title",
        "--tag",
        "c",
        "--untag",
        "a",
        "--area",
        "",
        "--feeling",
        "5",
        "--scale",
        "macro",
        "--on",
        "2026-05-05",
        "--next",
        "try again",
    ]);
    let e = home.json(&["show", &id]);
    assert_eq!(e["text"], "the real title");
    assert_eq!(e["tags"], serde_json::json!(["b", "c"]));
    assert_eq!(e["area"], Value::Null);
    assert_eq!(e["feeling"], 5);
    assert_eq!(e["scale"], "macro");
    assert_eq!(e["day"], "2026-05-05");
    assert_eq!(e["next"], "try again");
    assert_ne!(e["updated"], e["created"]);
    let err = home.fails(&["edit", &id], 1);
    assert!(err.contains("nothing to change"), "{err}");
    let err = home.fails(&["edit", &id, "--text", "  "], 1);
    assert!(err.contains("text may not be empty"), "{err}");
}

#[test]
fn edit_on_a_terminal_opens_the_entry_in_the_editor() {
    let home = Home::new();
    let id = home.log(&["first draft", "--tag", "old", "--lesson", "keep me"]);
    let tools = tempfile::tempdir().expect("tmp");
    let editor = script(
        tools.path(),
        "edit.sh",
        "sed -i -e 's/^first draft$/second draft/' -e 's/^old$/new/' \"$1\"",
    );
    let out = home.on_terminal(
        &["edit", &id],
        &[("VISUAL", &editor.display().to_string())],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let e = home.json(&["show", &id]);
    assert_eq!(e["text"], "second draft");
    assert_eq!(e["tags"], serde_json::json!(["new"]));
    assert_eq!(e["lesson"], "keep me");
}

#[test]
fn delete_asks_unless_told_and_removes_the_entry() {
    let home = Home::new();
    let keep = home.log(&["keep me"]);
    let gone = home.log(&["delete me"]);
    let err = home.fails(&["delete", &gone], 1);
    assert!(err.contains("--yes"), "{err}");
    let out = home.on_terminal(&["delete", &gone], &[], "n\n");
    assert!(out.status.success());
    assert_eq!(home.json(&["list"]).as_array().map(Vec::len), Some(2));
    let out = home.on_terminal(&["delete", &gone], &[], "y\n");
    assert!(out.status.success());
    assert_eq!(ids(&home.json(&["list"])), [keep.as_str()]);
    home.ok(&["delete", &keep, "--yes"]);
    assert_eq!(home.json(&["list"]), serde_json::json!([]));
    home.fails(&["show", &keep], 1);
}

#[test]
fn stats_count_the_practice() {
    let home = Home::new();
    let a = home.log(&["one", "--on", "today", "--lesson", "x"]);
    home.log(&["two", "--on", "1w", "--macro"]);
    home.log(&["three", "--on", "2w"]);
    home.log(&["ancient", "--on", "2020-01-01"]);
    home.ok(&["iterate", &a, "tried"]);
    home.ok(&["close", &a]);
    let s = home.json(&["stats"]);
    assert_eq!(s["reps"], 4);
    assert_eq!(s["micro"], 3);
    assert_eq!(s["macro"], 1);
    assert_eq!(s["reflected"], 1);
    assert_eq!(s["iterated"], 1);
    assert_eq!(s["closed"], 1);
    assert_eq!(s["median_days_to_first_iteration"], 0.0);
    assert_eq!(s["streak_weeks"], 3);
    assert_eq!(s["weeks"].as_array().map(Vec::len), Some(12));
    let since = home.json(&["stats", "--since", "1w"]);
    assert_eq!(since["reps"], 2);
    let text = home.ok(&["stats"]);
    assert!(text.contains("reps:       4 (3 micro, 1 macro)"), "{text}");
    assert!(text.contains("streak:     3 weeks in a row"), "{text}");
    assert!(text.contains("|####"), "a pipe gets ASCII bars: {text}");
}

#[test]
fn export_then_import_round_trips_and_reimport_adds_nothing() {
    let a = Home::new();
    let id = a.log(&["exported", "--tag", "x", "--lesson", "l", "--feeling", "3"]);
    a.ok(&["iterate", &id, "tried a thing", "--outcome", "same"]);
    a.log(&["second", "--on", "2025-12-31", "--macro"]);
    let file = a.dir.path().join("backup.json");
    a.ok(&[
        "export",
        "--format",
        "json",
        "--out",
        file.to_str().expect("utf8"),
    ]);
    let b = Home::new();
    let out = b
        .cmd()
        .args(["import", file.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("imported 2 entries"));
    assert_eq!(b.json(&["list"]), a.json(&["list"]));
    let out = b
        .cmd()
        .args(["import", file.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("imported 0 entries (2 already present)")
    );
    assert_eq!(b.json(&["list"]).as_array().map(Vec::len), Some(2));
    // Standard output and standard input work too.
    let exported = a.ok(&["export"]);
    let c = Home::new();
    c.cmd()
        .args(["import", "-"])
        .write_stdin(exported)
        .assert()
        .success();
    assert_eq!(c.json(&["list"]), a.json(&["list"]));
    let md = a.ok(&["export", "--format", "markdown"]);
    assert!(md.starts_with("# Failing up"));
    assert!(
        md.contains("### exported") && md.contains("- ") && md.contains("tried a thing (same)")
    );
}

#[test]
fn bad_input_gets_one_line_and_changes_nothing() {
    let home = Home::new();
    let id = home.log(&["precious entry"]);
    let before = home
        .ok(&["export"])
        .lines()
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n");
    for (args, needle) in [
        (vec!["log", ""], "text may not be empty"),
        (
            vec!["log", "x", "--feeling", "7"],
            "feeling must be between 1 and 5",
        ),
        (
            vec!["log", "x", "--feeling", "0"],
            "feeling must be between 1 and 5",
        ),
        (vec!["log", "x", "--on", "2026-02-30"], "is not a date"),
        (vec!["list", "--since", "last tuesday"], "is not a date"),
        (
            vec!["show", "01ZZZZZZZZZZZZZZZZZZZZZZZ"],
            "no entry matches",
        ),
        (
            vec!["log", "x", "--tag", "two words"],
            "may not contain spaces",
        ),
    ] {
        let err = home.fails(&args, 1);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    for args in [
        vec!["log", "--bogus"],
        vec!["frobnicate"],
        vec!["log", "x", "--feeling", "lots"],
    ] {
        home.fails(&args, 2);
    }
    let dir = home.dir.path();
    let truncated = dir.join("truncated.json");
    let full = home.ok(&["export"]);
    std::fs::write(&truncated, &full[..full.len() / 2]).expect("write");
    let err = home.fails(&["import", truncated.to_str().expect("utf8")], 1);
    assert!(err.contains("ends early"), "{err}");
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, b"\x00\x01 not json at all").expect("write");
    home.fails(&["import", garbage.to_str().expect("utf8")], 1);
    home.fails(
        &["import", dir.join("missing.json").to_str().expect("utf8")],
        1,
    );
    let after = home
        .ok(&["export"])
        .lines()
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(before, after);
    assert_eq!(home.json(&["show", &id])["text"], "precious entry");
}

#[test]
fn an_unusable_home_or_store_is_reported_not_clobbered() {
    // A home whose path runs through a regular file cannot be created.
    let home = Home::new();
    let file = home.dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let out = home
        .cmd()
        .env("FAILUP_HOME", file.join("home"))
        .args(["log", "x"])
        .output()
        .expect("run");
    assert_one_line_failure(&out, 1, "home under a file");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create home"));

    // A store file that is garbage is refused and left exactly as it was.
    let home = Home::new();
    std::fs::create_dir_all(home.path()).expect("mkdir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
    }
    let garbage = b"SQLite format 3\0 but not really".repeat(50);
    std::fs::write(home.store(), &garbage).expect("write");
    let err = home.fails(&["list"], 1);
    assert!(err.contains("is not a readable failup store"), "{err}");
    home.fails(&["log", "x"], 1);
    assert_eq!(std::fs::read(home.store()).expect("read"), garbage);
}

#[test]
fn concurrent_commands_wait_for_each_other() {
    let home = Home::new();
    home.ok(&["init"]);
    let children: Vec<_> = (0..8)
        .map(|i| {
            home.std_cmd()
                .args(["log", &format!("concurrent {i}")])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut logged = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        logged.push(
            String::from_utf8(out.stdout)
                .expect("utf8")
                .trim()
                .to_owned(),
        );
    }
    let list = home.json(&["list"]);
    let mut listed = ids(&list);
    listed.sort();
    logged.sort();
    assert_eq!(listed, logged);
    assert!(home.ok(&["check"]).contains(" 0 mismatches"));
}

#[test]
fn ids_beyond_the_ulid_range_match_nothing() {
    let home = Home::new();
    let id = home.log(&["only entry"]);
    let err = home.fails(&["delete", "8", "--yes"], 1);
    assert!(err.contains("no entry matches"), "{err}");
    let swapped = format!("8{}", &id[1..]);
    home.fails(&["show", &swapped], 1);
    assert_eq!(home.json(&["list"]).as_array().map(Vec::len), Some(1));
}

#[test]
fn ambiguous_prefixes_change_nothing() {
    let home = Home::new();
    let a = home.log(&["a"]);
    let b = home.log(&["b"]);
    let shared: String = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    let err = home.fails(&["delete", &shared, "--yes"], 1);
    assert!(err.contains("ambiguous"), "{err}");
    home.fails(&["edit", &shared, "--text", "x"], 1);
    assert_eq!(home.json(&["list"]).as_array().map(Vec::len), Some(2));
}

#[test]
fn import_refuses_rule_breaking_entries_and_indexes_what_the_document_holds() {
    let home = Home::new();
    let dir = home.dir.path();
    let entry = |extra: &str| {
        format!(
            r#"{{"format":"failup-export","version":1,"entries":[{{"id":"01KBX7M2Q9C4TZ3N6W8YH1R5DE","created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z","day":"2026-01-01","text":"imported"{extra}}}]}}"#
        )
    };
    for (name, extra, needle) in [
        (
            "feeling.json",
            r#","feeling":7"#,
            "feeling must be between 1 and 5",
        ),
        ("year.json", r#","day":"-000001-01-01""#, ""),
        ("tag.json", r#","tags":["Two Words"]"#, "tag"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, entry(extra)).expect("write");
        let err = home.fails(&["import", path.to_str().expect("utf8")], 1);
        assert!(err.contains(needle), "{name}: {err}");
    }
    assert_eq!(home.json(&["list"]), serde_json::json!([]));
    // Iterations listed newest first come back in time order, and the index agrees.
    let path = dir.join("iterations.json");
    std::fs::write(
        &path,
        entry(r#","iterations":[{"id":"01KBX7P0ZB2M4C6Q8S0T2V4X6Y","at":"2026-01-03T00:00:00Z","tried":"second","outcome":null},{"id":"01KBX7P0ZB2M4C6Q8S0T2V4X6Z","at":"2026-01-02T00:00:00Z","tried":"first","outcome":"better"}]"#),
    )
    .expect("write");
    home.ok(&["import", path.to_str().expect("utf8")]);
    let e = home.json(&["show", "01KBX7M2Q9"]);
    assert_eq!(e["iterations"][0]["tried"], "first");
    assert_eq!(home.json(&["check"])["mismatches"], 0);
}

#[test]
fn compact_and_check_keep_every_entry() {
    let home = Home::new();
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(home.log(&[&format!("entry {i}"), "--on", &format!("{}d", i % 9)]));
    }
    for id in ids.iter().take(5) {
        home.ok(&["iterate", id, "tried"]);
    }
    let before = home.json(&["list"]);
    let out = home.cmd().arg("compact").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("compacted"));
    assert_eq!(home.json(&["list"]), before);
    let check = home.json(&["check"]);
    assert_eq!(check["entries"], 40);
    assert_eq!(check["mismatches"], 0);
}

#[test]
fn the_home_flag_wins_over_the_environment() {
    let env_home = Home::new();
    let flag_home = Home::new();
    let out = env_home
        .cmd()
        .args([
            "--home",
            flag_home.path().to_str().expect("utf8"),
            "log",
            "where am I",
        ])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(flag_home.json(&["list"]).as_array().map(Vec::len), Some(1));
    assert!(!env_home.store().exists());
}

#[test]
fn piped_text_over_the_limit_is_refused_not_cut() {
    let home = Home::new();
    let mut text = "a".repeat(64 * 1024);
    text.push('\n');
    let out = home
        .cmd()
        .arg("log")
        .write_stdin(text)
        .output()
        .expect("run");
    assert_one_line_failure(&out, 1, "long stdin");
    assert!(String::from_utf8_lossy(&out.stderr).contains("longer than"));
    assert_eq!(home.json(&["list"]), serde_json::json!([]));
}

#[test]
fn device_commands_without_a_daemon() {
    let home = Home::new();
    let id = home.ok(&["id"]);
    let first = id.lines().next().expect("id line");
    assert_eq!(first.len(), 59, "{first}");
    assert_eq!(home.ok(&["id"]), id, "the device id is stable");
    assert_eq!(home.ok(&["status"]).trim(), "daemon: not running");
    assert_eq!(home.json(&["status"])["running"], false);
    assert_eq!(home.json(&["peers"]), serde_json::json!([]));
    for args in [vec!["pair", "invite"], vec!["sync"]] {
        let err = home.fails(&args, 1);
        assert!(err.contains("needs a running daemon"), "{args:?}: {err}");
    }
    // Peer commands work without a daemon; with no circle there is no device to name.
    let err = home.fails(&["peers", "remove", "ABC"], 1);
    assert!(err.contains("no device of this circle matches"), "{err}");
    assert!(
        !home.path().join("control.sock").exists(),
        "the one-off daemon cleans up its socket"
    );
    // Partner commands: those that reach the other person need the daemon, the rest work on
    // the store and say clearly what is wrong.
    for args in [
        vec!["partner", "invite"],
        vec!["partner", "join", "FAILUP-PARTNER-AAAA", "--name", "sam"],
    ] {
        let err = home.fails(&args, 1);
        assert!(err.contains("needs a running daemon"), "{args:?}: {err}");
    }
    assert_eq!(home.json(&["partner", "list"]), serde_json::json!([]));
    assert_eq!(home.json(&["feed"]), serde_json::json!([]));
    let id = home.ok(&["log", "a private setback"]).trim().to_owned();
    let err = home.fails(&["share", &id, "--with", "nobody"], 1);
    assert!(err.contains("no partner called \"nobody\""), "{err}");
    let err = home.fails(&["share", "ZZZZ", "--with", "nobody"], 1);
    assert!(err.contains("no entry matches"), "{err}");
    let err = home.fails(&["cheer", &id, "well done"], 1);
    assert!(err.contains("no shared entry matches"), "{err}");
    let err = home.fails(&["partner", "revoke", "nobody"], 1);
    assert!(err.contains("no partner called"), "{err}");
    let err = home.fails(&["log", "shared at once", "--share", "nobody"], 1);
    assert!(err.contains("but not shared"), "{err}");
    assert!(
        home.ok(&["list"]).contains("shared at once"),
        "a failed share keeps the entry"
    );
    let err = home.fails(&["sync", "--timeout", "soon"], 1);
    assert!(err.contains("not a duration"), "{err}");
    let err = home.fails(&["daemon", "--listen", "nowhere"], 1);
    assert!(err.contains("not an address"), "{err}");
}

#[test]
fn a_home_open_to_others_is_made_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    std::fs::create_dir_all(home.path()).expect("mkdir");
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = home.cmd().args(["log", "private"]).output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("owner's alone"));
    let mode = std::fs::metadata(home.path())
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn a_daemon_that_dies_mid_request_is_an_error_not_a_silent_success() {
    // Found by the load suite: a `failup log` whose daemon was killed while answering exited 0
    // with nothing printed, because the broken pipe to the daemon passed for a closed stdout.
    use std::os::unix::net::UnixListener;
    let home = Home::new();
    home.ok(&["init"]);
    let listener = UnixListener::bind(home.path().join("control.sock")).expect("bind");
    let hangup = std::thread::spawn(move || {
        for _ in 0..2 {
            if let Ok((conn, _)) = listener.accept() {
                drop(conn);
            }
        }
    });
    let out = home
        .cmd()
        .args(["log", "this must not vanish"])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0), "reported success: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
    drop(hangup);
}

#[test]
fn completions_and_the_manual_page_are_printed() {
    let home = Home::new();
    let bash = home.ok(&["completions", "bash"]);
    assert!(
        bash.contains("_clap_complete_failup()") && bash.contains("COMPLETE"),
        "{bash}"
    );
    let fish = home.ok(&["completions", "fish"]);
    assert!(fish.contains("--command failup"));
    let zsh = home.ok(&["completions", "zsh"]);
    assert!(zsh.contains("#compdef failup"));
    let man = home.ok(&["man"]);
    assert!(
        man.contains(".TH failup") && man.contains("journal"),
        "{man}"
    );
    // Every page the main page refers to is shipped by `man --dir`.
    let pages = home.dir.path().join("man1");
    home.ok(&["man", "--dir", &pages.display().to_string()]);
    for name in [
        "failup.1",
        "failup-log.1",
        "failup-peers.1",
        "failup-partner.1",
    ] {
        let page = std::fs::read_to_string(pages.join(name)).expect(name);
        assert!(page.contains(".TH failup"), "{name}");
    }
    for referred in man.split("failup\\-").skip(1) {
        let sub: String = referred
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !sub.is_empty() {
            assert!(
                pages.join(format!("failup-{sub}.1")).exists(),
                "failup-{sub}(1) is referred to"
            );
        }
    }
    let err = home.fails(&["completions", "cmd.exe"], 2);
    assert!(err.contains("invalid value"), "{err}");
}

#[test]
fn a_closed_standard_output_ends_every_command_quietly_with_0() {
    let home = Home::new();
    for i in 0..200 {
        home.log(&[&format!(
            "entry {i} with enough text to fill a pipe buffer quickly"
        )]);
    }
    let commands: [&[&str]; 6] = [
        &["completions", "zsh"],
        &["completions", "bash"],
        &["man"],
        &["--json", "list"],
        &["list"],
        &["export"],
    ];
    for args in commands {
        let mut child = home
            .std_cmd()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // The reader goes away before reading anything, as `| head -0` would.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {:?}", out);
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn small_manners_export_to_dash_an_empty_home_variable_and_log_json() {
    let home = Home::new();
    // `log --json` prints an object, as every other --json output does.
    let out = home.ok(&["--json", "log", "Spilled coffee on the laptop"]);
    let v: Value = serde_json::from_str(&out).expect("json");
    let id = v["id"].as_str().expect("an id").to_owned();
    assert!(home.ok(&["show", &id]).contains("Spilled coffee"));
    // `--out -` is standard output: no file named `-` appears.
    let dir = tempfile::tempdir().expect("dir");
    let out = home
        .cmd()
        .current_dir(dir.path())
        .args(["export", "--out", "-"])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Spilled coffee"));
    assert!(!dir.path().join("-").exists());
    // An empty FAILUP_HOME means unset: --home is used, and no error names it.
    let out = home
        .cmd()
        .env("FAILUP_HOME", "")
        .args(["--home", &home.path().display().to_string(), "list"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Spilled coffee"));
    let out = home
        .cmd()
        .env("FAILUP_HOME", "")
        .env("XDG_DATA_HOME", dir.path())
        .env("HOME", dir.path())
        .args(["list"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn entries_are_named_by_last_and_by_their_row_in_the_last_list() {
    let home = Home::new();
    let none = home.cmd().args(["show", "@1"]).output().expect("run");
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no list shown in this home yet"));
    let first = home.log(&["first setback", "--on", "2026-11-01"]);
    let second = home.log(&["second setback", "--on", "2026-11-20"]);
    // Logged last, though it happened earliest.
    let third = home.log(&["third setback", "--on", "2026-10-01"]);
    assert_eq!(home.json(&["show", "last"])["id"], third);
    assert_eq!(home.json(&["show", "LAST"])["id"], third);
    // Rows of `list`, newest day first: second, first, third.
    home.ok(&["list"]);
    assert_eq!(home.json(&["show", "@1"])["id"], second);
    assert_eq!(home.json(&["show", "@3"])["id"], third);
    home.ok(&["reflect", "@2", "--lesson", "by row"]);
    assert_eq!(home.json(&["show", &first])["lesson"], "by row");
    let out = home.cmd().args(["show", "@4"]).output().expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the last list shown had 3 rows"));
    let out = home.cmd().args(["show", "@x"]).output().expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a row"));
    // A narrower list replaces the rows; on a terminal each row shows its @N.
    home.ok(&["list", "--search", "third"]);
    assert_eq!(home.json(&["show", "@1"])["id"], third);
    let out = home.on_terminal(&["list"], &[], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("@1") && text.contains("@3"), "{text}");
    // `today` numbers its rows too.
    let out = home.on_terminal(&["today"], &[], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("@1"));
}

#[test]
fn argument_mistakes_say_what_was_meant_in_one_line() {
    let home = Home::new();
    let cases: [(&[&str], &str); 5] = [
        (&["lgo", "x"], "did you mean `log`?"),
        (&["show"], "<ID>"),
        (
            &["edit", "x", "--scale", "mciro"],
            "[possible values: micro, macro]",
        ),
        (&["log", "--fealing", "3", "x"], "'--feeling'"),
        (&["serch", "x"], "'search'"),
    ];
    for (args, says) in cases {
        let out = home.cmd().args(args).output().expect("run");
        assert_one_line_failure(&out, 2, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // `search WORDS` is `list --search WORDS`.
    home.log(&["Missed the train to Leeds"]);
    home.log(&["Burned the toast"]);
    let found = home.ok(&["search", "train", "leeds"]);
    assert!(
        found.contains("Missed the train") && !found.contains("toast"),
        "{found}"
    );
    assert_eq!(
        home.ok(&["search", "toast"]),
        home.ok(&["list", "--search", "toast"])
    );
}

#[test]
fn edit_clears_a_feeling_names_an_absent_tag_and_messages_count_properly() {
    let home = Home::new();
    let id = home.log(&["Lost the keys", "--feeling", "3", "--tag", "home"]);
    let out = home
        .cmd()
        .args(["edit", &id, "--untag", "absent"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("not a tag of this entry: #absent") && err.contains("nothing changed"));
    assert!(!err.contains("updated"), "{err}");
    home.ok(&["edit", &id, "--feeling", ""]);
    assert_eq!(home.json(&["show", &id])["feeling"], Value::Null);
    let out = home.cmd().args(["check"]).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 document,") && text.contains("1 entry,"),
        "{text}"
    );
    assert!(text.contains("0 mismatches"), "{text}");
    let file = home.dir.path().join("one.json");
    home.ok(&["export", "--out", &file.display().to_string()]);
    let out = home
        .cmd()
        .args(["export", "--out", &file.display().to_string()])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exported 1 entry to"));
}

#[test]
fn a_daemon_that_stops_mid_request_is_said_so_in_one_line() {
    use std::io::Read;
    let home = Home::new();
    home.ok(&["init"]);
    // A daemon that reads the request, then dies without answering.
    let listener =
        std::os::unix::net::UnixListener::bind(home.path().join("control.sock")).expect("bind");
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4];
            let _ = s.read_exact(&mut buf);
        }
    });
    let out = home.cmd().args(["log", "half done"]).output().expect("run");
    server.join().expect("server");
    assert_one_line_failure(&out, 1, "daemon gone");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the daemon stopped before answering"), "{err}");
    assert!(!err.contains("fill whole buffer"), "{err}");
}

#[test]
fn an_iteration_can_be_recorded_on_the_day_it_was_tried() {
    let home = Home::new();
    let id = home.log(&["Stage fright at the open mic", "--on", "2026-10-01"]);
    home.ok(&[
        "iterate",
        &id,
        "played for friends first",
        "--on",
        "2026-10-04",
    ]);
    let e = home.json(&["show", &id]);
    let at = e["iterations"][0]["at"].as_str().expect("at").to_owned();
    assert!(at.starts_with("2026-10-04"), "{e}");
    let stats = home.json(&["stats"]);
    assert_eq!(stats["median_days_to_first_iteration"], 3.0, "{stats}");
    for (day, says) in [("2026-09-30", "came after it"), ("2999-01-01", "future")] {
        let out = home
            .cmd()
            .args(["iterate", &id, "x", "--on", day])
            .output()
            .expect("run");
        assert_one_line_failure(&out, 1, day);
        assert!(String::from_utf8_lossy(&out.stderr).contains(says));
    }
}

#[test]
fn doctor_reports_a_config_that_is_not_toml_and_runs_its_other_checks() {
    let home = Home::new();
    home.log(&["something"]);
    std::fs::write(home.path().join("config.toml"), "not = toml = x\n").expect("write");
    let out = home.cmd().args(["doctor"]).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("is not valid TOML"), "{text}");
    assert!(
        text.contains("1 entry"),
        "the store was checked too: {text}"
    );
    assert!(text.contains("clock"), "{text}");
    // Every other command stops on it, in one line.
    let out = home.cmd().args(["list"]).output().expect("run");
    assert_one_line_failure(&out, 1, "bad config");
}

#[test]
fn stats_svg_has_the_weekly_bars_and_separated_figures_and_a_clean_error() {
    let home = Home::new();
    home.log(&["one"]);
    let file = home.dir.path().join("practice.svg");
    home.ok(&["stats", "--svg", &file.display().to_string()]);
    let svg = std::fs::read_to_string(&file).expect("svg");
    assert!(
        svg.contains("entries per week") && svg.contains(" · iterated "),
        "{svg}"
    );
    let bad = home.dir.path().join("no-such-folder").join("x.svg");
    let out = home
        .cmd()
        .args(["stats", "--svg", &bad.display().to_string()])
        .output()
        .expect("run");
    assert_one_line_failure(&out, 1, "unwritable svg");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist") && !err.contains("no-such-folder/.tmp"),
        "{err}"
    );
}

#[test]
fn list_fits_the_terminals_width() {
    let home = Home::new();
    let long = "A very long story title that goes on and on about the day it all went wrong";
    home.log(&[long, "--tag", "work", "--tag", "launch"]);
    let bin = assert_cmd::cargo::cargo_bin("failup");
    // A terminal 80 columns wide.
    let mut script = std::process::Command::new("script");
    script
        .args([
            "-qec",
            &format!("stty rows 24 cols 80; {} list", common::shell_quote(&bin)),
            "/dev/null",
        ])
        .env("FAILUP_HOME", home.path())
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1");
    let out = script.output().expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().find(|l| l.contains("@1")).expect("a row");
    assert!(console::measure_text_width(row) <= 80, "{row:?}");
    assert!(row.contains("A very long"), "{row:?}");
    // In a pipe the whole row is printed.
    assert!(home.ok(&["list"]).contains("#launch"));
}

#[test]
fn ids_complete_in_the_shell_with_their_titles() {
    let home = Home::new();
    let older = home.log(&["Missed the bus"]);
    let newer = home.log(&["Forgot the keys"]);
    // Through bash itself, as the registration script wires it.
    let bin = assert_cmd::cargo::cargo_bin("failup");
    let dir = bin.parent().expect("dir").display().to_string();
    let script = "source <(failup completions bash); COMP_WORDS=(failup show ''); COMP_CWORD=2; \
                  COMP_TYPE=9; _clap_complete_failup; printf '%s\\n' \"${COMPREPLY[@]}\"";
    let out = home
        .std_cmd_for("bash")
        .env("PATH", format!("{dir}:/usr/bin:/bin"))
        .args(["-c", script])
        .output()
        .expect("bash");
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(
        words.contains(&newer[..12]) && words.contains(&older[..12]),
        "{words:?} {out:?}"
    );
    assert!(words.lines().any(|l| l == "last"), "{words}");
    // Fish is given each title as the description, and a typed prefix narrows the list.
    let out = home
        .cmd()
        .env("COMPLETE", "fish")
        .args(["--", "failup", "reflect", &newer[..11]])
        .output()
        .expect("run");
    let offered = String::from_utf8_lossy(&out.stdout);
    assert!(
        offered.contains(&format!("{}\tForgot the keys", &newer[..12])),
        "{offered}"
    );
    assert!(!offered.contains("Missed the bus"), "{offered}");
}

#[test]
fn doctor_calls_a_home_its_owner_cannot_write_a_problem() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    home.log(&["one"]);
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o500)).expect("chmod");
    let out = home.cmd().args(["doctor"]).output().expect("run");
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cannot be written by its owner (mode 500)"),
        "{text}"
    );
}

/// `failup ARGS` in a mount namespace of its own where the home is mounted read-only (as on a
/// read-only medium or a backup mount), or `None` with a message where the test cannot make
/// one (it needs root and util-linux `unshare`).
fn on_read_only_home(home: &Home, args: &[&str]) -> Option<std::process::Output> {
    let mut cmd = home.std_cmd_for("unshare");
    cmd.args(["--mount", "sh", "-c"])
        .arg(r#"h="$1"; shift; mount --bind "$h" "$h" && mount -o remount,bind,ro "$h" && exec "$@""#)
        .arg("sh")
        .arg(home.path())
        .arg(assert_cmd::cargo::cargo_bin("failup"))
        .args(args);
    let out = cmd.output().ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unshare:") || stderr.contains("mount:") {
        eprintln!("skipped: cannot mount the home read-only here (needs root): {stderr}");
        return None;
    }
    Some(out)
}

#[test]
fn a_read_only_home_reads_and_exports_and_refuses_writes_in_one_line() {
    let home = Home::new();
    let first = home.log(&["Missed the bus", "--tag", "commute"]);
    home.ok(&["reflect", &first, "--lesson", "leave earlier"]);
    home.log(&["Forgot the keys"]);
    let before = std::fs::read(home.store()).expect("store");

    let Some(out) = on_read_only_home(&home, &["list"]) else {
        return;
    };
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        listed.contains("Missed the bus") && listed.contains("Forgot the keys"),
        "{listed}"
    );
    let out = on_read_only_home(&home, &["export", "--out", "-"]).expect("ran before");
    assert!(out.status.success(), "{out:?}");
    let export: serde_json::Value = serde_json::from_slice(&out.stdout).expect("export json");
    assert_eq!(export["entries"].as_array().map(Vec::len), Some(2));
    for args in [
        &["show", "last"][..],
        &["search", "bus"],
        &["stats"],
        &["today"],
        &["check"],
    ] {
        let out = on_read_only_home(&home, args).expect("ran before");
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let out = on_read_only_home(&home, &["show", &first]).expect("ran before");
    assert!(String::from_utf8_lossy(&out.stdout).contains("leave earlier"));

    // A write says what is wrong, once, and changes nothing.
    for args in [
        &["log", "Spilled the coffee"][..],
        &["reflect", &first, "--muscle", "patience"],
        &["close", &first],
    ] {
        let out = on_read_only_home(&home, args).expect("ran before");
        assert_one_line_failure(&out, 1, args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("is read-only here: reading works"), "{said}");
    }
    assert_eq!(std::fs::read(home.store()).expect("store"), before);

    // doctor names the problem and still checks the store.
    let out = on_read_only_home(&home, &["doctor"]).expect("ran before");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cannot be written (") && text.contains("reading and export work"),
        "{text}"
    );
    assert!(text.contains("2 entries, index agrees"), "{text}");
}

#[test]
fn an_error_from_the_system_is_said_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").expect("write");
    let out = assert_cmd::Command::cargo_bin("failup")
        .expect("binary")
        .env("FAILUP_HOME", file.join("home"))
        .arg("list")
        .output()
        .expect("run");
    assert_one_line_failure(&out, 1, "list");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.matches("Not a directory").count(), 1, "{said}");
}
