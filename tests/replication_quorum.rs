//! RocketMQ 5's send rules of a SYNC_MASTER (`inSyncReplicas`,
//! `minInSyncReplicas`, `enableAutoInSyncReplicas`, the
//! `haMaxGapNotInSync` gap) and learner slaves (`asyncLearner`), black-box
//! over real sockets.
//!
//! The replica counts include the master, as Java's `inSyncReplicasNums`
//! does. Too few replicas in sync refuses the send before the append with
//! Java's answer to `IN_SYNC_REPLICAS_NOT_ENOUGH`: SYSTEM_ERROR, remark
//! "in-sync replicas not enough", nothing stored. A learner replicates but
//! never counts: a SYNC_MASTER whose only slave is a learner answers as
//! with no slave at all.

mod common;

use std::time::Duration;

use actormq::actors::ha::status::{HaRuntimeInfo, GET_BROKER_HA_STATUS};
use actormq::config::{BrokerConfig, BrokerRole};
use actormq::wire::codes::{request, response};
use actormq::wire::headers::send::SendMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use common::*;

const TOPIC: &str = "QuorumTopic";

/// A SYNC_MASTER with its own name server; `tweak` sets the HA keys.
fn master(ha_port: u16, tweak: impl FnOnce(&mut BrokerConfig) + Send + 'static) -> TestServer {
    TestServer::start(Opts::default().broker(move |c| {
        c.broker_name = "quorum".into();
        c.broker_role = BrokerRole::SyncMaster;
        c.sync_flush_timeout = 500;
        c.ha.listen_port = Some(ha_port);
        c.ha.send_heartbeat_interval = 300;
        tweak(c);
    }))
}

/// A slave following the master's HA port directly.
fn slave(ha_port: u16, learner: bool) -> TestServer {
    TestServer::start(Opts {
        namesrvs: 0,
        ..Opts::default().broker(move |c| {
            c.namesrv_addr = "127.0.0.1:1".into();
            c.broker_name = "quorum".into();
            c.broker_role = BrokerRole::Slave;
            c.broker_id = if learner { 2 } else { 1 };
            c.slave_read_enable = true;
            c.ha.master_address = format!("127.0.0.1:{ha_port}");
            c.ha.send_heartbeat_interval = 300;
            c.ha.async_learner = learner;
        })
    })
}

/// Code, remark and whether the answer carries a send header (stored).
async fn send(broker: &str, body: &[u8]) -> (i32, String, bool) {
    let r = send_raw(&client(), broker, TOPIC, 0, &Msg::new(body.to_vec())).await;
    let stored = SendMessageResponseHeader::from_ext(&r.ext).is_ok();
    (r.code, r.remark.unwrap_or_default(), stored)
}

async fn stored_count(broker: &str) -> i64 {
    queue_offset(&client(), broker, request::GET_MAX_OFFSET, TOPIC, 0).await
}

async fn ha_status(broker: &str) -> HaRuntimeInfo {
    let r = call(&client(), broker, GET_BROKER_HA_STATUS, ext(&[]), None).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    serde_json::from_slice(&r.body_bytes()).unwrap()
}

/// Waits until the master lists `n` connected slaves that reported.
async fn wait_slaves(broker: &str, n: usize) {
    let ok = eventually(Duration::from_secs(20), || async {
        let s = ha_status(broker).await;
        let reported = s
            .ha_connection_info
            .iter()
            .filter(|c| c.slave_ack_offset >= 0)
            .count();
        (reported == n).then_some(())
    })
    .await;
    assert!(ok.is_some(), "{n} slave(s) did not connect");
}

