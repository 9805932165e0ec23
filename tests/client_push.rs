//! The push consumer against an in-process broker: clustering rebalance
//! (3/3/2 over eight queues, take-over after a member leaves, nothing
//! lost), broadcasting, tag filters, retry of a failed message.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actormq::client::push::{
    ConsumeFrom, ConsumeResult, Listener, MessageModel, PushConfig, PushConsumer,
};
use actormq::client::{Message, Producer};
use actormq::wire::bodies::MessageQueue;
use common::*;

/// Received (consumer index, body) pairs.
type Seen = Arc<Mutex<Vec<(usize, String)>>>;

fn cfg(group: &str, instance: &str) -> PushConfig {
    let mut c = PushConfig::new(group);
    c.instance_name = Some(instance.into());
    c.consume_from = ConsumeFrom::FirstOffset;
    c.rebalance_interval = Duration::from_secs(2);
    c.persist_interval = Duration::from_millis(500);
    c.long_poll_suspend = Duration::from_secs(2);
    c.pull_timeout = Duration::from_secs(5);
    c.offsets_dir = std::env::temp_dir().join(format!("actormq-offsets-{}", std::process::id()));
    c
}

async fn consumer(
    s: &TestServer,
    c: PushConfig,
    topic: &str,
    tags: &str,
    idx: usize,
    seen: &Seen,
) -> PushConsumer {
    let mut pc = PushConsumer::new(c, s.namesrv());
    pc.subscribe(topic, tags);
    let seen = seen.clone();
    pc.register_listener(Listener::concurrent(move |msgs, _| {
        let mut v = seen.lock().unwrap();
        for m in msgs {
            v.push((idx, String::from_utf8_lossy(&m.body).into_owned()));
        }
        ConsumeResult::Success
    }));
    pc.start().await.expect("consumer start");
    pc
}

async fn wait_for(seen: &Seen, n: usize, within: Duration) -> bool {
    eventually(within, || async {
        (seen.lock().unwrap().len() >= n).then_some(())
    })
    .await
    .is_some()
}

async fn send_n(p: &Producer, topic: &str, prefix: &str, n: usize) {
    for i in 0..n {
        p.send(Message::new(topic, format!("{prefix}-{i}")))
            .await
            .unwrap();
    }
}

