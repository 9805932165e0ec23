//! Send (SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE): validate,
//! auto-create the topic if allowed, encode the stored records on the
//! caller's thread, and hand them to the commit-log writer in one message.
//! A send to `%RETRY%<group>` past the group's retry limit goes to the DLQ.

use bytes::{Bytes, BytesMut};
use std::sync::Arc;

use super::BrokerService;
use crate::actors::broker::commit_log::{self, FlushOutcome, PutError, PutRecords, PutResults};
use crate::actors::broker::groups::EnsureGroup;
use crate::actors::broker::processor::BrokerCtx;
use crate::actors::broker::store_path;
use crate::actors::broker::topic::{EnsureTopic, TopicEntry};
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{perm, TopicConfig};
use crate::wire::message::{self, keys, sysflag, PropertyView};
use crate::wire::names::{self, AUTO_CREATE_TOPIC, RETRY_PREFIX};
use crate::wire::{msgid, now_ms};

/// A send as the producer asked for it (`SendMessageRequestHeader` and body).
#[derive(Debug, Clone)]
pub struct SendRequest<'a> {
    pub topic: &'a str,
    /// The topic a new topic inherits from (`TBW102` when empty).
    pub default_topic: &'a str,
    pub default_topic_queue_nums: i32,
    /// Negative: the broker picks a queue.
    pub queue_id: i32,
    pub sys_flag: i32,
    pub flag: i32,
    pub born_timestamp: i64,
    pub properties: &'a str,
    pub reconsume_times: i32,
    pub max_reconsume_times: Option<i32>,
    /// The message body, or the encoded batch when `batch`.
    pub body: Bytes,
    pub batch: bool,
}

/// What a stored send answers with.
pub struct SendReceipt {
    /// One per stored message, in order.
    pub results: PutResults,
    pub queue_id: i32,
    /// The first message's `UNIQ_KEY` (the client-side message id).
    pub transaction_id: Option<Uniq>,
    /// Whether the flush policy was met in time (SYNC_FLUSH).
    pub flush: FlushOutcome,
}

impl SendReceipt {
    pub fn queue_offset(&self) -> i64 {
        self.results.first().map(|r| r.queue_offset).unwrap_or(0)
    }
}

/// Bytes of a stored record besides body, topic and properties, plus what
/// the broker appends to the properties (a `UNIQ_KEY`, `CLUSTER` less its
/// name): the size estimate of a batch's buffer.
const RECORD_OVERHEAD: usize = 120 + 64;

/// Finds the topic, creating it from the default topic when allowed.
pub async fn resolve_topic(
    ctx: &BrokerCtx,
    topic: &str,
    default_topic: &str,
    queue_nums: i32,
) -> Result<Arc<TopicEntry>, Refusal> {
    if let Some(t) = ctx.topics.get(topic) {
        return Ok(t);
    }
    let inherit = if names::is_retry_topic(topic) {
        Some(TopicConfig::new(topic, 1, perm::READ | perm::WRITE))
    } else if ctx.cfg.auto_create_topic_enable {
        let def = ctx.topics.get(if default_topic.is_empty() {
            AUTO_CREATE_TOPIC
        } else {
            default_topic
        });
        def.filter(|d| d.config.perm & perm::INHERIT != 0).map(|d| {
            let n = if queue_nums > 0 {
                queue_nums
            } else {
                ctx.cfg.default_topic_queue_nums
            };
            let n = n.min(d.config.write_queue_nums).max(1);
            TopicConfig::new(topic, n, d.config.perm & !perm::INHERIT)
        })
    } else {
        None
    };
    let Some(config) = inherit else {
        return Err(Refusal::topic_not_exist(topic));
    };
    match ctx.topic_manager.send(EnsureTopic(config)).await {
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(e)) => {
            ctx.registrar
                .do_send(crate::actors::broker::registrar::RegisterNow);
            Ok(e)
        }
        Err(_) => Err(Refusal::busy("topic manager")),
    }
}

/// The first message's `UNIQ_KEY`, kept for the response: inline unless a
/// producer sent an unusually long one.
pub enum Uniq {
    Inline(msgid::UniqId),
    Long(String),
}

impl Uniq {
    fn of(s: &str) -> Uniq {
        msgid::UniqId::copy_of(s).map_or_else(|| Uniq::Long(s.to_owned()), Uniq::Inline)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Uniq::Inline(id) => id.as_str(),
            Uniq::Long(s) => s,
        }
    }
}

