//! The `timerlog/` directory: append-only mapped segments (named after their
//! 20-digit start offset, like commit-log files) of fixed 52-byte units, one
//! per timer message enqueued into the wheel. Owned by `store::timer_store`.
//!
//! Unit layout (RocketMQ `TimerLog`, big-endian):
//!
//! | bytes | field                                                   |
//! |-------|---------------------------------------------------------|
//! | 4     | unit size (52)                                          |
//! | 8     | position of the previous unit of the same slot, or -1   |
//! | 4     | magic: 1 default, \|2 roll, \|4 delete                   |
//! | 8     | enqueue (write) time, ms                                |
//! | 4     | fire time − enqueue time, ms                            |
//! | 8     | commit-log offset of the parked message                 |
//! | 4     | its size                                                |
//! | 4     | Java hash of its real topic (metrics)                   |
//! | 8     | reserved (0)                                            |
//!
//! A unit never straddles two segments: when the next unit (plus a 16-byte
//! blank marker) does not fit, the rest of the segment is filled with a blank
//! marker (size = bytes left, 8 zero bytes, `BLANK_MAGIC`) and the unit goes
//! to the next segment.
//!
//! Recovery: the write position is found by walking units forward from the
//! last flushed position (the timer checkpoint) until a zeroed or malformed
//! unit; units are written before the wheel links them, so a torn tail is
//! never reachable from a slot.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{Result, StoreError};
use super::mapped_file::{list_segments, Segment};

pub const UNIT_SIZE: usize = 52;
/// Smallest blank marker at the end of a segment.
pub const MIN_BLANK_LEN: usize = 16;
/// Magic of the end-of-segment blank marker (RocketMQ's value).
pub const BLANK_MAGIC: i32 = (0xBBCC_DDEE_u32 as i32) ^ (1_880_681_586 + 8);
pub const MAGIC_DEFAULT: i32 = 1;
pub const MAGIC_ROLL: i32 = 1 << 1;
pub const MAGIC_DELETE: i32 = 1 << 2;

/// One timer-log unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerUnit {
    pub prev_pos: i64,
    pub magic: i32,
    pub enqueue_ms: i64,
    /// Fire time − enqueue time.
    pub delay_ms: i32,
    pub phys: i64,
    pub size: i32,
    pub topic_hash: i32,
}

impl TimerUnit {
    /// When the unit's slot entry fires (the due time, or the roll time).
    pub fn fire_ms(&self) -> i64 {
        self.enqueue_ms + self.delay_ms as i64
    }

    pub fn is_roll(&self) -> bool {
        self.magic & MAGIC_ROLL != 0
    }

    pub fn encode(&self) -> [u8; UNIT_SIZE] {
        let mut b = [0u8; UNIT_SIZE];
        b[0..4].copy_from_slice(&(UNIT_SIZE as i32).to_be_bytes());
        b[4..12].copy_from_slice(&self.prev_pos.to_be_bytes());
        b[12..16].copy_from_slice(&self.magic.to_be_bytes());
        b[16..24].copy_from_slice(&self.enqueue_ms.to_be_bytes());
        b[24..28].copy_from_slice(&self.delay_ms.to_be_bytes());
        b[28..36].copy_from_slice(&self.phys.to_be_bytes());
        b[36..40].copy_from_slice(&self.size.to_be_bytes());
        b[40..44].copy_from_slice(&self.topic_hash.to_be_bytes());
        // 44..52 reserved, zero.
        b
    }

    /// Decodes a unit; None unless it starts with the unit size and carries
    /// a known magic (zeroed space and blank markers are not units).
    pub fn decode(b: &[u8]) -> Option<TimerUnit> {
        if b.len() < UNIT_SIZE {
            return None;
        }
        let i64_at = |p: usize| i64::from_be_bytes(b[p..p + 8].try_into().unwrap_or([0; 8]));
        let i32_at = |p: usize| i32::from_be_bytes(b[p..p + 4].try_into().unwrap_or([0; 4]));
        let magic = i32_at(12);
        if i32_at(0) != UNIT_SIZE as i32 || magic & MAGIC_DEFAULT == 0 || magic & !7 != 0 {
            return None;
        }
        Some(TimerUnit {
            prev_pos: i64_at(4),
            magic,
            enqueue_ms: i64_at(16),
            delay_ms: i32_at(24),
            phys: i64_at(28),
            size: i32_at(36),
            topic_hash: i32_at(40),
        })
    }
}

fn blank_marker(len: usize) -> [u8; MIN_BLANK_LEN] {
    let mut b = [0u8; MIN_BLANK_LEN];
    b[0..4].copy_from_slice(&(len as i32).to_be_bytes());
    b[12..16].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
    b
}

fn is_blank_marker(b: &[u8]) -> bool {
    b.len() >= MIN_BLANK_LEN && b[12..16] == BLANK_MAGIC.to_be_bytes()
}

