//! Bad input over raw sockets: malformed headers, oversized frames, missing
//! header fields, oversized bodies, unknown topics, and the binary
//! (ROCKETMQ) header encoding.

mod common;

use std::time::Duration;

use actormq::wire::codes::{request, response};
use actormq::wire::headers::offset::QueueRequestHeader;
use actormq::wire::headers::CommandHeader;
use actormq::wire::{FrameCodec, Inbound, RemotingCommand};
use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use common::*;

/// Reads one frame from `s` (fails the test after 3 s).
async fn read_frame(s: &mut TcpStream) -> RemotingCommand {
    let mut frames = FramedRead::new(s, FrameCodec::default());
    match tokio::time::timeout(Duration::from_secs(3), frames.next()).await {
        Ok(Some(Ok(Inbound::Command(c)))) => c,
        other => panic!("expected a response frame, got {other:?}"),
    }
}

fn frame(cmd: &RemotingCommand, binary: bool) -> BytesMut {
    let mut out = BytesMut::new();
    if binary {
        cmd.encode_binary_to(&mut out);
    } else {
        cmd.encode_to(&mut out);
    }
    out
}

fn max_offset_req(topic: &str, opaque: i32) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(request::GET_MAX_OFFSET);
    cmd.opaque = opaque;
    cmd.ext = QueueRequestHeader {
        topic: topic.into(),
        queue_id: 0,
        committed: None,
    }
    .to_ext();
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_header_gets_system_error_and_server_keeps_serving() {
    let s = TestServer::start_default();
    let b = s.broker().to_owned();
    let mut sock = TcpStream::connect(&b).await.unwrap();
    let header = br#"{"code":30,"opaque":5,"extFields":{"topic":"TBW102""#; // unterminated
    let mut raw = Vec::new();
    raw.extend_from_slice(&((4 + header.len()) as u32).to_be_bytes());
    raw.extend_from_slice(&(header.len() as u32).to_be_bytes());
    raw.extend_from_slice(header);
    sock.write_all(&raw).await.unwrap();
    let r = read_frame(&mut sock).await;
    assert!(r.is_response());
    assert_eq!(r.code, response::SYSTEM_ERROR, "remark {:?}", r.remark);
    assert!(
        !r.remark.clone().unwrap_or_default().is_empty(),
        "error response needs a remark"
    );

    // The same connection still serves a valid request...
    sock.write_all(&frame(&max_offset_req("TBW102", 77), false))
        .await
        .unwrap();
    let r = read_frame(&mut sock).await;
    assert_eq!(r.opaque, 77);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    // ... and so does a new one.
    let c = client();
    let r = call(
        &c,
        &b,
        request::GET_MAX_OFFSET,
        ext(&[("topic", "TBW102"), ("queueId", "0")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_only_that_connection() {
    let s = TestServer::start_default();
    let b = s.broker().to_owned();
    let c = client();
    // A healthy connection opened before the bad one.
    let r = call(
        &c,
        &b,
        request::GET_MAX_OFFSET,
        ext(&[("topic", "TBW102"), ("queueId", "0")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);

    let mut bad = TcpStream::connect(&b).await.unwrap();
    let len: u32 = 16 * 1024 * 1024 + 1;
    let mut raw = Vec::new();
    raw.extend_from_slice(&len.to_be_bytes());
    raw.extend_from_slice(&[0, 0, 0, 2, b'{', b'}']);
    bad.write_all(&raw).await.unwrap();
    // The server closes it (it may send an error frame first).
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match bad.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "oversized frame did not close the connection"
    );

    // Other connections, old and new, are unaffected.
    let r = call(
        &c,
        &b,
        request::GET_MAX_OFFSET,
        ext(&[("topic", "TBW102"), ("queueId", "0")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    let r = call(
        &client(),
        &b,
        request::GET_MAX_OFFSET,
        ext(&[("topic", "TBW102"), ("queueId", "0")]),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    // The name server too.
    let ns = s.namesrv().to_owned();
    let mut bad = TcpStream::connect(&ns).await.unwrap();
    bad.write_all(&raw).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match bad.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "name server kept an oversized-frame connection"
    );
    let r = call(
        &c,
        &ns,
        request::GET_BROKER_CLUSTER_INFO,
        Default::default(),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_without_topic_field_gets_a_clear_error() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker().to_owned();
    let mut h = send_header("X", 0, "", false).to_v2().to_ext();
    h.remove("b");
    let r = call(&c, &b, request::SEND_MESSAGE_V2, h, Some("body".into())).await;
    assert_ne!(r.code, response::SUCCESS);
    let remark = r.remark.unwrap_or_default();
    assert!(
        ["<b>", "`b`", "\"b\"", "'b'", "topic"]
            .iter()
            .any(|n| remark.contains(n)),
        "remark does not name the missing field: {remark:?}"
    );
    // Same for the long-key dialect.
    let mut h = send_header("X", 0, "", false).to_ext();
    h.remove("topic");
    let r = call(&c, &b, request::SEND_MESSAGE, h, Some("body".into())).await;
    assert_ne!(r.code, response::SUCCESS);
    assert!(r.remark.unwrap_or_default().contains("topic"));
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_message_illegal() {
    let s = TestServer::start(Opts::default().broker(|c| c.max_message_size = 64 * 1024));
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, "Big", 1).await;
    let r = send_raw(&c, &b, "Big", 0, &Msg::new(vec![7u8; 64 * 1024 + 1])).await;
    assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
    // Nothing was stored; a message at the limit is fine.
    assert_eq!(
        queue_offset(&c, &b, request::GET_MAX_OFFSET, "Big", 0).await,
        0
    );
    let h = send_ok(&c, &b, "Big", 0, &Msg::new(vec![7u8; 60 * 1024])).await;
    assert_eq!(h.queue_offset, 0);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_on_missing_topic_is_topic_not_exist() {
    let s = TestServer::start_default();
    let c = client();
    let r = pull_raw(&c, s.broker(), "NoSuchTopic42", 0, 0, 32, None).await;
    assert_eq!(r.code, response::TOPIC_NOT_EXIST, "{:?}", r.remark);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_header_request_is_served() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, "Bin", 1).await;
    for i in 0..3 {
        send_ok(&c, &b, "Bin", 0, &Msg::new(format!("m{i}"))).await;
    }
    let mut sock = TcpStream::connect(&b).await.unwrap();
    let req = max_offset_req("Bin", 4242);
    let bytes = frame(&req, true);
    assert_eq!(bytes[4], 1, "test must send a ROCKETMQ-encoded header");
    sock.write_all(&bytes).await.unwrap();
    let r = read_frame(&mut sock).await;
    assert_eq!(r.opaque, 4242);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(r.ext.get("offset"), Some("3"));

    // A binary-header send (as the Java client in ROCKETMQ mode does).
    let m = Msg::new("binary send").tags("B");
    let mut send = RemotingCommand::request(request::SEND_MESSAGE_V2).with_body(m.body.clone());
    send.opaque = 4243;
    send.ext = send_header("Bin", 0, &m.properties(), false)
        .to_v2()
        .to_ext();
    sock.write_all(&frame(&send, true)).await.unwrap();
    let r = read_frame(&mut sock).await;
    assert_eq!(r.opaque, 4243);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let msgs = pull_all(&c, &b, "Bin", 0).await;
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[3].body.as_ref(), b"binary send");
    assert_eq!(msgs[3].tags(), Some("B"));

    // The name server reads binary headers too.
    wait_route(&c, s.namesrv(), "TBW102").await;
    let mut ns = TcpStream::connect(s.namesrv()).await.unwrap();
    let mut route = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC);
    route.opaque = 9;
    route.ext = ext(&[("topic", "TBW102")]);
    ns.write_all(&frame(&route, true)).await.unwrap();
    let r = read_frame(&mut ns).await;
    assert_eq!(r.opaque, 9);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    s.stop();
}
