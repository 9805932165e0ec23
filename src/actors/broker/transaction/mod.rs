//! `Transactions`: resolves and checks transaction half messages
//! (`TransactionalMessageServiceImpl`, `TransactionalMessageCheckService`).
//!
//! Half messages sit in `RMQ_SYS_TRANS_HALF_TOPIC` queue 0 (the store path
//! puts them there). END_TRANSACTION resolves one: commit stores the real
//! message plus an op record in `RMQ_SYS_TRANS_OP_HALF_TOPIC`, rollback only
//! the op record. Op records carry the half's queue offset in their body
//! (`"15,"`, RocketMQ's format) and its transaction id in
//! `__transactionId__`; the set of resolved ids, rebuilt from the op queue at
//! start, makes a repeated END_TRANSACTION a no-op. A commit runs the timer
//! check again (`timerMaxDelaySec`, from the commit time, as RocketMQ's put
//! hook does): a refused commit answers MESSAGE_ILLEGAL and the half message
//! stays unresolved, to be committed again or checked.
//!
//! The checker runs every `transactionCheckInterval`, scanning the half
//! queue from its progress offset (consumer offset of `CID_RMQ_SYS_TRANS`).
//! An unresolved half older than `transactionTimeOut` (or its check
//! immunity) is re-appended with `TRANSACTION_CHECK_TIMES + 1` and the
//! producer group is asked with CHECK_TRANSACTION_STATE; after
//! `transactionCheckMax` checks it is moved to `TRANS_CHECK_MAX_TIME_TOPIC`.
//!
//! Commits, rollbacks and check-max moves are stored through [`ExactPut`]
//! (intent file `config/transaction.intent`), tagged with what they resolve
//! and the half message's commit-log offset. When a crash (or a failed Put)
//! leaves only part of such a batch stored — the committed message without
//! its op record — the rest is written on the next start before any
//! END_TRANSACTION is served, or by the next checker pass, so the message
//! is neither lost, nor committed twice, nor checked again.

use actix::prelude::*;
use bytes::BytesMut;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::clients::{ClientRegistry, ProducerChannel};
use super::commit_log::{CommitLogWriter, PutError};
use super::crash_point;
use super::exact_put::{ExactPut, Orphan};
use super::offsets::{CommitOffset, OffsetManager};
use super::queue::{Pull, PullQuery, PullStatus, QueueActor};
use super::store_path::{self, DelayLevels, NewRecord, StoreFailure};
use super::store_path::{CHECK_MAX_TOPIC, HALF_TOPIC, OP_TOPIC, TRANS_GROUP};
use super::topic::TopicRegistry;
use crate::store::CommitLogReader;
use crate::wire::headers::consume::CheckTransactionStateRequestHeader;
use crate::wire::message::{self, keys, sysflag, MessageExt, PropertyView};
use crate::wire::now_ms;

mod check;

pub use check::CheckNow;

/// Checker settings (from the broker config).
#[derive(Debug, Clone, Copy)]
pub struct CheckPolicy {
    pub interval: Duration,
    pub timeout_ms: i64,
    pub max_checks: i32,
    /// Half messages older than this (the file retention time) are no
    /// longer checked: their commit-log files are about to expire.
    pub max_age_ms: i64,
    /// `timerMaxDelaySec`, checked again when a timer message is committed.
    pub timer_max_delay_sec: i64,
}

/// Resolved transaction id → when it was resolved (ms), so the set can be
/// trimmed to the file retention time instead of growing forever.
type Resolved = Arc<Mutex<HashMap<String, i64>>>;

pub struct Transactions {
    levels: Arc<DelayLevels>,
    topics: TopicRegistry,
    commit_log: Addr<CommitLogWriter>,
    reader: CommitLogReader,
    exact: ExactPut,
    clients: Addr<ClientRegistry>,
    offsets: Addr<OffsetManager>,
    store_host: SocketAddr,
    broker_name: String,
    policy: CheckPolicy,
    resolved: Resolved,
    /// Next half-queue offset the checker looks at.
    check_from: i64,
    checking: bool,
}

