//! Supervision of every long-lived actor, table-driven: for each actor type
//! a panic is injected (ACTORMQ_INJECT_FAULT, `faultInjectionEnable=true`)
//! in a handler, and for some in a periodic closure, in `started()` after
//! the restart, or between a commit-log append and its dispatch. After each
//! row: the actor's restart counter moved, sends, pulls, offsets, heartbeats
//! and topic admin still work, and every acknowledged message is pullable
//! at its acknowledged queue offset.
//!
//! The name server's `RouteTable` is covered by its own test below.

mod common;

use std::time::Duration;

use actormq::actors::supervisor::restarts;
use actormq::client::RemotingClient;
use actormq::wire::codes::{request, response};
use actormq::wire::headers::offset::{
    OffsetResponseHeader, QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use actormq::wire::headers::send::SendMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use common::*;

const TOPIC: &str = "SupervisedAll";
const QUEUES: i32 = 2;

/// (injection target, fault kind, restart counter, restarts expected).
const TABLE: &[(&str, &str, &str, u64)] = &[
    ("commitLog", "panic", "CommitLog", 1),
    // Appended but not dispatched when it panics: the restart re-dispatches.
    ("commitLog", "panicInWork", "CommitLog", 1),
    ("queue", "panic", "Queue", 1),
    ("queue", "panicInStarted", "Queue", 2),
    ("topic", "panic", "Topic", 1),
    ("topicManager", "panic", "TopicManager", 1),
    ("offsets", "panic", "OffsetManager", 1),
    ("offsets", "panicInInterval", "OffsetManager", 1),
    ("offsets", "panicInStarted", "OffsetManager", 2),
    ("groups", "panic", "GroupManager", 1),
    ("clients", "panic", "ClientRegistry", 1),
    ("registrar", "panic", "Registrar", 1),
    ("locks", "panic", "Locks", 1),
    ("schedule", "panic", "Schedule", 1),
    ("timer", "panic", "Timer", 1),
    ("timer", "panicInInterval", "Timer", 1),
    ("transactions", "panic", "Transaction", 1),
    ("indexer", "panic", "Indexer", 1),
    ("cleaner", "panic", "Cleaner", 1),
    ("revive", "panic", "Revive", 1),
    ("revive", "panicInStarted", "Revive", 2),
    ("popOrder", "panic", "PopOrderKeeper", 1),
    ("popOrder", "panicInInterval", "PopOrderKeeper", 1),
];

async fn inject(c: &RemotingClient, b: &str, target: &str, kind: &str) {
    let r = call(
        c,
        b,
        request::ACTORMQ_INJECT_FAULT,
        ext(&[
            ("target", target),
            ("kind", kind),
            ("topic", TOPIC),
            ("queueId", "0"),
        ]),
        None,
    )
    .await;
    assert_eq!(
        r.code,
        response::SUCCESS,
        "inject {target}/{kind}: {:?}",
        r.remark
    );
}

/// Sends `body` until acknowledged (the first tries may race a restart).
async fn send_acked(c: &RemotingClient, b: &str, q: i32, body: &str) -> SendMessageResponseHeader {
    let mut last = String::new();
    for _ in 0..40 {
        let h = send_header(TOPIC, q, &Msg::new(body).properties(), false);
        let mut cmd = actormq::wire::RemotingCommand::request(request::SEND_MESSAGE_V2)
            .with_body(bytes::Bytes::from(body.to_owned()));
        cmd.ext = h.to_v2().to_ext();
        match c.invoke(b, cmd, CALL).await {
            Ok(r) if r.code == response::SUCCESS => {
                return SendMessageResponseHeader::from_ext(&r.ext).unwrap()
            }
            Ok(r) => last = format!("code {} {:?}", r.code, r.remark),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("send of {body} kept failing: {last}");
}

/// Every acknowledged (queue, offset, body) is pullable at that offset;
/// queue offsets are gap-free (unacknowledged extras are allowed: a send
/// that failed after its append is stored and retried).
async fn check_acked(c: &RemotingClient, b: &str, acked: &[(i32, i64, String)], stage: &str) {
    for q in 0..QUEUES {
        let got = eventually(Duration::from_secs(5), || async {
            let all = pull_all(c, b, TOPIC, q).await;
            let ok = acked
                .iter()
                .filter(|(aq, ..)| *aq == q)
                .all(|(_, off, body)| {
                    all.get(*off as usize).is_some_and(|m| {
                        m.queue_offset == *off && m.body.as_ref() == body.as_bytes()
                    })
                });
            ok.then_some(all)
        })
        .await;
        let got = got.unwrap_or_else(|| panic!("{stage}: queue {q} lost acknowledged messages"));
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.queue_offset, i as i64, "{stage}: gap in queue {q}");
        }
    }
}

/// Offsets, heartbeat (client registry, groups), topic admin and runtime
/// info answer.
async fn probe_services(c: &RemotingClient, b: &str, round: i64, stage: &str) {
    let group = "sup_all_cg";
    let h = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: TOPIC.into(),
        queue_id: 1,
        commit_offset: round,
    };
    let got = eventually(Duration::from_secs(5), || async {
        let r = call(c, b, request::UPDATE_CONSUMER_OFFSET, h.to_ext(), None).await;
        if r.code != response::SUCCESS {
            return None;
        }
        let q = QueryConsumerOffsetRequestHeader {
            consumer_group: group.into(),
            topic: TOPIC.into(),
            queue_id: 1,
            set_zero_if_not_found: Some(false),
        };
        let r = call(c, b, request::QUERY_CONSUMER_OFFSET, q.to_ext(), None).await;
        (r.code == response::SUCCESS)
            .then(|| OffsetResponseHeader::from_ext(&r.ext).unwrap().offset)
            .filter(|o| *o == round)
    })
    .await;
    assert_eq!(got, Some(round), "{stage}: consumer offsets");
    let data = consumer_data(group, "CLUSTERING", &[(TOPIC, "*", "TAG")]);
    let r = heartbeat(c, b, "sup-client", &[], vec![data]).await;
    assert_eq!(
        r.code,
        response::SUCCESS,
        "{stage}: heartbeat {:?}",
        r.remark
    );
    let r = topic_config(c, b, TOPIC).await;
    assert_eq!(r.code, response::SUCCESS, "{stage}: topic config");
    let r = call(c, b, request::GET_BROKER_RUNTIME_INFO, ext(&[]), None).await;
    assert_eq!(r.code, response::SUCCESS, "{stage}: runtime info");
}

