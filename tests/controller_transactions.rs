//! Transactional messages through a controller-mode failover (issue #13):
//! three controllers, a name server and a group of three brokers
//! (`allAckInSyncStateSet=true`, `enableElectUncleanMaster=false`), the
//! Rust `TransactionProducer` under a background load on another topic.
//!
//! Half messages are acknowledged only once the SyncStateSet has them, and
//! so are the op records END_TRANSACTION writes; so after `kill -9` of the
//! master the new master holds every acknowledged half and knows which
//! were resolved. What the test shows, reading every queue of the new
//! master: transactions committed before the kill are there once (not
//! committed a second time by a check of the new master), rolled-back ones
//! never appear, and transactions still open at the kill are checked back
//! by the new master (CHECK_TRANSACTION_STATE to the producer, which only
//! now answers COMMIT) and then appear once. The old master restarted
//! rejoins as a slave; the background load's checker finds nothing lost.

mod common;
mod controller_support;
mod failover_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actormq::client::message::Message;
use actormq::client::producer::{Producer, ProducerConfig};
use actormq::client::route::Routes;
use actormq::client::transaction::{LocalTransactionState, TransactionProducer};
use failover_support::*;

const TX_TOPIC: &str = "FailoverTxTopic";
const TX_QUEUES: i32 = 2;
const EACH: usize = 15;

/// Every message of `topic` on `broker`, body → copies.
async fn bodies_on(broker: &str, topic: &str) -> BTreeMap<String, usize> {
    let c = common::client();
    let mut out = BTreeMap::new();
    for q in 0..TX_QUEUES {
        for m in common::pull_all(&c, broker, topic, q).await {
            *out.entry(String::from_utf8_lossy(&m.body).into_owned())
                .or_insert(0) += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_transactions_are_checked_back_by_the_new_master() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(&dir);
    // Checks start one second after a half was written; enough checks that
    // the ones answered UNKNOWN before the kill do not use them up.
    s.broker_lines.push_str(
        "transactionCheckInterval=300\ntransactionTimeOut=1000\ntransactionCheckMax=200\n",
    );
    let (mut cl, load, old) = start_with(s).await;
    actormq::bench::target::prepare_topic(&cl.namesrv, TX_TOPIC, TX_QUEUES)
        .await
        .unwrap_or_else(|e| panic!("{TX_TOPIC}: {e}"));

    // The producer's check listener: UNKNOWN until the failover, then
    // COMMIT for the transactions left open.
    let failed_over = Arc::new(AtomicBool::new(false));
    let (checks_before, checks_after) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stray = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let listener = {
        let stray = stray.clone();
        let (f, b, a) = (
            failed_over.clone(),
            checks_before.clone(),
            checks_after.clone(),
        );
        Arc::new(move |m: &actormq::wire::message::MessageExt| {
            let open = m.body.starts_with(b"open-");
            if !f.load(Ordering::Acquire) {
                b.fetch_add(1, Ordering::Relaxed);
                return LocalTransactionState::Unknown;
            }
            a.fetch_add(1, Ordering::Relaxed);
            if open {
                LocalTransactionState::Commit
            } else {
                // A resolved transaction asked about again: the new master
                // lacks its op record.
                stray
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&m.body).into_owned());
                LocalTransactionState::Rollback
            }
        })
    };
    let mut cfg = ProducerConfig::new("tx_failover_pg");
    cfg.route_refresh_interval = Duration::from_secs(1);
    cfg.heartbeat_interval = Duration::from_secs(1);
    cfg.send_timeout = Duration::from_secs(5);
    let tx = TransactionProducer::with_producer(
        Producer::with_config(cfg, Routes::connect(&cl.namesrv)),
        listener,
    );
    for i in 0..EACH {
        for (kind, state) in [
            ("commit", LocalTransactionState::Commit),
            ("rollback", LocalTransactionState::Rollback),
            ("open", LocalTransactionState::Unknown),
        ] {
            let msg = Message::new(TX_TOPIC, format!("{kind}-{i}").into_bytes());
            tx.send_in_transaction(msg, |_| state)
                .await
                .unwrap_or_else(|e| panic!("{kind}-{i}: {e}\n{}", cl.logs()));
        }
    }
    let master_addr = cl.addr_of(old).unwrap();
    let before = bodies_on(&master_addr, TX_TOPIC).await;
    assert_eq!(before.len(), EACH, "before the kill: {before:?}");
    assert!(
        before.keys().all(|b| b.starts_with("commit-")),
        "{before:?}"
    );

    // Let the old master check the open ones at least once (answered
    // UNKNOWN), then kill it.
    let t = Instant::now();
    while checks_before.load(Ordering::Relaxed) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the master never checked the open transactions\n{}",
            cl.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cl.kill9_broker(old);
    let (ok, v) = wait_view(&cl, Duration::from_secs(10), |v| {
        v.master.is_some_and(|m| m != old)
            && v.routed.is_some()
            && v.routed != Some(master_addr.clone())
    })
    .await;
    assert!(ok, "no new master routed within 10 s: {v:?}\n{}", cl.logs());
    let new = v.master.unwrap();
    let new_addr = cl.addr_of(new).unwrap();
    failed_over.store(true, Ordering::Release);

    // The new master checks the open ones back; the producer commits.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let now = bodies_on(&new_addr, TX_TOPIC).await;
        if now.len() >= 2 * EACH || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let want: BTreeMap<String, usize> = (0..EACH)
        .flat_map(|i| [format!("commit-{i}"), format!("open-{i}")])
        .map(|b| (b, 1))
        .collect();
    assert_eq!(
        after,
        want,
        "on the new master {new} after the failover ({} checks before, {} after)\n{}",
        checks_before.load(Ordering::Relaxed),
        checks_after.load(Ordering::Relaxed),
        cl.logs()
    );
    assert!(checks_after.load(Ordering::Relaxed) >= EACH);
    let stray = stray.lock().unwrap().clone();
    assert!(
        stray.is_empty(),
        "resolved transactions checked again by the new master: {stray:?}"
    );

    // Nothing else shows up: no second commit of a resolved transaction.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        bodies_on(&new_addr, TX_TOPIC).await,
        want,
        "more after settling"
    );

    // The old master back as a slave; the load's acknowledged sends all on
    // the new master.
    restart_slaves(&mut cl, &load, &[old], new).await;
    tx.shutdown().await;
    stop_and_check(&cl, load).await;
}
