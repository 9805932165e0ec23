//! Failure modes RocketMQ users reported against the controller mode
//! (issue #13; /work/shared/docs/protocol-controller.md §10), each as a
//! black-box test on the harness of `actormq::bench::failover`: three
//! standalone controllers, one name server, a group of three brokers in
//! controller mode (`allAckInSyncStateSet=true`,
//! `enableElectUncleanMaster=false`, heartbeat timeout 3 s, 4 MiB
//! segments), a producer under continuous load remembering every
//! acknowledged send, and the checker reading every queue of the final
//! master from offset 0 (each acknowledged message exactly once, at its
//! acknowledged queue offset).
//!
//! * #7689 — the controller leader and the master `kill -9`ed together.
//! * PR #9897 — both slaves `kill -9`ed together: the SyncStateSet shrinks
//!   and sends are acknowledged again instead of timing out.
//! * #9689 — a re-election that keeps the same master (at a new epoch).
//! * #6316 — a resumed old master registering at its old epoch does not
//!   take id 0 back from the new master at the name server.
//!
//! The tests run one at a time (each starts seven processes); every child
//! is killed when the cluster is dropped, also on a failed assertion.

mod common;
mod controller_support;
mod failover_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use actormq::bench::failover::{BROKER, CLUSTER, TOPIC};
use actormq::wire::codes::{request as rq, response as rs};
use actormq::wire::headers::controller::ElectMasterRequestHeader;
use controller_support::invoke;
use failover_support::*;

/// #7689: the controller leader and the master `kill -9`ed at the same
/// moment under load. Another controller leads, another broker is master
/// within 10 s, sends resume, every acknowledged message is on the new
/// master exactly once; both restarted, the old master rejoins as a slave
/// and every broker has the same epoch list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_controller_leader_and_the_master_together_loses_nothing() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cl, load, old) = start(&dir).await;
    let li = leader_index(&cl).await;
    let leader = cl.controllers[li].clone();

    let t0 = Instant::now();
    cl.kill9_controller(li);
    cl.kill9_broker(old);

    let (ok, v) = wait_view(&cl, Duration::from_secs(10), |v| {
        v.master.is_some_and(|m| m != old)
    })
    .await;
    assert!(
        ok,
        "no new master within 10 s of the kill: {v:?}\n{}",
        cl.logs()
    );
    let new = v.master.unwrap();
    eprintln!("new master {new} after {:?}", t0.elapsed());
    let now_leader = cl.leader().await;
    assert!(
        now_leader.as_ref().is_some_and(|l| *l != leader),
        "no other controller leads: {now_leader:?}"
    );
    // Sends resume on the new master.
    first_send_after(&cl, &load, t0, Duration::from_secs(30)).await;
    assert!(more_acks(&load, 50, Duration::from_secs(20)).await);

    cl.restart_controller(li)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    restart_slaves(&mut cl, &load, &[old], new).await;
    let v = cl.view(TOPIC).await;
    assert!(
        v.sync_state_set.contains(&old) && v.alive.contains(&old),
        "the old master is not back as an in-sync slave: {v:?}"
    );
    let epochs = epoch_lists_equal(&cl)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cl.logs()));
    eprintln!("epoch lists: {epochs:?}");
    stop_and_check(&cl, load).await;
}

/// PR #9897: both slaves `kill -9`ed at once under load. The controller's
/// SyncStateSet of the master shrinks to the master alone, sends are
/// acknowledged again within 10 s (not FLUSH_SLAVE_TIMEOUT for good);
/// the slaves restarted rejoin the set; nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_both_slaves_shrinks_the_sync_state_set_and_sends_go_on() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cl, load, master) = start(&dir).await;
    let t0 = Instant::now();
    let (slaves, _) = kill_slaves(&mut cl, master).await;
    first_send_after(&cl, &load, t0, Duration::from_secs(10)).await;
    // And they keep being acknowledged, without a failure.
    steady(&load, 200).await;

    restart_slaves(&mut cl, &load, &slaves, master).await;
    stop_and_check(&cl, load).await;
}

