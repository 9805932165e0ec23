//! `Session`: one actor per TCP connection, on either server role.
//!
//! The read half is a stream of decoded frames (tokio-util `FramedRead` with
//! [`FrameCodec`]); each request becomes a typed message to the role's
//! actors through the role's [`Processor`], and each answer goes to a writer
//! task that batches whatever is queued and writes it with vectored I/O, so
//! pull bodies (slices of the mapped commit log) are never copied.
//!
//! Requests on one connection are served concurrently (responses may leave
//! out of order; the peer matches them by `opaque`). A panic while serving a
//! request is caught, answered with SYSTEM_ERROR and ends the session: the
//! client reconnects, the process keeps serving.
//!
//! Limits ([`ConnLimits`]): a connection may have `max_in_flight` requests
//! between being read and their response being written; past that the
//! session stops reading the socket (back-pressure reaches the client, a
//! client that never reads cannot make the broker hold its answers). A
//! connection silent for `idle_timeout` (RocketMQ's
//! `serverChannelMaxIdleTimeSeconds`) is closed, and so is one whose frame
//! has not completed within `frame_timeout`.
//!
//! A session runs on plain TCP or on TLS ([`crate::tls::Stream`]): the
//! halves are an enum, so plaintext keeps tokio's concrete TCP halves and
//! its vectored writes; after each batch the writer flushes, which pushes
//! out the records a TLS stream still holds (a no-op on TCP).

use actix::prelude::*;
use bytes::BytesMut;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::FramedRead;

use crate::tls::{ReadHalf, Stream, WriteHalf};
use crate::wire::codes::response;
use crate::wire::{FrameCodec, Inbound, RemotingCommand, WireError};

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(1);

/// Per-connection limits.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Requests read but not yet answered on the wire; at the limit the
    /// session stops reading until answers are written.
    pub max_in_flight: usize,
    /// Close a connection that sent nothing for this long.
    pub idle_timeout: Duration,
    /// Close a connection whose started frame does not complete in time.
    pub frame_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_in_flight: 1024,
            idle_timeout: Duration::from_secs(120),
            frame_timeout: Duration::from_secs(30),
        }
    }
}

/// A command to write, and the in-flight slot its request holds until it is
/// written.
type Outbound = (RemotingCommand, Option<OwnedSemaphorePermit>);

/// The way back to a connected peer: used to answer, and by the broker to
/// call clients (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE, ...).
#[derive(Clone)]
pub struct Channel {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    tx: mpsc::UnboundedSender<Outbound>,
    pending: Arc<Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>>,
    stop: Arc<tokio::sync::Notify>,
    /// The session itself (fault injection, panics). Shared: cloning an
    /// actix address allocates, and a channel is cloned for every request.
    session: Option<Arc<Addr<Session>>>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Channel#{}({})", self.id, self.peer)
    }
}

impl Channel {
    /// Queues a command for writing; false when the connection is gone.
    pub fn send(&self, cmd: RemotingCommand) -> bool {
        self.tx.send((cmd, None)).is_ok()
    }

    /// Queues the answer to a request; its in-flight slot frees once the
    /// answer is written.
    fn answer(&self, cmd: RemotingCommand, slot: Option<OwnedSemaphorePermit>) -> bool {
        self.tx.send((cmd, slot)).is_ok()
    }

    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Sends a one-way request to the peer.
    pub fn oneway(&self, mut cmd: RemotingCommand) -> bool {
        cmd.opaque = NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        cmd.mark_oneway();
        self.send(cmd)
    }

    /// Sends a request to the peer and waits for its response.
    pub async fn invoke(
        &self,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Option<RemotingCommand> {
        let opaque = NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        cmd.opaque = opaque;
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(opaque, tx);
        }
        if !self.send(cmd) {
            return None;
        }
        let r = tokio::time::timeout(timeout, rx)
            .await
            .ok()
            .and_then(|r| r.ok());
        if r.is_none() {
            if let Ok(mut p) = self.pending.lock() {
                p.remove(&opaque);
            }
        }
        r
    }

