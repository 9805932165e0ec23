//! The broker's remoting processor: for each request, decode its typed
//! header → build the service's typed request → call the service
//! (`crate::service::broker`) → encode the reply or the refusal. One file
//! per request family; no broker logic lives here.

mod admin;
mod auth;
mod autoswitch;
mod client;
mod connection;
mod consume_admin;
mod ha_status;
mod offset;
mod pop;
mod progress;
mod pull;
mod query;
mod replication;
mod retry;
mod role;
mod send;
mod transaction;

use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;

use super::clients::{ClientRegistry, Subscriptions};
use super::commit_log::CommitLogWriter;
use super::offsets::OffsetManager;
use super::registrar::Registrar;
use super::topic::{TopicManager, TopicRegistry};
use crate::actors::session::{Channel, Processor, Responder};
use crate::config::BrokerConfig;
use crate::service::broker::BrokerService;
use crate::service::{Caller, Refusal};
use crate::store::CommitLogReader;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::{RemotingCommand, WireError};

/// Everything the request handlers need; cheap to share.
pub struct BrokerCtx {
    pub cfg: BrokerConfig,
    pub store_host: SocketAddr,
    pub commit_log: Addr<CommitLogWriter>,
    pub reader: CommitLogReader,
    pub topics: TopicRegistry,
    pub topic_manager: Addr<TopicManager>,
    pub offsets: Addr<OffsetManager>,
    pub clients: Addr<ClientRegistry>,
    pub subscriptions: Subscriptions,
    /// The current `Registrar` (replaced when the broker id changes).
    pub registrar: Addr<Registrar>,
    pub groups: Addr<super::groups::GroupManager>,
    pub services: Arc<super::services::Services>,
    /// The message index (None with `messageIndexEnable=false`).
    pub indexer: Option<Addr<super::indexer::Indexer>>,
    /// Set by the `Cleaner` past `diskSpaceWarningLevelRatio`: sends refused.
    pub disk_full: Arc<std::sync::atomic::AtomicBool>,
    /// MASTER or SLAVE, read on the hot path (see `role`).
    pub role: Arc<super::role::Role>,
    /// Changes the role (`ChangeRole`).
    /// Authentication and authorization (None when both are off).
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// Pulls held for long polling right now, across all queues.
    pub held_pulls: Arc<std::sync::atomic::AtomicUsize>,
    /// The most pulls held at once (`maxHeldPulls`, default 10,000).
    pub max_held_pulls: usize,
    pub role_keeper: Addr<super::role::RoleKeeper>,
    /// Replication: slaves' progress, SYNC_MASTER waiters (see `actors::ha`).
    pub ha: Arc<crate::actors::ha::HaRuntime>,
    /// POP consumption's in-memory state (locks, long polling, FIFO queues).
    pub pop: Arc<super::pop_state::PopState>,
}

pub struct BrokerProcessor {
    pub ctx: Arc<BrokerCtx>,
}

pub(crate) fn error(
    req: &RemotingCommand,
    code: i32,
    remark: impl Into<String>,
) -> RemotingCommand {
    RemotingCommand::response_to(req, code).with_remark(remark)
}

pub(crate) fn bad_header(req: &RemotingCommand, e: WireError) -> RemotingCommand {
    error(req, rs::SYSTEM_ERROR, e.to_string())
}

/// A JSON body that does not parse.
pub(crate) fn bad_body(
    req: &RemotingCommand,
    what: &str,
    e: impl std::fmt::Display,
) -> RemotingCommand {
    error(req, rs::SYSTEM_ERROR, format!("malformed {what} body: {e}"))
}

/// A service's refusal as a remoting response: the one place the closed
/// set of refusals meets response codes (`Refusal::remoting_code`).
pub(crate) fn refused(req: &RemotingCommand, r: Refusal) -> RemotingCommand {
    let remark = r.to_string();
    let mut resp = RemotingCommand::response_to(req, r.remoting_code());
    if !remark.is_empty() {
        resp = resp.with_remark(remark);
    }
    if let Some((k, v)) = r.remoting_ext() {
        resp = resp.with_ext(k, v);
    }
    resp
}

pub(crate) fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, rs::SUCCESS)
}

