//! Issue tests 4 and 5 (and test 1 in the embedded mode): a broker group in
//! controller mode with its controllers and name server, as processes,
//! a producer under continuous load (one sync sender per queue, every
//! acknowledged send remembered), and rounds of `kill -9` of whichever
//! broker is master: a new master is elected, the name server routes it
//! as id 0, sends resume, the killed broker is restarted and rejoins as a
//! slave (alive at the controller and back in the SyncStateSet) before
//! the next round. At the end a checker reads every queue of the final
//! master from offset 0: every acknowledged message is there exactly once,
//! at its acknowledged queue offset, in per-queue order.
//!
//! Configuration: heartbeat timeout 3 s, `allAckInSyncStateSet=true`,
//! `enableElectUncleanMaster=false`, 4 MiB segments. The harness is
//! `actormq::bench::failover` (also `actormq bench failover`). Rounds:
//! `ACTORMQ_FAILOVER_ROUNDS` (default 20). The tests of this file run one
//! at a time (each starts five or six processes).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use actormq::bench::failover::{check, print_phases, Cluster, Load, Round, Spec, TOPIC};

const QUEUES: i32 = 4;

/// One test at a time: each loads both cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rounds() -> usize {
    std::env::var("ACTORMQ_FAILOVER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn spec(dir: &tempfile::TempDir, embedded: bool) -> Spec {
    let mut s = Spec::new(
        PathBuf::from(env!("CARGO_BIN_EXE_actormq")),
        dir.path().to_owned(),
        embedded,
    );
    s.port = common::free_port;
    s.log_level = "info".into();
    s
}

/// Starts the group, runs `n` rounds under load, restarts nothing more,
/// and checks the final master against every acknowledged send.
async fn rounds_under_load(embedded: bool, n: usize) -> Vec<Round> {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(spec(&dir, embedded))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let load = Load::start(&cluster.namesrv, TOPIC, QUEUES, 256)
        .await
        .unwrap_or_else(|e| panic!("topic: {e}\n{}", cluster.logs()));
    let mut done = Vec::new();
    for i in 1..=n {
        let r = cluster
            .round(i, &load)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{r}");
        // The bound for a new master (test 1): 10 s.
        assert!(
            r.election <= Duration::from_secs(10),
            "round {i}: no new master within 10 s: {r}"
        );
        done.push(r);
    }
    cluster
        .ready(Some(&load), 50)
        .await
        .unwrap_or_else(|e| panic!("after the rounds: {e}"));
    let sent = load.stop().await;
    let master = cluster.master_addr().await.unwrap();
    let verdict = check(&master, TOPIC, QUEUES, &sent, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("reading {master}: {e}\n{}", cluster.logs()));
    print_phases(&done);
    eprintln!("checker: {verdict}");
    assert!(verdict.acked > 0, "nothing was acknowledged");
    assert!(
        verdict.ok(),
        "acknowledged messages lost, duplicated or out of place: {verdict}"
    );
    done
}

/// Test 4: twenty rounds with three standalone controllers and a group
/// of three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rounds_of_kill9_of_the_master_lose_no_acknowledged_message() {
    rounds_under_load(false, rounds()).await;
}

/// Test 5 (test 4 embedded): the controller inside the name server, a
/// group of two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rounds_with_the_controller_in_the_name_server() {
    rounds_under_load(true, rounds()).await;
}

/// Test 5 (test 1 embedded): one `kill -9` of the master under load: a
/// new master within 10 s, sends resume, every acknowledged message on
/// it; the old master back as a slave in the SyncStateSet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_controller_replaces_a_killed_master_under_load() {
    let r = rounds_under_load(true, 1).await;
    assert_ne!(r[0].old, r[0].new);
}
