//! Consumer progress administration: GET_CONSUME_STATS (208),
//! GET_CONSUMER_CONNECTION_LIST (203), GET_CONSUMER_RUNNING_INFO (307,
//! forwarded to the client) and INVOKE_BROKER_TO_RESET_OFFSET (222, which
//! stores the new offsets and tells the group's consumers with
//! RESET_CONSUMER_CLIENT_OFFSET 220).
//!
//! ConsumeStats and ResetOffsetBody are maps keyed by MessageQueue objects;
//! they are written the way fastjson writes them (protocol.md §6.7):
//! `{{"brokerName":"b","queueId":0,"topic":"t"}:value}`.

use std::time::Duration;

use super::{bad_header, error, ok, BrokerCtx};
use crate::actors::broker::clients::{ConsumerInfo, GroupConsumers};
use crate::actors::broker::offsets::{CommitOffset, QueryOffset, TopicsOfGroup};
use crate::actors::broker::queue::{QueueOffsets, SearchOffset, StoreTimeAt};
use crate::wire::bodies::MessageQueue;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::client::ConsumerGroupHeader;
use crate::wire::headers::consume::{
    GetConsumeStatsRequestHeader, GetConsumerRunningInfoRequestHeader, ResetOffsetRequestHeader,
};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

/// How long a forwarded GET_CONSUMER_RUNNING_INFO may take.
const RUNNING_INFO_TIMEOUT: Duration = Duration::from_secs(10);

fn mq_key(mq: &MessageQueue) -> String {
    serde_json::to_string(mq).unwrap_or_default()
}

/// `{<mq>:<value>,...}` with object keys, as fastjson writes such maps.
fn object_keyed(entries: &[(MessageQueue, String)]) -> String {
    let mut s = String::from("{");
    for (i, (mq, v)) in entries.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&mq_key(mq));
        s.push(':');
        s.push_str(v);
    }
    s.push('}');
    s
}

fn mq(ctx: &BrokerCtx, topic: &str, queue_id: i32) -> MessageQueue {
    MessageQueue {
        broker_name: ctx.cfg.broker_name.clone(),
        queue_id,
        topic: topic.to_owned(),
    }
}

async fn consume_stats(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    let h = match GetConsumeStatsRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let group = h.consumer_group;
    let topics = match h.topic.filter(|t| !t.is_empty()) {
        Some(t) => vec![t],
        None => ctx
            .offsets
            .send(TopicsOfGroup(group.clone()))
            .await
            .unwrap_or_default(),
    };
    let mut entries = Vec::new();
    for topic in topics {
        let Some(t) = ctx.topics.get(&topic) else {
            continue;
        };
        for (qid, q) in t.queues.iter().enumerate() {
            let qid = qid as i32;
            let (_, broker_offset) = q.send(QueueOffsets).await.unwrap_or((0, 0));
            let consumer_offset = ctx
                .offsets
                .send(QueryOffset {
                    group: group.clone(),
                    topic: topic.clone(),
                    queue_id: qid,
                })
                .await
                .ok()
                .flatten()
                .unwrap_or(0)
                .max(0);
            let last = if consumer_offset > 0 {
                q.send(StoreTimeAt(Some(consumer_offset - 1)))
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            } else {
                0
            };
            let wrapper = format!(
                "{{\"brokerOffset\":{broker_offset},\"consumerOffset\":{consumer_offset},\"lastTimestamp\":{last},\"pullOffset\":{consumer_offset}}}"
            );
            entries.push((mq(ctx, &topic, qid), wrapper));
        }
    }
    let body = format!(
        "{{\"consumeTps\":0.0,\"offsetTable\":{}}}",
        object_keyed(&entries)
    );
    ok(req).with_body(body.into_bytes())
}

async fn consumers(ctx: &BrokerCtx, group: &str) -> Vec<ConsumerInfo> {
    ctx.clients
        .send(GroupConsumers(group.to_owned()))
        .await
        .unwrap_or_default()
}

