//! Test 1 of the replication issue at full scale, with the unchanged
//! third-party PyPI `rocketmq` 0.4.4 client (`tests/python/
//! rmq_replication.py`): a SYNC_MASTER and its slave; the client sends
//! 10,000 messages, every one SEND_OK; `kill -9` of the master; a new
//! consumer group reading every queue from its first offset gets all
//! 10,000 from the slave, bodies intact; the two commit logs are
//! byte-identical up to the last acknowledged offset.
//!
//! Skipped (loudly) without `ACTORMQ_PYTHON`, as `third_party_python`.

mod common;
mod replication_util;

use std::time::{Duration, Instant};

use actormq::actors::ha::status::{HaRuntimeInfo, GET_BROKER_HA_STATUS};
use actormq::config::BrokerRole;
use actormq::wire::codes::response;
use common::*;
use replication_util::*;

const TOPIC: &str = "PyReplicated";
const COUNT: u32 = 10_000;

async fn ha_status(broker: &str) -> Option<HaRuntimeInfo> {
    let r = call(&client(), broker, GET_BROKER_HA_STATUS, ext(&[]), None).await;
    (r.code == response::SUCCESS).then(|| serde_json::from_slice(&r.body_bytes()).ok())?
}

/// The broker ids the name server routes `TOPIC` to.
async fn routed_ids(ns: &str) -> Vec<i64> {
    let body = wait_route(&client(), ns, TOPIC).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut ids: Vec<i64> = v["brokerDatas"][0]["brokerAddrs"]
        .as_object()
        .map(|m| m.keys().filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

async fn python_step(py: &str, mode: &str, ns: &str) -> String {
    let (py, mode, ns) = (py.to_owned(), mode.to_owned(), ns.to_owned());
    let count = COUNT.to_string();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        let args = [mode.as_str(), ns.as_str(), TOPIC, count.as_str()];
        run_python(&py, "rmq_replication.py", &args, Duration::from_secs(120))
    })
    .await
    .unwrap();
    assert!(ok, "python {out}");
    out.trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_10000_sync_sends_all_read_from_the_slave_after_kill_9_of_the_master() {
    let Some(py) = python() else { return };
    let ns = TestServer::start(Opts {
        broker: false,
        ..Opts::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (mut master, m) = spawn_broker(
        &dir.path().join("m"),
        Some(ns.namesrv()),
        "py-rep",
        "SYNC_MASTER",
        "haListenPort=0\nmapedFileSizeCommitLog=4194304\n",
    );
    let ns_addr = ns.namesrv().to_owned();
    let slave = TestServer::start(Opts {
        namesrvs: 0,
        ..Opts::default().broker(move |c| {
            c.namesrv_addr = ns_addr;
            c.broker_name = "py-rep".into();
            c.broker_role = BrokerRole::Slave;
            c.broker_id = 1;
            c.slave_read_enable = true;
            c.maped_file_size_commit_log = 4 << 20;
        })
    });
    let connected = eventually(Duration::from_secs(20), || async {
        let st = ha_status(&m).await?;
        st.ha_connection_info
            .iter()
            .any(|c| c.slave_ack_offset >= 0)
            .then_some(())
    })
    .await;
    assert!(connected.is_some(), "the slave connected to the master");
    create_topic(&client(), &m, TOPIC, 4).await;
    let both = eventually(Duration::from_secs(20), || async {
        (routed_ids(ns.namesrv()).await == [0, 1]).then_some(())
    })
    .await;
    assert!(both.is_some(), "master and slave routed");

    let t0 = Instant::now();
    let sent = python_step(&py, "send", ns.namesrv()).await;
    eprintln!("{sent} (SYNC_MASTER, {:?})", t0.elapsed());
    assert!(sent.contains(&format!("send: {COUNT} SEND_OK")), "{sent}");
    // Every send was acknowledged: the master's end is the last one's.
    let end = ha_status(&m).await.unwrap().master_commit_log_max_offset;
    master.kill9();
    let dropped = eventually(Duration::from_secs(10), || async {
        (routed_ids(ns.namesrv()).await == [1]).then_some(())
    })
    .await;
    assert!(dropped.is_some(), "the killed master left the routes");

    let got = python_step(&py, "consume", ns.namesrv()).await;
    eprintln!("{got} (from the slave)");
    assert!(got.contains(&format!("got {COUNT} of {COUNT}")), "{got}");
    let (a, b) = (
        log_bytes(&dir.path().join("m/store"), end),
        log_bytes(&slave.store, end),
    );
    assert_eq!(a.len() as i64, end, "the master's log up to its end");
    assert!(a == b, "the commit logs differ below offset {end}");
    slave.stop();
    ns.stop();
}
