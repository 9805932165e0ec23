//! `CommitLogWriter`: the single writer of the commit log, on its own
//! arbiter. It assigns queue offsets, appends records to the mapped
//! segments, answers once the flush policy is met (SYNC_FLUSH: group commit
//! through the store's flusher) and dispatches consume-queue units to the
//! `Queue` actors — one `Dispatch` per queue per mailbox turn.
//!
//! Supervision (`supervisor::start_in_arbiter`): the writer remembers where
//! the last fully handled `Put` ended. A failure in between (after records
//! were appended, before they were dispatched) is repaired on restart from
//! the log itself: the records past that point are read back, their queues'
//! next offsets raised past them and their units dispatched again (queues
//! ignore units they already have), as RocketMQ's `ReputMessageService`
//! dispatches from the commit log.

use actix::prelude::*;
use bytes::BytesMut;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::indexer::{IndexSignal, IndexUpTo};
use super::queue::{Dispatch, DispatchUnit};
use super::topic::TopicRegistry;
use crate::store::{CommitLog, Flusher, StoreError};
use crate::wire::message::QUEUE_OFFSET_POS;

pub struct CommitLogWriter {
    log: CommitLog,
    flusher: Arc<Flusher>,
    registry: TopicRegistry,
    /// Next queue offset of every (topic, queue id).
    /// Next queue offset per (topic, queue); keyed by the records' shared
    /// topic name, so a lookup allocates nothing.
    queue_offsets: HashMap<(Arc<str>, i32), i64>,
    sync_flush: bool,
    sync_flush_timeout: Duration,
    /// Told how far the log is written after every `Put` (message index).
    indexer: Option<(Recipient<IndexUpTo>, Arc<IndexSignal>)>,
    /// Set by the cleaner past the disk warning ratio: every append is
    /// refused (client sends and internal writes alike) until it clears.
    disk_full: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Log end after the last `Put` handled to the end (appended and
    /// dispatched); a restart re-dispatches what lies beyond.
    handled_end: i64,
    /// For re-reading records on restart (delay levels of parked records).
    store_cfg: crate::store::StoreConfig,
    /// Wakes POPs long-polling a topic that just got records.
    arrivals: Option<Arc<super::pop_state::Arrivals>>,
    /// Told when the log is cut back (`TruncateLog`).
    index_truncate: Option<Recipient<super::indexer::TruncateIndex>>,
}

impl CommitLogWriter {
    /// Feeds the message index after every `Put` batch.
    pub fn with_indexer(mut self, indexer: Recipient<IndexUpTo>, signal: Arc<IndexSignal>) -> Self {
        self.indexer = Some((indexer, signal));
        self
    }

    pub fn new(
        log: CommitLog,
        flusher: Arc<Flusher>,
        registry: TopicRegistry,
        queue_offsets: HashMap<(String, i32), i64>,
        sync_flush: bool,
        sync_flush_timeout: Duration,
    ) -> Self {
        let handled_end = log.max_offset();
        CommitLogWriter {
            handled_end,
            store_cfg: crate::store::StoreConfig::default(),
            log,
            flusher,
            registry,
            queue_offsets: queue_offsets
                .into_iter()
                .map(|((t, q), o)| ((Arc::from(t), q), o))
                .collect(),
            sync_flush,
            sync_flush_timeout,
            indexer: None,
            disk_full: None,
            arrivals: None,
            index_truncate: None,
        }
    }

    /// Cuts the message index with the log (`TruncateLog`).
    pub fn with_index_truncate(mut self, r: Recipient<super::indexer::TruncateIndex>) -> Self {
        self.index_truncate = Some(r);
        self
    }

    /// Tells long-polling POPs about every dispatched topic.
    pub fn with_arrivals(mut self, arrivals: Arc<super::pop_state::Arrivals>) -> Self {
        self.arrivals = Some(arrivals);
        self
    }

    /// The store settings (needed to re-read parked records on restart).
    pub fn with_store_cfg(mut self, cfg: crate::store::StoreConfig) -> Self {
        self.store_cfg = cfg;
        self
    }

