//! PULL_MESSAGE and LITE_PULL_MESSAGE: resolve the subscription's tag
//! filter, ask the queue actor (which may hold the request for long
//! polling), and answer with the stored records as zero-copy body slices.

use std::sync::Arc;
use std::time::Duration;

use super::{bad_header, error, BrokerCtx};
use crate::actors::broker::offsets::CommitOffset;
use crate::actors::broker::queue::{Pull, PullQuery, PullStatus};
use crate::wire::bodies::parse_tags;
use crate::wire::codes::response as rs;
use crate::wire::headers::pull::{pull_flag, PullMessageRequestHeader, PullMessageResponseHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::message::java_hash;
use crate::wire::RemotingCommand;

/// Tag hash codes of a TAG expression; `None` means everything.
fn tag_codes(expr: &str) -> Option<Vec<i64>> {
    let tags = parse_tags(expr);
    if tags.is_empty() {
        None
    } else {
        Some(tags.iter().map(|t| java_hash(t) as i64).collect())
    }
}

/// NO_PERMISSION when the group may not consume (`consumeEnable=false`,
/// or broadcasting without `consumeBroadcastEnable`).
fn group_check(ctx: &BrokerCtx, req: &RemotingCommand, group: &str) -> Option<RemotingCommand> {
    let g = ctx.services.group_table.get(group)?;
    let forbidden = if !g.consume_enable {
        Some((2, format!("subscription group no permission, {group}")))
    } else if !g.consume_broadcast_enable
        && ctx.subscriptions.message_model(group).as_deref() == Some("BROADCASTING")
    {
        Some((
            4,
            format!("the consumer group[{group}] can not consume by broadcast way"),
        ))
    } else {
        None
    };
    forbidden
        .map(|(ty, remark)| error(req, rs::NO_PERMISSION, remark).with_ext("forbiddenType", ty))
}

type Filters = (Option<Vec<i64>>, Option<Arc<crate::filter::Expr>>);

/// The tag codes or SQL92 expression the pull must apply: from the request
/// when it carries its subscription, else from the group's heartbeat.
fn subscription_filter(
    ctx: &BrokerCtx,
    h: &PullMessageRequestHeader,
) -> Result<Filters, (i32, String)> {
    let (expr_type, expr, codes) = if h.sys_flag & pull_flag::SUBSCRIPTION != 0 {
        (
            h.expression_type.clone(),
            h.subscription.clone(),
            Vec::new(),
        )
    } else {
        match ctx.subscriptions.get(&h.consumer_group, &h.topic) {
            Some(s) => (s.expression_type, Some(s.sub_string), s.code_set),
            None => (h.expression_type.clone(), None, Vec::new()),
        }
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
        return Err((
            rs::SUBSCRIPTION_PARSE_FAILED,
            format!("unsupported expression type {ty}"),
        ));
    }
    if !ctx.cfg.enable_property_filter {
        return Err((
            rs::SYSTEM_ERROR,
            "The broker does not support consumer to filter message by SQL92".into(),
        ));
    }
    let Some(text) = expr else {
        return Ok((None, None));
    };
    crate::filter::parse(&text)
        .map(|e| (None, Some(Arc::new(e))))
        .map_err(|e| sql_parse_error(&text, &h.consumer_group, &e))
}

/// SUBSCRIPTION_PARSE_FAILED with the reason.
pub fn sql_parse_error(text: &str, group: &str, e: &crate::filter::FilterError) -> (i32, String) {
    (
        rs::SUBSCRIPTION_PARSE_FAILED,
        format!("parse the consumer's subscription[{text}] failed, group: {group}: {e}"),
    )
}

pub async fn pull(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    if let Some(r) = ctx.role.refuse_pull() {
        return r.answer(req);
    }
    let h = match PullMessageRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let Some(topic) = ctx.topics.get(&h.topic) else {
        return error(
            req,
            rs::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist, apply first please!", h.topic),
        );
    };
    if topic.config.perm & crate::wire::bodies::perm::READ == 0 {
        return error(
            req,
            rs::NO_PERMISSION,
            format!("the topic[{}] pulling message is forbidden", h.topic),
        );
    }
    let Some(queue) = topic
        .queue(h.queue_id)
        .filter(|_| h.queue_id < topic.config.read_queue_nums.max(1))
    else {
        return error(
            req,
            rs::INVALID_PARAMETER,
            format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                h.queue_id, h.topic, topic.config.read_queue_nums
            ),
        );
    };
    if let Some(refused) = group_check(ctx, req, &h.consumer_group) {
        return refused;
    }
    let (filter, sql) = match subscription_filter(ctx, &h) {
        Ok(f) => f,
        Err((code, remark)) => return error(req, code, remark),
    };
    if h.sys_flag & pull_flag::COMMIT_OFFSET != 0
        && h.commit_offset >= 0
        && !h.consumer_group.is_empty()
    {
        ctx.offsets.do_send(CommitOffset {
            group: h.consumer_group.clone(),
            topic: h.topic.clone(),
            queue_id: h.queue_id,
            offset: h.commit_offset,
        });
    }
    let hold = if h.sys_flag & pull_flag::SUSPEND != 0 && h.suspend_timeout_millis > 0 {
        Some(Duration::from_millis(
            h.suspend_timeout_millis.min(60_000) as u64
        ))
    } else {
        None
    };
    let query = PullQuery {
        offset: h.queue_offset,
        max_msgs: h.max_msg_nums.max(1),
        tag_codes: filter,
        sql,
    };
    let outcome = match queue.send(Pull { query, hold }).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return error(req, rs::SYSTEM_ERROR, e.to_string()),
        Err(_) => return error(req, rs::SYSTEM_BUSY, "[OVERLOAD] queue busy, try again"),
    };
    let code = match outcome.status {
        PullStatus::Found => rs::SUCCESS,
        PullStatus::NoMatchedMessage | PullStatus::MessageWasRemoving => rs::PULL_RETRY_IMMEDIATELY,
        PullStatus::NoNewMessage | PullStatus::OffsetOverflowOne => rs::PULL_NOT_FOUND,
        PullStatus::NoMessageInQueue if h.queue_offset == 0 => rs::PULL_NOT_FOUND,
        PullStatus::NoMessageInQueue
        | PullStatus::OffsetTooSmall
        | PullStatus::OffsetOverflowBadly => rs::PULL_OFFSET_MOVED,
    };
    let mut resp = RemotingCommand::response_to(req, code).with_remark(outcome.status.name());
    PullMessageResponseHeader {
        suggest_which_broker_id: 0,
        next_begin_offset: outcome.next_begin,
        min_offset: outcome.min,
        max_offset: outcome.max,
        offset_delta: None,
        topic_sys_flag: Some(topic.config.topic_sys_flag),
        group_sys_flag: Some(0),
        forbidden_type: None,
    }
    .write_ext(&mut resp.ext);
    if code == rs::SUCCESS {
        resp.body = outcome.bodies.into();
    }
    resp
}
