//! The transaction checker of [`Transactions`]: half messages unresolved
//! past `transactionTimeOut` are re-appended and their producers asked
//! (CHECK_TRANSACTION_STATE), up to `transactionCheckMax` times, then
//! discarded (RocketMQ's `TransactionalMessageCheckService`).

use super::*;

/// The CHECK_TRANSACTION_STATE header and message for the re-appended half.
fn check_request(
    copy: &MessageExt,
    broker_name: &str,
) -> Option<(CheckTransactionStateRequestHeader, bytes::Bytes)> {
    let mut body_msg = copy.clone();
    body_msg.topic = copy.property(keys::REAL_TOPIC)?.to_owned();
    body_msg.queue_id = copy.property(keys::REAL_QID)?.trim().parse().ok()?;
    let spec = body_msg.as_spec();
    let mut buf = BytesMut::with_capacity(message::record_len(&spec));
    message::encode_record(&spec, &mut buf).ok()?;
    message::patch_i64(&mut buf, message::QUEUE_OFFSET_POS, copy.queue_offset);
    message::patch_i64(&mut buf, message::PHYS_OFFSET_POS, copy.commit_log_offset);
    let header = CheckTransactionStateRequestHeader {
        topic: Some(body_msg.topic.clone()),
        tran_state_table_offset: copy.queue_offset,
        commit_log_offset: copy.commit_log_offset,
        msg_id: copy.uniq_key().map(str::to_owned),
        transaction_id: Some(transaction_id(copy)),
        offset_msg_id: Some(copy.offset_msg_id()),
        broker_name: Some(broker_name.to_owned()),
    };
    Some((header, buf.freeze()))
}

/// What the checker needs, owned by its future.
struct Checker {
    half_queue: Addr<QueueActor>,
    commit_log: Addr<CommitLogWriter>,
    reader: CommitLogReader,
    exact: ExactPut,
    clients: Addr<ClientRegistry>,
    levels: Arc<DelayLevels>,
    store_host: SocketAddr,
    broker_name: String,
    policy: CheckPolicy,
    resolved: Resolved,
}

impl Checker {
    /// One pass over the half queue from `from`; returns the new progress.
    /// Batches left partly stored are finished first.
    async fn run(self, from: i64) -> i64 {
        if self.exact.has_orphans() {
            let r = &self.resolved;
            finish_interrupted(&self.exact, &self.reader, self.store_host, r).await;
        }
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
            let how = Resolution::Discard;
            let Some(records) = resolution_records(half, how, self.store_host) else {
                return false;
            };
            mark(&self.resolved, id);
            let after_put = crash_point::TRANSACTION_DISCARD_AFTER_PUT;
            if let Err((0, e)) = store_resolution(&self.exact, half, how, &records, after_put).await
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
            (Some(ch), Some((header, message))) => {
                ch.check_transaction_state(header, message);
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
            reader: self.reader.clone(),
            exact: self.exact.clone(),
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
