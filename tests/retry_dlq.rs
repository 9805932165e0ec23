//! Retry and dead-letter queues: CONSUMER_SEND_MSG_BACK copies a message to
//! `%RETRY%<group>` through the delay levels with a growing reconsume count
//! and a stable ORIGIN_MESSAGE_ID; past the max it lands in `%DLQ%<group>`.
//! A plain send to a retry topic past the max is redirected to the DLQ.

mod common;

use std::time::{Duration, Instant};

use actormq::wire::codes::response;
use common::*;

fn opts() -> Opts {
    Opts::default().broker(|c| c.message_delay_level = "1s 1s 1s 1s 1s 1s".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_back_retries_then_dead_letters() {
    let srv = TestServer::start(opts());
    let c = client();
    let b = srv.broker();
    create_topic(&c, b, "RetryT", 1).await;
    let sent = send_ok(
        &c,
        b,
        "RetryT",
        0,
        &Msg::new("payload").tags("TA").keys("k1"),
    )
    .await;
    let original = &pull_all(&c, b, "RetryT", 0).await[0];
    assert_eq!(original.reconsume_times, 0);

    // First retry: lands on %RETRY%g after the (1 s) delay.
    let t0 = Instant::now();
    let r = send_back(&c, b, "g_retry", phys_of(&sent.msg_id), 0, Some(2)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let retry = "%RETRY%g_retry";
    let got = wait_messages(&c, b, retry, 0, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "retry copy never arrived");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "delivered early: {:?}",
        t0.elapsed()
    );
    let m1 = &got[0];
    assert_eq!(m1.reconsume_times, 1);
    assert_eq!(&m1.body[..], b"payload");
    assert_eq!(m1.property("RETRY_TOPIC"), Some("RetryT"));
    assert_eq!(m1.property("TAGS"), Some("TA"));
    assert_eq!(m1.property("DELAY"), None);
    let origin = m1
        .property("ORIGIN_MESSAGE_ID")
        .expect("origin id")
        .to_owned();
    assert_eq!(origin, original.offset_msg_id());
    assert_eq!(m1.uniq_key(), original.uniq_key());

    // Second retry.
    let r = send_back(&c, b, "g_retry", m1.commit_log_offset, 0, Some(2)).await;
    assert_eq!(r.code, response::SUCCESS);
    let got = wait_messages(&c, b, retry, 0, 2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2);
    let m2 = &got[1];
    assert_eq!(m2.reconsume_times, 2);
    assert_eq!(m2.property("ORIGIN_MESSAGE_ID"), Some(origin.as_str()));

    // Third: reconsume times 2 >= max 2 → DLQ, immediately.
    let r = send_back(&c, b, "g_retry", m2.commit_log_offset, 0, Some(2)).await;
    assert_eq!(r.code, response::SUCCESS);
    let dlq = wait_messages(&c, b, "%DLQ%g_retry", 0, 1, Duration::from_secs(3)).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].reconsume_times, 3);
    assert_eq!(dlq[0].property("ORIGIN_MESSAGE_ID"), Some(origin.as_str()));
    assert_eq!(&dlq[0].body[..], b"payload");
    // Nothing more on the retry topic.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pull_all(&c, b, retry, 0).await.len(), 2);

    // delayLevel < 0 goes straight to the DLQ.
    let r = send_back(&c, b, "g_retry", original.commit_log_offset, -1, None).await;
    assert_eq!(r.code, response::SUCCESS);
    let dlq = wait_messages(&c, b, "%DLQ%g_retry", 0, 2, Duration::from_secs(3)).await;
    assert_eq!(dlq.len(), 2);
    assert_eq!(dlq[1].reconsume_times, 1);

    // A bad offset is an error.
    let r = send_back(&c, b, "g_retry", 1 << 40, 0, None).await;
    assert_eq!(r.code, response::SYSTEM_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_send_to_retry_topic_past_max_goes_to_dlq() {
    let srv = TestServer::start(opts());
    let c = client();
    let b = srv.broker();
    let mut h = send_header("%RETRY%g_plain", 0, &Msg::new("x").properties(), false);
    h.reconsume_times = Some(5);
    h.max_reconsume_times = Some(3);
    let r = call(
        &c,
        b,
        actormq::wire::codes::request::SEND_MESSAGE,
        actormq::wire::headers::CommandHeader::to_ext(&h),
        Some(bytes::Bytes::from_static(b"x")),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let dlq = wait_messages(&c, b, "%DLQ%g_plain", 0, 1, Duration::from_secs(3)).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].reconsume_times, 5);

    // Within the max it stays on the retry topic.
    h.reconsume_times = Some(2);
    let r = call(
        &c,
        b,
        actormq::wire::codes::request::SEND_MESSAGE,
        actormq::wire::headers::CommandHeader::to_ext(&h),
        Some(bytes::Bytes::from_static(b"y")),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    let got = pull_all(&c, b, "%RETRY%g_plain", 0).await;
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].body[..], b"y");
}
