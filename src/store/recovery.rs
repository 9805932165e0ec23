//! Opening a store after a clean stop or a crash.
//!
//! Recovery scans the commit log from the start of the segment holding the
//! checkpoint's safe offset (everything below it is flushed and dispatched; the
//! first segment when unknown), checking magic, size, PHYSICALOFFSET and body
//! CRC. The first invalid record ends the log: the tail is zeroed and later
//! segments deleted. Consume-queue units pointing past the end are dropped,
//! and records beyond each queue's last unit are dispatched again. If that
//! reveals a gap (a queue lost units from before the scan start) the dispatch
//! pass restarts from the first segment.

use super::checkpoint::{self, Checkpoint};
use super::commit_log::CommitLog;
use super::config::StoreConfig;
use super::consume_queue::ConsumeQueue;
use super::error::{Result, StoreError};
use super::mapped_file::{list_segments, Segment};
use crate::wire::message::{self, keys, sysflag};
use std::collections::HashMap;
use std::sync::Arc;

/// What a consume queue (and, later, the index) needs to know of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchRequest {
    pub topic: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub phys_offset: i64,
    pub size: i32,
    /// Java hash of TAGS (0 without). Schedule topics use the delivery time
    /// instead; that is the caller's business.
    pub tags_code: i64,
    pub keys: Option<String>,
    pub uniq_key: Option<String>,
    pub store_timestamp: i64,
    pub sys_flag: i32,
    pub prepared_transaction_offset: i64,
}

impl DispatchRequest {
    /// PREPARED and ROLLBACK records never reach a consume queue.
    pub fn should_dispatch(&self) -> bool {
        !sysflag::is_prepared_or_rollback(self.sys_flag)
    }
}

/// Extracts the dispatch information of one stored record (offsets patched).
pub fn dispatch_info(record: &[u8]) -> Result<DispatchRequest> {
    let v = message::view_record(record, false)?;
    Ok(DispatchRequest {
        topic: v.topic.to_owned(),
        queue_id: v.header.queue_id,
        queue_offset: v.header.queue_offset,
        phys_offset: v.header.phys_offset,
        size: v.header.total_size,
        tags_code: message::tags_code(v.property(keys::TAGS)),
        keys: v.property(keys::KEYS).map(str::to_owned),
        uniq_key: v.property(keys::UNIQ_KEY).map(str::to_owned),
        store_timestamp: v.store_timestamp,
        sys_flag: v.header.sys_flag,
        prepared_transaction_offset: v.prepared_transaction_offset,
    })
}

/// An opened store.
pub struct Recovered {
    pub commit_log: CommitLog,
    pub queues: HashMap<(String, i32), ConsumeQueue>,
    /// Next queue offset of every queue.
    pub topic_queue_offsets: HashMap<(String, i32), i64>,
    pub was_clean_shutdown: bool,
    /// Where the validating scan started.
    pub scanned_from: i64,
}

/// Walks valid records of `segs` from segment `start_idx`.
struct Scanner<'a> {
    segs: &'a [Arc<Segment>],
    idx: usize,
    pos: usize,
    check_crc: bool,
}

impl<'a> Scanner<'a> {
    fn new(segs: &'a [Arc<Segment>], idx: usize, check_crc: bool) -> Self {
        Scanner {
            segs,
            idx,
            pos: 0,
            check_crc,
        }
    }

    /// Global offset the scan has reached (the valid end once exhausted).
    fn offset(&self) -> i64 {
        match self.segs.get(self.idx) {
            Some(s) => s.start() + self.pos as i64,
            None => self.segs.last().map_or(0, |s| s.end()),
        }
    }

    /// Next valid record as `(phys, bytes)`; None at the end of valid data.
    fn next_record(&mut self) -> Option<(i64, &'a [u8])> {
        loop {
            let seg: &'a Segment = self.segs.get(self.idx)?;
            let remaining = seg.size().checked_sub(self.pos)?;
            // SAFETY: recovery runs before any writer exists.
            let rest = unsafe { seg.slice(self.pos, remaining) }?;
            let h = message::peek_record_header(rest).ok()?;
            let len = h.total_size as usize;
            if h.is_blank() {
                if len != remaining {
                    return None;
                }
                self.idx += 1;
                self.pos = 0;
                if self.idx >= self.segs.len() {
                    // Leave offset() at the end of the last segment.
                    self.idx = self.segs.len();
                    return None;
                }
                continue;
            }
            let phys = seg.start() + self.pos as i64;
            let rec = rest.get(..len)?;
            if h.phys_offset != phys || message::view_record(rec, self.check_crc).is_err() {
                return None;
            }
            self.pos += len;
            return Some((phys, rec));
        }
    }
}

