//! PULL_MESSAGE and LITE_PULL_MESSAGE: resolve the subscription's tag
//! filter, ask the queue actor (which may hold the request for long
//! polling), and answer with the stored records as zero-copy body slices.

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

pub async fn pull(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
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
    let expression_type = h.expression_type.as_deref().unwrap_or("TAG");
    let filter = if !expression_type.is_empty() && !expression_type.eq_ignore_ascii_case("TAG") {
        // SQL92 filters arrive with the consumption issue; until then, deliver all.
        None
    } else if h.sys_flag & pull_flag::SUBSCRIPTION != 0 {
        h.subscription.as_deref().and_then(tag_codes)
    } else {
        ctx.subscriptions
            .get(&h.consumer_group, &h.topic)
            .and_then(|s| {
                if s.code_set.is_empty() {
                    tag_codes(&s.sub_string)
                } else {
                    Some(s.code_set)
                }
            })
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
        resp.body = outcome.bodies;
    }
    resp
}
