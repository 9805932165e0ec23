//! ACTORMQ_CHANGE_ROLE, the private request code that makes a running
//! broker a master or a slave (`ChangeRole` to the `RoleKeeper`): the test
//! trigger of what a failover does (Java: `BrokerController` via
//! `ReplicasManager#changeToMaster` / `#changeToSlave`, or the
//! NOTIFY_BROKER_ROLE_CHANGED request). Gated, like ACTORMQ_INJECT_FAULT,
//! by `faultInjectionEnable`.

use std::str::FromStr;

use super::{bad_header, error, ok, BrokerCtx};
use crate::actors::broker::role::{ChangeRole, RoleError};
use crate::config::BrokerRole;
use crate::wire::codes::response as rs;
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

crate::ext_header! {
    /// The trigger's fields.
    pub struct ChangeRoleHeader {
        req role: String = "role",
        opt broker_id: i64 = "brokerId",
        opt master_addr: String = "masterAddr",
    }
}

/// Applies the change; answers SUCCESS with the resulting `brokerRole`
/// and `brokerId`, or INVALID_PARAMETER saying what is wrong.
pub async fn change_role(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    if !ctx.cfg.fault_injection_enable {
        return error(
            req,
            rs::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {} not supported", req.code),
        );
    }
    let h = match ChangeRoleHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(req, e),
    };
    let role = match BrokerRole::from_str(&h.role) {
        Ok(r) => r,
        Err(why) => return error(req, rs::INVALID_PARAMETER, format!("role: {why}")),
    };
    let change = ChangeRole {
        role,
        broker_id: h.broker_id,
        master_addr: h.master_addr,
    };
    match ctx.role_keeper.send(change).await {
        Ok(Ok(s)) => ok(req)
            .with_ext("brokerRole", s.role)
            .with_ext("brokerId", s.broker_id),
        Ok(Err(e @ RoleError::Stopped)) => error(req, rs::SYSTEM_ERROR, e.to_string()),
        Ok(Err(e)) => error(req, rs::INVALID_PARAMETER, e.to_string()),
        Err(_) => error(req, rs::SYSTEM_ERROR, "the role keeper is not running"),
    }
}
