//! `HaClient`: a slave's follower of its master's commit log (Java's
//! `DefaultHAClient`).
//!
//! While the broker is a SLAVE it connects to the master's HA address
//! (`haMasterAddress`, else what the name server answered to
//! REGISTER_BROKER), reports its commit-log end (8 bytes), and appends
//! every frame's body at the frame's offset through the writer's
//! `AppendReplicated`, so both logs are byte-identical; the writer
//! dispatches the complete records to the slave's own consume queues and
//! index. A record of a topic (or queue) the slave does not have yet gets
//! the topic created here, then dispatch resumes. After each frame with data
//! the new end is reported (the master's acknowledgement), otherwise every
//! `haSendHeartbeatInterval`. A frame at another offset than the slave's
//! end, a silent master (`haHousekeepingInterval`) or any I/O error closes
//! the connection; it is re-established with a backoff (100 ms doubling to
//! 5 s).

use actix::prelude::*;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, FramedRead};

use super::{HaConfig, MasterAddress, TRANSFER_HEADER_SIZE};
use crate::actors::broker::commit_log::{AppendReplicated, CommitLogWriter};
use crate::actors::broker::role::Role;
use crate::actors::broker::topic::{EnsureTopic, TopicManager};
use crate::store::CommitLogReader;
use crate::wire::bodies::{perm, TopicConfig};

/// Largest body accepted in one frame (Java's read buffer is 4 MiB).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Decodes the master's frames into (offset, body).
struct TransferCodec;

impl Decoder for TransferCodec {
    type Item = (i64, Bytes);
    type Error = std::io::Error;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<(i64, Bytes)>, std::io::Error> {
        if src.len() < TRANSFER_HEADER_SIZE {
            return Ok(None);
        }
        let size = i32::from_be_bytes([src[8], src[9], src[10], src[11]]);
        if size < 0 || size as usize > MAX_BODY {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("HA frame body of {size} bytes"),
            ));
        }
        let total = TRANSFER_HEADER_SIZE + size as usize;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let offset = src.get_i64();
        src.advance(4);
        Ok(Some((offset, src.split_to(size as usize).freeze())))
    }
}

/// What the client needs of the broker.
#[derive(Clone)]
pub struct HaClientDeps {
    pub cfg: HaConfig,
    pub role: Arc<Role>,
    pub master: MasterAddress,
    pub writer: Addr<CommitLogWriter>,
    pub reader: CommitLogReader,
    pub topic_manager: Addr<TopicManager>,
    pub default_queue_nums: i32,
    /// Controller mode: follow with the AutoSwitch protocol.
    pub auto: Option<Arc<super::autoswitch::AutoSwitch>>,
}

/// The client's state, for status requests.
#[derive(Debug, Default)]
pub struct HaClientState {
    pub connected: AtomicBool,
    pub reported: AtomicI64,
}

pub struct HaClient {
    deps: HaClientDeps,
    state: Arc<HaClientState>,
}

impl HaClient {
    pub fn new(deps: HaClientDeps) -> Self {
        HaClient {
            deps,
            state: Arc::default(),
        }
    }

    pub fn state(&self) -> Arc<HaClientState> {
        self.state.clone()
    }
}

impl Actor for HaClient {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(auto) = self.deps.auto.clone() {
            let f = super::autoswitch::client::run(self.deps.clone(), auto, self.state.clone());
            ctx.spawn(f.into_actor(self));
            return;
        }
        ctx.spawn(run(self.deps.clone(), self.state.clone()).into_actor(self));
    }
}

/// Stops following (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopClient;

