//! Acks of POPped messages (`AckMessageProcessor`,
//! `ChangeInvisibleTimeProcessor`): ACK_MESSAGE and BATCH_ACK_MESSAGE write
//! ack records to the revive queue the handle names; orderly handles
//! (revive queue 999) move the FIFO state instead.
//! CHANGE_MESSAGE_INVISIBLETIME writes a new one-message check-point, then
//! acks the old one.

use std::collections::BTreeMap;

use super::pop::{AckRequest, ChangeInvisibleReply, ChangeInvisibleRequest};
use super::BrokerService;
use crate::actors::broker::pop_state::queue_key;
use crate::actors::broker::queue::QueueOffsets;
use crate::service::{Caller, Refusal};
use crate::wire::names;
use crate::wire::pop::{real_topic, AckRecord, CheckPoint, CkKey, Handle, ORDER_REVIVE_QID};

/// An ack request resolved against the broker's queues.
struct Target {
    handle: Handle,
    /// The real topic (the retry topic for retried messages).
    topic: String,
    max_offset: i64,
}

impl BrokerService {
    /// ACK_MESSAGE: marks one message done.
    pub async fn ack(&self, _caller: &Caller, req: AckRequest) -> Result<(), Refusal> {
        let t = self.ack_target_of(&req).await?;
        self.ack_one(&req, &t).await
    }

    async fn ack_one(&self, req: &AckRequest, t: &Target) -> Result<(), Refusal> {
        let h = &t.handle;
        if h.revive_qid == ORDER_REVIVE_QID {
            return self.ack_orderly(&req.group, &t.topic, req.queue_id, h.pop_time, req.offset);
        }
        let rec = self.ack_record(&req.group, t, req.queue_id, vec![req.offset]);
        self.put_ack(h.revive_qid, &rec).await
    }

    /// BATCH_ACK_MESSAGE: acks grouped per check-point, one `bAck` record each.
    pub async fn batch_ack(&self, _caller: &Caller, reqs: Vec<AckRequest>) -> Result<(), Refusal> {
        if reqs.is_empty() {
            return Err(Refusal::NoMessage("no ack in the batch".into()));
        }
        // Per check-point (and revive queue): its target and acked offsets.
        let mut groups: BTreeMap<(CkKey, i32), (Target, Vec<i64>)> = BTreeMap::new();
        for req in reqs {
            let t = self.ack_target_of(&req).await?;
            if t.handle.revive_qid == ORDER_REVIVE_QID {
                self.ack_one(&req, &t).await?;
                continue;
            }
            let h = &t.handle;
            let ck = CkKey::new(
                &t.topic,
                &req.group,
                req.queue_id,
                h.ck_start_offset,
                h.pop_time,
            );
            let key = (ck, h.revive_qid);
            groups
                .entry(key)
                .or_insert_with(|| (t, Vec::new()))
                .1
                .push(req.offset);
        }
        for ((key, _), (t, offsets)) in groups {
            let rec = self.ack_record(&key.group, &t, key.queue_id, offsets);
            self.put_ack(t.handle.revive_qid, &rec).await?;
        }
        Ok(())
    }

    /// CHANGE_MESSAGE_INVISIBLETIME: the message becomes visible
    /// `invisible_ms` from now; the reply carries its new handle.
    pub async fn change_invisible(
        &self,
        _caller: &Caller,
        req: ChangeInvisibleRequest,
    ) -> Result<ChangeInvisibleReply, Refusal> {
        let t = self
            .ack_target(
                &req.group,
                &req.topic,
                req.queue_id,
                &req.receipt_handle,
                req.offset,
            )
            .await?;
        if req.offset >= t.max_offset {
            return Err(Refusal::NoMessage(format!(
                "offset {} is not below the max offset {} of {}:{}",
                req.offset, t.max_offset, t.topic, req.queue_id
            )));
        }
        if req.invisible_ms > super::pop::MAX_INVISIBLE_MS {
            return Err(Refusal::InvalidParameter(format!(
                "invisibleTime {} above {} ms",
                req.invisible_ms,
                super::pop::MAX_INVISIBLE_MS
            )));
        }
        let h = &t.handle;
        let now = crate::wire::now_ms();
        if h.revive_qid == ORDER_REVIVE_QID {
            return Ok(self.change_orderly(&req, &t, now));
        }
        let ck = CheckPoint {
            start_offset: req.offset,
            pop_time: now,
            invisible_ms: req.invisible_ms as i64,
            bitmap: 0,
            num: 1,
            queue_id: req.queue_id,
            topic: t.topic.clone(),
            group: req.group.clone(),
            revive_offset: 0,
            deltas: vec![0],
            broker_name: h.broker_name.clone(),
            re_put: None,
        };
        self.put_checkpoint(h.revive_qid, &ck).await?;
        let rec = self.ack_record(&req.group, &t, req.queue_id, vec![req.offset]);
        self.put_ack(h.revive_qid, &rec).await?;
        let handle = Handle {
            ck_start_offset: req.offset,
            pop_time: now,
            invisible_ms: req.invisible_ms as i64,
            queue_id: req.queue_id,
            queue_offset: Some(req.offset),
            commit_log_offset: None,
            ..h.clone()
        };
        Ok(ChangeInvisibleReply {
            receipt_handle: handle.render(),
            pop_time: now,
            invisible_ms: req.invisible_ms,
            revive_qid: h.revive_qid,
        })
    }

