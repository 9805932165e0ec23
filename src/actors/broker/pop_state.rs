//! What POP consumption keeps in memory (RocketMQ's `PopMessageProcessor`
//! queue locks, `PopLongPollingService`, `ConsumerOrderInfoManager`):
//!
//! * per-queue POP locks `topic@group@queueId` — a POP skips a queue another
//!   POP of the group is reading, so two never hand out the same offsets;
//! * [`Arrivals`]: long-polling POPs wait for records of their topics (the
//!   commit-log writer calls [`Arrivals::notify`] after each dispatch);
//! * orderly POP state ([`OrderInfo`]) per `topic@group@queueId`;
//! * the count of waiting POPs per key (POLLING_INFO, POLLING_FULL).
//!
//! Everything durable lives in the store: check-points and acks in the
//! revive topic, POP offsets in the `OffsetManager`, the orderly state in
//! `config/consumerOrderInfo.json` (written by `PopOrderKeeper`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

/// Most POPs waiting on one key (`popPollingSize`).
pub const MAX_POLLING_PER_KEY: usize = 1024;
/// Most POPs waiting in all (`maxPopPollingSize`).
pub const MAX_POLLING: usize = 100_000;

/// Wakes POPs waiting for new records of a topic.
#[derive(Default)]
pub struct Arrivals {
    topics: RwLock<HashMap<String, (usize, watch::Sender<u64>)>>,
    watching: AtomicUsize,
}

impl Arrivals {
    /// Records of `topic` were dispatched (or a FIFO queue unblocked).
    pub fn notify(&self, topic: &str) {
        if self.watching.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Ok(m) = self.topics.read() {
            if let Some((_, tx)) = m.get(topic) {
                tx.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    }

    /// Starts watching `topics`; arrivals from now on wake [`ArrivalWatch::wait`].
    pub fn watch(self: &Arc<Self>, topics: &[String]) -> ArrivalWatch {
        let mut rxs = Vec::with_capacity(topics.len());
        if let Ok(mut m) = self.topics.write() {
            for t in topics {
                let e = m
                    .entry(t.clone())
                    .or_insert_with(|| (0, watch::channel(0).0));
                e.0 += 1;
                rxs.push(e.1.subscribe());
            }
        }
        self.watching.fetch_add(1, Ordering::AcqRel);
        ArrivalWatch {
            arrivals: self.clone(),
            topics: topics.to_vec(),
            rxs,
        }
    }
}

/// A registration with [`Arrivals`]; dropped when the POP stops waiting.
pub struct ArrivalWatch {
    arrivals: Arc<Arrivals>,
    topics: Vec<String>,
    rxs: Vec<watch::Receiver<u64>>,
}

impl ArrivalWatch {
    /// Waits until one of the topics got records since the last wait (or
    /// since the watch began), at most `max`. True when woken.
    pub async fn wait(&mut self, max: Duration) -> bool {
        let changed = futures_util::future::select_all(
            self.rxs
                .iter_mut()
                .map(|rx| Box::pin(async move { rx.changed().await.is_ok() })),
        );
        matches!(tokio::time::timeout(max, changed).await, Ok((true, _, _)))
    }
}

impl Drop for ArrivalWatch {
    fn drop(&mut self) {
        self.arrivals.watching.fetch_sub(1, Ordering::AcqRel);
        if let Ok(mut m) = self.arrivals.topics.write() {
            for t in &self.topics {
                if let Some(e) = m.get_mut(t) {
                    e.0 -= 1;
                    if e.0 == 0 {
                        m.remove(t);
                    }
                }
            }
        }
    }
}

/// Orderly POP state of one queue for one group (`ConsumerOrderInfoManager.OrderInfo`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OrderInfo {
    pub pop_time: i64,
    pub invisible_ms: i64,
    /// Offsets handed out by the last POP, in order.
    pub offsets: Vec<i64>,
    pub acked: Vec<bool>,
    /// When each offset becomes visible again (CHANGE_MESSAGE_INVISIBLETIME
    /// moves one).
    pub next_visible: Vec<i64>,
    /// Times each offset was handed out before (its `reconsumeTimes`).
    pub counts: HashMap<i64, i32>,
    pub attempt_id: Option<String>,
}

impl OrderInfo {
    /// Whether an un-acked offset is still invisible at `now`.
    pub fn blocks(&self, now: i64) -> bool {
        self.acked
            .iter()
            .zip(&self.next_visible)
            .any(|(a, v)| !*a && *v > now)
    }

    pub fn all_acked(&self) -> bool {
        self.acked.iter().all(|a| *a)
    }

    /// The offset to commit: the first un-acked one, else past the last.
    pub fn commit_offset(&self) -> Option<i64> {
        self.offsets
            .iter()
            .zip(&self.acked)
            .find(|(_, a)| !**a)
            .map(|(o, _)| *o)
            .or_else(|| self.offsets.last().map(|o| o + 1))
    }
}

/// The POP state of a broker, shared by the POP service and the revive actors.
pub struct PopState {
    locks: Mutex<HashSet<String>>,
    pub arrivals: Arc<Arrivals>,
    order: Mutex<HashMap<String, OrderInfo>>,
    /// Bumped on every change of `order` (what `PopOrderKeeper` persists).
    order_version: AtomicU64,
    polling: Mutex<HashMap<String, usize>>,
    polling_total: AtomicUsize,
    revive_counter: AtomicU32,
    /// `rmq_sys_REVIVE_LOG_<cluster>`.
    pub revive_topic: String,
    /// `reviveQueueNum`.
    pub revive_queues: i32,
}

/// A held POP lock; released on drop.
pub struct QueueLock<'a> {
    state: &'a PopState,
    key: String,
}

