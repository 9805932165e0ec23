//! Message queries over the wire: QUERY_MESSAGE by key and by unique key,
//! VIEW_MESSAGE_BY_ID, the index across restarts, rebuilt after its files
//! are lost, rolling over to new files, and the `actormq admin query*` tools.

mod common;

use std::time::Duration;

use actormq::client::RemotingClient;
use actormq::wire::codes::{request, response};
use actormq::wire::headers::query::{
    QueryMessageRequestHeader, QueryMessageResponseHeader, ViewMessageRequestHeader,
    UNIQUE_KEY_QUERY,
};
use actormq::wire::headers::CommandHeader;
use actormq::wire::message::MessageExt;
use actormq::wire::{msgid, now_ms, RemotingCommand};
use common::*;

#[allow(clippy::too_many_arguments)]
async fn query_raw(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    key: &str,
    max: i32,
    begin: i64,
    end: i64,
    unique: bool,
) -> RemotingCommand {
    let mut e = QueryMessageRequestHeader {
        topic: topic.into(),
        key: key.into(),
        max_num: max,
        begin_timestamp: begin,
        end_timestamp: end,
    }
    .to_ext();
    if unique {
        e.insert(UNIQUE_KEY_QUERY, "true");
    }
    call(c, broker, request::QUERY_MESSAGE, e, None).await
}

/// Queries until at least `n` records come back (indexing is asynchronous).
async fn wait_query(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    key: &str,
    range: (i64, i64),
    n: usize,
) -> Vec<MessageExt> {
    let got = eventually(Duration::from_secs(10), || async {
        let r = query_raw(c, broker, topic, key, 64, range.0, range.1, false).await;
        if r.code != response::SUCCESS {
            return None;
        }
        let msgs = decode_checked(&r.body_bytes());
        (msgs.len() >= n).then_some(msgs)
    })
    .await;
    got.unwrap_or_else(|| panic!("query {topic}#{key} did not return {n} records"))
}

