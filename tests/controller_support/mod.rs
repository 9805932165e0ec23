//! Helpers of the controller tests: a group of controller processes (or
//! name servers embedding one) on fresh ports, and a scripted "broker"
//! that speaks the controller protocol itself (ids, registration,
//! heartbeats, elections, SyncStateSet changes).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actormq::client::remoting::RemotingClient;
use actormq::wire::codes::{request as rq, response as rs};
use actormq::wire::controller::SyncStateSetBody;
use actormq::wire::headers::controller::*;
use actormq::wire::headers::CommandHeader;
use actormq::wire::json::from_fastjson;
use actormq::wire::RemotingCommand;

use crate::common::{eventually, free_port, wait_port, ChildServer};

pub const CALL: Duration = Duration::from_secs(6);
/// The timeout the scripted brokers put in their heartbeats.
pub const HEARTBEAT_TIMEOUT_MS: u64 = 1500;

/// How the nodes run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `actormq controller -c`.
    Standalone,
    /// `actormq namesrv -c` with `enableControllerInNamesrv=true`.
    InNamesrv,
}

/// A group of controller nodes, each a child process; killed on drop.
pub struct Group {
    pub dir: tempfile::TempDir,
    pub mode: Mode,
    /// The address each node serves the controller requests on.
    pub addrs: Vec<String>,
    confs: Vec<PathBuf>,
    pub procs: Vec<Option<ChildServer>>,
    restarts: usize,
}

impl Group {
    pub fn start(n: usize, mode: Mode, extra: &str) -> Group {
        let dir = tempfile::tempdir().unwrap();
        let peer_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let peers: Vec<String> = peer_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("n{i}-127.0.0.1:{p}"))
            .collect();
        let mut addrs = Vec::new();
        let mut confs = Vec::new();
        for (i, peer_port) in peer_ports.iter().enumerate() {
            let mut text = format!(
                "controllerDLegerGroup=test\ncontrollerDLegerPeers={}\ncontrollerDLegerSelfId=n{i}\n\
                 controllerStorePath={}\nscanNotActiveBrokerInterval=300\ncontrollerHeartBeatTimeoutMills=2000\n\
                 controllerRaftHeartbeatMillis=100\n{extra}\n",
                peers.join(";"),
                dir.path().join(format!("n{i}")).display(),
            );
            match mode {
                Mode::Standalone => addrs.push(format!("127.0.0.1:{peer_port}")),
                Mode::InNamesrv => {
                    let port = free_port();
                    text.push_str(&format!(
                        "enableControllerInNamesrv=true\nlistenPort={port}\nkvConfigPath={}\n",
                        dir.path().join(format!("ns{i}/kv.json")).display()
                    ));
                    addrs.push(format!("127.0.0.1:{port}"));
                }
            }
            let conf = dir.path().join(format!("n{i}.conf"));
            std::fs::write(&conf, text).unwrap();
            confs.push(conf);
        }
        let mut g = Group {
            dir,
            mode,
            addrs,
            confs,
            procs: (0..n).map(|_| None).collect(),
            restarts: 0,
        };
        for i in 0..n {
            g.spawn(i);
        }
        for i in 0..n {
            g.wait_up(i);
        }
        g
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}-{}.log", self.restarts))
    }

    pub fn spawn(&mut self, i: usize) {
        self.restarts += 1;
        let conf = self.confs[i].to_str().unwrap().to_owned();
        let sub = match self.mode {
            Mode::Standalone => "controller",
            Mode::InNamesrv => "namesrv",
        };
        let log = self.log(i);
        self.procs[i] = Some(ChildServer::spawn(
            &format!("n{i}"),
            &[sub, "-c", &conf],
            &log,
        ));
    }

    fn wait_up(&mut self, i: usize) {
        if !wait_port(&self.addrs[i], Duration::from_secs(20)) {
            panic!("controller n{i} did not come up:\n{}", self.logs());
        }
    }

    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_up(i);
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            p.kill9();
        }
    }

    pub fn alive(&self) -> Vec<usize> {
        (0..self.addrs.len())
            .filter(|i| self.procs[*i].is_some())
            .collect()
    }

    /// Every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("--- {}\n", e.path().display()));
                for l in tail.iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// The node every running node names as leader (it agreeing), within
    /// `within`.
    pub async fn leader(&self, c: &RemotingClient, within: Duration) -> usize {
        let found = eventually(within, || async {
            let mut named = None;
            for i in self.alive() {
                let m = metadata(c, &self.addrs[i]).await?;
                let leader = m
                    .controller_leader_id
                    .strip_prefix('n')?
                    .parse::<usize>()
                    .ok()?;
                if named.is_some_and(|n| n != leader) || !self.alive().contains(&leader) {
                    return None;
                }
                if (i == leader) != m.is_leader {
                    return None;
                }
                named = Some(leader);
            }
            named
        })
        .await;
        found.unwrap_or_else(|| panic!("no agreed controller leader:\n{}", self.logs()))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill9(i);
        }
    }
}

