//! The producer (`DefaultMQProducerImpl`): sync, async and one-way
//! single sends with SEND_MESSAGE_V2, ordered sends by sharding key,
//! batches with SEND_BATCH_MESSAGE (split at the 4 MiB message limit).
//!
//! Queue choice is round robin with latency fault tolerance
//! ([`super::fault`]). A failed sync send is retried
//! `retry_times_when_send_failed` times (async: `..._async_failed`), on
//! another broker first; SYSTEM_BUSY answers back off before the retry;
//! TOPIC_NOT_EXIST refreshes the route at once. A topic without a route
//! borrows `TBW102`'s so the broker auto-creates it. Bodies of at least
//! 4 KiB are zlib-compressed. Route refresh and heartbeats run in the
//! background ([`super::upkeep`]) from the first send until
//! [`Producer::shutdown`], which also unregisters the client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::wire::bodies::MessageQueue;
use crate::wire::codes::{request, response};
use crate::wire::headers::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::message::{encode_batch, encode_properties, keys, sysflag, BatchEntry};
use crate::wire::msgid::new_uniq_id;
use crate::wire::{now_ms, RemotingCommand};

use super::batch::{batch_entries, batch_topic, entry_size, split_batch};
use super::fault::{select_by_key, QueueSelector};
use super::message::compress_body;
pub use super::message::Message;
use super::remoting::ClientError;
use super::route::{Routes, AUTO_CREATE_TOPIC, DEFAULT_TOPIC_QUEUE_NUMS};
use super::upkeep::Upkeep;

/// Largest message (or batch body) a broker accepts by default.
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
use crate::wire::names::RETRY_PREFIX;

/// Producer settings (Java `DefaultMQProducer` names in the docs).
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub group: String,
    /// Client instance name; the client id is `ip@instance`.
    pub instance_name: Option<String>,
    /// Extra attempts of a failed sync send (`retryTimesWhenSendFailed`).
    pub retry_times_when_send_failed: usize,
    /// Extra attempts of a failed async send.
    pub retry_times_when_send_async_failed: usize,
    /// Compress single bodies at least this long (`compressMsgBodyOverHowmuch`).
    pub compress_over: usize,
    pub max_message_size: usize,
    /// Timeout of one send attempt.
    pub send_timeout: Duration,
    /// Avoid slow / failing brokers for a back-off period.
    pub fault_tolerance: bool,
    /// Pause before retrying after SYSTEM_BUSY (grows with the attempt).
    pub busy_back_off: Duration,
    pub heartbeat_interval: Duration,
    pub route_refresh_interval: Duration,
}

impl ProducerConfig {
    pub fn new(group: &str) -> Self {
        ProducerConfig {
            group: group.to_string(),
            instance_name: None,
            retry_times_when_send_failed: 2,
            retry_times_when_send_async_failed: 2,
            compress_over: super::message::COMPRESS_OVER,
            max_message_size: MAX_MESSAGE_SIZE,
            send_timeout: Duration::from_secs(3),
            fault_tolerance: true,
            busy_back_off: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(30),
            route_refresh_interval: Duration::from_secs(30),
        }
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
    /// The broker's transaction id (the `UNIQ_KEY`), if it sent one.
    pub transaction_id: Option<String>,
}

/// A send running in the background.
pub type SendFuture = Pin<Box<dyn Future<Output = Result<SendResult, ClientError>> + Send>>;

/// Whether a failed send is worth another attempt on another queue.
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Remote { code, .. } => !matches!(
            *code,
            response::MESSAGE_ILLEGAL
                | response::INVALID_PARAMETER
                | response::SUBSCRIPTION_GROUP_NOT_EXIST
        ),
        ClientError::Message(_) | ClientError::Invalid(_) | ClientError::Wire(_) => false,
        _ => true,
    }
}

/// A single message made ready for the wire.
pub(crate) struct Prepared {
    pub topic: String,
    pub uniq: String,
    pub props: String,
    pub body: Bytes,
    pub sys_flag: i32,
    pub flag: i32,
    pub reconsume_times: Option<i32>,
    pub max_reconsume_times: Option<i32>,
}

/// A producer bound to a group and a set of name servers. Cheap to clone.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ProducerConfig,
    routes: Routes,
    client_id: String,
    selector: QueueSelector,
    upkeep: Upkeep,
}

