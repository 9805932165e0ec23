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
    /// `suggestWhichBrokerId` (see [`suggest_broker`]).
    pub suggest: i64,
}

/// Tag hash codes of a TAG expression; `None` means everything.
pub(super) fn tag_codes(expr: &str) -> Option<Vec<i64>> {
    let tags = parse_tags(expr);
    if tags.is_empty() {
        None
    } else {
        Some(tags.iter().map(|t| java_hash(t) as i64).collect())
    }
}

/// Refused when the group may not consume (`consumeEnable=false`, or
/// broadcasting without `consumeBroadcastEnable`).
pub(super) fn group_check(ctx: &BrokerCtx, group: &str) -> Result<(), Refusal> {
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

pub(super) type Filters = (Option<Vec<i64>>, Option<Arc<crate::filter::Expr>>);

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
        let suggest = suggest_broker(ctx, &outcome);
        Ok(PullReply {
            outcome,
            topic_sys_flag: topic.config.topic_sys_flag,
            suggest,
        })
    }
}

/// `suggestWhichBrokerId` of a pull answer, as Java's
/// `PullMessageProcessor` (with `DefaultMessageStore#getMessage`'s
/// `suggestPullingFromSlave`): the pull is "slow" when the commit log holds
/// more than `accessMessageInMemoryMaxRatio` (40) % of the physical memory
/// past the last record returned. A slow pull is sent to
/// `whichBrokerWhenConsumeSlowly` (1); any other to the master (0). Without
/// `slaveReadEnable` a master always suggests itself (a slave without it
/// refuses pulls before this point).
fn suggest_broker(ctx: &BrokerCtx, o: &PullOutcome) -> i64 {
    let cfg = &ctx.cfg;
    let is_master = !ctx.role.is_slave();
    if is_master && !cfg.slave_read_enable {
        return 0;
    }
    let key = |k: &str, d: i64| {
        cfg.unknown
            .get(k)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(d)
    };
    // Physical offset of the last record returned (`maxPhyOffsetPulling`).
    let Some(last) = o.bodies.last().filter(|b| b.len() >= 36) else {
        return 0;
    };
    let pulled = i64::from_be_bytes(last[28..36].try_into().unwrap_or([0; 8]));
    let behind = ctx.reader.max_offset() - pulled;
    let ratio = key("accessMessageInMemoryMaxRatio", 40).clamp(0, 100);
    let in_memory = (total_memory() as i128 * ratio as i128 / 100) as i64;
    if behind > in_memory {
        key("whichBrokerWhenConsumeSlowly", 1)
    } else {
        0
    }
}

/// The machine's physical memory (`/proc/meminfo`), 8 GiB when unknown.
fn total_memory() -> i64 {
    static MEM: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *MEM.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb * 1024)
            })
            .unwrap_or(8 << 30)
    })
}
