//! The master side of AutoSwitch HA (Java's `AutoSwitchHAConnection`):
//! [`AutoSwitchService`] listens on `haListenPort` and starts one
//! [`AutoSwitchConnection`] actor per slave.
//!
//! A connection is silent until the slave's HANDSHAKE (16 bytes), answers
//! each one with its log end and epoch list, and starts transferring at
//! the slave's first ack (0: the log's first offset, or the start of its
//! last segment with `isSyncFromLastFile`). Frames carry at most
//! `haTransferBatchSize` bytes, never cross a segment end and never span
//! two epochs; each header names the epoch holding its first byte, that
//! epoch's start and the master's confirm offset. An empty frame is the
//! heartbeat (after `haSendHeartbeatInterval` without data). Acks go to
//! the [`AutoSwitch`] state (SyncStateSet, confirm offset) and to the
//! `GroupTransfer` (`inSyncReplicas` waits, learners counted there as in
//! Java). A frame in another state, no read for `haHousekeepingInterval`,
//! or the broker no longer master closes the connection.

use actix::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::codec::FramedRead;

use super::super::connection::write_frame;
use super::super::service::{accept_loop, Accepted};
use super::frames::{self, SlaveCodec, SlaveFrame, TransferHeader};
use super::AutoSwitch;

const IDLE_POLL: Duration = Duration::from_millis(20);

pub struct AutoSwitchService {
    listener: Option<TcpListener>,
    auto: Arc<AutoSwitch>,
    connections: Vec<Addr<AutoSwitchConnection>>,
}

impl AutoSwitchService {
    pub fn new(listener: TcpListener, auto: Arc<AutoSwitch>) -> Self {
        AutoSwitchService {
            listener: Some(listener),
            auto,
            connections: Vec::new(),
        }
    }
}

impl Actor for AutoSwitchService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        ctx.spawn(accept_loop(listener, ctx.address()).into_actor(self));
        super::start_shrink_check(&self.auto);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for c in self.connections.drain(..) {
            c.do_send(super::super::service::Close);
        }
    }
}

impl Handler<Accepted> for AutoSwitchService {
    type Result = ();
    fn handle(&mut self, m: Accepted, _: &mut Context<Self>) {
        self.connections.retain(|c| c.connected());
        let c = AutoSwitchConnection {
            conn_id: self.auto.group.next_id(),
            peer: m.1.to_string(),
            auto: self.auto.clone(),
            stream: Some(m.0),
            slave: None,
            state: watch::channel(Progress::default()).0,
            transfer: Arc::default(),
            last_read: Instant::now(),
        };
        self.connections.push(c.start());
    }
}

