//! The broker's controller-mode requests: NOTIFY_BROKER_ROLE_CHANGED (1008,
//! from the controller, one-way: handed to the agent, applied at once) and
//! GET_BROKER_EPOCH_CACHE (1007, the epoch entries as RocketMQ's
//! `EpochEntryCache` JSON).

use serde::Serialize;

use super::{ok, BrokerCtx};
use crate::actors::ha::autoswitch::RoleNotified;
use crate::wire::codes::response as rs;
use crate::wire::controller::SyncStateSetBody;
use crate::wire::headers::controller::ElectMasterResponseHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

fn only_controller_mode(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, rs::SYSTEM_ERROR)
        .with_remark("this request only for controllerMode ")
}

/// NOTIFY_BROKER_ROLE_CHANGED: header as ELECT_MASTER's reply, body the
/// SyncStateSet.
pub fn notify_role(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    let Some(auto) = &ctx.ha.auto else {
        return only_controller_mode(req);
    };
    let h = match ElectMasterResponseHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => {
            return RemotingCommand::response_to(req, rs::SYSTEM_ERROR).with_remark(e.to_string())
        }
    };
    let (Some(master_id), Some(master_epoch)) = (h.master_broker_id, h.master_epoch) else {
        return RemotingCommand::response_to(req, rs::SYSTEM_ERROR)
            .with_remark("masterBrokerId and masterEpoch are required");
    };
    let body: SyncStateSetBody =
        crate::wire::json::from_fastjson(&req.body_bytes()).unwrap_or_default();
    let n = RoleNotified {
        master_id,
        master_addr: h.master_address.unwrap_or_default(),
        master_epoch,
        ss_epoch: h.sync_state_set_epoch.unwrap_or(body.sync_state_set_epoch),
        set: body.sync_state_set,
    };
    match auto.notify.get() {
        Some(agent) => {
            let _ = agent.try_send(n);
            ok(req)
        }
        None => RemotingCommand::response_to(req, rs::SYSTEM_ERROR)
            .with_remark("the controller agent is not running"),
    }
}

/// `EpochEntry` as Java's JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EpochJson {
    end_offset: i64,
    epoch: i32,
    start_offset: i64,
}

/// `EpochEntryCache`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EpochEntryCache {
    broker_id: i64,
    broker_name: String,
    cluster_name: String,
    epoch_list: Vec<EpochJson>,
    max_offset: i64,
}

/// GET_BROKER_EPOCH_CACHE: this broker's epochs (the last one open).
pub fn epoch_cache(ctx: &BrokerCtx, req: &RemotingCommand) -> RemotingCommand {
    let Some(auto) = &ctx.ha.auto else {
        return only_controller_mode(req);
    };
    let epoch_list = auto
        .epochs()
        .entries(i64::MAX)
        .into_iter()
        .map(|e| EpochJson {
            end_offset: e.end,
            epoch: e.epoch,
            start_offset: e.start,
        })
        .collect();
    let body = EpochEntryCache {
        broker_id: ctx.role.state().broker_id,
        broker_name: ctx.cfg.broker_name.clone(),
        cluster_name: ctx.cfg.broker_cluster_name.clone(),
        epoch_list,
        max_offset: ctx.reader.max_offset(),
    };
    ok(req).with_body(crate::wire::bodies::to_fastjson(&body))
}