    /// Orderly: moves the offset's next-visible time; the pop time stays,
    /// so the handle still matches the FIFO state.
    fn change_orderly(
        &self,
        req: &ChangeInvisibleRequest,
        t: &Target,
        now: i64,
    ) -> ChangeInvisibleReply {
        let h = &t.handle;
        let key = queue_key(&t.topic, &req.group, req.queue_id);
        let wanted = now + req.invisible_ms as i64;
        let moved = self.ctx().pop.with_order(|m| {
            let info = m.get_mut(&key).filter(|i| i.pop_time == h.pop_time)?;
            let i = info.offsets.iter().position(|o| *o == req.offset)?;
            info.next_visible[i] = wanted;
            Some(wanted)
        });
        let next_visible = moved.flatten().unwrap_or_else(|| h.next_visible());
        let invisible = (next_visible - h.pop_time).max(0);
        let handle = Handle {
            invisible_ms: invisible,
            queue_offset: Some(req.offset),
            commit_log_offset: None,
            ..h.clone()
        };
        ChangeInvisibleReply {
            receipt_handle: handle.render(),
            pop_time: h.pop_time,
            invisible_ms: invisible as u64,
            revive_qid: ORDER_REVIVE_QID,
        }
    }

    /// Orderly ack (`ConsumerOrderInfoManager#commitAndNext`): the
    /// committed offset moves to the first un-acked one; waiting POPs are
    /// woken when the queue unblocks.
    fn ack_orderly(
        &self,
        group: &str,
        topic: &str,
        qid: i32,
        pop_time: i64,
        offset: i64,
    ) -> Result<(), Refusal> {
        let ctx = self.ctx();
        let key = queue_key(topic, group, qid);
        let acked = ctx.pop.with_order(|m| {
            let Some(info) = m.get_mut(&key).filter(|i| i.pop_time == pop_time) else {
                return Ok(None); // stale handle: a later POP re-delivered
            };
            let Some(i) = info.offsets.iter().position(|o| *o == offset) else {
                return Err(Refusal::MessageIllegal(format!(
                    "offset {offset} was not popped from {topic}:{qid} by {group}"
                )));
            };
            info.acked[i] = true;
            let c = info.commit_offset();
            if info.all_acked() {
                m.remove(&key);
            }
            Ok(c)
        });
        let commit = acked.transpose()?.flatten();
        if let Some(c) = commit {
            self.commit_pop_offset(group, topic, qid, c);
        }
        ctx.pop.arrivals.notify(topic);
        Ok(())
    }

    async fn ack_target_of(&self, r: &AckRequest) -> Result<Target, Refusal> {
        self.ack_target(&r.group, &r.topic, r.queue_id, &r.receipt_handle, r.offset)
            .await
    }

    /// The checks of `AckMessageProcessor`: a parsable handle of this
    /// broker, an existing topic, a readable queue, an offset it holds.
    async fn ack_target(
        &self,
        group: &str,
        topic: &str,
        qid: i32,
        handle: &str,
        offset: i64,
    ) -> Result<Target, Refusal> {
        let ctx = self.ctx();
        names::check_group(group)?;
        let handle = Handle::parse(handle).map_err(Refusal::InvalidParameter)?;
        if handle.broker_name != ctx.cfg.broker_name {
            return Err(Refusal::InvalidParameter(format!(
                "receipt handle of broker {}, this is {}",
                handle.broker_name, ctx.cfg.broker_name
            )));
        }
        let real = if names::is_retry_topic(topic) {
            topic.to_owned()
        } else {
            real_topic(topic, group, handle.topic_type)
        };
        let Some(entry) = ctx.topics.get(&real) else {
            return Err(Refusal::topic_not_exist(&real));
        };
        let Some(queue) = entry
            .queue(qid)
            .filter(|_| qid < entry.config.read_queue_nums.max(1))
        else {
            return Err(Refusal::MessageIllegal(format!(
                "queueId[{qid}] is illegal, topic:[{real}] topicConfig.readQueueNums:[{}]",
                entry.config.read_queue_nums
            )));
        };
        let (min, max) = queue.send(QueueOffsets).await?;
        if offset < min || offset > max {
            return Err(Refusal::NoMessage(format!(
                "offset {offset} is out of range [{min}, {max}] of {real}:{qid}"
            )));
        }
        Ok(Target {
            handle,
            topic: real,
            max_offset: max,
        })
    }

    fn ack_record(&self, group: &str, t: &Target, qid: i32, offsets: Vec<i64>) -> AckRecord {
        let (ack_offset, ack_offsets) = if offsets.len() == 1 {
            (offsets[0], Vec::new())
        } else {
            (offsets.first().copied().unwrap_or(0), offsets)
        };
        AckRecord {
            ack_offset,
            start_offset: t.handle.ck_start_offset,
            group: group.to_owned(),
            topic: t.topic.clone(),
            queue_id: qid,
            pop_time: t.handle.pop_time,
            broker_name: t.handle.broker_name.clone(),
            ack_offsets,
        }
    }

    async fn put_ack(&self, revive_qid: i32, rec: &AckRecord) -> Result<(), Refusal> {
        let body = serde_json::to_vec(rec).map_err(|e| Refusal::Failed(e.to_string()))?;
        let (tag, key) = rec.tag_and_key();
        self.put_revive(revive_qid, tag, &key, body).await
    }
}