/// REGISTER_BROKER of a fake broker holding `topic` (2 queues).
fn fake_register(topic: &str) -> actormq::wire::RemotingCommand {
    use actormq::wire::bodies::{RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper};
    let mut table = std::collections::BTreeMap::new();
    table.insert(topic.to_owned(), TopicConfig::new(topic, 2, 6));
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: table,
            data_version: Default::default(),
        },
        filter_server_list: Vec::new(),
    };
    let mut cmd = actormq::wire::RemotingCommand::request(request::REGISTER_BROKER);
    cmd.ext = actormq::wire::headers::namesrv::RegisterBrokerRequestHeader {
        broker_name: "fake-broker".into(),
        broker_addr: "127.0.0.1:1".into(),
        cluster_name: "FakeCluster".into(),
        ha_server_addr: "127.0.0.1:2".into(),
        broker_id: 0,
        heartbeat_timeout_millis: None,
        enable_acting_master: None,
        compressed: false,
        body_crc32: 0,
    }
    .to_ext();
    cmd.with_body(serde_json::to_vec(&body).unwrap())
}

async fn wait_counter(what: &str, at_least: u64) -> u64 {
    eventually(Duration::from_secs(10), || async {
        let n = restarts::get(what);
        (n >= at_least).then_some(n)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{what} restart counter is {} (wanted {at_least})",
            restarts::get(what)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_actor_restarts_and_nothing_acknowledged_is_lost() {
    let s = TestServer::start(Opts::default().broker(|c| {
        c.fault_injection_enable = true;
        c.maped_file_size_commit_log = 64 * 1024;
        c.supervisor_backoff_ms = 20;
        c.supervisor_backoff_max_ms = 200;
    }));
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, TOPIC, QUEUES).await;
    let mut acked: Vec<(i32, i64, String)> = Vec::new();
    let mut n = 0usize;
    let mut send_round = |c: RemotingClient, b: String, count: usize| {
        let start = n;
        n += count;
        async move {
            let mut out = Vec::new();
            for i in start..start + count {
                let q = (i % QUEUES as usize) as i32;
                let body = format!("m-{i}");
                let h = send_acked(&c, &b, q, &body).await;
                out.push((q, h.queue_offset, body));
            }
            out
        }
    };
    acked.extend(send_round(c.clone(), b.clone(), 10).await);
    check_acked(&c, &b, &acked, "baseline").await;
    probe_services(&c, &b, 0, "baseline").await;

    for (round, (target, kind, counter, expect)) in TABLE.iter().enumerate() {
        let stage = format!("{target}/{kind}");
        let before = restarts::get(counter);
        inject(&c, &b, target, kind).await;
        // A fault armed for the next work needs work: one send.
        acked.extend(send_round(c.clone(), b.clone(), 1).await);
        let after = wait_counter(counter, before + expect).await;
        assert!(after >= before + expect, "{stage}");
        acked.extend(send_round(c.clone(), b.clone(), 4).await);
        check_acked(&c, &b, &acked, &stage).await;
        probe_services(&c, &b, round as i64 + 1, &stage).await;
    }
    // Everything ever acknowledged, once more at the end.
    check_acked(&c, &b, &acked, "end").await;
    assert_eq!(acked.len(), 10 + TABLE.len() * 5);
    s.stop();
}

/// The name server's route table: a panic in a handler, in its scan closure
/// and in `started()` after a restart; the routes come back from the
/// brokers' registrations and GET_ROUTEINFO keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_table_restarts_and_routes_come_back() {
    use actormq::actors::supervisor::{Fault, InjectPanic};
    let s = TestServer::start(Opts::default());
    let c = client();
    create_topic(&c, s.broker(), "RouteSup", 2).await;
    wait_route(&c, s.namesrv(), "RouteSup").await;
    // The test server keeps its name server inside its own thread; this
    // one is ours, so its table's address is at hand.
    let sys = std::thread::spawn(|| {
        let sys = actix::System::new();
        sys.block_on(async {
            let pool = actormq::actors::server::IoPool::new(1);
            let cfg = actormq::config::NamesrvConfig {
                listen_port: 0,
                listen_addr: "127.0.0.1".into(),
                scan_interval_ms: 50,
                ..Default::default()
            };
            let ns = actormq::actors::namesrv::NameServer::start(&cfg, pool.clone())
                .await
                .unwrap();
            let addr = format!("127.0.0.1:{}", ns.addr.port());
            let c = client();
            // A "broker" registers a topic; the route is served.
            let reg = |c: RemotingClient, addr: String| async move {
                let r = c.invoke(&addr, fake_register("RT"), CALL).await.unwrap();
                assert_eq!(r.code, response::SUCCESS, "register {:?}", r.remark);
            };
            reg(c.clone(), addr.clone()).await;
            wait_route(&c, &addr, "RT").await;
            for (fault, expect) in [
                (Fault::Panic, 1),
                (Fault::PanicInInterval, 1),
                (Fault::PanicInStarted, 2),
            ] {
                let before = restarts::get("RouteTable");
                let _ = ns.table.send(InjectPanic { fault }).await;
                wait_counter("RouteTable", before + expect).await;
                // Soft state: the broker's next registration brings it back.
                reg(c.clone(), addr.clone()).await;
                wait_route(&c, &addr, "RT").await;
            }
            ns.stop();
            pool.stop();
        });
    });
    tokio::task::spawn_blocking(move || sys.join().expect("name server thread"))
        .await
        .unwrap();
    // The test server's own routes are untouched.
    wait_route(&c, s.namesrv(), "RouteSup").await;
    s.stop();
}
