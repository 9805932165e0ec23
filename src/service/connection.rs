//! The broker's way back to a connected client. RocketMQ brokers call their
//! clients four ways — NOTIFY_CONSUMER_IDS_CHANGED (40),
//! CHECK_TRANSACTION_STATE (39), GET_CONSUMER_RUNNING_INFO (307),
//! CONSUME_MESSAGE_DIRECTLY (309) — plus RESET_CONSUMER_CLIENT_OFFSET (220).
//! [`ClientConnection`] is that set as a trait: a remoting session
//! implements it (`actors/broker/processor/connection.rs`), a gRPC
//! telemetry stream will too, and the client registry holds the trait
//! object, never a concrete transport.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::Refusal;
use crate::wire::bodies::MessageQueue;
use crate::wire::headers::consume::{
    CheckTransactionStateRequestHeader, ConsumeMessageDirectlyRequestHeader,
    GetConsumerRunningInfoRequestHeader, ResetOffsetRequestHeader,
};

/// A connected client, shared by the registry and whoever calls it.
pub type ClientConn = Arc<dyn ClientConnection>;

pub trait ClientConnection: Send + Sync + std::fmt::Debug + 'static {
    /// Unique per connection for the process's life.
    fn id(&self) -> u64;
    fn remote(&self) -> SocketAddr;
    fn is_open(&self) -> bool;

    /// NOTIFY_CONSUMER_IDS_CHANGED, one-way: the group's membership changed.
    /// False when the connection is gone.
    fn notify_consumer_ids_changed(&self, group: &str) -> bool;

    /// CHECK_TRANSACTION_STATE, one-way: the producer answers later with
    /// END_TRANSACTION. `message` is the half message as a stored record
    /// under its real topic.
    fn check_transaction_state(
        &self,
        header: CheckTransactionStateRequestHeader,
        message: Bytes,
    ) -> bool;

    /// RESET_CONSUMER_CLIENT_OFFSET, one-way: the group's new offsets.
    fn reset_offset(
        &self,
        header: ResetOffsetRequestHeader,
        offsets: &[(MessageQueue, i64)],
    ) -> bool;

    /// GET_CONSUMER_RUNNING_INFO: the consumer's `ConsumerRunningInfo` JSON.
    fn consumer_running_info(
        &self,
        header: GetConsumerRunningInfoRequestHeader,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, Refusal>>;

    /// CONSUME_MESSAGE_DIRECTLY: the consumer consumes `message` (a stored
    /// record) at once and answers with `ConsumeMessageDirectlyResult` JSON.
    fn consume_message_directly(
        &self,
        header: ConsumeMessageDirectlyRequestHeader,
        message: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, Refusal>>;
}
