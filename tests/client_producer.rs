//! The Rust producer against an in-process broker: sync, async (future
//! and callback), one-way, ordered, batches (one split over 4 MiB), zlib
//! compression of a large body (checked with the raw wire codec), delay
//! and timer options as properties, and the transaction producer.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actormq::client::transaction::{LocalTransactionState, TransactionProducer};
use actormq::client::{Message, Producer, SendStatus};
use actormq::wire::codes::response;
use actormq::wire::message::{sysflag, MessageExt};
use bytes::Bytes;
use common::*;

fn big_store() -> Opts {
    Opts::default().broker(|c| c.maped_file_size_commit_log = 64 * 1024 * 1024)
}

/// Every message of `topic` (all queues), decoded raw (bodies as stored).
async fn stored(s: &TestServer, topic: &str, queues: i32) -> Vec<MessageExt> {
    let c = client();
    let mut out = Vec::new();
    for q in 0..queues {
        out.extend(pull_all(&c, s.broker(), topic, q).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_async_oneway_and_ordered_sends() {
    let s = TestServer::start(big_store());
    let c = client();
    create_topic(&c, s.broker(), "PT", 4).await;
    wait_route(&c, s.namesrv(), "PT").await;
    let p = Producer::new("pg_modes", s.namesrv());

    let r = p
        .send(Message::new("PT", "sync-0").with_tags("A"))
        .await
        .unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(r.msg_id.len(), 32);

    let futs: Vec<_> = (0..20)
        .map(|i| p.send_async(Message::new("PT", format!("async-{i}"))))
        .collect();
    let mut queues = HashSet::new();
    for f in futs {
        queues.insert(f.await.unwrap().queue.queue_id);
    }
    assert!(queues.len() > 1, "round robin used one queue only");

    let (tx, rx) = tokio::sync::oneshot::channel();
    p.send_with_callback(Message::new("PT", "callback"), move |r| {
        let _ = tx.send(r.map(|r| r.status));
    });
    assert_eq!(rx.await.unwrap().unwrap(), SendStatus::SendOk);

    for i in 0..5 {
        p.send_oneway(Message::new("PT", format!("oneway-{i}")))
            .await
            .unwrap();
    }
    let mut ordered_queue = None;
    for i in 0..10 {
        let r = p
            .send_ordered(Message::new("PT", format!("ord-{i}")), "order-7")
            .await
            .unwrap();
        assert_eq!(
            *ordered_queue.get_or_insert(r.queue.queue_id),
            r.queue.queue_id
        );
    }
    p.send(Message::new("PT", "delayed").with_delay_level(2))
        .await
        .unwrap();

    let all = eventually(Duration::from_secs(5), || async {
        let all = stored(&s, "PT", 4).await;
        (all.len() >= 1 + 20 + 1 + 5 + 10).then_some(all)
    })
    .await
    .expect("not every message arrived");
    let bodies: HashSet<_> = all
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    for i in 0..5 {
        assert!(bodies.contains(&format!("oneway-{i}")));
    }
    let ord: Vec<_> = all
        .iter()
        .filter(|m| m.body.starts_with(b"ord-"))
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(ord, (0..10).map(|i| format!("ord-{i}")).collect::<Vec<_>>());
    assert!(ord.len() == 10);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_split_at_4_mib_and_large_bodies_are_compressed() {
    let s = TestServer::start(big_store());
    let c = client();
    create_topic(&c, s.broker(), "BT", 1).await;
    wait_route(&c, s.namesrv(), "BT").await;
    let p = Producer::new("pg_batch", s.namesrv());

    let small: Vec<_> = (0..10)
        .map(|i| Message::new("BT", format!("b-{i}")).with_keys([format!("k{i}")]))
        .collect();
    let r = p.send_batch(small).await.unwrap();
    assert_eq!(r.msg_id.split(',').count(), 10);

    // 6 x 900 KB = 5.4 MB: over the limit as one batch, fine when split.
    let big: Vec<_> = (0..6)
        .map(|i| Message::new("BT", Bytes::from(pseudo_body(i, 900_000))))
        .collect();
    assert!(p.send_batch(big.clone()).await.is_err());
    let results = p.send_batches(big).await.unwrap();
    assert_eq!(results.len(), 2, "expected two batches");
    let ids: usize = results.iter().map(|r| r.msg_id.split(',').count()).sum();
    assert_eq!(ids, 6);

    // A compressible 64 KiB body goes out zlib-compressed.
    let text: Vec<u8> = (0..65536).map(|i| b"abcdefgh"[i % 8]).collect();
    let r = p
        .send(Message::new("BT", Bytes::from(text.clone())))
        .await
        .unwrap();
    let all = stored(&s, "BT", 1).await;
    assert_eq!(all.len(), 10 + 6 + 1);
    for (i, m) in all[10..16].iter().enumerate() {
        assert_eq!(m.body.as_ref(), pseudo_body(i as u64, 900_000).as_slice());
    }
    let z = all.last().unwrap();
    assert_eq!(z.uniq_key(), Some(r.msg_id.as_str()));
    assert_eq!(
        z.sys_flag & (sysflag::COMPRESSED | sysflag::COMPRESSION_MASK),
        sysflag::COMPRESSED | sysflag::COMPRESSION_ZLIB
    );
    assert!(z.body.len() < 4096, "stored body not compressed");
    use std::io::Read;
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(&z.body[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated, text);
    // The client-side pull inflates it transparently.
    let pc = actormq::client::PullConsumer::new("cg_batch", s.namesrv());
    let mq = actormq::wire::bodies::MessageQueue {
        topic: "BT".into(),
        broker_name: s.broker_name.clone(),
        queue_id: 0,
    };
    let got = pc.pull(&mq, 16, 1, None, "*").await.unwrap();
    assert_eq!(got.messages[0].body.as_ref(), text.as_slice());
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_commit_is_visible_and_rollback_is_not() {
    let s = TestServer::start_default();
    let c = client();
    create_topic(&c, s.broker(), "TXT", 1).await;
    wait_route(&c, s.namesrv(), "TXT").await;
    let checked = Arc::new(Mutex::new(Vec::new()));
    let seen = checked.clone();
    let tp = TransactionProducer::new(
        "pg_tx",
        s.namesrv(),
        Arc::new(move |m: &MessageExt| {
            seen.lock()
                .unwrap()
                .push(m.uniq_key().unwrap_or("").to_string());
            LocalTransactionState::Commit
        }),
    );
    let r = tp
        .send_in_transaction(Message::new("TXT", "commit-me"), |_| {
            LocalTransactionState::Commit
        })
        .await
        .unwrap();
    assert_eq!(r.state, LocalTransactionState::Commit);
    let r = tp
        .send_in_transaction(Message::new("TXT", "roll-me-back"), |_| {
            LocalTransactionState::Rollback
        })
        .await
        .unwrap();
    assert_eq!(r.state, LocalTransactionState::Rollback);
    let got = eventually(Duration::from_secs(5), || async {
        let all = stored(&s, "TXT", 1).await;
        (!all.is_empty()).then_some(all)
    })
    .await
    .expect("committed message never became visible");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = stored(&s, "TXT", 1).await;
    assert_eq!(all.len(), 1, "{got:?}");
    assert_eq!(all[0].body.as_ref(), b"commit-me");
    tp.shutdown().await;
    let _ = response::SUCCESS;
}
