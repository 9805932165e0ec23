//! What the gRPC layer needs from brokers, independent of where they are:
//! LOCAL ([`super::local`]) calls the service layer in this process,
//! CLUSTER ([`super::cluster`]) sends remoting requests to the brokers the
//! name servers know. Every call answers `Result<_, Refusal>`, so status
//! codes come from one mapping (`Refusal::grpc_code`).

use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::sync::Arc;

use crate::service::connection::ClientConn;
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{
    ConsumerData, HeartbeatData, ProducerData, SubscriptionData, TopicRouteData,
};
use crate::wire::message::MessageExt;

pub type Reply<T> = BoxFuture<'static, Result<T, Refusal>>;

/// A topic's route and its `message.type` attribute.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub route: TopicRouteData,
    /// `NORMAL`, `FIFO`, `DELAY`, `TRANSACTION`, `MIXED`; None when the
    /// topic carries no attribute (then NORMAL).
    pub message_type: Option<String>,
}

/// One message to store (SEND_MESSAGE_V2 as the Java proxy builds it).
#[derive(Debug, Clone)]
pub struct SendCmd {
    pub topic: String,
    /// Sorted write queues are picked by this key's hash when set (FIFO),
    /// else round robin.
    pub shard_key: Option<String>,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    /// The encoded properties string (`k\u1v\u2...`).
    pub properties: String,
    pub body: Bytes,
    pub reconsume_times: i32,
}

/// A stored message.
#[derive(Debug, Clone)]
pub struct Sent {
    pub broker_name: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    /// The message's `UNIQ_KEY`.
    pub msg_id: String,
    /// Whether the flush / replication deadline was met (false: the code
    /// is a persistence timeout, the message is stored).
    pub flush_ok: bool,
}

/// An END_TRANSACTION for a half message the proxy sent.
#[derive(Debug, Clone)]
pub struct EndTx {
    pub broker_name: String,
    pub producer_group: String,
    pub half_queue_offset: i64,
    pub half_offset: i64,
    /// 8 commit, 12 rollback, 0 unknown (`MessageSysFlag`).
    pub commit_or_rollback: i32,
    pub from_check: bool,
    pub msg_id: String,
    pub transaction_id: String,
}

/// A gRPC client registered as producer or consumer.
#[derive(Debug, Clone)]
pub struct Registration {
    pub client_id: String,
    pub producer_groups: Vec<String>,
    pub consumer: Option<ConsumerReg>,
    /// `x-mq-language` as the remoting registry shows it.
    pub language: String,
    pub connection: ClientConn,
}

/// A client that said goodbye (NotifyClientTermination).
#[derive(Debug, Clone)]
pub struct Unregistration {
    pub client_id: String,
    pub producer_groups: Vec<String>,
    pub consumer_group: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ConsumerReg {
    pub group: String,
    /// CONSUME_ACTIVELY (simple) or CONSUME_PASSIVELY (push).
    pub consume_type: &'static str,
    pub subscriptions: Vec<SubscriptionData>,
}

/// The consumer group's settings the client is told (retry and order).
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    pub retry_max_times: i32,
    pub orderly: bool,
}

/// A POP as the Java proxy sends it (POP_MESSAGE).
#[derive(Debug, Clone)]
pub struct PopCmd {
    pub broker_name: String,
    pub group: String,
    pub topic: String,
    pub max_msgs: i32,
    pub invisible_ms: i64,
    pub poll_ms: i64,
    pub order: bool,
    pub expression_type: String,
    pub expression: String,
    pub attempt_id: Option<String>,
}

/// Popped messages with their broker handles (`POP_CK` form).
#[derive(Debug, Default)]
pub struct Popped {
    pub messages: Vec<(MessageExt, String)>,
    /// Nothing found within the poll time.
    pub timed_out: bool,
    /// The broker's long-polling table was full.
    pub polling_full: bool,
}

/// ACK_MESSAGE / CHANGE_MESSAGE_INVISIBLETIME on the handle's broker.
#[derive(Debug, Clone)]
pub struct HandleCmd {
    pub broker_name: String,
    pub group: String,
    /// The real topic (the retry topic for retried messages).
    pub topic: String,
    pub queue_id: i32,
    pub offset: i64,
    /// The broker handle (`extraInfo`).
    pub extra_info: String,
}

