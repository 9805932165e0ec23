//! The 5.x gRPC API with Apache's unchanged Node.js client (npm
//! `rocketmq-client-nodejs`, run by `tests/node/rmq5_node.js`) in LOCAL and
//! CLUSTER mode: normal sends with tag, keys and a property (checked by
//! pulling over remoting), FIFO sends of one message group into one queue
//! in order, a SimpleConsumer receiving and acking every message once, a
//! PushConsumer of another group receiving every message.
//!
//! The package is looked for in `ACTORMQ_NODE5_MODULES` (a `node_modules`
//! directory), else in `target/node5/node_modules` (`.ci/run` installs it
//! there with `npm install rocketmq-client-nodejs@1.0.8`). Without `node`
//! or the package the tests are skipped with a notice, or fail when
//! `ACTORMQ_REQUIRE_NODE=1`.

mod common;
mod grpc5;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use actormq::wire::message::keys;
use common::*;
use grpc5::*;

fn node_modules() -> Option<PathBuf> {
    let dir = std::env::var_os("ACTORMQ_NODE5_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/node5/node_modules")
        });
    let has_node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_node && dir.join("rocketmq-client-nodejs/package.json").exists() {
        return Some(dir);
    }
    if std::env::var("ACTORMQ_REQUIRE_NODE").as_deref() == Ok("1") {
        panic!(
            "ACTORMQ_REQUIRE_NODE=1 but node or {} is missing",
            dir.display()
        );
    }
    eprintln!("\n*** SKIPPED grpc_node: needs `node` and rocketmq-client-nodejs in");
    eprintln!(
        "*** {} (npm install --prefix target/node5 rocketmq-client-nodejs@1.0.8)\n",
        dir.display()
    );
    None
}

fn node_client(mode: Mode) {
    let Some(modules) = node_modules() else {
        return;
    };
    let node = start(mode);
    let c = client();
    let rt = rt();
    rt.block_on(async {
        create_typed(&c, &node.broker, "N5Normal", 2, None).await;
        create_typed(&c, &node.broker, "N5Fifo", 4, Some("FIFO")).await;
    });
    let script = format!("{}/tests/node/rmq5_node.js", env!("CARGO_MANIFEST_DIR"));
    let out_path = node.dir.path().join("node.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("node")
        .arg(&script)
        .args([
            &node.endpoint,
            "N5Normal",
            "N5Fifo",
            "N5Group",
            "N5PushGroup",
        ])
        .env("NODE_PATH", &modules)
        .env("HOME", node.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("run node");
    let status = wait_child(&mut child, Duration::from_secs(150));
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()) && output.contains("node: ok"),
        "node failed ({status:?}):\n{output}\nservers:\n{}",
        node.logs()
    );
    let results: Vec<Vec<String>> = output
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        line(&results, "SIMPLE")[1..],
        ["sent", "10", "acked", "10", "missing", "0"],
        "{output}"
    );
    assert_eq!(
        line(&results, "PUSH")[1..],
        ["got", "10", "missing", "0"],
        "{output}"
    );
    rt.block_on(async {
        let stored = pull_topic(&c, &node.broker, "N5Normal", 2).await;
        assert_eq!(stored.len(), 10);
        assert_normal_stored(&results, &stored, "node5");
        let mut fifo = Vec::new();
        for q in 0..4 {
            for m in pull_all(&c, &node.broker, "N5Fifo", q).await {
                assert_eq!(m.property(keys::SHARDING_KEY), Some("node-group"));
                fifo.push((q, String::from_utf8_lossy(&m.body).into_owned()));
            }
        }
        assert!(fifo.iter().all(|(q, _)| *q == fifo[0].0), "{fifo:?}");
        let bodies: Vec<&str> = fifo.iter().map(|(_, b)| b.as_str()).collect();
        assert_eq!(bodies, ["fifo-0", "fifo-1", "fifo-2", "fifo-3", "fifo-4"]);
    });
}

#[test]
fn grpc_node_local() {
    node_client(Mode::Local);
}

#[test]
fn grpc_node_cluster() {
    node_client(Mode::Cluster);
}
