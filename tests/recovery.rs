//! Crash recovery: the `actormq` binary (standalone, SYNC_FLUSH, 64 KiB
//! commit-log segments) is killed with SIGKILL while 4 producers are
//! sending; after a restart on the same store every acknowledged message is
//! pullable intact and every stored record passes its body CRC. Twice, so
//! recovery of an already-recovered store is covered too.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actormq::client::RemotingClient;
use actormq::wire::codes::response;
use actormq::wire::headers::send::SendMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use common::*;

const TOPIC: &str = "CrashT";
const TASKS: usize = 4;

/// (queue offset, body) of every acknowledged message, per queue.
type Acked = Vec<Vec<(i64, Vec<u8>)>>;

struct Node {
    proc: ChildServer,
    broker: String,
}

fn start_node(dir: &Path, run: usize) -> Node {
    let conf = dir.join("broker.conf");
    std::fs::write(
        &conf,
        "brokerClusterName=CrashCluster\nbrokerName=broker-crash\nbrokerIP1=127.0.0.1\n\
         flushDiskType=SYNC_FLUSH\nmapedFileSizeCommitLog=65536\nregisterBrokerIntervalMs=1000\n\
         autoCreateTopicEnable=true\n",
    )
    .unwrap();
    let (proc, broker) = spawn_standalone(
        &dir.join("store"),
        &conf,
        &dir.join(format!("run{run}.log")),
        Duration::from_secs(10),
    );
    Node { proc, broker }
}

/// Sends from `TASKS` tasks (task i → queue i) until stopped or the broker
/// goes away; returns what was acknowledged.
async fn produce_until_killed(node: &mut Node, seed: u64, min_acked: usize) -> Acked {
    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (stop, count, broker) = (stop.clone(), acked_count.clone(), node.broker.clone());
        tasks.push(tokio::spawn(async move {
            let c: RemotingClient = client();
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let s = seed * 1_000_000 + t as u64 * 100_000 + i;
                let mut body = format!("t{t}-{i}-").into_bytes();
                body.extend(pseudo_body(s, 200 + (s as usize * 7919) % 6000));
                let m = Msg::new(body.clone()).tags("C");
                let mut cmd = actormq::wire::RemotingCommand::request(
                    actormq::wire::codes::request::SEND_MESSAGE_V2,
                )
                .with_body(body.clone());
                cmd.ext = send_header(TOPIC, t as i32, &m.properties(), false)
                    .to_v2()
                    .to_ext();
                match c.invoke(&broker, cmd, Duration::from_secs(3)).await {
                    Ok(r) if r.code == response::SUCCESS => {
                        let h = SendMessageResponseHeader::from_ext(&r.ext).unwrap();
                        assert_eq!(h.queue_id, t as i32);
                        acked.push((h.queue_offset, body));
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    // Not acknowledged: may or may not be stored.
                    Ok(_) | Err(_) => break,
                }
                i += 1;
            }
            acked
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    while acked_count.load(Ordering::Relaxed) < min_acked && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        acked_count.load(Ordering::Relaxed) >= min_acked,
        "producers too slow before the crash"
    );
    // Crash mid-stream: the producers are still sending.
    node.proc.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut out = Vec::new();
    for t in tasks {
        out.push(
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("producer hung")
                .unwrap(),
        );
    }
    out
}

/// Every acknowledged message is at its offset with its body; every record
/// decodes with a valid CRC (checked by `pull_all`).
async fn verify(node: &Node, acked: &Acked) {
    let c = client();
    for (q, acked) in acked.iter().enumerate() {
        let msgs = pull_all(&c, &node.broker, TOPIC, q as i32).await;
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(
                m.queue_offset, i as i64,
                "queue {q}: offsets not consecutive after recovery"
            );
            assert_eq!(m.queue_id, q as i32);
            assert_eq!(m.topic, TOPIC);
        }
        assert!(
            msgs.len() >= acked.len(),
            "queue {q}: {} acked but {} recovered",
            acked.len(),
            msgs.len()
        );
        for (off, body) in acked {
            let m = &msgs[*off as usize];
            assert_eq!(
                m.body.as_ref(),
                body.as_slice(),
                "queue {q} offset {off}: body differs after recovery"
            );
            assert_eq!(m.tags(), Some("C"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_node(dir.path(), 0);
    let c = client();
    create_topic(&c, &node.broker, TOPIC, TASKS as i32).await;
    drop(c);

    let mut acked: Acked = produce_until_killed(&mut node, 1, 400).await;
    for (q, a) in acked.iter().enumerate() {
        let offs: Vec<i64> = a.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offs,
            (0..a.len() as i64).collect::<Vec<_>>(),
            "queue {q}: acked offsets not consecutive"
        );
    }
    let total: usize = acked.iter().map(Vec::len).sum();
    let max_bytes: usize = acked.iter().flatten().map(|(_, b)| b.len()).sum();
    assert!(
        max_bytes > 4 * 65536,
        "crossed too few segments ({max_bytes} bytes)"
    );
    eprintln!("run 1: {total} acknowledged before SIGKILL");

    let mut node = start_node(dir.path(), 1);
    verify(&node, &acked).await;
    let log = std::fs::read_to_string(dir.path().join("run1.log")).unwrap_or_default();
    if let Some(line) = log.lines().find(|l| l.contains("store recovered")) {
        eprintln!("run 2: {line}");
    }

    // Again on the recovered store: new messages continue after the old
    // ones (which may include unacknowledged survivors).
    let c = client();
    let mut base = Vec::new();
    for q in 0..TASKS {
        base.push(
            queue_offset(
                &c,
                &node.broker,
                actormq::wire::codes::request::GET_MAX_OFFSET,
                TOPIC,
                q as i32,
            )
            .await,
        );
    }
    drop(c);
    let more = produce_until_killed(&mut node, 2, 200).await;
    for (q, a) in more.into_iter().enumerate() {
        if let Some((first, _)) = a.first() {
            assert_eq!(*first, base[q], "queue {q}: first offset after recovery");
        }
        acked[q].extend(a);
    }
    let node = start_node(dir.path(), 2);
    verify(&node, &acked).await;
    drop(node);
}
