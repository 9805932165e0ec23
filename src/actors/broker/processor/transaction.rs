//! END_TRANSACTION (37), protocol.md §2.7: verify the half message named by
//! the request and let the `Transactions` actor commit or roll it back.
//! Usually one-way: the session then drops the response.

use super::{bad_header, error, ok, BrokerCtx};
use crate::actors::broker::store_path::HALF_TOPIC;
use crate::actors::broker::transaction::{EndError, EndTransaction};
use crate::wire::codes::response as rs;
use crate::wire::headers::consume::EndTransactionRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::message::{self, keys, sysflag};
use crate::wire::RemotingCommand;

pub async fn end_transaction(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    if let Some(r) = ctx.role.refuse_end_transaction() {
        return r.answer(req);
    }
    let h = match EndTransactionRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let commit = match h.commit_or_rollback {
        sysflag::TRANSACTION_COMMIT_TYPE => true,
        sysflag::TRANSACTION_ROLLBACK_TYPE => false,
        sysflag::TRANSACTION_NOT_TYPE => return ok(req),
        other => {
            return error(
                req,
                rs::SYSTEM_ERROR,
                format!("illegal commitOrRollback {other}"),
            )
        }
    };
    let Some(half) = ctx
        .reader
        .read_record(h.commit_log_offset)
        .and_then(|b| message::decode_record(&b, 0, false).ok())
    else {
        return error(
            req,
            rs::SYSTEM_ERROR,
            "Find prepared transaction message failed",
        );
    };
    if half.topic != HALF_TOPIC {
        return error(req, rs::SYSTEM_ERROR, "the message is not a half message");
    }
    if !h.producer_group.is_empty()
        && half
            .property(keys::PGROUP)
            .is_some_and(|g| g != h.producer_group)
    {
        return error(req, rs::SYSTEM_ERROR, "The producer group wrong");
    }
    if half.queue_offset != h.tran_state_table_offset {
        return error(
            req,
            rs::SYSTEM_ERROR,
            "The transaction state table offset wrong",
        );
    }
    // A producer that set its own check-immunity window must end the
    // transaction within it; later only the broker's check may resolve it.
    if !h.from_transaction_check.unwrap_or(false) {
        if let Some(secs) = half
            .property(keys::CHECK_IMMUNITY_TIME_IN_SECONDS)
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            let immunity = (secs * 1000).max(ctx.cfg.transaction_time_out as i64);
            if crate::wire::now_ms() - half.born_timestamp > immunity {
                return error(
                    req,
                    rs::ILLEGAL_OPERATION,
                    format!(
                        "the transaction ended after its check-immunity time ({secs} s); only a check may resolve it now"
                    ),
                );
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
            ok(req)
        }
        Ok(Err(EndError::Store(e))) => super::retry::store_error(req, e),
        Ok(Err(e)) => error(req, rs::SYSTEM_ERROR, e.to_string()),
        Err(_) => error(req, rs::SYSTEM_BUSY, "transaction service busy"),
    }
}