pub fn store_dir(g: &Group) -> &Path {
    g.dir.path()
}

pub async fn invoke(
    c: &RemotingClient,
    addr: &str,
    code: i32,
    header: &impl CommandHeader,
    body: Option<Vec<u8>>,
) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code);
    cmd.ext = header.to_ext();
    if let Some(b) = body {
        cmd = cmd.with_body(b);
    }
    c.invoke(addr, cmd, CALL)
        .await
        .unwrap_or_else(|e| panic!("request {code} to {addr}: {e}"))
}

pub async fn metadata(c: &RemotingClient, addr: &str) -> Option<GetMetaDataResponseHeader> {
    let r = c
        .invoke(
            addr,
            RemotingCommand::request(rq::CONTROLLER_GET_METADATA_INFO),
            Duration::from_secs(2),
        )
        .await
        .ok()?;
    (r.code == rs::SUCCESS).then(|| GetMetaDataResponseHeader::from_ext(&r.ext).ok())?
}

/// A scripted replica of a broker set.
#[derive(Clone)]
pub struct Replica {
    pub cluster: String,
    pub name: String,
    pub id: i64,
    pub addr: String,
}

impl Replica {
    pub fn check_code(&self) -> String {
        format!("{};1700000000000", self.addr)
    }

    pub async fn next_id(
        c: &RemotingClient,
        ctl: &str,
        cluster: &str,
        name: &str,
    ) -> (i32, Option<i64>) {
        let h = GetNextBrokerIdRequestHeader {
            cluster_name: cluster.into(),
            broker_name: name.into(),
        };
        let r = invoke(c, ctl, rq::CONTROLLER_GET_NEXT_BROKER_ID, &h, None).await;
        let next = GetNextBrokerIdResponseHeader::from_ext(&r.ext)
            .ok()
            .and_then(|h| h.next_broker_id);
        (r.code, next)
    }

    pub async fn apply_id(&self, c: &RemotingClient, ctl: &str, check_code: &str) -> i32 {
        let h = ApplyBrokerIdRequestHeader {
            cluster_name: self.cluster.clone(),
            broker_name: self.name.clone(),
            applied_broker_id: self.id,
            register_check_code: check_code.into(),
        };
        invoke(c, ctl, rq::CONTROLLER_APPLY_BROKER_ID, &h, None)
            .await
            .code
    }

    pub async fn register(&self, c: &RemotingClient, ctl: &str) -> RemotingCommand {
        let h = RegisterBrokerToControllerRequestHeader {
            cluster_name: self.cluster.clone(),
            broker_name: self.name.clone(),
            broker_id: self.id,
            broker_address: self.addr.clone(),
            invoke_time: 0,
        };
        invoke(c, ctl, rq::CONTROLLER_REGISTER_BROKER, &h, None).await
    }

