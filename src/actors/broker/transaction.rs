//! `Transactions`: resolves and checks transaction half messages
//! (protocol.md §7.4).
//!
//! Half messages sit in `RMQ_SYS_TRANS_HALF_TOPIC` queue 0 (the store path
//! puts them there). END_TRANSACTION resolves one: commit stores the real
//! message plus an op record in `RMQ_SYS_TRANS_OP_HALF_TOPIC`, rollback only
//! the op record. Op records carry the half's queue offset in their body
//! (`"15,"`, RocketMQ's format) and its transaction id in
//! `__transactionId__`; the set of resolved ids, rebuilt from the op queue at
//! start, makes a repeated END_TRANSACTION a no-op.
//!
//! The checker runs every `transactionCheckInterval`, scanning the half
//! queue from its progress offset (consumer offset of `CID_RMQ_SYS_TRANS`).
//! An unresolved half older than `transactionTimeOut` (or its check
//! immunity) is re-appended with `TRANSACTION_CHECK_TIMES + 1` and the
//! producer group is asked with CHECK_TRANSACTION_STATE; after
//! `transactionCheckMax` checks it is moved to `TRANS_CHECK_MAX_TIME_TOPIC`.

use actix::prelude::*;
use bytes::BytesMut;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::clients::{ClientRegistry, ProducerChannel};
use super::commit_log::CommitLogWriter;
use super::offsets::{CommitOffset, OffsetManager};
use super::queue::{Pull, PullQuery, PullStatus, QueueActor};
use super::store_path::{self, DelayLevels, NewRecord, StoreFailure};
use super::store_path::{CHECK_MAX_TOPIC, HALF_TOPIC, OP_TOPIC, TRANS_GROUP};
use super::topic::TopicRegistry;
use crate::wire::codes::request;
use crate::wire::headers::consume::CheckTransactionStateRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::message::{self, keys, sysflag, MessageExt};
use crate::wire::{now_ms, RemotingCommand};

/// Checker settings (from the broker config).
#[derive(Debug, Clone, Copy)]
pub struct CheckPolicy {
    pub interval: Duration,
    pub timeout_ms: i64,
    pub max_checks: i32,
    /// Half messages older than this (the file retention time) are no
    /// longer checked: their commit-log files are about to expire.
    pub max_age_ms: i64,
}

/// Resolved transaction id → when it was resolved (ms), so the set can be
/// trimmed to the file retention time instead of growing forever.
type Resolved = Arc<Mutex<HashMap<String, i64>>>;

pub struct Transactions {
    levels: Arc<DelayLevels>,
    topics: TopicRegistry,
    commit_log: Addr<CommitLogWriter>,
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
    #[allow(clippy::too_many_arguments)]
    pub async fn load(
        levels: Arc<DelayLevels>,
        topics: TopicRegistry,
        commit_log: Addr<CommitLogWriter>,
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
        tracing::info!(resolved = resolved.len(), check_from, "transactions loaded");
        Transactions {
            levels,
            topics,
            commit_log,
            clients,
            offsets,
            store_host,
            broker_name,
            policy,
            resolved: Arc::new(Mutex::new(resolved)),
            check_from,
            checking: false,
        }
    }
}