    /// Restart: dispatch what was appended after the last fully handled
    /// `Put`, so no stored record stays invisible.
    fn rebuild(&mut self) {
        let end = self.log.max_offset();
        if end <= self.handled_end {
            return;
        }
        let reader = self.log.reader();
        let mut dispatch: Vec<QueueUnits> = Vec::new();
        let reached = crate::store::live_scan::scan_published(
            &reader,
            &self.store_cfg,
            self.handled_end,
            end,
            |d| {
                if !d.should_dispatch() {
                    return;
                }
                let topic: Arc<str> = match self.registry.get(&d.topic) {
                    Some(e) => e.name.clone(),
                    None => Arc::from(d.topic.as_str()),
                };
                collect_unit(&mut self.queue_offsets, &mut dispatch, topic, &d);
            },
        );
        let n: usize = dispatch.iter().map(|(_, _, u)| u.len()).sum();
        tracing::warn!(
            from = self.handled_end,
            to = reached,
            records = n,
            "commit log writer restarted; re-dispatched records past the last handled put"
        );
        self.send_dispatches(dispatch, reached);
        self.handled_end = end;
    }

    /// Sends the units to their queues and tells the flusher and the index.
    fn send_dispatches(&mut self, dispatch: impl IntoIterator<Item = QueueUnits>, end: i64) {
        for (topic, qid, units) in dispatch {
            let entry = self.registry.get(&topic);
            match entry.as_ref().and_then(|t| t.queue(qid)) {
                Some(q) => q.do_send(Dispatch { units }),
                None => {
                    tracing::warn!(%topic, qid, "no queue actor for dispatch; it will be rebuilt on recovery")
                }
            }
            // After the dispatch is queued: a woken POP's read reaches the
            // queue behind it.
            if let Some(a) = &self.arrivals {
                a.notify(&topic);
            }
        }
        if end > 0 {
            self.flusher.set_dispatched(end);
            // Only an idle indexer is woken; a busy one will look again.
            if let Some((ix, signal)) = &self.indexer {
                if signal.arm() {
                    ix.do_send(IndexUpTo(end));
                }
            }
        }
    }

    /// Refuses appends while `flag` is set (the cleaner's disk-full state).
    pub fn with_disk_full(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.disk_full = Some(flag);
        self
    }
}

impl Actor for CommitLogWriter {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Supervised for CommitLogWriter {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("CommitLog");
        self.rebuild();
    }
}

crate::inject_panic_handler!(CommitLogWriter, "CommitLog");

/// One encoded record to append.
pub struct PutRecord {
    pub buf: BytesMut,
    pub topic: Arc<str>,
    pub queue_id: i32,
    pub tags_code: i64,
    /// False for prepared / rolled-back transaction records (not consumable).
    pub dispatch: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct PutResult {
    pub phys_offset: i64,
    pub queue_offset: i64,
    pub size: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    Ok,
    FlushTimeout,
    /// SYNC_MASTER: no slave acknowledged the records within
    /// `syncFlushTimeout` (Java's `PutMessageStatus.FLUSH_SLAVE_TIMEOUT`).
    SlaveTimeout,
    /// SYNC_MASTER: no slave connected, or it lags more than
    /// `haMaxGapNotInSync` (`PutMessageStatus.SLAVE_NOT_AVAILABLE`).
    SlaveNotAvailable,
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("disk full: {0}")]
    DiskFull(String),
    #[error("message illegal: {0}")]
    Illegal(String),
    #[error("store error: {0}")]
    Store(String),
}

impl From<StoreError> for PutError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DiskFull { .. } => PutError::DiskFull(e.to_string()),
            StoreError::RecordTooLarge { .. } | StoreError::InvalidRecord(_) => {
                PutError::Illegal(e.to_string())
            }
            other => PutError::Store(other.to_string()),
        }
    }
}

/// Records of one `Put` (a single send keeps its one record inline).
pub type PutRecords = SmallVec<[PutRecord; 1]>;
/// Where each record of a `Put` went, in order.
pub type PutResults = SmallVec<[PutResult; 1]>;

/// Appends records (a batch shares one mailbox turn and one flush wait).
#[derive(Message)]
#[rtype(result = "Result<Appended, PutError>")]
pub struct Put {
    pub records: PutRecords,
    /// Whether the sender waits for the flush (the `WAIT` property).
    pub wait: bool,
}

/// The writer's answer: the records are in the log; under SYNC_FLUSH (and
/// `WAIT`) the sender still waits for the flusher, outside the writer.
pub struct Appended {
    pub results: PutResults,
    flush: Option<(tokio::sync::oneshot::Receiver<bool>, Duration)>,
}

