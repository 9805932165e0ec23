//! Remoting adapter of the pull service: PULL_MESSAGE (11) and
//! LITE_PULL_MESSAGE (361). The pull flags become typed fields; the queue's
//! status becomes RocketMQ's pull response code.

use std::time::Duration;

use super::{bad_header, refused};
use crate::actors::broker::queue::PullStatus;
use crate::service::broker::{BrokerService, PullReply, PullRequest, PullSubscription};
use crate::service::Caller;
use crate::wire::codes::response as rs;
use crate::wire::headers::pull::{pull_flag, PullMessageRequestHeader, PullMessageResponseHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

pub async fn pull(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let h = match PullMessageRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let flag = |f: i32| h.sys_flag & f != 0;
    let request = PullRequest {
        commit_offset: (flag(pull_flag::COMMIT_OFFSET)).then_some(h.commit_offset),
        hold: (flag(pull_flag::SUSPEND) && h.suspend_timeout_millis > 0)
            .then(|| Duration::from_millis(h.suspend_timeout_millis as u64)),
        subscription: flag(pull_flag::SUBSCRIPTION).then(|| PullSubscription {
            expression_type: h.expression_type.clone(),
            expression: h.subscription.clone(),
        }),
        group: h.consumer_group,
        topic: h.topic,
        queue_id: h.queue_id,
        offset: h.queue_offset,
        max_msgs: h.max_msg_nums,
    };
    let asked_offset = request.offset;
    match svc.pull(caller, request).await {
        Ok(reply) => pull_response(req, reply, asked_offset),
        Err(r) => refused(req, r),
    }
}

fn pull_response(req: &RemotingCommand, reply: PullReply, asked_offset: i64) -> RemotingCommand {
    let o = reply.outcome;
    let code = match o.status {
        PullStatus::Found => rs::SUCCESS,
        PullStatus::NoMatchedMessage | PullStatus::MessageWasRemoving => rs::PULL_RETRY_IMMEDIATELY,
        PullStatus::NoNewMessage | PullStatus::OffsetOverflowOne => rs::PULL_NOT_FOUND,
        PullStatus::NoMessageInQueue if asked_offset == 0 => rs::PULL_NOT_FOUND,
        PullStatus::NoMessageInQueue
        | PullStatus::OffsetTooSmall
        | PullStatus::OffsetOverflowBadly => rs::PULL_OFFSET_MOVED,
    };
    let mut resp = RemotingCommand::response_to(req, code).with_remark(o.status.name());
    PullMessageResponseHeader {
        suggest_which_broker_id: reply.suggest,
        next_begin_offset: o.next_begin,
        min_offset: o.min,
        max_offset: o.max,
        offset_delta: None,
        topic_sys_flag: Some(reply.topic_sys_flag),
        group_sys_flag: Some(0),
        forbidden_type: None,
    }
    .write_ext(&mut resp.ext);
    if code == rs::SUCCESS {
        resp.body = o.bodies.into();
    }
    resp
}
