//! `bench failover`, and the harness `tests/controller_rounds.rs` drives:
//! a broker group in controller mode (`enableControllerMode=true`) with its
//! controllers (standalone, or embedded in the name server) as child
//! processes; a producer under continuous load that remembers every
//! acknowledged message; rounds of `kill -9` of whichever broker is master,
//! each timed per phase, the killed broker restarted to rejoin as a slave;
//! and a checker that reads every queue of the final master from offset 0.
//!
//! Phases of a round, all from the `kill -9`:
//! * detection — the controller reports the killed replica not alive
//!   (CONTROLLER_GET_SYNC_STATE_DATA);
//! * election — the controller names another master (GET_REPLICA_INFO);
//! * route switch — the name server's topic route has the new master at
//!   id 0;
//! * first send — the first send issued after the kill is acknowledged.
//!
//! The bench adds send throughput of the controller-mode group beside
//! classic SYNC_MASTER and ASYNC_MASTER pairs ([`super::replication`]).

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pair::{broker_args, free_port, spawn_exe, wait_port, Proc};
use super::replication::{produce_args, throughput_row, ReplicationBench, SEGMENT};
use super::stats::{print_table, write_json};
use super::target::{client, prepare_topic, route, BenchResult};
use crate::client::producer::{Producer, ProducerConfig, SendStatus};
use crate::client::route::Routes;
use crate::client::{Message, RemotingClient};
use crate::controller::broker_agent::LeaderVotes;
use crate::wire::bodies::MessageQueue;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::controller::{BrokerReplicasInfo, SyncStateSetBody};
use crate::wire::headers::controller::{
    GetMetaDataResponseHeader, GetReplicaInfoRequestHeader, GetReplicaInfoResponseHeader,
};
use crate::wire::headers::pull::{PullMessageRequestHeader, PullMessageResponseHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::json::from_fastjson;
use crate::wire::message::{decode_record, keys, MessageExt};
use crate::wire::RemotingCommand;

/// The cluster and broker-set names of the group.
pub const CLUSTER: &str = "FailoverCluster";
pub const BROKER: &str = "broker-fo";
const CALL: Duration = Duration::from_secs(3);

/// What to start.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The `actormq` binary the processes run.
    pub exe: PathBuf,
    /// Stores, configs and logs.
    pub dir: PathBuf,
    /// Controllers inside the name servers (`enableControllerInNamesrv`).
    pub embedded: bool,
    /// Controller nodes (with `embedded`: name servers, each with one).
    pub controllers: usize,
    pub brokers: usize,
    /// `controllerHeartBeatTimeoutMills` of the brokers.
    pub heartbeat_timeout_ms: u64,
    /// `mapedFileSizeCommitLog`.
    pub segment: u64,
    /// Extra broker.conf lines.
    pub broker_lines: String,
    /// Extra controller lines.
    pub controller_lines: String,
    /// A round starts only when every broker is in the SyncStateSet.
    pub wait_in_sync: bool,
    /// Rounds SIGSTOP the master instead of `kill -9` (then, once the
    /// route switched, `kill -9` and restart it): detection by heartbeat
    /// timeout rather than by the closed connection.
    pub freeze: bool,
    /// A free port for a server.
    pub port: fn() -> u16,
    /// `ACTORMQ_LOG` of the children.
    pub log_level: String,
    /// The address one process is given for another (see [`Dial`]).
    pub dial: Option<Dial>,
}

/// Rewrites the address a process dials for another: called with
/// (`from`, `to`, the real address) at start, it returns what goes into
/// `from`'s config — e.g. a relay's address, so a test can cut that link.
/// Processes: `controller{i}` (its `controllerDLegerPeers`), `broker{i}`
/// (its `controllerAddr`), by start order; and `slaves` → `broker{i}-ha`,
/// the HA address broker i advertises as a master: only its host can be
/// rewritten (`brokerIP2`), so the answer must keep the port.
#[derive(Clone)]
pub struct Dial(pub Arc<DialFn>);

/// `(from, to, real address)` → the address `from` is given.
pub type DialFn = dyn Fn(&str, &str, &str) -> String + Send + Sync;

impl fmt::Debug for Dial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dial")
    }
}

impl Spec {
    fn dial(&self, from: &str, to: &str, addr: &str) -> String {
        self.dial
            .as_ref()
            .map_or_else(|| addr.to_owned(), |d| (d.0)(from, to, addr))
    }
}

fn any_port() -> u16 {
    free_port().expect("a free port")
}

impl Spec {
    /// The shapes: three standalone controllers and a group of
    /// three, or one name server with the controller embedded and a group
    /// of two; heartbeat timeout 3 s, 4 MiB segments,
    /// `allAckInSyncStateSet=true`, `enableElectUncleanMaster=false`.
    pub fn new(exe: PathBuf, dir: PathBuf, embedded: bool) -> Spec {
        Spec {
            exe,
            dir,
            embedded,
            controllers: if embedded { 1 } else { 3 },
            brokers: if embedded { 2 } else { 3 },
            heartbeat_timeout_ms: 3000,
            segment: 4 << 20,
            broker_lines: "allAckInSyncStateSet=true\n".into(),
            controller_lines: "enableElectUncleanMaster=false\n".into(),
            wait_in_sync: true,
            freeze: false,
            port: any_port,
            log_level: "warn".into(),
            dial: None,
        }
    }
}

