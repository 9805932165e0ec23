//! Name server over real sockets: broker registration in cluster info and
//! routes (both JSON dialects), unknown topics, expiry of a silent broker,
//! several name servers, KV config, unknown request codes.

mod common;

use std::time::{Duration, Instant};

use actormq::wire::bodies::{
    ClusterInfo, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper, TopicRouteData,
};
use actormq::wire::codes::{request, response};
use actormq::wire::headers::namesrv::RegisterBrokerRequestHeader;
use actormq::wire::headers::CommandHeader;
use actormq::wire::json::from_fastjson;
use actormq::wire::RemotingCommand;
use common::*;

async fn cluster_info(c: &actormq::client::RemotingClient, ns: &str) -> (ClusterInfo, String) {
    let r = call(
        c,
        ns,
        request::GET_BROKER_CLUSTER_INFO,
        Default::default(),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let text = String::from_utf8(r.body_bytes().to_vec()).unwrap();
    let info: ClusterInfo = from_fastjson(text.as_bytes()).expect("ClusterInfo JSON");
    (info, text)
}

async fn route_with_version(
    c: &actormq::client::RemotingClient,
    ns: &str,
    topic: &str,
    version: i32,
) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC);
    cmd.version = version;
    cmd.ext = ext(&[("topic", topic)]);
    c.invoke(ns, cmd, CALL).await.expect("route request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_registration_in_cluster_info_and_routes() {
    let s = TestServer::start_default();
    let c = client();
    let broker = s.broker().to_owned();

    // The broker registers at start-up.
    let (info, raw) = eventually(Duration::from_secs(5), || async {
        let (info, raw) = cluster_info(&c, s.namesrv()).await;
        info.broker_addr_table
            .contains_key(&s.broker_name)
            .then_some((info, raw))
    })
    .await
    .expect("broker never appeared in GET_BROKER_CLUSTER_INFO");
    let bd = &info.broker_addr_table[&s.broker_name];
    assert_eq!(bd.cluster, s.cluster);
    assert_eq!(bd.master_addr(), Some(broker.as_str()));
    assert!(info.cluster_addr_table[&s.cluster].contains(&s.broker_name));
    // Cluster info is always in the fastjson dialect: bare numeric keys.
    assert!(
        raw.contains(&format!("{{0:\"{broker}\"}}")),
        "cluster info not fastjson dialect: {raw}"
    );

    // A topic created on the broker shows up in its route.
    create_topic(&c, &broker, "NsTopic", 3).await;
    wait_route(&c, s.namesrv(), "NsTopic").await;

    let old = route_with_version(&c, s.namesrv(), "NsTopic", 317).await;
    assert_eq!(old.code, response::SUCCESS);
    let old_text = String::from_utf8(old.body_bytes().to_vec()).unwrap();
    assert!(
        old_text.contains(&format!("{{0:\"{broker}\"}}")),
        "pre-401 route must use bare keys: {old_text}"
    );

    let new = route_with_version(&c, s.namesrv(), "NsTopic", 479).await;
    assert_eq!(new.code, response::SUCCESS);
    let new_text = String::from_utf8(new.body_bytes().to_vec()).unwrap();
    assert!(
        new_text.contains(&format!("{{\"0\":\"{broker}\"}}")),
        "401+ route must quote keys: {new_text}"
    );
    // Standard JSON parses with a strict parser.
    let strict: serde_json::Value = serde_json::from_str(&new_text).expect("standard JSON");
    assert!(strict["brokerDatas"].is_array());

    for text in [&old_text, &new_text] {
        let route: TopicRouteData = from_fastjson(text.as_bytes()).unwrap();
        assert_eq!(route.broker_datas.len(), 1);
        assert_eq!(route.broker_datas[0].master_addr(), Some(broker.as_str()));
        assert_eq!(route.queue_datas.len(), 1);
        let qd = &route.queue_datas[0];
        assert_eq!(
            (
                qd.broker_name.as_str(),
                qd.read_queue_nums,
                qd.write_queue_nums
            ),
            (s.broker_name.as_str(), 3, 3)
        );
    }

    // Unknown topic.
    let r = route_with_version(&c, s.namesrv(), "NoSuchTopic_xyz", 479).await;
    assert_eq!(r.code, response::TOPIC_NOT_EXIST, "{:?}", r.remark);
    assert!(r.body.is_empty());
    s.stop();
}

