//! One POP's read of one queue (`PopMessageProcessor#popMsgFromQueue`):
//! take the queue's POP lock, start at the group's offset, read, then
//! write the check-point (non-orderly) or the FIFO state (orderly) before
//! moving the offset. Also the revive-topic writer the POP calls share.

use bytes::{Bytes, BytesMut};

use super::pop::{PopPlan, PopReply, PopRequest, PoppedMessage};
use super::BrokerService;
use crate::actors::broker::offsets::{CommitOffset, QueryOffset};
use crate::actors::broker::pop_state::{queue_key, OrderInfo};
use crate::actors::broker::queue::{
    Pull, PullOutcome, PullQuery, PullStatus, QueueActor, QueueOffsets,
};
use crate::actors::broker::store_path::{self, NewRecord};
use crate::actors::broker::topic::TopicEntry;
use crate::service::Refusal;
use crate::wire::message::{self, keys, MessageExt};
use crate::wire::pop::{classify, CheckPoint, Handle, ORDER_REVIVE_QID, TOPIC_NORMAL};

/// Where one queue read starts.
struct Read<'a> {
    entry: &'a TopicEntry,
    qid: i32,
    queue: &'a actix::Addr<QueueActor>,
    offset: i64,
}

/// What one queue read found.
struct Found {
    start: i64,
    outcome: PullOutcome,
    msgs: Vec<(MessageExt, Bytes)>,
}

impl BrokerService {
    /// Reads one queue for `req` into `reply` (nothing when another POP
    /// holds the queue).
    pub(super) async fn pop_queue(
        &self,
        req: &PopRequest,
        plan: &PopPlan,
        entry: &TopicEntry,
        qid: i32,
        reply: &mut PopReply,
    ) -> Result<(), Refusal> {
        let ctx = self.ctx();
        let key = queue_key(&entry.name, &req.group, qid);
        let Some(_lock) = ctx.pop.try_lock(key.clone()) else {
            return Ok(());
        };
        let Some(queue) = entry.queue(qid) else {
            return Ok(());
        };
        let (ty, _) = classify(&entry.name, &req.group);
        let offset = self
            .pop_offset(
                &req.group,
                &entry.name,
                qid,
                queue,
                req.init_mode,
                ty != TOPIC_NORMAL,
            )
            .await?;
        if req.order {
            return self
                .pop_orderly(req, plan, entry, qid, queue, key, offset, reply)
                .await;
        }
        let read = Read {
            entry,
            qid,
            queue,
            offset,
        };
        let Some((found, offsets)) = self
            .read_for(req, plan, &read, ty == TOPIC_NORMAL, reply)
            .await?
        else {
            return Ok(());
        };
        let ck = CheckPoint {
            start_offset: found.start,
            pop_time: reply.pop_time,
            invisible_ms: req.invisible_ms as i64,
            bitmap: 0,
            num: offsets.len() as u8,
            queue_id: qid,
            topic: entry.name.to_string(),
            group: req.group.clone(),
            revive_offset: 0,
            deltas: offsets.iter().map(|o| (o - found.start) as i32).collect(),
            broker_name: ctx.cfg.broker_name.clone(),
            re_put: None,
        };
        self.put_checkpoint(reply.revive_qid, &ck).await?;
        self.commit_pop_offset(&req.group, &entry.name, qid, found.outcome.next_begin);
        reply.infos.add_read(ty, qid, found.start, &offsets);
        self.hand_out(req, reply, found, ty, qid, |_| 0);
        Ok(())
    }

