//! `bench consume` (catch-up: pull everything stored, one pull in flight per
//! queue) and `bench e2e` (produce at a fixed rate while long-polling
//! consumers receive; latency = receive time − send time, one clock).

use bytes::{Buf, Bytes};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stats::{progress, Report, Samples};
use super::target::{client, prepare_topic, send_request, BenchResult, TargetQueue};
use crate::client::RemotingClient;
use crate::wire::codes::{request, response};
use crate::wire::RemotingCommand;

#[derive(clap::Args, Debug, Clone)]
pub struct ConsumeBench {
    #[arg(short = 'n', long = "namesrv-addr", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    #[arg(short = 't', long, default_value = "BenchmarkTopic")]
    pub topic: String,
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    /// maxMsgNums per pull.
    #[arg(long, default_value_t = 32)]
    pub pull_batch: i32,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct E2eBench {
    #[arg(short = 'n', long = "namesrv-addr", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    #[arg(short = 't', long, default_value = "BenchmarkE2E")]
    pub topic: String,
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Target send rate, messages per second.
    #[arg(long, default_value_t = 6000)]
    pub rate: u64,
    #[arg(short = 'd', long, default_value_t = 10)]
    pub duration: u64,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

fn pull_request(topic: &str, q: i32, offset: i64, max: i32, suspend_ms: i64) -> RemotingCommand {
    RemotingCommand::request(request::PULL_MESSAGE)
        .with_ext("consumerGroup", "BENCH_CONSUMER")
        .with_ext("topic", topic)
        .with_ext("queueId", q)
        .with_ext("queueOffset", offset)
        .with_ext("maxMsgNums", max)
        // FLAG_SUBSCRIPTION (0x4): the subscription travels with the pull,
        // so a broker needs no heartbeat of the group first (Java answers
        // SUBSCRIPTION_NOT_EXIST without it); FLAG_SUSPEND (0x2) to hold.
        .with_ext("sysFlag", if suspend_ms > 0 { 0x4 | 0x2 } else { 0x4 })
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", suspend_ms)
        .with_ext("subscription", "*")
        .with_ext("subVersion", 0)
        .with_ext("expressionType", "TAG")
}

/// Walks the stored records of a pull body: (count, bytes, first 8 body
/// bytes of each record via `each`).
pub(super) fn walk_records(body: &Bytes, mut each: impl FnMut(&[u8])) -> u64 {
    let mut pos = 0usize;
    let mut n = 0;
    while pos + 4 <= body.len() {
        let size = (&body[pos..pos + 4]).get_i32() as usize;
        if size < 91 || pos + size > body.len() {
            break;
        }
        let rec = &body[pos..pos + size];
        // BODYLEN sits at 84 for IPv4 hosts (sysflag bits 0x10/0x20 clear).
        let sys = i32::from_be_bytes([rec[36], rec[37], rec[38], rec[39]]);
        let mut at = 84usize;
        if sys & 0x10 != 0 {
            at += 12;
        }
        if sys & 0x20 != 0 {
            at += 12;
        }
        if at + 4 <= rec.len() {
            let bl = i32::from_be_bytes([rec[at], rec[at + 1], rec[at + 2], rec[at + 3]]) as usize;
            if at + 4 + bl <= rec.len() {
                each(&rec[at + 4..at + 4 + bl]);
            }
        }
        pos += size;
        n += 1;
    }
    n
}

async fn offsets(c: &RemotingClient, topic: &str, q: &TargetQueue, code: i32) -> i64 {
    let cmd = RemotingCommand::request(code)
        .with_ext("topic", topic)
        .with_ext("queueId", q.queue_id);
    match c.invoke(&q.broker_addr, cmd, Duration::from_secs(3)).await {
        Ok(r) if r.code == response::SUCCESS => r
            .ext
            .get("offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

pub async fn run_consume(a: &ConsumeBench) -> BenchResult<Report> {
    let queues = prepare_topic(&a.namesrv, &a.topic, a.queues).await?;
    let c = client();
    let got = Arc::new(AtomicU64::new(0));
    let bar = progress("consume".into(), got.clone());
    let mut plan = Vec::new();
    for q in &queues {
        let min = offsets(&c, &a.topic, q, request::GET_MIN_OFFSET).await;
        let max = offsets(&c, &a.topic, q, request::GET_MAX_OFFSET).await;
        plan.push((q.clone(), min, max));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (q, min, max) in plan {
        let (c, got, topic, batch) = (c.clone(), got.clone(), a.topic.clone(), a.pull_batch);
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            let mut off = min;
            while off < max {
                let t0 = Instant::now();
                match c
                    .invoke(
                        &q.broker_addr,
                        pull_request(&topic, q.queue_id, off, batch, 0),
                        Duration::from_secs(10),
                    )
                    .await
                {
                    Ok(r) if r.code == response::SUCCESS => {
                        let body = r.body_bytes();
                        let mut bytes = 0u64;
                        let n = walk_records(&body, |b| bytes += b.len() as u64);
                        s.record(t0.elapsed(), n, bytes);
                        got.fetch_add(n, Ordering::Relaxed);
                        off = r
                            .ext
                            .get("nextBeginOffset")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(off + n as i64);
                    }
                    Ok(r) => {
                        let next: i64 = r
                            .ext
                            .get("nextBeginOffset")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(off);
                        if next <= off {
                            break;
                        }
                        off = next;
                    }
                    Err(_) => {
                        s.errors += 1;
                        break;
                    }
                }
            }
            s
        }));
    }
    let all = super::stats::join_samples(tasks).await;
    let elapsed = start.elapsed();
    bar.abort();
    Ok(Report::from_samples(
        "consume catch-up",
        all,
        elapsed,
        format!("pull batch {}, latency per pull", a.pull_batch),
    ))
}

pub async fn run_e2e(a: &E2eBench) -> BenchResult<Report> {
    let queues = Arc::new(prepare_topic(&a.namesrv, &a.topic, a.queues).await?);
    let epoch = Instant::now();
    let c = client();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Consumers: one long-polling loop per queue, starting at the max offset.
    let mut consumers = Vec::new();
    for q in queues.iter() {
        let start_off = offsets(&c, &a.topic, q, request::GET_MAX_OFFSET).await;
        let (c, q, topic, received, stop) = (
            c.clone(),
            q.clone(),
            a.topic.clone(),
            received.clone(),
            stop.clone(),
        );
        consumers.push(tokio::spawn(async move {
            let mut s = Samples::default();
            let mut off = start_off;
            while !stop.load(Ordering::Relaxed) {
                let r = c
                    .invoke(
                        &q.broker_addr,
                        pull_request(&topic, q.queue_id, off, 32, 1000),
                        Duration::from_secs(5),
                    )
                    .await;
                let now = epoch.elapsed().as_micros() as u64;
                match r {
                    Ok(r) if r.code == response::SUCCESS => {
                        let body = r.body_bytes();
                        let n = walk_records(&body, |b| {
                            if b.len() >= 8 {
                                let sent = u64::from_be_bytes([
                                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                                ]);
                                s.record(
                                    Duration::from_micros(now.saturating_sub(sent)),
                                    1,
                                    b.len() as u64,
                                );
                            }
                        });
                        received.fetch_add(n, Ordering::Relaxed);
                        off = r
                            .ext
                            .get("nextBeginOffset")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(off + n as i64);
                    }
                    Ok(r) => {
                        off = r
                            .ext
                            .get("nextBeginOffset")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(off);
                    }
                    Err(_) => s.errors += 1,
                }
            }
            s
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bar = progress("e2e received".into(), received.clone());
    // Producer: paced sync sends; enough in flight to hold the rate.
    let deadline = Instant::now() + Duration::from_secs(a.duration);
    let interval = Duration::from_nanos(1_000_000_000 / a.rate.max(1));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut i = 0usize;
    let mut sent = 0u64;
    let mut inflight = tokio::task::JoinSet::new();
    while Instant::now() < deadline {
        ticker.tick().await;
        let q = queues[i % queues.len()].clone();
        i += 1;
        let mut body = vec![b'e'; a.size.max(8)];
        body[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
        let req = send_request(&a.topic, q.queue_id, &Bytes::from(body), 1, "");
        let c = c.clone();
        inflight.spawn(async move {
            c.invoke(&q.broker_addr, req, Duration::from_secs(5))
                .await
                .is_ok()
        });
        sent += 1;
        while let Some(r) = inflight.try_join_next() {
            let _ = r;
        }
    }
    while inflight.join_next().await.is_some() {}
    // Let the consumers drain.
    let drain_until = Instant::now() + Duration::from_secs(3);
    while received.load(Ordering::Relaxed) < sent && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    bar.abort();
    let mut all = super::stats::join_samples(consumers).await;
    all.errors += sent.saturating_sub(all.msgs);
    Ok(Report::from_samples(
        "e2e produce->consume",
        all,
        Duration::from_secs(a.duration),
        format!("target {} msg/s, {} B, long polling", a.rate, a.size),
    ))
}
