//! Orderly consumption (`ConsumeMessageOrderlyService`): assigned queues are locked
//! on their broker with LOCK_BATCH_MQ (re-locked every 20 s, a lock is
//! trusted for 30 s) and each queue is consumed by one worker, lowest
//! offsets first. A failed call suspends the queue briefly and delivers
//! the same messages again, never skipping one; once a message has failed
//! `max_reconsume_times` times it is sent to `%RETRY%<group>` (which the
//! broker turns into a DLQ entry) and consumption moves on. Queues given
//! up or left at shutdown are unlocked with UNLOCK_BATCH_MQ.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire::bodies::MessageQueue;
use crate::wire::codes::{request, response};
use crate::wire::json::from_fastjson;
use crate::wire::RemotingCommand;

use super::super::remoting::{expect_code, ClientError};
use super::consume::{resend_to_retry, restore_topics};
use super::core::Core;
use super::queue::QueueState;
use super::{ConsumeContext, Listener, OrderlyResult};

/// How long the worker waits for new messages before re-checking.
const IDLE_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LockBody<'a> {
    client_id: &'a str,
    consumer_group: &'a str,
    mq_set: &'a [MessageQueue],
    only_this_broker: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LockResult {
    #[serde(rename = "lockOKMQSet")]
    lock_ok_mq_set: Vec<MessageQueue>,
}

/// Queues grouped by the address of their broker.
async fn by_broker(core: &Core, mqs: &[MessageQueue]) -> BTreeMap<String, Vec<MessageQueue>> {
    let mut out: BTreeMap<String, Vec<MessageQueue>> = BTreeMap::new();
    for mq in mqs {
        match core.routes.addr_of(mq).await {
            Ok(a) => out.entry(a).or_default().push(mq.clone()),
            Err(e) => tracing::debug!(queue = ?mq, error = %e, "no broker for lock"),
        }
    }
    out
}

async fn lock_call(
    core: &Core,
    code: i32,
    addr: &str,
    mqs: &[MessageQueue],
) -> Result<RemotingCommand, ClientError> {
    let body = LockBody {
        client_id: &core.client_id,
        consumer_group: &core.cfg.group,
        mq_set: mqs,
        only_this_broker: false,
    };
    let cmd =
        RemotingCommand::request(code).with_body(serde_json::to_vec(&body).unwrap_or_default());
    let resp = core
        .routes
        .client()
        .invoke(addr, cmd, core.routes.default_timeout())
        .await?;
    expect_code(resp, &[response::SUCCESS])
}

/// LOCK_BATCH_MQ for `mqs`; marks each assigned queue locked or not.
pub async fn lock(core: &Core, mqs: &[MessageQueue]) {
    for (addr, group) in by_broker(core, mqs).await {
        let ok: Vec<MessageQueue> =
            match lock_call(core, request::LOCK_BATCH_MQ, &addr, &group).await {
                Ok(resp) => from_fastjson::<LockResult>(&resp.body_bytes())
                    .map(|r| r.lock_ok_mq_set)
                    .unwrap_or_default(),
                Err(e) => {
                    tracing::debug!(addr, error = %e, "lock failed");
                    Vec::new()
                }
            };
        let map = core.lock_queues();
        for mq in &group {
            if let Some(q) = map.get(mq) {
                q.set_locked(ok.contains(mq));
            }
        }
    }
}

/// Re-locks every assigned queue.
pub async fn lock_all(core: &Core) {
    let mqs = core.assigned_queues();
    if !mqs.is_empty() {
        lock(core, &mqs).await;
    }
}

/// UNLOCK_BATCH_MQ for `mqs`.
pub async fn unlock(core: &Core, mqs: &[MessageQueue]) {
    for (addr, group) in by_broker(core, mqs).await {
        if let Err(e) = lock_call(core, request::UNLOCK_BATCH_MQ, &addr, &group).await {
            tracing::debug!(addr, error = %e, "unlock failed");
        }
    }
}

/// Consumes `q` in offset order while it is assigned and locked.
pub async fn worker(core: Weak<Core>, q: Arc<QueueState>) {
    loop {
        if q.is_dropped() {
            return;
        }
        let Some(c) = core.upgrade() else { return };
        let Listener::Orderly(listener) = c.listener.clone() else {
            return;
        };
        let batch: Vec<_> = if q.is_locked() {
            let w = q.lock_window();
            w.msgs
                .values()
                .take(c.cfg.consume_batch_size.max(1))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        if batch.is_empty() {
            drop(c);
            tokio::select! {
                _ = q.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_WAIT) => {}
                _ = q.stopped() => return,
            }
            continue;
        }
        let guard = q.consuming.lock().await;
        if q.is_dropped() {
            return;
        }
        let shown = restore_topics(&c, &batch);
        let ctx = ConsumeContext {
            queue: q.mq.clone(),
        };
        let result = tokio::task::spawn_blocking(move || listener(&shown, &ctx))
            .await
            .unwrap_or(OrderlyResult::SuspendCurrentQueueAMoment);
        q.last_consume_ms
            .store(crate::wire::now_ms(), std::sync::atomic::Ordering::Relaxed);
        let offsets: Vec<i64> = batch.iter().map(|m| m.queue_offset).collect();
        let consumed = match result {
            OrderlyResult::Success => true,
            OrderlyResult::SuspendCurrentQueueAMoment => {
                let gone = give_up_exhausted(&c, &q, &batch).await;
                if gone.len() < batch.len() {
                    q.remove(&gone);
                }
                gone.len() == batch.len()
            }
        };
        if consumed {
            if let Some(o) = q.remove(&offsets) {
                c.offsets.update(&q.mq, o, true);
            }
            drop(guard);
        } else {
            drop(guard);
            let pause = c.cfg.suspend_current_queue;
            drop(c);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = q.stopped() => return,
            }
        }
    }
}

/// After a failed call: messages that reached the maximum go to the retry
/// topic (the broker dead-letters them); the others count one more try.
/// Returns the offsets of the messages that are gone.
async fn give_up_exhausted(
    c: &Core,
    q: &QueueState,
    batch: &[crate::wire::message::MessageExt],
) -> Vec<i64> {
    let max = c.max_reconsume_times();
    let mut gone = Vec::new();
    for m in batch {
        if m.reconsume_times >= max {
            let original = restore_topics(c, std::slice::from_ref(m))
                .pop()
                .map(|m| m.topic)
                .unwrap_or_default();
            let level = 3 + m.reconsume_times.min(15);
            match resend_to_retry(c, m, &original, m.reconsume_times, level).await {
                Ok(()) => {
                    gone.push(m.queue_offset);
                    continue;
                }
                Err(e) => tracing::warn!(offset = m.queue_offset, error = %e, "cannot dead-letter"),
            }
        }
        if let Some(w) = q.lock_window().msgs.get_mut(&m.queue_offset) {
            w.reconsume_times += 1;
        }
    }
    gone
}
