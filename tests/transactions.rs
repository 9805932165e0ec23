//! Transactions: half messages stay invisible until committed, rollback never
//! shows, a repeated END_TRANSACTION does not duplicate, an unresolved half
//! is checked back with CHECK_TRANSACTION_STATE (this test plays the
//! producer) and resolved, or abandoned after the max checks; a restart in
//! the middle changes nothing.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actormq::wire::codes::{request, response};
use actormq::wire::headers::consume::CheckTransactionStateRequestHeader;
use actormq::wire::headers::send::SendMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use actormq::wire::message::decode_record;
use actormq::wire::RemotingCommand;
use bytes::Bytes;
use common::*;
use tokio::sync::mpsc;

const PG: &str = "tx_pg";

fn opts(store: Option<&Path>) -> Opts {
    let o = Opts::default().broker(|c| {
        c.transaction_check_interval = 200;
        c.transaction_time_out = 800;
        c.transaction_check_max = 2;
    });
    match store {
        Some(p) => o.store(p),
        None => o,
    }
}

async fn send_half(
    c: &actormq::client::RemotingClient,
    b: &str,
    topic: &str,
    body: &str,
) -> SendMessageResponseHeader {
    send_half_message(c, b, topic, body, PG).await
}

fn end_cmd(qoff: i64, phys: i64, kind: i32, uniq: &str, from_check: bool) -> RemotingCommand {
    end_transaction_cmd(PG, qoff, phys, kind, uniq, from_check)
}

async fn end(
    c: &actormq::client::RemotingClient,
    b: &str,
    s: &SendMessageResponseHeader,
    kind: i32,
) {
    let cmd = end_cmd(
        s.queue_offset,
        phys_of(&s.msg_id),
        kind,
        s.transaction_id.as_deref().unwrap_or(""),
        false,
    );
    let r = c.invoke(b, cmd, CALL).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "end transaction: {:?}", r.remark);
}

fn bodies(ms: &[actormq::wire::message::MessageExt]) -> Vec<String> {
    ms.iter()
        .map(|m| String::from_utf8_lossy(&m.body).to_string())
        .collect()
}

