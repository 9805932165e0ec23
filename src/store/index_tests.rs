//! Tests of the index store over a real (tiny) commit log.

use super::*;
use crate::store::commit_log::tests::tiny_cfg;
use crate::store::CommitLog;
use crate::wire::message::{encode_properties, encode_record, RecordSpec};
use bytes::BytesMut;

fn keyed(topic: &str, keys_prop: &str, uniq: &str, ts: i64) -> Vec<u8> {
    let props = encode_properties([(keys::KEYS, keys_prop), (keys::UNIQ_KEY, uniq)]);
    let spec = RecordSpec {
        topic,
        queue_id: 0,
        flag: 0,
        sys_flag: 0,
        born_timestamp: ts,
        born_host: "127.0.0.1:1234".parse().unwrap(),
        store_timestamp: ts,
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: b"body",
        properties: &props,
    };
    let mut out = BytesMut::new();
    encode_record(&spec, &mut out).unwrap();
    out.to_vec()
}

fn icfg(root: &std::path::Path, index_num: u32) -> IndexConfig {
    IndexConfig::new(root, 16, index_num)
}

#[test]
fn indexes_keys_and_uniq_keys_and_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    let mut offs = Vec::new();
    for i in 0..40i64 {
        let mut r = keyed(
            "T",
            &format!("k{} shared", i % 3),
            &format!("U{i}"),
            1_000_000 + i * 1000,
        );
        offs.push(log.append(&mut r).unwrap().phys_offset);
    }
    let reader = log.reader();
    let mut idx = IndexStore::open(icfg(dir.path(), 10), &reader, None).unwrap();
    assert!(idx.catch_up(&reader, 1000).unwrap());
    // 3 keys per record, 9 entries per file.
    assert!(idx.file_count() >= 13, "files: {}", idx.file_count());
    let hits = idx.query("T", "shared", 64, 0, i64::MAX);
    assert_eq!(hits.phys_offsets.len(), 40);
    assert_eq!(hits.phys_offsets[0], offs[39]);
    let hits = idx.query("T", "U7", 64, 0, i64::MAX);
    assert_eq!(hits.phys_offsets, vec![offs[7]]);
    let hits = idx.query("T", "k1", 64, 0, i64::MAX);
    assert_eq!(hits.phys_offsets.len(), 13);
    // Time range, second precision.
    let hits = idx.query("T", "shared", 64, 1_010_000, 1_019_000);
    assert_eq!(hits.phys_offsets.len(), 10);
    assert!(idx
        .query("U", "shared", 64, 0, i64::MAX)
        .phys_offsets
        .is_empty());
    assert_eq!(
        idx.query("T", "shared", 5, 0, i64::MAX).phys_offsets.len(),
        5
    );

    // Reopen: resumes after the last record, no duplicates.
    idx.flush().unwrap();
    drop(idx);
    let mut r = keyed("T", "shared", "U40", 1_040_000);
    offs.push(log.append(&mut r).unwrap().phys_offset);
    let mut idx = IndexStore::open(icfg(dir.path(), 10), &reader, None).unwrap();
    assert_eq!(idx.indexed_end(), offs[40]);
    assert!(idx.catch_up(&reader, 1000).unwrap());
    assert_eq!(
        idx.query("T", "shared", 64, 0, i64::MAX).phys_offsets.len(),
        41
    );
}

#[test]
fn crash_progress_and_broken_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    let mut offs = Vec::new();
    for i in 0..10i64 {
        let mut r = keyed("T", "a", &format!("U{i}"), 2_000_000 + i);
        offs.push(log.append(&mut r).unwrap().phys_offset);
    }
    let reader = log.reader();
    let mut idx = IndexStore::open(icfg(dir.path(), 1000), &reader, None).unwrap();
    idx.catch_up(&reader, 1000).unwrap();
    drop(idx);
    // A crash with progress recorded at record 6: entries from 6 on are
    // dropped and re-indexed, without duplicates.
    let mut idx = IndexStore::open(icfg(dir.path(), 1000), &reader, Some(offs[6])).unwrap();
    assert_eq!(idx.indexed_end(), offs[6]);
    assert_eq!(idx.query("T", "a", 64, 0, i64::MAX).phys_offsets.len(), 6);
    idx.catch_up(&reader, 1000).unwrap();
    assert_eq!(idx.query("T", "a", 64, 0, i64::MAX).phys_offsets.len(), 10);
    drop(idx);
    // A truncated file is dropped and rebuilt from the log.
    let (_, path) = list_files(&dir.path().join("index")).unwrap().remove(0);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(100).unwrap();
    drop(f);
    let mut idx = IndexStore::open(icfg(dir.path(), 1000), &reader, None).unwrap();
    assert_eq!(idx.file_count(), 0);
    idx.catch_up(&reader, 1000).unwrap();
    assert_eq!(idx.query("T", "a", 64, 0, i64::MAX).phys_offsets.len(), 10);
}

#[test]
fn delete_before_keeps_the_newest_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    for i in 0..30i64 {
        let mut r = keyed("T", "", &format!("U{i}"), 3_000_000 + i);
        log.append(&mut r).unwrap();
    }
    let reader = log.reader();
    let mut idx = IndexStore::open(icfg(dir.path(), 5), &reader, None).unwrap();
    idx.catch_up(&reader, 1000).unwrap();
    let n = idx.file_count();
    assert!(n > 2);
    assert_eq!(idx.delete_before_phys(i64::MAX).unwrap(), n - 1);
    assert_eq!(idx.file_count(), 1);
    assert_eq!(list_files(&dir.path().join("index")).unwrap().len(), 1);
}

#[test]
fn a_slave_log_ending_inside_a_record_is_indexed_once_the_record_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    let recs: Vec<Vec<u8>> = (0..3)
        .map(|i| keyed("T", "k", &format!("U{i}"), 1_000_000 + i))
        .collect();
    let all = recs.concat();
    let (a, b) = (recs[0].len(), recs[0].len() + recs[1].len());
    let reader = log.reader();
    let mut idx = IndexStore::open(icfg(dir.path(), 100), &reader, None).unwrap();
    // Replicated ranges that split a record in its body, then in its header.
    for cut in [a + 5, b + 3, all.len()] {
        let from = log.max_offset() as usize;
        log.append_replicated(from as i64, &all[from..cut]).unwrap();
        idx.catch_up(&reader, 1000).unwrap();
        let whole = if cut == all.len() {
            cut
        } else if cut > b {
            b
        } else {
            a
        };
        assert_eq!(idx.indexed_end(), whole as i64, "log ends at {cut}");
    }
    assert_eq!(idx.query("T", "k", 64, 0, i64::MAX).phys_offsets.len(), 3);
    for i in 0..3 {
        let hits = idx.query("T", &format!("U{i}"), 64, 0, i64::MAX);
        assert_eq!(hits.phys_offsets.len(), 1, "U{i}");
    }
}
