//! The message index: every record's `UNIQ_KEY` and each `KEYS` token,
//! indexed under `topic#key` in a sequence of [`IndexFile`]s under `index/`
//! (RocketMQ's `IndexService` over `IndexFile`s), newest last. A file that fills up is msynced and a new
//! one started.
//!
//! [`IndexStore`] is owned by the broker's `Indexer` actor. It indexes the
//! commit log in order, remembering where it stopped (`indexed_end`), so it
//! can be fed either record by record or by scanning: after a restart it
//! resumes after the last indexed record. After a crash the caller passes the
//! durable progress recorded in the checkpoint; entries past it are dropped
//! (their pages may be torn) and re-indexed from the commit log.

use super::commit_log::CommitLogReader;
use super::error::{Result, StoreError};
use super::index_file::{key_hash, IndexFile};
use crate::wire::message::{self, keys, sysflag, BLANK_MAGIC};
use std::path::{Path, PathBuf};

/// Index geometry and location.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    pub dir: PathBuf,
    /// Hash slots per file (`maxHashSlotNum`, default 5,000,000).
    pub slot_num: u32,
    /// Entries per file (`maxIndexNum`, default 20,000,000; entry 0 unused).
    pub index_num: u32,
}

impl IndexConfig {
    pub fn new(store_root: &Path, slot_num: u32, index_num: u32) -> Self {
        IndexConfig {
            dir: store_root.join("index"),
            slot_num: slot_num.max(1),
            index_num: index_num.max(2),
        }
    }
}

/// What a key lookup found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexHits {
    /// Commit-log offsets, newest first (hash collisions included).
    pub phys_offsets: Vec<i64>,
    /// End timestamp / end offset of the newest index file.
    pub last_update_timestamp: i64,
    pub last_update_phy_offset: i64,
}

pub struct IndexStore {
    cfg: IndexConfig,
    files: Vec<IndexFile>,
    /// Every record below is indexed; the next record to index starts here.
    indexed_end: i64,
    /// Progress already made durable by [`IndexStore::flush`].
    flushed_end: i64,
    /// Reused buffer for `topic#key` (no allocation per indexed key).
    key_buf: String,
}

impl std::fmt::Debug for IndexStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexStore")
            .field("dir", &self.cfg.dir)
            .field("files", &self.files.len())
            .field("indexed_end", &self.indexed_end)
            .finish()
    }
}

/// Index files in `dir` (17-digit names) sorted by name.
fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    super::mapped_file::list_numbered(dir, 17)
}

/// Local time now as the number `yyyyMMddHHmmssSSS`.
pub fn local_time_name() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: localtime_r only writes the struct we pass.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return 0;
    }
    let f = |v: i32, mul: u64| (v.max(0) as u64) * mul;
    f(tm.tm_year + 1900, 10_000_000_000_000)
        + f(tm.tm_mon + 1, 100_000_000_000)
        + f(tm.tm_mday, 1_000_000_000)
        + f(tm.tm_hour, 10_000_000)
        + f(tm.tm_min, 100_000)
        + f(tm.tm_sec, 1_000)
        + now.subsec_millis() as u64
}

