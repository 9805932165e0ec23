//! Messages between the gRPC shape (`apache.rocketmq.v2.Message`) and the
//! stored shape (properties string, sys flag, record), as RocketMQ's
//! `GrpcConverter` and `SendMessageActivity` map them, with the proxy's
//! send checks (`GrpcValidator`, `SendMessageActivity.validateMessage`).

use bytes::Bytes;
use std::collections::HashMap;

use super::backend::SendCmd;
use super::config::ProxyConfig;
use super::pb::{self, Code, DigestType, Encoding, MessageType};
use super::status::Failure;
use crate::wire::message::{self, keys, sysflag, MessageExt};

/// Property names clients may not set (`MessageConst.STRING_HASH_SET`).
const RESERVED: &[&str] = &[
    keys::KEYS,
    keys::TAGS,
    keys::WAIT,
    keys::DELAY,
    keys::RETRY_TOPIC,
    keys::REAL_TOPIC,
    keys::REAL_QID,
    keys::TRAN_MSG,
    keys::PGROUP,
    keys::MIN_OFFSET,
    keys::MAX_OFFSET,
    keys::BUYER_ID,
    keys::ORIGIN_MESSAGE_ID,
    keys::TRANSFER_FLAG,
    keys::CORRECTION_FLAG,
    keys::MQ2_FLAG,
    keys::RECONSUME_TIME,
    keys::MSG_REGION,
    keys::TRACE_ON,
    keys::UNIQ_KEY,
    keys::MAX_RECONSUME_TIMES,
    keys::CONSUME_START_TIME,
    keys::TRAN_PREPARED_QUEUE_OFFSET,
    keys::TRANSACTION_CHECK_TIMES,
    keys::CHECK_IMMUNITY_TIME_IN_SECONDS,
    keys::SHARDING_KEY,
    keys::POP_CK,
    keys::POP_CK_OFFSET,
    keys::FIRST_POP_TIME,
    keys::TRACE_CONTEXT,
    keys::TIMER_DELAY_SEC,
    keys::TIMER_DELIVER_MS,
    keys::BORN_HOST,
    keys::BORN_TIMESTAMP,
    keys::DLQ_ORIGIN_TOPIC,
    keys::DLQ_ORIGIN_MESSAGE_ID,
    keys::INSTANCE_ID,
    keys::CORRELATION_ID,
    keys::REPLY_TO_CLIENT,
    keys::TTL,
    keys::ARRIVE_TIME,
    keys::PUSH_REPLY_TIME,
    keys::CLUSTER,
    keys::MSG_TYPE,
    keys::INNER_NUM,
    keys::INNER_BASE,
    keys::EXTEND_UNIQ_INFO,
    keys::DUP_INFO,
    keys::TRANSACTION_ID,
    keys::TIMER_OUT_MS,
    keys::TIMER_ENQUEUE_MS,
    keys::TIMER_DEQUEUE_MS,
    keys::TIMER_ROLL_TIMES,
    keys::TIMER_DEL_UNIQKEY,
    keys::TIMER_DELAY_LEVEL,
    keys::TIMER_DELAY_MS,
    keys::START_DELIVER_TIME,
    keys::FORWARD_QUEUE_ID,
    keys::REDIRECT,
    keys::INNER_MULTI_DISPATCH,
    keys::INNER_MULTI_QUEUE_OFFSET,
    keys::CRC32,
];

