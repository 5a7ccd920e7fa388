//! The home: the one directory that holds a device's journal, key, control socket and settings.
//! Every crate that touches it takes its file names from here, and its permissions are kept
//! here: the journal is private writing, so the home is its owner's alone (`0700`) and so are
//! the files in it that hold the journal or the key (`0600`).

use std::path::{Path, PathBuf};

/// The store's file name.
pub const STORE_FILE: &str = "journal.redb";
/// The device key's file name.
pub const KEY_FILE: &str = "device.key";
/// The control socket's file name.
pub const SOCKET_FILE: &str = "control.sock";
/// The file naming the running daemon's process id.
pub const PID_FILE: &str = "daemon.pid";
/// The settings file's name.
pub const CONFIG_FILE: &str = "config.toml";
/// The owner-only page `failup ui` hands the browser, which forwards to the one-time link: a
/// link on the opener's command line could be read by any local user in `/proc`.
pub const UI_OPEN_FILE: &str = "ui-open.html";

/// Mode of the home directory.
pub const HOME_MODE: u32 = 0o700;
/// Mode of the files that hold the journal, the key or the socket.
pub const PRIVATE_MODE: u32 = 0o600;

/// A file system operation on the home failed.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct HomeError {
    /// What was being done, naming the path.
    pub context: String,
    /// The OS error.
    pub source: std::io::Error,
}

/// What [`Home::ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The home was there, owner-only.
    Ready,
    /// The home did not exist and was created.
    Created,
    /// The home was open to others and is now its owner's alone.
    Tightened,
}

/// A device's home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store.
    pub fn store(&self) -> PathBuf {
        self.root.join(STORE_FILE)
    }

    /// The device key.
    pub fn key(&self) -> PathBuf {
        self.root.join(KEY_FILE)
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join(SOCKET_FILE)
    }

    /// The running daemon's pid file.
    pub fn pid(&self) -> PathBuf {
        self.root.join(PID_FILE)
    }

    /// The settings file.
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// The page that forwards the browser to the web interface's one-time link.
    pub fn ui_open(&self) -> PathBuf {
        self.root.join(UI_OPEN_FILE)
    }

    /// Creates the home, owner-only, or makes an existing one owner-only. A home made by hand
    /// (or by an older tool) may be open to others, and the journal inside is private writing.
    pub fn ensure(&self) -> Result<Ensured, HomeError> {
        if self.root.is_dir() {
            if mode_of(&self.root) & 0o077 == 0 {
                return Ok(Ensured::Ready);
            }
            restrict(&self.root, HOME_MODE)?;
            return Ok(Ensured::Tightened);
        }
        std::fs::create_dir_all(&self.root).map_err(|source| HomeError {
            context: format!("cannot create home {}", self.root.display()),
            source,
        })?;
        restrict(&self.root, HOME_MODE)?;
        Ok(Ensured::Created)
    }
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    // Unreadable metadata leaves the mode alone; the next operation reports the real error.
    std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(HOME_MODE)
}

#[cfg(not(unix))]
fn mode_of(_path: &Path) -> u32 {
    HOME_MODE
}

/// Gives `path` the permission bits `mode` (a no-op where there are none).
pub fn restrict(path: &Path, mode: u32) -> Result<(), HomeError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
            HomeError {
                context: format!("cannot restrict permissions of {}", path.display()),
                source,
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_home_is_created_owner_only_and_an_open_one_is_tightened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path().join("a/b"));
        assert_eq!(home.ensure().expect("create"), Ensured::Created);
        assert_eq!(mode_of(home.root()) & 0o777, HOME_MODE);
        assert_eq!(home.ensure().expect("again"), Ensured::Ready);
        std::fs::set_permissions(home.root(), std::fs::Permissions::from_mode(0o755))
            .expect("open it");
        assert_eq!(home.ensure().expect("tighten"), Ensured::Tightened);
        assert_eq!(mode_of(home.root()) & 0o777, HOME_MODE);
        assert_eq!(home.store(), dir.path().join("a/b/journal.redb"));
    }
}