    /// Orderly read: a queue with un-acked, still invisible offsets is
    /// skipped; otherwise it re-delivers from the committed offset
    /// (`ConsumerOrderInfoManager`).
    #[allow(clippy::too_many_arguments)]
    async fn pop_orderly(
        &self,
        req: &PopRequest,
        plan: &PopPlan,
        entry: &TopicEntry,
        qid: i32,
        queue: &actix::Addr<QueueActor>,
        key: String,
        offset: i64,
        reply: &mut PopReply,
    ) -> Result<(), Refusal> {
        let ctx = self.ctx();
        let now = reply.pop_time;
        let prev = ctx.pop.order_info(&key).filter(|i| !i.all_acked());
        let same_attempt = req.attempt_id.is_some()
            && prev
                .as_ref()
                .is_some_and(|i| i.attempt_id == req.attempt_id);
        if prev.as_ref().is_some_and(|i| i.blocks(now)) && !same_attempt {
            return Ok(());
        }
        let read = Read {
            entry,
            qid,
            queue,
            offset,
        };
        let Some((found, offsets)) = self.read_for(req, plan, &read, true, reply).await? else {
            return Ok(());
        };
        let mut counts = std::collections::HashMap::new();
        for o in &offsets {
            let before = prev.as_ref().and_then(|i| {
                i.offsets
                    .contains(o)
                    .then(|| i.counts.get(o).copied().unwrap_or(0))
            });
            let c = match before {
                Some(c) if same_attempt => c,
                Some(c) => c + 1,
                None => 0,
            };
            counts.insert(*o, c);
        }
        let info = OrderInfo {
            pop_time: now,
            invisible_ms: req.invisible_ms as i64,
            acked: vec![false; offsets.len()],
            next_visible: vec![now + req.invisible_ms as i64; offsets.len()],
            offsets: offsets.clone(),
            counts: counts.clone(),
            attempt_id: req.attempt_id.clone(),
        };
        ctx.pop.set_order_info(key, info);
        self.commit_pop_offset(&req.group, &entry.name, qid, found.start);
        reply
            .infos
            .add_read(TOPIC_NORMAL, qid, found.start, &offsets);
        let pairs: Vec<(i64, i32)> = offsets.iter().map(|o| (*o, counts[o])).collect();
        reply.infos.add_order_counts(TOPIC_NORMAL, qid, &pairs);
        self.hand_out(req, reply, found, TOPIC_NORMAL, qid, |o| counts[&o]);
        Ok(())
    }

    /// Reads what the POP still wants from one queue (filtered unless a
    /// retry topic) and counts what is left in `restNum`; None when nothing
    /// was found.
    async fn read_for(
        &self,
        req: &PopRequest,
        plan: &PopPlan,
        r: &Read<'_>,
        filtered: bool,
        reply: &mut PopReply,
    ) -> Result<Option<(Found, Vec<i64>)>, Refusal> {
        let want = plan.max_msgs.saturating_sub(reply.messages.len()).max(1);
        let filters = filtered.then(|| (plan.tags.clone(), plan.sql.clone()));
        let found = self
            .read_queue(
                &req.group,
                &r.entry.name,
                r.qid,
                r.queue,
                r.offset,
                want,
                filters,
            )
            .await?;
        reply.rest_num += (found.outcome.max - found.outcome.next_begin).max(0);
        if let Some(end) = found.outcome.capped_at {
            reply.confirm_wait = Some(reply.confirm_wait.map_or(end, |w| w.min(end)));
        }
        if found.msgs.is_empty() {
            return Ok(None);
        }
        let offsets = found.msgs.iter().map(|(m, _)| m.queue_offset).collect();
        Ok(Some((found, offsets)))
    }

    /// Adds the found messages to the reply with their handles.
    fn hand_out(
        &self,
        req: &PopRequest,
        reply: &mut PopReply,
        found: Found,
        ty: i32,
        qid: i32,
        count_of: impl Fn(i64) -> i32,
    ) {
        for (mut m, record) in found.msgs {
            let handle = Handle {
                ck_start_offset: found.start,
                pop_time: reply.pop_time,
                invisible_ms: req.invisible_ms as i64,
                revive_qid: reply.revive_qid,
                topic_type: ty,
                broker_name: self.ctx().cfg.broker_name.clone(),
                queue_id: qid,
                queue_offset: Some(m.queue_offset),
                commit_log_offset: None,
            }
            .render();
            let record = if ty == TOPIC_NORMAL {
                if reply.revive_qid == ORDER_REVIVE_QID {
                    m.reconsume_times = count_of(m.queue_offset);
                }
                record
            } else {
                relabel(&mut m, &req.topic, &handle).unwrap_or(record)
            };
            reply.messages.push(PoppedMessage {
                message: m,
                receipt_handle: handle,
                record,
            });
        }
    }

    /// The group's POP offset in a queue; a group new to the queue starts
    /// per `initMode` (`PopMessageProcessor#getInitOffset`), committed.
    async fn pop_offset(
        &self,
        group: &str,
        topic: &str,
        qid: i32,
        queue: &actix::Addr<QueueActor>,
        init_mode: i32,
        is_retry: bool,
    ) -> Result<i64, Refusal> {
        let ctx = self.ctx();
        let committed = ctx
            .offsets
            .send(QueryOffset {
                group: group.to_owned(),
                topic: topic.to_owned(),
                queue_id: qid,
            })
            .await?;
        if let Some(o) = committed.filter(|o| *o >= 0) {
            return Ok(o);
        }
        let (min, max) = queue.send(QueueOffsets).await?;
        // MAX starts at the last message, or at 0 while the queue was never
        // trimmed (`initPopOffsetByCheckMsgInMem`: offset 0 still held).
        let init = if is_retry || init_mode == 0 || min <= 0 {
            min
        } else {
            (max - 1).max(0)
        };
        self.commit_pop_offset(group, topic, qid, init);
        Ok(init)
    }

