//! `bench produce`: C connections × W requests in flight each, sync
//! (request/response), one-way or batches of K, for a duration or a count.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stats::{progress, Report, Samples};
use super::target::{client, prepare_topic, send_request, BenchResult};
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
    /// sync | oneway | batch
    #[arg(long, default_value = "sync")]
    pub mode: String,
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
}

pub async fn run_produce(a: &ProduceBench) -> BenchResult<Report> {
    let queues = Arc::new(prepare_topic(&a.namesrv, &a.topic, a.queues).await?);
    let body = Bytes::from(vec![b'a'; a.size]);
    let batch = if a.mode == "batch" { a.batch.max(1) } else { 1 };
    let oneway = a.mode == "oneway";
    let sent = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(AtomicU64::new(a.count.unwrap_or(u64::MAX)));
    let next_queue = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(a.duration);
    let bar = progress(format!("produce {}", a.mode), sent.clone());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.connections.max(1) {
        let c = client();
        for _ in 0..a.window.max(1) {
            let (c, queues, body, sent, budget, next_queue) = (
                c.clone(),
                queues.clone(),
                body.clone(),
                sent.clone(),
                budget.clone(),
                next_queue.clone(),
            );
            let topic = a.topic.clone();
            let counted = a.count.is_some();
            tasks.push(tokio::spawn(async move {
                let mut s = Samples::default();
                loop {
                    if counted {
                        // Take `batch` messages from the budget only when
                        // that many are left (never wrap below zero).
                        let n = batch as u64;
                        let took =
                            budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                                left.checked_sub(n)
                            });
                        if took.is_err() {
                            break;
                        }
                    } else if Instant::now() >= deadline {
                        break;
                    }
                    let q = &queues[next_queue.fetch_add(1, Ordering::Relaxed) % queues.len()];
                    let req = send_request(&topic, q.queue_id, &body, batch, "");
                    let t0 = Instant::now();
                    let ok = if oneway {
                        c.invoke_oneway(&q.broker_addr, req).await.is_ok()
                    } else {
                        matches!(c.invoke(&q.broker_addr, req, Duration::from_secs(10)).await,
                                 Ok(r) if r.code == response::SUCCESS)
                    };
                    if ok {
                        s.record(t0.elapsed(), batch as u64, (batch * body.len()) as u64);
                        sent.fetch_add(batch as u64, Ordering::Relaxed);
                    } else {
                        s.errors += 1;
                    }
                }
                s
            }));
        }
    }
    let mut all = Samples::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.merge(s);
        }
    }
    let elapsed = start.elapsed();
    bar.abort();
    let flush = super::target::flush_mode(&queues[0].broker_addr).await;
    let notes = format!(
        "{} B, {} conn x {} in flight, {}{}, target {}",
        a.size,
        a.connections,
        a.window,
        a.mode,
        if batch > 1 {
            format!(" of {batch}")
        } else {
            String::new()
        },
        flush
    );
    Ok(Report::from_samples(
        &format!("produce {}", a.mode),
        all,
        elapsed,
        notes,
    ))
}
