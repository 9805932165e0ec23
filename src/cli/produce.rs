//! `actormq produce`: sends N messages to a topic through the name server —
//! sync (`--concurrency` senders), async (`--async N` sends in flight),
//! one-way (`--oneway`), in batches (`--batch`, split at 4 MiB), ordered by
//! `--sharding-key`, delayed (`--delay LEVEL`) or timed (`--timer-ms MS`) —
//! and prints a throughput summary; for a single message the send result.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::{ClientError, Message, Producer, SendResult};

use super::{rate, stdout_is_tty, CliResult};

/// Progress bars are shown above this many messages.
const PROGRESS_THRESHOLD: u64 = 1000;
/// At most this many individual errors are printed.
const MAX_PRINTED_ERRORS: u64 = 5;

#[derive(clap::Args, Debug, Clone)]
pub struct ProduceArgs {
    /// Name server address(es), `host:port;host:port`.
    #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Topic to send to.
    #[arg(short = 't', long)]
    pub topic: String,
    /// Number of messages.
    #[arg(short = 'c', long, default_value_t = 1)]
    pub count: u64,
    /// Body size in bytes (ignored with --body).
    #[arg(short = 's', long, default_value_t = 128)]
    pub size: usize,
    /// Message tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Message keys, space-separated.
    #[arg(short = 'k', long)]
    pub keys: Option<String>,
    /// Literal body text.
    #[arg(short = 'b', long)]
    pub body: Option<String>,
    /// Send in batches of this many messages (SEND_BATCH_MESSAGE).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Producer group.
    #[arg(short = 'g', long, default_value = "actormq_cli_producer")]
    pub group: String,
    /// Concurrent senders (requests in flight).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Asynchronous sends with this many in flight.
    #[arg(long = "async", value_name = "N")]
    pub async_window: Option<usize>,
    /// One-way sends (no answer, no retry).
    #[arg(long, conflicts_with_all = ["async_window", "batch"])]
    pub oneway: bool,
    /// Delay level 1..18 (1 s … 2 h).
    #[arg(long, value_name = "LEVEL")]
    pub delay: Option<i32>,
    /// Timer message: deliver this many ms after sending.
    #[arg(long = "timer-ms", value_name = "MS")]
    pub timer_ms: Option<i64>,
    /// Ordered sends: every message with this key goes to one queue.
    #[arg(long = "sharding-key", value_name = "K")]
    pub sharding_key: Option<String>,
    /// Print only the summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// A body of `size` bytes of readable filler.
fn filler(size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn template(args: &ProduceArgs) -> Message {
    let body = match &args.body {
        Some(b) => Bytes::from(b.clone()),
        None => filler(args.size),
    };
    let mut m = Message::new(args.topic.clone(), body);
    m.tags = args.tag.clone();
    if let Some(k) = &args.keys {
        m.keys = k.split_whitespace().map(str::to_owned).collect();
    }
    if let Some(level) = args.delay {
        m = m.with_delay_level(level);
    }
    if let Some(ms) = args.timer_ms {
        m = m.with_deliver_time_ms(crate::wire::now_ms() + ms);
    }
    m
}

fn print_result(r: &SendResult) {
    println!(
        "status={:?} msgId={} offsetMsgId={} queue={}:{} offset={}",
        r.status, r.msg_id, r.offset_msg_id, r.queue.broker_name, r.queue.queue_id, r.queue_offset
    );
}

struct Shared {
    producer: Producer,
    template: Message,
    /// Messages handed out to workers so far.
    next: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    total: u64,
    batch: u64,
    oneway: bool,
    sharding_key: Option<String>,
    bar: ProgressBar,
}

impl Shared {
    fn report_error(&self, n: u64, e: &ClientError) {
        let seen = self.failed.fetch_add(n, Ordering::Relaxed);
        if seen < MAX_PRINTED_ERRORS {
            self.bar.suspend(|| eprintln!("send failed: {e}"));
        }
    }
}

/// One sender: claims chunks of messages until all are handed out.
async fn worker(s: Arc<Shared>, single: bool) -> Option<SendResult> {
    let mut last = None;
    loop {
        let start = s.next.fetch_add(s.batch, Ordering::Relaxed);
        if start >= s.total {
            return last;
        }
        let n = s.batch.min(s.total - start);
        let msg = s.template.clone();
        let result = if s.batch > 1 {
            let msgs = (0..n).map(|_| msg.clone()).collect();
            s.producer
                .send_batches(msgs)
                .await
                .and_then(|mut v| v.pop().ok_or_else(|| ClientError::Invalid("empty".into())))
        } else if s.oneway {
            match s.producer.send_oneway(msg).await {
                Ok(()) => {
                    s.sent.fetch_add(n, Ordering::Relaxed);
                    s.bar.inc(n);
                    continue;
                }
                Err(e) => Err(e),
            }
        } else if let Some(k) = &s.sharding_key {
            s.producer.send_ordered(msg, k).await
        } else {
            s.producer.send(msg).await
        };
        match result {
            Ok(r) => {
                s.sent.fetch_add(n, Ordering::Relaxed);
                if single {
                    last = Some(r);
                }
            }
            Err(e) => s.report_error(n, &e),
        }
        s.bar.inc(n);
    }
}

/// Async sends with at most `window` in flight.
async fn send_async(s: Arc<Shared>, window: usize, single: bool) -> Option<SendResult> {
    let permits = Arc::new(tokio::sync::Semaphore::new(window));
    let last = Arc::new(std::sync::Mutex::new(None));
    for _ in 0..s.total {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let fut = s.producer.send_async(s.template.clone());
        let (s, last) = (s.clone(), last.clone());
        tokio::spawn(async move {
            match fut.await {
                Ok(r) => {
                    s.sent.fetch_add(1, Ordering::Relaxed);
                    if single {
                        *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    }
                }
                Err(e) => s.report_error(1, &e),
            }
            s.bar.inc(1);
            drop(permit);
        });
    }
    let _ = permits.acquire_many(window as u32).await;
    let r = last.lock().unwrap_or_else(|e| e.into_inner()).take();
    r
}

pub async fn run(args: ProduceArgs) -> CliResult {
    let batch = args.batch.unwrap_or(1).max(1) as u64;
    let bar = if args.count > PROGRESS_THRESHOLD && !args.quiet && stdout_is_tty() {
        let b = ProgressBar::new(args.count);
        let style = ProgressStyle::with_template("{bar:40} {pos}/{len} msgs {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        b.set_style(style);
        b
    } else {
        ProgressBar::with_draw_target(Some(args.count), ProgressDrawTarget::hidden())
    };
    let shared = Arc::new(Shared {
        producer: Producer::new(&args.group, &args.namesrv),
        template: template(&args),
        next: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        total: args.count,
        batch,
        oneway: args.oneway,
        sharding_key: args.sharding_key.clone(),
        bar,
    });
    let single = args.count == 1;
    let started = Instant::now();
    let mut last = None;
    if let Some(window) = args.async_window {
        last = send_async(shared.clone(), window.max(1), single).await;
    } else {
        let workers: Vec<_> = (0..args.concurrency.max(1))
            .map(|_| tokio::spawn(worker(shared.clone(), single)))
            .collect();
        for w in workers {
            match w.await {
                Ok(Some(r)) => last = Some(r),
                Ok(None) => {}
                Err(e) => eprintln!("sender task failed: {e}"),
            }
        }
    }
    shared.bar.finish_and_clear();
    shared.producer.shutdown().await;
    shared.producer.routes().client().shutdown();
    let secs = started.elapsed().as_secs_f64();
    let sent = shared.sent.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    if let (Some(r), false) = (&last, args.quiet) {
        print_result(r);
    }
    println!(
        "sent {sent} msgs ({failed} failed) in {secs:.2} s: {:.0} msg/s",
        rate(sent, secs)
    );
    if failed > 0 {
        return Err(format!("{failed} of {} messages failed", args.count).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProduceArgs,
    }

    #[test]
    fn parses_flags() {
        let c = Cli::parse_from([
            "x", "-n", "a:1;b:2", "-t", "T", "--count", "5", "--tag", "A", "--keys", "k1 k2",
            "--batch", "2",
        ]);
        assert_eq!(c.args.count, 5);
        assert_eq!(c.args.size, 128);
        let m = template(&c.args);
        assert_eq!(m.keys, vec!["k1", "k2"]);
        assert_eq!(m.body.len(), 128);
        assert_eq!(m.tags.as_deref(), Some("A"));
        let c = Cli::parse_from([
            "x",
            "-t",
            "T",
            "--async",
            "8",
            "--delay",
            "3",
            "--sharding-key",
            "o1",
        ]);
        assert_eq!(c.args.async_window, Some(8));
        assert_eq!(template(&c.args).property("DELAY"), Some("3"));
        assert!(Cli::try_parse_from(["x", "-t", "T", "--oneway", "--async", "2"]).is_err());
    }
}
