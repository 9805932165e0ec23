//! Ordered-consumption queue locks (LOCK_BATCH_MQ, UNLOCK_BATCH_MQ): a
//! client of a group holds a queue for `rebalanceLockMaxLiveTime` unless it
//! renews the lock.

use super::BrokerService;
use crate::actors::broker::locks::{TryLock, Unlock};
use crate::service::{Caller, Refusal};
use crate::wire::bodies::MessageQueue;
use crate::wire::names;

#[derive(Debug, Clone)]
pub struct LockRequest {
    pub group: String,
    pub client_id: String,
    pub queues: Vec<MessageQueue>,
}

impl BrokerService {
    /// Locks what it can; returns the queues now held by this client.
    pub async fn lock_queues(
        &self,
        _caller: &Caller,
        r: LockRequest,
    ) -> Result<Vec<MessageQueue>, Refusal> {
        names::check_group(&r.group)?;
        self.ctx()
            .services
            .locks
            .send(TryLock {
                group: r.group,
                client_id: r.client_id,
                mqs: r.queues,
            })
            .await
            .map_err(|_| Refusal::busy("lock table"))
    }

    pub async fn unlock_queues(&self, _caller: &Caller, r: LockRequest) -> Result<(), Refusal> {
        names::check_group(&r.group)?;
        self.ctx()
            .services
            .locks
            .send(Unlock {
                group: r.group,
                client_id: r.client_id,
                mqs: r.queues,
            })
            .await
            .map_err(|_| Refusal::busy("lock table"))
    }
}
