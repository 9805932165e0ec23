//! The commit log: one append-only stream of encoded records split into
//! fixed-size mapped segments (RocketMQ's `CommitLog` over a `MappedFileQueue`).
//!
//! [`CommitLog`] is the single writer (owned by one actor). It copies each
//! record into the current segment, patches PHYSICALOFFSET, and publishes the
//! new end with a Release store. [`CommitLogReader`] (cheap to clone, shared by
//! any thread) hands out zero-copy `Bytes` below the published end only; the
//! segment list behind an `RwLock` is write-locked only on a segment switch.
//!
//! Disk is reserved as the log grows, not up front (RocketMQ reserves whole
//! `MappedFile`s through `AllocateMappedFileService`): a segment is created
//! sparse with its first [`RESERVE_STEP`] reserved, the `commitlog-prefault`
//! thread keeps blocks reserved ahead of the writer, and the writer reserves
//! a step itself when it catches up. The next segment is prepared in the
//! background once the current one is half full (`store::prepare`); a `Put`
//! that would roll before it is ready waits for it outside the writer's
//! thread ([`CommitLog::roll_pending`]).

use super::config::StoreConfig;
use super::error::{Result, StoreError};
use super::mapped_file::{Segment, SegmentSlice};
use super::prepare::{self, Prepared};
use crate::wire::message::{self, BLANK_LEN, BLANK_MAGIC, PHYS_OFFSET_POS};
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// State shared by the writer, readers and the flusher.
#[derive(Debug)]
pub(crate) struct LogShared {
    pub(crate) segments: RwLock<Vec<Arc<Segment>>>,
    /// Published end of valid data (next write position).
    pub(crate) max_offset: AtomicI64,
    pub(crate) min_offset: AtomicI64,
    /// Everything below is durable.
    pub(crate) flushed: AtomicI64,
    /// STORETIMESTAMP of the last appended record (for the checkpoint).
    pub(crate) last_store_timestamp: AtomicI64,
    pub(crate) seg_size: i64,
    /// Blocks of the current segment are reserved below this offset (when
    /// the store preallocates).
    pub(crate) reserved: AtomicI64,
    /// controller mode: readers see records below this only (RocketMQ's
    /// `confirmOffset`); `i64::MAX` (the default) hides nothing.
    pub(crate) confirm: AtomicI64,
    /// Readers waiting for the confirm offset to reach a record's end.
    pub(crate) confirm_waiters: super::confirm_wait::ConfirmWaiters,
}

impl LogShared {
    pub(crate) fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn segment_for(&self, offset: i64) -> Option<Arc<Segment>> {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        let first = segs.first()?.start();
        if offset < first {
            return None;
        }
        segs.get(((offset - first) / self.seg_size) as usize)
            .cloned()
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub phys_offset: i64,
    pub size: i32,
    /// `phys_offset + size`: pass to `Flusher::flush_waiter`.
    pub end_offset: i64,
}

/// The single writer of the commit log.
pub struct CommitLog {
    dir: PathBuf,
    shared: Arc<LogShared>,
    current: Arc<Segment>,
    /// Next write position (global), == published max offset between calls.
    write_pos: i64,
    next: Option<Prepared>,
    max_record: usize,
    preallocate: bool,
}

impl CommitLog {
    /// Opens the commit log, validating the tail (see `recovery`); consume
    /// queues are not touched. Use [`super::recover`] to open everything.
    pub fn open(cfg: &StoreConfig) -> Result<CommitLog> {
        super::recovery::open_commit_log(cfg)
    }

