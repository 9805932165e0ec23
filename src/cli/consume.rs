//! `actormq consume`: runs a push consumer for a group (clustering or
//! `--broadcast`, concurrent or `--orderly`, TAG `--tags` or SQL92
//! `--filter`, `--from first|last|<timestamp ms>` for a new group), prints
//! the messages, and stops after `--count` messages, after `--timeout`
//! seconds without a message, or on Ctrl-C, committing its offsets.
//!
//! Messages delivered after `--count` is reached are handed back (retry
//! topic, or left uncommitted when orderly) rather than silently consumed.

use std::io::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::client::push::{
    ConsumeFrom, ConsumeResult, Filter, Listener, MessageModel, OrderlyResult, PushConfig,
    PushConsumer,
};
use crate::wire::message::MessageExt;
use crate::wire::now_ms;

use super::{rate, CliResult};

/// Bodies longer than this are cut when printed.
const MAX_PRINTED_BODY: usize = 1024;

#[derive(clap::Args, Debug, Clone)]
pub struct ConsumeArgs {
    /// Name server address(es), `host:port;host:port`.
    #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Topic to consume.
    #[arg(short = 't', long)]
    pub topic: String,
    /// Consumer group.
    #[arg(short = 'g', long)]
    pub group: String,
    /// Stop after this many messages.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// TAG expression (`*`, `A||B`).
    #[arg(long, default_value = "*")]
    pub tags: String,
    /// SQL92 filter over message properties (instead of --tags).
    #[arg(long)]
    pub filter: Option<String>,
    /// Where a new group starts: `first`, `last` or a timestamp in ms.
    #[arg(long, default_value = "first", value_parser = parse_from)]
    pub from: ConsumeFrom,
    /// Every member receives every message (offsets kept locally).
    #[arg(long)]
    pub broadcast: bool,
    /// Consume each queue in order, holding its broker lock.
    #[arg(long)]
    pub orderly: bool,
    /// Stop after this many seconds without a message.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Messages per pull.
    #[arg(long, default_value_t = 32)]
    pub pull_batch: i32,
    /// Client instance name (distinct per member in one process/host).
    #[arg(long)]
    pub instance: Option<String>,
    /// Print only the summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `first`, `last`, or milliseconds since the epoch.
pub fn parse_from(s: &str) -> Result<ConsumeFrom, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "first" => Ok(ConsumeFrom::FirstOffset),
        "last" => Ok(ConsumeFrom::LastOffset),
        t => t
            .parse::<i64>()
            .map(ConsumeFrom::Timestamp)
            .map_err(|_| format!("expected first, last or a timestamp in ms, got {s:?}")),
    }
}

fn print_message(m: &MessageExt) {
    let body = String::from_utf8_lossy(&m.body[..m.body.len().min(MAX_PRINTED_BODY)]);
    let cut = if m.body.len() > MAX_PRINTED_BODY {
        "..."
    } else {
        ""
    };
    let id = m
        .uniq_key()
        .map(str::to_owned)
        .unwrap_or_else(|| m.offset_msg_id());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "topic={} queue={} offset={} msgId={} tags={} keys={} reconsume={} body={body}{cut}",
        m.topic,
        m.queue_id,
        m.queue_offset,
        id,
        m.tags().unwrap_or(""),
        m.keys().unwrap_or(""),
        m.reconsume_times,
    );
}

struct Shared {
    limit: Option<u64>,
    quiet: bool,
    received: AtomicU64,
    last_activity: AtomicI64,
    stop: watch::Sender<bool>,
}

impl Shared {
    /// Takes a slot for each message; false once `--count` is reached.
    fn take(&self, msgs: &[MessageExt]) -> bool {
        let n = msgs.len() as u64;
        let before = self.received.fetch_add(n, Ordering::AcqRel);
        if let Some(limit) = self.limit {
            if before + n > limit {
                self.received.fetch_sub(n, Ordering::AcqRel);
                let _ = self.stop.send(true);
                return false;
            }
            if before + n == limit {
                let _ = self.stop.send(true);
            }
        }
        if !self.quiet {
            msgs.iter().for_each(print_message);
        }
        self.last_activity.store(now_ms(), Ordering::Relaxed);
        true
    }
}

pub async fn run(args: ConsumeArgs) -> CliResult {
    let mut cfg = PushConfig::new(&args.group);
    cfg.instance_name = args.instance.clone();
    cfg.consume_from = args.from;
    cfg.pull_batch_size = args.pull_batch.max(1);
    if args.broadcast {
        cfg.model = MessageModel::Broadcasting;
    }
    if args.count.is_some() {
        cfg.consume_threads = 1;
    }
    let (stop, _) = watch::channel(args.count == Some(0));
    let shared = Arc::new(Shared {
        limit: args.count,
        quiet: args.quiet,
        received: AtomicU64::new(0),
        last_activity: AtomicI64::new(now_ms()),
        stop,
    });
    let mut consumer = PushConsumer::new(cfg, &args.namesrv);
    let filter = match &args.filter {
        Some(sql) => Filter::Sql92(sql.clone()),
        None => Filter::Tag(args.tags.clone()),
    };
    consumer.subscribe_filter(&args.topic, filter);
    let s = shared.clone();
    consumer.register_listener(if args.orderly {
        Listener::orderly(move |msgs, _| {
            if s.take(msgs) {
                OrderlyResult::Success
            } else {
                OrderlyResult::SuspendCurrentQueueAMoment
            }
        })
    } else {
        Listener::concurrent(move |msgs, _| {
            if s.take(msgs) {
                ConsumeResult::Success
            } else {
                ConsumeResult::ReconsumeLater
            }
        })
    });
    let started = Instant::now();
    consumer.start().await?;
    let idle_limit = args.timeout.map(|t| (t * 1000) as i64);
    let mut stop_rx = shared.stop.subscribe();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop_rx.wait_for(|v| *v) => break,
            _ = &mut ctrl_c => break,
        }
        if let Some(limit) = idle_limit {
            if now_ms() - shared.last_activity.load(Ordering::Relaxed) > limit {
                break;
            }
        }
    }
    consumer.shutdown().await;
    let n = shared.received.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "received {n} msgs in {secs:.2} s ({:.0} msg/s)",
        rate(n, secs)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ConsumeArgs,
    }

    #[test]
    fn parses_flags() {
        let c = Cli::parse_from([
            "x",
            "-t",
            "T",
            "-g",
            "G",
            "--broadcast",
            "--orderly",
            "--tags",
            "A||B",
            "--from",
            "1700000000000",
        ]);
        assert!(c.args.broadcast && c.args.orderly);
        assert_eq!(c.args.from, ConsumeFrom::Timestamp(1_700_000_000_000));
        let c = Cli::parse_from([
            "x", "-t", "T", "-g", "G", "--filter", "a > 1", "--from", "last",
        ]);
        assert_eq!(c.args.filter.as_deref(), Some("a > 1"));
        assert_eq!(c.args.from, ConsumeFrom::LastOffset);
        assert!(Cli::try_parse_from(["x", "-t", "T", "-g", "G", "--from", "soon"]).is_err());
    }
}
