//! A minimal synchronous producer (protocol.md §2.2, §4.4–4.6): single sends
//! with SEND_MESSAGE_V2, batches with SEND_BATCH_MESSAGE, one-way sends.
//!
//! Queue choice is round robin over the topic's write queues; a failed send
//! is retried (twice by default) on the next queue, preferring another
//! broker. A topic without a route borrows `TBW102`'s route so the broker
//! auto-creates it, as the Java client does.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};

use crate::wire::bodies::MessageQueue;
use crate::wire::codes::{request, response};
use crate::wire::headers::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::message::{encode_batch, encode_properties, keys, BatchEntry};
use crate::wire::msgid::new_uniq_id;
use crate::wire::{now_ms, RemotingCommand};

use super::remoting::ClientError;
use super::route::{Routes, AUTO_CREATE_TOPIC, DEFAULT_TOPIC_QUEUE_NUMS};

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub topic: String,
    pub tags: Option<String>,
    pub keys: Vec<String>,
    /// User properties (reserved names such as `UNIQ_KEY` are overwritten).
    pub properties: Vec<(String, String)>,
    pub body: Bytes,
    pub flag: i32,
}

impl Message {
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Message {
            topic: topic.into(),
            body: body.into(),
            ..Default::default()
        }
    }

    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.tags = Some(tags.into());
        self
    }

    pub fn with_keys<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.keys = keys.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_property(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.properties.push((k.into(), v.into()));
        self
    }

    /// The properties string for the wire, with `uniq_key` as `UNIQ_KEY`.
    pub fn encode_properties(&self, uniq_key: &str) -> String {
        let joined_keys = self.keys.join(" ");
        let reserved = [keys::TAGS, keys::KEYS, keys::UNIQ_KEY, keys::WAIT];
        let mut pairs: Vec<(&str, &str)> = self
            .properties
            .iter()
            .filter(|(k, v)| !v.is_empty() && !reserved.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(t) = self.tags.as_deref().filter(|t| !t.is_empty()) {
            pairs.push((keys::TAGS, t));
        }
        if !joined_keys.is_empty() {
            pairs.push((keys::KEYS, &joined_keys));
        }
        pairs.push((keys::WAIT, "true"));
        pairs.push((keys::UNIQ_KEY, uniq_key));
        encode_properties(pairs)
    }
}

/// Outcome of a send the broker accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    SendOk,
    FlushDiskTimeout,
    FlushSlaveTimeout,
    SlaveNotAvailable,
}

impl SendStatus {
    /// Maps the response codes Java treats as "sent".
    pub fn from_code(code: i32) -> Option<SendStatus> {
        match code {
            response::SUCCESS => Some(SendStatus::SendOk),
            response::FLUSH_DISK_TIMEOUT => Some(SendStatus::FlushDiskTimeout),
            response::FLUSH_SLAVE_TIMEOUT => Some(SendStatus::FlushSlaveTimeout),
            response::SLAVE_NOT_AVAILABLE => Some(SendStatus::SlaveNotAvailable),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    pub status: SendStatus,
    /// The client-generated `UNIQ_KEY` (comma-joined for a batch).
    pub msg_id: String,
    /// The broker's offset message id (comma-joined for a batch).
    pub offset_msg_id: String,
    pub queue: MessageQueue,
    pub queue_offset: i64,
}

/// Picks the queue after `counter` in round-robin order, skipping queues of
/// `avoid_broker` when another broker has one.
pub fn select_queue<'a>(
    queues: &'a [MessageQueue],
    counter: &AtomicUsize,
    avoid_broker: Option<&str>,
) -> Option<&'a MessageQueue> {
    if queues.is_empty() {
        return None;
    }
    let start = counter.fetch_add(1, Ordering::Relaxed);
    if let Some(avoid) = avoid_broker {
        for i in 0..queues.len() {
            let q = &queues[(start + i) % queues.len()];
            if q.broker_name != avoid {
                return Some(q);
            }
        }
    }
    Some(&queues[start % queues.len()])
}

/// Whether a failed send is worth another attempt on another queue.
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Remote { code, .. } => !matches!(
            *code,
            response::MESSAGE_ILLEGAL | response::INVALID_PARAMETER | response::NO_PERMISSION
        ),
        ClientError::Message(_) | ClientError::Invalid(_) | ClientError::Wire(_) => false,
        _ => true,
    }
}

