//! `bench produce`: C connections × W requests in flight each, sync
//! (request/response), one-way or batches of K, for a duration or a count.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stats::{progress, Report, Samples};
use super::target::{client_over, prepare_topic, send_request, BenchResult, Transport};
use crate::wire::codes::response;

#[derive(clap::Args, Debug, Clone)]
pub struct ProduceBench {
    /// Name server address(es).
    #[arg(short = 'n', long = "namesrv-addr", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    #[arg(short = 't', long, default_value = "BenchmarkTopic")]
    pub topic: String,
    /// Queues to create the topic with when it does not exist.
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Producer connections.
    #[arg(short = 'c', long, default_value_t = 1)]
    pub connections: usize,
    /// Requests in flight per connection.
    #[arg(short = 'w', long, default_value_t = 1)]
    pub window: usize,
    /// How each request is sent (see [`SendMode`]).
    #[arg(long, value_enum, default_value_t = SendMode::Sync)]
    pub mode: SendMode,
    /// Messages per batch (mode batch).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Seconds to run (ignored when --count is given).
    #[arg(short = 'd', long, default_value_t = 10)]
    pub duration: u64,
    /// Messages to send instead of a duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Plain TCP or TLS (not a flag: `bench tls` sets it per row; else the
    /// global `--tls` options decide).
    #[arg(skip)]
    pub transport: Transport,
}

/// The producer's send modes. On the wire, `sync` and `async` are the same
/// requests: `sync` is N blocking senders per connection, `async` one
/// pipelined sender with N outstanding requests (RocketMQ's async send with
/// its outstanding-request limit); both keep `-w` requests in flight.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    Sync,
    Async,
    Oneway,
    Batch,
}

impl SendMode {
    pub fn name(self) -> &'static str {
        match self {
            SendMode::Sync => "sync",
            SendMode::Async => "async",
            SendMode::Oneway => "oneway",
            SendMode::Batch => "batch",
        }
    }
}

/// What one producer connection sends, and where it counts the result.
#[derive(Clone)]
struct Sender {
    c: crate::client::RemotingClient,
    queues: Arc<Vec<super::target::TargetQueue>>,
    next_queue: Arc<AtomicUsize>,
    topic: String,
    body: Bytes,
    batch: usize,
    oneway: bool,
    sent: Arc<AtomicU64>,
}

impl Sender {
    /// Sends one request to the next queue (round robin) and records it.
    async fn send_one(&self, s: &mut Samples) {
        let q = &self.queues[self.next_queue.fetch_add(1, Ordering::Relaxed) % self.queues.len()];
        let req = send_request(&self.topic, q.queue_id, &self.body, self.batch, "");
        let t0 = Instant::now();
        let ok = if self.oneway {
            self.c.invoke_oneway(&q.broker_addr, req).await.is_ok()
        } else {
            matches!(self.c.invoke(&q.broker_addr, req, Duration::from_secs(10)).await,
                     Ok(r) if r.code == response::SUCCESS)
        };
        if ok {
            let n = self.batch as u64;
            s.record(t0.elapsed(), n, n * self.body.len() as u64);
            self.sent.fetch_add(n, Ordering::Relaxed);
        } else {
            s.errors += 1;
        }
    }
}

pub async fn run_produce(a: &ProduceBench) -> BenchResult<Report> {
    let queues = Arc::new(prepare_topic(&a.namesrv, &a.topic, a.queues).await?);
    let body = Bytes::from(vec![b'a'; a.size]);
    let batch = if a.mode == SendMode::Batch {
        a.batch.max(1)
    } else {
        1
    };
    let oneway = a.mode == SendMode::Oneway;
    let sent = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(AtomicU64::new(a.count.unwrap_or(u64::MAX)));
    let next_queue = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(a.duration);
    let bar = progress(format!("produce {}", a.mode.name()), sent.clone());
    let start = Instant::now();
    let counted = a.count.is_some();
    // Takes one request's worth of messages from the budget (only when
    // that many are left, never wrapping below zero), or checks the clock.
    let more = {
        let budget = budget.clone();
        move || {
            if counted {
                budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                        left.checked_sub(batch as u64)
                    })
                    .is_ok()
            } else {
                Instant::now() < deadline
            }
        }
    };
    let mut tasks = Vec::new();
    for _ in 0..a.connections.max(1) {
        let c = client_over(&a.transport);
        let sender = Sender {
            c: c.clone(),
            queues: queues.clone(),
            next_queue: next_queue.clone(),
            topic: a.topic.clone(),
            body: body.clone(),
            batch,
            oneway,
            sent: sent.clone(),
        };
        if a.mode == SendMode::Async {
            // One pipelined sender: each request completes in its own task
            // (the callback), at most `window` outstanding.
            let (window, more) = (a.window.max(1), more.clone());
            tasks.push(tokio::spawn(async move {
                let permits = Arc::new(tokio::sync::Semaphore::new(window));
                let samples = Arc::new(std::sync::Mutex::new(Samples::default()));
                while more() {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        break;
                    };
                    let (sender, samples) = (sender.clone(), samples.clone());
                    tokio::spawn(async move {
                        let mut s = Samples::default();
                        sender.send_one(&mut s).await;
                        if let Ok(mut all) = samples.lock() {
                            all.merge(s);
                        }
                        drop(permit);
                    });
                }
                // Wait for the outstanding ones.
                let _ = permits.acquire_many(window as u32).await;
                let taken = match samples.lock() {
                    Ok(mut all) => std::mem::take(&mut *all),
                    Err(_) => Samples::default(),
                };
                taken
            }));
            continue;
        }
        for _ in 0..a.window.max(1) {
            let (sender, more) = (sender.clone(), more.clone());
            tasks.push(tokio::spawn(async move {
                let mut s = Samples::default();
                while more() {
                    sender.send_one(&mut s).await;
                }
                s
            }));
        }
    }
    let all = super::stats::join_samples(tasks).await;
    let elapsed = start.elapsed();
    bar.abort();
    let flush = super::target::flush_mode(&queues[0].broker_addr).await;
    let notes = format!(
        "{} B, {} conn x {} in flight, {}{}, target {}",
        a.size,
        a.connections,
        a.window,
        a.mode.name(),
        if batch > 1 {
            format!(" of {batch}")
        } else {
            String::new()
        },
        flush
    );
    Ok(Report::from_samples(
        &format!("produce {}", a.mode.name()),
        all,
        elapsed,
        notes,
    ))
}