impl Actor for Transactions {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
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
        let (commit_log, levels, host) = (
            self.commit_log.clone(),
            self.levels.clone(),
            self.store_host,
        );
        Box::pin(async move {
            if !mark(&resolved, &id) {
                return Ok(EndOutcome::Duplicate);
            }
            let mut records = Vec::new();
            if m.commit {
                match committed(&m.half, host) {
                    Some(r) => records.push(r),
                    None => {
                        unmark(&resolved, &id);
                        return Err(EndError::NotAHalfMessage);
                    }
                }
            }
            records.push(op_record(&m.half, host));
            if let Err(e) = store_path::store(&commit_log, &levels, &records, false).await {
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

/// Builds the CHECK_TRANSACTION_STATE request for the re-appended half.
fn check_request(copy: &MessageExt, broker_name: &str) -> Option<RemotingCommand> {
    let mut body_msg = copy.clone();
    body_msg.topic = copy.property(keys::REAL_TOPIC)?.to_owned();
    body_msg.queue_id = copy.property(keys::REAL_QID)?.trim().parse().ok()?;
    let spec = body_msg.as_spec();
    let mut buf = BytesMut::with_capacity(message::record_len(&spec));
    message::encode_record(&spec, &mut buf).ok()?;
    message::patch_i64(&mut buf, message::QUEUE_OFFSET_POS, copy.queue_offset);
    message::patch_i64(&mut buf, message::PHYS_OFFSET_POS, copy.commit_log_offset);
    let mut cmd = RemotingCommand::request(request::CHECK_TRANSACTION_STATE);
    CheckTransactionStateRequestHeader {
        topic: Some(body_msg.topic.clone()),
        tran_state_table_offset: copy.queue_offset,
        commit_log_offset: copy.commit_log_offset,
        msg_id: copy.uniq_key().map(str::to_owned),
        transaction_id: Some(transaction_id(copy)),
        offset_msg_id: Some(copy.offset_msg_id()),
        broker_name: Some(broker_name.to_owned()),
    }
    .write_ext(&mut cmd.ext);
    Some(cmd.with_body(buf.freeze()))
}

/// What the checker needs, owned by its future.
struct Checker {
    half_queue: Addr<QueueActor>,
    commit_log: Addr<CommitLogWriter>,
    clients: Addr<ClientRegistry>,
    levels: Arc<DelayLevels>,
    store_host: SocketAddr,
    broker_name: String,
    policy: CheckPolicy,
    resolved: Resolved,
}

impl Checker {
    /// One pass over the half queue from `from`; returns the new progress.
    async fn run(self, from: i64) -> i64 {
        let mut offset = from;
        let now = now_ms();
        for _ in 0..64 {
            let q = PullQuery {
                offset,
                max_msgs: 32,
                tag_codes: None,
                sql: None,
            };
            let r = match self
                .half_queue
                .send(Pull {
                    query: q,
                    hold: None,
                })
                .await
            {
                Ok(Ok(r)) => r,
                _ => return offset,
            };
            match r.status {
                PullStatus::Found => {}
                PullStatus::NoMatchedMessage
                | PullStatus::MessageWasRemoving
                | PullStatus::OffsetTooSmall => {
                    offset = r.next_begin.max(offset);
                    continue;
                }
                _ => return offset,
            }
            for b in &r.bodies {
                let Ok(half) = message::decode_record(b, 0, false) else {
                    continue;
                };
                let id = transaction_id(&half);
                if is_resolved(&self.resolved, &id) {
                    offset = half.queue_offset + 1;
                    continue;
                }
                let checks = half
                    .property(keys::TRANSACTION_CHECK_TIMES)
                    .and_then(|v| v.trim().parse::<i32>().ok())
                    .unwrap_or(0);
                let mut wait = self.policy.timeout_ms;
                if checks == 0 {
                    if let Some(s) = half
                        .property(keys::CHECK_IMMUNITY_TIME_IN_SECONDS)
                        .and_then(|v| v.trim().parse::<i64>().ok())
                    {
                        wait = wait.max(s.saturating_mul(1000));
                    }
                }
                if self.policy.max_age_ms > 0 && now - half.store_timestamp > self.policy.max_age_ms
                {
                    tracing::info!(transaction = %id, "half message older than the file retention; no longer checked");
                    offset = half.queue_offset + 1;
                    continue;
                }
                if now - half.store_timestamp < wait {
                    return offset; // younger ones follow: stop here
                }
                if !self.check_one(&half, &id, checks).await {
                    return offset;
                }
                offset = half.queue_offset + 1;
            }
        }
        offset
    }

    /// Re-appends and checks, or gives up on, one half message.
    async fn check_one(&self, half: &MessageExt, id: &str, checks: i32) -> bool {
        if checks >= self.policy.max_checks {
            let props = message::with_property(&half.properties, keys::WAIT, "false");
            let mut r = NewRecord::copy_of(half, CHECK_MAX_TOPIC.into(), 0, self.store_host, props);
            r.prepared_transaction_offset = 0;
            let op = op_record(half, self.store_host);
            mark(&self.resolved, id);
            if let Err(e) = store_path::store(&self.commit_log, &self.levels, &[r, op], false).await
            {
                unmark(&self.resolved, id);
                tracing::error!(error = %e, "cannot abandon half message");
                return false;
            }
            tracing::warn!(
                transaction = id,
                checks,
                "half message checked too often; abandoned"
            );
            return true;
        }
        let props = message::with_property(
            &half.properties,
            keys::TRANSACTION_CHECK_TIMES,
            &(checks + 1).to_string(),
        );
        let mut copy =
            NewRecord::copy_of(half, HALF_TOPIC.into(), 0, self.store_host, props.clone());
        copy.prepared_transaction_offset = 0;
        let put = match store_path::store(&self.commit_log, &self.levels, &[copy], false).await {
            Ok((r, _)) if !r.is_empty() => r[0],
            Ok(_) => return false,
            Err(e) => {
                tracing::error!(error = %e, "cannot re-append half message");
                return false;
            }
        };
        let mut stored = half.clone();
        stored.properties = props;
        stored.queue_offset = put.queue_offset;
        stored.commit_log_offset = put.phys_offset;
        stored.store_host = self.store_host;
        let group = half.property(keys::PGROUP).unwrap_or_default().to_owned();
        let channel = self
            .clients
            .send(ProducerChannel(group.clone()))
            .await
            .ok()
            .flatten();
        match (channel, check_request(&stored, &self.broker_name)) {
            (Some(ch), Some(cmd)) => {
                ch.oneway(cmd);
                tracing::debug!(transaction = id, %group, "transaction check sent");
            }
            (None, _) => tracing::info!(transaction = id, %group, "no producer online to check"),
            (_, None) => tracing::warn!(transaction = id, "half message cannot be re-encoded"),
        }
        true
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CheckNow;

impl Handler<CheckNow> for Transactions {
    type Result = ();
    fn handle(&mut self, _: CheckNow, ctx: &mut Context<Self>) {
        if self.checking {
            return;
        }
        trim(&self.resolved, self.policy.max_age_ms);
        let Some(half_queue) = self
            .topics
            .get(HALF_TOPIC)
            .and_then(|t| t.queue(0).cloned())
        else {
            return;
        };
        self.checking = true;
        let checker = Checker {
            half_queue,
            commit_log: self.commit_log.clone(),
            clients: self.clients.clone(),
            levels: self.levels.clone(),
            store_host: self.store_host,
            broker_name: self.broker_name.clone(),
            policy: self.policy,
            resolved: self.resolved.clone(),
        };
        let from = self.check_from;
        ctx.spawn(checker.run(from).into_actor(self).map(move |next, act, _| {
            act.checking = false;
            if next != act.check_from {
                act.check_from = next;
                act.offsets.do_send(CommitOffset {
                    group: TRANS_GROUP.into(),
                    topic: HALF_TOPIC.into(),
                    queue_id: 0,
                    offset: next,
                });
            }
        }));
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
}
