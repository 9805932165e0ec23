//! Network partitions against the controller mode (issue #13; RocketMQ
//! failure modes of /work/shared/docs/protocol-controller.md §10), on the
//! harness of `actormq::bench::failover`: three standalone controllers,
//! one name server, a group of three brokers in controller mode
//! (`allAckInSyncStateSet=true`, `enableElectUncleanMaster=false`,
//! heartbeat timeout 3 s), a producer under load, and the checker (every
//! acknowledged message once on the final master, at its queue offset).
//!
//! There are no network namespaces here: links are cut with TCP relays
//! (`tests/relay`). Each controller dials its peers, each broker its
//! controllers, and the slaves a master's HA port at a relay's address
//! (`Spec::dial`; the HA one through `brokerIP2`), so a test cuts single
//! directed links; a cut is silent (connections stay open, nothing passes),
//! as in a real partition. The name server and the producer are not
//! relayed: the test process reaches every broker.
//!
//! * #7017 — the master and one follower controller (or the leader)
//!   isolated from the rest: the majority elects another master, the old
//!   one is fenced (it refuses writes after the heartbeat timeout) and,
//!   healed, rejoins as a slave with nothing acknowledged lost.
//! * #10812 — the brokers cannot reach the controller leader, only the
//!   followers: the followers forward their requests and heartbeats, the
//!   leader keeps every broker alive, sends go on, and a master killed
//!   meanwhile is replaced.
//! * #5712 — after a controller-leader switch a stopped (SIGSTOP) master is
//!   still found dead by the heartbeat timeout and replaced.
//! * #5929 — a stopped follower controller (it accepts connections and
//!   never answers) holds up neither the master's contact with the leader
//!   (no fencing, no failed send) nor a failover.
//!
//! The tests run one at a time (each starts seven processes); every child
//! is killed when the cluster is dropped, also on a failed assertion.

mod common;
mod controller_support;
mod failover_support;
mod relay;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actormq::bench::failover::{check, Ack, Cluster, Dial, Load, Sent, Spec, TOPIC};
use actormq::client::remoting::RemotingClient;
use actormq::wire::codes::{request as rq, response as rs};
use actormq::wire::headers::send::SendMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use actormq::wire::RemotingCommand;
use bytes::Bytes;
use common::{send_header, Msg};
use failover_support::{
    epoch_lists_equal, first_send_after, leader_index, more_acks, never, spec, start, start_with,
    stop_and_check, wait_view, QUEUES,
};
use relay::{Mode, Net};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `controllerHeartBeatTimeoutMills` of the harness.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

/// The harness's group with every controller↔controller and
/// broker→controller link through a relay of `net`.
fn relayed(dir: &tempfile::TempDir, net: &Arc<Net>) -> Spec {
    let mut s = spec(dir);
    let net = net.clone();
    s.dial = Some(Dial(Arc::new(move |from, to, addr| {
        net.dial(from, to, addr)
    })));
    s
}

fn names(kind: &str, idx: impl IntoIterator<Item = usize>) -> Vec<String> {
    idx.into_iter().map(|i| format!("{kind}{i}")).collect()
}

/// The broker index (process name `broker{i}`) of controller id `id`.
fn broker_index(cl: &Cluster, id: i64) -> usize {
    *cl.ids().get(&id).expect("a broker with that id")
}

/// `kill -9` of the master `old`: another within 10 s, and a send issued
/// after the kill acknowledged within 15 s (`what`: the situation).
async fn kill_master_and_fail_over(cl: &mut Cluster, load: &Load, old: i64, what: &str) {
    let t1 = Instant::now();
    cl.kill9_broker(old);
    let (ok, v) = wait_view(cl, Duration::from_secs(10), |v| {
        v.master.is_some_and(|m| m != old)
    })
    .await;
    assert!(
        ok,
        "no new master within 10 s of the kill ({what}): {v:?}\n{}",
        cl.logs()
    );
    eprintln!(
        "new master {:?} after {:?} ({what})",
        v.master,
        t1.elapsed()
    );
    first_send_after(cl, load, t1, Duration::from_secs(15)).await;
}

/// The killed broker `old` restarted; once the group is ready again, the
/// checker on the master.
async fn rejoin_and_check(mut cl: Cluster, load: Load, old: i64) {
    cl.restart_broker(old)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cl.ready(Some(&load), 50)
        .await
        .unwrap_or_else(|e| panic!("after the restart: {e}"));
    stop_and_check(&cl, load).await;
}

