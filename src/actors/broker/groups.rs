//! `GroupManager`: subscription-group configs (`config/subscriptionGroup.json`
//! in RocketMQ's shape), created automatically when a new consumer group
//! first heartbeats (`autoCreateSubscriptionGroup`), or by the admin
//! requests (UPDATE_AND_CREATE / GET_ALL / DELETE_SUBSCRIPTIONGROUP). The
//! table is published in [`GroupTable`] so the pull path reads
//! `consumeEnable` / `consumeBroadcastEnable` without a mailbox hop.
//!
//! Writes go through a [`MetaWriter`] (serialization and fsync on its own
//! thread, latest snapshot wins). A restart reloads the file once every
//! submitted snapshot is on disk, and republishes the table.

use actix::prelude::*;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::store::metadata::MetaWriter;

use crate::wire::bodies::DataVersion;

pub use crate::wire::bodies::SubscriptionGroupConfig;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupFile {
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
    pub data_version: DataVersion,
}

/// Read-mostly snapshot of the subscription-group table.
#[derive(Clone, Default)]
pub struct GroupTable(Arc<RwLock<HashMap<String, SubscriptionGroupConfig>>>);

impl GroupTable {
    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.0.read().ok()?.get(group).cloned()
    }
}

pub struct GroupManager {
    file: SubscriptionGroupFile,
    writer: MetaWriter,
    auto_create: bool,
    table: GroupTable,
}

impl GroupManager {
    pub fn load(path: PathBuf, auto_create: bool) -> GroupManager {
        let file = crate::store::metadata::read_json(&path)
            .ok()
            .flatten()
            .unwrap_or_default();
        let g = GroupManager {
            file,
            writer: MetaWriter::new(path),
            auto_create,
            table: GroupTable::default(),
        };
        g.publish();
        g
    }

    /// Shares the published snapshot (the pull path keeps a clone).
    pub fn with_table(mut self, table: GroupTable) -> Self {
        self.table = table;
        self.publish();
        self
    }

    fn publish(&self) {
        if let Ok(mut t) = self.table.0.write() {
            *t = self
                .file
                .subscription_group_table
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
    }

    fn persist(&self) {
        self.publish();
        self.writer.submit(self.file.clone());
    }
}

impl Actor for GroupManager {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::armed::fire(
            "GroupManager",
            crate::actors::supervisor::armed::Point::Started,
        );
    }
}

impl Supervised for GroupManager {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("GroupManager");
        // Every change was submitted when it was made: once the writer is
        // idle the file is the whole table.
        self.writer.flush();
        match crate::store::metadata::read_json::<SubscriptionGroupFile>(self.writer.path()) {
            Ok(f) => self.file = f.unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "cannot reload subscriptionGroup.json; table kept")
            }
        }
        self.publish();
    }
}

crate::inject_panic_handler!(GroupManager, "GroupManager");

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

/// Creates or replaces a group's config (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpsertGroup(pub SubscriptionGroupConfig);

impl Handler<UpsertGroup> for GroupManager {
    type Result = ();
    fn handle(&mut self, m: UpsertGroup, _: &mut Context<Self>) {
        self.file
            .subscription_group_table
            .insert(m.0.group_name.clone(), m.0);
        self.file.data_version.bump();
        self.persist();
    }
}

/// Removes a group's config; true when it existed.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct DeleteGroup(pub String);

impl Handler<DeleteGroup> for GroupManager {
    type Result = bool;
    fn handle(&mut self, m: DeleteGroup, _: &mut Context<Self>) -> bool {
        let existed = self.file.subscription_group_table.remove(&m.0).is_some();
        if existed {
            self.file.data_version.bump();
            self.persist();
        }
        existed
    }
}

/// The whole table, as GET_ALL_SUBSCRIPTIONGROUP_CONFIG returns it.
#[derive(Message)]
#[rtype(result = "SubscriptionGroupFile")]
pub struct AllGroups;

impl Handler<AllGroups> for GroupManager {
    type Result = MessageResult<AllGroups>;
    fn handle(&mut self, _: AllGroups, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.file.clone())
    }
}

/// A slave's copy of its master's subscription groups (Java's
/// `SlaveSynchronize#syncSubscriptionGroupConfig`): every group the master
/// has is set to the master's config; the table is written once if any
/// changed.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ApplyMasterGroups(pub BTreeMap<String, SubscriptionGroupConfig>);

impl Handler<ApplyMasterGroups> for GroupManager {
    type Result = usize;
    fn handle(&mut self, m: ApplyMasterGroups, _: &mut Context<Self>) -> usize {
        let mut changed = 0;
        for (name, cfg) in m.0 {
            if self.file.subscription_group_table.get(&name) != Some(&cfg) {
                self.file.subscription_group_table.insert(name, cfg);
                changed += 1;
            }
        }
        if changed > 0 {
            self.file.data_version.bump();
            self.persist();
        }
        changed
    }
}
