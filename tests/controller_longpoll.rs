//! Long polling and a full disk in controller mode (issue #13): the consume queues cap
//! reads at the confirm offset (what every SyncStateSet member has) while
//! records are dispatched as they are written, so a held request must be
//! woken when the confirm offset moves, not only at the next dispatch.
//! A controller, a name server and a master + slave in controller mode
//! with `allAckInSyncStateSet=true`, all child processes.
//!
//! * `held_pulls_and_pops_are_answered_once_the_message_is_confirmed`: a
//!   PULL_MESSAGE (suspend 20 s) held on an empty queue and a POP (poll
//!   20 s) waiting on another are answered with the message a producer
//!   then sends (acknowledged), well before their timeouts (< 10 s); a
//!   push consumer (the Rust client, 15 s suspend) that caught up gets the
//!   next message within 10 s (before the wake-up: its held pull waited
//!   for the suspend timeout), then every acknowledged message of a
//!   trickle, the last within 10 s.
//! * `a_stopped_slave_keeps_the_confirm_offset_back`: the slave
//!   SIGSTOPped, a send is written but not confirmed (FLUSH_SLAVE_TIMEOUT:
//!   with `allAckInSyncStateSet=false` the master's confirm offset is its
//!   log end, so nothing would be held back); a held pull is not answered
//!   with it, a plain pull does not see it; SIGCONT: the held pull gets it
//!   within 10 s.
//! * `a_master_with_a_full_disk_refuses_sends_and_stays_master`
//!   (apache/rocketmq#6468): the master's disk "fills"
//!   (`diskUsageOverrideFile`, read at every check): sends are refused
//!   with SERVICE_NOT_AVAILABLE "disk full" and nothing is stored; past
//!   the heartbeat timeout it is still master of the same epoch and alive
//!   at the controller (no failover, as in RocketMQ); space back: sends are
//!   acknowledged again and every acknowledged message is on the master
//!   exactly once.

mod common;
mod controller_support;
mod replication_util;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actormq::client::push::{ConsumeFrom, ConsumeResult, Listener, PushConfig, PushConsumer};
use actormq::client::remoting::RemotingClient;
use actormq::client::{Message, Producer, ProducerConfig, SendStatus};
use actormq::wire::codes::{request as rq, response as rs};
use common::{
    client, create_topic, decode_checked, eventually, pop_raw, pull_cmd, queue_offset, send_ok,
    send_raw, wait_route, ChildServer, Msg, PopCall,
};
use controller_support::*;

/// One cluster at a time: each starts four processes.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOPIC: &str = "LongPollT";
const BROKER: &str = "broker-a";
/// The hold the requests ask for.
const SUSPEND: Duration = Duration::from_secs(20);
/// The issue's bound for an answer after the message is confirmed.
const BOUND: Duration = Duration::from_secs(10);

/// The brokers' settings on top of `BrokerNode`'s.
const BROKER_CONF: &str = "allAckInSyncStateSet=true\ncheckSyncStateSetPeriod=500\n\
    haSendHeartbeatInterval=1000\nsyncFlushTimeout=2000\ndefaultTopicQueueNums=2";

/// Controller, name server, master (id 1) and slave (id 2), the
/// SyncStateSet {1, 2}; killed on drop.
struct Pair {
    g: Group,
    _ns: ChildServer,
    ns: String,
    ctl: String,
    master: BrokerNode,
    slave: BrokerNode,
    _dir: tempfile::TempDir,
}