/// The transaction id a half message is known by.
pub fn transaction_id(m: &MessageExt) -> String {
    m.property(keys::TRANSACTION_ID)
        .or_else(|| m.uniq_key())
        .map(str::to_owned)
        .unwrap_or_else(|| m.offset_msg_id())
}

/// Reads a whole queue through its actor (start-up scans).
pub async fn read_queue(queue: &Addr<QueueActor>, from: i64) -> Vec<MessageExt> {
    let mut out = Vec::new();
    let mut offset = from;
    for _ in 0..100_000 {
        let q = PullQuery {
            offset,
            max_msgs: 256,
            tag_codes: None,
            sql: None,
        };
        let r = match queue
            .send(Pull {
                query: q,
                hold: None,
            })
            .await
        {
            Ok(Ok(r)) => r,
            _ => break,
        };
        match r.status {
            PullStatus::Found => {
                out.extend(
                    r.bodies
                        .iter()
                        .filter_map(|b| message::decode_record(b, 0, false).ok()),
                );
                offset = r.next_begin;
            }
            PullStatus::NoMatchedMessage
            | PullStatus::MessageWasRemoving
            | PullStatus::OffsetTooSmall
                if r.next_begin > offset =>
            {
                offset = r.next_begin
            }
            _ => break,
        }
    }
    out
}

impl Transactions {
    /// Rebuilds the resolved set from the op queue and finishes the batches
    /// a crash interrupted (`intent_path`: the intent file).
    #[allow(clippy::too_many_arguments)]
    pub async fn load(
        levels: Arc<DelayLevels>,
        topics: TopicRegistry,
        commit_log: Addr<CommitLogWriter>,
        reader: CommitLogReader,
        intent_path: &Path,
        clients: Addr<ClientRegistry>,
        offsets: Addr<OffsetManager>,
        store_host: SocketAddr,
        broker_name: String,
        policy: CheckPolicy,
    ) -> Transactions {
        let mut resolved = HashMap::new();
        if let Some(q) = topics.get(OP_TOPIC).and_then(|t| t.queue(0).cloned()) {
            for op in read_queue(&q, 0).await {
                if let Some(id) = op.property(keys::TRANSACTION_ID) {
                    resolved.insert(id.to_owned(), op.store_timestamp);
                }
            }
        }
        let check_from = offsets
            .send(super::offsets::QueryOffset {
                group: TRANS_GROUP.into(),
                topic: HALF_TOPIC.into(),
                queue_id: 0,
            })
            .await
            .ok()
            .flatten()
            .unwrap_or(0);
        let exact = ExactPut::open(
            intent_path,
            reader.clone(),
            commit_log.clone(),
            levels.clone(),
        );
        let resolved: Resolved = Arc::new(Mutex::new(resolved));
        // Before any END_TRANSACTION: a repeated commit must find its id.
        finish_interrupted(&exact, &reader, store_host, &resolved).await;
        tracing::info!(check_from, "transactions loaded");
        Transactions {
            levels,
            topics,
            commit_log,
            reader,
            exact,
            clients,
            offsets,
            store_host,
            broker_name,
            policy,
            resolved,
            check_from,
            checking: false,
        }
    }
}

impl Actor for Transactions {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        // After an actor restart: batches whose futures were cancelled.
        if self.exact.has_orphans() {
            let (exact, reader, host) = (self.exact.clone(), self.reader.clone(), self.store_host);
            let resolved = self.resolved.clone();
            let fut = async move { finish_interrupted(&exact, &reader, host, &resolved).await };
            ctx.wait(fut.into_actor(self));
        }
        ctx.run_interval(self.policy.interval, |_, ctx| ctx.notify(CheckNow));
    }
}

impl Supervised for Transactions {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("Transaction");
        self.checking = false;
    }
}