impl Producer {
    /// A producer with its own connections to `namesrv` (`"a:9876;b:9876"`).
    pub fn new(group: &str, namesrv: &str) -> Self {
        Self::with_routes(group, Routes::connect(namesrv))
    }

    pub fn with_routes(group: &str, routes: Routes) -> Self {
        Self::with_config(ProducerConfig::new(group), routes)
    }

    pub fn with_config(cfg: ProducerConfig, routes: Routes) -> Self {
        let client_id = super::client_id_for(cfg.instance_name.as_deref());
        let upkeep = Upkeep::new(
            routes.clone(),
            client_id.clone(),
            Some(cfg.group.clone()),
            cfg.heartbeat_interval,
            cfg.route_refresh_interval,
        );
        Producer {
            inner: Arc::new(Inner {
                selector: QueueSelector::new(cfg.fault_tolerance),
                cfg,
                routes,
                client_id,
                upkeep,
            }),
        }
    }

    pub fn group(&self) -> &str {
        &self.inner.cfg.group
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.inner.cfg
    }

    pub fn routes(&self) -> &Routes {
        &self.inner.routes
    }

    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// Sends one message to a round-robin queue, retrying on other queues.
    pub async fn send(&self, msg: Message) -> Result<SendResult, ClientError> {
        let p = self.prepare(&msg)?;
        let retries = self.inner.cfg.retry_times_when_send_failed;
        self.send_with_retry(&p.topic, |mq| self.single_request(&p, mq), &p.uniq, retries)
            .await
    }

    /// Starts a send and returns its future; the send proceeds even if the
    /// future is dropped. Retries `retry_times_when_send_async_failed`.
    pub fn send_async(&self, msg: Message) -> SendFuture {
        let me = self.clone();
        let task = tokio::spawn(async move {
            let p = me.prepare(&msg)?;
            let retries = me.inner.cfg.retry_times_when_send_async_failed;
            me.send_with_retry(&p.topic, |mq| me.single_request(&p, mq), &p.uniq, retries)
                .await
        });
        Box::pin(async move {
            task.await
                .unwrap_or_else(|e| Err(ClientError::Invalid(format!("send task failed: {e}"))))
        })
    }

    /// Sends in the background and calls `callback` with the outcome.
    pub fn send_with_callback<F>(&self, msg: Message, callback: F)
    where
        F: FnOnce(Result<SendResult, ClientError>) + Send + 'static,
    {
        let fut = self.send_async(msg);
        tokio::spawn(async move { callback(fut.await) });
    }

    /// Sends without waiting for the broker (no result, no retry).
    pub async fn send_oneway(&self, msg: Message) -> Result<(), ClientError> {
        let p = self.prepare(&msg)?;
        let route = self.inner.routes.publish_route(&p.topic).await?;
        let mq = self
            .inner
            .selector
            .select(&route.write_queues, None)
            .ok_or_else(|| ClientError::NoRoute(format!("no writable queue for {}", p.topic)))?
            .clone();
        let addr = self.inner.routes.addr_of(&mq).await?;
        self.inner.upkeep.ensure_started(&mq.topic, &addr);
        let cmd = self.single_request(&p, &mq);
        self.inner.routes.client().invoke_oneway(&addr, cmd).await
    }

