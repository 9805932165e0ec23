//! `bench offsets-load`: send latency while the broker persists the
//! consumer offsets of many groups (`consumerOffset.json`, RocketMQ's
//! `ConsumerOffsetManager`, every `flushConsumerOffsetInterval`).
//!
//! It commits one offset for each of `groups` consumer groups (so the table
//! the broker snapshots holds them all), then runs the plain sync send row
//! while a background task keeps committing offsets of random groups, so
//! every persist interval has a dirty table of that size to write. The row
//! is meant to be read against the plain send row of the same run (the
//! suite prints both): persistence must not show up in send latency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::produce::{run_produce, ProduceBench};
use super::stats::Report;
use super::target::{client, prepare_topic, BenchResult};
use crate::wire::codes::request;
use crate::wire::headers::offset::UpdateConsumerOffsetRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

#[derive(clap::Args, Debug, Clone)]
pub struct OffsetsLoadBench {
    #[arg(short = 'n', long = "namesrv-addr", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    #[arg(short = 't', long, default_value = "BenchOffsetsTopic")]
    pub topic: String,
    /// Consumer groups with committed offsets.
    #[arg(long, default_value_t = 10_000)]
    pub groups: usize,
    /// Offset commits per second while the send row runs.
    #[arg(long, default_value_t = 2_000)]
    pub commit_rate: u64,
    #[arg(short = 'd', long, default_value_t = 10)]
    pub duration: u64,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

fn commit_cmd(topic: &str, group: usize, queue_id: i32, offset: i64) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET);
    cmd.ext = UpdateConsumerOffsetRequestHeader {
        consumer_group: format!("bench_offsets_cg_{group}"),
        topic: topic.to_owned(),
        queue_id,
        commit_offset: offset,
    }
    .to_ext();
    cmd
}

pub async fn run_offsets_load(a: &OffsetsLoadBench) -> BenchResult<Report> {
    let queues = prepare_topic(&a.namesrv, &a.topic, 8).await?;
    let broker = queues
        .first()
        .map(|q| q.broker_addr.clone())
        .ok_or("no queue for the offsets topic")?;
    let c = client();
    // Fill the table: one acknowledged commit per group (windows of 64).
    let groups = a.groups.max(1);
    for chunk in (0..groups).collect::<Vec<_>>().chunks(64) {
        let calls = chunk.iter().map(|&g| {
            let cmd = commit_cmd(&a.topic, g, (g % 8) as i32, 1);
            c.invoke(&broker, cmd, Duration::from_secs(10))
        });
        for r in futures_util::future::join_all(calls).await {
            r?;
        }
    }
    // Keep the table dirty while the send row runs.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (stop, c, broker, topic) = (stop.clone(), c.clone(), broker.clone(), a.topic.clone());
        let every = Duration::from_micros(1_000_000 / a.commit_rate.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut n: usize = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n = n.wrapping_add(7919);
                let g = n % groups;
                let _ = c
                    .invoke_oneway(&broker, commit_cmd(&topic, g, (g % 8) as i32, n as i64))
                    .await;
            }
        })
    };
    let r = run_produce(&ProduceBench {
        namesrv: a.namesrv.clone(),
        topic: format!("{}Send", a.topic),
        queues: 8,
        size: 1024,
        connections: 1,
        window: 1,
        mode: super::produce::SendMode::Sync,
        batch: 32,
        duration: a.duration,
        count: None,
        json: None,
        transport: Default::default(),
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = churn.await;
    let mut r = r?;
    r.name = format!("send w1 + offsets of {groups} groups persisting");
    r.notes = format!("{} commits/s churn; {}", a.commit_rate, r.notes);
    Ok(r)
}
