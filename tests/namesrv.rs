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
    fake_register_as(topic, "127.0.0.1:1", 0, 0)
}

/// A registration of `fake-broker` from `addr` under `broker_id`, its data
/// version carrying `state_version` (a controller-mode broker's master
/// epoch).
fn fake_register_as(
    topic: &str,
    addr: &str,
    broker_id: i64,
    state_version: i64,
) -> RemotingCommand {
    let mut table = std::collections::BTreeMap::new();
    table.insert(topic.to_owned(), TopicConfig::new(topic, 2, 6));
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: table,
            data_version: actormq::wire::bodies::DataVersion {
                state_version,
                timestamp: 1,
                counter: 1,
            },
        },
        filter_server_list: Vec::new(),
    };
    let mut cmd = RemotingCommand::request(request::REGISTER_BROKER);
    cmd.ext = RegisterBrokerRequestHeader {
        broker_name: "fake-broker".into(),
        broker_addr: addr.into(),
        cluster_name: "FakeCluster".into(),
        ha_server_addr: "127.0.0.1:2".into(),
        broker_id,
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

/// `fake-broker`'s id → address table in the cluster info.
async fn fake_ids(
    c: &actormq::client::RemotingClient,
    ns: &str,
) -> std::collections::BTreeMap<i64, String> {
    let (info, _) = cluster_info(c, ns).await;
    info.broker_addr_table
        .get("fake-broker")
        .map(|b| b.broker_addrs.clone().into_iter().collect())
        .unwrap_or_default()
}

/// UNREGISTER_BROKER of `addr`, with `broker_id` when given.
async fn unregister(
    c: &actormq::client::RemotingClient,
    ns: &str,
    addr: &str,
    broker_id: Option<i64>,
) {
    let mut fields = vec![
        ("brokerName", "fake-broker".to_owned()),
        ("brokerAddr", addr.to_owned()),
        ("clusterName", "FakeCluster".to_owned()),
    ];
    if let Some(id) = broker_id {
        fields.push(("brokerId", id.to_string()));
    }
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = call(c, ns, request::UNREGISTER_BROKER, ext(&fields), None).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

/// Controller mode after a failover (apache/rocketmq#6316, #5374, #11043):
/// the registration with the higher `stateVersion` (master epoch) keeps
/// id 0 against a resumed old master, and a late unregister of the old
/// master removes neither the new master nor the old one re-registered
/// under another id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_master_keeps_id_0_and_late_unregisters_remove_nothing_newer() {
    let s = TestServer::start(Opts {
        broker: false,
        ..Opts::default()
    });
    let ns = s.namesrv().to_owned();
    let (old, new, observer) = (client(), client(), client());
    let (a, b) = ("127.0.0.1:1", "127.0.0.1:3");
    let register = |c: &actormq::client::RemotingClient, addr: &str, id: i64, sv: i64| {
        let (c, ns, cmd) = (
            c.clone(),
            ns.clone(),
            fake_register_as("EpochTopic", addr, id, sv),
        );
        async move {
            let r = c.invoke(&ns, cmd, CALL).await.expect("register");
            assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        }
    };
    let ids = |m: &[(i64, &str)]| -> std::collections::BTreeMap<i64, String> {
        m.iter().map(|(i, a)| (*i, (*a).to_owned())).collect()
    };

    // A is master at epoch 5; B, claiming id 0 at epoch 4, is ignored.
    register(&old, a, 0, 5).await;
    register(&new, b, 0, 4).await;
    assert_eq!(
        fake_ids(&observer, &ns).await,
        ids(&[(0, a)]),
        "lower epoch took id 0"
    );
    // B elected at epoch 6 takes id 0; A, resumed and still at epoch 5,
    // cannot take it back.
    register(&new, b, 0, 6).await;
    assert_eq!(fake_ids(&observer, &ns).await, ids(&[(0, b)]));
    register(&old, a, 0, 5).await;
    assert_eq!(
        fake_ids(&observer, &ns).await,
        ids(&[(0, b)]),
        "old master took id 0 back"
    );
    let r = route_with_version(&observer, &ns, "EpochTopic", 479).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    // A's late unregister as master (#5374): B stays.
    unregister(&observer, &ns, a, Some(0)).await;
    assert_eq!(
        fake_ids(&observer, &ns).await,
        ids(&[(0, b)]),
        "unregister of A removed B"
    );
    // A back as slave id 1 at epoch 6; a late unregister from its time as
    // master (id 0) is stale and ignored (#11043) ...
    register(&old, a, 1, 6).await;
    assert_eq!(fake_ids(&observer, &ns).await, ids(&[(0, b), (1, a)]));
    unregister(&observer, &ns, a, Some(0)).await;
    assert_eq!(
        fake_ids(&observer, &ns).await,
        ids(&[(0, b), (1, a)]),
        "a stale unregister removed the re-registered slave"
    );
    // ... its own unregister removes it, and one without an id removes by
    // address, as RocketMQ does.
    unregister(&observer, &ns, a, Some(1)).await;
    assert_eq!(fake_ids(&observer, &ns).await, ids(&[(0, b)]));
    unregister(&observer, &ns, b, None).await;
    assert!(fake_ids(&observer, &ns).await.is_empty());
    let r = route_with_version(&observer, &ns, "EpochTopic", 479).await;
    assert_eq!(r.code, response::TOPIC_NOT_EXIST, "{:?}", r.remark);
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
