//! The store's exclusive lock: RocketMQ's `DefaultMessageStore` keeps a file
//! named `lock` in `storePathRootDir` and holds a file lock on it for as long
//! as the store is open, so a second broker pointed at the same store refuses
//! to start instead of writing the same commit log and consume queues.
//!
//! ActorMQ takes `flock(LOCK_EX | LOCK_NB)` on `<root>/lock` before recovery
//! and writes the holder's pid into the file. An `flock` belongs to the open
//! file description, so a second broker in the same process conflicts too;
//! the kernel drops the lock when the process exits, however it exits (a
//! `kill -9` leaves the file, not the lock).

use super::error::{Result, StoreError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Name of the lock file in the store root (RocketMQ: `StorePathConfigHelper.getLockFile`).
pub const LOCK_FILE: &str = "lock";

/// Held for as long as the store is open; dropping it releases the lock.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
    path: PathBuf,
}

impl StoreLock {
    /// Locks the store at `root` (which must exist) or explains who holds it.
    pub fn acquire(root: &Path) -> Result<StoreLock> {
        let path = root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io("open", &path, e))?;
        // SAFETY: plain syscall on a descriptor owned by `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(StoreError::io("lock", &path, err));
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "holder's pid unknown".to_owned(),
            };
            return Err(StoreError::Locked {
                root: root.to_path_buf(),
                lock: path,
                holder,
            });
        }
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{pid}"))
            .map_err(|e| StoreError::io("write", &path, e))?;
        tracing::info!(path = %path.display(), pid, "store locked");
        Ok(StoreLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock too; unlocking first makes
        // the release independent of descriptors duplicated elsewhere.
        // SAFETY: plain syscall on a descriptor owned by `self.file`.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_store_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = StoreLock::acquire(dir.path()).unwrap();
        let pid = std::process::id().to_string();
        assert_eq!(std::fs::read_to_string(first.path()).unwrap().trim(), pid);
        let err = StoreLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains(&format!("pid {pid}")), "{err}");
        drop(first);
        let again = StoreLock::acquire(dir.path()).unwrap();
        drop(again);
    }
}
