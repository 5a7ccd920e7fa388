//! Completion of entry ids in the shell, with each entry's title beside its id: clap's
//! dynamic completion (`COMPLETE=bash failup ...`, registered by `failup completions SHELL`)
//! calls back into the binary, which looks the entries up.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use clap_complete::CompletionCandidate;
use failup_journal::Filter;
use failup_journal::text::shown;

use crate::journal::Journal;

/// The newest entries offered; a person completing an id means a recent one, and a shell
/// would not show more.
const OFFERED: usize = 200;

/// The home completion looks in: `FAILUP_HOME`, else the platform's data directory (a
/// `--home` on the line being completed is not seen).
fn home() -> Option<PathBuf> {
    std::env::var_os("FAILUP_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            directories::ProjectDirs::from("", "", "failup").map(|d| d.data_dir().to_owned())
        })
}

/// Candidates for an entry id that starts with `current`: the newest entries, each with its
/// title as the description, and `last`. Nothing (never an error) if the journal cannot be
/// read, so completing never disturbs the shell.
pub fn entries(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().to_ascii_uppercase();
    let Some(home) = home() else {
        return Vec::new();
    };
    // Looking must not create a journal.
    if !home.join(crate::STORE_FILE).is_file() {
        return Vec::new();
    }
    let Ok(mut journal) = Journal::open(&home, crate::STORE_FILE, Duration::from_millis(500))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if "LAST".starts_with(&typed) {
        out.push(CompletionCandidate::new("last").help(Some("the entry logged last".into())));
    }
    for e in journal
        .list(&Filter::default(), Some(OFFERED))
        .unwrap_or_default()
    {
        let id = crate::render::short(e.id);
        if !id.starts_with(&typed) {
            continue;
        }
        let title: String = shown(e.title()).chars().take(60).collect();
        out.push(CompletionCandidate::new(id).help(Some(title.into())));
    }
    out
}
