//! The transaction producer (`TransactionMQProducer`): a half message
//! (`TRAN_MSG=true`, `PGROUP`, sysFlag PREPARED) is sent, the application's
//! local transaction runs, and END_TRANSACTION (one-way) commits (8),
//! rolls back (12) or leaves it unknown (0) — with the half message's
//! queue offset, its CommitLog offset (decoded from the offset msgId) and
//! its `UNIQ_KEY`. Brokers ask about unresolved half messages with
//! CHECK_TRANSACTION_STATE (one-way, body = the half message record); the
//! check listener answers and the reply is an END_TRANSACTION with
//! `fromTransactionCheck=true`.

use std::sync::Arc;

use bytes::Bytes;

use crate::wire::codes::request;
use crate::wire::message::{decode_record, keys, MessageExt};
use crate::wire::msgid::decode_offset_msg_id;
use crate::wire::{ExtFields, RemotingCommand};

use super::message::Message;
use super::producer::{Producer, SendResult, SendStatus};
use super::remoting::ClientError;
use super::route::Routes;

/// The local transaction's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTransactionState {
    Commit,
    Rollback,
    /// Not decided yet: the broker will ask again later.
    Unknown,
}

impl LocalTransactionState {
    /// `commitOrRollback` of END_TRANSACTION.
    pub fn wire_code(self) -> i32 {
        match self {
            LocalTransactionState::Commit => 8,
            LocalTransactionState::Rollback => 12,
            LocalTransactionState::Unknown => 0,
        }
    }
}

/// Answers the broker's question about a half message.
pub type CheckListener = Arc<dyn Fn(&MessageExt) -> LocalTransactionState + Send + Sync>;

/// The half message's send result and the local transaction's outcome.
#[derive(Debug, Clone)]
pub struct TransactionSendResult {
    pub send: SendResult,
    pub state: LocalTransactionState,
}

/// Offsets and ids END_TRANSACTION needs.
struct EndTx<'a> {
    topic: &'a str,
    tran_state_table_offset: i64,
    commit_log_offset: i64,
    msg_id: &'a str,
    transaction_id: &'a str,
    from_check: bool,
    state: LocalTransactionState,
}

async fn end_transaction(producer: &Producer, addr: &str, e: EndTx<'_>) -> Result<(), ClientError> {
    let mut ext = ExtFields::default();
    ext.insert("topic", e.topic);
    ext.insert("producerGroup", producer.group());
    ext.insert(
        "tranStateTableOffset",
        e.tran_state_table_offset.to_string(),
    );
    ext.insert("commitLogOffset", e.commit_log_offset.to_string());
    ext.insert("commitOrRollback", e.state.wire_code().to_string());
    ext.insert("fromTransactionCheck", e.from_check.to_string());
    ext.insert("msgId", e.msg_id);
    ext.insert("transactionId", e.transaction_id);
    let mut cmd = RemotingCommand::request(request::END_TRANSACTION);
    cmd.ext = ext;
    cmd.remark = Some(format!("{:?}", e.state));
    producer.routes().client().invoke_oneway(addr, cmd).await
}

/// A producer of transactional messages.
pub struct TransactionProducer {
    producer: Producer,
    owns_routes: bool,
}

impl TransactionProducer {
    /// A transaction producer with its own connections to `namesrv`.
    pub fn new(group: &str, namesrv: &str, checker: CheckListener) -> Self {
        let mut t = Self::with_producer(
            Producer::with_routes(group, Routes::connect(namesrv)),
            checker,
        );
        t.owns_routes = true;
        t
    }

    /// Wraps `producer` and registers the check handler on its client.
    pub fn with_producer(producer: Producer, checker: CheckListener) -> Self {
        install_check_handler(&producer, checker);
        TransactionProducer {
            producer,
            owns_routes: false,
        }
    }

    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Sends `msg` as a half message, runs `local` with the send result,
    /// and ends the transaction with its answer. A half message the broker
    /// did not fully accept is rolled back without running `local`.
    pub async fn send_in_transaction<F>(
        &self,
        msg: Message,
        local: F,
    ) -> Result<TransactionSendResult, ClientError>
    where
        F: FnOnce(&SendResult) -> LocalTransactionState,
    {
        let mut msg = msg
            .with_property(keys::TRAN_MSG, "true")
            .with_property(keys::PGROUP, self.producer.group());
        msg.remove_property(keys::DELAY);
        let send = self.producer.send(msg).await?;
        let state = if send.status == SendStatus::SendOk {
            local(&send)
        } else {
            LocalTransactionState::Rollback
        };
        let commit_log_offset = decode_offset_msg_id(&send.offset_msg_id)
            .map(|(_, off)| off)
            .ok_or_else(|| {
                ClientError::Invalid(format!("bad offset msgId {}", send.offset_msg_id))
            })?;
        let addr = self.producer.routes().addr_of(&send.queue).await?;
        let tx_id = send
            .transaction_id
            .clone()
            .unwrap_or_else(|| send.msg_id.clone());
        end_transaction(
            &self.producer,
            &addr,
            EndTx {
                topic: &send.queue.topic,
                tran_state_table_offset: send.queue_offset,
                commit_log_offset,
                msg_id: &send.msg_id,
                transaction_id: &tx_id,
                from_check: false,
                state,
            },
        )
        .await?;
        Ok(TransactionSendResult { send, state })
    }

    /// Unregisters and, if it owns them, closes the connections.
    pub async fn shutdown(&self) {
        let owner = check_owner(&self.producer);
        self.producer.routes().client().remove_code_handlers(&owner);
        self.producer.shutdown().await;
        if self.owns_routes {
            self.producer.routes().client().shutdown();
        }
    }
}

fn check_owner(p: &Producer) -> String {
    format!("tx:{}:{}", p.client_id(), p.group())
}

/// Handles CHECK_TRANSACTION_STATE for `producer`'s group.
fn install_check_handler(producer: &Producer, checker: CheckListener) {
    let owner = check_owner(producer);
    let p = producer.clone();
    producer.routes().client().add_code_handler(
        &owner,
        request::CHECK_TRANSACTION_STATE,
        Arc::new(move |addr, req| {
            let body: Bytes = req.body_bytes();
            let msg = match decode_record(&body, 0, false) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable transaction check");
                    return None;
                }
            };
            if msg.property(keys::PGROUP) != Some(p.group()) {
                return None;
            }
            let num = |k: &str| req.ext.get(k).and_then(|v| v.trim().parse::<i64>().ok());
            let (Some(tsto), Some(clo)) = (num("tranStateTableOffset"), num("commitLogOffset"))
            else {
                return None;
            };
            let msg_id = msg
                .uniq_key()
                .or(req.ext.get("msgId"))
                .unwrap_or_default()
                .to_string();
            let tx_id = req
                .ext
                .get("transactionId")
                .map(str::to_owned)
                .unwrap_or_else(|| msg_id.clone());
            let topic = msg.topic.clone();
            let (p, checker) = (p.clone(), checker.clone());
            tokio::spawn(async move {
                let state = match tokio::task::spawn_blocking(move || checker(&msg)).await {
                    Ok(s) => s,
                    Err(_) => LocalTransactionState::Unknown,
                };
                let r = end_transaction(
                    &p,
                    &addr,
                    EndTx {
                        topic: &topic,
                        tran_state_table_offset: tsto,
                        commit_log_offset: clo,
                        msg_id: &msg_id,
                        transaction_id: &tx_id,
                        from_check: true,
                        state,
                    },
                )
                .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "cannot answer a transaction check");
                }
            });
            None
        }),
    );
}
