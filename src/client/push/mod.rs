//! The push consumer (`DefaultMQPushConsumerImpl`): the client
//! pulls with long polling and hands messages to a listener.
//!
//! * Clustering: the group's members share the queues ([`allocate`]),
//!   rebalancing every 20 s and at once on NOTIFY_CONSUMER_IDS_CHANGED;
//!   `%RETRY%<group>` is subscribed automatically; offsets live on the
//!   broker. Broadcasting: every member takes every queue; offsets live in
//!   a local file ([`offsets`]).
//! * Concurrent consumption ([`consume`]) with a bounded window per queue;
//!   failures go back with CONSUMER_SEND_MSG_BACK. Orderly consumption
//!   ([`orderly`]) locks its queues on the broker and retries in place.
//! * Broker calls (reset offset, running info, ids changed): [`calls`].
//!
//! Files: `core` (shared state, background loop, start/stop), `rebalance`,
//! `pulling` (per-queue pull loops), `queue` (per-queue window).

pub mod allocate;
mod calls;
mod consume;
mod core;
pub mod offsets;
mod orderly;
mod pulling;
pub mod queue;
mod rebalance;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::wire::bodies::MessageQueue;
use crate::wire::message::MessageExt;

use super::remoting::ClientError;
use super::route::Routes;

pub use allocate::Allocation;
pub use core::subscription;
pub use rebalance::{consumer_ids, target_queues};

/// How a group's members share messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageModel {
    #[default]
    Clustering,
    Broadcasting,
}

impl MessageModel {
    pub fn java_name(self) -> &'static str {
        match self {
            MessageModel::Clustering => "CLUSTERING",
            MessageModel::Broadcasting => "BROADCASTING",
        }
    }
}

/// Where a group without a stored offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsumeFrom {
    #[default]
    LastOffset,
    FirstOffset,
    /// The first message stored at or after this time (ms).
    Timestamp(i64),
}

impl ConsumeFrom {
    pub fn java_name(self) -> &'static str {
        match self {
            ConsumeFrom::LastOffset => "CONSUME_FROM_LAST_OFFSET",
            ConsumeFrom::FirstOffset => "CONSUME_FROM_FIRST_OFFSET",
            ConsumeFrom::Timestamp(_) => "CONSUME_FROM_TIMESTAMP",
        }
    }
}

/// Outcome of a concurrent listener call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    Success,
    /// Redeliver later (through the retry topic).
    ReconsumeLater,
}

/// Outcome of an orderly listener call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderlyResult {
    Success,
    /// Pause the queue briefly, then deliver the same messages again.
    SuspendCurrentQueueAMoment,
}

/// What a listener learns besides the messages.
#[derive(Debug, Clone)]
pub struct ConsumeContext {
    /// The queue the messages were pulled from (may be the retry topic's).
    pub queue: MessageQueue,
}

pub type ConcurrentListener =
    Arc<dyn Fn(&[MessageExt], &ConsumeContext) -> ConsumeResult + Send + Sync>;
pub type OrderlyListener =
    Arc<dyn Fn(&[MessageExt], &ConsumeContext) -> OrderlyResult + Send + Sync>;

/// The application's message handler; it runs on a blocking thread.
#[derive(Clone)]
pub enum Listener {
    Concurrent(ConcurrentListener),
    Orderly(OrderlyListener),
}

impl Listener {
    pub fn concurrent<F>(f: F) -> Self
    where
        F: Fn(&[MessageExt], &ConsumeContext) -> ConsumeResult + Send + Sync + 'static,
    {
        Listener::Concurrent(Arc::new(f))
    }

    pub fn orderly<F>(f: F) -> Self
    where
        F: Fn(&[MessageExt], &ConsumeContext) -> OrderlyResult + Send + Sync + 'static,
    {
        Listener::Orderly(Arc::new(f))
    }

    pub fn is_orderly(&self) -> bool {
        matches!(self, Listener::Orderly(_))
    }
}

/// Push consumer settings (Java `DefaultMQPushConsumer` defaults).
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub group: String,
    /// Client instance name; the client id is `ip@instance`. Members of one
    /// group in one process need distinct names.
    pub instance_name: Option<String>,
    pub model: MessageModel,
    pub consume_from: ConsumeFrom,
    pub allocation: Allocation,
    pub pull_batch_size: i32,
    pub consume_batch_size: usize,
    /// Listener calls running at once.
    pub consume_threads: usize,
    /// Stop pulling a queue holding this many unconsumed messages.
    pub pull_threshold_for_queue: usize,
    /// ... or this many bytes of bodies.
    pub pull_threshold_bytes_for_queue: usize,
    /// `None`: 16 for concurrent listeners, unlimited for orderly ones.
    pub max_reconsume_times: Option<i32>,
    /// Pause of an orderly queue after a failed call.
    pub suspend_current_queue: Duration,
    pub rebalance_interval: Duration,
    pub persist_interval: Duration,
    pub heartbeat_interval: Duration,
    pub lock_interval: Duration,
    pub long_poll_suspend: Duration,
    pub pull_timeout: Duration,
    /// Pause after a failed pull.
    pub pull_error_back_off: Duration,
    /// Root of broadcasting offset files (default `~/.rocketmq_offsets`).
    pub offsets_dir: PathBuf,
}