fn index_files(store: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(store.join("index"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_by_key_and_time_range() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker();
    create_topic(&c, b, "QKey", 2).await;
    for i in 0..3 {
        send_ok(
            &c,
            b,
            "QKey",
            i % 2,
            &Msg::new(format!("a{i}")).keys("order-1 early"),
        )
        .await;
    }
    send_ok(&c, b, "QKey", 0, &Msg::new("other").keys("order-2")).await;
    let msgs = wait_query(&c, b, "QKey", "order-1", (0, i64::MAX), 3).await;
    assert_eq!(msgs.len(), 3);
    assert!(msgs.iter().all(|m| m.keys() == Some("order-1 early")));
    // Bodies come in commit-log order.
    let offs: Vec<i64> = msgs.iter().map(|m| m.commit_log_offset).collect();
    assert!(offs.windows(2).all(|w| w[0] < w[1]));

    // Time range: index times have second precision, so leave gaps.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mid = now_ms();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..2 {
        send_ok(
            &c,
            b,
            "QKey",
            1,
            &Msg::new(format!("b{i}")).keys("order-1 late"),
        )
        .await;
    }
    let all = wait_query(&c, b, "QKey", "order-1", (0, i64::MAX), 5).await;
    assert_eq!(all.len(), 5);
    let late = wait_query(&c, b, "QKey", "order-1", (mid, i64::MAX), 2).await;
    assert_eq!(late.len(), 2);
    assert!(late.iter().all(|m| m.keys() == Some("order-1 late")));
    let early = wait_query(&c, b, "QKey", "order-1", (0, mid), 3).await;
    assert_eq!(early.len(), 3);
    assert!(early.iter().all(|m| m.keys() == Some("order-1 early")));
    // maxNum caps the answer.
    let r = query_raw(&c, b, "QKey", "order-1", 2, 0, i64::MAX, false).await;
    assert_eq!(decode_checked(&r.body_bytes()).len(), 2);

    // Unknown key: QUERY_NOT_FOUND with the index position in the header.
    let r = query_raw(&c, b, "QKey", "nope", 32, 0, i64::MAX, false).await;
    assert_eq!(r.code, response::QUERY_NOT_FOUND);
    let h = QueryMessageResponseHeader::from_ext(&r.ext).unwrap();
    assert!(h.index_last_update_timestamp > 0);
    assert!(h.index_last_update_phyoffset > 0);
    // The same key in another topic is another index key.
    let r = query_raw(&c, b, "QOther", "order-1", 32, 0, i64::MAX, false).await;
    assert_eq!(r.code, response::QUERY_NOT_FOUND);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_by_unique_key_and_view_by_id() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker();
    create_topic(&c, b, "QUniq", 1).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(send_ok(&c, b, "QUniq", 0, &Msg::new(format!("u{i}"))).await);
    }
    let target = &sent[3];
    let uniq = target
        .transaction_id
        .clone()
        .expect("uniq key in the send response");
    // maxNum 0 is ignored for unique-key queries (the broker's defaultQueryMaxNum).
    let msgs = eventually(Duration::from_secs(10), || async {
        let r = query_raw(&c, b, "QUniq", &uniq, 0, 0, i64::MAX, true).await;
        (r.code == response::SUCCESS).then(|| decode_checked(&r.body_bytes()))
    })
    .await
    .expect("unique key query");
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].uniq_key(), Some(uniq.as_str()));
    assert_eq!(&msgs[0].body[..], b"u3");

    // VIEW_MESSAGE_BY_ID with the offset message id of the send response.
    let (_, offset) = msgid::decode_offset_msg_id(&target.msg_id).expect("offset msg id");
    let view = |offset: i64| {
        let c = c.clone();
        async move {
            let h = ViewMessageRequestHeader {
                topic: Some("QUniq".into()),
                offset,
            };
            call(&c, b, request::VIEW_MESSAGE_BY_ID, h.to_ext(), None).await
        }
    };
    let r = view(offset).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let m = decode_checked(&r.body_bytes());
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].commit_log_offset, offset);
    assert_eq!(m[0].offset_msg_id(), target.msg_id);
    assert_eq!(&m[0].body[..], b"u3");
    // Not a record start, or past the end: SYSTEM_ERROR.
    assert_eq!(view(offset + 4).await.code, response::SYSTEM_ERROR);
    assert_eq!(view(1 << 40).await.code, response::SYSTEM_ERROR);
    assert_eq!(view(-1).await.code, response::SYSTEM_ERROR);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_collisions_are_returned() {
    // "Aa" and "BB" have the same Java hash, so "QHash#Aa" and "QHash#BB" do.
    assert_eq!(
        actormq::wire::message::java_hash("QHash#Aa"),
        actormq::wire::message::java_hash("QHash#BB")
    );
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker();
    create_topic(&c, b, "QHash", 1).await;
    send_ok(&c, b, "QHash", 0, &Msg::new("one").keys("Aa")).await;
    send_ok(&c, b, "QHash", 0, &Msg::new("two").keys("BB")).await;
    let msgs = wait_query(&c, b, "QHash", "Aa", (0, i64::MAX), 2).await;
    assert_eq!(msgs.len(), 2, "the broker returns hash matches, like Java");
    // The client-side filter keeps the real match.
    let kept = actormq::cli::query::filter_by_key(msgs, "Aa", false);
    assert_eq!(kept.len(), 1);
    assert_eq!(&kept[0].body[..], b"one");
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_survives_restart_and_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(Opts::default().store(dir.path()));
    let c = client();
    create_topic(&c, s.broker(), "QRe", 2).await;
    for i in 0..10 {
        let m = Msg::new(format!("r{i}")).keys(&format!("k{} all", i % 2));
        send_ok(&c, s.broker(), "QRe", i % 2, &m).await;
    }
    wait_query(&c, s.broker(), "QRe", "all", (0, i64::MAX), 10).await;
    s.stop();

    // Clean restart: the index files are reused, nothing is duplicated.
    let s = TestServer::start(Opts::default().store(dir.path()));
    let b = s.broker().to_owned();
    let msgs = wait_query(&c, &b, "QRe", "all", (0, i64::MAX), 10).await;
    assert_eq!(msgs.len(), 10);
    assert_eq!(
        wait_query(&c, &b, "QRe", "k1", (0, i64::MAX), 5)
            .await
            .len(),
        5
    );
    send_ok(&c, &b, "QRe", 0, &Msg::new("r10").keys("all")).await;
    assert_eq!(
        wait_query(&c, &b, "QRe", "all", (0, i64::MAX), 11)
            .await
            .len(),
        11
    );
    s.stop();

    // The index file is lost: rebuilt from the commit log at start.
    let files = index_files(dir.path());
    assert_eq!(files.len(), 1);
    std::fs::remove_file(&files[0]).unwrap();
    let s = TestServer::start(Opts::default().store(dir.path()));
    let b = s.broker().to_owned();
    assert_eq!(
        wait_query(&c, &b, "QRe", "all", (0, i64::MAX), 11)
            .await
            .len(),
        11
    );
    s.stop();

    // The index file is truncated (torn): dropped and rebuilt.
    let files = index_files(dir.path());
    assert_eq!(files.len(), 1);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap();
    f.set_len(1000).unwrap();
    drop(f);
    let s = TestServer::start(Opts::default().store(dir.path()));
    let b = s.broker().to_owned();
    let msgs = wait_query(&c, &b, "QRe", "all", (0, i64::MAX), 11).await;
    assert_eq!(msgs.len(), 11);
    assert_eq!(
        wait_query(&c, &b, "QRe", "k0", (0, i64::MAX), 5)
            .await
            .len(),
        5
    );
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_rolls_over_to_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::default().store(dir.path()).broker(|b| {
        b.expiry.max_hash_slot_num = 4;
        b.expiry.max_index_num = 6;
    });
    let s = TestServer::start(opts);
    let c = client();
    let b = s.broker();
    create_topic(&c, b, "QRoll", 1).await;
    for i in 0..20 {
        send_ok(&c, b, "QRoll", 0, &Msg::new(format!("x{i}")).keys("roll")).await;
    }
    let msgs = wait_query(&c, b, "QRoll", "roll", (0, i64::MAX), 20).await;
    assert_eq!(msgs.len(), 20);
    // 2 entries per message (UNIQ_KEY + key), 5 per file.
    let files = index_files(dir.path());
    assert!(files.len() >= 8, "index files: {files:?}");
    let want = 40 + 4 * 4 + 6 * 20;
    for f in &files {
        assert_eq!(std::fs::metadata(f).unwrap().len(), want);
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 17, "{name}");
    }
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_query_tools() {
    let s = TestServer::start_default();
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, "QCli", 1).await;
    wait_route(&c, s.namesrv(), "QCli").await;
    let sent = send_ok(
        &c,
        &b,
        "QCli",
        0,
        &Msg::new("cli body").tags("TagC").keys("cli-key"),
    )
    .await;
    send_ok(&c, &b, "QCli", 0, &Msg::new("noise").keys("other")).await;
    wait_query(&c, &b, "QCli", "cli-key", (0, i64::MAX), 1).await;
    let uniq = sent.transaction_id.clone().unwrap();
    let ns = s.namesrv().to_owned();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_actormq"))
                .args(&args)
                .output()
                .expect("run actormq");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        })
    };
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases = [
        args(&[
            "admin",
            "queryMsgByKey",
            "-n",
            &ns,
            "-t",
            "QCli",
            "-k",
            "cli-key",
        ]),
        args(&["admin", "queryMsgById", "-n", &ns, "-i", &sent.msg_id]),
        args(&[
            "admin",
            "queryMsgByUniqueKey",
            "-n",
            &ns,
            "-t",
            "QCli",
            "-i",
            &uniq,
        ]),
        args(&[
            "admin",
            "queryMsgByOffset",
            "-n",
            &ns,
            "-t",
            "QCli",
            "-b",
            &s.broker_name,
            "-i",
            "0",
            "-o",
            "0",
        ]),
    ];
    for a in cases {
        let (ok, out) = run(a.clone()).await.unwrap();
        assert!(ok, "{a:?} failed: {out}");
        assert!(out.contains("Topic:               QCli"), "{a:?}: {out}");
        assert!(out.contains("Tags:                [TagC]"), "{a:?}: {out}");
        assert!(
            out.contains("Keys:                [cli-key]"),
            "{a:?}: {out}"
        );
        assert!(
            out.contains("Message Body:        cli body"),
            "{a:?}: {out}"
        );
        assert!(
            out.contains(&format!("OffsetID:            {}", sent.msg_id)),
            "{a:?}: {out}"
        );
        assert!(!out.contains("noise"), "{a:?}: {out}");
    }
    let (ok, _) = run(args(&[
        "admin",
        "queryMsgByKey",
        "-n",
        &ns,
        "-t",
        "QCli",
        "-k",
        "missing",
    ]))
    .await
    .unwrap();
    assert!(!ok, "an empty answer is an error");
    s.stop();
}