async fn connection_list(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    let h = match ConsumerGroupHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let members = consumers(ctx, &h.consumer_group).await;
    let Some(first) = members.iter().find_map(|m| m.data.clone()) else {
        return error(
            req,
            rs::CONSUMER_NOT_ONLINE,
            format!("the consumer group[{}] not online", h.consumer_group),
        );
    };
    let connections: Vec<serde_json::Value> = members
        .iter()
        .map(|m| {
            serde_json::json!({
                "clientAddr": m.channel.peer.to_string(),
                "clientId": m.client_id,
                "language": m.language,
                "version": m.version,
            })
        })
        .collect();
    let mut subs = serde_json::Map::new();
    for m in &members {
        for s in m.data.iter().flat_map(|d| &d.subscription_data_set) {
            if let Ok(v) = serde_json::to_value(s) {
                subs.insert(s.topic.clone(), v);
            }
        }
    }
    let body = serde_json::json!({
        "connectionSet": connections,
        "consumeFromWhere": first.consume_from_where,
        "consumeType": first.consume_type,
        "messageModel": first.message_model,
        "subscriptionTable": subs,
    });
    ok(req).with_body(body.to_string().into_bytes())
}

async fn running_info(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    let h = match GetConsumerRunningInfoRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let members = consumers(ctx, &h.consumer_group).await;
    let Some(m) = members.iter().find(|m| m.client_id == h.client_id) else {
        return error(
            req,
            rs::SYSTEM_ERROR,
            format!(
                "The Consumer <{}> <{}> not online",
                h.consumer_group, h.client_id
            ),
        );
    };
    let mut fwd = RemotingCommand::request(rq::GET_CONSUMER_RUNNING_INFO);
    fwd.ext = req.ext.clone();
    match m.channel.invoke(fwd, RUNNING_INFO_TIMEOUT).await {
        Some(mut resp) => {
            resp.opaque = req.opaque;
            resp
        }
        None => error(
            req,
            rs::CONSUME_MSG_TIMEOUT,
            format!("consumer {} did not answer in time", h.client_id),
        ),
    }
}

async fn reset_offset(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    let h = match ResetOffsetRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let Some(topic) = ctx.topics.get(&h.topic) else {
        return error(
            req,
            rs::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist", h.topic),
        );
    };
    let mut table = Vec::new();
    for (qid, q) in topic.queues.iter().enumerate() {
        let qid = qid as i32;
        if h.queue_id.is_some_and(|want| want >= 0 && want != qid) {
            continue;
        }
        let target = match (h.queue_id, h.offset) {
            (Some(q), Some(off)) if q >= 0 && off >= 0 => off,
            _ if h.timestamp < 0 => q.send(QueueOffsets).await.map(|o| o.1).unwrap_or(0),
            _ => q
                .send(SearchOffset {
                    timestamp: h.timestamp,
                    upper: false,
                })
                .await
                .unwrap_or(0),
        };
        let current = ctx
            .offsets
            .send(QueryOffset {
                group: h.group.clone(),
                topic: h.topic.clone(),
                queue_id: qid,
            })
            .await
            .ok()
            .flatten();
        // Without force, only rewind.
        let offset = match current {
            Some(cur) if !h.is_force && target > cur => cur,
            _ => target,
        };
        ctx.offsets.do_send(CommitOffset {
            group: h.group.clone(),
            topic: h.topic.clone(),
            queue_id: qid,
            offset,
        });
        table.push((mq(ctx, &h.topic, qid), offset.to_string()));
    }
    let body = format!("{{\"offsetTable\":{}}}", object_keyed(&table));
    for m in consumers(ctx, &h.group).await {
        let mut cmd = RemotingCommand::request(rq::RESET_CONSUMER_CLIENT_OFFSET);
        ResetOffsetRequestHeader {
            topic: h.topic.clone(),
            group: h.group.clone(),
            timestamp: h.timestamp,
            is_force: h.is_force,
            queue_id: None,
            offset: None,
        }
        .write_ext(&mut cmd.ext);
        m.channel.oneway(cmd.with_body(body.clone().into_bytes()));
    }
    tracing::info!(group = %h.group, topic = %h.topic, timestamp = h.timestamp, "consumer offsets reset");
    ok(req).with_body(body.into_bytes())
}

pub async fn serve(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        rq::GET_CONSUME_STATS => consume_stats(ctx, req).await,
        rq::GET_CONSUMER_CONNECTION_LIST => connection_list(ctx, req).await,
        rq::GET_CONSUMER_RUNNING_INFO => running_info(ctx, req).await,
        _ => reset_offset(ctx, req).await,
    }
}