impl Drop for QueueLock<'_> {
    fn drop(&mut self) {
        if let Ok(mut l) = self.state.locks.lock() {
            l.remove(&self.key);
        }
    }
}

/// A POP counted as waiting; uncounted on drop.
pub struct PollingSlot<'a> {
    state: &'a PopState,
    key: String,
}

impl Drop for PollingSlot<'_> {
    fn drop(&mut self) {
        self.state.polling_total.fetch_sub(1, Ordering::AcqRel);
        if let Ok(mut m) = self.state.polling.lock() {
            if let Some(n) = m.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.key);
                }
            }
        }
    }
}

/// The lock / order / polling key of a queue (`KeyBuilder.buildPollingKey`).
pub fn queue_key(topic: &str, group: &str, queue_id: i32) -> String {
    format!("{topic}@{group}@{queue_id}")
}

impl PopState {
    pub fn new(revive_topic: String, revive_queues: i32) -> PopState {
        PopState {
            locks: Mutex::default(),
            arrivals: Arc::default(),
            order: Mutex::default(),
            order_version: AtomicU64::new(0),
            polling: Mutex::default(),
            polling_total: AtomicUsize::new(0),
            revive_counter: AtomicU32::new(0),
            revive_topic,
            revive_queues: revive_queues.max(1),
        }
    }

    /// Takes the POP lock of a queue without waiting; None when held.
    pub fn try_lock(&self, key: String) -> Option<QueueLock<'_>> {
        let mut l = self.locks.lock().ok()?;
        if !l.insert(key.clone()) {
            return None;
        }
        Some(QueueLock { state: self, key })
    }

    /// The revive queue of the next check-point (round robin).
    pub fn next_revive_qid(&self) -> i32 {
        (self.revive_counter.fetch_add(1, Ordering::Relaxed) % self.revive_queues as u32) as i32
    }

    /// Counts a waiting POP; None when the key or the broker is full.
    pub fn start_polling(&self, key: String) -> Option<PollingSlot<'_>> {
        let mut m = self.polling.lock().ok()?;
        let n = m.entry(key.clone()).or_insert(0);
        if *n >= MAX_POLLING_PER_KEY || self.polling_total.load(Ordering::Acquire) >= MAX_POLLING {
            if *n == 0 {
                m.remove(&key);
            }
            return None;
        }
        *n += 1;
        self.polling_total.fetch_add(1, Ordering::AcqRel);
        Some(PollingSlot { state: self, key })
    }

    /// POPs waiting on `key` now (POLLING_INFO).
    pub fn polling_count(&self, key: &str) -> usize {
        self.polling
            .lock()
            .map(|m| m.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The orderly state of a queue, if any.
    pub fn order_info(&self, key: &str) -> Option<OrderInfo> {
        self.order.lock().ok()?.get(key).cloned()
    }

    pub fn set_order_info(&self, key: String, info: OrderInfo) {
        self.with_order(|m| m.insert(key, info));
    }

    /// Changes the orderly state under its lock (None when poisoned).
    pub fn with_order<R>(&self, f: impl FnOnce(&mut HashMap<String, OrderInfo>) -> R) -> Option<R> {
        let mut m = self.order.lock().ok()?;
        let r = f(&mut m);
        self.order_version.fetch_add(1, Ordering::AcqRel);
        Some(r)
    }

    /// The orderly state and its version, for persisting.
    pub fn order_snapshot(&self) -> (u64, HashMap<String, OrderInfo>) {
        let m = self.order.lock().map(|m| m.clone()).unwrap_or_default();
        (self.order_version.load(Ordering::Acquire), m)
    }

    /// Loads persisted orderly state (at start).
    pub fn restore_order(&self, table: HashMap<String, OrderInfo>) {
        if let Ok(mut m) = self.order.lock() {
            *m = table;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lock_is_exclusive_until_dropped() {
        let s = PopState::new("r".into(), 8);
        let a = s.try_lock("k".into());
        assert!(a.is_some());
        assert!(s.try_lock("k".into()).is_none());
        drop(a);
        assert!(s.try_lock("k".into()).is_some());
    }

    #[test]
    fn order_info_commit_and_blocking() {
        let i = OrderInfo {
            pop_time: 0,
            invisible_ms: 10,
            offsets: vec![5, 6, 7],
            acked: vec![true, false, false],
            next_visible: vec![10, 10, 10],
            ..OrderInfo::default()
        };
        assert_eq!(i.commit_offset(), Some(6));
        assert!(i.blocks(9));
        assert!(!i.blocks(10));
    }

    #[tokio::test]
    async fn a_watch_sees_an_arrival_that_came_before_it_waited() {
        let a = Arc::new(Arrivals::default());
        let mut w = a.watch(&["T".into()]);
        a.notify("T");
        assert!(w.wait(Duration::from_millis(10)).await);
        assert!(!w.wait(Duration::from_millis(10)).await);
        drop(w);
        assert!(a.topics.read().unwrap().is_empty());
    }
}