/// One broker of the group.
struct BrokerNode {
    proc: Option<Proc>,
    addr: String,
    args: Vec<String>,
    dir: PathBuf,
    starts: usize,
}

impl BrokerNode {
    fn log(&self) -> PathBuf {
        self.dir.join(format!("broker-{}.log", self.starts))
    }

    async fn start(&mut self, spec: &Spec) -> BenchResult<()> {
        self.starts += 1;
        let log = self.log();
        self.proc = Some(spawn_exe(&spec.exe, &self.args, &log, &spec.log_level)?);
        wait_port(&self.addr, &log).await
    }

    /// The controller id from `brokerIdentity` (`cluster#name#id`).
    fn id(&self) -> Option<i64> {
        let text = std::fs::read_to_string(self.dir.join("store/brokerIdentity")).ok()?;
        text.trim().rsplit('#').next()?.parse().ok()
    }
}

/// The controller's and the name server's view of the group.
#[derive(Debug, Default, Clone)]
pub struct View {
    pub master: Option<i64>,
    pub epoch: i32,
    pub sync_state_set: BTreeSet<i64>,
    pub alive: BTreeSet<i64>,
    /// The address the name server routes the topic's id 0 to.
    pub routed: Option<String>,
    /// When the answers arrived (replica info, live replicas, route).
    pub master_seen: Option<Instant>,
    pub alive_seen: Option<Instant>,
    pub routed_seen: Option<Instant>,
}

/// The processes of one group; all killed on drop.
pub struct Cluster {
    spec: Spec,
    /// Name server address(es), `;`-separated.
    pub namesrv: String,
    /// Where the controller requests go.
    pub controllers: Vec<String>,
    servers: Vec<(Proc, PathBuf)>,
    brokers: Vec<BrokerNode>,
    client: RemotingClient,
}

