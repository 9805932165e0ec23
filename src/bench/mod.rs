//! `actormq bench`: load generators for any RocketMQ-compatible cluster
//! (through its name server), a loopback echo baseline, and a `suite` that
//! runs the target rows in one go so ratios come from one run;
//! `tls` puts plaintext and TLS rows side by side against one permissive
//! server (RocketMQ's `tls.server.mode=permissive`).

pub mod consume;
pub mod curves;
pub mod echo;
pub mod failover;
pub mod grpc;
pub mod offsets_load;
pub mod pair;
pub mod pop;
pub mod produce;
pub mod replication;
pub mod stats;
pub mod target;
pub mod tls;

use clap::Subcommand;

use stats::{print_table, write_json, Report};
pub use target::BenchResult;

#[derive(Subcommand, Debug, Clone)]
pub enum BenchCmd {
    /// Send load: sync / one-way / batch, C connections x W in flight.
    Produce(grpc::ProduceCmd),
    /// Receive + ack through the 5.x gRPC proxy until the topic is drained.
    GrpcReceive(grpc::ReceiveBench),
    /// Pull everything stored in the topic as fast as possible.
    Consume(consume::ConsumeBench),
    /// POP receive + batch ack of a preloaded topic (RocketMQ 5.x POP).
    Pop(pop::PopBench),
    /// Produce at a fixed rate and measure produce -> consume latency.
    E2e(consume::E2eBench),
    /// Loopback baseline: remoting frames echoed by a plain TCP server.
    Echo(echo::EchoBench),
    /// The standard rows (1 in flight, 64 in flight, batch 32, catch-up,
    /// e2e at 6 K msg/s) plus the loopback baseline, in one run.
    Suite(SuiteArgs),
    /// Throughput vs message size, queues and connections.
    Curves(curves::CurvesArgs),
    /// Name-server route lookups with a large synthetic route table.
    Routes(curves::RoutesArgs),
    /// Sync send latency while the offsets of many groups persist.
    OffsetsLoad(offsets_load::OffsetsLoadBench),
    /// The cost of TLS: each row plaintext and TLS against one permissive
    /// server (needs --tls-ca FILE or --tls-insecure).
    Tls(tls::TlsBench),
    /// Master–slave replication on pairs it starts itself: SYNC_MASTER vs
    /// ASYNC_MASTER sends, replication lag at a fixed rate, an empty
    /// slave's catch-up against the disk's write speed.
    Replication(replication::ReplicationBench),
    /// Controller mode on processes it starts itself: rounds of kill -9 of
    /// the master under load (detection, election, route switch, first
    /// send; p50 / max), a check of every acknowledged message, and send
    /// throughput against classic SYNC_MASTER and ASYNC_MASTER.
    Failover(failover::FailoverBench),
}