fn counts(qs: &[Vec<MessageQueue>]) -> Vec<usize> {
    let mut v: Vec<usize> = qs.iter().map(Vec::len).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clustering_shares_queues_and_takes_over_after_a_member_leaves() {
    let s = TestServer::start_default();
    let c = client();
    create_topic(&c, s.broker(), "CT", 8).await;
    wait_route(&c, s.namesrv(), "CT").await;
    let seen: Seen = Arc::default();
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(consumer(&s, cfg("cg_cluster", &format!("m{i}")), "CT", "*", i, &seen).await);
    }
    // Wait until the eight queues are split 3/3/2 with no overlap.
    let split = eventually(Duration::from_secs(15), || async {
        let qs: Vec<Vec<MessageQueue>> = members
            .iter()
            .map(|m| {
                m.assigned_queues()
                    .into_iter()
                    .filter(|q| q.topic == "CT")
                    .collect()
            })
            .collect();
        let total: usize = qs.iter().map(Vec::len).sum();
        (counts(&qs) == vec![2, 3, 3] && total == 8).then_some(qs)
    })
    .await
    .expect("queues never split 3/3/2");
    let mut all: Vec<_> = split.concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 8, "a queue is assigned twice");

    let p = Producer::new("pg_cluster", s.namesrv());
    send_n(&p, "CT", "a", 200).await;
    assert!(wait_for(&seen, 200, Duration::from_secs(15)).await);

    // One member leaves: the other two take its queues over.
    let mut gone = members.remove(2);
    gone.shutdown().await;
    let split = eventually(Duration::from_secs(10), || async {
        let qs: Vec<Vec<MessageQueue>> = members
            .iter()
            .map(|m| {
                m.assigned_queues()
                    .into_iter()
                    .filter(|q| q.topic == "CT")
                    .collect()
            })
            .collect();
        (counts(&qs) == vec![4, 4]).then_some(qs)
    })
    .await;
    assert!(
        split.is_some(),
        "remaining members did not take over within 10 s"
    );
    send_n(&p, "CT", "b", 200).await;
    assert!(wait_for(&seen, 400, Duration::from_secs(15)).await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let v = seen.lock().unwrap().clone();
    let mut per_body: HashMap<&str, usize> = HashMap::new();
    for (_, b) in &v {
        *per_body.entry(b.as_str()).or_default() += 1;
    }
    for prefix in ["a", "b"] {
        for i in 0..200 {
            assert!(
                per_body.contains_key(format!("{prefix}-{i}").as_str()),
                "lost {prefix}-{i}"
            );
        }
    }
    let dups = v.len() - per_body.len();
    assert!(dups <= 50, "{dups} duplicates");
    assert!(
        v.iter()
            .filter(|(i, b)| *i == 2 && b.starts_with("b-"))
            .count()
            == 0,
        "a stopped member consumed"
    );
    for mut m in members {
        m.shutdown().await;
    }
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcasting_delivers_every_message_to_every_member() {
    let s = TestServer::start_default();
    let c = client();
    create_topic(&c, s.broker(), "BCT", 4).await;
    wait_route(&c, s.namesrv(), "BCT").await;
    let seen: Seen = Arc::default();
    let mut members = Vec::new();
    for i in 0..2 {
        let mut c = cfg("cg_broadcast", &format!("b{i}-{}", std::process::id()));
        c.model = MessageModel::Broadcasting;
        members.push(consumer(&s, c, "BCT", "*", i, &seen).await);
    }
    for m in &members {
        assert_eq!(m.assigned_queues().len(), 4);
    }
    let p = Producer::new("pg_broadcast", s.namesrv());
    send_n(&p, "BCT", "x", 50).await;
    assert!(wait_for(&seen, 100, Duration::from_secs(15)).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = seen.lock().unwrap().clone();
    for who in 0..2 {
        let mut got: Vec<&str> = v
            .iter()
            .filter(|(i, _)| *i == who)
            .map(|(_, b)| b.as_str())
            .collect();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 50, "member {who} missed messages");
    }
    for mut m in members {
        m.shutdown().await;
    }
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tag_filter_receives_exactly_the_subscribed_tags() {
    let s = TestServer::start_default();
    let c = client();
    create_topic(&c, s.broker(), "TagT", 2).await;
    wait_route(&c, s.namesrv(), "TagT").await;
    let p = Producer::new("pg_tags", s.namesrv());
    for (i, tag) in ["A", "B", "C", "A", "D", "B"].iter().enumerate() {
        p.send(Message::new("TagT", format!("{tag}-{i}")).with_tags(*tag))
            .await
            .unwrap();
    }
    let seen: Seen = Arc::default();
    let mut m = consumer(&s, cfg("cg_tags", "t0"), "TagT", "A||B", 0, &seen).await;
    assert!(wait_for(&seen, 4, Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut got: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    got.sort();
    assert_eq!(got, vec!["A-0", "A-3", "B-1", "B-5"]);
    m.shutdown().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_message_comes_back_with_reconsume_count_one() {
    let s = TestServer::start_default();
    let c = client();
    create_topic(&c, s.broker(), "RT", 1).await;
    wait_route(&c, s.namesrv(), "RT").await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let mut pc = PushConsumer::new(cfg("cg_retry", "r0"), s.namesrv());
    pc.subscribe("RT", "*");
    let a = attempts.clone();
    pc.register_listener(Listener::concurrent(move |msgs, _| {
        let mut v = a.lock().unwrap();
        for m in msgs {
            v.push((m.topic.clone(), m.reconsume_times));
        }
        if v.len() == 1 {
            ConsumeResult::ReconsumeLater
        } else {
            ConsumeResult::Success
        }
    }));
    pc.start().await.unwrap();
    let p = Producer::new("pg_retry", s.namesrv());
    p.send(Message::new("RT", "fail-once")).await.unwrap();
    // Delay level 3 (10 s) for the first retry.
    let back = eventually(Duration::from_secs(30), || async {
        let v = attempts.lock().unwrap().clone();
        (v.len() >= 2).then_some(v)
    })
    .await
    .expect("the failed message never came back");
    assert_eq!(back[0], ("RT".to_string(), 0));
    assert_eq!(
        back[1],
        ("RT".to_string(), 1),
        "retry must carry the original topic"
    );
    pc.shutdown().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lite_pull_subscribe_assign_seek_and_commit() {
    use actormq::client::lite_pull::{LitePullConfig, LitePullConsumer};
    let s = TestServer::start_default();
    let c = client();
    create_topic(&c, s.broker(), "LT", 2).await;
    wait_route(&c, s.namesrv(), "LT").await;
    let p = Producer::new("pg_lite", s.namesrv());
    send_n(&p, "LT", "l", 40).await;

    let mut cfg = LitePullConfig::new("cg_lite");
    cfg.consume_from = ConsumeFrom::FirstOffset;
    cfg.auto_commit = false;
    cfg.long_poll_suspend = Duration::from_secs(1);
    let lp = LitePullConsumer::new(cfg.clone(), s.namesrv());
    lp.subscribe("LT", "*").await.unwrap();
    assert_eq!(lp.assignment().len(), 2);
    let mut got = Vec::new();
    for _ in 0..50 {
        got.extend(lp.poll(Duration::from_millis(500)).await);
        if got.len() >= 40 {
            break;
        }
    }
    assert_eq!(got.len(), 40);
    // Seek back to the start of one queue: its messages come again.
    let mq = lp.assignment()[0].clone();
    lp.seek(&mq, 0).unwrap();
    let mut again = Vec::new();
    for _ in 0..20 {
        again.extend(lp.poll(Duration::from_millis(500)).await);
        if again.len() >= 20 {
            break;
        }
    }
    assert_eq!(again.len(), 20);
    assert!(again.iter().all(|m| m.queue_id == mq.queue_id));
    lp.commit_sync().await;
    lp.shutdown().await;

    // Explicit assignment resumes from the committed offsets: nothing left.
    let lp2 = LitePullConsumer::new(cfg, s.namesrv());
    lp2.assign(vec![mq.clone()]).await;
    assert!(lp2.poll(Duration::from_millis(1500)).await.is_empty());
    p.send_to_queue(Message::new("LT", "late"), &mq)
        .await
        .unwrap();
    let late = lp2.poll(Duration::from_secs(5)).await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].body.as_ref(), b"late");
    lp2.shutdown().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql92_subscription_filters_on_properties() {
    let s = TestServer::start(Opts::default().broker(|c| c.enable_property_filter = true));
    let c = client();
    create_topic(&c, s.broker(), "SqlT", 2).await;
    wait_route(&c, s.namesrv(), "SqlT").await;
    let p = Producer::new("pg_sql", s.namesrv());
    for i in 0..10 {
        p.send(Message::new("SqlT", format!("n-{i}")).with_property("n", i.to_string()))
            .await
            .unwrap();
    }
    let seen: Seen = Arc::default();
    let mut pc = PushConsumer::new(cfg("cg_sql", "s0"), s.namesrv());
    pc.subscribe_sql("SqlT", "n >= 7");
    let seen2 = seen.clone();
    pc.register_listener(Listener::concurrent(move |msgs, _| {
        let mut v = seen2.lock().unwrap();
        for m in msgs {
            v.push((0, String::from_utf8_lossy(&m.body).into_owned()));
        }
        ConsumeResult::Success
    }));
    pc.start().await.unwrap();
    assert!(wait_for(&seen, 3, Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut got: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    got.sort();
    assert_eq!(got, vec!["n-7", "n-8", "n-9"]);
    pc.shutdown().await;
    p.shutdown().await;
}
