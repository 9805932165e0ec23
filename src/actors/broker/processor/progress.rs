//! Remoting adapter of consumer progress administration: GET_CONSUME_STATS
//! (208), GET_CONSUMER_CONNECTION_LIST (203), GET_CONSUMER_RUNNING_INFO
//! (307) and CONSUME_MESSAGE_DIRECTLY (309), both forwarded to the client,
//! and INVOKE_BROKER_TO_RESET_OFFSET (222).
//!
//! ConsumeStats and ResetOffsetBody are maps keyed by MessageQueue objects,
//! written the way fastjson writes them (`wire::json::mq_keyed`).

use super::{bad_header, error, ok, refused};
use crate::service::broker::{BrokerService, QueueProgress, ResetOffsetRequest};
use crate::service::Caller;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::client::ConsumerGroupHeader;
use crate::wire::headers::consume::{
    ConsumeMessageDirectlyRequestHeader, GetConsumeStatsRequestHeader,
    GetConsumerRunningInfoRequestHeader, ResetOffsetRequestHeader,
};
use crate::wire::headers::CommandHeader;
use crate::wire::json::mq_keyed;
use crate::wire::RemotingCommand;

fn consume_stats_body(rows: &[QueueProgress]) -> String {
    let table = mq_keyed(rows.iter().map(|r| {
        let wrapper = format!(
            "{{\"brokerOffset\":{},\"consumerOffset\":{},\"lastTimestamp\":{},\"pullOffset\":{}}}",
            r.broker_offset, r.consumer_offset, r.last_timestamp, r.consumer_offset
        );
        (&r.queue, wrapper)
    }));
    format!("{{\"consumeTps\":0.0,\"offsetTable\":{table}}}")
}

async fn connection_list(
    svc: &BrokerService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let h = match ConsumerGroupHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let members = match svc.consumer_connections(caller, &h.consumer_group).await {
        Ok(m) => m,
        Err(r) => return refused(req, r),
    };
    let Some(first) = members.iter().find_map(|m| m.data.clone()) else {
        return error(req, rs::CONSUMER_NOT_ONLINE, "not online");
    };
    let connections: Vec<serde_json::Value> = members
        .iter()
        .map(|m| {
            serde_json::json!({
                "clientAddr": m.channel.remote().to_string(),
                "clientId": m.client_id,
                "language": m.language,
                "version": m.version,
            })
        })
        .collect();
    let mut subs = serde_json::Map::new();
    for s in members
        .iter()
        .flat_map(|m| m.data.iter().flat_map(|d| &d.subscription_data_set))
    {
        if let Ok(v) = serde_json::to_value(s) {
            subs.insert(s.topic.clone(), v);
        }
    }
    let body = serde_json::json!({
        "connectionSet": connections,
        "consumeFromWhere": first.consume_from_where,
        "consumeType": first.consume_type,
        "messageModel": first.message_model,
        "subscriptionTable": subs,
    });
    ok(req).with_body(body.to_string().into_bytes())
}

/// A client's answer relayed under the admin's opaque.
fn relayed(
    req: &RemotingCommand,
    r: Result<bytes::Bytes, crate::service::Refusal>,
) -> RemotingCommand {
    match r {
        Ok(body) => ok(req).with_body(body),
        Err(r) => refused(req, r),
    }
}

pub async fn serve(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        rq::GET_CONSUME_STATS => match GetConsumeStatsRequestHeader::from_ext(&req.ext) {
            Ok(h) => match svc.consume_stats(caller, &h.consumer_group, h.topic).await {
                Ok(rows) => ok(req).with_body(consume_stats_body(&rows).into_bytes()),
                Err(r) => refused(req, r),
            },
            Err(e) => bad_header(req, e),
        },
        rq::GET_CONSUMER_CONNECTION_LIST => connection_list(svc, caller, req).await,
        rq::GET_CONSUMER_RUNNING_INFO => {
            match GetConsumerRunningInfoRequestHeader::from_ext(&req.ext) {
                Ok(h) => {
                    let jstack = h.jstack_enable.unwrap_or(false);
                    relayed(
                        req,
                        svc.consumer_running_info(caller, &h.consumer_group, &h.client_id, jstack)
                            .await,
                    )
                }
                Err(e) => bad_header(req, e),
            }
        }
        rq::CONSUME_MESSAGE_DIRECTLY => consume_directly(svc, caller, req).await,
        _ => reset_offset(svc, caller, req).await,
    }
}

async fn consume_directly(
    svc: &BrokerService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let h = match ConsumeMessageDirectlyRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let msg_id = h.msg_id.unwrap_or_default();
    let Some((_, offset)) = crate::wire::msgid::decode_offset_msg_id(&msg_id) else {
        return error(
            req,
            rs::SYSTEM_ERROR,
            format!("not an offset message id: {msg_id}"),
        );
    };
    let client = h.client_id.unwrap_or_default();
    let r = svc
        .consume_message_directly(caller, &h.consumer_group, &client, offset, &msg_id)
        .await;
    relayed(req, r)
}

async fn reset_offset(
    svc: &BrokerService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let h = match ResetOffsetRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let r = ResetOffsetRequest {
        topic: h.topic,
        group: h.group,
        timestamp: h.timestamp,
        force: h.is_force,
        queue_id: h.queue_id,
        offset: h.offset,
    };
    match svc.reset_offset(caller, r).await {
        Ok(table) => {
            let table = mq_keyed(table.iter().map(|(mq, o)| (mq, o.to_string())));
            ok(req).with_body(format!("{{\"offsetTable\":{table}}}").into_bytes())
        }
        Err(r) => refused(req, r),
    }
}
