//! Segments made ahead of need, off the threads that write them — the job of
//! RocketMQ's `AllocateMappedFileService`, which creates the next
//! `MappedFile` of the commit log (and, with `warmMapedFileEnable`, touches
//! its pages) before the current one is full.
//!
//! A [`Prepared`] segment is created, sized and mapped on the store's
//! background thread under a temporary name (`<name>.creating`), so a crash
//! leaves nothing that looks like a segment (`mapped_file::list_numbered`
//! removes leftovers); its owner renames it when it first writes into it
//! ([`Prepared::take`]). Owners that must not block (the commit-log writer,
//! a queue actor) check [`Prepared::is_ready`] and await [`Prepared::ready`]
//! instead of waiting on their thread.

use super::error::{Result, StoreError};
use super::mapped_file::Segment;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the store's background thread (started on first use); runs
/// it inline if that thread cannot be started.
fn background(job: Job) {
    static POOL: OnceLock<Option<Mutex<std::sync::mpsc::Sender<Job>>>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("store-alloc".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let rejected = match pool {
        Some(tx) => tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .err()
            .map(|e| e.0),
        None => Some(job),
    };
    if let Some(job) = rejected {
        job();
    }
}

#[derive(Default)]
struct Slot {
    result: Mutex<Option<Result<Segment>>>,
    cond: Condvar,
    notify: tokio::sync::Notify,
}

/// A segment being made on the background thread.
pub(crate) struct Prepared {
    start: i64,
    slot: Arc<Slot>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("start", &self.start)
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Prepared {
    /// Starts making the segment for `start` in `dir`: `size` bytes, sparse
    /// except for its first `reserve` bytes (blocks reserved, see
    /// [`Segment::reserve`]).
    pub(crate) fn spawn(dir: PathBuf, start: i64, size: u64, reserve: u64) -> Prepared {
        let slot = Arc::new(Slot::default());
        let s = slot.clone();
        background(Box::new(move || {
            let made = Segment::create_spare(&dir, start, size).and_then(|seg| {
                if let Err(e) = seg.reserve(0, reserve.min(size) as usize) {
                    seg.remove_spare();
                    return Err(e);
                }
                Ok(seg)
            });
            *s.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(made);
            s.cond.notify_all();
            s.notify.notify_one();
        }));
        Prepared { start, slot }
    }

    pub(crate) fn start(&self) -> i64 {
        self.start
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.slot
            .result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Resolves once the segment is made (or its making failed).
    pub(crate) fn ready(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let slot = self.slot.clone();
        async move {
            loop {
                if slot
                    .result
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some()
                {
                    return;
                }
                // `notify_one` leaves a permit when nobody waits yet.
                slot.notify.notified().await;
            }
        }
    }

    /// The segment under its final name, waiting for it on this thread if it
    /// is not made yet (owners that must not block check `is_ready` first).
    pub(crate) fn take(self) -> Result<Segment> {
        let mut guard = self.slot.result.lock().unwrap_or_else(|e| e.into_inner());
        while guard.is_none() {
            guard = self
                .slot
                .cond
                .wait(guard)
                .unwrap_or_else(|e| e.into_inner());
        }
        let seg = guard.take().unwrap_or_else(|| {
            Err(StoreError::Corrupt {
                path: PathBuf::new(),
                reason: "prepared segment taken twice".into(),
            })
        })?;
        seg.commit_spare()?;
        Ok(seg)
    }
}

impl Prepared {
    /// Waits for the segment and removes its file (its owner no longer
    /// needs it: a deleted queue).
    pub(crate) fn discard(self) {
        let mut guard = self.slot.result.lock().unwrap_or_else(|e| e.into_inner());
        while guard.is_none() {
            guard = self
                .slot
                .cond
                .wait(guard)
                .unwrap_or_else(|e| e.into_inner());
        }
        if let Some(Ok(seg)) = guard.take() {
            seg.remove_spare();
        }
    }
}

/// Discards `p` on the background thread (after its own making, which was
/// queued there before).
pub(crate) fn discard_later(p: Prepared) {
    background(Box::new(move || p.discard()));
}

/// A prepared segment for `start`, or one made now on this thread when none
/// was prepared (or preparing it failed).
pub(crate) fn take_or_create(
    prepared: Option<Prepared>,
    dir: &Path,
    start: i64,
    size: u64,
    reserve: u64,
) -> Result<Segment> {
    match prepared {
        Some(p) if p.start() == start => match p.take() {
            Ok(seg) => return Ok(seg),
            Err(e) => tracing::warn!(error = %e, "a prepared segment is unusable; creating it now"),
        },
        Some(p) => discard_later(p),
        None => {}
    }
    let seg = Segment::create(dir, start, size, false)?;
    seg.reserve(0, reserve.min(size) as usize)?;
    Ok(seg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_segment_has_its_final_name_only_once_taken() {
        let dir = tempfile::tempdir().unwrap();
        let p = Prepared::spawn(dir.path().to_path_buf(), 8192, 8192, 4096);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(p.ready());
        assert!(p.is_ready());
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(dir.path()), ["00000000000000008192.creating"]);
        // Not a segment yet: listing removes it as a leftover of a crash.
        let seg = p.take().unwrap();
        assert_eq!(names(dir.path()), ["00000000000000008192"]);
        assert_eq!((seg.start(), seg.size()), (8192, 8192));
        unsafe { assert!(seg.write_at(0, b"x")) };
        // Without a prepared one, the segment is made inline.
        let seg = take_or_create(None, dir.path(), 16384, 8192, 0).unwrap();
        assert_eq!(seg.start(), 16384);
    }
}
