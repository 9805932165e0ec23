//! GET_BROKER_HA_STATUS (907): a broker's replication state as RocketMQ's
//! `HARuntimeInfo` (built by `DefaultHAService#getRuntimeInfo`, printed by
//! mqadmin's `HAStatusSubCommand`), field names as Java's JSON.

use serde::{Deserialize, Serialize};

use super::HaRuntime;

/// GET_BROKER_HA_STATUS, RocketMQ 5's request code.
pub const GET_BROKER_HA_STATUS: i32 = 907;

/// `HARuntimeInfo`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct HaRuntimeInfo {
    pub master: bool,
    pub master_commit_log_max_offset: i64,
    pub in_sync_slave_nums: i32,
    pub ha_connection_info: Vec<HaConnectionRuntimeInfo>,
    pub ha_client_runtime_info: HaClientRuntimeInfo,
    /// ActorMQ's addition, a controller-mode master only: its own
    /// SyncStateSet and that set's epoch (what it last committed at the
    /// controller; absent in Java's JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_state_set: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_state_set_epoch: Option<i32>,
}

/// `HARuntimeInfo.HAConnectionRuntimeInfo`: one connected slave.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct HaConnectionRuntimeInfo {
    pub addr: String,
    pub slave_ack_offset: i64,
    pub diff: i64,
    pub in_sync: bool,
    pub transferred_byte_in_second: i64,
    pub transfer_from_where: i64,
    /// ActorMQ's addition: an `asyncLearner` slave, never counted (never
    /// in sync); absent in Java's JSON, so false there.
    pub async_learner: bool,
}

/// `HARuntimeInfo.HAClientRuntimeInfo`: a slave's follower.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct HaClientRuntimeInfo {
    pub master_addr: String,
    pub transferred_byte_in_second: i64,
    pub max_offset: i64,
    pub last_read_timestamp: i64,
    pub last_write_timestamp: i64,
    pub master_flush_offset: i64,
    /// Java's getter is `isActivated`: the follower is connected.
    #[serde(rename = "activated")]
    pub is_activated: bool,
}

impl HaRuntimeInfo {
    /// The state now: `is_master` from the role, `max_offset` the local
    /// commit-log end.
    pub fn collect(ha: &HaRuntime, is_master: bool, max_offset: i64) -> Self {
        let mut info = HaRuntimeInfo {
            master: is_master,
            master_commit_log_max_offset: max_offset,
            ..Default::default()
        };
        if let (true, Some(auto)) = (is_master, &ha.auto) {
            // Controller mode: in sync = in the SyncStateSet.
            let (set, epoch, _) = auto.sync_state_set();
            info.sync_state_set = Some(set.into_iter().collect());
            info.sync_state_set_epoch = Some(epoch);
            for (addr, acked, learner, in_sync) in auto.connected_slaves() {
                info.in_sync_slave_nums += in_sync as i32;
                info.ha_connection_info.push(HaConnectionRuntimeInfo {
                    addr,
                    slave_ack_offset: acked,
                    diff: (max_offset - acked.max(0)).max(0),
                    in_sync,
                    async_learner: learner,
                    ..Default::default()
                });
            }
        } else if is_master {
            let mut slaves = ha.group.slaves();
            slaves.sort_by(|a, b| a.addr.cmp(&b.addr));
            for s in slaves {
                let ack = s.acked.max(0);
                let diff = (max_offset - ack).max(0);
                let in_sync = ha.group.in_sync(&s, max_offset);
                info.in_sync_slave_nums += in_sync as i32;
                info.ha_connection_info.push(HaConnectionRuntimeInfo {
                    addr: s.addr,
                    slave_ack_offset: s.acked,
                    diff,
                    in_sync,
                    async_learner: s.learner,
                    ..Default::default()
                });
            }
        } else {
            use std::sync::atomic::Ordering;
            let c = &ha.client;
            info.ha_client_runtime_info = HaClientRuntimeInfo {
                master_addr: ha.master.get().unwrap_or_default(),
                max_offset,
                is_activated: c.connected.load(Ordering::Acquire),
                ..Default::default()
            };
        }
        info
    }
}
