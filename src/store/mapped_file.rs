//! One memory-mapped, fixed-size segment file named after its 20-digit start
//! offset. Used by the commit log and the consume queues.
//!
//! Concurrency contract: a segment has one writer. The writer only writes bytes
//! that no reader can see yet and publishes them afterwards with a Release
//! store of the owner's write position; readers only form slices below a
//! position they loaded with Acquire. `write_at` / `slice` are `unsafe` because
//! the segment cannot check that contract itself.

use super::error::{Result, StoreError};
use memmap2::MmapRaw;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub struct Segment {
    start: i64,
    size: usize,
    path: PathBuf,
    file: File,
    map: MmapRaw,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("start", &self.start)
            .field("size", &self.size)
            .field("path", &self.path)
            .finish()
    }
}

/// RocketMQ file name for a segment starting at `start`.
pub fn file_name(start: i64) -> String {
    format!("{start:020}")
}

/// Segment files in `dir` as `(start, path)` sorted by start; other names are
/// ignored. A missing directory yields an empty list.
pub fn list_segments(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    Ok(list_numbered(dir, 20)?
        .into_iter()
        .filter_map(|(n, p)| i64::try_from(n).ok().map(|n| (n, p)))
        .collect())
}

/// Suffix of a segment file being created.
const CREATING: &str = ".creating";

fn creating_name(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(CREATING);
    PathBuf::from(tmp)
}

/// Creates (or replaces) the file `path` sized to `size` bytes, its blocks
/// reserved when `preallocate` is set. The file is made under a temporary
/// name (`<name>.creating`) and renamed once sized, so a process killed in
/// between leaves no wrong-sized file for the next start to refuse; a
/// leftover is removed when its directory is next listed.
pub(crate) fn create_sized(path: &Path, size: u64, preallocate: bool) -> Result<File> {
    let tmp = creating_name(path);
    let made = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StoreError::io("create", &tmp, e))
        .and_then(|file| {
            file.set_len(size)
                .map_err(|e| StoreError::io("extend", &tmp, e))?;
            if preallocate {
                allocate_blocks(&file, size).map_err(|e| StoreError::io("preallocate", &tmp, e))?;
            }
            std::fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", &tmp, e))?;
            Ok(file)
        });
    if made.is_err() {
        // Leave no half-made file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    made
}

/// Opens a store file for reading and writing, creating it (and its
/// directory) when missing; an existing file keeps its contents.
pub(crate) fn open_or_create(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::io("open", path, e))
}

/// Opens an existing store file for reading and writing; its length must be
/// `want` (anything else is reported as corrupt: "`what` L, expected W").
pub(crate) fn open_sized(path: &Path, want: u64, what: &str) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StoreError::io("stat", path, e))?
        .len();
    if len != want {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{what} {len}, expected {want}"),
        });
    }
    Ok(file)
}

/// Files in `dir` whose names are exactly `digits` decimal digits, as
/// `(number, path)` sorted by number (commit-log and consume-queue segments:
/// 20 digits; index files: 17). A missing directory yields an empty list.
pub fn list_numbered(dir: &Path, digits: usize) -> Result<Vec<(u64, PathBuf)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let numbered = |n: &str| n.len() == digits && n.bytes().all(|b| b.is_ascii_digit());
        if name.strip_suffix(CREATING).is_some_and(numbered) {
            // A creation a crash interrupted (see `Segment::create`).
            tracing::warn!(path = %entry.path().display(), "removing a half-created store file");
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        if numbered(name) {
            if let Ok(n) = name.parse::<u64>() {
                out.push((n, entry.path()));
            }
        }
    }
    out.sort_unstable_by_key(|(n, _)| *n);
    Ok(out)
}

