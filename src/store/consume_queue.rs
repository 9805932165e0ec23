//! A consume queue: the per-(topic, queue id) index of 20-byte units
//! `(phys_offset i64, size i32, tags_code i64)` (RocketMQ's `ConsumeQueue`, `CQ_STORE_UNIT_SIZE`), stored in
//! mapped segments under `consumequeue/<topic>/<qid>/`.
//!
//! Owned and mutated by one Queue actor. The [`Flusher`](super::Flusher) only
//! msyncs it, through the [`CqFlushHandle`] registered with it.
//!
//! Segments are sparse (no blocks reserved: a queue's units take 20 bytes
//! each, a 6 MB file would otherwise be reserved per queue before its first
//! message). The next segment is prepared in the background once the
//! current one is half full (`store::prepare`); the owner asks
//! [`ConsumeQueue::segment_pending`] before a `put` so that it can wait for
//! a segment outside its thread instead of creating it there.

use super::commit_log::CommitLogReader;
use super::config::StoreConfig;
use super::error::{Result, StoreError};
use super::mapped_file::{list_segments, Segment};
use super::prepare::{self, Prepared};
use crate::wire::message;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

pub const CQ_UNIT_SIZE: usize = 20;
/// Size field of a gap filler unit.
pub const FILLER_SIZE: i32 = i32::MAX;

/// One consume-queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqUnit {
    pub phys_offset: i64,
    pub size: i32,
    pub tags_code: i64,
}

impl CqUnit {
    pub const FILLER: CqUnit = CqUnit {
        phys_offset: 0,
        size: FILLER_SIZE,
        tags_code: 0,
    };

    pub fn is_filler(&self) -> bool {
        self.size == FILLER_SIZE && self.phys_offset == 0
    }

    fn encode(&self) -> [u8; CQ_UNIT_SIZE] {
        let mut b = [0u8; CQ_UNIT_SIZE];
        b[..8].copy_from_slice(&self.phys_offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<CqUnit> {
        let b: &[u8; CQ_UNIT_SIZE] = b.try_into().ok()?;
        let mut p = [0u8; 8];
        p.copy_from_slice(&b[..8]);
        let mut s = [0u8; 4];
        s.copy_from_slice(&b[8..12]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[12..]);
        Some(CqUnit {
            phys_offset: i64::from_be_bytes(p),
            size: i32::from_be_bytes(s),
            tags_code: i64::from_be_bytes(t),
        })
    }

    /// Units written by a live store have a positive size.
    fn is_written(&self) -> bool {
        self.phys_offset >= 0 && self.size > 0
    }
}

/// Which end of a run of equal timestamps a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// The first offset whose store time is >= the timestamp.
    Lower,
    /// The last offset whose store time is <= the timestamp.
    Upper,
}

/// What the flusher needs of a queue: its segments and dirty range.
#[derive(Debug)]
pub struct CqFlushState {
    segments: Mutex<Vec<Arc<Segment>>>,
    /// Byte offset (global within the queue) written up to.
    written: AtomicI64,
    flushed: AtomicI64,
}

/// Handle given to the flusher.
pub type CqFlushHandle = Arc<CqFlushState>;

impl CqFlushState {
    /// msyncs everything written since the last flush.
    pub fn flush(&self) -> Result<()> {
        let target = self.written.load(Ordering::Acquire);
        let from = self.flushed.load(Ordering::Acquire);
        if target <= from {
            return Ok(());
        }
        let segs = self
            .segments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for s in segs.iter().filter(|s| s.end() > from && s.start() < target) {
            let a = from.max(s.start());
            let b = target.min(s.end());
            s.flush_range((a - s.start()) as usize, (b - a) as usize)?;
        }
        self.flushed.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }
}

pub struct ConsumeQueue {
    topic: String,
    queue_id: i32,
    dir: PathBuf,
    file_size: i64,
    segments: Vec<Arc<Segment>>,
    /// The next segment, being prepared in the background.
    next: Option<Prepared>,
    flush: Arc<CqFlushState>,
    min_offset: i64,
    max_offset: i64,
}

impl std::fmt::Debug for ConsumeQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeQueue")
            .field("topic", &self.topic)
            .field("queue_id", &self.queue_id)
            .field("min_offset", &self.min_offset)
            .field("max_offset", &self.max_offset)
            .finish()
    }
}

