//! Recovery tests: clean restart, torn tail after a crash, consume queues
//! ahead of / behind the commit log, transaction records, lost queue files.

use super::*;
use crate::store::commit_log::tests::{rec, rec_with, tiny_cfg};
use crate::store::flush::Flusher;
use crate::wire::message::sysflag;
use std::os::unix::fs::FileExt;

fn put_all(r: &mut Recovered, recs: &[(String, i32, i64, crate::store::AppendResult)]) {
    for (t, q, qo, res) in recs {
        let key = (t.clone(), *q);
        if !r.queues.contains_key(&key) {
            let cq = ConsumeQueue::open(&tiny_cfg_from(r), t, *q).unwrap();
            r.queues.insert(key.clone(), cq);
        }
        r.queues
            .get_mut(&key)
            .unwrap()
            .put(*qo, res.phys_offset, res.size, 0)
            .unwrap();
    }
}

thread_local!(static CFG: std::cell::RefCell<Option<StoreConfig>> = const { std::cell::RefCell::new(None) });
fn tiny_cfg_from(_: &Recovered) -> StoreConfig {
    CFG.with(|c| c.borrow().clone().unwrap())
}

/// Appends `n` records round-robin over topics A/B (queues 0, 1).
fn append_n(r: &mut Recovered, n: usize) -> Vec<(String, i32, i64, crate::store::AppendResult)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let i = r.commit_log.max_offset() as usize;
        let topic = if i.is_multiple_of(3) { "A" } else { "B" };
        let q = (i % 2) as i32;
        let key = (topic.to_string(), q);
        let qo = *r.topic_queue_offsets.get(&key).unwrap_or(&0);
        r.topic_queue_offsets.insert(key, qo + 1);
        let mut rec = rec(topic, q, qo, 100 + i % 300);
        let res = r.commit_log.append(&mut rec).unwrap();
        out.push((topic.to_string(), q, qo, res));
    }
    out
}

fn setup() -> (tempfile::TempDir, StoreConfig) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_cfg(dir.path());
    CFG.with(|c| *c.borrow_mut() = Some(cfg.clone()));
    (dir, cfg)
}

#[test]
fn clean_restart_keeps_everything() {
    let (_d, cfg) = setup();
    let mut r = recover(&cfg).unwrap();
    assert!(r.was_clean_shutdown);
    let flusher = Flusher::start(&cfg, &r.commit_log).unwrap();
    let recs = append_n(&mut r, 60);
    put_all(&mut r, &recs);
    for cq in r.queues.values() {
        flusher.register_queue(cq);
    }
    flusher.set_dispatched(r.commit_log.max_offset());
    let end = r.commit_log.max_offset();
    let offsets = r.topic_queue_offsets.clone();
    flusher.shutdown().unwrap();
    drop(r);

    let r2 = recover(&cfg).unwrap();
    assert!(r2.was_clean_shutdown);
    assert_eq!(r2.commit_log.max_offset(), end);
    assert_eq!(
        r2.scanned_from,
        end - end % 4096,
        "scan starts at the checkpoint's segment"
    );
    assert_eq!(r2.topic_queue_offsets, offsets);
    let reader = r2.commit_log.reader();
    for (t, q, qo, res) in &recs {
        let u = r2.queues[&(t.clone(), *q)].get(*qo).unwrap();
        assert_eq!((u.phys_offset, u.size), (res.phys_offset, res.size));
        let m = dispatch_info(&reader.read(u.phys_offset, u.size).unwrap()).unwrap();
        assert_eq!((m.topic.as_str(), m.queue_offset), (t.as_str(), *qo));
    }
    assert!(
        !checkpoint::was_clean_shutdown(&cfg),
        "abort marker while running"
    );
}

#[test]
fn crash_with_torn_tail_rebuilds_queues() {
    let (_d, cfg) = setup();
    let mut r = recover(&cfg).unwrap();
    let flusher = Flusher::start(&cfg, &r.commit_log).unwrap();
    // 50 records fully dispatched and checkpointed.
    let first = append_n(&mut r, 50);
    put_all(&mut r, &first);
    for cq in r.queues.values() {
        flusher.register_queue(cq);
    }
    flusher.set_dispatched(r.commit_log.max_offset());
    flusher.flush_all().unwrap();
    let safe = r.commit_log.max_offset();
    // 20 more, only 15 dispatched; a prepared transaction record; then a torn one.
    let second = append_n(&mut r, 20);
    put_all(&mut r, &second[..15]);
    let mut half = rec_with("TX", 0, 0, 30, sysflag::TRANSACTION_PREPARED_TYPE, 5);
    r.commit_log.append(&mut half).unwrap();
    let good_end = r.commit_log.max_offset();
    let torn = append_n(&mut r, 1);
    put_all(&mut r, &torn); // consume queue ahead of the log
    let torn_res = torn[0].3;
    drop(flusher); // crash: no shutdown, abort marker stays
    drop(r);

    // Damage the last record: cut its tail (zeros) and flip a body byte.
    let seg_start = torn_res.phys_offset - torn_res.phys_offset % 4096;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(
            cfg.commitlog_dir()
                .join(crate::store::mapped_file::file_name(seg_start)),
        )
        .unwrap();
    let pos = (torn_res.phys_offset - seg_start) as u64;
    f.write_all_at(&[0xFF], pos + 90).unwrap();
    f.write_all_at(&[0u8; 16], pos + torn_res.size as u64 - 16)
        .unwrap();
    drop(f);

    let r2 = recover(&cfg).unwrap();
    assert!(!r2.was_clean_shutdown);
    assert!(r2.scanned_from <= safe && safe - r2.scanned_from < 4096);
    assert_eq!(r2.commit_log.max_offset(), good_end);
    let reader = r2.commit_log.reader();
    assert!(reader.read_record(torn_res.phys_offset).is_none());
    // The torn bytes were zeroed.
    let raw = std::fs::read(
        cfg.commitlog_dir()
            .join(crate::store::mapped_file::file_name(seg_start)),
    )
    .unwrap();
    assert!(raw[pos as usize..].iter().all(|&b| b == 0));
    // Every good record is in its queue, the torn one is not.
    for (t, q, qo, res) in first.iter().chain(&second) {
        let u = r2.queues[&(t.clone(), *q)]
            .get(*qo)
            .unwrap_or_else(|| panic!("{t}:{q}@{qo} missing"));
        assert_eq!(u.phys_offset, res.phys_offset);
    }
    let (t, q, qo, _) = &torn[0];
    assert_eq!(r2.topic_queue_offsets[&(t.clone(), *q)], *qo);
    assert!(r2.queues[&(t.clone(), *q)].get(*qo).is_none());
    // The prepared record is stored but not dispatched.
    assert!(!r2.queues.contains_key(&("TX".to_string(), 0)));
    drop(r2);

    // Appending after recovery continues at the valid end.
    let mut r3 = recover(&cfg).unwrap();
    let more = append_n(&mut r3, 3);
    assert_eq!(more[0].3.phys_offset, good_end);
}