impl Appended {
    /// The results once the flush policy is met.
    pub async fn flushed(self) -> (PutResults, FlushOutcome) {
        match self.flush {
            None => (self.results, FlushOutcome::Ok),
            Some((waiter, timeout)) => match tokio::time::timeout(timeout, waiter).await {
                Ok(Ok(true)) => (self.results, FlushOutcome::Ok),
                _ => (self.results, FlushOutcome::FlushTimeout),
            },
        }
    }
}

/// Appends `records` and waits for the flush policy: the outer error is a
/// writer that is gone, the inner one a refused append.
pub async fn put(
    writer: &Addr<CommitLogWriter>,
    records: PutRecords,
    wait: bool,
) -> Result<Result<(PutResults, FlushOutcome), PutError>, MailboxError> {
    Ok(match writer.send(Put { records, wait }).await? {
        Ok(a) => Ok(a.flushed().await),
        Err(e) => Err(e),
    })
}

impl Handler<Put> for CommitLogWriter {
    type Result = ActorResponse<Self, Result<Appended, PutError>>;

    fn handle(&mut self, put: Put, ctx: &mut Context<Self>) -> Self::Result {
        // Segment roll: a `Put` that would move into the next segment while
        // it is still being prepared is parked, and the mailbox behind it
        // (`ctx.wait`), until it is ready; the thread (shared with sessions)
        // goes on serving them meanwhile.
        let lens = put.records.iter().map(|r| r.buf.len());
        if let Some(ready) = self.log.roll_pending(lens) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            ctx.wait(
                actix::fut::wrap_future::<_, Self>(ready).map(move |(), this, ctx| {
                    let _ = tx.send(this.guarded_put(put, ctx));
                }),
            );
            return ActorResponse::r#async(actix::fut::wrap_future(async move {
                rx.await.unwrap_or_else(|_| {
                    Err(PutError::Store("the commit log writer stopped".into()))
                })
            }));
        }
        // The answer is immediate (no future to spawn per request).
        ActorResponse::reply(self.guarded_put(put, ctx))
    }
}

impl CommitLogWriter {
    /// A panic here must not take the arbiter (and its sessions) down: the
    /// writer restarts under its supervisor and the send gets an error.
    fn guarded_put(&mut self, put: Put, ctx: &mut Context<Self>) -> Result<Appended, PutError> {
        match crate::actors::supervisor::guard::<Self, _, _>(ctx, "CommitLog", || self.put(put)) {
            Ok(r) => r,
            Err(e) => Err(PutError::Store(e.to_string())),
        }
    }
}

/// Units for one queue, in log order (most `Put`s touch one queue).
type QueueUnits = (Arc<str>, i32, SmallVec<[DispatchUnit; 1]>);

/// A record found in the log after the fact (a restart's rebuild, a
/// replicated append): its queue's offset counter moves past it and its unit
/// joins the dispatch of its queue.
fn collect_unit(
    queue_offsets: &mut HashMap<(Arc<str>, i32), i64>,
    dispatch: &mut Vec<QueueUnits>,
    topic: Arc<str>,
    d: &crate::store::recovery::DispatchRequest,
) {
    let next = queue_offsets
        .entry((topic.clone(), d.queue_id))
        .or_insert(0);
    *next = (*next).max(d.queue_offset + 1);
    let unit = DispatchUnit {
        queue_offset: d.queue_offset,
        phys_offset: d.phys_offset,
        size: d.size,
        tags_code: d.tags_code,
    };
    match dispatch
        .iter_mut()
        .find(|(t, q, _)| *t == topic && *q == d.queue_id)
    {
        Some((_, _, v)) => v.push(unit),
        None => dispatch.push((topic, d.queue_id, SmallVec::from_elem(unit, 1))),
    }
}

