//! The `checkpoint` file (4096 bytes, RocketMQ's `StoreCheckpoint`) and the `abort` marker.
//!
//! Bytes 0..40 keep the Java layout. ActorMQ adds, from byte 40: the commit
//! log flushed offset, the "safe" offset below which every record's
//! consume-queue unit is durable, and a marker telling that those two fields
//! were written by ActorMQ (a Java checkpoint has zeros there). From byte 64:
//! the offset below which the message index is durable, and its own marker
//! (written by the broker's `Indexer` with [`store_index_progress`]).

use super::config::StoreConfig;
use super::error::{Result, StoreError};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub const CHECKPOINT_FILE_SIZE: usize = 4096;
const EXT_MARKER: &[u8; 8] = b"AMQCKPT1";
const INDEX_MARKER: &[u8; 8] = b"AMQINDX1";
const INDEX_POS: usize = 64;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub physic_msg_timestamp: i64,
    pub logics_msg_timestamp: i64,
    pub index_msg_timestamp: i64,
    pub master_flushed_offset: i64,
    pub confirm_phy_offset: i64,
    /// Commit log durable up to here (None in a Java-written checkpoint).
    pub commitlog_flushed: Option<i64>,
    /// Every record below has a durable consume-queue unit.
    pub dispatched_flushed: Option<i64>,
    /// Every record below is durably indexed (None: unknown).
    pub index_flushed: Option<i64>,
}

impl Checkpoint {
    pub fn encode(&self) -> [u8; CHECKPOINT_FILE_SIZE] {
        let mut b = [0u8; CHECKPOINT_FILE_SIZE];
        let fields = [
            self.physic_msg_timestamp,
            self.logics_msg_timestamp,
            self.index_msg_timestamp,
            self.master_flushed_offset,
            self.confirm_phy_offset,
        ];
        for (i, v) in fields.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        if let (Some(f), Some(d)) = (self.commitlog_flushed, self.dispatched_flushed) {
            b[40..48].copy_from_slice(&f.to_be_bytes());
            b[48..56].copy_from_slice(&d.to_be_bytes());
            b[56..64].copy_from_slice(EXT_MARKER);
        }
        if let Some(i) = self.index_flushed {
            b[INDEX_POS..INDEX_POS + 8].copy_from_slice(&i.to_be_bytes());
            b[INDEX_POS + 8..INDEX_POS + 16].copy_from_slice(INDEX_MARKER);
        }
        b
    }

    pub fn decode(b: &[u8]) -> Checkpoint {
        let at = |i: usize| -> i64 {
            let mut a = [0u8; 8];
            if let Some(s) = b.get(i..i + 8) {
                a.copy_from_slice(s);
            }
            i64::from_be_bytes(a)
        };
        let ext = b.get(56..64) == Some(&EXT_MARKER[..]);
        let idx = b.get(INDEX_POS + 8..INDEX_POS + 16) == Some(&INDEX_MARKER[..]);
        Checkpoint {
            physic_msg_timestamp: at(0),
            logics_msg_timestamp: at(8),
            index_msg_timestamp: at(16),
            master_flushed_offset: at(24),
            confirm_phy_offset: at(32),
            commitlog_flushed: ext.then(|| at(40)),
            dispatched_flushed: ext.then(|| at(48)),
            index_flushed: idx.then(|| at(INDEX_POS)),
        }
    }

    /// Reads the checkpoint; None when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(Checkpoint::decode(&b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", path, e)),
        }
    }

    /// Overwrites the checkpoint in place and syncs it.
    pub fn store(&self, path: &Path) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::io("open", path, e))?;
        f.write_all_at(&self.encode(), 0)
            .map_err(|e| StoreError::io("write", path, e))?;
        f.sync_data().map_err(|e| StoreError::io("sync", path, e))
    }

    /// Offset from which recovery must scan: the lowest offset not known to be
    /// both flushed and dispatched; None when unknown (scan everything).
    pub fn safe_offset(&self) -> Option<i64> {
        Some(self.commitlog_flushed?.min(self.dispatched_flushed?))
    }
}

/// Records the index progress in place (bytes 64..80 only, so the flusher's
/// fields are not touched) and syncs it. A concurrent full rewrite by the
/// flusher may put back an older value: that only makes recovery re-index
/// more, never less.
pub fn store_index_progress(path: &Path, index_flushed: i64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::io("open", path, e))?;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&index_flushed.to_be_bytes());
    b[8..].copy_from_slice(INDEX_MARKER);
    f.write_all_at(&b, INDEX_POS as u64)
        .map_err(|e| StoreError::io("write", path, e))?;
    f.sync_data().map_err(|e| StoreError::io("sync", path, e))
}

/// True when the previous run shut down cleanly (no `abort` marker left).
pub fn was_clean_shutdown(cfg: &StoreConfig) -> bool {
    !cfg.abort_path().exists()
}

/// Creates the `abort` marker (the store is running).
pub fn create_abort_marker(cfg: &StoreConfig) -> Result<()> {
    let p = cfg.abort_path();
    std::fs::File::create(&p)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("create", &p, e))
}

/// Removes the `abort` marker (clean shutdown).
pub fn remove_abort_marker(cfg: &StoreConfig) -> Result<()> {
    let p = cfg.abort_path();
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", &p, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_java_layout() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint");
        assert_eq!(Checkpoint::load(&p).unwrap(), None);
        let c = Checkpoint {
            physic_msg_timestamp: 1,
            logics_msg_timestamp: 2,
            index_msg_timestamp: 3,
            master_flushed_offset: 4,
            confirm_phy_offset: 5,
            commitlog_flushed: Some(600),
            dispatched_flushed: Some(500),
            index_flushed: None,
        };
        c.store(&p).unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(raw.len(), CHECKPOINT_FILE_SIZE);
        assert_eq!(&raw[8..16], &2i64.to_be_bytes());
        assert_eq!(Checkpoint::load(&p).unwrap(), Some(c));
        assert_eq!(c.safe_offset(), Some(500));
        // A Java checkpoint has no extension fields.
        let java = Checkpoint::decode(&raw[..40]);
        assert_eq!(java.safe_offset(), None);
        assert_eq!(java.confirm_phy_offset, 5);
        assert_eq!(java.index_flushed, None);
        store_index_progress(&p, 321).unwrap();
        let back = Checkpoint::load(&p).unwrap().unwrap();
        assert_eq!(back.index_flushed, Some(321));
        assert_eq!(back.safe_offset(), Some(500));
    }

    #[test]
    fn abort_marker() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::with_root(dir.path());
        assert!(was_clean_shutdown(&cfg));
        create_abort_marker(&cfg).unwrap();
        assert!(!was_clean_shutdown(&cfg));
        remove_abort_marker(&cfg).unwrap();
        remove_abort_marker(&cfg).unwrap();
        assert!(was_clean_shutdown(&cfg));
    }
}
