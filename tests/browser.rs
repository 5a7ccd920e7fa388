//! The web interface in a real browser: headless Chromium driven over chromedriver, against the
//! real binary, a real daemon and its redb file in a temp home. Each test clicks and types the
//! way a person does, then checks the journal through the command line.
//!
//! Needs Debian's `chromium` and `chromium-driver` (installed by `.ci/run`); skips with a message
//! where they are missing. With `FAILUP_SCREENSHOTS=DIR` the tests write their screenshots of
//! each page, at a desktop's and a phone's width, into DIR (docs/screenshots is made that way).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use failup_tests::Daemon;
use fantoccini::{Client, ClientBuilder, Locator};

/// How long a page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

/// A desktop window, and a phone's (an iPhone 12's CSS pixels).
const DESKTOP: (u32, u32) = (1100, 900);
const PHONE: (u32, u32) = (390, 844);

/// The first of `names` found on PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// A chromedriver of this test, and the Chromium it drives; both end when dropped.
struct Driver {
    child: Child,
    port: u16,
    chromium: PathBuf,
}

impl Driver {
    /// Starts chromedriver on a free port, or says why the test is skipped.
    fn start() -> Option<Driver> {
        let (Some(chromium), Some(driver)) = (
            on_path(&["chromium", "chromium-browser", "google-chrome"]),
            on_path(&["chromedriver"]),
        ) else {
            eprintln!(
                "skipped: the browser tests need chromium and chromedriver (Debian: apt install \
                 chromium chromium-driver)"
            );
            return None;
        };
        let mut child = Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let out = child.stdout.take().expect("chromedriver's output");
        // "ChromeDriver was started successfully on port 43041."
        let mut port = None;
        for line in std::io::BufReader::new(out).lines() {
            let line = line.expect("read chromedriver's output");
            if let Some(rest) = line.split("on port ").nth(1) {
                if line.contains("started successfully") {
                    port = rest.trim_end_matches('.').trim().parse().ok();
                    break;
                }
            }
        }
        let Some(port) = port else {
            let _ = child.kill();
            panic!("chromedriver did not say its port");
        };
        Some(Driver {
            child,
            port,
            chromium,
        })
    }

    /// A fresh browser, with its own profile: a person's own browser on their own machine.
    async fn browser(&self) -> Browser {
        self.browser_with(true).await
    }

