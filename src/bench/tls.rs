//! `bench tls`: the cost of TLS on the remoting path, measured in one run
//! against one server in `tls.server.mode=permissive` (RocketMQ's mode that
//! serves TLS and plaintext on one port), so each TLS row has its plaintext
//! twin from the same process and the same broker. TLS settings come from
//! the global `--tls-ca FILE` / `--tls-insecure` options.
//!
//! Rows, each plaintext then TLS: sync sends with 1 and 64 in flight,
//! batches of 32, and new connections (connect, handshake, one route
//! lookup, close). The TLS rows note their throughput and p50 latency as a
//! ratio of the plaintext row.

use std::time::{Duration, Instant};

use super::produce::{run_produce, ProduceBench, SendMode};
use super::stats::{Report, Samples};
use super::target::{client_over, BenchResult, Transport};
use crate::wire::codes::{request, response};
use crate::wire::RemotingCommand;

#[derive(clap::Args, Debug, Clone)]
pub struct TlsBench {
    /// Name server address (a permissive server: both rows use it).
    #[arg(short = 'n', long = "namesrv-addr", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Seconds per row.
    #[arg(short = 'd', long, default_value_t = 5)]
    pub duration: u64,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Notes `tls`'s throughput and p50 as ratios of `plain`'s.
fn note_cost(tls: &mut Report, plain: &Report) {
    tls.notes.push_str(&format!(
        ", TLS/plain: msg/s x{:.2}, p50 x{:.2}",
        tls.msgs_per_sec / plain.msgs_per_sec.max(1e-9),
        tls.p50_ms / plain.p50_ms.max(1e-6)
    ));
}

pub async fn run_tls(a: &TlsBench) -> BenchResult<Vec<Report>> {
    let tls = crate::tls::client_default()
        .ok_or("bench tls needs the TLS options: --tls-ca FILE or --tls-insecure")?;
    let namesrv = a.namesrv.split(';').next().unwrap_or("").trim().to_owned();
    let topic = format!("BenchTls{}", crate::wire::now_ms() % 1_000_000);
    let base = ProduceBench {
        namesrv: namesrv.clone(),
        topic,
        queues: 8,
        size: a.size,
        connections: 1,
        window: 1,
        mode: SendMode::Sync,
        batch: 32,
        duration: a.duration,
        count: None,
        json: None,
        transport: Transport::Plain,
    };
    let shapes = [
        (1, SendMode::Sync),
        (64, SendMode::Sync),
        (4, SendMode::Batch),
    ];
    let mut rows = Vec::new();
    for (window, mode) in shapes {
        let shape = ProduceBench {
            window,
            mode,
            ..base.clone()
        };
        let mut plain = run_produce(&shape).await?;
        plain.name = format!("{} plain", plain.name);
        let mut secure = run_produce(&ProduceBench {
            transport: Transport::Tls(tls.clone()),
            ..shape
        })
        .await?;
        secure.name = format!("{} TLS", secure.name);
        note_cost(&mut secure, &plain);
        rows.push(plain);
        rows.push(secure);
    }
    let plain = connects(&namesrv, &base.topic, Transport::Plain, a.duration).await;
    let mut secure = connects(&namesrv, &base.topic, Transport::Tls(tls), a.duration).await;
    note_cost(&mut secure, &plain);
    rows.push(plain);
    rows.push(secure);
    Ok(rows)
}

/// New connections one after another for `secs`: each connects (and
/// handshakes), looks the topic's route up once and closes.
async fn connects(namesrv: &str, topic: &str, t: Transport, secs: u64) -> Report {
    let name = match t {
        Transport::Tls(_) => "connect+route TLS",
        _ => "connect+route plain",
    };
    let mut s = Samples::default();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let c = client_over(&t);
        let cmd =
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
        let t0 = Instant::now();
        match c.invoke(namesrv, cmd, Duration::from_secs(3)).await {
            Ok(r) if r.code == response::SUCCESS => s.record(t0.elapsed(), 1, 0),
            _ => s.errors += 1,
        }
        c.shutdown();
    }
    Report::from_samples(name, s, start.elapsed(), "1 connection per lookup".into())
}
