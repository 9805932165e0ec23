//! The flusher: one std thread that makes appended data durable.
//!
//! * Every `flush_interval_ms` it msyncs the commit log's dirty range, every
//!   registered consume queue, and writes the checkpoint.
//! * Group commit: [`Flusher::flush_waiter`] registers interest in an end
//!   offset and wakes the thread; one msync then covers everything published
//!   so far, resolving every waiter that arrived meanwhile (never one sync
//!   per message).
//! * The actor layer reports dispatch progress with [`Flusher::set_dispatched`]
//!   (every record below the offset has its consume-queue unit written); the
//!   checkpoint records `min(dispatched, flushed)` so crash recovery knows
//!   where it must start re-dispatching.

use super::checkpoint::{self, Checkpoint};
use super::commit_log::{CommitLog, LogShared};
use super::config::StoreConfig;
use super::consume_queue::{ConsumeQueue, CqFlushHandle};
use super::error::{Result, StoreError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Waiter = (i64, oneshot::Sender<bool>);

#[derive(Default)]
struct State {
    waiters: Vec<Waiter>,
    stop: bool,
}

struct Inner {
    log: Arc<LogShared>,
    checkpoint_path: PathBuf,
    interval: Duration,
    sync_timeout: Duration,
    state: Mutex<State>,
    wake: Condvar,
    /// Serialises msync rounds of the commit log.
    flush_lock: Mutex<()>,
    queues: Mutex<Vec<CqFlushHandle>>,
    dispatched: AtomicI64,
    syncs: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// msyncs the commit log up to the published end; returns the flushed offset.
    fn flush_log(&self) -> Result<i64> {
        let _g = lock(&self.flush_lock);
        let target = self.log.max_offset.load(Ordering::Acquire);
        let from = self.log.flushed.load(Ordering::Acquire);
        if target <= from {
            return Ok(from);
        }
        for s in self
            .log
            .snapshot()
            .iter()
            .filter(|s| s.end() > from && s.start() < target)
        {
            let a = from.max(s.start());
            let b = target.min(s.end());
            s.flush_range((a - s.start()) as usize, (b - a) as usize)?;
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.log.flushed.store(target, Ordering::Release);
        Ok(target)
    }

    /// Flushes queues and the log, then writes the checkpoint.
    fn flush_queues_and_checkpoint(&self) -> Result<()> {
        let dispatched = self.dispatched.load(Ordering::Acquire);
        let queues: Vec<CqFlushHandle> = {
            let mut q = lock(&self.queues);
            // Forget queues whose owner dropped them (after a final flush).
            q.retain(|h| Arc::strong_count(h) > 1 || h.flush().is_err());
            q.clone()
        };
        for q in &queues {
            q.flush()?;
        }
        let flushed = self.flush_log()?;
        let ts = self.log.last_store_timestamp.load(Ordering::Relaxed);
        let mut cp = Checkpoint::load(&self.checkpoint_path)?.unwrap_or_default();
        cp.physic_msg_timestamp = ts;
        cp.logics_msg_timestamp = ts;
        cp.commitlog_flushed = Some(flushed);
        cp.dispatched_flushed = Some(dispatched.min(flushed));
        // controller mode: `confirmPhyOffset` at byte 32, as Java's.
        let confirm = self.log.confirm.load(Ordering::Acquire);
        if confirm != i64::MAX {
            cp.confirm_phy_offset = confirm.min(self.log.max_offset.load(Ordering::Acquire));
        }
        cp.store(&self.checkpoint_path)
    }

    fn run(&self) {
        let mut last_periodic = Instant::now();
        let mut pending: Vec<Waiter> = Vec::new();
        loop {
            let stop = {
                let mut st = lock(&self.state);
                while st.waiters.is_empty() && !st.stop {
                    let elapsed = last_periodic.elapsed();
                    if elapsed >= self.interval {
                        break;
                    }
                    st = self
                        .wake
                        .wait_timeout(st, self.interval - elapsed)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                pending.append(&mut st.waiters);
                st.stop
            };
            let ok = match self.flush_log() {
                Ok(_) => true,
                Err(e) => {
                    tracing::error!(error = %e, "commit log flush failed");
                    false
                }
            };
            let flushed = self.log.flushed.load(Ordering::Acquire);
            // Waiters beyond the published end (misuse) wait for a later round.
            let (keep, done): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut pending)
                .into_iter()
                .partition(|(end, _)| *end > flushed && ok);
            pending = keep;
            for (_, tx) in done {
                let _ = tx.send(ok);
            }
            if last_periodic.elapsed() >= self.interval || stop {
                if let Err(e) = self.flush_queues_and_checkpoint() {
                    tracing::error!(error = %e, "periodic flush failed");
                }
                last_periodic = Instant::now();
            }
            if stop {
                for (_, tx) in pending.drain(..) {
                    let _ = tx.send(false);
                }
                return;
            }
        }
    }
}

/// Handle to the flusher thread.
pub struct Flusher {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
    cfg: StoreConfig,
}

impl Flusher {
    /// Starts flushing `log`. The dispatch watermark starts at the log's
    /// current end (recovery has dispatched everything before it).
    pub fn start(cfg: &StoreConfig, log: &CommitLog) -> Result<Flusher> {
        let inner = Arc::new(Inner {
            log: log.shared().clone(),
            checkpoint_path: cfg.checkpoint_path(),
            interval: Duration::from_millis(cfg.flush_interval_ms.max(1)),
            sync_timeout: Duration::from_millis(cfg.sync_flush_timeout_ms),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            flush_lock: Mutex::new(()),
            queues: Mutex::new(Vec::new()),
            dispatched: AtomicI64::new(log.max_offset()),
            syncs: AtomicU64::new(0),
        });
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || worker.run())
            .map_err(|e| StoreError::io("spawn flusher for", &cfg.root, e))?;
        Ok(Flusher {
            inner,
            thread: Mutex::new(Some(thread)),
            cfg: cfg.clone(),
        })
    }

    /// Includes `cq` in periodic flushes (until the queue is dropped).
    pub fn register_queue(&self, cq: &ConsumeQueue) {
        lock(&self.inner.queues).push(cq.flush_handle());
    }

    /// Resolves to true once the commit log is durable up to `end_offset`
    /// (false if flushing failed or the flusher stopped).
    pub fn flush_waiter(&self, end_offset: i64) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        if self.inner.log.flushed.load(Ordering::Acquire) >= end_offset {
            let _ = tx.send(true);
            return rx;
        }
        let mut st = lock(&self.inner.state);
        if st.stop {
            let _ = tx.send(false);
        } else {
            st.waiters.push((end_offset, tx));
            self.inner.wake.notify_one();
        }
        rx
    }

    /// [`Self::flush_waiter`] bounded by `sync_flush_timeout_ms` (false on timeout).
    pub async fn wait_durable(&self, end_offset: i64) -> bool {
        let rx = self.flush_waiter(end_offset);
        matches!(
            tokio::time::timeout(self.inner.sync_timeout, rx).await,
            Ok(Ok(true))
        )
    }

    /// Every record below `phys_end` has its consume-queue unit written.
    pub fn set_dispatched(&self, phys_end: i64) {
        self.inner.dispatched.fetch_max(phys_end, Ordering::AcqRel);
    }

    /// The log was cut back to `phys_end` (a slave's truncation).
    pub fn lower_dispatched(&self, phys_end: i64) {
        self.inner.dispatched.fetch_min(phys_end, Ordering::AcqRel);
    }

    pub fn dispatched(&self) -> i64 {
        self.inner.dispatched.load(Ordering::Acquire)
    }

    /// Number of commit-log msync rounds so far.
    pub fn sync_count(&self) -> u64 {
        self.inner.syncs.load(Ordering::Relaxed)
    }

    /// Flushes everything now and writes the checkpoint.
    pub fn flush_all(&self) -> Result<()> {
        self.inner.flush_queues_and_checkpoint()
    }

    fn stop_thread(&self) {
        lock(&self.inner.state).stop = true;
        self.inner.wake.notify_one();
        let handle = lock(&self.thread).take();
        if let Some(t) = handle {
            let _ = t.join();
        }
    }

    /// Clean shutdown: stop the thread (pending waiters get false), flush
    /// everything, write the checkpoint and remove `abort`. Call after the last
    /// append and consume-queue put. Blocking; idempotent.
    pub fn shutdown(&self) -> Result<()> {
        self.stop_thread();
        self.inner.flush_queues_and_checkpoint()?;
        checkpoint::remove_abort_marker(&self.cfg)
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::commit_log::tests::{rec, tiny_cfg};

    #[test]
    fn group_commit_uses_fewer_syncs_than_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = tiny_cfg(dir.path());
        cfg.flush_interval_ms = 60_000;
        let mut log = CommitLog::open(&cfg).unwrap();
        let flusher = Flusher::start(&cfg, &log).unwrap();
        let mut rxs = Vec::new();
        for i in 0..300 {
            let mut r = rec("T", i % 4, i as i64, 64);
            let res = log.append(&mut r).unwrap();
            rxs.push(flusher.flush_waiter(res.end_offset));
        }
        for rx in rxs {
            assert!(rx.blocking_recv().unwrap());
        }
        let syncs = flusher.sync_count();
        assert!((1..300).contains(&syncs), "syncs = {syncs}");
        assert_eq!(log.reader().flushed_offset(), log.max_offset());
        // Already durable: resolves immediately, no new sync.
        assert!(flusher
            .flush_waiter(log.max_offset())
            .blocking_recv()
            .unwrap());
        assert_eq!(flusher.sync_count(), syncs);
        flusher.shutdown().unwrap();
        let cp = Checkpoint::load(&cfg.checkpoint_path()).unwrap().unwrap();
        assert_eq!(cp.commitlog_flushed, Some(log.max_offset()));
    }

    #[test]
    fn async_mode_flushes_periodically() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = tiny_cfg(dir.path());
        cfg.flush_interval_ms = 10;
        let mut log = CommitLog::open(&cfg).unwrap();
        let flusher = Flusher::start(&cfg, &log).unwrap();
        let mut r = rec("T", 0, 0, 10);
        log.append(&mut r).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.reader().flushed_offset() < log.max_offset() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(log.reader().flushed_offset(), log.max_offset());
        drop(flusher);
    }
}
