//! AutoSwitch HA end to end (issue #13, tests 1 and 3): a controller, a
//! name server and a broker group of three in controller mode with
//! `allAckInSyncStateSet=true` and clean elections only
//! (`enableElectUncleanMaster=false`), all child processes.
//!
//! * `kill9_of_the_master_loses_no_acknowledged_message`: the SyncStateSet
//!   grows to all three; a producer sends continuously; `kill -9` of the
//!   master; a new master within 10 s (detection, election and route
//!   switch timed separately); sends resume; every acknowledged message is
//!   read back from the new master exactly once (every queue from offset
//!   0); the killed master restarted joins as a slave, cuts what it had
//!   that the others lack, and the three commit logs are byte-identical.
//! * `a_stopped_master_never_acknowledges_what_the_new_master_lacks`: the
//!   master is SIGSTOPped longer than the heartbeat timeout while a
//!   producer sends, then SIGCONTed: every message any broker acknowledged
//!   is on the new master, and the old master becomes a slave.
//! * `a_returning_master_cuts_its_divergent_tail`: records only the master
//!   has (its slaves stopped, then all killed); the slaves come back and
//!   elect one of them; the old master comes back, truncates, and the logs
//!   and epoch lists end up identical.

mod common;
mod controller_support;
mod replication_util;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actormq::client::remoting::RemotingClient;
use actormq::client::{Message, Producer, ProducerConfig, SendStatus};
use actormq::wire::bodies::ClusterInfo;
use actormq::wire::codes::request as rq;
use actormq::wire::codes::response as rs;
use actormq::wire::headers::CommandHeader;
use actormq::wire::json::from_fastjson;
use actormq::wire::RemotingCommand;
use common::{client, create_topic, eventually, pull_all, send_header, ChildServer, Msg};
use controller_support::*;

const TOPIC: &str = "AutoSwitchT";
const QUEUES: i32 = 4;
const BROKER: &str = "broker-a";

/// The brokers' settings on top of `BrokerNode`'s.
const BROKER_CONF: &str = "syncBrokerMetadataPeriod=500\nallAckInSyncStateSet=true\n\
    checkSyncStateSetPeriod=500\nhaMaxTimeSlaveNotCatchup=3000\nhaSendHeartbeatInterval=1000\n\
    haHousekeepingInterval=3000\nsyncFlushTimeout=3000\nmapedFileSizeCommitLog=262144\n\
    defaultTopicQueueNums=4";

type Node = BrokerNode;

fn node(dir: &Path, i: usize, ns: &str, controllers: &str) -> Node {
    BrokerNode::new(dir, i, ns, controllers, BROKER_CONF)
}

/// Everything of one test: killed on drop, logs printed on failure.
struct Cluster {
    g: Group,
    _ns: ChildServer,
    ns: String,
    ctl: String,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(c: &RemotingClient) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let (g, ctl, ns_proc, ns) = controller_and_namesrv(c, dir.path()).await;
        let controllers = g.addrs.join(";");
        let first = node(dir.path(), 0, &ns, &controllers);
        wait_master(&g, c, BROKER, 1, 1, Duration::from_secs(20)).await;
        let mut nodes = vec![first];
        for i in 1..3 {
            nodes.push(node(dir.path(), i, &ns, &controllers));
        }
        Cluster {
            g,
            _ns: ns_proc,
            ns,
            ctl,
            nodes,
            _dir: dir,
        }
    }

    fn logs(&self) -> String {
        let mut s = self.g.logs();
        for n in &self.nodes {
            s.push_str(&n.logs());
        }
        s
    }

    /// (master id, master epoch, SyncStateSet) at the controller.
    async fn state(&self, c: &RemotingClient) -> (Option<i64>, i32, BTreeSet<i64>) {
        let (_, h, b) = replica_info(c, &self.ctl, BROKER).await;
        (
            h.master_broker_id,
            h.master_epoch.unwrap_or(0),
            b.sync_state_set,
        )
    }

    fn node_of(&self, id: i64) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id() == Some(id))
            .expect("a node with that id")
    }

    /// Waits for the SyncStateSet {1, 2, 3}; returns (master id, epoch).
    async fn wait_full_set(&self, c: &RemotingClient, within: Duration) -> (i64, i32) {
        let full: BTreeSet<i64> = [1, 2, 3].into();
        let r = eventually(within, || async {
            let (m, e, set) = self.state(c).await;
            (set == full).then_some((m?, e))
        })
        .await;
        match r {
            Some(r) => r,
            None => panic!(
                "SyncStateSet never {{1,2,3}}: {:?}\n{}",
                self.state(c).await,
                self.logs()
            ),
        }
    }
}

