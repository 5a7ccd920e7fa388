//! The daily-use touches through the real binary: `today`, the grown `stats` and its SVG, the
//! config file and its precedence, editable prompts, colour on a terminal and plain text in a
//! pipe, progress bars, and `doctor`. Output that draws something is checked against snapshots
//! (`cargo insta review` to update them after an intended change).
//!
//! The clock is pinned with FAILUP_NOW so the snapshots do not depend on the day they run.

mod common;

use common::{Home, assert_one_line_failure, script};

const NOW: &str = "2026-11-25T12:00:00Z";

/// A journal with something in every section of `today` and `stats`.
fn journal(home: &Home) -> Vec<String> {
    // An id starts with the millisecond it was made in, and a short id keeps only two random
    // characters after it: each entry gets a millisecond of its own, so no two short ids can
    // be the same and `redact` names each entry apart.
    let logged = std::cell::Cell::new(0u32);
    let log = |args: &[&str]| -> String {
        logged.set(logged.get() + 1);
        let now = NOW.replace(":00Z", &format!(":00.{:03}Z", logged.get()));
        let out = home
            .cmd()
            .env("FAILUP_NOW", now)
            .arg("log")
            .args(args)
            .output()
            .expect("run");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    };
    let at = |now: &str, args: &[&str]| {
        let out = home
            .cmd()
            .env("FAILUP_NOW", now)
            .args(args)
            .output()
            .expect("run");
        assert!(out.status.success(), "{out:?}");
    };
    let today = log(&["Missed the deadline", "--tag", "work", "--area", "work"]);
    let week = log(&[
        "Snapped at Sam",
        "--on",
        "2026-11-23",
        "--macro",
        "--tag",
        "temper",
        "--lesson",
        "pause first",
    ]);
    at(
        NOW,
        &["iterate", &week, "counted to ten", "--outcome", "better"],
    );
    let month = log(&[
        "Froze in the demo",
        "--on",
        "2026-10-25",
        "--lesson",
        "rehearse aloud",
    ]);
    let year = log(&[
        "Skipped the run",
        "--on",
        "2025-11-25",
        "--tag",
        "health",
        "--area",
        "health",
    ]);
    let closed = log(&[
        "Broke the build",
        "--on",
        "2026-09-01",
        "--tag",
        "work",
        "--area",
        "work",
        "--lesson",
        "run the tests",
    ]);
    at(
        "2026-09-02T10:00:00Z",
        &["iterate", &closed, "ran them first"],
    );
    at("2026-09-05T10:00:00Z", &["close", &closed]);
    vec![today, week, month, year, closed]
}

/// Replaces entry ids (whole and short) with stable names.
fn redact(text: &str, ids: &[String]) -> String {
    let mut text = text.to_owned();
    let shorts: std::collections::BTreeSet<&str> = ids.iter().map(|id| &id[..12]).collect();
    assert_eq!(shorts.len(), ids.len(), "two short ids alike: {ids:?}");
    for (n, id) in ids.iter().enumerate() {
        text = text.replace(id, &format!("<entry-{n}>"));
        text = text.replace(&id[..12], &format!("<id-{n}>"));
    }
    text
}

fn at_now(home: &Home, args: &[&str]) -> std::process::Output {
    home.cmd()
        .env("FAILUP_NOW", NOW)
        .args(args)
        .output()
        .expect("run")
}

fn stdout_ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn today_shows_the_day_the_week_open_loops_and_on_this_day() {
    let home = Home::new();
    let ids = journal(&home);
    let text = stdout_ok(at_now(&home, &["today"]));
    insta::assert_snapshot!("today", redact(&text, &ids));

    let v: serde_json::Value =
        serde_json::from_str(&stdout_ok(at_now(&home, &["--json", "today"]))).expect("json");
    let texts = |k: &str| -> Vec<String> {
        v[k].as_array()
            .expect(k)
            .iter()
            .map(|e| e["text"].as_str().expect("text").to_owned())
            .collect()
    };
    assert_eq!(v["today"], "2026-11-25");
    assert_eq!(texts("logged_today"), ["Missed the deadline"]);
    assert_eq!(texts("this_week"), ["Snapped at Sam"]);
    assert_eq!(
        texts("open"),
        [
            "Skipped the run",
            "Froze in the demo",
            "Missed the deadline"
        ]
    );
    assert_eq!(v["open_total"], 3);
    assert_eq!(
        texts("on_this_day"),
        ["Froze in the demo", "Skipped the run"]
    );

    // The answer to "did the lesson hold?" is an iteration with an outcome.
    let hint = format!("failup iterate {}", &ids[2][..12]);
    assert!(text.contains(&hint), "{text}");
    stdout_ok(at_now(
        &home,
        &[
            "iterate",
            &ids[2][..12],
            "rehearsed twice",
            "--outcome",
            "better",
        ],
    ));
    let v: serde_json::Value =
        serde_json::from_str(&stdout_ok(at_now(&home, &["--json", "show", &ids[2]])))
            .expect("json");
    assert_eq!(v["iterations"][0]["outcome"], "better");
}

