//! POP consumption (RocketMQ 5.x `PopMessageProcessor`): POP_MESSAGE hands
//! out messages that stay invisible for a while; ACK_MESSAGE,
//! BATCH_ACK_MESSAGE and CHANGE_MESSAGE_INVISIBLETIME are in `pop_ack.rs`,
//! PEEK / NOTIFICATION / POLLING_INFO in `pop_peek.rs`, the per-queue
//! reads in `pop_read.rs`, redelivery in `pop_revive.rs` (driven by the
//! `Revive` actors). Callers: the remoting POP processors and the gRPC
//! proxy in LOCAL mode.
//!
//! Non-orderly: each queue read writes one check-point record (CK) to the
//! revive topic and moves the group's offset past what it read; an ACK
//! record marks a message done; a CK whose invisible time passed with
//! messages un-acked is revived through `%RETRY%<group>_<topic>`.
//! Orderly (FIFO): no CK; a queue stays blocked while popped offsets are
//! un-acked and invisible, and re-delivers from its committed offset.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::BrokerService;
use crate::actors::broker::groups::EnsureGroup;
use crate::actors::broker::pop_state::queue_key;
use crate::actors::broker::topic::TopicEntry;
use crate::service::{Caller, Refusal};
use crate::wire::bodies::perm;
use crate::wire::names;
use crate::wire::pop::{retry_topic_v1, OffsetInfos};

/// Most messages one POP returns (`PopMessageProcessor`'s limit).
pub const MAX_POP_MSGS: u32 = 32;
/// Longest invisible time accepted (a year; RocketMQ sets no bound, its
/// proxy 12 h).
pub const MAX_INVISIBLE_MS: u64 = 365 * 24 * 3_600_000;
/// Longest a POP long-polls.
const MAX_POLL: Duration = Duration::from_secs(60);

/// `PopMessageRequestHeader`, typed.
#[derive(Debug, Clone)]
pub struct PopRequest {
    pub group: String,
    pub topic: String,
    /// -1: any readable queue.
    pub queue_id: i32,
    pub max_msgs: u32,
    pub invisible_ms: u64,
    /// Long polling, 0 = none.
    pub poll_ms: u64,
    pub order: bool,
    /// "TAG" | "SQL92".
    pub expression_type: String,
    pub expression: String,
    /// `ConsumeInitMode`: 0 MIN, 1 MAX.
    pub init_mode: i32,
    pub attempt_id: Option<String>,
}

/// One message handed out by a POP.
#[derive(Debug, Clone)]
pub struct PoppedMessage {
    /// The decoded message, reconsume times set; a retried message carries
    /// its original topic.
    pub message: crate::wire::message::MessageExt,
    /// The extraInfo / `POP_CK` handle, RocketMQ's format.
    pub receipt_handle: String,
    /// The stored record as a remoting POP response carries it (re-encoded
    /// under the original topic, with `POP_CK`, for a retried message).
    pub record: Bytes,
}

/// What a POP returns; no messages and no error means "no new message"
/// after the poll time.
#[derive(Debug, Clone, Default)]
pub struct PopReply {
    pub messages: Vec<PoppedMessage>,
    pub pop_time: i64,
    pub invisible_ms: u64,
    pub rest_num: i64,
    /// The revive queue of this POP's check-points (999 when orderly).
    pub revive_qid: i32,
    /// `startOffsetInfo`, `msgOffsetInfo`, `orderCountInfo`.
    pub infos: OffsetInfos,
    /// controller mode: the lowest commit-log end of a record a read held
    /// back at the confirm offset (a waiting POP wakes when the confirm
    /// offset reaches it).
    pub confirm_wait: Option<i64>,
}

/// `AckMessageRequestHeader`, typed.
#[derive(Debug, Clone)]
pub struct AckRequest {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub receipt_handle: String,
    pub offset: i64,
}

/// `ChangeInvisibleTimeRequestHeader`, typed.
#[derive(Debug, Clone)]
pub struct ChangeInvisibleRequest {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub receipt_handle: String,
    pub offset: i64,
    pub invisible_ms: u64,
}

