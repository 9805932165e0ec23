//! The consume side: QueryAssignment, ReceiveMessage (POP with long
//! polling), AckMessage, ChangeInvisibleDuration and
//! ForwardMessageToDeadLetterQueue (RocketMQ's `RouteActivity`,
//! `ReceiveMessageActivity`, `AckMessageActivity`,
//! `ChangeInvisibleDurationActivity`, `ForwardMessageToDLQActivity`).

use std::time::Duration;

use super::backend::{ConsumerReg, DlqCmd, HandleCmd, PopCmd};
use super::convert::{self, dur_ms};
use super::grpc::{authorize, Meta, Proxy};
use super::pb::{
    self, receive_message_response::Content, settings::PubSub, ClientType, Code, FilterType,
};
use super::renew::Managed;
use super::send::own_endpoints;
use super::settings;
use super::status::{ok, overall, status, Failure};
use crate::wire::bodies::{parse_tags, perm, SubscriptionData};
use crate::wire::codes::request::PULL_MESSAGE;
use crate::wire::message::tags_code;
use crate::wire::pop::real_topic;
use crate::wire::{names, now_ms};

/// A receipt handle as clients hold it: the broker's POP_CK handle plus the
/// record's commit-log offset (the proxy's `ReceiptHandle`).
pub use crate::wire::pop::Handle;

fn invalid_handle(why: &str) -> Failure {
    Failure::new(Code::InvalidReceiptHandle, why)
}

/// A live handle of this request, or why not.
fn live_handle(text: &str) -> Result<Handle, Failure> {
    let h = Handle::parse(text).map_err(|e| invalid_handle(&e))?;
    if h.next_visible() <= now_ms() {
        return Err(invalid_handle("receipt handle is expired"));
    }
    Ok(h)
}

fn name(r: &Option<pb::Resource>) -> String {
    r.as_ref().map(|r| r.name.clone()).unwrap_or_default()
}

fn check_group(g: &str) -> Result<(), Failure> {
    names::check_group(g).map_err(|e| Failure::new(Code::IllegalConsumerGroup, e.to_string()))
}

fn check_topic(t: &str) -> Result<(), Failure> {
    names::check_topic(t).map_err(|e| Failure::new(Code::IllegalTopic, e.to_string()))
}

/// A subscription entry as the broker's `SubscriptionData`.
pub fn subscription(
    topic: &str,
    f: Option<&pb::FilterExpression>,
) -> Result<SubscriptionData, Failure> {
    let (ty, text) = match f {
        Some(f) if f.r#type == FilterType::Sql as i32 => ("SQL92", f.expression.trim().to_owned()),
        Some(f) if !f.expression.trim().is_empty() => ("TAG", f.expression.trim().to_owned()),
        _ => ("TAG", "*".to_owned()),
    };
    let tags = if ty == "TAG" {
        parse_tags(&text)
    } else {
        Vec::new()
    };
    if ty == "SQL92" {
        crate::filter::parse(&text)
            .map_err(|e| Failure::new(Code::IllegalFilterExpression, e.to_string()))?;
    }
    Ok(SubscriptionData {
        class_filter_mode: false,
        topic: topic.to_owned(),
        sub_string: text,
        code_set: tags.iter().map(|t| tags_code(Some(t))).collect(),
        tags_set: tags,
        sub_version: now_ms(),
        expression_type: Some(ty.to_owned()),
    })
}