    /// Builds the writer over already validated segments with data up to `end`.
    pub(crate) fn from_parts(
        cfg: &StoreConfig,
        mut segs: Vec<Arc<Segment>>,
        end: i64,
    ) -> Result<CommitLog> {
        let dir = cfg.commitlog_dir();
        let size = cfg.commitlog_file_size;
        let seg_size = size as i64;
        if segs.last().is_none_or(|s| end >= s.end()) {
            // No segment holds `end` (fresh store, or data ends exactly at a
            // segment boundary): start the next one now.
            let start = end - end.rem_euclid(seg_size);
            segs.push(Arc::new(Segment::create(&dir, start, size, false)?));
        }
        let current = segs.last().cloned().ok_or_else(|| StoreError::Corrupt {
            path: dir.clone(),
            reason: "no commit log segment".into(),
        })?;
        let min = segs.first().map_or(0, |s| s.start());
        let shared = Arc::new(LogShared {
            segments: RwLock::new(segs),
            max_offset: AtomicI64::new(end),
            min_offset: AtomicI64::new(min),
            flushed: AtomicI64::new(end),
            last_store_timestamp: AtomicI64::new(0),
            seg_size,
            reserved: AtomicI64::new(end),
            confirm: AtomicI64::new(i64::MAX),
            confirm_waiters: Default::default(),
        });
        let mut log = CommitLog {
            dir,
            shared,
            current,
            write_pos: end,
            next: None,
            max_record: cfg.max_record_len().min(size as usize - BLANK_LEN),
            preallocate: cfg.preallocate,
        };
        if log.preallocate {
            log.reserve_to(end + RESERVE_STEP)?;
        }
        log.prepare_if_half_full();
        start_prefaulter(Arc::downgrade(&log.shared), log.preallocate);
        Ok(log)
    }

    pub(crate) fn shared(&self) -> &Arc<LogShared> {
        &self.shared
    }

    /// A reader sharing this log's segments.
    pub fn reader(&self) -> CommitLogReader {
        CommitLogReader {
            shared: self.shared.clone(),
        }
    }

    /// Next write position.
    pub fn max_offset(&self) -> i64 {
        self.write_pos
    }

    pub fn min_offset(&self) -> i64 {
        self.shared.min_offset.load(Ordering::Acquire)
    }

    /// Largest record `append` accepts.
    pub fn max_record_len(&self) -> usize {
        self.max_record
    }

    /// Bytes reserved at the start of a new segment.
    fn initial_reserve(&self) -> u64 {
        if self.preallocate {
            RESERVE_STEP as u64
        } else {
            0
        }
    }

    /// Starts preparing the following segment in the background.
    fn prepare_next(&mut self) {
        let start = self.current.end();
        if self.next.as_ref().is_some_and(|p| p.start() == start) {
            return;
        }
        self.next = Some(Prepared::spawn(
            self.dir.clone(),
            start,
            self.current.size() as u64,
            self.initial_reserve(),
        ));
    }

    /// Prepares the next segment once the current one is half full.
    fn prepare_if_half_full(&mut self) {
        let used = self.write_pos - self.current.start();
        if used >= self.current.size() as i64 / 2 && self.next.is_none() {
            self.prepare_next();
        }
    }

    /// Reserves the current segment's blocks up to `target` (clipped to it).
    fn reserve_to(&mut self, target: i64) -> Result<()> {
        let seg = &self.current;
        let target = target.min(seg.end());
        let from = self
            .shared
            .reserved
            .load(Ordering::Acquire)
            .max(seg.start());
        if target > from {
            seg.reserve((from - seg.start()) as usize, (target - from) as usize)?;
            self.shared.reserved.fetch_max(target, Ordering::AcqRel);
        }
        Ok(())
    }

    /// When appending records of these lengths would move to the next
    /// segment and that one is still being prepared: a future that resolves
    /// once it is ready. The caller (the writer actor) awaits it outside its
    /// thread, then appends; `append` itself would wait on the thread.
    pub fn roll_pending(
        &mut self,
        lens: impl IntoIterator<Item = usize>,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let size = self.current.size();
        let mut pos = (self.write_pos - self.current.start()) as usize;
        for len in lens {
            if len > self.max_record {
                return None; // refused by `append`, no roll
            }
            if len + BLANK_LEN > size - pos {
                self.prepare_next();
                let next = self.next.as_ref()?;
                return (!next.is_ready()).then(|| next.ready());
            }
            pos += len;
        }
        None
    }