impl ConsumeQueue {
    /// Opens (or prepares, creating no file yet) the queue's segments.
    pub fn open(cfg: &StoreConfig, topic: &str, queue_id: i32) -> Result<ConsumeQueue> {
        let dir = cfg.queue_dir(topic, queue_id)?;
        let file_size = cfg.cq_file_size();
        let mut segments = Vec::new();
        for (start, path) in list_segments(&dir)? {
            if start % file_size as i64 != 0
                || segments
                    .last()
                    .is_some_and(|s: &Arc<Segment>| s.end() != start)
            {
                return Err(StoreError::Corrupt {
                    path,
                    reason: "consume queue segment out of sequence".into(),
                });
            }
            let seg = Segment::open(&path, start, file_size)?;
            seg.advise_random();
            segments.push(Arc::new(seg));
        }
        let mut cq = ConsumeQueue {
            topic: topic.to_owned(),
            queue_id,
            dir,
            file_size: file_size as i64,
            next: None,
            flush: Arc::new(CqFlushState {
                segments: Mutex::new(segments.clone()),
                written: AtomicI64::new(0),
                flushed: AtomicI64::new(0),
            }),
            segments,
            min_offset: 0,
            max_offset: 0,
        };
        cq.load_bounds();
        Ok(cq)
    }

    /// Finds the end (first unwritten unit of the last segment) and the first
    /// real unit.
    fn load_bounds(&mut self) {
        let Some(first) = self.segments.first().map(|s| s.start()) else {
            return;
        };
        let per_file = self.file_size / CQ_UNIT_SIZE as i64;
        let mut max = first / CQ_UNIT_SIZE as i64;
        if let Some(last) = self.segments.last() {
            let base = last.start() / CQ_UNIT_SIZE as i64;
            // Units are written in order: binary search the first unwritten one.
            let (mut lo, mut hi) = (0i64, per_file);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if self.unit_at(base + mid).is_some_and(|u| u.is_written()) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            max = base + lo;
        }
        self.max_offset = max;
        let mut min = first / CQ_UNIT_SIZE as i64;
        while min < max && self.unit_at(min).is_some_and(|u| u.is_filler()) {
            min += 1;
        }
        self.min_offset = min;
        let end = max * CQ_UNIT_SIZE as i64;
        self.flush.written.store(end, Ordering::Release);
        self.flush.flushed.store(end, Ordering::Release);
    }

    fn unit_at(&self, offset: i64) -> Option<CqUnit> {
        let byte = offset.checked_mul(CQ_UNIT_SIZE as i64)?;
        let first = self.segments.first()?.start();
        if byte < first {
            return None;
        }
        let seg = self
            .segments
            .get(((byte - first) / self.file_size) as usize)?;
        let pos = (byte - seg.start()) as usize;
        // SAFETY: only this queue (its owner) writes units, and not concurrently
        // with this &self borrow.
        CqUnit::decode(unsafe { seg.slice(pos, CQ_UNIT_SIZE) }?)
    }