impl Pair {
    /// `extra`: both brokers' settings; `master_extra`: the first's only.
    async fn start(c: &RemotingClient, extra: &str, master_extra: &str) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let (g, ctl, ns_proc, ns) = controller_and_namesrv(c, dir.path()).await;
        let controllers = g.addrs.join(";");
        let conf = format!("{BROKER_CONF}\n{extra}");
        let master = BrokerNode::new(
            dir.path(),
            0,
            &ns,
            &controllers,
            &format!("{conf}\n{master_extra}"),
        );
        wait_master(&g, c, BROKER, 1, 1, Duration::from_secs(20)).await;
        let slave = BrokerNode::new(dir.path(), 1, &ns, &controllers, &conf);
        let p = Pair {
            g,
            _ns: ns_proc,
            ns,
            ctl: ctl.clone(),
            master,
            slave,
            _dir: dir,
        };
        let both: BTreeSet<i64> = [1, 2].into();
        let joined = eventually(Duration::from_secs(30), || async {
            let (_, h, b) = replica_info(c, &ctl, BROKER).await;
            (h.master_broker_id == Some(1) && b.sync_state_set == both).then_some(())
        })
        .await;
        assert!(joined.is_some(), "SyncStateSet never {{1,2}}\n{}", p.logs());
        // The master adopts the set when the controller's answer reaches it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        create_topic(c, &p.master.addr, TOPIC, 2).await;
        p
    }

    /// A pull answered FOUND with the one message `body`.
    fn assert_found(&self, r: &actormq::wire::RemotingCommand, body: &str) {
        assert_eq!(
            r.code,
            rs::SUCCESS,
            "held pull: {:?}\n{}",
            r.remark,
            self.logs()
        );
        let got: Vec<String> = decode_checked(&r.body_bytes())
            .iter()
            .map(|m| String::from_utf8_lossy(&m.body).into_owned())
            .collect();
        assert_eq!(got, [body]);
    }

    fn logs(&self) -> String {
        format!(
            "{}{}{}",
            self.g.logs(),
            self.master.logs(),
            self.slave.logs()
        )
    }
}

