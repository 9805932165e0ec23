//! `bench replication`: master–slave replication measured on pairs this
//! command starts itself (child processes of the current binary, see
//! [`super::pair`]), one fresh pair per row:
//!
//! * SYNC_MASTER and ASYNC_MASTER send throughput and latency, `-w` (64)
//!   sends in flight on one connection, `--size` (1 KiB) bodies;
//! * replication lag at fixed rates (`--rate`, 50 K and 20 K msg/s) on an
//!   ASYNC_MASTER: for each acknowledged send, the time from the master's
//!   answer until the master saw the slave acknowledge the record's end
//!   (the master's HA status polled every millisecond); the rate reached is
//!   in the notes;
//! * catch-up of an empty slave: `--catchup-mib` of records in the
//!   master's last segment (an empty slave starts there, as in Java), the
//!   copy speed once the slave reported, beside the disk's sequential
//!   write speed measured in the same run (write + fsync of a file of the
//!   same size in the same directory).

use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pair::{ha_status, Pair};
use super::produce::{run_produce, ProduceBench, SendMode};
use super::stats::{Report, Samples};
use super::target::{client, prepare_topic, send_request, BenchResult, Transport};
use crate::wire::codes::response;
use crate::wire::headers::send::SendMessageResponseHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::msgid;

/// Commit-log segment size of the throughput and lag pairs.
pub(super) const SEGMENT: u64 = 256 << 20;
/// Most lag-row sends in flight; a send due while all are out is skipped
/// (the rate reached says so).
const LAG_IN_FLIGHT: usize = 1024;

#[derive(clap::Args, Debug, Clone)]
pub struct ReplicationBench {
    /// Seconds per throughput and lag row.
    #[arg(short = 'd', long, default_value_t = 10)]
    pub duration: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Sends in flight in the throughput rows.
    #[arg(short = 'w', long, default_value_t = 64)]
    pub window: usize,
    /// Target send rates of the lag rows, messages per second (one row
    /// each; repeat the flag or separate with commas).
    #[arg(long, value_delimiter = ',', default_values_t = [50_000, 20_000])]
    pub rate: Vec<u64>,
    /// MiB of records an empty slave copies in the catch-up row.
    #[arg(long = "catchup-mib", default_value_t = 512)]
    pub catchup_mib: u64,
    /// Where the pairs keep their stores (deleted after); default a new
    /// directory under the system temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub async fn run_replication(a: &ReplicationBench) -> BenchResult<Vec<Report>> {
    let root = a.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("actormq-bench-replication-{}", std::process::id()))
    });
    let rows = rows(&root, a).await;
    let _ = std::fs::remove_dir_all(&root);
    rows
}

async fn rows(root: &Path, a: &ReplicationBench) -> BenchResult<Vec<Report>> {
    let asy = throughput_row(&root.join("async"), "ASYNC_MASTER", a).await?;
    let mut sync = throughput_row(&root.join("sync"), "SYNC_MASTER", a).await?;
    sync.notes.push_str(&format!(
        ", {:.0} % of ASYNC_MASTER msg/s, p99 x{:.2}",
        100.0 * sync.msgs_per_sec / asy.msgs_per_sec.max(1e-9),
        sync.p99_ms / asy.p99_ms.max(1e-9)
    ));
    let mut rows = vec![asy, sync];
    for rate in &a.rate {
        rows.push(lag_row(&root.join("lag"), a, *rate).await?);
    }
    rows.push(catch_up_row(&root.join("catchup"), a).await?);
    Ok(rows)
}

/// The throughput rows' load: `a.window` sync sends in flight on one
/// connection, `a.size`-byte bodies, 8 queues, for `a.duration` seconds.
pub(super) fn produce_args(namesrv: &str, topic: &str, a: &ReplicationBench) -> ProduceBench {
    ProduceBench {
        namesrv: namesrv.to_owned(),
        topic: topic.into(),
        queues: 8,
        size: a.size,
        connections: 1,
        window: a.window,
        mode: SendMode::Sync,
        batch: 1,
        duration: a.duration,
        count: None,
        json: None,
        transport: Transport::Plain,
    }
}