impl CommitLogWriter {
    fn put(&mut self, put: Put) -> Result<Appended, PutError> {
        if self
            .disk_full
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::Acquire))
        {
            return Err(PutError::DiskFull(
                "disk usage is above diskSpaceWarningLevelRatio".into(),
            ));
        }
        let mut results = PutResults::with_capacity(put.records.len());
        let mut dispatch: SmallVec<[QueueUnits; 1]> = SmallVec::new();
        let mut end = 0i64;
        let mut failure = None;
        let count = put.records.len();
        for (i, mut rec) in put.records.into_iter().enumerate() {
            let key = (rec.topic.clone(), rec.queue_id);
            let qoff = if rec.dispatch {
                *self.queue_offsets.get(&key).unwrap_or(&0)
            } else {
                0
            };
            rec.buf[QUEUE_OFFSET_POS..QUEUE_OFFSET_POS + 8].copy_from_slice(&qoff.to_be_bytes());
            match self.log.append(&mut rec.buf) {
                Ok(a) => {
                    end = a.end_offset;
                    results.push(PutResult {
                        phys_offset: a.phys_offset,
                        queue_offset: qoff,
                        size: a.size,
                    });
                    if rec.dispatch {
                        self.queue_offsets.insert(key, qoff + 1);
                        let unit = DispatchUnit {
                            queue_offset: qoff,
                            phys_offset: a.phys_offset,
                            size: a.size,
                            tags_code: rec.tags_code,
                        };
                        match dispatch
                            .iter_mut()
                            .find(|(t, q, _)| *t == rec.topic && *q == rec.queue_id)
                        {
                            Some((_, _, v)) => v.push(unit),
                            None => {
                                // Room for the rest of the batch: most
                                // batches go to one queue.
                                let mut units = SmallVec::with_capacity(count - i);
                                units.push(unit);
                                dispatch.push((rec.topic.clone(), rec.queue_id, units));
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "commit log append failed");
                    failure = Some(PutError::from(e));
                    break;
                }
            }
        }
        // Tests: a failure between append and dispatch (see `rebuild`).
        crate::actors::supervisor::armed::fire(
            "CommitLog",
            crate::actors::supervisor::armed::Point::Work,
        );
        self.send_dispatches(dispatch, end);
        self.handled_end = self.log.max_offset();
        if let Some(f) = failure {
            // Earlier records of a batch are stored; report the failure.
            return Err(f);
        }
        let flush = (self.sync_flush && put.wait && end > 0)
            .then(|| (self.flusher.flush_waiter(end), self.sync_flush_timeout));
        Ok(Appended { results, flush })
    }
}

/// Next queue offset for a queue (used when creating a queue).
#[derive(Message)]
#[rtype(result = "i64")]
pub struct NextQueueOffset(pub String, pub i32);

impl Handler<NextQueueOffset> for CommitLogWriter {
    type Result = i64;
    fn handle(&mut self, m: NextQueueOffset, _: &mut Context<Self>) -> i64 {
        *self.queue_offsets.get(&(Arc::from(m.0), m.1)).unwrap_or(&0)
    }
}

/// Forgets the queue offsets of a deleted topic.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetTopic(pub String);

impl Handler<ForgetTopic> for CommitLogWriter {
    type Result = ();
    fn handle(&mut self, m: ForgetTopic, _: &mut Context<Self>) {
        self.queue_offsets.retain(|(t, _), _| **t != *m.0);
    }
}

/// Min and max physical offsets.
#[derive(Message)]
#[rtype(result = "(i64, i64)")]
pub struct LogOffsets;

impl Handler<LogOffsets> for CommitLogWriter {
    type Result = MessageResult<LogOffsets>;
    fn handle(&mut self, _: LogOffsets, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.log.min_offset(), self.log.max_offset()))
    }
}

/// Deletes up to `max` expired segments from the front of the log, never
/// the current one (sent by the `Cleaner`). Returns how many went.
#[derive(Message)]
#[rtype(result = "Result<usize, StoreError>")]
pub struct DeleteExpiredSegments {
    /// Segments whose file was last modified before this are expired.
    pub older_than: std::time::SystemTime,
    pub max: usize,
}

impl Handler<DeleteExpiredSegments> for CommitLogWriter {
    type Result = Result<usize, StoreError>;
    fn handle(&mut self, m: DeleteExpiredSegments, _: &mut Context<Self>) -> Self::Result {
        self.log.delete_expired_segments(m.older_than, m.max)
    }
}

/// A slave's `HaClient`: writes bytes replicated from the master at
/// `offset` (the log's end; see `store::ha_append`), then dispatches the
/// records now complete to their queues and the index, as recovery would.
/// Empty `bytes` only retries the dispatch (after missing topics were
/// created).
#[derive(Message)]
#[rtype(result = "Result<Replicated, PutError>")]
pub struct AppendReplicated {
    pub offset: i64,
    pub bytes: bytes::Bytes,
}