#[test]
fn stats_draws_a_heatmap_months_and_tops_plain_in_a_pipe_and_in_colour_when_asked() {
    let home = Home::new();
    let ids = journal(&home);
    let plain = stdout_ok(at_now(&home, &["stats"]));
    assert!(plain.is_ascii(), "a pipe gets plain ASCII: {plain}");
    insta::assert_snapshot!("stats_plain", redact(&plain, &ids));
    let colour = stdout_ok(at_now(&home, &["stats", "--color", "always"]));
    assert!(colour.contains("\u{1b}[38;5;40m█"), "{colour}");
    insta::assert_snapshot!("stats_colour", colour);

    let v: serde_json::Value =
        serde_json::from_str(&stdout_ok(at_now(&home, &["--json", "stats"]))).expect("json");
    assert_eq!(v["median_days_to_closed"], 4.0);
    assert_eq!(v["top_tags"][0]["name"], "work");
    assert_eq!(v["top_tags"][0]["count"], 2);
    assert_eq!(v["months"].as_array().map(Vec::len), Some(12));
    assert_eq!(v["months"][11]["macro"], 1);
    let days = v["days"].as_array().expect("days");
    assert_eq!(
        days.last().map(|d| d["day"].clone()),
        Some("2026-11-25".into())
    );
    let total: u64 = days.iter().map(|d| d["count"].as_u64().expect("n")).sum();
    assert_eq!(total, 5);
}

#[test]
fn stats_svg_is_a_standalone_picture_of_the_same_figures() {
    let home = Home::new();
    journal(&home);
    let svg_path = home.dir.path().join("practice.svg");
    let out = at_now(&home, &["stats", "--svg", svg_path.to_str().expect("path")]);
    stdout_ok(out);
    let svg = std::fs::read_to_string(&svg_path).expect("svg written");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<title>2026-11-25: 1</title>"));
    assert!(svg.contains("#work (2)"));
    assert!(
        !svg.contains("<script"),
        "nothing that needs a browser to run"
    );
    insta::assert_snapshot!("stats_svg", svg);

    // A file that cannot be written is one clear line, and nothing is left half-written.
    let bad = home.dir.path().join("no-such-dir").join("x.svg");
    let out = at_now(&home, &["stats", "--svg", bad.to_str().expect("path")]);
    assert_one_line_failure(&out, 1, "svg into a missing directory");
}