#[derive(clap::Args, Debug, Clone)]
pub struct SuiteArgs {
    #[arg(short = 'n', long = "namesrv-addr", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Seconds per row.
    #[arg(short = 'd', long, default_value_t = 10)]
    pub duration: u64,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

fn emit(
    rows: &[Report],
    baseline: Option<&Report>,
    json: &Option<std::path::PathBuf>,
) -> BenchResult<()> {
    print_table(rows, baseline);
    if let Some(p) = json {
        write_json(p, rows)?;
    }
    Ok(())
}

pub async fn run(cmd: BenchCmd) -> BenchResult<()> {
    match cmd {
        BenchCmd::Produce(cmd) => {
            use grpc::Protocol;
            let a = &cmd.bench;
            let mut rows = Vec::new();
            if cmd.protocol != Protocol::Grpc {
                rows.push(produce::run_produce(a).await?);
            }
            if cmd.protocol != Protocol::Remoting {
                let mut g = grpc::run_grpc_produce(a, &cmd.endpoint, cmd.grpc_client).await?;
                if let Some(r) = rows.first() {
                    g.notes.push_str(&format!(
                        ", x{:.2} of remoting",
                        g.msgs_per_sec / r.msgs_per_sec.max(1e-9)
                    ));
                }
                rows.push(g);
            }
            emit(&rows, None, &a.json)
        }
        BenchCmd::GrpcReceive(a) => {
            let r = grpc::run_grpc_receive(&a).await?;
            emit(&[r], None, &a.json)
        }
        BenchCmd::Consume(a) => {
            let r = consume::run_consume(&a).await?;
            emit(&[r], None, &a.json)
        }
        BenchCmd::Pop(a) => {
            let r = pop::run_pop(&a).await?;
            emit(&[r], None, &a.json)
        }
        BenchCmd::E2e(a) => {
            let r = consume::run_e2e(&a).await?;
            emit(&[r], None, &a.json)
        }
        BenchCmd::Echo(a) => {
            let r = echo::run_echo(&a).await?;
            emit(&[r], None, &a.json)
        }
        BenchCmd::Suite(s) => suite(s).await,
        BenchCmd::Replication(a) => {
            let rows = replication::run_replication(&a).await?;
            emit(&rows, None, &a.json)
        }
        BenchCmd::Failover(a) => failover::run_failover(&a).await,
        BenchCmd::Tls(a) => {
            let rows = tls::run_tls(&a).await?;
            emit(&rows, None, &a.json)
        }
        BenchCmd::Curves(a) => {
            let rows = curves::run_curves(&a).await?;
            emit(&rows, None, &a.json)
        }
        BenchCmd::Routes(a) => {
            let r = curves::run_routes(&a).await?;
            emit(&[r], None, &None)
        }
        BenchCmd::OffsetsLoad(a) => {
            // The plain row first, on the same broker, for the ratio.
            let plain = produce::run_produce(&produce::ProduceBench {
                namesrv: a.namesrv.clone(),
                topic: format!("{}Plain", a.topic),
                queues: 8,
                size: 1024,
                connections: 1,
                window: 1,
                mode: produce::SendMode::Sync,
                batch: 32,
                duration: a.duration,
                count: None,
                json: None,
                transport: Default::default(),
            })
            .await?;
            let (mut q, mut r) = offsets_load::run_offsets_load(&a).await?;
            note_ratio(&mut q, &plain);
            note_ratio(&mut r, &plain);
            emit(&[plain, q, r], None, &a.json)
        }
    }
}

/// Appends the p50 / p99 latency ratios against `plain` to `r`'s notes.
fn note_ratio(r: &mut Report, plain: &Report) {
    r.notes.push_str(&format!(
        ", p50 x{:.2} p99 x{:.2} vs plain send",
        r.p50_ms / plain.p50_ms.max(1e-6),
        r.p99_ms / plain.p99_ms.max(1e-6)
    ));
}

async fn suite(s: SuiteArgs) -> BenchResult<()> {
    let d = s.duration;
    let echo1 = echo::run_echo(&echo::EchoBench {
        size: 1024,
        connections: 1,
        window: 1,
        duration: d,
        json: None,
    })
    .await?;
    let echo64 = echo::run_echo(&echo::EchoBench {
        size: 1024,
        connections: 1,
        window: 64,
        duration: d,
        json: None,
    })
    .await?;
    let topic = format!("BenchSuite{}", crate::wire::now_ms() % 1_000_000);
    let base = produce::ProduceBench {
        namesrv: s.namesrv.clone(),
        topic: topic.clone(),
        queues: 8,
        size: 1024,
        connections: 1,
        window: 1,
        mode: produce::SendMode::Sync,
        batch: 32,
        duration: d,
        count: None,
        json: None,
        transport: Default::default(),
    };
    let mut rows = vec![echo1.clone()];
    let plain = produce::run_produce(&base).await?;
    rows.push(plain.clone());
    // Send latency while the offsets of 10,000 groups persist.
    let (mut q, mut r) = offsets_load::run_offsets_load(&offsets_load::OffsetsLoadBench {
        namesrv: s.namesrv.clone(),
        topic: format!("{}Off", base.topic),
        groups: 10_000,
        commit_rate: 2_000,
        duration: d,
        json: None,
    })
    .await?;
    note_ratio(&mut q, &plain);
    note_ratio(&mut r, &plain);
    rows.push(q);
    rows.push(r);
    // Latency at a moderate rate runs before the throughput rows, so it is
    // not measured against the write-back of the gigabytes they leave dirty.
    rows.push(
        consume::run_e2e(&consume::E2eBench {
            namesrv: s.namesrv.clone(),
            topic: format!("{}E2E", base.topic),
            queues: 8,
            size: 1024,
            rate: 6000,
            duration: d,
            json: None,
        })
        .await?,
    );
    rows.push(echo64.clone());
    let mut r = produce::run_produce(&produce::ProduceBench {
        window: 64,
        ..base.clone()
    })
    .await?;
    r.notes.push_str(&format!(
        ", vs echo64 {:.0} %",
        100.0 * r.msgs_per_sec / echo64.msgs_per_sec.max(1.0)
    ));
    rows.push(r);
    rows.push(
        produce::run_produce(&produce::ProduceBench {
            window: 4,
            mode: produce::SendMode::Batch,
            ..base.clone()
        })
        .await?,
    );
    rows.push(
        consume::run_consume(&consume::ConsumeBench {
            namesrv: s.namesrv.clone(),
            topic,
            queues: 8,
            pull_batch: 32,
            json: None,
        })
        .await?,
    );
    emit(&rows, Some(&echo1), &s.json)
}
