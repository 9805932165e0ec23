//! End a transaction (END_TRANSACTION): verify the half message the
//! producer names and let the `Transactions` actor commit or roll it back.

use super::BrokerService;
use crate::actors::broker::store_path::HALF_TOPIC;
use crate::actors::broker::transaction::{EndError, EndTransaction};
use crate::service::{Caller, Refusal};
use crate::wire::message::{self, keys};

/// The producer's (or a check answer's) decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionDecision {
    Commit,
    Rollback,
    /// TRANSACTION_NOT_TYPE: nothing to do yet.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct EndTransactionRequest {
    pub producer_group: String,
    /// Queue offset of the half message (`tranStateTableOffset`).
    pub half_queue_offset: i64,
    /// Commit-log offset of the half message.
    pub half_offset: i64,
    pub decision: TransactionDecision,
    /// An answer to the broker's CHECK_TRANSACTION_STATE.
    pub from_check: bool,
    pub msg_id: String,
}

impl BrokerService {
    pub async fn end_transaction(
        &self,
        _caller: &Caller,
        h: EndTransactionRequest,
    ) -> Result<(), Refusal> {
        let ctx = self.ctx();
        if let Some(r) = ctx.role.refuse_end_transaction() {
            return Err(r);
        }
        // Controller mode: the commit / rollback record obeys the send
        // path's guards (`send_controller_mode`): a master that lost the
        // controller writes nothing, and too small a SyncStateSet is
        // IN_SYNC_REPLICAS_NOT_ENOUGH (SYSTEM_ERROR), as Java's
        // EndTransactionProcessor answers. Like Java it does not wait for
        // the slaves: clients send END_TRANSACTION one-way.
        if let Some(auto) = &ctx.ha.auto {
            if auto.fenced() {
                return Err(Refusal::ServiceNotAvailable(
                    "service not available now: the master has lost the controller".into(),
                ));
            }
            if auto.in_sync_count() < ctx.cfg.ha.min_in_sync_replicas {
                return Err(Refusal::Failed("in-sync replicas not enough".into()));
            }
        }
        let commit = match h.decision {
            TransactionDecision::Commit => true,
            TransactionDecision::Rollback => false,
            TransactionDecision::Unknown => return Ok(()),
        };
        let Some(half) = ctx
            .reader
            .read_record(h.half_offset)
            .and_then(|b| message::decode_record(&b, 0, false).ok())
        else {
            return Err(Refusal::Failed(
                "Find prepared transaction message failed".into(),
            ));
        };
        if half.topic != HALF_TOPIC {
            return Err(Refusal::Failed("the message is not a half message".into()));
        }
        if !h.producer_group.is_empty()
            && half
                .property(keys::PGROUP)
                .is_some_and(|g| g != h.producer_group)
        {
            return Err(Refusal::Failed("The producer group wrong".into()));
        }
        if half.queue_offset != h.half_queue_offset {
            return Err(Refusal::Failed(
                "The transaction state table offset wrong".into(),
            ));
        }
        // A producer that set its own check-immunity window must end the
        // transaction within it; later only the broker's check may resolve it.
        if !h.from_check {
            if let Some(secs) = half
                .property(keys::CHECK_IMMUNITY_TIME_IN_SECONDS)
                .and_then(|v| v.trim().parse::<i64>().ok())
            {
                let immunity = (secs * 1000).max(ctx.cfg.transaction_time_out as i64);
                if crate::wire::now_ms() - half.born_timestamp > immunity {
                    return Err(Refusal::IllegalOperation(format!(
                        "the transaction ended after its check-immunity time ({secs} s); only a check may resolve it now"
                    )));
                }
            }
        }
        match ctx
            .services
            .transactions
            .send(EndTransaction { half, commit })
            .await
        {
            Ok(Ok(outcome)) => {
                tracing::debug!(?outcome, msg_id = %h.msg_id, "transaction ended");
                Ok(())
            }
            Ok(Err(EndError::Store(e))) => Err(super::retry::store_refusal(e)),
            Ok(Err(e)) => Err(Refusal::Failed(e.to_string())),
            Err(_) => Err(Refusal::busy("transaction service")),
        }
    }
}
