//! Consumption administration over sockets: ordered-consumption locks,
//! subscription-group admin with consumeEnable=false, SQL92 filters,
//! consume stats (lag), reset offset by timestamp, consumer connections
//! and forwarded running info.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actormq::wire::codes::{request, response};
use actormq::wire::headers::pull::{pull_flag, PullMessageRequestHeader};
use actormq::wire::headers::CommandHeader;
use actormq::wire::{now_ms, ExtFields, RemotingCommand};
use bytes::Bytes;
use common::*;

fn lock_body(client: &str, group: &str, queues: &[i32]) -> Bytes {
    // Lenient shapes on purpose: booleans and numbers as strings.
    let mqs: Vec<String> = queues
        .iter()
        .map(|q| format!(r#"{{"brokerName":"broker-a","queueId":"{q}","topic":"LockT"}}"#))
        .collect();
    Bytes::from(format!(
        r#"{{"clientId":"{client}","consumerGroup":"{group}","onlyThisBroker":"0","mqSet":[{}]}}"#,
        mqs.join(",")
    ))
}

async fn lock(
    c: &actormq::client::RemotingClient,
    b: &str,
    client: &str,
    queues: &[i32],
) -> Vec<i64> {
    let r = call(
        c,
        b,
        request::LOCK_BATCH_MQ,
        ExtFields::default(),
        Some(lock_body(client, "lock_g", queues)),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let v: serde_json::Value = serde_json::from_slice(&r.body_bytes()).unwrap();
    let mut got: Vec<i64> = v["lockOKMQSet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["queueId"].as_i64().unwrap())
        .collect();
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_locks_one_owner_and_expiry() {
    let srv = TestServer::start(Opts::default().broker(|c| c.rebalance_lock_max_live_time = 600));
    let c = client();
    let b = srv.broker();
    assert_eq!(lock(&c, b, "A", &[0, 1]).await, [0, 1]);
    assert_eq!(lock(&c, b, "B", &[1, 2]).await, [2]);
    assert_eq!(
        lock(&c, b, "A", &[0, 1, 2]).await,
        [0, 1],
        "renewal keeps A's queues only"
    );
    let r = call(
        &c,
        b,
        request::UNLOCK_BATCH_MQ,
        ExtFields::default(),
        Some(lock_body("A", "lock_g", &[1])),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(lock(&c, b, "B", &[1]).await, [1]);
    // A stops renewing: its lease on queue 0 runs out.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(lock(&c, b, "B", &[0]).await, [0]);
}

fn group_body(name: &str, enable: bool) -> Bytes {
    Bytes::from(format!(
        r#"{{"groupName":"{name}","consumeEnable":{enable},"consumeBroadcastEnable":true,"retryMaxTimes":3,"retryQueueNums":1,"consumeFromMinEnable":true}}"#
    ))
}

fn pull_as(group: &str, topic: &str, sub: Option<(&str, &str)>) -> RemotingCommand {
    let h = PullMessageRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id: 0,
        queue_offset: 0,
        max_msg_nums: 32,
        sys_flag: if sub.is_some() {
            pull_flag::SUBSCRIPTION
        } else {
            0
        },
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: sub.map(|s| s.0.to_owned()),
        sub_version: now_ms(),
        expression_type: sub.map(|s| s.1.to_owned()),
        max_msg_bytes: None,
        request_source: None,
        broker_name: None,
    };
    let mut cmd = RemotingCommand::request(request::PULL_MESSAGE);
    cmd.ext = h.to_ext();
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_group_admin_and_consume_enable() {
    let srv =
        TestServer::start(Opts::default().broker(|c| c.auto_create_subscription_group = false));
    let c = client();
    let b = srv.broker();
    create_topic(&c, b, "GrpT", 1).await;
    let sent = send_ok(&c, b, "GrpT", 0, &Msg::new("m")).await;

    // Unknown group, no auto-creation.
    let r = send_back(&c, b, "adm_g", phys_of(&sent.msg_id), 0, None).await;
    assert_eq!(r.code, response::SUBSCRIPTION_GROUP_NOT_EXIST);

    let r = call(
        &c,
        b,
        request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        ExtFields::default(),
        Some(group_body("adm_g", false)),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = call(
        &c,
        b,
        request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
        ExtFields::default(),
        None,
    )
    .await;
    let all: serde_json::Value = serde_json::from_slice(&r.body_bytes()).unwrap();
    let g = &all["subscriptionGroupTable"]["adm_g"];
    assert_eq!(g["consumeEnable"], false);
    assert_eq!(g["retryMaxTimes"], 3);

    let r = c
        .invoke(b, pull_as("adm_g", "GrpT", None), CALL)
        .await
        .unwrap();
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);
    let r = c
        .invoke(b, pull_as("other_g", "GrpT", None), CALL)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);

    // The group exists now: send-back works and honours retryMaxTimes.
    let r = send_back(&c, b, "adm_g", phys_of(&sent.msg_id), 0, None).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    call(
        &c,
        b,
        request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        ExtFields::default(),
        Some(group_body("adm_g", true)),
    )
    .await;
    let r = c
        .invoke(b, pull_as("adm_g", "GrpT", None), CALL)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);

    let r = call(
        &c,
        b,
        request::DELETE_SUBSCRIPTIONGROUP,
        ext(&[("groupName", "adm_g")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    let r = call(
        &c,
        b,
        request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
        ExtFields::default(),
        None,
    )
    .await;
    let all: serde_json::Value = serde_json::from_slice(&r.body_bytes()).unwrap();
    assert!(all["subscriptionGroupTable"].get("adm_g").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_filter_delivers_exactly_the_matches() {
    let srv = TestServer::start(Opts::default().broker(|c| c.enable_property_filter = true));
    let c = client();
    let b = srv.broker();
    create_topic(&c, b, "SqlT", 1).await;
    for i in 0..20 {
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        let mut m = Msg::new(format!("m{i}"))
            .tags(tag)
            .prop("a", &i.to_string());
        if i % 3 == 0 {
            m = m.prop("color", "red");
        }
        send_ok(&c, b, "SqlT", 0, &m).await;
    }
    let expr = "(TAGS = 'TagA' AND a BETWEEN 4 AND 12) OR color IN ('red') AND a > 14";
    let want: Vec<String> = (0..20)
        .filter(|i| (i % 2 == 0 && (4..=12).contains(i)) || (i % 3 == 0 && *i > 14))
        .map(|i| format!("m{i}"))
        .collect();
    let r = c
        .invoke(b, pull_as("sql_g", "SqlT", Some((expr, "SQL92"))), CALL)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let got: Vec<String> = decode_checked(&r.body_bytes())
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).to_string())
        .collect();
    assert_eq!(got, want);

    // The subscription registered by heartbeat applies too.
    heartbeat(
        &c,
        b,
        "sql-client@1",
        &[],
        vec![consumer_data(
            "sql_hb",
            "CLUSTERING",
            &[("SqlT", "a >= 18", "SQL92")],
        )],
    )
    .await;
    let r = c
        .invoke(b, pull_as("sql_hb", "SqlT", None), CALL)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(decode_checked(&r.body_bytes()).len(), 2);

    // Malformed expressions: 23 on pull and on CHECK_CLIENT_CONFIG.
    let r = c
        .invoke(
            b,
            pull_as("sql_g", "SqlT", Some(("a > AND", "SQL92"))),
            CALL,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SUBSCRIPTION_PARSE_FAILED);
    assert!(r.remark.unwrap_or_default().contains("a > AND"));
    let body = serde_json::json!({"clientId": "x", "group": "sql_g", "subscriptionData": {
        "topic": "SqlT", "subString": "a IN (1", "expressionType": "SQL92", "classFilterMode": "0", "subVersion": "1"}});
    let r = call(
        &c,
        b,
        request::CHECK_CLIENT_CONFIG,
        ExtFields::default(),
        Some(Bytes::from(body.to_string())),
    )
    .await;
    assert_eq!(
        r.code,
        response::SUBSCRIPTION_PARSE_FAILED,
        "{:?}",
        r.remark
    );
    let good = body.to_string().replace("a IN (1", "a > 1");
    let r = call(
        &c,
        b,
        request::CHECK_CLIENT_CONFIG,
        ExtFields::default(),
        Some(Bytes::from(good)),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_refused_when_disabled() {
    let srv = TestServer::start_default();
    let c = client();
    let b = srv.broker();
    create_topic(&c, b, "SqlOff", 1).await;
    let r = c
        .invoke(b, pull_as("g", "SqlOff", Some(("a > 1", "SQL92"))), CALL)
        .await
        .unwrap();
    assert_ne!(r.code, response::SUCCESS);
}

async fn commit(
    c: &actormq::client::RemotingClient,
    b: &str,
    group: &str,
    topic: &str,
    q: i32,
    off: i64,
) {
    let (q, off) = (q.to_string(), off.to_string());
    let r = call(
        c,
        b,
        request::UPDATE_CONSUMER_OFFSET,
        ext(&[
            ("consumerGroup", group),
            ("topic", topic),
            ("queueId", &q),
            ("commitOffset", &off),
        ]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
}

async fn query(
    c: &actormq::client::RemotingClient,
    b: &str,
    group: &str,
    topic: &str,
    q: i32,
) -> i64 {
    let q = q.to_string();
    let r = call(
        c,
        b,
        request::QUERY_CONSUMER_OFFSET,
        ext(&[("consumerGroup", group), ("topic", topic), ("queueId", &q)]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    r.ext.get("offset").unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_stats_reset_offset_and_connections() {
    let srv = TestServer::start_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RemotingCommand>();
    let c = client();
    c.set_request_handler(Arc::new(move |_a, req: RemotingCommand| {
        let reply = (req.code == request::GET_CONSUMER_RUNNING_INFO).then(|| {
            RemotingCommand::new_response(0, None)
                .with_body(Bytes::from_static(b"{\"properties\":{\"x\":\"1\"}}"))
        });
        let _ = tx.send(req);
        reply
    }));
    let b = srv.broker();
    create_topic(&c, b, "StatT", 2).await;
    for i in 0..3 {
        send_ok(&c, b, "StatT", 0, &Msg::new(format!("a{i}"))).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mid = now_ms();
    tokio::time::sleep(Duration::from_millis(30)).await;
    for i in 0..3 {
        send_ok(&c, b, "StatT", 0, &Msg::new(format!("b{i}"))).await;
    }
    send_ok(&c, b, "StatT", 1, &Msg::new("q1")).await;
    commit(&c, b, "stat_g", "StatT", 0, 5).await;
    commit(&c, b, "stat_g", "StatT", 1, 0).await;

    let r = call(
        &c,
        b,
        request::GET_CONSUME_STATS,
        ext(&[("consumerGroup", "stat_g"), ("topic", "StatT")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    let text = String::from_utf8(r.body_bytes().to_vec()).unwrap();
    assert!(
        text.starts_with("{\"consumeTps\":0.0,\"offsetTable\":{{"),
        "{text}"
    );
    assert!(text.contains(r#"{"brokerName":"broker-a","queueId":0,"topic":"StatT"}:{"brokerOffset":6,"consumerOffset":5,"lastTimestamp":"#), "{text}");
    assert!(text.contains(r#"{"brokerName":"broker-a","queueId":1,"topic":"StatT"}:{"brokerOffset":1,"consumerOffset":0,"lastTimestamp":0"#), "{text}");
    // Without a topic: the group's topics from its offsets.
    let r = call(
        &c,
        b,
        request::GET_CONSUME_STATS,
        ext(&[("consumerGroup", "stat_g")]),
        None,
    )
    .await;
    assert!(String::from_utf8_lossy(&r.body_bytes()).contains("\"brokerOffset\":6"));

    // Connections: none yet, then our heartbeat.
    let r = call(
        &c,
        b,
        request::GET_CONSUMER_CONNECTION_LIST,
        ext(&[("consumerGroup", "stat_g")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::CONSUMER_NOT_ONLINE);
    heartbeat(
        &c,
        b,
        "stat-client@1",
        &[],
        vec![consumer_data(
            "stat_g",
            "CLUSTERING",
            &[("StatT", "*", "TAG")],
        )],
    )
    .await;
    let r = call(
        &c,
        b,
        request::GET_CONSUMER_CONNECTION_LIST,
        ext(&[("consumerGroup", "stat_g")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    let v: serde_json::Value = serde_json::from_slice(&r.body_bytes()).unwrap();
    assert_eq!(v["connectionSet"][0]["clientId"], "stat-client@1");
    assert_eq!(v["messageModel"], "CLUSTERING");
    assert_eq!(v["subscriptionTable"]["StatT"]["subString"], "*");

    // Running info is forwarded to the client and answered verbatim.
    let r = call(
        &c,
        b,
        request::GET_CONSUMER_RUNNING_INFO,
        ext(&[("consumerGroup", "stat_g"), ("clientId", "stat-client@1")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(&r.body_bytes()[..], b"{\"properties\":{\"x\":\"1\"}}");
    let r = call(
        &c,
        b,
        request::GET_CONSUMER_RUNNING_INFO,
        ext(&[("consumerGroup", "stat_g"), ("clientId", "nobody")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SYSTEM_ERROR);

    // Reset by timestamp rewinds queue 0 to the first message after `mid`.
    let ts = mid.to_string();
    let r = call(
        &c,
        b,
        request::INVOKE_BROKER_TO_RESET_OFFSET,
        ext(&[
            ("topic", "StatT"),
            ("group", "stat_g"),
            ("timestamp", &ts),
            ("isForce", "true"),
        ]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let table = String::from_utf8(r.body_bytes().to_vec()).unwrap();
    assert!(
        table.contains(r#"{"brokerName":"broker-a","queueId":0,"topic":"StatT"}:3"#),
        "{table}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(query(&c, b, "stat_g", "StatT", 0).await, 3);
    // The consumer was told.
    let told = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let req = rx.recv().await.unwrap();
            if req.code == request::RESET_CONSUMER_CLIENT_OFFSET {
                return req;
            }
        }
    })
    .await
    .expect("no RESET_CONSUMER_CLIENT_OFFSET");
    assert_eq!(told.ext.get("group"), Some("stat_g"));
    assert_eq!(String::from_utf8_lossy(&told.body_bytes()), table);
}
