//! What a SYNC_MASTER waits for: Java's `GroupTransferService` plus the
//! slave bookkeeping of `DefaultHAService` (`connectionCount`,
//! `push2SlaveMaxOffset`, `isSlaveOK`).
//!
//! Each [`HaConnection`](super::connection::HaConnection) registers itself
//! and reports its slave's acknowledged offset; a send that must be
//! replicated registers a waiter for the end of its records. Waiters are
//! kept ordered by that end, and one acknowledgement releases every waiter
//! at or below it in one pass (a split of the ordered map), so a burst of
//! sends costs one wake-up per waiter and no scan per message.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use crate::actors::broker::commit_log::FlushOutcome;

/// A slave as the master sees it (for haStatus-like reporting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveState {
    pub addr: String,
    /// Last offset the slave reported (-1 before its first report).
    pub acked: i64,
}

/// The slaves' progress and the sends waiting on it; see the module doc.
#[derive(Debug, Default)]
pub struct GroupTransfer {
    slaves: Mutex<HashMap<u64, SlaveState>>,
    /// The highest offset any slave acknowledged (`push2SlaveMaxOffset`).
    pushed: AtomicI64,
    waiters: Mutex<BTreeMap<(i64, u64), oneshot::Sender<()>>>,
    seq: AtomicU64,
    /// Woken when new records are in the log (the connections' writers).
    data: Notify,
    max_gap: AtomicI64,
}

/// Outcome of waiting for the slaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    Acked,
    Timeout,
    NotAvailable,
}

impl GroupTransfer {
    pub fn new(max_gap_not_in_sync: i64) -> GroupTransfer {
        let g = GroupTransfer::default();
        g.max_gap.store(max_gap_not_in_sync, Ordering::Relaxed);
        g
    }

    /// A new connection id.
    pub fn next_id(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    pub fn add_slave(&self, id: u64, addr: String) {
        let mut s = self.slaves.lock().unwrap_or_else(|e| e.into_inner());
        s.insert(id, SlaveState { addr, acked: -1 });
    }

    pub fn remove_slave(&self, id: u64) {
        let mut s = self.slaves.lock().unwrap_or_else(|e| e.into_inner());
        s.remove(&id);
    }

    /// The connected slaves.
    pub fn slaves(&self) -> Vec<SlaveState> {
        let s = self.slaves.lock().unwrap_or_else(|e| e.into_inner());
        s.values().cloned().collect()
    }

    /// The highest acknowledged offset of any slave so far.
    pub fn pushed(&self) -> i64 {
        self.pushed.load(Ordering::Acquire)
    }

    /// Slave `id` has everything below `offset`: releases the waiters it
    /// covers (Java: `notifyTransferSome`).
    pub fn acked(&self, id: u64, offset: i64) {
        if let Some(s) = self
            .slaves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&id)
        {
            s.acked = offset;
        }
        let before = self.pushed.fetch_max(offset, Ordering::AcqRel);
        if offset <= before {
            return;
        }
        let released = {
            let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            let rest = w.split_off(&(offset + 1, 0));
            std::mem::replace(&mut *w, rest)
        };
        for (_, tx) in released {
            let _ = tx.send(());
        }
    }

    /// Java's `isSlaveOK`: a slave is connected and no more than
    /// `haMaxGapNotInSync` behind `master_end`.
    pub fn slave_ok(&self, master_end: i64) -> bool {
        let connected = !self
            .slaves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        connected && master_end - self.pushed() < self.max_gap.load(Ordering::Relaxed)
    }

    /// Resolves once a slave acknowledged `end` (None: already).
    fn waiter(&self, end: i64) -> Option<oneshot::Receiver<()>> {
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if self.pushed() >= end {
            return None;
        }
        if w.len() >= 1024 && w.len().is_power_of_two() {
            w.retain(|_, tx| !tx.is_closed());
        }
        let (tx, rx) = oneshot::channel();
        w.insert((end, self.next_id()), tx);
        Some(rx)
    }

    /// Waits until a slave acknowledged `end`, at most `timeout`
    /// (`GroupTransferService#doWaitTransfer`, after `isSlaveOK`).
    pub async fn wait_replicated(&self, end: i64, timeout: Duration) -> Replication {
        self.wake();
        if !self.slave_ok(end) {
            return Replication::NotAvailable;
        }
        let Some(rx) = self.waiter(end) else {
            return Replication::Acked;
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Replication::Acked,
            _ => Replication::Timeout,
        }
    }

    /// The send path of a SYNC_MASTER: the flush outcome once replicated
    /// (as Java's `handleHA` runs after `handleDiskFlush`, a replication
    /// failure replaces the flush outcome).
    pub async fn sync_outcome(
        &self,
        end: i64,
        timeout: Duration,
        flush: FlushOutcome,
    ) -> FlushOutcome {
        match self.wait_replicated(end, timeout).await {
            Replication::Acked => flush,
            Replication::Timeout => FlushOutcome::SlaveTimeout,
            Replication::NotAvailable => FlushOutcome::SlaveNotAvailable,
        }
    }

    /// New records are in the log.
    pub fn wake(&self) {
        self.data.notify_waiters();
    }

    /// Resolves at the next [`GroupTransfer::wake`] (register it before
    /// looking at the log, so no wake-up is missed).
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.data.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_ack_releases_every_waiter_it_covers_and_no_other() {
        let g = std::sync::Arc::new(GroupTransfer::new(1 << 20));
        assert_eq!(
            g.wait_replicated(10, Duration::from_millis(10)).await,
            Replication::NotAvailable,
            "no slave connected"
        );
        g.add_slave(1, "s".into());
        let mut tasks = Vec::new();
        for end in [100i64, 200, 300, 400] {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                g.wait_replicated(end, Duration::from_millis(500)).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        g.acked(1, 300);
        let got: Vec<_> = futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        use Replication::*;
        assert_eq!(got, vec![Acked, Acked, Acked, Timeout]);
        assert_eq!(
            g.wait_replicated(250, Duration::from_millis(1)).await,
            Acked,
            "already acknowledged"
        );
        assert_eq!(
            g.wait_replicated(300 + (1 << 20), Duration::from_millis(1))
                .await,
            NotAvailable,
            "too far behind: not in sync"
        );
    }
}
