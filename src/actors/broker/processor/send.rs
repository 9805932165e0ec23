//! SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE: validate, auto-create
//! the topic if allowed, encode the stored records on this session's thread,
//! and hand them to the commit-log writer in one message.

use bytes::Bytes;
use std::borrow::Cow;
use std::sync::Arc;

use super::{bad_header, error, BrokerCtx};
use crate::actors::broker::commit_log::{FlushOutcome, Put, PutError};
use crate::actors::broker::groups::EnsureGroup;
use crate::actors::broker::store_path::{self, NewRecord};
use crate::actors::broker::topic::{EnsureTopic, TopicEntry};
use crate::actors::session::Channel;
use crate::wire::bodies::{perm, TopicConfig};
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::message::{self, keys, sysflag, PropertyView};

/// Prefix of retry topics.
pub const RETRY_PREFIX: &str = "%RETRY%";
use crate::wire::{msgid, now_ms, RemotingCommand};

/// Valid topic name characters, as RocketMQ's validator allows.
pub fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'|' || b == b'-' || b == b'_')
}

/// Finds the topic, creating it from the default topic when allowed.
pub async fn resolve_topic(
    ctx: &BrokerCtx,
    topic: &str,
    default_topic: &str,
    queue_nums: i32,
) -> Result<Arc<TopicEntry>, (i32, String)> {
    if let Some(t) = ctx.topics.get(topic) {
        return Ok(t);
    }
    let inherit = if topic.starts_with("%RETRY%") {
        Some(TopicConfig::new(topic, 1, perm::READ | perm::WRITE))
    } else if ctx.cfg.auto_create_topic_enable {
        let def = ctx.topics.get(if default_topic.is_empty() {
            "TBW102"
        } else {
            default_topic
        });
        def.filter(|d| d.config.perm & perm::INHERIT != 0).map(|d| {
            let n = if queue_nums > 0 {
                queue_nums
            } else {
                ctx.cfg.default_topic_queue_nums
            };
            let n = n.min(d.config.write_queue_nums).max(1);
            TopicConfig::new(topic, n, d.config.perm & !perm::INHERIT)
        })
    } else {
        None
    };
    let Some(config) = inherit else {
        return Err((
            rs::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist, apply first please!"),
        ));
    };
    match ctx.topic_manager.send(EnsureTopic(config)).await {
        Ok(e) => {
            ctx.registrar
                .do_send(crate::actors::broker::registrar::RegisterNow);
            Ok(e)
        }
        Err(_) => Err((rs::SYSTEM_ERROR, "topic manager unavailable".into())),
    }
}

/// Appends `CLUSTER` and a `UNIQ_KEY` (when the producer sent none);
/// returns the stored string and the message's unique id.
fn stored_properties<'a>(
    props: &str,
    view: &PropertyView<'a>,
    cluster: &str,
) -> (String, Cow<'a, str>) {
    let mut s = String::with_capacity(props.len() + 64);
    s.push_str(props);
    if !s.is_empty() && !s.ends_with(message::PROPERTY_SEPARATOR) {
        s.push(message::PROPERTY_SEPARATOR);
    }
    let uniq = match view.get(keys::UNIQ_KEY) {
        Some(u) => Cow::Borrowed(u),
        None => {
            let u = msgid::new_uniq_id();
            push_prop(&mut s, keys::UNIQ_KEY, &u);
            Cow::Owned(u)
        }
    };
    if view.get(keys::CLUSTER).is_none() {
        push_prop(&mut s, keys::CLUSTER, cluster);
    }
    (s, uniq)
}

fn push_prop(s: &mut String, k: &str, v: &str) {
    s.push_str(k);
    s.push(message::NAME_VALUE_SEPARATOR);
    s.push_str(v);
    s.push(message::PROPERTY_SEPARATOR);
}

/// Where a send to `%RETRY%<group>` really goes: the DLQ once the message
/// was reconsumed more than the group allows (or while the group holds
/// ordered-consumption locks). Returns (topic, forced queue id).
async fn retry_redirect(
    ctx: &BrokerCtx,
    h: &SendMessageRequestHeader,
) -> Result<Option<String>, (i32, String)> {
    let Some(group) = h.topic.strip_prefix(RETRY_PREFIX) else {
        return Ok(None);
    };
    let cfg = match ctx.groups.send(EnsureGroup(group.to_owned())).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err((
                rs::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("subscription group not exist, {group}"),
            ))
        }
        Err(_) => return Err((rs::SYSTEM_BUSY, "group manager busy".into())),
    };
    let max = h.max_reconsume_times.unwrap_or(cfg.retry_max_times);
    let locked = ctx
        .services
        .locks
        .send(crate::actors::broker::locks::GroupLocked(group.to_owned()))
        .await
        .unwrap_or(false);
    if h.reconsume_times.unwrap_or(0) > max || locked {
        let dlq = format!("%DLQ%{group}");
        if ctx.topics.get(&dlq).is_none() {
            let _ = ctx
                .topic_manager
                .send(EnsureTopic(TopicConfig::new(
                    &dlq,
                    1,
                    perm::READ | perm::WRITE,
                )))
                .await;
            ctx.registrar
                .do_send(crate::actors::broker::registrar::RegisterNow);
        }
        return Ok(Some(dlq));
    }
    Ok(None)
}

