//! The lite pull consumer: the application polls. Either subscribe topics
//! (the group's members share the queues by rebalance, like the push
//! consumer's clustering mode) or assign queues explicitly. Background
//! pullers keep a bounded buffer of pulled batches; [`LitePullConsumer::poll`]
//! takes from it and moves the consumed offset past what it returns;
//! offsets are committed every 5 s (auto-commit) or by
//! [`LitePullConsumer::commit_sync`]. [`LitePullConsumer::seek`] moves a
//! queue; batches pulled before the seek are discarded.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Notify};

use crate::wire::bodies::{ConsumerData, HeartbeatData, MessageQueue, SubscriptionData};
use crate::wire::codes::request;
use crate::wire::message::MessageExt;

use super::pull::{PullConsumer, PullSpec, PullStatus};
use super::push::offsets::{OffsetBackend, OffsetTable};
use super::push::subscription;
use super::push::{Allocation, ConsumeFrom, Filter, MessageModel};
use super::remoting::ClientError;
use super::route::Routes;
use super::upkeep::{heartbeat_to, unregister_from};

/// Lite pull consumer settings.
#[derive(Debug, Clone)]
pub struct LitePullConfig {
    pub group: String,
    pub instance_name: Option<String>,
    pub consume_from: ConsumeFrom,
    pub allocation: Allocation,
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub pull_batch_size: i32,
    /// Pulled batches buffered ahead of `poll`.
    pub buffered_batches: usize,
    pub long_poll_suspend: Duration,
    pub rebalance_interval: Duration,
    pub heartbeat_interval: Duration,
}

impl LitePullConfig {
    pub fn new(group: &str) -> Self {
        LitePullConfig {
            group: group.to_string(),
            instance_name: None,
            consume_from: ConsumeFrom::LastOffset,
            allocation: Allocation::Averagely,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            pull_batch_size: 32,
            buffered_batches: 64,
            long_poll_suspend: Duration::from_secs(5),
            rebalance_interval: Duration::from_secs(20),
            heartbeat_interval: Duration::from_secs(30),
        }
    }
}

struct LiteQueue {
    mq: MessageQueue,
    next_pull: Mutex<Option<i64>>,
    generation: AtomicU64,
    stop: watch::Sender<bool>,
}

struct Batch {
    mq: MessageQueue,
    generation: u64,
    msgs: Vec<MessageExt>,
}

struct Lite {
    cfg: LitePullConfig,
    routes: Routes,
    client_id: String,
    pull: PullConsumer,
    offsets: OffsetTable,
    subs: Mutex<BTreeMap<String, SubscriptionData>>,
    explicit: AtomicBool,
    queues: Mutex<HashMap<MessageQueue, Arc<LiteQueue>>>,
    tx: mpsc::Sender<Batch>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Batch>>,
    rebalance_now: Notify,
    shut: AtomicBool,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A polling consumer. Cheap to clone.
#[derive(Clone)]
pub struct LitePullConsumer {
    inner: Arc<Lite>,
}

impl LitePullConsumer {
    pub fn new(cfg: LitePullConfig, namesrv: &str) -> Self {
        let routes = Routes::connect(namesrv);
        let pull = PullConsumer::with_routes(&cfg.group, routes.clone());
        let (tx, rx) = mpsc::channel(cfg.buffered_batches.max(1));
        LitePullConsumer {
            inner: Arc::new(Lite {
                client_id: super::client_id_for(cfg.instance_name.as_deref()),
                offsets: OffsetTable::new(&cfg.group, OffsetBackend::Broker(pull.clone())),
                pull,
                routes,
                subs: Mutex::new(BTreeMap::new()),
                explicit: AtomicBool::new(false),
                queues: Mutex::new(HashMap::new()),
                tx,
                rx: tokio::sync::Mutex::new(rx),
                rebalance_now: Notify::new(),
                shut: AtomicBool::new(false),
                tasks: Mutex::new(Vec::new()),
                cfg,
            }),
        }
    }

    /// Subscribes `topic` (TAG expression); queues come from rebalance.
    pub async fn subscribe(&self, topic: &str, tags: &str) -> Result<(), ClientError> {
        let sub = subscription(topic, &Filter::Tag(tags.to_string()));
        lock(&self.inner.subs).insert(topic.to_string(), sub);
        if !self.inner.explicit.load(Ordering::Acquire) {
            self.start_background();
        }
        self.inner.heartbeat().await;
        self.inner.clone().rebalance().await;
        Ok(())
    }

    /// Consumes exactly `mqs` (no rebalance, no group membership).
    pub async fn assign(&self, mqs: Vec<MessageQueue>) {
        self.inner.explicit.store(true, Ordering::Release);
        {
            let mut subs = lock(&self.inner.subs);
            for mq in &mqs {
                subs.entry(mq.topic.clone())
                    .or_insert_with(|| subscription(&mq.topic, &Filter::Tag("*".into())));
            }
        }
        self.inner.clone().apply(mqs).await;
        self.start_background();
    }

    pub fn assignment(&self) -> Vec<MessageQueue> {
        let mut v: Vec<_> = lock(&self.inner.queues).keys().cloned().collect();
        v.sort();
        v
    }

