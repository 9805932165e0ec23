//! Tests of the intent file codec, fingerprints and the tail scan.

use super::*;
use crate::store::commit_log::tests::{rec, rec_with, tiny_cfg};
use crate::store::CommitLog;

fn intent(id: u64, n: u64, tag: &str) -> Intent {
    Intent {
        id,
        base: 4096 * id as i64,
        fingerprints: (0..n).map(|i| i * 0x1234_5678_9abc + id).collect(),
        tag: tag.as_bytes().to_vec(),
    }
}

#[test]
fn codec_round_trips_and_done_closes() {
    let mut buf = encode_begin(&intent(1, 3, "a"));
    buf.extend(encode_begin(&intent(2, 0, "")));
    buf.extend(encode_done(1));
    let (open, valid, max_id) = decode(&buf);
    assert_eq!(valid, buf.len());
    assert_eq!(max_id, 2);
    assert_eq!(
        open.into_values().collect::<Vec<_>>(),
        vec![intent(2, 0, "")]
    );
}

#[test]
fn torn_or_corrupt_tail_is_ignored() {
    let mut buf = encode_begin(&intent(1, 2, "kept"));
    let good = buf.len();
    let second = encode_begin(&intent(2, 5, "torn"));
    // Every cut inside the second entry leaves only the first.
    for cut in 0..second.len() {
        let mut b = buf.clone();
        b.extend_from_slice(&second[..cut]);
        let (open, valid, _) = decode(&b);
        assert_eq!(valid, good, "cut at {cut}");
        assert_eq!(open.len(), 1);
        assert!(open.contains_key(&1));
    }
    // A flipped byte fails the CRC; a garbage length is refused.
    let mut flipped = second.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    buf.extend_from_slice(&flipped);
    assert_eq!(decode(&buf).1, good);
    let mut garbage = encode_done(7);
    garbage[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(decode(&garbage).1, 0);
}

#[test]
fn intent_log_persists_open_intents_and_truncates_when_none_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config/x.intent");
    let mut log = IntentLog::open(&path).unwrap();
    let a = log.begin(10, vec![1, 2], b"A".to_vec()).unwrap();
    let b = log.begin(20, vec![3], b"B".to_vec()).unwrap();
    assert!(a < b);
    log.done(a).unwrap();
    assert!(log.file_len() > 0);
    drop(log);

    // A torn entry after the valid ones (a kill in the middle of a write).
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&encode_begin(&intent(9, 4, "partial"))[..13])
        .unwrap();
    drop(f);

    let mut log = IntentLog::open(&path).unwrap();
    let open: Vec<_> = log.open_intents().cloned().collect();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].id, open[0].base), (b, 20));
    assert_eq!(open[0].fingerprints, vec![3]);
    assert_eq!(open[0].tag, b"B");
    // New entries go after the valid prefix and read back.
    let c = log.begin(30, vec![4], Vec::new()).unwrap();
    assert!(c > b);
    drop(log);
    let mut log = IntentLog::open(&path).unwrap();
    assert!(log.is_open(b) && log.is_open(c));
    log.done(b).unwrap();
    log.done(c).unwrap();
    log.done(c).unwrap(); // twice is harmless
    assert_eq!(log.file_len(), 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    drop(log);
    assert_eq!(IntentLog::open(&path).unwrap().open_intents().count(), 0);
}

#[test]
fn intent_log_compacts_around_a_long_open_intent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.intent");
    let mut log = IntentLog::open(&path).unwrap();
    let pinned = log.begin(1, vec![7; 16], b"pinned".to_vec()).unwrap();
    for i in 0..20_000 {
        let id = log.begin(i, vec![i as u64; 4], Vec::new()).unwrap();
        log.done(id).unwrap();
    }
    assert!(log.file_len() < COMPACT_AT + 1024, "{}", log.file_len());
    drop(log);
    let log = IntentLog::open(&path).unwrap();
    let open: Vec<_> = log.open_intents().map(|i| i.id).collect();
    assert_eq!(open, vec![pinned]);
}

#[test]
fn fingerprint_ignores_writer_fields_and_sees_content() {
    let a = rec_with("T", 1, 0, 40, 0, 5_000);
    let mut moved = a.clone();
    // Queue offset and physical offset are assigned by the writer.
    message::patch_i64(&mut moved, message::QUEUE_OFFSET_POS, 99);
    message::patch_i64(&mut moved, message::PHYS_OFFSET_POS, 123_456);
    assert_eq!(fingerprint(&a).unwrap(), fingerprint(&moved).unwrap());
    let other_queue = rec_with("T", 2, 0, 40, 0, 5_000);
    let other_body = rec_with("T", 1, 0, 41, 0, 5_000);
    let other_born = rec_with("T", 1, 0, 40, 0, 5_001);
    let other_topic = rec_with("U", 1, 0, 40, 0, 5_000);
    for b in [other_queue, other_body, other_born, other_topic] {
        assert_ne!(fingerprint(&a).unwrap(), fingerprint(&b).unwrap());
    }
    assert!(fingerprint(&a[..20]).is_err());
}

#[test]
fn landed_counts_the_prefix_run() {
    assert_eq!(landed_in(&[], &[1, 2]), 0);
    assert_eq!(landed_in(&[9, 8], &[]), 0);
    assert_eq!(landed_in(&[9, 1, 2, 3, 8], &[1, 2, 3]), 3);
    assert_eq!(landed_in(&[9, 1, 2], &[1, 2, 3]), 2, "torn batch");
    assert_eq!(landed_in(&[1, 9, 1, 2], &[1, 2, 3]), 2, "longest run wins");
    assert_eq!(landed_in(&[2, 3], &[1, 2, 3]), 0, "not a prefix");
    // Duplicates inside the batch count by position.
    assert_eq!(landed_in(&[5, 5], &[5, 5, 5]), 2);
}

#[test]
fn landed_scans_the_log_across_segment_switches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    let mut log = CommitLog::open(&cfg).unwrap();
    let reader = log.reader();
    // Unrelated traffic, then the intent's base.
    for i in 0..5 {
        log.append(&mut rec("Other", 0, i, 300)).unwrap();
    }
    let base = reader.max_offset();
    let batch: Vec<Vec<u8>> = (0..6)
        .map(|i| rec_with("Real", 0, 0, 900, 0, 70_000 + i))
        .collect();
    let fps: Vec<_> = batch.iter().map(|r| fingerprint(r).unwrap()).collect();
    let it = Intent {
        id: 1,
        base,
        fingerprints: fps,
        tag: Vec::new(),
    };
    assert_eq!(landed(&reader, &it), 0);
    // Interleaved traffic before the batch, then the first four records
    // (crossing a 4 KiB segment boundary).
    log.append(&mut rec("Other", 0, 7, 200)).unwrap();
    for r in &batch[..4] {
        log.append(&mut r.clone()).unwrap();
    }
    assert!(
        reader.max_offset() / 4096 > base / 4096,
        "crossed a segment"
    );
    assert_eq!(landed(&reader, &it), 4);
    for r in &batch[4..] {
        log.append(&mut r.clone()).unwrap();
    }
    log.append(&mut rec("Other", 0, 8, 200)).unwrap();
    assert_eq!(landed(&reader, &it), 6);
    // Records before the base are not looked at.
    let later = Intent {
        base: reader.max_offset(),
        ..it
    };
    assert_eq!(landed(&reader, &later), 0);
}
