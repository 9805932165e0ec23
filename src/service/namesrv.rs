//! The name server's capabilities as typed calls on [`NamesrvService`]:
//! broker registration and liveness (REGISTER_BROKER, UNREGISTER_BROKER,
//! QUERY_DATA_VERSION, BROKER_HEARTBEAT), routes (GET_ROUTEINFO_BY_TOPIC,
//! GET_BROKER_CLUSTER_INFO, topic lists, REGISTER/DELETE_TOPIC_IN_NAMESRV)
//! and the KV config (PUT/GET/DELETE_KV_CONFIG, GET_KVLIST_BY_NAMESPACE).

use actix::Addr;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::actors::namesrv::route_table::{
    DeleteTopic, GetClusterInfo, GetRoute, Kv, KvResult, ListTopics, RegisterBroker,
    RegisterResult, RegisterTopic, RouteTable, TouchBroker, UnregisterBroker,
};
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{ClusterInfo, DataVersion, QueueData, TopicConfig, TopicRouteData};
use crate::wire::names;

/// A broker announcing itself and its topics.
#[derive(Debug, Clone)]
pub struct BrokerRegistration {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: i64,
    pub ha_server_addr: String,
    /// How long the broker may stay silent (`heartbeatTimeoutMillis`).
    pub timeout: Option<Duration>,
    pub data_version: DataVersion,
    pub topics: BTreeMap<String, TopicConfig>,
    pub enable_acting_master: bool,
}

fn route_table_busy(_: actix::MailboxError) -> Refusal {
    Refusal::Failed("route table unavailable".into())
}

/// The name server's services over its route table. Cheap to clone.
#[derive(Clone)]
pub struct NamesrvService {
    table: Addr<RouteTable>,
}

impl NamesrvService {
    pub fn new(table: Addr<RouteTable>) -> NamesrvService {
        NamesrvService { table }
    }

    /// Registers (or refreshes) a broker; the answer names its group's
    /// master and HA address. Topics whose names break the rules are left
    /// out of the routes, leniently, as the rest registers.
    pub async fn register_broker(
        &self,
        caller: &Caller,
        mut r: BrokerRegistration,
    ) -> Result<RegisterResult, Refusal> {
        names::check_cluster_name(&r.cluster)?;
        names::check_broker_name(&r.broker_name)?;
        r.topics.retain(|name, _| {
            let valid = names::check_topic(name).is_ok();
            if !valid {
                tracing::warn!(topic = %name.escape_debug(), broker = %r.broker_name, "topic with an invalid name not routed");
            }
            valid
        });
        self.table
            .send(RegisterBroker {
                cluster: r.cluster,
                broker_name: r.broker_name,
                broker_addr: r.broker_addr,
                broker_id: r.broker_id,
                ha_server_addr: r.ha_server_addr,
                timeout: r.timeout,
                data_version: r.data_version,
                topics: r.topics,
                channel_id: caller.connection,
                enable_acting_master: r.enable_acting_master,
            })
            .await
            .map_err(route_table_busy)
    }

    pub async fn unregister_broker(
        &self,
        _caller: &Caller,
        broker_addr: String,
        broker_id: Option<i64>,
    ) -> Result<(), Refusal> {
        self.table
            .send(UnregisterBroker {
                broker_addr,
                broker_id,
            })
            .await
            .map_err(route_table_busy)
    }

    /// Marks the broker alive; with a data version, tells whether its topic
    /// table changed since the last registration (and the stored version).
    pub async fn touch_broker(
        &self,
        _caller: &Caller,
        broker_addr: String,
        data_version: Option<DataVersion>,
    ) -> Result<(bool, Option<DataVersion>), Refusal> {
        self.table
            .send(TouchBroker {
                broker_addr,
                data_version,
            })
            .await
            .map_err(route_table_busy)
    }

    pub async fn route(&self, _caller: &Caller, topic: &str) -> Result<TopicRouteData, Refusal> {
        self.table
            .send(GetRoute {
                topic: topic.to_owned(),
            })
            .await
            .map_err(route_table_busy)?
            .ok_or_else(|| {
                Refusal::TopicNotExist(format!(
                    "No topic route info in name server for the topic: {topic}"
                ))
            })
    }

    pub async fn cluster_info(&self, _caller: &Caller) -> Result<ClusterInfo, Refusal> {
        self.table
            .send(GetClusterInfo)
            .await
            .map_err(route_table_busy)
    }

    /// Every routed topic, or a cluster's.
    pub async fn topics(
        &self,
        _caller: &Caller,
        cluster: Option<String>,
    ) -> Result<Vec<String>, Refusal> {
        self.table
            .send(ListTopics { cluster })
            .await
            .map_err(route_table_busy)
    }

    pub async fn delete_topic(
        &self,
        _caller: &Caller,
        topic: String,
        cluster: Option<String>,
    ) -> Result<(), Refusal> {
        self.table
            .send(DeleteTopic { topic, cluster })
            .await
            .map_err(route_table_busy)
    }

    pub async fn register_topic(
        &self,
        _caller: &Caller,
        topic: String,
        queue_datas: Vec<QueueData>,
    ) -> Result<(), Refusal> {
        names::check_topic(&topic)?;
        self.table
            .send(RegisterTopic { topic, queue_datas })
            .await
            .map_err(route_table_busy)
    }

    /// A KV config operation; QUERY_NOT_FOUND when the item is missing.
    pub async fn kv(&self, _caller: &Caller, op: Kv) -> Result<KvResult, Refusal> {
        match self.table.send(op).await.map_err(route_table_busy)? {
            KvResult::Value(None) | KvResult::Table(None) => {
                Err(Refusal::QueryNotFound("No config item".into()))
            }
            r => Ok(r),
        }
    }
}