impl Segment {
    /// Creates (or truncates) the segment file for `start` in `dir`, sized to
    /// `size` bytes, zero-filled on disk when `preallocate` is set.
    pub fn create(dir: &Path, start: i64, size: u64, preallocate: bool) -> Result<Segment> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
        let path = dir.join(file_name(start));
        let file = create_sized(&path, size, preallocate)?;
        Self::map(file, path, start, size)
    }

    /// Creates the segment file for `start` in `dir` under its temporary name
    /// (`<name>.creating`), sparse, sized and mapped; [`Segment::commit_spare`]
    /// gives it its final name (see `store::prepare`).
    pub(crate) fn create_spare(dir: &Path, start: i64, size: u64) -> Result<Segment> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
        let path = dir.join(file_name(start));
        let tmp = creating_name(&path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        if let Err(e) = file.set_len(size) {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::io("extend", &tmp, e));
        }
        Self::map(file, path, start, size)
    }

    /// Renames a segment made by [`Segment::create_spare`] to its final name.
    pub(crate) fn commit_spare(&self) -> Result<()> {
        let tmp = creating_name(&self.path);
        std::fs::rename(&tmp, &self.path).map_err(|e| StoreError::io("rename", &tmp, e))
    }

    /// Removes the file of a segment made by [`Segment::create_spare`] that
    /// was never committed.
    pub(crate) fn remove_spare(&self) {
        let _ = std::fs::remove_file(creating_name(&self.path));
    }

    /// Reserves the blocks of `pos..pos+len` (Linux `fallocate`, keeping the
    /// size), so running out of disk fails here with `DiskFull` instead of
    /// faulting (SIGBUS) on a later write into the mapping. Filesystems
    /// without `fallocate` leave the range sparse. Never writes data, so it
    /// may run beside the writer.
    pub fn reserve(&self, pos: usize, len: usize) -> Result<()> {
        use std::os::fd::AsRawFd;
        let end = pos.saturating_add(len).min(self.size);
        if end <= pos {
            return Ok(());
        }
        // SAFETY: plain syscall on a descriptor owned by this segment.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                0,
                pos as libc::off_t,
                (end - pos) as libc::off_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(()),
            _ => Err(StoreError::io("reserve", &self.path, err)),
        }
    }

    /// Opens an existing segment; its length must be `size`.
    pub fn open(path: &Path, start: i64, size: u64) -> Result<Segment> {
        let file = open_sized(path, size, "length")?;
        Self::map(file, path.to_path_buf(), start, size)
    }

    fn map(file: File, path: PathBuf, start: i64, size: u64) -> Result<Segment> {
        let map = MmapRaw::map_raw(&file).map_err(|e| StoreError::io("mmap", &path, e))?;
        Ok(Segment {
            start,
            size: size as usize,
            path,
            file,
            map,
        })
    }

    pub fn start(&self) -> i64 {
        self.start
    }
    pub fn size(&self) -> usize {
        self.size
    }
    /// One past the last global offset of this segment.
    pub fn end(&self) -> i64 {
        self.start + self.size as i64
    }
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies `data` to `pos`. Panics never: out-of-range writes are clipped
    /// away by returning false.
    ///
    /// # Safety
    /// The caller is the segment's only writer and no reader may access
    /// `pos..pos+data.len()` until the write is published.
    pub unsafe fn write_at(&self, pos: usize, data: &[u8]) -> bool {
        match pos.checked_add(data.len()) {
            Some(end) if end <= self.size => {
                // SAFETY: in bounds (checked above); exclusivity per the contract.
                std::ptr::copy_nonoverlapping(
                    data.as_ptr(),
                    self.map.as_mut_ptr().add(pos),
                    data.len(),
                );
                true
            }
            _ => false,
        }
    }

    /// Turns off read-ahead for this mapping. Consume-queue files are
    /// touched 20 bytes at a time; with read-ahead, the first write into a
    /// fresh file faults in (and zeroes) a whole read-ahead window, which
    /// made creating many queues at once stall the dispatching thread.
    pub fn advise_random(&self) {
        // SAFETY: advisory call over exactly this mapping.
        unsafe {
            libc::madvise(
                self.map.as_mut_ptr() as *mut libc::c_void,
                self.size,
                libc::MADV_RANDOM,
            );
        }
    }

    /// Faults in `pos..pos+len` for writing ahead of the writer (Linux
    /// `MADV_POPULATE_WRITE`), so the page-cache allocation and zeroing of
    /// fresh pages happens on a background thread instead of inside
    /// `append`. Returns false when the kernel does not support it.
    pub fn populate_write(&self, pos: usize, len: usize) -> bool {
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        let end = pos.saturating_add(len).min(self.size);
        let page = 4096usize;
        let start = pos / page * page;
        if end <= start {
            return true;
        }
        // SAFETY: the range lies inside this mapping; populating pages does
        // not change their contents.
        let rc = unsafe {
            libc::madvise(
                self.map.as_mut_ptr().add(start) as *mut libc::c_void,
                end - start,
                MADV_POPULATE_WRITE,
            )
        };
        rc == 0
    }

    /// Borrows `pos..pos+len`, or None when out of range.
    ///
    /// # Safety
    /// Nobody may write the range while the slice lives (it must be published).
    pub unsafe fn slice(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.size {
            return None;
        }
        // SAFETY: in bounds; no concurrent writer per the contract.
        Some(std::slice::from_raw_parts(self.map.as_ptr().add(pos), len))
    }

    /// Synchronously flushes `pos..pos+len` to disk (msync).
    pub fn flush_range(&self, pos: usize, len: usize) -> Result<()> {
        if len == 0 || pos >= self.size {
            return Ok(());
        }
        let len = len.min(self.size - pos);
        self.map
            .flush_range(pos, len)
            .map_err(|e| StoreError::io("msync", &self.path, e))
    }

    /// Removes the file; the mapping stays valid while this value lives.
    pub fn remove_file(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", &self.path, e)),
        }
    }

    /// Last modification time of the file.
    pub fn modified(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
    }
}

