//! Helpers for the cross-crate tests: where the real `failup` binary is, and a temporary home
//! to run it in.

use std::path::PathBuf;
use std::process::Command;

/// The `failup` binary built for this test run.
///
/// `cargo test --workspace` builds it with the `failup` package's own integration tests; a
/// run that selects only this package must build it first (`cargo build -p failup`).
pub fn failup_bin() -> PathBuf {
    let path = assert_cmd::cargo::cargo_bin("failup");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p failup` or `cargo test --workspace`",
        path.display()
    );
    path
}

/// A temporary home for one test.
pub struct Home {
    /// Removed when the test ends.
    pub dir: tempfile::TempDir,
}

impl Home {
    /// A fresh, empty home.
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The home directory failup uses.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The store file inside the home.
    pub fn store(&self) -> PathBuf {
        self.path().join("journal.redb")
    }

    /// `failup` set up to use this home.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(failup_bin());
        cmd.env("FAILUP_HOME", self.path()).env("TZ", "UTC");
        cmd
    }
}

impl Default for Home {
    fn default() -> Self {
        Home::new()
    }
}
