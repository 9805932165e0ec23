//! Micro-benchmarks of the store: commit-log append into the mapped file,
//! zero-copy read, consume-queue lookup.
use actormq::store::{CommitLog, ConsumeQueue, StoreConfig};
use actormq::wire::message::{self, RecordSpec};
use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn record(body: &[u8]) -> Vec<u8> {
    let host = "127.0.0.1:10911".parse().unwrap();
    let spec = RecordSpec {
        topic: "BenchTopic",
        queue_id: 0,
        flag: 0,
        sys_flag: 0,
        born_timestamp: 1,
        born_host: host,
        store_timestamp: 2,
        store_host: host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body,
        properties: "TAGS\u{1}TagA\u{2}",
    };
    let mut out = BytesMut::new();
    message::encode_record(&spec, &mut out).unwrap();
    out.to_vec()
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::with_root(dir.path());
    cfg.commitlog_file_size = 256 << 20;
    cfg.preallocate = false;
    let rec = record(&[b'z'; 1024]);
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    // Each sample appends into a fresh log, so every iteration really
    // writes (crossing segments as the sample grows).
    g.bench_function("commitlog_append_1k_mmap", |b| {
        b.iter_custom(|iters| {
            let d = tempfile::tempdir().unwrap();
            let mut cfg = StoreConfig::with_root(d.path());
            cfg.commitlog_file_size = 64 << 20;
            let mut log = CommitLog::open(&cfg).unwrap();
            let mut buf = rec.clone();
            let start = std::time::Instant::now();
            for _ in 0..iters {
                buf.copy_from_slice(&rec);
                black_box(log.append(&mut buf).unwrap());
            }
            start.elapsed()
        })
    });
    let mut log = CommitLog::open(&cfg).unwrap();
    let mut buf = rec.clone();
    let last = log.append(&mut buf).unwrap().phys_offset;
    let reader = log.reader();
    g.bench_function("commitlog_read_slice", |b| {
        b.iter(|| black_box(reader.read(last, rec.len() as i32)))
    });
    let mut cq = ConsumeQueue::open(&cfg, "BenchTopic", 0).unwrap();
    for i in 0..100_000i64 {
        cq.put(i, i * 1100, 1100, 42).unwrap();
    }
    g.bench_function("consume_queue_read_32", |b| {
        let mut i = 0i64;
        b.iter(|| {
            i = (i + 7919) % 99_000;
            black_box(cq.read_units(i, 32))
        })
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
