//! Helpers of the black-box failover tests on the harness of
//! `actormq::bench::failover` (three standalone controllers, a name
//! server, a group of three brokers in controller mode,
//! `allAckInSyncStateSet=true`, `enableElectUncleanMaster=false`,
//! heartbeat timeout 3 s, a producer under continuous load and the
//! checker). A test file using them also declares `mod common;` and
//! `mod controller_support;`.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actormq::bench::failover::{check, Cluster, Load, Sent, Spec, Verdict, View, TOPIC};
use actormq::client::remoting::RemotingClient;

use crate::controller_support::epoch_cache;

pub const QUEUES: i32 = 4;

pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn spec(dir: &tempfile::TempDir) -> Spec {
    let mut s = Spec::new(
        PathBuf::from(env!("CARGO_BIN_EXE_actormq")),
        dir.path().to_owned(),
        false,
    );
    s.port = crate::common::free_port;
    s.log_level = "info".into();
    s
}

/// Starts the group and the load; the master once the group is ready.
pub async fn start(dir: &tempfile::TempDir) -> (Cluster, Load, i64) {
    start_with(spec(dir)).await
}

/// [`start`] of a changed [`spec`].
pub async fn start_with(spec: Spec) -> (Cluster, Load, i64) {
    let mut cl = Cluster::start(spec)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let load = Load::start(&cl.namesrv, TOPIC, QUEUES, 256)
        .await
        .unwrap_or_else(|e| panic!("topic: {e}\n{}", cl.logs()));
    let master = cl
        .ready(Some(&load), 50)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (cl, load, master)
}

