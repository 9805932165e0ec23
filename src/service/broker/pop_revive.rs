//! Redelivery of POPped messages not acked in time (`PopReviveService#reviveRetry`):
//! each un-acked message of a due check-point is copied to the group's
//! retry topic `%RETRY%<group>_<topic>` (queue 0) with one more reconsume
//! time and `1ST_POP_TIME` set, or to `%DLQ%<group>` once its reconsume
//! times reached `retryMaxTimes`. Called by the `Revive` actors.

use super::retry::ensure_group_topic;
use super::BrokerService;
use crate::actors::broker::queue::{Pull, PullQuery};
use crate::actors::broker::store_path::{self, NewRecord};
use crate::service::Refusal;
use crate::wire::message::{self, keys, MessageExt};
use crate::wire::names;
use crate::wire::pop::{classify, retry_topic_v1, CheckPoint, TOPIC_NORMAL};

impl BrokerService {
    /// Revives the messages of `ck` whose bit in `acked` is clear. A
    /// check-point whose topic or group is gone, or whose messages expired,
    /// is done; an error means "try again later".
    pub async fn revive_checkpoint(&self, ck: &CheckPoint, acked: u32) -> Result<(), Refusal> {
        let ctx = self.ctx();
        let Some(group) = ctx.services.group_table.get(&ck.group) else {
            tracing::info!(group = %ck.group, "revive: group gone, check-point dropped");
            return Ok(());
        };
        let Some(entry) = ctx.topics.get(&ck.topic) else {
            tracing::info!(topic = %ck.topic, "revive: topic gone, check-point dropped");
            return Ok(());
        };
        let Some(queue) = entry.queue(ck.queue_id) else {
            return Ok(());
        };
        let (ty, original) = classify(&ck.topic, &ck.group);
        let retry = if ty == TOPIC_NORMAL {
            retry_topic_v1(&ck.group, &ck.topic)
        } else {
            ck.topic.clone()
        };
        let mut records = Vec::new();
        for i in 0..ck.deltas.len().min(32) {
            if acked & (1 << i) != 0 {
                continue;
            }
            let Some(offset) = ck.offset_of(i) else {
                continue;
            };
            let query = PullQuery {
                offset,
                max_msgs: 1,
                tag_codes: None,
                sql: None,
            };
            let out = match queue.send(Pull { query, hold: None }).await? {
                Ok(o) => o,
                Err(e) => return Err(Refusal::Failed(e.to_string())),
            };
            let Some(m) = out
                .bodies
                .first()
                .and_then(|b| message::decode_record(b, 0, false).ok())
                .filter(|m| m.queue_offset == offset)
            else {
                tracing::warn!(topic = %ck.topic, offset, "revive: message gone, skipped");
                continue;
            };
            let dead = m.reconsume_times >= group.retry_max_times;
            let target = if dead {
                names::dlq_topic(&ck.group)
            } else {
                retry.clone()
            };
            if ensure_group_topic(ctx, &target, 1).await.is_none() {
                return Err(Refusal::Failed(format!("topic[{target}] not exist")));
            }
            records.push(self.revived(&m, target, dead, ck, &original));
        }
        if records.is_empty() {
            return Ok(());
        }
        store_path::store(&ctx.commit_log, &ctx.services.levels, &records, false)
            .await
            .map(|_| ())
            .map_err(super::retry::store_refusal)
    }

    /// The retry (or DLQ) copy of `m`.
    fn revived(
        &self,
        m: &MessageExt,
        topic: String,
        dead: bool,
        ck: &CheckPoint,
        original: &str,
    ) -> NewRecord {
        let mut props = m.properties.clone();
        props = message::without_property(&props, keys::POP_CK);
        if m.property(keys::FIRST_POP_TIME).is_none() {
            props = message::with_property(&props, keys::FIRST_POP_TIME, &ck.pop_time.to_string());
        }
        if dead {
            let id = m
                .uniq_key()
                .map(str::to_owned)
                .unwrap_or_else(|| m.offset_msg_id());
            props = message::with_property(&props, keys::DLQ_ORIGIN_TOPIC, original);
            props = message::with_property(&props, keys::DLQ_ORIGIN_MESSAGE_ID, &id);
        }
        let mut rec = NewRecord::copy_of(m, topic, 0, self.ctx().store_host, props);
        rec.reconsume_times += 1;
        rec
    }
}
