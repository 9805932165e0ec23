//! Remoting adapter of the send service: SEND_MESSAGE (10), SEND_MESSAGE_V2
//! (310) and SEND_BATCH_MESSAGE (320). Decodes the header (either key
//! dialect, borrowed), calls [`BrokerService::send`], and writes
//! `SendMessageResponseHeader` in place.

use super::{bad_header, refused};
use crate::actors::broker::commit_log::FlushOutcome;
use crate::service::broker::{BrokerService, SendReceipt, SendRequest};
use crate::service::Caller;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::send::SendMessageRequestHeaderRef;
use crate::wire::json_header::push_int;
use crate::wire::{msgid, RemotingCommand};

pub async fn send(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let h = match SendMessageRequestHeaderRef::decode(req.code, &req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let request = SendRequest {
        topic: h.topic,
        default_topic: h.default_topic,
        default_topic_queue_nums: h.default_topic_queue_nums,
        queue_id: h.queue_id,
        sys_flag: h.sys_flag,
        flag: h.flag,
        born_timestamp: h.born_timestamp,
        properties: h.properties.unwrap_or_default(),
        reconsume_times: h.reconsume_times.unwrap_or(0),
        max_reconsume_times: h.max_reconsume_times,
        body: req.body_bytes(),
        batch: req.code == rq::SEND_BATCH_MESSAGE || h.batch.unwrap_or(false),
    };
    match svc.send(caller, request).await {
        Ok(receipt) => receipt_response(svc, req, &receipt),
        Err(r) => refused(req, r),
    }
}

/// `SendMessageResponseHeader` plus the region fields, written in place
/// without a string per field.
fn receipt_response(
    svc: &BrokerService,
    req: &RemotingCommand,
    r: &SendReceipt,
) -> RemotingCommand {
    let code = match r.flush {
        FlushOutcome::Ok => rs::SUCCESS,
        FlushOutcome::FlushTimeout => rs::FLUSH_DISK_TIMEOUT,
        FlushOutcome::SlaveTimeout => rs::FLUSH_SLAVE_TIMEOUT,
        FlushOutcome::SlaveNotAvailable => rs::SLAVE_NOT_AVAILABLE,
    };
    let store_host = svc.ctx().store_host;
    let mut resp = RemotingCommand::response_to(req, code);
    let ext = &mut resp.ext;
    ext.reserve(160 + r.results.len() * 33, 6);
    ext.push_with("msgId", |s| {
        for (i, put) in r.results.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            msgid::push_offset_msg_id(s, store_host, put.phys_offset);
        }
    });
    ext.push_with("queueId", |s| push_int(s, r.queue_id as i64));
    ext.push_with("queueOffset", |s| push_int(s, r.queue_offset()));
    if let Some(u) = &r.transaction_id {
        ext.push("transactionId", u.as_str());
    }
    ext.push("MSG_REGION", "DefaultRegion");
    ext.push("TRACE_ON", "true");
    resp
}