    /// Fault injection (tests): makes the session serving this connection
    /// fail with an error or a panic.
    pub fn inject_fault(&self, panic: bool) {
        if let Some(f) = &self.session {
            f.do_send(SessionFault { panic });
        }
    }

    /// Closes the connection from the server side.
    pub fn close(&self) {
        self.stop.notify_one();
    }
}

/// Serves the requests of one server role. Implementations are cheap to
/// share: they hold actor addresses and shared read-mostly state.
pub trait Processor: Send + Sync + 'static {
    /// Serves one request: builds its future and hands it to
    /// [`Responder::spawn`] (one task per request, its only allocation).
    fn process(&self, channel: &Channel, req: RemotingCommand, responder: Responder);
    /// Called once when a connection ends.
    fn closed(&self, _channel: &Channel) {}
}

/// Where the answer to one request goes.
pub struct Responder {
    channel: Channel,
    code: i32,
    opaque: i32,
    oneway: bool,
    slot: Option<OwnedSemaphorePermit>,
}

impl Responder {
    /// Runs `fut` as its own task on this thread, not as an item of the
    /// session actor's context (actix polls every pending context item on
    /// each wake-up, which made the cost per event grow with the number of
    /// requests in flight), and sends what it returns (`None`: no answer).
    pub fn spawn<F>(self, fut: F)
    where
        F: Future<Output = Option<RemotingCommand>> + 'static,
    {
        let Responder {
            channel,
            code,
            opaque,
            oneway,
            slot,
        } = self;
        actix::spawn(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(Some(mut resp)) => {
                    if !oneway {
                        resp.opaque = opaque;
                        resp.flag |= crate::wire::command::FLAG_RESPONSE;
                        channel.answer(resp, slot);
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    if let Some(s) = &channel.session {
                        s.do_send(Panicked {
                            code,
                            opaque,
                            oneway,
                        })
                    }
                }
            }
        });
    }
}

pub struct Session {
    channel: Channel,
    processor: Arc<dyn Processor>,
    /// Counts this connection against the server's cap while it lives.
    _guard: super::server::ConnGuard,
}

impl Session {
    /// Starts a session actor for an accepted connection (TLS handshake
    /// done) on the current arbiter.
    pub(crate) fn start(
        stream: Stream,
        (peer, local): (SocketAddr, SocketAddr),
        processor: Arc<dyn Processor>,
        limits: ConnLimits,
        guard: super::server::ConnGuard,
    ) -> Addr<Session> {
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = Arc::new(tokio::sync::Notify::new());
        let channel = Channel {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            peer,
            local,
            tx,
            pending: Arc::new(Mutex::new(HashMap::new())),
            stop: stop.clone(),
            session: None,
        };
        Session::create(move |ctx| {
            let mut channel = channel;
            channel.session = Some(Arc::new(ctx.address()));
            ctx.add_stream(read_events(rd, limits));
            let addr = ctx.address();
            actix::spawn(async move {
                tokio::select! {
                    _ = write_loop(wr, rx) => {}
                    _ = stop.notified() => {}
                }
                addr.do_send(WriterDone);
            });
            Session {
                channel,
                processor,
                _guard: guard,
            }
        })
    }

    fn serve(&mut self, req: RemotingCommand, slot: OwnedSemaphorePermit, ctx: &mut Context<Self>) {
        let responder = Responder {
            channel: self.channel.clone(),
            code: req.code,
            opaque: req.opaque,
            oneway: req.is_oneway(),
            slot: Some(slot),
        };
        let (code, opaque, oneway) = (responder.code, responder.opaque, responder.oneway);
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.processor.process(&self.channel, req, responder)
        }));
        if started.is_err() {
            self.panicked(code, opaque, oneway, ctx);
        }
    }

    fn panicked(&mut self, code: i32, opaque: i32, oneway: bool, ctx: &mut Context<Self>) {
        tracing::error!(peer = %self.channel.peer, code, "request handler panicked; closing session");
        if !oneway {
            let mut r = RemotingCommand::new_response(
                response::SYSTEM_ERROR,
                Some(format!("internal error while serving request code {code}")),
            );
            r.opaque = opaque;
            self.channel.send(r);
        }
        // Let the writer flush the error, then end the session.
        ctx.run_later(Duration::from_millis(50), |_, ctx| ctx.stop());
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.channel.close();
        if let Ok(mut p) = self.channel.pending.lock() {
            p.clear();
        }
        self.processor.closed(&self.channel);
    }
}

