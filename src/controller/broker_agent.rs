//! A broker in controller mode (`enableControllerMode=true`; RocketMQ's
//! `ReplicasManager`): the `ReplicasAgent` actor gets the broker's id
//! through the broker-id protocol (the `brokerIdentity` files), registers
//! with the controller leader, heartbeats every controller, nominates
//! itself when the set has no master, and applies the master the
//! controller names through the broker's role switch (`ChangeRole`), which
//! also registers the broker with the name servers under its new id.
//!
//! Keys (`BrokerConfig`): `controllerAddr` (`host:port;host:port`),
//! `syncBrokerMetadataPeriod` (5000 ms, the GET_REPLICA_INFO poll),
//! `brokerHeartbeatInterval` (1000 ms), `controllerHeartBeatTimeoutMills`
//! (10000 ms), `brokerElectionPriority`.
//!
//! Replication is AutoSwitch HA (`actors::ha::autoswitch`): the agent
//! hands it the broker id, the controller leader (for ALTERs), each
//! successful exchange with the controller (fencing), the SyncStateSet and
//! the master epoch of every role change; heartbeats carry the last local
//! epoch, the log end and the confirm offset. NOTIFY_BROKER_ROLE_CHANGED
//! ([`RoleNotified`]) is applied at once instead of waiting for the poll.
//! The broker registers with the name servers only once the controller
//! confirmed its role (`Registrar::fenced`).

use actix::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::actors::broker::commit_log::{CommitLogWriter, LogOffsets, TruncateLog};
use crate::actors::broker::registrar::{Registrar, Unfence};
use crate::actors::broker::role::{ChangeRole, RoleKeeper};
use crate::actors::ha::autoswitch::{AutoSwitch, RoleNotified};
use crate::actors::ha::MasterAddress;
use crate::client::remoting::{ClientConfig, RemotingClient};
use crate::config::BrokerRole;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::controller::{ElectMasterBody, SyncStateSetBody};
use crate::wire::headers::controller::*;
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use super::FORWARD;

const CALL: Duration = Duration::from_secs(3);

/// The controller-mode settings of a broker.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub controllers: Vec<String>,
    pub identity_file: PathBuf,
    pub poll: Duration,
    pub heartbeat: Duration,
    pub heartbeat_timeout_ms: i64,
    pub election_priority: i32,
}

