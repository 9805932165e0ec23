//! Consumer-group administration over the shared [`Routes`] context, as
//! `mqadmin` does it: consume stats (GET_CONSUME_STATS per broker of the
//! group's retry topic), connections (GET_CONSUMER_CONNECTION_LIST),
//! running info (GET_CONSUMER_RUNNING_INFO, forwarded by the broker),
//! reset offsets by time (INVOKE_BROKER_TO_RESET_OFFSET, falling back to
//! committing searched offsets when no consumer is online) and
//! subscription-group configs (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).

use std::collections::BTreeMap;

use serde::Deserialize;

pub use crate::wire::bodies::SubscriptionGroupConfig;
use crate::wire::bodies::{lenient_i64, MessageQueue, SubscriptionData};
use crate::wire::codes::{request, response};
use crate::wire::headers::client::ConsumerGroupHeader;
use crate::wire::headers::consume::{
    GetConsumeStatsRequestHeader, GetConsumerRunningInfoRequestHeader, ResetOffsetRequestHeader,
};
use crate::wire::headers::CommandHeader;
use crate::wire::json::from_fastjson;
use crate::wire::{ExtFields, RemotingCommand, WireError};

use super::admin::{Admin, TopicTarget};
use super::pull::PullConsumer;
use super::push::offsets::{field_value, parse_mq_map, parse_mq_offsets};
use super::remoting::{expect_code, ClientError};

/// One queue's progress (Java `OffsetWrapper`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffsetWrapper {
    #[serde(deserialize_with = "lenient_i64")]
    pub broker_offset: i64,
    #[serde(deserialize_with = "lenient_i64")]
    pub consumer_offset: i64,
    #[serde(deserialize_with = "lenient_i64")]
    pub last_timestamp: i64,
}

/// A group's progress over all its queues (Java `ConsumeStats`).
#[derive(Debug, Clone, Default)]
pub struct ConsumeStats {
    pub offsets: BTreeMap<MessageQueue, OffsetWrapper>,
    pub consume_tps: f64,
}

impl ConsumeStats {
    /// Parses a ConsumeStats body (fastjson object keys).
    pub fn parse(body: &[u8]) -> ConsumeStats {
        let text = String::from_utf8_lossy(body);
        let offsets = field_value(&text, "offsetTable")
            .map(|v| parse_mq_map(v).0)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(mq, v)| serde_json::from_value(v).ok().map(|w| (mq, w)))
            .collect();
        let consume_tps = field_value(&text, "consumeTps")
            .and_then(|v| {
                serde_json::Deserializer::from_str(v)
                    .into_iter::<f64>()
                    .next()
                    .and_then(Result::ok)
            })
            .unwrap_or(0.0);
        ConsumeStats {
            offsets,
            consume_tps,
        }
    }

    pub fn diff_total(&self) -> i64 {
        self.offsets
            .values()
            .map(|w| w.broker_offset - w.consumer_offset)
            .sum()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection {
    pub client_id: String,
    pub client_addr: String,
    pub language: serde_json::Value,
    #[serde(deserialize_with = "lenient_i64")]
    pub version: i64,
}

/// Who is connected for a group (Java `ConsumerConnection`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerConnection {
    pub connection_set: Vec<Connection>,
    pub subscription_table: BTreeMap<String, SubscriptionData>,
    pub consume_type: serde_json::Value,
    pub message_model: serde_json::Value,
    pub consume_from_where: serde_json::Value,
}

impl Admin {
    async fn call(
        &self,
        addr: &str,
        code: i32,
        ext: ExtFields,
    ) -> Result<RemotingCommand, ClientError> {
        let mut cmd = RemotingCommand::request(code);
        cmd.ext = ext;
        let routes = self.routes();
        routes
            .client()
            .invoke(addr, cmd, routes.default_timeout())
            .await
    }

    /// Brokers that know `group`: those of its retry topic, else every
    /// master of every cluster.
    pub async fn group_brokers(&self, group: &str) -> Result<Vec<String>, ClientError> {
        if let Ok(r) = self
            .routes()
            .route(&crate::wire::names::retry_topic(group))
            .await
        {
            let a = r.master_addrs();
            if !a.is_empty() {
                return Ok(a);
            }
        }
        let info = self.cluster_info().await?;
        Ok(info
            .broker_addr_table
            .values()
            .filter_map(|b| b.master_addr().map(str::to_owned))
            .collect())
    }

