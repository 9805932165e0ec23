//! A slave's metadata sync (RocketMQ's `SlaveSynchronize`) and consumer
//! failover to the slave, black-box over real sockets: topics, consumer
//! offsets, subscription groups and delay offsets committed on the master
//! reach the slave; a slave keeps its own newer commits when the master
//! returns with older ones; after `kill -9` of the master the name server
//! drops it at once (`RouteInfoManager#onChannelDestroy`) and a consumer
//! goes on from the slave at its committed offsets, with nothing missing.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use actormq::client::pull::{PullConsumer, PullStatus};
use actormq::config::BrokerRole;
use actormq::wire::bodies::MessageQueue;
use actormq::wire::codes::{request, response};
use actormq::wire::headers::offset::{OffsetResponseHeader, QueryConsumerOffsetRequestHeader};
use actormq::wire::headers::CommandHeader;
use common::*;

/// A name server alone.
fn namesrv() -> TestServer {
    TestServer::start(Opts {
        broker: false,
        ..Opts::default()
    })
}

fn master(ns: &str, name: &str, store: Option<&Path>) -> TestServer {
    let (ns, name) = (ns.to_owned(), name.to_owned());
    let mut o = Opts {
        namesrvs: 0,
        ..Opts::default().broker(move |c| {
            c.namesrv_addr = ns;
            c.broker_name = name;
            c.broker_role = BrokerRole::AsyncMaster;
            c.ha.listen_port = Some(0);
            c.ha.send_heartbeat_interval = 500;
            c.register_broker_interval_ms = 500;
        })
    };
    if let Some(s) = store {
        o = o.store(s);
    }
    TestServer::start(o)
}

fn slave(ns: &str, name: &str) -> TestServer {
    let (ns, name) = (ns.to_owned(), name.to_owned());
    TestServer::start(Opts {
        namesrvs: 0,
        ..Opts::default().broker(move |c| {
            c.namesrv_addr = ns;
            c.broker_name = name;
            c.broker_role = BrokerRole::Slave;
            c.broker_id = 1;
            c.slave_read_enable = true;
            c.ha.send_heartbeat_interval = 500;
            c.ha.slave_sync_interval = 300;
            c.register_broker_interval_ms = 500;
        })
    })
}

async fn commit(c: &actormq::client::RemotingClient, b: &str, g: &str, t: &str, q: i32, o: i64) {
    let q = q.to_string();
    let o = o.to_string();
    let e = ext(&[
        ("consumerGroup", g),
        ("topic", t),
        ("queueId", &q),
        ("commitOffset", &o),
    ]);
    let r = call(c, b, request::UPDATE_CONSUMER_OFFSET, e, None).await;
    assert_eq!(r.code, response::SUCCESS, "commit on {b}: {:?}", r.remark);
}

async fn committed(
    c: &actormq::client::RemotingClient,
    b: &str,
    g: &str,
    t: &str,
    q: i32,
) -> Option<i64> {
    let h = QueryConsumerOffsetRequestHeader {
        consumer_group: g.into(),
        topic: t.into(),
        queue_id: q,
        set_zero_if_not_found: Some(false),
    };
    let r = call(c, b, request::QUERY_CONSUMER_OFFSET, h.to_ext(), None).await;
    (r.code == response::SUCCESS).then(|| OffsetResponseHeader::from_ext(&r.ext).unwrap().offset)
}

