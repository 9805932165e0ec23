//! File expiry and the disk-space guard: old commit-log segments and their
//! consume-queue / index files go (and nothing else), min offsets move,
//! readers keep valid slices of deleted segments, and a full disk refuses
//! sends while pulls go on.
//!
//! Disk usage is faked with the `diskUsageOverrideRatio` test knob
//! (`ExpiryConfig::disk_usage_override_ratio`, percent).

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use actormq::client::RemotingClient;
use actormq::config::BrokerConfig;
use actormq::store::commit_log::CommitLog;
use actormq::store::{Flusher, StoreConfig};
use actormq::wire::codes::{request, response};
use actormq::wire::headers::pull::PullMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use actormq::wire::message::{encode_properties, encode_record, keys, RecordSpec};
use actormq::wire::msgid;
use bytes::BytesMut;
use common::*;

const SEG: u64 = 64 * 1024;
const TOPIC: &str = "Exp";

fn small_files(b: &mut BrokerConfig) {
    b.maped_file_size_commit_log = SEG;
    b.maped_file_size_consume_queue = 20 * 20;
    b.expiry.max_index_num = 40;
    b.expiry.max_hash_slot_num = 16;
    b.flush_interval_commit_log = 50;
}

fn files(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn all_hours() -> String {
    (0..24)
        .map(|h| format!("{h:02}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Sends `n` ~1 KiB messages to queue 0; returns their commit-log offsets.
async fn fill(c: &RemotingClient, b: &str, from: usize, n: usize) -> Vec<i64> {
    let mut offs = Vec::new();
    for i in from..from + n {
        let m = Msg::new(pseudo_body(i as u64, 1000)).keys(&format!("key{i}"));
        let r = send_ok(c, b, TOPIC, 0, &m).await;
        offs.push(msgid::decode_offset_msg_id(&r.msg_id).unwrap().1);
    }
    offs
}

/// Pulls queue 0 from `from` to its end (bodies CRC-checked).
async fn pull_from(c: &RemotingClient, b: &str, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = from;
    loop {
        let r = pull_raw(c, b, TOPIC, 0, off, 32, None).await;
        match r.code {
            response::SUCCESS => {
                let h = PullMessageResponseHeader::from_ext(&r.ext).unwrap();
                for m in decode_checked(&r.body_bytes()) {
                    out.push((m.queue_offset, m.body.to_vec()));
                }
                off = h.next_begin_offset;
            }
            response::PULL_NOT_FOUND => return out,
            code => panic!("pull at {off}: {code} {:?}", r.remark),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_segments_queues_and_index_files_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(Opts::default().store(dir.path()).broker(small_files));
    let c = client();
    create_topic(&c, s.broker(), TOPIC, 1).await;
    let offs = fill(&c, s.broker(), 0, 300).await;
    s.stop();
    let before = files(&dir.path().join("commitlog"));
    let index_before = files(&dir.path().join("index")).len();
    assert!(before.len() >= 5, "segments: {before:?}");
    let last_seg = (*offs.last().unwrap() as u64 / SEG) * SEG;
    let expect_min = offs.iter().filter(|&&o| (o as u64) < last_seg).count() as i64;

    // Everything is expired (fileReservedTime=0) and it is always time.
    let s = TestServer::start(Opts::default().store(dir.path()).broker(|b| {
        small_files(b);
        b.file_reserved_time = 0;
        b.delete_when = all_hours();
        b.expiry.clean_resource_interval = 100;
        b.expiry.delete_commit_log_files_interval = 10;
        b.expiry.delete_file_batch_max = 2;
    }));
    let b = s.broker().to_owned();
    let min = eventually(Duration::from_secs(15), || async {
        let m = queue_offset(&c, &b, request::GET_MIN_OFFSET, TOPIC, 0).await;
        (m == expect_min).then_some(m)
    })
    .await
    .expect("min offset moved to the first message of the newest segment");
    // Only the segments below the newest one went.
    let after = files(&dir.path().join("commitlog"));
    assert_eq!(after.first().copied(), Some(last_seg), "{after:?}");
    assert!(after.iter().all(|s| before.contains(s) || *s > last_seg));
    // Consume-queue files wholly below the new minimum went too.
    let cq = files(&dir.path().join("consumequeue").join(TOPIC).join("0"));
    assert_eq!(
        cq.first().copied(),
        Some((min as u64 / 20) * 20 * 20),
        "{cq:?}"
    );
    // And old index files (never the newest); the indexer is told
    // asynchronously.
    let index_after = eventually(Duration::from_secs(5), || async {
        let n = files(&dir.path().join("index")).len();
        (n >= 1 && n < index_before).then_some(n)
    })
    .await;
    assert!(index_after.is_some(), "index files: {index_before} before");
    assert!(dir.path().join("config/topics.json").exists());
    assert!(dir.path().join("checkpoint").exists());

    // Below the minimum: PULL_OFFSET_MOVED to it.
    let r = pull_raw(&c, &b, TOPIC, 0, 0, 32, None).await;
    assert_eq!(r.code, response::PULL_OFFSET_MOVED);
    let h = PullMessageResponseHeader::from_ext(&r.ext).unwrap();
    assert_eq!((h.next_begin_offset, h.min_offset), (min, min));
    // Everything from the minimum on is intact, and the broker takes more.
    let more = fill(&c, &b, 300, 3).await;
    assert!(more[0] > *offs.last().unwrap());
    let got = pull_from(&c, &b, min).await;
    assert_eq!(got.len() as i64, 300 + 3 - min);
    for (qo, body) in &got {
        assert_eq!(body, &pseudo_body(*qo as u64, 1000), "message {qo}");
    }
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn space_pressure_deletes_at_any_hour_and_forcibly() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(Opts::default().store(dir.path()).broker(small_files));
    let c = client();
    create_topic(&c, s.broker(), TOPIC, 1).await;
    fill(&c, s.broker(), 0, 200).await;
    s.stop();
    let segs = || files(&dir.path().join("commitlog"));
    let n0 = segs().len();
    assert!(n0 >= 4);
    let other_hour = format!("{:02}", (actormq::store::cleanup::local_hour() + 12) % 24);

    let start = |used: f64, reserved_hours: u64| {
        let when = other_hour.clone();
        TestServer::start(Opts::default().store(dir.path()).broker(move |b| {
            small_files(b);
            b.file_reserved_time = reserved_hours;
            b.delete_when = when;
            b.expiry.clean_resource_interval = 100;
            b.expiry.delete_commit_log_files_interval = 0;
            b.expiry.disk_usage_override_ratio = used;
        }))
    };
    // Below diskMaxUsedSpaceRatio and not the deleteWhen hour: nothing goes.
    let s = start(50.0, 0);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(segs().len(), n0);
    s.stop();
    // Above 75 %: expired files go at once, whatever the hour; unexpired
    // ones (fileReservedTime 72 h) stay.
    let s = start(80.0, 72);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(segs().len(), n0);
    s.stop();
    let s = start(80.0, 0);
    let b = s.broker().to_owned();
    let min1 = eventually(Duration::from_secs(10), || async {
        let m = queue_offset(&c, &b, request::GET_MIN_OFFSET, TOPIC, 0).await;
        (m > 0).then_some(m)
    })
    .await
    .expect("deleted under space pressure");
    fill(&c, &b, 200, 150).await;
    s.stop();
    // Above diskSpaceCleanForciblyRatio (85 %): even unexpired files go.
    let s = start(87.0, 72);
    let b = s.broker().to_owned();
    let min2 = eventually(Duration::from_secs(10), || async {
        let m = queue_offset(&c, &b, request::GET_MIN_OFFSET, TOPIC, 0).await;
        (m > min1).then_some(m)
    })
    .await
    .expect("deleted forcibly");
    // Forcible cleaning goes on, one segment per round, until only the
    // newest is left: wait for the min offset to settle before reading.
    let mut min2 = min2;
    let mut stable = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let m = queue_offset(&c, &b, request::GET_MIN_OFFSET, TOPIC, 0).await;
        if m == min2 {
            stable += 1;
            if stable >= 3 {
                break;
            }
        } else {
            stable = 0;
            min2 = m;
        }
    }
    let left = pull_from(&c, &b, min2).await;
    assert_eq!(left.len() as i64, 350 - min2);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_refuses_sends_but_serves_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(Opts::default().store(dir.path()));
    let c = client();
    create_topic(&c, s.broker(), TOPIC, 1).await;
    fill(&c, s.broker(), 0, 10).await;
    s.stop();
    let s = TestServer::start(Opts::default().store(dir.path()).broker(|b| {
        b.expiry.clean_resource_interval = 100;
        b.expiry.disk_usage_override_ratio = 95.0;
    }));
    let b = s.broker().to_owned();
    let refused = eventually(Duration::from_secs(5), || async {
        let r = send_raw(&c, &b, TOPIC, 0, &Msg::new("late")).await;
        (r.code == response::SERVICE_NOT_AVAILABLE).then_some(r)
    })
    .await
    .expect("sends refused when the disk is full");
    let remark = refused.remark.unwrap_or_default();
    assert!(remark.contains("disk full"), "{remark}");
    let got = pull_from(&c, &b, 0).await;
    assert_eq!(got.len(), 10);
    // Internal writes are refused too: a send-back (retry copy) is not stored.
    let first = &pull_all(&c, &b, TOPIC, 0).await[0];
    let back = send_back(&c, &b, "g_full", first.commit_log_offset, 0, Some(16)).await;
    assert_ne!(
        back.code,
        response::SUCCESS,
        "send-back stored while the disk is full"
    );
    let why = back.remark.clone().unwrap_or_default();
    assert!(
        why.contains("disk"),
        "send-back refused for another reason: {why}"
    );
    assert_eq!(
        queue_offset(&c, &b, request::GET_MAX_OFFSET, TOPIC, 0).await,
        10
    );
    s.stop();
    // Back under the threshold: sends work again.
    let s = TestServer::start(Opts::default().store(dir.path()));
    send_ok(&c, s.broker(), TOPIC, 0, &Msg::new("again")).await;
    s.stop();
}

/// A reader holding a slice of a segment keeps valid bytes after the
/// segment is deleted: deletion only unlinks the file.
#[test]
fn slice_of_deleted_segment_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        commitlog_file_size: SEG,
        ..StoreConfig::with_root(dir.path())
    };
    let mut log = CommitLog::open(&cfg).unwrap();
    let flusher = Flusher::start(&cfg, &log).unwrap();
    let body = pseudo_body(7, 4000);
    let props = encode_properties([(keys::KEYS, "held")]);
    let mut appended = Vec::new();
    for _ in 0..40 {
        let spec = RecordSpec {
            topic: "T",
            queue_id: 0,
            flag: 0,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp: 2,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: &body,
            properties: &props,
        };
        let mut buf = BytesMut::new();
        encode_record(&spec, &mut buf).unwrap();
        appended.push(log.append(&mut buf).unwrap());
    }
    flusher.flush_all().unwrap();
    let reader = log.reader();
    let first = appended[0];
    let held = reader.read(first.phys_offset, first.size).unwrap();
    let before = held.to_vec();
    let deleted = log
        .delete_expired_segments(SystemTime::now() + Duration::from_secs(60), 10)
        .unwrap();
    assert!(deleted >= 1);
    assert!(!dir.path().join("commitlog/00000000000000000000").exists());
    assert!(reader.read(first.phys_offset, first.size).is_none());
    // The held slice still maps the (unlinked) file.
    assert_eq!(held.to_vec(), before);
    let m = actormq::wire::message::decode_record(&held, 0, true).unwrap();
    assert_eq!(&m.body[..], &body[..]);
    drop(flusher);
}
