//! Put intents: exactly-once internal writes across a crash.
//!
//! Some broker services write messages on their own and keep their progress
//! elsewhere (the delay scheduler in `delayOffset.json`, the transaction
//! service in its op queue, the timer in its checkpoint). Killed between
//! "the batch is in the commit log" and "the progress is saved", a restart
//! would write the batch a second time. An intent closes that window:
//!
//! 1. Before the Put, the owner appends an intent to its own small file
//!    ([`IntentLog::begin`]): the commit log's published end at that moment
//!    (every append lands after it), one [`Fingerprint`] per record in write
//!    order, and an opaque tag of its own (what the batch was for: a level
//!    and source offsets, a transaction id, ...).
//! 2. The owner puts the batch, saves its progress, then closes the intent
//!    ([`IntentLog::done`]).
//! 3. On start-up (after commit-log recovery), an intent without `done`
//!    means the owner died in between. [`landed`] scans the commit log from
//!    the intent's offset to its end and answers how many of the batch's
//!    records are there. One Put appends its records back to back in one
//!    writer turn, so what is there is a prefix of the batch: the owner
//!    treats those as delivered, writes only the rest, advances its
//!    progress and closes the intent.
//!
//! Writes are plain `write(2)` calls, not fsync'd: a process killed with
//! `kill -9` (or aborting) loses nothing the kernel already has, which is
//! the case this covers. Surviving power loss would also need the commit
//! log itself flushed before the progress is saved.
//!
//! The file stays small: it is truncated whenever no intent is open, and
//! rewritten with only the open ones when it grows past [`COMPACT_AT`].
//!
//! # Format
//!
//! A sequence of entries `[len: u32][crc32 of payload: u32][payload]`, all
//! big-endian. The payload starts with a kind byte: `1` = begin
//! (`id: u64, base: i64, n: u32, n × fingerprint: u64, tag_len: u32, tag`),
//! `2` = done (`id: u64`). Reading stops at the first entry that is short
//! or fails its CRC (a torn tail), and the file is cut back there before
//! anything new is appended.
//!
//! The actor-side helper that encodes, records and puts in one step is
//! `actors::broker::exact_put`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::commit_log::CommitLogReader;
use super::error::{Result, StoreError};
use crate::wire::message::{self, BLANK_MAGIC, MIN_RECORD_LEN};

/// A 64-bit digest of a record's identity (see [`fingerprint`]).
pub type Fingerprint = u64;

/// File size past which the open intents are rewritten into a fresh file.
pub const COMPACT_AT: u64 = 256 * 1024;

const BEGIN: u8 = 1;
const DONE: u8 = 2;
/// Largest entry accepted when reading (guards against a garbage length).
const MAX_ENTRY: usize = 16 << 20;

/// One recorded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub id: u64,
    /// The commit log's published end just before the Put.
    pub base: i64,
    /// One per record, in write order.
    pub fingerprints: Vec<Fingerprint>,
    /// The owner's own description of the batch.
    pub tag: Vec<u8>,
}

/// FNV-1a, 64 bits: stable across builds and platforms (it is persisted).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// A length-prefixed field, so ("ab","c") and ("a","bc") differ.
    fn field(&mut self, b: &[u8]) {
        self.bytes(&(b.len() as u64).to_be_bytes());
        self.bytes(b);
    }
}

/// The fingerprint of an encoded record: its topic, queue id, flag,
/// sysflag, born timestamp and host, reconsume times, prepared-transaction
/// offset, body and properties (UNIQ_KEY among them). Left out are the
/// fields the writer assigns (queue and physical offsets) and the store
/// time and host, so a record fingerprints the same before its Put and as
/// found in the log.
pub fn fingerprint(record: &[u8]) -> std::result::Result<Fingerprint, message::MessageError> {
    let v = message::view_record(record, false)?;
    let mut h = Fnv::new();
    h.field(v.topic.as_bytes());
    h.field(&v.header.queue_id.to_be_bytes());
    h.field(&v.header.flag.to_be_bytes());
    h.field(&v.header.sys_flag.to_be_bytes());
    h.field(&v.born_timestamp.to_be_bytes());
    h.field(v.born_host.to_string().as_bytes());
    h.field(&v.reconsume_times.to_be_bytes());
    h.field(&v.prepared_transaction_offset.to_be_bytes());
    h.field(v.body);
    h.field(v.properties.as_bytes());
    Ok(h.0)
}

