//! Lazy disk reservation and background segment preparation (the commit log
//! reserves blocks in steps ahead of its writer and prepares the next
//! segment at half full; consume-queue and index files are sparse).

use super::commit_log::tests::rec;
use super::commit_log::RESERVE_STEP;
use super::{CommitLog, ConsumeQueue, StoreConfig};
use crate::wire::message::{patch_i64, QUEUE_OFFSET_POS};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes of disk a file really uses.
fn used(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const SEG: u64 = 64 << 20;

#[test]
fn the_commit_log_reserves_disk_as_it_grows_and_prepares_the_next_segment_at_half() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        commitlog_file_size: SEG,
        ..StoreConfig::with_root(dir.path())
    };
    let cl_dir = cfg.commitlog_dir();
    let mut log = CommitLog::open(&cfg).unwrap();
    let first = cl_dir.join("00000000000000000000");
    // Fresh: one segment, only its first step reserved.
    assert_eq!(names(&cl_dir), ["00000000000000000000"]);
    assert!(used(&first) >= RESERVE_STEP as u64, "{}", used(&first));
    assert!(used(&first) < SEG / 2, "{}", used(&first));

    let mut r = rec("T", 0, 0, 16 << 10);
    let mut i = 0;
    let mut append_until = |log: &mut CommitLog, end: i64| {
        while log.max_offset() < end {
            patch_i64(&mut r, QUEUE_OFFSET_POS, i);
            log.append(&mut r).unwrap();
            i += 1;
        }
    };
    // Past the first step: reserved ahead of the writer, no next segment.
    append_until(&mut log, 24 << 20);
    assert!(used(&first) >= 24 << 20, "{}", used(&first));
    assert_eq!(names(&cl_dir), ["00000000000000000000"]);
    // Half full: the next one is prepared under its temporary name.
    append_until(&mut log, (SEG / 2) as i64 + 1);
    let spare = cl_dir.join("00000000000067108864.creating");
    eventually("the prepared segment", || spare.exists());
    // The writer rolls into it without waiting on its thread once ready.
    let big = 32 << 10;
    append_until(&mut log, SEG as i64 - 2 * big as i64);
    let lens = [big, big, big];
    if let Some(ready) = log.roll_pending(lens) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(ready);
    }
    assert!(log.roll_pending(lens).is_none());
    append_until(&mut log, SEG as i64 + 1);
    assert_eq!(
        names(&cl_dir),
        ["00000000000000000000", "00000000000067108864"]
    );
    let second = cl_dir.join("00000000000067108864");
    assert!(used(&second) < SEG / 2, "{}", used(&second));
    // A restart finds both and goes on.
    drop(log);
    let log = CommitLog::open(&cfg).unwrap();
    assert!(log.max_offset() > SEG as i64);
}

#[test]
fn consume_queue_files_are_sparse_and_the_next_one_is_prepared_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        cq_units_per_file: 300_000,
        ..StoreConfig::with_root(dir.path())
    };
    let mut cq = ConsumeQueue::open(&cfg, "T", 0).unwrap();
    let qdir = cfg.queue_dir("T", 0).unwrap();
    // A fresh queue's first segment is made in the background too.
    if let Some(ready) = cq.segment_pending(0) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(ready);
    }
    assert!(cq.segment_pending(0).is_none());
    cq.put(0, 0, 100, 0).unwrap();
    let file = qdir.join("00000000000000000000");
    assert_eq!(names(&qdir), ["00000000000000000000"]);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 6_000_000);
    assert!(used(&file) < 1 << 20, "{}", used(&file));
    // Half full: the next segment is prepared, then taken on the roll.
    for o in 1..150_001 {
        cq.put(o, o * 100, 100, 0).unwrap();
    }
    let spare = qdir.join("00000000000006000000.creating");
    eventually("the prepared consume-queue segment", || spare.exists());
    for o in 150_001..300_010 {
        cq.put(o, o * 100, 100, 0).unwrap();
    }
    assert_eq!(
        names(&qdir),
        ["00000000000000000000", "00000000000006000000"]
    );
    assert_eq!(cq.get(300_005).map(|u| u.phys_offset), Some(30_000_500));
}
