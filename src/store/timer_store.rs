//! The timer's persistent state, RocketMQ-style: the `timerwheel` file (see
//! `timer_wheel`), the `timerlog/` segments (see `timer_log`) and
//! `config/timercheck` (see `timer_checkpoint`), all under the store root.
//! No sockets, no actors: the broker's `Timer` actor owns one `TimerStore`,
//! enqueues parked timer messages into it and reads one slot at a time.
//!
//! Placement: a message due at `due`, enqueued at `now`, fires at `due` when
//! that is less than the roll window (`timerRollWindowSlot × precision`)
//! ahead; otherwise it gets a roll entry at the window's end (half the
//! window when the remainder would be short, as RocketMQ does) and is
//! re-parked then. Nothing is placed before `floor`, the first ms the wheel
//! has not handled yet, so late arrivals land in the current slot.
//!
//! Progress: `read_from` (checkpoint `lastReadTimeMs`) is the first ms whose
//! entries are not yet handled — exact, not slot-aligned, so a restart in the
//! middle of a slot resumes after the last entry delivered. The checkpoint is
//! written to the page cache after every step and fsynced by [`FlushJob`]
//! after the wheel and log are msynced.
//!
//! Crash guarantee: this store alone cannot tell whether a delivery stored
//! in the commit log was followed by its checkpoint. The `Timer` actor
//! closes that gap with an intent file beside the checkpoint
//! (`config/timercheck.intent`, see `actors::broker::exact_put`) naming the
//! units of each batch by log position ([`TimerStore::unit_at`]), so a
//! process crash neither loses nor repeats a delivery or a roll re-park.
//! A checkpoint older than the timer-log units it scanned (a crash inside
//! the enqueue step) re-enqueues those messages; power loss may also lose
//! units not yet flushed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{Result, StoreError};
use super::mapped_file::Segment;
use super::timer_checkpoint::{CheckpointFile, TimerCheckpoint};
use super::timer_log::{TimerLog, TimerUnit, MAGIC_DEFAULT, MAGIC_ROLL};
use super::timer_wheel::{TimerWheel, BLANK_SLOTS, SLOTS_TOTAL};

/// Timer settings (RocketMQ `MessageStoreConfig` names in the docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerStoreConfig {
    /// `storePathRootDir`.
    pub root: PathBuf,
    /// `timerPrecisionMs`, snapped down to 100, 200, 500 or 1000.
    pub precision_ms: i64,
    /// `timerRollWindowSlot`; outside 2..=slots−60 it becomes slots−60.
    pub roll_window_slots: i64,
    /// `mappedFileSizeTimerLog`.
    pub log_file_size: i64,
    /// Slots per lap (RocketMQ: 7 × 86 400); smaller only in unit tests.
    pub slots_total: i64,
}

impl TimerStoreConfig {
    pub fn new(
        root: &Path,
        precision_ms: i64,
        roll_window_slots: i64,
        log_file_size: i64,
    ) -> TimerStoreConfig {
        let precision_ms = [1000, 500, 200, 100]
            .into_iter()
            .find(|c| precision_ms >= *c)
            .unwrap_or(100);
        let max_window = SLOTS_TOTAL - BLANK_SLOTS;
        TimerStoreConfig {
            root: root.to_owned(),
            precision_ms,
            roll_window_slots: if (2..=max_window).contains(&roll_window_slots) {
                roll_window_slots
            } else {
                max_window
            },
            log_file_size,
            slots_total: SLOTS_TOTAL,
        }
    }

    pub fn wheel_path(&self) -> PathBuf {
        self.root.join("timerwheel")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join("timerlog")
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.root.join("config").join("timercheck")
    }

    /// The longest time between an entry's enqueue and its firing.
    pub fn max_span_ms(&self) -> i64 {
        (self.roll_window_slots + 1) * self.precision_ms
    }
}