/// A PULL_MESSAGE of queue `qid` from `offset` held up to [`SUSPEND`], in
/// the background: (response, time it took).
fn held_pull(
    c: &RemotingClient,
    broker: &str,
    qid: i32,
    offset: i64,
) -> tokio::task::JoinHandle<(actormq::wire::RemotingCommand, Duration)> {
    let (c, broker) = (c.clone(), broker.to_owned());
    tokio::spawn(async move {
        let t0 = Instant::now();
        let cmd = pull_cmd(TOPIC, qid, offset, 32, Some("*"), Some(SUSPEND));
        let r = c
            .invoke(&broker, cmd, SUSPEND + Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("held pull: {e}"));
        (r, t0.elapsed())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_pulls_and_pops_are_answered_once_the_message_is_confirmed() {
    let _one = SERIAL.lock().await;
    let c = client();
    let p = Pair::start(&c, "", "").await;
    let master = p.master.addr.clone();

    // A pull held on the empty queue 0 and a POP waiting on queue 1.
    let pull = held_pull(&c, &master, 0, 0);
    let pop = {
        let (c, master) = (c.clone(), master.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let call = PopCall {
                queue_id: 1,
                poll_ms: SUSPEND.as_millis() as i64,
                ..PopCall::new("longpoll_pop", TOPIC)
            };
            let r = pop_raw(&c, &master, BROKER, &call).await;
            (r, t0.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!pull.is_finished(), "the pull was not held");
    assert!(!pop.is_finished(), "the POP did not wait");

    // Acknowledged with allAckInSyncStateSet: the slave has it, the
    // confirm offset covers it.
    let sent = Instant::now();
    send_ok(&c, &master, TOPIC, 0, &Msg::new("held-0")).await;
    send_ok(&c, &master, TOPIC, 1, &Msg::new("popped-1")).await;
    let (r, _) = pull.await.unwrap();
    let pulled_after = sent.elapsed();
    p.assert_found(&r, "held-0");
    let (popped, _) = pop.await.unwrap();
    let popped_after = sent.elapsed();
    assert_eq!(popped.code, rs::SUCCESS, "POP: {:?}", popped.remark);
    let got: Vec<String> = popped
        .msgs
        .iter()
        .map(|(m, _)| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(got, ["popped-1"]);
    eprintln!("held pull answered {pulled_after:?}, POP {popped_after:?} after the send");
    assert!(
        pulled_after < BOUND && popped_after < BOUND,
        "answered {pulled_after:?} / {popped_after:?} after the send (hold {SUSPEND:?})"
    );

    // A push consumer (15 s suspend) under a slow trickle: every pull it
    // holds at a queue's end waits for the confirm offset.
    wait_route(&c, &p.ns, TOPIC).await;
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let mut cfg = PushConfig::new("longpoll_push");
    cfg.consume_from = ConsumeFrom::FirstOffset;
    cfg.offsets_dir = p._dir.path().join("offsets");
    let mut consumer = PushConsumer::new(cfg, &p.ns);
    consumer.subscribe(TOPIC, "*");
    {
        let seen = seen.clone();
        consumer.register_listener(Listener::concurrent(move |msgs, _| {
            let mut s = seen.lock().unwrap();
            for m in msgs {
                s.insert(String::from_utf8_lossy(&m.body).into_owned());
            }
            ConsumeResult::Success
        }));
    }
    consumer.start().await.expect("push consumer");
    let mut pcfg = ProducerConfig::new("longpoll_pg");
    pcfg.retry_times_when_send_failed = 0;
    let producer = Producer::with_config(pcfg, actormq::client::route::Routes::connect(&p.ns));
    let mut acked = vec!["held-0".to_owned(), "popped-1".to_owned()];
    let has = |body: &str| seen.lock().unwrap().contains(body);
    assert!(
        eventually(BOUND, || async {
            (has("held-0") && has("popped-1")).then_some(())
        })
        .await
        .is_some(),
        "the push consumer did not catch up"
    );
    // Caught up: its pulls are held at the queues' ends. One message.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = producer.send(Message::new(TOPIC, "push-first")).await;
    assert!(
        r.as_ref().is_ok_and(|r| r.status == SendStatus::SendOk),
        "send: {r:?}"
    );
    let sent = Instant::now();
    let got = eventually(BOUND, || async { has("push-first").then_some(()) }).await;
    assert!(
        got.is_some(),
        "the push consumer did not get the message within {BOUND:?}"
    );
    eprintln!(
        "push consumer: a message received {:?} after its ack",
        sent.elapsed()
    );
    acked.push("push-first".into());
    // A trickle.
    for i in 0..20 {
        let body = format!("push-{i}");
        if let Ok(r) = producer.send(Message::new(TOPIC, body.clone())).await {
            if r.status == SendStatus::SendOk {
                acked.push(body);
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(acked.len() > 21, "sends failed: {acked:?}\n{}", p.logs());
    let last = Instant::now();
    let all = eventually(BOUND, || async {
        let s = seen.lock().unwrap();
        acked.iter().all(|a| s.contains(a)).then_some(())
    })
    .await;
    let missing: Vec<&String> = {
        let s = seen.lock().unwrap();
        acked.iter().filter(|a| !s.contains(*a)).collect()
    };
    assert!(
        all.is_some(),
        "push consumer lacks {missing:?} {:?} after the last send",
        last.elapsed()
    );
    eprintln!(
        "push consumer: {} acknowledged messages, all received {:?} after the last send",
        acked.len(),
        last.elapsed()
    );
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_slave_keeps_the_confirm_offset_back() {
    let _one = SERIAL.lock().await;
    let c = client();
    // Neither side gives up on the stopped slave during the test: no
    // housekeeping close, no shrink of the SyncStateSet.
    let p = Pair::start(
        &c,
        "haHousekeepingInterval=60000\nhaMaxTimeSlaveNotCatchup=60000",
        "",
    )
    .await;
    let master = p.master.addr.clone();
    send_ok(&c, &master, TOPIC, 0, &Msg::new("before")).await;
    let pull = held_pull(&c, &master, 0, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pull.is_finished(), "the pull was not held");

    replication_util::signal(p.slave.pid(), libc::SIGSTOP);
    // Written, but no member but the master has it: not acknowledged.
    let r = send_raw(&c, &master, TOPIC, 0, &Msg::new("unconfirmed")).await;
    assert_eq!(
        r.code,
        rs::FLUSH_SLAVE_TIMEOUT,
        "send with the slave stopped: {:?}",
        r.remark
    );
    // In the consume queue, but not announced past the confirm offset
    // (apache/rocketmq#6609).
    assert_eq!(
        queue_offset(&c, &master, rq::GET_MAX_OFFSET, TOPIC, 0).await,
        1,
        "GET_MAX_OFFSET counts the unconfirmed record"
    );
    let plain = c
        .invoke(&master, pull_cmd(TOPIC, 0, 1, 32, None, None), common::CALL)
        .await
        .unwrap();
    assert_eq!(
        plain.code,
        rs::PULL_NOT_FOUND,
        "a pull read past the confirm offset: {:?}",
        plain.remark
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !pull.is_finished(),
        "the held pull was answered while the message was unconfirmed"
    );

    replication_util::signal(p.slave.pid(), libc::SIGCONT);
    let resumed = Instant::now();
    let (r, held) = pull.await.unwrap();
    let after = resumed.elapsed();
    p.assert_found(&r, "unconfirmed");
    eprintln!("held {held:?}; answered {after:?} after SIGCONT");
    assert!(
        after < BOUND,
        "answered {after:?} after SIGCONT (held {held:?} of {SUSPEND:?})"
    );
}

/// (master id, master epoch, whether the controller hears the master).
async fn master_at_controller(c: &RemotingClient, ctl: &str) -> (Option<i64>, i32, bool) {
    let cmd = actormq::wire::RemotingCommand::request(rq::CONTROLLER_GET_SYNC_STATE_DATA)
        .with_body(format!(r#"["{BROKER}"]"#).into_bytes());
    let r = c.invoke(ctl, cmd, CALL).await.expect("GET_SYNC_STATE_DATA");
    let info: actormq::wire::controller::BrokerReplicasInfo =
        actormq::wire::json::from_fastjson(&r.body_bytes()).unwrap_or_default();
    let Some(set) = info.replicas_info_table.get(BROKER) else {
        return (None, 0, false);
    };
    let alive = set
        .in_sync_replicas
        .iter()
        .chain(&set.not_in_sync_replicas)
        .any(|m| Some(m.broker_id) == set.master_broker_id && m.alive);
    (set.master_broker_id, set.master_epoch, alive)
}

/// Messages stored in the topic's two queues.
async fn stored(c: &RemotingClient, broker: &str) -> i64 {
    let mut sum = 0;
    for q in 0..2 {
        sum += queue_offset(c, broker, rq::GET_MAX_OFFSET, TOPIC, q).await;
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_with_a_full_disk_refuses_sends_and_stays_master() {
    let _one = SERIAL.lock().await;
    let c = client();
    let knob = tempfile::tempdir().unwrap();
    let usage = knob.path().join("usage");
    std::fs::write(&usage, "10").unwrap();
    let p = Pair::start(
        &c,
        "cleanResourceInterval=100",
        &format!("diskUsageOverrideFile={}", usage.display()),
    )
    .await;
    let master = p.master.addr.clone();
    let mut acked: Vec<String> = Vec::new();
    let mut n = 0;
    let mut send = || {
        n += 1;
        let (c, master, body) = (c.clone(), master.clone(), format!("m-{n}"));
        async move {
            let r = send_raw(&c, &master, TOPIC, n % 2, &Msg::new(body.clone())).await;
            (r, body)
        }
    };
    for _ in 0..10 {
        let (r, body) = send().await;
        assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
        acked.push(body);
    }
    let before = master_at_controller(&c, &p.ctl).await;
    assert_eq!((before.0, before.2), (Some(1), true));

    // The disk fills: sends are refused with the reason, nothing stored.
    std::fs::write(&usage, "95").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let (r, body) = send().await;
        if r.code == rs::SUCCESS {
            acked.push(body);
        } else {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "sends still accepted on a full disk"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        refused.code,
        rs::SERVICE_NOT_AVAILABLE,
        "{:?}",
        refused.remark
    );
    let why = refused.remark.clone().unwrap_or_default();
    assert!(
        why.contains("disk full"),
        "refused for another reason: {why}"
    );
    let count = stored(&c, &master).await;
    assert_eq!(count, acked.len() as i64, "a refused send was stored");

    // Past the heartbeat timeout (3 s): still refusing, still the master of
    // the same epoch, still heard by the controller.
    let full_since = Instant::now();
    while full_since.elapsed() < Duration::from_millis(4500) {
        let (r, _) = send().await;
        assert_eq!(r.code, rs::SERVICE_NOT_AVAILABLE, "{:?}", r.remark);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        master_at_controller(&c, &p.ctl).await,
        before,
        "the full master lost its role\n{}",
        p.logs()
    );
    assert_eq!(stored(&c, &master).await, count);

    // Space returns: sends are acknowledged again.
    std::fs::write(&usage, "10").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (r, body) = send().await;
        if r.code == rs::SUCCESS {
            acked.push(body);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sends still refused after space returned: {:?}\n{}",
            r.remark,
            p.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        let (r, body) = send().await;
        assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
        acked.push(body);
    }
    assert_eq!(master_at_controller(&c, &p.ctl).await, before);
    let mut have = Vec::new();
    for q in 0..2 {
        for m in common::pull_all(&c, &master, TOPIC, q).await {
            have.push(String::from_utf8_lossy(&m.body).into_owned());
        }
    }
    have.sort();
    acked.sort();
    assert_eq!(
        have, acked,
        "the master's messages are not the acknowledged ones"
    );
}