/// The segments of one timer log. Single owner (the `Timer` actor); flush
/// jobs only msync.
pub struct TimerLog {
    dir: PathBuf,
    file_size: i64,
    segs: Vec<Arc<Segment>>,
    write_pos: i64,
}

impl TimerLog {
    /// Opens the segments in `dir` (all of `file_size` bytes) and finds the
    /// write position, walking forward from `flushed` (a position known to
    /// be complete, e.g. the checkpoint's).
    pub fn open(dir: &Path, file_size: i64, flushed: i64) -> Result<TimerLog> {
        let file_size = file_size.max((UNIT_SIZE + MIN_BLANK_LEN) as i64 * 2);
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
        let mut segs = Vec::new();
        for (start, path) in list_segments(dir)? {
            if start % file_size != 0 {
                return Err(StoreError::Corrupt {
                    path,
                    reason: format!("start {start} is not a multiple of {file_size}"),
                });
            }
            segs.push(Arc::new(Segment::open(&path, start, file_size as u64)?));
        }
        let mut log = TimerLog {
            dir: dir.to_owned(),
            file_size,
            segs,
            write_pos: 0,
        };
        log.write_pos = log.recover_end(flushed);
        Ok(log)
    }

    fn min_pos(&self) -> i64 {
        self.segs.first().map(|s| s.start()).unwrap_or(0)
    }

    fn max_pos(&self) -> i64 {
        self.segs.last().map(|s| s.end()).unwrap_or(0)
    }

    fn recover_end(&self, flushed: i64) -> i64 {
        let (lo, hi) = (self.min_pos(), self.max_pos());
        let mut pos = flushed.clamp(lo, hi);
        // Align to a unit boundary within its segment (a corrupt checkpoint
        // must not make us read mid-unit).
        let in_seg = pos % self.file_size;
        pos -= in_seg % UNIT_SIZE as i64;
        while pos < hi {
            let Some(b) = self.bytes(
                pos,
                UNIT_SIZE.min((self.file_size - pos % self.file_size) as usize),
            ) else {
                break;
            };
            if TimerUnit::decode(b).is_some() {
                pos += UNIT_SIZE as i64;
            } else if is_blank_marker(b) {
                pos = (pos / self.file_size + 1) * self.file_size;
            } else {
                break;
            }
        }
        pos
    }

    fn segment_of(&self, pos: i64) -> Option<&Arc<Segment>> {
        let first = self.segs.first()?.start();
        if pos < first {
            return None;
        }
        self.segs
            .get(((pos - first) / self.file_size) as usize)
            .filter(|s| s.start() <= pos && pos < s.end())
    }

    fn bytes(&self, pos: i64, len: usize) -> Option<&[u8]> {
        let seg = self.segment_of(pos)?;
        // SAFETY: the owner is the only writer and does not write while this
        // borrow of `self` lives.
        unsafe { seg.slice((pos - seg.start()) as usize, len) }
    }

    /// The next append position.
    pub fn write_pos(&self) -> i64 {
        self.write_pos
    }

    /// Appends `unit`, returning its position.
    pub fn append(&mut self, unit: &TimerUnit) -> Result<i64> {
        let in_seg = self.write_pos % self.file_size;
        let left = self.file_size - in_seg;
        if self.write_pos < self.max_pos() && left < (UNIT_SIZE + MIN_BLANK_LEN) as i64 {
            let marker = blank_marker(left as usize);
            if let Some(seg) = self.segment_of(self.write_pos) {
                // SAFETY: single writer; nothing past write_pos is read.
                unsafe {
                    seg.write_at(
                        in_seg as usize,
                        &marker[..(left as usize).min(MIN_BLANK_LEN)],
                    )
                };
            }
            self.write_pos += left;
        }
        if self.write_pos >= self.max_pos() {
            let start = self.write_pos / self.file_size * self.file_size;
            let seg = Segment::create(&self.dir, start, self.file_size as u64, false)?;
            self.segs.push(Arc::new(seg));
            self.write_pos = start;
        }
        let pos = self.write_pos;
        let seg = self.segment_of(pos).ok_or_else(|| StoreError::Corrupt {
            path: self.dir.clone(),
            reason: format!("no segment for position {pos}"),
        })?;
        // SAFETY: single writer; the range lies past every published unit.
        unsafe { seg.write_at((pos - seg.start()) as usize, &unit.encode()) };
        self.write_pos += UNIT_SIZE as i64;
        Ok(pos)
    }

    /// The unit at `pos`, if it is a written unit.
    pub fn read(&self, pos: i64) -> Option<TimerUnit> {
        if pos < 0 || pos + UNIT_SIZE as i64 > self.write_pos {
            return None;
        }
        self.bytes(pos, UNIT_SIZE).and_then(TimerUnit::decode)
    }