#[derive(Debug, Clone)]
pub struct ChangeInvisibleReply {
    /// The new handle; the old one is dead.
    pub receipt_handle: String,
    pub pop_time: i64,
    pub invisible_ms: u64,
    pub revive_qid: i32,
}

/// A validated POP: the topic, its filter, the retry topic to read too
/// (by name: revival may create it while the POP waits).
pub(super) struct PopPlan {
    pub topic: Arc<TopicEntry>,
    pub retry: Option<String>,
    pub tags: Option<Vec<i64>>,
    pub sql: Option<Arc<crate::filter::Expr>>,
    pub max_msgs: usize,
}

impl BrokerService {
    /// POP_MESSAGE: up to `max_msgs` messages from one queue or all, each
    /// invisible for `invisible_ms`; long-polls up to `poll_ms` when none.
    pub async fn pop(&self, _caller: &Caller, req: PopRequest) -> Result<PopReply, Refusal> {
        let plan = self.pop_plan(&req).await?;
        let poll = Duration::from_millis(req.poll_ms).min(MAX_POLL);
        let deadline = Instant::now() + poll;
        let pop = self.ctx().pop.clone();
        let mut watch = (!poll.is_zero()).then(|| {
            let mut topics = vec![plan.topic.name.to_string()];
            topics.extend(plan.retry.clone());
            pop.arrivals.watch(&topics)
        });
        let key = queue_key(&req.topic, &req.group, req.queue_id);
        let mut slot = None;
        loop {
            let reply = self.pop_once(&req, &plan).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(w) = watch
                .as_mut()
                .filter(|_| reply.messages.is_empty() && !left.is_zero())
            else {
                return Ok(reply);
            };
            if slot.is_none() {
                slot = Some(
                    pop.start_polling(key.clone())
                        .ok_or_else(|| Refusal::PollingFull(format!("polling full, key {key}")))?,
                );
            }
            // A dispatch of the topics, or the confirm offset reaching a
            // record the read held back (controller mode).
            match reply.confirm_wait {
                Some(end) => {
                    let confirmed = self.ctx().reader.confirm_reached(end);
                    tokio::select! {
                        _ = w.wait(left) => {}
                        _ = confirmed => {}
                    }
                }
                None => {
                    w.wait(left).await;
                }
            }
        }
    }