fn is_resolved(r: &Resolved, id: &str) -> bool {
    r.lock().map(|s| s.contains_key(id)).unwrap_or(false)
}

/// Marks `id` resolved; false when it already was.
fn mark(r: &Resolved, id: &str) -> bool {
    r.lock()
        .map(|mut s| s.insert(id.to_owned(), now_ms()).is_none())
        .unwrap_or(false)
}

/// Forgets ids resolved longer ago than `max_age_ms`: their half messages
/// are past the file retention time, so no END_TRANSACTION can name them.
fn trim(r: &Resolved, max_age_ms: i64) {
    if max_age_ms <= 0 {
        return;
    }
    let now = now_ms();
    if let Ok(mut s) = r.lock() {
        s.retain(|_, at| now - *at <= max_age_ms);
    }
}

fn unmark(r: &Resolved, id: &str) {
    if let Ok(mut s) = r.lock() {
        s.remove(id);
    }
}

/// The op record resolving `half`.
fn op_record(half: &MessageExt, store_host: SocketAddr) -> NewRecord {
    let id = transaction_id(half);
    NewRecord {
        topic: OP_TOPIC.into(),
        queue_id: half.queue_id,
        flag: 0,
        sys_flag: 0,
        born_timestamp: now_ms(),
        born_host: store_host,
        store_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: format!("{},", half.queue_offset).into_bytes().into(),
        properties: message::encode_properties([
            (keys::TAGS, "d"),
            (keys::TRANSACTION_ID, id.as_str()),
            (keys::WAIT, "false"),
        ]),
    }
}

/// What a transaction batch resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
enum Resolution {
    Commit,
    Rollback,
    /// Checked too often: moved to `TRANS_CHECK_MAX_TIME_TOPIC`.
    Discard,
}

/// The intent tag of a transaction batch: enough to rebuild it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct BatchTag {
    resolution: Resolution,
    /// Commit-log offset of the half message resolved.
    half: i64,
}

/// The records resolving `half` (in write order: the message, if any,
/// then the op record); None when `half` is not a half message.
fn resolution_records(
    half: &MessageExt,
    how: Resolution,
    store_host: SocketAddr,
) -> Option<Vec<NewRecord>> {
    let mut out = Vec::with_capacity(2);
    match how {
        Resolution::Commit => out.push(committed(half, store_host)?),
        Resolution::Rollback => {}
        Resolution::Discard => {
            let props = message::with_property(&half.properties, keys::WAIT, "false");
            let mut r = NewRecord::copy_of(half, CHECK_MAX_TOPIC.into(), 0, store_host, props);
            r.prepared_transaction_offset = 0;
            out.push(r);
        }
    }
    out.push(op_record(half, store_host));
    Some(out)
}

/// Stores the resolution of `half`; `after_put` names the crash point
/// between the store and closing the intent. On failure, how many records
/// were stored anyway: a partly stored batch is left (its intent open) to
/// [`finish_interrupted`].
async fn store_resolution(
    exact: &ExactPut,
    half: &MessageExt,
    how: Resolution,
    records: &[NewRecord],
    after_put: &str,
) -> Result<(), (usize, StoreFailure)> {
    let tag = BatchTag {
        resolution: how,
        half: half.commit_log_offset,
    };
    let tag = serde_json::to_vec(&tag).unwrap_or_default();
    match exact.put(records, tag, None).await {
        Ok(placed) => {
            crash_point::hit(after_put);
            placed.ticket.done();
            Ok(())
        }
        Err(f) if f.landed == 0 => {
            f.ticket.done();
            Err((0, f.error))
        }
        Err(f) => {
            // The ticket is dropped open: the next pass writes the rest.
            tracing::error!(error = %f.error, landed = f.landed, "transaction batch partly stored; the rest follows");
            Err((f.landed, f.error))
        }
    }
}

