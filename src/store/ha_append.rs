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

    /// Cuts the log back to `offset` (a slave dropping a divergent tail,
    /// RocketMQ's `truncateDirtyFiles`): the bytes from `offset` to the old
    /// end are zeroed and msynced, later segments deleted, before this
    /// returns, so the cut survives a crash (recovery stops at the zeros;
    /// apache/rocketmq#10666). Refused below the log's first offset.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        if offset >= self.write_pos {
            return Ok(());
        }
        if offset < self.min_offset() {
            return Err(StoreError::Corrupt {
                path: self.dir.clone(),
                reason: format!(
                    "cannot truncate to {offset}, below the first offset {}",
                    self.min_offset()
                ),
            });
        }
        let old_end = self.write_pos;
        // Readers stop at the new end first.
        self.write_pos = offset;
        self.shared.max_offset.store(offset, Ordering::Release);
        self.shared.flushed.fetch_min(offset, Ordering::AcqRel);
        self.shared.confirm.fetch_min(offset, Ordering::AcqRel);
        let removed: Vec<Arc<super::Segment>> = {
            let mut segs = self
                .shared
                .segments
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let keep = segs
                .iter()
                .position(|s| s.start() > offset)
                .unwrap_or(segs.len())
                .max(1);
            let removed = segs.split_off(keep);
            if let Some(last) = segs.last() {
                self.current = last.clone();
            }
            removed
        };
        for s in &removed {
            s.remove_file()?;
        }
        if let Some(p) = self.next.take() {
            p.discard();
        }
        const CHUNK: usize = 64 * 1024;
        let zeros = [0u8; CHUNK];
        let seg = self.current.clone();
        let from = (offset - seg.start()) as usize;
        let to = ((old_end.min(seg.end())) - seg.start()) as usize;
        let mut pos = from;
        while pos < to {
            let n = CHUNK.min(to - pos);
            // SAFETY: single writer; readers stop below the new end.
            unsafe { seg.write_at(pos, &zeros[..n]) };
            pos += n;
        }
        if to > from {
            seg.flush_range(from, to - from)?;
        }
        self.shared
            .reserved
            .store(offset.max(seg.start()), Ordering::Release);
        if self.preallocate {
            self.reserve_to(offset + super::RESERVE_STEP)?;
        }
        if offset - seg.start() >= seg.size() as i64 / 2 {
            self.prepare_next();
        }
        tracing::warn!(from = old_end, to = offset, "commit log truncated");
        Ok(())
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
    fn truncation_zeroes_the_tail_drops_later_segments_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8 | 1).collect();
        {
            let mut log = recover(&cfg(dir.path())).unwrap().commit_log;
            log.append_replicated(0, &data).unwrap();
            log.truncate_to(70_000).unwrap();
            assert_eq!(log.max_offset(), 70_000);
            assert_eq!(log.reader().max_offset(), 70_000);
            assert!(log.reader().read(69_000, 2000).is_none());
            assert_eq!(log.append_replicated(70_000, b"new").unwrap(), 70_003);
            assert!(log.truncate_to(-1).is_err());
        }
        let segs = std::fs::read_dir(dir.path().join("commitlog"))
            .unwrap()
            .count();
        assert_eq!(segs, 2, "the third segment is gone");
        let f =
            std::fs::read(dir.path().join("commitlog").join(format!("{:020}", 65_536))).unwrap();
        assert_eq!(&f[70_000 - 65_536..70_003 - 65_536], b"new");
        assert!(
            f[70_003 - 65_536..].iter().all(|&b| b == 0),
            "the old tail is zeroed on disk"
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