    /// The segment following the current one (the prepared one if there is
    /// one, waiting for it if needed; else created now).
    fn take_next(&mut self) -> Result<Segment> {
        let size = self.current.size() as u64;
        let reserve = self.initial_reserve();
        prepare::take_or_create(
            self.next.take(),
            &self.dir,
            self.current.end(),
            size,
            reserve,
        )
    }

    /// Moves to the next segment, closing the current one with a blank filler.
    fn roll(&mut self) -> Result<()> {
        let next = Arc::new(self.take_next()?);
        let pos = (self.write_pos - self.current.start()) as usize;
        let remaining = self.current.size() - pos;
        let mut blank = [0u8; BLANK_LEN];
        blank[..4].copy_from_slice(&(remaining as i32).to_be_bytes());
        blank[4..].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
        // SAFETY: single writer; `pos..` lies above the published end.
        unsafe { self.current.write_at(pos, &blank) };
        self.shared
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(next.clone());
        self.current = next;
        self.write_pos = self.current.start();
        let reserved = self.current.start() + self.initial_reserve() as i64;
        self.shared.reserved.store(reserved, Ordering::Release);
        Ok(())
    }

    fn append_inner(&mut self, record: &mut [u8]) -> Result<AppendResult> {
        let len = record.len();
        if len > self.max_record {
            return Err(StoreError::RecordTooLarge {
                size: len,
                max: self.max_record,
            });
        }
        let h = message::peek_record_header(record)?;
        if h.is_blank() || h.total_size as usize != len {
            return Err(StoreError::InvalidRecord(
                message::MessageError::SizeMismatch {
                    offset: 0,
                    declared: h.total_size.max(0) as usize,
                    actual: len,
                },
            ));
        }
        let mut pos = (self.write_pos - self.current.start()) as usize;
        if len + BLANK_LEN > self.current.size() - pos {
            self.roll()?;
            pos = 0;
        }
        let phys = self.write_pos;
        let need = phys + len as i64;
        if self.preallocate && need > self.shared.reserved.load(Ordering::Acquire) {
            // The prefault thread fell behind: reserve a step here.
            self.reserve_to(need.max(phys + RESERVE_STEP))?;
        }
        record[PHYS_OFFSET_POS..PHYS_OFFSET_POS + 8].copy_from_slice(&phys.to_be_bytes());
        // SAFETY: single writer; the range is above the published end.
        unsafe { self.current.write_at(pos, record) };
        if let Ok(ts) = message::peek_store_timestamp(record) {
            self.shared
                .last_store_timestamp
                .store(ts, Ordering::Relaxed);
        }
        self.write_pos = phys + len as i64;
        self.prepare_if_half_full();
        Ok(AppendResult {
            phys_offset: phys,
            size: len as i32,
            end_offset: self.write_pos,
        })
    }

    fn publish(&self) {
        self.shared
            .max_offset
            .store(self.write_pos, Ordering::Release);
    }

    /// Appends one encoded record (QUEUEOFFSET already patched by the caller);
    /// PHYSICALOFFSET is patched in `record` too. On error nothing is written.
    pub fn append(&mut self, record: &mut [u8]) -> Result<AppendResult> {
        let r = self.append_inner(record)?;
        self.publish();
        Ok(r)
    }

