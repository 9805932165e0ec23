//! The `timerwheel` file: a fixed array of 32-byte slots, one per precision
//! unit of time, in RocketMQ's layout. Owned by `store::timer_store`.
//!
//! A slot records the timer-log units due in its time unit as a list linked
//! backwards through the units' `prevPos` (see `store::timer_log`):
//!
//! | bytes | field                                              |
//! |-------|----------------------------------------------------|
//! | 8     | slot time / precision (RocketMQ stores it divided) |
//! | 8     | timer-log position of the first unit               |
//! | 8     | timer-log position of the last unit                |
//! | 4     | number of units                                    |
//! | 4     | magic (unused, kept)                               |
//!
//! The wheel holds `2 × slots_total` slots (RocketMQ: 7 days × 86 400 slots,
//! whatever the precision), indexed by `time / precision mod (2 × slots_total)`.
//! A slot is valid for a time only when its stored time matches, so stale
//! slots from an earlier lap read as empty. All numbers are big-endian.

use std::path::Path;
use std::sync::Arc;

use super::error::{Result, StoreError};
use super::mapped_file::Segment;

/// Bytes per slot.
pub const SLOT_SIZE: usize = 32;
/// RocketMQ's wheel span in days (`TIMER_WHEEL_TTL_DAY`).
pub const WHEEL_TTL_DAYS: i64 = 7;
/// Slots per lap, independent of the precision (7 days of seconds).
pub const SLOTS_TOTAL: i64 = WHEEL_TTL_DAYS * 86_400;
/// Slots kept free at the end of the span (`TIMER_BLANK_SLOTS`).
pub const BLANK_SLOTS: i64 = 60;

/// One slot as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Start of the slot's time unit, ms; -1 for an empty slot.
    pub time_ms: i64,
    pub first_pos: i64,
    pub last_pos: i64,
    pub num: i32,
    pub magic: i32,
}

impl Slot {
    pub const EMPTY: Slot = Slot {
        time_ms: -1,
        first_pos: -1,
        last_pos: -1,
        num: 0,
        magic: 0,
    };

    pub fn is_empty(&self) -> bool {
        self.time_ms < 0 || self.last_pos < 0
    }

    pub fn encode(&self, precision_ms: i64) -> [u8; SLOT_SIZE] {
        let mut b = [0u8; SLOT_SIZE];
        b[0..8].copy_from_slice(&(self.time_ms / precision_ms).to_be_bytes());
        b[8..16].copy_from_slice(&self.first_pos.to_be_bytes());
        b[16..24].copy_from_slice(&self.last_pos.to_be_bytes());
        b[24..28].copy_from_slice(&self.num.to_be_bytes());
        b[28..32].copy_from_slice(&self.magic.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8; SLOT_SIZE], precision_ms: i64) -> Slot {
        let i64_at = |p: usize| i64::from_be_bytes(b[p..p + 8].try_into().unwrap_or([0; 8]));
        let i32_at = |p: usize| i32::from_be_bytes(b[p..p + 4].try_into().unwrap_or([0; 4]));
        Slot {
            time_ms: i64_at(0).saturating_mul(precision_ms),
            first_pos: i64_at(8),
            last_pos: i64_at(16),
            num: i32_at(24),
            magic: i32_at(28),
        }
    }
}

/// The mapped wheel. One owner reads and writes it (the `Timer` actor);
/// a flush job may msync it concurrently, which never forms a slice.
pub struct TimerWheel {
    seg: Arc<Segment>,
    slots_total: i64,
    precision_ms: i64,
}