impl PushConfig {
    pub fn new(group: &str) -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        PushConfig {
            group: group.to_string(),
            instance_name: None,
            model: MessageModel::Clustering,
            consume_from: ConsumeFrom::LastOffset,
            allocation: Allocation::Averagely,
            pull_batch_size: 32,
            consume_batch_size: 1,
            consume_threads: 20,
            pull_threshold_for_queue: 1000,
            pull_threshold_bytes_for_queue: 100 * 1024 * 1024,
            max_reconsume_times: None,
            suspend_current_queue: Duration::from_secs(1),
            rebalance_interval: Duration::from_secs(20),
            persist_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(30),
            lock_interval: Duration::from_secs(20),
            long_poll_suspend: Duration::from_secs(15),
            pull_timeout: Duration::from_secs(30),
            pull_error_back_off: Duration::from_secs(1),
            offsets_dir: home.join(".rocketmq_offsets"),
        }
    }
}

/// A subscription: a TAG expression (`*`, `A||B`) or SQL92 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Tag(String),
    Sql92(String),
}

/// A push consumer. Configure, subscribe, [`PushConsumer::start`], and
/// [`PushConsumer::shutdown`] when done.
pub struct PushConsumer {
    cfg: PushConfig,
    routes: Routes,
    owns_routes: bool,
    subs: Vec<(String, Filter)>,
    listener: Option<Listener>,
    running: Option<Arc<core::Core>>,
}

impl PushConsumer {
    /// A consumer with its own connections to `namesrv`.
    pub fn new(cfg: PushConfig, namesrv: &str) -> Self {
        let mut c = Self::with_routes(cfg, Routes::connect(namesrv));
        c.owns_routes = true;
        c
    }

    pub fn with_routes(cfg: PushConfig, routes: Routes) -> Self {
        PushConsumer {
            cfg,
            routes,
            owns_routes: false,
            subs: Vec::new(),
            listener: None,
            running: None,
        }
    }

    /// Subscribes `topic` with a TAG expression.
    pub fn subscribe(&mut self, topic: &str, tags: &str) -> &mut Self {
        self.subscribe_filter(topic, Filter::Tag(tags.to_string()))
    }

    /// Subscribes `topic` with an SQL92 expression over properties.
    pub fn subscribe_sql(&mut self, topic: &str, sql: &str) -> &mut Self {
        self.subscribe_filter(topic, Filter::Sql92(sql.to_string()))
    }

    pub fn subscribe_filter(&mut self, topic: &str, f: Filter) -> &mut Self {
        self.subs.retain(|(t, _)| t != topic);
        self.subs.push((topic.to_string(), f));
        self
    }

    pub fn register_listener(&mut self, l: Listener) -> &mut Self {
        self.listener = Some(l);
        self
    }

    pub fn client_id(&self) -> String {
        super::client_id_for(self.cfg.instance_name.as_deref())
    }

    /// Heartbeats, rebalances and starts pulling.
    pub async fn start(&mut self) -> Result<(), ClientError> {
        if self.running.is_some() {
            return Err(ClientError::Invalid("consumer already started".into()));
        }
        let listener = self
            .listener
            .clone()
            .ok_or_else(|| ClientError::Invalid("no listener registered".into()))?;
        if self.subs.is_empty() {
            return Err(ClientError::Invalid("no subscription".into()));
        }
        let core = core::Core::new(self.cfg.clone(), self.routes.clone(), &self.subs, listener);
        core::Core::start(&core).await;
        self.running = Some(core);
        Ok(())
    }

    /// The queues currently assigned to this member.
    pub fn assigned_queues(&self) -> Vec<MessageQueue> {
        self.running
            .as_ref()
            .map(|c| c.assigned_queues())
            .unwrap_or_default()
    }

    /// Commits offsets, unlocks ordered queues, unregisters from the
    /// brokers and closes the connections it owns.
    pub async fn shutdown(&mut self) {
        if let Some(core) = self.running.take() {
            core.shutdown().await;
        }
        if self.owns_routes {
            self.routes.client().shutdown();
        }
    }
}