    /// Appends several records and publishes once. Results are pushed to `out`;
    /// on error the records before the failing one stay appended (and are in
    /// `out`).
    pub fn append_batch<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r mut [u8]>,
        out: &mut Vec<AppendResult>,
    ) -> Result<()> {
        let mut res = Ok(());
        for rec in records {
            match self.append_inner(rec) {
                Ok(r) => out.push(r),
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        self.publish();
        res
    }

    /// Deletes up to `max_delete` whole segments from the front whose files
    /// were last modified before `older_than`; never the segment being
    /// written nor data not yet flushed. Returns the number deleted.
    pub fn delete_expired_segments(
        &mut self,
        older_than: SystemTime,
        max_delete: usize,
    ) -> Result<usize> {
        let flushed = self.shared.flushed.load(Ordering::Acquire);
        let mut deleted = 0;
        while deleted < max_delete {
            let first = {
                let segs = self
                    .shared
                    .segments
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                match segs.first() {
                    Some(s) if segs.len() > 1 && s.end() <= flushed => s.clone(),
                    _ => break,
                }
            };
            if first.modified().is_none_or(|m| m >= older_than) {
                break;
            }
            {
                let mut segs = self
                    .shared
                    .segments
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                segs.remove(0);
                let min = segs.first().map_or(self.write_pos, |s| s.start());
                self.shared.min_offset.store(min, Ordering::Release);
            }
            first.remove_file()?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// Shared, lock-light read access to the commit log.
#[derive(Debug, Clone)]
pub struct CommitLogReader {
    shared: Arc<LogShared>,
}

impl CommitLogReader {
    pub fn max_offset(&self) -> i64 {
        self.shared.max_offset.load(Ordering::Acquire)
    }
    pub fn min_offset(&self) -> i64 {
        self.shared.min_offset.load(Ordering::Acquire)
    }
    /// Offset below which data is durable.
    pub fn flushed_offset(&self) -> i64 {
        self.shared.flushed.load(Ordering::Acquire)
    }

    /// controller mode's `confirmOffset`: consumers read no record ending
    /// above it; never above the log end (the end when no limit is set).
    pub fn confirm_offset(&self) -> i64 {
        self.shared
            .confirm
            .load(Ordering::SeqCst)
            .min(self.max_offset())
    }

    /// Whether a confirm offset limits readers (controller mode).
    pub fn confirm_limited(&self) -> bool {
        self.shared.confirm.load(Ordering::Acquire) != i64::MAX
    }

    /// Sets the confirm offset (`i64::MAX`: no limit) and wakes the
    /// readers waiting for it (one atomic load when none is due).
    pub fn set_confirm_offset(&self, offset: i64) {
        self.shared.confirm.store(offset, Ordering::SeqCst);
        self.shared.confirm_waiters.release(offset);
    }

    /// Resolves once the confirm offset is at or past `end` (the
    /// commit-log end of a record a capped read held back); at once when
    /// it is already. Dropping the future gives up.
    pub fn confirm_reached(&self, end: i64) -> super::confirm_wait::ConfirmReached {
        let shared = &self.shared;
        shared
            .confirm_waiters
            .wait(end, || shared.confirm.load(Ordering::SeqCst))
    }

    /// `size` bytes at `phys_offset`, zero-copy; None unless the whole range is
    /// published and inside one segment.
    pub fn read(&self, phys_offset: i64, size: i32) -> Option<Bytes> {
        self.slice(phys_offset, size).map(Bytes::from_owner)
    }

    /// [`CommitLogReader::read`] as a borrowed view: no allocation, for
    /// readers that look at a record and move on (the indexer).
    pub(crate) fn slice(&self, phys_offset: i64, size: i32) -> Option<SegmentSlice> {
        if phys_offset < 0 || size <= 0 {
            return None;
        }
        let end = phys_offset.checked_add(size as i64)?;
        if end > self.max_offset() {
            return None;
        }
        let seg = self.shared.segment_for(phys_offset)?;
        if end > seg.end() {
            return None;
        }
        let pos = (phys_offset - seg.start()) as usize;
        Some(SegmentSlice {
            seg,
            pos,
            len: size as usize,
        })
    }

    /// The record at `phys_offset` (its length read from TOTALSIZE); None for
    /// a blank filler or an unpublished / invalid position.
    pub fn read_record(&self, phys_offset: i64) -> Option<Bytes> {
        self.record_slice(phys_offset).map(Bytes::from_owner)
    }

    /// [`CommitLogReader::read_record`] as a borrowed view.
    pub(crate) fn record_slice(&self, phys_offset: i64) -> Option<SegmentSlice> {
        let head = self.slice(phys_offset, 8)?;
        let head = head.as_ref();
        let total = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let magic = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if magic == BLANK_MAGIC || total < message::MIN_RECORD_LEN as i32 {
            return None;
        }
        self.slice(phys_offset, total)
    }

    /// Up to `max_len` published bytes from `phys_offset`, stopping at the
    /// segment end (for replication / bulk reads).
    pub fn read_range(&self, phys_offset: i64, max_len: usize) -> Option<Bytes> {
        let seg = self.shared.segment_for(phys_offset)?;
        let end = self
            .max_offset()
            .min(seg.end())
            .min(phys_offset.saturating_add(max_len as i64));
        let len = i32::try_from(end - phys_offset).ok()?;
        self.read(phys_offset, len)
    }

    /// Start of the segment after the one holding `phys_offset` (to skip a
    /// blank filler).
    pub fn next_segment_start(&self, phys_offset: i64) -> i64 {
        let s = self.shared.seg_size;
        phys_offset - phys_offset.rem_euclid(s) + s
    }
}

#[cfg(test)]
#[path = "commit_log_tests.rs"]
pub(crate) mod tests;

/// Replicated appends at an exact offset (a slave's `HaClient`).
#[path = "ha_append.rs"]
mod ha_append;

/// How far ahead of the write position pages are faulted in.
const PREFAULT_AHEAD: i64 = 8 << 20;
/// Blocks reserved at a time (and at least this far ahead of the writer).
pub(crate) const RESERVE_STEP: i64 = 16 << 20;

/// Keeps the pages just past the write position faulted in (writable), so
/// appends copy into ready memory. Stops when the log is dropped.
/// Puts the calling thread in the idle scheduling class: prefaulting is work
/// done ahead of need, so it must never take a CPU from a thread serving
/// requests (on a 2-core machine it otherwise shows up in tail latency).
/// When the CPUs are busy the writer simply faults its pages in itself.
fn lower_priority() {
    // SAFETY: plain syscall on the calling thread with a valid parameter.
    let param = libc::sched_param { sched_priority: 0 };
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        tracing::debug!("cannot move the prefault thread to SCHED_IDLE");
    }
}

fn start_prefaulter(shared: std::sync::Weak<LogShared>, reserve: bool) {
    let _ = std::thread::Builder::new()
        .name("commitlog-prefault".into())
        .spawn(move || {
            lower_priority();
            let mut done_until = -1i64;
            let mut last_pos = None;
            let mut populate = true;
            loop {
                let Some(log) = shared.upgrade() else { return };
                let pos = log.max_offset.load(Ordering::Acquire);
                // Only while the log is being written: an idle broker keeps
                // no pages it does not use.
                let active = last_pos.is_some_and(|p| p != pos);
                last_pos = Some(pos);
                if !active {
                    drop(log);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                }
                if let Some(seg) = log.segment_for(pos).filter(|_| reserve) {
                    // Keep a step reserved ahead of the writer; the writer
                    // reserves itself when this thread falls behind.
                    let reserved = log.reserved.load(Ordering::Acquire).max(seg.start());
                    if reserved - pos < RESERVE_STEP && reserved < seg.end() {
                        let target = (pos + 2 * RESERVE_STEP).min(seg.end());
                        let at = (reserved - seg.start()) as usize;
                        if seg.reserve(at, (target - reserved) as usize).is_ok() {
                            log.reserved.fetch_max(target, Ordering::AcqRel);
                        }
                    }
                }
                if let Some(seg) = log.segment_for(pos).filter(|_| populate) {
                    let target = (pos + PREFAULT_AHEAD).min(seg.end());
                    let from = done_until.max(pos).max(seg.start());
                    if target > from {
                        let ok = seg.populate_write(
                            (from - seg.start()) as usize,
                            (target - from) as usize,
                        );
                        if !ok {
                            populate = false; // unsupported kernel: appends fault pages in
                        }
                        done_until = target;
                    }
                }
                drop(log);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
}
