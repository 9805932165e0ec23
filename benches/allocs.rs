//! Heap allocations per request on the send path, counted.
//!
//! Starts a broker in this process, then sends pre-encoded SEND_MESSAGE_V2
//! frames (one message, and a batch of 32) over a plain blocking socket that
//! reuses one buffer, so the client side allocates nothing per request. A
//! counting global allocator reports allocations and bytes per request over
//! the measured window; background work of the broker (flusher, timers)
//! lands in the same counters but is negligible over thousands of requests.
//!
//! `cargo bench --bench allocs`

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};

use actormq::actors::broker::Broker;
use actormq::actors::server::IoPool;
use actormq::config::{BrokerConfig, ExpiryConfig};
use actormq::wire::codes::request;
use actormq::wire::headers::send::SendMessageRequestHeader;
use actormq::wire::headers::CommandHeader;
use actormq::wire::message::{encode_batch, encode_properties, BatchEntry};
use actormq::wire::RemotingCommand;
use bytes::{Bytes, BytesMut};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above with the same layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(n as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn start_broker(store: std::path::PathBuf) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sys = actix::System::new();
        sys.block_on(async move {
            let cfg = BrokerConfig {
                listen_port: 0,
                listen_addr: "127.0.0.1".into(),
                broker_ip1: "127.0.0.1".into(),
                namesrv_addr: String::new(),
                store_path_root_dir: store,
                maped_file_size_commit_log: 256 * 1024 * 1024,
                expiry: ExpiryConfig {
                    max_hash_slot_num: 50_000,
                    max_index_num: 200_000,
                    ..Default::default()
                },
                ..BrokerConfig::default()
            };
            let pool = IoPool::new(1);
            let b = Broker::start(cfg, pool).await.expect("broker starts");
            tx.send(b.addr.port()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Sends `frame` `n` times, one in flight, reading each response into `buf`.
fn round_trips(s: &mut TcpStream, frame: &[u8], n: usize, buf: &mut Vec<u8>) {
    for _ in 0..n {
        s.write_all(frame).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let len = u32::from_be_bytes(len) as usize;
        buf.resize(len, 0);
        s.read_exact(&mut buf[..len]).unwrap();
        // Response code sits in the JSON header; a cheap success check.
        assert!(
            buf.windows(8).any(|w| w == b"\"code\":0"),
            "send failed: {}",
            String::from_utf8_lossy(&buf[..len.min(300)])
        );
    }
}

fn frame(code: i32, batch: bool, body: Bytes) -> Vec<u8> {
    let props = encode_properties([("TAGS", "TagA"), ("KEYS", "k1"), ("WAIT", "true")]);
    let h = SendMessageRequestHeader {
        producer_group: "PID_allocs".into(),
        topic: "AllocTopic".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 0,
        properties: Some(props),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(batch),
        max_reconsume_times: None,
        broker_name: None,
    };
    let mut cmd = RemotingCommand::request(code);
    cmd.ext = h.to_v2().to_ext();
    let cmd = cmd.with_body(body);
    let mut out = BytesMut::new();
    cmd.encode_to(&mut out);
    out.to_vec()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let port = start_broker(dir.path().to_owned());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::with_capacity(64 * 1024);

    let one = frame(
        request::SEND_MESSAGE_V2,
        false,
        Bytes::from(vec![b'x'; 1024]),
    );
    let entries: Vec<BatchEntry> = (0..32)
        .map(|i| BatchEntry {
            flag: 0,
            body: Bytes::from(vec![b'y'; 1024]),
            properties: encode_properties([("KEYS", format!("k{i}").as_str())]),
        })
        .collect();
    let mut body = BytesMut::new();
    encode_batch(&entries, &mut body).unwrap();
    let batch = frame(request::SEND_BATCH_MESSAGE, true, body.freeze());

    let cases = [
        ("SEND_MESSAGE_V2, 1 x 1 KiB", &one, 1u64),
        ("SEND_BATCH_MESSAGE, 32 x 1 KiB", &batch, 32),
    ];
    // ALLOCS_ONLY=<substring> runs one case (e.g. under a heap profiler);
    // ALLOCS_N sets the measured requests per case.
    let only = std::env::var("ALLOCS_ONLY").unwrap_or_default();
    let n: u64 = std::env::var("ALLOCS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    for (name, f, per) in cases.into_iter().filter(|c| c.0.contains(&*only)) {
        round_trips(&mut s, f, 2_000, &mut buf); // warm up: topic, segments, buffers
        let (a0, b0) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        round_trips(&mut s, f, n as usize, &mut buf);
        let (a1, b1) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        let (da, db) = ((a1 - a0) as f64, (b1 - b0) as f64);
        println!(
            "{name}: {:.1} allocations and {:.0} bytes per request ({:.2} allocations per message)",
            da / n as f64,
            db / n as f64,
            da / (n * per) as f64
        );
    }
    std::process::exit(0);
}