/// What the broker appends to sent properties: `CLUSTER` and a `UNIQ_KEY`
/// (when the producer sent none), as pieces to write after them.
fn property_tail<'a>(
    props: &str,
    view: &PropertyView,
    made_uniq: Option<&'a msgid::UniqId>,
    cluster: &'a str,
) -> ([&'a str; 9], usize) {
    const SEP: &str = "\u{2}";
    const KV: &str = "\u{1}";
    let mut t = [""; 9];
    let mut n = 0;
    let mut push = |p: &'a str| {
        t[n] = p;
        n += 1;
    };
    if !props.is_empty() && !props.ends_with(message::PROPERTY_SEPARATOR) {
        push(SEP);
    }
    if let Some(id) = made_uniq {
        [keys::UNIQ_KEY, KV, id.as_str(), SEP]
            .into_iter()
            .for_each(&mut push);
    }
    if view.get(keys::CLUSTER).is_none() {
        [keys::CLUSTER, KV, cluster, SEP]
            .into_iter()
            .for_each(&mut push);
    }
    (t, n)
}

/// Where a send to `%RETRY%<group>` really goes: the DLQ once the message
/// was reconsumed more than the group allows (or while the group holds
/// ordered-consumption locks). Returns (topic, forced queue id).
async fn retry_redirect(ctx: &BrokerCtx, h: &SendRequest<'_>) -> Result<Option<String>, Refusal> {
    let Some(group) = h.topic.strip_prefix(RETRY_PREFIX) else {
        return Ok(None);
    };
    let cfg = match ctx.groups.send(EnsureGroup(group.to_owned())).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Refusal::GroupNotExist(format!(
                "subscription group not exist, {group}"
            )))
        }
        Err(_) => return Err(Refusal::busy("group manager")),
    };
    let max = h.max_reconsume_times.unwrap_or(cfg.retry_max_times);
    let locked = ctx
        .services
        .locks
        .send(crate::actors::broker::locks::GroupLocked(group.to_owned()))
        .await
        .unwrap_or(false);
    if h.reconsume_times > max || locked {
        let dlq = names::dlq_topic(group);
        if ctx.topics.get(&dlq).is_none() {
            let _ = ctx
                .topic_manager
                .send(EnsureTopic(TopicConfig::new(
                    &dlq,
                    1,
                    perm::READ | perm::WRITE,
                )))
                .await;
            ctx.registrar
                .do_send(crate::actors::broker::registrar::RegisterNow);
        }
        return Ok(Some(dlq));
    }
    Ok(None)
}

