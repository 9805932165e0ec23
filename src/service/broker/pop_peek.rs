//! Looking at POP queues without taking messages
//! (`PeekMessageProcessor`, `NotificationProcessor`, `PollingInfoProcessor`):
//! PEEK_MESSAGE reads from the group's POP offset without a check-point or
//! an offset change; NOTIFICATION says whether a POP would find something,
//! long-polling when not; POLLING_INFO counts the POPs waiting on a queue.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::BrokerService;
use crate::actors::broker::pop_state::queue_key;
use crate::actors::broker::queue::{Pull, PullQuery, QueueOffsets};
use crate::actors::broker::topic::TopicEntry;
use crate::service::{Caller, Refusal};
use crate::wire::bodies::perm;
use crate::wire::pop::retry_topic_v1;

/// A PEEK: up to `max_msgs` records from the group's POP offset.
#[derive(Debug, Clone)]
pub struct PeekRequest {
    pub group: String,
    pub topic: String,
    /// -1: every readable queue.
    pub queue_id: i32,
    pub max_msgs: u32,
}

#[derive(Debug, Clone, Default)]
pub struct PeekReply {
    /// Stored records (empty: PULL_NOT_FOUND).
    pub records: Vec<Bytes>,
    pub rest_num: i64,
}

/// A NOTIFICATION: would a POP find messages?
#[derive(Debug, Clone)]
pub struct NotificationRequest {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub poll_ms: u64,
    pub order: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotificationReply {
    pub has_msg: bool,
    pub polling_full: bool,
}

impl BrokerService {
    /// PEEK_MESSAGE.
    pub async fn peek(&self, _caller: &Caller, req: PeekRequest) -> Result<PeekReply, Refusal> {
        let max = req.max_msgs.clamp(1, super::pop::MAX_POP_MSGS) as usize;
        let mut reply = PeekReply::default();
        for (entry, qid) in self.pop_queues(&req.group, &req.topic, req.queue_id, false)? {
            if reply.records.len() >= max {
                break;
            }
            let Some(queue) = entry.queue(qid) else {
                continue;
            };
            let (offset, max_offset) = self.peek_offset(&req.group, &entry, qid).await?;
            let query = PullQuery {
                offset,
                max_msgs: (max - reply.records.len()) as i32,
                tag_codes: None,
                sql: None,
            };
            let out = match queue.send(Pull { query, hold: None }).await? {
                Ok(o) => o,
                Err(e) => return Err(Refusal::Failed(e.to_string())),
            };
            reply.rest_num += (max_offset - out.next_begin.max(offset)).max(0);
            reply.records.extend(out.bodies);
        }
        Ok(reply)
    }

    /// NOTIFICATION.
    pub async fn notification(
        &self,
        _caller: &Caller,
        req: NotificationRequest,
    ) -> Result<NotificationReply, Refusal> {
        let queues = self.pop_queues(&req.group, &req.topic, req.queue_id, req.order)?;
        let topics: Vec<String> = {
            let mut t: Vec<String> = queues.iter().map(|(e, _)| e.name.to_string()).collect();
            t.dedup();
            t
        };
        let pop = self.ctx().pop.clone();
        let mut watch = pop.arrivals.watch(&topics);
        let deadline = Instant::now() + Duration::from_millis(req.poll_ms.min(60_000));
        let key = queue_key(&req.topic, &req.group, req.queue_id);
        let mut slot = None;
        loop {
            if self.any_visible(&req, &queues).await? {
                return Ok(NotificationReply {
                    has_msg: true,
                    polling_full: false,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(NotificationReply::default());
            }
            if slot.is_none() {
                match pop.start_polling(key.clone()) {
                    Some(s) => slot = Some(s),
                    None => {
                        return Ok(NotificationReply {
                            has_msg: false,
                            polling_full: true,
                        })
                    }
                }
            }
            watch.wait(left).await;
        }
    }

    /// POLLING_INFO: POPs long-polling `topic@group@queueId` now.
    pub fn polling_info(
        &self,
        _caller: &Caller,
        group: &str,
        topic: &str,
        qid: i32,
    ) -> Result<i32, Refusal> {
        if self.ctx().topics.get(topic).is_none() {
            return Err(Refusal::topic_not_exist(topic));
        }
        Ok(self.ctx().pop.polling_count(&queue_key(topic, group, qid)) as i32)
    }

    async fn any_visible(
        &self,
        req: &NotificationRequest,
        queues: &[(std::sync::Arc<TopicEntry>, i32)],
    ) -> Result<bool, Refusal> {
        let now = crate::wire::now_ms();
        for (entry, qid) in queues {
            let key = queue_key(&entry.name, &req.group, *qid);
            if req.order
                && self
                    .ctx()
                    .pop
                    .order_info(&key)
                    .is_some_and(|i| i.blocks(now))
            {
                continue;
            }
            let (offset, max) = self.peek_offset(&req.group, entry, *qid).await?;
            if max > offset {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The group's POP offset (0 when it has none) and the queue's max.
    async fn peek_offset(
        &self,
        group: &str,
        entry: &TopicEntry,
        qid: i32,
    ) -> Result<(i64, i64), Refusal> {
        let Some(queue) = entry.queue(qid) else {
            return Ok((0, 0));
        };
        let (min, max) = queue.send(QueueOffsets).await?;
        let committed = self
            .ctx()
            .offsets
            .send(crate::actors::broker::offsets::QueryOffset {
                group: group.to_owned(),
                topic: entry.name.to_string(),
                queue_id: qid,
            })
            .await?;
        Ok((committed.unwrap_or(min).max(min), max))
    }

    /// The (topic, queue) pairs a POP of `queue_id` reads, retry topic first.
    fn pop_queues(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        order: bool,
    ) -> Result<Vec<(std::sync::Arc<TopicEntry>, i32)>, Refusal> {
        let ctx = self.ctx();
        let Some(entry) = ctx.topics.get(topic) else {
            return Err(Refusal::topic_not_exist(topic));
        };
        if entry.config.perm & perm::READ == 0 {
            return Err(Refusal::NoPermission(format!(
                "the topic[{topic}] peeking message is forbidden"
            )));
        }
        let n = entry.config.read_queue_nums.max(0);
        if queue_id < -1 || queue_id >= n {
            return Err(Refusal::InvalidParameter(format!(
                "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{n}]"
            )));
        }
        let mut out = Vec::new();
        if !order {
            if let Some(r) = ctx.topics.get(&retry_topic_v1(group, topic)) {
                for q in 0..r.config.read_queue_nums.max(1) {
                    out.push((r.clone(), q));
                }
            }
        }
        let qids: Vec<i32> = if queue_id >= 0 {
            vec![queue_id]
        } else {
            (0..n).collect()
        };
        for q in qids {
            out.push((entry.clone(), q));
        }
        Ok(out)
    }
}
