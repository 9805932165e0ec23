//! Recovery failure modes RocketMQ users reported against the controller
//! mode (issue #13; /work/shared/docs/protocol-controller.md §10), as
//! black-box tests on the harness of `actormq::bench::failover` (three
//! standalone controllers, one name server, a group in controller mode
//! with `allAckInSyncStateSet=true`, `enableElectUncleanMaster=false`,
//! heartbeat timeout 3 s, a producer under load remembering every
//! acknowledged send, the checker reading every queue from offset 0):
//!
//! * #6609 / #6703 — a master `kill -9`ed with records past its confirm
//!   offset (its slaves SIGSTOPped, so nobody acknowledged them): restarted,
//!   it shows consumers nothing past the confirm offset it recovered
//!   (GET_MAX_OFFSET and pulls), and once it follows the new master its
//!   log and consume queues lose that tail and match the others.
//! * PR #9942 — one master and three slaves that lag in turn (SIGSTOP),
//!   with nothing written, the master killed: every broker, the old
//!   master back as a slave, ends with the same gap-free epoch list.
//! * #6344 / #6342 / #7219 — the master's own SyncStateSet (and its epoch)
//!   equals the controller's after each shrink and expand of repeated
//!   `kill -9` / SIGSTOP cycles of the slaves (the SIGSTOP ones leave
//!   only through the periodic check, which must stay alive), and a
//!   re-election of the same master while records past its confirm offset
//!   wait rolls no queue offset back.
//!
//! The tests run one at a time (each starts seven or eight processes);
//! every child is killed when the cluster is dropped.

mod common;
mod controller_support;
mod failover_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use actormq::bench::failover::{check, Cluster, Load, Sent, Spec, View, BROKER, TOPIC};
use actormq::client::remoting::RemotingClient;
use actormq::wire::codes::{request as rq, response as rs};
use actormq::wire::headers::offset::{OffsetResponseHeader, QueueRequestHeader};
use actormq::wire::headers::CommandHeader;
use actormq::wire::RemotingCommand;
use controller_support::{epoch_entries, replica_info};
use failover_support::{
    brokers_agree, check_on, spec, start_with, steady, stop_until_deposed_and_back, wait_view,
    QUEUES, SERIAL,
};

/// Waits for `what` through the view; panics with the logs after `within`.
async fn expect_view(
    cl: &Cluster,
    within: Duration,
    what: &str,
    ok: impl Fn(&View) -> bool,
) -> View {
    let (done, v) = wait_view(cl, within, ok).await;
    assert!(done, "{what} not within {within:?}: {v:?}\n{}", cl.logs());
    v
}

/// The other brokers' ids.
fn others(cl: &Cluster, id: i64) -> Vec<i64> {
    cl.ids().keys().copied().filter(|i| *i != id).collect()
}

/// GET_MAX_OFFSET of `queue` of the test topic on `addr`.
async fn max_offset(c: &RemotingClient, addr: &str, queue: i32) -> Result<i64, String> {
    let h = QueueRequestHeader {
        topic: TOPIC.into(),
        queue_id: queue,
        committed: None,
    };
    let mut cmd = RemotingCommand::request(rq::GET_MAX_OFFSET);
    cmd.ext = h.to_ext();
    let r = c
        .invoke(addr, cmd, Duration::from_secs(3))
        .await
        .map_err(|e| e.to_string())?;
    if r.code != rs::SUCCESS {
        return Err(format!("code {} {:?}", r.code, r.remark));
    }
    OffsetResponseHeader::from_ext(&r.ext)
        .map(|h| h.offset)
        .map_err(|e| e.to_string())
}

