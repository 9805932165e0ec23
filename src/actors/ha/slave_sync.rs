//! `SlaveSync`: a slave's copy of its master's metadata (Java's
//! `SlaveSynchronize#syncAll`, run by `BrokerController` every 10 s on a
//! slave).
//!
//! Every `haSlaveSyncInterval` (10 s) while the broker is a SLAVE, it asks
//! the master's broker address (`haMasterBrokerAddress`, else the
//! `masterAddr` of the name server's REGISTER_BROKER answer, which the
//! `Registrar` feeds into [`MasterAddress`]) for
//!
//! | Request | Applied to |
//! |---|---|
//! | GET_ALL_TOPIC_CONFIG (21) | `TopicManager`: each topic missing or different is upserted (`syncTopicConfig`) |
//! | GET_ALL_CONSUMER_OFFSET (43) | `OffsetManager` ([`ApplyMasterOffsets`]; `syncConsumerOffset`) |
//! | GET_ALL_DELAY_OFFSET (45) | `config/delayOffset.json` (`syncDelayOffset`) |
//! | GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201) | `GroupManager` ([`ApplyMasterGroups`]; `syncSubscriptionGroupConfig`) |
//!
//! Each step stands alone: one that fails is logged and retried at the next
//! round. While the master is away nothing is applied, and a slave accepts
//! offset commits (as Java's does); an offset the slave committed itself is
//! not overwritten by an older master value later (see
//! [`ApplyMasterOffsets`]).

use actix::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{HaConfig, MasterAddress};
use crate::actors::broker::groups::{ApplyMasterGroups, GroupManager, SubscriptionGroupFile};
use crate::actors::broker::offsets::{ApplyMasterOffsets, OffsetManager};
use crate::actors::broker::registrar::{RegisterNow, Registrar};
use crate::actors::broker::role::Role;
use crate::actors::broker::topic::{TopicConfigFile, TopicManager, TopicRegistry, UpsertTopic};
use crate::client::RemotingClient;
use crate::store::ConsumerOffsets;
use crate::wire::codes::{request as rq, response};
use crate::wire::RemotingCommand;

/// Per-request timeout of a sync round.
const CALL: Duration = Duration::from_secs(3);

/// What the sync needs of the broker.
#[derive(Clone)]
pub struct SlaveSyncDeps {
    pub cfg: HaConfig,
    pub role: Arc<Role>,
    pub master: MasterAddress,
    pub client: RemotingClient,
    pub topics: TopicRegistry,
    pub topic_manager: Addr<TopicManager>,
    pub offsets: Addr<OffsetManager>,
    pub groups: Addr<GroupManager>,
    pub registrar: Addr<Registrar>,
    /// `config/`: where `delayOffset.json` lives.
    pub config_dir: PathBuf,
    /// `innerClientAuthenticationCredentials`: the sync's requests are
    /// signed with them when set (a master with ACL on needs it).
    pub credentials: Option<(String, String)>,
}

pub struct SlaveSync {
    deps: SlaveSyncDeps,
    /// The master's offset table as last applied.
    previous: Option<ConsumerOffsets>,
    running: bool,
}

impl SlaveSync {
    pub fn new(deps: SlaveSyncDeps) -> Self {
        SlaveSync {
            deps,
            previous: None,
            running: false,
        }
    }

    fn master(&self) -> Option<String> {
        match self.deps.cfg.master_broker_address.as_str() {
            "" => self.deps.master.broker(),
            a => Some(a.to_owned()),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.running || !self.deps.role.is_slave() {
            return;
        }
        let Some(master) = self.master() else { return };
        self.running = true;
        let d = self.deps.clone();
        let previous = self.previous.clone();
        ctx.spawn(
            async move { sync_all(&d, &master, previous).await }
                .into_actor(self)
                .map(|applied, act, _| {
                    act.running = false;
                    if let Some(t) = applied {
                        act.previous = Some(t);
                    }
                }),
        );
    }
}

impl Actor for SlaveSync {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = Duration::from_millis(self.deps.cfg.slave_sync_interval.max(50));
        // Java waits 3 s before the first round; a short first delay lets a
        // fresh slave learn its master from the first registration.
        ctx.run_later(every.min(Duration::from_secs(3)), |act, ctx| act.tick(ctx));
        ctx.run_interval(every, |act, ctx| act.tick(ctx));
    }
}

