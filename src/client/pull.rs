//! Pull-side client calls (`PullAPIWrapper`): PULL_MESSAGE with optional
//! long polling, consumer-offset query/commit, queue min/max offsets,
//! search by timestamp, and the consumer heartbeat.
//!
//! There is no rebalancing here: the caller picks the queues (the CLI pulls
//! all read queues of a topic).

use std::time::Duration;

use bytes::Bytes;

use crate::wire::bodies::{
    parse_tags, ConsumerData, HeartbeatData, MessageQueue, SubscriptionData,
};
use crate::wire::codes::{request, response};
use crate::wire::headers::offset::{
    OffsetResponseHeader, QueryConsumerOffsetRequestHeader, QueueRequestHeader,
    SearchOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use crate::wire::headers::pull::{pull_flag, PullMessageRequestHeader, PullMessageResponseHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::message::{decode_records, sysflag, tags_code, MessageExt};
use crate::wire::{now_ms, RemotingCommand};

use super::remoting::{expect_code, ClientError};
use super::route::Routes;

/// Extra client-side wait on top of the broker's long-poll hold.
const LONG_POLL_SLACK: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    Found,
    NoNewMsg,
    NoMatched,
    OffsetIllegal,
}

#[derive(Debug, Clone)]
pub struct PullResult {
    pub status: PullStatus,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    /// Messages whose tags match the expression (re-filtered client-side).
    pub messages: Vec<MessageExt>,
}

/// Which end of the timestamp range SEARCH_OFFSET_BY_TIMESTAMP returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Boundary {
    #[default]
    Lower,
    Upper,
}

/// Decompresses a zlib-compressed body (sysFlag COMPRESSED, algorithm ZLIB
/// or unspecified), up to `maxMessageSize` (a body that would inflate past
/// it is left compressed: a "zip bomb" costs nothing). Other algorithms
/// are left as they are.
pub fn inflate_body(m: &mut MessageExt) {
    if m.sys_flag & sysflag::COMPRESSED == 0 {
        return;
    }
    let algo = m.sys_flag & sysflag::COMPRESSION_MASK;
    if algo != 0 && algo != sysflag::COMPRESSION_ZLIB {
        return;
    }
    let limit = crate::wire::inflate::MAX_INFLATED_MESSAGE;
    match crate::wire::inflate::inflate_capped(&m.body, limit) {
        Ok(out) => {
            m.body = Bytes::from(out);
            m.sys_flag &= !sysflag::COMPRESSED;
        }
        Err(e) => {
            tracing::warn!(error = %e, offset = m.commit_log_offset, "compressed body left as it is")
        }
    }
}

/// Keeps messages whose tag is in `tags` (empty = all), as Java re-filters.
fn filter_tags(msgs: &mut Vec<MessageExt>, tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    msgs.retain(|m| m.tags().is_some_and(|t| tags.iter().any(|s| s == t)));
}

/// Everything about one pull request.
#[derive(Debug, Clone)]
pub struct PullSpec<'a> {
    pub mq: &'a MessageQueue,
    pub offset: i64,
    pub max: i32,
    /// Long-poll hold time (SUSPEND flag).
    pub suspend: Option<Duration>,
    /// Client timeout; default: suspend + 15 s, or the call timeout.
    pub timeout: Option<Duration>,
    pub expression: &'a str,
    /// `TAG` or `SQL92`.
    pub expression_type: &'a str,
    /// Offset to commit with the pull (COMMIT_OFFSET flag).
    pub commit_offset: Option<i64>,
    pub sub_version: i64,
}

/// Pull and offset calls for one consumer group.
#[derive(Clone)]
pub struct PullConsumer {
    group: String,
    routes: Routes,
}

impl PullConsumer {
    pub fn new(group: &str, namesrv: &str) -> Self {
        Self::with_routes(group, Routes::connect(namesrv))
    }

