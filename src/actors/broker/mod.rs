//! The broker role: wires the store, the broker's actors and the request
//! processor together, and shuts them down in order.
//!
//! Supervision tree (each under `supervisor::start*`, which catches panics
//! and restarts with a backoff and a limit, state rebuilt from the store):
//! `TopicManager` → `Topic` (per topic) → `Queue` (per queue);
//! `CommitLogWriter`; `OffsetManager`; `GroupManager`; `ClientRegistry`;
//! `Registrar`; `Cleaner`; `Indexer`; `Locks`; the master-only services
//! (`Schedule`, `Timer`, `Transactions`, see `services`). Sessions are per
//! connection: a failed session closes and the client reconnects.
//!
//! The role (MASTER / SLAVE, see `role`) changes at run time through
//! [`Broker::change_role`] (a `ChangeRole` message to the `RoleKeeper`).

pub mod cleaner;
pub mod clients;
pub mod commit_log;
pub mod crash_point;
pub mod exact_put;
pub mod groups;
pub mod indexer;
pub mod locks;
pub mod offsets;
pub mod pop_order;
pub mod pop_state;
pub mod processor;
pub mod queue;
pub mod registrar;
pub mod revive;
pub mod role;
pub mod schedule;
pub mod services;
pub mod store_path;
pub mod timer;
pub mod topic;
pub mod transaction;

use actix::prelude::*;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::actors::ha;
use crate::actors::server::{serve_tls, IoPool, ServerLimits};
use crate::actors::supervisor;
use crate::client::{ClientConfig, RemotingClient};
use crate::config::{BrokerConfig, ConfigError};
use crate::store::{self, FlushMode, Flusher, StoreConfig};
use processor::{BrokerCtx, BrokerProcessor};
use registrar::Registrar;
use role::{ChangeRole, Role, RoleError, RoleKeeper, RoleState};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("cannot prepare the store directory {0}: {1}")]
    StoreDir(String, std::io::Error),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("authentication / authorization: {0}")]
    Auth(String),
}

/// A running broker.
pub struct Broker {
    pub addr: SocketAddr,
    pub ctx: Arc<BrokerCtx>,
    flusher: Option<Arc<Flusher>>,
    accept: tokio::task::JoinHandle<()>,
    commit_arbiter: Arbiter,
    index: indexer::IndexerHandle,
    pool: IoPool,
    /// Held so the cleaner stays connected, hence restartable (supervision).
    _cleaner: Addr<cleaner::Cleaner>,
    /// Replication: the HA listener and the slave-side follower.
    ha: (Recipient<ha::service::Close>, Addr<ha::client::HaClient>),
    /// The store's `lock` file, held until shutdown (see `store::lock`).
    store_lock: Option<store::StoreLock>,
    slave_sync: Addr<ha::slave_sync::SlaveSync>,
    /// The revive actors (POP) and their arbiter.
    revive: Option<(Arbiter, Vec<Addr<revive::Revive>>)>,
    /// Persists the orderly POP state.
    pop_order: Addr<pop_order::PopOrderKeeper>,
}

pub fn store_config(cfg: &BrokerConfig) -> StoreConfig {
    StoreConfig {
        root: cfg.store_path_root_dir.clone(),
        commitlog_file_size: cfg.maped_file_size_commit_log,
        cq_units_per_file: (cfg.maped_file_size_consume_queue / 20).max(1),
        flush: if cfg.is_sync_flush() {
            FlushMode::Sync
        } else {
            FlushMode::Async
        },
        flush_interval_ms: cfg.flush_interval_commit_log,
        sync_flush_timeout_ms: cfg.sync_flush_timeout,
        max_message_size: cfg.max_message_size,
        delay_levels_ms: store_path::DelayLevels::parse_or_default(&cfg.message_delay_level)
            .as_ms()
            .to_vec(),
        ..StoreConfig::default()
    }
}

