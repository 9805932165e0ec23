//! More of the 5.x API with Apache's unchanged 5.x clients (the Python
//! client from `tests/grpc5`; the Node.js client when installed): a proxy
//! started by an `actormq cluster` file, proxy-side auto-renew for push
//! consumers, FIFO consumption and batch ack, ACL in CLUSTER mode, and
//! `actormq broker --enable-proxy`.

mod cluster_support;
mod common;
mod grpc5;

use std::time::Duration;

use cluster_support::*;
use common::*;
use grpc5::*;

// ------------------------------------------------- a proxy from a cluster file

/// A cluster file with one name server, one broker and one proxy: the
/// supervisor starts the proxy after the broker, a Python 5.x client sends
/// and receives through it, `cluster status` shows it, and SIGTERM stops
/// it before the broker.
#[test]
fn grpc_cluster_file_starts_a_proxy_clients_use() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (ns, b0, g) = (free_port(), free_port(), free_port());
    let toml = format!(
        "[cluster]\nname = \"ProxyCluster\"\ndir = \"{}\"\nlogDir = \"logs\"\n\
         [[namesrv]]\nname = \"ns1\"\nport = {ns}\n\
         [[broker]]\nname = \"b0\"\nlistenPort = {b0}\nhaListenPort = 0\n{SMALL_STORE}\n\
         [[proxy]]\nname = \"p1\"\ngrpcServerPort = {g}\n",
        tmp.path().join("c").display()
    );
    let mut sup = Supervisor::start(tmp.path(), &toml);
    let endpoint = format!("127.0.0.1:{g}");
    let broker = format!("127.0.0.1:{b0}");
    assert!(
        wait_port(&endpoint, Duration::from_secs(60)) && wait_port(&broker, Duration::from_secs(5)),
        "the proxy did not come up:\n{}",
        sup.output()
    );
    let out = sup.output();
    let at = |o: &str, needle: &str| {
        o.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{o}"))
    };
    assert!(
        at(&out, "[cluster] started broker b0") < at(&out, "[cluster] started proxy p1"),
        "{out}"
    );
    let conf: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("c/p1/rmq-proxy.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(conf["namesrvAddr"], format!("127.0.0.1:{ns}"));
    assert_eq!(conf["rocketMQClusterName"], "ProxyCluster");

    rt().block_on(create_typed(&client(), &broker, "G5Sup", 2, None));
    let results = run_at(
        &py,
        tmp.path(),
        &endpoint,
        "simple",
        &["G5Sup", "G5SupGroup"],
        Duration::from_secs(120),
        &|| sup.output(),
    );
    assert_eq!(
        line(&results, "SUMMARY")[1..],
        ["sent", "5", "acked", "5", "again", "2"],
        "{results:?}"
    );

    let (code, text) = sup.status_cmd();
    assert_eq!(code, 0, "{text}");
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("p1 "))
        .unwrap_or_else(|| panic!("no proxy row:\n{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[2..5], ["proxy", &g.to_string(), "running"], "{text}");

    let pids = sup.all_pids();
    assert_eq!(pids.len(), 3, "{:?}", sup.status());
    unsafe { libc::kill(sup.child.id() as i32, libc::SIGTERM) };
    let code = wait_child(&mut sup.child, Duration::from_secs(60));
    let out = sup.output();
    assert_eq!(code.and_then(|c| c.code()), Some(0), "{out}");
    assert!(
        at(&out, "[cluster] proxy p1 stopped") < at(&out, "[cluster] stopping broker b0"),
        "the proxy stops first:\n{out}"
    );
    for p in pids {
        assert!(!alive(p), "child {p} left behind");
    }
}

// ------------------------------------------------------------- auto-renew

/// A short invisible time and a fast renew task, so a handler of a few
/// seconds outlasts the invisible time.
const RENEW_FAST: &str = r#"{"defaultInvisibleTimeMills": 4000,
    "renewAheadTimeMillis": 2500, "renewSchedulePeriodMillis": 500}"#;

/// Push consumers whose handler takes longer than the invisible time: the
/// proxy renews the handles, so every message arrives once and the acks,
/// sent with the handles the client was given, succeed.
fn push_consumer_auto_renew(mode: Mode) {
    let Some(py) = python() else { return };
    let node = start_with(
        mode,
        Extra {
            proxy_json: Some(RENEW_FAST),
            ..Default::default()
        },
    );
    rt().block_on(create_typed(&client(), &node.broker, "G5Renew", 2, None));
    let results = run(
        &py,
        &node,
        "renew",
        &["G5Renew", "G5RenewGroup", "6", "9", "8"],
        Duration::from_secs(180),
    );
    assert_eq!(
        line(&results, "RENEW")[1..],
        ["got", "6", "distinct", "6", "missing", "0", "ackfail", "0"],
        "{results:?}"
    );
}

#[test]
fn grpc_local_push_consumer_auto_renew() {
    push_consumer_auto_renew(Mode::Local);
}

#[test]
fn grpc_cluster_push_consumer_auto_renew() {
    push_consumer_auto_renew(Mode::Cluster);
}

// ------------------------------------------------------ FIFO and batch ack

const BATCH_ACK: &str = r#"{"enableBatchAck": true}"#;

