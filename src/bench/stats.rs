//! Latency samples, throughput and the report table (text and JSON).

use serde::Serialize;
use std::time::Duration;

/// Latency samples in microseconds, merged from all workers.
#[derive(Default, Clone)]
pub struct Samples {
    pub micros: Vec<u32>,
    pub errors: u64,
    pub msgs: u64,
    pub bytes: u64,
}

impl Samples {
    pub fn record(&mut self, latency: Duration, msgs: u64, bytes: u64) {
        self.micros
            .push(latency.as_micros().min(u32::MAX as u128) as u32);
        self.msgs += msgs;
        self.bytes += bytes;
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        self.msgs += other.msgs;
        self.bytes += other.bytes;
    }
}

/// Waits for sample-collecting tasks and merges what they measured (a task
/// that failed contributes nothing).
pub async fn join_samples(tasks: Vec<tokio::task::JoinHandle<Samples>>) -> Samples {
    let mut all = Samples::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.merge(s);
        }
    }
    all
}

/// One row of the final table.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub msgs: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    pub mib_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub notes: String,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

impl Report {
    pub fn from_samples(name: &str, mut s: Samples, elapsed: Duration, notes: String) -> Report {
        s.micros.sort_unstable();
        let secs = elapsed.as_secs_f64().max(1e-9);
        Report {
            name: name.to_owned(),
            msgs: s.msgs,
            seconds: secs,
            msgs_per_sec: s.msgs as f64 / secs,
            mib_per_sec: s.bytes as f64 / secs / (1024.0 * 1024.0),
            p50_ms: pct(&s.micros, 0.50),
            p90_ms: pct(&s.micros, 0.90),
            p99_ms: pct(&s.micros, 0.99),
            p999_ms: pct(&s.micros, 0.999),
            max_ms: s.micros.last().map(|m| *m as f64 / 1000.0).unwrap_or(0.0),
            errors: s.errors,
            notes,
        }
    }
}

/// Prints rows as a Markdown table, with a ratio column against `baseline`.
pub fn print_table(rows: &[Report], baseline: Option<&Report>) {
    println!("| run | msgs | msg/s | MiB/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | vs loopback | notes |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ratio = match baseline {
            Some(b) if b.msgs_per_sec > 0.0 => {
                format!("{:.0} %", 100.0 * r.msgs_per_sec / b.msgs_per_sec)
            }
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} |",
            r.name,
            r.msgs,
            r.msgs_per_sec,
            r.mib_per_sec,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.p999_ms,
            r.max_ms,
            r.errors,
            ratio,
            r.notes
        );
    }
}

pub fn write_json(path: &std::path::Path, rows: &[Report]) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(rows).map_err(std::io::Error::other)?;
    std::fs::write(path, text)
}

/// Prints a progress line to stderr once a second while `counter` grows.
pub fn progress(
    name: String,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = 0u64;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = counter.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!("[{name}] {} msg/s, {} total", now - last, now);
            last = now;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s = Samples::default();
        for i in 1..=1000u64 {
            s.record(Duration::from_micros(i), 1, 10);
        }
        let r = Report::from_samples("t", s, Duration::from_secs(1), String::new());
        assert_eq!(r.msgs, 1000);
        assert!((r.p50_ms - 0.5).abs() < 0.01, "{}", r.p50_ms);
        assert!((r.p99_ms - 0.99).abs() < 0.01);
        assert!((r.max_ms - 1.0).abs() < 1e-9);
    }
}