/// CONSUMER_SEND_MSG_BACK straight to the DLQ.
#[derive(Debug, Clone)]
pub struct DlqCmd {
    pub broker_name: String,
    pub group: String,
    pub commit_log_offset: i64,
    pub origin_msg_id: String,
    pub origin_topic: String,
}

pub trait Backend: Send + Sync + 'static {
    /// Authentication and authorization, when on.
    fn auth(&self) -> Option<Arc<crate::auth::Auth>>;
    fn topic(&self, caller: Caller, topic: String) -> Reply<TopicInfo>;
    /// Only the topic's `message.type` (what every send checks; backends
    /// answer it without building a route, or from a cache).
    fn message_type(&self, caller: Caller, topic: String) -> Reply<Option<String>> {
        let info = self.topic(caller, topic);
        Box::pin(async move { info.await.map(|i| i.message_type) })
    }
    fn send(&self, caller: Caller, cmd: SendCmd) -> Reply<Sent>;
    fn end_transaction(&self, caller: Caller, cmd: EndTx) -> Reply<()>;
    fn register(&self, caller: Caller, reg: Registration) -> Reply<()>;
    fn unregister(&self, caller: Caller, u: Unregistration) -> Reply<()>;
    fn group(&self, caller: Caller, group: String) -> Reply<GroupSettings>;
    fn pop(&self, caller: Caller, cmd: PopCmd) -> Reply<Popped>;
    fn ack(&self, caller: Caller, cmd: HandleCmd) -> Reply<()>;
    /// Acks several handles of one broker at once (BATCH_ACK_MESSAGE);
    /// `topic` is the topic the client names (every entry's).
    fn batch_ack(&self, caller: Caller, topic: String, cmds: Vec<HandleCmd>) -> Reply<()>;
    /// Answers the new broker handle.
    fn change_invisible(&self, caller: Caller, cmd: HandleCmd, invisible_ms: i64) -> Reply<String>;
    fn to_dlq(&self, caller: Caller, cmd: DlqCmd) -> Reply<()>;
}

/// The HEART_BEAT a registration stands for, under `client_id` (the gRPC
/// client's own in LOCAL mode, the proxy's in CLUSTER mode): producers by
/// group, consumers clustering from the last offset.
pub fn heartbeat_data(reg: &Registration, client_id: &str) -> HeartbeatData {
    HeartbeatData {
        client_id: client_id.to_owned(),
        producer_data_set: reg
            .producer_groups
            .iter()
            .map(|g| ProducerData {
                group_name: g.clone(),
            })
            .collect(),
        consumer_data_set: reg
            .consumer
            .iter()
            .map(|c| ConsumerData {
                group_name: c.group.clone(),
                consume_type: c.consume_type.into(),
                message_model: "CLUSTERING".into(),
                consume_from_where: "CONSUME_FROM_LAST_OFFSET".into(),
                subscription_data_set: c.subscriptions.clone(),
                unit_mode: false,
            })
            .collect(),
        ..Default::default()
    }
}

/// The write queue of a FIFO message: Guava's `consistentHash` of the
/// group's Java hash over the queues (`MessageQueueSelector` in the proxy),
/// so one group always lands on one queue while the queue count holds.
pub fn fifo_queue_index(group: &str, queues: usize) -> usize {
    let mut state = i64::from(crate::wire::message::java_hash(group));
    let mut next_double = || {
        state = state
            .wrapping_mul(2_862_933_555_777_941_757)
            .wrapping_add(1);
        f64::from(((state as u64) >> 33) as i32 + 1) / 2f64.powi(31)
    };
    let mut candidate: i64 = 0;
    loop {
        let next = ((candidate + 1) as f64 / next_double()) as i64;
        if next >= 0 && next < queues as i64 {
            candidate = next;
        } else {
            return candidate as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_groups_keep_their_queue_and_spread() {
        assert_eq!(fifo_queue_index("g", 1), 0);
        let a = fifo_queue_index("order-1", 8);
        assert_eq!(a, fifo_queue_index("order-1", 8));
        let used: std::collections::BTreeSet<usize> = (0..64)
            .map(|i| fifo_queue_index(&format!("k{i}"), 8))
            .collect();
        assert!(used.len() > 4 && used.iter().all(|q| *q < 8));
    }
}
