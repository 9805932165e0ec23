//! The `actormq produce / consume / admin` commands against an in-process
//! broker, run as child processes.

mod common;

use std::process::Command;
use std::time::Duration;

use actormq::client::push::{ConsumeResult, Listener, PushConfig, PushConsumer};
use common::*;

/// Runs `actormq args...`; returns (success, stdout + stderr).
async fn cli(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_actormq"))
            .args(&args)
            .env("ACTORMQ_LOG", "warn")
            .output()
            .expect("run actormq");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

fn args(s: &str, ns: &str, broker: &str) -> Vec<String> {
    s.replace("NS", ns)
        .replace("BROKER", broker)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn produce_consume_and_admin_commands() {
    let s = TestServer::start_default();
    let (ns, b) = (s.namesrv().to_string(), s.broker().to_string());
    let run = |a: &str| cli(args(a, &ns, &b));

    let (ok, out) = run("admin updateTopic -n NS -b BROKER -t CLIT -r 4 -w 4").await;
    assert!(ok, "{out}");
    let c = client();
    wait_route(&c, &ns, "CLIT").await;
    let (ok, out) = run("admin topicList -n NS").await;
    assert!(ok && out.lines().any(|l| l == "CLIT"), "{out}");
    let (ok, out) = run("admin clusterList -n NS").await;
    assert!(
        ok && out.contains(&s.broker_name) && out.contains(&b),
        "{out}"
    );

    for a in [
        "produce -n NS -t CLIT -c 20 --async 4 -q",
        "produce -n NS -t CLIT -c 5 --oneway -q",
        "produce -n NS -t CLIT -c 5 --sharding-key k1 --tag A -q",
    ] {
        let (ok, out) = run(a).await;
        assert!(ok, "{a}: {out}");
    }
    // One-way sends are not confirmed: wait until all 30 are stored.
    eventually(Duration::from_secs(5), || async {
        let mut n = 0;
        for q in 0..4 {
            n += pull_all(&c, &b, "CLIT", q).await.len();
        }
        (n == 30).then_some(())
    })
    .await
    .expect("30 messages stored");

    let (ok, out) = run("consume -n NS -t CLIT -g cli_g -c 30 --from first --timeout 20").await;
    assert!(ok && out.contains("received 30 msgs"), "{out}");
    let (ok, out) =
        run("consume -n NS -t CLIT -g cli_tags --tags A --from first --timeout 3 -q").await;
    assert!(ok && out.contains("received 5 msgs"), "{out}");

    let (ok, out) = run("admin consumerProgress -n NS -g cli_g").await;
    assert!(
        ok && out.contains("#Consumer Offset") && out.contains("CLIT"),
        "{out}"
    );
    assert!(out.contains("Diff Total: 0"), "{out}");

    // No consumer online: offsets are rewound directly.
    let (ok, out) = run("admin resetOffsetByTime -n NS -g cli_g -t CLIT -s 0").await;
    assert!(ok && out.contains("#brokerName"), "{out}");
    let (ok, out) = run("admin consumerProgress -n NS -g cli_g").await;
    assert!(ok && out.contains("Diff Total: 30"), "{out}");

    // A live consumer shows up in consumerConnection.
    let mut cfg = PushConfig::new("cli_live");
    cfg.instance_name = Some("live0".into());
    let mut pc = PushConsumer::new(cfg, &ns);
    pc.subscribe("CLIT", "*");
    pc.register_listener(Listener::concurrent(|_, _| ConsumeResult::Success));
    pc.start().await.unwrap();
    let (ok, out) = run("admin consumerConnection -n NS -g cli_live").await;
    assert!(ok && out.contains(&pc.client_id()), "{out}");
    assert!(
        out.contains("CLUSTERING") && out.contains("CONSUME_PASSIVELY"),
        "{out}"
    );
    pc.shutdown().await;

    let (ok, out) = run("admin updateSubGroup -n NS -b BROKER -g cli_sub -r 3").await;
    assert!(ok && out.contains("\"retryMaxTimes\":3"), "{out}");
    let (ok, out) = run("admin deleteTopic -n NS -b BROKER -t CLIT").await;
    assert!(ok, "{out}");
}
