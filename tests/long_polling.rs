//! Long polling: a pull with SUSPEND at the end of a queue is held until a
//! message arrives (then answered at once) or until its suspend timeout.

mod common;

use std::time::{Duration, Instant};

use actormq::wire::codes::response;
use actormq::wire::headers::pull::PullMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use common::*;

/// Holds a pull at `offset`, sends a message 300 ms later, and checks the
/// pull is answered promptly with it.
async fn held_pull_wakes_on_send(s: &TestServer, topic: &str, offset: i64) {
    let c = client();
    let b = s.broker().to_owned();
    let cmd = pull_cmd(topic, 0, offset, 32, None, Some(Duration::from_secs(10)));
    let started = Instant::now();
    let puller = {
        let c = c.clone();
        let b = b.clone();
        tokio::spawn(async move {
            let r = c.invoke(&b, cmd, Duration::from_secs(15)).await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!puller.is_finished(), "pull at the max offset was not held");
    let producer = client();
    send_ok(&producer, &b, topic, 0, &Msg::new(format!("wake-{offset}"))).await;
    let (r, took) = tokio::time::timeout(Duration::from_secs(5), puller)
        .await
        .expect("held pull not answered within 5 s of the send")
        .unwrap();
    let r = r.expect("pull call failed");
    assert_eq!(r.code, response::SUCCESS, "remark {:?}", r.remark);
    let msgs = decode_checked(&r.body_bytes());
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body.as_ref(), format!("wake-{offset}").as_bytes());
    assert_eq!(msgs[0].queue_offset, offset);
    assert_eq!(
        PullMessageResponseHeader::from_ext(&r.ext)
            .unwrap()
            .next_begin_offset,
        offset + 1
    );
    assert!(
        took >= Duration::from_millis(250),
        "answered before the message existed: {took:?}"
    );
    assert!(
        took < Duration::from_secs(1),
        "answered too late after the send: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_pull_is_answered_when_a_message_arrives() {
    let s = TestServer::start_default();
    let c = client();
    create_topic(&c, s.broker(), "LongPoll", 1).await;
    send_ok(&c, s.broker(), "LongPoll", 0, &Msg::new("first")).await;
    // At the max offset of a non-empty queue.
    held_pull_wakes_on_send(&s, "LongPoll", 1).await;
    // And again, the queue having moved on.
    held_pull_wakes_on_send(&s, "LongPoll", 2).await;
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_pull_on_an_empty_queue_wakes_too() {
    let s = TestServer::start_default();
    let c = client();
    create_topic(&c, s.broker(), "LongPollEmpty", 1).await;
    held_pull_wakes_on_send(&s, "LongPollEmpty", 0).await;
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_pull_times_out_with_not_found() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, "LongPollIdle", 2).await;
    send_ok(&c, &b, "LongPollIdle", 0, &Msg::new("only")).await;
    // A message to another queue must not end the hold early.
    let cmd = pull_cmd(
        "LongPollIdle",
        0,
        1,
        32,
        None,
        Some(Duration::from_millis(500)),
    );
    let started = Instant::now();
    let puller = {
        let (c, b) = (c.clone(), b.clone());
        tokio::spawn(async move { c.invoke(&b, cmd, Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_ok(&client(), &b, "LongPollIdle", 1, &Msg::new("other queue")).await;
    let r = puller.await.unwrap().expect("pull call failed");
    let took = started.elapsed();
    assert_eq!(r.code, response::PULL_NOT_FOUND, "remark {:?}", r.remark);
    let h = PullMessageResponseHeader::from_ext(&r.ext).unwrap();
    assert_eq!(h.next_begin_offset, 1);
    assert!(
        took >= Duration::from_millis(450),
        "hold ended early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2000),
        "hold overran its 500 ms: {took:?}"
    );
    s.stop();
}