/// What the read side of a connection delivers to its session.
// A frame is moved once; boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum ReadEvent {
    /// A frame, with the in-flight slot it holds.
    Frame(Inbound, OwnedSemaphorePermit),
    /// The stream cannot be read on (a bad length, an I/O error).
    Failed(WireError),
    /// Nothing arrived for `idle_timeout`.
    Idle,
    /// A frame began and did not complete within `frame_timeout`.
    Stalled,
}

/// How often a waiting read checks its timeouts.
const READ_TICK: Duration = Duration::from_secs(1);

/// The connection's frames, read only while an in-flight slot is free, and
/// ended by the idle and frame timeouts.
fn read_events(rd: ReadHalf, limits: ConnLimits) -> impl futures_util::Stream<Item = ReadEvent> {
    use futures_util::StreamExt;
    let frames = FramedRead::with_capacity(rd, FrameCodec::default(), 64 * 1024);
    let slots = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    let state = Some((frames, slots, limits));
    futures_util::stream::unfold(state, |state| async move {
        let (mut frames, slots, limits) = state?;
        // Back-pressure: without a free slot the socket is not read.
        let slot = slots.clone().acquire_owned().await.ok()?;
        let tick = READ_TICK.min(limits.frame_timeout).min(limits.idle_timeout);
        let waiting_since = std::time::Instant::now();
        let mut partial_since = None;
        let event = loop {
            // The common case (data already buffered) arms no timer.
            let next = match frames.next().now_or_never() {
                Some(next) => Some(next),
                None => tokio::time::timeout(tick, frames.next()).await.ok(),
            };
            match next {
                Some(Some(Ok(inbound))) => break ReadEvent::Frame(inbound, slot),
                Some(Some(Err(e))) => return Some((ReadEvent::Failed(e), None)),
                Some(None) => return None,
                None => {
                    let now = std::time::Instant::now();
                    if frames.read_buffer().is_empty() {
                        partial_since = None;
                        if now.duration_since(waiting_since) >= limits.idle_timeout {
                            return Some((ReadEvent::Idle, None));
                        }
                    } else if now.duration_since(*partial_since.get_or_insert(now))
                        >= limits.frame_timeout
                    {
                        return Some((ReadEvent::Stalled, None));
                    }
                }
            }
        };
        Some((event, Some((frames, slots, limits))))
    })
}