impl Handler<StopClient> for HaClient {
    type Result = ();
    fn handle(&mut self, _: StopClient, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

async fn run(d: HaClientDeps, state: Arc<HaClientState>) {
    const MIN: Duration = Duration::from_millis(100);
    let mut backoff = MIN;
    loop {
        let addr = match (d.role.is_slave(), d.cfg.master_address.as_str()) {
            (false, _) => None,
            (true, "") => {
                let a = d.master.get();
                d.master.set_wanted(a.is_none());
                a
            }
            (true, a) => Some(a.to_owned()),
        };
        let Some(addr) = addr else {
            if !d.role.is_slave() {
                d.master.set_wanted(false);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => {
                tracing::info!(master = %addr, "connected to the master's HA port");
                state.connected.store(true, Ordering::Release);
                let r = follow(s, &d, &state).await;
                state.connected.store(false, Ordering::Release);
                match r {
                    Ok(()) => tracing::info!(master = %addr, "stopped following the master"),
                    Err(e) => tracing::warn!(master = %addr, error = %e, "HA connection closed"),
                }
                backoff = MIN;
            }
            Ok(Err(e)) => tracing::debug!(master = %addr, error = %e, "HA connect failed"),
            Err(_) => tracing::debug!(master = %addr, "HA connect timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

pub(crate) fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// One connection's life; returns when the broker is no longer a slave.
async fn follow(s: TcpStream, d: &HaClientDeps, state: &HaClientState) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let (rd, mut wr) = s.into_split();
    let mut frames = FramedRead::new(rd, TransferCodec);
    let heartbeat = Duration::from_millis(d.cfg.send_heartbeat_interval);
    let housekeeping = Duration::from_millis(d.cfg.housekeeping_interval);
    let report = |end: i64| end.to_be_bytes();
    let mut reported = d.reader.max_offset();
    if d.cfg.async_learner {
        wr.write_all(&report(super::LEARNER_HELLO)).await?;
    }
    wr.write_all(&report(reported)).await?;
    state.reported.store(reported, Ordering::Release);
    let (mut last_report, mut last_read) = (Instant::now(), Instant::now());
    loop {
        if !d.role.is_slave() {
            return Ok(());
        }
        let wait = heartbeat.saturating_sub(last_report.elapsed());
        match tokio::time::timeout(wait, frames.next()).await {
            Err(_) => {}
            Ok(None) => return Err(io_err("the master closed the connection")),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok((offset, body)))) => {
                last_read = Instant::now();
                let end = d.reader.max_offset();
                // An empty slave takes the master's first offset (Java
                // checks only once `slavePhyOffset != 0`).
                if offset != end && end != 0 {
                    return Err(io_err(format!(
                        "the master sent offset {offset}, the slave's log ends at {end}"
                    )));
                }
                if !body.is_empty() {
                    let body = coalesce(&mut frames, offset, body)?;
                    append(d, offset, body).await?;
                }
            }
        }
        if last_read.elapsed() > housekeeping {
            return Err(io_err("HA housekeeping: the master is silent"));
        }
        let end = d.reader.max_offset();
        if end != reported || last_report.elapsed() >= heartbeat {
            wr.write_all(&report(end)).await?;
            reported = end;
            state.reported.store(end, Ordering::Release);
            last_report = Instant::now();
        }
    }
}

/// Most bytes [`coalesce`] joins into one append.
const COALESCE_MAX: usize = 1024 * 1024;

/// Joins the frames already readable behind `first` (at `offset`) into one
/// body, up to [`COALESCE_MAX`]: a slave catching up appends and reports
/// once per burst the socket delivered, not once per
/// `haTransferBatchSize` frame. Never waits for more data.
fn coalesce(
    frames: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, TransferCodec>,
    offset: i64,
    first: Bytes,
) -> std::io::Result<Bytes> {
    use futures_util::FutureExt;
    let mut next = offset + first.len() as i64;
    let mut joined: Option<BytesMut> = None;
    while joined.as_ref().map_or(first.len(), |j| j.len()) < COALESCE_MAX {
        let Some(Some(frame)) = frames.next().now_or_never() else {
            break;
        };
        let (at, body) = frame?;
        if at != next {
            return Err(io_err(format!(
                "the master sent offset {at}, the slave expected {next}"
            )));
        }
        if !body.is_empty() {
            next += body.len() as i64;
            joined
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&body);
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

/// Appends one body and dispatches it, creating topics the slave lacks.
pub(crate) async fn append(d: &HaClientDeps, offset: i64, body: Bytes) -> std::io::Result<()> {
    let mut m = AppendReplicated {
        offset,
        bytes: body,
    };
    for _ in 0..64 {
        let r = d.writer.send(m).await.map_err(io_err)?.map_err(io_err)?;
        if r.missing.is_empty() {
            return Ok(());
        }
        for (topic, qid) in r.missing {
            let queues = (qid + 1).max(d.default_queue_nums);
            let cfg = TopicConfig::new(&topic, queues, perm::READ | perm::WRITE);
            match d.topic_manager.send(EnsureTopic(cfg)).await {
                Ok(Ok(e)) if e.queue(qid).is_some() => {}
                Ok(Ok(_)) => {
                    return Err(io_err(format!(
                        "topic {topic} has no queue {qid} on the slave"
                    )))
                }
                Ok(Err(e)) => return Err(io_err(format!("topic {topic}: {e}"))),
                Err(e) => return Err(io_err(e)),
            }
        }
        m = AppendReplicated {
            offset: r.end,
            bytes: Bytes::new(),
        };
    }
    Err(io_err("too many topics created for one frame"))
}
