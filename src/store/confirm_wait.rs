//! Wake-ups on confirm-offset moves (controller mode).
//!
//! The consume queues cap reads at the confirm offset (records every
//! SyncStateSet member has), but the records are dispatched as they are
//! written. A long-polling reader (a held PULL, a waiting POP) that found
//! only records past the confirm offset registers here the commit-log end
//! of the first such record; a move of the confirm offset to or past that
//! end wakes it. RocketMQ gets the same effect by dispatching only up to
//! the confirm offset (its `ReputMessageService` then notifies the held
//! requests).
//!
//! A move costs one atomic load while nobody waits at or below the new
//! value; the waiters that are due are taken off a sorted map in one
//! `split_off`, never scanned one by one.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Purge receivers that gave up once this many waiters are registered
/// (doubled after each purge that keeps most of them).
const PURGE_AT: usize = 1024;

#[derive(Debug)]
pub(crate) struct ConfirmWaiters {
    /// Lowest registered end (`i64::MAX`: none): the one value a move reads.
    low: AtomicI64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    due: BTreeMap<i64, Vec<oneshot::Sender<()>>>,
    count: usize,
    purge_at: usize,
}

impl Default for ConfirmWaiters {
    fn default() -> Self {
        ConfirmWaiters {
            low: AtomicI64::new(i64::MAX),
            inner: Mutex::new(Inner {
                due: BTreeMap::new(),
                count: 0,
                purge_at: PURGE_AT,
            }),
        }
    }
}

impl ConfirmWaiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The confirm offset is now `confirm`: wakes every waiter for an end
    /// at or below it.
    pub(crate) fn release(&self, confirm: i64) {
        // SeqCst pairs with `register`: the writer stores the offset, then
        // reads `low`; a waiter stores `low`, then reads the offset. One of
        // the two sees the other.
        if confirm < self.low.load(Ordering::SeqCst) {
            return;
        }
        let fired = {
            let mut g = self.lock();
            let rest = match confirm.checked_add(1) {
                Some(above) => g.due.split_off(&above),
                None => BTreeMap::new(),
            };
            let fired = std::mem::replace(&mut g.due, rest);
            g.count -= fired.values().map(Vec::len).sum::<usize>();
            let low = g.due.keys().next().copied().unwrap_or(i64::MAX);
            self.low.store(low, Ordering::SeqCst);
            fired
        };
        for tx in fired.into_values().flatten() {
            let _ = tx.send(());
        }
    }

    /// Registers a waiter for the confirm offset reaching `end`.
    fn register(&self, end: i64, tx: oneshot::Sender<()>) {
        let mut g = self.lock();
        if g.count >= g.purge_at {
            let mut count = 0;
            g.due.retain(|_, v| {
                v.retain(|tx| !tx.is_closed());
                count += v.len();
                !v.is_empty()
            });
            g.count = count;
            g.purge_at = (count * 2).max(PURGE_AT);
        }
        g.due.entry(end).or_default().push(tx);
        g.count += 1;
        if end < self.low.load(Ordering::SeqCst) {
            self.low.store(end, Ordering::SeqCst);
        }
    }

    /// Resolves once `confirm()` (read after the registration) is at or
    /// past `end`. Dropping the future gives up; its entry goes at the next
    /// release or purge.
    pub(crate) fn wait(&self, end: i64, confirm: impl Fn() -> i64) -> ConfirmReached {
        let (tx, rx) = oneshot::channel();
        self.register(end, tx);
        self.release(confirm());
        ConfirmReached(rx)
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().count
    }
}

/// The future of [`crate::store::CommitLogReader::confirm_reached`].
#[derive(Debug)]
pub struct ConfirmReached(oneshot::Receiver<()>);

impl Future for ConfirmReached {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        // A dropped sender (never without sending, but a purge could race
        // a receiver being dropped) reads as a wake-up: the reader looks
        // again.
        std::pin::Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    async fn done(f: impl Future<Output = ()>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), f)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_move_wakes_the_waiters_at_or_below_it_only() {
        let w = Arc::new(ConfirmWaiters::default());
        let a = w.wait(100, || 50);
        let b = w.wait(200, || 50);
        let c = w.wait(100, || 50);
        assert_eq!(w.waiting(), 3);
        w.release(99);
        assert_eq!(w.waiting(), 3);
        w.release(150);
        assert_eq!(w.waiting(), 1);
        assert!(done(a).await && done(c).await);
        let mut b = Box::pin(b);
        assert!(!done(b.as_mut()).await, "200 not reached");
        w.release(i64::MAX);
        assert!(done(b).await);
        assert_eq!(w.waiting(), 0);
        assert_eq!(w.low.load(Ordering::SeqCst), i64::MAX);
    }

    #[tokio::test]
    async fn a_waiter_registered_after_the_move_resolves_at_once() {
        let w = ConfirmWaiters::default();
        assert!(done(w.wait(100, || 100)).await);
        assert_eq!(w.waiting(), 0);
    }

    #[tokio::test]
    async fn abandoned_waiters_are_purged() {
        let w = ConfirmWaiters::default();
        for i in 0..(PURGE_AT as i64 + 10) {
            drop(w.wait(1000 + i, || 0));
        }
        assert!(w.waiting() <= 11, "purged: {}", w.waiting());
        let alive = w.wait(5, || 0);
        w.release(5);
        assert!(done(alive).await);
    }
}
