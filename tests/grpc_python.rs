//! The 5.x gRPC API with an unchanged 5.x client: the PyPI
//! `rocketmq-python-client` 5.1.2 (Apache's Python client) runs
//! `tests/python/rmq5_grpc.py` against the proxy in LOCAL mode
//! (`actormq standalone --grpc-port`) and in CLUSTER mode (`actormq proxy
//! -n` in front of a standalone node), and the results are checked over
//! remoting (pull) or from what the client saw.
//!
//! The harness is in `tests/grpc5` (interpreter from `ACTORMQ_PYTHON5`).

mod common;
mod grpc5;

use std::collections::HashMap;
use std::time::Duration;

use actormq::client::RemotingClient;
use actormq::wire::message::keys;
use common::*;
use grpc5::*;

/// Normal, FIFO and delayed sends, checked by pulling what was stored.
fn producer_sends(mode: Mode) {
    let Some(py) = python() else { return };
    let node = start(mode);
    let c = client();
    let rt = rt();
    rt.block_on(async {
        create_typed(&c, &node.broker, "G5Normal", 4, None).await;
        create_typed(&c, &node.broker, "G5Fifo", 4, Some("FIFO")).await;
        create_typed(&c, &node.broker, "G5Delay", 2, Some("DELAY")).await;
    });
    let results = run(
        &py,
        &node,
        "send",
        &["G5Normal", "G5Fifo", "G5Delay"],
        Duration::from_secs(90),
    );
    rt.block_on(async {
        // Normal: every message stored once, with tag, keys and properties.
        let stored = pull_topic(&c, &node.broker, "G5Normal", 4).await;
        let normal: Vec<&Vec<String>> = results.iter().filter(|r| r[0] == "NORMAL").collect();
        assert_eq!(normal.len(), 10);
        assert_eq!(stored.len(), 10, "{mode:?}");
        assert_normal_stored(&results, &stored, "python5");
        // FIFO: one queue per message group, in send order.
        let fifo: Vec<&Vec<String>> = results.iter().filter(|r| r[0] == "FIFO").collect();
        assert_eq!(fifo.len(), 10);
        let mut by_group: HashMap<String, Vec<(i32, i64, String)>> = HashMap::new();
        for q in 0..4 {
            for m in pull_all(&c, &node.broker, "G5Fifo", q).await {
                let g = m
                    .property(keys::SHARDING_KEY)
                    .unwrap_or_default()
                    .to_owned();
                by_group.entry(g).or_default().push((
                    q,
                    m.queue_offset,
                    String::from_utf8_lossy(&m.body).into_owned(),
                ));
            }
        }
        for g in ["order-a", "order-b"] {
            let msgs = &by_group[g];
            assert!(
                msgs.iter().all(|(q, _, _)| *q == msgs[0].0),
                "{g} spread over queues: {msgs:?}"
            );
            let bodies: Vec<&str> = msgs.iter().map(|(_, _, b)| b.as_str()).collect();
            let want: Vec<String> = (0..5).map(|i| format!("{g}-{i}")).collect();
            assert_eq!(bodies, want);
        }
        // Delay: delivered through the timer, not before its time.
        let delay = results
            .iter()
            .find(|r| r[0] == "DELAY")
            .expect("delay result");
        let sent_at: i64 = delay[2].parse().unwrap();
        let got = eventually(Duration::from_secs(20), || async {
            let v = pull_topic(&c, &node.broker, "G5Delay", 2).await;
            v.into_iter().find(|m| uniq(m) == delay[1])
        })
        .await
        .expect("the delayed message never arrived");
        assert!(
            got.store_timestamp >= sent_at + 2_500,
            "stored {} ms after the send",
            got.store_timestamp - sent_at
        );
    });
}