fn num<T: std::str::FromStr>(m: &BTreeMap<String, String>, key: &str, default: T) -> T {
    m.get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl AgentConfig {
    /// The agent's settings when `enableControllerMode=true`.
    pub fn from_broker(cfg: &crate::config::BrokerConfig) -> Option<AgentConfig> {
        let m = &cfg.unknown;
        if !num(m, "enableControllerMode", false) {
            return None;
        }
        let controllers = m
            .get("controllerAddr")
            .map(|a| {
                a.split(';')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Some(AgentConfig {
            cluster: cfg.broker_cluster_name.clone(),
            broker_name: cfg.broker_name.clone(),
            broker_addr: cfg.broker_addr(),
            controllers,
            identity_file: m
                .get("storePathBrokerIdentity")
                .map(PathBuf::from)
                .unwrap_or_else(|| cfg.store_path_root_dir.join("brokerIdentity")),
            poll: Duration::from_millis(num(m, "syncBrokerMetadataPeriod", 5000u64).max(100)),
            heartbeat: Duration::from_millis(num(m, "brokerHeartbeatInterval", 1000u64).max(50)),
            heartbeat_timeout_ms: num(m, "controllerHeartBeatTimeoutMills", 10_000i64),
            election_priority: num(m, "brokerElectionPriority", i32::MAX),
        })
    }
}

/// `brokerIdentity`: `cluster#name#id`; its temp file (`brokerIdentity-temp`)
/// adds the register check code: `cluster#name#id#addr;millis`.
fn temp_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push("-temp");
    PathBuf::from(s)
}

/// Reads an identity file of this set: (id, check code when temp).
pub fn read_identity(p: &Path, cluster: &str, name: &str) -> Option<(i64, Option<String>)> {
    let text = std::fs::read_to_string(p).ok()?;
    let mut parts = text.trim().splitn(4, '#');
    let (c, n, id) = (parts.next()?, parts.next()?, parts.next()?);
    if c != cluster || n != name {
        tracing::warn!(file = %p.display(), "broker identity of another broker set; ignored");
        return None;
    }
    Some((id.parse().ok()?, parts.next().map(str::to_owned)))
}

fn write_identity(p: &Path, text: &str) -> std::io::Result<()> {
    crate::store::metadata::write_atomic(p, text.as_bytes()).map_err(std::io::Error::other)
}

/// The controllers' CONTROLLER_GET_METADATA_INFO answers, gathered as
/// they come: which node leads. A node saying it leads is taken once
/// another names the same leader id (a deposed leader cut off from the
/// others may still say it leads, but nobody names it).
#[derive(Debug, Default)]
pub struct LeaderVotes {
    /// (address asked, its id) of the nodes that say they lead.
    claims: Vec<(String, String)>,
    /// Leader ids the other nodes name.
    named: BTreeSet<String>,
    /// The first node that names a leader other than itself.
    follower: Option<String>,
}

impl LeaderVotes {
    /// Adds the answer of the node asked at `addr`; the address of the
    /// leader once it is confirmed.
    pub fn add(&mut self, addr: &str, h: &GetMetaDataResponseHeader) -> Option<String> {
        if h.is_leader {
            self.claims
                .push((addr.to_owned(), h.controller_leader_id.clone()));
        } else if !h.controller_leader_address.is_empty() {
            self.named.insert(h.controller_leader_id.clone());
            self.follower.get_or_insert_with(|| addr.to_owned());
        }
        let confirmed = self.claims.iter().find(|(_, id)| self.named.contains(id));
        confirmed.map(|(a, _)| a.clone())
    }

    /// Every answer in and none confirmed: a lone claimant (a group of
    /// one, or the others silent), else a follower that names a leader
    /// (`true`: the requests go through it), else any claimant.
    pub fn finish(self) -> Option<(String, bool)> {
        let mut claims = self.claims.into_iter();
        match (claims.next(), self.follower) {
            (Some((a, _)), _) if self.named.is_empty() => Some((a, false)),
            (_, Some(f)) => Some((f, true)),
            (claim, None) => claim.map(|(a, _)| (a, false)),
        }
    }
}

/// What the agent knows; replaced after each step.
#[derive(Debug, Clone, Default)]
struct Known {
    leader: Option<String>,
    /// `leader` is a follower that forwards (the leader did not answer).
    forward: bool,
    id: Option<i64>,
    registered: bool,
    /// The master epoch this broker acted on (0 after a start).
    master_epoch: i32,
    max_offset: i64,
}

/// What heartbeats say: the id and the last master epoch acted on. Set by
/// a step as soon as it registers (RocketMQ sends one heartbeat right
/// then), not when the step ends.
#[derive(Debug, Clone, Copy)]
struct BeatAs {
    id: i64,
    epoch: i32,
}

type SharedBeat = Arc<std::sync::Mutex<Option<BeatAs>>>;

fn set_beat(b: &SharedBeat, v: BeatAs) {
    *b.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
}

/// What the agent drives besides the role switch.
#[derive(Clone)]
pub struct AgentLinks {
    pub auto: Option<Arc<AutoSwitch>>,
    pub registrar: Addr<Registrar>,
    pub master: MasterAddress,
}

pub struct ReplicasAgent {
    cfg: Arc<AgentConfig>,
    beat_as: SharedBeat,
    client: RemotingClient,
    role_keeper: Addr<RoleKeeper>,
    commit_log: Addr<CommitLogWriter>,
    links: AgentLinks,
    known: Known,
    busy: bool,
    /// A NOTIFY_BROKER_ROLE_CHANGED not applied yet.
    notified: Option<RoleNotified>,
}

impl ReplicasAgent {
    pub fn new(
        cfg: AgentConfig,
        role_keeper: Addr<RoleKeeper>,
        commit_log: Addr<CommitLogWriter>,
        links: AgentLinks,
    ) -> Self {
        ReplicasAgent {
            cfg: Arc::new(cfg),
            beat_as: SharedBeat::default(),
            client: RemotingClient::new(ClientConfig::default()),
            role_keeper,
            commit_log,
            links,
            known: Known::default(),
            busy: false,
            notified: None,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let run = Step {
            cfg: self.cfg.clone(),
            beat_as: self.beat_as.clone(),
            client: self.client.clone(),
            role_keeper: self.role_keeper.clone(),
            log: self.commit_log.clone(),
            links: self.links.clone(),
            forward: AtomicBool::new(false),
        };
        let (known, log) = (self.known.clone(), self.commit_log.clone());
        let notified = self.notified.take();
        ctx.spawn(
            async move {
                let mut k = known;
                if let Ok((_, max)) = log.send(LogOffsets).await {
                    k.max_offset = max;
                }
                let r = match notified {
                    Some(n) => run.notified(n, &mut k).await,
                    None => run.step(&mut k).await,
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e, "controller mode: step failed; retrying");
                }
                k
            }
            .into_actor(self)
            .map(|k, act, ctx| {
                act.known = k;
                act.busy = false;
                if act.notified.is_some() {
                    act.tick(ctx);
                }
            }),
        );
    }

    /// BROKER_HEARTBEAT (one-way) to every controller.
    fn beat(&self) {
        let Some(BeatAs { id, epoch }) = *self.beat_as.lock().unwrap_or_else(|e| e.into_inner())
        else {
            return;
        };
        let c = &self.cfg;
        // AutoSwitch: the last local epoch, the log end, the confirm offset.
        let (epoch, max, confirm) = match &self.links.auto {
            Some(a) => (
                a.last_epoch(),
                a.reader.max_offset(),
                a.reader.confirm_offset(),
            ),
            None => (epoch, self.known.max_offset, self.known.max_offset),
        };
        let fields = [
            ("clusterName", c.cluster.clone()),
            ("brokerName", c.broker_name.clone()),
            ("brokerAddr", c.broker_addr.clone()),
            ("brokerId", id.to_string()),
            ("epoch", epoch.to_string()),
            ("maxOffset", max.to_string()),
            ("confirmOffset", confirm.to_string()),
            ("heartbeatTimeoutMills", c.heartbeat_timeout_ms.to_string()),
            ("electionPriority", c.election_priority.to_string()),
        ];
        for addr in c.controllers.clone() {
            let mut cmd = RemotingCommand::request(rq::BROKER_HEARTBEAT);
            for (k, v) in &fields {
                cmd.ext.insert(k, v);
            }
            // The leader does not hear this broker: followers pass it on.
            if self.known.forward {
                cmd.ext.insert(FORWARD, "true");
            }
            let client = self.client.clone();
            actix::spawn(async move {
                let _ = tokio::time::timeout(CALL, client.invoke_oneway(&addr, cmd)).await;
            });
        }
    }
}

impl Actor for ReplicasAgent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
        ctx.run_interval(self.cfg.poll.min(Duration::from_secs(1)), |act, ctx| {
            // Until the broker has a role, try every second; then poll.
            if act.known.master_epoch == 0 || !act.known.registered {
                act.tick(ctx);
            }
        });
        ctx.run_interval(self.cfg.poll, |act, ctx| act.tick(ctx));
        ctx.run_interval(self.cfg.heartbeat, |act, _| act.beat());
        // A master proves it still is one at least four times per
        // heartbeat timeout: one lost poll must not fence it (AutoSwitch
        // refuses writes after a heartbeat timeout without a reply).
        let timeout = Duration::from_millis(self.cfg.heartbeat_timeout_ms.max(0) as u64);
        let every = (timeout / 4).max(Duration::from_millis(100));
        if self.links.auto.is_some() && every < self.cfg.poll {
            ctx.run_interval(every, |act, ctx| {
                if act.links.auto.as_ref().is_some_and(|a| a.is_master()) {
                    act.tick(ctx);
                }
            });
        }
    }
}