/// Fire time and magic of a message due at `due`, enqueued at `now`, when
/// the wheel has handled everything before `floor`.
pub fn placement(
    due: i64,
    now: i64,
    floor: i64,
    precision_ms: i64,
    window_slots: i64,
) -> (i64, i32) {
    let window = window_slots * precision_ms;
    if due.saturating_sub(now) >= window {
        let beyond = due - now - window;
        let ahead = if beyond < window_slots / 3 * precision_ms {
            // Leave the next lap enough room (RocketMQ).
            window_slots / 2 * precision_ms
        } else {
            window
        };
        return ((now + ahead).max(floor), MAGIC_DEFAULT | MAGIC_ROLL);
    }
    (due.max(floor), MAGIC_DEFAULT)
}

pub struct TimerStore {
    cfg: TimerStoreConfig,
    wheel: TimerWheel,
    log: TimerLog,
    ckpt_file: CheckpointFile,
    ckpt: TimerCheckpoint,
}

impl TimerStore {
    /// Opens (creating) the wheel, log and checkpoint. A read position more
    /// than a lap behind `now` (long downtime) is moved up to the oldest
    /// time the wheel can still tell apart; a fresh store starts at `now`.
    pub fn open(cfg: TimerStoreConfig, now: i64) -> Result<TimerStore> {
        let (ckpt_file, stored) = CheckpointFile::open(&cfg.checkpoint_path())?;
        let mut ckpt = stored.unwrap_or_default();
        let wheel = TimerWheel::open(&cfg.wheel_path(), cfg.slots_total, cfg.precision_ms)?;
        let log = TimerLog::open(
            &cfg.log_dir(),
            cfg.log_file_size,
            ckpt.last_timer_log_flush_pos,
        )?;
        let floor_now = wheel.floor(now);
        if ckpt.last_read_time_ms <= 0 {
            ckpt.last_read_time_ms = floor_now;
        }
        let oldest = floor_now - (cfg.slots_total - BLANK_SLOTS) * cfg.precision_ms;
        if ckpt.last_read_time_ms < oldest {
            tracing::warn!(
                from = ckpt.last_read_time_ms,
                to = oldest,
                "timer read position older than the wheel; skipping ahead"
            );
            ckpt.last_read_time_ms = oldest;
        }
        Ok(TimerStore {
            cfg,
            wheel,
            log,
            ckpt_file,
            ckpt,
        })
    }

    pub fn config(&self) -> &TimerStoreConfig {
        &self.cfg
    }

    pub fn precision_ms(&self) -> i64 {
        self.cfg.precision_ms
    }

    /// Start of the slot holding `ms`.
    pub fn slot_of(&self, ms: i64) -> i64 {
        self.wheel.floor(ms)
    }

    /// First ms whose entries are not handled yet.
    pub fn read_from(&self) -> i64 {
        self.ckpt.last_read_time_ms
    }

    pub fn set_read_from(&mut self, ms: i64) {
        self.ckpt.last_read_time_ms = self.ckpt.last_read_time_ms.max(ms);
    }

    /// Next timer-queue offset to scan.
    pub fn scan_offset(&self) -> i64 {
        self.ckpt.last_timer_queue_offset
    }

    pub fn set_scan_offset(&mut self, offset: i64) {
        self.ckpt.last_timer_queue_offset = offset;
        self.ckpt.master_timer_queue_offset = offset;
    }

    pub fn checkpoint(&self) -> TimerCheckpoint {
        self.ckpt
    }

    /// See [`placement`].
    pub fn placement(&self, due: i64, now: i64, floor: i64) -> (i64, i32) {
        placement(
            due,
            now,
            floor,
            self.cfg.precision_ms,
            self.cfg.roll_window_slots,
        )
    }

