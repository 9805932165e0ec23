//! Remoting adapter of ordered-consumption locks (LOCK_BATCH_MQ 41,
//! UNLOCK_BATCH_MQ 42) and subscription-group administration (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
//! 200, GET_ALL_SUBSCRIPTIONGROUP_CONFIG 201, DELETE_SUBSCRIPTIONGROUP 207).
//! JSON bodies are read leniently (C++ clients send booleans as "0"/"1"
//! and numbers as strings).

use serde::{Deserialize, Serialize};

use super::{bad_body, bad_header, ok, refused};
use crate::actors::broker::groups::SubscriptionGroupConfig;
use crate::service::broker::{BrokerService, LockRequest};
use crate::service::Caller;
use crate::wire::bodies::{lenient_bool, lenient_i64, MessageQueue};
use crate::wire::codes::request as rq;
use crate::wire::headers::consume::DeleteSubscriptionGroupRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

/// A MessageQueue as clients send it (queue id possibly a string).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct QueueIn {
    broker_name: String,
    #[serde(deserialize_with = "lenient_i64")]
    queue_id: i64,
    topic: String,
}

/// `LockBatchRequestBody` / `UnlockBatchRequestBody`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LockBody {
    consumer_group: String,
    client_id: String,
    #[serde(deserialize_with = "lenient_bool")]
    #[allow(dead_code)]
    only_this_broker: bool,
    mq_set: Vec<QueueIn>,
}

#[derive(Serialize)]
struct LockResponse {
    #[serde(rename = "lockOKMQSet")]
    lock_ok_mq_set: Vec<MessageQueue>,
}

// The error is the response itself, returned at once by the caller.
#[allow(clippy::result_large_err)]
fn parse<T: serde::de::DeserializeOwned>(req: &RemotingCommand) -> Result<T, RemotingCommand> {
    crate::wire::json::from_fastjson(&req.body_bytes()).map_err(|e| bad_body(req, "request", e))
}

async fn locks(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let body: LockBody = match parse(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request = LockRequest {
        group: body.consumer_group,
        client_id: body.client_id,
        queues: body
            .mq_set
            .into_iter()
            .map(|q| MessageQueue {
                broker_name: q.broker_name,
                queue_id: q.queue_id as i32,
                topic: q.topic,
            })
            .collect(),
    };
    if req.code == rq::UNLOCK_BATCH_MQ {
        return match svc.unlock_queues(caller, request).await {
            Ok(()) => ok(req),
            Err(r) => refused(req, r),
        };
    }
    match svc.lock_queues(caller, request).await {
        Ok(locked) => {
            let body = LockResponse {
                lock_ok_mq_set: locked,
            };
            ok(req).with_body(serde_json::to_vec(&body).unwrap_or_default())
        }
        Err(r) => refused(req, r),
    }
}

async fn groups(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let done = match req.code {
        rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => {
            let cfg: SubscriptionGroupConfig = match parse(req) {
                Ok(c) => c,
                Err(r) => return r,
            };
            svc.upsert_group(caller, cfg).await
        }
        rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
            return match svc.all_groups(caller).await {
                Ok(all) => ok(req).with_body(serde_json::to_vec(&all).unwrap_or_default()),
                Err(r) => refused(req, r),
            }
        }
        _ => match DeleteSubscriptionGroupRequestHeader::from_ext(&req.ext) {
            Ok(h) => svc.delete_group(caller, &h.group_name).await,
            Err(e) => return bad_header(req, e),
        },
    };
    match done {
        Ok(()) => ok(req),
        Err(r) => refused(req, r),
    }
}

pub async fn serve(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        rq::LOCK_BATCH_MQ | rq::UNLOCK_BATCH_MQ => locks(svc, caller, req).await,
        _ => groups(svc, caller, req).await,
    }
}
