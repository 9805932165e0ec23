//! `QueueActor`: one per (topic, queue id). Owns the consume queue, answers
//! pulls from it with slices of the mapped commit log, and holds long-polling
//! pulls until a dispatch brings a message or the hold times out. In
//! controller mode a read stops at the confirm offset; a held pull that
//! found only records past it is woken when the confirm offset reaches the
//! first of them (`CommitLogReader::confirm_reached`), not only at the next
//! dispatch.
//!
//! Supervised (`supervisor::start_in_arbiter`): after a failure it reopens
//! its consume queue from disk and re-reads the commit log after its last
//! unit, so units of a `Dispatch` lost in the failure are written again
//! (RocketMQ rebuilds consume queues from the commit log the same way,
//! `ReputMessageService`). Its mailbox (and the dispatches queued in it)
//! survives the restart; held pulls are dropped (their clients retry).

use actix::prelude::*;
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::oneshot;

use crate::actors::supervisor::{self, armed, guard, restarts, ActorFailure, Fault};
use crate::store::{Boundary, CommitLogReader, ConsumeQueue, Flusher, StoreConfig};
use std::sync::Arc;

/// Most consume-queue units scanned by one pull (filtered ones included).
const MAX_SCAN_UNITS: usize = 16_000;
/// Most bytes returned by one pull.
const MAX_PULL_BYTES: usize = 8 * 1024 * 1024;

pub struct QueueActor {
    topic: String,
    queue_id: i32,
    store_cfg: StoreConfig,
    reader: CommitLogReader,
    cq: Option<ConsumeQueue>,
    holds: Vec<Hold>,
    next_hold: u64,
    long_polling: bool,
    deleted: bool,
    flusher: Arc<Flusher>,
    /// controller mode: the commit-log end the held pulls wait for the
    /// confirm offset to reach, with the waiting future (one per queue).
    confirm_wait: Option<(i64, SpawnHandle)>,
}

struct Hold {
    id: u64,
    query: PullQuery,
    tx: oneshot::Sender<PullOutcome>,
    /// The hold's timeout, cancelled when the pull is answered early.
    timer: Option<SpawnHandle>,
}

