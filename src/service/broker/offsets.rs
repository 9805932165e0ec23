//! Offsets: a consumer group's committed offsets (QUERY_CONSUMER_OFFSET,
//! UPDATE_CONSUMER_OFFSET) and a queue's bounds, earliest store time and
//! offset-by-time (GET_MIN_OFFSET, GET_MAX_OFFSET,
//! GET_EARLIEST_MSG_STORETIME, SEARCH_OFFSET_BY_TIMESTAMP).

use actix::Addr;

use super::BrokerService;
use crate::actors::broker::offsets::{CommitOffset, QueryOffset};
use crate::actors::broker::processor::BrokerCtx;
use crate::actors::broker::queue::{QueueActor, QueueOffsets, SearchOffset, StoreTimeAt};
use crate::service::{Caller, Refusal};
use crate::wire::names;

/// A group's position in one queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupQueue {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
}

pub(crate) fn find_queue(
    ctx: &BrokerCtx,
    topic: &str,
    queue_id: i32,
) -> Result<Addr<QueueActor>, Refusal> {
    let t = ctx
        .topics
        .get(topic)
        .ok_or_else(|| Refusal::TopicNotExist(format!("topic[{topic}] not exist")))?;
    t.queue(queue_id).cloned().ok_or_else(|| {
        Refusal::InvalidParameter(format!("queueId[{queue_id}] is illegal for topic {topic}"))
    })
}

impl BrokerService {
    /// The committed offset; with `zero_if_new`, 0 for a group that never
    /// committed on a queue that still starts at 0 (as Java answers).
    pub async fn consumer_offset(
        &self,
        _caller: &Caller,
        q: GroupQueue,
        zero_if_new: bool,
    ) -> Result<i64, Refusal> {
        let ctx = self.ctx();
        let stored = ctx
            .offsets
            .send(QueryOffset {
                group: q.group,
                topic: q.topic.clone(),
                queue_id: q.queue_id,
            })
            .await?;
        if let Some(o) = stored.filter(|o| *o >= 0) {
            return Ok(o);
        }
        let min = match find_queue(ctx, &q.topic, q.queue_id) {
            Ok(a) => a.send(QueueOffsets).await.map(|(min, _)| min).unwrap_or(-1),
            Err(_) => -1,
        };
        if zero_if_new && min == 0 {
            Ok(0)
        } else {
            Err(Refusal::QueryNotFound(
                "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first".into(),
            ))
        }
    }

    pub async fn commit_offset(
        &self,
        _caller: &Caller,
        q: GroupQueue,
        offset: i64,
    ) -> Result<(), Refusal> {
        let ctx = self.ctx();
        names::check_group(&q.group)?;
        if ctx.topics.get(&q.topic).is_none() {
            return Err(Refusal::TopicNotExist(format!(
                "topic[{}] not exist",
                q.topic
            )));
        }
        ctx.offsets
            .send(CommitOffset {
                group: q.group,
                topic: q.topic,
                queue_id: q.queue_id,
                offset,
            })
            .await?;
        Ok(())
    }

    /// (min, max) logical offsets of a queue.
    pub async fn queue_bounds(
        &self,
        _caller: &Caller,
        topic: &str,
        queue_id: i32,
    ) -> Result<(i64, i64), Refusal> {
        let q = find_queue(self.ctx(), topic, queue_id)?;
        q.send(QueueOffsets)
            .await
            .map_err(|_| Refusal::busy("queue"))
    }

    /// Store time of the queue's first message; -1 when it is empty.
    pub async fn earliest_store_time(
        &self,
        _caller: &Caller,
        topic: &str,
        queue_id: i32,
    ) -> Result<i64, Refusal> {
        let q = find_queue(self.ctx(), topic, queue_id)?;
        let t = q
            .send(StoreTimeAt(None))
            .await
            .map_err(|_| Refusal::busy("queue"))?;
        Ok(t.unwrap_or(-1))
    }

    /// The first offset stored at or after `timestamp` (`upper`: the last at
    /// or before it).
    pub async fn search_offset(
        &self,
        _caller: &Caller,
        topic: &str,
        queue_id: i32,
        timestamp: i64,
        upper: bool,
    ) -> Result<i64, Refusal> {
        let q = find_queue(self.ctx(), topic, queue_id)?;
        q.send(SearchOffset { timestamp, upper })
            .await
            .map_err(|_| Refusal::busy("queue"))
    }
}