    /// The group's progress, merged over its brokers.
    pub async fn consume_stats(&self, group: &str) -> Result<ConsumeStats, ClientError> {
        let mut out = ConsumeStats::default();
        let mut last_err = None;
        let h = GetConsumeStatsRequestHeader {
            consumer_group: group.to_string(),
            topic: None,
        };
        for addr in self.group_brokers(group).await? {
            match self
                .call(&addr, request::GET_CONSUME_STATS, h.to_ext())
                .await
            {
                Ok(r) if r.code == response::SUCCESS => {
                    let s = ConsumeStats::parse(&r.body_bytes());
                    out.consume_tps += s.consume_tps;
                    out.offsets.extend(s.offsets);
                }
                Ok(r) => last_err = Some(ClientError::remote(&r)),
                Err(e) => last_err = Some(e),
            }
        }
        match (out.offsets.is_empty(), last_err) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    /// The group's connections, from the first broker that knows them.
    pub async fn consumer_connection(
        &self,
        group: &str,
    ) -> Result<ConsumerConnection, ClientError> {
        let h = ConsumerGroupHeader {
            consumer_group: group.to_string(),
        };
        let mut last_err = ClientError::NoRoute(format!("no broker for group {group}"));
        for addr in self.group_brokers(group).await? {
            match self
                .call(&addr, request::GET_CONSUMER_CONNECTION_LIST, h.to_ext())
                .await
            {
                Ok(r) if r.code == response::SUCCESS => {
                    return from_fastjson(&r.body_bytes())
                        .map_err(|e| WireError::BadBody(format!("ConsumerConnection: {e}")).into())
                }
                Ok(r) => last_err = ClientError::remote(&r),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// A consumer's ConsumerRunningInfo JSON, forwarded by a broker.
    pub async fn consumer_running_info(
        &self,
        group: &str,
        client_id: &str,
    ) -> Result<String, ClientError> {
        let h = GetConsumerRunningInfoRequestHeader {
            consumer_group: group.to_string(),
            client_id: client_id.to_string(),
            jstack_enable: Some(false),
        };
        let mut last_err = ClientError::NoRoute(format!("no broker for group {group}"));
        for addr in self.group_brokers(group).await? {
            match self
                .call(&addr, request::GET_CONSUMER_RUNNING_INFO, h.to_ext())
                .await
            {
                Ok(r) if r.code == response::SUCCESS => {
                    return Ok(String::from_utf8_lossy(&r.body_bytes()).into_owned())
                }
                Ok(r) => last_err = ClientError::remote(&r),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// Resets `group`'s offsets on `topic` to the first message stored at
    /// or after `timestamp` (-1: the end). Online consumers are told by
    /// their broker; with none online the offsets are committed directly.
    pub async fn reset_offset_by_time(
        &self,
        topic: &str,
        group: &str,
        timestamp: i64,
        force: bool,
    ) -> Result<Vec<(MessageQueue, i64)>, ClientError> {
        let route = self.routes().route(topic).await?;
        let h = ResetOffsetRequestHeader {
            topic: topic.to_string(),
            group: group.to_string(),
            timestamp,
            is_force: force,
            queue_id: Some(-1),
            offset: None,
        };
        let mut out = Vec::new();
        let mut offline = false;
        for addr in route.master_addrs() {
            let r = self
                .call(&addr, request::INVOKE_BROKER_TO_RESET_OFFSET, h.to_ext())
                .await?;
            if r.code == response::CONSUMER_NOT_ONLINE {
                offline = true;
                continue;
            }
            let r = expect_code(r, &[response::SUCCESS])?;
            let text = String::from_utf8_lossy(&r.body_bytes()).into_owned();
            out.extend(parse_mq_offsets(&text, "offsetTable"));
        }
        if offline && out.is_empty() {
            return self
                .reset_offline(topic, group, timestamp, &route.read_queues)
                .await;
        }
        out.sort();
        Ok(out)
    }

    async fn reset_offline(
        &self,
        topic: &str,
        group: &str,
        timestamp: i64,
        queues: &[MessageQueue],
    ) -> Result<Vec<(MessageQueue, i64)>, ClientError> {
        let pull = PullConsumer::with_routes(group, self.routes().clone());
        let mut out = Vec::new();
        for mq in queues.iter().filter(|q| q.topic == topic) {
            let off = if timestamp < 0 {
                pull.max_offset(mq).await?
            } else {
                pull.search_offset(mq, timestamp).await?
            };
            pull.update_offset(group, mq, off).await?;
            out.push((mq.clone(), off));
        }
        Ok(out)
    }

    /// Creates or updates a subscription group on the target brokers.
    pub async fn update_sub_group(
        &self,
        target: &TopicTarget,
        cfg: &SubscriptionGroupConfig,
    ) -> Result<Vec<String>, ClientError> {
        let addrs = self.target_addrs(target).await?;
        let body = serde_json::to_vec(cfg).unwrap_or_default();
        for addr in &addrs {
            let cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(body.clone());
            let routes = self.routes();
            let r = routes
                .client()
                .invoke(addr, cmd, routes.default_timeout())
                .await?;
            expect_code(r, &[response::SUCCESS])?;
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_stats_body() {
        let b = br#"{"consumeTps":1.5,"offsetTable":{{"brokerName":"b","queueId":1,"topic":"T"}:{"brokerOffset":10,"consumerOffset":4,"lastTimestamp":0,"pullOffset":4}}}"#;
        let s = ConsumeStats::parse(b);
        assert_eq!(s.consume_tps, 1.5);
        assert_eq!(s.diff_total(), 6);
        assert_eq!(s.offsets.keys().next().unwrap().queue_id, 1);
    }
}
