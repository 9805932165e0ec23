//! CONSUMER_SEND_MSG_BACK (36), protocol.md §2.6 / §7.1: a consumer hands a
//! message back; the broker stores a copy for `%RETRY%<group>` through the
//! delay path, or for `%DLQ%<group>` once the message was retried enough.

use super::{bad_header, error, ok, BrokerCtx};
use crate::actors::broker::groups::EnsureGroup;
use crate::actors::broker::registrar::RegisterNow;
use crate::actors::broker::store_path::{self, NewRecord, StoreFailure};
use crate::actors::broker::topic::EnsureTopic;
use crate::wire::bodies::{perm, TopicConfig};
use crate::wire::codes::response as rs;
use crate::wire::headers::consume::ConsumerSendMsgBackRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::message::{self, keys};
use crate::wire::{names, RemotingCommand};

/// Makes sure a retry / DLQ topic exists; returns its write queue count.
pub async fn ensure_group_topic(ctx: &BrokerCtx, topic: &str, queues: i32) -> Option<i32> {
    if let Some(t) = ctx.topics.get(topic) {
        return Some(t.config.write_queue_nums.max(1));
    }
    let cfg = TopicConfig::new(topic, queues.max(1), perm::READ | perm::WRITE);
    let e = ctx.topic_manager.send(EnsureTopic(cfg)).await.ok()?.ok()?;
    ctx.registrar.do_send(RegisterNow);
    Some(e.config.write_queue_nums.max(1))
}

pub fn store_error(req: &RemotingCommand, e: StoreFailure) -> RemotingCommand {
    use crate::actors::broker::commit_log::PutError;
    match e {
        StoreFailure::Put(PutError::DiskFull(e)) => error(
            req,
            rs::SERVICE_NOT_AVAILABLE,
            format!("service not available now: disk full ({e})"),
        ),
        StoreFailure::Put(PutError::Illegal(e)) => error(req, rs::MESSAGE_ILLEGAL, e),
        StoreFailure::Encode(e) => error(req, rs::MESSAGE_ILLEGAL, e.to_string()),
        StoreFailure::Put(PutError::Store(e)) => error(req, rs::SYSTEM_ERROR, e),
        StoreFailure::Mailbox => error(req, rs::SYSTEM_BUSY, "[OVERLOAD] commit log busy"),
    }
}

pub async fn send_back(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    if let Some(r) = ctx.role.refuse_write() {
        return r.answer(req);
    }
    let h = match ConsumerSendMsgBackRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    if let Err(e) = names::check_group(&h.group) {
        return super::name_refused(req, e);
    }
    let group_cfg = match ctx.groups.send(EnsureGroup(h.group.clone())).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            return error(
                req,
                rs::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("subscription group not exist, {}", h.group),
            )
        }
        Err(_) => return error(req, rs::SYSTEM_BUSY, "group manager busy"),
    };
    let Some(msg) = ctx
        .reader
        .read_record(h.offset)
        .and_then(|b| message::decode_record(&b, 0, false).ok())
    else {
        return error(
            req,
            rs::SYSTEM_ERROR,
            format!("look message by offset failed, {}", h.offset),
        );
    };
    let mut props = msg.properties.clone();
    if message::property(&props, keys::RETRY_TOPIC).is_none() {
        props = message::with_property(&props, keys::RETRY_TOPIC, &msg.topic);
    }
    let origin = message::property(&props, keys::ORIGIN_MESSAGE_ID)
        .map(str::to_owned)
        .unwrap_or_else(|| msg.offset_msg_id());
    props = message::with_property(&props, keys::ORIGIN_MESSAGE_ID, &origin);
    props = message::with_property(&props, keys::WAIT, "false");
    let max = h.max_reconsume_times.unwrap_or(group_cfg.retry_max_times);
    let (topic, queue_id) = if msg.reconsume_times >= max || h.delay_level < 0 {
        let dlq = names::dlq_topic(&h.group);
        if ensure_group_topic(ctx, &dlq, 1).await.is_none() {
            return error(req, rs::SYSTEM_ERROR, format!("topic[{dlq}] not exist"));
        }
        props = message::without_property(&props, keys::DELAY);
        (dlq, 0)
    } else {
        let retry = names::retry_topic(&h.group);
        let Some(n) = ensure_group_topic(ctx, &retry, group_cfg.retry_queue_nums).await else {
            return error(req, rs::SYSTEM_ERROR, format!("topic[{retry}] not exist"));
        };
        let level = if h.delay_level == 0 {
            3 + msg.reconsume_times
        } else {
            h.delay_level
        };
        props = message::with_property(&props, keys::DELAY, &level.to_string());
        (retry, (rand::random::<u32>() % n as u32) as i32)
    };
    let mut rec = NewRecord::copy_of(&msg, topic, queue_id, ctx.store_host, props);
    rec.reconsume_times += 1;
    match store_path::store(&ctx.commit_log, &ctx.services.levels, &[rec], false).await {
        Ok(_) => ok(req),
        Err(e) => store_error(req, e),
    }
}