/// Entries in all index files (from their headers: indexCount - 1 each).
fn index_entries(store: &std::path::Path) -> i64 {
    index_files(store)
        .iter()
        .map(|f| {
            let b = std::fs::read(f).unwrap();
            i32::from_be_bytes(b[36..40].try_into().unwrap()) as i64 - 1
        })
        .sum()
}

/// kill -9 right after indexing (before the index progress is recorded):
/// the restart re-indexes the tail without duplicate entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_recovers_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("broker.conf");
    std::fs::write(
        &conf,
        "brokerClusterName=QC\nbrokerName=broker-q\nbrokerIP1=127.0.0.1\n\
         registerBrokerIntervalMs=1000\nmaxIndexNum=25\nmaxHashSlotNum=8\n\
         mapedFileSizeCommitLog=65536\n",
    )
    .unwrap();
    let store = dir.path().join("store");
    let start = |run: usize| {
        let log = dir.path().join(format!("run{run}.log"));
        spawn_standalone(&store, &conf, &log, Duration::from_secs(10))
    };
    let c = client();
    let (mut p, b) = start(0);
    create_topic(&c, &b, "QKill", 1).await;
    for i in 0..30 {
        send_ok(&c, &b, "QKill", 0, &Msg::new(format!("m{i}")).keys("kk")).await;
        if i == 19 {
            // Let the index progress of the first 20 reach the checkpoint.
            wait_query(&c, &b, "QKill", "kk", (0, i64::MAX), 20).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    wait_query(&c, &b, "QKill", "kk", (0, i64::MAX), 30).await;
    p.kill9();
    assert_eq!(index_entries(&store), 60);

    let (mut p, b) = start(1);
    send_ok(&c, &b, "QKill", 0, &Msg::new("m30").keys("kk")).await;
    let msgs = wait_query(&c, &b, "QKill", "kk", (0, i64::MAX), 31).await;
    assert_eq!(msgs.len(), 31);
    // Two entries per message (UNIQ_KEY and the key), none duplicated.
    let n = eventually(Duration::from_secs(5), || async {
        let n = index_entries(&store);
        (n == 62).then_some(n)
    })
    .await;
    assert_eq!(n, Some(62), "entries: {}", index_entries(&store));
    p.kill9();
}