impl Handler<RoleNotified> for ReplicasAgent {
    type Result = ();
    fn handle(&mut self, m: RoleNotified, ctx: &mut Context<Self>) {
        tracing::info!(
            master = m.master_id,
            epoch = m.master_epoch,
            "NOTIFY_BROKER_ROLE_CHANGED"
        );
        if self
            .notified
            .as_ref()
            .is_none_or(|n| n.master_epoch <= m.master_epoch)
        {
            self.notified = Some(m);
        }
        self.tick(ctx);
    }
}

/// One pass of the agent's routine (RocketMQ's `startBasicService` and its
/// periodic `GET_REPLICA_INFO` poll).
struct Step {
    cfg: Arc<AgentConfig>,
    beat_as: SharedBeat,
    client: RemotingClient,
    role_keeper: Addr<RoleKeeper>,
    log: Addr<CommitLogWriter>,
    links: AgentLinks,
    /// The calls go through a follower that forwards them.
    forward: AtomicBool,
}

type StepResult<T> = Result<T, String>;

/// The SyncStateSet in a reply body (SyncStateSet JSON).
fn set_of(r: &RemotingCommand) -> (BTreeSet<i64>, Option<i32>) {
    let b: Option<SyncStateSetBody> = crate::wire::json::from_fastjson(&r.body_bytes()).ok();
    b.map_or((BTreeSet::new(), None), |b| {
        (b.sync_state_set, Some(b.sync_state_set_epoch))
    })
}

