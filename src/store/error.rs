//! Typed errors of the storage engine. I/O errors carry the path and the
//! operation; running out of space is reported as [`StoreError::DiskFull`].

use crate::wire::message::MessageError;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("disk full while trying to {op} {path}: {source}")]
    DiskFull {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("record of {size} bytes exceeds the limit of {max}")]
    RecordTooLarge { size: usize, max: usize },
    #[error("invalid record: {0}")]
    InvalidRecord(#[from] MessageError),
    #[error("corrupt store file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("queue {topic}:{queue_id} already holds a different unit at offset {offset}")]
    QueueOffsetConflict {
        topic: String,
        queue_id: i32,
        offset: i64,
    },
    #[error("queue {topic}:{queue_id}: offset {offset} leaves a gap after {max_offset} too large to fill")]
    QueueGap {
        topic: String,
        queue_id: i32,
        offset: i64,
        max_offset: i64,
    },
    #[error("JSON in {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the flusher has stopped")]
    FlusherStopped,
    #[error("refused: the name {name:?} would place a file outside the store root")]
    OutsideRoot { name: String },
    #[error("the store {root} is in use by another broker ({holder}); lock file {lock}")]
    Locked {
        root: PathBuf,
        lock: PathBuf,
        /// "pid N" when the holder wrote its pid, else a note that it is unknown.
        holder: String,
    },
}

impl StoreError {
    /// Wraps an I/O error, classifying ENOSPC / EDQUOT as [`StoreError::DiskFull`].
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> StoreError {
        let path = path.to_path_buf();
        // 28 = ENOSPC, 122 = EDQUOT (Linux).
        if matches!(source.raw_os_error(), Some(28) | Some(122)) {
            StoreError::DiskFull { op, path, source }
        } else {
            StoreError::Io { op, path, source }
        }
    }

    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