impl IndexStore {
    /// Opens the index files, dropping unreadable ones (and every later one:
    /// their content is rebuilt from the commit log). `crash_progress` is the
    /// durable progress from the checkpoint after an unclean stop; entries
    /// at or past it are forgotten. Does not scan the log: call
    /// [`IndexStore::catch_up`].
    pub fn open(
        cfg: IndexConfig,
        log: &CommitLogReader,
        crash_progress: Option<i64>,
    ) -> Result<IndexStore> {
        std::fs::create_dir_all(&cfg.dir).map_err(|e| StoreError::io("create dir", &cfg.dir, e))?;
        let mut files: Vec<IndexFile> = Vec::new();
        let listed = list_files(&cfg.dir)?;
        let mut bad = false;
        for (_, path) in listed {
            if !bad {
                match IndexFile::open(&path, cfg.slot_num, cfg.index_num) {
                    Ok(f) => {
                        files.push(f);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "dropping unreadable index file; it will be rebuilt");
                        bad = true;
                    }
                }
            }
            std::fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
        }
        if let Some(p) = crash_progress {
            while files
                .last()
                .is_some_and(|f| !f.is_empty() && f.header().begin_phy_offset >= p)
            {
                if let Some(f) = files.pop() {
                    tracing::warn!(path = %f.path().display(), "dropping index file written after the last index flush");
                    f.remove_file()?;
                }
            }
            if let Some(f) = files.last_mut() {
                if !f.is_empty() && f.header().end_phy_offset >= p {
                    tracing::info!(path = %f.path().display(), from = p, "re-indexing past the last index flush");
                    f.truncate_from_phys(p);
                    f.flush()?;
                }
            }
        }
        let mut store = IndexStore {
            key_buf: String::new(),
            cfg,
            files,
            indexed_end: 0,
            flushed_end: 0,
        };
        store.indexed_end = store.resume_point(log);
        store.flushed_end = store.indexed_end;
        Ok(store)
    }

    /// Where indexing resumes: after the last indexed record.
    fn resume_point(&self, log: &CommitLogReader) -> i64 {
        let last = self.files.iter().rev().find(|f| !f.is_empty());
        let resume = match last {
            Some(f) => {
                let at = f.header().end_phy_offset;
                match log.read_record(at) {
                    Some(rec) => at + rec.len() as i64,
                    // The record is gone (expired) or past the log end.
                    None => at.min(log.max_offset()),
                }
            }
            None => 0,
        };
        resume.max(log.min_offset())
    }

    pub fn indexed_end(&self) -> i64 {
        self.indexed_end
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Indexes records from where indexing stopped up to the published end
    /// of the log, at most `budget` records. True once the end is reached.
    pub fn catch_up(&mut self, log: &CommitLogReader, budget: usize) -> Result<bool> {
        let end = log.max_offset();
        if self.indexed_end < log.min_offset() {
            self.indexed_end = log.min_offset();
        }
        let mut done = 0;
        while self.indexed_end < end && done < budget {
            let pos = self.indexed_end;
            if partial_at_end(log, pos, end) {
                // A slave's log may end inside a record (a replicated
                // range stops anywhere); the rest comes with the next one.
                break;
            }
            let Some(head) = log.slice(pos, 8) else {
                // Expired under us, or a segment gap: move on.
                let next = log.next_segment_start(pos).max(log.min_offset());
                tracing::warn!(pos, next, "commit log position unreadable while indexing");
                self.indexed_end = next;
                continue;
            };
            let head = head.as_ref();
            let magic = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            if magic == BLANK_MAGIC {
                self.indexed_end = log.next_segment_start(pos);
                continue;
            }
            match log.record_slice(pos) {
                Some(rec) => {
                    let rec = rec.as_ref();
                    self.index_record(pos, rec)?;
                    self.indexed_end = pos + rec.len() as i64;
                }
                None => {
                    tracing::warn!(pos, "invalid record while indexing; skipping its segment");
                    self.indexed_end = log.next_segment_start(pos);
                }
            }
            done += 1;
        }
        Ok(self.indexed_end >= end)
    }

    /// Indexes one stored record (its UNIQ_KEY and KEYS tokens).
    fn index_record(&mut self, phys: i64, rec: &[u8]) -> Result<()> {
        let v = match message::view_record(rec, false) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(phys, error = %e, "cannot index an undecodable record");
                return Ok(());
            }
        };
        if sysflag::transaction_type(v.header.sys_flag) == sysflag::TRANSACTION_ROLLBACK_TYPE {
            return Ok(());
        }
        let ts = v.store_timestamp;
        let mut buf = std::mem::take(&mut self.key_buf);
        let mut put = |this: &mut Self, key: &str| {
            buf.clear();
            buf.push_str(v.topic);
            buf.push('#');
            buf.push_str(key);
            this.put_key(&buf, phys, ts)
        };
        let mut res = Ok(());
        if let Some(u) = v.property(keys::UNIQ_KEY) {
            res = put(self, u);
        }
        if let (Ok(()), Some(ks)) = (&res, v.property(keys::KEYS)) {
            for k in ks.split(' ').filter(|k| !k.is_empty()) {
                res = put(self, k);
                if res.is_err() {
                    break;
                }
            }
        }
        self.key_buf = buf;
        res
    }

    fn put_key(&mut self, key: &str, phys: i64, ts: i64) -> Result<()> {
        let hash = key_hash(key);
        if let Some(f) = self.files.last_mut() {
            if f.put_key(hash, phys, ts) {
                return Ok(());
            }
        }
        self.roll()?;
        let stored = self
            .files
            .last_mut()
            .is_some_and(|f| f.put_key(hash, phys, ts));
        if stored {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.cfg.dir.clone(),
                reason: "a fresh index file refused an entry".into(),
            })
        }
    }

    /// Makes the full file durable and starts a new one.
    fn roll(&mut self) -> Result<()> {
        if let Some(f) = self.files.last() {
            f.flush()?;
        }
        let last = self
            .files
            .last()
            .and_then(|f| f.path().file_name()?.to_str()?.parse::<u64>().ok())
            .unwrap_or(0);
        // Names must stay increasing even within one millisecond.
        let name = local_time_name().max(last + 1);
        let path = self.cfg.dir.join(format!("{name:017}"));
        let f = IndexFile::create(&path, self.cfg.slot_num, self.cfg.index_num)?;
        tracing::info!(path = %path.display(), "new index file");
        self.files.push(f);
        Ok(())
    }

    /// Offsets of records indexed under `topic#key` stored within
    /// `[begin, end]` (second precision), newest first, at most `max`.
    pub fn query(&self, topic: &str, key: &str, max: usize, begin: i64, end: i64) -> IndexHits {
        let hash = key_hash(&format!("{topic}#{key}"));
        let mut hits = IndexHits::default();
        if let Some(f) = self.files.last() {
            hits.last_update_timestamp = f.header().end_timestamp;
            hits.last_update_phy_offset = f.header().end_phy_offset;
        }
        for f in self.files.iter().rev().filter(|f| !f.is_empty()) {
            if f.time_matched(begin, end) {
                f.select(hash, max, begin, end, &mut hits.phys_offsets);
            }
            if f.header().begin_timestamp < begin || hits.phys_offsets.len() >= max {
                break;
            }
        }
        hits
    }

    /// msyncs the newest file; returns the progress that is now durable.
    pub fn flush(&mut self) -> Result<i64> {
        if self.flushed_end != self.indexed_end {
            if let Some(f) = self.files.last() {
                f.flush()?;
            }
            self.flushed_end = self.indexed_end;
        }
        Ok(self.flushed_end)
    }

    /// Forgets every entry of a record at or after `phys` (the commit log
    /// was cut back there: a slave's truncation); indexing resumes there.
    pub fn truncate_from_phys(&mut self, phys: i64) -> Result<()> {
        while self
            .files
            .last()
            .is_some_and(|f| !f.is_empty() && f.header().begin_phy_offset >= phys)
        {
            if let Some(f) = self.files.pop() {
                f.remove_file()?;
            }
        }
        if let Some(f) = self.files.last_mut() {
            if !f.is_empty() && f.header().end_phy_offset >= phys {
                f.truncate_from_phys(phys);
                f.flush()?;
            }
        }
        self.indexed_end = self.indexed_end.min(phys);
        self.flushed_end = self.flushed_end.min(phys);
        Ok(())
    }

    /// Deletes files (never the newest) whose every entry points below
    /// `min_phys`, the commit log's new minimum. Returns how many.
    pub fn delete_before_phys(&mut self, min_phys: i64) -> Result<usize> {
        let mut n = 0;
        while self.files.len() > 1 && self.files[0].header().end_phy_offset < min_phys {
            let f = self.files.remove(0);
            f.remove_file()?;
            n += 1;
        }
        Ok(n)
    }
}

/// Whether the record at `pos` is not yet wholly in a log that ends at
/// `end`: fewer than its 8 header bytes, or a TOTALSIZE reaching past `end`
/// inside the same segment. Only a slave's log ends like this (its master
/// sends ranges that may split a record); a master publishes whole records.
fn partial_at_end(log: &CommitLogReader, pos: i64, end: i64) -> bool {
    if end - pos < 8 {
        return log.next_segment_start(pos) > end;
    }
    let Some(head) = log.slice(pos, 8) else {
        return false;
    };
    let head = head.as_ref();
    let total = i32::from_be_bytes([head[0], head[1], head[2], head[3]]) as i64;
    let magic = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    magic != BLANK_MAGIC
        && total > 0
        && pos + total > end
        && pos + total <= log.next_segment_start(pos)
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
