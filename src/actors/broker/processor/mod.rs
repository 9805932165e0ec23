//! The broker's request processor: decodes each request's typed header and
//! turns it into messages to the broker's actors. One file per family.

mod admin;
mod client;
mod consume_admin;
mod offset;
mod progress;
mod pull;
mod query;
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
    pub registrar: Arc<super::services::LiveAddr<Registrar>>,
    pub groups: Addr<super::groups::GroupManager>,
    pub services: Arc<super::services::Services>,
    /// The message index (None with `messageIndexEnable=false`).
    pub indexer: Option<Addr<super::indexer::Indexer>>,
    /// Set by the `Cleaner` past `diskSpaceWarningLevelRatio`: sends refused.
    pub disk_full: Arc<std::sync::atomic::AtomicBool>,
    /// MASTER or SLAVE, read on the hot path (see `role`).
    pub role: Arc<super::role::Role>,
    /// Changes the role (`ChangeRole`).
    pub role_keeper: Addr<super::role::RoleKeeper>,
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

/// A topic or group name that fails RocketMQ's rules (INVALID_PARAMETER,
/// as the 5.x broker answers).
pub(crate) fn name_refused(
    req: &RemotingCommand,
    e: crate::wire::names::NameError,
) -> RemotingCommand {
    error(req, rs::INVALID_PARAMETER, e.to_string())
}

pub(crate) fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, rs::SUCCESS)
}

impl Processor for BrokerProcessor {
    fn process(&self, ch: &Channel, req: RemotingCommand, responder: Responder) {
        let ctx = self.ctx.clone();
        let ch = ch.clone();
        responder.spawn(async move { serve(ctx, ch, req).await })
    }

    fn closed(&self, ch: &Channel) {
        self.ctx
            .clients
            .do_send(super::clients::ChannelClosed(ch.id));
    }
}

async fn serve(ctx: Arc<BrokerCtx>, ch: Channel, req: RemotingCommand) -> Option<RemotingCommand> {
    let resp = match req.code {
        rq::SEND_MESSAGE | rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE => {
            send::send(&ctx, &ch, &req).await
        }
        rq::PULL_MESSAGE | rq::LITE_PULL_MESSAGE => pull::pull(&ctx, &req).await,
        rq::QUERY_CONSUMER_OFFSET
        | rq::UPDATE_CONSUMER_OFFSET
        | rq::GET_MAX_OFFSET
        | rq::GET_MIN_OFFSET
        | rq::GET_EARLIEST_MSG_STORETIME
        | rq::SEARCH_OFFSET_BY_TIMESTAMP => offset::serve(&ctx, &req).await,
        rq::HEART_BEAT
        | rq::UNREGISTER_CLIENT
        | rq::GET_CONSUMER_LIST_BY_GROUP
        | rq::CHECK_CLIENT_CONFIG => client::serve(&ctx, &ch, &req).await,
        rq::UPDATE_AND_CREATE_TOPIC
        | rq::DELETE_TOPIC_IN_BROKER
        | rq::GET_ALL_TOPIC_CONFIG
        | rq::GET_TOPIC_CONFIG
        | rq::GET_BROKER_RUNTIME_INFO
        | rq::GET_BROKER_CONFIG
        | rq::ACTORMQ_INJECT_FAULT => admin::serve(&ctx, &ch, &req).await,
        rq::ACTORMQ_CHANGE_ROLE => role::change_role(&ctx, &req).await,
        rq::QUERY_MESSAGE | rq::VIEW_MESSAGE_BY_ID => query::serve(&ctx, &req).await,
        rq::CONSUMER_SEND_MSG_BACK => retry::send_back(&ctx, &req).await,
        rq::END_TRANSACTION => transaction::end_transaction(&ctx, &req).await,
        rq::LOCK_BATCH_MQ
        | rq::UNLOCK_BATCH_MQ
        | rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
        | rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG
        | rq::DELETE_SUBSCRIPTIONGROUP => consume_admin::serve(&ctx, &req).await,
        rq::GET_CONSUME_STATS
        | rq::GET_CONSUMER_CONNECTION_LIST
        | rq::GET_CONSUMER_RUNNING_INFO
        | rq::INVOKE_BROKER_TO_RESET_OFFSET => progress::serve(&ctx, &req).await,
        code => error(
            &req,
            rs::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {code} not supported"),
        ),
    };
    Some(resp)
}
