//! Remoting adapter of the offset services: QUERY_CONSUMER_OFFSET (14),
//! UPDATE_CONSUMER_OFFSET (15), GET_MAX_OFFSET (30), GET_MIN_OFFSET (31),
//! GET_EARLIEST_MSG_STORETIME (32), SEARCH_OFFSET_BY_TIMESTAMP (29).

use super::{bad_header, ok, refused};
use crate::service::broker::{BrokerService, GroupQueue};
use crate::service::{Caller, Refusal};
use crate::wire::codes::request as rq;
use crate::wire::headers::offset::*;
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

/// A service answer as `offset` / `timestamp` ext field.
fn answer(req: &RemotingCommand, field: &str, r: Result<i64, Refusal>) -> RemotingCommand {
    match r {
        Ok(v) => ok(req).with_ext(field, v),
        Err(r) => refused(req, r),
    }
}

pub async fn serve(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        rq::QUERY_CONSUMER_OFFSET => match QueryConsumerOffsetRequestHeader::from_ext(&req.ext) {
            Ok(h) => {
                let q = GroupQueue {
                    group: h.consumer_group,
                    topic: h.topic,
                    queue_id: h.queue_id,
                };
                let zero = h.set_zero_if_not_found.unwrap_or(true);
                answer(req, "offset", svc.consumer_offset(caller, q, zero).await)
            }
            Err(e) => bad_header(req, e),
        },
        rq::UPDATE_CONSUMER_OFFSET => match UpdateConsumerOffsetRequestHeader::from_ext(&req.ext) {
            Ok(h) => {
                let q = GroupQueue {
                    group: h.consumer_group,
                    topic: h.topic,
                    queue_id: h.queue_id,
                };
                match svc.commit_offset(caller, q, h.commit_offset).await {
                    Ok(()) => ok(req),
                    Err(r) => refused(req, r),
                }
            }
            Err(e) => bad_header(req, e),
        },
        rq::GET_MAX_OFFSET | rq::GET_MIN_OFFSET | rq::GET_EARLIEST_MSG_STORETIME => {
            let h = match QueueRequestHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(req, e),
            };
            if req.code == rq::GET_EARLIEST_MSG_STORETIME {
                let t = svc.earliest_store_time(caller, &h.topic, h.queue_id).await;
                return answer(req, "timestamp", t);
            }
            let bounds = svc.queue_bounds(caller, &h.topic, h.queue_id).await;
            let max = req.code == rq::GET_MAX_OFFSET;
            answer(
                req,
                "offset",
                bounds.map(|(lo, hi)| if max { hi } else { lo }),
            )
        }
        _ => match SearchOffsetRequestHeader::from_ext(&req.ext) {
            Ok(h) => {
                let upper = h
                    .boundary_type
                    .is_some_and(|b| b.eq_ignore_ascii_case("UPPER"));
                let o = svc
                    .search_offset(caller, &h.topic, h.queue_id, h.timestamp, upper)
                    .await;
                answer(req, "offset", o)
            }
            Err(e) => bad_header(req, e),
        },
    }
}