impl Handler<super::super::service::Close> for AutoSwitchService {
    type Result = ();
    fn handle(&mut self, _: super::super::service::Close, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// What the reader tells the transfer task.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Handshakes received (each gets a reply).
    handshakes: u32,
    sync_from_last_file: bool,
    /// The slave's last ack (-1 before the first after a handshake).
    ack: i64,
    /// When that ack arrived.
    acked_at: Option<Instant>,
    /// The slave's broker id.
    id: i64,
}

pub struct AutoSwitchConnection {
    conn_id: u64,
    peer: String,
    auto: Arc<AutoSwitch>,
    stream: Option<TcpStream>,
    /// (broker id, learner) from the handshake.
    slave: Option<(i64, bool)>,
    state: watch::Sender<Progress>,
    /// (master end, time) of the last frame with data.
    transfer: Arc<Mutex<Option<(i64, Instant)>>>,
    last_read: Instant,
}

impl Actor for AutoSwitchConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(stream) = self.stream.take() else {
            ctx.stop();
            return;
        };
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        ctx.add_stream(FramedRead::new(rd, SlaveCodec));
        let t = transfer(
            wr,
            self.auto.clone(),
            self.state.subscribe(),
            self.transfer.clone(),
        );
        ctx.spawn(t.into_actor(self).map(|r, act, ctx| {
            if let Err(e) = r {
                tracing::info!(slave = %act.peer, error = %e, "AutoSwitch transfer ended");
            }
            ctx.stop();
        }));
        let limit = Duration::from_millis(self.auto.ha.housekeeping_interval);
        ctx.run_interval(limit.clamp(Duration::from_millis(100), Duration::from_secs(1)), move |act, ctx| {
            if act.last_read.elapsed() > limit {
                tracing::warn!(slave = %act.peer, "HA housekeeping: the slave is silent, closing");
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some((id, _)) = self.slave {
            self.auto.group.remove_slave(self.conn_id);
            self.auto.slave_closed(id);
            tracing::info!(slave = %self.peer, broker_id = id, "slave disconnected");
        }
    }
}

impl Handler<super::super::service::Close> for AutoSwitchConnection {
    type Result = ();
    fn handle(&mut self, _: super::super::service::Close, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl StreamHandler<Result<SlaveFrame, std::io::Error>> for AutoSwitchConnection {
    fn handle(&mut self, item: Result<SlaveFrame, std::io::Error>, ctx: &mut Context<Self>) {
        self.last_read = Instant::now();
        match item {
            Ok(SlaveFrame::Handshake {
                sync_from_last_file,
                async_learner,
                broker_id,
            }) => {
                if !self.auto.is_master() {
                    tracing::info!(slave = %self.peer, "handshake while not master, closing");
                    ctx.stop();
                    return;
                }
                match self.slave {
                    Some((id, _)) if id != broker_id => {
                        tracing::warn!(slave = %self.peer, "handshake with another broker id, closing");
                        ctx.stop();
                        return;
                    }
                    Some(_) => {}
                    None => {
                        tracing::info!(slave = %self.peer, broker_id, learner = async_learner, "slave handshake");
                        self.slave = Some((broker_id, async_learner));
                        self.auto
                            .slave_connected(broker_id, &self.peer, async_learner);
                        self.auto.group.add_slave(self.conn_id, self.peer.clone());
                    }
                }
                self.state.send_modify(|p| {
                    p.handshakes += 1;
                    p.sync_from_last_file = sync_from_last_file;
                    p.ack = -1;
                    p.acked_at = None;
                    p.id = broker_id;
                });
            }
            Ok(SlaveFrame::Ack(offset)) => {
                let Some((id, _)) = self.slave else {
                    tracing::warn!(slave = %self.peer, "ack before the handshake, closing");
                    ctx.stop();
                    return;
                };
                if offset < 0 {
                    tracing::warn!(slave = %self.peer, offset, "negative ack, closing");
                    ctx.stop();
                    return;
                }
                self.state.send_modify(|p| {
                    p.ack = offset;
                    p.acked_at = Some(Instant::now());
                });
                let t = *self.transfer.lock().unwrap_or_else(|e| e.into_inner());
                self.auto.acked(id, offset, t);
                self.auto.group.acked(self.conn_id, offset);
            }
            Err(e) => {
                tracing::info!(slave = %self.peer, error = %e, "HA read failed");
                ctx.stop();
            }
        }
    }
}

fn closed() -> std::io::Error {
    std::io::Error::other("no longer master")
}

/// Waits for the next progress change; Err when the connection is gone.
async fn changed(rx: &mut watch::Receiver<Progress>) -> std::io::Result<()> {
    rx.changed()
        .await
        .map_err(|_| std::io::Error::other("connection closed"))
}

/// The write side: handshake replies, then the transfer loop.
async fn transfer(
    mut w: OwnedWriteHalf,
    auto: Arc<AutoSwitch>,
    mut rx: watch::Receiver<Progress>,
    last: Arc<Mutex<Option<(i64, Instant)>>>,
) -> std::io::Result<()> {
    let reader = auto.reader.clone();
    let mut replied = 0u32;
    // Handshake until the first ack.
    let (start, from_last) = loop {
        let p = *rx.borrow_and_update();
        if p.handshakes > replied {
            if !auto.is_master() {
                return Err(closed());
            }
            let (end, epochs) = {
                let e = auto.epochs();
                let end = reader.max_offset();
                (
                    end,
                    e.entries(end)
                        .iter()
                        .map(|x| (x.epoch, x.start))
                        .collect::<Vec<_>>(),
                )
            };
            w.write_all(&frames::handshake_reply(end, &epochs)).await?;
            replied = p.handshakes;
            continue;
        }
        if replied > 0 && p.ack >= 0 {
            break (p.ack, p.sync_from_last_file);
        }
        changed(&mut rx).await?;
    };
    let mut next = if start > 0 {
        start
    } else if from_last {
        let end = reader.max_offset();
        let seg = reader.next_segment_start(0);
        (end - end.rem_euclid(seg)).max(reader.min_offset())
    } else {
        reader.min_offset()
    };
    tracing::info!(from = next, requested = start, "AutoSwitch transfer starts");
    let heartbeat = Duration::from_millis(auto.ha.send_heartbeat_interval);
    let batch = auto.ha.transfer_batch_size.max(1);
    let mut last_write = Instant::now();
    loop {
        if !auto.is_master() {
            return Err(closed());
        }
        if rx.has_changed().unwrap_or(true) {
            let p = *rx.borrow_and_update();
            if p.handshakes > replied {
                return Err(std::io::Error::other("handshake during transfer"));
            }
        }
        let woken = auto.group.woken();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let entry = {
            let e = auto.epochs();
            e.entry_at(next)
                .or_else(|| e.entries(i64::MAX).first().copied())
        };
        let (epoch, epoch_start, epoch_end) =
            entry.map_or((-1, 0, i64::MAX), |e| (e.epoch, e.start, e.end));
        let room = usize::try_from((epoch_end - next).max(0)).unwrap_or(usize::MAX);
        let header = |confirm| TransferHeader {
            offset: next,
            epoch,
            epoch_start,
            confirm,
        };
        if let Some(body) = reader
            .read_range(next, batch.min(room))
            .filter(|b| !b.is_empty())
        {
            let h = header(reader.confirm_offset());
            write_frame(&mut w, &frames::transfer_header(&h, body.len()), &body).await?;
            next += body.len() as i64;
            *last.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((reader.max_offset().min(next), Instant::now()));
            last_write = Instant::now();
            continue;
        }
        // Nothing left to send and the slave's last ack covers it all: it
        // was caught up when that ack came — not now. A slave that acked
        // the end once and then froze (SIGSTOP, a delayed network) must
        // leave the SyncStateSet of an idle master too (apache/rocketmq
        // PR #9942's delayed slaves).
        if next >= reader.max_offset() {
            let p = *rx.borrow();
            if let (true, Some(at)) = (p.ack >= next, p.acked_at) {
                auto.caught_up(p.id, at);
            }
        }
        if last_write.elapsed() >= heartbeat {
            let h = header(reader.confirm_offset());
            write_frame(&mut w, &frames::transfer_header(&h, 0), &[]).await?;
            last_write = Instant::now();
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
}
