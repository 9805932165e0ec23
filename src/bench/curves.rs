//! Cost curves: how throughput and latency change as the work grows —
//! message size, queues written at once, producer connections — and the
//! name server's route lookup with a large route table.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::produce::{run_produce, ProduceBench};
use super::stats::{Report, Samples};
use super::target::{client, BenchResult};
use crate::wire::bodies::{
    perm, DataVersion, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper,
};
use crate::wire::codes::{request, response};
use crate::wire::headers::namesrv::RegisterBrokerRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

#[derive(clap::Args, Debug, Clone)]
pub struct CurvesArgs {
    #[arg(short = 'n', long = "namesrv-addr", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Seconds per point.
    #[arg(short = 'd', long, default_value_t = 3)]
    pub duration: u64,
    /// Which curves: size,queues,connections (comma separated).
    #[arg(long, default_value = "size,queues,connections")]
    pub which: String,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

pub async fn run_curves(a: &CurvesArgs) -> BenchResult<Vec<Report>> {
    let mut rows = Vec::new();
    let tag = crate::wire::now_ms() % 1_000_000;
    let base = ProduceBench {
        namesrv: a.namesrv.clone(),
        topic: String::new(),
        queues: 8,
        size: 1024,
        connections: 1,
        window: 16,
        mode: super::produce::SendMode::Sync,
        batch: 1,
        duration: a.duration,
        count: None,
        json: None,
        transport: Default::default(),
    };
    if a.which.contains("size") {
        for size in [128usize, 1024, 4096, 16384, 65536] {
            let mut r = run_produce(&ProduceBench {
                topic: format!("CurveSize{tag}"),
                size,
                ..base.clone()
            })
            .await?;
            r.name = format!("size {size} B");
            rows.push(r);
        }
    }
    if a.which.contains("queues") {
        for queues in [1i32, 10, 100, 1000] {
            let mut r = run_produce(&ProduceBench {
                topic: format!("CurveQ{queues}x{tag}"),
                queues,
                size: 1024,
                window: 64,
                ..base.clone()
            })
            .await?;
            r.name = format!("{queues} queues");
            rows.push(r);
        }
    }
    if a.which.contains("connections") {
        for conns in [1usize, 4, 16, 64, 256] {
            let mut r = run_produce(&ProduceBench {
                topic: format!("CurveConn{tag}"),
                connections: conns,
                window: 1,
                ..base.clone()
            })
            .await?;
            r.name = format!("{conns} connections x 1");
            rows.push(r);
        }
    }
    Ok(rows)
}

#[derive(clap::Args, Debug, Clone)]
pub struct RoutesArgs {
    #[arg(short = 'n', long = "namesrv-addr", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    #[arg(long, default_value_t = 1000)]
    pub topics: usize,
    #[arg(long, default_value_t = 10)]
    pub brokers: usize,
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    #[arg(short = 'w', long, default_value_t = 16)]
    pub window: usize,
    #[arg(short = 'd', long, default_value_t = 5)]
    pub duration: u64,
}

/// Registers `brokers` synthetic brokers, each with `topics` topics of
/// `queues` queues, then looks routes up as fast as `window` callers can.
pub async fn run_routes(a: &RoutesArgs) -> BenchResult<Report> {
    let c = client();
    let t_reg = Instant::now();
    for b in 0..a.brokers {
        let table: BTreeMap<String, TopicConfig> = (0..a.topics)
            .map(|t| {
                let name = format!("RouteBench{t}");
                (
                    name.clone(),
                    TopicConfig::new(&name, a.queues, perm::READ | perm::WRITE),
                )
            })
            .collect();
        let body = RegisterBrokerBody {
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                topic_config_table: table,
                data_version: DataVersion::now(),
            },
            filter_server_list: vec![],
        };
        let mut cmd = RemotingCommand::request(request::REGISTER_BROKER);
        RegisterBrokerRequestHeader {
            broker_name: format!("bench-broker-{b}"),
            broker_addr: format!("10.255.0.{}:10911", b + 1),
            cluster_name: "BenchCluster".into(),
            ha_server_addr: String::new(),
            broker_id: 0,
            heartbeat_timeout_millis: Some(600_000),
            enable_acting_master: Some(false),
            compressed: false,
            body_crc32: 0,
        }
        .write_ext(&mut cmd.ext);
        let r = c
            .invoke(
                &a.namesrv,
                cmd.with_body(serde_json::to_vec(&body)?),
                Duration::from_secs(30),
            )
            .await?;
        if r.code != response::SUCCESS {
            return Err(format!("register failed: {:?}", r.remark).into());
        }
    }
    let reg_ms = t_reg.elapsed().as_secs_f64() * 1000.0;
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(a.duration);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..a.window.max(1) {
        let (c, ns, done, topics) = (c.clone(), a.namesrv.clone(), done.clone(), a.topics);
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            let mut i = w;
            while Instant::now() < deadline {
                let cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
                    .with_ext("topic", format!("RouteBench{}", i % topics));
                i += 7;
                let t0 = Instant::now();
                match c.invoke(&ns, cmd, Duration::from_secs(5)).await {
                    Ok(r) if r.code == response::SUCCESS => {
                        s.record(t0.elapsed(), 1, r.body_len() as u64);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => s.errors += 1,
                }
            }
            s
        }));
    }
    let all = super::stats::join_samples(tasks).await;
    Ok(Report::from_samples(
        "route lookup",
        all,
        start.elapsed(),
        format!(
            "{} topics x {} queues x {} brokers; registering all took {:.0} ms",
            a.topics, a.queues, a.brokers, reg_ms
        ),
    ))
}
