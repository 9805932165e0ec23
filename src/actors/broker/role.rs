//! The broker's role at run time: MASTER (`ASYNC_MASTER` / `SYNC_MASTER`)
//! or `SLAVE`, with its broker id (`MixAll.MASTER_ID` = 0 for a master,
//! above 0 for a slave) and its master's address — Java's
//! `MessageStoreConfig#brokerRole` plus `BrokerConfig#brokerId`.
//!
//! [`Role`] is shared (`Arc`) in `BrokerCtx` and read on the hot path with
//! one atomic load; its checks answer as the Java broker does on a slave:
//!
//! * sends and CONSUMER_SEND_MSG_BACK ([`Role::refuse_write`]): Java's
//!   `SendMessageProcessor#rejectRequest` is true on a slave, so the
//!   remoting layer (`NettyRemotingAbstract`) answers SYSTEM_BUSY with
//!   "[REJECTREQUEST]system busy, start flow control for a while";
//! * END_TRANSACTION ([`Role::refuse_end_transaction`]): Java's
//!   `EndTransactionProcessor` answers SLAVE_NOT_AVAILABLE, no remark;
//! * PULL_MESSAGE / LITE_PULL_MESSAGE ([`Role::refuse_pull`]):
//!   `PullMessageProcessor#rejectRequest` is true on a slave without
//!   `slaveReadEnable`, hence the same SYSTEM_BUSY "[REJECTREQUEST]" answer.
//!
//! The role changes through one message, [`ChangeRole`], to the
//! [`RoleKeeper`] actor, which serialises changes and applies them in
//! Java's order (`DLedgerRoleChangeHandler#changeToMaster` /
//! `#changeToSlave`): to master, start the master-only services
//! (`Services::become_master`), then take writes; to slave, refuse writes
//! first, then stop the services. Either way the broker then registers again
//! with the name servers under its new broker id.

use actix::prelude::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use super::services::Services;
use crate::config::{BrokerConfig, BrokerRole};
use crate::service::Refusal;

/// The remark of Java's remoting layer when a processor's `rejectRequest`
/// is true (`NettyRemotingAbstract#processRequestCommand`).
pub const REJECT_REQUEST_REMARK: &str =
    "[REJECTREQUEST]system busy, start flow control for a while";

/// What the role is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleState {
    pub role: BrokerRole,
    /// 0 for a master, above 0 for a slave.
    pub broker_id: i64,
    /// The master a slave follows (none known for a master).
    pub master_addr: Option<String>,
}

/// The broker's current role; see the module doc.
#[derive(Debug)]
pub struct Role {
    /// `BrokerRole` as its index in `BrokerRole::ALL`: the hot-path read.
    kind: AtomicU8,
    state: RwLock<RoleState>,
    slave_read_enable: bool,
}

fn index_of(role: BrokerRole) -> u8 {
    use crate::config::ConfigEnum;
    BrokerRole::ALL.iter().position(|r| *r == role).unwrap_or(0) as u8
}

impl Role {
    /// The role a broker starts in (`brokerRole`, `brokerId`).
    pub fn from_config(cfg: &BrokerConfig) -> Role {
        let state = RoleState {
            role: cfg.broker_role,
            broker_id: if cfg.broker_role.is_master() {
                0
            } else {
                cfg.broker_id
            },
            master_addr: None,
        };
        Role {
            kind: AtomicU8::new(index_of(state.role)),
            state: RwLock::new(state),
            slave_read_enable: cfg.slave_read_enable,
        }
    }

    /// The current role (one atomic load).
    pub fn role(&self) -> BrokerRole {
        use crate::config::ConfigEnum;
        BrokerRole::ALL[self.kind.load(Ordering::Acquire) as usize % BrokerRole::ALL.len()]
    }

    pub fn is_slave(&self) -> bool {
        self.role() == BrokerRole::Slave
    }

    /// Role, broker id and master address.
    pub fn state(&self) -> RoleState {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, s: RoleState) {
        let mut cur = self.state.write().unwrap_or_else(|e| e.into_inner());
        self.kind.store(index_of(s.role), Ordering::Release);
        *cur = s;
    }

    /// `cfg` with the current role and broker id (what GET_BROKER_CONFIG
    /// reports, as Java's changed `brokerRole` / `brokerId`).
    pub fn effective_config(&self, cfg: &BrokerConfig) -> BrokerConfig {
        let s = self.state();
        BrokerConfig {
            broker_role: s.role,
            broker_id: s.broker_id,
            ..cfg.clone()
        }
    }

    /// SEND_MESSAGE(_V2), SEND_BATCH_MESSAGE, CONSUMER_SEND_MSG_BACK on a
    /// slave: refused as Java's `SendMessageProcessor#rejectRequest` is.
    pub fn refuse_write(&self) -> Option<Refusal> {
        self.is_slave()
            .then(|| Refusal::Busy(REJECT_REQUEST_REMARK.into()))
    }

    /// END_TRANSACTION on a slave: SLAVE_NOT_AVAILABLE without a remark,
    /// as Java's `EndTransactionProcessor`.
    pub fn refuse_end_transaction(&self) -> Option<Refusal> {
        self.is_slave()
            .then(|| Refusal::SlaveNotAvailable(String::new()))
    }

    /// PULL_MESSAGE / LITE_PULL_MESSAGE on a slave without
    /// `slaveReadEnable`: refused as Java's `PullMessageProcessor#rejectRequest` is.
    pub fn refuse_pull(&self) -> Option<Refusal> {
        (self.is_slave() && !self.slave_read_enable)
            .then(|| Refusal::Busy(REJECT_REQUEST_REMARK.into()))
    }
}

