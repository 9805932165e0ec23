//! GET_ALL_CONSUMER_OFFSET (43) and GET_ALL_DELAY_OFFSET (45): the tables a
//! slave's metadata sync copies (Java's `SlaveSynchronize#syncConsumerOffset`
//! / `#syncDelayOffset`, served by `AdminBrokerProcessor`). The body is the
//! JSON as stored.

use super::{ok, refused};
use crate::service::broker::BrokerService;
use crate::service::Caller;
use crate::wire::codes::request as rq;
use crate::wire::RemotingCommand;

pub async fn serve(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let r = if req.code == rq::GET_ALL_DELAY_OFFSET {
        svc.all_delay_offsets(caller).await
    } else {
        svc.all_consumer_offsets(caller).await
    };
    match r {
        Ok(body) => ok(req).with_body(body),
        Err(e) => refused(req, e),
    }
}
