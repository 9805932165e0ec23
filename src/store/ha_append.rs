//! Appending replicated bytes at an exact commit-log offset (the slave side
//! of RocketMQ's classic HA: `DefaultMessageStore#appendToCommitLog` →
//! `CommitLog#appendData`).
//!
//! A slave's commit log is a byte copy of its master's: the master sends
//! raw ranges of its log (records, and the blank filler that closes a
//! segment), never crossing a segment end, and the slave writes them at the
//! same offsets. Nothing is re-encoded: PHYSICALOFFSET, QUEUEOFFSET and the
//! store timestamp are the master's. Consume queues and the index are built
//! afterwards from the records (`live_scan`), as recovery does.
//!
//! This is a child module of `commit_log` so it can move the single writer's
//! position; it only adds, it changes nothing of the normal append path.

use super::{CommitLog, Result, StoreError};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl CommitLog {
    /// Writes `data` at `offset`, which must be the log's end; returns the
    /// new end. A range reaching a segment end moves the writer to the next
    /// segment (so a later normal append finds room, as after a `roll`).
    ///
    /// An empty log (nothing ever written) may instead start at a later
    /// segment boundary: a master that begins a new slave at the start of
    /// one of its later segments (Java: the last one) is followed there.
    pub fn append_replicated(&mut self, offset: i64, data: &[u8]) -> Result<i64> {
        if offset != self.write_pos {
            if self.write_pos == 0 && offset > 0 && offset % self.shared.seg_size == 0 {
                self.restart_empty_at(offset)?;
            } else {
                return Err(StoreError::Corrupt {
                    path: self.dir.clone(),
                    reason: format!(
                        "replicated range starts at {offset}, the log ends at {}",
                        self.write_pos
                    ),
                });
            }
        }
        let mut rest = data;
        while !rest.is_empty() {
            if self.write_pos >= self.current.end() {
                self.roll_replicated()?;
            }
            let pos = (self.write_pos - self.current.start()) as usize;
            let n = rest.len().min(self.current.size() - pos);
            // SAFETY: single writer; `pos..pos + n` lies above the published end.
            if !unsafe { self.current.write_at(pos, &rest[..n]) } {
                return Err(StoreError::Corrupt {
                    path: self.current.path().to_owned(),
                    reason: format!("replicated write of {n} bytes at {pos} out of bounds"),
                });
            }
            self.write_pos += n as i64;
            rest = &rest[n..];
        }
        if self.write_pos >= self.current.end() {
            self.roll_replicated()?;
        }
        self.shared
            .max_offset
            .store(self.write_pos, Ordering::Release);
        Ok(self.write_pos)
    }

    /// The next segment, without a filler: the master's filler is part of
    /// the replicated bytes.
    fn roll_replicated(&mut self) -> Result<()> {
        let next = Arc::new(self.take_next()?);
        self.shared
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(next.clone());
        self.current = next;
        self.write_pos = self.current.start();
        self.prepare_next();
        Ok(())
    }

    /// Replaces the (empty) first segment of a never-written log by one
    /// starting at `offset`.
    fn restart_empty_at(&mut self, offset: i64) -> Result<()> {
        let seg = Arc::new(super::Segment::create(
            &self.dir,
            offset,
            self.current.size() as u64,
            self.preallocate,
        )?);
        let old = {
            let mut segs = self
                .shared
                .segments
                .write()
                .unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *segs, vec![seg.clone()])
        };
        if let Some(p) = self.next.take() {
            p.discard();
        }
        for s in old {
            let _ = s.remove_file();
        }
        self.current = seg;
        self.write_pos = offset;
        self.shared.min_offset.store(offset, Ordering::Release);
        self.shared.flushed.store(offset, Ordering::Release);
        self.shared.max_offset.store(offset, Ordering::Release);
        self.prepare_next();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{recover, StoreConfig};

    fn cfg(dir: &std::path::Path) -> StoreConfig {
        StoreConfig {
            root: dir.to_owned(),
            commitlog_file_size: 64 * 1024,
            ..StoreConfig::default()
        }
    }

    #[test]
    fn replicated_bytes_land_at_the_same_offsets_and_cross_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = recover(&cfg(dir.path())).unwrap().commit_log;
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(log.append_replicated(0, &data[..64 * 1024]).unwrap(), 65536);
        assert_eq!(
            log.append_replicated(65536, &data[64 * 1024..]).unwrap(),
            100_000
        );
        let r = log.reader();
        assert_eq!(r.max_offset(), 100_000);
        assert_eq!(&r.read(70_000, 100).unwrap()[..], &data[70_000..70_100]);
        assert!(
            log.append_replicated(5, b"x").is_err(),
            "not at the end: refused"
        );
    }

    #[test]
    fn an_empty_log_follows_a_master_from_a_later_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = recover(&cfg(dir.path())).unwrap().commit_log;
        assert_eq!(log.append_replicated(131_072, b"abcd").unwrap(), 131_076);
        assert_eq!(log.min_offset(), 131_072);
        assert_eq!(&log.reader().read(131_072, 4).unwrap()[..], b"abcd");
    }
}
