//! `Controller`: the actor of one controller node. It owns the Raft handle,
//! the live table (heartbeats) and the node's settings; it serializes the
//! leader-only requests (RocketMQ's controller event queue): each is
//! decided against the applied state after a linearizable read, its
//! events are committed through Raft, and only then answered, so the next
//! request sees them. A timer expires silent replicas and starts the
//! election of a set whose master died.

use actix::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};

use super::config::ControllerConfig;
use super::elect::{LiveInfo, LiveTable};
use super::ops::{sync_state_set, Decision, Reply, Request, View};
use super::raft::Raft;
use super::state_machine::{read, SharedState};
use crate::client::remoting::RemotingClient;
use crate::wire::bodies::to_fastjson;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::controller::{
    ElectMasterRequestHeader, ElectMasterResponseHeader, GetMetaDataResponseHeader,
};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

/// How long a leader-only request may take (RocketMQ waits 5 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Controller {
    cfg: ControllerConfig,
    raft: Raft,
    shared: SharedState,
    live: LiveTable,
    /// Pushes NOTIFY_BROKER_ROLE_CHANGED to brokers.
    client: RemotingClient,
    started: Instant,
}

impl Controller {
    pub fn new(
        cfg: ControllerConfig,
        raft: Raft,
        shared: SharedState,
        client: RemotingClient,
    ) -> Self {
        Controller {
            cfg,
            raft,
            shared,
            live: LiveTable::default(),
            client,
            started: Instant::now(),
        }
    }

    fn self_node(&self) -> u64 {
        self.cfg.self_index().unwrap_or(0) as u64
    }

    fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.current_leader == Some(self.self_node()) && m.state.is_leader()
    }

    /// Brokers whose master is gone: elected by the controller (nominee −1).
    fn elect_for(&self, broker_name: &str, ctx: &mut Context<Self>) {
        let header = ElectMasterRequestHeader {
            broker_name: broker_name.to_owned(),
            broker_id: -1,
            ..Default::default()
        };
        let me = ctx.address();
        let name = broker_name.to_owned();
        actix::spawn(async move {
            if let Ok(r) = me.send(Decide(Request::Elect(header))).await {
                tracing::info!(broker = %name, code = r.code, remark = ?r.remark, "controller: election after the master died");
            }
        });
    }

    /// The sets whose master is dead while a candidate is alive.
    fn orphaned_sets(&self, now: Instant) -> Vec<String> {
        let applied = read(&self.shared);
        applied
            .state
            .sets
            .values()
            .filter(|s| {
                let dead = s
                    .master
                    .is_some_and(|m| !self.live.is_alive(&s.name, m, now));
                let pool: Vec<i64> = if self.cfg.elect_unclean_master {
                    s.replicas.keys().copied().collect()
                } else {
                    s.sync_state_set.iter().copied().collect()
                };
                dead && pool.iter().any(|id| self.live.is_alive(&s.name, *id, now))
            })
            .map(|s| s.name.clone())
            .collect()
    }

    /// The masters among `gone`.
    fn masters_among(&self, gone: &[(String, i64)]) -> Vec<String> {
        let applied = read(&self.shared);
        gone.iter()
            .filter(|(name, id)| applied.state.set(name).and_then(|s| s.master) == Some(*id))
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn scan(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let gone = self.live.expire(now);
        if !self.is_leader() {
            return;
        }
        let mut sets = self.masters_among(&gone);
        // A fresh node has not heard every broker yet: judge masters only
        // after a full heartbeat timeout.
        if self.started.elapsed() > Duration::from_millis(self.cfg.heartbeat_timeout_ms) {
            sets.extend(self.orphaned_sets(now));
        }
        sets.sort();
        sets.dedup();
        for name in sets {
            self.elect_for(&name, ctx);
        }
    }

    /// NOTIFY_BROKER_ROLE_CHANGED to every alive member of `broker_name`.
    fn notify(&self, broker_name: &str) {
        let applied = read(&self.shared);
        let Some(set) = applied.state.set(broker_name) else {
            return;
        };
        let header = ElectMasterResponseHeader {
            master_broker_id: set.master,
            master_address: set.master_address().map(str::to_owned),
            master_epoch: Some(set.master_epoch),
            sync_state_set_epoch: Some(set.sync_state_set_epoch),
        };
        let body = to_fastjson(&sync_state_set(set)).into_bytes();
        for (_, addr) in self.live.alive_members(broker_name, Instant::now()) {
            let mut cmd =
                RemotingCommand::request(rq::NOTIFY_BROKER_ROLE_CHANGED).with_body(body.clone());
            cmd.ext = header.to_ext();
            let client = self.client.clone();
            actix::spawn(async move {
                if let Err(e) = client.invoke_oneway(&addr, cmd).await {
                    tracing::info!(%addr, error = %e, "controller: role-change notification not sent");
                }
            });
        }
    }
}

impl Actor for Controller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        let every = Duration::from_millis(self.cfg.scan_interval_ms);
        // RocketMQ's first scan comes after 2 s.
        ctx.run_later(every.min(Duration::from_secs(2)), move |act, ctx| {
            act.scan(ctx);
            ctx.run_interval(every, |act, ctx| act.scan(ctx));
        });
    }
}

/// BROKER_HEARTBEAT (904) from a replica.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Heartbeat {
    pub broker_name: String,
    pub broker_id: i64,
    pub info: LiveInfo,
}

impl Handler<Heartbeat> for Controller {
    type Result = ();
    fn handle(&mut self, h: Heartbeat, _: &mut Context<Self>) {
        self.live.beat(&h.broker_name, h.broker_id, h.info);
    }
}

/// The connection heartbeats came on closed: those replicas are dead now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChannelClosed(pub u64);

