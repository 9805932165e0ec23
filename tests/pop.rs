//! POP consumption over remoting (RocketMQ 5.x): POP_MESSAGE, ACK_MESSAGE,
//! BATCH_ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME, PEEK_MESSAGE,
//! NOTIFICATION, POLLING_INFO; redelivery through the retry topic and the
//! DLQ; orderly POP; long polling; and a kill -9 between pop and ack.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use actormq::wire::codes::{request, response};
use actormq::wire::headers::pop::{ChangeInvisibleTimeResponseHeader, PopMessageResponseHeader};
use actormq::wire::headers::CommandHeader;
use actormq::wire::pop::{BatchAckBody, BatchAckEntry, Handle};
use bytes::Bytes;
use common::*;

fn bodies(p: &Popped) -> Vec<String> {
    p.msgs
        .iter()
        .map(|(m, _)| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

async fn send_n(
    c: &actormq::client::RemotingClient,
    b: &str,
    topic: &str,
    qid: i32,
    n: usize,
    tag: &str,
) {
    for i in 0..n {
        send_ok(c, b, topic, qid, &Msg::new(format!("{tag}-{i}")).tags("TA")).await;
    }
}

/// A POP waiting up to `poll_ms` finds nothing.
async fn assert_nothing(
    c: &actormq::client::RemotingClient,
    b: &str,
    bn: &str,
    p: &PopCall<'_>,
    poll_ms: i64,
    why: &str,
) {
    let got = pop_raw(
        c,
        b,
        bn,
        &PopCall {
            poll_ms,
            ..p.clone()
        },
    )
    .await;
    assert!(got.msgs.is_empty(), "{why}: {:?}", bodies(&got));
}

/// Pops (polling 1 s at a time) until something comes or `within` passes.
async fn pop_until(
    c: &actormq::client::RemotingClient,
    b: &str,
    bn: &str,
    p: &PopCall<'_>,
    within: Duration,
) -> Popped {
    let deadline = Instant::now() + within;
    loop {
        let got = pop_raw(
            c,
            b,
            bn,
            &PopCall {
                poll_ms: 1000,
                ..p.clone()
            },
        )
        .await;
        if !got.msgs.is_empty() || Instant::now() >= deadline {
            return got;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop_then_ack_is_not_redelivered() {
    let srv = TestServer::start_default();
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "PopT", 1).await;
    send_n(&c, b, "PopT", 0, 3, "m").await;
    let p = PopCall {
        invisible_ms: 1000,
        ..PopCall::new("g_pop", "PopT")
    };
    let got = pop_raw(&c, b, &bn, &p).await;
    assert_eq!(got.code, response::SUCCESS, "{:?}", got.remark);
    assert_eq!(bodies(&got), ["m-0", "m-1", "m-2"]);
    let h = PopMessageResponseHeader::from_ext(&got.ext).unwrap();
    assert_eq!(h.invisible_time, 1000);
    assert_eq!(h.start_offset_info.as_deref(), Some("0 0 0"));
    assert_eq!(h.msg_offset_info.as_deref(), Some("0 0 0,1,2"));
    assert!((0..8).contains(&h.revive_qid));
    for (m, handle) in &got.msgs {
        let r = pop_ack(&c, b, "g_pop", "PopT", m, handle).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    // Invisible for 1 s, revived about 0.5 s after: nothing may come back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again = pop_raw(
        &c,
        b,
        &bn,
        &PopCall {
            poll_ms: 500,
            ..p.clone()
        },
    )
    .await;
    assert_eq!(
        again.code,
        response::POLLING_TIMEOUT,
        "redelivered: {:?}",
        bodies(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_is_redelivered_then_dead_lettered() {
    let srv = TestServer::start_default();
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "RevT", 1).await;
    create_group(&c, b, "g_rev", 1, false).await;
    send_ok(&c, b, "RevT", 0, &Msg::new("again").tags("TA").keys("k")).await;
    let p = PopCall {
        invisible_ms: 1000,
        ..PopCall::new("g_rev", "RevT")
    };
    let first = pop_raw(&c, b, &bn, &p).await;
    assert_eq!(first.msgs.len(), 1);
    assert_eq!(first.msgs[0].0.reconsume_times, 0);
    let id = first.msgs[0].0.uniq_key().map(str::to_owned);

    // Not acked: back through %RETRY%g_rev_RevT under its own topic.
    let second = pop_until(&c, b, &bn, &p, Duration::from_secs(10)).await;
    assert_eq!(bodies(&second), ["again"]);
    let (m, handle) = &second.msgs[0];
    assert_eq!(m.reconsume_times, 1);
    assert_eq!(m.topic, "RevT");
    assert_eq!(m.uniq_key().map(str::to_owned), id);
    assert_eq!(Handle::parse(handle).unwrap().topic_type, 1);
    assert!(m.property("1ST_POP_TIME").is_some());

    // retryMaxTimes 1: the next expiry sends it to the DLQ.
    let dlq = wait_messages(&c, b, "%DLQ%g_rev", 0, 1, Duration::from_secs(10)).await;
    assert_eq!(dlq.len(), 1, "never dead-lettered");
    assert_eq!(&dlq[0].body[..], b"again");
    assert_eq!(dlq[0].property("DLQ_ORIGIN_TOPIC"), Some("RevT"));
    assert_nothing(&c, b, &bn, &p, 1500, "popped after the DLQ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_acks_on_its_retry_topic() {
    let srv = TestServer::start_default();
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "RaT", 1).await;
    create_group(&c, b, "g_ra", 1, false).await;
    send_n(&c, b, "RaT", 0, 1, "r").await;
    let p = PopCall {
        invisible_ms: 1000,
        ..PopCall::new("g_ra", "RaT")
    };
    assert_eq!(pop_raw(&c, b, &bn, &p).await.msgs.len(), 1);
    let again = pop_until(&c, b, &bn, &p, Duration::from_secs(10)).await;
    let (m, handle) = &again.msgs[0];
    assert_eq!(m.reconsume_times, 1);
    let r = pop_ack(&c, b, "g_ra", "RaT", m, handle).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // Acked on %RETRY%g_ra_RaT: neither redelivered nor dead-lettered.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_nothing(&c, b, &bn, &p, 500, "redelivered after its ack").await;
    assert_eq!(
        topic_config(&c, b, "%DLQ%g_ra").await.code,
        response::TOPIC_NOT_EXIST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revival_goes_on_after_the_revive_actor_panics() {
    let srv = TestServer::start(Opts::default().broker(|c| {
        c.fault_injection_enable = true;
        c.unknown.insert("reviveQueueNum".into(), "1".into());
    }));
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "SupT", 1).await;
    send_n(&c, b, "SupT", 0, 1, "s").await;
    let p = PopCall {
        invisible_ms: 1000,
        ..PopCall::new("g_sup", "SupT")
    };
    assert_eq!(pop_raw(&c, b, &bn, &p).await.msgs.len(), 1);
    let before = actormq::actors::supervisor::restarts::get("Revive");
    let r = call(
        &c,
        b,
        request::ACTORMQ_INJECT_FAULT,
        ext(&[("target", "revive"), ("kind", "panic")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // The restarted actor re-reads the check-point from the revive offset.
    let again = pop_until(&c, b, &bn, &p, Duration::from_secs(10)).await;
    assert_eq!(bodies(&again), ["s-0"]);
    assert_eq!(again.msgs[0].0.reconsume_times, 1);
    assert!(actormq::actors::supervisor::restarts::get("Revive") > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_invisible_time_extends_and_the_new_handle_acks() {
    let srv = TestServer::start_default();
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "CitT", 1).await;
    send_n(&c, b, "CitT", 0, 1, "c").await;
    let p = PopCall {
        invisible_ms: 1000,
        ..PopCall::new("g_cit", "CitT")
    };
    let got = pop_raw(&c, b, &bn, &p).await;
    let (m, handle) = &got.msgs[0];
    let mut e = ext(&[
        ("consumerGroup", "g_cit"),
        ("topic", "CitT"),
        ("extraInfo", handle),
        ("queueId", "0"),
    ]);
    e.insert("offset", m.queue_offset.to_string());
    e.insert("invisibleTime", "4000");
    let r = call(&c, b, request::CHANGE_MESSAGE_INVISIBLETIME, e, None).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let h = ChangeInvisibleTimeResponseHeader::from_ext(&r.ext).unwrap();
    assert_eq!(h.invisible_time, 4000);
    let old = Handle::parse(handle).unwrap();
    assert_eq!(h.revive_qid, old.revive_qid);
    // The new handle, as the remoting client builds it.
    let new = format!(
        "{} {} 4000 {} 0 {bn} 0 {}",
        m.queue_offset, h.pop_time, h.revive_qid, m.queue_offset
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_nothing(&c, b, &bn, &p, 0, "visible before the new time").await;
    let r = pop_ack(&c, b, "g_cit", "CitT", m, &new).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_nothing(&c, b, &bn, &p, 500, "redelivered after its ack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_ack_acks_every_bit() {
    let srv = TestServer::start_default();
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "BatT", 1).await;
    send_n(&c, b, "BatT", 0, 4, "b").await;
    let p = PopCall {
        invisible_ms: 1000,
        ..PopCall::new("g_bat", "BatT")
    };
    let got = pop_raw(&c, b, &bn, &p).await;
    assert_eq!(got.msgs.len(), 4);
    let h = Handle::parse(&got.msgs[0].1).unwrap();
    let offsets: Vec<i64> = got.msgs.iter().map(|(m, _)| m.queue_offset).collect();
    let body = BatchAckBody {
        broker_name: bn.clone(),
        acks: vec![BatchAckEntry {
            group: "g_bat".into(),
            topic: "BatT".into(),
            retry: "0".into(),
            start_offset: h.ck_start_offset,
            queue_id: 0,
            revive_qid: h.revive_qid,
            pop_time: h.pop_time,
            invisible_ms: h.invisible_ms,
            bits: BatchAckEntry::encode_bits(h.ck_start_offset, &offsets),
        }],
    };
    let r = call(
        &c,
        b,
        request::BATCH_ACK_MESSAGE,
        Default::default(),
        Some(Bytes::from(serde_json::to_vec(&body).unwrap())),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_nothing(&c, b, &bn, &p, 500, "redelivered").await;
    let empty = call(
        &c,
        b,
        request::BATCH_ACK_MESSAGE,
        Default::default(),
        Some(Bytes::from("{}")),
    )
    .await;
    assert_eq!(empty.code, response::NO_MESSAGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_pop_blocks_the_queue_until_acked() {
    let srv = TestServer::start_default();
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "FifoT", 1).await;
    create_group(&c, b, "g_fifo", 16, true).await;
    send_n(&c, b, "FifoT", 0, 3, "f").await;
    let p = PopCall {
        max: 2,
        invisible_ms: 1500,
        order: true,
        ..PopCall::new("g_fifo", "FifoT")
    };
    let first = pop_raw(&c, b, &bn, &p).await;
    assert_eq!(bodies(&first), ["f-0", "f-1"]);
    let h = PopMessageResponseHeader::from_ext(&first.ext).unwrap();
    assert_eq!(h.revive_qid, 999);
    assert_eq!(h.order_count_info.as_deref(), Some("0 0 0"));
    assert_nothing(&c, b, &bn, &p, 0, "blocked queue handed out more").await;
    let r = pop_ack(&c, b, "g_fifo", "FifoT", &first.msgs[0].0, &first.msgs[0].1).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_nothing(&c, b, &bn, &p, 0, "one un-acked still blocks").await;
    let r = pop_ack(&c, b, "g_fifo", "FifoT", &first.msgs[1].0, &first.msgs[1].1).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let next = pop_raw(&c, b, &bn, &p).await;
    assert_eq!(bodies(&next), ["f-2"]);
    // Not acked: the same offset again after the invisible time, counted.
    let again = pop_until(&c, b, &bn, &p, Duration::from_secs(6)).await;
    assert_eq!(bodies(&again), ["f-2"]);
    let h = PopMessageResponseHeader::from_ext(&again.ext).unwrap();
    assert!(h.order_count_info.unwrap().contains("qo0%2 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_returns_when_a_message_arrives() {
    let srv = TestServer::start_default();
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "LpT", 2).await;
    let (c2, b2, bn2) = (c.clone(), b.to_owned(), bn.clone());
    let started = Instant::now();
    let waiter = tokio::spawn(async move {
        pop_raw(
            &c2,
            &b2,
            &bn2,
            &PopCall {
                poll_ms: 15_000,
                ..PopCall::new("g_lp", "LpT")
            },
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut e = ext(&[("consumerGroup", "g_lp"), ("topic", "LpT")]);
    e.insert("queueId", "-1");
    let info = call(&c, b, request::POLLING_INFO, e, None).await;
    assert_eq!(info.code, response::SUCCESS);
    assert_eq!(info.ext.get("pollingNum"), Some("1"));
    send_ok(&c, b, "LpT", 1, &Msg::new("late")).await;
    let got = waiter.await.unwrap();
    assert_eq!(bodies(&got), ["late"]);
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "answered at the poll timeout, not on arrival"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_id_minus_one_reads_all_four_queues() {
    let srv = TestServer::start_default();
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "AllQ", 4).await;
    for q in 0..4 {
        send_n(&c, b, "AllQ", q, 2, &format!("q{q}")).await;
    }
    let got = pop_raw(&c, b, &bn, &PopCall::new("g_all", "AllQ")).await;
    let seen: BTreeSet<(i32, i64)> = got
        .msgs
        .iter()
        .map(|(m, _)| (m.queue_id, m.queue_offset))
        .collect();
    assert_eq!(seen.len(), 8, "{seen:?}");
    let h = PopMessageResponseHeader::from_ext(&got.ext).unwrap();
    assert_eq!(h.start_offset_info.unwrap().split(';').count(), 4);
    for (m, handle) in &got.msgs {
        assert_eq!(
            pop_ack(&c, b, "g_all", "AllQ", m, handle).await.code,
            response::SUCCESS
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_and_notification_do_not_hide() {
    let srv = TestServer::start_default();
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "PeekT", 1).await;
    send_n(&c, b, "PeekT", 0, 2, "p").await;
    let mut e = ext(&[
        ("consumerGroup", "g_peek"),
        ("topic", "PeekT"),
        ("queueId", "0"),
        ("maxMsgNums", "32"),
    ]);
    let r = call(&c, b, request::PEEK_MESSAGE, e.clone(), None).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(decode_checked(&r.body_bytes()).len(), 2);
    e.insert("pollTime", "0");
    let n = call(&c, b, request::NOTIFICATION, e, None).await;
    assert_eq!(n.ext.get("hasMsg"), Some("true"));
    let got = pop_raw(&c, b, &bn, &PopCall::new("g_peek", "PeekT")).await;
    assert_eq!(bodies(&got), ["p-0", "p-1"]);
    let r = call(
        &c,
        b,
        request::PEEK_MESSAGE,
        ext(&[
            ("consumerGroup", "g_peek"),
            ("topic", "PeekT"),
            ("queueId", "0"),
            ("maxMsgNums", "32"),
        ]),
        None,
    )
    .await;
    assert_eq!(r.code, response::PULL_NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_headers_and_unknown_handles_get_clear_errors() {
    let srv = TestServer::start_default();
    let (c, b, bn) = (client(), srv.broker(), srv.broker_name.clone());
    create_topic(&c, b, "BadT", 1).await;
    send_n(&c, b, "BadT", 0, 1, "x").await;
    let r = call(&c, b, request::POP_MESSAGE, ext(&[("topic", "BadT")]), None).await;
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.unwrap().contains("consumerGroup"));
    let p = PopCall::new("g_bad", "BadT");
    let refused = [
        (
            PopCall {
                max: 33,
                ..p.clone()
            },
            response::INVALID_PARAMETER,
        ),
        (
            PopCall {
                queue_id: 9,
                ..p.clone()
            },
            response::INVALID_PARAMETER,
        ),
        (
            PopCall {
                topic: "NoSuchT",
                ..p.clone()
            },
            response::TOPIC_NOT_EXIST,
        ),
    ];
    for (call, code) in refused {
        let r = pop_raw(&c, b, &bn, &call).await;
        assert_eq!(r.code, code, "{call:?}: {:?}", r.remark);
        assert!(r.remark.is_some_and(|t| !t.is_empty()));
    }

    let got = pop_raw(&c, b, &bn, &p).await;
    let (m, handle) = &got.msgs[0];
    let mut e = ext(&[
        ("consumerGroup", "g_bad"),
        ("topic", "BadT"),
        ("queueId", "0"),
        ("offset", "0"),
    ]);
    e.insert("extraInfo", "garbage");
    let r = call(&c, b, request::ACK_MESSAGE, e.clone(), None).await;
    assert_eq!(r.code, response::INVALID_PARAMETER);
    assert!(r.remark.unwrap().contains("receipt handle"));
    let other = handle.replace(&format!(" {bn} "), " some-other-broker ");
    e.insert("extraInfo", other.as_str());
    let r = call(&c, b, request::ACK_MESSAGE, e.clone(), None).await;
    assert_eq!(r.code, response::INVALID_PARAMETER);
    assert!(r.remark.unwrap().contains("some-other-broker"));
    e.insert("extraInfo", handle.as_str());
    e.insert("offset", "77");
    let r = call(&c, b, request::ACK_MESSAGE, e, None).await;
    assert_eq!(r.code, response::NO_MESSAGE, "{:?}", r.remark);
    let r = call(
        &c,
        b,
        request::BATCH_ACK_MESSAGE,
        Default::default(),
        Some(Bytes::from("{not json")),
    )
    .await;
    assert_eq!(r.code, response::SYSTEM_ERROR);
    // Still serving: the real ack works.
    assert_eq!(
        pop_ack(&c, b, "g_bad", "BadT", m, handle).await.code,
        response::SUCCESS
    );
}

/// `actormq standalone` on `dir/store` (broker `broker-pop`, offsets and
/// FIFO state persisted every 200 ms), its log `dir/run<run>.log`.
fn pop_node(dir: &std::path::Path, run: usize) -> (ChildServer, String) {
    let conf = dir.join("broker.conf");
    std::fs::write(
        &conf,
        "brokerClusterName=PopCluster\nbrokerName=broker-pop\nbrokerIP1=127.0.0.1\n\
         mapedFileSizeCommitLog=4194304\nflushConsumerOffsetInterval=200\n",
    )
    .unwrap();
    let log = dir.join(format!("run{run}.log"));
    spawn_standalone(&dir.join("store"), &conf, &log, Duration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_state_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (mut proc, b) = pop_node(dir.path(), 1);
    let c = client();
    create_topic(&c, &b, "FifoCrash", 1).await;
    create_group(&c, &b, "g_fc", 16, true).await;
    send_n(&c, &b, "FifoCrash", 0, 3, "f").await;
    let p = PopCall {
        max: 2,
        invisible_ms: 30_000,
        order: true,
        ..PopCall::new("g_fc", "FifoCrash")
    };
    let first = pop_raw(&c, &b, "broker-pop", &p).await;
    assert_eq!(bodies(&first), ["f-0", "f-1"]);
    let (m0, h0) = &first.msgs[0];
    assert_eq!(
        pop_ack(&c, &b, "g_fc", "FifoCrash", m0, h0).await.code,
        response::SUCCESS
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    proc.kill9();

    let (_proc2, b) = pop_node(dir.path(), 2);
    // f-1 is still invisible: the queue stays blocked across the crash.
    assert_nothing(
        &c,
        &b,
        "broker-pop",
        &p,
        0,
        "FIFO queue unblocked by a restart",
    )
    .await;
    let (m1, h1) = &first.msgs[1];
    let r = pop_ack(&c, &b, "g_fc", "FifoCrash", m1, h1).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let next = pop_raw(&c, &b, "broker-pop", &p).await;
    assert_eq!(bodies(&next), ["f-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_pop_and_ack_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut proc, b) = pop_node(dir.path(), 1);
    let c = client();
    create_topic(&c, &b, "CrashPop", 1).await;
    send_n(&c, &b, "CrashPop", 0, 5, "k").await;
    let p = PopCall {
        invisible_ms: 2000,
        ..PopCall::new("g_crash", "CrashPop")
    };
    let got = pop_raw(&c, &b, "broker-pop", &p).await;
    assert_eq!(got.msgs.len(), 5);
    for (m, handle) in &got.msgs[..2] {
        assert_eq!(
            pop_ack(&c, &b, "g_crash", "CrashPop", m, handle).await.code,
            response::SUCCESS
        );
    }
    // Let the POP offset (past all five) reach consumerOffset.json, so what
    // comes back after the crash comes from the revive topic's check-points.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    proc.kill9();

    let (_proc2, b) = pop_node(dir.path(), 2);
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !["k-2", "k-3", "k-4"].iter().all(|k| seen.contains(*k)) {
        let got = pop_raw(
            &c,
            &b,
            "broker-pop",
            &PopCall {
                poll_ms: 1000,
                ..p.clone()
            },
        )
        .await;
        for (m, handle) in &got.msgs {
            seen.insert(String::from_utf8_lossy(&m.body).into_owned());
            pop_ack(&c, &b, "g_crash", "CrashPop", m, handle).await;
        }
    }
    for k in ["k-2", "k-3", "k-4"] {
        assert!(seen.contains(k), "{k} lost after kill -9; seen {seen:?}");
    }
    assert!(
        !seen.contains("k-0") && !seen.contains("k-1"),
        "acked messages came back: {seen:?}"
    );
}