/// A fresh master with `role` and its slave, sent to as
/// [`produce_args`] says.
pub(super) async fn throughput_row(
    dir: &Path,
    role: &str,
    a: &ReplicationBench,
) -> BenchResult<Report> {
    let mut pair = Pair::master(dir, role, SEGMENT).await?;
    pair.start_slave().await?;
    let mut r = run_produce(&produce_args(&pair.namesrv, "BenchReplication", a)).await?;
    r.name = format!("replication {role}");
    r.notes.push_str(", master + slave");
    Ok(r)
}

/// Polls the slave's acknowledged offset (as the master sees it) until
/// `stop`: (time, offset), the offset never decreasing.
fn poll_acks(pair: &Pair, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<(Instant, i64)>> {
    let (master, c) = (pair.master.clone(), client());
    tokio::spawn(async move {
        let mut out: Vec<(Instant, i64)> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut best = -1;
        while !stop.load(Ordering::Acquire) {
            tick.tick().await;
            let Ok(st) = ha_status(&c, &master).await else {
                continue;
            };
            if let Some(ack) = st.ha_connection_info.first().map(|c| c.slave_ack_offset) {
                best = best.max(ack);
                out.push((Instant::now(), best));
            }
        }
        out
    })
}

/// The end offset of the record a successful send stored.
fn stored_end(r: &crate::wire::RemotingCommand, record: i64) -> Option<i64> {
    if r.code != response::SUCCESS {
        return None;
    }
    let h = SendMessageResponseHeader::from_ext(&r.ext).ok()?;
    msgid::decode_offset_msg_id(&h.msg_id).map(|(_, phys)| phys + record)
}

async fn lag_row(dir: &Path, a: &ReplicationBench, rate: u64) -> BenchResult<Report> {
    let mut pair = Pair::master(dir, "ASYNC_MASTER", SEGMENT).await?;
    pair.start_slave().await?;
    let topic = "BenchReplicationLag";
    let queues = Arc::new(prepare_topic(&pair.namesrv, topic, 8).await?);
    let body = Bytes::from(vec![b'a'; a.size]);
    let c = client();
    // Every record of the row has the size of the first one.
    let before = pair.status().await?.master_commit_log_max_offset;
    let q = &queues[0];
    let req = send_request(topic, q.queue_id, &body, 1, "");
    c.invoke(&q.broker_addr, req, Duration::from_secs(5))
        .await?;
    let record = pair.status().await?.master_commit_log_max_offset - before;

    let stop = Arc::new(AtomicBool::new(false));
    let poller = poll_acks(&pair, stop.clone());
    let target = Target {
        queues,
        topic,
        body,
        record,
    };
    let sent = paced_sends(&target, rate, Duration::from_secs(a.duration)).await;
    let last = sent.acked.iter().map(|(_, e)| *e).max().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while pair.slave_ack().await?.unwrap_or(-1) < last && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Release);
    let polls = poller.await?;
    let mut s = Samples::default();
    for (answered, end) in &sent.acked {
        // The first poll that saw the slave past the record's end.
        match polls.get(polls.partition_point(|(_, ack)| ack < end)) {
            Some((seen, _)) => {
                s.record(seen.saturating_duration_since(*answered), 1, a.size as u64)
            }
            None => s.errors += 1,
        }
    }
    s.errors += sent.failed;
    let notes = format!(
        "{} B, target {} msg/s, reached {:.0} msg/s ({} skipped at {} in flight), lag = master's answer → slave ack seen (1 ms polls)",
        a.size,
        rate,
        sent.acked.len() as f64 / sent.elapsed.as_secs_f64(),
        sent.skipped,
        LAG_IN_FLIGHT
    );
    let name = format!("replication lag ASYNC_MASTER @{}K/s", rate / 1000);
    Ok(Report::from_samples(&name, s, sent.elapsed, notes))
}

/// Where the lag row sends.
struct Target {
    queues: Arc<Vec<super::target::TargetQueue>>,
    topic: &'static str,
    body: Bytes,
    /// Stored size of one record.
    record: i64,
}

/// What [`paced_sends`] did.
struct Paced {
    /// (when the master answered, end offset of the stored record).
    acked: Vec<(Instant, i64)>,
    skipped: u64,
    failed: u64,
    elapsed: Duration,
}