/// Fingerprints of the records stored from `from` to the published end, in
/// log order (blank fillers skipped; an unreadable record ends the scan).
pub fn tail_fingerprints(reader: &CommitLogReader, from: i64) -> Vec<Fingerprint> {
    let end = reader.max_offset();
    let mut pos = from.max(reader.min_offset());
    let mut out = Vec::new();
    while pos < end {
        let Some(head) = reader.read(pos, 8) else {
            break;
        };
        let total = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let magic = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if magic == BLANK_MAGIC {
            pos = reader.next_segment_start(pos);
            continue;
        }
        if total < MIN_RECORD_LEN as i32 {
            break;
        }
        let Some(rec) = reader.read(pos, total) else {
            break;
        };
        match fingerprint(&rec) {
            Ok(f) => out.push(f),
            Err(e) => {
                tracing::warn!(offset = pos, error = %e, "undecodable record in the intent scan");
                break;
            }
        }
        pos += total as i64;
    }
    out
}

/// How many of `batch` (a prefix, in order) appear back to back in `tail`.
pub fn landed_in(tail: &[Fingerprint], batch: &[Fingerprint]) -> usize {
    if batch.is_empty() {
        return 0;
    }
    let mut best = 0;
    for start in 0..tail.len() {
        let run = tail[start..]
            .iter()
            .zip(batch)
            .take_while(|(a, b)| a == b)
            .count();
        best = best.max(run);
        if best == batch.len() {
            break;
        }
    }
    best
}

/// How many records of `intent` (a prefix of its batch) are in the log.
pub fn landed(reader: &CommitLogReader, intent: &Intent) -> usize {
    landed_in(
        &tail_fingerprints(reader, intent.base),
        &intent.fingerprints,
    )
}

