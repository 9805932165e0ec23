//! Requests brokers send to a push consumer (`ClientRemotingProcessor`):
//! NOTIFY_CONSUMER_IDS_CHANGED (rebalance now), RESET_CONSUMER_CLIENT_OFFSET
//! (apply a ResetOffsetBody: fastjson `MessageQueue` keys, parsed
//! leniently) and GET_CONSUMER_RUNNING_INFO (a small ConsumerRunningInfo).
//!
//! Handlers run on the connection's reader task, so they only look at
//! in-memory state; the reset work is spawned.

use std::sync::{Arc, Weak};

use serde::Serialize;
use serde_json::json;

use crate::wire::bodies::MessageQueue;
use crate::wire::codes::{request, response};
use crate::wire::RemotingCommand;

use super::core::Core;
use super::offsets::{parse_mq_offsets, write_mq_map};

/// Registers the handlers for this consumer on its remoting client.
pub fn install(core: &Arc<Core>) {
    let owner = core.handler_owner();
    let client = core.routes.client();
    let w = Arc::downgrade(core);
    client.add_code_handler(
        &owner,
        request::NOTIFY_CONSUMER_IDS_CHANGED,
        Arc::new(move |_, req| {
            let c = mine(&w, &req, "consumerGroup")?;
            tracing::debug!(group = %c.cfg.group, "consumer ids changed");
            c.rebalance_now.notify_one();
            Some(RemotingCommand::response_to(&req, response::SUCCESS))
        }),
    );
    let w = Arc::downgrade(core);
    client.add_code_handler(
        &owner,
        request::RESET_CONSUMER_CLIENT_OFFSET,
        Arc::new(move |_, req| {
            let c = mine(&w, &req, "group")?;
            let topic = req.ext.get("topic").unwrap_or_default().to_string();
            let text = String::from_utf8_lossy(&req.body_bytes()).into_owned();
            let offsets: Vec<(MessageQueue, i64)> = parse_mq_offsets(&text, "offsetTable")
                .into_iter()
                .filter(|(mq, _)| topic.is_empty() || mq.topic == topic)
                .collect();
            tokio::spawn(reset(c, offsets));
            Some(RemotingCommand::response_to(&req, response::SUCCESS))
        }),
    );
    let w = Arc::downgrade(core);
    client.add_code_handler(
        &owner,
        request::GET_CONSUMER_RUNNING_INFO,
        Arc::new(move |_, req| {
            let c = mine(&w, &req, "consumerGroup")?;
            if let Some(id) = req.ext.get("clientId") {
                if id != c.client_id {
                    return None;
                }
            }
            Some(RemotingCommand::response_to(&req, response::SUCCESS).with_body(running_info(&c)))
        }),
    );
}

/// The consumer, if the request's `field` names its group.
fn mine(w: &Weak<Core>, req: &RemotingCommand, field: &str) -> Option<Arc<Core>> {
    let c = w.upgrade()?;
    (req.ext.get(field) == Some(c.cfg.group.as_str()) && !c.is_shut()).then_some(c)
}

/// Applies reset offsets: the affected queues are dropped, their new
/// offsets stored, and the rebalance that follows takes them again.
async fn reset(c: Arc<Core>, offsets: Vec<(MessageQueue, i64)>) {
    tracing::info!(group = %c.cfg.group, queues = offsets.len(), "resetting offsets");
    for (mq, off) in &offsets {
        let q = c.lock_queues().remove(mq);
        if let Some(q) = q {
            q.drop_queue();
            let _g = q.consuming.lock().await;
        }
        c.offsets.update(mq, *off, false);
    }
    let mqs: Vec<MessageQueue> = offsets.into_iter().map(|(mq, _)| mq).collect();
    c.offsets.persist(&mqs, false).await;
    c.rebalance_now.notify_one();
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcessQueueInfo {
    commit_offset: i64,
    cached_msg_min_offset: i64,
    cached_msg_max_offset: i64,
    cached_msg_count: usize,
    cached_msg_size_in_mi_b: usize,
    transaction_msg_min_offset: i64,
    transaction_msg_max_offset: i64,
    transaction_msg_count: i64,
    locked: bool,
    try_unlock_times: i64,
    last_lock_timestamp: i64,
    droped: bool,
    last_pull_timestamp: i64,
    last_consume_timestamp: i64,
}

/// ConsumerRunningInfo JSON; `mqTable` uses fastjson object keys.
pub fn running_info(c: &Core) -> Vec<u8> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut props = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        props.insert(k.to_string(), serde_json::Value::String(v));
    };
    put("PROP_CONSUME_TYPE", "CONSUME_PASSIVELY".into());
    put("PROP_CONSUMEORDERLY", c.listener.is_orderly().to_string());
    put("PROP_NAMESERVER_ADDR", c.routes.namesrv_addrs().join(";"));
    put("PROP_CLIENT_VERSION", "V5_3_3".into());
    put("PROP_CONSUMER_START_TIMESTAMP", c.started_ms.to_string());
    put(
        "PROP_THREADPOOL_CORE_SIZE",
        c.cfg.consume_threads.to_string(),
    );
    put("consumerGroup", c.cfg.group.clone());
    put("messageModel", c.cfg.model.java_name().into());
    put("consumeFromWhere", c.cfg.consume_from.java_name().into());
    let mut queues: Vec<_> = c
        .lock_queues()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    queues.sort_by(|a, b| a.0.cmp(&b.0));
    let entries: Vec<(MessageQueue, String)> = queues
        .iter()
        .map(|(mq, q)| {
            let w = q.lock_window();
            let info = ProcessQueueInfo {
                commit_offset: c.offsets.get(mq).unwrap_or(-1),
                cached_msg_min_offset: w.msgs.keys().next().copied().unwrap_or(0),
                cached_msg_max_offset: w.msgs.keys().next_back().copied().unwrap_or(0),
                cached_msg_count: w.msgs.len(),
                cached_msg_size_in_mi_b: w.bytes / (1024 * 1024),
                transaction_msg_min_offset: 0,
                transaction_msg_max_offset: 0,
                transaction_msg_count: 0,
                locked: q.is_locked(),
                try_unlock_times: 0,
                last_lock_timestamp: q.last_lock_ms.load(Relaxed),
                droped: q.is_dropped(),
                last_pull_timestamp: q.last_pull_ms.load(Relaxed),
                last_consume_timestamp: q.last_consume_ms.load(Relaxed),
            };
            (mq.clone(), serde_json::to_string(&info).unwrap_or_default())
        })
        .collect();
    let head = json!({
        "properties": props,
        "subscriptionSet": c.subs.values().collect::<Vec<_>>(),
        "statusTable": {},
    });
    let mut text = serde_json::to_string(&head).unwrap_or_else(|_| "{}".into());
    text.pop();
    text.push_str(",\"mqTable\":");
    text.push_str(&write_mq_map(entries.iter().map(|(k, v)| (k, v.clone()))));
    text.push('}');
    text.into_bytes()
}