/// A client whose CHECK_TRANSACTION_STATE requests land in a channel.
fn checking_client() -> (
    actormq::client::RemotingClient,
    mpsc::UnboundedReceiver<RemotingCommand>,
) {
    let c = client();
    let (tx, rx) = mpsc::unbounded_channel();
    c.set_request_handler(Arc::new(move |_addr, req: RemotingCommand| {
        if req.code == request::CHECK_TRANSACTION_STATE {
            let _ = tx.send(req);
        }
        None
    }));
    (c, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rollback_duplicate_and_check_back() {
    let srv = TestServer::start(opts(None));
    let (c, mut checks) = checking_client();
    let b = srv.broker();
    create_topic(&c, b, "TxT", 1).await;
    assert_eq!(
        heartbeat(&c, b, "tx-client@1", &[PG], vec![]).await.code,
        response::SUCCESS
    );

    let a = send_half(&c, b, "TxT", "A").await;
    let rb = send_half(&c, b, "TxT", "B").await;
    let cm = send_half(&c, b, "TxT", "C").await;
    assert_eq!(a.transaction_id.as_deref(), Some("UK-A"));
    assert!(
        pull_all(&c, b, "TxT", 0).await.is_empty(),
        "half messages are visible"
    );

    end(&c, b, &a, 8).await;
    // Rollback sent one-way, as Java does.
    let cmd = end_cmd(rb.queue_offset, phys_of(&rb.msg_id), 12, "UK-B", false);
    c.invoke_oneway(b, cmd).await.unwrap();
    let got = wait_messages(&c, b, "TxT", 0, 1, Duration::from_secs(2)).await;
    assert_eq!(bodies(&got), ["A"]);
    let committed = &got[0];
    assert_eq!(committed.transaction_type(), 8);
    assert_eq!(committed.prepared_transaction_offset, phys_of(&a.msg_id));
    assert_eq!(committed.uniq_key(), Some("UK-A"));
    assert_eq!(committed.property("REAL_TOPIC"), None);

    // Duplicates of commit and rollback change nothing.
    end(&c, b, &a, 8).await;
    end(&c, b, &a, 12).await;
    end(&c, b, &rb, 8).await;

    // C is unresolved: the broker asks us.
    let check = tokio::time::timeout(Duration::from_secs(5), checks.recv())
        .await
        .expect("no CHECK_TRANSACTION_STATE")
        .unwrap();
    let h = CheckTransactionStateRequestHeader::from_ext(&check.ext).unwrap();
    assert_eq!(h.msg_id.as_deref(), Some("UK-C"));
    let body = check.body_bytes();
    let m = decode_record(&body, 0, false).unwrap();
    assert_eq!(m.topic, "TxT");
    assert_eq!(&m.body[..], b"C");
    assert_eq!(m.property("PGROUP"), Some(PG));
    assert_eq!(m.commit_log_offset, h.commit_log_offset);
    let reply = end_cmd(
        h.tran_state_table_offset,
        h.commit_log_offset,
        8,
        "UK-C",
        true,
    );
    c.invoke_oneway(b, reply).await.unwrap();
    let got = wait_messages(&c, b, "TxT", 0, 2, Duration::from_secs(3)).await;
    assert_eq!(bodies(&got), ["A", "C"]);
    // The producer's own late END for the original half: still one copy.
    end(&c, b, &cm, 8).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(bodies(&pull_all(&c, b, "TxT", 0).await), ["A", "C"]);
    // No further checks for resolved messages.
    while let Ok(extra) = checks.try_recv() {
        let h = CheckTransactionStateRequestHeader::from_ext(&extra.ext).unwrap();
        assert_eq!(
            h.msg_id.as_deref(),
            Some("UK-C"),
            "resolved message checked again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_half_is_abandoned_after_max_checks() {
    let srv = TestServer::start(opts(None));
    let (c, mut checks) = checking_client();
    let b = srv.broker();
    create_topic(&c, b, "TxMax", 1).await;
    heartbeat(&c, b, "tx-client@2", &[PG], vec![]).await;
    send_half(&c, b, "TxMax", "E").await;
    let moved = wait_messages(
        &c,
        b,
        "TRANS_CHECK_MAX_TIME_TOPIC",
        0,
        1,
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(bodies(&moved), ["E"]);
    let mut n = 0;
    while checks.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 2, "expected exactly transactionCheckMax checks");
    assert!(pull_all(&c, b, "TxMax", 0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_in_the_middle_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(opts(Some(dir.path())).broker(|c| {
        c.transaction_check_interval = 200;
        c.transaction_time_out = 60_000;
    }));
    let c = client();
    let b = srv.broker().to_owned();
    create_topic(&c, &b, "TxR", 1).await;
    let a = send_half(&c, &b, "TxR", "A").await;
    let f = send_half(&c, &b, "TxR", "F").await;
    let g = send_half(&c, &b, "TxR", "G").await;
    end(&c, &b, &a, 8).await;
    end(&c, &b, &g, 12).await;
    assert_eq!(
        bodies(&wait_messages(&c, &b, "TxR", 0, 1, Duration::from_secs(2)).await),
        ["A"]
    );
    srv.stop();

    let srv = TestServer::start(opts(Some(dir.path())));
    let (c, mut checks) = checking_client();
    let b = srv.broker().to_owned();
    heartbeat(&c, &b, "tx-client@3", &[PG], vec![]).await;
    // Repeats from before the restart do nothing.
    end(&c, &b, &a, 8).await;
    end(&c, &b, &g, 8).await;
    // F is still pending: committed now, or through a check.
    let check = tokio::time::timeout(Duration::from_secs(5), checks.recv())
        .await
        .expect("pending half not checked after restart")
        .unwrap();
    let h = CheckTransactionStateRequestHeader::from_ext(&check.ext).unwrap();
    assert_eq!(h.msg_id.as_deref(), Some("UK-F"));
    end(&c, &b, &f, 8).await;
    let got = wait_messages(&c, &b, "TxR", 0, 2, Duration::from_secs(2)).await;
    assert_eq!(bodies(&got), ["A", "F"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(bodies(&pull_all(&c, &b, "TxR", 0).await), ["A", "F"]);
}

/// A producer-set CHECK_IMMUNITY_TIME_IN_SECONDS bounds when the producer may
/// end the transaction itself: afterwards END_TRANSACTION gets
/// ILLEGAL_OPERATION (604) unless it answers a check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_after_check_immunity_is_illegal_unless_from_a_check() {
    let srv = TestServer::start(Opts::default().broker(|b| b.transaction_time_out = 1_000));
    let c = client();
    let b = srv.broker();
    create_topic(&c, b, "TxImm", 1).await;
    // Born 10 s ago with a 2 s immunity window: already past it.
    let props = Msg::new("late")
        .prop("TRAN_MSG", "true")
        .prop("PGROUP", PG)
        .prop("UNIQ_KEY", "UK-late")
        .prop("CHECK_IMMUNITY_TIME_IN_SECONDS", "2")
        .properties();
    let mut h = send_header("TxImm", 0, &props, false);
    h.producer_group = PG.into();
    h.sys_flag = 4;
    h.born_timestamp = actormq::wire::now_ms() - 10_000;
    let r = call(
        &c,
        b,
        request::SEND_MESSAGE_V2,
        h.to_v2().to_ext(),
        Some(Bytes::from("late")),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let s = SendMessageResponseHeader::from_ext(&r.ext).unwrap();
    let late = end_cmd(s.queue_offset, phys_of(&s.msg_id), 8, "UK-late", false);
    let r = c.invoke(b, late, CALL).await.unwrap();
    assert_eq!(r.code, 604, "{:?}", r.remark);
    let from_check = end_cmd(s.queue_offset, phys_of(&s.msg_id), 8, "UK-late", true);
    let r = c.invoke(b, from_check, CALL).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let got = wait_messages(&c, b, "TxImm", 0, 1, Duration::from_secs(5)).await;
    assert_eq!(bodies(&got), vec!["late".to_string()]);
    srv.stop();
}
