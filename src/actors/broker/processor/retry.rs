//! Remoting adapter of the send-back service: CONSUMER_SEND_MSG_BACK (36).

use super::{bad_header, ok, refused};
use crate::service::broker::{BrokerService, SendBackRequest};
use crate::service::Caller;
use crate::wire::headers::consume::ConsumerSendMsgBackRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

pub async fn send_back(
    svc: &BrokerService,
    caller: &Caller,
    req: &RemotingCommand,
) -> RemotingCommand {
    let h = match ConsumerSendMsgBackRequestHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let request = SendBackRequest {
        offset: h.offset,
        group: h.group,
        delay_level: h.delay_level,
        max_reconsume_times: h.max_reconsume_times,
    };
    match svc.send_back(caller, request).await {
        Ok(()) => ok(req),
        Err(r) => refused(req, r),
    }
}
