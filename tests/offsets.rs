//! Consumer offsets, and durability of offsets, topics and messages across
//! a graceful broker restart on the same store.

mod common;

use actormq::wire::codes::{request, response};
use actormq::wire::headers::offset::{
    OffsetResponseHeader, QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use actormq::wire::headers::CommandHeader;
use actormq::wire::RemotingCommand;
use common::*;

async fn update(
    c: &actormq::client::RemotingClient,
    b: &str,
    group: &str,
    topic: &str,
    q: i32,
    off: i64,
) -> RemotingCommand {
    let h = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id: q,
        commit_offset: off,
    };
    call(c, b, request::UPDATE_CONSUMER_OFFSET, h.to_ext(), None).await
}

async fn query(
    c: &actormq::client::RemotingClient,
    b: &str,
    group: &str,
    topic: &str,
    q: i32,
) -> Option<i64> {
    let h = QueryConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id: q,
        set_zero_if_not_found: Some(false),
    };
    let r = call(c, b, request::QUERY_CONSUMER_OFFSET, h.to_ext(), None).await;
    match r.code {
        response::SUCCESS => Some(OffsetResponseHeader::from_ext(&r.ext).unwrap().offset),
        response::QUERY_NOT_FOUND => None,
        other => panic!("QUERY_CONSUMER_OFFSET answered {other}: {:?}", r.remark),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_query_consumer_offsets() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, "OffT", 2).await;
    for i in 0..5 {
        send_ok(&c, &b, "OffT", 0, &Msg::new(format!("m{i}"))).await;
    }
    assert_eq!(
        query(&c, &b, "g1", "OffT", 0).await,
        None,
        "unknown group must be QUERY_NOT_FOUND"
    );

    let r = update(&c, &b, "g1", "OffT", 0, 3).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(query(&c, &b, "g1", "OffT", 0).await, Some(3));
    let r = update(&c, &b, "g1", "OffT", 0, 5).await;
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(query(&c, &b, "g1", "OffT", 0).await, Some(5));
    // Per group and per queue.
    assert_eq!(query(&c, &b, "g2", "OffT", 0).await, None);
    assert_eq!(query(&c, &b, "g1", "OffT", 1).await, None);
    let r = update(&c, &b, "g2", "OffT", 1, 0).await;
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(query(&c, &b, "g2", "OffT", 1).await, Some(0));
    assert_eq!(query(&c, &b, "g1", "OffT", 0).await, Some(5));

    // One-way commits (what the Java client sends every 5 s) land too.
    let mut cmd = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET);
    cmd.ext = UpdateConsumerOffsetRequestHeader {
        consumer_group: "g1".into(),
        topic: "OffT".into(),
        queue_id: 0,
        commit_offset: 4,
    }
    .to_ext();
    c.invoke_oneway(&b, cmd).await.unwrap();
    let landed = eventually(std::time::Duration::from_secs(3), || async {
        (query(&c, &b, "g1", "OffT", 0).await == Some(4)).then_some(())
    })
    .await;
    assert!(landed.is_some(), "one-way offset commit not applied");
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_topics_and_messages_survive_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        Opts::default()
            .store(dir.path())
            .broker(|c| c.maped_file_size_commit_log = 64 * 1024)
    };
    let bodies: Vec<Vec<u8>> = (0..40)
        .map(|i| pseudo_body(i, 500 + (i as usize * 397) % 4000))
        .collect();

    let s = TestServer::start(opts());
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, "Durable", 3).await;
    for (i, body) in bodies.iter().enumerate() {
        send_ok(
            &c,
            &b,
            "Durable",
            (i % 3) as i32,
            &Msg::new(body.clone()).tags("T"),
        )
        .await;
    }
    assert_eq!(
        update(&c, &b, "dg", "Durable", 0, 7).await.code,
        response::SUCCESS
    );
    assert_eq!(
        update(&c, &b, "dg", "Durable", 2, 11).await.code,
        response::SUCCESS
    );
    drop(c);
    s.stop();

    let s = TestServer::start(opts());
    let c = client();
    let b = s.broker().to_owned();
    assert_eq!(query(&c, &b, "dg", "Durable", 0).await, Some(7));
    assert_eq!(query(&c, &b, "dg", "Durable", 2).await, Some(11));
    assert_eq!(query(&c, &b, "dg", "Durable", 1).await, None);

    let r = topic_config(&c, &b, "Durable").await;
    assert_eq!(r.code, response::SUCCESS, "topic lost across restart");
    let v: serde_json::Value = serde_json::from_slice(&r.body_bytes()).unwrap();
    assert_eq!(v["topicConfig"]["readQueueNums"], 3);

    for q in 0..3 {
        let msgs = pull_all(&c, &b, "Durable", q).await;
        let want: Vec<&Vec<u8>> = bodies
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == q as usize)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(msgs.len(), want.len(), "queue {q} lost messages");
        for (m, w) in msgs.iter().zip(want) {
            assert_eq!(m.body.as_ref(), w.as_slice());
            assert_eq!(m.tags(), Some("T"));
        }
        assert_eq!(
            queue_offset(&c, &b, request::GET_MAX_OFFSET, "Durable", q).await,
            msgs.len() as i64
        );
    }
    // New messages continue the queue's offsets.
    let h = send_ok(&c, &b, "Durable", 0, &Msg::new("after restart")).await;
    assert_eq!(h.queue_offset, 14);
    // The restarted broker registered again with its name server.
    wait_route(&c, s.namesrv(), "Durable").await;
    s.stop();
}
