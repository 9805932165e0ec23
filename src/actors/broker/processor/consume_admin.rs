//! Ordered-consumption locks (LOCK_BATCH_MQ 41, UNLOCK_BATCH_MQ 42) and
//! subscription-group administration (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
//! 200, GET_ALL_SUBSCRIPTIONGROUP_CONFIG 201, DELETE_SUBSCRIPTIONGROUP 207).
//! JSON bodies are read leniently (C++ clients send booleans as "0"/"1"
//! and numbers as strings).

use serde::{Deserialize, Serialize};

use super::{bad_header, error, ok, BrokerCtx};
use crate::actors::broker::groups::{AllGroups, DeleteGroup, SubscriptionGroupConfig, UpsertGroup};
use crate::actors::broker::locks::{TryLock, Unlock};
use crate::wire::bodies::{lenient_bool, lenient_i64, MessageQueue};
use crate::wire::codes::{request as rq, response as rs};
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
    crate::wire::json::from_fastjson(&req.body_bytes())
        .map_err(|e| error(req, rs::SYSTEM_ERROR, format!("malformed body: {e}")))
}

async fn locks(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    let body: LockBody = match parse(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(e) = crate::wire::names::check_group(&body.consumer_group) {
        return super::name_refused(req, e);
    }
    let mqs: Vec<MessageQueue> = body
        .mq_set
        .into_iter()
        .map(|q| MessageQueue {
            broker_name: q.broker_name,
            queue_id: q.queue_id as i32,
            topic: q.topic,
        })
        .collect();
    if req.code == rq::UNLOCK_BATCH_MQ {
        let _ = ctx
            .services
            .locks
            .send(Unlock {
                group: body.consumer_group,
                client_id: body.client_id,
                mqs,
            })
            .await;
        return ok(req);
    }
    let locked = ctx
        .services
        .locks
        .send(TryLock {
            group: body.consumer_group,
            client_id: body.client_id,
            mqs,
        })
        .await
        .unwrap_or_default();
    let body = serde_json::to_vec(&LockResponse {
        lock_ok_mq_set: locked,
    })
    .unwrap_or_default();
    ok(req).with_body(body)
}

async fn groups(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => {
            let cfg: SubscriptionGroupConfig = match parse(req) {
                Ok(c) => c,
                Err(r) => return r,
            };
            if let Err(e) = crate::wire::names::check_group(&cfg.group_name) {
                return super::name_refused(req, e);
            }
            tracing::info!(group = %cfg.group_name, "subscription group updated");
            match ctx.groups.send(UpsertGroup(cfg)).await {
                Ok(()) => ok(req),
                Err(_) => error(req, rs::SYSTEM_BUSY, "group manager busy"),
            }
        }
        rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => match ctx.groups.send(AllGroups).await {
            Ok(all) => ok(req).with_body(serde_json::to_vec(&all).unwrap_or_default()),
            Err(_) => error(req, rs::SYSTEM_BUSY, "group manager busy"),
        },
        _ => {
            let h = match DeleteSubscriptionGroupRequestHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(req, e),
            };
            if let Err(e) = crate::wire::names::check_group(&h.group_name) {
                return super::name_refused(req, e);
            }
            match ctx.groups.send(DeleteGroup(h.group_name.clone())).await {
                Ok(_) => {
                    tracing::info!(group = %h.group_name, "subscription group deleted");
                    ok(req)
                }
                Err(_) => error(req, rs::SYSTEM_BUSY, "group manager busy"),
            }
        }
    }
}

pub async fn serve(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        rq::LOCK_BATCH_MQ | rq::UNLOCK_BATCH_MQ => locks(ctx, req).await,
        _ => groups(ctx, req).await,
    }
}