impl QueueActor {
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        arb: &ArbiterHandle,
        topic: String,
        queue_id: i32,
        store_cfg: StoreConfig,
        reader: CommitLogReader,
        cq: Option<ConsumeQueue>,
        long_polling: bool,
        flusher: Arc<Flusher>,
    ) -> Addr<QueueActor> {
        supervisor::start_in_arbiter(arb, "Queue", move |_| QueueActor {
            topic,
            queue_id,
            store_cfg,
            reader,
            cq,
            holds: Vec::new(),
            next_hold: 0,
            long_polling,
            deleted: false,
            flusher,
            confirm_wait: None,
        })
    }

    fn cq(&mut self) -> Result<&mut ConsumeQueue, ActorFailure> {
        if self.cq.is_none() {
            let cq = ConsumeQueue::open(&self.store_cfg, &self.topic, self.queue_id)
                .map_err(|e| ActorFailure(format!("open consume queue: {e}")))?;
            self.flusher.register_queue(&cq);
            self.cq = Some(cq);
        }
        self.cq
            .as_mut()
            .ok_or_else(|| ActorFailure("no consume queue".into()))
    }

    /// Writes the units of this queue's records published in `[from, to)`
    /// that the queue does not have yet; returns how many.
    fn catch_up(&mut self, from: i64, to: i64) -> usize {
        let (topic, qid) = (self.topic.clone(), self.queue_id);
        let (reader, cfg) = (self.reader.clone(), self.store_cfg.clone());
        let Ok(cq) = self.cq() else { return 0 };
        let mut n = 0;
        crate::store::live_scan::scan_published(&reader, &cfg, from, to, |d| {
            if d.queue_id == qid
                && d.topic == topic
                && d.should_dispatch()
                && d.queue_offset >= cq.max_offset()
                && cq
                    .put(d.queue_offset, d.phys_offset, d.size, d.tags_code)
                    .is_ok()
            {
                n += 1;
            }
        });
        n
    }

    /// Commit-log end of the queue's last unit (None for an empty queue).
    fn last_unit_end(&mut self) -> Option<i64> {
        let u = self.cq().ok()?.last_unit()?;
        Some(u.phys_offset + u.size as i64)
    }

    /// Restart: reopen the consume queue, then write what the log holds for
    /// this queue past its last unit.
    fn rebuild(&mut self) {
        self.cq = None;
        if self.deleted {
            return;
        }
        if let Some(from) = self.last_unit_end() {
            let n = self.catch_up(from, self.reader.max_offset());
            if n > 0 {
                tracing::warn!(topic = %self.topic, queue = self.queue_id, units = n,
                    "queue restart re-dispatched units from the commit log");
            }
        }
    }

    /// (min, max) as consumers see them: in controller mode the max stops
    /// at the first unit of a record past the confirm offset (RocketMQ
    /// builds no unit past it, apache/rocketmq#6609: GET_MAX_OFFSET, a
    /// pull's maxOffset and POP never announce what a failover may cut).
    fn offsets(&mut self) -> (i64, i64) {
        if !self.reader.confirm_limited() {
            return self.written_offsets();
        }
        let confirm = self.reader.confirm_offset();
        match self.cq() {
            Ok(cq) => (
                cq.min_offset(),
                cq.offset_within(confirm).max(cq.min_offset()),
            ),
            Err(_) => (0, 0),
        }
    }

    /// (min, max) of the units written, confirmed or not.
    fn written_offsets(&mut self) -> (i64, i64) {
        match self.cq() {
            Ok(cq) => (cq.min_offset(), cq.max_offset()),
            Err(_) => (0, 0),
        }
    }

    /// Runs a pull against the queue as it is now.
    fn query(&mut self, q: &PullQuery) -> PullOutcome {
        let reader = self.reader.clone();
        // Positions are checked against the units written: a consumer
        // ahead of this broker's confirm offset (it read from another
        // replica) waits below instead of being moved back.
        let (min, max) = self.written_offsets();
        let mut out = PullOutcome {
            status: PullStatus::NoNewMessage,
            next_begin: q.offset,
            min,
            max: self.offsets().1,
            bodies: Vec::new(),
            capped_at: None,
        };
        if max == 0 {
            out.status = PullStatus::NoMessageInQueue;
            out.next_begin = 0;
            return out;
        }
        if q.offset < min {
            out.status = PullStatus::OffsetTooSmall;
            out.next_begin = min;
            return out;
        }
        if q.offset == max {
            out.status = PullStatus::OffsetOverflowOne;
            return out;
        }
        if q.offset > max {
            out.status = PullStatus::OffsetOverflowBadly;
            out.next_begin = max;
            return out;
        }
        let Ok(cq) = self.cq() else { return out };
        let units = cq.read_units(q.offset, MAX_SCAN_UNITS.min((max - q.offset) as usize));
        let max_msgs = q.max_msgs.clamp(1, 1024) as usize;
        let mut bytes = 0usize;
        let mut next = q.offset;
        let mut removed = false;
        // controller mode: nothing past the confirm offset (RocketMQ keeps
        // such records out of the consume queue; see `actors::ha::autoswitch`).
        let confirm = reader.confirm_offset();
        let mut capped = false;
        for u in units {
            if out.bodies.len() >= max_msgs || bytes >= MAX_PULL_BYTES {
                break;
            }
            if u.size > 0 && u.phys_offset + u.size as i64 > confirm {
                out.capped_at = Some(u.phys_offset + u.size as i64);
                capped = true;
                break;
            }
            next += 1;
            if u.size <= 0 || u.size == i32::MAX {
                continue;
            }
            if let Some(codes) = &q.tag_codes {
                if !codes.contains(&u.tags_code) {
                    continue;
                }
            }
            match reader.read(u.phys_offset, u.size) {
                Some(b) => {
                    if let Some(sql) = &q.sql {
                        if !sql_matches(sql, &b) {
                            continue;
                        }
                    }
                    bytes += b.len();
                    out.bodies.push(b);
                }
                None => removed = true,
            }
        }
        out.next_begin = next;
        out.status = if !out.bodies.is_empty() {
            PullStatus::Found
        } else if removed {
            PullStatus::MessageWasRemoving
        } else if capped && next == q.offset {
            PullStatus::NoNewMessage
        } else {
            PullStatus::NoMatchedMessage
        };
        out
    }
}