    fn write_unit(&mut self, offset: i64, unit: &CqUnit) -> Result<()> {
        let byte = offset * CQ_UNIT_SIZE as i64;
        let seg_start = byte - byte.rem_euclid(self.file_size);
        if self.segments.last().is_none_or(|s| s.end() <= byte) {
            let size = self.file_size as u64;
            let seg = prepare::take_or_create(self.next.take(), &self.dir, seg_start, size, 0)?;
            seg.advise_random();
            let seg = Arc::new(seg);
            self.segments.push(seg.clone());
            self.flush
                .segments
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(seg);
        }
        let first = self.segments.first().map_or(0, |s| s.start());
        let idx = ((byte - first) / self.file_size) as usize;
        let Some(seg) = self.segments.get(idx) else {
            return Err(StoreError::Corrupt {
                path: self.dir.clone(),
                reason: format!("no segment for unit {offset}"),
            });
        };
        // SAFETY: the owner is the only writer; readers of units are the owner.
        unsafe { seg.write_at((byte - seg.start()) as usize, &unit.encode()) };
        Ok(())
    }

    /// Writes the unit for `queue_offset`. Re-putting an identical unit is a
    /// no-op; a gap after the current end is filled with filler units (at most
    /// one segment's worth; a fresh queue simply starts at `queue_offset`).
    pub fn put(
        &mut self,
        queue_offset: i64,
        phys_offset: i64,
        size: i32,
        tags_code: i64,
    ) -> Result<()> {
        let unit = CqUnit {
            phys_offset,
            size,
            tags_code,
        };
        if queue_offset < self.max_offset {
            match self.unit_at(queue_offset) {
                Some(u) if u == unit && queue_offset >= self.min_offset => return Ok(()),
                // A gap filler may be replaced by the real unit.
                Some(u) if u.is_filler() => {
                    self.write_unit(queue_offset, &unit)?;
                    self.min_offset = self.min_offset.min(queue_offset);
                    return Ok(());
                }
                _ => {}
            }
            return Err(StoreError::QueueOffsetConflict {
                topic: self.topic.clone(),
                queue_id: self.queue_id,
                offset: queue_offset,
            });
        }
        let per_file = self.file_size / CQ_UNIT_SIZE as i64;
        if self.segments.is_empty() {
            // Fresh queue: start at the segment holding queue_offset, filling
            // the units before it inside that segment.
            let seg_first = queue_offset - queue_offset.rem_euclid(per_file);
            self.max_offset = seg_first;
            self.min_offset = queue_offset;
            self.flush
                .written
                .store(seg_first * CQ_UNIT_SIZE as i64, Ordering::Release);
            self.flush
                .flushed
                .store(seg_first * CQ_UNIT_SIZE as i64, Ordering::Release);
        } else if queue_offset - self.max_offset > per_file {
            return Err(StoreError::QueueGap {
                topic: self.topic.clone(),
                queue_id: self.queue_id,
                offset: queue_offset,
                max_offset: self.max_offset,
            });
        }
        while self.max_offset < queue_offset {
            self.write_unit(self.max_offset, &CqUnit::FILLER)?;
            self.max_offset += 1;
        }
        self.write_unit(queue_offset, &unit)?;
        self.max_offset = queue_offset + 1;
        self.flush
            .written
            .store(self.max_offset * CQ_UNIT_SIZE as i64, Ordering::Release);
        if let Some(last) = self.segments.last() {
            let used = self.max_offset * CQ_UNIT_SIZE as i64 - last.start();
            if used >= self.file_size / 2 && self.next.is_none() {
                self.prepare(last.end());
            }
        }
        Ok(())
    }

    /// Starts preparing the segment that starts at byte `start`.
    fn prepare(&mut self, start: i64) {
        if self.next.as_ref().is_some_and(|p| p.start() == start) {
            return;
        }
        if let Some(old) = self.next.take() {
            prepare::discard_later(old);
        }
        let size = self.file_size as u64;
        self.next = Some(Prepared::spawn(self.dir.clone(), start, size, 0));
    }

