//! The broker's consumption and scheduling services, started together and
//! handed to the request handlers as one [`Services`] value in `BrokerCtx`:
//! delay levels, queue locks, the published subscription-group table, the
//! `Schedule` (delay levels), `Timer` (timer messages) and `Transaction`
//! (half-message checker) actors. The three background actors run on one
//! arbiter of their own, supervised.

use actix::prelude::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::clients::ClientRegistry;
use super::commit_log::CommitLogWriter;
use super::groups::GroupTable;
use super::locks::Locks;
use super::offsets::OffsetManager;
use super::schedule::Schedule;
use super::store_path::{self, DelayLevels};
use super::timer::Timer;
use super::topic::{TopicManager, TopicRegistry, UpsertTopic};
use super::transaction::{CheckPolicy, Transactions};
use crate::config::BrokerConfig;
use crate::store::CommitLogReader;
use crate::wire::bodies::{perm, TopicConfig};

pub struct Services {
    pub levels: Arc<DelayLevels>,
    pub locks: Addr<Locks>,
    pub group_table: GroupTable,
    pub schedule: Addr<Schedule>,
    pub timer: Addr<Timer>,
    pub transactions: Addr<Transactions>,
    /// Keeps the background arbiter alive as long as the broker.
    _arbiter: Arbiter,
}

/// What the services need from the rest of the broker.
pub struct ServiceDeps {
    pub topics: TopicRegistry,
    pub topic_manager: Addr<TopicManager>,
    pub commit_log: Addr<CommitLogWriter>,
    pub reader: CommitLogReader,
    pub store_host: SocketAddr,
    pub config_dir: PathBuf,
    pub clients: Addr<ClientRegistry>,
    pub offsets: Addr<OffsetManager>,
    pub group_table: GroupTable,
}

/// Creates a system topic, or grows it to `queues`.
async fn ensure_system_topic(d: &ServiceDeps, name: &str, queues: i32) {
    if d.topics
        .get(name)
        .is_some_and(|t| t.config.queue_count() >= queues)
    {
        return;
    }
    let cfg = TopicConfig::new(name, queues, perm::READ | perm::WRITE);
    if !matches!(d.topic_manager.send(UpsertTopic(cfg)).await, Ok(Ok(_))) {
        tracing::error!(topic = name, "cannot create system topic");
    }
}

impl Services {
    /// Stops the background actors (broker shutdown).
    pub fn stop(&self) {
        self._arbiter.stop();
    }

    pub async fn start(cfg: &BrokerConfig, d: ServiceDeps) -> Services {
        let levels = Arc::new(DelayLevels::parse_or_default(&cfg.message_delay_level));
        ensure_system_topic(&d, store_path::SCHEDULE_TOPIC, levels.max_level()).await;
        for t in [
            store_path::TIMER_TOPIC,
            store_path::HALF_TOPIC,
            store_path::OP_TOPIC,
            store_path::CHECK_MAX_TOPIC,
        ] {
            ensure_system_topic(&d, t, 1).await;
        }
        let lease = Duration::from_millis(cfg.rebalance_lock_max_live_time.max(1));
        let locks = Supervisor::start(move |_| Locks::new(lease));

        let arbiter = Arbiter::new();
        let sched = Schedule::new(
            levels.clone(),
            d.topics.clone(),
            d.commit_log.clone(),
            d.reader.clone(),
            d.store_host,
            d.config_dir.join("delayOffset.json"),
        );
        let schedule = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| sched);
        let tm = Timer::new(
            levels.clone(),
            d.topics.clone(),
            d.commit_log.clone(),
            d.reader.clone(),
            d.store_host,
            cfg,
        );
        let timer = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| tm);
        let policy = CheckPolicy {
            interval: Duration::from_millis(cfg.transaction_check_interval.max(50)),
            timeout_ms: cfg.transaction_time_out as i64,
            max_checks: cfg.transaction_check_max,
            max_age_ms: (cfg.file_reserved_time as i64).saturating_mul(3_600_000),
            timer_max_delay_sec: cfg.timer_max_delay_sec,
        };
        let tx = Transactions::load(
            levels.clone(),
            d.topics.clone(),
            d.commit_log.clone(),
            d.reader.clone(),
            &d.config_dir.join("transaction.intent"),
            d.clients.clone(),
            d.offsets.clone(),
            d.store_host,
            cfg.broker_name.clone(),
            policy,
        )
        .await;
        let transactions = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| tx);
        Services {
            levels,
            locks,
            group_table: d.group_table,
            schedule,
            timer,
            transactions,
            _arbiter: arbiter,
        }
    }
}
