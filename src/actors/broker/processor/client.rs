//! Remoting adapter of client registration: HEART_BEAT (34),
//! UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP (38),
//! CHECK_CLIENT_CONFIG (46).

use std::sync::Arc;

use super::{bad_body, bad_header, ok, refused};
use crate::actors::session::Channel;
use crate::service::broker::{BrokerService, HeartbeatRequest, UnregisterRequest};
use crate::service::Caller;
use crate::wire::bodies::{ConsumerIdList, HeartbeatData, SubscriptionData};
use crate::wire::codes::request as rq;
use crate::wire::headers::client::{ConsumerGroupHeader, UnregisterClientRequestHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

/// `CheckClientRequestBody` of CHECK_CLIENT_CONFIG.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CheckClientBody {
    group: String,
    subscription_data: Option<SubscriptionData>,
}

pub async fn serve(
    svc: &BrokerService,
    caller: &Caller,
    ch: &Channel,
    req: &RemotingCommand,
) -> RemotingCommand {
    match req.code {
        rq::HEART_BEAT => heartbeat(svc, caller, ch, req).await,
        rq::UNREGISTER_CLIENT => match UnregisterClientRequestHeader::from_ext(&req.ext) {
            Ok(h) => {
                let u = UnregisterRequest {
                    client_id: h.client_id,
                    producer_group: h.producer_group,
                    consumer_group: h.consumer_group,
                };
                match svc.unregister(caller, u).await {
                    Ok(()) => ok(req),
                    Err(r) => refused(req, r),
                }
            }
            Err(e) => bad_header(req, e),
        },
        rq::GET_CONSUMER_LIST_BY_GROUP => match ConsumerGroupHeader::from_ext(&req.ext) {
            Ok(h) => match svc.consumer_ids(caller, &h.consumer_group).await {
                Ok(ids) => {
                    let body = ConsumerIdList {
                        consumer_id_list: ids,
                    };
                    ok(req).with_body(serde_json::to_vec(&body).unwrap_or_default())
                }
                Err(r) => refused(req, r),
            },
            Err(e) => bad_header(req, e),
        },
        _ => {
            let body: CheckClientBody = match crate::wire::json::from_fastjson(&req.body_bytes()) {
                Ok(b) => b,
                Err(e) => return bad_body(req, "check client config", e),
            };
            match svc.check_client_config(caller, &body.group, body.subscription_data.as_ref()) {
                Ok(()) => ok(req),
                Err(r) => refused(req, r),
            }
        }
    }
}

async fn heartbeat(
    svc: &BrokerService,
    caller: &Caller,
    ch: &Channel,
    req: &RemotingCommand,
) -> RemotingCommand {
    let data: HeartbeatData = match crate::wire::json::from_fastjson(&req.body_bytes()) {
        Ok(d) => d,
        Err(e) => return bad_body(req, "heartbeat", e),
    };
    let hb = HeartbeatRequest {
        data,
        connection: Arc::new(ch.clone()),
        language: req.language.name().to_owned(),
        version: req.version,
    };
    match svc.heartbeat(caller, hb).await {
        Ok(()) => ok(req)
            .with_ext("IS_SUPPORT_HEART_BEAT_V2", "true")
            .with_ext("IS_SUB_CHANGE", "false"),
        Err(r) => refused(req, r),
    }
}
