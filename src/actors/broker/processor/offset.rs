//! Consumer offsets and queue offsets: QUERY_CONSUMER_OFFSET,
//! UPDATE_CONSUMER_OFFSET, GET_MAX_OFFSET, GET_MIN_OFFSET,
//! GET_EARLIEST_MSG_STORETIME, SEARCH_OFFSET_BY_TIMESTAMP.

use super::{bad_header, error, ok, BrokerCtx};
use crate::actors::broker::offsets::{CommitOffset, QueryOffset};
use crate::actors::broker::queue::{QueueActor, QueueOffsets, SearchOffset, StoreTimeAt};
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::offset::*;
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;
use actix::Addr;

fn find_queue(
    ctx: &BrokerCtx,
    topic: &str,
    queue_id: i32,
) -> Result<Addr<QueueActor>, (i32, String)> {
    let t = ctx
        .topics
        .get(topic)
        .ok_or_else(|| (rs::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist")))?;
    t.queue(queue_id).cloned().ok_or_else(|| {
        (
            rs::INVALID_PARAMETER,
            format!("queueId[{queue_id}] is illegal for topic {topic}"),
        )
    })
}

pub async fn serve(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        rq::QUERY_CONSUMER_OFFSET => {
            let h = match QueryConsumerOffsetRequestHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(req, e),
            };
            let stored = ctx
                .offsets
                .send(QueryOffset {
                    group: h.consumer_group,
                    topic: h.topic.clone(),
                    queue_id: h.queue_id,
                })
                .await
                .ok()
                .flatten();
            match stored {
                Some(o) if o >= 0 => ok(req).with_ext("offset", o),
                _ => {
                    // Java: offset 0 when asked and the queue still starts at 0.
                    let zero_ok = h.set_zero_if_not_found.unwrap_or(true);
                    let min = match find_queue(ctx, &h.topic, h.queue_id) {
                        Ok(q) => q.send(QueueOffsets).await.map(|(min, _)| min).unwrap_or(-1),
                        Err(_) => -1,
                    };
                    if zero_ok && min == 0 {
                        ok(req).with_ext("offset", 0)
                    } else {
                        error(
                            req,
                            rs::QUERY_NOT_FOUND,
                            "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
                        )
                    }
                }
            }
        }
        rq::UPDATE_CONSUMER_OFFSET => {
            let h = match UpdateConsumerOffsetRequestHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(req, e),
            };
            if let Err(e) = crate::wire::names::check_group(&h.consumer_group) {
                return super::name_refused(req, e);
            }
            if ctx.topics.get(&h.topic).is_none() {
                return error(
                    req,
                    rs::TOPIC_NOT_EXIST,
                    format!("topic[{}] not exist", h.topic),
                );
            }
            let _ = ctx
                .offsets
                .send(CommitOffset {
                    group: h.consumer_group,
                    topic: h.topic,
                    queue_id: h.queue_id,
                    offset: h.commit_offset,
                })
                .await;
            ok(req)
        }
        rq::GET_MAX_OFFSET | rq::GET_MIN_OFFSET | rq::GET_EARLIEST_MSG_STORETIME => {
            let h = match QueueRequestHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(req, e),
            };
            let q = match find_queue(ctx, &h.topic, h.queue_id) {
                Ok(q) => q,
                Err((c, r)) => return error(req, c, r),
            };
            if req.code == rq::GET_EARLIEST_MSG_STORETIME {
                return match q.send(StoreTimeAt(None)).await {
                    Ok(t) => ok(req).with_ext("timestamp", t.unwrap_or(-1)),
                    Err(_) => error(req, rs::SYSTEM_BUSY, "queue busy"),
                };
            }
            match q.send(QueueOffsets).await {
                Ok((min, max)) => ok(req).with_ext(
                    "offset",
                    if req.code == rq::GET_MAX_OFFSET {
                        max
                    } else {
                        min
                    },
                ),
                Err(_) => error(req, rs::SYSTEM_BUSY, "queue busy"),
            }
        }
        _ => {
            let h = match SearchOffsetRequestHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(req, e),
            };
            let q = match find_queue(ctx, &h.topic, h.queue_id) {
                Ok(q) => q,
                Err((c, r)) => return error(req, c, r),
            };
            let upper = h
                .boundary_type
                .map(|b| b.eq_ignore_ascii_case("UPPER"))
                .unwrap_or(false);
            match q
                .send(SearchOffset {
                    timestamp: h.timestamp,
                    upper,
                })
                .await
            {
                Ok(o) => ok(req).with_ext("offset", o),
                Err(_) => error(req, rs::SYSTEM_BUSY, "queue busy"),
            }
        }
    }
}