/// Waits until a send issued at or after `t0` is acknowledged, within
/// `within` of `t0`.
pub async fn first_send_after(cl: &Cluster, load: &Load, t0: Instant, within: Duration) {
    while load.first_ack_after(t0).is_none() {
        assert!(
            t0.elapsed() < within,
            "no send acknowledged within {within:?} (last error {:?})\n{}",
            load.last_error(),
            cl.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "first send after {:?}",
        load.first_ack_after(t0).unwrap() - t0
    );
}

/// `n` more sends acknowledged within 20 s, none failing meanwhile.
pub async fn steady(load: &Load, n: u64) {
    let failed = load.failed();
    assert!(
        more_acks(load, n, Duration::from_secs(20)).await,
        "sends stalled (last error {:?})",
        load.last_error()
    );
    assert_eq!(
        load.failed(),
        failed,
        "sends failed: {:?}",
        load.last_error()
    );
}

/// `kill -9` of both slaves at once; waits until the controller has the
/// SyncStateSet {master} under `master` within 3 s — below the 5 s
/// `checkSyncStateSetPeriod`, so the second slave must leave when the
/// first ALTER completes, not at the periodic check. The slaves' ids and
/// that view.
pub async fn kill_slaves(cl: &mut Cluster, master: i64) -> (Vec<i64>, View) {
    let slaves: Vec<i64> = cl.ids().keys().copied().filter(|i| *i != master).collect();
    assert_eq!(slaves.len(), 2);
    let t0 = Instant::now();
    for s in &slaves {
        cl.kill9_broker(*s);
    }
    let alone = BTreeSet::from([master]);
    let (ok, v) = wait_view(cl, Duration::from_secs(3), |v| {
        v.master == Some(master) && v.sync_state_set == alone
    })
    .await;
    assert!(
        ok,
        "the SyncStateSet did not shrink to the master within 3 s: {v:?}\n{}",
        cl.logs()
    );
    eprintln!("SyncStateSet {{{master}}} after {:?}", t0.elapsed());
    (slaves, v)
}

/// Restarts `slaves`; the group ready again (every broker alive and in
/// the SyncStateSet) with `master` still master.
pub async fn restart_slaves(cl: &mut Cluster, load: &Load, slaves: &[i64], master: i64) {
    for s in slaves {
        cl.restart_broker(*s)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let now = cl
        .ready(Some(load), 50)
        .await
        .unwrap_or_else(|e| panic!("after the restarts: {e}"));
    assert_eq!(now, master, "the master changed");
}

/// Polls the cluster's view until `ok` or `within` passed; the last view.
pub async fn wait_view(cl: &Cluster, within: Duration, ok: impl Fn(&View) -> bool) -> (bool, View) {
    let deadline = Instant::now() + within;
    loop {
        let v = cl.view(TOPIC).await;
        if ok(&v) {
            return (true, v);
        }
        if Instant::now() > deadline {
            return (false, v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the load has `n` more acknowledgements, within `within`.
pub async fn more_acks(load: &Load, n: u64, within: Duration) -> bool {
    let (from, deadline) = (load.acked(), Instant::now() + within);
    while load.acked() < from + n {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Stops the load and checks the master against every acknowledged send;
/// what was sent, for more checks.
pub async fn stop_and_check(cl: &Cluster, load: Load) -> Sent {
    let sent = load.stop().await;
    let master = cl.master_addr().await.unwrap();
    check_on(cl, &master, &sent).await;
    sent
}

/// Checks the broker at `addr` against every acknowledged send: each
/// stored once, at its queue offset, in order; the verdict, for more.
pub async fn check_on(cl: &Cluster, addr: &str, sent: &Sent) -> Verdict {
    let verdict = check(addr, TOPIC, QUEUES, sent, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("reading {addr}: {e}\n{}", cl.logs()));
    eprintln!("checker ({addr}): {verdict}");
    assert!(verdict.acked > 0, "nothing was acknowledged");
    assert!(
        verdict.ok(),
        "acknowledged messages lost, duplicated or out of place on {addr}: {verdict}"
    );
    verdict
}

/// Every broker's epoch list equal (GET_BROKER_EPOCH_CACHE), within 10 s.
pub async fn epoch_lists_equal(cl: &Cluster) -> Result<Vec<(i64, i64)>, String> {
    brokers_agree(cl, Duration::from_secs(10), |c, a| async move {
        epoch_cache(&c, &a).await.map(|e| e.0)
    })
    .await
    .map_err(|e| format!("epoch lists differ: {e}"))
}

/// Asks every broker (`ask(client, address)`) until all answer, and the
/// same, within `within`: that answer, or what each said last.
pub async fn brokers_agree<T, F, Fut>(cl: &Cluster, within: Duration, ask: F) -> Result<T, String>
where
    T: Clone + PartialEq + Debug,
    F: Fn(RemotingClient, String) -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let c = crate::common::client();
    let addrs: Vec<String> = cl.ids().keys().filter_map(|id| cl.addr_of(*id)).collect();
    let deadline = Instant::now() + within;
    loop {
        let mut seen = Vec::new();
        for a in &addrs {
            seen.push(ask(c.clone(), a.clone()).await);
        }
        if let Some(first) = seen[0].clone() {
            if seen.iter().all(|s| s.as_ref() == Some(&first)) {
                return Ok(first);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("brokers {addrs:?} answer {seen:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The master SIGSTOPped past the heartbeat timeout, with no candidate
/// to replace it (the controller clears it or moves the epoch), then
/// SIGCONTed: it is elected again in the same process at an epoch above
/// `epoch`. The view with it master again.
pub async fn stop_until_deposed_and_back(cl: &Cluster, master: i64, epoch: i32) -> View {
    cl.signal_broker(master, libc::SIGSTOP);
    let (ok, v) = wait_view(cl, Duration::from_secs(15), |v| {
        v.master != Some(master) || v.epoch > epoch
    })
    .await;
    cl.signal_broker(master, libc::SIGCONT);
    assert!(
        ok,
        "the controller kept the stopped master at epoch {epoch}: {v:?}\n{}",
        cl.logs()
    );
    eprintln!("while stopped: {v:?}");
    let (ok, v) = wait_view(cl, Duration::from_secs(15), |v| {
        v.master == Some(master) && v.epoch > epoch
    })
    .await;
    assert!(
        ok,
        "the master was not elected again at a new epoch: {v:?}\n{}",
        cl.logs()
    );
    v
}

/// Watches the view for `during`; panics if `bad` ever holds.
pub async fn never(cl: &Cluster, during: Duration, what: &str, bad: impl Fn(&View) -> bool) {
    let t = Instant::now();
    while t.elapsed() < during {
        let v = cl.view(TOPIC).await;
        assert!(
            !bad(&v),
            "{what} after {:?}: {v:?}\n{}",
            t.elapsed(),
            cl.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The index in `controllers` of the controller leader.
pub async fn leader_index(cl: &Cluster) -> usize {
    let leader = cl.leader().await.expect("a controller leader");
    cl.controllers
        .iter()
        .position(|a| *a == leader)
        .unwrap_or_else(|| panic!("leader {leader} is none of {:?}", cl.controllers))
}