#[test]
fn config_set_get_list_unset_with_checks_and_precedence() {
    let home = Home::new();
    assert_eq!(home.ok(&["config", "get", "color"]).trim(), "auto");
    home.ok(&["config", "set", "color", "never"]);
    home.ok(&["config", "set", "mdns", "off"]);
    home.ok(&["config", "set", "listen", "127.0.0.1:0"]);
    home.ok(&["config", "set", "prompts.lesson", "Where is the lesson?"]);
    let file = std::fs::read_to_string(home.path().join("config.toml")).expect("file");
    assert!(file.contains("color = \"never\""), "{file}");
    assert!(file.contains("mdns = false"), "{file}");
    // A prompt is the person's, kept in the journal for every device, not in this file.
    assert!(!file.contains("Where is the lesson?"), "{file}");
    assert_eq!(
        home.ok(&["config", "get", "prompts.lesson"]).trim(),
        "Where is the lesson?"
    );

    let list = home.ok(&["config", "list"]);
    assert!(
        list.contains("prompts.lesson = \"Where is the lesson?\"  (journal, on all your devices)"),
        "{list}"
    );
    assert!(list.contains("color = \"never\"  (file)"), "{list}");
    assert!(list.contains("mdns = false  (file)"), "{list}");
    assert!(list.contains("editor = \"vi\"  (default)"), "{list}");
    assert!(list.contains("portmap = true  (default)"), "{list}");
    assert!(
        list.contains("introduce-partners = false  (default)"),
        "{list}"
    );
    assert!(
        list.contains("ui.listen = \"127.0.0.1:0\"  (env FAILUP_UI_LISTEN)"),
        "{list}"
    );
    let v = home.json(&["config", "list"]);
    assert_eq!(v.as_array().map(Vec::len), Some(13));

    // The environment beats the file, a flag beats the environment.
    let out = home
        .cmd()
        .env("FAILUP_COLOR", "always")
        .args(["--json", "config", "get", "color"])
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["value"], "always");
    assert_eq!(v["source"], "env FAILUP_COLOR");
    home.log(&["a setback", "--tag", "work"]);
    let coloured = home
        .cmd()
        .env("FAILUP_COLOR", "always")
        .arg("list")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&coloured.stdout).contains('\u{1b}'));
    let flagged = home
        .cmd()
        .env("FAILUP_COLOR", "always")
        .args(["list", "--color", "never"])
        .output()
        .expect("run");
    assert!(!String::from_utf8_lossy(&flagged.stdout).contains('\u{1b}'));

    // Bad values and keys: one line, exit 1, file unchanged.
    for args in [
        &["config", "set", "color", "sometimes"][..],
        &["config", "set", "listen", "my laptop"],
        &["config", "set", "mdns", "maybe"],
        &["config", "set", "name", ""],
        &["config", "set", "prompts.lesson", "two\nlines"],
        &["config", "set", "colour", "never"],
        &["config", "get", "nope"],
    ] {
        home.fails(args, 1);
    }
    home.fails(&["config", "set", "color"], 2);
    assert_eq!(
        std::fs::read_to_string(home.path().join("config.toml")).expect("file"),
        file
    );
    let bad_env = home
        .cmd()
        .env("FAILUP_MDNS", "perhaps")
        .args(["config", "get", "mdns"])
        .output()
        .expect("run");
    assert_one_line_failure(&bad_env, 1, "bad FAILUP_MDNS");

    // A mistake made by hand in the file stops other commands with a line naming it, and the
    // config commands still run so it can be fixed.
    std::fs::write(
        home.path().join("config.toml"),
        format!("colour = \"never\"\n{file}"),
    )
    .expect("write");
    let err = home.fails(&["list"], 1);
    assert!(err.contains("unknown setting \"colour\""), "{err}");
    assert!(err.contains("config.toml"), "{err}");
    home.ok(&["config", "unset", "colour"]);
    home.ok(&["list"]);
    std::fs::write(home.path().join("config.toml"), "color = \n").expect("write");
    let err = home.fails(&["list"], 1);
    assert!(err.contains("is not valid TOML"), "{err}");
    std::fs::write(home.path().join("config.toml"), &file).expect("write");

    // A bad value of a known key: other commands stop, `config list` shows it, and `config
    // unset` and `doctor` still run.
    std::fs::write(home.path().join("config.toml"), "color = \"sometimes\"\n").expect("write");
    let err = home.fails(&["list"], 1);
    assert!(err.contains("color must be auto, always or never"), "{err}");
    let listed = home.ok(&["config", "list"]);
    assert!(listed.contains("color = \"\"  (error: "), "{listed}");
    let out = home.cmd().arg("doctor").output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("problem config"));
    home.ok(&["config", "unset", "color"]);
    assert_eq!(home.ok(&["config", "get", "color"]).trim(), "auto");

    // A question spelled like another heading of the editor template is refused.
    let err = home.fails(&["config", "set", "prompts.use", "Next step"], 1);
    assert!(err.contains("give it its own words"), "{err}");
    assert_eq!(
        home.ok(&["config", "path"]).trim(),
        home.path().join("config.toml").display().to_string()
    );
}

