//! `Registrar`: registers the broker and its topics with every name server
//! every `registerBrokerIntervalMs` (30 s), at once after a topic change, and
//! unregisters at shutdown. Name servers do not talk to each other, so each
//! gets its own registration.

use actix::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::topic::TopicRegistry;
use crate::client::RemotingClient;
use crate::wire::bodies::{RegisterBrokerBody, TopicConfigSerializeWrapper};
use crate::wire::codes::{request, response};
use crate::wire::headers::namesrv::{
    BrokerIdentityHeader, RegisterBrokerRequestHeader, RegisterBrokerResponseHeader,
};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

#[derive(Clone)]
pub struct Identity {
    pub cluster: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub broker_addr: String,
    pub ha_server_addr: String,
}

pub struct Registrar {
    /// (accessKey, secretKey) from `innerClientAuthenticationCredentials`:
    /// registrations are signed with them when set.
    credentials: Option<(String, String)>,
    identity: Identity,
    namesrvs: Vec<String>,
    registry: TopicRegistry,
    client: RemotingClient,
    interval: Duration,
    /// Told the master's HA address from each registration's answer.
    ha_master: Option<crate::actors::ha::MasterAddress>,
    /// Failed registrations per name server, for the rate-limited warning.
    failures: HashMap<String, FailureLog>,
    /// controller mode: no registration until the controller confirmed the
    /// role (RocketMQ's `isolated`, apache/rocketmq#6508).
    fenced: bool,
    /// `stateVersion` of the registrations' data version: the master epoch
    /// of the role last confirmed by the controller (0 outside controller
    /// mode), so the name server keeps id 0 for the newest master
    /// (apache/rocketmq#6316).
    state_version: i64,
}

/// How often a name server that keeps refusing or failing registrations is
/// warned about again (the first failure is always logged at once).
pub const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Rate limit of the "registration failed" warning of one name server: the
/// first failure of a streak is logged, then at most one line per
/// [`FAILURE_LOG_EVERY`] with the count since the last line, and the end of
/// the streak once. A slave without its master's HA address registers every
/// second, so an unreachable name server would otherwise log every second.
#[derive(Debug, Default)]
pub struct FailureLog {
    /// Failures since the last logged line; 0: no streak.
    unlogged: u64,
    /// Failures in the current streak.
    streak: u64,
    last_logged: Option<Instant>,
}