impl Cluster {
    /// Starts controllers, name server(s) and brokers, and waits until
    /// the first broker is master and every broker is running.
    pub async fn start(spec: Spec) -> BenchResult<Cluster> {
        std::fs::create_dir_all(&spec.dir)?;
        let n = spec.controllers.max(1);
        let peers: Vec<u16> = (0..n).map(|_| (spec.port)()).collect();
        let mut servers = Vec::new();
        let (mut controllers, mut namesrvs) = (Vec::new(), Vec::new());
        for (i, peer) in peers.iter().enumerate() {
            // Node i's view of the others (its own entry is where it binds).
            let peer_list: Vec<String> = peers
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    let real = format!("127.0.0.1:{p}");
                    let at = if i == j {
                        real
                    } else {
                        spec.dial(&format!("controller{i}"), &format!("controller{j}"), &real)
                    };
                    format!("n{j}-{at}")
                })
                .collect();
            let mut text = format!(
                "controllerDLegerGroup=failover\ncontrollerDLegerPeers={}\ncontrollerDLegerSelfId=n{i}\n\
                 controllerStorePath={}\nscanNotActiveBrokerInterval=500\n\
                 controllerHeartBeatTimeoutMills={}\ncontrollerRaftHeartbeatMillis=100\n{}\n",
                peer_list.join(";"),
                spec.dir.join(format!("controller{i}")).display(),
                spec.heartbeat_timeout_ms,
                spec.controller_lines,
            );
            let sub = if spec.embedded {
                let port = (spec.port)();
                text.push_str(&format!(
                    "enableControllerInNamesrv=true\nlistenPort={port}\nkvConfigPath={}\n",
                    spec.dir.join(format!("namesrv{i}/kv.json")).display()
                ));
                namesrvs.push(format!("127.0.0.1:{port}"));
                controllers.push(format!("127.0.0.1:{port}"));
                "namesrv"
            } else {
                controllers.push(format!("127.0.0.1:{peer}"));
                "controller"
            };
            let conf = spec.dir.join(format!("controller{i}.conf"));
            std::fs::write(&conf, text)?;
            let log = spec.dir.join(format!("controller{i}.log"));
            let args = [sub.to_owned(), "-c".into(), conf.display().to_string()];
            servers.push((spawn_exe(&spec.exe, &args, &log, &spec.log_level)?, log));
        }
        if !spec.embedded {
            let port = (spec.port)();
            let log = spec.dir.join("namesrv.log");
            let args = ["namesrv".to_owned(), "--port".into(), port.to_string()];
            servers.push((spawn_exe(&spec.exe, &args, &log, &spec.log_level)?, log));
            namesrvs.push(format!("127.0.0.1:{port}"));
        }
        let listening = if spec.embedded {
            namesrvs.clone()
        } else {
            controllers.iter().chain(&namesrvs).cloned().collect()
        };
        for (addr, (_, log)) in listening.iter().zip(&servers) {
            wait_port(addr, log).await?;
        }
        let mut c = Cluster {
            namesrv: namesrvs.join(";"),
            controllers,
            servers,
            brokers: Vec::new(),
            client: client(),
            spec,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.leader().await.is_none() {
            if Instant::now() > deadline {
                return Err(format!("no controller leader\n{}", c.logs()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for i in 0..c.spec.brokers {
            c.add_broker(i).await?;
            if i == 0 {
                // The first one nominates itself before the others exist.
                c.wait(Duration::from_secs(30), "a first master", |v| {
                    v.master.is_some()
                })
                .await?;
            }
        }
        Ok(c)
    }

    async fn add_broker(&mut self, i: usize) -> BenchResult<()> {
        let s = &self.spec;
        let dir = s.dir.join(format!("broker{i}"));
        std::fs::create_dir_all(&dir)?;
        let port = (s.port)();
        // With a dial hook, a known HA port and the host the slaves dial.
        let ha = match s.dial {
            Some(_) => {
                let ha = (s.port)();
                let real = format!("127.0.0.1:{ha}");
                let at = s.dial("slaves", &format!("broker{i}-ha"), &real);
                let host = match at.rsplit_once(':') {
                    Some((host, p)) if p == ha.to_string() => host.to_owned(),
                    _ => return Err(format!("an HA address must keep its port: {at}").into()),
                };
                format!("haListenPort={ha}\nbrokerIP2={host}\n")
            }
            None => "haListenPort=0\n".into(),
        };
        let conf = dir.join("broker.conf");
        std::fs::write(
            &conf,
            format!(
                "brokerClusterName={CLUSTER}\nbrokerName={BROKER}\nbrokerRole=SLAVE\nbrokerId=-1\n\
                 {ha}enableControllerMode=true\ncontrollerAddr={}\n\
                 syncBrokerMetadataPeriod=300\nbrokerHeartbeatInterval=300\n\
                 controllerHeartBeatTimeoutMills={}\nregisterBrokerIntervalMs=500\n\
                 haSendHeartbeatInterval=500\nhaMaxTimeSlaveNotCatchup=3000\n\
                 mapedFileSizeCommitLog={}\nmaxHashSlotNum=5000\nmaxIndexNum=20000\n\
                 brokerIP1=127.0.0.1\nlistenAddr=127.0.0.1\n{}\n",
                self.controllers
                    .iter()
                    .enumerate()
                    .map(|(j, a)| s.dial(&format!("broker{i}"), &format!("controller{j}"), a))
                    .collect::<Vec<_>>()
                    .join(";"),
                s.heartbeat_timeout_ms,
                s.segment,
                s.broker_lines,
            ),
        )?;
        let args = broker_args(&conf, &self.namesrv, port, &dir.join("store"));
        let mut b = BrokerNode {
            proc: None,
            addr: format!("127.0.0.1:{port}"),
            args,
            dir,
            starts: 0,
        };
        b.start(&self.spec).await?;
        self.brokers.push(b);
        Ok(())
    }

    /// The leader's address (one of `controllers`): every node is asked
    /// at once (a stopped node does not hold up the others); a node that
    /// says it leads wins once another names it too (a deposed leader cut
    /// off from the others may still say it leads).
    pub async fn leader(&self) -> Option<String> {
        let asks = self.controllers.iter().map(|addr| async move {
            let cmd = RemotingCommand::request(rq::CONTROLLER_GET_METADATA_INFO);
            let r = self.client.invoke(addr, cmd, CALL).await.ok()?;
            let h = GetMetaDataResponseHeader::from_ext(&r.ext).ok()?;
            Some((addr.clone(), h))
        });
        let mut asks: futures_util::stream::FuturesUnordered<_> = asks.collect();
        let mut votes = LeaderVotes::default();
        while let Some(answer) = futures_util::StreamExt::next(&mut asks).await {
            if let Some(leader) = answer.and_then(|(addr, h)| votes.add(&addr, &h)) {
                return Some(leader);
            }
        }
        // Unconfirmed: a follower's view is no address to call here.
        votes.finish().filter(|(_, via)| !via).map(|(a, _)| a)
    }

    /// What the controller leader and the name server say now (fields
    /// left empty when a request fails); the three requests run at once,
    /// each answer's arrival time kept.
    pub async fn view(&self, topic: &str) -> View {
        let mut v = View::default();
        let leader = self.leader().await;
        let leader = leader.as_deref();
        let info = async {
            let h = GetReplicaInfoRequestHeader {
                broker_name: BROKER.into(),
            };
            let mut cmd = RemotingCommand::request(rq::CONTROLLER_GET_REPLICA_INFO);
            cmd.ext = h.to_ext();
            let r = self.client.invoke(leader?, cmd, CALL).await.ok()?;
            (r.code == rs::SUCCESS).then(|| (r, Instant::now()))
        };
        let live = async {
            let cmd = RemotingCommand::request(rq::CONTROLLER_GET_SYNC_STATE_DATA)
                .with_body(format!("[\"{BROKER}\"]").into_bytes());
            let r = self.client.invoke(leader?, cmd, CALL).await.ok()?;
            (r.code == rs::SUCCESS).then(|| (r, Instant::now()))
        };
        let ns = self.namesrv.split(';').next().unwrap_or_default();
        let routed = async { Some((route(&self.client, ns, topic).await.ok()??, Instant::now())) };
        let (info, live, routed) = tokio::join!(info, live, routed);
        if let Some((r, at)) = info {
            let h = GetReplicaInfoResponseHeader::from_ext(&r.ext).unwrap_or_default();
            let body: SyncStateSetBody = from_fastjson(&r.body_bytes()).unwrap_or_default();
            v.master = h.master_broker_id;
            v.epoch = h.master_epoch.unwrap_or_default();
            v.sync_state_set = body.sync_state_set;
            v.master_seen = Some(at);
        }
        if let Some((r, at)) = live {
            let info: BrokerReplicasInfo = from_fastjson(&r.body_bytes()).unwrap_or_default();
            v.alive = info
                .replicas_info_table
                .values()
                .flat_map(|s| s.in_sync_replicas.iter().chain(&s.not_in_sync_replicas))
                .filter(|r| r.alive)
                .map(|r| r.broker_id)
                .collect();
            v.alive_seen = Some(at);
        }
        if let Some((rd, at)) = routed {
            v.routed = rd
                .broker_datas
                .iter()
                .find(|b| b.broker_name == BROKER)
                .and_then(|b| b.master_addr().map(str::to_owned));
            v.routed_seen = Some(at);
        }
        v
    }

    /// Polls [`Cluster::view`] of [`TOPIC`] until `ok`.
    async fn wait(
        &self,
        within: Duration,
        what: &str,
        ok: impl Fn(&View) -> bool,
    ) -> BenchResult<View> {
        let deadline = Instant::now() + within;
        loop {
            let v = self.view(TOPIC).await;
            if ok(&v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(format!("no {what} within {within:?}: {v:?}\n{}", self.logs()).into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Controller id → broker index, of the brokers that have an id.
    pub fn ids(&self) -> BTreeMap<i64, usize> {
        self.brokers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some((b.id()?, i)))
            .collect()
    }

    /// The address of the broker with controller id `id`.
    pub fn addr_of(&self, id: i64) -> Option<String> {
        let i = *self.ids().get(&id)?;
        Some(self.brokers[i].addr.clone())
    }

    /// Waits until every broker runs and is alive at the controller, one
    /// is master, (with `wait_in_sync`) all are in the SyncStateSet, and,
    /// with a `load`, the master is routed as id 0 for its topic and the
    /// load got `acks` more acknowledgements. Returns the master's id.
    pub async fn ready(&mut self, load: Option<&Load>, acks: u64) -> BenchResult<i64> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let acked = || load.map_or(0, Load::acked);
        let from = acked();
        let topic = load.map_or(TOPIC, |l| l.topic.as_str());
        loop {
            let running = self
                .brokers
                .iter_mut()
                .all(|b| b.proc.as_mut().is_some_and(|p| p.is_running()));
            let ids = self.ids();
            let all: BTreeSet<i64> = ids.keys().copied().collect();
            let v = self.view(topic).await;
            let master_ok = v.master.is_some_and(|m| {
                load.is_none() || (v.routed.is_some() && v.routed == self.addr_of(m))
            });
            if running
                && ids.len() == self.brokers.len()
                && v.alive == all
                && master_ok
                && (!self.spec.wait_in_sync || v.sync_state_set == all)
                && acked() >= from + acks
            {
                return Ok(v.master.unwrap_or_default());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "group not ready in 60 s (running {running}, ids {ids:?}, acks {} of {acks}, \
                     last send error {:?}): {v:?}\n{}",
                    acked() - from,
                    load.and_then(Load::last_error),
                    self.logs()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One round: `kill -9` of the master, the phases timed, the killed
    /// broker restarted, and the group ready again (the rejoin time).
    pub async fn round(&mut self, n: usize, load: &Load) -> BenchResult<Round> {
        let old = self.ready(Some(load), 50).await?;
        let ids = self.ids();
        let idx = *ids
            .get(&old)
            .ok_or("the master is not one of the brokers")?;
        let t0 = Instant::now();
        // Frozen, its connections stay open: only the heartbeat timeout
        // tells the controller.
        let mut frozen = match self.brokers[idx].proc.take() {
            Some(p) if self.spec.freeze => {
                p.signal(libc::SIGSTOP);
                Some(p)
            }
            Some(p) => {
                p.kill9();
                None
            }
            None => None,
        };
        let (mut detection, mut election, mut route, mut first_send) = (None, None, None, None);
        let (mut new, mut restarted) = (None, None);
        let deadline = t0 + Duration::from_secs(30);
        while first_send.is_none() || restarted.is_none() {
            if restarted.is_none() && route.is_some() {
                // The killed broker comes back once the switch is done: a
                // group of two has no SyncStateSet peer for the new master
                // until it does.
                if let Some(p) = frozen.take() {
                    p.kill9();
                }
                let spec = self.spec.clone();
                self.brokers[idx].start(&spec).await?;
                restarted = Some(Instant::now());
                continue;
            }
            let v = self.view(&load.topic).await;
            let since = |at: Option<Instant>| at.map(|t| t - t0).unwrap_or_else(|| t0.elapsed());
            if detection.is_none() && !v.alive.is_empty() && !v.alive.contains(&old) {
                detection = Some(since(v.alive_seen));
            }
            if let Some(m) = v.master.filter(|m| *m != old) {
                election.get_or_insert(since(v.master_seen));
                detection.get_or_insert(since(v.master_seen));
                new = Some(m);
            }
            if let Some(m) = new {
                if route.is_none() && v.routed.is_some() && v.routed == self.addr_of(m) {
                    route = Some(since(v.routed_seen));
                }
            }
            if first_send.is_none() {
                first_send = load.first_ack_after(t0).map(|t| t - t0);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "round {n}: after kill -9 of master {old}: detection {detection:?}, \
                     election {election:?}, route {route:?}, first send {first_send:?} \
                     (last send error {:?}); {v:?}\n{}",
                    load.last_error(),
                    self.logs()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t1 = restarted.unwrap_or_else(Instant::now);
        self.ready(Some(load), 0).await?;
        Ok(Round {
            n,
            old,
            new: new.unwrap_or_default(),
            // Whoever elected knew the old master dead.
            detection: detection
                .unwrap_or_default()
                .min(election.unwrap_or_default()),
            election: election.unwrap_or_default(),
            route: route.unwrap_or_default(),
            first_send: first_send.unwrap_or_default(),
            rejoin: t1.elapsed(),
        })
    }

    /// `kill -9` of the broker with controller id `id` (if running).
    pub fn kill9_broker(&mut self, id: i64) {
        if let Some(i) = self.ids().get(&id).copied() {
            if let Some(p) = self.brokers[i].proc.take() {
                p.kill9();
            }
        }
    }

    /// Starts the broker with controller id `id` again (same store).
    pub async fn restart_broker(&mut self, id: i64) -> BenchResult<()> {
        let i = *self.ids().get(&id).ok_or("no broker with that id")?;
        let spec = self.spec.clone();
        self.brokers[i].start(&spec).await
    }

    /// SIGSTOP / SIGCONT / SIGKILL of the broker with controller id `id`.
    pub fn signal_broker(&self, id: i64, sig: i32) {
        if let Some(p) = self
            .ids()
            .get(&id)
            .and_then(|i| self.brokers[*i].proc.as_ref())
        {
            p.signal(sig);
        }
    }

    /// `kill -9` of controller node `i` (an index into `controllers`;
    /// standalone controllers only).
    pub fn kill9_controller(&mut self, i: usize) {
        self.servers[i].0.signal(libc::SIGKILL);
    }

    /// SIGSTOP / SIGCONT / SIGKILL of controller node `i`.
    pub fn signal_controller(&self, i: usize, sig: i32) {
        self.servers[i].0.signal(sig);
    }

    /// Starts controller node `i` again on its config and store (its
    /// log goes to a new file).
    pub async fn restart_controller(&mut self, i: usize) -> BenchResult<()> {
        let sub = if self.spec.embedded {
            "namesrv"
        } else {
            "controller"
        };
        let conf = self.spec.dir.join(format!("controller{i}.conf"));
        let log = self.spec.dir.join(format!("controller{i}-restarted.log"));
        let args = [sub.to_owned(), "-c".into(), conf.display().to_string()];
        // The old process is reaped when its handle is dropped here.
        self.servers[i] = (
            spawn_exe(&self.spec.exe, &args, &log, &self.spec.log_level)?,
            log,
        );
        wait_port(&self.controllers[i], &self.servers[i].1).await
    }

    /// The current master's address (after [`Cluster::ready`]).
    pub async fn master_addr(&self) -> BenchResult<String> {
        let v = self.view(TOPIC).await;
        v.master
            .and_then(|m| self.addr_of(m))
            .ok_or_else(|| format!("no master: {v:?}").into())
    }

    /// The last lines of every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut logs: Vec<PathBuf> = self.servers.iter().map(|(_, l)| l.clone()).collect();
        logs.extend(self.brokers.iter().map(BrokerNode::log));
        let mut out = String::new();
        for l in logs {
            let text = std::fs::read_to_string(&l).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out.push_str(&format!("--- {}\n", l.display()));
            for line in tail.iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// The topic of the rounds' load.
pub const TOPIC: &str = "FailoverTopic";

/// The phases of one round, from the `kill -9`.
#[derive(Debug, Clone)]
pub struct Round {
    pub n: usize,
    /// Controller ids of the killed and the new master.
    pub old: i64,
    pub new: i64,
    pub detection: Duration,
    pub election: Duration,
    pub route: Duration,
    pub first_send: Duration,
    /// From the restart of the killed broker until the group was ready
    /// again (alive, in the SyncStateSet with `wait_in_sync`).
    pub rejoin: Duration,
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "round {:>2}: master {} -> {}: detection {:.0} ms, election {:.0} ms, route switch {:.0} ms, \
             first send {:.0} ms; restarted broker ready in {:.0} ms",
            self.n,
            self.old,
            self.new,
            ms(self.detection),
            ms(self.election),
            ms(self.route),
            ms(self.first_send),
            ms(self.rejoin)
        )
    }
}

/// p50 and max of each phase: (phase, p50, max).
pub fn phase_table(rounds: &[Round]) -> Vec<(&'static str, Duration, Duration)> {
    let phase = |name, f: fn(&Round) -> Duration| {
        let mut v: Vec<Duration> = rounds.iter().map(f).collect();
        v.sort();
        let p50 = v
            .get(v.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or_default();
        (name, p50, v.last().copied().unwrap_or_default())
    };
    vec![
        phase("detection (kill -> controller marks dead)", |r| r.detection),
        phase("election (kill -> new master at controller)", |r| {
            r.election
        }),
        phase(
            "route switch (kill -> new master id 0 at name server)",
            |r| r.route,
        ),
        phase("first acknowledged send issued after the kill", |r| {
            r.first_send
        }),
        phase("restarted broker back (alive, in sync)", |r| r.rejoin),
    ]
}

/// Prints the rounds' phase table.
pub fn print_phases(rounds: &[Round]) {
    println!(
        "{:<56} {:>9} {:>9}",
        format!("phase ({} rounds)", rounds.len()),
        "p50 ms",
        "max ms"
    );
    for (name, p50, max) in phase_table(rounds) {
        println!(
            "{name:<56} {:>9.0} {:>9.0}",
            p50.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0
        );
    }
}

/// An acknowledged send (status SEND_OK).
#[derive(Debug, Clone)]
pub struct Ack {
    pub queue: i32,
    pub offset: i64,
    pub msg_id: String,
    pub body: Bytes,
    pub started: Instant,
    pub done: Instant,
}

/// What the load sent.
#[derive(Debug, Default)]
pub struct Sent {
    /// In the order of the acknowledgements per queue.
    pub acked: Vec<Ack>,
    /// Bodies of sends that failed or were answered with another status
    /// (they may or may not be stored).
    pub unacked: Vec<Bytes>,
}

/// A producer under continuous load: one task per queue sending sync,
/// one message at a time, each body unique; no client retries (a failed
/// send is given up and the next one is new), so every stored copy of an
/// acknowledged body beyond one is a duplicate the broker made.
pub struct Load {
    pub topic: String,
    pub queues: i32,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    unacked: Arc<Mutex<Vec<Bytes>>>,
    last_error: Arc<Mutex<Option<String>>>,
    count: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    producer: Producer,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Load {
    /// Creates `topic` with `queues` queues on the master and starts
    /// sending `size`-byte bodies to each queue.
    pub async fn start(namesrv: &str, topic: &str, queues: i32, size: usize) -> BenchResult<Load> {
        // The route can take a few registration intervals on a busy host.
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = prepare_topic(namesrv, topic, queues).await {
            if Instant::now() > deadline {
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut cfg = ProducerConfig::new("failover_producer");
        cfg.retry_times_when_send_failed = 0;
        cfg.send_timeout = Duration::from_secs(3);
        cfg.route_refresh_interval = Duration::from_secs(1);
        let producer = Producer::with_config(cfg, Routes::connect(namesrv));
        let mut load = Load {
            topic: topic.into(),
            queues,
            stop: Arc::default(),
            acks: Arc::default(),
            unacked: Arc::default(),
            last_error: Arc::default(),
            count: Arc::default(),
            tasks: Vec::new(),
            producer,
        };
        for q in 0..queues {
            let task = load.sender(q, size);
            load.tasks.push(tokio::spawn(task));
        }
        Ok(load)
    }

    fn sender(&self, q: i32, size: usize) -> impl std::future::Future<Output = ()> + Send {
        let (stop, acks, unacked) = (self.stop.clone(), self.acks.clone(), self.unacked.clone());
        let (last_error, count, p) = (
            self.last_error.clone(),
            self.count.clone(),
            self.producer.clone(),
        );
        let mq = MessageQueue {
            topic: self.topic.clone(),
            broker_name: BROKER.into(),
            queue_id: q,
        };
        async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Acquire) {
                seq += 1;
                let mut body = format!("q{q}-{seq}-").into_bytes();
                body.resize(size.max(body.len()), b'x');
                let body = Bytes::from(body);
                let started = Instant::now();
                let r = p
                    .send_to_queue(Message::new(&mq.topic, body.clone()), &mq)
                    .await;
                match r {
                    Ok(r) if r.status == SendStatus::SendOk => {
                        lock(&acks).push(Ack {
                            queue: q,
                            offset: r.queue_offset,
                            msg_id: r.msg_id,
                            body,
                            started,
                            done: Instant::now(),
                        });
                        count.fetch_add(1, Ordering::Release);
                    }
                    other => {
                        *lock(&last_error) = Some(match other {
                            Ok(r) => format!("status {:?}", r.status),
                            Err(e) => e.to_string(),
                        });
                        lock(&unacked).push(body);
                        // Fetch the route again: the master may have moved.
                        p.routes().broker_failed(BROKER);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    }

    /// Acknowledged sends so far.
    pub fn acked(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Sends that failed or were not SEND_OK so far.
    pub fn failed(&self) -> usize {
        lock(&self.unacked).len()
    }

    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// When the first send issued at or after `t` was acknowledged.
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        let acks = lock(&self.acks);
        acks.iter()
            .rev()
            .take_while(|a| a.done >= t)
            .filter(|a| a.started >= t)
            .map(|a| a.done)
            .min()
    }

    /// What was sent so far (the senders go on).
    pub fn sent(&self) -> Sent {
        Sent {
            acked: lock(&self.acks).clone(),
            unacked: lock(&self.unacked).clone(),
        }
    }

    /// Stops the senders (each finishes its send in flight).
    pub async fn stop(mut self) -> Sent {
        self.stop.store(true, Ordering::Release);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.producer.shutdown().await;
        Sent {
            acked: std::mem::take(&mut *lock(&self.acks)),
            unacked: std::mem::take(&mut *lock(&self.unacked)),
        }
    }
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub acked: usize,
    pub stored: usize,
    /// Acknowledged, not stored.
    pub missing: Vec<String>,
    /// Acknowledged and stored, but not at the acknowledged queue offset
    /// (or with another message id).
    pub misplaced: Vec<String>,
    /// Acknowledged and stored more than once.
    pub duplicated: Vec<String>,
    /// Acknowledged offsets of a queue not increasing in send order.
    pub out_of_order: Vec<String>,
    /// Not acknowledged but stored (a send whose answer was lost).
    pub unacked_stored: usize,
    /// Not acknowledged and stored more than once.
    pub unacked_duplicated: usize,
    /// Consume-queue positions whose record names another queue offset
    /// (a log and its consume queue out of step; reported, and any
    /// acknowledged message it hides or repeats fails the check).
    pub mismatched: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
            && self.misplaced.is_empty()
            && self.duplicated.is_empty()
            && self.out_of_order.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let few = |v: &Vec<String>| v.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
        write!(
            f,
            "{} acknowledged, {} stored; missing {} [{}], misplaced {} [{}], duplicated {} [{}], \
             out of order {} [{}]; unacknowledged but stored {}, of them duplicated {}; \
             consume-queue positions holding another queue offset {} [{}]",
            self.acked,
            self.stored,
            self.missing.len(),
            few(&self.missing),
            self.misplaced.len(),
            few(&self.misplaced),
            self.duplicated.len(),
            few(&self.duplicated),
            self.out_of_order.len(),
            few(&self.out_of_order),
            self.unacked_stored,
            self.unacked_duplicated,
            self.mismatched.len(),
            few(&self.mismatched)
        )
    }
}

/// Every message of `topic`/`queue` on `broker` from offset 0, each
/// record's body CRC checked; positions whose record carries another queue
/// offset are added to `mismatched`.
async fn read_queue(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    queue: i32,
    mismatched: &mut Vec<String>,
) -> BenchResult<Vec<MessageExt>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..1_000_000 {
        let h = PullMessageRequestHeader {
            consumer_group: "failover_checker".into(),
            topic: topic.into(),
            queue_id: queue,
            queue_offset: offset,
            max_msg_nums: 32,
            sys_flag: 0,
            commit_offset: 0,
            suspend_timeout_millis: 0,
            subscription: None,
            sub_version: 0,
            expression_type: None,
            max_msg_bytes: None,
            request_source: None,
            broker_name: None,
        };
        let mut cmd = RemotingCommand::request(rq::PULL_MESSAGE);
        cmd.ext = h.to_ext();
        let r = c.invoke(broker, cmd, Duration::from_secs(10)).await?;
        let next = PullMessageResponseHeader::from_ext(&r.ext).map(|h| h.next_begin_offset);
        match r.code {
            rs::SUCCESS => {
                let before = out.len();
                let body = r.body_bytes();
                let mut at = 0;
                while at < body.len() {
                    let m = decode_record(&body, at, true)
                        .map_err(|e| format!("queue {queue} near {offset}: record at {at}: {e}"))?;
                    at += m.store_size as usize;
                    out.push(m);
                }
                let next = next?;
                for (i, m) in out[before..].iter().enumerate() {
                    let want = offset + i as i64;
                    if m.queue_offset != want {
                        mismatched.push(format!(
                            "queue {queue} position {want} holds a record of queue offset {} (log offset {})",
                            m.queue_offset, m.commit_log_offset
                        ));
                    }
                }
                if next <= offset {
                    return Err(format!("queue {queue}: no progress at {offset}").into());
                }
                offset = next;
            }
            rs::PULL_NOT_FOUND => return Ok(out),
            rs::PULL_RETRY_IMMEDIATELY | rs::PULL_OFFSET_MOVED => {
                let next = next?;
                if next <= offset {
                    return Ok(out);
                }
                offset = next;
            }
            code => return Err(format!("pull {queue}@{offset}: code {code} {:?}", r.remark).into()),
        }
    }
    Err("the queue does not end".into())
}

/// Reads every queue of `broker` from offset 0 and compares with `sent`:
/// each acknowledged message stored exactly once, at its acknowledged
/// queue offset with its message id, in per-queue order. Tries again for
/// up to `patience` while something is missing (the confirm offset may
/// trail a little).
pub async fn check(
    broker: &str,
    topic: &str,
    queues: i32,
    sent: &Sent,
    patience: Duration,
) -> BenchResult<Verdict> {
    let c = client();
    let deadline = Instant::now() + patience;
    loop {
        let mut stored: HashMap<i32, Vec<MessageExt>> = HashMap::new();
        let mut mismatched = Vec::new();
        for q in 0..queues {
            stored.insert(q, read_queue(&c, broker, topic, q, &mut mismatched).await?);
        }
        let mut v = compare(&stored, sent);
        v.mismatched = mismatched;
        if v.missing.is_empty() || Instant::now() > deadline {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn compare(stored: &HashMap<i32, Vec<MessageExt>>, sent: &Sent) -> Verdict {
    // Body → where each copy is: (queue, queue offset, commit-log offset).
    let mut copies: HashMap<&[u8], Vec<(i32, i64, i64)>> = HashMap::new();
    let mut at: HashMap<(i32, i64), &MessageExt> = HashMap::new();
    for (q, msgs) in stored {
        for m in msgs {
            copies
                .entry(&m.body[..])
                .or_default()
                .push((*q, m.queue_offset, m.commit_log_offset));
            at.insert((*q, m.queue_offset), m);
        }
    }
    let count = |b: &[u8]| copies.get(b).map_or(0, Vec::len);
    let mut v = Verdict {
        acked: sent.acked.len(),
        stored: stored.values().map(Vec::len).sum(),
        ..Verdict::default()
    };
    let mut last: HashMap<i32, i64> = HashMap::new();
    for a in &sent.acked {
        let name = format!(
            "{} (queue {} offset {} id {})",
            String::from_utf8_lossy(&a.body[..a.body.len().min(24)]).trim_end_matches('x'),
            a.queue,
            a.offset,
            a.msg_id
        );
        match count(&a.body) {
            0 => v.missing.push(name.clone()),
            1 => {}
            _ => v.duplicated.push(format!(
                "{name} stored at (queue, queue offset, log offset) {:?}",
                copies[&a.body[..]]
            )),
        }
        let here = at.get(&(a.queue, a.offset));
        let same = here.is_some_and(|m| {
            m.body == a.body && m.property(keys::UNIQ_KEY) == Some(a.msg_id.as_str())
        });
        if !same && copies.contains_key(&a.body[..]) {
            v.misplaced.push(name.clone());
        }
        if let Some(prev) = last.insert(a.queue, a.offset) {
            if a.offset <= prev {
                v.out_of_order.push(format!("{name} after offset {prev}"));
            }
        }
    }
    for b in &sent.unacked {
        match count(b) {
            0 => {}
            1 => v.unacked_stored += 1,
            _ => {
                v.unacked_stored += 1;
                v.unacked_duplicated += 1;
            }
        }
    }
    v
}

#[derive(clap::Args, Debug, Clone)]
pub struct FailoverBench {
    /// Failover rounds (kill -9 of the master, restart).
    #[arg(short = 'r', long, default_value_t = 20)]
    pub rounds: usize,
    /// Controllers inside the name server (`enableControllerInNamesrv`).
    #[arg(long)]
    pub embedded: bool,
    /// Controller nodes (default 3; 1 with --embedded).
    #[arg(long)]
    pub controllers: Option<usize>,
    /// Brokers of the group.
    #[arg(long, default_value_t = 2)]
    pub brokers: usize,
    /// SIGSTOP the master instead of kill -9: the controller learns of it
    /// by the heartbeat timeout (3 s), not by the closed connection.
    #[arg(long)]
    pub freeze: bool,
    /// Body size of the throughput rows.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Sends in flight in the throughput rows.
    #[arg(short = 'w', long, default_value_t = 64)]
    pub window: usize,
    /// Seconds per throughput row (0: no throughput rows).
    #[arg(short = 'd', long, default_value_t = 10)]
    pub duration: u64,
    /// Where the processes keep their stores (deleted after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs the bench: the throughput rows (controller mode, then classic
/// SYNC_MASTER and ASYNC_MASTER), then the rounds under load.
pub async fn run_failover(a: &FailoverBench) -> BenchResult<()> {
    let root = a.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("actormq-bench-failover-{}", std::process::id()))
    });
    let r = bench(&root, a).await;
    let _ = std::fs::remove_dir_all(&root);
    r
}

fn spec(root: &Path, a: &FailoverBench, name: &str, segment: u64) -> BenchResult<Spec> {
    let mut s = Spec::new(std::env::current_exe()?, root.join(name), a.embedded);
    s.brokers = a.brokers.max(2);
    if let Some(n) = a.controllers {
        s.controllers = n.max(1);
    }
    s.segment = segment;
    s.freeze = a.freeze;
    Ok(s)
}

async fn bench(root: &Path, a: &FailoverBench) -> BenchResult<()> {
    let mut rows = Vec::new();
    if a.duration > 0 {
        let ra = ReplicationBench {
            duration: a.duration,
            size: a.size,
            window: a.window,
            rate: Vec::new(),
            catchup_mib: 0,
            dir: None,
            json: None,
        };
        let mut cluster = Cluster::start(spec(root, a, "throughput", SEGMENT)?).await?;
        // A slave joins the SyncStateSet once it acknowledged something.
        let warm = Load::start(&cluster.namesrv, TOPIC, 1, 64).await?;
        cluster.ready(Some(&warm), 10).await?;
        warm.stop().await;
        let mut ctl = super::produce::run_produce(&produce_args(
            &cluster.namesrv,
            "BenchFailoverThroughput",
            &ra,
        ))
        .await?;
        drop(cluster);
        ctl.name = "controller mode, allAckInSyncStateSet".into();
        ctl.notes.push_str(&format!(
            ", group of {} in controller mode",
            a.brokers.max(2)
        ));
        let sync = throughput_row(&root.join("sync"), "SYNC_MASTER", &ra).await?;
        let asy = throughput_row(&root.join("async"), "ASYNC_MASTER", &ra).await?;
        for base in [&sync, &asy] {
            ctl.notes.push_str(&format!(
                "; {:.0} % of {} msg/s, p99 x{:.2}",
                100.0 * ctl.msgs_per_sec / base.msgs_per_sec.max(1e-9),
                base.name.trim_start_matches("replication "),
                ctl.p99_ms / base.p99_ms.max(1e-9)
            ));
        }
        rows = vec![ctl, sync, asy];
        let _ = std::fs::remove_dir_all(root.join("throughput"));
    }
    let mut cluster = Cluster::start(spec(root, a, "rounds", 4 << 20)?).await?;
    let load = Load::start(&cluster.namesrv, TOPIC, 4, 256).await?;
    let mut rounds = Vec::new();
    for n in 1..=a.rounds {
        let r = cluster.round(n, &load).await?;
        println!("{r}");
        rounds.push(r);
    }
    cluster.ready(Some(&load), 50).await?;
    let sent = load.stop().await;
    let master = cluster.master_addr().await?;
    let verdict = check(&master, TOPIC, 4, &sent, Duration::from_secs(10)).await?;
    println!();
    print_phases(&rounds);
    println!();
    println!("checker: {verdict}");
    if !rows.is_empty() {
        println!();
        print_table(&rows, None);
        if let Some(p) = &a.json {
            write_json(p, &rows)?;
        }
    }
    if !verdict.ok() {
        return Err(format!("acknowledged messages lost or misplaced: {verdict}").into());
    }
    Ok(())
}