/// Loads commit log segments, checking names and sizes. A wrongly sized last
/// file (a crash during creation) is deleted.
fn load_segments(cfg: &StoreConfig) -> Result<Vec<Arc<Segment>>> {
    let size = cfg.commitlog_file_size;
    let mut files = list_segments(&cfg.commitlog_dir())?;
    if let Some((_, path)) = files.last() {
        let len = std::fs::metadata(path)
            .map_err(|e| StoreError::io("stat", path, e))?
            .len();
        if len != size {
            tracing::warn!(path = %path.display(), len, "removing incomplete commit log segment");
            std::fs::remove_file(path).map_err(|e| StoreError::io("remove", path, e))?;
            files.pop();
        }
    }
    let mut segs: Vec<Arc<Segment>> = Vec::with_capacity(files.len());
    for (start, path) in files {
        if start % size as i64 != 0 || segs.last().is_some_and(|s| s.end() != start) {
            return Err(StoreError::Corrupt {
                path,
                reason: "commit log segment out of sequence".into(),
            });
        }
        segs.push(Arc::new(Segment::open(&path, start, size)?));
    }
    Ok(segs)
}

/// Index of the segment to start scanning from.
fn scan_start(segs: &[Arc<Segment>], cp: Option<&Checkpoint>, size: u64) -> usize {
    let (Some(first), Some(safe)) = (segs.first(), cp.and_then(|c| c.safe_offset())) else {
        return 0;
    };
    if safe < first.start() {
        return 0;
    }
    (((safe - first.start()) / size as i64) as usize).min(segs.len().saturating_sub(1))
}

/// Drops segments after `end` and zeroes the torn tail of the one holding it.
fn truncate_log(segs: &mut Vec<Arc<Segment>>, end: i64) -> Result<()> {
    while segs.last().is_some_and(|s| s.start() > end) {
        if let Some(s) = segs.pop() {
            tracing::warn!(path = %s.path().display(), "removing commit log segment past the valid end");
            s.remove_file()?;
        }
    }
    let Some(seg) = segs.last() else {
        return Ok(());
    };
    if end >= seg.end() {
        return Ok(());
    }
    const CHUNK: usize = 64 * 1024;
    let zeros = [0u8; CHUNK];
    let mut pos = (end - seg.start()) as usize;
    let mut dirty_from = None;
    while pos < seg.size() {
        let n = CHUNK.min(seg.size() - pos);
        // SAFETY: no writer or reader exists during recovery.
        unsafe {
            if seg.slice(pos, n).is_some_and(|s| s.iter().any(|&b| b != 0)) {
                seg.write_at(pos, &zeros[..n]);
                dirty_from.get_or_insert(pos);
            }
        }
        pos += n;
    }
    if let Some(from) = dirty_from {
        tracing::warn!(offset = end, "zeroed torn commit log tail");
        seg.flush_range(from, seg.size() - from)?;
    }
    Ok(())
}

/// Loads the segments and validates the tail: `(segments, scan start index,
/// valid end)`.
fn open_segments(cfg: &StoreConfig) -> Result<(Vec<Arc<Segment>>, usize, i64)> {
    std::fs::create_dir_all(cfg.commitlog_dir())
        .map_err(|e| StoreError::io("create dir", &cfg.commitlog_dir(), e))?;
    let cp = Checkpoint::load(&cfg.checkpoint_path())?;
    let mut segs = load_segments(cfg)?;
    let start_idx = scan_start(&segs, cp.as_ref(), cfg.commitlog_file_size);
    let mut scan = Scanner::new(&segs, start_idx, true);
    while scan.next_record().is_some() {}
    let end = scan.offset();
    truncate_log(&mut segs, end)?;
    Ok((segs, start_idx, end))
}

/// Opens the commit log alone (no consume queues, checkpoint untouched).
pub(crate) fn open_commit_log(cfg: &StoreConfig) -> Result<CommitLog> {
    let (segs, _, end) = open_segments(cfg)?;
    CommitLog::from_parts(cfg, segs, end)
}

fn load_queues(cfg: &StoreConfig) -> Result<HashMap<(String, i32), ConsumeQueue>> {
    let mut out = HashMap::new();
    let root = cfg.consumequeue_dir();
    let topics = match std::fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io("list", &root, e)),
    };
    for t in topics {
        let t = t.map_err(|e| StoreError::io("list", &root, e))?;
        let Ok(topic) = t.file_name().into_string() else {
            continue;
        };
        let Ok(qids) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for q in qids.flatten() {
            let Some(qid) = q.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            out.insert((topic.clone(), qid), ConsumeQueue::open(cfg, &topic, qid)?);
        }
    }
    Ok(out)
}

