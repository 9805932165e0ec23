//! POP consumption (RocketMQ 5.x): POP_MESSAGE, ACK_MESSAGE,
//! BATCH_ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME. The broker hands out
//! messages that stay invisible for a while; what is not acked in time is
//! revived through the group's retry topic (`PopReviveService`). Callers:
//! the remoting POP processors and the gRPC proxy in LOCAL mode.

use super::BrokerService;
use crate::service::{Caller, Refusal};

/// `PopMessageRequestHeader`, typed.
#[derive(Debug, Clone)]
pub struct PopRequest {
    pub group: String,
    pub topic: String,
    /// -1: any readable queue.
    pub queue_id: i32,
    pub max_msgs: u32,
    pub invisible_ms: u64,
    /// Long polling, 0 = none.
    pub poll_ms: u64,
    pub order: bool,
    /// "TAG" | "SQL92".
    pub expression_type: String,
    pub expression: String,
    /// `ConsumeInitMode`: 0 MIN, 1 MAX.
    pub init_mode: i32,
    pub attempt_id: Option<String>,
}

/// One message handed out by a POP.
#[derive(Debug, Clone)]
pub struct PoppedMessage {
    /// The decoded message, reconsume times set.
    pub message: crate::wire::message::MessageExt,
    /// The extraInfo / `POP_CK` handle, RocketMQ's format.
    pub receipt_handle: String,
}

/// What a POP returns; no messages and no error means "no new message"
/// after the poll time.
#[derive(Debug, Clone, Default)]
pub struct PopReply {
    pub messages: Vec<PoppedMessage>,
    pub pop_time: i64,
    pub invisible_ms: u64,
    pub rest_num: i64,
}

/// `AckMessageRequestHeader`, typed.
#[derive(Debug, Clone)]
pub struct AckRequest {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub receipt_handle: String,
    pub offset: i64,
}

/// `ChangeInvisibleTimeRequestHeader`, typed.
#[derive(Debug, Clone)]
pub struct ChangeInvisibleRequest {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub receipt_handle: String,
    pub offset: i64,
    pub invisible_ms: u64,
}

#[derive(Debug, Clone)]
pub struct ChangeInvisibleReply {
    /// The new handle; the old one is dead.
    pub receipt_handle: String,
    pub pop_time: i64,
    pub invisible_ms: u64,
}

fn not_yet() -> Refusal {
    Refusal::Unsupported("POP is being built".into())
}

impl BrokerService {
    pub async fn pop(&self, _caller: &Caller, _req: PopRequest) -> Result<PopReply, Refusal> {
        Err(not_yet())
    }

    pub async fn ack(&self, _caller: &Caller, _req: AckRequest) -> Result<(), Refusal> {
        Err(not_yet())
    }

    pub async fn batch_ack(&self, _caller: &Caller, _reqs: Vec<AckRequest>) -> Result<(), Refusal> {
        Err(not_yet())
    }

    pub async fn change_invisible(
        &self,
        _caller: &Caller,
        _req: ChangeInvisibleRequest,
    ) -> Result<ChangeInvisibleReply, Refusal> {
        Err(not_yet())
    }
}