/// Stops the sync (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopSync;

impl Handler<StopSync> for SlaveSync {
    type Result = ();
    fn handle(&mut self, _: StopSync, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Runs one round now (tests, role changes).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SyncNow;

impl Handler<SyncNow> for SlaveSync {
    type Result = ();
    fn handle(&mut self, _: SyncNow, ctx: &mut Context<Self>) {
        self.tick(ctx);
    }
}

async fn fetch(d: &SlaveSyncDeps, master: &str, code: i32) -> Option<bytes::Bytes> {
    let mut cmd = RemotingCommand::request(code);
    if let Some((ak, sk)) = &d.credentials {
        crate::auth::signature::sign_remoting(&mut cmd.ext, &[], ak, sk, None);
    }
    match d.client.invoke(master, cmd, CALL).await {
        Ok(r) if r.code == response::SUCCESS => Some(r.body_bytes()),
        Ok(r) => {
            tracing::debug!(%master, code, answer = r.code, remark = ?r.remark, "slave sync refused");
            None
        }
        Err(e) => {
            tracing::debug!(%master, code, error = %e, "slave sync failed");
            None
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, b: &[u8]) -> Option<T> {
    serde_json::from_slice(b)
        .map_err(|e| tracing::warn!(what, error = %e, "slave sync: bad body from the master"))
        .ok()
}

/// One `syncAll` round; returns the master's offset table when applied.
async fn sync_all(
    d: &SlaveSyncDeps,
    master: &str,
    previous: Option<ConsumerOffsets>,
) -> Option<ConsumerOffsets> {
    sync_topics(d, master).await;
    let applied = match fetch(d, master, rq::GET_ALL_CONSUMER_OFFSET).await {
        Some(b) => match parse::<ConsumerOffsets>("consumer offsets", &b) {
            Some(t) => {
                let m = ApplyMasterOffsets {
                    master: t.clone(),
                    previous,
                };
                d.offsets.send(m).await.ok().map(|()| t)
            }
            None => None,
        },
        None => None,
    };
    if let Some(b) = fetch(d, master, rq::GET_ALL_DELAY_OFFSET).await {
        // The role may have changed during the round: a master's own
        // scheduler owns the file then.
        if d.role.is_slave() {
            let path = d.config_dir.join("delayOffset.json");
            match crate::actors::broker::schedule::apply_master_delay_offsets(&path, &b) {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "slave sync: delay offsets not applied"),
            }
        }
    }
    if let Some(b) = fetch(d, master, rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await {
        if let Some(f) = parse::<SubscriptionGroupFile>("subscription groups", &b) {
            let _ = d
                .groups
                .send(ApplyMasterGroups(f.subscription_group_table))
                .await;
        }
    }
    applied
}

async fn sync_topics(d: &SlaveSyncDeps, master: &str) {
    let Some(b) = fetch(d, master, rq::GET_ALL_TOPIC_CONFIG).await else {
        return;
    };
    let Some(f) = parse::<TopicConfigFile>("topics", &b) else {
        return;
    };
    let mut changed = false;
    for (name, cfg) in f.topic_config_table {
        if d.topics.get(&name).map(|e| e.config.clone()) == Some(cfg.clone()) {
            continue;
        }
        match d.topic_manager.send(UpsertTopic(cfg)).await {
            Ok(Ok(_)) => changed = true,
            Ok(Err(e)) => {
                tracing::warn!(topic = %name, error = %e, "slave sync: topic not applied")
            }
            Err(e) => tracing::warn!(topic = %name, error = %e, "slave sync: topic manager gone"),
        }
    }
    if changed {
        d.registrar.do_send(RegisterNow);
    }
}
