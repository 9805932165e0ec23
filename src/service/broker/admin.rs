//! Administration: topics (UPDATE_AND_CREATE_TOPIC, DELETE_TOPIC_IN_BROKER,
//! GET_ALL_TOPIC_CONFIG, GET_TOPIC_CONFIG), subscription groups
//! (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
//! DELETE_SUBSCRIPTIONGROUP), the broker's configuration and runtime info.

use super::BrokerService;
use crate::actors::broker::commit_log::ForgetTopic;
use crate::actors::broker::groups::{
    AllGroups, DeleteGroup, SubscriptionGroupConfig, SubscriptionGroupFile, UpsertGroup,
};
use crate::actors::broker::offsets::ForgetTopicOffsets;
use crate::actors::broker::registrar::RegisterNow;
use crate::actors::broker::topic::{DeleteTopic, TopicConfigFile, UpsertTopic};
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{DataVersion, TopicConfig};
use crate::wire::names;

/// Most queues a topic may have (Java's admin tools cap it the same way).
const MAX_QUEUES: i32 = 1024;

/// Figures GET_BROKER_RUNTIME_INFO reports.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    pub commit_log_min_offset: i64,
    pub commit_log_max_offset: i64,
    /// Whether the master-only services run (RocketMQ's `brokerActive`).
    pub master_running: bool,
}

impl BrokerService {
    /// Creates or updates a topic, then tells the name servers.
    pub async fn upsert_topic(&self, _caller: &Caller, config: TopicConfig) -> Result<(), Refusal> {
        let ctx = self.ctx();
        names::check_topic(&config.topic_name)?;
        let queues_ok = |n: i32| (1..=MAX_QUEUES).contains(&n);
        if !queues_ok(config.read_queue_nums) || !queues_ok(config.write_queue_nums) {
            return Err(Refusal::InvalidParameter(format!(
                "queue numbers must be between 1 and {MAX_QUEUES}"
            )));
        }
        ctx.topic_manager.send(UpsertTopic(config)).await??;
        ctx.registrar.do_send(RegisterNow);
        Ok(())
    }

    /// Deletes a topic's queues, its offsets and its queue-offset counters.
    pub async fn delete_topic(&self, _caller: &Caller, topic: &str) -> Result<(), Refusal> {
        let ctx = self.ctx();
        names::check_topic(topic)?;
        ctx.topic_manager
            .send(DeleteTopic(topic.to_owned()))
            .await?;
        ctx.commit_log.do_send(ForgetTopic(topic.to_owned()));
        ctx.offsets.do_send(ForgetTopicOffsets(topic.to_owned()));
        ctx.registrar.do_send(RegisterNow);
        Ok(())
    }

    pub fn all_topics(&self, _caller: &Caller) -> TopicConfigFile {
        let ctx = self.ctx();
        TopicConfigFile {
            topic_config_table: ctx.topics.configs(),
            data_version: ctx.topics.data_version(),
        }
    }

    pub fn topic_config(&self, _caller: &Caller, topic: &str) -> Result<TopicConfig, Refusal> {
        match self.ctx().topics.get(topic) {
            Some(t) => Ok(t.config.clone()),
            None => Err(Refusal::TopicNotExist(format!(
                "No topic in this broker. topic: {topic}"
            ))),
        }
    }

    /// The effective configuration (with the current role and broker id)
    /// as properties text, and the topic table's data version
    /// (GET_BROKER_CONFIG answers both).
    pub fn broker_config(&self, _caller: &Caller) -> (String, DataVersion) {
        let ctx = self.ctx();
        let cfg = ctx.role.effective_config(&ctx.cfg);
        (cfg.print(), ctx.topics.data_version())
    }

    pub fn runtime_info(&self, _caller: &Caller) -> RuntimeInfo {
        let ctx = self.ctx();
        RuntimeInfo {
            commit_log_min_offset: ctx.reader.min_offset(),
            commit_log_max_offset: ctx.reader.max_offset(),
            master_running: ctx.services.master_running(),
        }
    }

    pub async fn upsert_group(
        &self,
        _caller: &Caller,
        cfg: SubscriptionGroupConfig,
    ) -> Result<(), Refusal> {
        names::check_group(&cfg.group_name)?;
        tracing::info!(group = %cfg.group_name, "subscription group updated");
        self.ctx()
            .groups
            .send(UpsertGroup(cfg))
            .await
            .map_err(|_| Refusal::busy("group manager"))
    }

    /// Deletes a group's config; Ok whether or not it existed.
    pub async fn delete_group(&self, _caller: &Caller, group: &str) -> Result<(), Refusal> {
        names::check_group(group)?;
        self.ctx()
            .groups
            .send(DeleteGroup(group.to_owned()))
            .await
            .map_err(|_| Refusal::busy("group manager"))?;
        tracing::info!(%group, "subscription group deleted");
        Ok(())
    }

    pub async fn all_groups(&self, _caller: &Caller) -> Result<SubscriptionGroupFile, Refusal> {
        self.ctx()
            .groups
            .send(AllGroups)
            .await
            .map_err(|_| Refusal::busy("group manager"))
    }
}
