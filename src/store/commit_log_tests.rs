//! Tests of the commit log writer and reader (tiny segments to cross boundaries).

use super::*;
use crate::wire::message::{
    encode_properties, encode_record, keys, patch_i64, RecordSpec, QUEUE_OFFSET_POS,
};
use bytes::BytesMut;
use std::path::Path;

/// A config with 4 KiB commit log segments and 8-unit consume-queue files.
pub(crate) fn tiny_cfg(root: &Path) -> StoreConfig {
    StoreConfig {
        root: root.to_path_buf(),
        commitlog_file_size: 4096,
        cq_units_per_file: 8,
        max_message_size: 2048,
        ..StoreConfig::default()
    }
}

/// An encoded record with the queue offset patched and a `body_len` body.
pub(crate) fn rec(topic: &str, queue_id: i32, queue_offset: i64, body_len: usize) -> Vec<u8> {
    rec_with(
        topic,
        queue_id,
        queue_offset,
        body_len,
        0,
        1_000 + queue_offset,
    )
}

pub(crate) fn rec_with(
    topic: &str,
    queue_id: i32,
    queue_offset: i64,
    body_len: usize,
    sys_flag: i32,
    ts: i64,
) -> Vec<u8> {
    let body: Vec<u8> = (0..body_len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(queue_offset as u8))
        .collect();
    let uniq = format!("U{queue_offset}");
    let props = encode_properties([(keys::TAGS, "TagA"), (keys::UNIQ_KEY, uniq.as_str())]);
    let spec = RecordSpec {
        topic,
        queue_id,
        flag: 0,
        sys_flag,
        born_timestamp: ts,
        born_host: "127.0.0.1:1234".parse().unwrap(),
        store_timestamp: ts,
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: &body,
        properties: &props,
    };
    let mut out = BytesMut::new();
    encode_record(&spec, &mut out).unwrap();
    patch_i64(&mut out, QUEUE_OFFSET_POS, queue_offset);
    out.to_vec()
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes(b[..4].try_into().unwrap())
}

#[test]
fn append_and_read_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    let reader = log.reader();
    assert_eq!((log.min_offset(), log.max_offset()), (0, 0));
    let mut results = Vec::new();
    let mut expected_next = 0i64;
    for i in 0..120 {
        let mut r = rec("TopicA", 0, i, 50 + (i as usize * 37) % 700);
        let res = log.append(&mut r).unwrap();
        // Contiguous unless the record moved to the next segment.
        if res.phys_offset != expected_next {
            assert_eq!(res.phys_offset % 4096, 0, "only a segment switch may skip");
            let blank = reader.read(expected_next, 8).unwrap();
            assert_eq!(be_i32(&blank[4..]), BLANK_MAGIC);
            assert_eq!(be_i32(&blank) as i64, res.phys_offset - expected_next);
            assert!(reader.read_record(expected_next).is_none());
        }
        assert_eq!(
            res.phys_offset / 4096,
            (res.end_offset - 1) / 4096,
            "never spans segments"
        );
        assert_eq!(res.end_offset, res.phys_offset + r.len() as i64);
        assert_eq!(
            &r[PHYS_OFFSET_POS..PHYS_OFFSET_POS + 8],
            &res.phys_offset.to_be_bytes()
        );
        expected_next = res.end_offset;
        results.push((res, r));
    }
    assert!(log.max_offset() > 4096 * 10);
    assert_eq!(reader.max_offset(), log.max_offset());
    for (res, r) in &results {
        let got = reader.read_record(res.phys_offset).unwrap();
        assert_eq!(&got[..], &r[..]);
        let m = message::decode_record(&got, 0, true).unwrap();
        assert_eq!(m.commit_log_offset, res.phys_offset);
    }
    // Nothing beyond the published end.
    assert!(reader.read(log.max_offset(), 1).is_none());
    assert!(reader.read(log.max_offset() - 4, 8).is_none());
    assert!(reader.read(-1, 8).is_none());
    let range = reader
        .read_range(results[0].0.phys_offset, 1 << 20)
        .unwrap();
    assert_eq!(range.len(), 4096);
    let files = crate::store::mapped_file::list_segments(&cfg.commitlog_dir()).unwrap();
    assert!(files
        .iter()
        .any(|(s, p)| *s == 4096 && p.ends_with("00000000000000004096")));

    // Reopen: same end, same data.
    let end = log.max_offset();
    drop(reader);
    drop(log);
    let log = CommitLog::open(&cfg).unwrap();
    assert_eq!(log.max_offset(), end);
    let (res, r) = results.last().unwrap();
    assert_eq!(
        &log.reader().read_record(res.phys_offset).unwrap()[..],
        &r[..]
    );
}

