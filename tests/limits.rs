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
    // At start the soft open-files limit was raised to the hard one.
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().collect())
        .unwrap();
    assert_eq!(
        nofile[3], nofile[4],
        "soft = hard open-files limit: {nofile:?}"
    );

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

/// zlib of `n` zero bytes: a few KiB that claim `n`.
fn bomb(n: usize) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; n]).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_register_body_cannot_inflate_past_the_frame_limit() {
    let s = TestServer::start_default();
    let (ns, broker) = (s.namesrv().to_owned(), s.broker().to_owned());
    let c = client();
    let body = bomb(64 << 20);
    assert!(body.len() < 128 << 10);
    let mut cmd = RemotingCommand::request(request::REGISTER_BROKER).with_body(body);
    cmd.ext = actormq::wire::headers::namesrv::RegisterBrokerRequestHeader {
        broker_name: "bomb".into(),
        broker_addr: "127.0.0.1:1".into(),
        cluster_name: s.cluster.clone(),
        ha_server_addr: String::new(),
        broker_id: 0,
        heartbeat_timeout_millis: None,
        enable_acting_master: None,
        compressed: true,
        body_crc32: 0,
    }
    .to_ext();
    let r = c.invoke(&ns, cmd, CALL).await.unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR, "{:?}", r.remark);
    assert!(r.remark.unwrap_or_default().contains("inflates beyond"));
    // Still serving: the real broker's route is there.
    let mut q = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC);
    q.ext = actormq::wire::ExtFields::default();
    q.ext.insert("topic", s.cluster.as_str());
    let r = c.invoke(&ns, q, CALL).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    send_ok(&c, &broker, "AfterBomb", -1, &Msg::new("x")).await;
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_pulls_are_capped_and_the_rest_answered_at_once() {
    let s = TestServer::start(Opts::default().broker(|b| {
        b.unknown.insert("maxHeldPulls".into(), "1".into());
    }));
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, "HoldCap", 2).await;
    let hold = Duration::from_secs(20);
    // The first pull is held (nothing to return) ...
    let first = {
        let (c, b) = (c.clone(), b.clone());
        tokio::spawn(async move {
            let cmd = pull_cmd("HoldCap", 0, 0, 32, None, Some(hold));
            c.invoke(&b, cmd, Duration::from_secs(30)).await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished(), "the first pull is held");
    // ... the second, past the cap, is answered without waiting out its hold.
    let cmd = pull_cmd("HoldCap", 1, 0, 32, None, Some(hold));
    let second = tokio::time::timeout(hold / 2, c.invoke(&b, cmd, Duration::from_secs(30)))
        .await
        .expect("the pull past the cap is answered at once")
        .unwrap();
    assert_eq!(second.code, response::PULL_NOT_FOUND, "{:?}", second.remark);
    // A message wakes the held one.
    send_ok(&c, &b, "HoldCap", 0, &Msg::new("wake")).await;
    let r = tokio::time::timeout(hold, first).await.unwrap().unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    s.stop();
}

/// Reads until EOF or `within`; true when the server closed the socket.
async fn closed_by_server(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed_and_the_cap_refuses_clearly() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start(Opts::default().broker(|b| {
        for (k, v) in [
            ("serverChannelMaxIdleTimeSeconds", "1"),
            ("serverFrameTimeoutMillis", "500"),
            ("serverMaxConnections", "3"),
        ] {
            b.unknown.insert(k.into(), v.into());
        }
    }));
    let b = s.broker().to_owned();
    // Idle: nothing sent for a second closes the connection.
    let mut idle = tokio::net::TcpStream::connect(&b).await.unwrap();
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(8)).await,
        "idle connection closed"
    );
    // Half-sent: a length prefix and a few bytes, never completed.
    let mut half = tokio::net::TcpStream::connect(&b).await.unwrap();
    half.write_all(&[0, 0, 0, 100, 0, 0, 0, 20, b'{'])
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut half, Duration::from_secs(8)).await,
        "stalled frame closed"
    );
    drop((idle, half));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The cap: three connections served, the fourth told why and closed.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(&b).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = tokio::net::TcpStream::connect(&b).await.unwrap();
    let mut frames =
        tokio_util::codec::FramedRead::new(refused, actormq::wire::FrameCodec::default());
    use futures_util::StreamExt;
    match tokio::time::timeout(Duration::from_secs(5), frames.next()).await {
        Ok(Some(Ok(actormq::wire::Inbound::Command(c)))) => {
            assert_eq!(c.code, response::SYSTEM_BUSY);
            assert!(c
                .remark
                .unwrap_or_default()
                .contains("too many connections"));
        }
        other => panic!("expected a refusal frame, got {other:?}"),
    }
    // Closing one frees a place: a client is served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = client();
    send_ok(&c, &b, "AfterCap", -1, &Msg::new("x")).await;
    s.stop();
}
