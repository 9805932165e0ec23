//! Queue selection for sends: round robin over a topic's write queues with
//! latency fault tolerance, and the hash selector of ordered sends.
//!
//! Fault tolerance (Java `MQFaultStrategy` facts): after each send the
//! producer records the broker's latency; a failure counts as 10 s. A
//! latency maps to a back-off period during which the broker is avoided
//! (≥ 550 ms → 2 s, ≥ 1.8 s → 5 s, ≥ 3 s → 6 s, ≥ 5 s → 10 s,
//! ≥ 15 s → 30 s). Selection prefers queues of available brokers, then any
//! queue not on the broker that just failed, then any queue at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::wire::bodies::MessageQueue;
use crate::wire::message::java_hash;

/// Latency thresholds (ms) and the back-off each one earns (ms).
const LATENCY_MAX: [u64; 7] = [50, 100, 550, 1800, 3000, 5000, 15000];
const NOT_AVAILABLE: [u64; 7] = [0, 0, 2000, 5000, 6000, 10000, 30000];
/// The latency charged for a failed send.
const FAILURE_LATENCY: Duration = Duration::from_millis(10_000);

/// Back-off for a send that took `latency`.
pub fn back_off_for(latency: Duration) -> Duration {
    let ms = latency.as_millis() as u64;
    LATENCY_MAX
        .iter()
        .zip(NOT_AVAILABLE)
        .rev()
        .find(|(max, _)| ms >= **max)
        .map_or(Duration::ZERO, |(_, d)| Duration::from_millis(d))
}

/// Per-broker availability learned from send latencies.
#[derive(Default)]
pub struct FaultTracker {
    until: Mutex<HashMap<String, Instant>>,
}

impl FaultTracker {
    /// Records a send to `broker` that took `latency` (or failed).
    pub fn record(&self, broker: &str, latency: Duration, failed: bool) {
        let lat = if failed { FAILURE_LATENCY } else { latency };
        let back_off = back_off_for(lat);
        let mut map = self.until.lock().unwrap_or_else(|e| e.into_inner());
        if back_off.is_zero() {
            map.remove(broker);
        } else {
            map.insert(broker.to_string(), Instant::now() + back_off);
        }
    }

    /// Whether `broker` is outside any back-off period.
    pub fn is_available(&self, broker: &str) -> bool {
        let map = self.until.lock().unwrap_or_else(|e| e.into_inner());
        map.get(broker).is_none_or(|t| Instant::now() >= *t)
    }
}

/// Round-robin selector over write queues with fault avoidance.
#[derive(Default)]
pub struct QueueSelector {
    counter: AtomicUsize,
    pub faults: FaultTracker,
    /// When false, only the broker of the previous failed attempt is avoided.
    pub fault_tolerance: bool,
}

impl QueueSelector {
    pub fn new(fault_tolerance: bool) -> Self {
        QueueSelector {
            counter: AtomicUsize::new(rand::random::<u16>() as usize),
            faults: FaultTracker::default(),
            fault_tolerance,
        }
    }

    /// The next queue: first one on an available broker other than
    /// `last_failed`, then one not on `last_failed`, then the next in turn.
    pub fn select<'a>(
        &self,
        queues: &'a [MessageQueue],
        last_failed: Option<&str>,
    ) -> Option<&'a MessageQueue> {
        if queues.is_empty() {
            return None;
        }
        let n = queues.len();
        let start = self.counter.fetch_add(1, Ordering::Relaxed);
        let nth = |i: usize| &queues[(start + i) % n];
        let not_last = |q: &MessageQueue| last_failed != Some(q.broker_name.as_str());
        if self.fault_tolerance {
            if let Some(q) = (0..n)
                .map(nth)
                .find(|q| not_last(q) && self.faults.is_available(&q.broker_name))
            {
                return Some(q);
            }
        }
        (0..n).map(nth).find(|q| not_last(q)).or(Some(nth(0)))
    }
}

/// The queue for ordering key `key`: `|javaHash(key)| % queues`, so every
/// message with one key lands on one queue while the route is unchanged.
pub fn select_by_key<'a>(queues: &'a [MessageQueue], key: &str) -> Option<&'a MessageQueue> {
    if queues.is_empty() {
        return None;
    }
    let h = (java_hash(key) as i64).unsigned_abs() as usize;
    Some(&queues[h % queues.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(b: &str, id: i32) -> MessageQueue {
        MessageQueue {
            topic: "T".into(),
            broker_name: b.into(),
            queue_id: id,
        }
    }

    #[test]
    fn back_off_table() {
        assert_eq!(back_off_for(Duration::from_millis(10)), Duration::ZERO);
        assert_eq!(
            back_off_for(Duration::from_millis(600)),
            Duration::from_secs(2)
        );
        assert_eq!(
            back_off_for(Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        assert_eq!(
            back_off_for(Duration::from_secs(20)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn round_robin_avoids_failed_and_slow_brokers() {
        let qs = vec![q("a", 0), q("a", 1), q("b", 0)];
        let s = QueueSelector::new(true);
        let picked: Vec<_> = (0..3)
            .map(|_| s.select(&qs, None).unwrap().clone())
            .collect();
        assert_eq!(picked.len(), 3);
        assert_ne!(picked[0], picked[1]);
        for _ in 0..3 {
            assert_eq!(s.select(&qs, Some("a")).unwrap().broker_name, "b");
        }
        s.faults.record("b", Duration::ZERO, true);
        for _ in 0..5 {
            assert_eq!(s.select(&qs, None).unwrap().broker_name, "a");
        }
        s.faults.record("a", Duration::from_millis(600), false);
        // Both in back-off: plain round robin still yields a queue.
        assert!(s.select(&qs, None).is_some());
        s.faults.record("b", Duration::from_millis(5), false);
        assert_eq!(s.select(&qs, None).unwrap().broker_name, "b");
        assert!(s.select(&[], None).is_none());
    }

    #[test]
    fn key_selection_is_stable() {
        let qs: Vec<_> = (0..8).map(|i| q("a", i)).collect();
        let a = select_by_key(&qs, "order-42").unwrap().clone();
        for _ in 0..10 {
            assert_eq!(select_by_key(&qs, "order-42").unwrap(), &a);
        }
        let spread: std::collections::HashSet<_> = (0..100)
            .map(|i| select_by_key(&qs, &format!("k{i}")).unwrap().queue_id)
            .collect();
        assert!(spread.len() > 4);
    }
}
