//! `HaConnection`: one per connected slave, on the master (Java's
//! `DefaultHAConnection` with its `ReadSocketService` and
//! `WriteSocketService`).
//!
//! The actor reads the slave's 8-byte reports (its commit-log end) as a
//! stream; the first one says where the transfer starts, every one is an
//! acknowledgement handed to [`GroupTransfer`]. A transfer task owned by
//! the actor sends the log: zero-copy `Bytes` slices from the
//! `CommitLogReader`, at most `haTransferBatchSize` per frame and never
//! across a segment end, header and body in one vectored write, paced by
//! the socket (a slow slave slows only its own connection). Without new data
//! it waits for the send path's wake-up (or a short poll for internal
//! writers) and sends an empty heartbeat frame every
//! `haSendHeartbeatInterval`. No report for `haHousekeepingInterval`, a
//! socket error or a malformed report stops the actor, which unregisters
//! the slave; the slave reconnects.

use actix::prelude::*;
use bytes::{Buf, BytesMut};
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::codec::{Decoder, FramedRead};

use super::group_transfer::GroupTransfer;
use super::{transfer_header, HaConfig, LEARNER_HELLO, REPORT_HEADER_SIZE};
use crate::store::CommitLogReader;

/// How often an idle transfer looks at the log without a wake-up (records
/// written by the broker's own services do not pass the send path).
const IDLE_POLL: Duration = Duration::from_millis(20);

/// Decodes the slave's reports.
struct ReportCodec;

impl Decoder for ReportCodec {
    type Item = i64;
    type Error = std::io::Error;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<i64>, std::io::Error> {
        if src.len() < REPORT_HEADER_SIZE {
            return Ok(None);
        }
        Ok(Some(src.get_i64()))
    }
}

pub struct HaConnection {
    id: u64,
    peer: String,
    group: Arc<GroupTransfer>,
    reader: CommitLogReader,
    cfg: HaConfig,
    stream: Option<TcpStream>,
    /// The slave's last report (-1 before the first).
    ack: watch::Sender<i64>,
    last_read: Instant,
}

impl HaConnection {
    pub fn new(
        stream: TcpStream,
        peer: String,
        group: Arc<GroupTransfer>,
        reader: CommitLogReader,
        cfg: HaConfig,
    ) -> Self {
        HaConnection {
            id: group.next_id(),
            peer,
            group,
            reader,
            cfg,
            stream: Some(stream),
            ack: watch::channel(-1).0,
            last_read: Instant::now(),
        }
    }
}

impl Actor for HaConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(stream) = self.stream.take() else {
            ctx.stop();
            return;
        };
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        ctx.add_stream(FramedRead::new(rd, ReportCodec));
        self.group.add_slave(self.id, self.peer.clone());
        let transfer = transfer(
            wr,
            self.reader.clone(),
            self.ack.subscribe(),
            self.group.clone(),
            self.cfg.clone(),
        );
        ctx.spawn(transfer.into_actor(self).map(|r, act, ctx| {
            if let Err(e) = r {
                tracing::info!(slave = %act.peer, error = %e, "HA transfer ended");
            }
            ctx.stop();
        }));
        let every = Duration::from_millis(self.cfg.housekeeping_interval.clamp(100, 1_000));
        let limit = Duration::from_millis(self.cfg.housekeeping_interval);
        ctx.run_interval(every, move |act, ctx| {
            if act.last_read.elapsed() > limit {
                tracing::warn!(slave = %act.peer, "HA housekeeping: no report from the slave, closing");
                ctx.stop();
            }
        });
        tracing::info!(slave = %self.peer, "slave connected");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.group.remove_slave(self.id);
        tracing::info!(slave = %self.peer, "slave disconnected");
    }
}

impl StreamHandler<Result<i64, std::io::Error>> for HaConnection {
    fn handle(&mut self, item: Result<i64, std::io::Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(offset) if offset >= 0 => {
                self.last_read = Instant::now();
                if *self.ack.borrow() < 0 {
                    tracing::info!(slave = %self.peer, offset, "slave requests the log from");
                }
                self.ack.send_replace(offset);
                self.group.acked(self.id, offset);
            }
            Ok(LEARNER_HELLO) if *self.ack.borrow() < 0 => {
                tracing::info!(slave = %self.peer, "the slave is a learner (asyncLearner)");
                self.last_read = Instant::now();
                self.group.set_learner(self.id);
            }
            Ok(offset) => {
                tracing::warn!(slave = %self.peer, offset, "negative slave offset, closing");
                ctx.stop();
            }
            Err(e) => {
                tracing::info!(slave = %self.peer, error = %e, "HA read failed");
                ctx.stop();
            }
        }
    }
}

/// Writes `header` and `body` fully, as few syscalls as the socket allows.
pub(crate) async fn write_frame(
    w: &mut OwnedWriteHalf,
    header: &[u8],
    body: &[u8],
) -> std::io::Result<()> {
    let (mut h, mut b) = (header, body);
    while !h.is_empty() {
        let n = w
            .write_vectored(&[IoSlice::new(h), IoSlice::new(b)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_h = n.min(h.len());
        h = &h[from_h..];
        b = &b[n - from_h..];
    }
    w.write_all(b).await
}

/// Where an empty slave (one reporting offset 0) starts: the start of the
/// master's last commit-log segment, as Java's
/// `WriteSocketService#run` computes it (`maxPhyOffset - maxPhyOffset %
/// mappedFileSizeCommitLog`), never below what the master still keeps. A
/// new slave thus holds the recent messages, not the whole history.
fn last_segment_start(reader: &CommitLogReader) -> i64 {
    let end = reader.max_offset();
    // `next_segment_start(0)` is the segment size.
    let start = reader.next_segment_start(end) - reader.next_segment_start(0);
    start.max(reader.min_offset()).max(0)
}

/// The transfer loop (`WriteSocketService#run`).
async fn transfer(
    mut w: OwnedWriteHalf,
    reader: CommitLogReader,
    mut ack: watch::Receiver<i64>,
    group: Arc<GroupTransfer>,
    cfg: HaConfig,
) -> std::io::Result<()> {
    let requested = loop {
        let v = *ack.borrow_and_update();
        if v >= 0 {
            break v;
        }
        if ack.changed().await.is_err() {
            return Ok(());
        }
    };
    let mut next = if requested == 0 {
        last_segment_start(&reader)
    } else {
        requested
    };
    tracing::info!(from = next, requested, "HA transfer starts");
    let heartbeat = Duration::from_millis(cfg.send_heartbeat_interval);
    let batch = cfg.transfer_batch_size.max(1);
    let mut last_write = Instant::now();
    loop {
        let woken = group.woken();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Some(body) = reader.read_range(next, batch).filter(|b| !b.is_empty()) {
            write_frame(&mut w, &transfer_header(next, body.len() as i32), &body).await?;
            next += body.len() as i64;
            last_write = Instant::now();
            continue;
        }
        if last_write.elapsed() >= heartbeat {
            write_frame(&mut w, &transfer_header(next, 0), &[]).await?;
            last_write = Instant::now();
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
}