impl Broker {
    /// Recovers the store, starts the actors and listens. Call inside an
    /// actix System. `cfg.listen_port == 0` picks a free port.
    pub async fn start(mut cfg: BrokerConfig, pool: IoPool) -> Result<Broker, BrokerError> {
        cfg.check_broker_id()?;
        let store_cfg = store_config(&cfg);
        // supervision wiring: the restart policy of every actor.
        supervisor::configure(supervisor::PolicyConfig {
            max_restarts: cfg.supervisor_max_restarts,
            window: Duration::from_millis(cfg.supervisor_restart_window_ms),
            backoff: Duration::from_millis(cfg.supervisor_backoff_ms),
            backoff_max: Duration::from_millis(cfg.supervisor_backoff_max_ms),
        });
        std::fs::create_dir_all(&store_cfg.root)
            .map_err(|e| BrokerError::StoreDir(store_cfg.root.display().to_string(), e))?;
        let store_lock = store::StoreLock::acquire(&store_cfg.root)?;
        let sc = store_cfg.clone();
        let recovered = tokio::task::spawn_blocking(move || store::recover(&sc))
            .await
            .map_err(|e| {
                BrokerError::StoreDir("recovery task".into(), std::io::Error::other(e.to_string()))
            })??;
        tracing::info!(
            clean = recovered.was_clean_shutdown,
            max_offset = recovered.commit_log.max_offset(),
            queues = recovered.queues.len(),
            "store recovered"
        );
        // Listen only once the store is ready: clients connecting during a
        // long recovery would otherwise time out against a silent port.
        let tls_err = |e| BrokerError::Listen("TLS (tls.* keys)".into(), e);
        let tls = cfg.tls.server().map_err(tls_err)?;
        let namesrv_tls = cfg.tls.client().map_err(tls_err)?;
        let listener = tokio::net::TcpListener::bind((cfg.listen_addr.as_str(), cfg.listen_port))
            .await
            .map_err(|e| {
                BrokerError::Listen(format!("{}:{}", cfg.listen_addr, cfg.listen_port), e)
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| BrokerError::Listen("local address".into(), e))?;
        if cfg.listen_port == 0 && cfg.ha.listen_port.is_none() {
            // Any broker port: any HA port too (listenPort + 1 may be taken).
            cfg.ha.listen_port = Some(0);
        }
        cfg.listen_port = addr.port();
        let store_host: SocketAddr = format!("{}:{}", cfg.broker_ip1, cfg.listen_port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or(addr);

        store::checkpoint::create_abort_marker(&store_cfg)?;
        let flusher = Flusher::start(&store_cfg, &recovered.commit_log)?;
        for cq in recovered.queues.values() {
            flusher.register_queue(cq);
        }
        let flusher = Arc::new(flusher);
        let flush_handle = flusher.clone();
        let reader = recovered.commit_log.reader();

        let registry = topic::TopicRegistry::default();
        let tm = topic::TopicManager::new(
            registry.clone(),
            store_cfg.clone(),
            reader.clone(),
            pool.clone(),
            recovered.queues,
            cfg.long_polling_enable,
            flush_handle.clone(),
        );
        let topic_manager = supervisor::start("TopicManager", move |_| tm);
        let _ = topic_manager
            .send(topic::LoadTopics {
                auto_create_topic_enable: cfg.auto_create_topic_enable,
                cluster_name: cfg.broker_cluster_name.clone(),
                broker_name: cfg.broker_name.clone(),
                default_queue_nums: cfg.default_topic_queue_nums,
            })
            .await;

        let index = indexer::IndexerHandle::start(
            &cfg,
            &store_cfg,
            reader.clone(),
            recovered.was_clean_shutdown,
        );
        let pop = Arc::new(pop_state::PopState::new(
            crate::wire::pop::revive_topic(&cfg.broker_cluster_name),
            revive::revive_queue_num(&cfg),
        ));
        let order_path = pop_order::path(&store_cfg.config_dir());
        pop.restore_order(pop_order::load(&order_path));
        let (p, every) = (
            pop.clone(),
            Duration::from_millis(cfg.flush_consumer_offset_interval.max(100)),
        );
        let pop_order = supervisor::start("PopOrderKeeper", move |_| {
            pop_order::PopOrderKeeper::new(p, order_path, every)
        });
        let commit_arbiter = Arbiter::new();
        let writer_arbiter = if cfg.commit_log_own_thread {
            commit_arbiter.handle()
        } else {
            pool.first().clone()
        };
        let writer = commit_log::CommitLogWriter::new(
            recovered.commit_log,
            flush_handle,
            registry.clone(),
            recovered.topic_queue_offsets,
            cfg.is_sync_flush(),
            Duration::from_millis(cfg.sync_flush_timeout),
        );
        let disk_full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = index
            .attach(writer)
            .with_disk_full(disk_full.clone())
            .with_store_cfg(store_cfg.clone())
            .with_arrivals(pop.arrivals.clone());
        let commit_log =
            supervisor::start_in_arbiter(&writer_arbiter, "CommitLog", move |_| writer);
        let cleaner = cleaner::start(
            &cfg,
            commit_log.clone(),
            reader.clone(),
            registry.clone(),
            index.addr.clone(),
            disk_full.clone(),
        );

        let offsets_path = store_cfg.config_dir().join("consumerOffset.json");
        let every = Duration::from_millis(cfg.flush_consumer_offset_interval.max(100));
        let offsets = supervisor::start("OffsetManager", move |_| {
            offsets::OffsetManager::load(offsets_path, every)
        });
        let groups_path = store_cfg.config_dir().join("subscriptionGroup.json");
        let auto_group = cfg.auto_create_subscription_group;
        let group_table = groups::GroupTable::default();
        let gt = group_table.clone();
        let groups = supervisor::start("GroupManager", move |_| {
            groups::GroupManager::load(groups_path, auto_group).with_table(gt)
        });
        let subscriptions = clients::Subscriptions::default();
        let subs = subscriptions.clone();
        let expire = Duration::from_millis(cfg.client_channel_expire_ms);
        let clients = supervisor::start("ClientRegistry", move |_| {
            clients::ClientRegistry::new(subs, expire)
        });
        let deps = services::ServiceDeps {
            topics: registry.clone(),
            topic_manager: topic_manager.clone(),
            commit_log: commit_log.clone(),
            reader: reader.clone(),
            store_host,
            config_dir: store_cfg.config_dir(),
            clients: clients.clone(),
            offsets: offsets.clone(),
            group_table,
        };
        let services = Arc::new(services::Services::start(&cfg, deps).await);
        let role = Arc::new(Role::from_config(&cfg));
        // A slave runs none of the master-only services (Java starts them
        // in `changeSpecialServiceStatus(brokerId == MASTER_ID)`).
        if role.role().is_master() {
            services.become_master().await;
        }
        tracing::info!(role = %role.role(), broker_id = role.state().broker_id, "broker role");

        // Replication wiring (see `actors::ha`): the HA listener is bound
        // before registering, so `haServerAddr` is the real one.
        let (ha_listener, ha_bound) = ha::service::bind(&cfg.listen_addr, cfg.listen_port, &cfg.ha)
            .await
            .map_err(|e| BrokerError::Listen(format!("HA port of {}", cfg.listen_addr), e))?;
        let ha_group = Arc::new(ha::group_transfer::GroupTransfer::new(
            cfg.ha.max_gap_not_in_sync,
        ));
        // With the writer on the session thread (2 cores or fewer), the
        // classic HA actors share that thread too: a send's wake-up of the
        // transfer, the slave's report and the release of the waiting sends
        // then cost no thread hop (measured in docs/replication.md, "Where
        // the tail comes from"). A slave's client always runs beside the
        // writer it appends through.
        let ha_arbiter = if cfg.commit_log_own_thread {
            actix::Arbiter::current()
        } else {
            writer_arbiter.clone()
        };
        // Controller mode: AutoSwitch HA (epochs, SyncStateSet) in place of
        // classic HA, on the same port.
        let auto = ha::autoswitch::AutoSwitchConfig::from_broker(&cfg).map(|ac| {
            let confirm = store::checkpoint::Checkpoint::load(&store_cfg.checkpoint_path())
                .ok()
                .flatten()
                .map_or(0, |c| c.confirm_phy_offset);
            ha::autoswitch::AutoSwitch::new(
                ac,
                cfg.ha.clone(),
                reader.clone(),
                ha_group.clone(),
                confirm,
            )
        });
        let ha_service: Recipient<ha::service::Close> = match &auto {
            Some(a) => ha::autoswitch::connection::AutoSwitchService::new(ha_listener, a.clone())
                .start()
                .recipient(),
            None => {
                let service = ha::service::HaService::new(
                    ha_listener,
                    ha_group.clone(),
                    reader.clone(),
                    cfg.ha.clone(),
                )
                .map_err(|e| BrokerError::Listen(format!("HA port of {}", cfg.listen_addr), e))?;
                ha::service::HaService::start_in_arbiter(&ha_arbiter, |_| service).recipient()
            }
        };
        let ha_master = ha::MasterAddress::default();
        let ha_client = ha::client::HaClient::new(ha::client::HaClientDeps {
            cfg: cfg.ha.clone(),
            role: role.clone(),
            master: ha_master.clone(),
            writer: commit_log.clone(),
            reader: reader.clone(),
            topic_manager: topic_manager.clone(),
            default_queue_nums: cfg.default_topic_queue_nums,
            auto: auto.clone(),
        });
        let ha_runtime = Arc::new(ha::HaRuntime {
            group: ha_group,
            // RocketMQ's `brokerIP2`: the host the slaves dial for HA
            // (default `brokerIP1`).
            server_addr: format!(
                "{}:{}",
                cfg.unknown
                    .get("brokerIP2")
                    .map_or(cfg.broker_ip1.as_str(), |h| h.trim()),
                ha_bound.port()
            ),
            master: ha_master.clone(),
            client: ha_client.state(),
            auto,
        });
        let ha_client = ha::client::HaClient::start_in_arbiter(&writer_arbiter, |_| ha_client);
        tracing::info!(ha = %ha_runtime.server_addr, "HA listening");

        let identity = registrar::Identity {
            cluster: cfg.broker_cluster_name.clone(),
            broker_name: cfg.broker_name.clone(),
            broker_id: role.state().broker_id,
            broker_addr: cfg.broker_addr(),
            ha_server_addr: ha_runtime.server_addr.clone(),
        };
        let reg = Registrar::new(
            identity,
            &cfg.namesrv_addr,
            registry.clone(),
            RemotingClient::with_tls(ClientConfig::default(), namesrv_tls),
            Duration::from_millis(cfg.register_broker_interval_ms.max(100)),
        )
        .with_ha_master(ha_master.clone())
        .fenced(ha_runtime.auto.is_some());
        let max_held_pulls = match cfg.unknown.get("maxHeldPulls") {
            Some(v) => v.trim().parse::<usize>().map_err(|_| {
                BrokerError::Config(ConfigError::BadValue {
                    key: "maxHeldPulls".into(),
                    value: v.clone(),
                    why: "expected a count",
                })
            })?,
            None => crate::service::broker::MAX_HELD_PULLS,
        };
        let auth_settings = crate::auth::settings::AuthSettings::from_properties(
            &cfg.unknown,
            &cfg.broker_cluster_name,
        )
        .map_err(BrokerError::Auth)?;
        let auth = auth_settings
            .open(&store_cfg.config_dir())
            .map_err(BrokerError::Auth)?;
        let reg = reg.with_credentials(auth_settings.inner_credentials());
        let registrar = supervisor::start("Registrar", move |_| reg);
        let rereg = registrar.clone();
        let keeper = RoleKeeper::new(
            role.clone(),
            services.clone(),
            Box::new(move |id| {
                let r = rereg.clone();
                Box::pin(async move {
                    let _ = r.send(registrar::SetBrokerId(id)).await;
                })
            }),
        );
        let role_keeper = keeper.start();
        let slave_sync = ha::slave_sync::SlaveSync::new(ha::slave_sync::SlaveSyncDeps {
            cfg: cfg.ha.clone(),
            role: role.clone(),
            master: ha_master,
            client: RemotingClient::new(ClientConfig::default()),
            topics: registry.clone(),
            topic_manager: topic_manager.clone(),
            offsets: offsets.clone(),
            groups: groups.clone(),
            registrar: registrar.clone(),
            config_dir: store_cfg.config_dir(),
            credentials: auth_settings.inner_credentials(),
        })
        .start();

        // supervision wiring: fault-injection targets (ACTORMQ_INJECT_FAULT).
        {
            use supervisor::targets::register;
            let scope = store_cfg.root.display().to_string();
            register(&scope, "commitLog", commit_log.clone().recipient());
            register(&scope, "topicManager", topic_manager.clone().recipient());
            register(&scope, "offsets", offsets.clone().recipient());
            register(&scope, "groups", groups.clone().recipient());
            register(&scope, "clients", clients.clone().recipient());
            register(&scope, "registrar", registrar.clone().recipient());
            register(&scope, "cleaner", cleaner.clone().recipient());
            if let Some(ix) = &index.addr {
                register(&scope, "indexer", ix.clone().recipient());
            }
            register(&scope, "locks", services.locks.clone().recipient());
            register(&scope, "popOrder", pop_order.clone().recipient());
        }
        let ctx = Arc::new(BrokerCtx {
            cfg,
            store_host,
            commit_log,
            reader,
            topics: registry,
            topic_manager,
            offsets,
            clients,
            subscriptions,
            registrar,
            groups,
            services,
            indexer: index.addr.clone(),
            disk_full,
            role,
            role_keeper,
            auth,
            held_pulls: Default::default(),
            max_held_pulls,
            ha: ha_runtime,
            pop,
        });
        let revive = Some(revive::start(&ctx).await);
        let accept = serve_tls(
            listener,
            Arc::new(BrokerProcessor { ctx: ctx.clone() }),
            pool.clone(),
            ServerLimits::from_properties(&ctx.cfg.unknown)?,
            tls,
        );
        tracing::info!(%addr, broker = %ctx.cfg.broker_name, "broker listening");
        Ok(Broker {
            addr,
            ctx,
            flusher: Some(flusher),
            accept,
            commit_arbiter,
            index,
            pool,
            _cleaner: cleaner,
            ha: (ha_service, ha_client),
            store_lock: Some(store_lock),
            slave_sync,
            revive,
            pop_order,
        })
    }

    /// Makes the broker a master or a slave: the role's state, the
    /// master-only services and the name-server registration, in order
    /// (see `role`). Changes are applied one at a time.
    pub async fn change_role(&self, change: ChangeRole) -> Result<RoleState, RoleError> {
        self.ctx
            .role_keeper
            .send(change)
            .await
            .unwrap_or(Err(RoleError::Stopped))
    }

    /// Graceful stop: stop accepting, unregister from the name servers,
    /// persist metadata, flush everything and remove the `abort` marker.
    pub async fn shutdown(mut self) {
        self.accept.abort();
        let _ = self.ha.1.send(ha::client::StopClient).await;
        let _ = self.slave_sync.send(ha::slave_sync::StopSync).await;
        let _ = self.ha.0.send(ha::service::Close).await;
        self.ctx.services.stop();
        if let Some((a, _)) = self.revive.take() {
            a.stop();
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.ctx.registrar.send(registrar::UnregisterAll),
        )
        .await;
        let _ = self.ctx.offsets.send(offsets::PersistOffsets).await;
        let _ = self.pop_order.send(pop_order::PersistOrder).await;
        let _ = self.ctx.topic_manager.send(topic::PersistTopics).await;
        // Let in-flight appends and dispatches land before the final flush.
        let _ = self.ctx.commit_log.send(commit_log::LogOffsets).await;
        for (name, _) in self.ctx.topics.configs() {
            if let Some(t) = self.ctx.topics.get(&name) {
                for q in &t.queues {
                    let _ = q.send(queue::FlushQueue).await;
                }
            }
        }
        self.index.shutdown().await;
        if let Some(f) = self.flusher.take() {
            let cfg = store_config(&self.ctx.cfg);
            let r = tokio::task::spawn_blocking(move || {
                f.flush_all()?;
                store::checkpoint::remove_abort_marker(&cfg)
            })
            .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "final flush failed; the next start will recover")
                }
                Err(e) => tracing::error!(error = %e, "final flush task failed"),
            }
        }
        self.commit_arbiter.stop();
        drop(self.store_lock.take());
        let _ = &self.pool;
        tracing::info!("broker stopped");
        // supervision wiring: a stop caused by a fatal failure exits non-zero.
        supervisor::exit_if_fatal();
    }
}