/// Whether a stored record's properties match a SQL92 filter.
fn sql_matches(sql: &crate::filter::Expr, record: &[u8]) -> bool {
    match crate::wire::message::view_record(record, false) {
        Ok(v) => {
            let props = &v.properties;
            sql.matches(|k| crate::wire::message::property(props, k))
        }
        Err(_) => false,
    }
}

impl QueueActor {
    /// Answers every held pull that can now be satisfied, cancelling its
    /// timeout (a timer left behind would be polled on every later wake-up
    /// of this actor until it fired).
    fn wake_holds(&mut self, ctx: &mut Context<Self>) {
        if self.holds.is_empty() {
            return;
        }
        let holds = std::mem::take(&mut self.holds);
        let mut capped: Option<i64> = None;
        for h in holds {
            let r = self.query(&h.query);
            if r.status == PullStatus::Found {
                if let Some(t) = h.timer {
                    ctx.cancel_future(t);
                }
                let _ = h.tx.send(r);
            } else {
                if let Some(end) = r.capped_at {
                    capped = Some(capped.map_or(end, |c| c.min(end)));
                }
                self.holds.push(h);
            }
        }
        self.await_confirm(capped, ctx);
    }

    /// Keeps one confirm-offset waiter for the lowest `end` the held pulls
    /// were capped at (`None`: none was; a waiter goes with the last hold).
    fn await_confirm(&mut self, end: Option<i64>, ctx: &mut Context<Self>) {
        if self.holds.is_empty() {
            if let Some((_, h)) = self.confirm_wait.take() {
                ctx.cancel_future(h);
            }
            return;
        }
        let Some(end) = end else { return };
        if self.confirm_wait.as_ref().is_some_and(|(at, _)| *at <= end) {
            return;
        }
        if let Some((_, h)) = self.confirm_wait.take() {
            ctx.cancel_future(h);
        }
        let reached = self.reader.confirm_reached(end);
        let h = ctx.spawn(
            actix::fut::wrap_future::<_, Self>(reached).map(move |(), act, ctx| {
                if act.confirm_wait.as_ref().is_some_and(|(at, _)| *at == end) {
                    act.confirm_wait = None;
                }
                act.wake_holds(ctx);
            }),
        );
        // Resolved at once (the offset moved meanwhile): the spawned future
        // runs at the next poll and clears nothing else.
        self.confirm_wait = Some((end, h));
    }
}

impl Actor for QueueActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        armed::fire("Queue", armed::Point::Started);
    }
}

impl Supervised for QueueActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        restarts::record("Queue");
        // Held pulls are answered by their clients' retry (their senders
        // drop here); hold timers and the confirm waiter died with the old
        // context.
        self.holds.clear();
        self.confirm_wait = None;
        self.rebuild();
        tracing::info!(topic = %self.topic, queue = self.queue_id, "queue actor restarted; consume queue rebuilt");
    }
}

// ------------------------------------------------------------ messages

/// New consume-queue units from the commit-log writer, in offset order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dispatch {
    pub units: smallvec::SmallVec<[DispatchUnit; 1]>,
}

#[derive(Debug, Clone, Copy)]
pub struct DispatchUnit {
    pub queue_offset: i64,
    pub phys_offset: i64,
    pub size: i32,
    pub tags_code: i64,
}

