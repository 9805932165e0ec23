//! Master–slave replication (RocketMQ's classic HA), black-box over real
//! sockets: a slave follows its master through the name server's
//! `haServerAddr`, serves the replicated messages at the master's offsets
//! with a byte-identical commit log; a SYNC_MASTER answers SUCCESS only with
//! a slave that has the message, SLAVE_NOT_AVAILABLE without a slave and
//! FLUSH_SLAVE_TIMEOUT with a slave that does not acknowledge (Java's
//! `ResponseCode` 11 and 12); after `kill -9` of a SYNC_MASTER under load,
//! every acknowledged message is on the slave.

mod common;
mod replication_util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actormq::config::BrokerRole;
use actormq::wire::codes::{request, response};
use actormq::wire::headers::send::SendMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use common::*;
use replication_util::log_bytes;

const TOPIC: &str = "RepTopic";
const QUEUES: i32 = 4;

/// A slave of the broker registered on `namesrv` as `name`, learning its
/// master's HA address from the name server (or `ha_master` when given).
fn slave(namesrv: &str, name: &str, ha_master: Option<String>) -> TestServer {
    let (ns, name) = (namesrv.to_owned(), name.to_owned());
    TestServer::start(Opts {
        namesrvs: 0,
        ..Opts::default().broker(move |c| {
            c.namesrv_addr = ns;
            c.broker_name = name;
            c.broker_role = BrokerRole::Slave;
            c.broker_id = 1;
            c.slave_read_enable = true;
            c.ha.master_address = ha_master.unwrap_or_default();
            c.ha.send_heartbeat_interval = 500;
        })
    })
}

fn master(name: &str, role: BrokerRole, ha_port: u16) -> TestServer {
    let name = name.to_owned();
    TestServer::start(Opts::default().broker(move |c| {
        c.broker_name = name;
        c.broker_role = role;
        c.sync_flush_timeout = 1_000;
        c.ha.listen_port = Some(ha_port);
        c.ha.send_heartbeat_interval = 500;
    }))
}

/// Every message of `TOPIC` on `broker`: (queue, queue offset) → (phys
/// offset, size, body).
async fn all_messages(broker: &str) -> BTreeMap<(i32, i64), (i64, i32, Vec<u8>)> {
    let c = client();
    let mut out = BTreeMap::new();
    for q in 0..QUEUES {
        for m in pull_all(&c, broker, TOPIC, q).await {
            out.insert(
                (q, m.queue_offset),
                (m.commit_log_offset, m.store_size, m.body.to_vec()),
            );
        }
    }
    out
}