#[test]
fn prompts_from_the_config_file_ask_show_and_fill_the_editor_template() {
    let home = Home::new();
    home.ok(&["config", "set", "prompts.lesson", "Where is the lesson?"]);
    home.ok(&["config", "set", "prompts.story", "What happened:"]);
    let id = home.log(&["Lost the thread in the talk"]);
    // reflect asks the person's own question.
    let out = home
        .cmd()
        .args(["reflect", &id])
        .write_stdin("slow down\n\n\n")
        .output()
        .expect("run");
    assert!(out.status.success());
    let asked = String::from_utf8_lossy(&out.stderr);
    assert!(asked.contains("Where is the lesson?"), "{asked}");
    assert!(!asked.contains("next level"), "{asked}");
    let shown = home.ok(&["show", &id]);
    assert!(
        shown.contains("Where is the lesson?\n  slow down"),
        "{shown}"
    );

    // The editor (from the config file) gets the story template and the question, and what is
    // written under the question lands in the lesson.
    let seen = home.dir.path().join("seen.txt");
    let editor = script(
        home.dir.path(),
        "ed.sh",
        &format!(
            "cp \"$1\" '{}'\nsed -i 's/^What happened:$/What happened: froze/; s/^## Where is the lesson?$/## Where is the lesson?\\nbreathe/' \"$1\"",
            seen.display()
        ),
    );
    home.ok(&["config", "set", "editor", &editor.display().to_string()]);
    let out = home.on_terminal(&["log"], &[], "");
    assert!(out.status.success(), "{out:?}");
    let template = std::fs::read_to_string(&seen).expect("editor ran");
    assert!(template.contains("\nWhat happened:\n"), "{template}");
    assert!(template.contains("## Where is the lesson?\n"), "{template}");
    let list = home.json(&["list"]);
    let logged = &list[0];
    assert_eq!(logged["text"], "What happened: froze");
    assert_eq!(logged["lesson"], "breathe");
}

#[test]
fn colour_and_unicode_on_a_terminal_plain_text_in_a_pipe_and_no_color_honoured() {
    let home = Home::new();
    home.log(&["Missed the deadline", "--tag", "work", "--macro"]);
    let piped = home.ok(&["list"]);
    assert!(!piped.contains('\u{1b}') && piped.is_ascii(), "{piped:?}");

    let tty = home.on_terminal(&["list"], &[], "");
    let tty = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.contains("\u{1b}[36m#work"), "{tty:?}");
    assert!(tty.contains("\u{1b}[1m\u{1b}[31mmacro"), "{tty:?}");

    let no_color = home.on_terminal(&["stats"], &[("NO_COLOR", "1")], "");
    let no_color = String::from_utf8_lossy(&no_color.stdout);
    assert!(!no_color.contains('\u{1b}'), "{no_color:?}");
    assert!(
        no_color.contains('│'),
        "Unicode stays on a terminal: {no_color:?}"
    );

    // The config file beats NO_COLOR, as the NO_COLOR convention asks.
    home.ok(&["config", "set", "color", "always"]);
    let forced = home.on_terminal(&["list"], &[("NO_COLOR", "1")], "");
    assert!(String::from_utf8_lossy(&forced.stdout).contains('\u{1b}'));
}

#[test]
fn import_and_export_show_progress_on_a_terminal_and_nothing_in_a_pipe() {
    let home = Home::new();
    let entries: Vec<serde_json::Value> = (0..1200)
        .map(|n| {
            serde_json::json!({
                "id": format!("01M89{n:021}"),
                "text": format!("setback {n}"),
                "scale": "micro",
                "day": "2026-11-01",
                "created": "2026-11-01T10:00:00Z",
                "updated": "2026-11-01T10:00:00Z",
            })
        })
        .collect();
    let export = serde_json::json!({"format": "failup-export", "version": 1,
        "exported_at": "2026-11-01T10:00:00Z", "entries": entries});
    let file = home.dir.path().join("big.json");
    std::fs::write(&file, export.to_string()).expect("write");

    let out = home
        .cmd()
        .args(["import", file.to_str().expect("path")])
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "imported 1200 entries (0 already present)\n",
        "a pipe sees only the result"
    );

    let other = Home::new();
    let tty = other.on_terminal(&["import", file.to_str().expect("path")], &[], "");
    assert!(tty.status.success(), "{tty:?}");
    let drawn = String::from_utf8_lossy(&tty.stdout);
    assert!(drawn.contains("importing 1200 entries"), "{drawn:?}");
    assert!(drawn.contains("imported 1200 entries"), "{drawn:?}");
    assert_eq!(other.json(&["list"]).as_array().map(Vec::len), Some(1200));

    let out_file = home.dir.path().join("out.json");
    let tty = home.on_terminal(
        &["export", "--out", out_file.to_str().expect("path")],
        &[],
        "",
    );
    assert!(tty.status.success());
    assert!(String::from_utf8_lossy(&tty.stdout).contains("exporting"));
    let piped = home
        .cmd()
        .args(["export", "--out", out_file.to_str().expect("path")])
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&piped.stderr).lines().count(),
        1,
        "{piped:?}"
    );
}

