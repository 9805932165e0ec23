//! `bench pop`: POP receive + ack throughput (RocketMQ 5.x POP). The topic
//! is preloaded with `--count` messages (batch sends), then `--consumers`
//! loops each POP up to `--batch` messages from any queue
//! (POP_MESSAGE, `queueId=-1`) and acks them in one BATCH_ACK_MESSAGE,
//! until everything was received. Latency is per POP + ack cycle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::consume::walk_records;
use super::produce::{run_produce, ProduceBench, SendMode};
use super::stats::{progress, Report, Samples};
use super::target::{client, prepare_topic, BenchResult};
use crate::client::RemotingClient;
use crate::wire::codes::{request, response};
use crate::wire::pop::{BatchAckBody, BatchAckEntry};
use crate::wire::RemotingCommand;

#[derive(clap::Args, Debug, Clone)]
pub struct PopBench {
    #[arg(short = 'n', long = "namesrv-addr", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    #[arg(short = 't', long, default_value = "BenchmarkPop")]
    pub topic: String,
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Messages preloaded, then received.
    #[arg(long, default_value_t = 200_000)]
    pub count: u64,
    /// Concurrent POP loops.
    #[arg(short = 'c', long, default_value_t = 8)]
    pub consumers: usize,
    /// maxMsgNums per POP (at most 32).
    #[arg(long, default_value_t = 32)]
    pub batch: i32,
    #[arg(long, default_value_t = 60_000)]
    pub invisible_ms: i64,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One consumer's target.
#[derive(Clone)]
struct Target {
    addr: String,
    broker_name: String,
    topic: String,
    group: String,
    batch: i32,
    invisible_ms: i64,
}

fn pop_request(t: &Target) -> RemotingCommand {
    RemotingCommand::request(request::POP_MESSAGE)
        .with_ext("consumerGroup", t.group.as_str())
        .with_ext("topic", t.topic.as_str())
        .with_ext("queueId", -1)
        .with_ext("maxMsgNums", t.batch)
        .with_ext("invisibleTime", t.invisible_ms)
        .with_ext("pollTime", 0)
        .with_ext("bornTime", crate::wire::now_ms())
        .with_ext("initMode", 0)
        .with_ext("expType", "TAG")
        .with_ext("exp", "*")
}

/// The BATCH_ACK_MESSAGE body acking everything a POP response listed
/// (`startOffsetInfo` / `msgOffsetInfo`, as RocketMQ's client reads them).
fn batch_ack_body(t: &Target, r: &RemotingCommand) -> Option<Bytes> {
    let field = |k: &str| r.ext.get(k).map(str::to_owned);
    let num = |k: &str| field(k).and_then(|v| v.parse::<i64>().ok());
    let (pop_time, invisible, revive_qid) =
        (num("popTime")?, num("invisibleTime")?, num("reviveQid")?);
    let mut starts = HashMap::new();
    for e in field("startOffsetInfo")?.split(';') {
        let f: Vec<&str> = e.split(' ').collect();
        if let [ty, q, so] = f[..] {
            starts.insert((ty.to_owned(), q.to_owned()), so.parse::<i64>().ok()?);
        }
    }
    let mut acks = Vec::new();
    for e in field("msgOffsetInfo")?.split(';') {
        let f: Vec<&str> = e.split(' ').collect();
        let [ty, q, list] = f[..] else { continue };
        let so = *starts.get(&(ty.to_owned(), q.to_owned()))?;
        let offsets: Vec<i64> = list.split(',').filter_map(|o| o.parse().ok()).collect();
        acks.push(BatchAckEntry {
            group: t.group.clone(),
            topic: t.topic.clone(),
            retry: ty.to_owned(),
            start_offset: so,
            queue_id: q.parse().ok()?,
            revive_qid: revive_qid as i32,
            pop_time,
            invisible_ms: invisible,
            bits: BatchAckEntry::encode_bits(so, &offsets),
        });
    }
    let body = BatchAckBody {
        broker_name: t.broker_name.clone(),
        acks,
    };
    serde_json::to_vec(&body).ok().map(Bytes::from)
}

/// POP + ack until `want` messages arrived in all or the broker stays empty.
async fn consume(c: RemotingClient, t: Target, got: Arc<AtomicU64>, want: u64) -> Samples {
    let mut s = Samples::default();
    let mut empties = 0;
    while got.load(Ordering::Relaxed) < want && empties < 20 {
        let t0 = Instant::now();
        let r = match c
            .invoke(&t.addr, pop_request(&t), Duration::from_secs(10))
            .await
        {
            Ok(r) => r,
            Err(_) => {
                s.errors += 1;
                continue;
            }
        };
        if r.code != response::SUCCESS {
            empties += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        empties = 0;
        let mut bytes = 0u64;
        let n = walk_records(&r.body_bytes(), |b| bytes += b.len() as u64);
        let Some(body) = batch_ack_body(&t, &r) else {
            s.errors += 1;
            continue;
        };
        let ack = RemotingCommand::request(request::BATCH_ACK_MESSAGE).with_body(body);
        match c.invoke(&t.addr, ack, Duration::from_secs(10)).await {
            Ok(a) if a.code == response::SUCCESS => {
                s.record(t0.elapsed(), n, bytes);
                got.fetch_add(n, Ordering::Relaxed);
            }
            _ => s.errors += 1,
        }
    }
    s
}

pub async fn run_pop(a: &PopBench) -> BenchResult<Report> {
    let group = format!("BENCH_POP_{}", crate::wire::now_ms() % 1_000_000);
    run_produce(&ProduceBench {
        namesrv: a.namesrv.clone(),
        topic: a.topic.clone(),
        queues: a.queues,
        size: a.size,
        connections: 1,
        window: 4,
        mode: SendMode::Batch,
        batch: 32,
        duration: 0,
        count: Some(a.count),
        json: None,
        transport: Default::default(),
    })
    .await?;
    let queues = prepare_topic(&a.namesrv, &a.topic, a.queues).await?;
    let mut brokers: Vec<(String, String)> = queues
        .iter()
        .map(|q| (q.broker_addr.clone(), q.broker_name.clone()))
        .collect();
    brokers.sort();
    brokers.dedup();
    let got = Arc::new(AtomicU64::new(0));
    let bar = progress("pop+ack".into(), got.clone());
    let c = client();
    let start = Instant::now();
    let tasks: Vec<_> = (0..a.consumers.max(1))
        .map(|i| {
            let (addr, broker_name) = brokers[i % brokers.len()].clone();
            let t = Target {
                addr,
                broker_name,
                topic: a.topic.clone(),
                group: group.clone(),
                batch: a.batch.clamp(1, 32),
                invisible_ms: a.invisible_ms,
            };
            tokio::spawn(consume(c.clone(), t, got.clone(), a.count))
        })
        .collect();
    let all = super::stats::join_samples(tasks).await;
    let elapsed = start.elapsed();
    bar.abort();
    Ok(Report::from_samples(
        "pop receive + batch ack",
        all,
        elapsed,
        format!(
            "{} consumers, maxMsgNums {}, {} B, queueId -1, latency per pop+ack",
            a.consumers, a.batch, a.size
        ),
    ))
}
