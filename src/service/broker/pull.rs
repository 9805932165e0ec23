//! Pull (PULL_MESSAGE, LITE_PULL_MESSAGE): resolve the subscription's tag
//! or SQL92 filter, commit the consumer's offset when asked, and ask the
//! queue actor (which may hold the request for long polling). The records
//! come back as zero-copy slices of the mapped commit log.

use std::sync::Arc;
use std::time::Duration;

use super::BrokerService;
use crate::actors::broker::offsets::CommitOffset;
use crate::actors::broker::processor::BrokerCtx;
use crate::actors::broker::queue::{Pull, PullOutcome, PullQuery};
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{parse_tags, perm};
use crate::wire::message::java_hash;

/// Longest a pull may be held (long polling).
const MAX_HOLD: Duration = Duration::from_secs(60);
/// Default of the most pulls held at once, broker-wide (`maxHeldPulls`);
/// past it a pull with nothing to return is answered at once (the client
/// simply pulls again), so idle consumers cannot pin unbounded memory.
pub const MAX_HELD_PULLS: usize = 10_000;

/// One held pull counted while it waits.
struct HeldSlot<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for HeldSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A subscription sent with the pull (the SUBSCRIPTION flag); without one
/// the group's heartbeat subscription applies.
#[derive(Debug, Clone, Default)]
pub struct PullSubscription {
    /// TAG (default) or SQL92.
    pub expression_type: Option<String>,
    pub expression: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PullRequest {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub offset: i64,
    pub max_msgs: i32,
    /// The consumer's progress to commit on the way (COMMIT_OFFSET flag).
    pub commit_offset: Option<i64>,
    /// How long to hold the pull when nothing is there (SUSPEND flag).
    pub hold: Option<Duration>,
    pub subscription: Option<PullSubscription>,
}

pub struct PullReply {
    pub outcome: PullOutcome,
    pub topic_sys_flag: i32,
}

/// Tag hash codes of a TAG expression; `None` means everything.
fn tag_codes(expr: &str) -> Option<Vec<i64>> {
    let tags = parse_tags(expr);
    if tags.is_empty() {
        None
    } else {
        Some(tags.iter().map(|t| java_hash(t) as i64).collect())
    }
}

/// Refused when the group may not consume (`consumeEnable=false`, or
/// broadcasting without `consumeBroadcastEnable`).
fn group_check(ctx: &BrokerCtx, group: &str) -> Result<(), Refusal> {
    let Some(g) = ctx.services.group_table.get(group) else {
        return Ok(());
    };
    let (forbidden_type, remark) = if !g.consume_enable {
        (2, format!("subscription group no permission, {group}"))
    } else if !g.consume_broadcast_enable
        && ctx.subscriptions.message_model(group).as_deref() == Some("BROADCASTING")
    {
        (
            4,
            format!("the consumer group[{group}] can not consume by broadcast way"),
        )
    } else {
        return Ok(());
    };
    Err(Refusal::ConsumeForbidden {
        remark,
        forbidden_type,
    })
}

type Filters = (Option<Vec<i64>>, Option<Arc<crate::filter::Expr>>);

/// The tag codes or SQL92 expression the pull must apply: from the request
/// when it carries its subscription, else from the group's heartbeat.
fn subscription_filter(ctx: &BrokerCtx, h: &PullRequest) -> Result<Filters, Refusal> {
    let (expr_type, expr, codes) = match &h.subscription {
        Some(s) => (s.expression_type.clone(), s.expression.clone(), Vec::new()),
        None => match ctx.subscriptions.get(&h.group, &h.topic) {
            Some(s) => (s.expression_type, Some(s.sub_string), s.code_set),
            None => (None, None, Vec::new()),
        },
    };
    let ty = expr_type.unwrap_or_default();
    if ty.is_empty() || ty.eq_ignore_ascii_case("TAG") {
        let tags = if codes.is_empty() {
            expr.as_deref().and_then(tag_codes)
        } else {
            Some(codes)
        };
        return Ok((tags, None));
    }
    if !ty.eq_ignore_ascii_case("SQL92") {
        return Err(Refusal::SubscriptionParseFailed(format!(
            "unsupported expression type {ty}"
        )));
    }
    if !ctx.cfg.enable_property_filter {
        return Err(Refusal::Failed(
            "The broker does not support consumer to filter message by SQL92".into(),
        ));
    }
    let Some(text) = expr else {
        return Ok((None, None));
    };
    crate::filter::parse(&text)
        .map(|e| (None, Some(Arc::new(e))))
        .map_err(|e| sql_parse_error(&text, &h.group, &e))
}

/// SUBSCRIPTION_PARSE_FAILED with the reason.
pub fn sql_parse_error(text: &str, group: &str, e: &crate::filter::FilterError) -> Refusal {
    Refusal::SubscriptionParseFailed(format!(
        "parse the consumer's subscription[{text}] failed, group: {group}: {e}"
    ))
}

impl BrokerService {
    pub async fn pull(&self, _caller: &Caller, h: PullRequest) -> Result<PullReply, Refusal> {
        let ctx = self.ctx();
        if let Some(r) = ctx.role.refuse_pull() {
            return Err(r);
        }
        let Some(topic) = ctx.topics.get(&h.topic) else {
            return Err(Refusal::topic_not_exist(&h.topic));
        };
        if topic.config.perm & perm::READ == 0 {
            return Err(Refusal::NoPermission(format!(
                "the topic[{}] pulling message is forbidden",
                h.topic
            )));
        }
        let Some(queue) = topic
            .queue(h.queue_id)
            .filter(|_| h.queue_id < topic.config.read_queue_nums.max(1))
        else {
            return Err(Refusal::InvalidParameter(format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                h.queue_id, h.topic, topic.config.read_queue_nums
            )));
        };
        group_check(ctx, &h.group)?;
        let (filter, sql) = subscription_filter(ctx, &h)?;
        if let Some(offset) = h.commit_offset.filter(|o| *o >= 0) {
            if !h.group.is_empty() {
                ctx.offsets.do_send(CommitOffset {
                    group: h.group.clone(),
                    topic: h.topic.clone(),
                    queue_id: h.queue_id,
                    offset,
                });
            }
        }
        let query = PullQuery {
            offset: h.offset,
            max_msgs: h.max_msgs.max(1),
            tag_codes: filter,
            sql,
        };
        let mut hold = h.hold.map(|d| d.min(MAX_HOLD));
        let _slot = match hold {
            Some(_) => {
                use std::sync::atomic::Ordering;
                let slot = HeldSlot(&ctx.held_pulls);
                if ctx.held_pulls.fetch_add(1, Ordering::Relaxed) >= ctx.max_held_pulls {
                    hold = None;
                }
                Some(slot)
            }
            None => None,
        };
        let outcome = match queue.send(Pull { query, hold }).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(Refusal::Failed(e.to_string())),
            Err(_) => return Err(Refusal::busy("queue")),
        };
        Ok(PullReply {
            outcome,
            topic_sys_flag: topic.config.topic_sys_flag,
        })
    }
}
