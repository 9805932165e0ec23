//! Client registration: HEART_BEAT (producers and consumers announce
//! themselves and their subscriptions), UNREGISTER_CLIENT,
//! GET_CONSUMER_LIST_BY_GROUP and CHECK_CLIENT_CONFIG (a SQL92 subscription
//! validated before the client starts pulling with it).

use super::BrokerService;
use crate::actors::broker::clients::{ConsumerIds, Heartbeat, Unregister};
use crate::actors::broker::groups::EnsureGroup;
use crate::actors::broker::registrar::RegisterNow;
use crate::actors::broker::topic::EnsureTopic;
use crate::service::connection::ClientConn;
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{perm, HeartbeatData, SubscriptionData, TopicConfig};
use crate::wire::names;

#[derive(Debug)]
pub struct HeartbeatRequest {
    pub data: HeartbeatData,
    /// The way back to the client (notifications, checks).
    pub connection: ClientConn,
    /// The client's language and version, as the admin tools report them.
    pub language: String,
    pub version: i32,
}

#[derive(Debug, Clone)]
pub struct UnregisterRequest {
    pub client_id: String,
    pub producer_group: Option<String>,
    pub consumer_group: Option<String>,
}

impl BrokerService {
    /// Registers or refreshes a client; a clustering group seen for the
    /// first time gets its subscription group and `%RETRY%` topic.
    pub async fn heartbeat(&self, _caller: &Caller, hb: HeartbeatRequest) -> Result<(), Refusal> {
        let ctx = self.ctx();
        hb.data.check_names()?;
        let new_groups = ctx
            .clients
            .send(Heartbeat {
                channel: hb.connection,
                data: hb.data,
                language: hb.language,
                version: hb.version,
            })
            .await
            .map_err(|_| Refusal::busy("client registry"))?;
        for g in new_groups {
            let _ = ctx.groups.send(EnsureGroup(g.clone())).await;
            let retry = names::retry_topic(&g);
            if ctx.topics.get(&retry).is_none() {
                let cfg = TopicConfig::new(&retry, 1, perm::READ | perm::WRITE);
                let _ = ctx.topic_manager.send(EnsureTopic(cfg)).await;
                ctx.registrar.do_send(RegisterNow);
            }
        }
        Ok(())
    }

    pub async fn unregister(&self, _caller: &Caller, u: UnregisterRequest) -> Result<(), Refusal> {
        self.ctx()
            .clients
            .send(Unregister {
                client_id: u.client_id,
                producer_group: u.producer_group,
                consumer_group: u.consumer_group,
            })
            .await
            .map_err(|_| Refusal::busy("client registry"))
    }

    /// The client ids of a consumer group's live members, sorted.
    pub async fn consumer_ids(
        &self,
        _caller: &Caller,
        group: &str,
    ) -> Result<Vec<String>, Refusal> {
        let ids = self
            .ctx()
            .clients
            .send(ConsumerIds(group.to_owned()))
            .await
            .map_err(|_| Refusal::busy("client registry"))?;
        if ids.is_empty() {
            return Err(Refusal::Failed(format!(
                "no consumer for this group, {group}"
            )));
        }
        Ok(ids)
    }

    /// CHECK_CLIENT_CONFIG: a TAG subscription always passes; SQL92 needs
    /// `enablePropertyFilter` and must parse.
    pub fn check_client_config(
        &self,
        _caller: &Caller,
        group: &str,
        sub: Option<&SubscriptionData>,
    ) -> Result<(), Refusal> {
        let Some(sub) = sub else {
            return Ok(());
        };
        let ty = sub.expression_type.as_deref().unwrap_or("TAG");
        if ty.is_empty() || ty.eq_ignore_ascii_case("TAG") {
            return Ok(());
        }
        if !self.ctx().cfg.enable_property_filter {
            return Err(Refusal::Failed(format!(
                "The broker does not support consumer to filter message by {ty}"
            )));
        }
        crate::filter::parse(&sub.sub_string)
            .map(|_| ())
            .map_err(|e| super::pull::sql_parse_error(&sub.sub_string, group, &e))
    }
}
