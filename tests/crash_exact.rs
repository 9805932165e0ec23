//! Crash-exact internal writes: the `actormq` binary is killed (an armed
//! crash point, ACTORMQ_INJECT_FAULT `target=crashPoint`) right after the
//! broker stored a batch of its own and before it closed the batch's
//! intent; after a restart on the same store each message is there exactly
//! once, stays so, and new work still flows.
//!
//! * delay levels: `schedule.after_put` (before `delayOffset.json`);
//! * END_TRANSACTION commit: `transaction.after_put`, also with the op
//!   record cut off the commit log before the restart (a batch torn in the
//!   middle: the committed message stored, its op record not);
//! * a half message checked `transactionCheckMax` times:
//!   `transaction.discard_after_put`;
//! * timer messages: `timer.after_put` (a delivery to the real topic) and
//!   `timer.after_roll` (a rolled timer re-parked in the timer queue), both
//!   before the timer checkpoint is written.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actormq::client::RemotingClient;
use actormq::wire::codes::{request, response};
use actormq::wire::headers::consume::CheckTransactionStateRequestHeader;
use actormq::wire::headers::send::SendMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use actormq::wire::message::MessageExt;
use actormq::wire::{now_ms, RemotingCommand};
use bytes::Bytes;
use common::*;
use tokio::sync::mpsc;

const PG: &str = "crash_tx_pg";

struct Node {
    proc: ChildServer,
    broker: String,
    log: std::path::PathBuf,
}

/// Starts `actormq standalone` on `dir/store` with fault injection on.
fn start_node(dir: &Path, run: usize, extra: &str) -> Node {
    let conf = dir.join("broker.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerClusterName=ExactCluster\nbrokerName=broker-exact\nbrokerIP1=127.0.0.1\n\
             mapedFileSizeCommitLog=65536\nregisterBrokerIntervalMs=1000\n\
             autoCreateTopicEnable=true\nfaultInjectionEnable=true\n{extra}"
        ),
    )
    .unwrap();
    let log = dir.join(format!("run{run}.log"));
    let (proc, broker) = spawn_standalone(&dir.join("store"), &conf, &log, Duration::from_secs(15));
    Node { proc, broker, log }
}