impl FailureLog {
    /// A failure at `now`: Some(failures since the last logged line, this
    /// one included) when it should be logged.
    pub fn failed(&mut self, now: Instant) -> Option<u64> {
        self.streak += 1;
        self.unlogged += 1;
        let due = match self.last_logged {
            _ if self.streak == 1 => true,
            Some(t) => now.saturating_duration_since(t) >= FAILURE_LOG_EVERY,
            None => true,
        };
        if !due {
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// A success: Some(length of the streak that just ended), if any.
    pub fn succeeded(&mut self) -> Option<u64> {
        let streak = std::mem::take(&mut self.streak);
        self.unlogged = 0;
        self.last_logged = None;
        (streak > 0).then_some(streak)
    }
}

impl Registrar {
    pub fn new(
        identity: Identity,
        namesrv_addr: &str,
        registry: TopicRegistry,
        client: RemotingClient,
        interval: Duration,
    ) -> Self {
        let namesrvs = namesrv_addr
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Registrar {
            credentials: None,
            identity,
            namesrvs,
            registry,
            client,
            interval,
            ha_master: None,
            failures: HashMap::new(),
            fenced: false,
            state_version: 0,
        }
    }

    /// Feeds a slave's `HaClient` the master's `haServerAddr` from each
    /// REGISTER_BROKER response (Java: `BrokerController#doRegisterBrokerAll`
    /// → `updateHaMasterAddress`).
    pub fn with_ha_master(mut self, m: crate::actors::ha::MasterAddress) -> Self {
        self.ha_master = Some(m);
        self
    }

    fn register_request(&self) -> RemotingCommand {
        let mut data_version = self.registry.data_version();
        data_version.state_version = self.state_version;
        let body = RegisterBrokerBody {
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                topic_config_table: self.registry.configs(),
                data_version,
            },
            filter_server_list: Vec::new(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut cmd = RemotingCommand::request(request::REGISTER_BROKER);
        RegisterBrokerRequestHeader {
            broker_name: self.identity.broker_name.clone(),
            broker_addr: self.identity.broker_addr.clone(),
            cluster_name: self.identity.cluster.clone(),
            ha_server_addr: self.identity.ha_server_addr.clone(),
            broker_id: self.identity.broker_id,
            heartbeat_timeout_millis: None,
            enable_acting_master: Some(false),
            compressed: false,
            body_crc32: (crc32fast::hash(&bytes) & 0x7FFF_FFFF) as i32,
        }
        .write_ext(&mut cmd.ext);
        self.sign(&mut cmd, &bytes);
        cmd.with_body(bytes)
    }

    /// Signs with the broker's own credentials (`AclClientRPCHook`).
    fn sign(&self, cmd: &mut RemotingCommand, body: &[u8]) {
        if let Some((ak, sk)) = &self.credentials {
            crate::auth::signature::sign_remoting(&mut cmd.ext, body, ak, sk, None);
        }
    }

    /// Signs what this registrar sends with `credentials`.
    pub fn with_credentials(mut self, credentials: Option<(String, String)>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Starts fenced (controller mode): see [`Unfence`].
    pub fn fenced(mut self, fenced: bool) -> Self {
        self.fenced = fenced;
        self
    }

    fn register_all(&self, ctx: &mut Context<Self>) {
        if self.fenced {
            return;
        }
        for ns in self.namesrvs.clone() {
            let client = self.client.clone();
            let cmd = self.register_request();
            let ha_master = self.ha_master.clone();
            ctx.spawn(
                async move {
                    let outcome = match client.invoke(&ns, cmd, Duration::from_secs(3)).await {
                        Ok(r) if r.code == response::SUCCESS => {
                            tracing::debug!(namesrv = %ns, "registered");
                            let h = RegisterBrokerResponseHeader::from_ext(&r.ext).ok();
                            if let (Some(m), Some(h)) = (ha_master, h) {
                                m.set_broker(h.master_addr);
                                if let Some(a) = h.ha_server_addr {
                                    m.set(Some(a));
                                }
                            }
                            Ok(())
                        }
                        Ok(r) => Err(format!("refused: code {} {:?}", r.code, r.remark)),
                        Err(e) => Err(e.to_string()),
                    };
                    (ns, outcome)
                }
                .into_actor(self)
                .map(|(ns, outcome), act, _| act.note(ns, outcome)),
            );
        }
    }

    /// Logs a registration's outcome, failures rate-limited per name server
    /// ([`FailureLog`]).
    fn note(&mut self, ns: String, outcome: Result<(), String>) {
        let log = self.failures.entry(ns.clone()).or_default();
        match outcome {
            Ok(()) => {
                if let Some(n) = log.succeeded() {
                    tracing::info!(namesrv = %ns, failures = n, "registered again after failures");
                }
            }
            Err(e) => match log.failed(Instant::now()) {
                Some(1) => tracing::warn!(namesrv = %ns, error = %e, "registration failed"),
                Some(n) => tracing::warn!(
                    namesrv = %ns,
                    error = %e,
                    failures = n,
                    "registration still failing ({n} failures since the last warning)"
                ),
                None => tracing::debug!(namesrv = %ns, error = %e, "registration failed"),
            },
        }
    }
}

impl Actor for Registrar {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.register_all(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.register_all(ctx));
        // A slave still looking for its master's HA address asks again
        // every second (`ha::MasterAddress::wanted`).
        if self.ha_master.is_some() && self.interval > crate::actors::ha::MASTER_LOOKUP_INTERVAL {
            ctx.run_interval(crate::actors::ha::MASTER_LOOKUP_INTERVAL, |act, ctx| {
                if act.ha_master.as_ref().is_some_and(|m| m.wanted()) {
                    act.register_all(ctx);
                }
            });
        }
    }
}

crate::inject_panic_handler!(Registrar, "Registrar");

impl Supervised for Registrar {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("Registrar");
        // Nothing to reload: every registration is built from the published
        // topic table, and `started()` registers again at once.
    }
}

/// Register now (after a topic change).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterNow;

impl Handler<RegisterNow> for Registrar {
    type Result = ();
    fn handle(&mut self, _: RegisterNow, ctx: &mut Context<Self>) {
        self.register_all(ctx);
    }
}

/// Unregister from every name server (graceful shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterAll;

impl Handler<UnregisterAll> for Registrar {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: UnregisterAll, _: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        let namesrvs = self.namesrvs.clone();
        let id = self.identity.clone();
        let credentials = self.credentials.clone();
        Box::pin(async move {
            for ns in namesrvs {
                let mut cmd = RemotingCommand::request(request::UNREGISTER_BROKER);
                BrokerIdentityHeader {
                    broker_name: id.broker_name.clone(),
                    broker_addr: id.broker_addr.clone(),
                    cluster_name: id.cluster.clone(),
                    broker_id: Some(id.broker_id),
                }
                .write_ext(&mut cmd.ext);
                if let Some((ak, sk)) = &credentials {
                    crate::auth::signature::sign_remoting(&mut cmd.ext, &[], ak, sk, None);
                }
                if let Err(e) = client.invoke(&ns, cmd, Duration::from_secs(2)).await {
                    tracing::warn!(namesrv = %ns, error = %e, "unregister failed");
                }
            }
        })
    }
}

/// The broker id changed (a role change): register under the new one at
/// once. The same actor keeps registering, so no later registration can
/// carry the old id.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetBrokerId(pub i64);

impl Handler<SetBrokerId> for Registrar {
    type Result = ();
    fn handle(&mut self, m: SetBrokerId, ctx: &mut Context<Self>) {
        self.identity.broker_id = m.0;
        self.register_all(ctx);
    }
}

/// The controller confirmed the broker's role at `master_epoch`
/// (controller mode): registrations start, and carry the epoch as their
/// `stateVersion`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unfence {
    pub master_epoch: i32,
}

impl Handler<Unfence> for Registrar {
    type Result = ();
    fn handle(&mut self, m: Unfence, ctx: &mut Context<Self>) {
        self.state_version = i64::from(m.master_epoch);
        if self.fenced {
            self.fenced = false;
            tracing::info!("role confirmed by the controller: registering with the name servers");
        }
        self.register_all(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_logged_then_one_line_a_minute_with_the_count() {
        let mut log = FailureLog::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(log.failed(at(0)), Some(1), "the first is never hidden");
        for s in 1..60 {
            assert_eq!(log.failed(at(s)), None, "second {s}");
        }
        assert_eq!(log.failed(at(60)), Some(60), "59 hidden + this one");
        assert_eq!(log.failed(at(61)), None);
        assert_eq!(log.succeeded(), Some(62), "the streak's length");
        assert_eq!(log.succeeded(), None, "no streak, nothing to say");
        assert_eq!(log.failed(at(62)), Some(1), "a new streak starts loud");
    }
}