/// For records parked in the schedule or timer topic, the due time the live
/// path used as their tags code (store time + level delay; `TIMER_OUT_MS`).
pub(crate) fn parked_due_time(d: &DispatchRequest, rec: &[u8], cfg: &StoreConfig) -> Option<i64> {
    let v = message::view_record(rec, false).ok()?;
    match d.topic.as_str() {
        "SCHEDULE_TOPIC_XXXX" => {
            let level: usize = v.property(keys::DELAY)?.trim().parse().ok()?;
            let n = cfg.delay_levels_ms.len();
            let delay = *cfg.delay_levels_ms.get(level.clamp(1, n.max(1)) - 1)?;
            Some(d.store_timestamp + delay)
        }
        "rmq_sys_wheel_timer" => v.property(keys::TIMER_OUT_MS)?.trim().parse().ok(),
        _ => None,
    }
}

/// Re-dispatches records from segment `start_idx` up to `end`. Returns false
/// (having changed nothing more) when a queue gap shows the scan started too
/// late and `allow_gaps` is off.
fn redispatch(
    cfg: &StoreConfig,
    segs: &[Arc<Segment>],
    start_idx: usize,
    end: i64,
    queues: &mut HashMap<(String, i32), ConsumeQueue>,
    allow_gaps: bool,
) -> Result<bool> {
    let mut scan = Scanner::new(segs, start_idx, false);
    while let Some((phys, rec)) = scan.next_record() {
        if phys >= end {
            break;
        }
        let mut d = dispatch_info(rec)?;
        if !d.should_dispatch() {
            continue;
        }
        if let Some(due) = parked_due_time(&d, rec, cfg) {
            d.tags_code = due;
        }
        let key = (d.topic.clone(), d.queue_id);
        let cq = match queues.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                match ConsumeQueue::open(cfg, &d.topic, d.queue_id) {
                    Ok(cq) => v.insert(cq),
                    // A record an older build stored under a name that
                    // cannot be a directory: leave it out of every queue.
                    Err(e @ StoreError::OutsideRoot { .. }) => {
                        tracing::warn!(error = %e, phys, "record not dispatched");
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let max = cq.max_offset();
        if d.queue_offset < max {
            continue;
        }
        if d.queue_offset > max && (max > 0 || start_idx > 0) && !allow_gaps {
            tracing::warn!(topic = %d.topic, queue_id = d.queue_id, max, offset = d.queue_offset,
                "consume queue gap; re-dispatching from the first segment");
            return Ok(false);
        }
        if let Err(e) = cq.put(d.queue_offset, d.phys_offset, d.size, d.tags_code) {
            tracing::error!(error = %e, phys, "cannot re-dispatch record");
        }
    }
    Ok(true)
}

/// Opens the whole store: validates the commit log, repairs and rebuilds the
/// consume queues, writes a fresh checkpoint and creates the `abort` marker.
pub fn recover(cfg: &StoreConfig) -> Result<Recovered> {
    std::fs::create_dir_all(&cfg.root).map_err(|e| StoreError::io("create dir", &cfg.root, e))?;
    let was_clean = checkpoint::was_clean_shutdown(cfg);
    let (segs, start_idx, end) = open_segments(cfg)?;
    let scanned_from = segs.get(start_idx).map_or(end, |s| s.start());
    tracing::info!(was_clean, scanned_from, end, "commit log recovered");

    let mut queues = load_queues(cfg)?;
    for cq in queues.values_mut() {
        cq.truncate_from_phys(end)?;
    }
    if !redispatch(cfg, &segs, start_idx, end, &mut queues, false)? {
        redispatch(cfg, &segs, 0, end, &mut queues, true)?;
    }
    for cq in queues.values() {
        cq.flush()?;
    }
    // Data read back from the page cache after a process crash is made durable.
    for s in segs.iter().skip(start_idx) {
        s.flush_range(0, s.size())?;
    }
    let mut cp = Checkpoint::load(&cfg.checkpoint_path())?.unwrap_or_default();
    cp.commitlog_flushed = Some(end);
    cp.dispatched_flushed = Some(end);
    cp.store(&cfg.checkpoint_path())?;
    checkpoint::create_abort_marker(cfg)?;

    let topic_queue_offsets = queues
        .iter()
        .map(|(k, q)| (k.clone(), q.max_offset()))
        .collect();
    Ok(Recovered {
        commit_log: CommitLog::from_parts(cfg, segs, end)?,
        queues,
        topic_queue_offsets,
        was_clean_shutdown: was_clean,
        scanned_from,
    })
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