impl Node {
    /// Waits for the process to die at the armed crash point.
    fn wait_crash(&mut self, point: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.proc.is_running() {
            if Instant::now() > deadline {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("broker did not reach crash point {point}; log:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            text.contains("crash point reached") && text.contains(point),
            "the broker died elsewhere; log:\n{text}"
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

async fn arm(c: &RemotingClient, b: &str, point: &str) {
    let r = call(
        c,
        b,
        request::ACTORMQ_INJECT_FAULT,
        ext(&[("target", "crashPoint"), ("kind", point)]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "arm {point}: {:?}", r.remark);
}

fn bodies(ms: &[MessageExt]) -> Vec<String> {
    ms.iter()
        .map(|m| String::from_utf8_lossy(&m.body).to_string())
        .collect()
}

/// The queue's bodies once it holds `n`, after `settle` more: no more show up.
async fn exactly(
    c: &RemotingClient,
    b: &str,
    topic: &str,
    n: usize,
    settle: Duration,
) -> Vec<String> {
    let got = wait_messages(c, b, topic, 0, n, Duration::from_secs(10)).await;
    assert_eq!(got.len(), n, "{topic}: {:?}", bodies(&got));
    tokio::time::sleep(settle).await;
    let again = pull_all(c, b, topic, 0).await;
    assert_eq!(bodies(&again), bodies(&got), "{topic} changed later");
    bodies(&got)
}

fn delayed(body: &str) -> Msg {
    Msg::new(body)
        .tags("D")
        .prop("DELAY", "1")
        .prop("UNIQ_KEY", &format!("UK-{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_delivery_is_exact_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let levels = "messageDelayLevel=1s 2s 5s\n";
    let mut node = start_node(dir.path(), 0, levels);
    let c = client();
    create_topic(&c, &node.broker, "DelayX", 1).await;
    arm(&c, &node.broker, "schedule.after_put").await;
    for b in ["d1", "d2", "d3"] {
        send_ok(&c, &node.broker, "DelayX", 0, &delayed(b)).await;
    }
    // Due after 1 s: the first delivery batch is stored, then the crash.
    node.wait_crash("schedule.after_put", Duration::from_secs(10));
    drop(c);

    let node = start_node(dir.path(), 1, levels);
    let c = client();
    let got = exactly(&c, &node.broker, "DelayX", 3, Duration::from_millis(2500)).await;
    assert_eq!(got, ["d1", "d2", "d3"]);
    assert!(
        node.log_text()
            .contains("interrupted delay delivery resolved"),
        "the restart did not resolve an intent"
    );
    // Later delay messages still flow, once each.
    send_ok(&c, &node.broker, "DelayX", 0, &delayed("d4")).await;
    let got = exactly(&c, &node.broker, "DelayX", 4, Duration::from_millis(1500)).await;
    assert_eq!(got, ["d1", "d2", "d3", "d4"]);
}

async fn send_half(
    c: &actormq::client::RemotingClient,
    b: &str,
    topic: &str,
    body: &str,
) -> SendMessageResponseHeader {
    send_half_message(c, b, topic, body, PG).await
}

/// A client answering nothing; the msg ids of CHECK_TRANSACTION_STATE
/// requests land in a channel.
fn checking_client() -> (RemotingClient, mpsc::UnboundedReceiver<String>) {
    let c = client();
    let (tx, rx) = mpsc::unbounded_channel();
    c.set_request_handler(Arc::new(move |_addr, req: RemotingCommand| {
        if req.code == request::CHECK_TRANSACTION_STATE {
            let h = CheckTransactionStateRequestHeader::from_ext(&req.ext).ok();
            let _ = tx.send(h.and_then(|h| h.msg_id).unwrap_or_default());
        }
        None
    }));
    (c, rx)
}

fn drain(rx: &mut mpsc::UnboundedReceiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(id) = rx.try_recv() {
        out.push(id);
    }
    out
}

const TX_CONF: &str = "transactionCheckInterval=200\ntransactionTimeOut=1000\n";

/// Zeroes the last record of the commit log (as if the crash hit before
/// it was written) and returns it.
fn cut_last_record(store: &Path) -> MessageExt {
    let dir = store.join("commitlog");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut last = None;
    for f in &files {
        let data = Bytes::from(std::fs::read(f).unwrap());
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let total = i32::from_be_bytes(data[pos..pos + 4].try_into().unwrap());
            let magic = i32::from_be_bytes(data[pos + 4..pos + 8].try_into().unwrap());
            if total <= 0 || magic == actormq::wire::message::BLANK_MAGIC {
                break;
            }
            let m = actormq::wire::message::decode_record(&data, pos, false).unwrap();
            last = Some((f.clone(), pos, total as usize, m));
            pos += total as usize;
        }
    }
    let (file, pos, len, m) = last.expect("empty commit log");
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.seek(SeekFrom::Start(pos as u64)).unwrap();
    f.write_all(&vec![0u8; len]).unwrap();
    m
}

/// Cuts the op record of transaction `uniq`, which must be the last record
/// of the commit log (as if the crash hit between the two appends).
fn cut_op_record(store: &Path, uniq: &str) {
    let m = cut_last_record(store);
    assert_eq!(
        m.topic, "RMQ_SYS_TRANS_OP_HALF_TOPIC",
        "last record is not the op record"
    );
    assert_eq!(m.property("__transactionId__"), Some(uniq));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_commit_is_exact_across_a_crash() {
    commit_crash(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_transaction_commit_is_finished_after_a_crash() {
    commit_crash(true).await;
}

async fn commit_crash(tear: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_node(dir.path(), 0, TX_CONF);
    let c = client();
    create_topic(&c, &node.broker, "TxX", 1).await;
    let a = send_half(&c, &node.broker, "TxX", "A").await;
    arm(&c, &node.broker, "transaction.after_put").await;
    // The broker dies before it can answer.
    let r = c.invoke(&node.broker, commit_cmd(&a, PG), CALL).await;
    assert!(
        r.as_ref().map_or(true, |r| r.code != response::SUCCESS),
        "END_TRANSACTION answered although the broker should have died"
    );
    node.wait_crash("transaction.after_put", Duration::from_secs(5));
    drop(c);
    if tear {
        cut_op_record(&dir.path().join("store"), "UK-A");
    }

    let node = start_node(dir.path(), 1, TX_CONF);
    let (c, mut checks) = checking_client();
    let b = node.broker.clone();
    assert_eq!(
        heartbeat(&c, &b, "crash-tx@1", &[PG], vec![]).await.code,
        response::SUCCESS
    );
    // Visible once; well past the check timeout nobody is asked about it.
    assert_eq!(
        exactly(&c, &b, "TxX", 1, Duration::from_millis(2500)).await,
        ["A"]
    );
    assert_eq!(
        drain(&mut checks),
        Vec::<String>::new(),
        "a committed message was checked"
    );
    // The producer repeats its commit (it never got an answer): no copy.
    let r = c.invoke(&b, commit_cmd(&a, PG), CALL).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // New transactions work.
    let bb = send_half(&c, &b, "TxX", "B").await;
    let r = c.invoke(&b, commit_cmd(&bb, PG), CALL).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(
        exactly(&c, &b, "TxX", 2, Duration::from_millis(1500)).await,
        ["A", "B"]
    );
    assert_eq!(drain(&mut checks), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_max_discard_is_exact_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let conf = format!("{TX_CONF}transactionCheckMax=1\n");
    let mut node = start_node(dir.path(), 0, &conf);
    let (c, _checks) = checking_client();
    create_topic(&c, &node.broker, "TxD", 1).await;
    heartbeat(&c, &node.broker, "crash-tx@2", &[PG], vec![]).await;
    arm(&c, &node.broker, "transaction.discard_after_put").await;
    send_half(&c, &node.broker, "TxD", "E").await;
    // Checked once, never answered, then moved: the crash follows the move.
    node.wait_crash("transaction.discard_after_put", Duration::from_secs(15));
    drop(c);

    let node = start_node(dir.path(), 1, &conf);
    let (c, mut checks) = checking_client();
    let b = node.broker.clone();
    heartbeat(&c, &b, "crash-tx@3", &[PG], vec![]).await;
    let moved = exactly(
        &c,
        &b,
        "TRANS_CHECK_MAX_TIME_TOPIC",
        1,
        Duration::from_millis(2500),
    )
    .await;
    assert_eq!(moved, ["E"]);
    assert_eq!(drain(&mut checks), Vec::<String>::new(), "E checked again");
    assert!(pull_all(&c, &b, "TxD", 0).await.is_empty());
}

// ------------------------------------------------------------- timers

/// When (ms) `topic`/0 first holds `n` messages, polled every 20 ms.
async fn arrival(c: &RemotingClient, b: &str, topic: &str, n: usize, within: Duration) -> i64 {
    let deadline = Instant::now() + within;
    loop {
        let got = pull_all(c, b, topic, 0).await;
        if got.len() >= n {
            return now_ms();
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {} of {n} arrived: {:?}",
            got.len(),
            bodies(&got)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(ch);
        }
    }
    out
}

fn timer_at(body: &str, due: i64) -> Msg {
    Msg::new(body).prop("TIMER_DELIVER_MS", &due.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_delivery_is_exact_across_a_crash() {
    timer_crash(false).await;
}

/// The batch torn in the middle: the last delivered record is cut off the
/// commit log, so the restart finds two of three stored and writes the third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_timer_delivery_is_finished_after_a_crash() {
    timer_crash(true).await;
}

async fn timer_crash(tear: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_node(dir.path(), 0, "");
    let c = client();
    create_topic(&c, &node.broker, "TimerX", 1).await;
    arm(&c, &node.broker, "timer.after_put").await;
    // One due time: the three go out in one batch, then the crash.
    let due = now_ms() + 2000;
    for b in ["t1", "t2", "t3"] {
        send_ok(&c, &node.broker, "TimerX", 0, &timer_at(b, due)).await;
    }
    node.wait_crash("timer.after_put", Duration::from_secs(10));
    drop(c);
    if tear {
        let m = cut_last_record(&dir.path().join("store"));
        assert_eq!((m.topic.as_str(), &m.body[..]), ("TimerX", &b"t3"[..]));
    }

    let node = start_node(dir.path(), 1, "");
    let c = client();
    let b = node.broker.clone();
    let got = exactly(&c, &b, "TimerX", 3, Duration::from_millis(2500)).await;
    assert_eq!(got, ["t1", "t2", "t3"]);
    let log = plain(&node.log_text());
    assert!(
        log.contains("interrupted timer delivery resolved"),
        "the restart did not resolve an intent"
    );
    let missing = if tear { "missing=1" } else { "missing=0" };
    assert!(log.contains(missing), "expected {missing}; log:\n{log}");
    // A later timer still arrives on time, once.
    let due = now_ms() + 1500;
    send_ok(&c, &b, "TimerX", 0, &timer_at("t4", due)).await;
    let at = arrival(&c, &b, "TimerX", 4, Duration::from_secs(5)).await;
    assert!(at >= due - 50, "t4 arrived {} ms early", due - at);
    assert!(at <= due + 1200, "t4 arrived {} ms late", at - due);
    let got = exactly(&c, &b, "TimerX", 4, Duration::from_millis(1500)).await;
    assert_eq!(got, ["t1", "t2", "t3", "t4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_roll_is_exact_across_a_crash() {
    // Roll window of two 1 s slots: a timer 5 s ahead is re-parked after
    // about 2 s, and the broker dies right after that re-park.
    let conf = "timerPrecisionMs=1000\ntimerRollWindowSlot=2\n";
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_node(dir.path(), 0, conf);
    let c = client();
    create_topic(&c, &node.broker, "RollX", 1).await;
    arm(&c, &node.broker, "timer.after_roll").await;
    let due = now_ms() + 5000;
    send_ok(&c, &node.broker, "RollX", 0, &timer_at("r1", due)).await;
    node.wait_crash("timer.after_roll", Duration::from_secs(6));
    drop(c);
    assert!(now_ms() < due - 1500, "the roll came too late");

    let node = start_node(dir.path(), 1, conf);
    let c = client();
    let b = node.broker.clone();
    let at = arrival(&c, &b, "RollX", 1, Duration::from_secs(8)).await;
    assert!(at >= due - 50, "r1 arrived {} ms early", due - at);
    assert!(at <= due + 1500, "r1 arrived {} ms late", at - due);
    let got = pull_all(&c, &b, "RollX", 0).await;
    let rolls: i64 = got[0]
        .property("TIMER_ROLL_TIMES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(rolls >= 1, "{:?}", got[0].properties);
    assert_eq!(
        exactly(&c, &b, "RollX", 1, Duration::from_millis(2000)).await,
        ["r1"]
    );
    // Every roll re-parked it once: no second copy in the timer queue.
    let parked = pull_all(&c, &b, "rmq_sys_wheel_timer", 0).await;
    assert_eq!(parked.len() as i64, 1 + rolls, "{:?}", bodies(&parked));
    assert!(node
        .log_text()
        .contains("interrupted timer delivery resolved"));
}