impl Cluster {
    /// Up with the SyncStateSet {1,2,3}, the topic made on the master and
    /// `senders` producers that got `acks` acknowledgements: (cluster,
    /// master id, master epoch, load).
    async fn under_load(
        c: &RemotingClient,
        senders: usize,
        acks: usize,
    ) -> (Cluster, i64, i32, Load) {
        let cl = Cluster::start(c).await;
        let (master, epoch) = cl.wait_full_set(c, Duration::from_secs(30)).await;
        eprintln!("SyncStateSet {{1,2,3}}, master {master} at epoch {epoch}");
        create_topic(c, &cl.nodes[cl.node_of(master)].addr, TOPIC, QUEUES).await;
        let load = Load::start(&cl.ns, senders);
        assert!(
            load.wait_acked(acks, Duration::from_secs(60)).await,
            "no steady sends: {} acked\n{}",
            load.acked(),
            cl.logs()
        );
        (cl, master, epoch, load)
    }

    /// Waits until every node has node `ni`'s log end and epoch list, then
    /// checks the commit logs are byte-identical: (end, epochs).
    async fn converged(&self, c: &RemotingClient, ni: usize) -> (i64, Vec<(i64, i64)>) {
        let end = wait_same_end(c, &self.nodes, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("logs never converged\n{}", self.logs()));
        let want = same_epochs(c, &self.nodes, ni)
            .await
            .unwrap_or_else(|| panic!("epoch lists differ\n{}", self.logs()));
        let reference = replication_util::log_bytes(&self.nodes[ni].store, end);
        for n in &self.nodes {
            assert!(
                replication_util::log_bytes(&n.store, end) == reference,
                "commit log of {} differs from {}'s below {end}",
                n.addr,
                self.nodes[ni].addr
            );
        }
        (end, want)
    }
}

async fn routes(c: &RemotingClient, ns: &str) -> HashMap<i64, String> {
    let Ok(r) = c
        .invoke(
            ns,
            RemotingCommand::request(rq::GET_BROKER_CLUSTER_INFO),
            CALL,
        )
        .await
    else {
        return HashMap::new();
    };
    let info: ClusterInfo = from_fastjson(&r.body_bytes()).unwrap_or_default();
    info.broker_addr_table
        .get(BROKER)
        .map(|b| b.broker_addrs.clone().into_iter().collect())
        .unwrap_or_default()
}