impl Step {
    async fn call(
        &self,
        addr: &str,
        code: i32,
        header: &impl CommandHeader,
    ) -> StepResult<RemotingCommand> {
        let mut cmd = RemotingCommand::request(code);
        cmd.ext = header.to_ext();
        if self.forward.load(Ordering::Relaxed) {
            cmd.ext.insert(FORWARD, "true");
        }
        self.client
            .invoke(addr, cmd, CALL)
            .await
            .map_err(|e| e.to_string())
    }

    /// Where the leader-only requests go: (address, forwarded). Every
    /// controller is asked at once (a silent one must not hold up the
    /// others: apache/rocketmq#5929). The configured address of a node
    /// that says it leads wins once another node names it too (by id): a
    /// deposed leader cut off from the others may still say it leads, but
    /// nobody names it. When the leader does not answer but a follower
    /// names one, the requests go through that follower, which forwards
    /// them (apache/rocketmq#10812: the broker reaches only followers).
    async fn find_leader(&self) -> StepResult<(String, bool)> {
        let quarter = self.cfg.heartbeat_timeout_ms.max(0) as u64 / 4;
        let wait = Duration::from_millis(quarter.clamp(300, 3000));
        let mut asks: FuturesUnordered<_> = self
            .cfg
            .controllers
            .iter()
            .map(|addr| async move {
                let cmd = RemotingCommand::request(rq::CONTROLLER_GET_METADATA_INFO);
                let r = self.client.invoke(addr, cmd, wait).await.ok()?;
                Some((addr, GetMetaDataResponseHeader::from_ext(&r.ext).ok()?))
            })
            .collect();
        let mut votes = LeaderVotes::default();
        while let Some(answer) = asks.next().await {
            if let Some(leader) = answer.and_then(|(addr, h)| votes.add(addr, &h)) {
                return Ok((leader, false));
            }
        }
        votes
            .finish()
            .ok_or_else(|| "no controller names a leader".into())
    }

    /// A NOTIFY_BROKER_ROLE_CHANGED: applied when newer than the role held.
    async fn notified(&self, n: RoleNotified, k: &mut Known) -> StepResult<()> {
        let Some(id) = k.id.filter(|_| k.registered) else {
            return self.step(k).await;
        };
        if n.master_epoch > k.master_epoch {
            let set = (n.set, n.ss_epoch);
            self.apply(id, n.master_id, n.master_addr, n.master_epoch, set, k)
                .await?;
        } else if let Some(a) = &self.links.auto {
            a.adopt_set(n.master_epoch, n.set, n.ss_epoch);
        }
        Ok(())
    }