/// GET_MAX_OFFSET of a queue of `TOPIC`; None while the topic is unknown.
async fn max_offset(c: &actormq::client::RemotingClient, broker: &str, q: i32) -> Option<i64> {
    use actormq::wire::headers::offset::{OffsetResponseHeader, QueueRequestHeader};
    let h = QueueRequestHeader {
        topic: TOPIC.into(),
        queue_id: q,
        committed: None,
    };
    let r = call(c, broker, request::GET_MAX_OFFSET, h.to_ext(), None).await;
    (r.code == response::SUCCESS).then(|| OffsetResponseHeader::from_ext(&r.ext).unwrap().offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_serves_the_masters_messages_at_the_same_offsets_with_an_identical_log() {
    let m = master("rep-a", BrokerRole::AsyncMaster, 0);
    let s = slave(m.namesrv(), "rep-a", None);
    let c = client();
    wait_slave_connected(m.broker()).await;
    create_topic(&c, m.broker(), TOPIC, QUEUES).await;
    // ~2.5 MiB over 1 MiB segments: the slave also copies segment fillers.
    let mut sent = BTreeSet::new();
    for i in 0..320u64 {
        let body = pseudo_body(i, 1_000 + (i as usize * 37) % 12_000);
        let q = (i % QUEUES as u64) as i32;
        let r = send_ok(
            &c,
            m.broker(),
            TOPIC,
            q,
            &Msg::new(body.clone()).keys(&format!("k{i}")),
        )
        .await;
        sent.insert((q, r.queue_offset, body));
    }
    let on_master = all_messages(m.broker()).await;
    assert_eq!(on_master.len(), 320);
    let end = on_master
        .values()
        .map(|(p, n, _)| p + *n as i64)
        .max()
        .unwrap();
    assert!(end > 2 << 20, "the log spans three segments");
    let got = eventually(Duration::from_secs(20), || async {
        let mut all = 0;
        for q in 0..QUEUES {
            all += max_offset(&c, s.broker(), q).await?;
        }
        (all == 320).then_some(())
    })
    .await;
    assert!(got.is_some(), "the slave did not get all 320 messages");
    let on_slave = all_messages(s.broker()).await;
    assert_eq!(on_slave, on_master, "same messages at the same offsets");
    let from_slave: BTreeSet<_> = on_slave
        .iter()
        .map(|((q, o), (_, _, b))| (*q, *o, b.clone()))
        .collect();
    assert_eq!(from_slave, sent);
    let (a, b) = (log_bytes(&m.store, end), log_bytes(&s.store, end));
    assert_eq!(a.len() as i64, end);
    assert!(
        a == b,
        "the commit logs differ below the master's max offset"
    );
    s.stop();
    m.stop();
}

/// Waits until `master` has a slave that reported its offset (an empty
/// slave connected before the sends copies the log from 0).
async fn wait_slave_connected(master: &str) {
    use actormq::actors::ha::status::{HaRuntimeInfo, GET_BROKER_HA_STATUS};
    let ok = eventually(Duration::from_secs(20), || async {
        let r = call(&client(), master, GET_BROKER_HA_STATUS, ext(&[]), None).await;
        let st: HaRuntimeInfo = serde_json::from_slice(&r.body_bytes()).ok()?;
        st.ha_connection_info
            .iter()
            .any(|c| c.slave_ack_offset >= 0)
            .then_some(())
    })
    .await;
    assert!(ok.is_some(), "no slave connected to {master}");
}

async fn send_code(broker: &str, body: &[u8]) -> (i32, Option<SendMessageResponseHeader>) {
    let r = send_raw(&client(), broker, TOPIC, 0, &Msg::new(body.to_vec())).await;
    let h = SendMessageResponseHeader::from_ext(&r.ext).ok();
    (r.code, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_master_answers_success_only_when_a_slave_has_the_message() {
    let m = master("rep-sync", BrokerRole::SyncMaster, 0);
    create_topic(&client(), m.broker(), TOPIC, QUEUES).await;
    // No slave connected: stored, but SLAVE_NOT_AVAILABLE (as Java's
    // `isSlaveOK` false → PutMessageStatus.SLAVE_NOT_AVAILABLE).
    let (code, h) = send_code(m.broker(), b"alone").await;
    assert_eq!(code, response::SLAVE_NOT_AVAILABLE);
    assert_eq!(code, 11);
    assert!(h.is_some(), "the message was stored: the header is there");

    let s = slave(m.namesrv(), "rep-sync", None);
    let ok = eventually(Duration::from_secs(20), || async {
        let (code, h) = send_code(m.broker(), b"with-slave").await;
        (code == response::SUCCESS).then_some(h.unwrap())
    })
    .await
    .expect("a send answered SUCCESS once the slave connected");
    // Acknowledged: the slave has it (pull from the slave at that offset).
    let msgs = pull_all(&client(), s.broker(), TOPIC, 0).await;
    assert!(
        msgs.iter()
            .any(|x| x.queue_offset == ok.queue_offset && &x.body[..] == b"with-slave"),
        "the acknowledged message is on the slave"
    );
    for i in 0..50 {
        let (code, _) = send_code(m.broker(), format!("m{i}").as_bytes()).await;
        assert_eq!(code, response::SUCCESS, "send {i} with a live slave");
    }
    s.stop();
    m.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_master_times_out_with_a_slave_that_does_not_acknowledge() {
    let ha_port = free_port();
    let m = master("rep-mute", BrokerRole::SyncMaster, ha_port);
    create_topic(&client(), m.broker(), TOPIC, QUEUES).await;
    // A "slave" that reports offset 0 once and never again.
    let mut mute = tokio::net::TcpStream::connect(("127.0.0.1", ha_port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut mute, &0i64.to_be_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, h) = send_code(m.broker(), b"unacked").await;
    assert_eq!(
        code,
        response::FLUSH_SLAVE_TIMEOUT,
        "Java's FLUSH_SLAVE_TIMEOUT (12)"
    );
    assert_eq!(code, 12);
    assert!(h.is_some());
    drop(mute);
    m.stop();
}

/// A standalone SYNC_MASTER as a child process, its HA port fixed.
/// SEND_MESSAGE_V2 of `body` to queue `q` of `TOPIC`.
fn send_cmd(q: i32, body: &str) -> actormq::wire::RemotingCommand {
    let mut cmd = actormq::wire::RemotingCommand::request(request::SEND_MESSAGE_V2);
    cmd.ext = send_header(TOPIC, q, &Msg::new(body).properties(), false)
        .to_v2()
        .to_ext();
    cmd.with_body(bytes::Bytes::from(body.to_owned().into_bytes()))
}

fn spawn_master(dir: &Path, ha_port: u16) -> (ChildServer, String) {
    spawn_master_as(dir, ha_port, "SYNC_MASTER")
}

fn spawn_master_as(dir: &Path, ha_port: u16, role: &str) -> (ChildServer, String) {
    let conf = dir.join("master.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerName=rep-kill\nbrokerRole={role}\nhaListenPort={ha_port}\n\
             mapedFileSizeCommitLog=1048576\nmaxHashSlotNum=5000\nmaxIndexNum=20000\n\
             syncFlushTimeout=3000\nbrokerIP1=127.0.0.1\nlistenAddr=127.0.0.1\n"
        ),
    )
    .unwrap();
    spawn_standalone(
        &dir.join("store"),
        &conf,
        &dir.join("master.log"),
        Duration::from_secs(20),
    )
}

/// Waits until the producers have `n` acknowledged sends, kills the master
/// with SIGKILL while they go on sending, lets them notice, and returns
/// what was acknowledged.
async fn kill_after_acks<T: Clone>(
    acked: &Mutex<Vec<T>>,
    n: usize,
    master: &mut ChildServer,
    producers: Vec<tokio::task::JoinHandle<()>>,
    what: &str,
) -> Vec<T> {
    let enough = eventually(Duration::from_secs(30), || async {
        (acked.lock().unwrap().len() >= n).then_some(())
    })
    .await;
    assert!(enough.is_some(), "the {what} acknowledged too few sends");
    master.kill9();
    for p in producers {
        let _ = tokio::time::timeout(Duration::from_secs(10), p).await;
    }
    let acked = acked.lock().unwrap().clone();
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_a_sync_master_acknowledged_survives_its_kill_9_on_the_slave() {
    let dir = tempfile::tempdir().unwrap();
    let ha_port = free_port();
    let (mut master, addr) = spawn_master(dir.path(), ha_port);
    let s = slave(
        "127.0.0.1:1",
        "rep-kill",
        Some(format!("127.0.0.1:{ha_port}")),
    );
    create_topic(&client(), &addr, TOPIC, QUEUES).await;
    let acked: Arc<Mutex<Vec<(i32, String)>>> = Arc::default();
    let mut producers = Vec::new();
    for p in 0..4 {
        let (addr, acked) = (addr.clone(), acked.clone());
        producers.push(tokio::spawn(async move {
            let c = client();
            for i in 0.. {
                let body = format!("p{p}-{i}");
                let q = p % QUEUES;
                let cmd = send_cmd(q, &body);
                match c.invoke(&addr, cmd, CALL).await {
                    Ok(r) if r.code == response::SUCCESS => acked.lock().unwrap().push((q, body)),
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    let acked = kill_after_acks(&acked, 400, &mut master, producers, "SYNC_MASTER").await;
    // The checker: every acknowledged message is on the slave.
    let c = client();
    let mut on_slave = BTreeSet::new();
    for q in 0..QUEUES {
        for m in pull_all(&c, s.broker(), TOPIC, q).await {
            on_slave.insert((q, String::from_utf8(m.body.to_vec()).unwrap()));
        }
    }
    let lost: Vec<_> = acked.iter().filter(|a| !on_slave.contains(a)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages are not on the slave, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.first()
    );
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_serves_its_consumer_and_delay_offsets_for_a_slaves_sync() {
    let m = master("rep-meta", BrokerRole::AsyncMaster, 0);
    let c = client();
    create_topic(&c, m.broker(), TOPIC, QUEUES).await;
    send_ok(&c, m.broker(), TOPIC, 1, &Msg::new("x")).await;
    let r = call(
        &c,
        m.broker(),
        request::UPDATE_CONSUMER_OFFSET,
        ext(&[
            ("consumerGroup", "syncGroup"),
            ("topic", TOPIC),
            ("queueId", "1"),
            ("commitOffset", "1"),
        ]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = call(
        &c,
        m.broker(),
        request::GET_ALL_CONSUMER_OFFSET,
        ext(&[]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let v: serde_json::Value = serde_json::from_slice(&r.body_bytes()).unwrap();
    let key = format!("{TOPIC}@syncGroup");
    assert_eq!(v["offsetTable"][&key]["1"], 1, "offset table: {v}");
    // A delay-level message makes the schedule keep (and persist) offsets.
    send_ok(
        &c,
        m.broker(),
        TOPIC,
        0,
        &Msg::new("later").prop("DELAY", "1"),
    )
    .await;
    let body = eventually(Duration::from_secs(15), || async {
        let r = call(
            &c,
            m.broker(),
            request::GET_ALL_DELAY_OFFSET,
            ext(&[]),
            None,
        )
        .await;
        (r.code == response::SUCCESS).then(|| r.body_bytes())
    })
    .await
    .expect("GET_ALL_DELAY_OFFSET answered SUCCESS");
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("offsetTable"), "delayOffset.json: {text}");
    m.stop();
}

/// A slave as [`slave`], on the store at `store` (to restart it there).
fn slave_on(namesrv: &str, name: &str, store: &Path) -> TestServer {
    let (ns, name) = (namesrv.to_owned(), name.to_owned());
    TestServer::start(Opts {
        namesrvs: 0,
        ..Opts::default().store(store).broker(move |c| {
            c.namesrv_addr = ns;
            c.broker_name = name;
            c.broker_role = BrokerRole::Slave;
            c.broker_id = 1;
            c.slave_read_enable = true;
            c.ha.send_heartbeat_interval = 500;
        })
    })
}

/// Waits until `broker` holds `n` messages of `TOPIC`.
async fn wait_count(broker: &str, n: i64) -> bool {
    let c = client();
    eventually(Duration::from_secs(20), || async {
        let mut all = 0;
        for q in 0..QUEUES {
            all += max_offset(&c, broker, q).await?;
        }
        (all == n).then_some(())
    })
    .await
    .is_some()
}

/// Sends messages `range` round-robin over the queues, message `i` with a
/// body of `base + (i * step) % 9000` bytes (sizes vary so records straddle
/// transfer frames and segment ends).
async fn send_sized(
    c: &actormq::client::RemotingClient,
    broker: &str,
    range: std::ops::Range<u64>,
    base: usize,
    step: usize,
) {
    for i in range {
        let body = pseudo_body(i, base + (i as usize * step) % 9_000);
        send_ok(
            c,
            broker,
            TOPIC,
            (i % QUEUES as u64) as i32,
            &Msg::new(body),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_restarted_mid_stream_catches_up_from_its_own_offset() {
    let m = master("rep-restart", BrokerRole::AsyncMaster, 0);
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    create_topic(&c, m.broker(), TOPIC, QUEUES).await;
    let send = |from: u64, to: u64| send_sized(&c, m.broker(), from..to, 2_000, 53);
    // Started empty on an empty master: it copies from offset 0.
    let s = slave_on(m.namesrv(), "rep-restart", dir.path());
    wait_slave_connected(m.broker()).await;
    send(0, 150).await;
    assert!(wait_count(s.broker(), 150).await, "first copy");
    s.stop();
    // The master goes on while the slave is down.
    send(150, 300).await;
    let s = slave_on(m.namesrv(), "rep-restart", dir.path());
    assert!(
        wait_count(s.broker(), 300).await,
        "the restarted slave caught up"
    );
    let on_master = all_messages(m.broker()).await;
    assert_eq!(all_messages(s.broker()).await, on_master);
    let end = on_master
        .values()
        .map(|(p, n, _)| p + *n as i64)
        .max()
        .unwrap();
    assert!(
        log_bytes(&m.store, end) == log_bytes(dir.path(), end),
        "the commit logs differ below the master's max offset"
    );
    s.stop();
    m.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_of_an_async_master_the_slave_holds_an_intact_prefix_of_each_queue() {
    let dir = tempfile::tempdir().unwrap();
    let ha_port = free_port();
    let (mut master, addr) = spawn_master_as(dir.path(), ha_port, "ASYNC_MASTER");
    let s = slave(
        "127.0.0.1:1",
        "rep-kill",
        Some(format!("127.0.0.1:{ha_port}")),
    );
    create_topic(&client(), &addr, TOPIC, QUEUES).await;
    // Acknowledged sends per queue, in queue-offset order.
    let acked: Arc<Mutex<Vec<(i32, i64, String)>>> = Arc::default();
    let mut producers = Vec::new();
    for p in 0..4 {
        let (addr, acked) = (addr.clone(), acked.clone());
        producers.push(tokio::spawn(async move {
            let c = client();
            for i in 0.. {
                let body = format!("async-p{p}-{i}");
                let q = p % QUEUES;
                let cmd = send_cmd(q, &body);
                match c.invoke(&addr, cmd, CALL).await {
                    Ok(r) if r.code == response::SUCCESS => {
                        let h = SendMessageResponseHeader::from_ext(&r.ext).unwrap();
                        acked.lock().unwrap().push((q, h.queue_offset, body));
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    let acked = kill_after_acks(&acked, 2_000, &mut master, producers, "ASYNC_MASTER").await;
    let c = client();
    let mut lacking = 0;
    for q in 0..QUEUES {
        let on_slave = pull_all(&c, s.broker(), TOPIC, q).await;
        let mut mine: Vec<_> = acked.iter().filter(|a| a.0 == q).collect();
        mine.sort_by_key(|a| a.1);
        // What the slave has is exactly the first messages of the queue,
        // bodies intact; only a tail can be missing.
        for (m, a) in on_slave.iter().zip(mine.iter()) {
            assert_eq!(m.queue_offset, a.1, "queue {q}: offsets in order");
            assert_eq!(m.body.as_ref(), a.2.as_bytes(), "queue {q}: body intact");
        }
        lacking += mine.len().saturating_sub(on_slave.len());
    }
    eprintln!(
        "ASYNC_MASTER kill -9: the slave lacks {lacking} of {} acknowledged messages (the replication tail)",
        acked.len()
    );
    s.stop();
}

/// The messages of `TOPIC` on `broker` from each queue's min offset on:
/// (queue, queue offset) → (phys offset, body).
async fn messages_from_min(broker: &str) -> BTreeMap<(i32, i64), (i64, Vec<u8>)> {
    let c = client();
    let mut out = BTreeMap::new();
    for q in 0..QUEUES {
        let h = actormq::wire::headers::offset::QueueRequestHeader {
            topic: TOPIC.into(),
            queue_id: q,
            committed: None,
        };
        let r = call(&c, broker, request::GET_MIN_OFFSET, h.to_ext(), None).await;
        let Ok(min) = actormq::wire::headers::offset::OffsetResponseHeader::from_ext(&r.ext) else {
            continue; // the topic is not there yet
        };
        let mut at = min.offset;
        loop {
            let r = pull_raw(&c, broker, TOPIC, q, at, 32, None).await;
            if r.code != response::SUCCESS {
                break;
            }
            let msgs = decode_checked(&r.body_bytes());
            at = msgs.last().unwrap().queue_offset + 1;
            for m in msgs {
                out.insert((q, m.queue_offset), (m.commit_log_offset, m.body.to_vec()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_slave_starts_from_the_masters_last_segment() {
    let m = master("rep-last", BrokerRole::AsyncMaster, 0);
    let c = client();
    create_topic(&c, m.broker(), TOPIC, QUEUES).await;
    let send = |from: u64, to: u64| send_sized(&c, m.broker(), from..to, 3_000, 71);
    // ~2.3 MiB over 1 MiB segments: the last one starts at 2 MiB.
    send(0, 300).await;
    let dir = tempfile::tempdir().unwrap();
    let s = slave_on(m.namesrv(), "rep-last", dir.path());
    send(300, 340).await;
    let on_master = messages_from_min(m.broker()).await;
    assert_eq!(on_master.len(), 340);
    let last = 2i64 << 20;
    let tail: BTreeMap<_, _> = on_master
        .iter()
        .filter(|(_, (p, _))| *p >= last)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert!(
        !tail.is_empty() && tail.len() < 340,
        "the last segment holds some"
    );
    let copied = eventually(Duration::from_secs(20), || async {
        let on_slave = messages_from_min(s.broker()).await;
        (on_slave == tail).then_some(())
    })
    .await;
    assert!(
        copied.is_some(),
        "the slave holds exactly the messages of the master's last segment"
    );
    assert_eq!(replication_util::first_segment(dir.path()), Some(last));
    let end = on_master.values().map(|(p, _)| *p).max().unwrap() + 1;
    let (a, b) = (log_bytes(&m.store, end), log_bytes(dir.path(), end));
    assert!(
        a[last as usize..] == b[last as usize..],
        "the last segment is byte-identical"
    );
    s.stop();
    m.stop();
}
