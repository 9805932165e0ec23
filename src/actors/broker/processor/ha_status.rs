//! GET_BROKER_HA_STATUS (907): the broker's replication state as RocketMQ's
//! `HARuntimeInfo` JSON (`AdminBrokerProcessor#getBrokerHaStatus`, read by
//! mqadmin's `HAStatusSubCommand`).

use super::ok;
use crate::service::broker::BrokerService;
use crate::service::Caller;
use crate::wire::RemotingCommand;

pub async fn serve(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let info = svc.ha_status(caller);
    ok(req).with_body(serde_json::to_vec(&info).unwrap_or_default())
}