impl BrokerService {
    /// Stores one message or a batch.
    pub async fn send(
        &self,
        caller: &Caller,
        mut h: SendRequest<'_>,
    ) -> Result<SendReceipt, Refusal> {
        let ctx = self.ctx();
        if let Some(r) = ctx.role.refuse_write() {
            return Err(r);
        }
        if ctx.disk_full.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Refusal::ServiceNotAvailable("service not available now: disk full, the broker refuses new messages until space is freed".into()));
        }
        names::check_topic(h.topic)?;
        let mut to_dlq = false;
        let dlq_topic;
        if let Some(dlq) = retry_redirect(ctx, &h).await? {
            dlq_topic = dlq;
            h.topic = &dlq_topic;
            h.queue_id = 0;
            to_dlq = true;
        }
        let topic =
            resolve_topic(ctx, h.topic, h.default_topic, h.default_topic_queue_nums).await?;
        if topic.config.perm & perm::WRITE == 0 {
            return Err(Refusal::NoPermission(format!(
                "the topic[{}] sending message is forbidden",
                h.topic
            )));
        }
        let write_queues = topic.config.write_queue_nums.max(1);
        let queue_id = if h.queue_id < 0 {
            (rand::random::<u32>() % write_queues as u32) as i32
        } else {
            h.queue_id
        };
        if queue_id >= topic.config.queue_count() {
            return Err(Refusal::InvalidParameter(format!(
                "request queueId[{}] is illegal, topic {} has {} queues",
                queue_id,
                h.topic,
                topic.config.queue_count()
            )));
        }
        let body = &h.body;
        let props = h.properties;
        let store_ts = now_ms();
        let mut sys_flag = h.sys_flag;
        if topic.config.topic_filter_type == "MULTI_TAG" {
            sys_flag |= sysflag::MULTI_TAGS;
        }
        let cluster = ctx.cfg.broker_cluster_name.as_str();
        let levels = ctx.services.levels.clone();
        let mut records = PutRecords::new();
        let mut first_uniq: Option<Uniq> = None;
        let topic_name: Arc<str> = topic.name.clone();
        let mut wait = true;
        // The records of a batch are written into one buffer and split off
        // it: one allocation for all of them.
        let mut arena = BytesMut::new();
        if h.batch {
            let n = message::batch_entries(body).count();
            records.reserve(n);
            arena.reserve(body.len() + n * (RECORD_OVERHEAD + topic_name.len() + cluster.len()));
        }

        let mut encode = |body: &Bytes,
                          flag: i32,
                          props: &str,
                          sys_flag: i32|
         -> Result<(), String> {
            if body.len() > ctx.cfg.max_message_size {
                return Err(format!(
                    "message body size {} exceeds the limit {}",
                    body.len(),
                    ctx.cfg.max_message_size
                ));
            }
            let view = PropertyView::new(props);
            let sent_uniq = view.get(keys::UNIQ_KEY);
            let made_uniq = sent_uniq.is_none().then(msgid::next_uniq_id);
            if view.get(keys::WAIT) == Some("false") {
                wait = false;
            }
            store_path::check_timer_delay(&view, sys_flag, store_ts, ctx.cfg.timer_max_delay_sec)?;
            let (tail, n) = property_tail(props, &view, made_uniq.as_ref(), cluster);
            let sent = store_path::Sent {
                topic: &topic_name,
                queue_id,
                flag,
                sys_flag,
                born_timestamp: h.born_timestamp,
                born_host: caller.remote,
                store_host: ctx.store_host,
                reconsume_times: h.reconsume_times,
                body,
                props,
                view: &view,
                tail: &tail[..n],
            };
            let rec = if to_dlq {
                // A dead letter loses its delay level.
                sent.record(message::without_property(
                    &sent.stored_properties(),
                    keys::DELAY,
                ))
                .encode(&levels, store_ts)
            } else {
                sent.encode(&levels, store_ts, &mut arena)
            };
            records.push(rec.map_err(|e| e.to_string())?);
            if first_uniq.is_none() {
                first_uniq = Some(match (sent_uniq, made_uniq) {
                    (_, Some(id)) => Uniq::Inline(id),
                    (u, None) => Uniq::of(u.unwrap_or_default()),
                });
            }
            Ok(())
        };

        let encoded = if h.batch {
            // Entries are encoded as they are read; a malformed one fails
            // the whole request before anything is stored.
            let mut n = 0;
            message::batch_entries(body)
                .try_for_each(|e| match e {
                    Ok(e) => {
                        n += 1;
                        encode(&e.body, e.flag, e.properties, sys_flag)
                    }
                    Err(e) => Err(format!("malformed batch body: {e}")),
                })
                .and_then(|()| {
                    if n == 0 {
                        Err("empty batch".to_owned())
                    } else {
                        Ok(())
                    }
                })
        } else {
            encode(body, h.flag, props, sys_flag)
        };
        encoded.map_err(Refusal::MessageIllegal)?;

        // Replication (`actors::ha`): a SYNC_MASTER send with WAIT (Java's
        // `needHandleHA`) checks the in-sync replicas before the append and
        // answers once enough slaves have the records.
        if let Some(auto) = &ctx.ha.auto {
            return send_controller_mode(ctx, auto, records, wait, queue_id, first_uniq).await;
        }
        let quorum = match ctx.role.role() {
            crate::config::BrokerRole::SyncMaster if wait => Some(
                ctx.ha
                    .group
                    .quorum(&ctx.cfg.ha, ctx.reader.max_offset())
                    .map_err(|_| Refusal::Failed("in-sync replicas not enough".into()))?,
            ),
            _ => None,
        };
        let (results, flush) = match commit_log::put(&ctx.commit_log, records, wait).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(put_refusal(e)),
            Err(_) => return Err(Refusal::busy("commit log")),
        };
        let end = results.last().map_or(0, |r| r.phys_offset + r.size as i64);
        let flush = match quorum {
            Some(q) => {
                let wait = std::time::Duration::from_millis(ctx.cfg.sync_flush_timeout);
                ctx.ha.group.sync_outcome(end, wait, flush, q).await
            }
            None => (ctx.ha.group.wake(), flush).1,
        };
        Ok(SendReceipt {
            results,
            queue_id,
            transaction_id: first_uniq,
            flush,
        })
    }
}