    async fn step(&self, k: &mut Known) -> StepResult<()> {
        let (leader, forward) = self.find_leader().await?;
        if forward != k.forward {
            let how = if forward {
                "through a follower"
            } else {
                "directly"
            };
            tracing::warn!(to = %leader, "controller mode: the leader is reached {how}");
        }
        self.forward.store(forward, Ordering::Relaxed);
        (k.leader, k.forward) = (Some(leader.clone()), forward);
        if let Some(a) = &self.links.auto {
            a.set_route(Some(leader.clone()), forward);
        }
        if k.id.is_none() {
            k.id = Some(self.broker_id(&leader).await?);
        }
        let id = k.id.unwrap_or_default();
        if let Some(a) = &self.links.auto {
            a.set_my_id(id);
        }
        if !k.registered {
            self.register(&leader, id, k).await?;
        }
        let h = GetReplicaInfoRequestHeader {
            broker_name: self.cfg.broker_name.clone(),
        };
        let r = self
            .call(&leader, rq::CONTROLLER_GET_REPLICA_INFO, &h)
            .await?;
        if r.code == rs::CONTROLLER_BROKER_METADATA_NOT_EXIST {
            k.registered = false;
            return Ok(());
        }
        if r.code != rs::SUCCESS {
            return Err(format!("GET_REPLICA_INFO: {} {:?}", r.code, r.remark));
        }
        let info = GetReplicaInfoResponseHeader::from_ext(&r.ext).map_err(|e| e.to_string())?;
        let epoch = info.master_epoch.unwrap_or(0);
        let (set, ss_epoch) = set_of(&r);
        let r = self
            .follow_reply(id, &leader, epoch, info, (set, ss_epoch), k)
            .await;
        // Only a reply the broker acted on proves contact: a master learning
        // here that it was deposed must not count as reachable meanwhile.
        if r.is_ok() {
            if let Some(a) = &self.links.auto {
                a.controller_contact();
            }
        }
        r
    }

