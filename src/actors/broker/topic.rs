//! Topics: the `TopicManager` actor owns the topic table (`config/topics.json`)
//! and creates one supervised `Topic` actor per topic, which in turn owns
//! one supervised `Queue` actor per queue id.
//!
//! Sessions look topics up in [`TopicRegistry`], a read-mostly snapshot the
//! manager publishes after every change, so the send and pull paths never
//! wait on the manager's mailbox.
//!
//! Supervision (`supervisor::start*`): a `Topic` rebuilds its config from
//! the published table; the manager, after a restart, reloads `topics.json`
//! (once its [`MetaWriter`] has written every snapshot), recreates topics
//! the published table lost and writes the merged table back. The table is
//! persisted off the actor thread (RocketMQ's `TopicConfigManager` persists
//! synchronously; here the latest snapshot wins).

use actix::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use super::queue::QueueActor;
use crate::actors::server::IoPool;
use crate::actors::supervisor::{self, restarts, ActorFailure, Fault};
use crate::store::metadata::MetaWriter;
use crate::store::{CommitLogReader, ConsumeQueue, Flusher, StoreConfig};
use crate::wire::bodies::{perm, DataVersion, TopicConfig};
use crate::wire::names::{self, NameError, AUTO_CREATE_TOPIC as DEFAULT_TOPIC, SELF_TEST_TOPIC};

/// One topic as the data paths see it.
pub struct TopicEntry {
    /// The topic's name, shared by the records bound for it.
    pub name: Arc<str>,
    pub config: TopicConfig,
    pub actor: Addr<TopicActor>,
    pub queues: Vec<Addr<QueueActor>>,
}

impl TopicEntry {
    pub fn queue(&self, id: i32) -> Option<&Addr<QueueActor>> {
        usize::try_from(id).ok().and_then(|i| self.queues.get(i))
    }
}

/// Shared, read-mostly topic snapshot.
#[derive(Clone, Default)]
pub struct TopicRegistry {
    inner: Arc<RwLock<HashMap<String, Arc<TopicEntry>>>>,
    version: Arc<RwLock<DataVersion>>,
}

impl TopicRegistry {
    pub fn get(&self, topic: &str) -> Option<Arc<TopicEntry>> {
        self.inner.read().ok()?.get(topic).cloned()
    }

    pub fn configs(&self) -> BTreeMap<String, TopicConfig> {
        self.inner
            .read()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.config.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn data_version(&self) -> DataVersion {
        self.version.read().map(|v| v.clone()).unwrap_or_default()
    }

    fn publish(&self, name: String, entry: Option<Arc<TopicEntry>>) {
        if let Ok(mut m) = self.inner.write() {
            match entry {
                Some(e) => {
                    m.insert(name, e);
                }
                None => {
                    m.remove(&name);
                }
            }
        }
        if let Ok(mut v) = self.version.write() {
            v.bump();
        }
    }
}

// ------------------------------------------------------------ Topic actor

/// Owns one topic's configuration; parent of its queues.
pub struct TopicActor {
    name: String,
    registry: TopicRegistry,
    config: TopicConfig,
}

impl Actor for TopicActor {
    type Context = Context<Self>;
}

impl Supervised for TopicActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        restarts::record("Topic");
        // Rebuild from the published table (itself persisted in topics.json).
        if let Some(e) = self.registry.get(&self.name) {
            self.config = e.config.clone();
        }
        tracing::info!(topic = %self.name, "topic actor restarted");
    }
}

#[derive(Message)]
#[rtype(result = "Result<TopicConfig, ActorFailure>")]
pub struct GetTopicConfig;