pub async fn send(ctx: &BrokerCtx, ch: &Channel, req: &RemotingCommand) -> RemotingCommand {
    if ctx.disk_full.load(std::sync::atomic::Ordering::Acquire) {
        return error(req, rs::SERVICE_NOT_AVAILABLE, "service not available now: disk full, the broker refuses new messages until space is freed");
    }
    let mut h = match SendMessageRequestHeader::decode(req.code, &req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    if !valid_topic(&h.topic) && !h.topic.starts_with("%DLQ%") {
        return error(
            req,
            rs::INVALID_PARAMETER,
            format!("the topic[{}] is invalid", h.topic),
        );
    }
    let mut to_dlq = false;
    match retry_redirect(ctx, &h).await {
        Ok(Some(dlq)) => {
            h.topic = dlq;
            h.queue_id = 0;
            to_dlq = true;
        }
        Ok(None) => {}
        Err((code, remark)) => return error(req, code, remark),
    }
    let topic =
        match resolve_topic(ctx, &h.topic, &h.default_topic, h.default_topic_queue_nums).await {
            Ok(t) => t,
            Err((code, remark)) => return error(req, code, remark),
        };
    if topic.config.perm & perm::WRITE == 0 {
        return error(
            req,
            rs::NO_PERMISSION,
            format!("the topic[{}] sending message is forbidden", h.topic),
        );
    }
    let write_queues = topic.config.write_queue_nums.max(1);
    let queue_id = if h.queue_id < 0 {
        (rand::random::<u32>() % write_queues as u32) as i32
    } else {
        h.queue_id
    };
    if queue_id >= topic.config.queue_count() {
        return error(
            req,
            rs::INVALID_PARAMETER,
            format!(
                "request queueId[{}] is illegal, topic {} has {} queues",
                queue_id,
                h.topic,
                topic.config.queue_count()
            ),
        );
    }
    let body = req.body_bytes();
    let batch = req.code == rq::SEND_BATCH_MESSAGE || h.batch.unwrap_or(false);
    let props = h.properties.as_deref().unwrap_or_default();
    let store_ts = now_ms();
    let mut sys_flag = h.sys_flag;
    if topic.config.topic_filter_type == "MULTI_TAG" {
        sys_flag |= sysflag::MULTI_TAGS;
    }
    let cluster = ctx.cfg.broker_cluster_name.as_str();
    let levels = ctx.services.levels.clone();
    let mut records = Vec::new();
    let mut first_uniq: Option<String> = None;
    let topic_name: Arc<str> = Arc::from(h.topic.as_str());
    let mut wait = true;

    let mut encode = |body: &Bytes, flag: i32, props: &str, sys_flag: i32| -> Result<(), String> {
        if body.len() > ctx.cfg.max_message_size {
            return Err(format!(
                "message body size {} exceeds the limit {}",
                body.len(),
                ctx.cfg.max_message_size
            ));
        }
        let view = PropertyView::new(props);
        let (mut stored, uniq) = stored_properties(props, &view, cluster);
        if to_dlq {
            stored = message::without_property(&stored, keys::DELAY);
        }
        if first_uniq.is_none() {
            first_uniq = Some(uniq.into_owned());
        }
        if view.get(keys::WAIT) == Some("false") {
            wait = false;
        }
        store_path::check_timer_delay(&view, sys_flag, store_ts, ctx.cfg.timer_max_delay_sec)?;
        let rec = NewRecord {
            topic: topic_name.clone(),
            queue_id,
            flag,
            sys_flag,
            born_timestamp: h.born_timestamp,
            born_host: ch.peer,
            store_host: ctx.store_host,
            reconsume_times: h.reconsume_times.unwrap_or(0),
            prepared_transaction_offset: 0,
            body: body.clone(),
            properties: stored,
        };
        records.push(rec.encode(&levels, store_ts).map_err(|e| e.to_string())?);
        Ok(())
    };

    let encoded = if batch {
        // Entries are encoded as they are read; a malformed one fails the
        // whole request before anything is stored.
        let mut n = 0;
        message::batch_entries(&body)
            .try_for_each(|e| match e {
                Ok(e) => {
                    n += 1;
                    encode(&e.body, e.flag, e.properties, sys_flag)
                }
                Err(e) => Err(format!("malformed batch body: {e}")),
            })
            .and_then(|()| {
                if n == 0 {
                    Err("empty batch".to_owned())
                } else {
                    Ok(())
                }
            })
    } else {
        encode(&body, h.flag, props, sys_flag)
    };
    if let Err(remark) = encoded {
        return error(req, rs::MESSAGE_ILLEGAL, remark);
    }

    let put = ctx.commit_log.send(Put { records, wait }).await;
    let (results, flush) = match put {
        Ok(Ok(r)) => r,
        Ok(Err(PutError::DiskFull(e))) => {
            return error(
                req,
                rs::SERVICE_NOT_AVAILABLE,
                format!("service not available now: disk full ({e})"),
            )
        }
        Ok(Err(PutError::Illegal(e))) => return error(req, rs::MESSAGE_ILLEGAL, e),
        Ok(Err(PutError::Store(e))) => return error(req, rs::SYSTEM_ERROR, e),
        Err(_) => {
            return error(
                req,
                rs::SYSTEM_BUSY,
                "[OVERLOAD] commit log unavailable, try again",
            )
        }
    };
    let code = match flush {
        FlushOutcome::Ok => rs::SUCCESS,
        FlushOutcome::FlushTimeout => rs::FLUSH_DISK_TIMEOUT,
    };
    let mut msg_ids = String::with_capacity(results.len() * 33);
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            msg_ids.push(',');
        }
        msgid::push_offset_msg_id(&mut msg_ids, ctx.store_host, r.phys_offset);
    }
    let mut resp = RemotingCommand::response_to(req, code);
    SendMessageResponseHeader {
        msg_id: msg_ids,
        queue_id,
        queue_offset: results.first().map(|r| r.queue_offset).unwrap_or(0),
        transaction_id: first_uniq,
        batch_uniq_id: None,
    }
    .write_ext(&mut resp.ext);
    resp.ext.insert("MSG_REGION", "DefaultRegion");
    resp.ext.insert("TRACE_ON", "true");
    resp
}