#[test]
fn queue_ahead_of_empty_log_is_truncated() {
    let (_d, cfg) = setup();
    let mut cq = ConsumeQueue::open(&cfg, "Q", 0).unwrap();
    for i in 0..12 {
        cq.put(i, i * 200, 200, 0).unwrap();
    }
    cq.flush().unwrap();
    drop(cq);
    let r = recover(&cfg).unwrap();
    assert_eq!(r.commit_log.max_offset(), 0);
    assert_eq!(r.topic_queue_offsets[&("Q".to_string(), 0)], 0);
}

#[test]
fn lost_queue_files_are_rebuilt_from_the_beginning() {
    let (_d, cfg) = setup();
    let mut r = recover(&cfg).unwrap();
    let flusher = Flusher::start(&cfg, &r.commit_log).unwrap();
    let recs = append_n(&mut r, 80);
    put_all(&mut r, &recs);
    for cq in r.queues.values() {
        flusher.register_queue(cq);
    }
    flusher.set_dispatched(r.commit_log.max_offset());
    flusher.shutdown().unwrap();
    let offsets = r.topic_queue_offsets.clone();
    drop(r);
    // Lose some units of queue B/1 (keep its first segment only).
    let qdir = cfg.queue_dir("B", 1).unwrap();
    for (start, path) in crate::store::mapped_file::list_segments(&qdir).unwrap() {
        if start > 0 {
            std::fs::remove_file(path).unwrap();
        }
    }
    let r2 = recover(&cfg).unwrap();
    assert_eq!(r2.topic_queue_offsets, offsets);
    for (t, q, qo, res) in &recs {
        assert_eq!(
            r2.queues[&(t.clone(), *q)].get(*qo).unwrap().phys_offset,
            res.phys_offset
        );
    }
}

#[test]
fn dispatch_info_reads_properties() {
    let mut r = rec("T", 2, 9, 10);
    crate::wire::message::patch_i64(&mut r, crate::wire::message::PHYS_OFFSET_POS, 777);
    let d = dispatch_info(&r).unwrap();
    assert_eq!((d.queue_id, d.queue_offset, d.phys_offset), (2, 9, 777));
    assert_eq!(d.tags_code, 2598919);
    assert_eq!(d.uniq_key.as_deref(), Some("U9"));
    assert_eq!(d.keys, None);
    assert!(d.should_dispatch());
    assert!(dispatch_info(&r[..50]).is_err());
}

/// Rebuilt units of parked records carry the due time as their tags code,
/// as the live path writes them.
#[test]
fn parked_records_get_their_due_time_as_tags_code() {
    use crate::wire::message::{encode_properties, encode_record, RecordSpec};
    let host = "127.0.0.1:10911".parse().unwrap();
    let enc = |topic: &str, props: &str| {
        let spec = RecordSpec {
            topic,
            queue_id: 2,
            flag: 0,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: host,
            store_timestamp: 50_000,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: b"x",
            properties: props,
        };
        let mut out = bytes::BytesMut::new();
        encode_record(&spec, &mut out).unwrap();
        out.to_vec()
    };
    let cfg = StoreConfig::default();
    let sched = enc(
        "SCHEDULE_TOPIC_XXXX",
        &encode_properties([(keys::DELAY, "3"), (keys::TAGS, "T")]),
    );
    let d = dispatch_info(&sched).unwrap();
    assert_eq!(parked_due_time(&d, &sched, &cfg), Some(50_000 + 10_000));
    let timer = enc(
        "rmq_sys_wheel_timer",
        &encode_properties([(keys::TIMER_OUT_MS, "123456")]),
    );
    let d = dispatch_info(&timer).unwrap();
    assert_eq!(parked_due_time(&d, &timer, &cfg), Some(123_456));
    let normal = enc("T", &encode_properties([(keys::DELAY, "3")]));
    let d = dispatch_info(&normal).unwrap();
    assert_eq!(parked_due_time(&d, &normal, &cfg), None);
}
