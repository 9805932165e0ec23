//! Names that become paths or keys are checked with RocketMQ's rules at
//! every entry point: a topic or group holding `/`, `.` or other illegal
//! characters is refused with INVALID_PARAMETER, nothing is written outside
//! the store, and the broker keeps serving. One test per entry point.

mod common;

use std::path::{Path, PathBuf};

use actormq::wire::bodies::{RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper};
use actormq::wire::codes::{request, response};
use actormq::wire::headers::admin::{CreateTopicRequestHeader, TopicOnlyHeader};
use actormq::wire::headers::namesrv::RegisterBrokerRequestHeader;
use actormq::wire::headers::CommandHeader;
use actormq::wire::message::{encode_batch, BatchEntry};
use actormq::wire::RemotingCommand;
use bytes::{Bytes, BytesMut};

use common::*;

/// A topic that, joined under `consumequeue/`, would land beside the store.
const ESCAPING_TOPIC: &str = "%DLQ%/../../../escaped";
const ESCAPING_GROUP: &str = "g/../../../escaped";

/// A broker whose store is `<outer>/store`, so anything that escapes the
/// store shows up in `<outer>`.
struct Fixture {
    outer: tempfile::TempDir,
    server: TestServer,
}

impl Fixture {
    fn start() -> Fixture {
        let outer = tempfile::tempdir().unwrap();
        let store = outer.path().join("store");
        std::fs::create_dir_all(&store).unwrap();
        let server = TestServer::start(Opts::default().store(&store).broker(|b| {
            b.maped_file_size_commit_log = 1 << 20;
        }));
        Fixture { outer, server }
    }

    fn broker(&self) -> String {
        self.server.broker().to_owned()
    }

    /// Every entry of `<outer>` other than the store itself.
    fn escaped(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.outer.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name() != Some("store".as_ref()))
            .collect()
    }

    /// Nothing escaped, and a plain send still succeeds.
    async fn assert_contained_and_serving(&self) {
        assert_eq!(
            self.escaped(),
            Vec::<PathBuf>::new(),
            "files outside the store"
        );
        assert!(
            no_dotdot_under(&self.server.store),
            "a `..` directory inside the store"
        );
        let c = client();
        send_ok(&c, &self.broker(), "StillServing", 0, &Msg::new("ok")).await;
    }
}

fn no_dotdot_under(dir: &Path) -> bool {
    walk(dir).iter().all(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.contains("..") && !n.contains('/'))
    })
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