/// Makes the broker a master or a slave.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<RoleState, RoleError>")]
pub struct ChangeRole {
    pub role: BrokerRole,
    /// For a slave: its id, above 0 (kept, or 1, when `None`). For a
    /// master: `None` or 0.
    pub broker_id: Option<i64>,
    /// For a slave: the master it follows.
    pub master_addr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("a master's brokerId is 0, not {0}")]
    MasterId(i64),
    #[error("a slave's brokerId must be greater than 0, not {0}")]
    SlaveId(i64),
    #[error("the broker is shutting down")]
    Stopped,
}

impl ChangeRole {
    /// The state this change leads to from `cur`.
    pub fn target(&self, cur: &RoleState) -> Result<RoleState, RoleError> {
        let broker_id = if self.role.is_master() {
            match self.broker_id {
                None | Some(0) => 0,
                Some(id) => return Err(RoleError::MasterId(id)),
            }
        } else {
            match self.broker_id {
                Some(id) if id <= 0 => return Err(RoleError::SlaveId(id)),
                Some(id) => id,
                None if cur.broker_id > 0 => cur.broker_id,
                None => 1,
            }
        };
        Ok(RoleState {
            role: self.role,
            broker_id,
            master_addr: if self.role.is_master() {
                None
            } else {
                self.master_addr.clone().filter(|a| !a.is_empty())
            },
        })
    }
}

/// Registers the broker again under a new broker id (given by `Broker`).
pub type Reregister = Box<dyn Fn(i64) -> Pin<Box<dyn Future<Output = ()> + 'static>> + 'static>;

/// Applies [`ChangeRole`]s one at a time; see the module doc.
pub struct RoleKeeper {
    role: Arc<Role>,
    services: Arc<Services>,
    reregister: std::rc::Rc<Reregister>,
}

impl RoleKeeper {
    pub fn new(role: Arc<Role>, services: Arc<Services>, reregister: Reregister) -> Self {
        RoleKeeper {
            role,
            services,
            reregister: std::rc::Rc::new(reregister),
        }
    }
}

impl Actor for RoleKeeper {
    type Context = Context<Self>;
}

impl Handler<ChangeRole> for RoleKeeper {
    type Result = AtomicResponse<Self, Result<RoleState, RoleError>>;

    fn handle(&mut self, m: ChangeRole, _: &mut Context<Self>) -> Self::Result {
        let (role, services, reregister) = (
            self.role.clone(),
            self.services.clone(),
            self.reregister.clone(),
        );
        AtomicResponse::new(Box::pin(
            async move {
                let cur = role.state();
                let next = m.target(&cur)?;
                tracing::info!(from = ?cur, to = ?next, "changing the broker's role");
                if next.role.is_master() {
                    services.become_master().await;
                    if !services.master_running() {
                        return Err(RoleError::Stopped);
                    }
                    role.set(next.clone());
                } else {
                    role.set(next.clone());
                    services.become_slave().await;
                }
                if next.broker_id != cur.broker_id {
                    reregister(next.broker_id).await;
                }
                tracing::info!(role = %next.role, broker_id = next.broker_id, "broker role changed");
                Ok(next)
            }
            .into_actor(self),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(role: BrokerRole, id: i64) -> RoleState {
        RoleState {
            role,
            broker_id: id,
            master_addr: None,
        }
    }

    #[test]
    fn ids_follow_the_role() {
        let to = |role, broker_id| ChangeRole {
            role,
            broker_id,
            master_addr: Some("10.0.0.1:10911".into()),
        };
        let master = state(BrokerRole::AsyncMaster, 0);
        let slave = to(BrokerRole::Slave, None).target(&master).unwrap();
        assert_eq!(
            (slave.broker_id, slave.master_addr.as_deref()),
            (1, Some("10.0.0.1:10911"))
        );
        assert_eq!(
            to(BrokerRole::Slave, None)
                .target(&state(BrokerRole::Slave, 3))
                .unwrap()
                .broker_id,
            3
        );
        assert_eq!(
            to(BrokerRole::Slave, Some(0)).target(&master),
            Err(RoleError::SlaveId(0))
        );
        let m = to(BrokerRole::SyncMaster, None).target(&slave).unwrap();
        assert_eq!((m.broker_id, m.master_addr), (0, None));
        assert_eq!(
            to(BrokerRole::AsyncMaster, Some(2)).target(&slave),
            Err(RoleError::MasterId(2))
        );
    }

    #[test]
    fn a_slave_refuses_writes_and_reads_unless_slave_read_is_enabled() {
        let mut cfg = BrokerConfig {
            broker_role: BrokerRole::Slave,
            broker_id: 1,
            ..BrokerConfig::default()
        };
        let r = Role::from_config(&cfg);
        use crate::wire::codes::response as rs;
        let w = r.refuse_write().unwrap();
        assert_eq!(w.remoting_code(), rs::SYSTEM_BUSY);
        assert_eq!(w.to_string(), REJECT_REQUEST_REMARK);
        let e = r.refuse_end_transaction().unwrap();
        assert_eq!(e.remoting_code(), rs::SLAVE_NOT_AVAILABLE);
        assert_eq!(e.to_string(), "", "Java sets no remark");
        assert!(r.refuse_pull().is_some());
        cfg.slave_read_enable = true;
        assert!(Role::from_config(&cfg).refuse_pull().is_none());
        r.set(state(BrokerRole::SyncMaster, 0));
        assert_eq!(r.role(), BrokerRole::SyncMaster);
        assert!(r.refuse_write().is_none() && r.refuse_end_transaction().is_none());
        assert!(r.refuse_pull().is_none());
    }
}
