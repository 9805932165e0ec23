//! The name server's remoting processor: decode each request's header and
//! body → call [`NamesrvService`] → encode the answer or the refusal.

use std::time::Duration;

use super::route_table::{ChannelClosed, Kv, KvResult};
use std::sync::Arc;

use crate::actors::session::{Channel, Processor, Responder};
use crate::service::namesrv::{BrokerRegistration, NamesrvService};
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{self, KvTable, TopicList};
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::namesrv::*;
use crate::wire::headers::CommandHeader;
use crate::wire::register_body::decode_register_body;
use crate::wire::{RemotingCommand, WireError};

pub struct NamesrvProcessor {
    /// The embedded controller: answers the controller codes on this port
    /// too, and hears the brokers' heartbeats.
    pub controller: Option<Arc<crate::controller::processor::ControllerProcessor>>,
    /// Authentication and authorization (None when both are off).
    pub auth: Option<Arc<crate::auth::Auth>>,
    pub service: NamesrvService,
    /// Closed connections drop the brokers registered through them.
    pub table: actix::Addr<super::RouteTable>,
}

/// Route and cluster reads every client makes. The name server knows only
/// its bootstrap users (the first super user and the brokers' inner
/// credentials); clients' users live on the brokers. So, as RocketMQ's
/// name server, it answers reads without authentication and guards what
/// changes its state (registrations, topic deletion, KV writes).
const OPEN_READS: &[i32] = &[
    rq::GET_ROUTEINFO_BY_TOPIC,
    rq::GET_BROKER_CLUSTER_INFO,
    rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
    rq::GET_TOPICS_BY_CLUSTER,
    rq::GET_KV_CONFIG,
    rq::GET_KVLIST_BY_NAMESPACE,
];

/// Authenticates and authorizes a request (REGISTER_BROKER needs `Cluster`
/// Update: brokers sign with `innerClientAuthenticationCredentials`).
fn check(
    auth: &crate::auth::Auth,
    req: &RemotingCommand,
    source: std::net::IpAddr,
) -> Result<Option<Arc<str>>, crate::auth::AuthError> {
    if OPEN_READS.contains(&req.code) {
        return Ok(None);
    }
    let body = req.body_bytes();
    let user = auth.authenticate_remoting(req.code, req.version, &req.ext, &body)?;
    auth.authorize_remoting(req.code, &req.ext, &body, Some(source))?;
    Ok(user.map(|u| u.username))
}

fn error(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::response_to(req, code).with_remark(remark)
}

fn bad_header(req: &RemotingCommand, e: WireError) -> RemotingCommand {
    error(req, rs::SYSTEM_ERROR, e.to_string())
}

fn refused(req: &RemotingCommand, r: Refusal) -> RemotingCommand {
    error(req, r.remoting_code(), r.to_string())
}

fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, rs::SUCCESS)
}

/// `Ok(())` as SUCCESS, a refusal as its code.
fn done(req: &RemotingCommand, r: Result<(), Refusal>) -> RemotingCommand {
    match r {
        Ok(()) => ok(req),
        Err(r) => refused(req, r),
    }
}

impl Processor for NamesrvProcessor {
    fn process(&self, ch: &Channel, req: RemotingCommand, responder: Responder) {
        use crate::controller::processor::ControllerProcessor;
        if let Some(c) = self.controller.as_ref() {
            if req.code == rq::BROKER_HEARTBEAT {
                // The controller's liveness; the route table's below.
                c.heartbeat(ch, &req);
            } else if ControllerProcessor::serves(req.code) {
                return c.process(ch, req, responder);
            }
        }
        let svc = self.service.clone();
        let mut caller = Caller::connection(ch.peer, ch.id);
        if let Some(auth) = &self.auth {
            match check(auth, &req, ch.peer.ip()) {
                Ok(user) => caller.user = user,
                Err(e) => {
                    let resp = error(&req, e.code(), e.remark().to_owned());
                    return responder.spawn(async move { Some(resp) });
                }
            }
        }
        responder.spawn(async move { Some(serve(svc, caller, req).await) })
    }

    fn closed(&self, ch: &Channel) {
        if let Some(c) = &self.controller {
            c.closed(ch);
        }
        self.table.do_send(ChannelClosed { channel_id: ch.id });
    }
}

async fn register_broker(
    svc: &NamesrvService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let h = match RegisterBrokerRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let raw = req.body_bytes();
    if h.body_crc32 != 0 && !raw.is_empty() {
        let crc = (crc32fast::hash(&raw) & 0x7FFF_FFFF) as i32;
        if crc != h.body_crc32 {
            return error(req, rs::SYSTEM_ERROR, "crc32 not match");
        }
    }
    let body = match decode_register_body(&raw, h.compressed) {
        Ok(b) => b,
        Err(e) => return error(req, rs::SYSTEM_ERROR, format!("bad register body: {e}")),
    };
    let wrapper = body.topic_config_serialize_wrapper;
    let registration = BrokerRegistration {
        cluster: h.cluster_name,
        broker_name: h.broker_name,
        broker_addr: h.broker_addr,
        broker_id: h.broker_id,
        ha_server_addr: h.ha_server_addr,
        timeout: h
            .heartbeat_timeout_millis
            .filter(|t| *t > 0)
            .map(|t| Duration::from_millis(t as u64)),
        data_version: wrapper.data_version,
        topics: wrapper.topic_config_table,
        enable_acting_master: h.enable_acting_master.unwrap_or(false),
    };
    match svc.register_broker(caller, registration).await {
        Ok(r) => {
            let mut resp = ok(req);
            RegisterBrokerResponseHeader {
                ha_server_addr: r.ha_server_addr,
                master_addr: r.master_addr,
            }
            .write_ext(&mut resp.ext);
            resp
        }
        Err(r) => refused(req, r),
    }
}

