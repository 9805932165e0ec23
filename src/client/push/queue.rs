//! The client-side state of one assigned queue (Java `ProcessQueue`): the
//! window of pulled messages not yet consumed, keyed by queue offset, with
//! its byte count for flow control, the next offset to pull, the drop flag
//! set when the queue is taken away, and the ordered-consumption lock.
//!
//! The offset to commit is the lowest offset still in the window, or the
//! next offset to pull when the window is empty.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

use tokio::sync::{watch, Notify};

use crate::wire::bodies::MessageQueue;
use crate::wire::message::MessageExt;
use crate::wire::now_ms;

/// A broker lock older than this is treated as lost (Java: 30 s).
pub const LOCK_EXPIRY_MS: i64 = 30_000;

#[derive(Default)]
pub struct Window {
    pub msgs: BTreeMap<i64, MessageExt>,
    pub bytes: usize,
    /// Next offset to pull (`None` until the start offset is known).
    pub next_offset: Option<i64>,
}

impl Window {
    /// The offset to commit: lowest in flight, else the next to pull.
    pub fn commit_offset(&self) -> Option<i64> {
        self.msgs.keys().next().copied().or(self.next_offset)
    }
}

pub struct QueueState {
    pub mq: MessageQueue,
    pub window: Mutex<Window>,
    pub dropped: AtomicBool,
    pub locked: AtomicBool,
    pub last_lock_ms: AtomicI64,
    pub last_pull_ms: AtomicI64,
    pub last_consume_ms: AtomicI64,
    /// Wakes the orderly worker when messages arrive.
    pub wake: Notify,
    /// Held by the orderly worker while it consumes.
    pub consuming: tokio::sync::Mutex<()>,
    stop: watch::Sender<bool>,
}

impl QueueState {
    pub fn new(mq: MessageQueue) -> Self {
        QueueState {
            mq,
            window: Mutex::new(Window::default()),
            dropped: AtomicBool::new(false),
            locked: AtomicBool::new(false),
            last_lock_ms: AtomicI64::new(0),
            last_pull_ms: AtomicI64::new(0),
            last_consume_ms: AtomicI64::new(0),
            wake: Notify::new(),
            consuming: tokio::sync::Mutex::new(()),
            stop: watch::channel(false).0,
        }
    }

    pub fn lock_window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the queue dropped and wakes its tasks.
    pub fn drop_queue(&self) {
        self.dropped.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        self.wake.notify_waiters();
    }

    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Resolves once the queue is dropped.
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Adds pulled messages and moves the pull position to `next`.
    pub fn add(&self, msgs: Vec<MessageExt>, next: i64) {
        let mut w = self.lock_window();
        for m in msgs {
            let len = m.body.len();
            if w.msgs.insert(m.queue_offset, m).is_none() {
                w.bytes += len;
            }
        }
        w.next_offset = Some(next);
    }

    /// Removes consumed messages; returns the new commit offset.
    pub fn remove(&self, offsets: &[i64]) -> Option<i64> {
        let mut w = self.lock_window();
        for o in offsets {
            if let Some(m) = w.msgs.remove(o) {
                w.bytes = w.bytes.saturating_sub(m.body.len());
            }
        }
        w.commit_offset()
    }

    /// (count, bytes) in the window.
    pub fn load(&self) -> (usize, usize) {
        let w = self.lock_window();
        (w.msgs.len(), w.bytes)
    }

    pub fn set_locked(&self, locked: bool) {
        self.locked.store(locked, Ordering::Release);
        if locked {
            self.last_lock_ms.store(now_ms(), Ordering::Release);
            self.wake.notify_waiters();
        }
    }

    /// Holds an unexpired broker lock.
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
            && now_ms() - self.last_lock_ms.load(Ordering::Acquire) < LOCK_EXPIRY_MS
    }
}
