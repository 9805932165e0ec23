//! QUERY_MESSAGE (12) and VIEW_MESSAGE_BY_ID (33) (protocol.md §2.9).
//!
//! Key lookups go through the `Indexer` actor; the records are returned as
//! zero-copy slices of the mapped commit log. Like the Java broker, a key
//! query returns every record whose key hash and store time match: telling
//! hash collisions apart by the key text is the client's job.

use super::{bad_header, error, BrokerCtx};
use crate::actors::broker::indexer::QueryIndex;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::query::{
    QueryMessageRequestHeader, QueryMessageResponseHeader, ViewMessageRequestHeader,
    UNIQUE_KEY_QUERY,
};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

pub async fn serve(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    if req.code == rq::VIEW_MESSAGE_BY_ID {
        view(ctx, req)
    } else {
        query(ctx, req).await
    }
}

async fn query(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    let h = match QueryMessageRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let ex = &ctx.cfg.expiry;
    let unique = req
        .ext
        .get(UNIQUE_KEY_QUERY)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let max = if unique {
        ex.default_query_max_num
    } else {
        h.max_num
    };
    let max = max.min(ex.max_msgs_num_batch).max(1) as usize;
    let hits = match &ctx.indexer {
        Some(ix) => match ix
            .send(QueryIndex {
                topic: h.topic,
                key: h.key,
                max,
                begin: h.begin_timestamp,
                end: h.end_timestamp,
            })
            .await
        {
            Ok(hits) => hits,
            Err(_) => return error(req, rs::SYSTEM_BUSY, "[OVERLOAD] index busy, try again"),
        },
        None => Default::default(),
    };
    let mut offsets = hits.phys_offsets;
    offsets.sort_unstable();
    offsets.dedup();
    let bodies: Vec<_> = offsets
        .iter()
        .filter_map(|&o| {
            ctx.reader
                .read_record(o)
                .filter(|r| looks_like_record_at(r, o))
        })
        .collect();
    let code = if bodies.is_empty() {
        rs::QUERY_NOT_FOUND
    } else {
        rs::SUCCESS
    };
    let mut resp = RemotingCommand::response_to(req, code);
    if bodies.is_empty() {
        resp = resp.with_remark("can not find message, maybe time range not correct");
    }
    QueryMessageResponseHeader {
        index_last_update_timestamp: hits.last_update_timestamp,
        index_last_update_phyoffset: hits.last_update_phy_offset,
    }
    .write_ext(&mut resp.ext);
    resp.body = bodies.into();
    resp
}

fn view(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    let h = match ViewMessageRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    match ctx.reader.read_record(h.offset) {
        Some(rec) if looks_like_record_at(&rec, h.offset) => {
            let mut resp = RemotingCommand::response_to(req, rs::SUCCESS);
            resp.body = smallvec::smallvec![rec];
            resp
        }
        _ => error(
            req,
            rs::SYSTEM_ERROR,
            format!("can not find message by the offset, {}", h.offset),
        ),
    }
}

/// A record really starts at `offset` (not an arbitrary position inside
/// one): its magic is valid and its PHYSICALOFFSET field says so.
fn looks_like_record_at(rec: &[u8], offset: i64) -> bool {
    use crate::wire::message::{self, PHYS_OFFSET_POS};
    let magic_ok = message::peek_record_header(rec).is_ok_and(|h| !h.is_blank());
    let phys = rec
        .get(PHYS_OFFSET_POS..PHYS_OFFSET_POS + 8)
        .and_then(|s| s.try_into().ok())
        .map(i64::from_be_bytes);
    magic_ok && phys == Some(offset)
}
