//! The broker's capabilities as typed calls on [`BrokerService`], one file
//! per family. The remoting processors (`actors/broker/processor`) and the
//! gRPC proxy's LOCAL mode both call these; nothing here knows a frame.
//!
//! | file | capability | RocketMQ request codes served through it |
//! |---|---|---|
//! | `send.rs` | send (single, batch) | SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE |
//! | `retry.rs` | send-back to retry / DLQ | CONSUMER_SEND_MSG_BACK |
//! | `pull.rs` | pull with long polling | PULL_MESSAGE, LITE_PULL_MESSAGE |
//! | `query.rs` | query by key, view by offset | QUERY_MESSAGE, VIEW_MESSAGE_BY_ID |
//! | `offsets.rs` | consumer and queue offsets | QUERY/UPDATE_CONSUMER_OFFSET, GET_MIN/MAX_OFFSET, GET_EARLIEST_MSG_STORETIME, SEARCH_OFFSET_BY_TIMESTAMP |
//! | `clients.rs` | client registration | HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP, CHECK_CLIENT_CONFIG |
//! | `locks.rs` | ordered-consumption queue locks | LOCK_BATCH_MQ, UNLOCK_BATCH_MQ |
//! | `transaction.rs` | end a transaction | END_TRANSACTION |
//! | `admin.rs` | topics, groups, configs, stats | UPDATE_AND_CREATE_TOPIC, DELETE_TOPIC_IN_BROKER, GET_*_CONFIG, subscription groups, GET_BROKER_RUNTIME_INFO |
//! | `pop*.rs` | POP consumption: pop (`pop.rs`, `pop_read.rs`), acks and invisible time (`pop_ack.rs`), peek / notification / polling info (`pop_peek.rs`), redelivery (`pop_revive.rs`) | POP_MESSAGE, ACK_MESSAGE, BATCH_ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME, PEEK_MESSAGE, NOTIFICATION, POLLING_INFO |
//! | `progress.rs` | consumer progress | GET_CONSUME_STATS, GET_CONSUMER_CONNECTION_LIST, GET_CONSUMER_RUNNING_INFO, INVOKE_BROKER_TO_RESET_OFFSET |

mod admin;
mod auth_admin;
mod clients;
mod locks;
mod offsets;
mod pop;
mod pop_ack;
mod pop_peek;
mod pop_read;
mod pop_revive;
mod progress;
mod pull;
mod query;
mod replication;
mod retry;
mod send;
mod transaction;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::actors::broker::processor::BrokerCtx;

pub use admin::*;
pub use auth_admin::*;
pub use clients::*;
pub use locks::*;
pub use offsets::*;
pub use pop::*;
pub use pop_peek::*;
pub use progress::*;
pub use pull::*;
pub use query::*;
pub use retry::*;
pub use send::*;
pub use transaction::*;

/// The broker's services over its actors. Cheap to clone.
#[derive(Clone)]
pub struct BrokerService {
    ctx: Arc<BrokerCtx>,
}

impl BrokerService {
    pub fn new(ctx: Arc<BrokerCtx>) -> BrokerService {
        BrokerService { ctx }
    }

    /// The broker's shared context (configuration, actor addresses).
    pub fn ctx(&self) -> &BrokerCtx {
        &self.ctx
    }
}
