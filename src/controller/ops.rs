//! The leader's decisions: each controller request, read against the
//! current state and the live table, becomes a reply and the events (if
//! any) to commit through Raft before the reply is sent. The checks and
//! their order follow RocketMQ's `ReplicasInfoManager`.

use std::collections::BTreeSet;
use std::time::Instant;

use super::elect::{self, LiveTable, Nomination};
use super::state::{BrokerSet, Event, ReplicasInfo};
use crate::wire::bodies::to_fastjson;
use crate::wire::codes::response as rs;
use crate::wire::controller::*;
use crate::wire::headers::controller::*;
use crate::wire::headers::CommandHeader;
use crate::wire::ExtFields;

/// A leader-only controller request, decoded.
#[derive(Debug, Clone)]
pub enum Request {
    NextBrokerId(GetNextBrokerIdRequestHeader),
    ApplyBrokerId(ApplyBrokerIdRequestHeader),
    Register(RegisterBrokerToControllerRequestHeader),
    ReplicaInfo(GetReplicaInfoRequestHeader),
    Alter(AlterSyncStateSetRequestHeader, SyncStateSetBody),
    Elect(ElectMasterRequestHeader),
    SyncStateData(Vec<String>),
    Clean(CleanBrokerDataRequestHeader),
}

/// What goes back to the asker.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub code: i32,
    pub remark: Option<String>,
    pub ext: ExtFields,
    pub body: Option<Vec<u8>>,
}

impl Reply {
    pub fn ok(header: &impl CommandHeader) -> Reply {
        Reply::with(rs::SUCCESS, header)
    }

    pub fn with(code: i32, header: &impl CommandHeader) -> Reply {
        Reply {
            code,
            ext: header.to_ext(),
            ..Reply::default()
        }
    }

    pub fn refuse(code: i32, remark: impl Into<String>) -> Reply {
        Reply {
            code,
            remark: Some(remark.into()),
            ..Reply::default()
        }
    }

    fn body(mut self, v: &impl serde::Serialize) -> Reply {
        self.body = Some(to_fastjson(v).into_bytes());
        self
    }
}

/// A request's outcome: the events to commit, then the reply.
#[derive(Debug, Default)]
pub struct Decision {
    pub events: Vec<Event>,
    pub reply: Reply,
    /// A new master was elected in this broker set: tell its members.
    pub elected: Option<String>,
}

impl From<Reply> for Decision {
    fn from(reply: Reply) -> Decision {
        Decision {
            reply,
            ..Decision::default()
        }
    }
}

/// The leader's view while it decides.
pub struct View<'a> {
    pub state: &'a ReplicasInfo,
    pub live: &'a LiveTable,
    pub now: Instant,
    /// `enableElectUncleanMaster`.
    pub unclean: bool,
}