fn assert_refused(r: &RemotingCommand, name: &str) {
    assert_eq!(r.code, response::INVALID_PARAMETER, "{:?}", r.remark);
    let remark = r.remark.clone().unwrap_or_default();
    assert!(
        remark.contains(name) && remark.contains("illegal characters"),
        "remark should name {name:?}: {remark:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_an_escaping_topic_is_refused() {
    let f = Fixture::start();
    let c = client();
    let r = send_raw(&c, &f.broker(), ESCAPING_TOPIC, 0, &Msg::new("x")).await;
    assert_refused(&r, ESCAPING_TOPIC);
    for bad in ["../x", "a.b", "a b", ""] {
        let r = send_raw(&c, &f.broker(), bad, 0, &Msg::new("x")).await;
        assert_eq!(
            r.code,
            response::INVALID_PARAMETER,
            "{bad:?}: {:?}",
            r.remark
        );
    }
    let r = send_raw(&c, &f.broker(), &"t".repeat(128), 0, &Msg::new("x")).await;
    assert_eq!(r.code, response::INVALID_PARAMETER, "{:?}", r.remark);
    f.assert_contained_and_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_send_to_an_escaping_topic_is_refused() {
    let f = Fixture::start();
    let c = client();
    let entries = vec![BatchEntry {
        flag: 0,
        body: Bytes::from_static(b"b"),
        properties: Msg::new("b").properties(),
    }];
    let mut body = BytesMut::new();
    encode_batch(&entries, &mut body).unwrap();
    let h = send_header(ESCAPING_TOPIC, 0, "WAIT\u{1}true\u{2}", true);
    let r = call(
        &c,
        &f.broker(),
        request::SEND_BATCH_MESSAGE,
        h.to_v2().to_ext(),
        Some(body.freeze()),
    )
    .await;
    assert_refused(&r, ESCAPING_TOPIC);
    f.assert_contained_and_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_back_with_an_escaping_group_is_refused() {
    let f = Fixture::start();
    let c = client();
    let b = f.broker();
    let sent = send_ok(&c, &b, "SendBackNames", 0, &Msg::new("m")).await;
    let phys = phys_of(&sent.msg_id);
    // Straight to the DLQ (delay level < 0) and through the retry path.
    for level in [-1, 0] {
        let r = send_back(&c, &b, ESCAPING_GROUP, phys, level, Some(0)).await;
        assert_refused(&r, ESCAPING_GROUP);
    }
    // A sound group still works.
    let r = send_back(&c, &b, "good_group", phys, -1, Some(0)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    f.assert_contained_and_serving().await;
}

fn create_topic_cmd(topic: &str) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC);
    cmd.ext = CreateTopicRequestHeader {
        topic: topic.into(),
        default_topic: "TBW102".into(),
        read_queue_nums: 1,
        write_queue_nums: 1,
        perm: 6,
        topic_filter_type: None,
        topic_sys_flag: None,
        order: None,
        attributes: None,
        force: None,
    }
    .to_ext();
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_delete_topic_with_escaping_names_are_refused() {
    let f = Fixture::start();
    let c = client();
    let b = f.broker();
    let r = c
        .invoke(&b, create_topic_cmd(ESCAPING_TOPIC), CALL)
        .await
        .unwrap();
    assert_refused(&r, ESCAPING_TOPIC);
    let r = c
        .invoke(&b, create_topic_cmd("%RETRY%a/b"), CALL)
        .await
        .unwrap();
    assert_refused(&r, "%RETRY%a/b");

    // A file where the escaping name points survives DELETE_TOPIC_IN_BROKER.
    let victim = f.outer.path().join("escaped");
    std::fs::create_dir_all(victim.join("0")).unwrap();
    std::fs::write(victim.join("0").join("00000000000000000000"), b"precious").unwrap();
    let h = TopicOnlyHeader {
        topic: ESCAPING_TOPIC.into(),
    };
    let r = call(&c, &b, request::DELETE_TOPIC_IN_BROKER, h.to_ext(), None).await;
    assert_refused(&r, ESCAPING_TOPIC);
    assert_eq!(
        std::fs::read(victim.join("0").join("00000000000000000000")).unwrap(),
        b"precious"
    );
    std::fs::remove_dir_all(&victim).unwrap();
    f.assert_contained_and_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_group_admin_with_escaping_names_is_refused() {
    let f = Fixture::start();
    let c = client();
    let b = f.broker();
    let body = serde_json::json!({ "groupName": ESCAPING_GROUP }).to_string();
    let r = call(
        &c,
        &b,
        request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        Default::default(),
        Some(Bytes::from(body)),
    )
    .await;
    assert_refused(&r, ESCAPING_GROUP);
    let r = call(
        &c,
        &b,
        request::DELETE_SUBSCRIPTIONGROUP,
        ext(&[("groupName", ESCAPING_GROUP)]),
        None,
    )
    .await;
    assert_refused(&r, ESCAPING_GROUP);
    // Group names may be up to 255 characters, not more.
    let long = "g".repeat(256);
    let body = serde_json::json!({ "groupName": long }).to_string();
    let r = call(
        &c,
        &b,
        request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        Default::default(),
        Some(Bytes::from(body)),
    )
    .await;
    assert_eq!(r.code, response::INVALID_PARAMETER, "{:?}", r.remark);
    f.assert_contained_and_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_with_an_escaping_consumer_group_is_refused() {
    let f = Fixture::start();
    let c = client();
    let b = f.broker();
    let consumer = consumer_data(ESCAPING_GROUP, "CLUSTERING", &[("T", "*", "TAG")]);
    let r = heartbeat(&c, &b, "cid-1", &[], vec![consumer]).await;
    assert_refused(&r, ESCAPING_GROUP);
    let r = heartbeat(&c, &b, "cid-1", &["pg/../x"], vec![]).await;
    assert_refused(&r, "pg/../x");
    let consumer = consumer_data("fine_group", "CLUSTERING", &[(ESCAPING_TOPIC, "*", "TAG")]);
    let r = heartbeat(&c, &b, "cid-1", &[], vec![consumer]).await;
    assert_refused(&r, ESCAPING_TOPIC);
    // A sound heartbeat creates the retry topic as before.
    let consumer = consumer_data("fine_group", "CLUSTERING", &[("T", "*", "TAG")]);
    let r = heartbeat(&c, &b, "cid-1", &["pg"], vec![consumer]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = topic_config(&c, &b, "%RETRY%fine_group").await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    f.assert_contained_and_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commit_and_queue_locks_with_escaping_groups_are_refused() {
    let f = Fixture::start();
    let c = client();
    let b = f.broker();
    create_topic(&c, &b, "OffsetNames", 1).await;
    let r = call(
        &c,
        &b,
        request::UPDATE_CONSUMER_OFFSET,
        ext(&[
            ("consumerGroup", ESCAPING_GROUP),
            ("topic", "OffsetNames"),
            ("queueId", "0"),
            ("commitOffset", "1"),
        ]),
        None,
    )
    .await;
    assert_refused(&r, ESCAPING_GROUP);
    let body = serde_json::json!({
        "consumerGroup": ESCAPING_GROUP, "clientId": "c1",
        "mqSet": [{"topic": "OffsetNames", "brokerName": f.server.broker_name, "queueId": 0}]
    })
    .to_string();
    let r = call(
        &c,
        &b,
        request::LOCK_BATCH_MQ,
        Default::default(),
        Some(Bytes::from(body)),
    )
    .await;
    assert_refused(&r, ESCAPING_GROUP);
    f.assert_contained_and_serving().await;
}

fn register(cluster: &str, broker_name: &str, topics: &[&str]) -> RemotingCommand {
    let table = topics
        .iter()
        .map(|t| (t.to_string(), TopicConfig::new(t, 1, 6)))
        .collect();
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: table,
            data_version: Default::default(),
        },
        filter_server_list: Vec::new(),
    };
    let mut cmd = RemotingCommand::request(request::REGISTER_BROKER);
    cmd.ext = RegisterBrokerRequestHeader {
        broker_name: broker_name.into(),
        broker_addr: "127.0.0.1:1".into(),
        cluster_name: cluster.into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_server_refuses_bad_broker_and_cluster_names_and_drops_bad_topics() {
    let s = TestServer::start(Opts {
        broker: false,
        ..Opts::default()
    });
    let c = client();
    let ns = s.namesrv().to_owned();
    for (cluster, broker) in [("C/../x", "b1"), ("C", "../b1"), ("", "b1")] {
        let r = c
            .invoke(&ns, register(cluster, broker, &["GoodTopic"]), CALL)
            .await
            .unwrap();
        assert_eq!(
            r.code,
            response::INVALID_PARAMETER,
            "{cluster:?}/{broker:?}: {:?}",
            r.remark
        );
    }
    // A sound registration with one bad topic: the rest is routed.
    let r = c
        .invoke(&ns, register("C", "b1", &["GoodTopic", "bad/topic"]), CALL)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let route = |t: &str| {
        call(
            &c,
            &ns,
            request::GET_ROUTEINFO_BY_TOPIC,
            ext(&[("topic", t)]),
            None,
        )
    };
    assert_eq!(route("GoodTopic").await.code, response::SUCCESS);
    assert_eq!(route("bad/topic").await.code, response::TOPIC_NOT_EXIST);
    s.stop();
}