/// GET_MAX_OFFSET of every queue on `addr`, once it answers (10 s).
async fn max_offsets(c: &RemotingClient, addr: &str) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut out = Vec::new();
        for q in 0..QUEUES {
            match max_offset(c, addr, q).await {
                Ok(m) => out.push(m),
                Err(e) if Instant::now() > deadline => panic!("GET_MAX_OFFSET on {addr}: {e}"),
                Err(_) => break,
            }
        }
        if out.len() == QUEUES as usize {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Per queue, one past the highest acknowledged queue offset.
fn acked_ends(sent: &Sent) -> Vec<i64> {
    let mut ends = vec![0; QUEUES as usize];
    for a in &sent.acked {
        let e = &mut ends[a.queue as usize];
        *e = (*e).max(a.offset + 1);
    }
    ends
}

/// A well-formed epoch list: epochs rising, each entry starting where the
/// one before ends (no gap, no overlap), the last one open.
fn well_formed(list: &[(i64, i64, i64)]) -> Result<(), String> {
    if list.is_empty() {
        return Err("empty".into());
    }
    for w in list.windows(2) {
        let ((e0, s0, end0), (e1, s1, _)) = (w[0], w[1]);
        if e1 <= e0 || end0 != s1 || s1 < s0 {
            return Err(format!("entries {:?} then {:?}", w[0], w[1]));
        }
    }
    match list.last() {
        Some((_, _, end)) if *end == i64::MAX => Ok(()),
        last => Err(format!("last entry not open: {last:?}")),
    }
}

/// Every broker's epoch list well formed and the same, their logs at the
/// same end, within 15 s; the list.
async fn epoch_lists_agree(cl: &Cluster) -> Vec<(i64, i64, i64)> {
    let (list, _) = brokers_agree(cl, Duration::from_secs(15), |c, a| async move {
        epoch_entries(&c, &a).await
    })
    .await
    .unwrap_or_else(|e| panic!("epoch lists differ after 15 s: {e}\n{}", cl.logs()));
    if let Err(e) = well_formed(&list) {
        panic!("epoch list {list:?}: {e}");
    }
    list
}

/// The master's own SyncStateSet and its epoch, from GET_BROKER_HA_STATUS.
async fn local_set(c: &RemotingClient, addr: &str) -> Option<(BTreeSet<i64>, i32)> {
    let r = c
        .invoke(
            addr,
            RemotingCommand::request(actormq::actors::ha::status::GET_BROKER_HA_STATUS),
            Duration::from_secs(3),
        )
        .await
        .ok()?;
    let info: actormq::actors::ha::status::HaRuntimeInfo =
        serde_json::from_slice(&r.body_bytes()).ok()?;
    Some((
        info.sync_state_set?.into_iter().collect(),
        info.sync_state_set_epoch?,
    ))
}

/// Waits until the master's own SyncStateSet is `want` at the controller's
/// SyncStateSet epoch (#6342: the two never differ at one epoch); the
/// epoch.
async fn sets_agree(cl: &Cluster, master: i64, want: &BTreeSet<i64>) -> i32 {
    let c = common::client();
    let addr = cl.addr_of(master).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let local = local_set(&c, &addr).await;
        let remote = match cl.leader().await {
            Some(l) => {
                let (code, h, body) = replica_info(&c, &l, BROKER).await;
                (code == rs::SUCCESS && h.master_broker_id == Some(master))
                    .then_some((body.sync_state_set, body.sync_state_set_epoch))
            }
            None => None,
        };
        if let (Some(l), Some(r)) = (&local, &remote) {
            if l == r && l.0 == *want {
                return l.1;
            }
        }
        if Instant::now() > deadline {
            panic!(
                "master {master}'s SyncStateSet {local:?} vs the controller's {remote:?}, \
                 want {want:?}\n{}",
                cl.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops the load and checks the master against every acknowledged send
/// (`check_on`), and that no consume-queue position of it names another
/// record, no unacknowledged send is stored twice; what was sent.
async fn stop_and_check_strictly(cl: &Cluster, load: Load) -> Sent {
    let sent = load.stop().await;
    let master = cl.master_addr().await.unwrap();
    let v = check_on(cl, &master, &sent).await;
    assert!(
        v.mismatched.is_empty() && v.unacked_duplicated == 0,
        "the master's queues and log disagree: {v}"
    );
    sent
}

/// The harness's group of `brokers`; `lines` added to every broker.conf.
fn group(dir: &tempfile::TempDir, brokers: usize, lines: &str) -> Spec {
    let mut s = spec(dir);
    s.brokers = brokers;
    s.broker_lines.push_str(lines);
    s
}

/// Waits until every broker answers the same GET_MAX_OFFSET per queue.
async fn max_offsets_agree(cl: &Cluster) -> Vec<i64> {
    brokers_agree(cl, Duration::from_secs(15), |c, a| async move {
        let mut ends = Vec::new();
        for q in 0..QUEUES {
            ends.push(max_offset(&c, &a, q).await.ok()?);
        }
        Some(ends)
    })
    .await
    .unwrap_or_else(|e| panic!("queue ends differ: {e}"))
}

/// #6609 / #6703: the slaves SIGSTOPped, the master appends records no
/// slave acknowledges (past its confirm offset) and is `kill -9`ed, then
/// the slaves. Restarted alone, the old master shows consumers the
/// acknowledged messages and nothing else: GET_MAX_OFFSET of every queue
/// is one past its last acknowledged offset, pulls return every
/// acknowledged message and no unconfirmed record. The slaves restarted,
/// one of them is master; the old master follows it and cuts the
/// unconfirmed tail from its log and consume queues: its queues read like
/// the master's (each acknowledged message once at its offset, no
/// position naming another record), the cut records are on no broker, and
/// every queue ends at the same offset on all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_past_its_confirm_offset_shows_and_keeps_nothing_unconfirmed() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Slaves answer pulls: the old master is read while it is one.
    let (mut cl, load, old) = start_with(group(&dir, 3, "slaveReadEnable=true\n")).await;
    let c = common::client();
    let old_addr = cl.addr_of(old).unwrap();
    let slaves = others(&cl, old);
    for s in &slaves {
        cl.signal_broker(*s, libc::SIGSTOP);
    }
    // Each sender's next record reaches the master's log only. Well below
    // haMaxTimeSlaveNotCatchup (3 s): the SyncStateSet stays whole.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let end_before = epoch_entries(&c, &old_addr).await.map(|e| e.1);
    cl.kill9_broker(old);
    // The controller elected a slave at once (alive until the heartbeat
    // timeout); now the slaves go too, with whatever of the tail their
    // socket buffers held: the old master alone has the unconfirmed
    // records.
    for s in &slaves {
        cl.kill9_broker(*s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = load.sent();
    assert!(
        !before.unacked.is_empty(),
        "no send was left unacknowledged while the slaves were stopped"
    );

    cl.restart_broker(old)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ends = max_offsets(&c, &old_addr).await;
    // The unconfirmed records are in its log, only not shown.
    let end_after = epoch_entries(&c, &old_addr).await.map(|e| e.1);
    eprintln!("old master's log end at the kill {end_before:?}, after the restart {end_after:?}");
    assert!(end_before.is_some() && end_after == end_before);
    let verdict = check(&old_addr, TOPIC, QUEUES, &before, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("reading {old_addr}: {e}\n{}", cl.logs()));
    eprintln!("restarted old master: queue ends {ends:?}; {verdict}");
    assert!(
        verdict.ok() && verdict.mismatched.is_empty(),
        "the restarted old master lost or misplaced acknowledged messages: {verdict}"
    );
    assert_eq!(
        verdict.unacked_stored, 0,
        "the restarted old master shows records past its confirm offset"
    );
    assert_eq!(
        ends,
        acked_ends(&before),
        "GET_MAX_OFFSET of the restarted old master is not the acknowledged end"
    );

    for s in &slaves {
        cl.restart_broker(*s)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let master = cl
        .ready(Some(&load), 50)
        .await
        .unwrap_or_else(|e| panic!("after the restarts: {e}"));
    assert_ne!(
        master, old,
        "the old master was elected with an unconfirmed tail"
    );
    let sent = stop_and_check_strictly(&cl, load).await;
    let ends = max_offsets_agree(&cl).await;
    eprintln!("queue ends on every broker: {ends:?}");
    let v = check(&old_addr, TOPIC, QUEUES, &sent, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("reading {old_addr}: {e}"));
    eprintln!("checker on the old master: {v}");
    assert!(
        v.ok() && v.mismatched.is_empty(),
        "the old master's queues do not match its log: {v}"
    );
    // The records past the confirm offset: cut from the old master (a
    // slave may have stored one the moment it was stopped; then every
    // broker has it).
    let cut = Sent {
        acked: Vec::new(),
        unacked: before.unacked.clone(),
    };
    let mut kept = Vec::new();
    for id in cl.ids().keys() {
        let addr = cl.addr_of(*id).unwrap();
        let v = check(&addr, TOPIC, QUEUES, &cut, Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("reading {addr}: {e}"));
        kept.push(v.unacked_stored);
    }
    eprintln!(
        "of {} sends unacknowledged before the kill, stored per broker: {kept:?}",
        cut.unacked.len()
    );
    assert!(
        kept.iter().all(|k| *k == kept[0]) && kept[0] < cut.unacked.len(),
        "the unconfirmed tail was not cut everywhere: {kept:?} of {}",
        cut.unacked.len()
    );
    epoch_lists_agree(&cl).await;
}

/// PR #9942: one master and three slaves, nothing written; each slave in
/// turn stops (SIGSTOP past haMaxTimeSlaveNotCatchup: the master's
/// periodic check drops it from the SyncStateSet) and resumes (it rejoins);
/// then two stay stopped and the master is `kill -9`ed: the one in-sync
/// slave is elected. Restarted and resumed, all four follow it: every
/// epoch list the same and gap-free, every broker in the SyncStateSet;
/// then under load, nothing acknowledged lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_slaves_and_a_killed_master_keep_one_epoch_list() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cl = Cluster::start(group(&dir, 4, "checkSyncStateSetPeriod=500\n"))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let old = cl.ready(None, 0).await.unwrap_or_else(|e| panic!("{e}"));
    let all: BTreeSet<i64> = cl.ids().keys().copied().collect();
    let slaves = others(&cl, old);
    assert_eq!(slaves.len(), 3);
    let without = |gone: &[i64]| -> BTreeSet<i64> {
        all.iter().copied().filter(|i| !gone.contains(i)).collect()
    };
    for s in &slaves {
        cl.signal_broker(*s, libc::SIGSTOP);
        let set = without(&[*s]);
        expect_view(&cl, Duration::from_secs(10), "a shrink", |v| {
            v.sync_state_set == set
        })
        .await;
        cl.signal_broker(*s, libc::SIGCONT);
        expect_view(&cl, Duration::from_secs(10), "the rejoin", |v| {
            v.sync_state_set == all && v.alive == all
        })
        .await;
    }
    let (stay, delayed) = (slaves[0], &slaves[1..]);
    for s in delayed {
        cl.signal_broker(*s, libc::SIGSTOP);
    }
    let set = without(delayed);
    expect_view(&cl, Duration::from_secs(10), "the shrink to two", |v| {
        v.sync_state_set == set
    })
    .await;
    let e0 = cl.view(TOPIC).await.epoch;
    cl.kill9_broker(old);
    let v = expect_view(&cl, Duration::from_secs(10), "a new master", |v| {
        v.master.is_some_and(|m| m != old)
    })
    .await;
    assert_eq!(v.master, Some(stay), "not the in-sync slave: {v:?}");
    assert!(v.epoch > e0);
    cl.restart_broker(old)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for s in delayed {
        cl.signal_broker(*s, libc::SIGCONT);
    }
    let master = cl
        .ready(None, 0)
        .await
        .unwrap_or_else(|e| panic!("after the failover: {e}"));
    assert_eq!(master, stay);
    let epochs = epoch_lists_agree(&cl).await;
    eprintln!("epoch lists after the failover: {epochs:?}");

    let load = Load::start(&cl.namesrv, TOPIC, QUEUES, 256)
        .await
        .unwrap_or_else(|e| panic!("topic: {e}\n{}", cl.logs()));
    cl.ready(Some(&load), 100)
        .await
        .unwrap_or_else(|e| panic!("under load: {e}"));
    stop_and_check_strictly(&cl, load).await;
    let epochs = epoch_lists_agree(&cl).await;
    eprintln!("epoch lists under load: {epochs:?}");
    max_offsets_agree(&cl).await;
}

/// #6342 / #7219 / #6344. Six cycles alternate the two slaves and two
/// ways out: `kill -9` (the connection closes) and SIGSTOP (only the
/// master's periodic check can drop it). After each shrink and each
/// expand the master's own SyncStateSet and its epoch equal the
/// controller's, and sends go on. Then the same master is elected again
/// while records past its confirm offset wait: the slaves and then the
/// master SIGSTOPped past the heartbeat timeout (no candidate), the
/// master SIGCONTed (elected again, same process, new epoch); no queue
/// end moves back, new sends take offsets above every record written
/// before, the slaves follow, and the checker finds each acknowledged
/// message once at its offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_state_set_cycles_and_a_re_election_keep_sets_and_queue_offsets() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cl, load, master) = start_with(group(&dir, 3, "checkSyncStateSetPeriod=500\n")).await;
    let c = common::client();
    let all: BTreeSet<i64> = cl.ids().keys().copied().collect();
    let slaves = others(&cl, master);
    let mut epoch = sets_agree(&cl, master, &all).await;
    for round in 0..6 {
        let s = slaves[round % 2];
        // The last one a SIGSTOP: the periodic check outlived the others.
        let stop = [false, false, true, true, false, true][round];
        let t0 = Instant::now();
        if stop {
            cl.signal_broker(s, libc::SIGSTOP);
        } else {
            cl.kill9_broker(s);
        }
        let set: BTreeSet<i64> = all.iter().copied().filter(|i| *i != s).collect();
        let shrunk = sets_agree(&cl, master, &set).await;
        let left = t0.elapsed();
        if stop {
            cl.signal_broker(s, libc::SIGCONT);
        } else {
            cl.restart_broker(s).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let grown = sets_agree(&cl, master, &all).await;
        eprintln!(
            "round {round}: broker {s} {} — left after {left:?} (SyncStateSet epoch {epoch} -> \
             {shrunk} -> {grown})",
            if stop { "SIGSTOP" } else { "kill -9" }
        );
        assert!(
            epoch < shrunk && shrunk < grown,
            "SyncStateSet epochs not rising"
        );
        epoch = grown;
        steady(&load, 50).await;
    }

    // The same master elected again with records past its confirm offset.
    let addr = cl.addr_of(master).unwrap();
    for s in &slaves {
        cl.signal_broker(*s, libc::SIGSTOP);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let e1 = cl.view(TOPIC).await.epoch;
    let before = max_offsets(&c, &addr).await;
    let sent_before = load.sent();
    let v = stop_until_deposed_and_back(&cl, master, e1).await;
    eprintln!(
        "master {master} elected again at epoch {} (was {e1})",
        v.epoch
    );
    let t = Instant::now();
    let deadline = t + Duration::from_secs(15);
    while load.first_ack_after(t).is_none() {
        assert!(
            Instant::now() < deadline,
            "no send acknowledged after the re-election: {:?}",
            load.last_error()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = max_offsets(&c, &addr).await;
    let written = acked_ends(&sent_before);
    for q in 0..QUEUES as usize {
        assert!(
            after[q] >= before[q] && after[q] > written[q],
            "queue {q} ended at {} before and {} after the re-election ({} acknowledged)",
            before[q],
            after[q],
            written[q]
        );
    }
    let sent = load.sent();
    let first_new = sent.acked.iter().filter(|a| a.started >= t);
    for a in first_new {
        assert!(
            a.offset > written[a.queue as usize],
            "queue {} offset {} handed out again after the re-election",
            a.queue,
            a.offset
        );
    }
    for s in &slaves {
        cl.signal_broker(*s, libc::SIGCONT);
    }
    let now = cl
        .ready(Some(&load), 50)
        .await
        .unwrap_or_else(|e| panic!("after the re-election: {e}"));
    assert_eq!(now, master);
    sets_agree(&cl, master, &all).await;
    stop_and_check_strictly(&cl, load).await;
    epoch_lists_agree(&cl).await;
    max_offsets_agree(&cl).await;
}
