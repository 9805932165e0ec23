//! Remoting adapter of topic administration (UPDATE_AND_CREATE_TOPIC 17,
//! DELETE_TOPIC_IN_BROKER 215, GET_ALL_TOPIC_CONFIG 21, GET_TOPIC_CONFIG
//! 351), GET_BROKER_CONFIG (26), GET_BROKER_RUNTIME_INFO (28), and the
//! private fault-injection code used by the supervision tests.

use super::{bad_header, error, ok, refused, BrokerCtx};
use crate::actors::broker::queue::InjectQueueFault;
use crate::actors::broker::topic::InjectTopicFault;
use crate::actors::session::Channel;
use crate::actors::supervisor::Fault;
use crate::service::broker::BrokerService;
use crate::service::Caller;
use crate::wire::bodies::TopicConfig;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::admin::{CreateTopicRequestHeader, InjectFaultHeader, TopicOnlyHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

fn json(req: &RemotingCommand, body: &impl serde::Serialize) -> RemotingCommand {
    ok(req).with_body(serde_json::to_vec(body).unwrap_or_default())
}

pub async fn serve(
    svc: &BrokerService,
    caller: &Caller,
    ch: &Channel,
    req: &RemotingCommand,
) -> RemotingCommand {
    match req.code {
        rq::UPDATE_AND_CREATE_TOPIC => create_topic(svc, caller, req).await,
        rq::DELETE_TOPIC_IN_BROKER | rq::GET_TOPIC_CONFIG => {
            let h = match TopicOnlyHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(req, e),
            };
            if req.code == rq::GET_TOPIC_CONFIG {
                return match svc.topic_config(caller, &h.topic) {
                    Ok(c) => json(req, &serde_json::json!({ "topicConfig": c })),
                    Err(r) => refused(req, r),
                };
            }
            match svc.delete_topic(caller, &h.topic).await {
                Ok(()) => ok(req),
                Err(r) => refused(req, r),
            }
        }
        rq::GET_ALL_TOPIC_CONFIG => json(req, &svc.all_topics(caller)),
        // The topic table's data version goes in the `version` field.
        rq::GET_BROKER_CONFIG => {
            let (text, version) = svc.broker_config(caller);
            ok(req)
                .with_ext(
                    "version",
                    serde_json::to_string(&version).unwrap_or_default(),
                )
                .with_body(text.into_bytes())
        }
        rq::GET_BROKER_RUNTIME_INFO => {
            let info = svc.runtime_info(caller);
            json(
                req,
                &serde_json::json!({ "table": {
                    "commitLogMinOffset": info.commit_log_min_offset.to_string(),
                    "commitLogMaxOffset": info.commit_log_max_offset.to_string(),
                    "brokerVersionDesc": "V5_3_3",
                    "brokerVersion": "479",
                    "msgPutTotalTodayNow": "0",
                    "brokerActive": info.master_running.to_string(),
                }}),
            )
        }
        _ => inject_fault(svc.ctx(), ch, req).await,
    }
}

/// ACTORMQ_INJECT_FAULT: `target` = queue | topic | session, `kind` = error | panic;
/// or `target` = crashPoint, `kind` = the point's name (see `crash_point`).
async fn inject_fault(ctx: &BrokerCtx, ch: &Channel, req: &RemotingCommand) -> RemotingCommand {
    if !ctx.cfg.fault_injection_enable {
        return error(
            req,
            rs::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {} not supported", req.code),
        );
    }
    let h = match InjectFaultHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    if h.target == "crashPoint" {
        crate::actors::broker::crash_point::arm(&h.kind);
        return ok(req);
    }
    let Some(kind) = Fault::parse(&h.kind) else {
        return error(req, rs::INVALID_PARAMETER, "kind must be error or panic");
    };
    let topic = h.topic.as_deref().and_then(|t| ctx.topics.get(t));
    match h.target.as_str() {
        "queue" => {
            let Some(q) = topic
                .as_ref()
                .and_then(|t| t.queue(h.queue_id.unwrap_or(0)).cloned())
            else {
                return error(req, rs::TOPIC_NOT_EXIST, "no such queue");
            };
            let _ = q.send(InjectQueueFault(kind)).await;
            ok(req)
        }
        "topic" => {
            let Some(t) = topic else {
                return error(req, rs::TOPIC_NOT_EXIST, "no such topic");
            };
            let _ = t.actor.send(InjectTopicFault(kind)).await;
            ok(req)
        }
        "session" => {
            // The session serving this very connection fails after answering.
            let ch = ch.clone();
            let panic = kind == Fault::Panic;
            actix::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                ch.inject_fault(panic);
            });
            ok(req)
        }
        // Every other supervised actor, by name (supervision tests).
        other => inject_actor_fault(ctx, other, kind, req).await,
    }
}

/// ACTORMQ_INJECT_FAULT for the other supervised actors (`commitLog`,
/// `topicManager`, `offsets`, `groups`, `clients`, `registrar`, `cleaner`,
/// `indexer`, `locks`, `schedule`, `timer`, `transactions`), registered by
/// the broker's wiring in `supervisor::targets`.
async fn inject_actor_fault(
    ctx: &BrokerCtx,
    target: &str,
    kind: Fault,
    req: &RemotingCommand,
) -> RemotingCommand {
    let scope = ctx.cfg.store_path_root_dir.display().to_string();
    match crate::actors::supervisor::targets::lookup(&scope, target) {
        Some(r) => {
            let _ = r
                .send(crate::actors::supervisor::InjectPanic { fault: kind })
                .await;
            ok(req)
        }
        None => error(
            req,
            rs::INVALID_PARAMETER,
            format!("unknown target {target}"),
        ),
    }
}

async fn create_topic(
    svc: &BrokerService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let h = match CreateTopicRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let config = TopicConfig {
        topic_name: h.topic,
        read_queue_nums: h.read_queue_nums,
        write_queue_nums: h.write_queue_nums,
        perm: h.perm,
        topic_filter_type: h.topic_filter_type.unwrap_or_else(|| "SINGLE_TAG".into()),
        topic_sys_flag: h.topic_sys_flag.unwrap_or(0),
        order: h.order.unwrap_or(false),
        attributes: Default::default(),
    };
    // `attributes` (`AttributeParser`): `+key=value` sets, `-key` removes,
    // over the topic's current ones (`message.type` for the 5.x proxy).
    let mut config = config;
    if let Ok(current) = svc.topic_config(caller, &config.topic_name) {
        config.attributes = current.attributes;
    }
    for kv in h.attributes.as_deref().unwrap_or("").split(',') {
        if let Some(set) = kv.strip_prefix('+') {
            if let Some((k, v)) = set.split_once('=') {
                config.attributes.insert(k.to_owned(), v.to_owned());
            }
        } else if let Some(k) = kv.strip_prefix('-') {
            config.attributes.remove(k);
        }
    }
    match svc.upsert_topic(caller, config).await {
        Ok(()) => ok(req),
        Err(r) => refused(req, r),
    }
}