async fn route(svc: &NamesrvService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let h = match TopicHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    match svc.route(caller, &h.topic).await {
        Ok(route) => {
            // Java dialect: bare numeric keys for pre-4.9.4 clients.
            let standard = req.version >= 401 || h.accept_standard_json_only.unwrap_or(false);
            let body = if standard {
                serde_json::to_string(&route).unwrap_or_default()
            } else {
                bodies::to_fastjson(&route)
            };
            ok(req).with_body(body.into_bytes())
        }
        Err(r) => refused(req, r),
    }
}

async fn serve(svc: NamesrvService, caller: Caller, req: RemotingCommand) -> RemotingCommand {
    let (svc, caller, req) = (&svc, &caller, &req);
    match req.code {
        rq::REGISTER_BROKER => register_broker(svc, caller, req).await,
        rq::UNREGISTER_BROKER => match BrokerIdentityHeader::from_ext(&req.ext) {
            Ok(h) => done(
                req,
                svc.unregister_broker(caller, h.broker_addr, h.broker_id)
                    .await,
            ),
            Err(e) => bad_header(req, e),
        },
        rq::QUERY_DATA_VERSION => query_data_version(svc, caller, req).await,
        rq::BROKER_HEARTBEAT => match BrokerHeartbeatRequestHeader::from_ext(&req.ext) {
            Ok(h) => done(
                req,
                svc.touch_broker(caller, h.broker_addr, None)
                    .await
                    .map(|_| ()),
            ),
            Err(e) => bad_header(req, e),
        },
        rq::GET_ROUTEINFO_BY_TOPIC => route(svc, caller, req).await,
        rq::GET_BROKER_CLUSTER_INFO => match svc.cluster_info(caller).await {
            Ok(ci) => ok(req).with_body(bodies::to_fastjson(&ci).into_bytes()),
            Err(r) => refused(req, r),
        },
        rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER | rq::GET_TOPICS_BY_CLUSTER => {
            topic_list(svc, caller, req).await
        }
        rq::DELETE_TOPIC_IN_NAMESRV => match TopicHeader::from_ext(&req.ext) {
            Ok(h) => done(req, svc.delete_topic(caller, h.topic, h.cluster_name).await),
            Err(e) => bad_header(req, e),
        },
        rq::REGISTER_TOPIC_IN_NAMESRV => match TopicHeader::from_ext(&req.ext) {
            Ok(h) => {
                let route: bodies::TopicRouteData =
                    crate::wire::json::from_fastjson(&req.body_bytes()).unwrap_or_default();
                done(
                    req,
                    svc.register_topic(caller, h.topic, route.queue_datas).await,
                )
            }
            Err(e) => bad_header(req, e),
        },
        rq::PUT_KV_CONFIG
        | rq::GET_KV_CONFIG
        | rq::DELETE_KV_CONFIG
        | rq::GET_KVLIST_BY_NAMESPACE => serve_kv(svc, caller, req).await,
        code => error(
            req,
            rs::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {code} not supported"),
        ),
    }
}

/// The KV request as a typed operation.
fn kv_op(req: &RemotingCommand) -> Result<Kv, WireError> {
    let h = KvConfigHeader::from_ext(&req.ext)?;
    let key = || h.key.clone().ok_or(WireError::MissingField("key"));
    let namespace = h.namespace.clone();
    Ok(match req.code {
        rq::PUT_KV_CONFIG => Kv::Put {
            key: key()?,
            value: h.value.clone().ok_or(WireError::MissingField("value"))?,
            namespace,
        },
        rq::GET_KV_CONFIG => Kv::Get {
            key: key()?,
            namespace,
        },
        rq::DELETE_KV_CONFIG => Kv::Delete {
            key: key()?,
            namespace,
        },
        _ => Kv::List { namespace },
    })
}

async fn serve_kv(svc: &NamesrvService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let op = match kv_op(req) {
        Ok(op) => op,
        Err(e) => return bad_header(req, e),
    };
    match svc.kv(caller, op).await {
        Ok(KvResult::Value(Some(v))) => ok(req).with_ext("value", v),
        Ok(KvResult::Table(Some(t))) => {
            ok(req).with_body(serde_json::to_vec(&KvTable { table: t }).unwrap_or_default())
        }
        Ok(_) => ok(req),
        Err(r) => refused(req, r),
    }
}

async fn query_data_version(
    svc: &NamesrvService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let h = match BrokerIdentityHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let dv = serde_json::from_slice(&req.body_bytes()).ok();
    match svc.touch_broker(caller, h.broker_addr, dv).await {
        Ok((changed, stored)) => {
            let resp = ok(req).with_ext("changed", changed);
            match stored {
                Some(s) => resp.with_body(serde_json::to_vec(&s).unwrap_or_default()),
                None => resp,
            }
        }
        Err(r) => refused(req, r),
    }
}

async fn topic_list(
    svc: &NamesrvService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let cluster = if req.code == rq::GET_TOPICS_BY_CLUSTER {
        match req.ext.get("cluster") {
            Some(c) => Some(c.to_owned()),
            None => return bad_header(req, WireError::MissingField("cluster")),
        }
    } else {
        None
    };
    match svc.topics(caller, cluster).await {
        Ok(list) => {
            let body = TopicList {
                topic_list: list,
                broker_addr: None,
            };
            ok(req).with_body(serde_json::to_vec(&body).unwrap_or_default())
        }
        Err(r) => refused(req, r),
    }
}