    async fn follow_reply(
        &self,
        id: i64,
        leader: &str,
        epoch: i32,
        info: GetReplicaInfoResponseHeader,
        (set, ss_epoch): (BTreeSet<i64>, Option<i32>),
        k: &mut Known,
    ) -> StepResult<()> {
        match (info.master_broker_id, info.master_address) {
            (Some(m), Some(addr)) if epoch > k.master_epoch => {
                self.apply(id, m, addr, epoch, (set, ss_epoch.unwrap_or(0)), k)
                    .await
            }
            (None, _) if epoch >= k.master_epoch => self.nominate(leader, id, k).await,
            (Some(m), _) if m == id && epoch == k.master_epoch => {
                if let (Some(a), Some(e)) = (&self.links.auto, ss_epoch) {
                    a.adopt_set(epoch, set, e);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The broker-id protocol: the identity file, or next id → temp file →
    /// apply → identity file.
    async fn broker_id(&self, leader: &str) -> StepResult<i64> {
        let (cfg, file) = (&self.cfg, &self.cfg.identity_file);
        if let Some((id, None)) = read_identity(file, &cfg.cluster, &cfg.broker_name) {
            return Ok(id);
        }
        let temp = temp_path(file);
        let (id, code) = match read_identity(&temp, &cfg.cluster, &cfg.broker_name) {
            Some((id, Some(code))) => (id, code),
            _ => {
                let h = GetNextBrokerIdRequestHeader {
                    cluster_name: cfg.cluster.clone(),
                    broker_name: cfg.broker_name.clone(),
                };
                let r = self
                    .call(leader, rq::CONTROLLER_GET_NEXT_BROKER_ID, &h)
                    .await?;
                let next = GetNextBrokerIdResponseHeader::from_ext(&r.ext)
                    .ok()
                    .and_then(|h| h.next_broker_id)
                    .ok_or_else(|| format!("GET_NEXT_BROKER_ID: {} {:?}", r.code, r.remark))?;
                let code = format!("{};{}", cfg.broker_addr, crate::wire::now_ms());
                let text = format!("{}#{}#{next}#{code}", cfg.cluster, cfg.broker_name);
                write_identity(&temp, &text).map_err(|e| e.to_string())?;
                (next, code)
            }
        };
        let h = ApplyBrokerIdRequestHeader {
            cluster_name: cfg.cluster.clone(),
            broker_name: cfg.broker_name.clone(),
            applied_broker_id: id,
            register_check_code: code,
        };
        let r = self
            .call(leader, rq::CONTROLLER_APPLY_BROKER_ID, &h)
            .await?;
        if r.code != rs::SUCCESS {
            let _ = std::fs::remove_file(&temp);
            return Err(format!("APPLY_BROKER_ID {id}: {} {:?}", r.code, r.remark));
        }
        write_identity(file, &format!("{}#{}#{id}", cfg.cluster, cfg.broker_name))
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&temp);
        tracing::info!(broker_id = id, "controller mode: broker id applied");
        Ok(id)
    }

    async fn register(&self, leader: &str, id: i64, k: &mut Known) -> StepResult<()> {
        let h = RegisterBrokerToControllerRequestHeader {
            cluster_name: self.cfg.cluster.clone(),
            broker_name: self.cfg.broker_name.clone(),
            broker_id: id,
            broker_address: self.cfg.broker_addr.clone(),
            invoke_time: crate::wire::now_ms(),
        };
        let r = self
            .call(leader, rq::CONTROLLER_REGISTER_BROKER, &h)
            .await?;
        if r.code != rs::SUCCESS {
            return Err(format!("REGISTER_BROKER: {} {:?}", r.code, r.remark));
        }
        k.registered = true;
        set_beat(
            &self.beat_as,
            BeatAs {
                id,
                epoch: k.master_epoch,
            },
        );
        let h = RegisterBrokerToControllerResponseHeader::from_ext(&r.ext)
            .map_err(|e| e.to_string())?;
        let (set, _) = set_of(&r);
        if let (Some(m), Some(addr), Some(epoch)) =
            (h.master_broker_id, h.master_address, h.master_epoch)
        {
            if epoch > k.master_epoch {
                let ss = h.sync_state_set_epoch.unwrap_or(0);
                self.apply(id, m, addr, epoch, (set, ss), k).await?;
            }
        }
        Ok(())
    }

    /// Self-nomination (CONTROLLER_ELECT_MASTER with its own id).
    async fn nominate(&self, leader: &str, id: i64, k: &mut Known) -> StepResult<()> {
        let h = ElectMasterRequestHeader {
            cluster_name: self.cfg.cluster.clone(),
            broker_name: self.cfg.broker_name.clone(),
            broker_id: id,
            designate_elect: false,
            invoke_time: crate::wire::now_ms(),
        };
        let r = self.call(leader, rq::CONTROLLER_ELECT_MASTER, &h).await?;
        if r.code != rs::SUCCESS && r.code != rs::CONTROLLER_MASTER_STILL_EXIST {
            return Err(format!("ELECT_MASTER: {} {:?}", r.code, r.remark));
        }
        let h = ElectMasterResponseHeader::from_ext(&r.ext).map_err(|e| e.to_string())?;
        let body: ElectMasterBody =
            crate::wire::json::from_fastjson(&r.body_bytes()).unwrap_or_default();
        match (h.master_broker_id, h.master_address, h.master_epoch) {
            (Some(m), Some(addr), Some(epoch)) if epoch > k.master_epoch => {
                let set = (body.sync_state_set, h.sync_state_set_epoch.unwrap_or(0));
                self.apply(id, m, addr, epoch, set, k).await
            }
            _ => Ok(()),
        }
    }

    /// Takes the role the controller's master implies.
    async fn apply(
        &self,
        id: i64,
        master: i64,
        master_addr: String,
        epoch: i32,
        (set, ss_epoch): (BTreeSet<i64>, i32),
        k: &mut Known,
    ) -> StepResult<()> {
        let auto = self.links.auto.as_ref();
        if let (Some(a), true) = (auto, master == id) {
            // changeToMaster: the log ends at a complete record, then the
            // epoch entry (epoch, log end), then writes open.
            a.become_slave(k.master_epoch);
            self.log
                .send(TruncateLog { to: None })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            a.become_master(epoch, set, ss_epoch);
        }
        let change = if master == id {
            ChangeRole {
                role: BrokerRole::SyncMaster,
                broker_id: None,
                master_addr: None,
            }
        } else {
            ChangeRole {
                role: BrokerRole::Slave,
                broker_id: Some(id),
                master_addr: Some(master_addr),
            }
        };
        tracing::info!(
            master,
            epoch,
            me = id,
            "controller mode: role from the controller"
        );
        match self.role_keeper.send(change).await {
            Ok(Ok(_)) => {
                k.master_epoch = epoch;
                set_beat(&self.beat_as, BeatAs { id, epoch });
                if let (Some(a), false) = (auto, master == id) {
                    a.become_slave(epoch);
                    // The new master's HA address comes with the next
                    // registration's answer.
                    self.links.master.set(None);
                }
                self.links.registrar.do_send(Unfence {
                    master_epoch: epoch,
                });
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Starts the agent when the broker's config enables controller mode.
pub fn start_if_enabled(
    ctx: &crate::actors::broker::processor::BrokerCtx,
) -> Option<Addr<ReplicasAgent>> {
    let cfg = AgentConfig::from_broker(&ctx.cfg)?;
    tracing::info!(controllers = ?cfg.controllers, "controller mode");
    // Its own thread: heartbeats keep their period while the broker's
    // threads are busy (a role change starting the master's services).
    let (keeper, log) = (ctx.role_keeper.clone(), ctx.commit_log.clone());
    let links = AgentLinks {
        auto: ctx.ha.auto.clone(),
        registrar: ctx.registrar.clone(),
        master: ctx.ha.master.clone(),
    };
    let arbiter = Arbiter::new();
    let agent = ReplicasAgent::start_in_arbiter(&arbiter.handle(), move |_| {
        ReplicasAgent::new(cfg, keeper, log, links)
    });
    if let Some(a) = &ctx.ha.auto {
        let _ = a.notify.set(agent.clone().recipient());
    }
    Some(agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer: whether the node leads, and the leader id it names.
    fn meta(leader: bool, named: &str) -> GetMetaDataResponseHeader {
        GetMetaDataResponseHeader {
            controller_leader_id: named.into(),
            controller_leader_address: if named.is_empty() {
                String::new()
            } else {
                format!("{named}-addr")
            },
            is_leader: leader,
            ..Default::default()
        }
    }

    #[test]
    fn a_leader_is_taken_once_another_node_names_it() {
        // The deposed n0 still says it leads; n1 leads, n2 follows it.
        let mut v = LeaderVotes::default();
        assert_eq!(v.add("a0", &meta(true, "n0")), None);
        assert_eq!(v.add("a1", &meta(true, "n1")), None);
        assert_eq!(v.add("a2", &meta(false, "n1")), Some("a1".into()));
        // Follower first, then the leader it names.
        let mut v = LeaderVotes::default();
        assert_eq!(v.add("a2", &meta(false, "n1")), None);
        assert_eq!(v.add("a1", &meta(true, "n1")), Some("a1".into()));
        // A group of one.
        let mut v = LeaderVotes::default();
        assert_eq!(v.add("a0", &meta(true, "n0")), None);
        assert_eq!(v.finish(), Some(("a0".into(), false)));
        // The leader silent: through a follower that forwards.
        let mut v = LeaderVotes::default();
        assert_eq!(v.add("a2", &meta(false, "n1")), None);
        assert_eq!(v.finish(), Some(("a2".into(), true)));
        // A claimant nobody confirms while a follower names another.
        let mut v = LeaderVotes::default();
        v.add("a0", &meta(true, "n0"));
        v.add("a2", &meta(false, "n1"));
        assert_eq!(v.finish(), Some(("a2".into(), true)));
        // Nobody knows a leader.
        let mut v = LeaderVotes::default();
        v.add("a2", &meta(false, ""));
        assert_eq!(v.finish(), None);
    }

    #[test]
    fn identity_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("brokerIdentity");
        write_identity(&temp_path(&p), "c#b#3#10.0.0.1:10911;17").unwrap();
        assert_eq!(
            read_identity(&temp_path(&p), "c", "b"),
            Some((3, Some("10.0.0.1:10911;17".into())))
        );
        write_identity(&p, "c#b#3").unwrap();
        assert_eq!(read_identity(&p, "c", "b"), Some((3, None)));
        assert_eq!(read_identity(&p, "c", "other"), None);
    }
}