    /// The broker-id handshake: next id, apply it, register.
    pub async fn join(
        c: &RemotingClient,
        ctl: &str,
        cluster: &str,
        name: &str,
        addr: &str,
    ) -> Replica {
        let (code, next) = Replica::next_id(c, ctl, cluster, name).await;
        assert_eq!(code, rs::SUCCESS);
        let r = Replica {
            cluster: cluster.into(),
            name: name.into(),
            id: next.expect("nextBrokerId"),
            addr: addr.into(),
        };
        assert_eq!(r.apply_id(c, ctl, &r.check_code()).await, rs::SUCCESS);
        assert_eq!(r.register(c, ctl).await.code, rs::SUCCESS);
        r
    }

    pub async fn elect(&self, c: &RemotingClient, ctl: &str, designated: bool) -> RemotingCommand {
        let h = ElectMasterRequestHeader {
            cluster_name: self.cluster.clone(),
            broker_name: self.name.clone(),
            broker_id: self.id,
            designate_elect: designated,
            invoke_time: 0,
        };
        invoke(c, ctl, rq::CONTROLLER_ELECT_MASTER, &h, None).await
    }

    /// ALTER_SYNC_STATE_SET from this replica as master.
    pub async fn alter(
        &self,
        c: &RemotingClient,
        ctl: &str,
        master_epoch: i32,
        set: &[i64],
        ss_epoch: i32,
    ) -> RemotingCommand {
        let h = AlterSyncStateSetRequestHeader {
            broker_name: self.name.clone(),
            master_broker_id: self.id,
            master_epoch,
            invoke_time: 0,
        };
        let body = SyncStateSetBody {
            sync_state_set: set.iter().copied().collect(),
            sync_state_set_epoch: ss_epoch,
        };
        invoke(
            c,
            ctl,
            rq::CONTROLLER_ALTER_SYNC_STATE_SET,
            &h,
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    /// Heartbeats to every controller every 200 ms until the returned flag
    /// is cleared.
    pub fn beat(
        &self,
        c: &RemotingClient,
        ctls: &[String],
        epoch: i32,
        max_offset: i64,
    ) -> Arc<AtomicBool> {
        self.beat_with(c, ctls, epoch, max_offset, HEARTBEAT_TIMEOUT_MS)
    }

    /// [`Replica::beat`] with the heartbeat timeout given.
    pub fn beat_with(
        &self,
        c: &RemotingClient,
        ctls: &[String],
        epoch: i32,
        max_offset: i64,
        timeout_ms: u64,
    ) -> Arc<AtomicBool> {
        let on = Arc::new(AtomicBool::new(true));
        let (me, c, ctls, flag) = (self.clone(), c.clone(), ctls.to_vec(), on.clone());
        tokio::spawn(async move {
            while flag.load(Ordering::Relaxed) {
                for ctl in &ctls {
                    let mut cmd = RemotingCommand::request(rq::BROKER_HEARTBEAT);
                    for (k, v) in [
                        ("clusterName", me.cluster.clone()),
                        ("brokerName", me.name.clone()),
                        ("brokerAddr", me.addr.clone()),
                        ("brokerId", me.id.to_string()),
                        ("epoch", epoch.to_string()),
                        ("maxOffset", max_offset.to_string()),
                        ("confirmOffset", max_offset.to_string()),
                        ("heartbeatTimeoutMills", timeout_ms.to_string()),
                    ] {
                        cmd.ext.insert(k, v);
                    }
                    let _ =
                        tokio::time::timeout(Duration::from_millis(300), c.invoke_oneway(ctl, cmd))
                            .await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        on
    }
}

/// GET_REPLICA_INFO: (code, header, SyncStateSet).
pub async fn replica_info(
    c: &RemotingClient,
    ctl: &str,
    name: &str,
) -> (i32, GetReplicaInfoResponseHeader, SyncStateSetBody) {
    let h = GetReplicaInfoRequestHeader {
        broker_name: name.into(),
    };
    let r = invoke(c, ctl, rq::CONTROLLER_GET_REPLICA_INFO, &h, None).await;
    let header = GetReplicaInfoResponseHeader::from_ext(&r.ext).unwrap_or_default();
    let body = from_fastjson(&r.body_bytes()).unwrap_or_default();
    (r.code, header, body)
}

/// Waits until the leader reports `master` at `epoch` for `name`.
pub async fn wait_master(
    g: &Group,
    c: &RemotingClient,
    name: &str,
    master: i64,
    epoch: i32,
    within: Duration,
) -> Duration {
    let t0 = std::time::Instant::now();
    let ok = eventually(within, || async {
        for i in g.alive() {
            let (code, h, _) = replica_info(c, &g.addrs[i], name).await;
            if code == rs::SUCCESS
                && h.master_broker_id == Some(master)
                && h.master_epoch == Some(epoch)
            {
                return Some(());
            }
        }
        None
    })
    .await;
    if ok.is_none() {
        let mut seen = Vec::new();
        for i in g.alive() {
            let (code, h, b) = replica_info(c, &g.addrs[i], name).await;
            seen.push(format!("n{i}: {code} {h:?} {b:?}"));
        }
        panic!(
            "master {master} at epoch {epoch} not seen: {seen:?}\n{}",
            g.logs()
        );
    }
    t0.elapsed()
}

/// A set of two: replica 1 master with SyncStateSet {1, 2}, both beating
/// (each with its own flag) on the connections of `clients`.
pub struct Pair {
    pub a: Replica,
    pub b: Replica,
    pub beat_a: Arc<AtomicBool>,
    pub beat_b: Arc<AtomicBool>,
}

impl Pair {
    pub async fn start(
        g: &Group,
        clients: [&RemotingClient; 2],
        leader: &str,
        timeout_ms: u64,
    ) -> Pair {
        let c = clients[1];
        let a = Replica::join(c, leader, "c", "broker-a", "127.0.0.1:20001").await;
        let b = Replica::join(c, leader, "c", "broker-a", "127.0.0.1:20002").await;
        let beat_a = a.beat_with(clients[0], &g.addrs, 1, 100, timeout_ms);
        let beat_b = b.beat_with(c, &g.addrs, 1, 100, timeout_ms);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(a.elect(c, leader, false).await.code, rs::SUCCESS);
        assert_eq!(a.alter(c, leader, 1, &[1, 2], 1).await.code, rs::SUCCESS);
        Pair {
            a,
            b,
            beat_a,
            beat_b,
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.beat_a.store(false, Ordering::Relaxed);
        self.beat_b.store(false, Ordering::Relaxed);
    }
}

/// One standalone controller with clean elections only
/// (`enableElectUncleanMaster=false`) and a name server (its log in `dir`),
/// as child processes: (controller, its address, name server, its address).
pub async fn controller_and_namesrv(
    c: &RemotingClient,
    dir: &Path,
) -> (Group, String, ChildServer, String) {
    let g = Group::start(1, Mode::Standalone, "enableElectUncleanMaster=false");
    let ctl = g.addrs[g.leader(c, Duration::from_secs(20)).await].clone();
    let ns_port = free_port();
    let ns = format!("127.0.0.1:{ns_port}");
    let ns_proc = ChildServer::spawn(
        "namesrv",
        &["namesrv", "--port", &ns_port.to_string()],
        &dir.join("ns.log"),
    );
    assert!(wait_port(&ns, Duration::from_secs(20)));
    (g, ctl, ns_proc, ns)
}

/// A broker in controller mode as a child process (`actormq broker -c`) of
/// set `broker-a`, cluster `c`, restartable on the same port and store;
/// killed on drop. `extra` lines override the base settings.
pub struct BrokerNode {
    pub proc: Option<ChildServer>,
    pub addr: String,
    args: Vec<String>,
    /// Log files are `<log_base>-<start>.log`.
    log_base: PathBuf,
    pub store: PathBuf,
    pub starts: usize,
}

impl BrokerNode {
    pub fn new(dir: &Path, i: usize, ns: &str, controllers: &str, extra: &str) -> BrokerNode {
        let port = free_port();
        let conf = dir.join(format!("b{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "brokerClusterName=c\nbrokerName=broker-a\nbrokerRole=SLAVE\nbrokerId=-1\nhaListenPort=0\n\
                 enableControllerMode=true\ncontrollerAddr={controllers}\nsyncBrokerMetadataPeriod=300\n\
                 brokerHeartbeatInterval=200\ncontrollerHeartBeatTimeoutMills=3000\nregisterBrokerIntervalMs=500\n\
                 mapedFileSizeCommitLog=1048576\nmaxHashSlotNum=5000\nmaxIndexNum=20000\n\
                 brokerIP1=127.0.0.1\nlistenAddr=127.0.0.1\n{extra}\n"
            ),
        )
        .unwrap();
        let store = dir.join(format!("store{i}"));
        let args = vec![
            "broker".into(),
            "-c".into(),
            conf.to_str().unwrap().into(),
            "-n".into(),
            ns.into(),
            "--port".into(),
            port.to_string(),
            "--store".into(),
            store.to_str().unwrap().into(),
        ];
        let mut n = BrokerNode {
            proc: None,
            addr: format!("127.0.0.1:{port}"),
            args,
            log_base: dir.join(format!("b{i}")),
            store,
            starts: 0,
        };
        n.start();
        n
    }

    /// The log of the current (last) start.
    pub fn log(&self) -> PathBuf {
        PathBuf::from(format!("{}-{}.log", self.log_base.display(), self.starts))
    }

    /// Starts (again) and waits for the port.
    pub fn start(&mut self) {
        self.starts += 1;
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.proc = Some(ChildServer::spawn("broker", &args, &self.log()));
        if !wait_port(&self.addr, Duration::from_secs(20)) {
            panic!("broker did not come up:\n{}", self.logs());
        }
    }

    /// The last lines of every start's log.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|s| {
                let p = format!("{}-{s}.log", self.log_base.display());
                let t = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(60).collect();
                format!(
                    "--- {p} (last lines)\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }

    /// How often every start's log says `what`.
    pub fn count_in_logs(&self, what: &str) -> usize {
        (1..=self.starts)
            .map(|s| {
                std::fs::read_to_string(format!("{}-{s}.log", self.log_base.display()))
                    .unwrap_or_default()
                    .matches(what)
                    .count()
            })
            .sum()
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("running").child.id()
    }

    /// `brokerIdentity`'s text.
    pub fn identity(&self) -> Option<String> {
        std::fs::read_to_string(self.store.join("brokerIdentity")).ok()
    }

    /// The controller id from `brokerIdentity`.
    pub fn id(&self) -> Option<i64> {
        self.identity()?.trim().rsplit('#').next()?.parse().ok()
    }
}

/// GET_BROKER_EPOCH_CACHE of one broker: (epochs (epoch, start), maxOffset).
pub async fn epoch_cache(c: &RemotingClient, addr: &str) -> Option<(Vec<(i64, i64)>, i64)> {
    let (list, max) = epoch_entries(c, addr).await?;
    Some((list.into_iter().map(|(e, s, _)| (e, s)).collect(), max))
}

/// GET_BROKER_EPOCH_CACHE of one broker: (epochs (epoch, start, end),
/// maxOffset).
pub async fn epoch_entries(c: &RemotingClient, addr: &str) -> Option<(Vec<(i64, i64, i64)>, i64)> {
    let r = c
        .invoke(
            addr,
            RemotingCommand::request(rq::GET_BROKER_EPOCH_CACHE),
            CALL,
        )
        .await
        .ok()?;
    let v: serde_json::Value = from_fastjson(&r.body_bytes()).ok()?;
    let list = v["epochList"]
        .as_array()?
        .iter()
        .map(|e| {
            Some((
                e["epoch"].as_i64()?,
                e["startOffset"].as_i64()?,
                e["endOffset"].as_i64()?,
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((list, v["maxOffset"].as_i64()?))
}