/// #9689: a re-election that keeps the same master. First `electMaster`
/// designating the current master (the controller answers
/// CONTROLLER_MASTER_STILL_EXIST and changes nothing); then the real
/// case: the slaves gone (SyncStateSet {master}), the master SIGSTOPped
/// past the heartbeat timeout (no candidate: no master), SIGCONTed — it
/// is elected again at a new epoch in the same process. Sends go on at
/// the new epoch without a failure; the slaves restarted follow it (all
/// epoch lists equal, the new epoch in them); nothing acknowledged lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_election_keeping_the_master_moves_everyone_to_the_new_epoch() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cl, load, master) = start(&dir).await;
    let e0 = cl.view(TOPIC).await.epoch;

    // electMaster designating the master it already is.
    let c = common::client();
    let leader = cl.leader().await.expect("a controller leader");
    let h = ElectMasterRequestHeader {
        cluster_name: CLUSTER.into(),
        broker_name: BROKER.into(),
        broker_id: master,
        designate_elect: true,
        invoke_time: 0,
    };
    let r = invoke(&c, &leader, rq::CONTROLLER_ELECT_MASTER, &h, None).await;
    assert!(
        r.code == rs::CONTROLLER_MASTER_STILL_EXIST || r.code == rs::SUCCESS,
        "electMaster of the master: {} {:?}",
        r.code,
        r.remark
    );
    steady(&load, 100).await;
    let v = cl.view(TOPIC).await;
    assert_eq!(v.master, Some(master));

    // The real re-election: the master alone, then away past the timeout.
    let (slaves, v) = kill_slaves(&mut cl, master).await;
    let e1 = v.epoch;
    let v = stop_until_deposed_and_back(&cl, master, e1).await;
    let e2 = v.epoch;
    eprintln!("master {master} again at epoch {e2} (was {e0}, {e1})");
    let addr = cl.addr_of(master);
    let (ok, v) = wait_view(&cl, Duration::from_secs(15), |v| v.routed == addr).await;
    assert!(ok, "the master is not routed: {v:?}");
    // Once one send issued now is acknowledged, none may fail.
    first_send_after(&cl, &load, Instant::now(), Duration::from_secs(15)).await;
    steady(&load, 200).await;

    restart_slaves(&mut cl, &load, &slaves, master).await;
    let epochs = epoch_lists_equal(&cl)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cl.logs()));
    eprintln!("epoch lists: {epochs:?}");
    assert_eq!(
        epochs.last().map(|e| e.0),
        Some(e2 as i64),
        "the epoch lists do not end at the new epoch {e2}"
    );
    stop_and_check(&cl, load).await;
}

/// #6316: the master SIGSTOPped past the heartbeat timeout, a slave
/// elected and routed as id 0, then the old master SIGCONTed. Until its
/// controller poll demotes it, it still registers as master every 500 ms,
/// at its old epoch; the name server keeps id 0 for the registration with
/// the higher `stateVersion` (master epoch), so no route ever points at
/// the old master again. It rejoins as a slave; nothing acknowledged lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_old_master_never_takes_the_route_back() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cl, load, old) = start(&dir).await;
    let old_addr = cl.addr_of(old);

    cl.signal_broker(old, libc::SIGSTOP);
    let (ok, v) = wait_view(&cl, Duration::from_secs(15), |v| {
        v.master.is_some_and(|m| m != old) && v.routed.is_some() && v.routed != old_addr
    })
    .await;
    if !ok {
        cl.signal_broker(old, libc::SIGCONT);
    }
    assert!(ok, "no new master routed: {v:?}\n{}", cl.logs());
    let new = v.master.unwrap();
    let new_addr = v.routed.clone();
    eprintln!("master {new} routed at {new_addr:?}; resuming {old}");

    // The resumed broker's overdue timers fire at once: registration
    // (as master, old epoch) and its controller heartbeat race. Watch the
    // route through several registration intervals.
    cl.signal_broker(old, libc::SIGCONT);
    let watch = Instant::now();
    let mut seen = BTreeSet::new();
    while watch.elapsed() < Duration::from_secs(4) {
        let v = cl.view(TOPIC).await;
        if let Some(r) = v.routed {
            assert!(
                Some(&r) != old_addr.as_ref(),
                "the resumed old master took id 0 back after {:?}\n{}",
                watch.elapsed(),
                cl.logs()
            );
            seen.insert(r);
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        Vec::from_iter(new_addr)
    );

    let master = cl
        .ready(Some(&load), 50)
        .await
        .unwrap_or_else(|e| panic!("after the resume: {e}"));
    assert_eq!(master, new, "the master changed again");
    let v = cl.view(TOPIC).await;
    assert!(
        v.sync_state_set.contains(&old),
        "the old master is not back in the SyncStateSet: {v:?}"
    );
    stop_and_check(&cl, load).await;
}