impl TimerWheel {
    /// Opens `path`, creating a zeroed (sparse) wheel when it is missing.
    /// An existing file of another length is refused, as RocketMQ does.
    pub fn open(path: &Path, slots_total: i64, precision_ms: i64) -> Result<TimerWheel> {
        let len = (slots_total * 2) as u64 * SLOT_SIZE as u64;
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
            }
            // Sized under a temporary name: a crash here leaves no torn wheel.
            super::mapped_file::create_sized(path, len, false)?;
        }
        let seg = Segment::open(path, 0, len)?;
        Ok(TimerWheel {
            seg: Arc::new(seg),
            slots_total,
            precision_ms: precision_ms.max(1),
        })
    }

    pub fn precision_ms(&self) -> i64 {
        self.precision_ms
    }

    pub fn slots_total(&self) -> i64 {
        self.slots_total
    }

    /// Start of the time unit holding `time_ms`.
    pub fn floor(&self, time_ms: i64) -> i64 {
        time_ms.div_euclid(self.precision_ms) * self.precision_ms
    }

    fn index(&self, time_ms: i64) -> usize {
        time_ms
            .div_euclid(self.precision_ms)
            .rem_euclid(self.slots_total * 2) as usize
    }

    /// The slot stored where `time_ms` maps, whatever time it belongs to.
    pub fn raw_slot(&self, time_ms: i64) -> Slot {
        let pos = self.index(time_ms) * SLOT_SIZE;
        // SAFETY: the wheel's only writer is the caller's owner (this value
        // is not shared for writing); the range is inside the mapping.
        match unsafe { self.seg.slice(pos, SLOT_SIZE) } {
            Some(b) => Slot::decode(b.try_into().unwrap_or(&[0; SLOT_SIZE]), self.precision_ms),
            None => Slot::EMPTY,
        }
    }

    /// The slot of `time_ms`'s time unit, or [`Slot::EMPTY`] when the stored
    /// slot belongs to another lap (or was never written).
    pub fn slot(&self, time_ms: i64) -> Slot {
        let s = self.raw_slot(time_ms);
        if s.time_ms != self.floor(time_ms) || s.last_pos < 0 {
            return Slot::EMPTY;
        }
        s
    }

    /// Writes the slot of `time_ms`'s time unit.
    pub fn put_slot(&self, time_ms: i64, first_pos: i64, last_pos: i64, num: i32, magic: i32) {
        let slot = Slot {
            time_ms: self.floor(time_ms),
            first_pos,
            last_pos,
            num,
            magic,
        };
        let pos = self.index(time_ms) * SLOT_SIZE;
        // SAFETY: single writer (the owner); no slice of this range is alive
        // across this call (slices are decoded and dropped in `raw_slot`).
        unsafe {
            self.seg.write_at(pos, &slot.encode(self.precision_ms));
        }
    }

    /// Units recorded in the slots from `from_ms` on, one full lap
    /// (RocketMQ's `getAllNum`).
    pub fn count_from(&self, from_ms: i64) -> i64 {
        let start = self.floor(from_ms);
        (0..self.slots_total * 2)
            .map(|i| self.slot(start + i * self.precision_ms))
            .filter(|s| !s.is_empty())
            .map(|s| s.num.max(0) as i64)
            .sum()
    }

    /// The mapping, for a background msync.
    pub fn segment(&self) -> Arc<Segment> {
        self.seg.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_codec_matches_rocketmq_layout() {
        let s = Slot {
            time_ms: 1_700_000_123_000,
            first_pos: 52,
            last_pos: 104,
            num: 2,
            magic: 0,
        };
        let b = s.encode(1000);
        assert_eq!(
            i64::from_be_bytes(b[0..8].try_into().unwrap()),
            1_700_000_123
        );
        assert_eq!(i64::from_be_bytes(b[8..16].try_into().unwrap()), 52);
        assert_eq!(i64::from_be_bytes(b[16..24].try_into().unwrap()), 104);
        assert_eq!(i32::from_be_bytes(b[24..28].try_into().unwrap()), 2);
        assert_eq!(Slot::decode(&b, 1000), s);
    }

    #[test]
    fn slots_persist_and_other_laps_read_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("timerwheel");
        let w = TimerWheel::open(&p, 10, 100).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 10 * 2 * 32);
        assert!(w.slot(1_050).is_empty());
        w.put_slot(1_050, 0, 52, 2, 0);
        let s = w.slot(1_099);
        assert_eq!(
            (s.time_ms, s.first_pos, s.last_pos, s.num),
            (1_000, 0, 52, 2)
        );
        // Same index one lap (20 slots x 100 ms) later: not this slot.
        assert!(w.slot(1_050 + 2_000).is_empty());
        assert_eq!(w.raw_slot(1_050 + 2_000).time_ms, 1_000);
        w.put_slot(1_700, 104, 104, 1, 0);
        assert_eq!(w.count_from(1_000), 3);
        assert_eq!(w.count_from(1_100), 1);
        drop(w);
        let w = TimerWheel::open(&p, 10, 100).unwrap();
        assert_eq!(w.slot(1_000).num, 2);
        drop(w);
        assert!(TimerWheel::open(&p, 11, 100).is_err());
    }
}
