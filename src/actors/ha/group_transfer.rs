//! What a SYNC_MASTER waits for: Java's `GroupTransferService` plus the
//! slave bookkeeping of `DefaultHAService` (`connectionCount`,
//! `push2SlaveMaxOffset`, `isSlaveOK`, `inSyncReplicasNums`).
//!
//! Each [`HaConnection`](super::connection::HaConnection) registers itself
//! and reports its slave's acknowledged offset; a send that must be
//! replicated registers a waiter for the end of its records and the number
//! of replicas it needs. Waiters are kept ordered by that end, one map per
//! replica count, and one acknowledgement releases every waiter it covers
//! in one pass (a split of the ordered map), so a burst of sends costs one
//! wake-up per waiter and no scan per message.
//!
//! Learners (`asyncLearner` slaves) are tracked and replicated to but never
//! counted: not for `push2SlaveMaxOffset`, `isSlaveOK`, the in-sync count
//! or a waiter's replicas.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use super::HaConfig;
use crate::actors::broker::commit_log::FlushOutcome;

/// A slave as the master sees it (for haStatus-like reporting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveState {
    pub addr: String,
    /// Last offset the slave reported (-1 before its first report).
    pub acked: i64,
    /// An `asyncLearner` slave: replicated to, never counted.
    pub learner: bool,
}

/// Waiters for one replica count: (end offset, id) → the waiting send.
type Waiters = BTreeMap<(i64, u64), oneshot::Sender<()>>;

/// The slaves' progress and the sends waiting on it; see the module doc.
#[derive(Debug, Default)]
pub struct GroupTransfer {
    slaves: Mutex<HashMap<u64, SlaveState>>,
    /// The highest offset any counted slave acknowledged
    /// (`push2SlaveMaxOffset`).
    pushed: AtomicI64,
    /// Replicas needed besides the master → its waiters.
    waiters: Mutex<BTreeMap<usize, Waiters>>,
    seq: AtomicU64,
    /// Woken when new records are in the log (the connections' writers).
    data: Notify,
    /// controller mode with `allAckInSyncStateSet`: sends waiting for the
    /// confirm offset (every SyncStateSet member acked them).
    confirm_waiters: Mutex<Waiters>,
    /// The confirm offset those waiters were last released at.
    confirmed: AtomicI64,
    max_gap: AtomicI64,
}

/// Outcome of waiting for the slaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    Acked,
    Timeout,
    NotAvailable,
}

/// How a SYNC_MASTER send is replicated, decided before the append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// RocketMQ 4.9's rule: one slave must have it; none usable:
    /// SLAVE_NOT_AVAILABLE (`inSyncReplicas` and `minInSyncReplicas` ≤ 1).
    OneSlave,
    /// RocketMQ 5's rule: this many replicas, the master included
    /// (`inSyncReplicas`, adapted when `enableAutoInSyncReplicas`); ≤ 1
    /// answers after the local append.
    Replicas(usize),
}