/// What an [`AppendReplicated`] did.
#[derive(Debug, Default)]
pub struct Replicated {
    /// The log's end (what the slave reports to its master).
    pub end: i64,
    /// Queues of records that could not be dispatched because the slave has
    /// no such topic queue yet; dispatch stopped at the first such record
    /// and resumes with the next `AppendReplicated`.
    pub missing: Vec<(String, i32)>,
}

impl Handler<AppendReplicated> for CommitLogWriter {
    type Result = Result<Replicated, PutError>;

    fn handle(&mut self, m: AppendReplicated, ctx: &mut Context<Self>) -> Self::Result {
        let r = crate::actors::supervisor::guard::<Self, _, _>(ctx, "CommitLog", || {
            if !m.bytes.is_empty() {
                self.log.append_replicated(m.offset, &m.bytes)?;
            }
            let end = self.log.max_offset();
            let mut records = Vec::new();
            let reached = crate::store::live_scan::scan_published(
                &self.log.reader(),
                &self.store_cfg,
                self.handled_end,
                end,
                |d| records.push(d),
            );
            let mut dispatch: Vec<QueueUnits> = Vec::new();
            let mut missing = Vec::new();
            let mut upto = reached;
            for d in records.into_iter().filter(|d| d.should_dispatch()) {
                let entry = self.registry.get(&d.topic);
                let Some(topic) = entry
                    .as_ref()
                    .filter(|e| e.queue(d.queue_id).is_some())
                    .map(|e| e.name.clone())
                else {
                    upto = d.phys_offset;
                    missing.push((d.topic, d.queue_id));
                    break;
                };
                collect_unit(&mut self.queue_offsets, &mut dispatch, topic, &d);
            }
            self.send_dispatches(dispatch, upto);
            self.handled_end = upto;
            Ok::<_, StoreError>(Replicated { end, missing })
        });
        match r {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(PutError::from(e)),
            Err(e) => Err(PutError::Store(e.to_string())),
        }
    }
}

/// Cuts the log back (controller mode): to `to`, or with `None` to the end
/// of the last complete record (a replicated range may stop inside one).
/// The commit log is zeroed and msynced past the cut, then every consume
/// queue drops (and flushes) its units past it and the queue offsets are
/// taken from them; the writer handles nothing else meanwhile. Answers the
/// new end.
#[derive(Message)]
#[rtype(result = "Result<i64, PutError>")]
pub struct TruncateLog {
    pub to: Option<i64>,
}

impl Handler<TruncateLog> for CommitLogWriter {
    type Result = AtomicResponse<Self, Result<i64, PutError>>;

    fn handle(&mut self, m: TruncateLog, _: &mut Context<Self>) -> Self::Result {
        let end = self.log.max_offset();
        let target = match m.to {
            Some(t) => t,
            None => crate::store::live_scan::scan_published(
                &self.log.reader(),
                &self.store_cfg,
                self.handled_end.min(end),
                end,
                |_| {},
            ),
        };
        if target >= end {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(end))));
        }
        if let Err(e) = self.log.truncate_to(target) {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(PutError::from(e)))));
        }
        self.handled_end = self.handled_end.min(target);
        self.flusher.lower_dispatched(target);
        // The index goes first in its mailbox: records appended after the
        // cut are indexed from it.
        if let Some(ix) = &self.index_truncate {
            ix.do_send(super::indexer::TruncateIndex(target));
        }
        let mut asks = Vec::new();
        for (name, _) in self.registry.configs() {
            if let Some(t) = self.registry.get(&name) {
                for (qid, q) in t.queues.iter().enumerate() {
                    let (topic, q) = (t.name.clone(), q.clone());
                    asks.push(async move {
                        (
                            topic,
                            qid as i32,
                            q.send(super::queue::TruncateQueue(target)).await,
                        )
                    });
                }
            }
        }
        AtomicResponse::new(Box::pin(
            futures_util::future::join_all(asks)
                .into_actor(self)
                .map(move |answers, act, _| {
                    for (topic, qid, next) in answers {
                        match next {
                            Ok(next) => {
                                act.queue_offsets.insert((topic, qid), next);
                            }
                            Err(e) => tracing::error!(%topic, qid, error = %e, "queue gone during truncation"),
                        }
                    }
                    Ok(target)
                }),
        ))
    }
}