    /// Up to a buffered batch of messages; waits at most `timeout`.
    pub async fn poll(&self, timeout: Duration) -> Vec<MessageExt> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.inner.rx.lock().await;
        loop {
            let batch = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(b)) => b,
                _ => return Vec::new(),
            };
            let q = lock(&self.inner.queues).get(&batch.mq).cloned();
            let Some(q) = q else { continue };
            if q.generation.load(Ordering::Acquire) != batch.generation {
                continue;
            }
            if let Some(last) = batch.msgs.last() {
                self.inner
                    .offsets
                    .update(&batch.mq, last.queue_offset + 1, false);
            }
            return batch.msgs;
        }
    }

    /// Moves `mq` to `offset`: the next poll returns messages from there.
    pub fn seek(&self, mq: &MessageQueue, offset: i64) -> Result<(), ClientError> {
        let q = lock(&self.inner.queues)
            .get(mq)
            .cloned()
            .ok_or_else(|| ClientError::Invalid(format!("{mq:?} is not assigned")))?;
        q.generation.fetch_add(1, Ordering::AcqRel);
        *lock(&q.next_pull) = Some(offset);
        self.inner.offsets.update(mq, offset, false);
        Ok(())
    }

    /// The offset the next poll of `mq` continues from, if known.
    pub fn committed_position(&self, mq: &MessageQueue) -> Option<i64> {
        self.inner.offsets.get(mq)
    }

    /// Commits the consumed offsets of every assigned queue and waits.
    pub async fn commit_sync(&self) {
        let mqs = self.assignment();
        self.inner.offsets.persist(&mqs, false).await;
    }

    /// Commits (if auto-commit), unregisters and closes the connections.
    pub async fn shutdown(&self) {
        if self.inner.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
        let queues: Vec<_> = lock(&self.inner.queues).drain().map(|(_, q)| q).collect();
        for q in &queues {
            let _ = q.stop.send(true);
        }
        let mqs: Vec<_> = queues.iter().map(|q| q.mq.clone()).collect();
        if self.inner.cfg.auto_commit {
            self.inner.offsets.persist(&mqs, false).await;
        }
        if !self.inner.explicit.load(Ordering::Acquire) {
            for addr in self.inner.broker_addrs().await {
                let _ = unregister_from(
                    &self.inner.routes,
                    &addr,
                    &self.inner.client_id,
                    None,
                    Some(&self.inner.cfg.group),
                )
                .await;
            }
        }
        self.inner.routes.client().shutdown();
    }

    fn start_background(&self) {
        let mut tasks = lock(&self.inner.tasks);
        if !tasks.is_empty() {
            return;
        }
        let w = Arc::downgrade(&self.inner);
        let h = tokio::spawn(background(w.clone()));
        tasks.push(h.abort_handle());
        let owner = format!("lite:{}:{}", self.inner.client_id, self.inner.cfg.group);
        self.inner.routes.client().add_code_handler(
            &owner,
            request::NOTIFY_CONSUMER_IDS_CHANGED,
            Arc::new(move |_, req| {
                let l = w.upgrade()?;
                (req.ext.get("consumerGroup") == Some(l.cfg.group.as_str())).then(|| {
                    l.rebalance_now.notify_one();
                    crate::wire::RemotingCommand::response_to(&req, 0)
                })
            }),
        );
    }
}

impl Lite {
    fn heartbeat_body(&self) -> Bytes {
        let hb = HeartbeatData {
            client_id: self.client_id.clone(),
            consumer_data_set: vec![ConsumerData {
                group_name: self.cfg.group.clone(),
                consume_type: "CONSUME_ACTIVELY".into(),
                message_model: MessageModel::Clustering.java_name().into(),
                consume_from_where: self.cfg.consume_from.java_name().into(),
                subscription_data_set: lock(&self.subs).values().cloned().collect(),
                unit_mode: false,
            }],
            ..Default::default()
        };
        Bytes::from(serde_json::to_vec(&hb).unwrap_or_default())
    }