    /// Appends a unit firing at `fire` to the log and links it into its
    /// slot. Returns the unit and its position.
    pub fn enqueue(
        &mut self,
        fire: i64,
        magic: i32,
        now: i64,
        phys: i64,
        size: i32,
        topic_hash: i32,
    ) -> Result<(i64, TimerUnit)> {
        let slot = self.wheel.slot(fire);
        let delay = (fire - now).clamp(i32::MIN as i64, i32::MAX as i64);
        let unit = TimerUnit {
            prev_pos: if slot.is_empty() { -1 } else { slot.last_pos },
            magic,
            enqueue_ms: fire - delay,
            delay_ms: delay as i32,
            phys,
            size,
            topic_hash,
        };
        let pos = self.log.append(&unit)?;
        let (first, num) = if slot.is_empty() {
            (pos, 1)
        } else {
            (slot.first_pos, slot.num.saturating_add(1))
        };
        self.wheel.put_slot(fire, first, pos, num, slot.magic);
        Ok((pos, unit))
    }

    /// The units of the slot starting at `slot_ms`, in append order.
    pub fn slot_units(&self, slot_ms: i64) -> Vec<(i64, TimerUnit)> {
        let slot = self.wheel.slot(slot_ms);
        if slot.is_empty() {
            return Vec::new();
        }
        self.log.chain(slot.last_pos)
    }

    /// The unit at timer-log position `pos` (as `slot_units` reports it).
    pub fn unit_at(&self, pos: i64) -> Option<TimerUnit> {
        self.log.read(pos)
    }

    /// Units recorded in the slots from `from_ms` on.
    pub fn count_from(&self, from_ms: i64) -> i64 {
        self.wheel.count_from(from_ms)
    }

    /// Writes the checkpoint to the page cache.
    pub fn save(&self) -> Result<()> {
        self.ckpt_file.write(&self.ckpt)
    }

    /// A job making the wheel, the log up to now, and the checkpoint last
    /// saved durable; run it off the actor thread, then report its result
    /// to [`TimerStore::flushed`].
    pub fn flush_job(&self) -> Result<FlushJob> {
        let from = self.ckpt.last_timer_log_flush_pos;
        let to = self.log.write_pos();
        Ok(FlushJob {
            wheel: self.wheel.segment(),
            log: self
                .log
                .segments()
                .into_iter()
                .filter(|s| s.end() > from && s.start() < to)
                .collect(),
            range: (from, to),
            ckpt: self.ckpt_file.try_clone()?,
            ckpt_path: self.ckpt_file.path().to_owned(),
        })
    }

    /// Records that the log is durable up to `pos` and drops log segments
    /// whose entries have all fired.
    pub fn flushed(&mut self, pos: i64) -> Result<()> {
        self.ckpt.last_timer_log_flush_pos = self.ckpt.last_timer_log_flush_pos.max(pos);
        let removed = self
            .log
            .remove_expired(self.ckpt.last_read_time_ms, self.cfg.max_span_ms());
        if removed > 0 {
            tracing::info!(removed, "removed expired timer-log files");
        }
        self.save()
    }
}

/// msync of the wheel and the log's new range, fsync of the checkpoint.
pub struct FlushJob {
    wheel: Arc<Segment>,
    log: Vec<Arc<Segment>>,
    range: (i64, i64),
    ckpt: File,
    ckpt_path: PathBuf,
}