    /// A fresh browser, with JavaScript on or off.
    async fn browser_with(&self, script: bool) -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": self.chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ],
                "prefs": {
                    "profile.managed_default_content_settings.javascript": if script { 1 } else { 2 },
                },
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a browser session");
        Browser {
            client,
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window.
struct Browser {
    client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens the journal of `d` the way `failup ui` does: its one-time link.
    async fn open(&self, d: &Daemon) -> String {
        let link = d.ok(&["ui", "--no-browser"]).trim().to_owned();
        self.client.goto(&link).await.expect("open the link");
        let base = link
            .split("/login")
            .next()
            .expect("a link to the interface")
            .to_owned();
        self.wait_for("the Today page", |t| t.contains("Today"))
            .await;
        assert!(
            self.url().await.ends_with("/today"),
            "the link lands on Today, not {}",
            self.url().await
        );
        base
    }

    /// The id of the entry whose page this is.
    async fn entry_id(&self) -> String {
        let url = self.url().await;
        url.split_once("/entry/")
            .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
            .unwrap_or_else(|| panic!("not an entry page: {url}"))
            .to_owned()
    }

    async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("the page's address")
            .to_string()
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("go to a page");
    }

    /// What the page shows, as text.
    async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the page's text passes `check`.
    async fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + PATIENCE;
        loop {
            let text = self.text().await;
            if check(&text) {
                return text;
            }
            if Instant::now() >= end {
                let html = self.client.source().await.unwrap_or_default();
                panic!(
                    "timed out waiting for {what}; the page at {} shows:\n{text}\n\nIts HTML:\n{html}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let url = self.url().await;
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on {url}: {e}"))
    }

    /// Types `keys` into the field `css`.
    async fn type_into(&self, css: &str, keys: &str) {
        self.find(css)
            .await
            .send_keys(keys)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Clicks `css`.
    async fn click(&self, css: &str) {
        self.click_at(Locator::Css(css), css).await;
    }

    /// Finds and clicks what `at` locates. A page that refreshed itself between the two (sync
    /// brought a change) swapped the element for a new one: found again, as a person's second
    /// look would.
    async fn click_at(&self, at: Locator<'_>, what: &str) {
        let mut tries = 0;
        loop {
            let url = self.url().await;
            let found = self
                .client
                .wait()
                .at_most(PATIENCE)
                .for_element(at)
                .await
                .unwrap_or_else(|e| panic!("no {what} on {url}: {e}"));
            match found.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") && tries < 5 => tries += 1,
                Err(e) => panic!("click {what} on {url}: {e}"),
            }
        }
    }

    /// Clicks the button or link whose text is `label`.
    async fn press(&self, label: &str) {
        let xpath = format!(
            "//button[normalize-space(.)={label:?}] | //a[normalize-space(.)={label:?}] | \
             //summary[normalize-space(.)={label:?}]"
        );
        self.click_at(Locator::XPath(&xpath), label).await;
    }

    /// A field's current value.
    async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .expect("a value")
            .unwrap_or_default()
    }

    /// Runs `script` in the page.
    async fn run(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("run {script}: {e}"))
    }

    /// Saves this page as `NAME-desktop.png` and `NAME-phone.png` in `$FAILUP_SCREENSHOTS`, or
    /// takes them anyway (so a page that cannot be drawn fails the test) when it is not set.
    async fn screenshots(&self, name: &str) {
        for (size, (w, h)) in [("desktop", DESKTOP), ("phone", PHONE)] {
            self.client
                .set_window_size(w, h)
                .await
                .expect("resize the window");
            // The top of the page, with no field focused: what a person sees on arriving.
            self.run("document.activeElement.blur(); window.scrollTo(0, 0);")
                .await;
            let png = self.client.screenshot().await.expect("a screenshot");
            assert!(png.starts_with(b"\x89PNG"), "a PNG");
            if let Some(dir) = std::env::var_os("FAILUP_SCREENSHOTS") {
                let path = PathBuf::from(dir).join(format!("{name}-{size}.png"));
                std::fs::write(&path, png)
                    .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            }
        }
        let (w, h) = DESKTOP;
        self.client
            .set_window_size(w, h)
            .await
            .expect("resize the window");
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// The entry `id` as the command line shows it.
fn shown(d: &Daemon, id: &str) -> serde_json::Value {
    let out = d.ok(&["--json", "show", id]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("show {id}: {e}: {out}"))
}

/// Whether `d` lists its device `name`, revoked or not.
fn lists(d: &Daemon, name: &str, revoked: bool) -> bool {
    let out = d.ok(&["--json", "peers"]);
    let peers: serde_json::Value = serde_json::from_str(&out).expect("peers as JSON");
    peers.as_array().is_some_and(|a| {
        a.iter()
            .any(|p| p["name"] == name && p["revoked"] == revoked)
    })
}

/// The id of the only entry of `d`.
fn only_id(d: &Daemon) -> String {
    let out = d.ok(&["--json", "list"]);
    let list: serde_json::Value = serde_json::from_str(&out).expect("list as JSON");
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 1, "{list:?}");
    list[0]["id"].as_str().expect("an id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setback_is_logged_reflected_on_tried_again_and_closed_in_the_browser() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let d = Daemon::start("laptop");
    let b = driver.browser().await;
    let base = b.open(&d).await;

    // Quick capture: one line and Enter.
    b.type_into("#quick-text", "Missed the 7:40 train\n").await;
    b.wait_for("the new entry on Today", |t| {
        t.contains("Missed the 7:40 train")
    })
    .await;
    assert_eq!(d.texts(), vec!["Missed the 7:40 train".to_owned()]);
    b.screenshots("today").await;

    // The full form: a refused feeling keeps everything typed, with the error beside the field.
    b.goto(&format!("{base}/log")).await;
    b.type_into("#text", "Froze when the manager asked for numbers")
        .await;
    b.click("form.log details summary").await;
    b.click("input[name=scale][value=macro]").await;
    b.type_into("#tags", "work numbers").await;
    b.type_into("#feeling", "9").await;
    b.type_into("#lesson", "bring the sheet printed").await;
    b.press("Log it").await;
    let refused = b
        .wait_for("the refusal", |t| {
            t.contains("feeling must be between 1 and 5")
        })
        .await;
    assert!(refused.contains("Log"), "{refused}");
    assert_eq!(
        b.value("#text").await,
        "Froze when the manager asked for numbers"
    );
    assert_eq!(b.value("#lesson").await, "bring the sheet printed");
    assert_eq!(b.value("#tags").await, "work numbers");
    let beside = b.find("#error-feeling").await.text().await.expect("text");
    assert!(beside.contains("between 1 and 5"), "{beside}");
    assert_eq!(d.texts().len(), 1, "a refused form logs nothing");
    b.screenshots("log-refused").await;

    // A draft survives a reload (and a closed tab): correct the field, reload before sending.
    b.find("#feeling").await.clear().await.expect("clear");
    b.type_into("#feeling", "4").await;
    b.goto(&format!("{base}/log")).await;
    b.wait_for("the log form", |t| t.contains("What happened"))
        .await;
    assert_eq!(
        b.value("#text").await,
        "Froze when the manager asked for numbers",
        "the draft came back after a reload"
    );
    assert_eq!(b.value("#feeling").await, "4");
    b.press("Log it").await;
    b.wait_for("the logged entry", |t| {
        t.contains("Froze when the manager asked for numbers") && !t.contains("What happened")
    })
    .await;
    let texts = d.texts();
    assert_eq!(texts.len(), 2, "{texts:?}");
    // Saved, so the draft is gone: the form is empty again.
    b.goto(&format!("{base}/log")).await;
    b.wait_for("the log form", |t| t.contains("What happened"))
        .await;
    assert_eq!(b.value("#text").await, "", "the saved draft was forgotten");
    b.screenshots("log").await;

    // The journal, then the entry.
    b.goto(&format!("{base}/journal")).await;
    b.wait_for("the journal", |t| t.contains("Froze when the manager"))
        .await;
    b.screenshots("journal").await;
    b.press_link_containing("Froze when the manager").await;
    b.wait_for("the entry page", |t| t.contains("Reflect"))
        .await;
    let id_prefix = b.entry_id().await;
    let e = shown(&d, &id_prefix);
    assert_eq!(e["scale"], "macro");
    assert_eq!(e["feeling"], 4);
    assert_eq!(e["lesson"], "bring the sheet printed");

    // Reflect: the three questions, more than one line each.
    b.find("#r-lesson").await.clear().await.expect("clear");
    b.type_into("#r-lesson", "numbers first,\nthen the story")
        .await;
    b.type_into("#r-muscle", "speaking under pressure").await;
    b.type_into("#r-use", "ask for the agenda a day before")
        .await;
    b.press("Save reflection").await;
    b.wait_for("the saved reflection", |t| t.contains("Reflect"))
        .await;
    let end = Instant::now() + PATIENCE;
    while shown(&d, &id_prefix)["use"] != "ask for the agenda a day before" {
        assert!(Instant::now() < end, "the reflection was not saved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = shown(&d, &id_prefix);
    assert_eq!(e["lesson"], "numbers first,\nthen the story");
    assert_eq!(e["muscle"], "speaking under pressure");

    // Iterate, with an outcome.
    b.type_into("#tried", "printed the sheet for the Monday review")
        .await;
    b.find("#outcome")
        .await
        .select_by_value("better")
        .await
        .expect("pick an outcome");
    b.press("Record the try").await;
    b.wait_for("the try on the page", |t| {
        t.contains("printed the sheet for the Monday review")
    })
    .await;
    let e = shown(&d, &id_prefix);
    assert_eq!(
        e["iterations"][0]["tried"],
        "printed the sheet for the Monday review"
    );
    assert_eq!(e["iterations"][0]["outcome"], "better");
    b.screenshots("entry").await;

    // Close the loop, and reopen it.
    b.press("Close the loop").await;
    b.wait_for("the closed loop", |t| t.contains("The loop is closed."))
        .await;
    assert_eq!(shown(&d, &id_prefix)["status"], "closed");
    b.press("Reopen").await;
    b.wait_for("the open loop", |t| t.contains("Close the loop"))
        .await;
    assert_ne!(shown(&d, &id_prefix)["status"], "closed");

    // Delete, behind a confirmation.
    b.press("Delete this entry…").await;
    b.wait_for("the confirmation", |t| t.contains("Delete this entry?"))
        .await;
    assert_eq!(d.texts().len(), 2, "asking is not deleting");
    b.press("Delete it").await;
    b.wait_for("the journal again", |t| t.contains("Journal"))
        .await;
    assert_eq!(d.texts(), vec!["Missed the 7:40 train".to_owned()]);
    b.close().await;
}

impl Browser {
    /// Follows the first link whose text holds `part`.
    async fn press_link_containing(&self, part: &str) {
        let xpath = format!("//a[contains(normalize-space(.), {part:?})]");
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no link holding {part:?}: {e}"))
            .click()
            .await
            .expect("follow the link");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_sees_what_was_picked_in_their_own_browser_and_their_cheer_appears_without_a_reload()
 {
    let Some(driver) = Driver::start() else {
        return;
    };
    let sam = Daemon::start("sam-laptop");
    let alex = Daemon::start("alex-laptop");
    sam.partner(&alex, "alex", "sam");
    sam.ok(&[
        "log",
        "STORY-MARKER froze in the pitch",
        "--lesson",
        "rehearse with a timer",
        "--tag",
        "work",
    ]);
    let id = only_id(&sam);

    // Alex has the feed open, in their own browser on their own home.
    let theirs = driver.browser().await;
    let their_base = theirs.open(&alex).await;
    theirs.goto(&format!("{their_base}/partner")).await;
    theirs
        .wait_for("the empty feed", |t| {
            t.contains("Nothing shared with you yet")
        })
        .await;
    theirs.run("window.stillThisPage = true;").await;

    // Sam shares only the lesson and the tags, looking at the preview first.
    let mine = driver.browser().await;
    let base = mine.open(&sam).await;
    mine.goto(&format!("{base}/entry/{id}")).await;
    mine.press("Share with alex…").await;
    mine.wait_for("the field picker", |t| t.contains("What alex will see"))
        .await;
    let preview = mine
        .find("section.preview")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        preview.contains("STORY-MARKER"),
        "every field at first: {preview}"
    );
    for field in [
        "text",
        "scale",
        "area",
        "feeling",
        "muscle",
        "use",
        "next",
        "iterations",
    ] {
        let boxes = mine
            .client
            .find_all(Locator::Css(&format!(
                "input[name=field][value={field}]:checked"
            )))
            .await
            .expect("find");
        for b in boxes {
            b.click().await.expect("untick");
        }
    }
    mine.press("Update the preview").await;
    let preview = mine
        .wait_for("the narrowed preview", |t| {
            t.contains("the story is not shared")
        })
        .await;
    assert!(!preview.contains("STORY-MARKER"), "{preview}");
    assert!(preview.contains("rehearse with a timer"), "{preview}");
    mine.screenshots("share").await;
    mine.press("Share these fields").await;
    mine.wait_for("the entry shared", |t| t.contains("Shared with alex"))
        .await;

    // It appears in Alex's feed without a reload, marked new, without the story.
    let feed = theirs
        .wait_for("the shared entry in the feed", |t| {
            t.contains("rehearse with a timer")
        })
        .await;
    assert!(!feed.contains("STORY-MARKER"), "{feed}");
    assert!(
        feed.contains("sam\nnew") || feed.contains("sam new"),
        "marked new: {feed}"
    );
    assert_eq!(
        theirs.run("return window.stillThisPage === true").await,
        serde_json::Value::Bool(true),
        "the feed was reloaded instead of updated in place"
    );

    // Sam watches the entry page; the cheer must arrive without a reload.
    mine.goto(&format!("{base}/entry/{id}")).await;
    mine.wait_for("the entry page", |t| t.contains("Shared with alex"))
        .await;
    mine.run("window.stillThisPage = true; document.activeElement.blur();")
        .await;

    theirs
        .type_into("article.item input[name=text]", "you'll nail it next time")
        .await;
    theirs.press("Cheer").await;
    theirs
        .wait_for("the cheer under the entry", |t| {
            t.contains("you'll nail it next time")
        })
        .await;
    theirs.screenshots("partner").await;

    mine.wait_for("alex's cheer on sam's page", |t| {
        t.contains("you'll nail it next time")
    })
    .await;
    assert_eq!(
        mine.run("return window.stillThisPage === true").await,
        serde_json::Value::Bool(true),
        "the page was reloaded instead of updated in place"
    );
    let refreshed = mine
        .run("return document.body.dataset.refreshed || '0'")
        .await;
    assert_ne!(
        refreshed,
        serde_json::json!("0"),
        "the page refreshed itself"
    );
    mine.goto(&format!("{base}/partner")).await;
    mine.wait_for("sam's shared entries", |t| {
        t.contains("Your shared entries")
    })
    .await;

    // Unsharing from the page takes it out of alex's feed.
    mine.goto(&format!("{base}/entry/{id}")).await;
    mine.press("Stop sharing with alex").await;
    mine.wait_for("the entry unshared", |t| !t.contains("Shared with alex"))
        .await;
    let end = Instant::now() + PATIENCE;
    loop {
        theirs.client.refresh().await.expect("reload");
        let t = theirs.text().await;
        if !t.contains("rehearse with a timer") && t.contains("Nothing shared with you yet") {
            break;
        }
        assert!(
            Instant::now() < end,
            "the unshared entry stayed in the feed:\n{t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    mine.close().await;
    theirs.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_paired_with_the_code_the_page_shows_and_revoked_from_the_devices_page() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let laptop = Daemon::start("laptop");
    let phone = Daemon::start("phone");
    let b = driver.browser().await;
    let base = b.open(&laptop).await;

    b.goto(&format!("{base}/devices")).await;
    b.press("Pair another device").await;
    let code = b.find("#invite-code").await.text().await.expect("the code");
    let qr = b
        .find(".qr svg")
        .await
        .html(false)
        .await
        .expect("the QR code");
    assert!(qr.contains("<path") || qr.contains("<rect"), "{qr}");
    b.screenshots("pair").await;
    phone.ok(&["pair", "join", code.trim()]);
    let phone_id = phone.device();

    b.goto(&format!("{base}/devices")).await;
    let end = Instant::now() + PATIENCE;
    loop {
        let t = b.text().await;
        if t.contains("phone") && (t.contains("connected") || t.contains("last seen")) {
            break;
        }
        assert!(Instant::now() < end, "the phone never showed:\n{t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.client.refresh().await.expect("reload");
    }
    b.screenshots("devices").await;

    // A partner, invited from the same page by the name the laptop calls them.
    let alex = Daemon::start("alex-laptop");
    b.type_into("#label", "alex").await;
    b.press("Invite a partner").await;
    b.wait_for("the partner's code", |t| t.contains("Invite alex"))
        .await;
    let code = b.find("#invite-code").await.text().await.expect("the code");
    assert!(code.starts_with("FAILUP-PARTNER-"), "{code}");
    b.find(".qr svg").await;
    alex.ok(&["partner", "join", code.trim(), "--name", "sam"]);
    b.press("Done").await;
    b.wait_for("alex among the partners", |t| {
        t.contains("alex") && t.contains("They see 0 of your entries")
    })
    .await;

    b.click(&format!("a[href='/devices/{phone_id}/revoke']"))
        .await;
    b.wait_for("the confirmation", |t| t.contains("Revoke phone?"))
        .await;
    assert!(lists(&laptop, "phone", false), "asking is not revoking");
    b.screenshots("revoke").await;
    b.press("Revoke it").await;
    b.wait_for("the devices page", |t| t.contains("Your devices"))
        .await;
    assert!(lists(&laptop, "phone", true), "the phone was not revoked");
    // And it sticks: the revoked phone no longer syncs, so what the laptop logs never reaches it.
    laptop.ok(&["log", "after the revocation"]);
    let out = phone.run(&["sync", "--timeout", "3s"]);
    assert!(!out.status.success(), "the revoked phone still syncs");
    assert!(
        !phone.texts().contains(&"after the revocation".to_owned()),
        "the revoked phone received a new entry"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_practice_page_draws_the_charts_and_settings_change_prompts_and_colours() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let d = Daemon::start("laptop");
    for (text, tag, day) in [
        ("Missed the deadline", "work", "2026-11-02"),
        ("Skipped the run", "health", "2026-11-20"),
        ("Snapped at standup", "work", "2026-11-30"),
    ] {
        d.ok(&["log", text, "--tag", tag, "--on", day]);
    }
    let b = driver.browser().await;
    let base = b.open(&d).await;

    // Practice: the same picture as `stats --svg`, inline.
    b.goto(&format!("{base}/practice")).await;
    let svg = b
        .find(".chart svg")
        .await
        .html(false)
        .await
        .expect("the charts");
    let file = d.home.path().join("practice.svg");
    d.ok(&["stats", "--svg", file.to_str().expect("a path")]);
    let mine = std::fs::read_to_string(&file).expect("the picture");
    assert!(svg.contains("reps 3 (3 micro, 0 macro)"), "{svg}");
    assert!(mine.contains("reps 3 (3 micro, 0 macro)"), "{mine}");
    assert!(svg.contains("#work"), "top tags drawn: {svg}");
    assert!(svg.contains("#30a14e"), "green at first: {svg}");
    b.screenshots("practice").await;

    // Settings: a prompt of one's own reaches the command line (and every device).
    b.goto(&format!("{base}/settings")).await;
    b.find("#p-lesson").await.clear().await.expect("clear");
    b.type_into("#p-lesson", "What will I do differently next time?")
        .await;
    b.press("Save prompts").await;
    b.wait_for("the settings again", |t| t.contains("Your prompts"))
        .await;
    assert_eq!(
        d.ok(&["config", "get", "prompts.lesson"]).trim(),
        "What will I do differently next time?"
    );
    // A refused prompt keeps what was typed, with the reason beside it.
    let long = "why ".repeat(200);
    b.find("#p-muscle").await.clear().await.expect("clear");
    b.type_into("#p-muscle", &long).await;
    b.press("Save prompts").await;
    b.wait_for("the refusal", |t| t.contains("longer than"))
        .await;
    assert_eq!(b.value("#p-muscle").await, long);
    assert_ne!(
        d.ok(&["config", "get", "prompts.muscle"]).trim(),
        long.trim()
    );
    b.find("#p-muscle").await.clear().await.expect("clear");
    b.type_into("#p-muscle", "Which muscle is this building?")
        .await;
    b.press("Save prompts").await;
    b.wait_for("the settings again", |t| !t.contains("longer than"))
        .await;
    assert_eq!(
        d.ok(&["config", "get", "prompts.muscle"]).trim(),
        "Which muscle is this building?"
    );

    // The colour of the charts, kept by this browser.
    b.click("input[name=palette][value=purple]").await;
    b.press("Use this colour").await;
    b.wait_for("the practice page", |t| t.contains("Practice"))
        .await;
    let svg = b
        .find(".chart svg")
        .await
        .html(false)
        .await
        .expect("the charts");
    assert!(svg.contains("#7048e8") && !svg.contains("#30a14e"), "{svg}");
    b.goto(&format!("{base}/settings")).await;
    b.wait_for("the settings", |t| t.contains("Colour of the charts"))
        .await;
    b.screenshots("settings").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failup_ui_hands_the_browser_an_owner_only_page_never_the_link_itself() {
    use std::os::unix::fs::PermissionsExt;
    let Some(driver) = Driver::start() else {
        return;
    };
    let d = Daemon::start("laptop");
    d.ok(&["log", "Forgot the keys"]);
    // A desktop opener that only notes what it was asked to open.
    let bin = tempfile::tempdir().expect("a bin directory");
    let asked = bin.path().join("asked");
    let opener = bin.path().join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", asked.display()),
    )
    .expect("write the opener");
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = d
        .home
        .cmd()
        .args(["ui"])
        .env("PATH", path)
        .output()
        .expect("failup ui");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let end = Instant::now() + PATIENCE;
    while !asked.exists() {
        assert!(Instant::now() < end, "the opener was never run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end = Instant::now() + PATIENCE;
    let arg = loop {
        let arg = std::fs::read_to_string(&asked).unwrap_or_default();
        if arg.ends_with('\n') {
            break arg.trim().to_owned();
        }
        assert!(Instant::now() < end, "the opener's note is incomplete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!arg.contains("token"), "the link on a command line: {arg}");
    let page = d.home.path().join("ui-open.html");
    assert_eq!(PathBuf::from(&arg), page);
    let mode = std::fs::metadata(&page)
        .expect("the page")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the page is readable by others: {mode:o}");

    // The browser, given that page, lands in the journal.
    let b = driver.browser().await;
    b.goto(&format!("file://{}", page.display())).await;
    b.wait_for("the journal", |t| t.contains("Forgot the keys"))
        .await;
    assert!(b.url().await.ends_with("/today"), "{}", b.url().await);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_forms_work_from_the_keyboard_with_javascript_off() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let d = Daemon::start("laptop");
    let b = driver.browser_with(false).await;
    let base = b.open(&d).await;
    // The page's script does not run here: what is typed is not kept over a reload.
    b.goto(&format!("{base}/log")).await;
    b.type_into("#text", "typed, not sent").await;
    b.client.refresh().await.expect("reload");
    b.wait_for("the log form", |t| t.contains("What happened"))
        .await;
    assert_eq!(b.value("#text").await, "", "the draft script ran");
    b.goto(&format!("{base}/today")).await;

    // Quick capture: typed, then Enter.
    b.type_into("#quick-text", "Overslept the alarm\n").await;
    b.wait_for("the entry", |t| t.contains("Overslept the alarm"))
        .await;
    assert_eq!(d.texts(), vec!["Overslept the alarm".to_owned()]);

    // The full form, field to field with Tab, sent with Enter on its button.
    b.goto(&format!("{base}/log")).await;
    b.type_into("#text", "Lost the thread in the talk").await;
    b.find("#text")
        .await
        .send_keys("\u{E004}\u{E007}")
        .await
        .expect("Tab to the details, Enter opens them");
    b.type_into("#lesson", "one slide, one point").await;
    b.find("#lesson")
        .await
        .send_keys(&"\u{E004}".repeat(4))
        .await
        .expect("Tab to the button");
    b.client
        .active_element()
        .await
        .expect("the focused element")
        .send_keys("\u{E007}")
        .await
        .expect("Enter on the button");
    b.wait_for("the logged entry", |t| {
        t.contains("Lost the thread in the talk") && t.contains("Reflect")
    })
    .await;
    let id = b.entry_id().await;
    assert_eq!(shown(&d, &id)["lesson"], "one slide, one point");

    // Close the loop without a script.
    b.press("Close the loop").await;
    b.wait_for("the closed loop", |t| t.contains("The loop is closed."))
        .await;
    assert_eq!(shown(&d, &id)["status"], "closed");
    b.close().await;
}