    async fn broker_addrs(&self) -> Vec<String> {
        let topics: Vec<String> = lock(&self.subs).keys().cloned().collect();
        let mut out = Vec::new();
        for t in topics {
            if let Ok(r) = self.routes.route(&t).await {
                for a in r.master_addrs() {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    async fn heartbeat(&self) {
        let body = self.heartbeat_body();
        for addr in self.broker_addrs().await {
            if let Err(e) = heartbeat_to(&self.routes, &addr, body.clone()).await {
                tracing::debug!(addr, error = %e, "lite pull heartbeat failed");
            }
        }
    }

    /// Rebalance (subscribe mode); true if it should be retried soon.
    async fn rebalance(self: Arc<Self>) -> bool {
        if self.explicit.load(Ordering::Acquire) {
            return false;
        }
        let topics: Vec<String> = lock(&self.subs).keys().cloned().collect();
        let mut target = Vec::new();
        let mut retry = false;
        for t in &topics {
            match super::push::target_queues(
                &self.routes,
                t,
                &self.cfg.group,
                &self.client_id,
                MessageModel::Clustering,
                self.cfg.allocation,
            )
            .await
            {
                Some(q) => target.extend(q),
                None => {
                    retry = true;
                    target.extend(lock(&self.queues).keys().filter(|q| &q.topic == t).cloned());
                }
            }
        }
        self.apply(target).await;
        retry
    }

    async fn apply(self: Arc<Self>, target: Vec<MessageQueue>) {
        let (gone, added) = {
            let mut map = lock(&self.queues);
            let gone_keys: Vec<_> = map
                .keys()
                .filter(|q| !target.contains(q))
                .cloned()
                .collect();
            let gone: Vec<_> = gone_keys.iter().filter_map(|k| map.remove(k)).collect();
            let mut added = Vec::new();
            for mq in &target {
                if !map.contains_key(mq) {
                    let q = Arc::new(LiteQueue {
                        mq: mq.clone(),
                        next_pull: Mutex::new(None),
                        generation: AtomicU64::new(0),
                        stop: watch::channel(false).0,
                    });
                    map.insert(mq.clone(), q.clone());
                    added.push(q);
                }
            }
            (gone, added)
        };
        for q in gone {
            let _ = q.stop.send(true);
            self.offsets
                .persist(std::slice::from_ref(&q.mq), false)
                .await;
            self.offsets.remove(&q.mq);
        }
        for q in added {
            let h = tokio::spawn(pull_loop(Arc::downgrade(&self), q));
            lock(&self.tasks).push(h.abort_handle());
        }
    }

    async fn start_offset(&self, mq: &MessageQueue) -> Result<i64, ClientError> {
        if let Some(o) = self.offsets.read_stored(mq).await? {
            return Ok(o);
        }
        let o = match self.cfg.consume_from {
            ConsumeFrom::LastOffset => self.pull.max_offset(mq).await?,
            ConsumeFrom::FirstOffset => 0,
            ConsumeFrom::Timestamp(ts) => self.pull.search_offset(mq, ts).await?,
        };
        self.offsets.update(mq, o, false);
        Ok(o)
    }
}

async fn background(lite: Weak<Lite>) {
    let (mut last_rb, mut last_hb, mut last_commit) =
        (Instant::now(), Instant::now(), Instant::now());
    let mut soon = false;
    loop {
        let Some(l) = lite.upgrade() else { return };
        let notified = tokio::select! {
            _ = l.rebalance_now.notified() => true,
            _ = tokio::time::sleep(Duration::from_millis(500)) => false,
        };
        if l.shut.load(Ordering::Acquire) {
            return;
        }
        let rb_due = last_rb.elapsed()
            >= if soon {
                Duration::from_secs(1)
            } else {
                l.cfg.rebalance_interval
            };
        if notified || rb_due {
            soon = l.clone().rebalance().await;
            last_rb = Instant::now();
        }
        if !l.explicit.load(Ordering::Acquire) && last_hb.elapsed() >= l.cfg.heartbeat_interval {
            l.heartbeat().await;
            last_hb = Instant::now();
        }
        if l.cfg.auto_commit && last_commit.elapsed() >= l.cfg.auto_commit_interval {
            let mqs: Vec<_> = lock(&l.queues).keys().cloned().collect();
            l.offsets.persist(&mqs, true).await;
            last_commit = Instant::now();
        }
    }
}

async fn pull_loop(lite: Weak<Lite>, q: Arc<LiteQueue>) {
    let mut stop = q.stop.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(l) = lite.upgrade() else { return };
        let gen = q.generation.load(Ordering::Acquire);
        let next = *lock(&q.next_pull);
        let offset = match next {
            Some(o) => o,
            None => match l.start_offset(&q.mq).await {
                Ok(o) => {
                    *lock(&q.next_pull) = Some(o);
                    o
                }
                Err(e) => {
                    tracing::debug!(error = %e, "lite pull: no start offset");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let Some(sub) = lock(&l.subs).get(&q.mq.topic).cloned() else {
            return;
        };
        let spec = PullSpec {
            mq: &q.mq,
            offset,
            max: l.cfg.pull_batch_size,
            suspend: Some(l.cfg.long_poll_suspend),
            timeout: None,
            expression: &sub.sub_string,
            expression_type: sub.expression_type.as_deref().unwrap_or("TAG"),
            commit_offset: None,
            sub_version: sub.sub_version,
        };
        let res = tokio::select! {
            r = l.pull.pull_with(&spec) => r,
            _ = stop.wait_for(|v| *v) => return,
        };
        if q.generation.load(Ordering::Acquire) != gen {
            continue;
        }
        match res {
            Ok(r) => {
                *lock(&q.next_pull) = Some(r.next_begin_offset);
                if r.status == PullStatus::Found && !r.messages.is_empty() {
                    let batch = Batch {
                        mq: q.mq.clone(),
                        generation: gen,
                        msgs: r.messages,
                    };
                    let tx = l.tx.clone();
                    drop(l);
                    tokio::select! {
                        _ = tx.send(batch) => {}
                        _ = stop.wait_for(|v| *v) => return,
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "lite pull failed");
                drop(l);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