#[test]
fn rejects_bad_records_without_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    let mut big = rec("T", 0, 0, 4096);
    assert!(matches!(
        log.append(&mut big),
        Err(StoreError::RecordTooLarge { .. })
    ));
    let mut r = rec("T", 0, 0, 10);
    r.push(0); // TOTALSIZE no longer matches
    assert!(matches!(
        log.append(&mut r),
        Err(StoreError::InvalidRecord(_))
    ));
    let mut junk = vec![0u8; 100];
    assert!(log.append(&mut junk).is_err());
    assert_eq!(log.max_offset(), 0);
    let mut ok = rec("T", 0, 0, 10);
    assert_eq!(log.append(&mut ok).unwrap().phys_offset, 0);
}

#[test]
fn batch_append_publishes_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    let mut recs: Vec<Vec<u8>> = (0..40).map(|i| rec("T", 1, i, 200)).collect();
    let mut out = Vec::new();
    log.append_batch(recs.iter_mut().map(|r| r.as_mut_slice()), &mut out)
        .unwrap();
    assert_eq!(out.len(), 40);
    let reader = log.reader();
    for (res, r) in out.iter().zip(&recs) {
        assert_eq!(&reader.read(res.phys_offset, res.size).unwrap()[..], &r[..]);
    }
}

#[test]
fn concurrent_reader_sees_only_complete_records() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    let reader = log.reader();
    let t = std::thread::spawn(move || {
        let mut pos = 0i64;
        let mut seen = 0;
        while seen < 500 {
            let max = reader.max_offset();
            match reader.read_record(pos) {
                Some(r) => {
                    let m = message::decode_record(&r, 0, true).unwrap();
                    assert_eq!(m.queue_offset, seen);
                    pos += r.len() as i64;
                    seen += 1;
                }
                None if pos < max => pos = reader.next_segment_start(pos),
                None => std::thread::yield_now(),
            }
        }
    });
    for i in 0..500 {
        let mut r = rec("T", 0, i, 100);
        log.append(&mut r).unwrap();
    }
    t.join().unwrap();
}

#[test]
fn deletes_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    let mut first = rec("T", 0, 0, 100);
    let r0 = log.append(&mut first).unwrap();
    for i in 1..100 {
        log.append(&mut rec("T", 0, i, 300)).unwrap();
    }
    let reader = log.reader();
    let held = reader.read_record(r0.phys_offset).unwrap();
    let later = SystemTime::now() + std::time::Duration::from_secs(60);
    // Nothing is flushed yet: nothing may go.
    assert_eq!(log.delete_expired_segments(later, 100).unwrap(), 0);
    log.shared()
        .flushed
        .store(log.max_offset(), Ordering::Release);
    let n = log.delete_expired_segments(later, 2).unwrap();
    assert_eq!(n, 2);
    assert_eq!(log.min_offset(), 8192);
    assert!(reader.read_record(r0.phys_offset).is_none());
    // Bytes handed out earlier stay valid.
    assert_eq!(&held[..], &first[..]);
    let n = log.delete_expired_segments(later, 1000).unwrap();
    assert!(n > 0);
    assert!(reader.min_offset() <= log.max_offset());
    assert_eq!(reader.max_offset(), log.max_offset());
}

/// Throughput smoke test: `cargo test --release --lib bench_append -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_append() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        commitlog_file_size: 64 << 20,
        ..StoreConfig::with_root(dir.path())
    };
    let mut log = CommitLog::open(&cfg).unwrap();
    let mut r = rec("BenchTopic", 0, 0, 1024);
    let n = 300_000;
    let t = std::time::Instant::now();
    for i in 0..n {
        patch_i64(&mut r, QUEUE_OFFSET_POS, i);
        log.append(&mut r).unwrap();
    }
    let el = t.elapsed();
    eprintln!(
        "{n} appends of {} B in {el:?}: {:.0}/s",
        r.len(),
        n as f64 / el.as_secs_f64()
    );
}

#[test]
fn thread_safety_contracts() {
    fn send<T: Send>() {}
    fn shared<T: Send + Sync + Clone>() {}
    send::<CommitLog>();
    send::<crate::store::ConsumeQueue>();
    shared::<CommitLogReader>();
    fn sync<T: Send + Sync>() {}
    sync::<crate::store::Flusher>();
}