    pub fn with_routes(group: &str, routes: Routes) -> Self {
        PullConsumer {
            group: group.to_string(),
            routes,
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The readable queues of `topic`.
    pub async fn read_queues(&self, topic: &str) -> Result<Vec<MessageQueue>, ClientError> {
        Ok(self.routes.route(topic).await?.read_queues.clone())
    }

    /// Pulls up to `max` messages from `mq` starting at `offset`. With
    /// `suspend_timeout` the broker may hold the request that long waiting
    /// for new messages. `sub_expression` is a TAG expression (`*`, `A||B`).
    pub async fn pull(
        &self,
        mq: &MessageQueue,
        offset: i64,
        max: i32,
        suspend_timeout: Option<Duration>,
        sub_expression: &str,
    ) -> Result<PullResult, ClientError> {
        self.pull_with(&PullSpec {
            mq,
            offset,
            max,
            suspend: suspend_timeout,
            timeout: None,
            expression: sub_expression,
            expression_type: "TAG",
            commit_offset: None,
            sub_version: now_ms(),
        })
        .await
    }

    /// A pull with every knob: expression type (TAG re-filtered here,
    /// SQL92 left to the broker), piggy-backed offset commit, timeout.
    pub async fn pull_with(&self, spec: &PullSpec<'_>) -> Result<PullResult, ClientError> {
        let mq = spec.mq;
        let mut sys_flag = pull_flag::SUBSCRIPTION;
        if spec.suspend.is_some() {
            sys_flag |= pull_flag::SUSPEND;
        }
        if spec.commit_offset.is_some() {
            sys_flag |= pull_flag::COMMIT_OFFSET;
        }
        let header = PullMessageRequestHeader {
            consumer_group: self.group.clone(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            queue_offset: spec.offset,
            max_msg_nums: spec.max,
            sys_flag,
            commit_offset: spec.commit_offset.unwrap_or(0),
            suspend_timeout_millis: spec.suspend.map_or(0, |d| d.as_millis() as i64),
            subscription: Some(normalize_expr(spec.expression)),
            sub_version: spec.sub_version,
            expression_type: Some(spec.expression_type.to_string()),
            max_msg_bytes: None,
            request_source: None,
            broker_name: Some(mq.broker_name.clone()),
        };
        let mut cmd = RemotingCommand::request(request::PULL_MESSAGE);
        cmd.ext = header.to_ext();
        let timeout = match (spec.timeout, spec.suspend) {
            (Some(t), _) => t,
            (None, Some(s)) => s + LONG_POLL_SLACK,
            (None, None) => self.routes.default_timeout(),
        };
        let addr = self.routes.pull_addr_of(mq).await?;
        let resp = match self.routes.client().invoke(&addr, cmd, timeout).await {
            Ok(r) => r,
            Err(e) => {
                // Java's pull callback `onException`: the next pull asks
                // the master again, through a fresh route.
                self.routes.suggest(mq, 0);
                self.routes.broker_failed(&mq.broker_name);
                return Err(e);
            }
        };
        let status = match resp.code {
            response::SUCCESS => PullStatus::Found,
            response::PULL_NOT_FOUND => PullStatus::NoNewMsg,
            response::PULL_RETRY_IMMEDIATELY => PullStatus::NoMatched,
            response::PULL_OFFSET_MOVED => PullStatus::OffsetIllegal,
            _ => return Err(ClientError::remote(&resp)),
        };
        let h = PullMessageResponseHeader::from_ext(&resp.ext)?;
        self.routes.suggest(mq, h.suggest_which_broker_id);
        let mut messages = Vec::new();
        if status == PullStatus::Found {
            messages = decode_records(&resp.body_bytes())?;
            messages.iter_mut().for_each(inflate_body);
            if spec.expression_type.eq_ignore_ascii_case("TAG") {
                filter_tags(&mut messages, &parse_tags(spec.expression));
            }
        }
        Ok(PullResult {
            status,
            next_begin_offset: h.next_begin_offset,
            min_offset: h.min_offset,
            max_offset: h.max_offset,
            messages,
        })
    }

    /// The committed offset of `group` on `mq`; `None` if never committed.
    pub async fn query_offset(
        &self,
        group: &str,
        mq: &MessageQueue,
    ) -> Result<Option<i64>, ClientError> {
        let h = QueryConsumerOffsetRequestHeader {
            consumer_group: group.to_string(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            set_zero_if_not_found: Some(false),
        };
        let resp = self
            .call(mq, request::QUERY_CONSUMER_OFFSET, h.to_ext())
            .await?;
        match resp.code {
            response::SUCCESS => Ok(Some(OffsetResponseHeader::from_ext(&resp.ext)?.offset)),
            response::QUERY_NOT_FOUND => Ok(None),
            _ => Err(ClientError::remote(&resp)),
        }
    }

    /// Commits `offset` for `group` on `mq` and waits for the broker.
    pub async fn update_offset(
        &self,
        group: &str,
        mq: &MessageQueue,
        offset: i64,
    ) -> Result<(), ClientError> {
        let h = Self::update_header(group, mq, offset);
        let resp = self
            .call(mq, request::UPDATE_CONSUMER_OFFSET, h.to_ext())
            .await?;
        expect_code(resp, &[response::SUCCESS]).map(|_| ())
    }

    /// Commits `offset` one-way, as the Java client's periodic persist does.
    pub async fn update_offset_oneway(
        &self,
        group: &str,
        mq: &MessageQueue,
        offset: i64,
    ) -> Result<(), ClientError> {
        let mut cmd = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET);
        cmd.ext = Self::update_header(group, mq, offset).to_ext();
        let addr = self.routes.addr_of(mq).await?;
        self.routes.client().invoke_oneway(&addr, cmd).await
    }

    fn update_header(
        group: &str,
        mq: &MessageQueue,
        offset: i64,
    ) -> UpdateConsumerOffsetRequestHeader {
        UpdateConsumerOffsetRequestHeader {
            consumer_group: group.to_string(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            commit_offset: offset,
        }
    }

    /// The offset the next message in `mq` will get.
    pub async fn max_offset(&self, mq: &MessageQueue) -> Result<i64, ClientError> {
        self.queue_offset(mq, request::GET_MAX_OFFSET).await
    }

    /// The smallest offset still stored in `mq`.
    pub async fn min_offset(&self, mq: &MessageQueue) -> Result<i64, ClientError> {
        self.queue_offset(mq, request::GET_MIN_OFFSET).await
    }

    async fn queue_offset(&self, mq: &MessageQueue, code: i32) -> Result<i64, ClientError> {
        let h = QueueRequestHeader {
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            committed: None,
        };
        let resp = expect_code(self.call(mq, code, h.to_ext()).await?, &[response::SUCCESS])?;
        Ok(OffsetResponseHeader::from_ext(&resp.ext)?.offset)
    }

    /// The first offset whose store time is ≥ `timestamp_ms` (lower bound).
    pub async fn search_offset(
        &self,
        mq: &MessageQueue,
        timestamp_ms: i64,
    ) -> Result<i64, ClientError> {
        self.search_offset_bounded(mq, timestamp_ms, Boundary::Lower)
            .await
    }

    pub async fn search_offset_bounded(
        &self,
        mq: &MessageQueue,
        timestamp_ms: i64,
        boundary: Boundary,
    ) -> Result<i64, ClientError> {
        let h = SearchOffsetRequestHeader {
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            timestamp: timestamp_ms,
            boundary_type: Some(match boundary {
                Boundary::Lower => "LOWER".into(),
                Boundary::Upper => "UPPER".into(),
            }),
        };
        let resp = self
            .call(mq, request::SEARCH_OFFSET_BY_TIMESTAMP, h.to_ext())
            .await?;
        let resp = expect_code(resp, &[response::SUCCESS])?;
        Ok(OffsetResponseHeader::from_ext(&resp.ext)?.offset)
    }

    /// Registers `group` as a pull consumer of `subscriptions` (topic, TAG
    /// expression) with every broker serving those topics.
    pub async fn heartbeat(
        &self,
        group: &str,
        client_id: &str,
        subscriptions: &[(String, String)],
    ) -> Result<(), ClientError> {
        let body = heartbeat_body(group, client_id, subscriptions);
        let mut addrs = Vec::new();
        for (topic, _) in subscriptions {
            for a in self.routes.route(topic).await?.master_addrs() {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
        }
        for addr in addrs {
            let cmd = RemotingCommand::request(request::HEART_BEAT).with_body(body.clone());
            let resp = self
                .routes
                .client()
                .invoke(&addr, cmd, self.routes.default_timeout())
                .await?;
            expect_code(resp, &[response::SUCCESS])?;
        }
        Ok(())
    }

    async fn call(
        &self,
        mq: &MessageQueue,
        code: i32,
        ext: crate::wire::ExtFields,
    ) -> Result<RemotingCommand, ClientError> {
        let mut cmd = RemotingCommand::request(code);
        cmd.ext = ext;
        let addr = self.routes.addr_of(mq).await?;
        let r = self
            .routes
            .client()
            .invoke(&addr, cmd, self.routes.default_timeout())
            .await;
        if r.is_err() {
            self.routes.broker_failed(&mq.broker_name);
        }
        r
    }
}

fn normalize_expr(expr: &str) -> String {
    let e = expr.trim();
    if e.is_empty() {
        "*".into()
    } else {
        e.to_string()
    }
}

/// The HEART_BEAT body for a pull (CONSUME_ACTIVELY) consumer.
pub fn heartbeat_body(group: &str, client_id: &str, subscriptions: &[(String, String)]) -> Bytes {
    let version = now_ms();
    let subs = subscriptions
        .iter()
        .map(|(topic, expr)| {
            let tags = parse_tags(expr);
            SubscriptionData {
                class_filter_mode: false,
                topic: topic.clone(),
                sub_string: normalize_expr(expr),
                code_set: tags.iter().map(|t| tags_code(Some(t))).collect(),
                tags_set: tags,
                sub_version: version,
                expression_type: Some("TAG".into()),
            }
        })
        .collect();
    let hb = HeartbeatData {
        client_id: client_id.to_string(),
        producer_data_set: Vec::new(),
        consumer_data_set: vec![ConsumerData {
            group_name: group.to_string(),
            consume_type: "CONSUME_ACTIVELY".into(),
            message_model: "CLUSTERING".into(),
            consume_from_where: "CONSUME_FROM_LAST_OFFSET".into(),
            subscription_data_set: subs,
            unit_mode: false,
        }],
        heartbeat_fingerprint: 0,
        without_sub: false,
    };
    Bytes::from(serde_json::to_vec(&hb).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_json_shape() {
        let b = heartbeat_body("g", "1.2.3.4@1", &[("T".into(), "TagA || TagB".into())]);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let c = &v["consumerDataSet"][0];
        assert_eq!(v["clientID"], "1.2.3.4@1");
        assert_eq!(c["consumeType"], "CONSUME_ACTIVELY");
        let s = &c["subscriptionDataSet"][0];
        assert_eq!(s["tagsSet"][1], "TagB");
        assert_eq!(s["codeSet"][0], 2598919);
    }
}