/// Sends at `rate` messages per second for `duration` (a tick every
/// millisecond sends what is due; a send due while `LAG_IN_FLIGHT` are out
/// is skipped), then waits for the outstanding ones.
async fn paced_sends(t: &Target, rate: u64, duration: Duration) -> Paced {
    let c = client();
    let acked: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(LAG_IN_FLIGHT));
    let (mut issued, mut skipped) = (0u64, 0u64);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while start.elapsed() < duration {
        tick.tick().await;
        let due = (rate as f64 * start.elapsed().as_secs_f64()) as u64;
        while issued + skipped < due {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                skipped = due - issued;
                break;
            };
            let q = &t.queues[(issued % t.queues.len() as u64) as usize];
            issued += 1;
            let req = send_request(t.topic, q.queue_id, &t.body, 1, "");
            let (c, addr, record) = (c.clone(), q.broker_addr.clone(), t.record);
            let (acked, failed) = (acked.clone(), failed.clone());
            tokio::spawn(async move {
                let r = c.invoke(&addr, req, Duration::from_secs(10)).await;
                match r.ok().and_then(|r| stored_end(&r, record)) {
                    Some(end) => acked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((Instant::now(), end)),
                    None => drop(failed.fetch_add(1, Ordering::Relaxed)),
                }
                drop(permit);
            });
        }
    }
    let _ = permits.acquire_many(LAG_IN_FLIGHT as u32).await;
    let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(|e| e.into_inner()));
    Paced {
        acked,
        skipped,
        failed: failed.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}

/// Writes `bytes` to a new file in `dir` in 1 MiB writes, fsyncs it and
/// deletes it: MiB/s.
fn disk_write_speed(dir: &Path, bytes: u64) -> BenchResult<f64> {
    use std::io::Write;
    let path = dir.join("disk-speed.tmp");
    let chunk = vec![0x5au8; 1 << 20];
    let t0 = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    let secs = t0.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(bytes as f64 / secs.max(1e-9) / (1024.0 * 1024.0))
}

async fn catch_up_row(dir: &Path, a: &ReplicationBench) -> BenchResult<Report> {
    let want = a.catchup_mib.max(1) << 20;
    // One segment holds it all (an empty slave copies the last segment),
    // with room for the records' headers.
    let segment = 2 * want + (64 << 20);
    let mut pair = Pair::master(dir, "ASYNC_MASTER", segment).await?;
    let record = a.size.max(1) as u64 + 200;
    let count = (want / record).max(32) / 32 * 32;
    run_produce(&ProduceBench {
        window: 4,
        mode: SendMode::Batch,
        batch: 32,
        count: Some(count),
        duration: 3_600,
        ..produce_args(&pair.namesrv, "BenchReplicationCatchUp", a)
    })
    .await?;
    let end = pair.status().await?.master_commit_log_max_offset;
    if end as u64 >= segment {
        return Err(format!("{end} bytes do not fit one {segment}-byte segment").into());
    }
    let disk = {
        let (dir, end) = (dir.to_owned(), end as u64);
        tokio::task::spawn_blocking(move || disk_write_speed(&dir, end)).await??
    };
    pair.start_slave().await?;
    // From the slave's first report on: the copy, not the process start.
    // (Its very first report is 0, its empty log; the copy starts at the
    // segment's start, 0 here, so nothing is counted twice.)
    let (t0, from) = (Instant::now(), pair.slave_ack().await?.unwrap_or(0));
    let deadline = t0 + Duration::from_secs(600);
    while pair.slave_ack().await?.unwrap_or(0) < end {
        if Instant::now() > deadline {
            return Err("the slave did not catch up in 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = t0.elapsed().max(Duration::from_millis(1));
    let copied = (end - from).max(0) as f64;
    let mib_s = copied / took.as_secs_f64() / (1024.0 * 1024.0);
    let msgs = (copied / (end as f64).max(1.0) * count as f64) as u64;
    let mut r = Report::from_samples(
        "replication catch-up",
        Samples::default(),
        took,
        String::new(),
    );
    r.msgs = msgs;
    r.msgs_per_sec = msgs as f64 / took.as_secs_f64();
    r.mib_per_sec = mib_s;
    r.notes = format!(
        "empty slave copies {:.0} MiB: {mib_s:.0} MiB/s; disk write+fsync of {:.0} MiB: {disk:.0} MiB/s; catch-up {:.0} % of disk",
        copied / (1024.0 * 1024.0),
        end as f64 / (1024.0 * 1024.0),
        100.0 * mib_s / disk.max(1e-9)
    );
    Ok(r)
}
