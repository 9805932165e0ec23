//! Shared by the tests that drive the proxy with Apache's 5.x Python client
//! (PyPI `rocketmq-python-client` 5.1.2, `tests/python/rmq5_grpc.py`): the
//! interpreter, a node in LOCAL or CLUSTER mode, and running the script.
//!
//! The interpreter comes from `ACTORMQ_PYTHON5` (a venv with the package;
//! `.ci/run` makes one). Unset: skipped with a notice, or failed when
//! `ACTORMQ_REQUIRE_PYTHON=1`.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use actormq::client::RemotingClient;
use actormq::wire::message::MessageExt;

pub fn python() -> Option<String> {
    match std::env::var("ACTORMQ_PYTHON5") {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ => {
            if std::env::var("ACTORMQ_REQUIRE_PYTHON").as_deref() == Ok("1") {
                panic!("ACTORMQ_REQUIRE_PYTHON=1 but ACTORMQ_PYTHON5 is not set");
            }
            eprintln!("\n*** SKIPPED: set ACTORMQ_PYTHON5 to a Python with");
            eprintln!("*** `rocketmq-python-client==5.1.2` (e.g. target/ci-venv5/bin/python)\n");
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Local,
    Cluster,
}

/// A node the clients talk to: its processes (killed on drop), the
/// broker's remoting address and the gRPC endpoint.
pub struct Node {
    pub procs: Vec<ChildServer>,
    pub broker: String,
    pub namesrv: String,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
}

/// What a node is started with besides the defaults.
#[derive(Default, Clone)]
pub struct Extra<'a> {
    /// More broker.conf lines.
    pub broker_conf: &'a str,
    /// rmq-proxy.json text (LOCAL: `--proxy-config`; CLUSTER: `proxy -c`).
    pub proxy_json: Option<&'a str>,
}

/// A standalone node, plus a CLUSTER-mode proxy in front of it when asked.
pub fn start(mode: Mode) -> Node {
    start_with(mode, Extra::default())
}

pub fn start_with(mode: Mode, extra: Extra) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("broker.conf");
    std::fs::write(
        &conf,
        format!(
            "mapedFileSizeCommitLog=4194304\ntransactionCheckInterval=500\ntransactionTimeOut=2000\n{}\n",
            extra.broker_conf
        ),
    )
    .unwrap();
    let proxy_conf = extra.proxy_json.map(|j| {
        let p = dir.path().join("rmq-proxy.json");
        std::fs::write(&p, j).unwrap();
        p.to_str().unwrap().to_owned()
    });
    let (ns_port, b_port, g_port) = (free_port(), free_port(), free_port());
    let local_grpc = match mode {
        Mode::Local => g_port,
        Mode::Cluster => 0,
    };
    let mut args = standalone_args(ns_port, b_port, &dir.path().join("store"), &conf);
    args.extend(["--grpc-port".to_string(), local_grpc.to_string()]);
    if let (Mode::Local, Some(p)) = (mode, &proxy_conf) {
        args.extend(["--proxy-config".to_string(), p.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut procs = vec![ChildServer::spawn(
        "standalone",
        &args,
        &dir.path().join("node.log"),
    )];
    let broker = format!("127.0.0.1:{b_port}");
    let namesrv = format!("127.0.0.1:{ns_port}");
    if let Mode::Cluster = mode {
        assert!(
            wait_port(&broker, Duration::from_secs(30)),
            "broker did not start"
        );
        let g = g_port.to_string();
        let log = dir.path().join("proxy.log");
        let mut a = vec!["proxy", "-n", &namesrv, "--grpc-port", &g];
        if let Some(p) = &proxy_conf {
            a.extend(["-c", p]);
        }
        procs.push(ChildServer::spawn("proxy", &a, &log));
    }
    let endpoint = format!("127.0.0.1:{g_port}");
    let node = Node {
        procs,
        broker,
        namesrv,
        endpoint,
        dir,
    };
    for addr in [&node.broker, &node.endpoint] {
        if !wait_port(addr, Duration::from_secs(30)) {
            panic!("{addr} did not open; logs:\n{}", node.logs());
        }
    }
    node
}

impl Node {
    pub fn logs(&self) -> String {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.dir.path()).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                out.push(format!("--- {}\n{text}", p.display()));
            }
        }
        out.join("\n")
    }
}

/// Creates a topic with RocketMQ's `message.type` attribute.
pub async fn create_typed(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    queues: i32,
    ty: Option<&str>,
) {
    let attrs = ty.map(|t| format!("+message.type={t}"));
    create_topic_with(c, broker, topic, queues, attrs.as_deref()).await
}

/// Runs the script; returns its RESULT lines split in words. Panics with
/// the script's and the servers' output unless it ends with `<mode>: ok`.
pub fn run(
    py: &str,
    node: &Node,
    mode: &str,
    args: &[&str],
    timeout: Duration,
) -> Vec<Vec<String>> {
    run_at(
        py,
        node.dir.path(),
        &node.endpoint,
        mode,
        args,
        timeout,
        &|| node.logs(),
    )
}

/// [`run`] against any endpoint, with output files under `dir`.
pub fn run_at(
    py: &str,
    dir: &Path,
    endpoint: &str,
    mode: &str,
    args: &[&str],
    timeout: Duration,
    logs: &dyn Fn() -> String,
) -> Vec<Vec<String>> {
    let script = format!("{}/tests/python/rmq5_grpc.py", env!("CARGO_MANIFEST_DIR"));
    let out_path = dir.join(format!("{mode}.out"));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(py)
        .arg(&script)
        .arg(mode)
        .arg(endpoint)
        .args(args)
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    let status = wait_child(&mut child, timeout);
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let ok = status.is_some_and(|s| s.success()) && output.contains(&format!("{mode}: ok"));
    assert!(
        ok,
        "python {mode} failed ({status:?}):\n{output}\nservers:\n{}",
        logs()
    );
    output
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The first RESULT line that starts with `tag`.
pub fn line<'a>(results: &'a [Vec<String>], tag: &str) -> &'a [String] {
    results
        .iter()
        .find(|r| r[0] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {results:?}"))
}

pub async fn pull_topic(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    queues: i32,
) -> Vec<MessageExt> {
    let mut all = Vec::new();
    for q in 0..queues {
        all.extend(pull_all(c, broker, topic, q).await);
    }
    all
}

pub fn uniq(m: &MessageExt) -> String {
    m.uniq_key().unwrap_or_default().to_owned()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every `NORMAL <id> <body>` result is stored once with tag `TagA`, keys
/// `key-*` and the user property `origin` (the scripts' normal sends).
pub fn assert_normal_stored(results: &[Vec<String>], stored: &[MessageExt], origin: &str) {
    for r in results.iter().filter(|r| r[0] == "NORMAL") {
        let m = stored
            .iter()
            .find(|m| uniq(m) == r[1])
            .unwrap_or_else(|| panic!("{} not stored", r[1]));
        assert_eq!(String::from_utf8_lossy(&m.body), r[2]);
        assert_eq!(m.tags(), Some("TagA"));
        assert!(m.keys().is_some_and(|k| k.starts_with("key-")));
        assert_eq!(m.property("origin"), Some(origin));
    }
}