fn encode_entry(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

fn begin_payload(i: &Intent) -> Vec<u8> {
    let mut p = Vec::with_capacity(25 + 8 * i.fingerprints.len() + i.tag.len());
    p.push(BEGIN);
    p.extend_from_slice(&i.id.to_be_bytes());
    p.extend_from_slice(&i.base.to_be_bytes());
    p.extend_from_slice(&(i.fingerprints.len() as u32).to_be_bytes());
    for f in &i.fingerprints {
        p.extend_from_slice(&f.to_be_bytes());
    }
    p.extend_from_slice(&(i.tag.len() as u32).to_be_bytes());
    p.extend_from_slice(&i.tag);
    p
}

fn done_payload(id: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(9);
    p.push(DONE);
    p.extend_from_slice(&id.to_be_bytes());
    p
}

/// Encodes one begin entry (exposed for tests of torn files).
pub fn encode_begin(i: &Intent) -> Vec<u8> {
    let mut out = Vec::new();
    encode_entry(&begin_payload(i), &mut out);
    out
}

/// Encodes one done entry.
pub fn encode_done(id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_entry(&done_payload(id), &mut out);
    out
}

/// A bounds-checked big-endian cursor over one payload.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

enum Entry {
    Begin(Intent),
    Done(u64),
}

fn parse_payload(p: &[u8]) -> Option<Entry> {
    let mut c = Cur(p);
    match c.take(1)?[0] {
        BEGIN => {
            let id = c.u64()?;
            let base = c.u64()? as i64;
            let n = c.u32()? as usize;
            if n > p.len() / 8 {
                return None;
            }
            let fingerprints = (0..n).map(|_| c.u64()).collect::<Option<Vec<_>>>()?;
            let tag_len = c.u32()? as usize;
            let tag = c.take(tag_len)?.to_vec();
            Some(Entry::Begin(Intent {
                id,
                base,
                fingerprints,
                tag,
            }))
        }
        DONE => Some(Entry::Done(c.u64()?)),
        _ => None,
    }
}

/// Decodes a whole intent file: the intents left open (by id) and the
/// length of the valid prefix (a torn or corrupt tail is ignored).
pub fn decode(buf: &[u8]) -> (BTreeMap<u64, Intent>, usize, u64) {
    let mut open = BTreeMap::new();
    let mut at = 0;
    let mut max_id = 0;
    while buf.len() - at >= 8 {
        let len = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        let crc = u32::from_be_bytes([buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]]);
        if len > MAX_ENTRY || buf.len() - at - 8 < len {
            break;
        }
        let payload = &buf[at + 8..at + 8 + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        match parse_payload(payload) {
            Some(Entry::Begin(i)) => {
                max_id = max_id.max(i.id);
                open.insert(i.id, i);
            }
            Some(Entry::Done(id)) => {
                max_id = max_id.max(id);
                open.remove(&id);
            }
            None => break,
        }
        at += 8 + len;
    }
    (open, at, max_id)
}

/// One owner's intent file, with the intents still open.
#[derive(Debug)]
pub struct IntentLog {
    path: PathBuf,
    file: File,
    len: u64,
    next_id: u64,
    open: BTreeMap<u64, Intent>,
}

impl IntentLog {
    /// Opens (or creates) the file and reads the intents left open by the
    /// previous run; a torn tail is cut off.
    pub fn open(path: &Path) -> Result<IntentLog> {
        let mut file = super::mapped_file::open_or_create(path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(|e| StoreError::io("read", path, e))?;
        let (open, valid, max_id) = decode(&buf);
        if valid < buf.len() {
            tracing::warn!(path = %path.display(), valid, len = buf.len(), "torn intent file tail ignored");
        }
        let mut log = IntentLog {
            path: path.to_owned(),
            file,
            len: valid as u64,
            next_id: max_id + 1,
            open,
        };
        if log.open.is_empty() {
            log.truncate()?;
        } else if valid < buf.len() {
            log.file
                .set_len(valid as u64)
                .map_err(|e| StoreError::io("truncate", path, e))?;
        }
        Ok(log)
    }

    /// The intents not closed yet, oldest first.
    pub fn open_intents(&self) -> impl Iterator<Item = &Intent> {
        self.open.values()
    }

    pub fn is_open(&self, id: u64) -> bool {
        self.open.contains_key(&id)
    }

    /// Current file size (for tests and diagnostics).
    pub fn file_len(&self) -> u64 {
        self.len
    }

    fn append(&mut self, entry: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        self.file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(entry))
            .map_err(|e| {
                // Whatever part was written is a torn tail: cut it off.
                let _ = self.file.set_len(self.len);
                StoreError::io("write", &self.path, e)
            })?;
        self.len += entry.len() as u64;
        Ok(())
    }

    fn truncate(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .map_err(|e| StoreError::io("truncate", &self.path, e))?;
        self.len = 0;
        Ok(())
    }

    /// Records a batch about to be put; returns its id.
    pub fn begin(
        &mut self,
        base: i64,
        fingerprints: Vec<Fingerprint>,
        tag: Vec<u8>,
    ) -> Result<u64> {
        if self.len >= COMPACT_AT {
            self.compact()?;
        }
        let intent = Intent {
            id: self.next_id,
            base,
            fingerprints,
            tag,
        };
        self.append(&encode_begin(&intent))?;
        self.next_id += 1;
        let id = intent.id;
        self.open.insert(id, intent);
        Ok(id)
    }

    /// Closes intent `id` (a no-op when it is not open).
    pub fn done(&mut self, id: u64) -> Result<()> {
        if self.open.remove(&id).is_none() {
            return Ok(());
        }
        if self.open.is_empty() {
            return self.truncate();
        }
        self.append(&encode_done(id))
    }

    /// Rewrites the file with only the open intents (temp file + rename).
    fn compact(&mut self) -> Result<()> {
        let mut buf = Vec::new();
        for i in self.open.values() {
            encode_entry(&begin_payload(i), &mut buf);
        }
        super::metadata::write_atomic(&self.path, &buf)?;
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| StoreError::io("open", &self.path, e))?;
        self.len = buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
#[path = "put_intent_tests.rs"]
mod tests;
