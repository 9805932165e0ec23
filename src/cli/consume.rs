//! `actormq consume`: long-polls every read queue of a topic for a consumer
//! group, prints the messages, and commits the group's offsets periodically
//! and on exit. Stops after `--count` messages, after `--timeout` seconds
//! without a message, or on Ctrl-C.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::client::pull::{PullConsumer, PullStatus};
use crate::client::{client_id, ClientError};
use crate::wire::bodies::MessageQueue;
use crate::wire::message::MessageExt;
use crate::wire::now_ms;

use super::{rate, CliResult};

/// Broker-side long-poll hold.
const SUSPEND: Duration = Duration::from_secs(15);
/// How often consumed offsets are committed.
const COMMIT_EVERY: Duration = Duration::from_secs(5);
/// How often the consumer heartbeats (Java: 30 s).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
/// Pause after a failed pull.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// Bodies longer than this are cut when printed.
const MAX_PRINTED_BODY: usize = 1024;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The queue's min offset.
    First,
    /// The queue's max offset (only new messages).
    Last,
}

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
    /// Where to start when the group has no committed offset.
    #[arg(long, value_enum, default_value_t = StartFrom::First)]
    pub from: StartFrom,
    /// Stop after this many seconds without a message.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Messages per pull.
    #[arg(long, default_value_t = 32)]
    pub pull_batch: i32,
    /// Print only the summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// State shared by the per-queue pullers and the supervisor loop.
struct Shared {
    consumer: PullConsumer,
    args: ConsumeArgs,
    received: AtomicU64,
    /// `now_ms` of the last message (or of the start).
    last_activity: AtomicI64,
    /// Next offset to consume per queue, and whether it changed since the
    /// last commit.
    offsets: Mutex<HashMap<MessageQueue, (i64, bool)>>,
    stop: watch::Sender<bool>,
}

impl Shared {
    fn set_offset(&self, mq: &MessageQueue, offset: i64) {
        let mut map = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        let slot = map.entry(mq.clone()).or_insert((offset, true));
        if slot.0 != offset {
            *slot = (offset, true);
        }
    }

    /// Takes one message slot; false once `--count` is reached.
    fn claim(&self) -> bool {
        let n = self.received.fetch_add(1, Ordering::Relaxed);
        match self.args.count {
            Some(limit) if n >= limit => {
                self.received.fetch_sub(1, Ordering::Relaxed);
                let _ = self.stop.send(true);
                false
            }
            Some(limit) => {
                if n + 1 >= limit {
                    let _ = self.stop.send(true);
                }
                true
            }
            None => true,
        }
    }

    async fn commit(&self) {
        let dirty: Vec<(MessageQueue, i64)> = {
            let mut map = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
            map.iter_mut()
                .filter(|(_, v)| v.1)
                .map(|(k, v)| {
                    v.1 = false;
                    (k.clone(), v.0)
                })
                .collect()
        };
        for (mq, off) in dirty {
            if let Err(e) = self
                .consumer
                .update_offset(&self.args.group, &mq, off)
                .await
            {
                eprintln!("commit of {}:{} failed: {e}", mq.broker_name, mq.queue_id);
                self.set_offset_dirty(&mq);
            }
        }
    }

    fn set_offset_dirty(&self, mq: &MessageQueue) {
        if let Some(v) = self
            .offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(mq)
        {
            v.1 = true;
        }
    }
}

fn print_message(mq: &MessageQueue, m: &MessageExt) {
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
        "queue={} offset={} msgId={} tags={} keys={} body={body}{cut}",
        mq.queue_id,
        m.queue_offset,
        id,
        m.tags().unwrap_or(""),
        m.keys().unwrap_or(""),
    );
}

/// Where to start in `mq`: committed offset, else first/last.
async fn start_offset(s: &Shared, mq: &MessageQueue) -> Result<i64, ClientError> {
    if let Some(o) = s.consumer.query_offset(&s.args.group, mq).await? {
        if o >= 0 {
            return Ok(o);
        }
    }
    match s.args.from {
        StartFrom::First => s.consumer.min_offset(mq).await,
        StartFrom::Last => s.consumer.max_offset(mq).await,
    }
}