    /// The checks of `PopMessageProcessor#processRequest`.
    async fn pop_plan(&self, req: &PopRequest) -> Result<PopPlan, Refusal> {
        let ctx = self.ctx();
        if let Some(r) = ctx.role.refuse_write() {
            return Err(r);
        }
        names::check_group(&req.group)?;
        if req.invisible_ms > MAX_INVISIBLE_MS {
            return Err(Refusal::InvalidParameter(format!(
                "invisibleTime {} above {MAX_INVISIBLE_MS} ms",
                req.invisible_ms
            )));
        }
        if req.max_msgs == 0 || req.max_msgs > MAX_POP_MSGS {
            return Err(Refusal::InvalidParameter(format!(
                "the broker restrict max msg nums {MAX_POP_MSGS}, asked {}",
                req.max_msgs
            )));
        }
        let Some(topic) = ctx.topics.get(&req.topic) else {
            return Err(Refusal::topic_not_exist(&req.topic));
        };
        if topic.config.perm & perm::READ == 0 {
            return Err(Refusal::NoPermission(format!(
                "the topic[{}] peeking message is forbidden",
                req.topic
            )));
        }
        let read = topic.config.read_queue_nums.max(0);
        if req.queue_id < -1 || req.queue_id >= read {
            return Err(Refusal::InvalidParameter(format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{read}] consumer:[{}]",
                req.queue_id, req.topic, req.group
            )));
        }
        // The published table first; the manager only for a new group
        // (auto-created with `autoCreateSubscriptionGroup`).
        if ctx.services.group_table.get(&req.group).is_none()
            && ctx
                .groups
                .send(EnsureGroup(req.group.clone()))
                .await?
                .is_none()
        {
            return Err(Refusal::GroupNotExist(format!(
                "subscription group [{}] does not exist",
                req.group
            )));
        }
        super::pull::group_check(ctx, &req.group)?;
        let (tags, sql) = self.pop_filter(req)?;
        let retry = (!req.order).then(|| retry_topic_v1(&req.group, &req.topic));
        Ok(PopPlan {
            topic,
            retry,
            tags,
            sql,
            max_msgs: req.max_msgs as usize,
        })
    }

    /// The tag codes or SQL92 expression of a POP (`expType`, `exp`).
    fn pop_filter(&self, req: &PopRequest) -> Result<super::pull::Filters, Refusal> {
        let ty = req.expression_type.trim();
        if ty.is_empty() || ty.eq_ignore_ascii_case("TAG") {
            return Ok((super::pull::tag_codes(&req.expression), None));
        }
        if !ty.eq_ignore_ascii_case("SQL92") {
            return Err(Refusal::SubscriptionParseFailed(format!(
                "unsupported expression type {ty}"
            )));
        }
        if !self.ctx().cfg.enable_property_filter {
            return Err(Refusal::Failed(
                "The broker does not support consumer to filter message by SQL92".into(),
            ));
        }
        crate::filter::parse(&req.expression)
            .map(|e| (None, Some(Arc::new(e))))
            .map_err(|e| super::pull::sql_parse_error(&req.expression, &req.group, &e))
    }

    /// One pass over the retry topic and the topic's queues, no waiting.
    /// A failure after some messages were taken returns those (their
    /// check-points are written); the next POP meets the failure again.
    async fn pop_once(&self, req: &PopRequest, plan: &PopPlan) -> Result<PopReply, Refusal> {
        let ctx = self.ctx();
        let mut reply = PopReply {
            pop_time: crate::wire::now_ms(),
            invisible_ms: req.invisible_ms,
            revive_qid: if req.order {
                crate::wire::pop::ORDER_REVIVE_QID
            } else {
                ctx.pop.next_revive_qid()
            },
            ..PopReply::default()
        };
        match self.pop_pass(req, plan, &mut reply).await {
            Err(e) if reply.messages.is_empty() => Err(e),
            Err(e) => {
                tracing::warn!(topic = %req.topic, group = %req.group, error = %e, "POP cut short");
                Ok(reply)
            }
            Ok(()) => Ok(reply),
        }
    }

    async fn pop_pass(
        &self,
        req: &PopRequest,
        plan: &PopPlan,
        reply: &mut PopReply,
    ) -> Result<(), Refusal> {
        let random = rand::random::<u32>() % 100;
        // `popFromRetryProbability` (20 %): the retry topic first.
        let retry_first = random < 20;
        if retry_first {
            self.pop_retry(req, plan, reply).await?;
        }
        let n = plan.topic.config.read_queue_nums.max(1);
        let queues: Vec<i32> = if req.queue_id >= 0 {
            vec![req.queue_id]
        } else {
            (0..n).map(|i| (random as i32 + i) % n).collect()
        };
        for q in queues {
            if reply.messages.len() >= plan.max_msgs {
                break;
            }
            self.pop_queue(req, plan, &plan.topic, q, reply).await?;
        }
        if !retry_first && reply.messages.len() < plan.max_msgs {
            self.pop_retry(req, plan, reply).await?;
        }
        Ok(())
    }

    async fn pop_retry(
        &self,
        req: &PopRequest,
        plan: &PopPlan,
        reply: &mut PopReply,
    ) -> Result<(), Refusal> {
        let Some(retry) = plan.retry.as_ref().and_then(|r| self.ctx().topics.get(r)) else {
            return Ok(());
        };
        for q in 0..retry.config.read_queue_nums.max(1) {
            if reply.messages.len() >= plan.max_msgs {
                break;
            }
            self.pop_queue(req, plan, &retry, q, reply).await?;
        }
        Ok(())
    }
}