impl Handler<ChannelClosed> for Controller {
    type Result = ();
    fn handle(&mut self, c: ChannelClosed, ctx: &mut Context<Self>) {
        let gone = self.live.channel_closed(c.0);
        if gone.is_empty() || !self.is_leader() {
            return;
        }
        for name in self.masters_among(&gone) {
            self.elect_for(&name, ctx);
        }
    }
}

/// A leader-only request; answered after its events are committed.
#[derive(Message)]
#[rtype(result = "Reply")]
pub struct Decide(pub Request);

fn not_leader() -> Reply {
    Reply::refuse(
        rs::CONTROLLER_NOT_LEADER,
        "The controller is not in leader state",
    )
}

/// A refusal before deciding (boxed: a reply is large).
fn early(r: Reply) -> Box<Reply> {
    Box::new(r)
}

impl Handler<Decide> for Controller {
    type Result = AtomicResponse<Self, Reply>;

    fn handle(&mut self, d: Decide, _: &mut Context<Self>) -> Self::Result {
        let raft = self.raft.clone();
        let check = async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, raft.ensure_linearizable()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                    Err(early(not_leader()))
                }
                Ok(Err(e)) => Err(early(Reply::refuse(rs::SYSTEM_ERROR, e.to_string()))),
                Err(_) => Err(early(Reply::refuse(
                    rs::SYSTEM_ERROR,
                    "controller: timed out waiting for the Raft quorum",
                ))),
            }
        };
        AtomicResponse::new(Box::pin(
            check
                .into_actor(self)
                .map(move |r, act, _| {
                    r.map(|()| {
                        let applied = read(&act.shared);
                        View {
                            state: &applied.state,
                            live: &act.live,
                            now: Instant::now(),
                            unclean: act.cfg.elect_unclean_master,
                        }
                        .decide(&d.0)
                    })
                })
                .then(|r, act, _| {
                    let raft = act.raft.clone();
                    async move {
                        match r {
                            Ok(decision) => commit(&raft, decision).await,
                            Err(reply) => (*reply, None),
                        }
                    }
                    .into_actor(act)
                })
                .map(|(reply, elected), act, _| {
                    if let Some(name) = elected.filter(|_| act.cfg.notify_role_changed) {
                        act.notify(&name);
                    }
                    reply
                }),
        ))
    }
}

/// Commits a decision's events (if any); the reply and the set whose
/// master changed.
async fn commit(raft: &Raft, d: Decision) -> (Reply, Option<String>) {
    if d.events.is_empty() {
        return (d.reply, d.elected);
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, raft.client_write(d.events)).await {
        Ok(Ok(_)) => (d.reply, d.elected),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => (not_leader(), None),
        Ok(Err(e)) => (Reply::refuse(rs::SYSTEM_ERROR, e.to_string()), None),
        Err(_) => (
            Reply::refuse(
                rs::SYSTEM_ERROR,
                "controller: timed out appending to the Raft log",
            ),
            None,
        ),
    }
}

/// CONTROLLER_GET_METADATA_INFO: the Raft group as this node sees it.
#[derive(Message)]
#[rtype(result = "GetMetaDataResponseHeader")]
pub struct Metadata;

impl Handler<Metadata> for Controller {
    type Result = MessageResult<Metadata>;
    fn handle(&mut self, _: Metadata, _: &mut Context<Self>) -> Self::Result {
        let leader = self.raft.metrics().borrow().current_leader;
        let peer = leader.and_then(|i| self.cfg.peers.get(i as usize));
        MessageResult(GetMetaDataResponseHeader {
            group: self.cfg.group.clone(),
            controller_leader_id: peer.map(|p| p.id.clone()).unwrap_or_default(),
            controller_leader_address: peer.map(|p| p.addr.clone()).unwrap_or_default(),
            is_leader: self.is_leader(),
            peers: self.cfg.peers_text(),
        })
    }
}

/// GET_CONTROLLER_CONFIG (None) and UPDATE_CONTROLLER_CONFIG (Some):
/// this node's settings as properties text.
#[derive(Message)]
#[rtype(result = "Reply")]
pub struct Config(pub Option<BTreeMap<String, String>>);

impl Handler<Config> for Controller {
    type Result = MessageResult<Config>;
    fn handle(&mut self, c: Config, _: &mut Context<Self>) -> Self::Result {
        let Some(update) = c.0 else {
            let text: String = self
                .cfg
                .properties
                .iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect();
            return MessageResult(Reply {
                body: Some(text.into_bytes()),
                ..Reply::default()
            });
        };
        let black = self
            .cfg
            .properties
            .get("configBlackList")
            .cloned()
            .unwrap_or_else(|| "configBlackList;configStorePath".into());
        let blocked = |k: &str| k == "rocketmqHome" || black.split(';').any(|b| b.trim() == k);
        if update.keys().any(|k| blocked(k)) {
            return MessageResult(Reply::refuse(
                rs::NO_PERMISSION,
                "Can not update config in black list.",
            ));
        }
        let mut merged = self.cfg.properties.clone();
        merged.extend(update);
        match ControllerConfig::from_properties(&merged) {
            Ok(mut next) => {
                // Group, peers and store path belong to the running Raft.
                next.peers = self.cfg.peers.clone();
                next.self_id = self.cfg.self_id.clone();
                next.store_path = self.cfg.store_path.clone();
                self.cfg = next;
                MessageResult(Reply::default())
            }
            Err(e) => MessageResult(Reply::refuse(rs::SYSTEM_ERROR, e.to_string())),
        }
    }
}

/// Shared handle kept by the processor.
pub type ControllerAddr = Arc<Addr<Controller>>;
