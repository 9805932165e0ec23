//! Consumer progress: consume stats per queue (GET_CONSUME_STATS), a
//! group's connections (GET_CONSUMER_CONNECTION_LIST), calls forwarded to
//! a consumer (GET_CONSUMER_RUNNING_INFO, CONSUME_MESSAGE_DIRECTLY), and
//! offset resets (INVOKE_BROKER_TO_RESET_OFFSET, which stores the new
//! offsets and tells the group's consumers).

use bytes::Bytes;
use std::time::Duration;

use super::BrokerService;
use crate::actors::broker::clients::{ConsumerInfo, GroupConsumers};
use crate::actors::broker::offsets::{CommitOffset, QueryOffset, TopicsOfGroup};
use crate::actors::broker::queue::{QueueOffsets, SearchOffset, StoreTimeAt};
use crate::service::{Caller, Refusal};
use crate::wire::bodies::MessageQueue;
use crate::wire::headers::consume::{
    ConsumeMessageDirectlyRequestHeader, GetConsumerRunningInfoRequestHeader,
    ResetOffsetRequestHeader,
};

/// How long a call forwarded to a consumer may take.
const CLIENT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One queue's row of GET_CONSUME_STATS (`OffsetWrapper`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProgress {
    pub queue: MessageQueue,
    pub broker_offset: i64,
    pub consumer_offset: i64,
    /// Store time of the last consumed message (0 when none).
    pub last_timestamp: i64,
}

#[derive(Debug, Clone)]
pub struct ResetOffsetRequest {
    pub topic: String,
    pub group: String,
    /// Reset to the first message stored at or after this time; negative:
    /// to the end of each queue.
    pub timestamp: i64,
    /// Without force, offsets only move back.
    pub force: bool,
    /// Only this queue (5.x admin)...
    pub queue_id: Option<i32>,
    /// ...and to this exact offset instead of by time.
    pub offset: Option<i64>,
}

impl BrokerService {
    fn queue_of(&self, topic: &str, queue_id: i32) -> MessageQueue {
        MessageQueue {
            broker_name: self.ctx().cfg.broker_name.clone(),
            queue_id,
            topic: topic.to_owned(),
        }
    }

    async fn committed(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.ctx()
            .offsets
            .send(QueryOffset {
                group: group.to_owned(),
                topic: topic.to_owned(),
                queue_id,
            })
            .await
            .ok()
            .flatten()
    }

    /// Per queue of `topic` (or of every topic the group committed on): the
    /// broker's max offset against the group's.
    pub async fn consume_stats(
        &self,
        _caller: &Caller,
        group: &str,
        topic: Option<String>,
    ) -> Result<Vec<QueueProgress>, Refusal> {
        let ctx = self.ctx();
        let topics = match topic.filter(|t| !t.is_empty()) {
            Some(t) => vec![t],
            None => ctx.offsets.send(TopicsOfGroup(group.to_owned())).await?,
        };
        let mut rows = Vec::new();
        for topic in topics {
            let Some(t) = ctx.topics.get(&topic) else {
                continue;
            };
            for (qid, q) in t.queues.iter().enumerate() {
                let qid = qid as i32;
                let (_, broker_offset) = q.send(QueueOffsets).await.unwrap_or((0, 0));
                let consumer_offset = self.committed(group, &topic, qid).await.unwrap_or(0).max(0);
                let last_timestamp = if consumer_offset > 0 {
                    q.send(StoreTimeAt(Some(consumer_offset - 1)))
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                } else {
                    0
                };
                rows.push(QueueProgress {
                    queue: self.queue_of(&topic, qid),
                    broker_offset,
                    consumer_offset,
                    last_timestamp,
                });
            }
        }
        Ok(rows)
    }

    /// The group's live consumers; CONSUMER_NOT_ONLINE when none has a
    /// subscription.
    pub async fn consumer_connections(
        &self,
        _caller: &Caller,
        group: &str,
    ) -> Result<Vec<ConsumerInfo>, Refusal> {
        let members = self
            .ctx()
            .clients
            .send(GroupConsumers(group.to_owned()))
            .await?;
        if members.iter().all(|m| m.data.is_none()) {
            return Err(Refusal::ConsumerNotOnline(format!(
                "the consumer group[{group}] not online"
            )));
        }
        Ok(members)
    }

