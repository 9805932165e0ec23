//! `GroupManager`: subscription-group configs (`config/subscriptionGroup.json`
//! in RocketMQ's shape), created automatically when a new consumer group
//! first heartbeats (`autoCreateSubscriptionGroup`).

use actix::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::wire::bodies::DataVersion;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub consume_broadcast_enable: bool,
    pub consume_message_orderly: bool,
    pub retry_queue_nums: i32,
    pub retry_max_times: i32,
    pub broker_id: i64,
    pub which_broker_when_consume_slowly: i64,
    pub notify_consumer_ids_changed_enable: bool,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        SubscriptionGroupConfig {
            group_name: String::new(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            consume_message_orderly: false,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupFile {
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
    pub data_version: DataVersion,
}

pub struct GroupManager {
    file: SubscriptionGroupFile,
    path: PathBuf,
    auto_create: bool,
}

impl GroupManager {
    pub fn load(path: PathBuf, auto_create: bool) -> GroupManager {
        let file = crate::store::metadata::read_json(&path)
            .ok()
            .flatten()
            .unwrap_or_default();
        GroupManager {
            file,
            path,
            auto_create,
        }
    }

    fn persist(&self) {
        if let Err(e) = crate::store::metadata::write_json_atomic(&self.path, &self.file) {
            tracing::error!(error = %e, "cannot persist subscriptionGroup.json");
        }
    }
}

impl Actor for GroupManager {
    type Context = Context<Self>;
}

impl Supervised for GroupManager {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("GroupManager");
    }
}

/// Returns the group's config, creating it when allowed.
#[derive(Message)]
#[rtype(result = "Option<SubscriptionGroupConfig>")]
pub struct EnsureGroup(pub String);

impl Handler<EnsureGroup> for GroupManager {
    type Result = Option<SubscriptionGroupConfig>;
    fn handle(&mut self, m: EnsureGroup, _: &mut Context<Self>) -> Self::Result {
        if let Some(g) = self.file.subscription_group_table.get(&m.0) {
            return Some(g.clone());
        }
        if !self.auto_create {
            return None;
        }
        let g = SubscriptionGroupConfig {
            group_name: m.0.clone(),
            ..Default::default()
        };
        self.file.subscription_group_table.insert(m.0, g.clone());
        self.file.data_version.bump();
        self.persist();
        Some(g)
    }
}