impl StreamHandler<ReadEvent> for Session {
    fn handle(&mut self, event: ReadEvent, ctx: &mut Context<Self>) {
        let (item, slot) = match event {
            ReadEvent::Frame(inbound, slot) => (Ok(inbound), Some(slot)),
            ReadEvent::Failed(e) => (Err(e), None),
            ReadEvent::Idle => {
                tracing::info!(peer = %self.channel.peer, "connection idle too long; closing");
                ctx.stop();
                return;
            }
            ReadEvent::Stalled => {
                tracing::warn!(peer = %self.channel.peer, "frame not completed in time; closing");
                ctx.stop();
                return;
            }
        };
        match item {
            Ok(Inbound::Command(cmd)) if cmd.is_response() => {
                let waiter = self
                    .channel
                    .pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&cmd.opaque));
                if let Some(w) = waiter {
                    let _ = w.send(cmd);
                }
            }
            Ok(Inbound::Command(cmd)) => match slot {
                Some(slot) => self.serve(cmd, slot, ctx),
                None => self.channel.close(),
            },
            Ok(Inbound::Malformed(e, opaque)) => {
                tracing::warn!(peer = %self.channel.peer, error = %e, "malformed frame");
                let mut r = RemotingCommand::new_response(
                    response::SYSTEM_ERROR,
                    Some(format!("malformed request frame: {e}")),
                );
                r.opaque = opaque.unwrap_or(0);
                self.channel.answer(r, slot);
            }
            Err(e) => {
                tracing::warn!(peer = %self.channel.peer, error = %e, "unreadable stream; closing");
                let mut r = RemotingCommand::new_response(
                    response::SYSTEM_ERROR,
                    Some(format!("closing connection: {e}")),
                );
                r.opaque = 0;
                self.channel.send(r);
                ctx.run_later(Duration::from_millis(50), |_, ctx| ctx.stop());
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct WriterDone;

/// A request handler of this session panicked.
#[derive(Message)]
#[rtype(result = "()")]
struct Panicked {
    code: i32,
    opaque: i32,
    oneway: bool,
}

impl Handler<Panicked> for Session {
    type Result = ();
    fn handle(&mut self, p: Panicked, ctx: &mut Context<Self>) {
        self.panicked(p.code, p.opaque, p.oneway, ctx);
    }
}

impl Handler<WriterDone> for Session {
    type Result = ();
    fn handle(&mut self, _: WriterDone, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Fault injection for supervision tests: a session told to fail.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionFault {
    pub panic: bool,
}

impl Handler<SessionFault> for Session {
    type Result = ();
    fn handle(&mut self, f: SessionFault, ctx: &mut Context<Self>) {
        if f.panic {
            let r = std::panic::catch_unwind(|| panic!("injected session panic"));
            if r.is_err() {
                self.panicked(0, 0, true, ctx);
            }
        } else {
            tracing::warn!(peer = %self.channel.peer, "injected session error; closing");
            ctx.stop();
        }
    }
}

/// Writes queued commands, batching everything already queued into one
/// vectored write.
async fn write_loop(mut wr: WriteHalf, mut rx: mpsc::UnboundedReceiver<Outbound>) {
    let mut batch: Vec<RemotingCommand> = Vec::with_capacity(64);
    // The written requests' in-flight slots, freed after the write.
    let mut slots: Vec<OwnedSemaphorePermit> = Vec::with_capacity(64);
    let mut heads = BytesMut::with_capacity(16 * 1024);
    // Kept across writes so that a write allocates nothing.
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::with_capacity(64);
    let mut spare: Vec<IoSlice<'static>> = Vec::with_capacity(128);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some((cmd, slot)) = next.take() {
            batch.push(cmd);
            slots.extend(slot);
            if batch.len() < 256 {
                next = rx.try_recv().ok();
            }
        }
        heads.clear();
        ranges.clear();
        for c in &batch {
            let start = heads.len();
            c.encode_head(&mut heads);
            ranges.push(start..heads.len());
        }
        let mut slices = reuse_slices(std::mem::take(&mut spare));
        for (c, r) in batch.iter().zip(ranges.iter()) {
            slices.push(IoSlice::new(&heads[r.clone()]));
            for b in &c.body {
                if !b.is_empty() {
                    slices.push(IoSlice::new(b));
                }
            }
        }
        // The flush pushes out what TLS buffered (free on TCP).
        if write_all_vectored(&mut wr, &mut slices).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        spare = reuse_slices(slices);
        batch.clear();
        slots.clear();
    }
    let _ = wr.shutdown().await;
}

/// An empty vector of slices on the allocation of `v` (the lifetime of the
/// borrowed buffers changes, the layout does not; collecting from an empty
/// `into_iter` of the same layout keeps the allocation).
fn reuse_slices<'a>(mut v: Vec<IoSlice<'_>>) -> Vec<IoSlice<'a>> {
    v.clear();
    v.into_iter()
        .map(|_| -> IoSlice<'a> { unreachable!() })
        .collect()
}

async fn write_all_vectored(
    wr: &mut WriteHalf,
    mut slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    // Skip leading empty slices and write until everything is out.
    while !slices.is_empty() {
        let n = wr.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}