/// Commit, rollback, and a transaction left open that the broker checks
/// and the client's checker commits.
fn producer_transactions(mode: Mode) {
    let Some(py) = python() else { return };
    let node = start(mode);
    let c = client();
    let rt = rt();
    rt.block_on(create_typed(
        &c,
        &node.broker,
        "G5Tx",
        2,
        Some("TRANSACTION"),
    ));
    let results = run(
        &py,
        &node,
        "transactions",
        &["G5Tx"],
        Duration::from_secs(120),
    );
    let id = |k: &str| {
        results
            .iter()
            .find(|r| r[0] == k)
            .map(|r| r[1].clone())
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let (commit, rollback, pending) = (id("TXCOMMIT"), id("TXROLLBACK"), id("TXPENDING"));
    assert_eq!(id("TXCHECKED"), pending, "the check named another message");
    rt.block_on(async {
        let stored = eventually(Duration::from_secs(10), || async {
            let v = pull_topic(&c, &node.broker, "G5Tx", 2).await;
            (v.len() >= 2).then_some(v)
        })
        .await
        .expect("committed messages not visible");
        let ids: Vec<String> = stored.iter().map(uniq).collect();
        assert!(ids.contains(&commit), "{ids:?}");
        assert!(ids.contains(&pending), "{ids:?}");
        assert!(!ids.contains(&rollback), "a rolled back message is visible");
        assert_eq!(ids.len(), 2);
    });
}

#[test]
fn grpc_local_producer_normal_fifo_delay() {
    producer_sends(Mode::Local);
}

#[test]
fn grpc_cluster_producer_normal_fifo_delay() {
    producer_sends(Mode::Cluster);
}

#[test]
fn grpc_local_producer_transactions() {
    producer_transactions(Mode::Local);
}

#[test]
fn grpc_cluster_producer_transactions() {
    producer_transactions(Mode::Cluster);
}

/// SimpleConsumer: receive and ack; a fast nack (ChangeInvisibleDuration
/// to 1 s) brings the message back with the next delivery attempt; a tag
/// filter keeps other tags out.
fn simple_consumer(mode: Mode) {
    let Some(py) = python() else { return };
    let node = start(mode);
    let c = client();
    rt().block_on(create_typed(&c, &node.broker, "G5Simple", 4, None));
    let results = run(
        &py,
        &node,
        "simple",
        &["G5Simple", "G5SimpleGroup"],
        Duration::from_secs(120),
    );
    let summary = results.iter().find(|r| r[0] == "SUMMARY").expect("summary");
    assert_eq!(
        summary[1..],
        ["sent", "5", "acked", "5", "again", "2"],
        "{results:?}"
    );
    let acked: Vec<&Vec<String>> = results.iter().filter(|r| r[0] == "ACKED").collect();
    assert_eq!(
        acked.len(),
        5,
        "a message came twice or a filtered one came: {results:?}"
    );
}

/// Never acked: redelivered after its invisible time until the group's
/// max attempts (retryMaxTimes 2 → 3 deliveries), then in `%DLQ%<group>`.
fn dead_letters(mode: Mode) {
    let Some(py) = python() else { return };
    let node = start(mode);
    let c = client();
    let rt = rt();
    rt.block_on(async {
        create_typed(&c, &node.broker, "G5Dlq", 1, None).await;
        create_group(&c, &node.broker, "G5DlqGroup", 2, false).await;
    });
    let results = run(
        &py,
        &node,
        "dlq",
        &["G5Dlq", "G5DlqGroup"],
        Duration::from_secs(200),
    );
    let attempts: Vec<&str> = results
        .iter()
        .filter(|r| r[0] == "ATTEMPT")
        .map(|r| r[1].as_str())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"], "{results:?}");
    let mid = results
        .iter()
        .find(|r| r[0] == "DLQSUMMARY")
        .expect("summary")[1]
        .clone();
    rt.block_on(async {
        let found = eventually(Duration::from_secs(20), || async {
            let v = pull_all(&c, &node.broker, "%DLQ%G5DlqGroup", 0).await;
            v.iter().any(|m| uniq(m) == mid).then_some(())
        })
        .await;
        assert!(found.is_some(), "the message is not in the DLQ");
    });
}

/// PushConsumer: two groups of two consumers each; every message reaches
/// each group exactly once.
fn push_consumers(mode: Mode) {
    let Some(py) = python() else { return };
    let node = start(mode);
    let c = client();
    rt().block_on(create_typed(&c, &node.broker, "G5Push", 4, None));
    let results = run(
        &py,
        &node,
        "push",
        &["G5Push", "G5PushA,G5PushB", "50"],
        Duration::from_secs(150),
    );
    for g in ["G5PushA", "G5PushB"] {
        let r = results
            .iter()
            .find(|r| r[0] == "PUSH" && r[1] == g)
            .expect("group result");
        assert_eq!(
            r[2..],
            ["got", "50", "distinct", "50", "missing", "0"],
            "{g}: {results:?}"
        );
    }
}

#[test]
fn grpc_local_simple_consumer() {
    simple_consumer(Mode::Local);
}

#[test]
fn grpc_cluster_simple_consumer() {
    simple_consumer(Mode::Cluster);
}

#[test]
fn grpc_local_redelivery_and_dlq() {
    dead_letters(Mode::Local);
}

#[test]
fn grpc_cluster_redelivery_and_dlq() {
    dead_letters(Mode::Cluster);
}

#[test]
fn grpc_local_push_consumer() {
    push_consumers(Mode::Local);
}

#[test]
fn grpc_cluster_push_consumer() {
    push_consumers(Mode::Cluster);
}

/// A root-signed admin request to the broker.
async fn as_root(c: &RemotingClient, addr: &str, code: i32, pairs: &[(&str, &str)], body: &str) {
    let mut cmd = actormq::wire::RemotingCommand::request(code).with_body(body.as_bytes().to_vec());
    cmd.ext = ext(pairs);
    let b = cmd.body_bytes();
    actormq::auth::signature::sign_remoting(&mut cmd.ext, &b, "root", "root-secret", None);
    let r = c.invoke(addr, cmd, CALL).await.unwrap();
    assert_eq!(r.code, 0, "{code}: {:?}", r.remark);
}

/// ACL 2.0 over gRPC: the `authorization` header is checked against the
/// broker's users and policies (LOCAL mode), or against the copy a
/// CLUSTER-mode proxy reads from the brokers (signed with its inner
/// credentials).
fn acl(mode: Mode) {
    let Some(py) = python() else { return };
    let node = start_with(
        mode,
        Extra {
            broker_conf: concat!(
                "authenticationEnabled=true\nauthorizationEnabled=true\n",
                "initAuthenticationUser={\"username\":\"root\",\"password\":\"root-secret\"}\n",
                "innerClientAuthenticationCredentials={\"accessKey\":\"root\",\"secretKey\":\"root-secret\"}\n",
            ),
            proxy_json: (mode == Mode::Cluster).then_some(
                r#"{"authenticationEnabled": true, "authorizationEnabled": true,
                "innerClientAuthenticationCredentials": "{\"accessKey\":\"root\",\"secretKey\":\"root-secret\"}",
                "userCacheRefreshSeconds": 1, "aclCacheRefreshSeconds": 1}"#,
            ),
        },
    );
    let broker = node.broker.clone();
    rt().block_on(async {
        let c = client();
        for t in ["G5Acl", "G5AclOther"] {
            as_root(
                &c,
                &broker,
                17,
                &[
                    ("topic", t),
                    ("readQueueNums", "2"),
                    ("writeQueueNums", "2"),
                    ("perm", "6"),
                ],
                "",
            )
            .await;
        }
        as_root(
            &c,
            &broker,
            3001,
            &[("username", "py")],
            r#"{"username":"py","password":"py-secret","userType":"Normal"}"#,
        )
        .await;
        let acl = r#"{"subject":"User:py","policies":[{"policyType":"Custom","entries":[
            {"resource":"Topic:G5Acl","actions":["Pub","Sub"],"decision":"Allow"}]}]}"#;
        as_root(&c, &broker, 3006, &[("subject", "User:py")], acl).await;
    });
    let outcome = |topic: &str, ak: &str, sk: &str| {
        let r = run(&py, &node, "acl", &[topic, ak, sk], Duration::from_secs(60));
        let line = r
            .iter()
            .find(|l| l[0] == "ACL")
            .expect("acl result")
            .clone();
        (line[1].clone(), line[2..].join(" "))
    };
    // A CLUSTER-mode proxy sees the new user at its next read (1 s here).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (o, why) = loop {
        let (o, why) = outcome("G5Acl", "py", "py-secret");
        if o == "SENT" || std::time::Instant::now() > deadline {
            break (o, why);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(o, "SENT", "a valid key sends: {why}");
    let (o, why) = outcome("G5Acl", "py", "wrong-secret");
    assert_eq!(o, "REFUSED", "a wrong secret is refused");
    // The client reports the refused QueryRoute as a route failure.
    assert!(
        why.contains("route") || why.to_lowercase().contains("signature"),
        "{why}"
    );
    assert_eq!(
        outcome("G5Acl", "stranger", "x").0,
        "REFUSED",
        "an unknown user is refused"
    );
    let (o, why) = outcome("G5AclOther", "py", "py-secret");
    assert_eq!(o, "REFUSED", "a topic without Pub is refused");
    // Refused at QueryRoute already: the route needs Pub or Sub on the topic.
    assert!(
        why.contains("no permission") || why.contains("route"),
        "{why}"
    );
}

#[test]
fn grpc_local_acl() {
    acl(Mode::Local);
}

#[test]
fn grpc_cluster_acl() {
    acl(Mode::Cluster);
}
