//! Micro-benchmarks of the wire hot paths: frame decode/encode, stored
//! record encode/decode, properties parsing.
use actormq::wire::headers::send::{SendMessageRequestHeader, SendMessageRequestHeaderRef};
use actormq::wire::message::{self, RecordSpec};
use actormq::wire::{FrameCodec, RemotingCommand};
use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tokio_util::codec::Decoder;

fn send_request() -> RemotingCommand {
    let mut cmd = RemotingCommand::request(actormq::wire::codes::request::SEND_MESSAGE_V2);
    for (k, v) in [
        ("a", "PID_bench"), ("b", "BenchTopic"), ("c", "TBW102"), ("d", "4"), ("e", "3"), ("f", "0"),
        ("g", "1700000000000"), ("h", "0"), ("i", "TAGS\u{1}TagA\u{2}KEYS\u{1}k1\u{2}UNIQ_KEY\u{1}7F0000010001000000000000000A\u{2}WAIT\u{1}true\u{2}"),
        ("j", "0"), ("k", "false"), ("m", "false"),
    ] {
        cmd.ext.insert(k, v);
    }
    cmd.with_body(Bytes::from(vec![b'x'; 1024]))
}

fn frames(c: &mut Criterion) {
    let cmd = send_request();
    let mut encoded = BytesMut::new();
    cmd.encode_to(&mut encoded);
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_json_send_1k", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            out.clear();
            black_box(&cmd).encode_to(&mut out);
        })
    });
    g.bench_function("decode_json_send_1k", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&encoded[..]);
            black_box(FrameCodec::default().decode(&mut buf).ok())
        })
    });
    let hl = u32::from_be_bytes(encoded[4..8].try_into().unwrap()) as usize;
    let header = encoded[8..8 + hl].to_vec();
    g.bench_function("json_header_fast", |b| {
        b.iter(|| black_box(actormq::wire::json_header::decode(black_box(&header))))
    });
    g.bench_function("json_header_general", |b| {
        b.iter(|| black_box(actormq::wire::command::decode_json_general(black_box(&header)).ok()))
    });
    g.bench_function("decode_send_header_v2", |b| {
        b.iter(|| black_box(SendMessageRequestHeader::decode(310, &cmd.ext).ok()))
    });
    g.bench_function("decode_send_header_v2_borrowed", |b| {
        b.iter(|| black_box(SendMessageRequestHeaderRef::decode(310, &cmd.ext).ok()))
    });
    g.finish();
}

fn records(c: &mut Criterion) {
    let body = vec![b'y'; 1024];
    let props = "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}UNIQ_KEY\u{1}7F0000010001000000000000000A\u{2}CLUSTER\u{1}DefaultCluster\u{2}";
    let host = "127.0.0.1:10911".parse().unwrap();
    let spec = RecordSpec {
        topic: "BenchTopic",
        queue_id: 1,
        flag: 0,
        sys_flag: 0,
        born_timestamp: 1,
        born_host: host,
        store_timestamp: 2,
        store_host: host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: &body,
        properties: props,
    };
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_1k", |b| {
        let mut out = BytesMut::with_capacity(2048);
        b.iter(|| {
            out.clear();
            message::encode_record(black_box(&spec), &mut out).unwrap();
        })
    });
    let mut one = BytesMut::new();
    message::encode_record(&spec, &mut one).unwrap();
    let one = one.freeze();
    g.bench_function("decode_1k", |b| {
        b.iter(|| black_box(message::decode_record(&one, 0, false).ok()))
    });
    g.bench_function("properties_lookup", |b| {
        b.iter(|| black_box(message::property(props, "UNIQ_KEY")))
    });
    g.bench_function("properties_decode", |b| {
        b.iter(|| black_box(message::decode_properties(props)))
    });
    g.finish();
}

criterion_group!(benches, frames, records);
criterion_main!(benches);
