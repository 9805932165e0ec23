//! Concurrent consumption: pulled messages are cut into batches of
//! `consume_batch_size` and each batch runs the listener on a blocking
//! thread (at most `consume_threads` at once). Success removes the batch
//! from the queue's window and advances the offset to the lowest message
//! still in flight. ReconsumeLater sends each message back
//! (CONSUMER_SEND_MSG_BACK, delay level 0 = broker decides); if that
//! fails the message is re-sent to `%RETRY%<group>` as a normal message;
//! if that fails too it is consumed again locally after 5 s.
//!
//! Before the listener sees a message from the retry topic, its original
//! topic is restored from `RETRY_TOPIC`.

use std::sync::Arc;
use std::time::Duration;

use crate::wire::codes::{request, response};
use crate::wire::message::{decode_properties, keys, MessageExt};
use crate::wire::{ExtFields, RemotingCommand};

use super::super::message::Message;
use super::super::remoting::{expect_code, ClientError};
use super::core::Core;
use super::queue::QueueState;
use super::{ConsumeContext, ConsumeResult, Listener, MessageModel};

/// Local retry delay when a message could not be sent back at all.
const LOCAL_RETRY: Duration = Duration::from_secs(5);

/// The messages as the application sees them: retry-topic messages carry
/// their original topic again.
pub fn restore_topics(core: &Core, msgs: &[MessageExt]) -> Vec<MessageExt> {
    let retry = core.retry_topic();
    msgs.iter()
        .map(|m| {
            let mut m = m.clone();
            if m.topic == retry {
                if let Some(t) = m.property(keys::RETRY_TOPIC).map(str::to_owned) {
                    m.topic = t;
                }
            }
            m
        })
        .collect()
}

/// Starts consuming freshly pulled messages of `q`.
pub fn dispatch(core: &Arc<Core>, q: &Arc<QueueState>, msgs: Vec<MessageExt>) {
    let size = core.cfg.consume_batch_size.max(1);
    for chunk in msgs.chunks(size) {
        submit(core, q, chunk.to_vec(), None);
    }
}

fn submit(core: &Arc<Core>, q: &Arc<QueueState>, msgs: Vec<MessageExt>, delay: Option<Duration>) {
    // Not tracked in `core.spawn`: these tasks end on their own, and
    // shutdown waits for them through the consume slots.
    let core2 = core.clone();
    let q = q.clone();
    tokio::spawn(async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        run(core2, q, msgs).await
    });
}

async fn run(core: Arc<Core>, q: Arc<QueueState>, msgs: Vec<MessageExt>) {
    let Listener::Concurrent(listener) = core.listener.clone() else {
        return;
    };
    let Ok(_permit) = core.slots.clone().acquire_owned().await else {
        return;
    };
    if q.is_dropped() {
        return;
    }
    let shown = restore_topics(&core, &msgs);
    let ctx = ConsumeContext {
        queue: q.mq.clone(),
    };
    let result = tokio::task::spawn_blocking(move || listener(&shown, &ctx))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "listener panicked");
            ConsumeResult::ReconsumeLater
        });
    q.last_consume_ms
        .store(crate::wire::now_ms(), std::sync::atomic::Ordering::Relaxed);
    let mut done: Vec<i64> = msgs.iter().map(|m| m.queue_offset).collect();
    if result == ConsumeResult::ReconsumeLater && core.cfg.model == MessageModel::Clustering {
        let mut later = Vec::new();
        for m in &msgs {
            if q.is_dropped() {
                return;
            }
            if let Err(e) = send_back(&core, &q, m).await {
                tracing::warn!(offset = m.queue_offset, error = %e, "message cannot go back, retrying locally");
                let mut m = m.clone();
                m.reconsume_times += 1;
                later.push(m);
            }
        }
        done.retain(|o| !later.iter().any(|m| m.queue_offset == *o));
        if !later.is_empty() {
            submit(&core, &q, later, Some(LOCAL_RETRY));
        }
    }
    let commit = q.remove(&done);
    if !q.is_dropped() {
        if let Some(o) = commit {
            core.offsets.update(&q.mq, o, true);
        }
    }
}

/// The id the retry machinery tracks a message by.
fn origin_id(m: &MessageExt) -> String {
    m.property(keys::ORIGIN_MESSAGE_ID)
        .or_else(|| m.uniq_key())
        .map(str::to_owned)
        .unwrap_or_else(|| m.offset_msg_id())
}

/// CONSUMER_SEND_MSG_BACK to the message's broker, falling back to a
/// plain send to the retry topic.
pub async fn send_back(core: &Core, q: &QueueState, m: &MessageExt) -> Result<(), ClientError> {
    let original_topic = restore_topics(core, std::slice::from_ref(m))
        .pop()
        .map(|m| m.topic)
        .unwrap_or_default();
    let mut ext = ExtFields::default();
    ext.insert("offset", m.commit_log_offset.to_string());
    ext.insert("group", core.cfg.group.clone());
    ext.insert("delayLevel", "0");
    ext.insert("originMsgId", origin_id(m));
    ext.insert("originTopic", original_topic.clone());
    ext.insert("unitMode", "false");
    ext.insert("maxReconsumeTimes", core.max_reconsume_times().to_string());
    ext.insert("bname", q.mq.broker_name.clone());
    let mut cmd = RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK);
    cmd.ext = ext;
    let direct = async {
        let addr = core.routes.addr_of(&q.mq).await?;
        let resp = core
            .routes
            .client()
            .invoke(&addr, cmd, core.routes.default_timeout())
            .await?;
        expect_code(resp, &[response::SUCCESS]).map(|_| ())
    };
    match direct.await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, "send-back failed, re-sending to the retry topic");
            let level = 3 + m.reconsume_times;
            resend_to_retry(core, m, &original_topic, m.reconsume_times + 1, level).await
        }
    }
}

/// Sends a copy of `m` to `%RETRY%<group>` as a normal message carrying
/// `RETRY_TOPIC`, `RECONSUME_TIME`, `MAX_RECONSUME_TIMES`,
/// `ORIGIN_MESSAGE_ID` and delay level `level` (the broker moves it to the
/// DLQ once `reconsume` exceeds the maximum).
pub async fn resend_to_retry(
    core: &Core,
    m: &MessageExt,
    original_topic: &str,
    reconsume: i32,
    level: i32,
) -> Result<(), ClientError> {
    let mut msg = Message::new(core.retry_topic(), m.body.clone());
    msg.flag = m.flag;
    for (k, v) in decode_properties(&m.properties) {
        match k.as_str() {
            keys::TAGS => msg.tags = Some(v),
            keys::KEYS => msg.keys = v.split(' ').map(str::to_owned).collect(),
            keys::UNIQ_KEY | keys::WAIT | keys::TRAN_MSG => {}
            _ => msg.set_property(k, v),
        }
    }
    msg.set_property(keys::ORIGIN_MESSAGE_ID, origin_id(m));
    msg.set_property(keys::RETRY_TOPIC, original_topic);
    msg.set_property(keys::RECONSUME_TIME, reconsume.to_string());
    msg.set_property(
        keys::MAX_RECONSUME_TIMES,
        core.max_reconsume_times().to_string(),
    );
    msg.set_property(keys::DELAY, level.clamp(1, 18).to_string());
    core.retry_producer.send(msg).await.map(|_| ())
}
