//! `config/timercheck`: the timer's progress, in RocketMQ's layout (a
//! 4 KiB file whose first 56 bytes are seven big-endian longs):
//! last read time (the first ms of the wheel not yet handled), last flushed
//! timer-log position, last timer-queue offset scanned, the master's timer
//! queue offset (a standalone broker keeps it equal), and a data version
//! (state version, timestamp, counter). Owned by `store::timer_store`.
//!
//! Writes go to the page cache after every step (cheap, survive a process
//! crash); `sync` makes them durable.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{Result, StoreError};

pub const CHECKPOINT_LEN: usize = 56;
const FILE_LEN: u64 = 4096;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerCheckpoint {
    pub last_read_time_ms: i64,
    pub last_timer_log_flush_pos: i64,
    pub last_timer_queue_offset: i64,
    pub master_timer_queue_offset: i64,
    pub state_version: i64,
    pub timestamp: i64,
    pub counter: i64,
}

impl TimerCheckpoint {
    pub fn encode(&self) -> [u8; CHECKPOINT_LEN] {
        let mut b = [0u8; CHECKPOINT_LEN];
        let fields = [
            self.last_read_time_ms,
            self.last_timer_log_flush_pos,
            self.last_timer_queue_offset,
            self.master_timer_queue_offset,
            self.state_version,
            self.timestamp,
            self.counter,
        ];
        for (i, v) in fields.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        b
    }

    pub fn decode(b: &[u8]) -> TimerCheckpoint {
        let at = |i: usize| {
            b.get(i * 8..i * 8 + 8)
                .and_then(|s| s.try_into().ok())
                .map(i64::from_be_bytes)
                .unwrap_or(0)
        };
        TimerCheckpoint {
            last_read_time_ms: at(0),
            last_timer_log_flush_pos: at(1),
            last_timer_queue_offset: at(2),
            master_timer_queue_offset: at(3),
            state_version: at(4),
            timestamp: at(5),
            counter: at(6),
        }
    }
}

/// The open checkpoint file.
pub struct CheckpointFile {
    path: PathBuf,
    file: File,
}

impl CheckpointFile {
    /// Opens (creating) the file; returns the stored checkpoint if the file
    /// existed.
    pub fn open(path: &Path) -> Result<(CheckpointFile, Option<TimerCheckpoint>)> {
        let existed = path.exists();
        let file = super::mapped_file::open_or_create(path)?;
        let mut stored = None;
        if existed {
            let mut b = [0u8; CHECKPOINT_LEN];
            let n = file
                .read_at(&mut b, 0)
                .map_err(|e| StoreError::io("read", path, e))?;
            if n > 0 {
                stored = Some(TimerCheckpoint::decode(&b[..n]));
            }
        }
        let len = file
            .metadata()
            .map_err(|e| StoreError::io("stat", path, e))?
            .len();
        if len < FILE_LEN {
            file.set_len(FILE_LEN)
                .map_err(|e| StoreError::io("extend", path, e))?;
        }
        Ok((
            CheckpointFile {
                path: path.to_owned(),
                file,
            },
            stored,
        ))
    }

    /// Writes the checkpoint (page cache only).
    pub fn write(&self, c: &TimerCheckpoint) -> Result<()> {
        self.file
            .write_all_at(&c.encode(), 0)
            .map_err(|e| StoreError::io("write", &self.path, e))
    }

    /// A handle for a background fsync.
    pub fn try_clone(&self) -> Result<File> {
        self.file
            .try_clone()
            .map_err(|e| StoreError::io("dup", &self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_rocketmq_layout() {
        let c = TimerCheckpoint {
            last_read_time_ms: 1_700_000_000_000,
            last_timer_log_flush_pos: 520,
            last_timer_queue_offset: 10,
            master_timer_queue_offset: 10,
            state_version: 0,
            timestamp: 5,
            counter: 3,
        };
        let b = c.encode();
        assert_eq!(i64::from_be_bytes(b[16..24].try_into().unwrap()), 10);
        assert_eq!(TimerCheckpoint::decode(&b), c);
        // An older, shorter checkpoint (no data version) still reads.
        assert_eq!(TimerCheckpoint::decode(&b[..32]).counter, 0);

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config/timercheck");
        let (f, none) = CheckpointFile::open(&p).unwrap();
        assert!(none.is_none());
        f.write(&c).unwrap();
        drop(f);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 4096);
        let (_, got) = CheckpointFile::open(&p).unwrap();
        assert_eq!(got, Some(c));
    }
}