/// A consumer's registration from its Settings.
pub fn consumer_registration(s: &pb::Settings) -> Result<ConsumerReg, Failure> {
    let Some(PubSub::Subscription(sub)) = &s.pub_sub else {
        return Err(Failure::new(
            Code::BadRequest,
            "a consumer without subscription settings",
        ));
    };
    let group = sub
        .group
        .as_ref()
        .map(|g| g.name.clone())
        .unwrap_or_default();
    check_group(&group)?;
    let subscriptions = sub
        .subscriptions
        .iter()
        .map(|e| subscription(&name(&e.topic), e.expression.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let consume_type = if settings::client_type(s) == ClientType::PushConsumer {
        "CONSUME_PASSIVELY"
    } else {
        "CONSUME_ACTIVELY"
    };
    Ok(ConsumerReg {
        group,
        consume_type,
        subscriptions,
    })
}

pub async fn query_assignment(
    p: &Proxy,
    m: Meta,
    r: pb::QueryAssignmentRequest,
) -> Result<pb::QueryAssignmentResponse, Failure> {
    let (topic, group) = (name(&r.topic), name(&r.group));
    check_topic(&topic)?;
    check_group(&group)?;
    authorize(p, &m, PULL_MESSAGE, &topic, Some(&group))?;
    let info = p.backend.topic(m.caller.clone(), topic.clone()).await?;
    let orderly = p.backend.group(m.caller, group).await?.orderly;
    let endpoints = own_endpoints(p, r.endpoints.as_ref());
    let mut assignments = Vec::new();
    for q in info
        .route
        .queue_datas
        .iter()
        .filter(|q| q.perm & perm::READ != 0 && q.read_queue_nums > 0)
    {
        if !info
            .route
            .broker_datas
            .iter()
            .any(|b| b.broker_name == q.broker_name && b.broker_addrs.contains_key(&0))
        {
            continue;
        }
        let broker = pb::Broker {
            name: q.broker_name.clone(),
            id: 0,
            endpoints: Some(endpoints.clone()),
        };
        let ids: Vec<i32> = if orderly {
            (0..q.read_queue_nums).collect()
        } else {
            vec![-1]
        };
        for id in ids {
            assignments.push(pb::Assignment {
                message_queue: Some(pb::MessageQueue {
                    topic: r.topic.clone(),
                    id,
                    permission: pb::Permission::ReadWrite as i32,
                    broker: Some(broker.clone()),
                    accept_message_types: vec![],
                }),
            });
        }
    }
    if assignments.is_empty() {
        return Err(Failure::new(Code::Forbidden, "no readable queue"));
    }
    Ok(pb::QueryAssignmentResponse {
        status: Some(ok()),
        assignments,
    })
}

/// The call's deadline from `grpc-timeout` (`<n><unit>`), if any.
pub fn deadline_of(md: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A receive that failed: its status, then the delivery timestamp.
pub fn failed(f: Failure) -> Vec<pb::ReceiveMessageResponse> {
    finish(f.status(), Vec::new())
}

fn finish(st: pb::Status, messages: Vec<pb::Message>) -> Vec<pb::ReceiveMessageResponse> {
    let mut out = Vec::with_capacity(messages.len() + 2);
    out.push(pb::ReceiveMessageResponse {
        content: Some(Content::Status(st)),
    });
    out.extend(messages.into_iter().map(|m| pb::ReceiveMessageResponse {
        content: Some(Content::Message(m)),
    }));
    out.push(pb::ReceiveMessageResponse {
        content: Some(Content::DeliveryTimestamp(convert::ms_ts(now_ms()))),
    });
    out
}

/// Poll and invisible times of a receive, clamped as the Java proxy does.
fn times(
    p: &Proxy,
    s: &pb::Settings,
    r: &pb::ReceiveMessageRequest,
    deadline: Option<Duration>,
) -> Result<(i64, i64), Failure> {
    let (min, max) = (
        p.cfg.grpc_client_consumer_min_long_polling_timeout_millis,
        p.cfg.grpc_client_consumer_max_long_polling_timeout_millis,
    );
    let remaining = deadline.map(|d| d.as_millis() as i64);
    let request_timeout = s.request_timeout.as_ref().map_or(3000, dur_ms);
    let mut poll = match (&r.long_polling_timeout, remaining) {
        (Some(d), _) => dur_ms(d),
        (None, Some(rem)) => rem - request_timeout / 2,
        (None, None) => max,
    }
    .clamp(min, max);
    if let Some(rem) = remaining {
        if poll > rem {
            if rem < min {
                return Err(Failure::new(
                    Code::IllegalPollingTime,
                    "the polling time is shorter than the minimum",
                ));
            }
            poll = rem;
        }
        // Leave time for the answer to travel.
        poll = poll.min((rem - 500).max(0));
    }
    let invisible = match &r.invisible_duration {
        Some(d) if !r.auto_renew => {
            let ms = dur_ms(d);
            if ms < p.cfg.min_invisible_time_mills_for_recv || ms > p.cfg.max_invisible_time_mills {
                return Err(Failure::new(
                    Code::IllegalInvisibleTime,
                    format!(
                        "the invisible time must be within [{}, {}] ms",
                        p.cfg.min_invisible_time_mills_for_recv, p.cfg.max_invisible_time_mills
                    ),
                ));
            }
            ms
        }
        _ => p.cfg.default_invisible_time_mills,
    };
    Ok((poll, invisible))
}

pub async fn receive(
    p: &Proxy,
    m: Meta,
    r: pb::ReceiveMessageRequest,
    deadline: Option<Duration>,
) -> Vec<pb::ReceiveMessageResponse> {
    match receive_inner(p, m, r, deadline).await {
        Ok(items) => items,
        Err(f) => failed(f),
    }
}

async fn receive_inner(
    p: &Proxy,
    m: Meta,
    r: pb::ReceiveMessageRequest,
    deadline: Option<Duration>,
) -> Result<Vec<pb::ReceiveMessageResponse>, Failure> {
    let group = name(&r.group);
    check_group(&group)?;
    // Lenient where the Java proxy fails (rocketmq #5728): a receive that
    // overtakes the client's first Settings gets the group's.
    let s = match p.clients.settings(&m.client_id) {
        Some(s) => s,
        None => {
            let g = p.backend.group(m.caller.clone(), group.clone()).await?;
            let s = pb::Settings {
                pub_sub: Some(PubSub::Subscription(pb::Subscription::default())),
                ..Default::default()
            };
            settings::consumer_reply(s, &p.cfg, g)
        }
    };
    p.clients.touch(&m.client_id);
    let mq = r.message_queue.clone().unwrap_or_default();
    let topic = name(&mq.topic);
    check_topic(&topic)?;
    authorize(p, &m, PULL_MESSAGE, &topic, Some(&group))?;
    let (poll_ms, invisible_ms) = times(p, &s, &r, deadline)?;
    let sub = subscription(&topic, r.filter_expression.as_ref())?;
    let fifo = match &s.pub_sub {
        Some(PubSub::Subscription(sub)) => sub.fifo.unwrap_or(false),
        _ => false,
    };
    let max_attempts = settings::max_attempts(&s);
    let cmd = PopCmd {
        broker_name: mq.broker.map(|b| b.name).unwrap_or_default(),
        group: group.clone(),
        topic: topic.clone(),
        max_msgs: r.batch_size.clamp(1, 32),
        invisible_ms,
        poll_ms,
        order: fifo,
        expression_type: sub.expression_type.clone().unwrap_or_else(|| "TAG".into()),
        expression: sub.sub_string.clone(),
        attempt_id: r.attempt_id.clone(),
    };
    // Push consumers leave the invisible time to the proxy (auto-renew).
    let renew = r.auto_renew
        && p.cfg.enable_proxy_auto_renew
        && settings::client_type(&s) == ClientType::PushConsumer;
    let popped = p.backend.pop(m.caller.clone(), cmd).await?;
    if popped.polling_full {
        return Ok(failed(Failure::new(Code::TooManyRequests, "polling full")));
    }
    let mut out = Vec::new();
    for (msg, broker_handle) in popped.messages {
        let text = format!("{broker_handle} {}", msg.commit_log_offset);
        if fifo || msg.reconsume_times < max_attempts {
            let converted = convert::from_stored(&msg, &topic, Some(text.clone()));
            if let (true, Some(sp), Ok(h)) = (
                renew,
                converted.system_properties.as_ref(),
                Handle::parse(&text),
            ) {
                let managed = Managed {
                    topic: topic.clone(),
                    original: text,
                    current: h,
                    reconsume_times: msg.reconsume_times,
                    received_ms: now_ms(),
                    renewals: 0,
                    failures: 0,
                    caller: m.caller.clone(),
                };
                p.renewals
                    .add(&m.client_id, &group, &sp.message_id, managed);
            }
            out.push(converted);
            continue;
        }
        // Past the group's attempts: to the DLQ, and acked.
        if let Ok(h) = Handle::parse(&text) {
            let _ = dead_letter(
                p,
                &m,
                &group,
                &topic,
                &h,
                &msg.uniq_key()
                    .map(str::to_owned)
                    .unwrap_or_else(|| msg.offset_msg_id()),
            )
            .await;
        }
    }
    if out.is_empty() {
        return Ok(finish(
            status(Code::MessageNotFound, "no new message"),
            Vec::new(),
        ));
    }
    Ok(finish(ok(), out))
}

pub(super) fn handle_cmd(group: &str, topic: &str, h: &Handle) -> HandleCmd {
    HandleCmd {
        broker_name: h.broker_name.clone(),
        group: group.to_owned(),
        topic: real_topic(topic, group, h.topic_type),
        queue_id: h.queue_id,
        offset: h.queue_offset.unwrap_or(h.ck_start_offset),
        extra_info: h.render(),
    }
}

/// The handle a call means: the latest renewal of an auto-renewed message
/// (which then stops being renewed; its entry comes along, to be put back
/// if the call fails), else the client's own; expired ones are refused.
fn resolve(
    p: &Proxy,
    m: &Meta,
    group: &str,
    msg_id: &str,
    text: &str,
) -> Result<(Handle, Option<Managed>), Failure> {
    match p.renewals.take(&m.client_id, group, msg_id, text) {
        Some(e) if e.current.next_visible() > now_ms() => Ok((e.current.clone(), Some(e))),
        Some(_) => Err(invalid_handle("receipt handle is expired")),
        None => live_handle(text).map(|h| (h, None)),
    }
}

/// A call on a taken entry failed: renew it again.
fn restore(p: &Proxy, m: &Meta, group: &str, msg_id: &str, e: Option<Managed>) {
    if let Some(e) = e {
        p.renewals.add(&m.client_id, group, msg_id, e);
    }
}

fn ack_status(r: Result<(), crate::service::Refusal>) -> pb::Status {
    match r {
        Ok(()) => ok(),
        Err(r) => {
            tracing::debug!(refusal = %r, "ack failed");
            Failure::from(r).status()
        }
    }
}

pub async fn ack(
    p: &Proxy,
    m: Meta,
    r: pb::AckMessageRequest,
) -> Result<pb::AckMessageResponse, Failure> {
    let (group, topic) = (name(&r.group), name(&r.topic));
    check_group(&group)?;
    check_topic(&topic)?;
    authorize(p, &m, PULL_MESSAGE, &topic, Some(&group))?;
    let mut taken: Vec<Option<Managed>> = Vec::with_capacity(r.entries.len());
    let handles: Vec<Result<Handle, Failure>> = (r.entries.iter())
        .map(|e| {
            let r = resolve(p, &m, &group, &e.message_id, &e.receipt_handle);
            let (h, t) = match r {
                Ok((h, t)) => (Ok(h), t),
                Err(f) => (Err(f), None),
            };
            taken.push(t);
            h
        })
        .collect();
    let mut statuses: Vec<Option<pb::Status>> = handles
        .iter()
        .map(|h| h.as_ref().err().map(Failure::status))
        .collect();
    if p.cfg.enable_batch_ack && r.entries.len() > 1 {
        // One BATCH_ACK_MESSAGE per broker; its answer is each entry's.
        let mut brokers: Vec<&str> = (handles.iter().flatten())
            .map(|h| h.broker_name.as_str())
            .collect();
        brokers.sort_unstable();
        brokers.dedup();
        for b in brokers {
            let idx: Vec<usize> = (0..handles.len())
                .filter(|i| matches!(&handles[*i], Ok(h) if h.broker_name == b))
                .collect();
            let cmds = (idx.iter())
                .filter_map(|i| handles[*i].as_ref().ok())
                .map(|h| handle_cmd(&group, &topic, h))
                .collect();
            let st = ack_status(
                p.backend
                    .batch_ack(m.caller.clone(), topic.clone(), cmds)
                    .await,
            );
            for i in idx {
                statuses[i] = Some(st.clone());
            }
        }
    } else {
        // Each entry on its own, all at once.
        let acks = (handles.iter().enumerate())
            .filter_map(|(i, h)| h.as_ref().ok().map(|h| (i, h)))
            .map(|(i, h)| {
                let call = p
                    .backend
                    .ack(m.caller.clone(), handle_cmd(&group, &topic, h));
                async move { (i, ack_status(call.await)) }
            });
        for (i, st) in futures_util::future::join_all(acks).await {
            statuses[i] = Some(st);
        }
    }
    for ((e, st), t) in r.entries.iter().zip(&statuses).zip(taken) {
        if st.as_ref().is_some_and(|s| s.code != Code::Ok as i32) {
            restore(p, &m, &group, &e.message_id, t);
        }
    }
    let entries: Vec<pb::AckMessageResultEntry> = (r.entries.iter().zip(statuses))
        .map(|(e, st)| pb::AckMessageResultEntry {
            message_id: e.message_id.clone(),
            receipt_handle: e.receipt_handle.clone(),
            status: st,
        })
        .collect();
    let st = overall(entries.iter().filter_map(|e| e.status.clone()));
    Ok(pb::AckMessageResponse {
        status: Some(st),
        entries,
    })
}

pub async fn change_invisible(
    p: &Proxy,
    m: Meta,
    r: pb::ChangeInvisibleDurationRequest,
) -> Result<pb::ChangeInvisibleDurationResponse, Failure> {
    let (group, topic) = (name(&r.group), name(&r.topic));
    check_group(&group)?;
    check_topic(&topic)?;
    authorize(p, &m, PULL_MESSAGE, &topic, Some(&group))?;
    let ms = r.invisible_duration.as_ref().map_or(0, dur_ms);
    if !(0..=p.cfg.max_invisible_time_mills).contains(&ms) {
        return Err(Failure::new(
            Code::IllegalInvisibleTime,
            "the invisible time is out of range",
        ));
    }
    let (h, taken) = resolve(p, &m, &group, &r.message_id, &r.receipt_handle)?;
    let new = match p
        .backend
        .change_invisible(m.caller.clone(), handle_cmd(&group, &topic, &h), ms)
        .await
    {
        Ok(new) => new,
        Err(e) => {
            restore(p, &m, &group, &r.message_id, taken);
            return Err(e.into());
        }
    };
    Ok(pb::ChangeInvisibleDurationResponse {
        status: Some(ok()),
        receipt_handle: format!("{new} {}", h.commit_log_offset.unwrap_or(-1)),
    })
}

/// Sends the message of `h` to the group's DLQ, then acks it.
async fn dead_letter(
    p: &Proxy,
    m: &Meta,
    group: &str,
    topic: &str,
    h: &Handle,
    msg_id: &str,
) -> Result<(), Failure> {
    let Some(commit_log_offset) = h.commit_log_offset.filter(|o| *o >= 0) else {
        return Err(invalid_handle(
            "the receipt handle has no commit log offset",
        ));
    };
    let cmd = DlqCmd {
        broker_name: h.broker_name.clone(),
        group: group.to_owned(),
        commit_log_offset,
        origin_msg_id: msg_id.to_owned(),
        origin_topic: real_topic(topic, group, h.topic_type),
    };
    p.backend.to_dlq(m.caller.clone(), cmd).await?;
    p.backend
        .ack(m.caller.clone(), handle_cmd(group, topic, h))
        .await?;
    Ok(())
}

pub async fn forward_to_dlq(
    p: &Proxy,
    m: Meta,
    r: pb::ForwardMessageToDeadLetterQueueRequest,
) -> Result<(), Failure> {
    let (group, topic) = (name(&r.group), name(&r.topic));
    check_group(&group)?;
    check_topic(&topic)?;
    authorize(p, &m, PULL_MESSAGE, &topic, Some(&group))?;
    let taken = p
        .renewals
        .take(&m.client_id, &group, &r.message_id, &r.receipt_handle);
    let h = match &taken {
        Some(e) => e.current.clone(),
        None => Handle::parse(&r.receipt_handle).map_err(|e| invalid_handle(&e))?,
    };
    let done = dead_letter(p, &m, &group, &topic, &h, &r.message_id).await;
    if done.is_err() {
        restore(p, &m, &group, &r.message_id, taken);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert("grpc-timeout", "30S".parse().unwrap());
        assert_eq!(deadline_of(&md), Some(Duration::from_secs(30)));
        md.insert("grpc-timeout", "1500m".parse().unwrap());
        assert_eq!(deadline_of(&md), Some(Duration::from_millis(1500)));
    }
}
