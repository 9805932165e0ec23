//! HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP,
//! CHECK_CLIENT_CONFIG.

use super::{bad_header, error, ok, BrokerCtx};
use crate::actors::broker::clients::{ConsumerIds, Heartbeat, Unregister};
use crate::actors::broker::topic::EnsureTopic;
use crate::actors::session::Channel;
use crate::wire::bodies::{perm, ConsumerIdList, HeartbeatData, TopicConfig};
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::client::{ConsumerGroupHeader, UnregisterClientRequestHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

pub async fn serve(ctx: &BrokerCtx, ch: &Channel, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        rq::HEART_BEAT => {
            let data: HeartbeatData = match crate::wire::json::from_fastjson(&req.body_bytes()) {
                Ok(d) => d,
                Err(e) => {
                    return error(
                        req,
                        rs::SYSTEM_ERROR,
                        format!("malformed heartbeat body: {e}"),
                    )
                }
            };
            if let Err(e) = data.check_names() {
                return super::name_refused(req, e);
            }
            match ctx
                .clients
                .send(Heartbeat {
                    channel: ch.clone(),
                    data,
                    language: req.language.name().to_owned(),
                    version: req.version,
                })
                .await
            {
                Ok(new_groups) => {
                    for g in new_groups {
                        let _ = ctx
                            .groups
                            .send(crate::actors::broker::groups::EnsureGroup(g.clone()))
                            .await;
                        let retry = crate::wire::names::retry_topic(&g);
                        if ctx.topics.get(&retry).is_none() {
                            let _ = ctx
                                .topic_manager
                                .send(EnsureTopic(TopicConfig::new(
                                    &retry,
                                    1,
                                    perm::READ | perm::WRITE,
                                )))
                                .await;
                            ctx.registrar
                                .do_send(crate::actors::broker::registrar::RegisterNow);
                        }
                    }
                    ok(req)
                        .with_ext("IS_SUPPORT_HEART_BEAT_V2", "true")
                        .with_ext("IS_SUB_CHANGE", "false")
                }
                Err(_) => error(req, rs::SYSTEM_BUSY, "client registry busy"),
            }
        }
        rq::UNREGISTER_CLIENT => match UnregisterClientRequestHeader::from_ext(&req.ext) {
            Ok(h) => {
                let _ = ctx
                    .clients
                    .send(Unregister {
                        client_id: h.client_id,
                        producer_group: h.producer_group,
                        consumer_group: h.consumer_group,
                    })
                    .await;
                ok(req)
            }
            Err(e) => bad_header(req, e),
        },
        rq::GET_CONSUMER_LIST_BY_GROUP => match ConsumerGroupHeader::from_ext(&req.ext) {
            Ok(h) => match ctx
                .clients
                .send(ConsumerIds(h.consumer_group.clone()))
                .await
            {
                Ok(ids) if !ids.is_empty() => ok(req).with_body(
                    serde_json::to_vec(&ConsumerIdList {
                        consumer_id_list: ids,
                    })
                    .unwrap_or_default(),
                ),
                Ok(_) => error(
                    req,
                    rs::SYSTEM_ERROR,
                    format!("no consumer for this group, {}", h.consumer_group),
                ),
                Err(_) => error(req, rs::SYSTEM_BUSY, "client registry busy"),
            },
            Err(e) => bad_header(req, e),
        },
        _ => check_client_config(ctx, req),
    }
}

/// `CheckClientRequestBody` of CHECK_CLIENT_CONFIG.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CheckClientBody {
    group: String,
    subscription_data: Option<crate::wire::bodies::SubscriptionData>,
}

/// CHECK_CLIENT_CONFIG: validates a SQL92 subscription before the client
/// starts pulling with it.
fn check_client_config(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    let body: CheckClientBody = match crate::wire::json::from_fastjson(&req.body_bytes()) {
        Ok(b) => b,
        Err(e) => return error(req, rs::SYSTEM_ERROR, format!("malformed body: {e}")),
    };
    let Some(sub) = body.subscription_data else {
        return ok(req);
    };
    let ty = sub.expression_type.as_deref().unwrap_or("TAG");
    if ty.is_empty() || ty.eq_ignore_ascii_case("TAG") {
        return ok(req);
    }
    if !ctx.cfg.enable_property_filter {
        return error(
            req,
            rs::SYSTEM_ERROR,
            format!("The broker does not support consumer to filter message by {ty}"),
        );
    }
    match crate::filter::parse(&sub.sub_string) {
        Ok(_) => ok(req),
        Err(e) => {
            let (code, remark) = super::pull::sql_parse_error(&sub.sub_string, &body.group, &e);
            error(req, code, remark)
        }
    }
}