/// Producers sending unique bodies; the acknowledged (SEND_OK) ones kept.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    failed: Arc<Mutex<usize>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(ns: &str, senders: usize) -> Load {
        let mut cfg = ProducerConfig::new("autoswitch_pg");
        // One attempt per body: a body is acknowledged once or not at all.
        cfg.retry_times_when_send_failed = 0;
        cfg.send_timeout = Duration::from_secs(4);
        cfg.route_refresh_interval = Duration::from_millis(200);
        let p = Producer::with_config(cfg, actormq::client::route::Routes::connect(ns));
        let (stop, acked, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(Mutex::new(0usize)),
        );
        let tasks = (0..senders)
            .map(|t| {
                let (p, stop, acked, failed) =
                    (p.clone(), stop.clone(), acked.clone(), failed.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let body = format!("m-{t}-{i}");
                        i += 1;
                        match p.send(Message::new(TOPIC, body.clone())).await {
                            Ok(r) if r.status == SendStatus::SendOk => {
                                acked.lock().unwrap().push(body)
                            }
                            _ => {
                                *failed.lock().unwrap() += 1;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            acked,
            failed,
            tasks,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn wait_acked(&self, n: usize, within: Duration) -> bool {
        eventually(within, || async { (self.acked() >= n).then_some(()) })
            .await
            .is_some()
    }

    async fn stop(self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let failed = *self.failed.lock().unwrap();
        (
            Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap(),
            failed,
        )
    }
}

/// Every message of the topic on `broker`, each queue from offset 0.
async fn read_all(c: &RemotingClient, broker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for q in 0..QUEUES {
        for m in pull_all(c, broker, TOPIC, q).await {
            out.push(String::from_utf8_lossy(&m.body).into_owned());
        }
    }
    out
}

/// Checks that every acknowledged body is on `broker` exactly once (the
/// confirm offset may lag a moment behind: read until it covers them).
async fn check_acked(c: &RemotingClient, broker: &str, acked: &[String]) -> usize {
    check_acked_in(c, broker, acked, None).await
}

async fn check_acked_in(
    c: &RemotingClient,
    broker: &str,
    acked: &[String],
    store: Option<&Path>,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut last, mut ok) = (Vec::new(), None);
    while ok.is_none() && Instant::now() < deadline {
        last = read_all(c, broker).await;
        let have: BTreeSet<&String> = last.iter().collect();
        if acked.iter().all(|a| have.contains(a)) {
            ok = Some(());
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for b in &last {
        *counts.entry(b).or_default() += 1;
    }
    let missing: Vec<&String> = acked.iter().filter(|a| !counts.contains_key(a)).collect();
    if let (Some(store), Some(m)) = (store, missing.first()) {
        let log = replication_util::log_bytes(store, i64::MAX);
        let needle = m.as_bytes();
        let found = log.windows(needle.len()).position(|w| w == needle);
        eprintln!(
            "missing {m}: in the new master's commit log at {found:?} (log {} bytes)",
            log.len()
        );
        for q in 0..QUEUES {
            let got = pull_all(c, broker, TOPIC, q).await;
            eprintln!("queue {q}: {} messages", got.len());
        }
    }
    assert!(
        ok.is_some() && missing.is_empty(),
        "{} acknowledged messages missing on the new master, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let dup: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "messages stored twice: {dup:?}");
    last.len()
}

/// Waits until all nodes report the same log end; returns it.
async fn wait_same_end(c: &RemotingClient, nodes: &[Node], within: Duration) -> Option<i64> {
    eventually(within, || async {
        let mut ends = BTreeSet::new();
        for n in nodes {
            ends.insert(epoch_cache(c, &n.addr).await?.1);
        }
        (ends.len() == 1).then(|| *ends.first().unwrap())
    })
    .await
}

/// Waits until every node has the epoch list of node `reference` (a slave
/// records an epoch with the first frame of it, a heartbeat at the
/// latest); returns it.
async fn same_epochs(
    c: &RemotingClient,
    nodes: &[Node],
    reference: usize,
) -> Option<Vec<(i64, i64)>> {
    eventually(Duration::from_secs(10), || async {
        let want = epoch_cache(c, &nodes[reference].addr).await?.0;
        for n in nodes {
            if epoch_cache(c, &n.addr).await?.0 != want {
                return None;
            }
        }
        Some(want)
    })
    .await
}

fn truncations(n: &Node) -> usize {
    n.count_in_logs("truncating the divergent tail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_master_loses_no_acknowledged_message() {
    let c = client();
    let (mut cl, master, epoch, load) = Cluster::under_load(&c, 3, 300).await;
    let mi = cl.node_of(master);

    // kill -9 of the master; detection, election and route switch timed.
    let before_kill = load.acked();
    let old_addr = cl.nodes[mi].addr.clone();
    let t0 = Instant::now();
    cl.nodes[mi].proc.take().unwrap().kill9();
    let (mut detected, mut elected, mut routed) = (None, None, None);
    let mut new_master = None;
    while t0.elapsed() < Duration::from_secs(15) && routed.is_none() {
        let (m, e, _) = cl.state(&c).await;
        if detected.is_none() && (m != Some(master) || e > epoch) {
            detected = Some(t0.elapsed());
        }
        if let (Some(m), None) = (m, elected) {
            if m != master && e > epoch {
                elected = Some(t0.elapsed());
                new_master = Some(m);
            }
        }
        if let Some(nm) = new_master {
            let addr = &cl.nodes[cl.node_of(nm)].addr;
            if routes(&c, &cl.ns).await.get(&0) == Some(addr) {
                routed = Some(t0.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "kill -9 of the master: detected {detected:?}, elected {elected:?}, routes switched {routed:?}"
    );
    let (Some(new_master), Some(took)) = (new_master, routed) else {
        panic!("no new master routed within 15 s\n{}", cl.logs());
    };
    assert!(took < Duration::from_secs(10), "failover took {took:?}");
    let ni = cl.node_of(new_master);
    let new_addr = cl.nodes[ni].addr.clone();
    assert_ne!(new_addr, old_addr);

    // Sends resume on the new master.
    let resumed = load
        .wait_acked(before_kill + 300, Duration::from_secs(30))
        .await;
    assert!(
        resumed,
        "sends did not resume: {} acked\n{}",
        load.acked(),
        cl.logs()
    );
    let (acked, failed) = load.stop().await;
    eprintln!(
        "{} sends acknowledged, {failed} failed or timed out",
        acked.len()
    );
    if std::env::var("AUTOSWITCH_DEBUG").is_ok() {
        let log = std::fs::read_to_string(cl.nodes[ni].log()).unwrap_or_default();
        for l in log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("AutoSwitch"))
        {
            eprintln!("NEW {l}");
        }
    }
    let stored = check_acked_in(&c, &new_addr, &acked, Some(&cl.nodes[ni].store)).await;
    eprintln!("every acknowledged message read once from the new master ({stored} stored)");

    // The old master comes back as a slave and cuts its divergent tail.
    cl.nodes[mi].start();
    let back = eventually(Duration::from_secs(30), || async {
        let (m, _, set) = cl.state(&c).await;
        (m == Some(new_master) && set.contains(&master)).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "the old master did not rejoin the SyncStateSet: {:?}\n{}",
        cl.state(&c).await,
        cl.logs()
    );
    let (end, want) = cl.converged(&c, ni).await;
    eprintln!(
        "old master rejoined as slave (truncations: {}), logs byte-identical up to {end}, epochs {want:?}",
        truncations(&cl.nodes[mi])
    );
}

/// Sends unique bodies straight to `addr` (not through the routes) until
/// stopped; returns the acknowledged (SUCCESS) ones.
fn direct_sender(addr: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let c = client();
        let mut acked = Vec::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let body = format!("d-{i}");
            i += 1;
            let m = Msg::new(body.clone());
            let mut cmd = RemotingCommand::request(rq::SEND_MESSAGE_V2).with_body(m.body.clone());
            cmd.ext = send_header(TOPIC, (i % QUEUES as u64) as i32, &m.properties(), false)
                .to_v2()
                .to_ext();
            match c.invoke(&addr, cmd, Duration::from_secs(4)).await {
                Ok(r) if r.code == rs::SUCCESS => acked.push(body),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        acked
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_master_never_acknowledges_what_the_new_master_lacks() {
    let c = client();
    let (cl, master, epoch, load) = Cluster::under_load(&c, 3, 200).await;
    let mi = cl.node_of(master);
    // Besides the producer (which follows the routes), one sender keeps
    // writing to the old master itself, through the stop and after it.
    let stop_direct = Arc::new(AtomicBool::new(false));
    let direct = direct_sender(cl.nodes[mi].addr.clone(), stop_direct.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = cl.nodes[mi].pid();
    replication_util::signal(pid, libc::SIGSTOP);
    let t0 = Instant::now();
    let elected = eventually(Duration::from_secs(15), || async {
        let (m, e, _) = cl.state(&c).await;
        m.filter(|m| *m != master && e > epoch)
    })
    .await;
    let election = t0.elapsed();
    // Longer than the heartbeat timeout (3 s) in any case.
    let stopped_for = Duration::from_secs(6);
    if t0.elapsed() < stopped_for {
        tokio::time::sleep(stopped_for - t0.elapsed()).await;
    }
    replication_util::signal(pid, libc::SIGCONT);
    let Some(new_master) = elected else {
        panic!("no new master while the old one was stopped\n{}", cl.logs());
    };
    eprintln!("master {master} stopped; {new_master} elected after {election:?}");
    let before = load.acked();
    assert!(
        load.wait_acked(before + 200, Duration::from_secs(30)).await,
        "sends did not resume\n{}",
        cl.logs()
    );
    // The old master becomes a slave: its controller id at the name server.
    let old_addr = cl.nodes[mi].addr.clone();
    let demoted = eventually(Duration::from_secs(20), || async {
        let r = routes(&c, &cl.ns).await;
        (r.get(&master) == Some(&old_addr) && r.get(&0) != Some(&old_addr)).then_some(())
    })
    .await;
    assert!(
        demoted.is_some(),
        "the old master is not a slave: {:?}\n{}",
        routes(&c, &cl.ns).await,
        cl.logs()
    );
    // The direct sender goes on a moment against the demoted broker.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_direct.store(true, Ordering::Relaxed);
    let direct_acked = direct.await.unwrap();
    let (mut acked, failed) = load.stop().await;
    eprintln!(
        "{} sends acknowledged through the routes ({failed} failed or timed out), {} straight by the old master",
        acked.len(),
        direct_acked.len()
    );
    acked.extend(direct_acked);
    let new_addr = cl.nodes[cl.node_of(new_master)].addr.clone();
    let ni = cl.node_of(new_master);
    let stored = check_acked_in(&c, &new_addr, &acked, Some(&cl.nodes[ni].store)).await;
    eprintln!(
        "every acknowledged message is on the new master ({stored} stored); old master truncations: {}",
        truncations(&cl.nodes[mi])
    );
}

/// A divergent tail for sure: the slaves are stopped, the master appends
/// records nobody copies (their sends time out, unacknowledged), then all
/// three die. The slaves come back first and one becomes master of a new
/// epoch; the old master restarted cuts those records (handshake
/// truncation) and the logs end up byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_master_cuts_its_divergent_tail() {
    let c = client();
    let (mut cl, master, epoch, load) = Cluster::under_load(&c, 2, 100).await;
    let mi = cl.node_of(master);
    let (acked, _) = load.stop().await;
    let slaves: Vec<usize> = (0..3).filter(|i| *i != mi).collect();
    for &s in &slaves {
        replication_util::signal(cl.nodes[s].pid(), libc::SIGSTOP);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let direct = direct_sender(cl.nodes[mi].addr.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let end_before = epoch_cache(&c, &cl.nodes[mi].addr).await.unwrap().1;
    for i in 0..3 {
        cl.nodes[i].proc.take().unwrap().kill9();
    }
    stop.store(true, Ordering::Relaxed);
    let lost = direct.await.unwrap();
    assert!(
        lost.is_empty(),
        "acknowledged while no slave copied: {lost:?}"
    );
    for &s in &slaves {
        cl.nodes[s].start();
    }
    let new_master = eventually(Duration::from_secs(30), || async {
        let (m, e, _) = cl.state(&c).await;
        m.filter(|m| *m != master && e > epoch)
    })
    .await;
    let Some(new_master) = new_master else {
        panic!(
            "no master among the slaves: {:?}\n{}",
            cl.state(&c).await,
            cl.logs()
        );
    };
    let ni = cl.node_of(new_master);
    cl.nodes[mi].start();
    let (end, want) = cl.converged(&c, ni).await;
    let cuts = truncations(&cl.nodes[mi]);
    assert!(
        cuts >= 1,
        "the old master (end {end_before}) cut nothing\n{}",
        cl.logs()
    );
    check_acked(&c, &cl.nodes[ni].addr, &acked).await;
    eprintln!(
        "old master ended at {end_before}, cut its tail ({cuts} truncation), logs identical up to {end}, epochs {want:?}"
    );
}
