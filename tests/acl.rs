//! Authentication and authorization (RocketMQ 5.x ACL 2.0) over real
//! sockets: requests signed as RocketMQ clients sign them (`AccessKey`,
//! `Signature` = base64 HMAC-SHA1 of the sorted ext values and the body);
//! unsigned, wrongly signed and unknown-key requests refused; users and
//! ACLs managed with the AUTH_* admin requests; the broker's registration
//! with the name server signed with its inner credentials, a fake one
//! refused.

mod common;

use std::collections::BTreeMap;

use actormq::auth::settings::AuthSettings;
use actormq::auth::signature::sign_remoting;
use actormq::client::RemotingClient;
use actormq::wire::codes::{request, response};
use actormq::wire::headers::CommandHeader;
use actormq::wire::{ExtFields, RemotingCommand};
use bytes::Bytes;

use common::*;

const ROOT: (&str, &str) = ("root", "root-secret");
const INNER: (&str, &str) = ("broker-inner", "inner-secret");

fn auth_keys() -> BTreeMap<String, String> {
    [
        ("authenticationEnabled", "true".to_string()),
        ("authorizationEnabled", "true".to_string()),
        (
            "initAuthenticationUser",
            format!(r#"{{"username":"{}","password":"{}"}}"#, ROOT.0, ROOT.1),
        ),
        (
            "innerClientAuthenticationCredentials",
            format!(r#"{{"accessKey":"{}","secretKey":"{}"}}"#, INNER.0, INNER.1),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn start() -> TestServer {
    TestServer::start(
        Opts::default()
            .broker(|b| b.unknown.extend(auth_keys()))
            .namesrv(|n| n.auth = AuthSettings::from_properties(&auth_keys(), "").unwrap()),
    )
}

/// Sends `cmd` signed with `who` (or unsigned).
async fn signed(
    c: &RemotingClient,
    addr: &str,
    mut cmd: RemotingCommand,
    who: Option<(&str, &str)>,
) -> RemotingCommand {
    if let Some((ak, sk)) = who {
        let body = cmd.body_bytes();
        sign_remoting(&mut cmd.ext, &body, ak, sk, None);
    }
    c.invoke(addr, cmd, CALL).await.expect("answer")
}

fn send_cmd(topic: &str, body: &str) -> RemotingCommand {
    let m = Msg::new(body);
    let mut cmd = RemotingCommand::request(request::SEND_MESSAGE_V2).with_body(m.body.clone());
    cmd.ext = send_header(topic, 0, &m.properties(), false)
        .to_v2()
        .to_ext();
    cmd
}

fn pull_req(topic: &str, group: &str) -> RemotingCommand {
    let mut e = ExtFields::default();
    for (k, v) in [
        ("consumerGroup", group),
        ("topic", topic),
        ("queueId", "0"),
        ("queueOffset", "0"),
        ("maxMsgNums", "32"),
        ("sysFlag", "0"),
        ("commitOffset", "0"),
        ("suspendTimeoutMillis", "0"),
        ("subVersion", "0"),
    ] {
        e.insert(k, v);
    }
    let mut cmd = RemotingCommand::request(request::PULL_MESSAGE);
    cmd.ext = e;
    cmd
}

fn admin(code: i32, fields: &[(&str, &str)], body: Option<serde_json::Value>) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code);
    cmd.ext = ext(fields);
    match body {
        Some(b) => cmd.with_body(Bytes::from(b.to_string())),
        None => cmd,
    }
}

fn assert_denied(r: &RemotingCommand, remark_part: &str) {
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);
    let remark = r.remark.clone().unwrap_or_default();
    assert!(
        remark.contains(remark_part),
        "{remark:?} lacks {remark_part:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_authenticated_and_authorized() {
    let s = start();
    let c = client();
    let b = s.broker().to_owned();
    create_topic_signed(&c, &b, "AclTopic").await;

    // Authentication: unsigned, unknown key, wrong secret.
    let r = signed(&c, &b, send_cmd("AclTopic", "x"), None).await;
    assert_denied(&r, "username cannot be null");
    let r = signed(&c, &b, send_cmd("AclTopic", "x"), Some(("nobody", "s"))).await;
    assert_denied(&r, "User:nobody is not found");
    let r = signed(&c, &b, send_cmd("AclTopic", "x"), Some((ROOT.0, "wrong"))).await;
    assert_denied(&r, "check signature failed");
    // A tampered body fails the signature too.
    let mut cmd = send_cmd("AclTopic", "original");
    sign_remoting(&mut cmd.ext, b"original", ROOT.0, ROOT.1, None);
    let cmd = cmd.with_body(Bytes::from_static(b"tampered"));
    let r = c.invoke(&b, cmd, CALL).await.unwrap();
    assert_denied(&r, "check signature failed");

    // The super user may do anything.
    let r = signed(&c, &b, send_cmd("AclTopic", "by-root"), Some(ROOT)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    // A normal user, created by root, with Pub on AclTopic only.
    let alice = ("alice", "alice-secret");
    let user = serde_json::json!({"username": alice.0, "password": alice.1, "userType": "Normal"});
    let r = signed(
        &c,
        &b,
        admin(3001, &[("username", alice.0)], Some(user.clone())),
        Some(ROOT),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "create user: {:?}", r.remark);
    let r = signed(&c, &b, send_cmd("AclTopic", "x"), Some(alice)).await;
    assert_denied(&r, "no matched policies");
    let acl = serde_json::json!({"subject": "User:alice", "policies": [{"policyType": "Custom", "entries": [
        {"resource": "Topic:AclTopic", "actions": ["Pub"], "sourceIps": ["127.0.0.1"], "decision": "Allow"},
        {"resource": "Topic:Secret*", "actions": ["All"], "decision": "Deny"}
    ]}]});
    let r = signed(
        &c,
        &b,
        admin(3006, &[("subject", "User:alice")], Some(acl)),
        Some(ROOT),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "create acl: {:?}", r.remark);
    let r = signed(&c, &b, send_cmd("AclTopic", "by-alice"), Some(alice)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // Pub only: pulling (Sub) is refused, and so is a topic without Pub.
    let r = signed(&c, &b, pull_req("AclTopic", "alice_group"), Some(alice)).await;
    assert_denied(&r, "no permission");
    let r = signed(&c, &b, send_cmd("OtherTopic", "x"), Some(alice)).await;
    assert_denied(&r, "no permission");
    // Admin requests need more than a normal user's policies.
    let r = signed(
        &c,
        &b,
        admin(3001, &[("username", "mallory")], Some(user)),
        Some(alice),
    )
    .await;
    assert_denied(&r, "no permission");
    let h = actormq::wire::headers::admin::TopicOnlyHeader {
        topic: "AclTopic".into(),
    };
    let mut del = RemotingCommand::request(request::DELETE_TOPIC_IN_BROKER);
    del.ext = h.to_ext();
    let r = signed(&c, &b, del, Some(alice)).await;
    assert_denied(&r, "no permission");

    // The admin reads: root lists alice and her ACL.
    let r = signed(&c, &b, admin(3005, &[], None), Some(ROOT)).await;
    let users: serde_json::Value = serde_json::from_slice(&r.body_bytes()).unwrap();
    assert!(users.to_string().contains("alice"), "{users}");
    let r = signed(
        &c,
        &b,
        admin(3009, &[("subject", "User:alice")], None),
        Some(ROOT),
    )
    .await;
    assert!(String::from_utf8_lossy(&r.body_bytes()).contains("Topic:AclTopic"));
    // Deleting her user takes her rights away.
    let r = signed(
        &c,
        &b,
        admin(3003, &[("username", alice.0)], None),
        Some(ROOT),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = signed(&c, &b, send_cmd("AclTopic", "x"), Some(alice)).await;
    assert_denied(&r, "User:alice is not found");
    s.stop();
}

async fn create_topic_signed(c: &RemotingClient, b: &str, topic: &str) {
    let h = actormq::wire::headers::admin::CreateTopicRequestHeader {
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
    };
    let mut cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC);
    cmd.ext = h.to_ext();
    let r = signed(c, b, cmd, Some(ROOT)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_name_server_takes_only_signed_registrations() {
    let s = start();
    let c = client();
    let ns = s.namesrv().to_owned();
    // The broker signed its registration: its topics are routed.
    let topic = s.cluster.clone();
    let route = eventually(std::time::Duration::from_secs(5), || {
        let c = c.clone();
        let ns = ns.clone();
        let topic = topic.clone();
        async move {
            let cmd = admin(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", &topic)], None);
            let r = signed(&c, &ns, cmd, Some(ROOT)).await;
            (r.code == response::SUCCESS).then_some(r)
        }
    })
    .await;
    assert!(
        route.is_some(),
        "the broker's signed registration was taken"
    );

    // A fake REGISTER_BROKER and an UNREGISTER_BROKER without credentials
    // are refused; signed by a normal user without Cluster rights too.
    let fake = actormq::wire::headers::namesrv::RegisterBrokerRequestHeader {
        broker_name: "fake".into(),
        broker_addr: "10.9.9.9:10911".into(),
        cluster_name: s.cluster.clone(),
        ha_server_addr: String::new(),
        broker_id: 0,
        heartbeat_timeout_millis: None,
        enable_acting_master: None,
        compressed: false,
        body_crc32: 0,
    };
    let mut cmd = RemotingCommand::request(request::REGISTER_BROKER);
    cmd.ext = fake.to_ext();
    let r = signed(&c, &ns, cmd, None).await;
    assert_denied(&r, "username cannot be null");
    let unreg = admin(
        request::UNREGISTER_BROKER,
        &[
            ("brokerName", &s.broker_name),
            ("brokerAddr", s.broker()),
            ("clusterName", &s.cluster),
            ("brokerId", "0"),
        ],
        None,
    );
    let r = signed(&c, &ns, unreg, Some(("intruder", "x"))).await;
    assert_denied(&r, "User:intruder is not found");
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4x_plain_acl_file_is_migrated_into_users_and_policies() {
    let dir = tempfile::tempdir().unwrap();
    let yml = dir.path().join("plain_acl.yml");
    std::fs::write(
        &yml,
        "globalWhiteRemoteAddresses:\naccounts:\n  - accessKey: legacy\n    secretKey: legacy-secret\n    \
         admin: false\n    defaultTopicPerm: DENY\n    defaultGroupPerm: SUB\n    topicPerms:\n      \
         - LegacyPub=PUB\n      - LegacyDeny=DENY\n",
    )
    .unwrap();
    let yml_path = yml.display().to_string();
    let s = TestServer::start(
        Opts::default()
            .broker(move |b| {
                b.unknown.extend(auth_keys());
                b.unknown
                    .insert("migrateAuthFromV1Enabled".into(), "true".into());
                b.unknown.insert("plainAclPath".into(), yml_path);
            })
            .namesrv(|n| n.auth = AuthSettings::from_properties(&auth_keys(), "").unwrap()),
    );
    let c = client();
    let b = s.broker().to_owned();
    for t in ["LegacyPub", "LegacyDeny"] {
        let h = actormq::wire::headers::admin::CreateTopicRequestHeader {
            topic: t.into(),
            default_topic: "TBW102".into(),
            read_queue_nums: 1,
            write_queue_nums: 1,
            perm: 6,
            topic_filter_type: None,
            topic_sys_flag: None,
            order: None,
            attributes: None,
            force: None,
        };
        let mut cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC);
        cmd.ext = h.to_ext();
        let r = signed(&c, &b, cmd, Some(ROOT)).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    let legacy = ("legacy", "legacy-secret");
    // The 4.x account is a user now, with its topic permissions as policies.
    let r = signed(&c, &b, send_cmd("LegacyPub", "migrated"), Some(legacy)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = signed(&c, &b, send_cmd("LegacyDeny", "x"), Some(legacy)).await;
    assert_denied(&r, "no permission");
    let r = signed(
        &c,
        &b,
        send_cmd("LegacyPub", "x"),
        Some(("legacy", "wrong")),
    )
    .await;
    assert_denied(&r, "check signature failed");
    s.stop();
}
