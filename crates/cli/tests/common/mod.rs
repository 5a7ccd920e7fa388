//! Helpers shared by the binary's integration tests: a temporary home per test and a way to run
//! the real `failup` binary in it, optionally on a pseudo-terminal.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// A throwaway home for one test.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("journal.redb")
    }

    /// `failup` with this home, UTC, and no editor from the environment.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("failup"));
        cmd.env("FAILUP_HOME", self.path())
            .env("TZ", "UTC")
            .env_remove("RUST_LOG");
        failup_tests::isolate(&mut cmd);
        cmd
    }

    /// `program` run with this home's environment, as [`Home::std_cmd`] runs failup.
    pub fn std_cmd_for(&self, program: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.env("FAILUP_HOME", self.path())
            .env("TZ", "UTC")
            .env_remove("RUST_LOG");
        failup_tests::isolate(&mut cmd);
        cmd
    }

    /// [`Home::std_cmd`] with assert_cmd's conveniences.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    /// Runs `failup ARGS` and insists it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run");
        assert!(
            out.status.success(),
            "failup {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// Runs `failup ARGS` and insists it fails with exit code `code` and one line on stderr;
    /// returns that line.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.cmd().args(args).output().expect("run");
        assert_one_line_failure(&out, code, args);
        String::from_utf8(out.stderr).expect("utf8")
    }

    /// Logs an entry and returns its id.
    pub fn log(&self, args: &[&str]) -> String {
        let mut all = vec!["log"];
        all.extend_from_slice(args);
        let id = self.ok(&all).trim().to_owned();
        assert_eq!(id.len(), 26, "log printed {id:?}");
        id
    }

    /// `failup --json ARGS` parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("json")
    }

    /// Runs `failup ARGS` on a pseudo-terminal (through util-linux `script`), with `env` set,
    /// feeding `input` to it; returns the combined terminal output.
    pub fn on_terminal(&self, args: &[&str], env: &[(&str, &str)], input: &str) -> Output {
        failup_tests::on_terminal(&self.path(), args, env, input)
    }
}

pub fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

pub fn assert_one_line_failure(out: &Output, code: i32, what: impl std::fmt::Debug) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what:?}: expected exit {code}, stderr: {stderr}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{what:?}: expected one line, got {stderr:?}"
    );
    assert!(stderr.starts_with("failup: "), "{what:?}: {stderr:?}");
    assert!(!stderr.contains("panicked"), "{what:?}: {stderr:?}");
}

/// Writes an executable shell script and returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}