pub fn is_reserved(key: &str) -> bool {
    RESERVED.contains(&key)
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

fn fail(code: Code, msg: impl Into<String>) -> Failure {
    Failure::new(code, msg)
}

pub fn ts_ms(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

pub fn ms_ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn dur_ms(d: &prost_types::Duration) -> i64 {
    d.seconds * 1000 + i64::from(d.nanos) / 1_000_000
}

pub fn ms_dur(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// The user properties, checked (count, size with tag and keys, names).
fn check_user_properties(
    m: &pb::Message,
    sp: &pb::SystemProperties,
    cfg: &ProxyConfig,
) -> Result<(), Failure> {
    let props = &m.user_properties;
    if props.len() > cfg.user_property_max_num {
        return Err(fail(
            Code::MessagePropertiesTooLarge,
            format!(
                "too many user properties, max is {}",
                cfg.user_property_max_num
            ),
        ));
    }
    let mut size: usize = props.iter().map(|(k, v)| k.len() + v.len()).sum();
    size += sp.tag.as_deref().map_or(0, str::len) + sp.keys.iter().map(String::len).sum::<usize>();
    if size > cfg.max_user_property_size {
        return Err(fail(
            Code::MessagePropertiesTooLarge,
            format!(
                "the total size of user properties exceeds {}",
                cfg.max_user_property_size
            ),
        ));
    }
    for (k, v) in props {
        if k.is_empty() || is_reserved(k) || has_control(k) || has_control(v) {
            return Err(fail(
                Code::IllegalMessagePropertyKey,
                format!("property key {k} is not allowed"),
            ));
        }
    }
    Ok(())
}

/// Tag, keys, message id, group and delivery time of one message.
fn check_system_properties(
    sp: &pb::SystemProperties,
    cfg: &ProxyConfig,
    now: i64,
) -> Result<(), Failure> {
    if let Some(tag) = &sp.tag {
        if blank(tag) || tag.contains('|') || has_control(tag) {
            return Err(fail(
                Code::IllegalMessageTag,
                format!("tag {tag} is not allowed"),
            ));
        }
    }
    if sp.keys.iter().any(|k| blank(k) || has_control(k)) {
        return Err(fail(
            Code::IllegalMessageKey,
            "a message key is blank or has control characters",
        ));
    }
    if blank(&sp.message_id) {
        return Err(fail(Code::IllegalMessageId, "message id cannot be blank"));
    }
    if let Some(d) = &sp.orphaned_transaction_recovery_duration {
        if dur_ms(d) / 1000 > cfg.max_transaction_recovery_second {
            return Err(fail(
                Code::BadRequest,
                "the transaction recovery time is too large",
            ));
        }
    }
    if let Some(t) = &sp.delivery_timestamp {
        if ts_ms(t) - now > cfg.max_delay_time_mills {
            return Err(fail(
                Code::IllegalDeliveryTime,
                format!(
                    "the delivery time is more than {} ms ahead",
                    cfg.max_delay_time_mills
                ),
            ));
        }
    }
    if let Some(g) = &sp.message_group {
        if blank(g) || g.len() >= cfg.max_message_group_size || has_control(g) {
            return Err(fail(
                Code::IllegalMessageGroup,
                format!("message group {g} is not allowed"),
            ));
        }
    }
    Ok(())
}

/// The stored properties of one gRPC message (`GrpcConverter.buildMessage`).
fn properties(m: &pb::Message, sp: &pb::SystemProperties, topic: &str, peer: &str) -> String {
    let mut out: Vec<(&str, String)> = m
        .user_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    out.sort_unstable();
    out.push((keys::UNIQ_KEY, sp.message_id.clone()));
    if let Some(tag) = &sp.tag {
        out.push((keys::TAGS, tag.clone()));
    }
    if !sp.keys.is_empty() {
        out.push((keys::KEYS, sp.keys.join(" ")));
    }
    if let Some(g) = &sp.message_group {
        out.push((keys::SHARDING_KEY, g.clone()));
    }
    if let Some(t) = &sp.delivery_timestamp {
        out.push((keys::TIMER_DELIVER_MS, ts_ms(t).to_string()));
    }
    if sp.message_type == MessageType::Transaction as i32 {
        out.push((keys::TRAN_MSG, "true".into()));
        if let Some(d) = &sp.orphaned_transaction_recovery_duration {
            out.push((
                keys::CHECK_IMMUNITY_TIME_IN_SECONDS,
                (dur_ms(d) / 1000).to_string(),
            ));
        }
    }
    if let Some(n) = sp.delivery_attempt {
        out.push((keys::RECONSUME_TIME, n.to_string()));
    }
    out.push((keys::PGROUP, topic.to_owned()));
    if let Some(tc) = sp.trace_context.as_ref().filter(|t| !t.is_empty()) {
        out.push((keys::TRACE_CONTEXT, tc.clone()));
    }
    let born_host = if sp.born_host.is_empty() {
        peer
    } else {
        &sp.born_host
    };
    out.push((keys::BORN_HOST, born_host.to_owned()));
    if let Some(b) = &sp.born_timestamp {
        out.push((keys::BORN_TIMESTAMP, ts_ms(b).to_string()));
    }
    message::encode_properties(out.iter().map(|(k, v)| (*k, v.as_str())))
}

/// The message's kind as its properties say (`TopicMessageType.parseFromMessageProperty`).
pub fn kind_of(sp: &pb::SystemProperties) -> MessageType {
    if sp.message_type == MessageType::Transaction as i32 {
        MessageType::Transaction
    } else if sp.delivery_timestamp.is_some() {
        MessageType::Delay
    } else if sp.message_group.is_some() {
        MessageType::Fifo
    } else {
        MessageType::Normal
    }
}

/// Checks one message of a SendMessage and builds what is stored.
pub fn to_send(
    m: &pb::Message,
    cfg: &ProxyConfig,
    peer: &str,
    now: i64,
) -> Result<SendCmd, Failure> {
    let topic = m.topic.as_ref().map(|t| t.name.as_str()).unwrap_or("");
    crate::wire::names::check_topic(topic).map_err(|e| fail(Code::IllegalTopic, e.to_string()))?;
    let default_sp = pb::SystemProperties::default();
    let sp = m.system_properties.as_ref().unwrap_or(&default_sp);
    if cfg.enable_message_body_empty_check && m.body.is_empty() {
        return Err(fail(Code::MessageBodyEmpty, "message body cannot be empty"));
    }
    if cfg.max_message_size > 0 && m.body.len() as i64 > cfg.max_message_size {
        return Err(fail(
            Code::MessageBodyTooLarge,
            format!("message body cannot exceed {} bytes", cfg.max_message_size),
        ));
    }
    check_user_properties(m, sp, cfg)?;
    check_system_properties(sp, cfg, now)?;
    let mut sys_flag = 0;
    if sp.body_encoding == Encoding::Gzip as i32 {
        sys_flag |= sysflag::COMPRESSED;
    }
    if sp.message_type == MessageType::Transaction as i32 {
        sys_flag |= sysflag::TRANSACTION_PREPARED_TYPE;
    }
    Ok(SendCmd {
        topic: topic.to_owned(),
        shard_key: sp.message_group.clone(),
        sys_flag,
        born_timestamp: sp.born_timestamp.as_ref().map_or(now, ts_ms),
        properties: properties(m, sp, topic, peer),
        body: m.body.clone(),
        reconsume_times: 0,
    })
}

/// Whether a topic of `topic_type` (its `message.type`; None = NORMAL)
/// takes a message of `kind` (`DefaultTopicMessageTypeValidator`).
pub fn type_accepted(topic_type: Option<&str>, kind: MessageType) -> bool {
    match topic_type.unwrap_or("NORMAL") {
        "MIXED" => true,
        t => MessageType::from_str_name(t) == Some(kind),
    }
}

/// The types a topic accepts, for `MessageQueue.accept_message_types`.
pub fn accepted_types(topic_type: Option<&str>) -> Vec<i32> {
    match topic_type.unwrap_or("NORMAL") {
        "MIXED" => [
            MessageType::Normal,
            MessageType::Fifo,
            MessageType::Delay,
            MessageType::Transaction,
        ]
        .iter()
        .map(|t| *t as i32)
        .collect(),
        t => vec![MessageType::from_str_name(t).unwrap_or(MessageType::Unspecified) as i32],
    }
}

fn md5_hex(body: &[u8]) -> String {
    use md5::Digest;
    let d = md5::Md5::digest(body);
    d.iter().map(|b| format!("{b:02X}")).collect()
}

/// The body as clients get it: compressed (zlib) bodies are inflated, so
/// the encoding is always IDENTITY.
fn plain_body(m: &MessageExt) -> Bytes {
    if m.sys_flag & sysflag::COMPRESSED != 0 {
        if let Ok(b) = crate::wire::inflate::inflate_capped(
            &m.body,
            crate::wire::inflate::MAX_INFLATED_MESSAGE * 32,
        ) {
            return Bytes::from(b);
        }
    }
    m.body.clone()
}

fn stored_kind(m: &MessageExt) -> MessageType {
    let has = |k| m.property(k).is_some();
    if m.property(keys::TRAN_MSG) == Some("true") {
        MessageType::Transaction
    } else if has(keys::DELAY) || has(keys::TIMER_DELIVER_MS) || has(keys::TIMER_DELAY_SEC) {
        MessageType::Delay
    } else if has(keys::SHARDING_KEY) {
        MessageType::Fifo
    } else {
        MessageType::Normal
    }
}

/// A stored message as a gRPC `Message` under `topic` (the topic the client
/// asked for: retried messages show their original topic).
pub fn from_stored(m: &MessageExt, topic: &str, receipt_handle: Option<String>) -> pb::Message {
    let props = message::decode_properties(&m.properties);
    let get = |k: &str| props.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
    let user_properties: HashMap<String, String> = props
        .iter()
        .filter(|(k, _)| !is_reserved(k))
        .cloned()
        .collect();
    let body = plain_body(m);
    let delivery = get(keys::TIMER_DELIVER_MS)
        .and_then(|v| v.parse::<i64>().ok())
        .or_else(|| {
            get(keys::TIMER_DELAY_SEC)
                .and_then(|v| v.parse::<i64>().ok())
                .map(|s| m.store_timestamp + s * 1000)
        });
    let dlq = get(keys::DLQ_ORIGIN_TOPIC).map(|t| pb::DeadLetterQueue {
        topic: t,
        message_id: get(keys::DLQ_ORIGIN_MESSAGE_ID).unwrap_or_default(),
    });
    let sp = pb::SystemProperties {
        tag: get(keys::TAGS),
        keys: get(keys::KEYS)
            .map(|k| {
                k.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        message_id: get(keys::UNIQ_KEY).unwrap_or_else(|| m.offset_msg_id()),
        body_digest: Some(pb::Digest {
            r#type: DigestType::Md5 as i32,
            checksum: md5_hex(&body),
        }),
        body_encoding: Encoding::Identity as i32,
        message_type: stored_kind(m) as i32,
        born_timestamp: Some(ms_ts(m.born_timestamp)),
        born_host: m.born_host.to_string(),
        store_timestamp: Some(ms_ts(m.store_timestamp)),
        store_host: m.store_host.to_string(),
        delivery_timestamp: delivery.map(ms_ts),
        receipt_handle,
        queue_id: m.queue_id,
        queue_offset: Some(m.queue_offset),
        delivery_attempt: Some(m.reconsume_times + 1),
        message_group: get(keys::SHARDING_KEY),
        trace_context: get(keys::TRACE_CONTEXT),
        dead_letter_queue: dlq,
        ..Default::default()
    };
    pb::Message {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: topic.to_owned(),
        }),
        user_properties,
        system_properties: Some(sp),
        body,
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
