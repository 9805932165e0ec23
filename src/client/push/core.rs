//! Shared state of a running push consumer and its background loop:
//! rebalance (every 20 s, at once when notified, sooner while a topic has
//! no route), offset persistence (5 s), heartbeats (30 s), broker locks of
//! ordered queues (20 s, 1 s while a queue is unlocked). Start and the
//! graceful stop live here too.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore};

use crate::wire::bodies::{
    parse_tags, ConsumerData, HeartbeatData, MessageQueue, SubscriptionData,
};
use crate::wire::message::tags_code;
use crate::wire::now_ms;

use super::super::producer::{Producer, ProducerConfig};
use super::super::pull::PullConsumer;
use super::super::route::Routes;
use super::super::upkeep::{heartbeat_to, unregister_from};
use super::offsets::{OffsetBackend, OffsetTable};
use super::queue::QueueState;
use super::{Filter, Listener, MessageModel, PushConfig};

pub use crate::wire::names::RETRY_PREFIX;
/// Group of the producer that re-sends failed messages (as Java's).
const INNER_PRODUCER_GROUP: &str = "CLIENT_INNER_PRODUCER";
/// Rebalance retry delay while a topic has no route or no member list.
const REBALANCE_RETRY: Duration = Duration::from_secs(1);
/// How long shutdown waits for running listener calls.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Core {
    pub cfg: PushConfig,
    pub routes: Routes,
    pub client_id: String,
    pub pull: PullConsumer,
    pub subs: BTreeMap<String, SubscriptionData>,
    pub listener: Listener,
    pub queues: Mutex<HashMap<MessageQueue, Arc<QueueState>>>,
    pub offsets: OffsetTable,
    pub rebalance_now: Notify,
    pub shut: AtomicBool,
    pub slots: Arc<Semaphore>,
    pub retry_producer: Producer,
    pub started_ms: i64,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The subscription data sent in heartbeats and pulls.
pub fn subscription(topic: &str, f: &Filter) -> SubscriptionData {
    let (sub_string, tags, ty) = match f {
        Filter::Tag(t) => {
            let t = if t.trim().is_empty() { "*" } else { t.trim() };
            (t.to_string(), parse_tags(t), "TAG")
        }
        Filter::Sql92(s) => (s.clone(), Vec::new(), "SQL92"),
    };
    SubscriptionData {
        class_filter_mode: false,
        topic: topic.to_string(),
        sub_string,
        code_set: tags.iter().map(|t| tags_code(Some(t))).collect(),
        tags_set: tags,
        sub_version: now_ms(),
        expression_type: Some(ty.to_string()),
    }
}

impl Core {
    pub fn new(
        cfg: PushConfig,
        routes: Routes,
        subs: &[(String, Filter)],
        listener: Listener,
    ) -> Arc<Core> {
        let client_id = super::super::client_id_for(cfg.instance_name.as_deref());
        let mut table: BTreeMap<String, SubscriptionData> = subs
            .iter()
            .map(|(t, f)| (t.clone(), subscription(t, f)))
            .collect();
        if cfg.model == MessageModel::Clustering {
            let retry = format!("{RETRY_PREFIX}{}", cfg.group);
            table.insert(
                retry.clone(),
                subscription(&retry, &Filter::Tag("*".into())),
            );
        }
        let pull = PullConsumer::with_routes(&cfg.group, routes.clone());
        let backend = match cfg.model {
            MessageModel::Clustering => OffsetBackend::Broker(pull.clone()),
            MessageModel::Broadcasting => OffsetBackend::File(
                cfg.offsets_dir
                    .join(client_id.replace([':', '/'], "_"))
                    .join(&cfg.group)
                    .join("offsets.json"),
            ),
        };
        let mut pcfg = ProducerConfig::new(INNER_PRODUCER_GROUP);
        pcfg.instance_name = cfg.instance_name.clone();
        Arc::new(Core {
            offsets: OffsetTable::new(&cfg.group, backend),
            slots: Arc::new(Semaphore::new(cfg.consume_threads.max(1))),
            retry_producer: Producer::with_config(pcfg, routes.clone()),
            client_id,
            pull,
            subs: table,
            listener,
            queues: Mutex::new(HashMap::new()),
            rebalance_now: Notify::new(),
            shut: AtomicBool::new(false),
            started_ms: now_ms(),
            tasks: Mutex::new(Vec::new()),
            cfg,
            routes,
        })
    }

    pub fn lock_queues(&self) -> std::sync::MutexGuard<'_, HashMap<MessageQueue, Arc<QueueState>>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_shut(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }

    pub fn assigned_queues(&self) -> Vec<MessageQueue> {
        let mut v: Vec<MessageQueue> = self.lock_queues().keys().cloned().collect();
        v.sort();
        v
    }

    pub fn max_reconsume_times(&self) -> i32 {
        self.cfg
            .max_reconsume_times
            .unwrap_or(if self.listener.is_orderly() {
                i32::MAX
            } else {
                16
            })
    }

    pub fn retry_topic(&self) -> String {
        format!("{RETRY_PREFIX}{}", self.cfg.group)
    }