impl Processor for BrokerProcessor {
    fn process(&self, ch: &Channel, req: RemotingCommand, responder: Responder) {
        let svc = BrokerService::new(self.ctx.clone());
        let ch = ch.clone();
        responder.spawn(async move { serve(svc, ch, req).await })
    }

    fn closed(&self, ch: &Channel) {
        self.ctx
            .clients
            .do_send(super::clients::ChannelClosed(ch.id));
    }
}

async fn serve(svc: BrokerService, ch: Channel, req: RemotingCommand) -> Option<RemotingCommand> {
    let mut caller = Caller::connection(ch.peer, ch.id);
    if let Some(auth) = &svc.ctx().auth {
        match auth::check(auth, &req, ch.peer.ip()) {
            Ok(user) => caller.user = user,
            Err(e) => return Some(auth::denied(&req, e)),
        }
    }
    let (svc, caller, req) = (&svc, &caller, &req);
    let resp = match req.code {
        rq::SEND_MESSAGE | rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE => {
            send::send(svc, caller, req).await
        }
        rq::PULL_MESSAGE | rq::LITE_PULL_MESSAGE => pull::pull(svc, caller, req).await,
        rq::QUERY_CONSUMER_OFFSET
        | rq::UPDATE_CONSUMER_OFFSET
        | rq::GET_MAX_OFFSET
        | rq::GET_MIN_OFFSET
        | rq::GET_EARLIEST_MSG_STORETIME
        | rq::SEARCH_OFFSET_BY_TIMESTAMP => offset::serve(svc, caller, req).await,
        rq::HEART_BEAT
        | rq::UNREGISTER_CLIENT
        | rq::GET_CONSUMER_LIST_BY_GROUP
        | rq::CHECK_CLIENT_CONFIG => client::serve(svc, caller, &ch, req).await,
        rq::UPDATE_AND_CREATE_TOPIC
        | rq::DELETE_TOPIC_IN_BROKER
        | rq::GET_ALL_TOPIC_CONFIG
        | rq::GET_TOPIC_CONFIG
        | rq::GET_BROKER_RUNTIME_INFO
        | rq::GET_BROKER_CONFIG
        | rq::ACTORMQ_INJECT_FAULT => admin::serve(svc, caller, &ch, req).await,
        rq::ACTORMQ_CHANGE_ROLE => role::change_role(svc.ctx(), req).await,
        rq::NOTIFY_BROKER_ROLE_CHANGED => autoswitch::notify_role(svc.ctx(), req),
        rq::GET_BROKER_EPOCH_CACHE => autoswitch::epoch_cache(svc.ctx(), req),
        crate::actors::ha::status::GET_BROKER_HA_STATUS => ha_status::serve(svc, caller, req).await,
        rq::GET_ALL_CONSUMER_OFFSET | rq::GET_ALL_DELAY_OFFSET => {
            replication::serve(svc, caller, req).await
        }
        rq::QUERY_MESSAGE | rq::VIEW_MESSAGE_BY_ID => query::serve(svc, caller, req).await,
        rq::CONSUMER_SEND_MSG_BACK => retry::send_back(svc, caller, req).await,
        rq::POP_MESSAGE
        | rq::ACK_MESSAGE
        | rq::BATCH_ACK_MESSAGE
        | rq::PEEK_MESSAGE
        | rq::CHANGE_MESSAGE_INVISIBLETIME
        | rq::NOTIFICATION
        | rq::POLLING_INFO => pop::serve(svc, caller, req).await,
        rq::END_TRANSACTION => transaction::end_transaction(svc, caller, req).await,
        rq::LOCK_BATCH_MQ
        | rq::UNLOCK_BATCH_MQ
        | rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
        | rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG
        | rq::DELETE_SUBSCRIPTIONGROUP => consume_admin::serve(svc, caller, req).await,
        rq::GET_CONSUME_STATS
        | rq::GET_CONSUMER_CONNECTION_LIST
        | rq::GET_CONSUMER_RUNNING_INFO
        | rq::CONSUME_MESSAGE_DIRECTLY
        | rq::INVOKE_BROKER_TO_RESET_OFFSET => progress::serve(svc, caller, req).await,
        code if auth::is_admin_code(code) => auth::serve(svc, caller, req),
        code => error(
            req,
            rs::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {code} not supported"),
        ),
    };
    Some(resp)
}