fn assert_not_enough(got: (i32, String, bool)) {
    assert_eq!(got.0, response::SYSTEM_ERROR, "{got:?}");
    assert_eq!(got.1, "in-sync replicas not enough");
    assert!(!got.2, "refused before the append: no send header");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_sync_replicas_2_needs_the_master_and_one_slave() {
    let ha = free_port();
    let m = master(ha, |c| c.ha.in_sync_replicas = 2);
    create_topic(&client(), m.broker(), TOPIC, 1).await;
    assert_not_enough(send(m.broker(), b"alone").await);
    assert_eq!(stored_count(m.broker()).await, 0, "nothing stored");

    let s = slave(ha, false);
    wait_slaves(m.broker(), 1).await;
    for i in 0..20 {
        let (code, remark, stored) = send(m.broker(), format!("m{i}").as_bytes()).await;
        assert_eq!(code, response::SUCCESS, "send {i}: {remark}");
        assert!(stored);
    }
    // Every acknowledged message is on the slave already.
    let on_slave = pull_all(&client(), s.broker(), TOPIC, 0).await;
    assert_eq!(on_slave.len(), 20);
    s.stop();
    // The slave gone: refused again.
    let refused = eventually(Duration::from_secs(10), || async {
        let got = send(m.broker(), b"after").await;
        (got.0 == response::SYSTEM_ERROR).then_some(got)
    })
    .await
    .expect("refused once the slave left");
    assert_not_enough(refused);
    m.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_replicas_than_the_group_has_are_refused_unless_auto_lowers_the_count() {
    let ha = free_port();
    let m = master(ha, |c| c.ha.in_sync_replicas = 3);
    let s = slave(ha, false);
    create_topic(&client(), m.broker(), TOPIC, 1).await;
    wait_slaves(m.broker(), 1).await;
    assert_not_enough(send(m.broker(), b"three").await);
    s.stop();
    m.stop();

    // enableAutoInSyncReplicas: waits for the replicas in sync, at least
    // minInSyncReplicas.
    let ha = free_port();
    let m = master(ha, |c| {
        c.ha.in_sync_replicas = 3;
        c.ha.min_in_sync_replicas = 2;
        c.ha.auto_in_sync_replicas = true;
    });
    create_topic(&client(), m.broker(), TOPIC, 1).await;
    assert_not_enough(send(m.broker(), b"below-min").await);
    let s = slave(ha, false);
    wait_slaves(m.broker(), 1).await;
    let (code, remark, _) = send(m.broker(), b"two-of-three").await;
    assert_eq!(code, response::SUCCESS, "{remark}");
    assert_eq!(pull_all(&client(), s.broker(), TOPIC, 0).await.len(), 1);
    s.stop();
    m.stop();
}

/// A "slave" on the HA port that reports offset 0 once and then nothing.
async fn mute_slave(ha_port: u16) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", ha_port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, &0i64.to_be_bytes())
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_further_behind_than_ha_max_gap_not_in_sync_is_not_in_sync() {
    let ha = free_port();
    let m = master(ha, |c| {
        c.ha.in_sync_replicas = 2;
        c.ha.max_gap_not_in_sync = 4096;
    });
    create_topic(&client(), m.broker(), TOPIC, 1).await;
    let mute = mute_slave(ha).await;
    wait_slaves(m.broker(), 1).await;
    // In sync (0 bytes behind): the send waits for it and times out, stored.
    let (code, _, stored) = send(m.broker(), &vec![b'x'; 5000]).await;
    assert_eq!(code, response::FLUSH_SLAVE_TIMEOUT);
    assert!(stored);
    // Now 5,000+ bytes behind, more than the gap: not in sync.
    assert_not_enough(send(m.broker(), b"next").await);
    assert_eq!(stored_count(m.broker()).await, 1);
    let st = ha_status(m.broker()).await;
    assert_eq!(st.in_sync_slave_nums, 0);
    assert!(!st.ha_connection_info[0].in_sync);
    drop(mute);
    m.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_in_sync_replicas_degrades_to_the_master_alone_when_the_slave_falls_behind() {
    let ha = free_port();
    let m = master(ha, |c| {
        c.ha.in_sync_replicas = 2;
        c.ha.min_in_sync_replicas = 1;
        c.ha.auto_in_sync_replicas = true;
        c.ha.max_gap_not_in_sync = 4096;
    });
    create_topic(&client(), m.broker(), TOPIC, 1).await;
    let mute = mute_slave(ha).await;
    wait_slaves(m.broker(), 1).await;
    let (code, _, _) = send(m.broker(), &vec![b'x'; 5000]).await;
    assert_eq!(code, response::FLUSH_SLAVE_TIMEOUT, "waits for the slave");
    // The slave behind: one replica in sync, the send needs only the master.
    for i in 0..5 {
        let (code, remark, _) = send(m.broker(), format!("alone{i}").as_bytes()).await;
        assert_eq!(code, response::SUCCESS, "{remark}");
    }
    drop(mute);
    m.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_replicates_but_a_sync_master_never_counts_it() {
    let ha = free_port();
    let m = master(ha, |_| {});
    create_topic(&client(), m.broker(), TOPIC, 1).await;
    let learner = slave(ha, true);
    wait_slaves(m.broker(), 1).await;
    let st = ha_status(m.broker()).await;
    assert!(st.ha_connection_info[0].async_learner, "{st:?}");
    assert!(!st.ha_connection_info[0].in_sync);
    assert_eq!(st.in_sync_slave_nums, 0);
    // As with no slave (4.9 rule): SLAVE_NOT_AVAILABLE, stored.
    for i in 0..5 {
        let (code, _, stored) = send(m.broker(), format!("l{i}").as_bytes()).await;
        assert_eq!(code, response::SLAVE_NOT_AVAILABLE, "send {i}");
        assert!(stored);
    }
    // The learner has every message all the same.
    let copied = eventually(Duration::from_secs(10), || async {
        let n = pull_all(&client(), learner.broker(), TOPIC, 0).await.len();
        (n == 5).then_some(())
    })
    .await;
    assert!(copied.is_some(), "the learner replicated");
    learner.stop();
    m.stop();

    // 5.x rule: a learner is no in-sync replica.
    let ha = free_port();
    let m = master(ha, |c| c.ha.in_sync_replicas = 2);
    create_topic(&client(), m.broker(), TOPIC, 1).await;
    let learner = slave(ha, true);
    wait_slaves(m.broker(), 1).await;
    assert_not_enough(send(m.broker(), b"learner-only").await);
    learner.stop();
    m.stop();
}