/// A producer bound to a group and a set of name servers.
pub struct Producer {
    group: String,
    routes: Routes,
    counter: AtomicUsize,
    /// Extra attempts after a failed send (Java default 2).
    pub retries: usize,
}

impl Producer {
    /// A producer with its own connections to `namesrv` (`"a:9876;b:9876"`).
    pub fn new(group: &str, namesrv: &str) -> Self {
        Self::with_routes(group, Routes::connect(namesrv))
    }

    pub fn with_routes(group: &str, routes: Routes) -> Self {
        Producer {
            group: group.to_string(),
            routes,
            counter: AtomicUsize::new(rand::random::<u16>() as usize),
            retries: 2,
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Sends one message to a round-robin queue, retrying on other queues.
    pub async fn send(&self, msg: Message) -> Result<SendResult, ClientError> {
        let uniq = new_uniq_id();
        let props = msg.encode_properties(&uniq);
        self.send_with_retry(
            &msg.topic,
            |mq| self.single_request(&msg, &props, mq),
            uniq.clone(),
        )
        .await
    }

    /// Sends one message to the given queue (no retry).
    pub async fn send_to_queue(
        &self,
        msg: Message,
        mq: &MessageQueue,
    ) -> Result<SendResult, ClientError> {
        let uniq = new_uniq_id();
        let props = msg.encode_properties(&uniq);
        let cmd = self.single_request(&msg, &props, mq);
        self.send_once(cmd, mq, uniq).await
    }

    /// Sends messages of one topic as one SEND_BATCH_MESSAGE.
    pub async fn send_batch(&self, msgs: Vec<Message>) -> Result<SendResult, ClientError> {
        let Some(first) = msgs.first() else {
            return Err(ClientError::Invalid("empty batch".into()));
        };
        let topic = first.topic.clone();
        if msgs.iter().any(|m| m.topic != topic) {
            return Err(ClientError::Invalid(
                "batch messages must share one topic".into(),
            ));
        }
        let ids: Vec<String> = msgs.iter().map(|_| new_uniq_id()).collect();
        let entries: Vec<BatchEntry> = msgs
            .iter()
            .zip(&ids)
            .map(|(m, id)| BatchEntry {
                flag: m.flag,
                body: m.body.clone(),
                properties: m.encode_properties(id),
            })
            .collect();
        let mut body = BytesMut::new();
        encode_batch(&entries, &mut body)?;
        let body = body.freeze();
        let batch_props = encode_properties([(keys::WAIT, "true")]);
        self.send_with_retry(
            &topic,
            |mq| {
                let mut h = self.header(&topic, mq, 0, &batch_props);
                h.batch = Some(true);
                let mut cmd = RemotingCommand::request(request::SEND_BATCH_MESSAGE);
                cmd.ext = h.to_v2().to_ext();
                cmd.with_body(body.clone())
            },
            ids.join(","),
        )
        .await
    }

    /// Sends without waiting for the broker (no result, no retry).
    pub async fn send_oneway(&self, msg: Message) -> Result<(), ClientError> {
        let route = self.routes.publish_route(&msg.topic).await?;
        let mq = select_queue(&route.write_queues, &self.counter, None)
            .ok_or_else(|| ClientError::NoRoute(format!("no writable queue for {}", msg.topic)))?
            .clone();
        let addr = self.routes.addr_of(&mq).await?;
        let props = msg.encode_properties(&new_uniq_id());
        let cmd = self.single_request(&msg, &props, &mq);
        self.routes.client().invoke_oneway(&addr, cmd).await
    }

    fn header(
        &self,
        topic: &str,
        mq: &MessageQueue,
        flag: i32,
        props: &str,
    ) -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: self.group.clone(),
            topic: topic.to_string(),
            default_topic: AUTO_CREATE_TOPIC.to_string(),
            default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
            queue_id: mq.queue_id,
            sys_flag: 0,
            born_timestamp: now_ms(),
            flag,
            properties: Some(props.to_string()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            batch: Some(false),
            max_reconsume_times: None,
            broker_name: Some(mq.broker_name.clone()),
        }
    }

    fn single_request(&self, msg: &Message, props: &str, mq: &MessageQueue) -> RemotingCommand {
        let h = self.header(&msg.topic, mq, msg.flag, props);
        let mut cmd = RemotingCommand::request(request::SEND_MESSAGE_V2);
        cmd.ext = h.to_v2().to_ext();
        cmd.with_body(msg.body.clone())
    }

    async fn send_with_retry(
        &self,
        topic: &str,
        build: impl Fn(&MessageQueue) -> RemotingCommand,
        msg_id: String,
    ) -> Result<SendResult, ClientError> {
        let mut last_broker: Option<String> = None;
        let mut last_err = None;
        for _attempt in 0..=self.retries {
            let route = match self.routes.publish_route(topic).await {
                Ok(r) => r,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let Some(mq) = select_queue(&route.write_queues, &self.counter, last_broker.as_deref())
            else {
                last_err = Some(ClientError::NoRoute(format!(
                    "no writable queue for {topic}"
                )));
                self.routes.invalidate(topic);
                continue;
            };
            let mq = mq.clone();
            match self.send_once(build(&mq), &mq, msg_id.clone()).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    tracing::debug!(topic, broker = %mq.broker_name, error = %e, "send failed");
                    if e.remote_code() == Some(response::TOPIC_NOT_EXIST) {
                        self.routes.invalidate(topic);
                    }
                    let retry = retryable(&e);
                    last_err = Some(e);
                    if !retry {
                        break;
                    }
                    last_broker = Some(mq.broker_name.clone());
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ClientError::NoRoute(topic.to_string())))
    }

    async fn send_once(
        &self,
        cmd: RemotingCommand,
        mq: &MessageQueue,
        msg_id: String,
    ) -> Result<SendResult, ClientError> {
        let addr = self.routes.addr_of(mq).await?;
        let timeout = self.routes.default_timeout();
        let resp = self.routes.client().invoke(&addr, cmd, timeout).await?;
        let status = SendStatus::from_code(resp.code).ok_or_else(|| ClientError::remote(&resp))?;
        let h = SendMessageResponseHeader::from_ext(&resp.ext)?;
        Ok(SendResult {
            status,
            msg_id,
            offset_msg_id: h.msg_id,
            queue: MessageQueue {
                topic: mq.topic.clone(),
                broker_name: mq.broker_name.clone(),
                queue_id: h.queue_id,
            },
            queue_offset: h.queue_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::decode_properties;

    fn q(b: &str, id: i32) -> MessageQueue {
        MessageQueue {
            topic: "T".into(),
            broker_name: b.into(),
            queue_id: id,
        }
    }

    #[test]
    fn round_robin_and_avoid() {
        let qs = vec![q("a", 0), q("a", 1), q("b", 0)];
        let c = AtomicUsize::new(0);
        let picked: Vec<_> = (0..6)
            .map(|_| select_queue(&qs, &c, None).unwrap().clone())
            .collect();
        assert_eq!(picked[0], qs[0]);
        assert_eq!(picked[1], qs[1]);
        assert_eq!(picked[2], qs[2]);
        assert_eq!(picked[3], qs[0]);
        // Avoiding "a" lands on "b" whatever the counter.
        for _ in 0..3 {
            assert_eq!(select_queue(&qs, &c, Some("a")).unwrap().broker_name, "b");
        }
        // Only one broker: avoidance is best effort.
        assert!(select_queue(&qs[..2], &c, Some("a")).is_some());
        assert!(select_queue(&[], &c, None).is_none());
    }

    #[test]
    fn properties_string() {
        let m = Message::new("T", "x")
            .with_tags("TagA")
            .with_keys(["k1", "k2"])
            .with_property("color", "red")
            .with_property("UNIQ_KEY", "spoofed");
        let p = decode_properties(&m.encode_properties("ID1"));
        let get = |k: &str| p.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str());
        assert_eq!(get("TAGS"), Some("TagA"));
        assert_eq!(get("KEYS"), Some("k1 k2"));
        assert_eq!(get("color"), Some("red"));
        assert_eq!(get("UNIQ_KEY"), Some("ID1"));
        assert_eq!(get("WAIT"), Some("true"));
    }
}
