//! The store lock (RocketMQ's `lock` file in `storePathRootDir`): a second
//! `actormq standalone` on a store that a running broker holds refuses to
//! start, naming the store and the holder's pid, and the holder keeps
//! serving; once the holder is killed with SIGKILL the kernel has dropped the
//! lock, a new broker starts on the store and every acknowledged message is
//! there.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const TOPIC: &str = "LockT";

fn conf(dir: &Path) -> std::path::PathBuf {
    let conf = dir.join("broker.conf");
    std::fs::write(
        &conf,
        "brokerClusterName=LockCluster\nbrokerName=broker-lock\nbrokerIP1=127.0.0.1\n\
         mapedFileSizeCommitLog=1048576\nregisterBrokerIntervalMs=1000\nautoCreateTopicEnable=true\n",
    )
    .unwrap();
    conf
}

/// Runs a second standalone on `store` with fresh ports and waits for it to
/// exit; returns its exit status and output. Panics if it keeps running.
fn second_start(store: &Path, conf: &Path, log: &Path) -> (std::process::ExitStatus, String) {
    let (ns, b) = (free_port().to_string(), free_port().to_string());
    let args = [
        "standalone",
        "--namesrv-port",
        &ns,
        "--broker-port",
        &b,
        "--store",
        store.to_str().unwrap(),
        "-c",
        conf.to_str().unwrap(),
    ];
    let mut second = ChildServer::spawn("second", &args, log);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = second.child.try_wait() {
            return (status, std::fs::read_to_string(log).unwrap_or_default());
        }
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            // `second` is killed on drop.
            panic!("a second broker on a locked store kept running; log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_broker_on_a_locked_store_refuses_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let conf = conf(dir.path());
    let (mut first, broker) = spawn_standalone(
        &store,
        &conf,
        &dir.path().join("first.log"),
        Duration::from_secs(15),
    );
    let first_pid = first.child.id();
    let c = client();
    let mut acked = Vec::new();
    for i in 0..20 {
        let body = pseudo_body(i, 200);
        send_ok(&c, &broker, TOPIC, 0, &Msg::new(body.clone())).await;
        acked.push(body);
    }

    let (status, text) =
        tokio::task::block_in_place(|| second_start(&store, &conf, &dir.path().join("second.log")));
    assert!(
        !status.success(),
        "the second broker exited with {status}; log:\n{text}"
    );
    assert!(
        text.contains(&store.display().to_string()),
        "the refusal does not name the store; log:\n{text}"
    );
    assert!(
        text.contains(&format!("pid {first_pid}")),
        "the refusal does not name the holder's pid {first_pid}; log:\n{text}"
    );
    assert!(!text.contains("panicked"), "{text}");

    // The holder is undisturbed: it still takes sends and serves pulls.
    assert!(first.is_running());
    for i in 20..40 {
        let body = pseudo_body(i, 200);
        send_ok(&c, &broker, TOPIC, 0, &Msg::new(body.clone())).await;
        acked.push(body);
    }
    let pulled: Vec<Vec<u8>> = pull_all(&c, &broker, TOPIC, 0)
        .await
        .into_iter()
        .map(|m| m.body.to_vec())
        .collect();
    assert_eq!(pulled, acked);

    // SIGKILL frees the lock: a new broker starts on the store and every
    // acknowledged message is there.
    first.kill9();
    let (mut third, broker) = spawn_standalone(
        &store,
        &conf,
        &dir.path().join("third.log"),
        Duration::from_secs(15),
    );
    let c = client();
    let pulled: Vec<Vec<u8>> = pull_all(&c, &broker, TOPIC, 0)
        .await
        .into_iter()
        .map(|m| m.body.to_vec())
        .collect();
    assert_eq!(pulled, acked);
    let lock = std::fs::read_to_string(store.join("lock")).unwrap();
    assert_eq!(lock.trim(), third.child.id().to_string());
    third.kill9();
}