/// A FIFO group (`consumeMessageOrderly`) through a SimpleConsumer: one
/// message group comes in order, and nothing more until every message
/// received before is acked; the last batch is acked with one AckMessage
/// of three entries (three acks in LOCAL mode, one BATCH_ACK_MESSAGE with
/// `enableBatchAck` in CLUSTER mode).
fn fifo_consumer(mode: Mode) {
    let Some(py) = python() else { return };
    let node = start_with(
        mode,
        Extra {
            proxy_json: (mode == Mode::Cluster).then_some(BATCH_ACK),
            ..Default::default()
        },
    );
    rt().block_on(async {
        let c = client();
        create_typed(&c, &node.broker, "G5FifoC", 1, Some("FIFO")).await;
        create_group(&c, &node.broker, "G5FifoGroup", 16, true).await;
    });
    let results = run(
        &py,
        &node,
        "fifo",
        &["G5FifoC", "G5FifoGroup"],
        Duration::from_secs(180),
    );
    assert_eq!(line(&results, "FIFO1")[1..], ["fifo-0", "fifo-1", "fifo-2"]);
    assert_eq!(line(&results, "BLOCKED")[1], "0", "{results:?}");
    assert_eq!(line(&results, "BLOCKED2")[1], "0", "{results:?}");
    assert_eq!(line(&results, "FIFO2")[1..], ["fifo-3", "fifo-4", "fifo-5"]);
    assert_eq!(
        line(&results, "FIFOACK")[1..],
        ["20000", "20000", "20000", "20000"],
        "{results:?}"
    );
    assert_eq!(line(&results, "REST")[1], "0", "{results:?}");
}

#[test]
fn grpc_local_fifo_consumer_in_order_and_batch_ack() {
    fifo_consumer(Mode::Local);
}

#[test]
fn grpc_cluster_fifo_consumer_in_order_and_batch_ack() {
    fifo_consumer(Mode::Cluster);
}

/// One AckMessage with eight entries (seven received messages and a bogus
/// handle): MULTIPLE_RESULTS, seven OK, the bogus one refused, and none of
/// the seven comes back after its invisible time (`enableBatchAck`: one
/// batch ack per broker, through the service layer in LOCAL mode and as
/// BATCH_ACK_MESSAGE in CLUSTER mode).
fn batch_ack(mode: Mode) {
    let Some(py) = python() else { return };
    let node = start_with(
        mode,
        Extra {
            proxy_json: Some(BATCH_ACK),
            ..Default::default()
        },
    );
    rt().block_on(create_typed(&client(), &node.broker, "G5Batch", 2, None));
    let results = run(
        &py,
        &node,
        "batchack",
        &["G5Batch", "G5BatchGroup", "7"],
        Duration::from_secs(120),
    );
    assert_eq!(line(&results, "RECEIVED")[1], "7", "{results:?}");
    assert_eq!(
        line(&results, "BATCHACK")[1..],
        ["30000", "ok", "7", "other", "40013"],
        "{results:?}"
    );
    assert_eq!(line(&results, "AGAIN")[1], "0", "{results:?}");
}

#[test]
fn grpc_local_batch_ack() {
    batch_ack(Mode::Local);
}

#[test]
fn grpc_cluster_batch_ack() {
    batch_ack(Mode::Cluster);
}

// ------------------------------------------------- broker --enable-proxy

/// `actormq broker --enable-proxy` (LOCAL mode in a broker started on its
/// own, beside its name server): a Python 5.x client sends and receives
/// over the broker's gRPC port.
#[test]
fn grpc_broker_enable_proxy() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ns, b, g) = (free_port(), free_port(), free_port());
    let ns_conf = dir.path().join("namesrv.conf");
    std::fs::write(
        &ns_conf,
        format!(
            "listenPort={ns}\nkvConfigPath={}\n",
            dir.path().join("kv.json").display()
        ),
    )
    .unwrap();
    let b_conf = dir.path().join("broker.conf");
    std::fs::write(
        &b_conf,
        format!(
            "brokerName=broker-p\nlistenPort={b}\nhaListenPort=0\nstorePathRootDir={}\n\
             mapedFileSizeCommitLog=1048576\n",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let namesrv = format!("127.0.0.1:{ns}");
    let ns_proc = ChildServer::spawn(
        "namesrv",
        &["namesrv", "-c", ns_conf.to_str().unwrap()],
        &dir.path().join("namesrv.log"),
    );
    assert!(wait_port(&namesrv, Duration::from_secs(30)));
    let g_s = g.to_string();
    let b_proc = ChildServer::spawn(
        "broker",
        &[
            "broker",
            "-n",
            &namesrv,
            "-c",
            b_conf.to_str().unwrap(),
            "--enable-proxy",
            "--grpc-port",
            &g_s,
        ],
        &dir.path().join("broker.log"),
    );
    let node = Node {
        procs: vec![ns_proc, b_proc],
        broker: format!("127.0.0.1:{b}"),
        namesrv,
        endpoint: format!("127.0.0.1:{g}"),
        dir,
    };
    for a in [&node.broker, &node.endpoint] {
        assert!(
            wait_port(a, Duration::from_secs(30)),
            "{a} did not open:\n{}",
            node.logs()
        );
    }
    assert!(
        node.logs().contains(&format!(
            "The gRPC proxy (LOCAL mode) boot success, port {g}"
        )),
        "{}",
        node.logs()
    );
    rt().block_on(create_typed(&client(), &node.broker, "G5Enable", 2, None));
    let results = run(
        &py,
        &node,
        "simple",
        &["G5Enable", "G5EnableGroup"],
        Duration::from_secs(120),
    );
    assert_eq!(
        line(&results, "SUMMARY")[1..],
        ["sent", "5", "acked", "5", "again", "2"],
        "{results:?}"
    );
}