/// Writes what interrupted batches still miss and marks them resolved.
/// Batches that fail again stay open for the next pass.
async fn finish_interrupted(
    exact: &ExactPut,
    reader: &CommitLogReader,
    store_host: SocketAddr,
    resolved: &Resolved,
) {
    for o in exact.orphans().await {
        finish_one(exact, reader, store_host, resolved, o).await;
    }
}

async fn finish_one(
    exact: &ExactPut,
    reader: &CommitLogReader,
    store_host: SocketAddr,
    resolved: &Resolved,
    o: Orphan,
) {
    let Ok(tag) = serde_json::from_slice::<BatchTag>(&o.tag) else {
        tracing::error!("unreadable transaction intent dropped");
        return o.ticket.done();
    };
    let half = reader
        .read_record(tag.half)
        .and_then(|b| message::decode_record(&b, 0, false).ok());
    let Some(half) = half else {
        tracing::error!(
            offset = tag.half,
            "half message of an interrupted batch is gone"
        );
        return o.ticket.done();
    };
    let id = transaction_id(&half);
    if o.landed >= o.batch_len {
        mark(resolved, &id);
        return o.ticket.done();
    }
    let Some(records) = resolution_records(&half, tag.resolution, store_host) else {
        return o.ticket.done();
    };
    let rest = records.get(o.landed..).unwrap_or_default();
    tracing::info!(transaction = %id, ?tag.resolution, landed = o.landed, missing = rest.len(), "finishing an interrupted transaction batch");
    match exact.put(rest, o.tag.clone(), Some(o.ticket)).await {
        Ok(placed) => {
            mark(resolved, &id);
            placed.ticket.done();
        }
        Err(f) if o.landed + f.landed > 0 => {
            // Part of it is visible: refuse a second resolution meanwhile;
            // the intent stays open for the next pass.
            tracing::error!(transaction = %id, error = %f.error, "cannot finish the transaction batch; retried later");
            mark(resolved, &id);
        }
        Err(f) => {
            // Nothing of it stored at all: the resolution simply failed.
            tracing::error!(transaction = %id, error = %f.error, "cannot redo the transaction batch");
            unmark(resolved, &id);
            f.ticket.done();
        }
    }
}

