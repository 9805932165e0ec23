//! Remoting adapters of the POP services: POP_MESSAGE (200050),
//! ACK_MESSAGE (200051), BATCH_ACK_MESSAGE (200151), PEEK_MESSAGE
//! (200052), CHANGE_MESSAGE_INVISIBLETIME (200053), NOTIFICATION (200054),
//! POLLING_INFO (200055). Header names are RocketMQ's; a POP response body
//! is the stored records, as a pull's.

use super::{bad_body, bad_header, ok, refused};
use crate::service::broker::{
    AckRequest, BrokerService, ChangeInvisibleRequest, NotificationRequest, PeekRequest, PopReply,
    PopRequest,
};
use crate::service::Caller;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::pop::*;
use crate::wire::headers::CommandHeader;
use crate::wire::pop::{BatchAckBody, Handle};
use crate::wire::RemotingCommand;

pub async fn serve(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        rq::POP_MESSAGE => pop(svc, caller, req).await,
        rq::ACK_MESSAGE => ack(svc, caller, req).await,
        rq::BATCH_ACK_MESSAGE => batch_ack(svc, caller, req).await,
        rq::CHANGE_MESSAGE_INVISIBLETIME => change_invisible(svc, caller, req).await,
        rq::PEEK_MESSAGE => peek(svc, caller, req).await,
        rq::NOTIFICATION => notification(svc, caller, req).await,
        _ => polling_info(svc, caller, req),
    }
}

async fn pop(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let h = match PopMessageRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    if h.invisible_time < 0 || h.max_msg_nums < 0 {
        return super::error(
            req,
            rs::INVALID_PARAMETER,
            format!(
                "invisibleTime {} and maxMsgNums {} must not be negative",
                h.invisible_time, h.max_msg_nums
            ),
        );
    }
    let request = PopRequest {
        group: h.consumer_group,
        topic: h.topic,
        queue_id: h.queue_id,
        max_msgs: h.max_msg_nums as u32,
        invisible_ms: h.invisible_time as u64,
        poll_ms: h.poll_time.max(0) as u64,
        order: h.order.unwrap_or(false),
        expression_type: h.exp_type.unwrap_or_default(),
        expression: h.exp.unwrap_or_else(|| "*".into()),
        init_mode: h.init_mode,
        attempt_id: h.attempt_id,
    };
    match svc.pop(caller, request).await {
        Ok(reply) => pop_response(req, reply),
        Err(r) => refused(req, r),
    }
}

fn pop_response(req: &RemotingCommand, reply: PopReply) -> RemotingCommand {
    let found = !reply.messages.is_empty();
    let mut resp = if found {
        ok(req)
    } else {
        RemotingCommand::response_to(req, rs::POLLING_TIMEOUT).with_remark("no new message")
    };
    let some = |s: String| (!s.is_empty()).then_some(s);
    PopMessageResponseHeader {
        pop_time: reply.pop_time,
        invisible_time: reply.invisible_ms as i64,
        revive_qid: reply.revive_qid,
        rest_num: reply.rest_num,
        start_offset_info: some(reply.infos.start),
        msg_offset_info: some(reply.infos.msgs),
        order_count_info: some(reply.infos.order_counts),
    }
    .write_ext(&mut resp.ext);
    if found {
        resp.body = reply.messages.into_iter().map(|m| m.record).collect();
    }
    resp
}

async fn ack(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let h = match AckMessageRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let request = AckRequest {
        group: h.consumer_group,
        topic: h.topic,
        queue_id: h.queue_id,
        receipt_handle: h.extra_info,
        offset: h.offset,
    };
    match svc.ack(caller, request).await {
        Ok(()) => ok(req),
        Err(r) => refused(req, r),
    }
}

/// Each `BatchAck` entry becomes one ack per set bit, with the handle it
/// stands for (`<so> <pt> <it> <rq> <r> <brokerName> <q> <offset>`).
async fn batch_ack(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let body = req.body_bytes();
    let parsed: BatchAckBody = if body.is_empty() {
        BatchAckBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return bad_body(req, "BatchAckMessageRequestBody", e),
        }
    };
    let mut acks = Vec::new();
    for e in &parsed.acks {
        let offsets = match e.offsets() {
            Ok(o) => o,
            Err(why) => return bad_body(req, "BatchAckMessageRequestBody", why),
        };
        for offset in offsets {
            let handle = Handle {
                ck_start_offset: e.start_offset,
                pop_time: e.pop_time,
                invisible_ms: e.invisible_ms,
                revive_qid: e.revive_qid,
                topic_type: e.retry.trim().parse().unwrap_or(0),
                broker_name: parsed.broker_name.clone(),
                queue_id: e.queue_id,
                queue_offset: Some(offset),
                commit_log_offset: None,
            };
            acks.push(AckRequest {
                group: e.group.clone(),
                topic: e.topic.clone(),
                queue_id: e.queue_id,
                receipt_handle: handle.render(),
                offset,
            });
        }
    }
    match svc.batch_ack(caller, acks).await {
        Ok(()) => ok(req),
        Err(r) => refused(req, r),
    }
}

async fn change_invisible(
    svc: &BrokerService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let h = match ChangeInvisibleTimeRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let request = ChangeInvisibleRequest {
        group: h.consumer_group,
        topic: h.topic,
        queue_id: h.queue_id,
        receipt_handle: h.extra_info,
        offset: h.offset,
        invisible_ms: h.invisible_time.max(0) as u64,
    };
    match svc.change_invisible(caller, request).await {
        Ok(r) => {
            let mut resp = ok(req);
            ChangeInvisibleTimeResponseHeader {
                pop_time: r.pop_time,
                invisible_time: r.invisible_ms as i64,
                revive_qid: r.revive_qid,
            }
            .write_ext(&mut resp.ext);
            resp
        }
        Err(r) => refused(req, r),
    }
}

async fn peek(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let h = match PeekMessageRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let request = PeekRequest {
        group: h.consumer_group,
        topic: h.topic,
        queue_id: h.queue_id,
        max_msgs: h.max_msg_nums.max(1) as u32,
    };
    match svc.peek(caller, request).await {
        Ok(r) => {
            let mut resp = if r.records.is_empty() {
                RemotingCommand::response_to(req, rs::PULL_NOT_FOUND).with_remark("no message")
            } else {
                ok(req)
            };
            RestNumResponseHeader {
                rest_num: r.rest_num,
            }
            .write_ext(&mut resp.ext);
            resp.body = r.records.into_iter().collect();
            resp
        }
        Err(r) => refused(req, r),
    }
}

async fn notification(
    svc: &BrokerService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let h = match NotificationRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let request = NotificationRequest {
        group: h.consumer_group,
        topic: h.topic,
        queue_id: h.queue_id,
        poll_ms: h.poll_time.max(0) as u64,
        order: h.order.unwrap_or(false),
    };
    match svc.notification(caller, request).await {
        Ok(r) => {
            let mut resp = ok(req);
            NotificationResponseHeader {
                has_msg: r.has_msg,
                polling_full: r.polling_full,
            }
            .write_ext(&mut resp.ext);
            resp
        }
        Err(r) => refused(req, r),
    }
}

fn polling_info(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let h = match PollingInfoRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    match svc.polling_info(caller, &h.consumer_group, &h.topic, h.queue_id) {
        Ok(n) => {
            let mut resp = ok(req);
            PollingInfoResponseHeader { polling_num: n }.write_ext(&mut resp.ext);
            resp
        }
        Err(r) => refused(req, r),
    }
}