    pub(super) fn commit_pop_offset(&self, group: &str, topic: &str, qid: i32, offset: i64) {
        self.ctx().offsets.do_send(CommitOffset {
            group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id: qid,
            offset,
        });
    }

    /// Reads up to `want` messages from `offset`, following the queue when
    /// the offset is out of its range (the move is committed).
    #[allow(clippy::too_many_arguments)]
    async fn read_queue(
        &self,
        group: &str,
        topic: &str,
        qid: i32,
        queue: &actix::Addr<QueueActor>,
        mut offset: i64,
        want: usize,
        filters: Option<super::pull::Filters>,
    ) -> Result<Found, Refusal> {
        let (tag_codes, sql) = filters.unwrap_or((None, None));
        for _ in 0..2 {
            let query = PullQuery {
                offset,
                max_msgs: want as i32,
                tag_codes: tag_codes.clone(),
                sql: sql.clone(),
            };
            let outcome = match queue.send(Pull { query, hold: None }).await? {
                Ok(o) => o,
                Err(e) => return Err(Refusal::Failed(e.to_string())),
            };
            let moved = matches!(
                outcome.status,
                PullStatus::OffsetTooSmall | PullStatus::OffsetOverflowBadly
            ) || (outcome.status == PullStatus::NoMatchedMessage
                && outcome.next_begin > offset);
            if moved && outcome.next_begin != offset {
                self.commit_pop_offset(group, topic, qid, outcome.next_begin);
                offset = outcome.next_begin;
                if outcome.status == PullStatus::NoMatchedMessage {
                    return Ok(Found {
                        start: offset,
                        outcome,
                        msgs: Vec::new(),
                    });
                }
                continue;
            }
            let msgs = outcome
                .bodies
                .iter()
                .filter_map(|b| {
                    let m = message::decode_record(b, 0, false).ok()?;
                    Some((m, b.clone()))
                })
                .collect();
            return Ok(Found {
                start: offset,
                outcome,
                msgs,
            });
        }
        Err(Refusal::Busy(format!(
            "[OVERLOAD] queue {topic}:{qid} moving, try again"
        )))
    }

    /// Writes a check-point record to revive queue `qid`.
    pub(super) async fn put_checkpoint(&self, qid: i32, ck: &CheckPoint) -> Result<(), Refusal> {
        let body = serde_json::to_vec(ck).map_err(|e| Refusal::Failed(e.to_string()))?;
        self.put_revive(qid, crate::wire::pop::CK_TAG, &ck.uniq_key(), body)
            .await
    }

    /// Appends one record to the revive topic (`rmq_sys_REVIVE_LOG_<cluster>`).
    pub(super) async fn put_revive(
        &self,
        qid: i32,
        tag: &str,
        uniq_key: &str,
        body: Vec<u8>,
    ) -> Result<(), Refusal> {
        let ctx = self.ctx();
        if qid < 0 || qid >= ctx.pop.revive_queues {
            return Err(Refusal::InvalidParameter(format!(
                "illegal revive queue id {qid}, reviveQueueNum {}",
                ctx.pop.revive_queues
            )));
        }
        let props = message::with_property("", keys::TAGS, tag);
        let props = message::with_property(&props, keys::UNIQ_KEY, uniq_key);
        let rec = NewRecord {
            topic: ctx.pop.revive_topic.as_str().into(),
            queue_id: qid,
            flag: 0,
            sys_flag: 0,
            born_timestamp: crate::wire::now_ms(),
            born_host: ctx.store_host,
            store_host: ctx.store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: body.into(),
            properties: props,
        };
        store_path::store(&ctx.commit_log, &ctx.services.levels, &[rec], false)
            .await
            .map(|_| ())
            .map_err(super::retry::store_refusal)
    }
}

/// A retry-topic message as a POP returns it: under its original topic,
/// with `POP_CK` set (`PopMessageProcessor`, unless
/// `popResponseReturnActualRetryTopic`). Returns the re-encoded record.
fn relabel(m: &mut MessageExt, topic: &str, handle: &str) -> Option<Bytes> {
    m.topic = topic.to_owned();
    if m.property(keys::POP_CK).is_none() {
        m.properties = message::with_property(&m.properties, keys::POP_CK, handle);
    }
    let spec = m.as_spec();
    let mut buf = BytesMut::with_capacity(message::record_len(&spec));
    message::encode_record(&spec, &mut buf).ok()?;
    message::patch_i64(&mut buf, message::QUEUE_OFFSET_POS, m.queue_offset);
    message::patch_i64(&mut buf, message::PHYS_OFFSET_POS, m.commit_log_offset);
    Some(buf.freeze())
}
