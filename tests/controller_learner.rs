//! Learner replicas in controller mode (issue #13: "learners never
//! elected"): three controllers, a name server and a group of three
//! brokers (`allAckInSyncStateSet=true`, `enableElectUncleanMaster=false`),
//! one of them turned into a learner (`asyncLearner=true`) under load.
//!
//! The learner leaves the SyncStateSet and never comes back into it, while
//! it stays alive and replicating; a `kill -9` of the master elects the
//! other slave; with that one killed too the group has no master rather
//! than the learner; the in-sync slave restarted is master again, and no
//! acknowledged message is lost.

mod common;
mod controller_support;
mod failover_support;

use std::collections::BTreeSet;
use std::time::Duration;

use actormq::bench::failover::TOPIC;
use failover_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_replicates_but_never_joins_the_set_nor_becomes_master() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(&dir);
    // The learner is never in the set: readiness is the master, not all.
    s.wait_in_sync = false;
    let (mut cl, load, master) = start_with(s).await;
    let ids = cl.ids();
    let (learner, slave) = {
        let others: Vec<i64> = ids.keys().copied().filter(|i| *i != master).collect();
        (others[1], others[0])
    };

    // Turn one slave into a learner: stopped, `asyncLearner=true`, started.
    cl.kill9_broker(learner);
    let conf = dir
        .path()
        .join(format!("broker{}/broker.conf", ids[&learner]));
    let mut text = std::fs::read_to_string(&conf).unwrap();
    // slaveReadEnable: the checker reads it at the end.
    text.push_str("asyncLearner=true\nslaveReadEnable=true\n");
    std::fs::write(&conf, text).unwrap();
    cl.restart_broker(learner)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let set = BTreeSet::from([master, slave]);
    let (ok, v) = wait_view(&cl, Duration::from_secs(20), |v| {
        v.master == Some(master) && v.sync_state_set == set && v.alive.contains(&learner)
    })
    .await;
    assert!(
        ok,
        "the learner did not leave the SyncStateSet: {v:?}\n{}",
        cl.logs()
    );
    cl.ready(Some(&load), 200)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Well past haMaxTimeSlaveNotCatchup (3 s): the learner keeps up but
    // is never added.
    never(
        &cl,
        Duration::from_secs(4),
        "the learner joined the SyncStateSet",
        |v| v.sync_state_set.contains(&learner),
    )
    .await;

    // The master killed: the in-sync slave is elected, never the learner.
    cl.kill9_broker(master);
    let (ok, v) = wait_view(&cl, Duration::from_secs(10), |v| {
        v.master.is_some_and(|m| m != master)
    })
    .await;
    assert!(ok, "no new master within 10 s: {v:?}\n{}", cl.logs());
    assert_eq!(v.master, Some(slave), "the learner was elected: {v:?}");

    // The new master killed too: only dead members in the set, so no
    // master at all (unclean election is off) — the learner stays a
    // slave for two heartbeat timeouts.
    cl.kill9_broker(slave);
    never(
        &cl,
        Duration::from_secs(6),
        "the learner was elected",
        |v| v.master == Some(learner),
    )
    .await;

    // The in-sync slave back: master again, sends resume.
    cl.restart_broker(slave)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (ok, v) = wait_view(&cl, Duration::from_secs(20), |v| {
        v.master == Some(slave) && v.routed == cl.addr_of(slave)
    })
    .await;
    assert!(
        ok,
        "the in-sync slave is not master again: {v:?}\n{}",
        cl.logs()
    );
    restart_slaves(&mut cl, &load, &[master], slave).await;
    let v = cl.view(TOPIC).await;
    assert!(!v.sync_state_set.contains(&learner), "{v:?}");

    let sent = stop_and_check(&cl, load).await;
    // The learner has them too.
    check_on(&cl, &cl.addr_of(learner).unwrap(), &sent).await;
}
