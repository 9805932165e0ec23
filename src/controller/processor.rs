//! The controller's remoting processor: decodes each controller request's
//! header and body, asks the [`Controller`] actor, encodes the reply. It
//! also serves the Raft RPCs of the other controllers (codes 9910–9912).
//! A name server with an embedded controller hands it the codes it
//! [`serves`](ControllerProcessor::serves).
//!
//! A broker that cannot reach the leader (apache/rocketmq#10812) marks its
//! requests and heartbeats with [`FORWARD`]: a follower then passes them
//! on to the leader it knows (at its own `controllerDLegerPeers` address)
//! and answers with the leader's reply, so the leader decides and keeps
//! hearing the broker.

use actix::Addr;
use std::time::{Duration, Instant};

use super::actor::{ChannelClosed, Config, Controller, Decide, Heartbeat, Metadata};
use super::elect::LiveInfo;
use super::ops::{Reply, Request};
use super::raft::{serve_rpc, Raft};
use super::{FORWARD, FORWARDED};
use crate::actors::session::{Channel, Processor, Responder};
use crate::client::remoting::RemotingClient;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::controller::SyncStateSetBody;
use crate::wire::headers::namesrv::BrokerHeartbeatRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::json::from_fastjson;
use crate::wire::{RemotingCommand, WireError};

pub struct ControllerProcessor {
    pub controller: Addr<Controller>,
    pub raft: Raft,
    /// `controllerHeartBeatTimeoutMills`: for heartbeats without a timeout.
    pub heartbeat_timeout: Duration,
    /// This node's Raft id and every node's address as this node dials it
    /// (its `controllerDLegerPeers`), for forwarding to the leader.
    pub me: u64,
    pub peers: Vec<String>,
    pub client: RemotingClient,
}

/// How long a follower waits for the leader's answer to a forwarded
/// request (below the broker's 3 s call).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

fn reply_to(req: &RemotingCommand, r: Reply) -> RemotingCommand {
    fill(RemotingCommand::response_to(req, r.code), r)
}

fn fill(mut resp: RemotingCommand, r: Reply) -> RemotingCommand {
    resp.code = r.code;
    resp.remark = r.remark;
    resp.ext = r.ext;
    match r.body {
        Some(b) => resp.with_body(b),
        None => resp,
    }
}

fn bad_request(e: impl std::fmt::Display) -> Reply {
    Reply::refuse(rs::SYSTEM_ERROR, e.to_string())
}

fn header<H: CommandHeader>(req: &RemotingCommand) -> Result<H, Box<Reply>> {
    H::from_ext(&req.ext).map_err(|e: WireError| Box::new(bad_request(e)))
}

/// A leader-only request from its frame.
fn decode(req: &RemotingCommand) -> Result<Request, Box<Reply>> {
    Ok(match req.code {
        rq::CONTROLLER_GET_NEXT_BROKER_ID => Request::NextBrokerId(header(req)?),
        rq::CONTROLLER_APPLY_BROKER_ID => Request::ApplyBrokerId(header(req)?),
        rq::CONTROLLER_REGISTER_BROKER => Request::Register(header(req)?),
        rq::CONTROLLER_GET_REPLICA_INFO => Request::ReplicaInfo(header(req)?),
        rq::CONTROLLER_ELECT_MASTER => Request::Elect(header(req)?),
        rq::CLEAN_BROKER_DATA => Request::Clean(header(req)?),
        rq::CONTROLLER_ALTER_SYNC_STATE_SET => {
            let body: SyncStateSetBody = from_fastjson(&req.body_bytes())
                .map_err(|e| Box::new(bad_request(format!("bad SyncStateSet body: {e}"))))?;
            Request::Alter(header(req)?, body)
        }
        rq::CONTROLLER_GET_SYNC_STATE_DATA => {
            let raw = req.body_bytes();
            if raw.is_empty() {
                return Err(Box::new(bad_request("not set any response code")));
            }
            Request::SyncStateData(
                from_fastjson(&raw)
                    .map_err(|e| bad_request(format!("bad broker name list: {e}")))?,
            )
        }
        code => {
            return Err(Box::new(Reply::refuse(
                rs::REQUEST_CODE_NOT_SUPPORTED,
                format!(" request type {code} not supported"),
            )))
        }
    })
}

impl ControllerProcessor {
    /// The request codes a controller answers.
    pub fn serves(code: i32) -> bool {
        matches!(
            code,
            rq::BROKER_HEARTBEAT
                | rq::CONTROLLER_ALTER_SYNC_STATE_SET..=rq::CONTROLLER_GET_SYNC_STATE_DATA
                | rq::UPDATE_CONTROLLER_CONFIG..=rq::CONTROLLER_APPLY_BROKER_ID
                | rq::ACTORMQ_RAFT_APPEND..=rq::ACTORMQ_RAFT_SNAPSHOT
        )
    }