/// What one send straight to a broker's address came to.
struct Direct {
    started: Instant,
    done: Instant,
    /// SEND_OK: (queue, queue offset, body).
    acked: Option<(i32, i64, Bytes)>,
    /// Refused because the master lost the controller (fenced).
    fenced: bool,
}

/// Sends unique bodies straight to `addr` (not through the routes), one
/// at a time, until stopped.
fn direct_sender(addr: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Direct>> {
    tokio::spawn(async move {
        let c = RemotingClient::new(Default::default());
        let mut out = Vec::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let queue = (i % QUEUES as u64) as i32;
            let mut body = format!("direct-{i}-").into_bytes();
            body.resize(256, b'x');
            let m = Msg::new(body.clone());
            let mut cmd = RemotingCommand::request(rq::SEND_MESSAGE_V2).with_body(m.body.clone());
            cmd.ext = send_header(TOPIC, queue, &m.properties(), false)
                .to_v2()
                .to_ext();
            let started = Instant::now();
            let r = c.invoke(&addr, cmd, Duration::from_secs(1)).await;
            let mut d = Direct {
                started,
                done: Instant::now(),
                acked: None,
                fenced: false,
            };
            match r {
                Ok(r) if r.code == rs::SUCCESS => {
                    let h = SendMessageResponseHeader::from_ext(&r.ext).unwrap();
                    d.acked = Some((queue, h.queue_offset, Bytes::from(body)));
                }
                Ok(r) => {
                    d.fenced = r
                        .remark
                        .as_deref()
                        .is_some_and(|t| t.contains("lost the controller"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            out.push(d);
        }
        out
    })
}

/// #7017: three "data centres"; the master and one follower controller
/// lose every link to the other two controllers and to the slaves (their
/// controller links and the HA link). The majority elects a new master
/// within 10 s; the old master, reaching only a follower (which cannot
/// reach the leader), is fenced: a sender straight to it gets refusals,
/// and nothing it acknowledges completes later than the heartbeat timeout
/// + 2 s after the cut. Healed, the old master rejoins the SyncStateSet as
/// a slave, every epoch list is equal, and every message acknowledged —
/// through the routes or straight by the old master — is on the new master
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_master_with_a_follower_controller_is_fenced_and_loses_nothing() {
    isolated_master(false).await;
}

/// #7017 with the controller *leader* on the master's side: the other two
/// elect another leader and then another master; the old leader, which
/// may still say it leads, cannot commit nor confirm anything, so the
/// master it is the only one to reach is fenced just the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_master_with_the_controller_leader_is_fenced_and_loses_nothing() {
    isolated_master(true).await;
}

/// The master and the leader (`with_leader`) or a follower controller cut
/// off from the rest; see the tests above.
async fn isolated_master(with_leader: bool) {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let net = Net::new();
    let (mut cl, load, old) = start_with(relayed(&dir, &net)).await;
    let li = leader_index(&cl).await;
    let f = match with_leader {
        true => li,
        false => (0..3).find(|i| *i != li).unwrap(),
    };
    let mi = broker_index(&cl, old);
    let mut a = names("broker", [mi]);
    a.extend(names("controller", [f]));
    let mut b = names("broker", (0..3).filter(|i| *i != mi));
    b.extend(names("controller", (0..3).filter(|i| *i != f)));

    let stop = Arc::new(AtomicBool::new(false));
    let direct = direct_sender(cl.addr_of(old).unwrap(), stop.clone());
    assert!(more_acks(&load, 50, Duration::from_secs(10)).await);
    let t0 = Instant::now();
    let cut = net.split(&a, &b, Mode::Blackhole);
    // And the slaves' replication from the master.
    assert!(net.set("slaves", &format!("broker{mi}-ha"), Mode::Blackhole));
    eprintln!("cut {cut} links between {a:?} and {b:?} and the HA link (leader controller{li})");

    let (ok, v) = wait_view(&cl, Duration::from_secs(10), |v| {
        v.master.is_some_and(|m| m != old)
    })
    .await;
    assert!(
        ok,
        "the majority elected no new master within 10 s: {v:?}\n{}",
        cl.logs()
    );
    let new = v.master.unwrap();
    eprintln!("new master {new} after {:?}", t0.elapsed());
    first_send_after(&cl, &load, t0, Duration::from_secs(15)).await;
    // The isolation lasts past the fencing bound.
    let bound = HEARTBEAT_TIMEOUT + Duration::from_secs(2);
    tokio::time::sleep(
        (t0 + bound + Duration::from_secs(2)).saturating_duration_since(Instant::now()),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let direct = direct.await.unwrap();
    let late: Vec<Duration> = direct
        .iter()
        .filter(|d| d.acked.is_some() && d.done > t0 + bound)
        .map(|d| d.done - t0)
        .collect();
    let last_ack = direct
        .iter()
        .filter(|d| d.acked.is_some())
        .map(|d| d.done - t0.min(d.done))
        .max();
    let first_fenced = direct
        .iter()
        .find(|d| d.fenced && d.started >= t0)
        .map(|d| d.started - t0);
    // Sends issued past the bound: every answered one a fenced refusal.
    let after: Vec<&Direct> = direct.iter().filter(|d| d.started > t0 + bound).collect();
    let refused = after.iter().filter(|d| d.fenced).count();
    eprintln!(
        "straight to the old master: {} acknowledged, the last {last_ack:?} after the cut; \
         first send refused as fenced issued {first_fenced:?} after the cut; \
         past {bound:?}: {} sends, {refused} refused as fenced",
        direct.iter().filter(|d| d.acked.is_some()).count(),
        after.len()
    );
    assert!(
        late.is_empty(),
        "the isolated old master acknowledged sends {late:?} after the cut (bound {bound:?})"
    );
    assert!(
        first_fenced.is_some_and(|t| t <= bound) && refused > 0,
        "the isolated old master did not refuse sends as fenced within {bound:?}: {first_fenced:?}\n{}",
        cl.logs()
    );

    net.heal();
    let master = cl
        .ready(Some(&load), 50)
        .await
        .unwrap_or_else(|e| panic!("after healing: {e}"));
    assert_eq!(master, new, "the master changed after healing");
    let epochs = epoch_lists_equal(&cl)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cl.logs()));
    eprintln!("epoch lists: {epochs:?}");
    // What the old master acknowledged straight is on the new master.
    let straight = Sent {
        acked: direct
            .iter()
            .filter_map(|d| {
                let (queue, offset, body) = d.acked.clone()?;
                Some(Ack {
                    queue,
                    offset,
                    msg_id: String::new(),
                    body,
                    started: d.started,
                    done: d.done,
                })
            })
            .collect(),
        unacked: Vec::new(),
    };
    let addr = cl.master_addr().await.unwrap();
    let v = check(&addr, TOPIC, QUEUES, &straight, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("reading {addr}: {e}"));
    assert!(
        v.missing.is_empty() && v.duplicated.is_empty(),
        "messages the old master acknowledged straight: {v}"
    );
    stop_and_check(&cl, load).await;
}

/// #10812: every broker loses its links to the controller leader (the
/// followers stay reachable, and the controllers reach each other). The
/// brokers go through a follower, which forwards their requests and
/// heartbeats: for two heartbeat timeouts the leader keeps every broker
/// alive, the master stays and sends are acknowledged. Then the master is
/// `kill -9`ed: the leader (hearing of it only through the followers)
/// elects another within 10 s and sends resume. The old master,
/// restarted while the links are still cut, rejoins through a follower
/// (registration, role, the new master's ALTER adding it to the
/// SyncStateSet, all forwarded); healed, nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_that_reach_only_followers_keep_the_group_working() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let net = Net::new();
    let (mut cl, load, old) = start_with(relayed(&dir, &net)).await;
    let li = leader_index(&cl).await;
    let brokers = names("broker", 0..3);
    let leader = names("controller", [li]);
    let cut = net.split(&brokers, &leader, Mode::Blackhole);
    let t0 = Instant::now();
    eprintln!("cut {cut} links from the brokers to the leader controller{li}");

    // For two heartbeat timeouts: every broker alive at the leader, the
    // same master (views whose requests failed are skipped).
    let all: BTreeSet<i64> = cl.ids().keys().copied().collect();
    never(
        &cl,
        2 * HEARTBEAT_TIMEOUT,
        "the leader lost a broker it cannot hear directly",
        |v| {
            (v.alive_seen.is_some() && v.alive != all)
                || (v.master_seen.is_some() && v.master != Some(old))
        },
    )
    .await;
    assert_eq!(leader_index(&cl).await, li, "the controller leader changed");
    assert!(
        more_acks(&load, 100, Duration::from_secs(10)).await,
        "sends stalled while the brokers reach only followers (last error {:?})\n{}",
        load.last_error(),
        cl.logs()
    );

    let what = format!("cut {:?} before", t0.elapsed());
    kill_master_and_fail_over(&mut cl, &load, old, &what).await;
    cl.restart_broker(old)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cl.ready(Some(&load), 50)
        .await
        .unwrap_or_else(|e| panic!("rejoining through a follower: {e}"));
    assert_eq!(leader_index(&cl).await, li, "the controller leader changed");
    net.heal();
    cl.ready(Some(&load), 50)
        .await
        .unwrap_or_else(|e| panic!("after healing: {e}"));
    stop_and_check(&cl, load).await;
}

/// #5712: the controller leader `kill -9`ed, another leads; then the
/// master is SIGSTOPped (its connections stay open: only the heartbeat
/// timeout tells). The new leader elects another master within 10 s and
/// sends resume; the old master, resumed, and the killed controller,
/// restarted, rejoin; nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_leader_switch_a_stopped_master_is_still_replaced() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cl, load, old) = start(&dir).await;
    let li = leader_index(&cl).await;
    cl.kill9_controller(li);
    let deadline = Instant::now() + Duration::from_secs(10);
    let next = loop {
        if let Some(l) = cl.leader().await.filter(|l| *l != cl.controllers[li]) {
            break l;
        }
        assert!(Instant::now() < deadline, "no other controller leads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("controller leader now {next}");
    assert!(more_acks(&load, 50, Duration::from_secs(20)).await);

    let t0 = Instant::now();
    cl.signal_broker(old, libc::SIGSTOP);
    let (ok, v) = wait_view(&cl, Duration::from_secs(10), |v| {
        v.master.is_some_and(|m| m != old)
    })
    .await;
    cl.signal_broker(old, libc::SIGCONT);
    assert!(
        ok,
        "the stopped master was not replaced within 10 s: {v:?}\n{}",
        cl.logs()
    );
    let new = v.master.unwrap();
    eprintln!("new master {new} after {:?}", t0.elapsed());
    assert!(
        t0.elapsed() >= HEARTBEAT_TIMEOUT - Duration::from_millis(500),
        "replaced before the heartbeat timeout: not by the timeout"
    );
    first_send_after(&cl, &load, t0, Duration::from_secs(15)).await;

    cl.restart_controller(li)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let master = cl
        .ready(Some(&load), 50)
        .await
        .unwrap_or_else(|e| panic!("after resuming: {e}"));
    assert_eq!(master, new, "the master changed again");
    stop_and_check(&cl, load).await;
}

/// #5929: a follower controller SIGSTOPped — the kernel still accepts
/// connections to it, nothing answers — the one the brokers list first
/// when possible. For two heartbeat timeouts the master keeps reaching the
/// leader: no send fails (a fenced master would refuse them). Then the
/// master is `kill -9`ed: another within 10 s, sends resume; the follower
/// resumed and the old master restarted rejoin; nothing acknowledged is
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_follower_controller_holds_up_neither_fencing_nor_failover() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cl, load, old) = start(&dir).await;
    let li = leader_index(&cl).await;
    let f = (0..3).find(|i| *i != li).unwrap();
    cl.signal_controller(f, libc::SIGSTOP);
    let t0 = Instant::now();
    let failed = load.failed();
    never(&cl, 2 * HEARTBEAT_TIMEOUT, "the master changed", |v| {
        v.master_seen.is_some() && v.master != Some(old)
    })
    .await;
    assert!(
        more_acks(&load, 100, Duration::from_secs(10)).await,
        "sends stalled with controller{f} stopped (last error {:?})\n{}",
        load.last_error(),
        cl.logs()
    );
    assert_eq!(
        load.failed(),
        failed,
        "sends failed with controller{f} stopped: {:?}\n{}",
        load.last_error(),
        cl.logs()
    );
    let what = format!("controller{f} stopped {:?} before", t0.elapsed());
    kill_master_and_fail_over(&mut cl, &load, old, &what).await;
    cl.signal_controller(f, libc::SIGCONT);
    rejoin_and_check(cl, load, old).await;
}
