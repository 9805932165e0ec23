//! The replicated controller state (RocketMQ's `ReplicasInfoManager`): per
//! broker set the registered replicas (`BrokerReplicaInfo`) and the
//! master/SyncStateSet record (`SyncStateInfo`), and the events that
//! change it. Events are what travels through the Raft log; applying one is
//! deterministic and never fails, so every controller ends with the same
//! state. The decisions (which event, if any) are made by the leader in
//! `ops`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One registered replica: its last address and the check code it applied
/// its id with (`"<addr>;<millis>"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub address: String,
    pub check_code: String,
}

/// One broker set (`brokerName`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerSet {
    pub cluster: String,
    pub name: String,
    /// `nextAssignBrokerId`: starts at 1.
    pub next_id: i64,
    pub replicas: BTreeMap<i64, Replica>,
    pub master: Option<i64>,
    /// `masterEpoch`: +1 on every applied election (the first master gets 1).
    pub master_epoch: i32,
    pub sync_state_set: BTreeSet<i64>,
    pub sync_state_set_epoch: i32,
}

impl BrokerSet {
    fn new(cluster: &str, name: &str) -> BrokerSet {
        BrokerSet {
            cluster: cluster.to_owned(),
            name: name.to_owned(),
            next_id: 1,
            replicas: BTreeMap::new(),
            master: None,
            master_epoch: 0,
            sync_state_set: BTreeSet::new(),
            sync_state_set_epoch: 0,
        }
    }

    pub fn address(&self, id: i64) -> Option<&str> {
        self.replicas.get(&id).map(|r| r.address.as_str())
    }

    pub fn master_address(&self) -> Option<&str> {
        self.master.and_then(|m| self.address(m))
    }
}

/// All broker sets, by broker name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicasInfo {
    pub sets: BTreeMap<String, BrokerSet>,
}

/// A state change, as RocketMQ's controller events (`EventType`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// `ApplyBrokerIdEvent`: records `id` (creating the set on its first id).
    ApplyBrokerId {
        cluster: String,
        broker_name: String,
        id: i64,
        address: String,
        check_code: String,
    },
    /// `UpdateBrokerAddressEvent`.
    UpdateBrokerAddress {
        broker_name: String,
        id: i64,
        address: String,
    },
    /// `AlterSyncStateSetEvent`: the new set; its epoch +1.
    AlterSyncStateSet {
        broker_name: String,
        set: BTreeSet<i64>,
    },
    /// `ElectMasterEvent`: a new master (SyncStateSet = {it}, both epochs
    /// +1) or none (master cleared, master epoch +1).
    ElectMaster {
        broker_name: String,
        master: Option<i64>,
    },
    /// `CleanBrokerDataEvent`: the whole set (`ids` = None) or some ids.
    CleanBrokerData {
        broker_name: String,
        ids: Option<BTreeSet<i64>>,
    },
}

impl ReplicasInfo {
    pub fn set(&self, broker_name: &str) -> Option<&BrokerSet> {
        self.sets.get(broker_name)
    }

    /// Applies one event. Events for unknown sets are ignored (the leader
    /// checked before proposing; a later event may have removed the set).
    pub fn apply(&mut self, e: &Event) {
        match e {
            Event::ApplyBrokerId {
                cluster,
                broker_name,
                id,
                address,
                check_code,
            } => {
                let set = self
                    .sets
                    .entry(broker_name.clone())
                    .or_insert_with(|| BrokerSet::new(cluster, broker_name));
                set.replicas.insert(
                    *id,
                    Replica {
                        address: address.clone(),
                        check_code: check_code.clone(),
                    },
                );
                // +1 per id added, and never an id already handed out.
                set.next_id = (set.next_id + 1).max(id + 1);
            }
            Event::UpdateBrokerAddress {
                broker_name,
                id,
                address,
            } => {
                if let Some(r) = self
                    .sets
                    .get_mut(broker_name)
                    .and_then(|s| s.replicas.get_mut(id))
                {
                    r.address = address.clone();
                }
            }
            Event::AlterSyncStateSet { broker_name, set } => {
                if let Some(s) = self.sets.get_mut(broker_name) {
                    s.sync_state_set = set.clone();
                    s.sync_state_set_epoch += 1;
                }
            }
            Event::ElectMaster {
                broker_name,
                master,
            } => {
                if let Some(s) = self.sets.get_mut(broker_name) {
                    s.master_epoch += 1;
                    s.master = *master;
                    if let Some(m) = master {
                        s.sync_state_set = [*m].into();
                        s.sync_state_set_epoch += 1;
                    }
                }
            }
            Event::CleanBrokerData { broker_name, ids } => match ids {
                None => {
                    self.sets.remove(broker_name);
                }
                Some(ids) => {
                    let Some(s) = self.sets.get_mut(broker_name) else {
                        return;
                    };
                    for id in ids {
                        s.replicas.remove(id);
                        s.sync_state_set.remove(id);
                        if s.master == Some(*id) {
                            s.master = None;
                        }
                    }
                    if s.replicas.is_empty() {
                        self.sets.remove(broker_name);
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_id(st: &mut ReplicasInfo, id: i64) {
        st.apply(&Event::ApplyBrokerId {
            cluster: "c".into(),
            broker_name: "b".into(),
            id,
            address: format!("127.0.0.1:{id}"),
            check_code: format!("127.0.0.1:{id};1"),
        });
    }

    #[test]
    fn ids_elections_and_sync_state_sets_move_the_epochs() {
        let mut st = ReplicasInfo::default();
        apply_id(&mut st, 1);
        apply_id(&mut st, 2);
        assert_eq!(st.set("b").unwrap().next_id, 3);
        st.apply(&Event::ElectMaster {
            broker_name: "b".into(),
            master: Some(1),
        });
        let s = st.set("b").unwrap();
        assert_eq!(
            (s.master, s.master_epoch, s.sync_state_set_epoch),
            (Some(1), 1, 1)
        );
        st.apply(&Event::AlterSyncStateSet {
            broker_name: "b".into(),
            set: [1, 2].into(),
        });
        st.apply(&Event::ElectMaster {
            broker_name: "b".into(),
            master: None,
        });
        let s = st.set("b").unwrap();
        assert_eq!(s.master, None);
        assert_eq!(s.master_epoch, 2);
        assert_eq!(s.sync_state_set, [1, 2].into());
        assert_eq!(s.sync_state_set_epoch, 2);
        st.apply(&Event::CleanBrokerData {
            broker_name: "b".into(),
            ids: Some([1, 2].into()),
        });
        assert!(st.set("b").is_none());
    }
}
