//! JSON bodies of the controller requests (fastjson dialect: keys sorted,
//! bare numeric map keys on output): `SyncStateSet`,
//! `ElectMasterResponseBody` with its `BrokerMemberGroup`, and
//! `BrokerReplicasInfo` (CONTROLLER_GET_SYNC_STATE_DATA).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `SyncStateSet`: the in-sync replica ids and the set's epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SyncStateSetBody {
    pub sync_state_set: BTreeSet<i64>,
    pub sync_state_set_epoch: i32,
}

/// `BrokerMemberGroup`: every registered replica of a broker set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerMemberGroup {
    pub broker_addrs: BTreeMap<i64, String>,
    pub broker_name: String,
    pub cluster: String,
}

/// `ElectMasterResponseBody`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ElectMasterBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_member_group: Option<BrokerMemberGroup>,
    pub sync_state_set: BTreeSet<i64>,
}

/// `BrokerReplicasInfo.ReplicaIdentity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaIdentity {
    pub alive: bool,
    pub broker_address: String,
    pub broker_id: i64,
    pub broker_name: String,
}

/// `BrokerReplicasInfo.ReplicasInfo`: one broker set as GET_SYNC_STATE_DATA
/// shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicasInfoBody {
    pub in_sync_replicas: Vec<ReplicaIdentity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_broker_id: Option<i64>,
    pub master_epoch: i32,
    pub not_in_sync_replicas: Vec<ReplicaIdentity>,
    pub sync_state_set_epoch: i32,
}

/// `BrokerReplicasInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerReplicasInfo {
    pub replicas_info_table: BTreeMap<String, ReplicasInfoBody>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elect_body_in_the_fastjson_dialect() {
        let body = ElectMasterBody {
            broker_member_group: Some(BrokerMemberGroup {
                broker_addrs: [(1, "10.0.0.1:10911".to_string())].into(),
                broker_name: "broker-a".into(),
                cluster: "DefaultCluster".into(),
            }),
            sync_state_set: [1].into(),
        };
        assert_eq!(
            crate::wire::bodies::to_fastjson(&body),
            r#"{"brokerMemberGroup":{"brokerAddrs":{1:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"},"syncStateSet":[1]}"#
        );
        let back: ElectMasterBody =
            crate::wire::json::from_fastjson(crate::wire::bodies::to_fastjson(&body).as_bytes())
                .unwrap();
        assert_eq!(back, body);
    }
}