/// Resolves once the stop flag is set (the guard is dropped before any
/// await, keeping callers `Send`).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await.map(|_| ());
}

/// Pulls one queue until told to stop.
async fn pull_queue(s: Arc<Shared>, mq: MessageQueue) {
    let mut stop = s.stop.subscribe();
    let mut offset = loop {
        tokio::select! {
            r = start_offset(&s, &mq) => match r {
                Ok(o) => break o,
                Err(e) => {
                    eprintln!("queue {}:{}: cannot find start offset: {e}", mq.broker_name, mq.queue_id);
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            },
            _ = stopped(&mut stop) => return,
        }
    };
    s.set_offset(&mq, offset);
    loop {
        let pulled = tokio::select! {
            r = s.consumer.pull(&mq, offset, s.args.pull_batch, Some(SUSPEND), &s.args.tags) => r,
            _ = stopped(&mut stop) => return,
        };
        match pulled {
            Ok(r) => {
                if r.status == PullStatus::Found {
                    for m in &r.messages {
                        if !s.claim() {
                            return;
                        }
                        if !s.args.quiet {
                            print_message(&mq, m);
                        }
                        s.last_activity.store(now_ms(), Ordering::Relaxed);
                        s.set_offset(&mq, m.queue_offset + 1);
                    }
                }
                if r.status == PullStatus::OffsetIllegal {
                    eprintln!(
                        "queue {}:{}: offset {offset} illegal, moving to {}",
                        mq.broker_name, mq.queue_id, r.next_begin_offset
                    );
                }
                offset = r.next_begin_offset;
                s.set_offset(&mq, offset);
            }
            Err(e) => {
                eprintln!("queue {}:{}: pull failed: {e}", mq.broker_name, mq.queue_id);
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

pub async fn run(args: ConsumeArgs) -> CliResult {
    let consumer = PullConsumer::new(&args.group, &args.namesrv);
    let queues = consumer.read_queues(&args.topic).await?;
    if queues.is_empty() {
        return Err(format!("topic {} has no readable queue", args.topic).into());
    }
    let subs = vec![(args.topic.clone(), args.tags.clone())];
    let cid = client_id();
    if let Err(e) = consumer.heartbeat(&args.group, &cid, &subs).await {
        eprintln!("heartbeat failed: {e}");
    }
    let (stop, _) = watch::channel(false);
    let idle_limit = args
        .timeout
        .map(|t| Duration::from_secs(t).as_millis() as i64);
    let shared = Arc::new(Shared {
        consumer,
        args,
        received: AtomicU64::new(0),
        last_activity: AtomicI64::new(now_ms()),
        offsets: Mutex::new(HashMap::new()),
        stop,
    });
    if shared.args.count == Some(0) {
        let _ = shared.stop.send(true);
    }
    let started = Instant::now();
    let pullers: Vec<_> = queues
        .into_iter()
        .map(|mq| tokio::spawn(pull_queue(shared.clone(), mq)))
        .collect();

    let mut stop_rx = shared.stop.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut last_commit = Instant::now();
    let mut last_heartbeat = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stop_rx) => break,
            _ = &mut ctrl_c => break,
        }
        if let Some(limit) = idle_limit {
            if now_ms() - shared.last_activity.load(Ordering::Relaxed) > limit {
                break;
            }
        }
        if last_commit.elapsed() >= COMMIT_EVERY {
            shared.commit().await;
            last_commit = Instant::now();
        }
        if last_heartbeat.elapsed() >= HEARTBEAT_EVERY {
            if let Err(e) = shared
                .consumer
                .heartbeat(&shared.args.group, &cid, &subs)
                .await
            {
                eprintln!("heartbeat failed: {e}");
            }
            last_heartbeat = Instant::now();
        }
    }
    let _ = shared.stop.send(true);
    for p in pullers {
        let _ = p.await;
    }
    shared.commit().await;
    shared.consumer.routes().client().shutdown();
    let n = shared.received.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "received {n} msgs in {secs:.2} s ({:.0} msg/s)",
        rate(n, secs)
    );
    Ok(())
}