    async fn member(&self, group: &str, client_id: &str) -> Result<ConsumerInfo, Refusal> {
        let members = self
            .ctx()
            .clients
            .send(GroupConsumers(group.to_owned()))
            .await?;
        members
            .into_iter()
            .find(|m| m.client_id == client_id)
            .ok_or_else(|| {
                Refusal::Failed(format!("The Consumer <{group}> <{client_id}> not online"))
            })
    }

    /// A consumer's `ConsumerRunningInfo`, asked of the consumer itself.
    pub async fn consumer_running_info(
        &self,
        _caller: &Caller,
        group: &str,
        client_id: &str,
        jstack: bool,
    ) -> Result<Bytes, Refusal> {
        let m = self.member(group, client_id).await?;
        let header = GetConsumerRunningInfoRequestHeader {
            consumer_group: group.to_owned(),
            client_id: client_id.to_owned(),
            jstack_enable: Some(jstack),
        };
        m.channel
            .consumer_running_info(header, CLIENT_CALL_TIMEOUT)
            .await
    }

    /// Has one consumer consume the message stored at `offset` now; returns
    /// its `ConsumeMessageDirectlyResult`.
    pub async fn consume_message_directly(
        &self,
        caller: &Caller,
        group: &str,
        client_id: &str,
        offset: i64,
        msg_id: &str,
    ) -> Result<Bytes, Refusal> {
        let m = self.member(group, client_id).await?;
        let record = self.view_by_offset(caller, offset)?;
        let header = ConsumeMessageDirectlyRequestHeader {
            consumer_group: group.to_owned(),
            client_id: Some(client_id.to_owned()),
            msg_id: Some(msg_id.to_owned()),
            broker_name: Some(self.ctx().cfg.broker_name.clone()),
            topic: None,
            topic_sys_flag: None,
            group_sys_flag: None,
        };
        m.channel
            .consume_message_directly(header, record, CLIENT_CALL_TIMEOUT)
            .await
    }

    /// Moves the group's offsets on `topic`, tells its consumers, and
    /// returns the new offset of each queue.
    pub async fn reset_offset(
        &self,
        _caller: &Caller,
        r: ResetOffsetRequest,
    ) -> Result<Vec<(MessageQueue, i64)>, Refusal> {
        let ctx = self.ctx();
        let Some(topic) = ctx.topics.get(&r.topic) else {
            return Err(Refusal::TopicNotExist(format!(
                "topic[{}] not exist",
                r.topic
            )));
        };
        let mut table = Vec::new();
        for (qid, q) in topic.queues.iter().enumerate() {
            let qid = qid as i32;
            if r.queue_id.is_some_and(|want| want >= 0 && want != qid) {
                continue;
            }
            let target = match (r.queue_id, r.offset) {
                (Some(want), Some(off)) if want >= 0 && off >= 0 => off,
                _ if r.timestamp < 0 => q.send(QueueOffsets).await.map(|o| o.1).unwrap_or(0),
                _ => q
                    .send(SearchOffset {
                        timestamp: r.timestamp,
                        upper: false,
                    })
                    .await
                    .unwrap_or(0),
            };
            let offset = match self.committed(&r.group, &r.topic, qid).await {
                Some(cur) if !r.force && target > cur => cur,
                _ => target,
            };
            ctx.offsets.do_send(CommitOffset {
                group: r.group.clone(),
                topic: r.topic.clone(),
                queue_id: qid,
                offset,
            });
            table.push((self.queue_of(&r.topic, qid), offset));
        }
        let members = ctx.clients.send(GroupConsumers(r.group.clone())).await?;
        for m in members {
            let header = ResetOffsetRequestHeader {
                topic: r.topic.clone(),
                group: r.group.clone(),
                timestamp: r.timestamp,
                is_force: r.force,
                queue_id: None,
                offset: None,
            };
            m.channel.reset_offset(header, &table);
        }
        tracing::info!(group = %r.group, topic = %r.topic, timestamp = r.timestamp, "consumer offsets reset");
        Ok(table)
    }
}