impl Handler<Dispatch> for QueueActor {
    type Result = ();
    fn handle(&mut self, d: Dispatch, ctx: &mut Context<Self>) {
        // A new consume-queue segment is made in the background: until it
        // is ready this queue (its mailbox) waits, not its thread.
        let last = d.units.last().map(|u| u.queue_offset);
        let pending = match last {
            Some(last) if !self.deleted => self.cq().ok().and_then(|cq| cq.segment_pending(last)),
            _ => None,
        };
        if let Some(ready) = pending {
            ctx.wait(
                actix::fut::wrap_future::<_, Self>(ready)
                    .map(move |(), this, ctx| this.handle(d, ctx)),
            );
            return;
        }
        // Panics stop (and so restart) this actor only, not its arbiter.
        if let Ok(true) = guard::<Self, _, _>(ctx, "Queue", || self.dispatch(d)) {
            self.wake_holds(ctx);
        }
    }
}

impl QueueActor {
    /// Writes the units to the consume queue; true when held pulls may now
    /// be answerable.
    fn dispatch(&mut self, d: Dispatch) -> bool {
        if self.deleted {
            return false;
        }
        // A gap before these units means a dispatch went missing (a failure
        // of this actor or of the writer): take the units from the log.
        if let Some(first) = d.units.first() {
            let max = self.cq().map_or(0, |cq| cq.max_offset());
            if first.queue_offset > max && max > 0 {
                if let Some(from) = self.last_unit_end() {
                    self.catch_up(from, first.phys_offset);
                }
            }
        }
        let mut failed = None;
        match self.cq() {
            Ok(cq) => {
                for u in d.units {
                    if u.queue_offset < cq.max_offset() {
                        continue; // already there (re-dispatch after recovery)
                    }
                    if let Err(e) = cq.put(u.queue_offset, u.phys_offset, u.size, u.tags_code) {
                        failed = Some(e);
                    }
                }
            }
            Err(e) => {
                tracing::error!(topic = %self.topic, queue = self.queue_id, error = %e, "dispatch lost its queue");
                return false;
            }
        }
        if let Some(e) = failed {
            tracing::error!(topic = %self.topic, queue = self.queue_id, error = %e, "consume queue write failed");
        }
        true
    }
}

/// Drops the units of records not ending at or before the commit-log
/// offset (a slave cutting a divergent tail); answers the queue's next
/// offset. The cut is flushed before the answer.
#[derive(Message)]
#[rtype(result = "i64")]
pub struct TruncateQueue(pub i64);