impl Handler<GetTopicConfig> for TopicActor {
    type Result = Result<TopicConfig, ActorFailure>;
    fn handle(&mut self, _: GetTopicConfig, _: &mut Context<Self>) -> Self::Result {
        Ok(self.config.clone())
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), ActorFailure>")]
pub struct InjectTopicFault(pub Fault);

impl Handler<InjectTopicFault> for TopicActor {
    type Result = Result<(), ActorFailure>;
    fn handle(&mut self, f: InjectTopicFault, ctx: &mut Context<Self>) -> Self::Result {
        match f.0 {
            Fault::Error => {
                tracing::warn!(topic = %self.name, "injected topic error; stopping for restart");
                self.config = TopicConfig::default();
                ctx.stop();
                Err(ActorFailure("injected error".into()))
            }
            other => supervisor::inject(ctx, "Topic", other),
        }
    }
}

// ---------------------------------------------------------- TopicManager

pub struct TopicManager {
    registry: TopicRegistry,
    store_cfg: StoreConfig,
    reader: CommitLogReader,
    pool: IoPool,
    /// Consume queues recovered at start-up, handed to their queue actors.
    recovered: HashMap<(String, i32), ConsumeQueue>,
    writer: MetaWriter,
    long_polling: bool,
    flusher: Arc<Flusher>,
}

impl TopicManager {
    pub fn new(
        registry: TopicRegistry,
        store_cfg: StoreConfig,
        reader: CommitLogReader,
        pool: IoPool,
        recovered: HashMap<(String, i32), ConsumeQueue>,
        long_polling: bool,
        flusher: Arc<Flusher>,
    ) -> Self {
        let path = store_cfg.config_dir().join("topics.json");
        TopicManager {
            registry,
            store_cfg,
            reader,
            pool,
            recovered,
            writer: MetaWriter::new(path),
            long_polling,
            flusher,
        }
    }

    /// Hands a snapshot of the published table to the writer thread.
    fn persist(&self) {
        self.writer.submit(TopicConfigFile {
            topic_config_table: self.registry.configs(),
            data_version: self.registry.data_version(),
        });
    }

    fn read_file(&self) -> TopicConfigFile {
        crate::store::metadata::read_json(self.writer.path())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read topics.json");
                None
            })
            .unwrap_or_default()
    }

    /// After a restart: topics in `topics.json` missing from the published
    /// table are recreated; the merged table is written back.
    fn rebuild(&mut self) {
        self.writer.flush();
        let file = self.read_file();
        for (name, c) in file.topic_config_table {
            if self.registry.get(&name).is_none() {
                if let Err(e) = self.upsert(c) {
                    tracing::warn!(topic = %name, error = %e, "topic not restored");
                }
            }
        }
        self.persist();
    }

    /// Creates or updates a topic; returns its entry. Every topic the
    /// broker creates passes here, so this is where its name is checked
    /// before it becomes a directory.
    fn upsert(&mut self, mut config: TopicConfig) -> Result<Arc<TopicEntry>, NameError> {
        names::check_topic(&config.topic_name)?;
        config.read_queue_nums = config.read_queue_nums.clamp(1, 1024);
        config.write_queue_nums = config.write_queue_nums.clamp(1, 1024);
        let name = config.topic_name.clone();
        let existing = self.registry.get(&name);
        let wanted = config.queue_count() as usize;
        let (actor, mut queues) = match existing {
            Some(e) => {
                e.actor.do_send(SetTopicConfig(config.clone()));
                (e.actor.clone(), e.queues.clone())
            }
            None => {
                let registry = self.registry.clone();
                let cfg = config.clone();
                let n = name.clone();
                let arb = self.pool.pick().clone();
                let actor = supervisor::start_in_arbiter(&arb, "Topic", move |_| TopicActor {
                    name: n,
                    registry,
                    config: cfg,
                });
                (actor, Vec::new())
            }
        };
        while queues.len() < wanted {
            let qid = queues.len() as i32;
            let cq = self.recovered.remove(&(name.clone(), qid));
            let q = QueueActor::start(
                self.pool.pick(),
                name.clone(),
                qid,
                self.store_cfg.clone(),
                self.reader.clone(),
                cq,
                self.long_polling,
                self.flusher.clone(),
            );
            queues.push(q);
        }
        let entry = Arc::new(TopicEntry {
            name: Arc::from(config.topic_name.as_str()),
            config,
            actor,
            queues,
        });
        self.registry.publish(name, Some(entry.clone()));
        Ok(entry)
    }
}

impl Actor for TopicManager {
    type Context = Context<Self>;
}

impl Supervised for TopicManager {
    fn restarting(&mut self, _: &mut Context<Self>) {
        restarts::record("TopicManager");
        self.rebuild();
    }
}

crate::inject_panic_handler!(TopicManager, "TopicManager");

#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigFile {
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    pub data_version: DataVersion,
}

