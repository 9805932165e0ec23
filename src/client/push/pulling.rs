//! One long-polling pull loop per assigned queue: find the start offset
//! (stored offset, else consume-from-where), then pull (15 s suspend,
//! 30 s client timeout, committing the in-memory offset on the way) while
//! the queue's window is under the flow-control limits, and hand what
//! arrives to the consume side (concurrent tasks or the orderly worker).

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::wire::bodies::MessageQueue;
use crate::wire::now_ms;

use super::super::pull::{PullSpec, PullStatus};
use super::super::remoting::ClientError;
use super::core::{Core, RETRY_PREFIX};
use super::queue::QueueState;
use super::{ConsumeFrom, MessageModel};

/// Pause while a queue is over its flow-control limits (Java: 50 ms).
const FLOW_CONTROL_PAUSE: Duration = Duration::from_millis(50);
/// Pause while an ordered queue waits for its broker lock.
const LOCK_WAIT: Duration = Duration::from_millis(200);

/// Starts the pull loop of `q` (and its orderly worker).
pub fn start(core: &Arc<Core>, q: Arc<QueueState>) {
    if core.listener.is_orderly() {
        core.spawn(super::orderly::worker(Arc::downgrade(core), q.clone()));
    }
    core.spawn(pull_loop(Arc::downgrade(core), q));
}

/// Where a queue without a stored offset starts (Java
/// `computePullFromWhere`): retry queues from 0 (or their end for
/// timestamps), others by `ConsumeFrom`.
pub async fn start_offset(core: &Core, mq: &MessageQueue) -> Result<i64, ClientError> {
    if let Some(o) = core.offsets.read_stored(mq).await? {
        return Ok(o);
    }
    let retry = mq.topic.starts_with(RETRY_PREFIX);
    let o = match core.cfg.consume_from {
        ConsumeFrom::LastOffset if retry => 0,
        ConsumeFrom::LastOffset => core.pull.max_offset(mq).await?,
        ConsumeFrom::FirstOffset => 0,
        ConsumeFrom::Timestamp(_) if retry => core.pull.max_offset(mq).await?,
        ConsumeFrom::Timestamp(ts) => core.pull.search_offset(mq, ts).await?,
    };
    core.offsets.update(mq, o, false);
    Ok(o)
}

/// Sleeps `d` unless the queue is dropped first; false if dropped.
async fn pause(q: &QueueState, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => !q.is_dropped(),
        _ = q.stopped() => false,
    }
}

async fn pull_loop(core: Weak<Core>, q: Arc<QueueState>) {
    loop {
        if q.is_dropped() {
            return;
        }
        let Some(c) = core.upgrade() else { return };
        if c.is_shut() {
            return;
        }
        if c.listener.is_orderly() && !q.is_locked() {
            if !pause(&q, LOCK_WAIT).await {
                return;
            }
            continue;
        }
        let next = q.lock_window().next_offset;
        let offset = match next {
            Some(o) => o,
            None => match start_offset(&c, &q.mq).await {
                Ok(o) => {
                    q.lock_window().next_offset = Some(o);
                    o
                }
                Err(e) => {
                    tracing::warn!(queue = ?q.mq, error = %e, "cannot find the start offset");
                    if !pause(&q, c.cfg.pull_error_back_off).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let (count, bytes) = q.load();
        if count > c.cfg.pull_threshold_for_queue || bytes > c.cfg.pull_threshold_bytes_for_queue {
            if !pause(&q, FLOW_CONTROL_PAUSE).await {
                return;
            }
            continue;
        }
        let Some(sub) = c.subs.get(&q.mq.topic).cloned() else {
            return;
        };
        let commit = match c.cfg.model {
            MessageModel::Clustering => c.offsets.get(&q.mq),
            MessageModel::Broadcasting => None,
        };
        let spec = PullSpec {
            mq: &q.mq,
            offset,
            max: c.cfg.pull_batch_size,
            suspend: Some(c.cfg.long_poll_suspend),
            timeout: Some(c.cfg.pull_timeout),
            expression: &sub.sub_string,
            expression_type: sub.expression_type.as_deref().unwrap_or("TAG"),
            commit_offset: commit,
            sub_version: sub.sub_version,
        };
        let res = tokio::select! {
            r = c.pull.pull_with(&spec) => r,
            _ = q.stopped() => return,
        };
        q.last_pull_ms
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        if q.is_dropped() {
            return;
        }
        match res {
            Ok(r) => match r.status {
                PullStatus::Found if !r.messages.is_empty() => {
                    q.add(r.messages.clone(), r.next_begin_offset);
                    if c.listener.is_orderly() {
                        q.wake.notify_one();
                    } else {
                        super::consume::dispatch(&c, &q, r.messages);
                    }
                }
                PullStatus::OffsetIllegal => {
                    tracing::warn!(queue = ?q.mq, offset, next = r.next_begin_offset, "offset illegal");
                    q.lock_window().next_offset = Some(r.next_begin_offset);
                    c.offsets.update(&q.mq, r.next_begin_offset, false);
                    c.offsets.persist(std::slice::from_ref(&q.mq), false).await;
                }
                _ => {
                    let empty = {
                        let mut w = q.lock_window();
                        w.next_offset = Some(r.next_begin_offset);
                        w.msgs.is_empty()
                    };
                    if empty {
                        c.offsets.update(&q.mq, r.next_begin_offset, true);
                    }
                }
            },
            Err(e) => {
                tracing::debug!(queue = ?q.mq, error = %e, "pull failed");
                if e.remote_code() == Some(crate::wire::codes::response::TOPIC_NOT_EXIST) {
                    c.routes.invalidate(&q.mq.topic);
                }
                if !pause(&q, c.cfg.pull_error_back_off).await {
                    return;
                }
            }
        }
    }
}