/// The committed message of `half`, bound for its real topic and queue.
fn committed(half: &MessageExt, store_host: SocketAddr) -> Option<NewRecord> {
    let drop = [
        keys::REAL_TOPIC,
        keys::REAL_QID,
        keys::TRANSACTION_CHECK_TIMES,
    ];
    let mut r = NewRecord::unpark(half, store_host, &drop)?;
    r.sys_flag = sysflag::with_transaction_type(half.sys_flag, sysflag::TRANSACTION_COMMIT_TYPE);
    r.prepared_transaction_offset = half.commit_log_offset;
    Some(r)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOutcome {
    Committed,
    RolledBack,
    /// Already resolved: nothing written.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum EndError {
    #[error("the half message has no REAL_TOPIC / REAL_QID")]
    NotAHalfMessage,
    #[error("store failed: {0}")]
    Store(#[from] StoreFailure),
}

/// The put-time timer check of a committed half message (RocketMQ runs
/// `HookUtils.handleScheduleMessage` on the committed message, measuring
/// the delay from the commit). A refusal is MESSAGE_ILLEGAL with the Java
/// remark, and the half message stays unresolved (it will be checked).
fn check_commit_timer(half: &MessageExt, max_delay_sec: i64, now: i64) -> Result<(), EndError> {
    check_timer_at_commit(half.sys_flag, &half.properties, max_delay_sec, now)
}

fn check_timer_at_commit(
    sys_flag: i32,
    props: &str,
    max_delay_sec: i64,
    now: i64,
) -> Result<(), EndError> {
    let flag = sysflag::with_transaction_type(sys_flag, sysflag::TRANSACTION_COMMIT_TYPE);
    let view = PropertyView::new(props);
    store_path::check_timer_delay(&view, flag, now, max_delay_sec)
        .map_err(|remark| EndError::Store(StoreFailure::Put(PutError::Illegal(remark))))
}

/// Resolves a half message (END_TRANSACTION commit / rollback).
#[derive(Message)]
#[rtype(result = "Result<EndOutcome, EndError>")]
pub struct EndTransaction {
    pub half: MessageExt,
    pub commit: bool,
}

impl Handler<EndTransaction> for Transactions {
    type Result = ResponseFuture<Result<EndOutcome, EndError>>;
    fn handle(&mut self, m: EndTransaction, _: &mut Context<Self>) -> Self::Result {
        let id = transaction_id(&m.half);
        let resolved = self.resolved.clone();
        let (exact, host) = (self.exact.clone(), self.store_host);
        let max_delay_sec = self.policy.timer_max_delay_sec;
        Box::pin(async move {
            if m.commit && !is_resolved(&resolved, &id) {
                check_commit_timer(&m.half, max_delay_sec, now_ms())?;
            }
            if !mark(&resolved, &id) {
                return Ok(EndOutcome::Duplicate);
            }
            let how = if m.commit {
                Resolution::Commit
            } else {
                Resolution::Rollback
            };
            let Some(records) = resolution_records(&m.half, how, host) else {
                unmark(&resolved, &id);
                return Err(EndError::NotAHalfMessage);
            };
            let after_put = crash_point::TRANSACTION_AFTER_PUT;
            // A partly stored commit (the message without its op record) is
            // a commit: the op record follows with the next checker pass.
            if let Err((0, e)) = store_resolution(&exact, &m.half, how, &records, after_put).await {
                unmark(&resolved, &id);
                return Err(e.into());
            }
            Ok(if m.commit {
                EndOutcome::Committed
            } else {
                EndOutcome::RolledBack
            })
        })
    }
}

#[cfg(test)]
mod resolved_tests {
    use super::*;

    #[test]
    fn resolved_ids_are_deduplicated_and_trimmed_by_age() {
        let r: Resolved = Default::default();
        r.lock().unwrap().insert("old".into(), now_ms() - 10_000);
        assert!(mark(&r, "new"));
        assert!(!mark(&r, "new"), "a second END_TRANSACTION must be refused");
        trim(&r, 5_000);
        assert!(!is_resolved(&r, "old"));
        assert!(is_resolved(&r, "new"));
        trim(&r, 0);
        assert!(is_resolved(&r, "new"), "0 disables trimming");
    }

    #[test]
    fn a_commit_applies_the_timer_max_delay() {
        // A half message's properties (its sys flag says NOT, as stored).
        let half = |pairs: &[(&str, &str)]| {
            message::encode_properties(
                [("REAL_TOPIC", "T"), ("REAL_QID", "0"), ("TRAN_MSG", "true")]
                    .into_iter()
                    .chain(pairs.iter().copied()),
            )
        };
        let now = 1_000_000;
        let ok = |p: &str| check_timer_at_commit(sysflag::TRANSACTION_NOT_TYPE, p, 60, now);
        assert!(ok(&half(&[])).is_ok());
        assert!(ok(&half(&[("TIMER_DELAY_SEC", "60")])).is_ok());
        // Measured from the commit, in HookUtils' order.
        let far = half(&[("TIMER_DELAY_SEC", "61"), ("TIMER_DELIVER_MS", "1000500")]);
        match ok(&far) {
            Err(EndError::Store(StoreFailure::Put(PutError::Illegal(r)))) => {
                assert!(r.contains("max delay 60000ms"), "{r}")
            }
            other => panic!("not refused: {other:?}"),
        }
        let at = half(&[("TIMER_DELIVER_MS", &(now + 61_000).to_string())]);
        assert!(ok(&at).is_err());
        // A delay level wins over the timer properties.
        assert!(ok(&half(&[("DELAY", "2"), ("TIMER_DELAY_SEC", "999")])).is_ok());
    }
}