impl View<'_> {
    fn alive(&self, name: &str, id: i64) -> bool {
        self.live.is_alive(name, id, self.now)
    }

    pub fn decide(&self, req: &Request) -> Decision {
        match req {
            Request::NextBrokerId(h) => self.next_broker_id(h).into(),
            Request::ApplyBrokerId(h) => self.apply_broker_id(h),
            Request::Register(h) => self.register(h),
            Request::ReplicaInfo(h) => self.replica_info(h).into(),
            Request::Alter(h, body) => self.alter(h, body),
            Request::Elect(h) => self.elect(
                &h.broker_name,
                Nomination {
                    nominee: Some(h.broker_id).filter(|id| *id >= 0),
                    designated: h.designate_elect,
                },
            ),
            Request::SyncStateData(names) => self.sync_state_data(names).into(),
            Request::Clean(h) => self.clean(h),
        }
    }

    fn next_broker_id(&self, h: &GetNextBrokerIdRequestHeader) -> Reply {
        let next = self.state.set(&h.broker_name).map_or(1, |s| s.next_id);
        Reply::ok(&GetNextBrokerIdResponseHeader {
            cluster_name: h.cluster_name.clone(),
            broker_name: h.broker_name.clone(),
            next_broker_id: Some(next),
        })
    }

    fn apply_broker_id(&self, h: &ApplyBrokerIdRequestHeader) -> Decision {
        let header = RegisterBrokerToControllerResponseHeader {
            cluster_name: h.cluster_name.clone(),
            broker_name: h.broker_name.clone(),
            ..Default::default()
        };
        let id = h.applied_broker_id;
        let refused = |why: String| Reply::refuse(rs::CONTROLLER_BROKER_ID_INVALID, why).into();
        match self.state.set(&h.broker_name) {
            None if id != 1 => {
                return refused(format!(
                    "broker-set: {} hasn't been registered in controller, but broker try to apply brokerId: {id}",
                    h.broker_name
                ))
            }
            Some(s) => match s.replicas.get(&id) {
                Some(r) if r.check_code == h.register_check_code => {
                    return Reply::ok(&header).into()
                }
                Some(_) => {
                    return refused(format!(
                        "broker-set: {} already has the brokerId: {id} applied by another broker",
                        h.broker_name
                    ))
                }
                None => {}
            },
            None => {}
        }
        let address = h
            .register_check_code
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        Decision {
            events: vec![Event::ApplyBrokerId {
                cluster: h.cluster_name.clone(),
                broker_name: h.broker_name.clone(),
                id,
                address,
                check_code: h.register_check_code.clone(),
            }],
            reply: Reply::ok(&header),
            elected: None,
        }
    }

    fn register(&self, h: &RegisterBrokerToControllerRequestHeader) -> Decision {
        let Some(set) = self
            .state
            .set(&h.broker_name)
            .filter(|s| s.replicas.contains_key(&h.broker_id))
        else {
            return Reply::refuse(
                rs::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED,
                format!(
                    "broker {}-{} has not applied its id yet",
                    h.broker_name, h.broker_id
                ),
            )
            .into();
        };
        let mut header = RegisterBrokerToControllerResponseHeader {
            cluster_name: h.cluster_name.clone(),
            broker_name: h.broker_name.clone(),
            ..Default::default()
        };
        if let Some(m) = set.master.filter(|m| self.alive(&set.name, *m)) {
            header.master_broker_id = Some(m);
            header.master_address = set.address(m).map(str::to_owned);
            header.master_epoch = Some(set.master_epoch);
            header.sync_state_set_epoch = Some(set.sync_state_set_epoch);
        }
        let mut events = Vec::new();
        if set.address(h.broker_id) != Some(h.broker_address.as_str()) {
            events.push(Event::UpdateBrokerAddress {
                broker_name: h.broker_name.clone(),
                id: h.broker_id,
                address: h.broker_address.clone(),
            });
        }
        Decision {
            events,
            reply: Reply::ok(&header).body(&sync_state_set(set)),
            elected: None,
        }
    }

    fn replica_info(&self, h: &GetReplicaInfoRequestHeader) -> Reply {
        let Some(set) = self.state.set(&h.broker_name) else {
            return Reply::refuse(
                rs::CONTROLLER_BROKER_METADATA_NOT_EXIST,
                format!("broker set {} is not registered", h.broker_name),
            );
        };
        Reply::ok(&GetReplicaInfoResponseHeader {
            master_broker_id: set.master,
            master_address: set.master_address().map(str::to_owned),
            master_epoch: Some(set.master_epoch),
        })
        .body(&sync_state_set(set))
    }

    fn alter(&self, h: &AlterSyncStateSetRequestHeader, proposed: &SyncStateSetBody) -> Decision {
        let failed = |code, why: &str| Reply::refuse(code, why.to_owned()).into();
        let Some(set) = self.state.set(&h.broker_name) else {
            return failed(
                rs::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
                "Broker metadata is not existed",
            );
        };
        if proposed.sync_state_set == set.sync_state_set {
            return failed(rs::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED, "The newSyncStateSet is equal with oldSyncStateSet, no needed to update syncStateSet");
        }
        if set.master != Some(h.master_broker_id) {
            return failed(rs::CONTROLLER_INVALID_MASTER, "Rejecting alter syncStateSet request because the current master is not the requester");
        }
        if h.master_epoch != set.master_epoch {
            return failed(
                rs::CONTROLLER_FENCED_MASTER_EPOCH,
                "Rejecting alter syncStateSet request because the master epoch is stale",
            );
        }
        if proposed.sync_state_set_epoch != set.sync_state_set_epoch {
            return failed(
                rs::CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH,
                "Rejecting alter syncStateSet request because the syncStateSet epoch is stale",
            );
        }
        for id in &proposed.sync_state_set {
            if !set.replicas.contains_key(id) {
                return failed(rs::CONTROLLER_INVALID_REPLICAS, &format!("Rejecting alter syncStateSet request because replica {id} is not registered"));
            }
            if !self.alive(&set.name, *id) {
                return failed(
                    rs::CONTROLLER_BROKER_NOT_ALIVE,
                    &format!(
                        "Rejecting alter syncStateSet request because replica {id} is not alive"
                    ),
                );
            }
        }
        if !proposed.sync_state_set.contains(&h.master_broker_id) {
            return failed(rs::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED, "Rejecting alter syncStateSet request because the newSyncStateSet doesn't contain the master");
        }
        let epoch = set.sync_state_set_epoch + 1;
        Decision {
            events: vec![Event::AlterSyncStateSet {
                broker_name: h.broker_name.clone(),
                set: proposed.sync_state_set.clone(),
            }],
            reply: Reply::ok(&AlterSyncStateSetResponseHeader {
                new_sync_state_set_epoch: Some(epoch),
            })
            .body(&SyncStateSetBody {
                sync_state_set: proposed.sync_state_set.clone(),
                sync_state_set_epoch: epoch,
            }),
            elected: None,
        }
    }

    /// CONTROLLER_ELECT_MASTER, and the controller's own elections
    /// (nominee None) after a master's heartbeats stop.
    pub fn elect(&self, broker_name: &str, n: Nomination) -> Decision {
        let Some(set) = self.state.set(broker_name) else {
            return Reply::refuse(
                rs::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED,
                format!("Broker {broker_name} hasn't been registered"),
            )
            .into();
        };
        match elect::elect(set, self.live, n, self.unclean, self.now) {
            Some(m) if set.master == Some(m) => {
                let header = master_header(set, m, set.master_epoch, set.sync_state_set_epoch);
                let body = ElectMasterBody {
                    broker_member_group: None,
                    sync_state_set: set.sync_state_set.clone(),
                };
                Reply::with(rs::CONTROLLER_MASTER_STILL_EXIST, &header)
                    .body(&body)
                    .into()
            }
            Some(m) => Decision {
                events: vec![Event::ElectMaster {
                    broker_name: broker_name.to_owned(),
                    master: Some(m),
                }],
                reply: Reply::ok(&master_header(
                    set,
                    m,
                    set.master_epoch + 1,
                    set.sync_state_set_epoch + 1,
                ))
                .body(&ElectMasterBody {
                    broker_member_group: Some(member_group(set)),
                    sync_state_set: [m].into(),
                }),
                elected: Some(broker_name.to_owned()),
            },
            None if n.nominee.is_none() => Decision {
                events: vec![Event::ElectMaster {
                    broker_name: broker_name.to_owned(),
                    master: None,
                }],
                reply: Reply::refuse(
                    rs::CONTROLLER_MASTER_NOT_AVAILABLE,
                    format!("Failed to elect a new master for broker set {broker_name}: no candidate alive"),
                ),
                elected: None,
            },
            None => Reply::refuse(
                rs::CONTROLLER_ELECT_MASTER_FAILED,
                format!("Failed to elect a new master for broker set {broker_name}"),
            )
            .into(),
        }
    }

    fn sync_state_data(&self, names: &[String]) -> Reply {
        let mut info = BrokerReplicasInfo::default();
        for set in names.iter().filter_map(|n| self.state.set(n)) {
            let identity = |id: &i64| ReplicaIdentity {
                alive: self.alive(&set.name, *id),
                broker_address: set.address(*id).unwrap_or_default().to_owned(),
                broker_id: *id,
                broker_name: set.name.clone(),
            };
            let (ins, outs): (Vec<i64>, Vec<i64>) = set
                .replicas
                .keys()
                .partition(|id| set.sync_state_set.contains(id));
            info.replicas_info_table.insert(
                set.name.clone(),
                ReplicasInfoBody {
                    in_sync_replicas: ins.iter().map(identity).collect(),
                    master_address: set.master_address().map(str::to_owned),
                    master_broker_id: set.master,
                    master_epoch: set.master_epoch,
                    not_in_sync_replicas: outs.iter().map(identity).collect(),
                    sync_state_set_epoch: set.sync_state_set_epoch,
                },
            );
        }
        Reply::default().body(&info)
    }

    fn clean(&self, h: &CleanBrokerDataRequestHeader) -> Decision {
        let invalid =
            |why: String| Reply::refuse(rs::CONTROLLER_INVALID_CLEAN_BROKER_METADATA, why).into();
        let Some(set) = self.state.set(&h.broker_name) else {
            return invalid(format!("Broker set {} is not registered", h.broker_name));
        };
        let ids = match h.broker_controller_ids_to_clean.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let mut ids = BTreeSet::new();
                for part in text.split(';').filter(|p| !p.trim().is_empty()) {
                    match part.trim().parse::<i64>() {
                        Ok(id) => ids.insert(id),
                        Err(_) => return invalid(format!("Illegal brokerId {part:?}")),
                    };
                }
                Some(ids)
            }
        };
        if !h.is_clean_living_broker {
            if ids.is_none() && set.master.is_some() {
                return invalid(format!("Broker set {} still has a master", h.broker_name));
            }
            let listed: Vec<i64> = match &ids {
                Some(ids) => ids.iter().copied().collect(),
                None => set.replicas.keys().copied().collect(),
            };
            if let Some(id) = listed.iter().find(|id| self.alive(&set.name, **id)) {
                return invalid(format!("Broker {}-{id} is still alive", h.broker_name));
            }
        }
        Decision {
            events: vec![Event::CleanBrokerData {
                broker_name: h.broker_name.clone(),
                ids,
            }],
            reply: Reply::default(),
            elected: None,
        }
    }
}

pub fn sync_state_set(set: &BrokerSet) -> SyncStateSetBody {
    SyncStateSetBody {
        sync_state_set: set.sync_state_set.clone(),
        sync_state_set_epoch: set.sync_state_set_epoch,
    }
}

fn member_group(set: &BrokerSet) -> BrokerMemberGroup {
    BrokerMemberGroup {
        broker_addrs: set
            .replicas
            .iter()
            .map(|(id, r)| (*id, r.address.clone()))
            .collect(),
        broker_name: set.name.clone(),
        cluster: set.cluster.clone(),
    }
}

fn master_header(set: &BrokerSet, m: i64, epoch: i32, ss_epoch: i32) -> ElectMasterResponseHeader {
    ElectMasterResponseHeader {
        master_broker_id: Some(m),
        master_address: set.address(m).map(str::to_owned),
        master_epoch: Some(epoch),
        sync_state_set_epoch: Some(ss_epoch),
    }
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
