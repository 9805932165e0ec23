//! Connection limits, against `actormq standalone` as a child process (so
//! the server's own memory is measured): a client that sends and never
//! reads cannot grow the broker's memory without bound, and other clients
//! keep being served meanwhile.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use actormq::wire::codes::{request, response};
use actormq::wire::headers::offset::QueueRequestHeader;
use actormq::wire::headers::CommandHeader;
use actormq::wire::RemotingCommand;
use bytes::BytesMut;

use common::*;

/// Resident memory of a process, in bytes (Linux `VmRSS`).
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn start(dir: &Path) -> (ChildServer, String) {
    let conf = dir.join("broker.conf");
    std::fs::write(
        &conf,
        "brokerClusterName=LimitCluster\nbrokerName=broker-limit\nbrokerIP1=127.0.0.1\n\
         mapedFileSizeCommitLog=1048576\nmaxHashSlotNum=5000\nmaxIndexNum=20000\n",
    )
    .unwrap();
    spawn_standalone(
        &dir.join("store"),
        &conf,
        &dir.join("server.log"),
        Duration::from_secs(15),
    )
}

/// `n` GET_MAX_OFFSET requests, encoded back to back.
fn flood(n: usize, topic: &str) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for i in 0..n {
        let mut cmd = RemotingCommand::request(request::GET_MAX_OFFSET);
        cmd.opaque = i as i32;
        cmd.ext = QueueRequestHeader {
            topic: topic.into(),
            queue_id: 0,
            committed: None,
        }
        .to_ext();
        cmd.encode_to(&mut buf);
    }
    buf.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_cannot_grow_the_broker_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (server, broker) = start(dir.path());
    let pid = server.child.id();
    let c = client();
    create_topic(&c, &broker, "LimitTopic", 1).await;
    send_ok(&c, &broker, "LimitTopic", 0, &Msg::new("warm-up")).await;
    let before = rss_of(pid);

    // 200,000 requests, never reading an answer. The writer thread stops
    // when the server stops reading (its socket buffers fill) or after 5 s.
    let data = flood(200_000, "LimitTopic");
    let addr = broker.clone();
    let writer = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut sent = 0usize;
        while sent < data.len() && Instant::now() < deadline {
            match s.write(&data[sent..(sent + 64 * 1024).min(data.len())]) {
                Ok(n) => sent += n,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        (s, sent, data.len())
    });

    // Meanwhile another client sends and reads back, answered every time.
    for i in 0..50 {
        send_ok(&c, &broker, "LimitTopic", 0, &Msg::new(format!("m{i}"))).await;
    }
    let (stuck, sent, total) = writer.join().unwrap();
    let grown = rss_of(pid).saturating_sub(before);
    assert!(
        sent < total,
        "the server kept reading everything ({sent} of {total} bytes): no back-pressure"
    );
    assert!(
        grown < 64 << 20,
        "the broker grew by {} MiB under a client that never reads",
        grown >> 20
    );
    let got = pull_all(&c, &broker, "LimitTopic", 0).await;
    assert_eq!(got.len(), 51, "every acknowledged message is there");
    let r = call(
        &c,
        &broker,
        request::GET_MAX_OFFSET,
        QueueRequestHeader {
            topic: "LimitTopic".into(),
            queue_id: 0,
            committed: None,
        }
        .to_ext(),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    drop(stuck);
}