/// Loads `topics.json` (if any) and the system topics, and creates every
/// topic whose queues were found on disk.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LoadTopics {
    pub auto_create_topic_enable: bool,
    pub cluster_name: String,
    pub broker_name: String,
    pub default_queue_nums: i32,
}

impl Handler<LoadTopics> for TopicManager {
    type Result = ();
    fn handle(&mut self, m: LoadTopics, _: &mut Context<Self>) {
        let file = self.read_file();
        let mut configs = file.topic_config_table;
        let sys = |name: &str, q: i32, p: i32| TopicConfig::new(name, q, p);
        let default_perm = if m.auto_create_topic_enable {
            perm::READ | perm::WRITE | perm::INHERIT
        } else {
            perm::READ | perm::WRITE
        };
        configs
            .entry(DEFAULT_TOPIC.into())
            .or_insert_with(|| sys(DEFAULT_TOPIC, m.default_queue_nums, default_perm));
        configs
            .entry(SELF_TEST_TOPIC.into())
            .or_insert_with(|| sys(SELF_TEST_TOPIC, 1, perm::READ | perm::WRITE));
        configs
            .entry(m.cluster_name.clone())
            .or_insert_with(|| sys(&m.cluster_name, 16, perm::INHERIT));
        configs
            .entry(m.broker_name.clone())
            .or_insert_with(|| sys(&m.broker_name, 1, perm::INHERIT));
        // Queues recovered from disk whose topic was never persisted.
        let mut seen: HashMap<String, i32> = HashMap::new();
        for (t, q) in self.recovered.keys() {
            let e = seen.entry(t.clone()).or_insert(0);
            *e = (*e).max(q + 1);
        }
        for (t, n) in seen {
            configs
                .entry(t.clone())
                .or_insert_with(|| TopicConfig::new(&t, n, perm::READ | perm::WRITE));
        }
        for (name, c) in configs {
            if let Err(e) = self.upsert(c) {
                tracing::warn!(topic = %name, error = %e, "topic not loaded");
            }
        }
        self.persist();
    }
}

/// Creates or updates a topic (admin, auto-creation, retry topics).
#[derive(Message)]
#[rtype(result = "Result<Arc<TopicEntry>, NameError>")]
pub struct UpsertTopic(pub TopicConfig);

impl Handler<UpsertTopic> for TopicManager {
    type Result = Result<Arc<TopicEntry>, NameError>;
    fn handle(&mut self, m: UpsertTopic, _: &mut Context<Self>) -> Self::Result {
        let e = self.upsert(m.0)?;
        self.persist();
        Ok(e)
    }
}

/// Creates a topic only if it does not exist yet (first writer wins).
#[derive(Message)]
#[rtype(result = "Result<Arc<TopicEntry>, NameError>")]
pub struct EnsureTopic(pub TopicConfig);

impl Handler<EnsureTopic> for TopicManager {
    type Result = Result<Arc<TopicEntry>, NameError>;
    fn handle(&mut self, m: EnsureTopic, _: &mut Context<Self>) -> Self::Result {
        if let Some(e) = self.registry.get(&m.0.topic_name) {
            return Ok(e);
        }
        let e = self.upsert(m.0)?;
        self.persist();
        tracing::info!(topic = %e.config.topic_name, queues = e.config.queue_count(), "topic created");
        Ok(e)
    }
}

#[derive(Message)]
#[rtype(result = "bool")]
pub struct DeleteTopic(pub String);

impl Handler<DeleteTopic> for TopicManager {
    type Result = bool;
    fn handle(&mut self, m: DeleteTopic, _: &mut Context<Self>) -> bool {
        let Some(e) = self.registry.get(&m.0) else {
            return false;
        };
        for q in &e.queues {
            q.do_send(super::queue::DeleteQueue);
        }
        self.registry.publish(m.0.clone(), None);
        self.persist();
        tracing::info!(topic = %m.0, "topic deleted");
        true
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct PersistTopics;

impl Handler<PersistTopics> for TopicManager {
    type Result = ();
    fn handle(&mut self, _: PersistTopics, _: &mut Context<Self>) {
        // Graceful shutdown: complete before answering.
        self.persist();
        self.writer.flush();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SetTopicConfig(TopicConfig);

impl Handler<SetTopicConfig> for TopicActor {
    type Result = ();
    fn handle(&mut self, m: SetTopicConfig, _: &mut Context<Self>) {
        self.config = m.0;
    }
}
