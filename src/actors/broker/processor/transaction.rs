//! Remoting adapter of END_TRANSACTION (37). Usually one-way: the session
//! then drops the response.

use super::{bad_header, error, ok, refused};
use crate::service::broker::{BrokerService, EndTransactionRequest, TransactionDecision};
use crate::service::Caller;
use crate::wire::codes::response as rs;
use crate::wire::headers::consume::EndTransactionRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::message::sysflag;
use crate::wire::RemotingCommand;

pub async fn end_transaction(
    svc: &BrokerService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let h = match EndTransactionRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let decision = match h.commit_or_rollback {
        sysflag::TRANSACTION_COMMIT_TYPE => TransactionDecision::Commit,
        sysflag::TRANSACTION_ROLLBACK_TYPE => TransactionDecision::Rollback,
        sysflag::TRANSACTION_NOT_TYPE => TransactionDecision::Unknown,
        other => {
            return error(
                req,
                rs::SYSTEM_ERROR,
                format!("illegal commitOrRollback {other}"),
            )
        }
    };
    let request = EndTransactionRequest {
        producer_group: h.producer_group,
        half_queue_offset: h.tran_state_table_offset,
        half_offset: h.commit_log_offset,
        decision,
        from_check: h.from_transaction_check.unwrap_or(false),
        msg_id: h.msg_id,
    };
    match svc.end_transaction(caller, request).await {
        Ok(()) => ok(req),
        Err(r) => refused(req, r),
    }
}
