//! `Locks`: ordered-consumption queue locks (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ,
//! `RebalanceLockManager`). One client owns a (group, topic, queue) at a time; a
//! lock lives `rebalanceLockMaxLiveTime` (60 s) after its last renewal.
//! Supervision: started by `services` under the catching supervisor
//! (`supervisor::start`), which restarts it after a panic anywhere in it,
//! with the shared backoff and limit. A restart keeps the unexpired leases (a consistent map: a panic never leaves one
//! half-written) and drops expired ones; forgetting live leases would let a
//! second consumer take an ordered queue while its owner still consumes it.
//! Clients renew every 20 s (RocketMQ's `RebalanceLockManager`), which
//! rebuilds anything lost.

use actix::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::actors::supervisor::{armed, restarts};
use crate::wire::bodies::MessageQueue;

struct Lease {
    client_id: String,
    renewed: Instant,
}

pub struct Locks {
    /// group → queue → lease.
    table: HashMap<String, HashMap<MessageQueue, Lease>>,
    lease: Duration,
}

impl Locks {
    pub fn new(lease: Duration) -> Self {
        Locks {
            table: HashMap::new(),
            lease,
        }
    }

    fn prune(&mut self) {
        let now = Instant::now();
        let lease = self.lease;
        for qs in self.table.values_mut() {
            qs.retain(|_, l| now.duration_since(l.renewed) < lease);
        }
        self.table.retain(|_, qs| !qs.is_empty());
    }

    fn live(&self, l: &Lease, now: Instant) -> bool {
        now.duration_since(l.renewed) < self.lease
    }
}

impl Actor for Locks {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        // Forget expired leases now and then so the table stays small.
        let every = self.lease.max(Duration::from_secs(1));
        armed::fire("Locks", armed::Point::Started);
        ctx.run_interval(every, |act, _| {
            armed::fire("Locks", armed::Point::Interval);
            act.prune()
        });
    }
}

impl Supervised for Locks {
    fn restarting(&mut self, _: &mut Context<Self>) {
        restarts::record("Locks");
        self.prune();
    }
}

crate::inject_panic_handler!(Locks, "Locks");

/// Locks what it can of `mqs` for `client_id`; returns the queues the
/// client now owns (already owned ones included).
#[derive(Message)]
#[rtype(result = "Vec<MessageQueue>")]
pub struct TryLock {
    pub group: String,
    pub client_id: String,
    pub mqs: Vec<MessageQueue>,
}

impl Handler<TryLock> for Locks {
    type Result = Vec<MessageQueue>;
    fn handle(&mut self, m: TryLock, _: &mut Context<Self>) -> Vec<MessageQueue> {
        self.try_lock(m)
    }
}

impl Locks {
    fn try_lock(&mut self, m: TryLock) -> Vec<MessageQueue> {
        let now = Instant::now();
        let lease = self.lease;
        let qs = self.table.entry(m.group).or_default();
        let mut ok = Vec::new();
        for mq in m.mqs {
            match qs.get_mut(&mq) {
                Some(l) if l.client_id == m.client_id => {
                    l.renewed = now;
                    ok.push(mq);
                }
                Some(l) if now.duration_since(l.renewed) < lease => {}
                _ => {
                    qs.insert(
                        mq.clone(),
                        Lease {
                            client_id: m.client_id.clone(),
                            renewed: now,
                        },
                    );
                    ok.push(mq);
                }
            }
        }
        ok
    }
}

/// Releases the queues of `mqs` that `client_id` owns.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unlock {
    pub group: String,
    pub client_id: String,
    pub mqs: Vec<MessageQueue>,
}

impl Handler<Unlock> for Locks {
    type Result = ();
    fn handle(&mut self, m: Unlock, _: &mut Context<Self>) {
        if let Some(qs) = self.table.get_mut(&m.group) {
            for mq in m.mqs {
                if qs.get(&mq).is_some_and(|l| l.client_id == m.client_id) {
                    qs.remove(&mq);
                }
            }
        }
    }
}

/// True while the group holds at least one unexpired lock.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct GroupLocked(pub String);

impl Handler<GroupLocked> for Locks {
    type Result = bool;
    fn handle(&mut self, m: GroupLocked, _: &mut Context<Self>) -> bool {
        let now = Instant::now();
        self.table
            .get(&m.0)
            .is_some_and(|qs| qs.values().any(|l| self.live(l, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(q: i32) -> MessageQueue {
        MessageQueue {
            broker_name: "b".into(),
            queue_id: q,
            topic: "T".into(),
        }
    }

    #[actix::test]
    async fn one_owner_and_expiry() {
        let locks = Locks::new(Duration::from_millis(200)).start();
        let lock = |c: &str, qs: Vec<MessageQueue>| TryLock {
            group: "g".into(),
            client_id: c.into(),
            mqs: qs,
        };
        let a = locks.send(lock("A", vec![mq(0), mq(1)])).await.unwrap();
        assert_eq!(a.len(), 2);
        let b = locks.send(lock("B", vec![mq(1), mq(2)])).await.unwrap();
        assert_eq!(b, vec![mq(2)]);
        assert!(locks.send(GroupLocked("g".into())).await.unwrap());
        locks
            .send(Unlock {
                group: "g".into(),
                client_id: "A".into(),
                mqs: vec![mq(1)],
            })
            .await
            .unwrap();
        assert_eq!(
            locks.send(lock("B", vec![mq(1)])).await.unwrap(),
            vec![mq(1)]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!locks.send(GroupLocked("g".into())).await.unwrap());
        assert_eq!(
            locks.send(lock("A", vec![mq(2)])).await.unwrap(),
            vec![mq(2)]
        );
    }
}