/// Keeps a segment alive while a `Bytes` borrows part of its mapping.
pub(crate) struct SegmentSlice {
    pub(crate) seg: std::sync::Arc<Segment>,
    pub(crate) pos: usize,
    pub(crate) len: usize,
}

impl AsRef<[u8]> for SegmentSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: SegmentSlice is only built for published ranges (checked by
        // the reader), which are never written again; bounds were checked too.
        unsafe { self.seg.slice(self.pos, self.len) }.unwrap_or(&[])
    }
}

/// Reserves the file's blocks up front (fallocate), so running out of disk
/// fails here with ENOSPC instead of faulting on a later write into the
/// mapping. Unlike writing zeros this costs no I/O, so creating a 1 GiB
/// segment in the background does not disturb the send path. Filesystems
/// without fallocate fall back to writing zeros.
pub(crate) fn allocate_blocks(file: &File, size: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a file descriptor we own for the duration.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => {
            let zeros = vec![0u8; (1 << 20).min(size as usize)];
            let mut pos = 0u64;
            while pos < size {
                let n = zeros.len().min((size - pos) as usize);
                file.write_all_at(&zeros[..n], pos)?;
                pos += n as u64;
            }
            file.sync_data()
        }
        err => Err(std::io::Error::from_raw_os_error(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_write_read_list() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 4096, 4096, true).unwrap();
        assert_eq!(seg.end(), 8192);
        unsafe {
            assert!(seg.write_at(10, b"abc"));
            assert!(!seg.write_at(4095, b"ab"));
            assert_eq!(seg.slice(10, 3), Some(&b"abc"[..]));
            assert_eq!(seg.slice(4095, 2), None);
        }
        seg.flush_range(0, 4096).unwrap();
        let list = list_segments(dir.path()).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].0, 4096);
        assert!(list[0].1.ends_with("00000000000000004096"));
        let again = Segment::open(&list[0].1, 4096, 4096).unwrap();
        assert_eq!(unsafe { again.slice(10, 3) }, Some(&b"abc"[..]));
        assert!(Segment::open(&list[0].1, 4096, 8192).is_err());
        // Only the final name exists once created.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["00000000000000004096"]);
    }

    #[test]
    fn a_creation_cut_short_is_not_a_segment_and_is_cleaned_up() {
        // What a process killed between creating and sizing a file leaves.
        let dir = tempfile::tempdir().unwrap();
        let torn = dir.path().join("00000000000000000000.creating");
        std::fs::write(&torn, b"").unwrap();
        assert!(list_segments(dir.path()).unwrap().is_empty());
        assert!(!torn.exists());
        // The same segment can then be made whole.
        let seg = Segment::create(dir.path(), 0, 4096, false).unwrap();
        assert_eq!(seg.size(), 4096);
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    }
}