/// A send on a master in controller mode (RocketMQ's
/// `AutoSwitchHAService` rules): refused while the master has lost the
/// controller (it may be deposed); with `WAIT`, refused when the
/// SyncStateSet (the larger of the local and the proposed one) is smaller
/// than `minInSyncReplicas`; then, with `allAckInSyncStateSet`, answered
/// once every member has the records (the confirm offset covers them),
/// else once `inSyncReplicas - 1` connected slaves acked them.
async fn send_controller_mode(
    ctx: &crate::actors::broker::processor::BrokerCtx,
    auto: &crate::actors::ha::autoswitch::AutoSwitch,
    records: commit_log::PutRecords,
    wait: bool,
    queue_id: i32,
    first_uniq: Option<Uniq>,
) -> Result<SendReceipt, Refusal> {
    if auto.fenced() {
        return Err(Refusal::ServiceNotAvailable(
            "service not available now: the master has lost the controller".into(),
        ));
    }
    let cfg = &ctx.cfg.ha;
    if wait && auto.in_sync_count() < cfg.min_in_sync_replicas {
        return Err(Refusal::Failed("in-sync replicas not enough".into()));
    }
    let (results, flush) = match commit_log::put(&ctx.commit_log, records, wait).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(put_refusal(e)),
        Err(_) => return Err(Refusal::busy("commit log")),
    };
    let end = results.last().map_or(0, |r| r.phys_offset + r.size as i64);
    let timeout = std::time::Duration::from_millis(ctx.cfg.sync_flush_timeout);
    let flush = if !wait {
        (ctx.ha.group.wake(), flush).1
    } else if auto.cfg.all_ack {
        auto.refresh();
        ctx.ha.group.wait_confirmed(end, timeout, flush).await
    } else if cfg.in_sync_replicas >= 2 {
        let q = crate::actors::ha::group_transfer::Quorum::Replicas(cfg.in_sync_replicas);
        ctx.ha.group.sync_outcome(end, timeout, flush, q).await
    } else {
        (ctx.ha.group.wake(), flush).1
    };
    // A master deposed while the send waited acknowledges nothing.
    let flush = if flush == FlushOutcome::Ok && auto.fenced() {
        FlushOutcome::SlaveTimeout
    } else {
        flush
    };
    Ok(SendReceipt {
        results,
        queue_id,
        transaction_id: first_uniq,
        flush,
    })
}

/// The refusal for a failed append.
pub(crate) fn put_refusal(e: PutError) -> Refusal {
    match e {
        PutError::DiskFull(e) => {
            Refusal::ServiceNotAvailable(format!("service not available now: disk full ({e})"))
        }
        PutError::Illegal(e) => Refusal::MessageIllegal(e),
        PutError::Store(e) => Refusal::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(props: &str, made: Option<&msgid::UniqId>) -> String {
        let view = PropertyView::new(props);
        let (t, n) = property_tail(props, &view, made, "C1");
        t[..n].concat()
    }

    #[test]
    fn the_broker_appends_cluster_and_a_uniq_key_only_when_missing() {
        let id = msgid::next_uniq_id();
        let with_sep = message::encode_properties([("TAGS", "a")]);
        assert_eq!(
            tail_of(&with_sep, Some(&id)),
            format!("UNIQ_KEY\u{1}{}\u{2}CLUSTER\u{1}C1\u{2}", id.as_str())
        );
        // A producer's string without the last separator gets one first.
        assert_eq!(tail_of("TAGS\u{1}a", None), "\u{2}CLUSTER\u{1}C1\u{2}");
        assert_eq!(tail_of("", None), "CLUSTER\u{1}C1\u{2}");
        let full = message::encode_properties([("UNIQ_KEY", "U"), ("CLUSTER", "X")]);
        assert_eq!(tail_of(&full, None), "");
    }

    #[test]
    fn a_first_uniq_key_of_any_length_is_kept_for_the_response() {
        assert_eq!(Uniq::of("ABC").as_str(), "ABC");
        let long = "Z".repeat(200);
        assert_eq!(Uniq::of(&long).as_str(), long);
    }
}
