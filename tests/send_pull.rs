//! Send and pull over real sockets: single and batch round trips across
//! commit-log segment boundaries, tag filtering, pull status codes, queue
//! offsets, search by timestamp, topic auto-creation and administration.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use actormq::wire::bodies::TopicRouteData;
use actormq::wire::codes::{request, response};
use actormq::wire::headers::offset::{OffsetResponseHeader, SearchOffsetRequestHeader};
use actormq::wire::headers::pull::PullMessageResponseHeader;
use actormq::wire::headers::send::SendMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use actormq::wire::json::from_fastjson;
use actormq::wire::message::{encode_batch, BatchEntry};
use actormq::wire::msgid::decode_offset_msg_id;
use bytes::{Bytes, BytesMut};
use common::*;

const SEGMENT: u64 = 64 * 1024;

fn small_segments() -> Opts {
    Opts::default().broker(|c| c.maped_file_size_commit_log = SEGMENT)
}

/// What the test expects to find at (queue, offset).
#[derive(Debug, Clone)]
struct Expected {
    msg: Msg,
    phys: i64,
}

async fn send_batch(
    c: &actormq::client::RemotingClient,
    broker: &str,
    topic: &str,
    queue: i32,
    msgs: &[Msg],
) -> SendMessageResponseHeader {
    let entries: Vec<BatchEntry> = msgs
        .iter()
        .map(|m| BatchEntry {
            flag: 0,
            body: Bytes::from(m.body.clone()),
            properties: m.properties(),
        })
        .collect();
    let mut body = BytesMut::new();
    encode_batch(&entries, &mut body).unwrap();
    let h = send_header(topic, queue, "WAIT\u{1}true\u{2}", true);
    let r = call(
        c,
        broker,
        request::SEND_BATCH_MESSAGE,
        h.to_v2().to_ext(),
        Some(body.freeze()),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "batch send: {:?}", r.remark);
    SendMessageResponseHeader::from_ext(&r.ext).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_and_batch_round_trip_across_segments() {
    let s = TestServer::start(small_segments());
    let c = client();
    let b = s.broker().to_owned();
    let topic = "RoundTrip";
    create_topic(&c, &b, topic, 2).await;

    let mut expected: HashMap<(i32, i64), Expected> = HashMap::new();
    let mut next_offset = [0i64; 2];
    let mut seq = 0u64;
    let mut max_phys = 0;
    let mk = |seq: u64| {
        let len = 1024 + (seq as usize * 2731) % (8 * 1024);
        Msg::new(pseudo_body(seq, len))
            .tags(&format!("Tag{}", seq % 3))
            .keys(&format!("key-{seq} k{}", seq % 7))
            .prop("seq", &seq.to_string())
            .prop("color", if seq.is_multiple_of(2) { "red" } else { "blue" })
    };
    for round in 0..60 {
        let queue = round % 2;
        // Three singles...
        for _ in 0..3 {
            let m = mk(seq);
            seq += 1;
            let h = send_ok(&c, &b, topic, queue, &m).await;
            assert_eq!(h.queue_id, queue);
            assert_eq!(
                h.queue_offset, next_offset[queue as usize],
                "queue offsets must be consecutive"
            );
            let (host, phys) = decode_offset_msg_id(&h.msg_id).expect("offset msgId");
            assert_eq!(
                host.port(),
                b.rsplit(':').next().unwrap().parse::<u16>().unwrap()
            );
            max_phys = max_phys.max(phys);
            expected.insert((queue, h.queue_offset), Expected { msg: m, phys });
            next_offset[queue as usize] += 1;
        }
        // ... then a batch of two.
        let batch: Vec<Msg> = (0..2).map(|i| mk(seq + i)).collect();
        seq += 2;
        let h = send_batch(&c, &b, topic, queue, &batch).await;
        assert_eq!(h.queue_offset, next_offset[queue as usize]);
        let ids: Vec<&str> = h.msg_id.split(',').collect();
        assert_eq!(ids.len(), 2, "one msgId per batch message: {}", h.msg_id);
        for (i, (m, id)) in batch.into_iter().zip(ids).enumerate() {
            let (_, phys) = decode_offset_msg_id(id).expect("offset msgId");
            max_phys = max_phys.max(phys);
            expected.insert(
                (queue, h.queue_offset + i as i64),
                Expected { msg: m, phys },
            );
        }
        next_offset[queue as usize] += 2;
    }
    assert_eq!(expected.len(), 300);
    assert!(
        max_phys > 5 * SEGMENT as i64,
        "test did not cross enough segments (max phys {max_phys})"
    );

    let mut seen = 0;
    for queue in 0..2 {
        let msgs = pull_all(&c, &b, topic, queue).await;
        assert_eq!(msgs.len() as i64, next_offset[queue as usize]);
        let mut crossed = std::collections::BTreeSet::new();
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(
                m.queue_offset, i as i64,
                "queue offsets consecutive in pull"
            );
            assert_eq!(m.queue_id, queue);
            assert_eq!(m.topic, topic);
            let e = expected
                .get(&(queue, m.queue_offset))
                .expect("unexpected message");
            assert_eq!(
                m.body.as_ref(),
                e.msg.body.as_slice(),
                "body at {queue}/{}",
                m.queue_offset
            );
            assert_eq!(m.tags(), e.msg.tags.as_deref());
            assert_eq!(m.keys(), e.msg.keys.as_deref());
            for (k, v) in &e.msg.props {
                assert_eq!(m.property(k), Some(v.as_str()), "property {k}");
            }
            assert!(m.uniq_key().is_some(), "broker must add UNIQ_KEY");
            assert_eq!(
                m.commit_log_offset, e.phys,
                "msgId must decode to the commit-log offset"
            );
            crossed.insert(m.commit_log_offset as u64 / SEGMENT);
            seen += 1;
        }
        assert!(
            crossed.len() > 3,
            "queue {queue} spans only {} segments",
            crossed.len()
        );
    }
    assert_eq!(seen, 300);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_filtering_on_pull() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, "Tagged", 1).await;
    let tags = ["TagA", "TagB", "TagC"];
    for i in 0..60 {
        // Runs of the same tag, so some pull windows match nothing.
        let t = tags[(i / 7) % 3];
        send_ok(&c, &b, "Tagged", 0, &Msg::new(format!("m{i}")).tags(t)).await;
    }
    let want: Vec<String> = (0..60)
        .filter(|i| matches!(tags[(i / 7) % 3], "TagA" | "TagC"))
        .map(|i| format!("m{i}"))
        .collect();

    let mut got = Vec::new();
    let mut offset = 0;
    let mut retries = 0;
    loop {
        let r = pull_raw(&c, &b, "Tagged", 0, offset, 4, Some("TagA || TagC")).await;
        let h = PullMessageResponseHeader::from_ext(&r.ext).unwrap();
        match r.code {
            response::SUCCESS => {
                for m in decode_checked(&r.body_bytes()) {
                    let t = m.tags().unwrap_or_default().to_owned();
                    assert!(t == "TagA" || t == "TagC", "broker delivered tag {t}");
                    got.push(String::from_utf8(m.body.to_vec()).unwrap());
                }
            }
            response::PULL_RETRY_IMMEDIATELY => retries += 1,
            response::PULL_NOT_FOUND => break,
            other => panic!("pull code {other}: {:?}", r.remark),
        }
        assert!(h.next_begin_offset > offset);
        offset = h.next_begin_offset;
    }
    assert_eq!(got, want);
    assert_eq!(offset, 60);
    let _ = retries;
    // A tag nobody sent matches nothing: retry from further on.
    let r = pull_raw(&c, &b, "Tagged", 0, 7, 4, Some("TagZ")).await;
    assert_eq!(r.code, response::PULL_RETRY_IMMEDIATELY, "{:?}", r.remark);
    assert!(
        PullMessageResponseHeader::from_ext(&r.ext)
            .unwrap()
            .next_begin_offset
            > 7
    );
    // Without the SUBSCRIPTION flag (and no heartbeat) everything comes back.
    let all = pull_all(&c, &b, "Tagged", 0).await;
    assert_eq!(all.len(), 60);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_status_codes_and_queue_offsets() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, "Offsets", 2).await;

    // Empty queue at offset 0.
    let r = pull_raw(&c, &b, "Offsets", 0, 0, 32, None).await;
    assert_eq!(r.code, response::PULL_NOT_FOUND, "{:?}", r.remark);
    assert_eq!(
        queue_offset(&c, &b, request::GET_MAX_OFFSET, "Offsets", 0).await,
        0
    );

    let t0 = actormq::wire::now_ms();
    for i in 0..5 {
        send_ok(&c, &b, "Offsets", 0, &Msg::new(format!("early{i}"))).await;
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    let t_mid = actormq::wire::now_ms();
    tokio::time::sleep(Duration::from_millis(60)).await;
    for i in 0..7 {
        send_ok(&c, &b, "Offsets", 0, &Msg::new(format!("late{i}"))).await;
    }

    assert_eq!(
        queue_offset(&c, &b, request::GET_MAX_OFFSET, "Offsets", 0).await,
        12
    );
    assert_eq!(
        queue_offset(&c, &b, request::GET_MIN_OFFSET, "Offsets", 0).await,
        0
    );
    assert_eq!(
        queue_offset(&c, &b, request::GET_MAX_OFFSET, "Offsets", 1).await,
        0
    );

    // At the max offset: nothing new. Past it: offset moved.
    let r = pull_raw(&c, &b, "Offsets", 0, 12, 32, None).await;
    assert_eq!(r.code, response::PULL_NOT_FOUND, "{:?}", r.remark);
    let h = PullMessageResponseHeader::from_ext(&r.ext).unwrap();
    assert_eq!(h.max_offset, 12);
    assert_eq!(h.next_begin_offset, 12);
    let r = pull_raw(&c, &b, "Offsets", 0, 20, 32, None).await;
    assert_eq!(r.code, response::PULL_OFFSET_MOVED, "{:?}", r.remark);
    let h = PullMessageResponseHeader::from_ext(&r.ext).unwrap();
    // Java 4.x answers min (0) when the queue starts at 0, 5.x answers max:
    // either way a valid offset inside the queue.
    assert!(
        h.next_begin_offset == 0 || h.next_begin_offset == 12,
        "nextBeginOffset {} is not a valid correction",
        h.next_begin_offset
    );
    // A window in the middle.
    let r = pull_raw(&c, &b, "Offsets", 0, 3, 4, None).await;
    assert_eq!(r.code, response::SUCCESS);
    let msgs = decode_checked(&r.body_bytes());
    let bodies: Vec<String> = msgs
        .iter()
        .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
        .collect();
    assert_eq!(bodies, ["early3", "early4", "late0", "late1"]);
    assert_eq!(
        PullMessageResponseHeader::from_ext(&r.ext)
            .unwrap()
            .next_begin_offset,
        7
    );

    // Search by timestamp.
    let search = |ts: i64| {
        let h = SearchOffsetRequestHeader {
            topic: "Offsets".into(),
            queue_id: 0,
            timestamp: ts,
            boundary_type: Some("LOWER".into()),
        };
        let c = c.clone();
        let b = b.clone();
        async move {
            let r = call(
                &c,
                &b,
                request::SEARCH_OFFSET_BY_TIMESTAMP,
                h.to_ext(),
                None,
            )
            .await;
            assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
            OffsetResponseHeader::from_ext(&r.ext).unwrap().offset
        }
    };
    assert_eq!(
        search(t_mid).await,
        5,
        "first message stored after t_mid is late0 at offset 5"
    );
    assert_eq!(search(t0 - 10_000).await, 0);

    // Offsets of a queue of a missing topic.
    let r = call(
        &c,
        &b,
        request::GET_MAX_OFFSET,
        ext(&[("topic", "NoSuchTopicHere"), ("queueId", "0")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_created_topic_via_tbw102() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker().to_owned();
    // No such topic yet on the broker.
    let r = topic_config(&c, &b, "AutoT").await;
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    // TBW102 is routable (producers fall back to it).
    wait_route(&c, s.namesrv(), "TBW102").await;

    let h = send_ok(&c, &b, "AutoT", 0, &Msg::new("hello auto")).await;
    assert_eq!(h.queue_offset, 0);
    let r = topic_config(&c, &b, "AutoT").await;
    assert_eq!(r.code, response::SUCCESS);
    let v: serde_json::Value = serde_json::from_slice(&r.body_bytes()).unwrap();
    assert_eq!(
        v["topicConfig"]["writeQueueNums"], 4,
        "defaultTopicQueueNums=4 caps the new topic: {v}"
    );
    // The new topic is registered with the name server.
    let route: TopicRouteData = from_fastjson(&wait_route(&c, s.namesrv(), "AutoT").await).unwrap();
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);
    let msgs = pull_all(&c, &b, "AutoT", 0).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body.as_ref(), b"hello auto");
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_delete_topic() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, "AdminT", 3).await;
    let r = topic_config(&c, &b, "AdminT").await;
    assert_eq!(r.code, response::SUCCESS);
    let v: serde_json::Value = serde_json::from_slice(&r.body_bytes()).unwrap();
    assert_eq!(v["topicConfig"]["readQueueNums"], 3);
    assert_eq!(v["topicConfig"]["writeQueueNums"], 3);
    wait_route(&c, s.namesrv(), "AdminT").await;
    send_ok(&c, &b, "AdminT", 2, &Msg::new("x")).await;
    // Queue 3 does not exist.
    let r = send_raw(&c, &b, "AdminT", 3, &Msg::new("y")).await;
    assert_eq!(r.code, response::INVALID_PARAMETER, "{:?}", r.remark);

    let r = call(
        &c,
        &b,
        request::DELETE_TOPIC_IN_BROKER,
        ext(&[("topic", "AdminT")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = topic_config(&c, &b, "AdminT").await;
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    let r = pull_raw(&c, &b, "AdminT", 2, 0, 32, None).await;
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    // The broker re-registers without the topic.
    let gone = eventually(Duration::from_secs(5), || async {
        let r = call(
            &c,
            s.namesrv(),
            request::GET_ROUTEINFO_BY_TOPIC,
            ext(&[("topic", "AdminT")]),
            None,
        )
        .await;
        (r.code == response::TOPIC_NOT_EXIST).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "deleted topic still routed by the name server"
    );
    s.stop();
}

/// GET_BROKER_CONFIG returns the effective configuration as properties text
/// (the bench tool reads the target's flush mode from it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_config_reports_the_effective_settings() {
    let srv = TestServer::start(Opts::default().broker(|b| {
        b.flush_disk_type = actormq::config::FlushDiskType::SyncFlush;
        b.broker_name = "broker-cfg".into();
    }));
    let c = client();
    let r = call(&c, srv.broker(), request::GET_BROKER_CONFIG, ext(&[]), None).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let props = actormq::config::parse_properties(&String::from_utf8_lossy(&r.body_bytes()));
    assert_eq!(
        props.get("flushDiskType").map(String::as_str),
        Some("SYNC_FLUSH")
    );
    assert_eq!(
        props.get("brokerName").map(String::as_str),
        Some("broker-cfg")
    );
    assert!(r.ext.get("version").is_some_and(|v| v.contains("counter")));
    assert_eq!(
        actormq::bench::target::flush_mode(srv.broker()).await,
        "SYNC_FLUSH"
    );
    srv.stop();
}