    /// When `put(queue_offset, ..)` would need a segment that is still being
    /// prepared: a future that resolves once it is ready (the preparation
    /// is started here if needed). `put` itself would wait on the thread.
    pub fn segment_pending(
        &mut self,
        queue_offset: i64,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        if queue_offset < self.max_offset {
            return None;
        }
        let unit = CQ_UNIT_SIZE as i64;
        // The first byte `put` writes that no segment holds yet.
        let missing = match self.segments.last() {
            None => queue_offset * unit,
            Some(last) if last.end() > queue_offset * unit => return None,
            Some(last) => last.end().max(self.max_offset * unit),
        };
        self.prepare(missing - missing.rem_euclid(self.file_size));
        let next = self.next.as_ref()?;
        (!next.is_ready()).then(|| next.ready())
    }

    /// The unit at `queue_offset` (fillers included), if inside the queue.
    pub fn get(&self, queue_offset: i64) -> Option<CqUnit> {
        if queue_offset < self.min_offset || queue_offset >= self.max_offset {
            return None;
        }
        self.unit_at(queue_offset)
    }

    /// Up to `max` units from `queue_offset` as `(offset, unit)`, fillers skipped.
    pub fn iter_from(
        &self,
        queue_offset: i64,
        max: usize,
    ) -> impl Iterator<Item = (i64, CqUnit)> + '_ {
        let start = queue_offset.max(self.min_offset);
        let end = self.max_offset.min(start.saturating_add(max as i64));
        (start..end).filter_map(move |o| self.unit_at(o).filter(|u| !u.is_filler()).map(|u| (o, u)))
    }

    /// Up to `max` units from `queue_offset`.
    pub fn read_units(&self, queue_offset: i64, max: usize) -> Vec<CqUnit> {
        self.iter_from(queue_offset, max).map(|(_, u)| u).collect()
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
    pub fn queue_id(&self) -> i32 {
        self.queue_id
    }
    pub fn min_offset(&self) -> i64 {
        self.min_offset
    }
    /// Number of entries, i.e. the next queue offset.
    pub fn max_offset(&self) -> i64 {
        self.max_offset
    }
    /// The handle the flusher uses to msync this queue.
    pub fn flush_handle(&self) -> CqFlushHandle {
        self.flush.clone()
    }
    /// msyncs this queue now.
    pub fn flush(&self) -> Result<()> {
        self.flush.flush()
    }

    /// The queue offset from which units point past the commit-log offset
    /// `phys_end` (the queue's end when none does): every unit below it
    /// ends at or before `phys_end`. Units are in commit-log order, so a
    /// binary search; a filler counts as the next real unit after it.
    pub fn offset_within(&self, phys_end: i64) -> i64 {
        let past = |o: i64| {
            (o..self.max_offset)
                .find_map(|x| self.unit_at(x).filter(|u| !u.is_filler()))
                .is_some_and(|u| u.phys_offset + u.size as i64 > phys_end)
        };
        let (mut lo, mut hi) = (self.min_offset, self.max_offset);
        if lo >= hi || !past(hi - 1) {
            return hi;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if past(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// The last unit (not a filler), if any.
    pub fn last_unit(&self) -> Option<CqUnit> {
        (self.min_offset..self.max_offset)
            .rev()
            .filter_map(|o| self.unit_at(o))
            .find(|u| !u.is_filler())
    }

    /// Binary search by store time read from the commit log. Units whose
    /// record is no longer readable count as older than any timestamp.
    pub fn search_offset_by_timestamp(
        &self,
        ts: i64,
        boundary: Boundary,
        log: &CommitLogReader,
    ) -> i64 {
        let time_of = |o: i64| -> Option<i64> {
            let u = self.unit_at(o).filter(|u| !u.is_filler())?;
            let rec = log.read(u.phys_offset, u.size)?;
            message::peek_store_timestamp(&rec).ok()
        };
        match boundary {
            Boundary::Lower => {
                let (mut lo, mut hi) = (self.min_offset, self.max_offset);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if time_of(mid).is_none_or(|t| t < ts) {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            }
            Boundary::Upper => {
                let (mut lo, mut hi) = (self.min_offset, self.max_offset);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if time_of(mid).is_none_or(|t| t <= ts) {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                (lo - 1).max(self.min_offset)
            }
        }
    }

    /// Drops every unit whose record does not end at or before `phys_end`
    /// (zeroing them and deleting emptied segments).
    pub fn truncate_from_phys(&mut self, phys_end: i64) -> Result<()> {
        let beyond = |u: CqUnit| !u.is_filler() && u.phys_offset + u.size as i64 > phys_end;
        let (mut lo, mut hi) = (self.min_offset, self.max_offset);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.unit_at(mid).is_some_and(beyond) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        // Fillers are only ever written before a real unit: drop trailing ones.
        while lo > self.min_offset && self.unit_at(lo - 1).is_some_and(|u| u.is_filler()) {
            lo -= 1;
        }
        self.truncate_to(lo)
    }

    /// Keeps units below `new_max` only.
    fn truncate_to(&mut self, new_max: i64) -> Result<()> {
        if new_max >= self.max_offset {
            return Ok(());
        }
        let zero = [0u8; CQ_UNIT_SIZE];
        for o in new_max..self.max_offset {
            let byte = o * CQ_UNIT_SIZE as i64;
            if let Some(seg) = self
                .segments
                .iter()
                .find(|s| s.start() <= byte && byte < s.end())
            {
                // SAFETY: owner-only writes.
                unsafe { seg.write_at((byte - seg.start()) as usize, &zero) };
            }
        }
        let keep_end = new_max * CQ_UNIT_SIZE as i64;
        while self.segments.len() > 1 && self.segments.last().is_some_and(|s| s.start() > keep_end)
        {
            if let Some(s) = self.segments.pop() {
                s.remove_file()?;
            }
        }
        *self
            .flush
            .segments
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = self.segments.clone();
        self.max_offset = new_max;
        self.min_offset = self.min_offset.min(new_max);
        self.flush.written.store(keep_end, Ordering::Release);
        self.flush.flushed.fetch_min(keep_end, Ordering::AcqRel);
        for s in &self.segments {
            s.flush_range(0, s.size())?;
        }
        Ok(())
    }

    /// Removes all of this queue's files (topic deletion).
    pub fn delete_files(&mut self) -> Result<()> {
        if let Some(p) = self.next.take() {
            p.discard();
        }
        for s in self.segments.drain(..) {
            s.remove_file()?;
        }
        self.flush
            .segments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.flush.written.store(0, Ordering::Release);
        self.flush.flushed.store(0, Ordering::Release);
        self.min_offset = 0;
        self.max_offset = 0;
        let _ = std::fs::remove_dir(&self.dir);
        Ok(())
    }

    /// Deletes leading segments whose units all point below `min_phys` (the
    /// commit log's min offset after expiry) and advances `min_offset`.
    pub fn delete_before_phys(&mut self, min_phys: i64) -> Result<usize> {
        let per_file = self.file_size / CQ_UNIT_SIZE as i64;
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let last_unit = self.segments[0].start() / CQ_UNIT_SIZE as i64 + per_file - 1;
            match self.unit_at(last_unit) {
                Some(u) if u.is_filler() || u.phys_offset + u.size as i64 <= min_phys => {
                    let s = self.segments.remove(0);
                    s.remove_file()?;
                    deleted += 1;
                }
                _ => break,
            }
        }
        if deleted > 0 {
            *self
                .flush
                .segments
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = self.segments.clone();
        }
        let first = self
            .segments
            .first()
            .map_or(self.max_offset, |s| s.start() / CQ_UNIT_SIZE as i64);
        let mut min = self.min_offset.max(first);
        while min < self.max_offset
            && self
                .unit_at(min)
                .is_some_and(|u| u.is_filler() || u.phys_offset < min_phys)
        {
            min += 1;
        }
        self.min_offset = min;
        Ok(deleted)
    }
}

#[cfg(test)]
#[path = "consume_queue_tests.rs"]
mod tests;