    /// Sends to the queue chosen by `key` (same key, same queue: ordered).
    /// Failed attempts are retried on the same queue, never another one.
    pub async fn send_ordered(&self, msg: Message, key: &str) -> Result<SendResult, ClientError> {
        let msg = msg.with_sharding_key(key);
        let p = self.prepare(&msg)?;
        let mut last_err = None;
        for attempt in 0..=self.inner.cfg.retry_times_when_send_failed {
            let route = self.inner.routes.publish_route(&p.topic).await?;
            let mq = select_by_key(&route.write_queues, key)
                .ok_or_else(|| ClientError::NoRoute(format!("no writable queue for {}", p.topic)))?
                .clone();
            match self
                .send_once(self.single_request(&p, &mq), &mq, &p.uniq)
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) => {
                    let retry = retryable(&e);
                    self.after_failure(&p.topic, &e, attempt).await;
                    last_err = Some(e);
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ClientError::NoRoute(p.topic.clone())))
    }

    /// Sends one message to the given queue (no retry).
    pub async fn send_to_queue(
        &self,
        msg: Message,
        mq: &MessageQueue,
    ) -> Result<SendResult, ClientError> {
        let p = self.prepare(&msg)?;
        self.send_once(self.single_request(&p, mq), mq, &p.uniq)
            .await
    }

    /// Sends messages of one topic as one SEND_BATCH_MESSAGE. Fails with
    /// `Invalid` if the batch is over the size limit (see
    /// [`Producer::send_batches`]).
    pub async fn send_batch(&self, msgs: Vec<Message>) -> Result<SendResult, ClientError> {
        let topic = batch_topic(&msgs)?;
        let (entries, ids) = batch_entries(&msgs);
        let size: usize = entries.iter().map(entry_size).sum();
        if size > self.inner.cfg.max_message_size {
            return Err(ClientError::Invalid(format!(
                "batch is {size} bytes, over the {} byte limit",
                self.inner.cfg.max_message_size
            )));
        }
        self.send_entries(&topic, &entries, &ids).await
    }

    /// Sends messages of one topic as as many batches as the size limit
    /// requires, in order; one result per batch.
    pub async fn send_batches(&self, msgs: Vec<Message>) -> Result<Vec<SendResult>, ClientError> {
        let topic = batch_topic(&msgs)?;
        let (entries, ids) = batch_entries(&msgs);
        let mut out = Vec::new();
        for range in split_batch(&entries, self.inner.cfg.max_message_size)? {
            out.push(
                self.send_entries(&topic, &entries[range.clone()], &ids[range])
                    .await?,
            );
        }
        Ok(out)
    }

    /// Resolves `topic`'s route and registers the producer with its
    /// brokers now (heartbeat), rather than at the first send — so that
    /// brokers can call back (transaction checks) before anything is sent.
    pub async fn warm_up(&self, topic: &str) -> Result<(), ClientError> {
        let route = self.inner.routes.publish_route(topic).await?;
        for addr in route.master_addrs() {
            self.inner.upkeep.ensure_started(topic, &addr);
        }
        Ok(())
    }

    /// Stops the background work and unregisters the producer group from
    /// every broker it talked to.
    pub async fn shutdown(&self) {
        self.inner.upkeep.shutdown().await;
    }

    async fn send_entries(
        &self,
        topic: &str,
        entries: &[BatchEntry],
        ids: &[String],
    ) -> Result<SendResult, ClientError> {
        let mut body = BytesMut::new();
        encode_batch(entries, &mut body)?;
        let body = body.freeze();
        let batch_props = encode_properties([(keys::WAIT, "true")]);
        let retries = self.inner.cfg.retry_times_when_send_failed;
        self.send_with_retry(
            topic,
            |mq| {
                let mut h = self.header(topic, mq, 0, &batch_props);
                h.batch = Some(true);
                let mut cmd = RemotingCommand::request(request::SEND_BATCH_MESSAGE);
                cmd.ext = h.to_v2().to_ext();
                cmd.with_body(body.clone())
            },
            &ids.join(","),
            retries,
        )
        .await
    }

    /// Properties, compression and retry-topic fields of one message.
    pub(crate) fn prepare(&self, msg: &Message) -> Result<Prepared, ClientError> {
        if msg.topic.is_empty() {
            return Err(ClientError::Invalid("empty topic".into()));
        }
        if msg.body.len() > self.inner.cfg.max_message_size {
            return Err(ClientError::Invalid(format!(
                "body is {} bytes, over the {} byte limit",
                msg.body.len(),
                self.inner.cfg.max_message_size
            )));
        }
        let mut msg = msg.clone();
        let (mut reconsume_times, mut max_reconsume_times) = (None, None);
        if msg.topic.starts_with(RETRY_PREFIX) {
            reconsume_times = msg
                .remove_property(keys::RECONSUME_TIME)
                .and_then(|v| v.parse().ok());
            max_reconsume_times = msg
                .remove_property(keys::MAX_RECONSUME_TIMES)
                .and_then(|v| v.parse().ok());
        }
        let (body, mut sys_flag) = compress_body(&msg.body, self.inner.cfg.compress_over);
        if msg.property(keys::TRAN_MSG) == Some("true") {
            sys_flag |= sysflag::TRANSACTION_PREPARED_TYPE;
        }
        let uniq = new_uniq_id();
        Ok(Prepared {
            topic: msg.topic.clone(),
            props: msg.encode_properties(&uniq),
            uniq,
            body,
            sys_flag,
            flag: msg.flag,
            reconsume_times,
            max_reconsume_times,
        })
    }

    fn header(
        &self,
        topic: &str,
        mq: &MessageQueue,
        flag: i32,
        props: &str,
    ) -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: self.inner.cfg.group.clone(),
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

    pub(crate) fn single_request(&self, p: &Prepared, mq: &MessageQueue) -> RemotingCommand {
        let mut h = self.header(&p.topic, mq, p.flag, &p.props);
        h.sys_flag = p.sys_flag;
        if let Some(r) = p.reconsume_times {
            h.reconsume_times = Some(r);
        }
        h.max_reconsume_times = p.max_reconsume_times;
        let mut cmd = RemotingCommand::request(request::SEND_MESSAGE_V2);
        cmd.ext = h.to_v2().to_ext();
        cmd.with_body(p.body.clone())
    }

    /// Bookkeeping after a failed attempt: route refresh on
    /// TOPIC_NOT_EXIST, a growing pause on SYSTEM_BUSY.
    async fn after_failure(&self, topic: &str, e: &ClientError, attempt: usize) {
        match e.remote_code() {
            Some(response::TOPIC_NOT_EXIST) => {
                self.inner.routes.invalidate(topic);
                let _ = self.inner.routes.refresh(topic).await;
            }
            Some(response::SYSTEM_BUSY) => {
                tokio::time::sleep(self.inner.cfg.busy_back_off * (attempt as u32 + 1)).await;
            }
            _ => {}
        }
    }

    pub(crate) async fn send_with_retry(
        &self,
        topic: &str,
        build: impl Fn(&MessageQueue) -> RemotingCommand,
        msg_id: &str,
        retries: usize,
    ) -> Result<SendResult, ClientError> {
        let mut last_broker: Option<String> = None;
        let mut last_err = None;
        for attempt in 0..=retries {
            let route = match self.inner.routes.publish_route(topic).await {
                Ok(r) => r,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let Some(mq) = self
                .inner
                .selector
                .select(&route.write_queues, last_broker.as_deref())
            else {
                last_err = Some(ClientError::NoRoute(format!(
                    "no writable queue for {topic}"
                )));
                self.inner.routes.invalidate(topic);
                continue;
            };
            let mq = mq.clone();
            match self.send_once(build(&mq), &mq, msg_id).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    tracing::debug!(topic, broker = %mq.broker_name, error = %e, "send failed");
                    let retry = retryable(&e);
                    self.after_failure(topic, &e, attempt).await;
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

    pub(crate) async fn send_once(
        &self,
        cmd: RemotingCommand,
        mq: &MessageQueue,
        msg_id: &str,
    ) -> Result<SendResult, ClientError> {
        let addr = self.inner.routes.addr_of(mq).await?;
        self.inner.upkeep.ensure_started(&mq.topic, &addr);
        let started = Instant::now();
        let resp = self
            .inner
            .routes
            .client()
            .invoke(&addr, cmd, self.inner.cfg.send_timeout)
            .await;
        let failed = !matches!(&resp, Ok(r) if SendStatus::from_code(r.code).is_some());
        self.inner
            .selector
            .faults
            .record(&mq.broker_name, started.elapsed(), failed);
        let resp = resp?;
        let status = SendStatus::from_code(resp.code).ok_or_else(|| ClientError::remote(&resp))?;
        let h = SendMessageResponseHeader::from_ext(&resp.ext)?;
        Ok(SendResult {
            status,
            msg_id: msg_id.to_string(),
            offset_msg_id: h.msg_id,
            queue: MessageQueue {
                topic: mq.topic.clone(),
                broker_name: mq.broker_name.clone(),
                queue_id: h.queue_id,
            },
            queue_offset: h.queue_offset,
            transaction_id: h.transaction_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_codes() {
        let remote = |code| ClientError::Remote {
            code,
            remark: String::new(),
        };
        assert!(retryable(&remote(response::SYSTEM_BUSY)));
        assert!(retryable(&remote(response::TOPIC_NOT_EXIST)));
        assert!(!retryable(&remote(response::MESSAGE_ILLEGAL)));
    }
}
