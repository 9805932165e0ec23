//! The 5.x controller as separate processes (`actormq controller`), black
//! box over real sockets: three nodes agree on a leader and followers
//! refuse writes; broker ids are handed out through the protocol; a master
//! whose heartbeats stop is replaced by a SyncStateSet member; after
//! `kill -9` of the leader another node leads with the state intact and
//! still handles a master failure; a restart of every node keeps the
//! state (Raft log and snapshots under `controllerStorePath`).

mod common;
mod controller_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actormq::wire::codes::{request as rq, response as rs};
use actormq::wire::headers::controller::*;
use actormq::wire::headers::CommandHeader;
use actormq::wire::RemotingCommand;
use controller_support::*;

const LEADER_WITHIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_elect_one_leader_and_followers_refuse_writes() {
    let g = Group::start(3, Mode::Standalone, "");
    let c = common::client();
    let l = g.leader(&c, LEADER_WITHIN).await;
    let leader = &g.addrs[l];
    let (code, next) = Replica::next_id(&c, leader, "c", "broker-a").await;
    assert_eq!((code, next), (rs::SUCCESS, Some(1)));
    for f in (0..3).filter(|i| *i != l) {
        let (code, _) = Replica::next_id(&c, &g.addrs[f], "c", "broker-a").await;
        assert_eq!(code, rs::CONTROLLER_NOT_LEADER, "follower n{f}");
        // Every node names the leader's address for brokers to go to.
        let m = metadata(&c, &g.addrs[f]).await.unwrap();
        assert_eq!(m.controller_leader_address, *leader);
        assert!(!m.is_leader);
        assert_eq!(m.group, "test");
        assert_eq!(m.peers.matches(';').count(), 3);
    }
    // A code no controller serves.
    let r = c
        .invoke(leader, RemotingCommand::request(rq::PULL_MESSAGE), CALL)
        .await
        .unwrap();
    assert_eq!(r.code, rs::REQUEST_CODE_NOT_SUPPORTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_ids_are_allocated_through_the_protocol() {
    let g = Group::start(3, Mode::Standalone, "");
    let c = common::client();
    let leader = g.addrs[g.leader(&c, LEADER_WITHIN).await].clone();
    let a = Replica::join(&c, &leader, "c", "broker-a", "10.0.0.1:10911").await;
    let b = Replica::join(&c, &leader, "c", "broker-a", "10.0.0.2:10911").await;
    assert_eq!((a.id, b.id), (1, 2));
    assert_eq!(
        Replica::next_id(&c, &leader, "c", "broker-a").await.1,
        Some(3)
    );
    // A retry with the same check code is accepted; another broker's is not.
    assert_eq!(b.apply_id(&c, &leader, &b.check_code()).await, rs::SUCCESS);
    assert_eq!(
        b.apply_id(&c, &leader, "10.0.0.9:10911;1").await,
        rs::CONTROLLER_BROKER_ID_INVALID
    );
    // A new set starts at id 1.
    let stray = Replica {
        name: "broker-b".into(),
        id: 5,
        ..a.clone()
    };
    assert_eq!(
        stray.apply_id(&c, &leader, &stray.check_code()).await,
        rs::CONTROLLER_BROKER_ID_INVALID
    );
    assert_eq!(
        stray.register(&c, &leader).await.code,
        rs::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED
    );
    // Registration with a new address replaces the old one; no master yet.
    let moved = Replica {
        addr: "10.0.0.3:10911".into(),
        ..b.clone()
    };
    let r = moved.register(&c, &leader).await;
    assert_eq!(r.code, rs::SUCCESS);
    let h = RegisterBrokerToControllerResponseHeader::from_ext(&r.ext).unwrap();
    assert_eq!(h.master_broker_id, None);
    // A heartbeat without a broker id is refused.
    let mut hb = RemotingCommand::request(rq::BROKER_HEARTBEAT);
    for (k, v) in [
        ("clusterName", "c"),
        ("brokerName", "broker-a"),
        ("brokerAddr", "x:1"),
    ] {
        hb.ext.insert(k, v);
    }
    let r = c.invoke(&leader, hb, CALL).await.unwrap();
    assert_eq!(r.code, rs::CONTROLLER_INVALID_REQUEST);
    // The first self-nomination wins; the member group shows the new address.
    let r = a.elect(&c, &leader, false).await;
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    let body = String::from_utf8_lossy(&r.body_bytes()).into_owned();
    assert!(body.contains(r#"2:"10.0.0.3:10911""#), "{body}");
}

/// What `set_up_master` left: master 1 at epoch 1, SyncStateSet {1, 2}
/// at epoch 2, next id 4.
async fn assert_state_of_set_up_master(
    c: &actormq::client::remoting::RemotingClient,
    leader: &str,
) {
    let (code, h, set) = replica_info(c, leader, "broker-a").await;
    assert_eq!(code, rs::SUCCESS);
    assert_eq!((h.master_broker_id, h.master_epoch), (Some(1), Some(1)));
    assert_eq!(
        (set.sync_state_set, set.sync_state_set_epoch),
        ([1, 2].into(), 2)
    );
    assert_eq!(
        Replica::next_id(c, leader, "c", "broker-a").await.1,
        Some(4)
    );
}

type Beats = Vec<std::sync::Arc<std::sync::atomic::AtomicBool>>;

/// Three replicas joined, 1 master with SyncStateSet {1, 2}, all beating.
async fn set_up_master(
    g: &Group,
    c: &actormq::client::remoting::RemotingClient,
) -> (Vec<Replica>, Beats) {
    let addrs: Vec<String> = (1..=3)
        .map(|i| format!("127.0.0.1:{}", 20000 + i))
        .collect();
    set_up_master_at(g, c, &addrs).await
}

async fn set_up_master_at(
    g: &Group,
    c: &actormq::client::remoting::RemotingClient,
    addrs: &[String],
) -> (Vec<Replica>, Beats) {
    let leader = g.addrs[g.leader(c, LEADER_WITHIN).await].clone();
    let mut rs_ = Vec::new();
    let mut beats = Vec::new();
    for (i, addr) in (1..=3).zip(addrs) {
        let r = Replica::join(c, &leader, "c", "broker-a", addr).await;
        beats.push(r.beat(c, &g.addrs, 1, 1000 * i as i64));
        rs_.push(r);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = rs_[0].elect(c, &leader, false).await;
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    let h = ElectMasterResponseHeader::from_ext(&r.ext).unwrap();
    assert_eq!(
        (h.master_broker_id, h.master_epoch, h.sync_state_set_epoch),
        (Some(1), Some(1), Some(1))
    );
    // Another self-nomination keeps the live master.
    assert_eq!(
        rs_[1].elect(c, &leader, false).await.code,
        rs::CONTROLLER_MASTER_STILL_EXIST
    );
    // Only the master may change the set, at the current epochs.
    assert_eq!(
        rs_[1].alter(c, &leader, 1, &[1, 2], 1).await.code,
        rs::CONTROLLER_INVALID_MASTER
    );
    assert_eq!(
        rs_[0].alter(c, &leader, 0, &[1, 2], 1).await.code,
        rs::CONTROLLER_FENCED_MASTER_EPOCH
    );
    assert_eq!(
        rs_[0].alter(c, &leader, 1, &[1, 2], 0).await.code,
        rs::CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH
    );
    assert_eq!(
        rs_[0].alter(c, &leader, 1, &[2], 1).await.code,
        rs::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED
    );
    assert_eq!(
        rs_[0].alter(c, &leader, 1, &[1, 7], 1).await.code,
        rs::CONTROLLER_INVALID_REPLICAS
    );
    let r = rs_[0].alter(c, &leader, 1, &[1, 2], 1).await;
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    assert_eq!(
        AlterSyncStateSetResponseHeader::from_ext(&r.ext)
            .unwrap()
            .new_sync_state_set_epoch,
        Some(2)
    );
    (rs_, beats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_whose_heartbeats_stop_is_replaced_from_the_sync_state_set() {
    let g = Group::start(3, Mode::Standalone, "");
    let c = common::client();
    // Replica 2 listens, to hear NOTIFY_BROKER_ROLE_CHANGED.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = vec![
        "127.0.0.1:20001".to_string(),
        listener.local_addr().unwrap().to_string(),
        "127.0.0.1:20003".to_string(),
    ];
    let heard = tokio::spawn(hear(listener, Duration::from_secs(12)));
    let (replicas, beats) = set_up_master_at(&g, &c, &addrs).await;
    beats[0].store(false, Ordering::Relaxed);
    // Replica 3 has the larger offset but is not in sync: 2 wins.
    let took = wait_master(&g, &c, "broker-a", 2, 2, Duration::from_secs(10)).await;
    eprintln!("master replaced {took:?} after the last heartbeat stopped (timeout {HEARTBEAT_TIMEOUT_MS} ms)");
    let leader = g.addrs[g.leader(&c, LEADER_WITHIN).await].clone();
    let (_, h, set) = replica_info(&c, &leader, "broker-a").await;
    assert_eq!(h.master_address.as_deref(), Some(replicas[1].addr.as_str()));
    assert_eq!(set.sync_state_set, [2].into());
    assert_eq!(set.sync_state_set_epoch, 3);
    // The old master registering again learns about the new one.
    let r = replicas[0].register(&c, &leader).await;
    let h = RegisterBrokerToControllerResponseHeader::from_ext(&r.ext).unwrap();
    assert_eq!((h.master_broker_id, h.master_epoch), (Some(2), Some(2)));
    let text = heard.await.unwrap();
    assert!(
        text.contains(r#""code":1008"#),
        "no NOTIFY_BROKER_ROLE_CHANGED: {text}"
    );
    assert!(text.contains(r#""masterBrokerId":"2""#), "{text}");
    assert!(text.contains(r#""masterEpoch":"2""#), "{text}");
    for b in &beats {
        b.store(false, Ordering::Relaxed);
    }
}

/// What peers send to `listener` until a NOTIFY_BROKER_ROLE_CHANGED naming
/// master 2 arrives or `within` passes (frames as text, for matching).
async fn hear(listener: tokio::net::TcpListener, within: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut text = String::new();
    let _ = tokio::time::timeout(within, async {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                if text.contains(r#""masterBrokerId":"2""#) {
                    return;
                }
            }
        }
    })
    .await;
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill9_of_the_leader_another_leads_with_the_state_intact() {
    let mut g = Group::start(3, Mode::Standalone, "");
    let c = common::client();
    let (_replicas, beats) = set_up_master(&g, &c).await;
    let old = g.leader(&c, LEADER_WITHIN).await;
    g.kill9(old);
    let new = g.leader(&c, LEADER_WITHIN).await;
    assert_ne!(new, old);
    let leader = g.addrs[new].clone();
    assert_state_of_set_up_master(&c, &leader).await;
    // The next master failure is handled by the new leader.
    beats[0].store(false, Ordering::Relaxed);
    wait_master(&g, &c, "broker-a", 2, 2, Duration::from_secs(10)).await;
    // The killed node comes back as a follower with the same state.
    g.restart(old);
    let (code, _) = Replica::next_id(&c, &g.addrs[old], "c", "broker-a").await;
    assert_eq!(code, rs::CONTROLLER_NOT_LEADER);
    for b in &beats {
        b.store(false, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_every_node_keeps_the_state() {
    // Snapshots every 3 entries: the restart reads a snapshot and a log tail.
    let mut g = Group::start(3, Mode::Standalone, "controllerSnapshotLogs=3");
    let c = common::client();
    let (_replicas, beats) = set_up_master(&g, &c).await;
    for b in &beats {
        b.store(false, Ordering::Relaxed);
    }
    for i in 0..3 {
        g.kill9(i);
    }
    let snapshots = (0..3)
        .filter(|i| store_dir(&g).join(format!("n{i}/raft/snapshot")).exists())
        .count();
    assert!(snapshots > 0, "no snapshot written");
    for i in 0..3 {
        g.restart(i);
    }
    let leader = g.addrs[g.leader(&c, LEADER_WITHIN).await].clone();
    assert_state_of_set_up_master(&c, &leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_whose_connection_closes_is_replaced_without_waiting_for_the_timeout() {
    let g = Group::start(3, Mode::Standalone, "");
    let c = common::client();
    let leader = g.addrs[g.leader(&c, LEADER_WITHIN).await].clone();
    // The master beats on a connection of its own, with a one-minute timeout.
    let own = common::client();
    let pair = Pair::start(&g, [&own, &c], &leader, 60_000).await;
    // Its process "dies": the connections close.
    pair.beat_a.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    own.shutdown();
    let took = wait_master(&g, &c, "broker-a", 2, 2, Duration::from_secs(20)).await;
    eprintln!("master replaced {took:?} after its connections closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_the_node_keeps_serving() {
    let g = Group::start(1, Mode::Standalone, "");
    let c = common::client();
    let node = g.addrs[g.leader(&c, LEADER_WITHIN).await].clone();
    let send = |code: i32, body: Option<&'static [u8]>| {
        let c = c.clone();
        let node = node.clone();
        async move {
            let mut cmd = RemotingCommand::request(code);
            if let Some(b) = body {
                cmd = cmd.with_body(b.to_vec());
            }
            c.invoke(&node, cmd, CALL).await.unwrap()
        }
    };
    let r = send(rq::CONTROLLER_APPLY_BROKER_ID, None).await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    assert!(r.remark.unwrap_or_default().contains("is null"));
    let r = send(rq::CONTROLLER_GET_SYNC_STATE_DATA, None).await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    let r = send(rq::CONTROLLER_GET_SYNC_STATE_DATA, Some(b"{not json")).await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    let mut alter =
        RemotingCommand::request(rq::CONTROLLER_ALTER_SYNC_STATE_SET).with_body(b"[1,".to_vec());
    for (k, v) in [
        ("brokerName", "b"),
        ("masterBrokerId", "1"),
        ("masterEpoch", "1"),
    ] {
        alter.ext.insert(k, v);
    }
    assert_eq!(
        c.invoke(&node, alter, CALL).await.unwrap().code,
        rs::SYSTEM_ERROR
    );
    // Garbage where another controller's Raft message belongs.
    let r = send(rq::ACTORMQ_RAFT_APPEND, Some(b"\xff\xff\xff")).await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    let r = send(rq::UPDATE_CONTROLLER_CONFIG, Some(b"")).await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    // Still the leader, still serving.
    assert!(metadata(&c, &node).await.unwrap().is_leader);
    let (code, next) = Replica::next_id(&c, &node, "c", "broker-a").await;
    assert_eq!((code, next), (rs::SUCCESS, Some(1)));
}