#[test]
fn doctor_says_what_is_wrong_and_what_to_do() {
    let home = Home::new();
    home.log(&["a setback"]);
    let out = home.ok(&["doctor"]);
    assert!(out.contains("ok      home"), "{out}");
    assert!(out.contains("ok      store"), "{out}");
    assert!(out.contains("ok      clock"), "{out}");
    assert!(out.contains("warn    daemon   not running"), "{out}");
    assert!(out.contains("fix: run `failup daemon`"), "{out}");

    // A key others can read and a config mistake are problems, an entry from the future a
    // warning (the fast clock may be another device's); each with its fix, and exit 1.
    use std::os::unix::fs::PermissionsExt;
    let key = home.path().join("device.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(home.path().join("config.toml"), "colour = \"never\"\n").expect("write");
    let out = home
        .cmd()
        .env("FAILUP_NOW", "2099-01-01T00:00:00Z")
        .args(["log", "from a fast clock"])
        .output()
        .expect("run");
    assert!(!out.status.success(), "config mistake stops log");
    std::fs::remove_file(home.path().join("config.toml")).expect("rm");
    home.cmd()
        .env("FAILUP_NOW", "2099-01-01T00:00:00Z")
        .args(["log", "from a fast clock"])
        .assert()
        .success();
    std::fs::write(home.path().join("config.toml"), "colour = \"never\"\n").expect("write");
    let out = home.cmd().arg("doctor").output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("problem home     the device key"), "{text}");
    assert!(text.contains("fix: chmod 600"), "{text}");
    assert!(text.contains("problem config"), "{text}");
    assert!(text.contains("warn    clock"), "{text}");
    assert!(text.contains("timedatectl set-ntp true"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), "failup: doctor found 2 problems");

    let out = home.cmd().args(["--json", "doctor"]).output().expect("run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["problems"], 2);
    assert!(v["checks"].as_array().expect("checks").len() >= 6);
}

#[test]
fn config_kept_as_a_symlink_stays_one_and_daemon_flags_follow_the_same_rules() {
    let home = Home::new();
    home.ok(&["init"]);
    // Dotfiles: config.toml is a link into another directory.
    let dotfiles = home.dir.path().join("dotfiles");
    std::fs::create_dir_all(&dotfiles).expect("mkdir");
    let real = dotfiles.join("failup.toml");
    std::fs::write(&real, "# mine\ncolor = \"never\"\n").expect("write");
    let link = home.path().join("config.toml");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    home.ok(&["config", "set", "mdns", "false"]);
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    let text = std::fs::read_to_string(&real).expect("read");
    assert!(text.starts_with("# mine\ncolor = \"never\"\n"), "{text}");
    assert!(text.contains("mdns = false"), "{text}");

    // A name the config file would refuse is refused on the command line too.
    let long = "x".repeat(65);
    let err = home.fails(
        &[
            "daemon",
            "--name",
            &long,
            "--listen",
            "127.0.0.1:0",
            "--no-mdns",
        ],
        1,
    );
    assert!(err.contains("--name"), "{err}");
}

#[test]
fn doctor_only_looks() {
    let home = Home::new();
    std::fs::create_dir_all(home.path()).expect("mkdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let out = home.ok(&["doctor"]);
    assert!(
        out.contains("warn    store    no journal here yet"),
        "{out}"
    );
    assert!(!home.store().exists(), "doctor created a journal");
}
