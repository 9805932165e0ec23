//! One index file (`index/<yyyyMMddHHmmssSSS>`, RocketMQ's `IndexFile`), in
//! RocketMQ's exact layout: a 40-byte header, `slot_num` 4-byte hash slots and
//! `index_num` 20-byte entries, all big-endian, memory-mapped.
//!
//! Entry `i` chains to the previous entry of the same slot, so a lookup walks
//! newest to oldest from the slot. Entry 0 is never used (0 ends a chain).
//! Owned by one [`IndexStore`](super::index::IndexStore) (the `Indexer`
//! actor): writes take `&mut self`, lookups `&self`, no sharing.

use super::error::{Result, StoreError};
use memmap2::MmapMut;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

pub const HEADER_SIZE: usize = 40;
pub const SLOT_SIZE: usize = 4;
pub const ENTRY_SIZE: usize = 20;

/// Bytes of an index file with the given geometry.
pub fn file_size(slot_num: u32, index_num: u32) -> u64 {
    HEADER_SIZE as u64 + slot_num as u64 * SLOT_SIZE as u64 + index_num as u64 * ENTRY_SIZE as u64
}

/// RocketMQ's index key hash: `abs(javaStringHash(key))`, `Integer.MIN_VALUE` → 0.
pub fn key_hash(key: &str) -> i32 {
    crate::wire::message::java_hash(key)
        .checked_abs()
        .unwrap_or(0)
}

/// The 40-byte header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexHeader {
    pub begin_timestamp: i64,
    pub end_timestamp: i64,
    pub begin_phy_offset: i64,
    pub end_phy_offset: i64,
    pub hash_slot_count: i32,
    /// Next entry number; starts at 1.
    pub index_count: i32,
}

/// One decoded entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub key_hash: i32,
    pub phy_offset: i64,
    /// Seconds since the header's begin timestamp.
    pub time_diff: i32,
    pub prev_index: i32,
}

pub struct IndexFile {
    path: PathBuf,
    slot_num: u32,
    index_num: u32,
    _file: File,
    map: MmapMut,
    header: IndexHeader,
}

impl std::fmt::Debug for IndexFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexFile")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish()
    }
}