/// Too few replicas in sync for the send (Java's
/// `PutMessageStatus.IN_SYNC_REPLICAS_NOT_ENOUGH`): refused before the
/// append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotEnough {
    pub in_sync: usize,
    pub needed: usize,
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

    fn lock_slaves(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SlaveState>> {
        self.slaves.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add_slave(&self, id: u64, addr: String) {
        let s = SlaveState {
            addr,
            acked: -1,
            learner: false,
        };
        self.lock_slaves().insert(id, s);
    }

    /// Slave `id` said it is a learner (before its first report).
    pub fn set_learner(&self, id: u64) {
        if let Some(s) = self.lock_slaves().get_mut(&id) {
            s.learner = true;
        }
    }

    pub fn remove_slave(&self, id: u64) {
        self.lock_slaves().remove(&id);
    }

    /// The connected slaves.
    pub fn slaves(&self) -> Vec<SlaveState> {
        self.lock_slaves().values().cloned().collect()
    }

    /// The highest acknowledged offset of any counted slave so far.
    pub fn pushed(&self) -> i64 {
        self.pushed.load(Ordering::Acquire)
    }

    /// `haMaxGapNotInSync`.
    pub fn max_gap(&self) -> i64 {
        self.max_gap.load(Ordering::Relaxed)
    }

    /// The counted slaves' acknowledged offsets, highest first.
    fn counted_acks(&self) -> Vec<i64> {
        let mut acks: Vec<i64> = self
            .lock_slaves()
            .values()
            .filter(|s| !s.learner && s.acked >= 0)
            .map(|s| s.acked)
            .collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        acks
    }

    /// Slave `id` has everything below `offset`: releases the waiters it
    /// covers (Java: `notifyTransferSome`).
    pub fn acked(&self, id: u64, offset: i64) {
        let counted = match self.lock_slaves().get_mut(&id) {
            Some(s) => {
                s.acked = offset;
                !s.learner
            }
            None => false,
        };
        if !counted {
            return;
        }
        self.pushed.fetch_max(offset, Ordering::AcqRel);
        let mut released = Vec::new();
        {
            let mut all = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            if all.values().all(|w| w.is_empty()) {
                return;
            }
            let acks = self.counted_acks();
            for (slaves, w) in all.iter_mut() {
                // The `slaves`-th highest acknowledgement covers them all.
                let Some(&covered) = acks.get(slaves - 1) else {
                    continue;
                };
                let rest = w.split_off(&(covered + 1, 0));
                released.push(std::mem::replace(w, rest));
            }
        }
        for tx in released.into_iter().flat_map(|w| w.into_values()) {
            let _ = tx.send(());
        }
    }

    /// Java's `isSlaveOK`: a slave is connected and no more than
    /// `haMaxGapNotInSync` behind `master_end`.
    pub fn slave_ok(&self, master_end: i64) -> bool {
        let connected = self.lock_slaves().values().any(|s| !s.learner);
        connected && master_end - self.pushed() < self.max_gap()
    }

    /// Java's `isInSyncSlave`: a counted slave that reported and is less
    /// than `haMaxGapNotInSync` behind `master_end`.
    pub fn in_sync(&self, s: &SlaveState, master_end: i64) -> bool {
        !s.learner && s.acked >= 0 && master_end - s.acked < self.max_gap()
    }

    /// Java's `inSyncReplicasNums`: the master plus every slave in sync at
    /// `master_end`.
    pub fn in_sync_replicas(&self, master_end: i64) -> usize {
        let slaves = self.lock_slaves();
        1 + slaves
            .values()
            .filter(|s| self.in_sync(s, master_end))
            .count()
    }

    /// The replication a SYNC_MASTER send needs (Java 5's
    /// `CommitLog#asyncPutMessage` with `calcNeedAckNums`), or
    /// IN_SYNC_REPLICAS_NOT_ENOUGH when fewer replicas than that (or than
    /// `minInSyncReplicas`) are in sync at `master_end`.
    pub fn quorum(&self, cfg: &HaConfig, master_end: i64) -> Result<Quorum, NotEnough> {
        let (want, min) = (cfg.in_sync_replicas, cfg.min_in_sync_replicas);
        if want <= 1 && min <= 1 && !cfg.auto_in_sync_replicas {
            return Ok(Quorum::OneSlave);
        }
        let in_sync = self.in_sync_replicas(master_end);
        let needed = if cfg.auto_in_sync_replicas {
            want.min(in_sync).max(min)
        } else {
            want
        };
        if in_sync < min || needed > in_sync {
            return Err(NotEnough {
                in_sync,
                needed: needed.max(min),
            });
        }
        Ok(Quorum::Replicas(needed))
    }

    /// Resolves once `slaves` counted slaves acknowledged `end` (None:
    /// already).
    fn waiter(&self, end: i64, slaves: usize) -> Option<oneshot::Receiver<()>> {
        let mut all = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if self
            .counted_acks()
            .get(slaves - 1)
            .is_some_and(|a| *a >= end)
        {
            return None;
        }
        let w = all.entry(slaves).or_default();
        if w.len() >= 1024 && w.len().is_power_of_two() {
            w.retain(|_, tx| !tx.is_closed());
        }
        let (tx, rx) = oneshot::channel();
        w.insert((end, self.next_id()), tx);
        Some(rx)
    }

    /// Waits until `slaves` counted slaves acknowledged `end`, at most
    /// `timeout` (`GroupTransferService#doWaitTransfer`).
    async fn wait_acks(&self, end: i64, slaves: usize, timeout: Duration) -> Replication {
        let Some(rx) = self.waiter(end, slaves.max(1)) else {
            return Replication::Acked;
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Replication::Acked,
            _ => Replication::Timeout,
        }
    }

    /// Waits until a slave acknowledged `end`, at most `timeout`, after
    /// Java 4.9's `isSlaveOK`.
    pub async fn wait_replicated(&self, end: i64, timeout: Duration) -> Replication {
        self.wake();
        if !self.slave_ok(end) {
            return Replication::NotAvailable;
        }
        self.wait_acks(end, 1, timeout).await
    }

    /// The send path of a SYNC_MASTER: the flush outcome once replicated
    /// as `quorum` says (as Java's `handleHA` runs after `handleDiskFlush`,
    /// a replication failure replaces the flush outcome).
    pub async fn sync_outcome(
        &self,
        end: i64,
        timeout: Duration,
        flush: FlushOutcome,
        quorum: Quorum,
    ) -> FlushOutcome {
        let r = match quorum {
            Quorum::OneSlave => self.wait_replicated(end, timeout).await,
            Quorum::Replicas(n) if n <= 1 => (self.wake(), Replication::Acked).1,
            Quorum::Replicas(n) => {
                self.wake();
                self.wait_acks(end, n - 1, timeout).await
            }
        };
        match r {
            Replication::Acked => flush,
            Replication::Timeout => FlushOutcome::SlaveTimeout,
            Replication::NotAvailable => FlushOutcome::SlaveNotAvailable,
        }
    }

    /// The confirm offset moved to `offset`: releases every send it covers
    /// in one pass.
    pub fn confirmed(&self, offset: i64) {
        let released = {
            let mut w = self
                .confirm_waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.confirmed.store(offset, Ordering::Release);
            let rest = w.split_off(&(offset + 1, 0));
            std::mem::replace(&mut *w, rest)
        };
        for tx in released.into_values() {
            let _ = tx.send(());
        }
    }

    /// Waits until the confirm offset reaches `end`, at most `timeout`
    /// (`allAckInSyncStateSet`): the flush outcome, or SlaveTimeout.
    pub async fn wait_confirmed(
        &self,
        end: i64,
        timeout: Duration,
        flush: FlushOutcome,
    ) -> FlushOutcome {
        self.wake();
        let rx = {
            let mut w = self
                .confirm_waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if self.confirmed.load(Ordering::Acquire) >= end {
                return flush;
            }
            if w.len() >= 1024 && w.len().is_power_of_two() {
                w.retain(|_, tx| !tx.is_closed());
            }
            let (tx, rx) = oneshot::channel();
            w.insert((end, self.next_id()), tx);
            rx
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => flush,
            _ => FlushOutcome::SlaveTimeout,
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

    #[tokio::test]
    async fn a_quorum_wait_needs_that_many_slaves_and_learners_never_count() {
        let g = std::sync::Arc::new(GroupTransfer::new(1 << 20));
        let cfg = HaConfig {
            in_sync_replicas: 3,
            ..HaConfig::default()
        };
        for id in 1..=3 {
            g.add_slave(id, format!("s{id}"));
        }
        g.set_learner(3);
        for id in 1..=3 {
            g.acked(id, 0);
        }
        assert_eq!(g.in_sync_replicas(0), 3, "the master and two slaves");
        assert_eq!(g.quorum(&cfg, 0), Ok(Quorum::Replicas(3)));
        let waiting = {
            let g = g.clone();
            tokio::spawn(async move {
                g.sync_outcome(
                    100,
                    Duration::from_secs(5),
                    FlushOutcome::Ok,
                    Quorum::Replicas(3),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        g.acked(1, 100);
        g.acked(3, 100);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "one slave and a learner are not two"
        );
        g.acked(2, 150);
        assert_eq!(waiting.await.unwrap(), FlushOutcome::Ok);
        g.remove_slave(2);
        assert_eq!(
            g.quorum(&cfg, 150),
            Err(NotEnough {
                in_sync: 2,
                needed: 3
            })
        );
    }
}