    /// Records a heartbeat; the refusal when it names no broker id.
    pub fn heartbeat(&self, ch: &Channel, req: &RemotingCommand) -> Reply {
        let h: BrokerHeartbeatRequestHeader = match header(req) {
            Ok(h) => h,
            Err(r) => return *r,
        };
        let Some(broker_id) = h.broker_id else {
            return Reply::refuse(
                rs::CONTROLLER_INVALID_REQUEST,
                "Heart beat with empty brokerId",
            );
        };
        let timeout = h
            .heartbeat_timeout_mills
            .filter(|t| *t > 0)
            .map_or(self.heartbeat_timeout, |t| Duration::from_millis(t as u64));
        self.controller.do_send(Heartbeat {
            broker_name: h.broker_name,
            broker_id,
            info: LiveInfo {
                cluster: h.cluster_name,
                address: h.broker_addr,
                last_seen: Instant::now(),
                timeout,
                epoch: h.epoch.unwrap_or(-1),
                max_offset: h.max_offset.unwrap_or(-1),
                confirm_offset: h.confirm_offset.unwrap_or(-1),
                priority: h.election_priority.unwrap_or(i32::MAX),
                // A forwarded copy came on the follower's connection: its
                // close says nothing about the broker.
                channel: if forwarded(req) { 0 } else { ch.id },
            },
        });
        if req.ext.get(FORWARD) == Some("true") {
            if let Some(leader) = self.leader_addr() {
                let mut copy = RemotingCommand::request(rq::BROKER_HEARTBEAT);
                copy.ext = req.ext.clone();
                copy.ext.insert(FORWARD, FORWARDED);
                let client = self.client.clone();
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(FORWARD_TIMEOUT, client.invoke_oneway(&leader, copy))
                            .await;
                });
            }
        }
        Reply::default()
    }

    /// The leader's address when another node leads (as this node knows).
    fn leader_addr(&self) -> Option<String> {
        let leader = self.raft.metrics().borrow().current_leader?;
        (leader != self.me)
            .then(|| self.peers.get(leader as usize).cloned())
            .flatten()
    }

    /// A leader-only request a broker asked this follower to forward: the
    /// leader's reply.
    async fn forward(
        client: RemotingClient,
        leader: Option<String>,
        req: &RemotingCommand,
    ) -> Reply {
        let Some(leader) = leader else {
            return Reply::refuse(
                rs::CONTROLLER_NOT_LEADER,
                "The controller is not in leader state and knows no leader",
            );
        };
        let mut copy = RemotingCommand::request(req.code).with_body(req.body_bytes());
        copy.ext = req.ext.clone();
        copy.ext.insert(FORWARD, FORWARDED);
        match client.invoke(&leader, copy, FORWARD_TIMEOUT).await {
            Ok(r) => Reply {
                code: r.code,
                body: (!r.body.is_empty()).then(|| r.body_bytes().to_vec()),
                remark: r.remark,
                ext: r.ext,
            },
            Err(e) => Reply::refuse(
                rs::SYSTEM_ERROR,
                format!("controller: the leader {leader} is unreachable from this node: {e}"),
            ),
        }
    }

    async fn serve(controller: Addr<Controller>, raft: Raft, req: RemotingCommand) -> Reply {
        let gone = || Reply::refuse(rs::SYSTEM_ERROR, "controller stopped");
        match req.code {
            rq::CONTROLLER_GET_METADATA_INFO => match controller.send(Metadata).await {
                Ok(h) => Reply::ok(&h),
                Err(_) => gone(),
            },
            rq::GET_CONTROLLER_CONFIG => controller
                .send(Config(None))
                .await
                .unwrap_or_else(|_| gone()),
            rq::UPDATE_CONTROLLER_CONFIG => {
                let text = String::from_utf8_lossy(&req.body_bytes()).into_owned();
                let props = crate::config::parse_properties(&text);
                if props.is_empty() {
                    return Reply::refuse(rs::SYSTEM_ERROR, "string2Properties error");
                }
                controller
                    .send(Config(Some(props)))
                    .await
                    .unwrap_or_else(|_| gone())
            }
            rq::ACTORMQ_RAFT_APPEND..=rq::ACTORMQ_RAFT_SNAPSHOT => {
                match serve_rpc(&raft, req.code, &req.body_bytes()).await {
                    Ok(body) => Reply {
                        body: Some(body),
                        ..Reply::default()
                    },
                    Err(e) => bad_request(e),
                }
            }
            _ => match decode(&req) {
                Ok(r) => controller.send(Decide(r)).await.unwrap_or_else(|_| gone()),
                Err(reply) => *reply,
            },
        }
    }
}

/// A copy a follower forwarded.
fn forwarded(req: &RemotingCommand) -> bool {
    req.ext.get(FORWARD) == Some(FORWARDED)
}

impl Processor for ControllerProcessor {
    fn process(&self, ch: &Channel, req: RemotingCommand, responder: Responder) {
        if req.code == rq::BROKER_HEARTBEAT {
            let resp = reply_to(&req, self.heartbeat(ch, &req));
            return responder.spawn(async move { Some(resp) });
        }
        let (controller, raft) = (self.controller.clone(), self.raft.clone());
        let base = RemotingCommand::response_to(&req, rs::SUCCESS);
        let forward = (req.ext.get(FORWARD) == Some("true"))
            .then(|| (self.client.clone(), self.leader_addr(), req.clone()));
        responder.spawn(async move {
            let mut r = ControllerProcessor::serve(controller, raft, req).await;
            if let (rs::CONTROLLER_NOT_LEADER, Some((client, leader, req))) = (r.code, forward) {
                r = ControllerProcessor::forward(client, leader, &req).await;
            }
            Some(fill(base, r))
        })
    }

    fn closed(&self, ch: &Channel) {
        self.controller.do_send(ChannelClosed(ch.id));
    }
}