impl IndexFile {
    /// Creates an empty index file, sparse: its hash slots are written at
    /// random places, so blocks are allocated as they are first written
    /// (reserving the whole file took 420 MB of disk with RocketMQ's default
    /// geometry before the first message). The cleaner's disk-full guard
    /// (`diskSpaceWarningLevelRatio`) stops writes well before the disk is
    /// really full.
    pub fn create(path: &Path, slot_num: u32, index_num: u32) -> Result<IndexFile> {
        let size = file_size(slot_num, index_num);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| StoreError::io("create", path, e))?;
        let res = Self::extend(&file, path, size).and_then(|()| {
            let mut f = Self::map(file, path, slot_num, index_num)?;
            f.header = IndexHeader {
                index_count: 1,
                ..IndexHeader::default()
            };
            f.write_header();
            Ok(f)
        });
        if res.is_err() {
            let _ = std::fs::remove_file(path);
        }
        res
    }

    /// Sizes the (sparse) file.
    fn extend(file: &File, path: &Path, size: u64) -> Result<()> {
        file.set_len(size)
            .map_err(|e| StoreError::io("extend", path, e))
    }

    /// Opens an existing index file; its length must match the geometry.
    pub fn open(path: &Path, slot_num: u32, index_num: u32) -> Result<IndexFile> {
        let want = file_size(slot_num, index_num);
        let file = super::mapped_file::open_sized(path, want, "index file length")?;
        let mut f = Self::map(file, path, slot_num, index_num)?;
        f.header = f.read_header();
        let count = f.header.index_count;
        if count < 0 || count as u32 > index_num || f.header.hash_slot_count < 0 {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("index header out of range: {:?}", f.header),
            });
        }
        if count == 0 {
            f.header.index_count = 1;
            f.write_header();
        }
        Ok(f)
    }

    fn map(file: File, path: &Path, slot_num: u32, index_num: u32) -> Result<IndexFile> {
        // SAFETY: the file is private to this store; only this value writes it.
        let map =
            unsafe { MmapMut::map_mut(&file) }.map_err(|e| StoreError::io("mmap", path, e))?;
        Ok(IndexFile {
            path: path.to_path_buf(),
            slot_num,
            index_num,
            _file: file,
            map,
            header: IndexHeader::default(),
        })
    }

    fn get_i32(&self, pos: usize) -> i32 {
        self.map
            .get(pos..pos + 4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, i32::from_be_bytes)
    }
    fn get_i64(&self, pos: usize) -> i64 {
        self.map
            .get(pos..pos + 8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, i64::from_be_bytes)
    }
    fn put(&mut self, pos: usize, bytes: &[u8]) {
        if let Some(dst) = self.map.get_mut(pos..pos + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    fn read_header(&self) -> IndexHeader {
        IndexHeader {
            begin_timestamp: self.get_i64(0),
            end_timestamp: self.get_i64(8),
            begin_phy_offset: self.get_i64(16),
            end_phy_offset: self.get_i64(24),
            hash_slot_count: self.get_i32(32),
            index_count: self.get_i32(36),
        }
    }

    fn write_header(&mut self) {
        let h = self.header;
        self.put(0, &h.begin_timestamp.to_be_bytes());
        self.put(8, &h.end_timestamp.to_be_bytes());
        self.put(16, &h.begin_phy_offset.to_be_bytes());
        self.put(24, &h.end_phy_offset.to_be_bytes());
        self.put(32, &h.hash_slot_count.to_be_bytes());
        self.put(36, &h.index_count.to_be_bytes());
    }

    fn slot_pos(&self, hash: i32) -> usize {
        HEADER_SIZE + (hash.unsigned_abs() % self.slot_num.max(1)) as usize * SLOT_SIZE
    }

    fn entry_pos(&self, i: i32) -> usize {
        HEADER_SIZE + self.slot_num as usize * SLOT_SIZE + i.max(0) as usize * ENTRY_SIZE
    }

    /// Entry `i` (no range check against the count).
    pub fn entry(&self, i: i32) -> IndexEntry {
        let p = self.entry_pos(i);
        IndexEntry {
            key_hash: self.get_i32(p),
            phy_offset: self.get_i64(p + 4),
            time_diff: self.get_i32(p + 12),
            prev_index: self.get_i32(p + 16),
        }
    }

    /// Chain head of a slot, 0 when empty or out of range.
    fn slot_head(&self, hash: i32) -> i32 {
        let v = self.get_i32(self.slot_pos(hash));
        if v <= 0 || v > self.header.index_count {
            0
        } else {
            v
        }
    }

    pub fn header(&self) -> &IndexHeader {
        &self.header
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// No entry written yet.
    pub fn is_empty(&self) -> bool {
        self.header.index_count <= 1
    }
    pub fn is_full(&self) -> bool {
        self.header.index_count as u32 >= self.index_num
    }

    /// Adds `hash → phy_offset`; false when the file is full.
    pub fn put_key(&mut self, hash: i32, phy_offset: i64, store_timestamp: i64) -> bool {
        if self.is_full() {
            return false;
        }
        let head = self.slot_head(hash);
        let diff = if self.header.begin_timestamp <= 0 {
            0
        } else {
            ((store_timestamp - self.header.begin_timestamp) / 1000).clamp(0, i32::MAX as i64)
        } as i32;
        let n = self.header.index_count;
        let p = self.entry_pos(n);
        let mut e = [0u8; ENTRY_SIZE];
        e[..4].copy_from_slice(&hash.to_be_bytes());
        e[4..12].copy_from_slice(&phy_offset.to_be_bytes());
        e[12..16].copy_from_slice(&diff.to_be_bytes());
        e[16..].copy_from_slice(&head.to_be_bytes());
        self.put(p, &e);
        let sp = self.slot_pos(hash);
        self.put(sp, &n.to_be_bytes());
        if n <= 1 {
            self.header.begin_phy_offset = phy_offset;
            self.header.begin_timestamp = store_timestamp;
        }
        if head == 0 {
            self.header.hash_slot_count += 1;
        }
        self.header.index_count = n + 1;
        self.header.end_phy_offset = phy_offset;
        self.header.end_timestamp = store_timestamp;
        self.write_header();
        true
    }

    /// Whether the file's time span meets `[begin, end]` (RocketMQ's test).
    pub fn time_matched(&self, begin: i64, end: i64) -> bool {
        let (b, e) = (self.header.begin_timestamp, self.header.end_timestamp);
        (begin < b && end > e) || (begin >= b && begin <= e) || (end >= b && end <= e)
    }

    /// Appends to `out` (up to `max` in total) the offsets of entries whose
    /// hash equals `hash` and whose time lies in `[begin, end]`, newest first.
    pub fn select(&self, hash: i32, max: usize, begin: i64, end: i64, out: &mut Vec<i64>) {
        if self.is_empty() {
            return;
        }
        let mut next = self.slot_head(hash);
        // Each step moves to a strictly smaller entry number, so at most
        // index_count steps.
        while next > 0 && out.len() < max {
            let e = self.entry(next);
            if e.time_diff < 0 {
                break;
            }
            let t = self.header.begin_timestamp + e.time_diff as i64 * 1000;
            if e.key_hash == hash && t >= begin && t <= end {
                out.push(e.phy_offset);
            }
            if e.prev_index <= 0 || e.prev_index >= next || t < begin {
                break;
            }
            next = e.prev_index;
        }
    }

    /// Forgets every entry whose record starts at or after `phys` (their
    /// pages may not have reached the disk before a crash) and rebuilds the
    /// slots from the entries kept.
    pub fn truncate_from_phys(&mut self, phys: i64) {
        let count = self.header.index_count.max(1);
        // Entries are written in commit-log order: binary search the first
        // one at or past `phys`.
        let (mut lo, mut hi) = (1, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).phy_offset < phys {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo >= count {
            return;
        }
        let slots_end = HEADER_SIZE + self.slot_num as usize * SLOT_SIZE;
        if let Some(s) = self.map.get_mut(HEADER_SIZE..slots_end) {
            s.fill(0);
        }
        let mut used = 0;
        for i in 1..lo {
            let e = self.entry(i);
            let sp = self.slot_pos(e.key_hash);
            if self.get_i32(sp) == 0 {
                used += 1;
            }
            self.put(sp, &i.to_be_bytes());
        }
        let (from, to) = (self.entry_pos(lo), self.entry_pos(count));
        if let Some(s) = self.map.get_mut(from..to) {
            s.fill(0);
        }
        self.header.hash_slot_count = used;
        self.header.index_count = lo;
        if lo <= 1 {
            self.header = IndexHeader {
                index_count: 1,
                ..IndexHeader::default()
            };
        } else {
            let last = self.entry(lo - 1);
            self.header.end_phy_offset = last.phy_offset;
            self.header.end_timestamp = self.header.begin_timestamp + last.time_diff as i64 * 1000;
        }
        self.write_header();
    }

    /// msyncs the whole mapping.
    pub fn flush(&self) -> Result<()> {
        self.map
            .flush()
            .map_err(|e| StoreError::io("msync", &self.path, e))
    }

    /// Unlinks the file (the mapping stays valid until this value drops).
    pub fn remove_file(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", &self.path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_put_select_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("20240101000000000");
        let mut f = IndexFile::create(&p, 8, 5).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 40 + 8 * 4 + 5 * 20);
        let h = key_hash("T#k1");
        assert!(f.put_key(h, 100, 10_000));
        assert!(f.put_key(key_hash("T#other"), 200, 11_000));
        assert!(f.put_key(h, 300, 12_500));
        assert!(f.put_key(h, 400, 13_000));
        assert!(!f.put_key(h, 500, 14_000), "4 entries fill indexNum 5");
        let mut out = Vec::new();
        f.select(h, 10, 0, i64::MAX, &mut out);
        assert_eq!(out, vec![400, 300, 100]);
        out.clear();
        f.select(h, 10, 12_000, 13_000, &mut out);
        assert_eq!(out, vec![400, 300]);
        assert_eq!(f.header().index_count, 5);
        assert_eq!(f.header().begin_phy_offset, 100);
        assert_eq!(f.header().end_phy_offset, 400);
        // Header bytes in Java's layout.
        f.flush().unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(&raw[36..40], &5i32.to_be_bytes());
        assert_eq!(&raw[16..24], &100i64.to_be_bytes());
        drop(f);
        let mut g = IndexFile::open(&p, 8, 5).unwrap();
        out.clear();
        g.select(h, 2, 0, i64::MAX, &mut out);
        assert_eq!(out, vec![400, 300]);
        g.truncate_from_phys(300);
        out.clear();
        g.select(h, 10, 0, i64::MAX, &mut out);
        assert_eq!(out, vec![100]);
        assert_eq!(g.header().end_phy_offset, 200);
        assert!(g.put_key(h, 300, 12_500));
        out.clear();
        g.select(h, 10, 0, i64::MAX, &mut out);
        assert_eq!(out, vec![300, 100]);
        assert!(IndexFile::open(&p, 8, 6).is_err());
    }

    #[test]
    fn key_hash_matches_java() {
        // "a".hashCode() == 97; Integer.MIN_VALUE maps to 0.
        assert_eq!(key_hash("a"), 97);
        assert!(key_hash("T#some key") >= 0);
    }
}