    pub fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f);
        let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        t.retain(|h| !h.is_finished());
        t.push(h);
    }

    /// The HEART_BEAT body (CONSUME_PASSIVELY, model, subscriptions).
    pub fn heartbeat_body(&self) -> Bytes {
        let hb = HeartbeatData {
            client_id: self.client_id.clone(),
            producer_data_set: Vec::new(),
            consumer_data_set: vec![ConsumerData {
                group_name: self.cfg.group.clone(),
                consume_type: "CONSUME_PASSIVELY".into(),
                message_model: self.cfg.model.java_name().into(),
                consume_from_where: self.cfg.consume_from.java_name().into(),
                subscription_data_set: self.subs.values().cloned().collect(),
                unit_mode: false,
            }],
            heartbeat_fingerprint: 0,
            without_sub: false,
        };
        Bytes::from(serde_json::to_vec(&hb).unwrap_or_default())
    }

    /// Master addresses of every broker serving a subscribed topic.
    pub async fn broker_addrs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for topic in self.subs.keys() {
            if let Ok(r) = self.routes.route(topic).await {
                for a in r.master_addrs() {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    pub async fn heartbeat(&self) {
        let body = self.heartbeat_body();
        for addr in self.broker_addrs().await {
            if let Err(e) = heartbeat_to(&self.routes, &addr, body.clone()).await {
                tracing::debug!(addr, error = %e, "consumer heartbeat failed");
            }
        }
    }

    pub async fn persist_offsets(&self, oneway: bool) {
        let mqs = self.assigned_queues();
        for mq in &mqs {
            let state = self.lock_queues().get(mq).cloned();
            if let Some(off) = state.and_then(|s| s.lock_window().commit_offset()) {
                self.offsets.update(mq, off, true);
            }
        }
        self.offsets.persist(&mqs, oneway).await;
    }

    /// Registers the broker-call handlers, heartbeats, rebalances once and
    /// starts the background loop.
    pub async fn start(core: &Arc<Core>) {
        super::calls::install(core);
        core.heartbeat().await;
        let again = super::rebalance::rebalance(core).await;
        let weak = Arc::downgrade(core);
        core.spawn(background(weak, again));
    }

    pub async fn shutdown(self: &Arc<Self>) {
        if self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        self.rebalance_now.notify_one();
        let queues: Vec<Arc<QueueState>> = self.lock_queues().values().cloned().collect();
        for q in &queues {
            q.drop_queue();
        }
        // Let running listener calls finish before the final commit.
        let n = self.cfg.consume_threads.max(1) as u32;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, self.slots.acquire_many(n)).await;
        for q in &queues {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, q.consuming.lock()).await;
        }
        self.persist_offsets(false).await;
        if self.listener.is_orderly() {
            let mqs: Vec<MessageQueue> = queues.iter().map(|q| q.mq.clone()).collect();
            super::orderly::unlock(self, &mqs).await;
        }
        for addr in self.broker_addrs().await {
            if let Err(e) = unregister_from(
                &self.routes,
                &addr,
                &self.client_id,
                None,
                Some(&self.cfg.group),
            )
            .await
            {
                tracing::debug!(addr, error = %e, "unregister failed");
            }
        }
        self.retry_producer.shutdown().await;
        self.routes
            .client()
            .remove_code_handlers(&self.handler_owner());
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for t in tasks {
            t.abort();
        }
        self.lock_queues().clear();
    }

    pub fn handler_owner(&self) -> String {
        format!("push:{}:{}", self.client_id, self.cfg.group)
    }
}

async fn background(core: std::sync::Weak<Core>, mut rebalance_soon: bool) {
    let mut last_rebalance = Instant::now();
    let mut last_persist = Instant::now();
    let mut last_heartbeat = Instant::now();
    let mut last_lock = Instant::now();
    loop {
        let Some(c) = core.upgrade() else { return };
        if c.is_shut() {
            return;
        }
        let wait = if rebalance_soon {
            REBALANCE_RETRY
        } else {
            Duration::from_millis(500)
        };
        let notified = tokio::select! {
            _ = c.rebalance_now.notified() => true,
            _ = tokio::time::sleep(wait) => false,
        };
        if c.is_shut() {
            return;
        }
        let due = last_rebalance.elapsed() >= c.cfg.rebalance_interval;
        if notified || due || (rebalance_soon && last_rebalance.elapsed() >= REBALANCE_RETRY) {
            if notified {
                c.heartbeat().await;
            }
            rebalance_soon = super::rebalance::rebalance(&c).await;
            last_rebalance = Instant::now();
        }
        if last_persist.elapsed() >= c.cfg.persist_interval {
            c.persist_offsets(true).await;
            last_persist = Instant::now();
        }
        if last_heartbeat.elapsed() >= c.cfg.heartbeat_interval {
            c.heartbeat().await;
            last_heartbeat = Instant::now();
        }
        if c.listener.is_orderly() {
            let unlocked = c.lock_queues().values().any(|q| !q.is_locked());
            let every = if unlocked {
                REBALANCE_RETRY
            } else {
                c.cfg.lock_interval
            };
            if last_lock.elapsed() >= every {
                super::orderly::lock_all(&c).await;
                last_lock = Instant::now();
            }
        }
    }
}