    /// Walks a slot's list back from `last_pos`; returns `(pos, unit)` in
    /// append order. A broken link (removed segment, torn write, a link that
    /// does not point backwards) ends the walk.
    pub fn chain(&self, last_pos: i64) -> Vec<(i64, TimerUnit)> {
        let mut out = Vec::new();
        let mut pos = last_pos;
        while pos >= 0 {
            let Some(u) = self.read(pos) else {
                tracing::warn!(pos, "timer log: broken slot list");
                break;
            };
            out.push((pos, u));
            if u.prev_pos >= pos {
                break;
            }
            pos = u.prev_pos;
        }
        out.reverse();
        out
    }

    /// Segments and byte ranges written, for a background msync.
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.segs.clone()
    }

    /// Removes whole segments whose units all fired before `read_ms`; a
    /// unit fires at most `max_span_ms` after its enqueue time. The segment
    /// being written is kept.
    pub fn remove_expired(&mut self, read_ms: i64, max_span_ms: i64) -> usize {
        let mut removed = 0;
        while self.segs.len() > 1 {
            let seg = &self.segs[0];
            let last_unit = self.last_unit_in(seg);
            let expired = match last_unit {
                Some(u) => u.enqueue_ms.saturating_add(max_span_ms) < read_ms,
                None => true,
            };
            if !expired {
                break;
            }
            if let Err(e) = seg.remove_file() {
                tracing::warn!(error = %e, "cannot remove an expired timer-log file");
                break;
            }
            self.segs.remove(0);
            removed += 1;
        }
        removed
    }

    fn last_unit_in(&self, seg: &Segment) -> Option<TimerUnit> {
        let units = (self.file_size - MIN_BLANK_LEN as i64) / UNIT_SIZE as i64;
        (0..units)
            .rev()
            .map(|i| seg.start() + i * UNIT_SIZE as i64)
            .find_map(|p| self.read(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(prev: i64, phys: i64) -> TimerUnit {
        TimerUnit {
            prev_pos: prev,
            magic: MAGIC_DEFAULT,
            enqueue_ms: 1_000,
            delay_ms: 2_500,
            phys,
            size: 100,
            topic_hash: 7,
        }
    }

    #[test]
    fn unit_codec_matches_rocketmq_layout() {
        let u = TimerUnit {
            magic: MAGIC_DEFAULT | MAGIC_ROLL,
            ..unit(-1, 4096)
        };
        let b = u.encode();
        assert_eq!(i32::from_be_bytes(b[0..4].try_into().unwrap()), 52);
        assert_eq!(i64::from_be_bytes(b[4..12].try_into().unwrap()), -1);
        assert_eq!(i32::from_be_bytes(b[12..16].try_into().unwrap()), 3);
        // RocketMQ reads offsetPy at UNIT_PRE_SIZE_FOR_MSG = 28.
        assert_eq!(i64::from_be_bytes(b[28..36].try_into().unwrap()), 4096);
        let d = TimerUnit::decode(&b).unwrap();
        assert_eq!(d, u);
        assert_eq!(d.fire_ms(), 3_500);
        assert!(d.is_roll());
        assert_eq!(TimerUnit::decode(&[0u8; UNIT_SIZE]), None);
        assert_eq!(BLANK_MAGIC, -875_286_124);
    }

    #[test]
    fn appends_roll_segments_and_recover() {
        let dir = tempfile::tempdir().unwrap();
        // Room for 3 units + blank per segment: 3*52 + 16 + 4 spare.
        let size = 3 * 52 + 20;
        let mut log = TimerLog::open(dir.path(), size, 0).unwrap();
        let mut last = -1;
        let mut positions = Vec::new();
        for i in 0..7 {
            last = log.append(&unit(last, i * 100)).unwrap();
            positions.push(last);
        }
        assert_eq!(positions, [0, 52, 104, 176, 228, 280, 352]);
        let chain = log.chain(last);
        assert_eq!(chain.len(), 7);
        assert_eq!(
            chain.iter().map(|(_, u)| u.phys).collect::<Vec<_>>(),
            [0, 100, 200, 300, 400, 500, 600]
        );
        let end = log.write_pos();
        drop(log);
        // Recovery from an old flush position finds the same end.
        let log = TimerLog::open(dir.path(), size, 52).unwrap();
        assert_eq!(log.write_pos(), end);
        assert_eq!(log.chain(last).len(), 7);
        let mut log = TimerLog::open(dir.path(), size, 0).unwrap();
        // Everything enqueued at 1000 fires by 3500: the full segments go.
        assert_eq!(log.remove_expired(3_000, 2_500), 0);
        assert_eq!(log.remove_expired(10_000, 2_500), 2);
        assert_eq!(log.read(0), None);
        assert!(log.read(352).is_some());
        // The broken link ends the walk instead of failing.
        assert_eq!(log.chain(last).len(), 1);
    }
}
