//! Send-back (CONSUMER_SEND_MSG_BACK): a consumer hands a message back; the
//! broker stores a copy for `%RETRY%<group>` through the delay path, or for
//! `%DLQ%<group>` once the message was retried enough (or the consumer asks
//! for the DLQ with a negative delay level).

use super::BrokerService;
use crate::actors::broker::groups::EnsureGroup;
use crate::actors::broker::processor::BrokerCtx;
use crate::actors::broker::registrar::RegisterNow;
use crate::actors::broker::store_path::{self, NewRecord, StoreFailure};
use crate::actors::broker::topic::EnsureTopic;
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{perm, TopicConfig};
use crate::wire::message::{self, keys};
use crate::wire::names;

/// `ConsumerSendMsgBackRequestHeader`.
#[derive(Debug, Clone)]
pub struct SendBackRequest {
    /// Commit-log offset of the message handed back.
    pub offset: i64,
    pub group: String,
    /// 0: the broker picks (3 + reconsume times); negative: straight to the DLQ.
    pub delay_level: i32,
    pub max_reconsume_times: Option<i32>,
}

/// Makes sure a retry / DLQ topic exists; returns its write queue count.
pub(crate) async fn ensure_group_topic(ctx: &BrokerCtx, topic: &str, queues: i32) -> Option<i32> {
    if let Some(t) = ctx.topics.get(topic) {
        return Some(t.config.write_queue_nums.max(1));
    }
    let cfg = TopicConfig::new(topic, queues.max(1), perm::READ | perm::WRITE);
    let e = ctx.topic_manager.send(EnsureTopic(cfg)).await.ok()?.ok()?;
    ctx.registrar.do_send(RegisterNow);
    Some(e.config.write_queue_nums.max(1))
}

/// The refusal for a failed internal store.
pub(crate) fn store_refusal(e: StoreFailure) -> Refusal {
    match e {
        StoreFailure::Put(e) => super::send::put_refusal(e),
        StoreFailure::Encode(e) => Refusal::MessageIllegal(e.to_string()),
        StoreFailure::Mailbox => Refusal::busy("commit log"),
    }
}

impl BrokerService {
    pub async fn send_back(&self, _caller: &Caller, h: SendBackRequest) -> Result<(), Refusal> {
        let ctx = self.ctx();
        if let Some(r) = ctx.role.refuse_write() {
            return Err(r);
        }
        names::check_group(&h.group)?;
        let group_cfg = match ctx.groups.send(EnsureGroup(h.group.clone())).await? {
            Some(g) => g,
            None => {
                return Err(Refusal::GroupNotExist(format!(
                    "subscription group not exist, {}",
                    h.group
                )))
            }
        };
        let Some(msg) = ctx
            .reader
            .read_record(h.offset)
            .and_then(|b| message::decode_record(&b, 0, false).ok())
        else {
            return Err(Refusal::Failed(format!(
                "look message by offset failed, {}",
                h.offset
            )));
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
                return Err(Refusal::Failed(format!("topic[{dlq}] not exist")));
            }
            props = message::without_property(&props, keys::DELAY);
            (dlq, 0)
        } else {
            let retry = names::retry_topic(&h.group);
            let Some(n) = ensure_group_topic(ctx, &retry, group_cfg.retry_queue_nums).await else {
                return Err(Refusal::Failed(format!("topic[{retry}] not exist")));
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
        store_path::store(&ctx.commit_log, &ctx.services.levels, &[rec], false)
            .await
            .map(|_| ())
            .map_err(store_refusal)
    }
}