fn fake_register(topic: &str) -> RemotingCommand {
    let mut table = std::collections::BTreeMap::new();
    table.insert(topic.to_owned(), TopicConfig::new(topic, 2, 6));
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: table,
            data_version: Default::default(),
        },
        filter_server_list: Vec::new(),
    };
    let mut cmd = RemotingCommand::request(request::REGISTER_BROKER);
    cmd.ext = RegisterBrokerRequestHeader {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_broker_expires() {
    let s = TestServer::start(
        Opts {
            broker: false,
            ..Opts::default()
        }
        .namesrv(|c| {
            c.broker_expire_ms = 1500;
            c.scan_interval_ms = 200;
        }),
    );
    let ns = s.namesrv().to_owned();
    // The "broker": one registration, connection kept open, then silence.
    let fake = client();
    let r = fake
        .invoke(&ns, fake_register("ExpTopic"), CALL)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let registered = Instant::now();

    let observer = client();
    let present = |c: actormq::client::RemotingClient, ns: String| async move {
        let r = call(
            &c,
            &ns,
            request::GET_ROUTEINFO_BY_TOPIC,
            ext(&[("topic", "ExpTopic")]),
            None,
        )
        .await;
        r.code == response::SUCCESS
    };
    assert!(
        present(observer.clone(), ns.clone()).await,
        "route missing right after registration"
    );
    let (info, _) = cluster_info(&observer, &ns).await;
    assert!(info.broker_addr_table.contains_key("fake-broker"));

    // Still there well before the expiry...
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        present(observer.clone(), ns.clone()).await,
        "broker dropped before its expiry"
    );

    // ... and gone soon after it.
    let gone = eventually(Duration::from_secs(4), || {
        let (o, n) = (observer.clone(), ns.clone());
        async move { (!present(o, n).await).then_some(()) }
    })
    .await;
    let after = registered.elapsed();
    assert!(gone.is_some(), "silent broker still routed after {after:?}");
    assert!(
        after >= Duration::from_millis(1400),
        "dropped too early: {after:?}"
    );
    let (info, _) = cluster_info(&observer, &ns).await;
    assert!(
        !info.broker_addr_table.contains_key("fake-broker"),
        "expired broker still in cluster info"
    );
    // The fake broker's connection is still open: expiry, not channel close.
    assert!(fake.connected_addrs().contains(&ns));
    drop(fake);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_name_servers_both_get_the_registration() {
    let s = TestServer::start(Opts {
        namesrvs: 2,
        ..Opts::default()
    });
    assert_eq!(s.namesrv_addrs.len(), 2);
    let c = client();
    create_topic(&c, s.broker(), "TwoNs", 2).await;
    for ns in &s.namesrv_addrs {
        let body = wait_route(&c, ns, "TwoNs").await;
        let route: TopicRouteData = from_fastjson(&body).unwrap();
        assert_eq!(route.broker_datas[0].master_addr(), Some(s.broker()));
        let (info, _) = cluster_info(&c, ns).await;
        assert!(
            info.broker_addr_table.contains_key(&s.broker_name),
            "{ns} lacks the broker"
        );
    }
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_config_and_unknown_code() {
    let s = TestServer::start(Opts {
        broker: false,
        ..Opts::default()
    });
    let c = client();
    let ns = s.namesrv();
    let kv = |k: &str| ext(&[("namespace", "ORDER_TOPIC_CONFIG"), ("key", k)]);

    let r = call(&c, ns, request::GET_KV_CONFIG, kv("k1"), None).await;
    assert_eq!(r.code, response::QUERY_NOT_FOUND);

    let r = call(
        &c,
        ns,
        request::PUT_KV_CONFIG,
        ext(&[
            ("namespace", "ORDER_TOPIC_CONFIG"),
            ("key", "k1"),
            ("value", "broker-a:4"),
        ]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = call(&c, ns, request::GET_KV_CONFIG, kv("k1"), None).await;
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(r.ext.get("value"), Some("broker-a:4"));

    // Overwrite, then delete.
    let r = call(
        &c,
        ns,
        request::PUT_KV_CONFIG,
        ext(&[
            ("namespace", "ORDER_TOPIC_CONFIG"),
            ("key", "k1"),
            ("value", "broker-a:8"),
        ]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    let r = call(&c, ns, request::GET_KV_CONFIG, kv("k1"), None).await;
    assert_eq!(r.ext.get("value"), Some("broker-a:8"));
    let r = call(&c, ns, request::DELETE_KV_CONFIG, kv("k1"), None).await;
    assert_eq!(r.code, response::SUCCESS);
    let r = call(&c, ns, request::GET_KV_CONFIG, kv("k1"), None).await;
    assert_eq!(r.code, response::QUERY_NOT_FOUND);

    // Unknown request code.
    let r = call(&c, ns, 7777, Default::default(), None).await;
    assert_eq!(r.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert!(r.remark.unwrap_or_default().contains("7777"));
    // The connection still serves.
    let r = call(
        &c,
        ns,
        request::GET_BROKER_CLUSTER_INFO,
        Default::default(),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_answers_unknown_code() {
    let s = TestServer::start_default();
    let c = client();
    let r = call(&c, s.broker(), 7777, Default::default(), None).await;
    assert_eq!(r.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert!(r.remark.unwrap_or_default().contains("7777"));
    s.stop();
}
