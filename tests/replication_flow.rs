//! HA flow control, black-box with real processes: the master's transfer
//! to a slave sends frames of at most `haTransferBatchSize` and awaits the
//! socket before reading more of the log (Java's
//! `WriteSocketService#transferData`), so a slave that stops reading —
//! SIGSTOPped here — holds up only its own connection: the ASYNC_MASTER
//! keeps answering sends and its anonymous memory does not grow with what
//! the slave lacks. After SIGCONT the slave catches up and the two commit
//! logs are byte-identical.

mod common;
mod replication_util;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actormq::actors::ha::status::{HaRuntimeInfo, GET_BROKER_HA_STATUS};
use actormq::wire::codes::{request, response};
use common::*;
use replication_util::*;

const TOPIC: &str = "FlowTopic";
const QUEUES: i32 = 4;
const BODY: usize = 256 * 1024;

async fn ha_status(broker: &str) -> HaRuntimeInfo {
    let r = call(&client(), broker, GET_BROKER_HA_STATUS, ext(&[]), None).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    serde_json::from_slice(&r.body_bytes()).unwrap()
}

async fn count(broker: &str) -> i64 {
    let c = client();
    let mut n = 0;
    for q in 0..QUEUES {
        n += queue_offset(&c, broker, request::GET_MAX_OFFSET, TOPIC, q).await;
    }
    n
}

/// Sends `n` messages of `BODY` bytes from 4 tasks, each must succeed.
async fn send_many(broker: &str, from: u64, n: u64) {
    let next = Arc::new(AtomicU64::new(from));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (b, next) = (broker.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= from + n {
                    return;
                }
                let m = Msg::new(pseudo_body(i, BODY));
                send_ok(&c, &b, TOPIC, (i % QUEUES as u64) as i32, &m).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_slave_neither_stalls_nor_grows_the_master_and_catches_up_after_sigcont() {
    let dir = tempfile::tempdir().unwrap();
    let ha = free_port();
    let seg = "mapedFileSizeCommitLog=4194304\n";
    let (master, m) = spawn_broker(
        &dir.path().join("m"),
        None,
        "flow",
        "ASYNC_MASTER",
        &format!("{seg}haListenPort={ha}\n"),
    );
    let (mut slave, s) = spawn_broker(
        &dir.path().join("s"),
        None,
        "flow",
        "SLAVE",
        &format!("{seg}haMasterAddress=127.0.0.1:{ha}\nslaveReadEnable=true\n"),
    );
    create_topic(&client(), &m, TOPIC, QUEUES).await;
    send_many(&m, 0, 32).await;
    let caught_up = eventually(Duration::from_secs(20), || async {
        (count(&s).await == 32).then_some(())
    })
    .await;
    assert!(caught_up.is_some(), "the slave follows before the stop");

    signal(slave.child.id(), libc::SIGSTOP);
    let before = rss_anon(master.child.id());
    // 64 MiB while the slave reads nothing: every send is answered.
    send_many(&m, 32, 256).await;
    let after = rss_anon(master.child.id());
    let st = ha_status(&m).await;
    let end = st.master_commit_log_max_offset;
    let behind = st
        .ha_connection_info
        .first()
        .map_or(end, |c| end - c.slave_ack_offset);
    eprintln!(
        "master RssAnon {} → {} MiB while the stopped slave is {} MiB behind",
        before >> 20,
        after >> 20,
        behind >> 20
    );
    assert!(
        behind > 48 << 20,
        "the slave did not get the data meanwhile"
    );
    assert!(
        after < before + (16 << 20),
        "the master's anonymous memory grew by {} MiB for a stopped slave",
        (after - before) >> 20
    );

    signal(slave.child.id(), libc::SIGCONT);
    let caught_up = eventually(Duration::from_secs(60), || async {
        (count(&s).await == 288).then_some(())
    })
    .await;
    assert!(caught_up.is_some(), "the slave caught up after SIGCONT");
    assert!(slave.is_running());
    let (a, b) = (
        log_bytes(&dir.path().join("m/store"), end),
        log_bytes(&dir.path().join("s/store"), end),
    );
    assert_eq!(a.len() as i64, end);
    assert!(a == b, "the commit logs differ below the master's end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_carries_at_most_ha_transfer_batch_size_contiguous_log_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ha = free_port();
    let m = TestServer::start(Opts::default().broker(move |c| {
        c.ha.listen_port = Some(ha);
        c.ha.transfer_batch_size = 4096;
    }));
    let c = client();
    create_topic(&c, m.broker(), TOPIC, QUEUES).await;
    for i in 0..40u64 {
        let m2 = Msg::new(pseudo_body(i, 1_000 + (i as usize * 997) % 20_000));
        send_ok(&c, m.broker(), TOPIC, (i % QUEUES as u64) as i32, &m2).await;
    }
    let end = ha_status(m.broker()).await.master_commit_log_max_offset;
    // A raw slave: report 0, read frames until the master's end.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", ha))
        .await
        .unwrap();
    s.write_all(&0i64.to_be_bytes()).await.unwrap();
    let (mut got, mut frames) = (Vec::new(), 0);
    while (got.len() as i64) < end {
        let mut h = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut h))
            .await
            .expect("a frame within 10 s")
            .unwrap();
        let offset = i64::from_be_bytes(h[..8].try_into().unwrap());
        let size = i32::from_be_bytes(h[8..].try_into().unwrap()) as usize;
        assert!(size <= 4096, "frame of {size} bytes");
        assert_eq!(offset, got.len() as i64, "frames are contiguous");
        let mut body = vec![0u8; size];
        s.read_exact(&mut body).await.unwrap();
        got.extend_from_slice(&body);
        frames += 1;
    }
    assert!(frames >= end / 4096, "{frames} frames for {end} bytes");
    assert!(got == log_bytes(&m.store, end), "the frames are the log");
    m.stop();
}