async fn body_of(c: &actormq::client::RemotingClient, b: &str, code: i32) -> Option<String> {
    let r = call(c, b, code, ext(&[]), None).await;
    (r.code == response::SUCCESS).then(|| String::from_utf8(r.body_bytes().to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_copies_topics_offsets_groups_and_delay_offsets_from_its_master() {
    let ns = namesrv();
    let store = tempfile::tempdir().unwrap();
    let m = master(ns.namesrv(), "sync-a", Some(store.path()));
    let s = slave(ns.namesrv(), "sync-a");
    let c = client();
    // A topic without messages reaches the slave only through the sync.
    create_topic(&c, m.broker(), "SyncTopic", 3).await;
    commit(&c, m.broker(), "syncGroup", "SyncTopic", 1, 3).await;
    let group = serde_json::json!({"groupName": "syncGroup", "retryMaxTimes": 7});
    let r = call(
        &c,
        m.broker(),
        request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        ext(&[]),
        Some(serde_json::to_vec(&group).unwrap().into()),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    send_ok(
        &c,
        m.broker(),
        "SyncTopic",
        0,
        &Msg::new("later").prop("DELAY", "1"),
    )
    .await;
    let master_delay = eventually(Duration::from_secs(15), || async {
        body_of(&c, m.broker(), request::GET_ALL_DELAY_OFFSET).await
    })
    .await
    .expect("the master's schedule persisted its offsets");
    let master_delay: serde_json::Value = serde_json::from_str(&master_delay).unwrap();

    let synced = eventually(Duration::from_secs(10), || async {
        let topic = topic_config(&c, s.broker(), "SyncTopic").await;
        let offset = committed(&c, s.broker(), "syncGroup", "SyncTopic", 1).await;
        let groups = body_of(&c, s.broker(), request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await?;
        let groups: serde_json::Value = serde_json::from_str(&groups).ok()?;
        let delay = body_of(&c, s.broker(), request::GET_ALL_DELAY_OFFSET).await?;
        let delay: serde_json::Value = serde_json::from_str(&delay).ok()?;
        let group_ok = groups["subscriptionGroupTable"]["syncGroup"]["retryMaxTimes"] == 7;
        (topic.code == response::SUCCESS
            && offset == Some(3)
            && group_ok
            && delay["offsetTable"] == master_delay["offsetTable"])
            .then_some(())
    })
    .await;
    assert!(
        synced.is_some(),
        "the slave did not get the master's metadata"
    );

    // The master goes away: the slave takes commits itself...
    m.stop();
    commit(&c, s.broker(), "syncGroup", "SyncTopic", 1, 9).await;
    assert_eq!(
        committed(&c, s.broker(), "syncGroup", "SyncTopic", 1).await,
        Some(9)
    );
    // ...and keeps them when the master returns with an older value.
    let m = master(ns.namesrv(), "sync-a", Some(store.path()));
    assert_eq!(
        committed(&c, m.broker(), "syncGroup", "SyncTopic", 1).await,
        Some(3)
    );
    commit(&c, m.broker(), "syncGroup", "SyncTopic", 2, 5).await;
    let resynced = eventually(Duration::from_secs(10), || async {
        (committed(&c, s.broker(), "syncGroup", "SyncTopic", 2).await == Some(5)).then_some(())
    })
    .await;
    assert!(
        resynced.is_some(),
        "the slave syncs from the restarted master"
    );
    assert_eq!(
        committed(&c, s.broker(), "syncGroup", "SyncTopic", 1).await,
        Some(9),
        "an older master value overwrote the slave's own commit"
    );
    s.stop();
    m.stop();
}

/// A master as a child process (`actormq broker`) registered on `ns`.
fn spawn_master(dir: &Path, ns: &str, name: &str) -> (ChildServer, String) {
    let port = free_port();
    let conf = dir.join("master.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerName={name}\nbrokerRole=ASYNC_MASTER\nhaListenPort=0\nslaveReadEnable=true\n\
             accessMessageInMemoryMaxRatio=0\nregisterBrokerIntervalMs=500\n\
             mapedFileSizeCommitLog=1048576\nmaxHashSlotNum=5000\nmaxIndexNum=20000\n\
             brokerIP1=127.0.0.1\nlistenAddr=127.0.0.1\n"
        ),
    )
    .unwrap();
    let store = dir.join("store");
    let args = [
        "broker",
        "-c",
        conf.to_str().unwrap(),
        "-n",
        ns,
        "--port",
        &port.to_string(),
        "--store",
        store.to_str().unwrap(),
    ]
    .map(str::to_owned);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = dir.join("master.log");
    let mut p = ChildServer::spawn("master", &args, &log);
    let addr = format!("127.0.0.1:{port}");
    if !wait_port(&addr, Duration::from_secs(20)) {
        let running = p.is_running();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("master did not come up (running: {running}); log:\n{text}");
    }
    (p, addr)
}

/// The broker ids the name server routes `topic` to.
async fn routed_ids(c: &actormq::client::RemotingClient, ns: &str, topic: &str) -> Vec<i64> {
    let body = wait_route(c, ns, topic).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut ids: Vec<i64> = v["brokerDatas"][0]["brokerAddrs"]
        .as_object()
        .map(|m| m.keys().filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_of_the_master_a_consumer_goes_on_from_the_slave_at_its_committed_offsets() {
    const TOPIC: &str = "FailTopic";
    const QUEUES: i32 = 2;
    const PER_QUEUE: usize = 40;
    let ns = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let (mut m, maddr) = spawn_master(dir.path(), ns.namesrv(), "fail-a");
    let s = slave(ns.namesrv(), "fail-a");
    let c = client();
    create_topic(&c, &maddr, TOPIC, QUEUES).await;
    let mut sent = BTreeSet::new();
    for q in 0..QUEUES {
        for i in 0..PER_QUEUE {
            let body = format!("q{q}-m{i}");
            send_ok(&c, &maddr, TOPIC, q, &Msg::new(body.clone())).await;
            sent.insert(body);
        }
    }
    let both = eventually(Duration::from_secs(10), || async {
        (routed_ids(&c, ns.namesrv(), TOPIC).await == vec![0, 1]).then_some(())
    })
    .await;
    assert!(both.is_some(), "master and slave are both routed");
    let copied = eventually(Duration::from_secs(10), || async {
        if topic_config(&c, s.broker(), TOPIC).await.code != response::SUCCESS {
            return None;
        }
        for q in 0..QUEUES {
            if pull_all(&c, s.broker(), TOPIC, q).await.len() != PER_QUEUE {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(copied.is_some(), "the slave has every message");

    // First half of each queue through the client, committed on the master.
    let consumer = PullConsumer::new("failGroup", ns.namesrv());
    let mut got = Vec::new();
    let mut suggested_slave = false;
    for q in 0..QUEUES {
        let mq = MessageQueue {
            topic: TOPIC.into(),
            broker_name: "fail-a".into(),
            queue_id: q,
        };
        let mut offset = 0;
        while offset < (PER_QUEUE / 2) as i64 {
            let r = consumer.pull(&mq, offset, 4, None, "*").await.unwrap();
            assert_eq!(r.status, PullStatus::Found);
            for msg in r.messages.iter().take((PER_QUEUE / 2) - offset as usize) {
                got.push(String::from_utf8(msg.body.to_vec()).unwrap());
            }
            offset = (r.next_begin_offset).min((PER_QUEUE / 2) as i64);
            // accessMessageInMemoryMaxRatio=0: a master behind its end
            // sends the consumer to whichBrokerWhenConsumeSlowly.
            suggested_slave |= r.next_begin_offset < PER_QUEUE as i64;
        }
        consumer
            .update_offset("failGroup", &mq, offset)
            .await
            .unwrap();
    }
    assert!(suggested_slave);
    // The slave has the commits (the metadata sync) before the master dies.
    let ready = eventually(Duration::from_secs(10), || async {
        for q in 0..QUEUES {
            let off = committed(&c, s.broker(), "failGroup", TOPIC, q).await;
            if off != Some((PER_QUEUE / 2) as i64) {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "the slave caught up with messages and offsets"
    );

    m.kill9();
    // The name server drops the master with its connection, not after the
    // 120 s broker timeout.
    let dropped = eventually(Duration::from_secs(5), || async {
        (routed_ids(&c, ns.namesrv(), TOPIC).await == vec![1]).then_some(())
    })
    .await;
    assert!(dropped.is_some(), "the killed master is still routed");

    // The same consumer goes on: committed offset, then the rest, from the slave.
    for q in 0..QUEUES {
        let mq = MessageQueue {
            topic: TOPIC.into(),
            broker_name: "fail-a".into(),
            queue_id: q,
        };
        let start = eventually(Duration::from_secs(10), || async {
            consumer.query_offset("failGroup", &mq).await.ok().flatten()
        })
        .await
        .expect("committed offset readable from the slave");
        assert_eq!(start, (PER_QUEUE / 2) as i64);
        let mut offset = start;
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 200, "no progress on queue {q} at {offset}");
            match consumer.pull(&mq, offset, 8, None, "*").await {
                Ok(r) if r.status == PullStatus::Found => {
                    got.extend(
                        r.messages
                            .iter()
                            .map(|m| String::from_utf8(m.body.to_vec()).unwrap()),
                    );
                    offset = r.next_begin_offset;
                }
                Ok(r) if r.status == PullStatus::NoNewMsg => break,
                Ok(r) => panic!("pull from the slave: {:?}", r.status),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        consumer
            .update_offset("failGroup", &mq, offset)
            .await
            .unwrap();
        assert_eq!(
            committed(&c, s.broker(), "failGroup", TOPIC, q).await,
            Some(PER_QUEUE as i64),
            "the slave took the commit"
        );
    }
    // The checker: every acknowledged message consumed, each once.
    let consumed: BTreeSet<String> = got.iter().cloned().collect();
    let missing: Vec<_> = sent.difference(&consumed).collect();
    assert!(missing.is_empty(), "not consumed: {missing:?}");
    assert_eq!(
        got.len(),
        sent.len(),
        "duplicates: {}",
        got.len() - sent.len()
    );
    s.stop();
}

/// `actormq admin <args>`; its stdout (the command must succeed).
async fn admin(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_actormq"))
            .arg("admin")
            .args(&args)
            .output()
            .expect("run actormq admin");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "admin {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_list_shows_roles_and_ha_status_shows_the_slaves_progress() {
    let ns = namesrv();
    let m = master(ns.namesrv(), "status-a", None);
    let s = slave(ns.namesrv(), "status-a");
    let c = client();
    create_topic(&c, m.broker(), "StatusTopic", 1).await;
    for i in 0..20 {
        send_ok(&c, m.broker(), "StatusTopic", 0, &Msg::new(format!("m{i}"))).await;
    }
    let n = ns.namesrv().to_owned();
    let master_row = format!("status-a                0     MASTER  {}", m.broker());
    let slave_row = format!("status-a                1     SLAVE   {}", s.broker());
    let listed = eventually(Duration::from_secs(10), || async {
        let out = admin(vec!["clusterList".into(), "-n".into(), n.clone()]).await;
        (out.contains(&master_row) && out.contains(&slave_row)).then_some(out)
    })
    .await;
    assert!(listed.is_some(), "clusterList without both roles");

    // The master sees one slave that acknowledged its whole log; the slave
    // follows the master's HA address and has the same log end.
    let status = |b: String| {
        admin(vec![
            "haStatus".into(),
            "-n".into(),
            n.clone(),
            "-b".into(),
            b,
        ])
    };
    let caught_up = eventually(Duration::from_secs(10), || async {
        let mo = status(m.broker().to_owned()).await;
        let so = status(s.broker().to_owned()).await;
        let end: i64 = mo
            .split("#MasterCommitLogMaxOffset: ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let slave_line = mo.lines().find(|l| l.ends_with("  OK"))?;
        let acked: Vec<&str> = slave_line.split_whitespace().collect();
        (end > 0
            && mo.contains("#SlaveNum: 1  #InSyncSlaveNum: 1")
            && acked[1] == end.to_string()
            && acked[2] == "0"
            && so.contains(&format!("#MaxOffset: {end}  #IsActivated: true")))
        .then_some(())
    })
    .await;
    assert!(
        caught_up.is_some(),
        "haStatus does not show the caught-up slave"
    );
    s.stop();
    m.stop();
}
