//! The broker's consumption and scheduling services, handed to the request
//! handlers as one [`Services`] value in `BrokerCtx`: delay levels, queue
//! locks, the published subscription-group table, and the services only a
//! master runs — `Schedule` (delay levels), `Timer` (timer messages) and
//! `Transactions` (END_TRANSACTION resolution, half-message checks).
//!
//! The master-only actors run together on one arbiter of their own,
//! supervised. Like Java's `BrokerController#changeSpecialServiceStatus`,
//! they start when the broker becomes a master ([`Services::become_master`])
//! and stop when it becomes a slave ([`Services::become_slave`]): stopping
//! stops their arbiter and waits for its thread, starting builds them anew
//! from their persisted state (`delayOffset.json`, the timer wheel and
//! checkpoint, the op queue, their intent files), exactly as after a
//! restart of the process. A broker started as SLAVE never starts them.

use actix::dev::{Request, ToEnvelope};
use actix::prelude::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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

/// The address of an actor that may be stopped and started again (a new
/// actor each time). Sends go to the current one; while none runs they
/// fail as to a stopped actor (`MailboxError::Closed`).
pub struct LiveAddr<A: Actor>(RwLock<Addr<A>>);

impl<A: Actor> LiveAddr<A> {
    /// An address with no actor behind it.
    pub fn closed() -> Self {
        LiveAddr(RwLock::new(closed_addr()))
    }

    pub fn new(addr: Addr<A>) -> Self {
        LiveAddr(RwLock::new(addr))
    }

    /// The current actor's address.
    pub fn get(&self) -> Addr<A> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Points at a new actor (or, with [`closed_addr`], at none).
    pub fn set(&self, addr: Addr<A>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = addr;
    }

    /// As `Addr::send`, to the current actor.
    pub fn send<M>(&self, msg: M) -> Request<A, M>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        self.get().send(msg)
    }

    /// As `Addr::do_send`, to the current actor.
    pub fn do_send<M>(&self, msg: M)
    where
        M: Message + Send,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        self.get().do_send(msg)
    }
}

/// An address whose mailbox is already gone.
pub fn closed_addr<A: Actor>() -> Addr<A> {
    let (tx, _rx) = actix::dev::channel::channel::<A>(1);
    Addr::new(tx)
}

/// Stops an arbiter and waits for its thread, so every actor on it has run
/// its `stopped` (the timer's final flush) and holds no file any more.
pub async fn stop_and_join(arbiter: Arbiter) {
    arbiter.stop();
    if tokio::task::spawn_blocking(move || arbiter.join())
        .await
        .is_err()
    {
        tracing::error!("an arbiter's thread did not stop cleanly");
    }
}

pub struct Services {
    pub levels: Arc<DelayLevels>,
    pub locks: Addr<Locks>,
    pub group_table: GroupTable,
    /// The `Transactions` actor while the broker is a master; closed while
    /// it is a slave (END_TRANSACTION is refused before reaching it).
    pub transactions: LiveAddr<Transactions>,
    /// The arbiter of the master-only actors, while they run.
    master_only: Mutex<Option<Arbiter>>,
    /// Their addresses, held while they run (fault-injection targets are
    /// weak and need a strong address somewhere).
    held: Mutex<Option<(Addr<Schedule>, Addr<Timer>)>>,
    /// Set by [`Services::stop`]: nothing starts any more.
    stopped: AtomicBool,
    deps: ServiceDeps,
    cfg: BrokerConfig,
}

/// What the services need from the rest of the broker.
#[derive(Clone)]
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
    /// Creates the system topics and the services every role runs; the
    /// master-only ones start with [`Services::become_master`].
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
        let locks = crate::actors::supervisor::start("Locks", move |_| Locks::new(lease));
        Services {
            levels,
            locks,
            group_table: d.group_table.clone(),
            transactions: LiveAddr::closed(),
            master_only: Mutex::new(None),
            held: Mutex::new(None),
            stopped: Default::default(),
            deps: d,
            cfg: cfg.clone(),
        }
    }

    /// Whether the master-only services run (RocketMQ's `brokerActive`).
    pub fn master_running(&self) -> bool {
        self.lock().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arbiter>> {
        self.master_only.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `Schedule`, `Timer` and `Transactions` from their persisted
    /// state, unless they run. Callers serialise role changes (`RoleKeeper`).
    pub async fn become_master(&self) {
        if self.master_running() || self.stopped.load(Ordering::Acquire) {
            return;
        }
        let (cfg, d) = (&self.cfg, &self.deps);
        let arbiter = Arbiter::new();
        let sched = Schedule::new(
            self.levels.clone(),
            d.topics.clone(),
            d.commit_log.clone(),
            d.reader.clone(),
            d.store_host,
            d.config_dir.join("delayOffset.json"),
        );
        let schedule =
            crate::actors::supervisor::start_in_arbiter(&arbiter.handle(), "Schedule", move |_| {
                sched
            });
        let tm = Timer::new(
            self.levels.clone(),
            d.topics.clone(),
            d.commit_log.clone(),
            d.reader.clone(),
            d.store_host,
            cfg,
        );
        let timer =
            crate::actors::supervisor::start_in_arbiter(&arbiter.handle(), "Timer", move |_| tm);
        let policy = CheckPolicy {
            interval: Duration::from_millis(cfg.transaction_check_interval.max(50)),
            timeout_ms: cfg.transaction_time_out as i64,
            max_checks: cfg.transaction_check_max,
            max_age_ms: (cfg.file_reserved_time as i64).saturating_mul(3_600_000),
            timer_max_delay_sec: cfg.timer_max_delay_sec,
        };
        let tx = Transactions::load(
            self.levels.clone(),
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
        let transactions = crate::actors::supervisor::start_in_arbiter(
            &arbiter.handle(),
            "Transaction",
            move |_| tx,
        );
        // Fault-injection targets (ACTORMQ_INJECT_FAULT), for as long as
        // these actors live.
        let scope = self.cfg.store_path_root_dir.display().to_string();
        use crate::actors::supervisor::targets::register;
        register(&scope, "schedule", schedule.clone().recipient());
        register(&scope, "timer", timer.clone().recipient());
        register(&scope, "transactions", transactions.clone().recipient());
        let mut slot = self.lock();
        if self.stopped.load(Ordering::Acquire) {
            // The broker shut down while the services were being built.
            arbiter.stop();
            return;
        }
        self.transactions.set(transactions);
        *slot = Some(arbiter);
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some((schedule, timer));
        tracing::info!("schedule, timer and transaction-check services started");
    }

    /// Stops the master-only services and waits until they have stopped.
    pub async fn become_slave(&self) {
        let Some(arbiter) = self.lock().take() else {
            return;
        };
        self.transactions.set(closed_addr());
        self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        stop_and_join(arbiter).await;
        tracing::info!("schedule, timer and transaction-check services stopped");
    }

    /// Stops the background actors (broker shutdown).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(a) = self.lock().take() {
            a.stop();
        }
    }
}
