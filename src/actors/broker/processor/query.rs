//! Remoting adapter of the query service: QUERY_MESSAGE (12) and
//! VIEW_MESSAGE_BY_ID (33).

use super::{bad_header, refused};
use crate::service::broker::{BrokerService, QueryRequest};
use crate::service::Caller;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::query::{
    QueryMessageRequestHeader, QueryMessageResponseHeader, ViewMessageRequestHeader,
    UNIQUE_KEY_QUERY,
};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

pub async fn serve(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    if req.code == rq::VIEW_MESSAGE_BY_ID {
        return match ViewMessageRequestHeader::from_ext(&req.ext) {
            Ok(h) => match svc.view_by_offset(caller, h.offset) {
                Ok(rec) => {
                    let mut resp = RemotingCommand::response_to(req, rs::SUCCESS);
                    resp.body = smallvec::smallvec![rec];
                    resp
                }
                Err(r) => refused(req, r),
            },
            Err(e) => bad_header(req, e),
        };
    }
    let h = match QueryMessageRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let unique = req
        .ext
        .get(UNIQUE_KEY_QUERY)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let q = QueryRequest {
        topic: h.topic,
        key: h.key,
        max: h.max_num,
        begin: h.begin_timestamp,
        end: h.end_timestamp,
        unique,
    };
    let hits = match svc.query_by_key(caller, q).await {
        Ok(h) => h,
        Err(r) => return refused(req, r),
    };
    let found = !hits.records.is_empty();
    let mut resp = RemotingCommand::response_to(
        req,
        if found {
            rs::SUCCESS
        } else {
            rs::QUERY_NOT_FOUND
        },
    );
    if !found {
        resp = resp.with_remark("can not find message, maybe time range not correct");
    }
    QueryMessageResponseHeader {
        index_last_update_timestamp: hits.index_last_update_timestamp,
        index_last_update_phyoffset: hits.index_last_update_phy_offset,
    }
    .write_ext(&mut resp.ext);
    resp.body = hits.records.into();
    resp
}
