//! Long polling in controller mode (issue #13): the consume queues cap
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
//!   push consumer (the Rust client, 15 s suspend) receives every
//!   acknowledged message of a slow trickle, the last within 10 s.
//! * `a_stopped_slave_keeps_the_confirm_offset_back`: the slave
//!   SIGSTOPped, a send is written but not confirmed (FLUSH_SLAVE_TIMEOUT:
//!   with `allAckInSyncStateSet=false` the master's confirm offset is its
//!   log end, so nothing would be held back); a held pull is not answered
//!   with it, a plain pull does not see it; SIGCONT: the held pull gets it
//!   within 10 s.

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
    client, create_topic, decode_checked, eventually, free_port, pop_raw, pull_cmd, queue_offset,
    send_ok, send_raw, wait_port, wait_route, ChildServer, Msg, PopCall,
};
use controller_support::*;

/// One cluster at a time: each starts four processes.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOPIC: &str = "LongPollT";
const BROKER: &str = "broker-a";
/// The hold the requests ask for.
const SUSPEND: Duration = Duration::from_secs(20);
/// The bound for an answer after the message is confirmed.
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
    master: BrokerNode,
    slave: BrokerNode,
    _dir: tempfile::TempDir,
}

impl Pair {
    async fn start(c: &RemotingClient, extra: &str) -> Pair {
        let g = Group::start(1, Mode::Standalone, "enableElectUncleanMaster=false");
        let ctl = g.addrs[g.leader(c, Duration::from_secs(20)).await].clone();
        let dir = tempfile::tempdir().unwrap();
        let ns_port = free_port();
        let ns = format!("127.0.0.1:{ns_port}");
        let ns_proc = ChildServer::spawn(
            "namesrv",
            &["namesrv", "--port", &ns_port.to_string()],
            &dir.path().join("ns.log"),
        );
        assert!(wait_port(&ns, Duration::from_secs(20)));
        let controllers = g.addrs.join(";");
        let conf = format!("{BROKER_CONF}\n{extra}");
        let master = BrokerNode::new(dir.path(), 0, &ns, &controllers, &conf);
        wait_master(&g, c, BROKER, 1, 1, Duration::from_secs(20)).await;
        let slave = BrokerNode::new(dir.path(), 1, &ns, &controllers, &conf);
        let p = Pair {
            g,
            _ns: ns_proc,
            ns,
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

fn bodies(r: &actormq::wire::RemotingCommand) -> Vec<String> {
    decode_checked(&r.body_bytes())
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_pulls_and_pops_are_answered_once_the_message_is_confirmed() {
    let _one = SERIAL.lock().await;
    let c = client();
    let p = Pair::start(&c, "").await;
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
    assert_eq!(
        r.code,
        rs::SUCCESS,
        "held pull: {:?}\n{}",
        r.remark,
        p.logs()
    );
    assert_eq!(bodies(&r), ["held-0"]);
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
    for i in 0..20 {
        let body = format!("push-{i}");
        if let Ok(r) = producer.send(Message::new(TOPIC, body.clone())).await {
            if r.status == SendStatus::SendOk {
                acked.push(body);
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(acked.len() > 20, "sends failed: {acked:?}\n{}", p.logs());
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
    assert_eq!(
        queue_offset(&c, &master, rq::GET_MAX_OFFSET, TOPIC, 0).await,
        2,
        "the record is in the consume queue"
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
    assert_eq!(
        r.code,
        rs::SUCCESS,
        "held pull: {:?}\n{}",
        r.remark,
        p.logs()
    );
    assert_eq!(bodies(&r), ["unconfirmed"]);
    eprintln!("held {held:?}; answered {after:?} after SIGCONT");
    assert!(
        after < BOUND,
        "answered {after:?} after SIGCONT (held {held:?} of {SUSPEND:?})"
    );
}