impl Handler<TruncateQueue> for QueueActor {
    type Result = i64;
    fn handle(&mut self, m: TruncateQueue, _: &mut Context<Self>) -> i64 {
        if self.deleted {
            return 0;
        }
        let (topic, qid) = (self.topic.clone(), self.queue_id);
        match self.cq() {
            Ok(cq) => {
                if let Err(e) = cq.truncate_from_phys(m.0) {
                    tracing::error!(%topic, queue = qid, error = %e, "consume queue truncation failed");
                }
                cq.max_offset()
            }
            Err(_) => 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PullQuery {
    pub offset: i64,
    pub max_msgs: i32,
    /// Tag hash codes to accept; `None` accepts every message.
    pub tag_codes: Option<Vec<i64>>,
    /// SQL92 property filter; messages must also match it.
    pub sql: Option<std::sync::Arc<crate::filter::Expr>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    Found,
    NoNewMessage,
    NoMessageInQueue,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetTooSmall,
    OffsetOverflowOne,
    OffsetOverflowBadly,
}

impl PullStatus {
    pub fn name(self) -> &'static str {
        match self {
            PullStatus::Found => "FOUND",
            PullStatus::NoNewMessage => "OFFSET_FOUND_NULL",
            PullStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
            PullStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
            PullStatus::MessageWasRemoving => "MESSAGE_WAS_REMOVING",
            PullStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
            PullStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            PullStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PullOutcome {
    pub status: PullStatus,
    pub next_begin: i64,
    pub min: i64,
    pub max: i64,
    /// Stored records, each a zero-copy slice of the mapped commit log.
    pub bodies: Vec<Bytes>,
    /// controller mode: the read stopped at the confirm offset; the
    /// commit-log end of the first record it held back (readable once the
    /// confirm offset reaches it).
    pub capped_at: Option<i64>,
}

/// What a background reader of a queue (the delay scheduler, the timer)
/// gets from [`read_or_wait`].
pub enum Read {
    /// Records from the requested offset on.
    Found(PullOutcome),
    /// Nothing new: a held pull waited until a dispatch (or its timeout);
    /// read again now.
    CaughtUp,
    /// The offset is out of the queue's range; go on from here.
    MoveTo(i64),
    /// The queue did not answer; try again later.
    Failed,
}

/// Reads up to `max` records from `offset`; when the reader has caught up,
/// parks a long-polling pull for up to `hold`, so a new message is seen as
/// soon as it is dispatched rather than at the next poll.
pub async fn read_or_wait(queue: &Addr<QueueActor>, offset: i64, max: i32, hold: Duration) -> Read {
    let query = || PullQuery {
        offset,
        max_msgs: max,
        tag_codes: None,
        sql: None,
    };
    let out = match queue
        .send(Pull {
            query: query(),
            hold: None,
        })
        .await
    {
        Ok(Ok(o)) => o,
        _ => return Read::Failed,
    };
    match out.status {
        PullStatus::Found => Read::Found(out),
        PullStatus::NoNewMessage | PullStatus::OffsetOverflowOne | PullStatus::NoMessageInQueue => {
            let held = Pull {
                query: query(),
                hold: Some(hold),
            };
            match queue.send(held).await {
                Ok(Ok(_)) => Read::CaughtUp,
                _ => Read::Failed,
            }
        }
        _ => Read::MoveTo(out.next_begin.max(0)),
    }
}

/// A pull; with `hold` set and nothing to return, it waits for a message.
#[derive(Message)]
#[rtype(result = "Result<PullOutcome, ActorFailure>")]
pub struct Pull {
    pub query: PullQuery,
    pub hold: Option<Duration>,
}

impl Handler<Pull> for QueueActor {
    type Result = ResponseFuture<Result<PullOutcome, ActorFailure>>;

    fn handle(&mut self, p: Pull, ctx: &mut Context<Self>) -> Self::Result {
        let r = match guard::<Self, _, _>(ctx, "Queue", || self.query(&p.query)) {
            Ok(r) => r,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let holdable = match r.status {
            // NoNewMessage: the next record is past the confirm offset.
            PullStatus::OffsetOverflowOne
            | PullStatus::NoMatchedMessage
            | PullStatus::NoNewMessage => true,
            PullStatus::NoMessageInQueue => p.query.offset == 0,
            _ => false,
        };
        let hold = match p.hold {
            Some(h) if holdable && !self.deleted => {
                if self.long_polling {
                    h
                } else {
                    h.min(Duration::from_secs(1))
                }
            }
            _ => return Box::pin(async move { Ok(r) }),
        };
        let (tx, rx) = oneshot::channel();
        let id = self.next_hold;
        self.next_hold += 1;
        let query = PullQuery {
            offset: r.next_begin.max(p.query.offset),
            ..p.query
        };
        let timer = ctx.run_later(hold, move |act, ctx| {
            if let Some(pos) = act.holds.iter().position(|h| h.id == id) {
                let h = act.holds.swap_remove(pos);
                let r = act.query(&h.query);
                let _ = h.tx.send(r);
                act.await_confirm(None, ctx);
            }
        });
        self.holds.push(Hold {
            id,
            query,
            tx,
            timer: Some(timer),
        });
        self.await_confirm(r.capped_at, ctx);
        Box::pin(async move {
            rx.await
                .map_err(|_| ActorFailure("queue restarted while holding the pull".into()))
        })
    }
}

/// (min offset, max offset) of the queue.
#[derive(Message)]
#[rtype(result = "(i64, i64)")]
pub struct QueueOffsets;

impl Handler<QueueOffsets> for QueueActor {
    type Result = MessageResult<QueueOffsets>;
    fn handle(&mut self, _: QueueOffsets, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.offsets())
    }
}

/// Store time of the message at `offset` (or the earliest when `None`).
#[derive(Message)]
#[rtype(result = "Option<i64>")]
pub struct StoreTimeAt(pub Option<i64>);

impl Handler<StoreTimeAt> for QueueActor {
    type Result = Option<i64>;
    fn handle(&mut self, m: StoreTimeAt, _: &mut Context<Self>) -> Option<i64> {
        let reader = self.reader.clone();
        let cq = self.cq().ok()?;
        let off = m.0.unwrap_or_else(|| cq.min_offset());
        let u = cq.get(off)?;
        let rec = reader.read(u.phys_offset, u.size)?;
        crate::wire::message::decode_record(&rec, 0, false)
            .ok()
            .map(|m| m.store_timestamp)
    }
}

#[derive(Message)]
#[rtype(result = "i64")]
pub struct SearchOffset {
    pub timestamp: i64,
    pub upper: bool,
}

impl Handler<SearchOffset> for QueueActor {
    type Result = i64;
    fn handle(&mut self, m: SearchOffset, _: &mut Context<Self>) -> i64 {
        let reader = self.reader.clone();
        match self.cq() {
            Ok(cq) => {
                let b = if m.upper {
                    Boundary::Upper
                } else {
                    Boundary::Lower
                };
                cq.search_offset_by_timestamp(m.timestamp, b, &reader)
            }
            Err(_) => 0,
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct DeleteQueue;

impl Handler<DeleteQueue> for QueueActor {
    type Result = ();
    fn handle(&mut self, _: DeleteQueue, ctx: &mut Context<Self>) {
        self.deleted = true;
        for h in self.holds.drain(..) {
            let _ = h.tx.send(PullOutcome {
                status: PullStatus::NoMessageInQueue,
                next_begin: 0,
                min: 0,
                max: 0,
                bodies: Vec::new(),
                capped_at: None,
            });
        }
        if let Some(mut cq) = self.cq.take() {
            if let Err(e) = cq.delete_files() {
                tracing::warn!(topic = %self.topic, error = %e, "cannot delete consume queue files");
            }
        }
        ctx.stop();
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), ActorFailure>")]
pub struct InjectQueueFault(pub Fault);

impl Handler<InjectQueueFault> for QueueActor {
    type Result = Result<(), ActorFailure>;
    fn handle(&mut self, f: InjectQueueFault, ctx: &mut Context<Self>) -> Self::Result {
        match f.0 {
            Fault::Error => {
                tracing::warn!(topic = %self.topic, queue = self.queue_id, "injected queue error; stopping for restart");
                self.cq = None;
                ctx.stop();
                Err(ActorFailure("injected error".into()))
            }
            other => supervisor::inject(ctx, "Queue", other),
        }
    }
}

/// Flushes the consume queue's dirty pages (shutdown, checkpoints).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushQueue;

impl Handler<FlushQueue> for QueueActor {
    type Result = ();
    fn handle(&mut self, _: FlushQueue, _: &mut Context<Self>) {
        if let Some(cq) = self.cq.as_mut() {
            if let Err(e) = cq.flush() {
                tracing::warn!(topic = %self.topic, error = %e, "consume queue flush failed");
            }
        }
    }
}

/// After file expiry: drops consume-queue files wholly below the commit
/// log's new minimum offset and moves the queue's min offset past units
/// whose records are gone (sent by the `Cleaner`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TrimQueue(pub i64);

impl Handler<TrimQueue> for QueueActor {
    type Result = ();
    fn handle(&mut self, m: TrimQueue, _: &mut Context<Self>) {
        if self.deleted {
            return;
        }
        let (topic, queue_id) = (self.topic.clone(), self.queue_id);
        if let Ok(cq) = self.cq() {
            match cq.delete_before_phys(m.0) {
                Ok(n) if n > 0 => {
                    tracing::info!(%topic, queue = queue_id, files = n, min_offset = cq.min_offset(), "expired consume queue files deleted")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%topic, queue = queue_id, error = %e, "cannot delete expired consume queue files")
                }
            }
        }
    }
}