impl FlushJob {
    /// Runs the flush; returns the log position now durable.
    pub fn run(self) -> Result<i64> {
        self.wheel.flush_range(0, self.wheel.size())?;
        let (from, to) = self.range;
        for s in &self.log {
            let lo = from.max(s.start()) - s.start();
            let hi = to.min(s.end()) - s.start();
            s.flush_range(lo as usize, (hi - lo).max(0) as usize)?;
        }
        self.ckpt
            .sync_data()
            .map_err(|e| StoreError::io("sync", &self.ckpt_path, e))?;
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(root: &Path) -> TimerStoreConfig {
        TimerStoreConfig {
            slots_total: 100,
            ..TimerStoreConfig::new(root, 1000, 10, 52 * 20 + 16)
        }
    }

    #[test]
    fn config_snaps_like_rocketmq() {
        let c = TimerStoreConfig::new(Path::new("/s"), 300, 1, 1);
        assert_eq!(c.precision_ms, 200);
        assert_eq!(c.roll_window_slots, SLOTS_TOTAL - BLANK_SLOTS);
        assert_eq!(
            TimerStoreConfig::new(Path::new("/s"), 5000, 2, 1).precision_ms,
            1000
        );
        assert_eq!(
            TimerStoreConfig::new(Path::new("/s"), 5000, 2, 1).roll_window_slots,
            2
        );
        assert_eq!(c.checkpoint_path(), Path::new("/s/config/timercheck"));
    }

    #[test]
    fn placement_rolls_beyond_the_window() {
        // Within the window: exact due time.
        assert_eq!(
            placement(5_500, 1_000, 1_000, 1000, 10),
            (5_500, MAGIC_DEFAULT)
        );
        // Late: not before what the wheel still handles.
        assert_eq!(placement(500, 1_000, 900, 1000, 10), (900, MAGIC_DEFAULT));
        // Far beyond: roll at the window's end.
        assert_eq!(
            placement(100_000, 1_000, 1_000, 1000, 10),
            (11_000, MAGIC_DEFAULT | MAGIC_ROLL)
        );
        // Just beyond (less than a third of a window left): half a window.
        assert_eq!(
            placement(12_000, 1_000, 1_000, 1000, 10),
            (6_000, MAGIC_DEFAULT | MAGIC_ROLL)
        );
    }

    #[test]
    fn enqueue_links_slots_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_000_000;
        let mut s = TimerStore::open(cfg(dir.path()), now).unwrap();
        assert_eq!(s.read_from(), now);
        // Three in one slot, one in the next; the fourth rolls.
        for (i, due) in [now + 2_300, now + 2_100, now + 2_999, now + 3_000]
            .iter()
            .enumerate()
        {
            let (fire, magic) = s.placement(*due, now, s.read_from());
            s.enqueue(fire, magic, now, i as i64 * 100, 90, 0).unwrap();
        }
        let (fire, magic) = s.placement(now + 60_000, now, now);
        assert_eq!(magic, MAGIC_DEFAULT | MAGIC_ROLL);
        s.enqueue(fire, magic, now, 999, 90, 0).unwrap();
        let slot = s.slot_units(now + 2_000);
        assert_eq!(
            slot.iter().map(|(_, u)| u.fire_ms()).collect::<Vec<_>>(),
            [now + 2_300, now + 2_100, now + 2_999]
        );
        assert_eq!(s.slot_units(now + 3_000).len(), 1);
        let (pos, unit) = s.slot_units(now + 3_000)[0];
        assert_eq!(s.unit_at(pos), Some(unit));
        assert_eq!(s.count_from(now), 5);
        s.set_read_from(now + 2_200);
        s.set_scan_offset(5);
        s.save().unwrap();
        drop(s);
        let mut s = TimerStore::open(cfg(dir.path()), now + 100).unwrap();
        assert_eq!((s.read_from(), s.scan_offset()), (now + 2_200, 5));
        assert_eq!(s.slot_units(now + 2_000).len(), 3);
        // The log's end was recovered: a new unit does not overwrite.
        s.enqueue(now + 3_500, MAGIC_DEFAULT, now, 7, 90, 0)
            .unwrap();
        assert_eq!(s.slot_units(now + 3_000).len(), 2);
        assert_eq!(s.slot_units(now + 2_000).len(), 3);
        let pos = s.flush_job().unwrap().run().unwrap();
        assert_eq!(pos, 6 * 52);
        s.flushed(pos).unwrap();
        assert_eq!(s.checkpoint().last_timer_log_flush_pos, 312);
    }

    #[test]
    fn long_downtime_skips_to_the_oldest_distinguishable_time() {
        let dir = tempfile::tempdir().unwrap();
        let s = TimerStore::open(cfg(dir.path()), 1_000_000).unwrap();
        s.save().unwrap();
        drop(s);
        let later = 1_000_000 + 1_000 * 1_000;
        let s = TimerStore::open(cfg(dir.path()), later).unwrap();
        assert_eq!(s.read_from(), later - (100 - BLANK_SLOTS) * 1000);
    }
}
