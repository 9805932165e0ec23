//! Topic administration (UPDATE_AND_CREATE_TOPIC, DELETE_TOPIC_IN_BROKER,
//! GET_ALL_TOPIC_CONFIG, GET_TOPIC_CONFIG), runtime info, and the private
//! fault-injection code used by the supervision tests.

use super::{bad_header, error, ok, BrokerCtx};
use crate::actors::broker::commit_log::ForgetTopic;
use crate::actors::broker::offsets::ForgetTopicOffsets;
use crate::actors::broker::queue::InjectQueueFault;
use crate::actors::broker::registrar::RegisterNow;
use crate::actors::broker::topic::{DeleteTopic, InjectTopicFault, TopicConfigFile, UpsertTopic};
use crate::actors::session::Channel;
use crate::actors::supervisor::Fault;
use crate::wire::bodies::TopicConfig;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::admin::{CreateTopicRequestHeader, InjectFaultHeader, TopicOnlyHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::{names, RemotingCommand};

pub async fn serve(ctx: &BrokerCtx, ch: &Channel, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        rq::UPDATE_AND_CREATE_TOPIC => {
            let h = match CreateTopicRequestHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(req, e),
            };
            if let Err(e) = names::check_topic(&h.topic) {
                return super::name_refused(req, e);
            }
            if h.read_queue_nums < 1
                || h.write_queue_nums < 1
                || h.read_queue_nums > 1024
                || h.write_queue_nums > 1024
            {
                return error(
                    req,
                    rs::INVALID_PARAMETER,
                    "queue numbers must be between 1 and 1024",
                );
            }
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
            match ctx.topic_manager.send(UpsertTopic(config)).await {
                Ok(Err(e)) => super::name_refused(req, e),
                Ok(Ok(_)) => {
                    ctx.registrar.do_send(RegisterNow);
                    ok(req)
                }
                Err(_) => error(req, rs::SYSTEM_ERROR, "topic manager unavailable"),
            }
        }
        rq::DELETE_TOPIC_IN_BROKER => {
            let h = match TopicOnlyHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(req, e),
            };
            if let Err(e) = names::check_topic(&h.topic) {
                return super::name_refused(req, e);
            }
            let _ = ctx.topic_manager.send(DeleteTopic(h.topic.clone())).await;
            ctx.commit_log.do_send(ForgetTopic(h.topic.clone()));
            ctx.offsets.do_send(ForgetTopicOffsets(h.topic));
            ctx.registrar.do_send(RegisterNow);
            ok(req)
        }
        rq::GET_ALL_TOPIC_CONFIG => {
            let body = TopicConfigFile {
                topic_config_table: ctx.topics.configs(),
                data_version: ctx.topics.data_version(),
            };
            ok(req).with_body(serde_json::to_vec(&body).unwrap_or_default())
        }
        rq::GET_TOPIC_CONFIG => {
            let h = match TopicOnlyHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(req, e),
            };
            match ctx.topics.get(&h.topic) {
                Some(t) => {
                    let body = serde_json::json!({ "topicConfig": t.config });
                    ok(req).with_body(serde_json::to_vec(&body).unwrap_or_default())
                }
                None => error(
                    req,
                    rs::TOPIC_NOT_EXIST,
                    format!("No topic in this broker. topic: {}", h.topic),
                ),
            }
        }
        // The broker's effective configuration as properties text, and the
        // topic table's data version in the `version` field (as Java does).
        rq::GET_BROKER_CONFIG => ok(req)
            .with_ext(
                "version",
                serde_json::to_string(&ctx.topics.data_version()).unwrap_or_default(),
            )
            .with_body(ctx.role.effective_config(&ctx.cfg).print().into_bytes()),
        rq::GET_BROKER_RUNTIME_INFO => {
            let (min, max) = (ctx.reader.min_offset(), ctx.reader.max_offset());
            let body = serde_json::json!({ "table": {
                "commitLogMinOffset": min.to_string(),
                "commitLogMaxOffset": max.to_string(),
                "brokerVersionDesc": "V5_3_3",
                "brokerVersion": "479",
                "msgPutTotalTodayNow": "0",
                "brokerActive": ctx.services.master_running().to_string(),
            }});
            ok(req).with_body(serde_json::to_vec(&body).unwrap_or_default())
        }
        _ => inject_fault(ctx, ch, req).await,
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
        other => error(
            req,
            rs::INVALID_PARAMETER,
            format!("unknown target {other}"),
        ),
    }
}
