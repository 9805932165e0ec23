//! Tests of the consume queue (8-unit segments to cross file boundaries).

use super::*;
use crate::store::commit_log::tests::{rec_with, tiny_cfg};
use crate::store::commit_log::CommitLog;

#[test]
fn put_get_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut cq = ConsumeQueue::open(&cfg, "T", 3).unwrap();
    assert_eq!((cq.min_offset(), cq.max_offset()), (0, 0));
    assert_eq!(cq.get(0), None);
    for i in 0..30 {
        cq.put(i, i * 100, 90, i * 7).unwrap();
    }
    assert_eq!(cq.max_offset(), 30);
    assert_eq!(
        cq.get(17),
        Some(CqUnit {
            phys_offset: 1700,
            size: 90,
            tags_code: 119
        })
    );
    assert_eq!(cq.get(30), None);
    // Idempotent re-put; conflicting put refused.
    cq.put(5, 500, 90, 35).unwrap();
    assert!(matches!(
        cq.put(5, 501, 90, 35),
        Err(StoreError::QueueOffsetConflict { .. })
    ));
    let units = cq.read_units(6, 4);
    assert_eq!(
        units.iter().map(|u| u.phys_offset).collect::<Vec<_>>(),
        vec![600, 700, 800, 900]
    );
    assert_eq!(cq.read_units(28, 10).len(), 2);
    let files = crate::store::mapped_file::list_segments(&cfg.queue_dir("T", 3).unwrap()).unwrap();
    assert_eq!(
        files.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![0, 160, 320, 480]
    );
    cq.flush().unwrap();
    drop(cq);
    let cq = ConsumeQueue::open(&cfg, "T", 3).unwrap();
    assert_eq!((cq.min_offset(), cq.max_offset()), (0, 30));
    assert_eq!(cq.last_unit().map(|u| u.phys_offset), Some(2900));
}

#[test]
fn gaps_are_filled() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    // A fresh queue starting at offset 13: fillers before it in its segment.
    let mut cq = ConsumeQueue::open(&cfg, "T", 0).unwrap();
    cq.put(13, 1000, 50, 1).unwrap();
    assert_eq!((cq.min_offset(), cq.max_offset()), (13, 14));
    assert_eq!(cq.get(12), None);
    // A small gap inside a live queue: filler units, skipped by iteration.
    cq.put(16, 2000, 50, 1).unwrap();
    assert_eq!(cq.get(14), Some(CqUnit::FILLER));
    assert_eq!(cq.read_units(13, 10).len(), 2);
    assert!(matches!(
        cq.put(100, 3000, 50, 1),
        Err(StoreError::QueueGap { .. })
    ));
    drop(cq);
    let cq = ConsumeQueue::open(&cfg, "T", 0).unwrap();
    assert_eq!((cq.min_offset(), cq.max_offset()), (13, 17));
    let raw = std::fs::read(cfg.queue_dir("T", 0).unwrap().join("00000000000000000160")).unwrap();
    assert_eq!(&raw[8..12], &i32::MAX.to_be_bytes(), "filler unit at 8");
}

#[test]
fn truncate_from_phys_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut cq = ConsumeQueue::open(&cfg, "T", 1).unwrap();
    for i in 0..20 {
        cq.put(i, i * 100, 100, 0).unwrap();
    }
    cq.truncate_from_phys(1050).unwrap(); // unit 10 ends at 1100 > 1050
    assert_eq!(cq.max_offset(), 10);
    assert_eq!(
        crate::store::mapped_file::list_segments(&cfg.queue_dir("T", 1).unwrap())
            .unwrap()
            .len(),
        2
    );
    cq.put(10, 1000, 50, 0).unwrap();
    drop(cq);
    let mut cq = ConsumeQueue::open(&cfg, "T", 1).unwrap();
    assert_eq!(cq.max_offset(), 11);
    assert_eq!(cq.delete_before_phys(900).unwrap(), 1);
    assert_eq!(cq.min_offset(), 9);
    cq.delete_files().unwrap();
    assert_eq!(cq.max_offset(), 0);
    assert!(!cfg.queue_dir("T", 1).unwrap().exists());
}

#[test]
fn search_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    let mut cq = ConsumeQueue::open(&cfg, "T", 0).unwrap();
    // Store times 100, 200, 200, 300, ...
    let times = [100, 200, 200, 300, 400, 500, 600, 700, 800, 900, 1000];
    for (i, ts) in times.iter().enumerate() {
        let mut r = rec_with("T", 0, i as i64, 10, 0, *ts);
        let res = log.append(&mut r).unwrap();
        cq.put(i as i64, res.phys_offset, res.size, 0).unwrap();
    }
    let rd = log.reader();
    assert_eq!(cq.search_offset_by_timestamp(200, Boundary::Lower, &rd), 1);
    assert_eq!(cq.search_offset_by_timestamp(200, Boundary::Upper, &rd), 2);
    assert_eq!(cq.search_offset_by_timestamp(250, Boundary::Lower, &rd), 3);
    assert_eq!(cq.search_offset_by_timestamp(250, Boundary::Upper, &rd), 2);
    assert_eq!(cq.search_offset_by_timestamp(0, Boundary::Lower, &rd), 0);
    assert_eq!(cq.search_offset_by_timestamp(0, Boundary::Upper, &rd), 0);
    assert_eq!(
        cq.search_offset_by_timestamp(5000, Boundary::Lower, &rd),
        11
    );
    assert_eq!(
        cq.search_offset_by_timestamp(5000, Boundary::Upper, &rd),
        10
    );
}

#[test]
fn offset_within_stops_at_the_first_unit_past_a_log_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut cq = ConsumeQueue::open(&cfg, "T", 0).unwrap();
    assert_eq!(cq.offset_within(0), 0, "empty");
    for i in 0..30 {
        cq.put(i, i * 100, 90, 0).unwrap();
    }
    assert_eq!(cq.offset_within(i64::MAX), 30);
    assert_eq!(cq.offset_within(2990), 30, "the last unit ends at 2990");
    assert_eq!(cq.offset_within(2989), 29);
    assert_eq!(cq.offset_within(1790), 18);
    assert_eq!(cq.offset_within(1789), 17);
    assert_eq!(cq.offset_within(89), 0);
    assert_eq!(cq.offset_within(90), 1);
    // A filler counts as the next real unit.
    cq.put(32, 3200, 90, 0).unwrap();
    assert_eq!(cq.max_offset(), 33);
    assert_eq!(cq.offset_within(3000), 30);
    assert_eq!(cq.offset_within(3290), 33);
}
