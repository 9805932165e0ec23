//! RocketMQ 5's AutoSwitch HA (`AutoSwitchHAService`,
//! `AutoSwitchHAConnection`, `AutoSwitchHAClient`, the SyncStateSet upkeep
//! of `ReplicasManager`) for brokers in controller mode
//! (`enableControllerMode=true`); classic HA (`actors::ha`) stays for the
//! others.
//!
//! * [`epoch`]: the epoch file `epochFileCheckpoint` and the search for the
//!   point where a slave's log leaves its master's.
//! * [`frames`]: the 16-byte handshake, 20 + 12·N-byte reply, 36-byte
//!   transfer header and 12-byte ack.
//! * [`connection`]: the master side, one actor per slave, behind
//!   [`connection::AutoSwitchService`] on `haListenPort`.
//! * [`client`]: the slave side: handshake, truncation, transfer.
//! * [`AutoSwitch`] (here): what both sides and the broker share — the
//!   epochs, the SyncStateSet as the master keeps it, the slaves' acks,
//!   the confirm offset, the ALTER requests to the controller, and the
//!   controller contact that fences an isolated master.
//!
//! The master's SyncStateSet changes only when the controller committed
//! the change (an ALTER's SUCCESS, or the set in a role change or poll).
//! While an ALTER is in flight the union of the old and the proposed set
//! counts (apache/rocketmq#5663): a shrink takes effect only once the
//! controller has it, so an isolated master never drops its slaves behind
//! the controller's back and, with `allAckInSyncStateSet=true`, never
//! acknowledges a write its followers lack.
//!
//! The confirm offset (`confirmOffset`): on a master with
//! `allAckInSyncStateSet=true` the lowest ack (> 0, #6728) of the
//! connected members (the master's own end included); unchanged while a
//! member has no connection (#6662); its log end when alone or without
//! `allAckInSyncStateSet`. On a slave: the master's, capped at its own end.
//! Readers see no record ending above it (the consume queues cap pulls at
//! it, `QueueActor::query`), it is persisted at byte 32 of `checkpoint`
//! and reported in the controller heartbeats.

pub mod client;
pub mod connection;
pub mod epoch;
pub mod frames;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::client::remoting::{ClientConfig, RemotingClient};
use crate::store::CommitLogReader;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::controller::SyncStateSetBody;
use crate::wire::headers::controller::{
    AlterSyncStateSetRequestHeader, AlterSyncStateSetResponseHeader,
};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

use super::group_transfer::GroupTransfer;
use super::HaConfig;
use epoch::EpochFile;

/// The controller-mode settings of replication.
#[derive(Debug, Clone)]
pub struct AutoSwitchConfig {
    /// `allAckInSyncStateSet` (false).
    pub all_ack: bool,
    /// `checkSyncStateSetPeriod` (5000 ms).
    pub check_period: Duration,
    /// `haMaxTimeSlaveNotCatchup` (15000 ms).
    pub max_not_catchup: Duration,
    /// `syncFromLastFile` (false).
    pub sync_from_last_file: bool,
    /// `controllerHeartBeatTimeoutMills` (10000 ms): a master that has not
    /// reached the controller for this long refuses writes.
    pub controller_timeout: Duration,
    /// `storePathEpochFile`.
    pub epoch_file: std::path::PathBuf,
    pub broker_name: String,
    pub cluster: String,
}

fn flag(m: &std::collections::BTreeMap<String, String>, k: &str, d: bool) -> bool {
    m.get(k)
        .map_or(d, |v| v.trim().eq_ignore_ascii_case("true"))
}

fn ms(m: &std::collections::BTreeMap<String, String>, k: &str, d: u64) -> Duration {
    Duration::from_millis(m.get(k).and_then(|v| v.trim().parse().ok()).unwrap_or(d))
}

impl AutoSwitchConfig {
    /// The settings when `enableControllerMode=true`, else None.
    pub fn from_broker(cfg: &crate::config::BrokerConfig) -> Option<AutoSwitchConfig> {
        let m = &cfg.unknown;
        if !flag(m, "enableControllerMode", false) {
            return None;
        }
        Some(AutoSwitchConfig {
            all_ack: flag(m, "allAckInSyncStateSet", false),
            check_period: ms(m, "checkSyncStateSetPeriod", 5000).max(Duration::from_millis(50)),
            max_not_catchup: ms(m, "haMaxTimeSlaveNotCatchup", 15_000),
            sync_from_last_file: flag(m, "syncFromLastFile", false),
            controller_timeout: ms(m, "controllerHeartBeatTimeoutMills", 10_000),
            epoch_file: m
                .get("storePathEpochFile")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| cfg.store_path_root_dir.join("epochFileCheckpoint")),
            broker_name: cfg.broker_name.clone(),
            cluster: cfg.broker_cluster_name.clone(),
        })
    }
}

/// A slave as the master sees it, by broker id.
#[derive(Debug, Clone, Default)]
struct Slave {
    addr: String,
    connections: usize,
    ack: i64,
    learner: bool,
    caught_up: Option<Instant>,
}

#[derive(Debug, Default)]
struct SetState {
    master: bool,
    my_id: i64,
    master_epoch: i32,
    local: BTreeSet<i64>,
    /// The set proposed to the controller, while the ALTER is in flight.
    remote: Option<BTreeSet<i64>>,
    ss_epoch: i32,
    slaves: HashMap<i64, Slave>,
    became_master: Option<Instant>,
}

impl SetState {
    fn union(&self) -> BTreeSet<i64> {
        let mut u = self.local.clone();
        if let Some(r) = &self.remote {
            u.extend(r.iter().copied());
        }
        u
    }
}

/// A role the controller announced (NOTIFY_BROKER_ROLE_CHANGED), for the
/// broker's agent.
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "()")]
pub struct RoleNotified {
    pub master_id: i64,
    pub master_addr: String,
    pub master_epoch: i32,
    pub ss_epoch: i32,
    pub set: BTreeSet<i64>,
}

/// What the broker, its agent and the HA actors share in controller mode.
pub struct AutoSwitch {
    pub cfg: AutoSwitchConfig,
    pub ha: HaConfig,
    pub reader: CommitLogReader,
    pub group: Arc<GroupTransfer>,
    epochs: Mutex<EpochFile>,
    st: Mutex<SetState>,
    /// Where ALTERs go (set by the agent): the controller leader, or a
    /// follower asked to forward (`true`; the broker cannot reach the
    /// leader, apache/rocketmq#10812).
    leader: Mutex<Option<(String, bool)>>,
    /// Last successful exchange with the controller leader.
    contact: Mutex<Option<Instant>>,
    client: RemotingClient,
    /// The agent, for NOTIFY_BROKER_ROLE_CHANGED.
    pub notify: OnceLock<actix::Recipient<RoleNotified>>,
}

impl std::fmt::Debug for AutoSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoSwitch")
            .field("cfg", &self.cfg)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AutoSwitch {
    /// Loads the epoch file; the confirm offset starts at the checkpoint's,
    /// clamped to the log.
    pub fn new(
        cfg: AutoSwitchConfig,
        ha: HaConfig,
        reader: CommitLogReader,
        group: Arc<GroupTransfer>,
        checkpoint_confirm: i64,
    ) -> Arc<AutoSwitch> {
        let mut epochs = EpochFile::load(&cfg.epoch_file);
        let max = reader.max_offset();
        // Entries past the log (a cut tail) go, as Java's recovery does.
        epochs.truncate_suffix(max.saturating_add(1));
        let confirm = checkpoint_confirm.clamp(reader.min_offset(), max);
        reader.set_confirm_offset(confirm);
        tracing::info!(epochs = ?epochs.entries(max), confirm, "AutoSwitch HA");
        Arc::new(AutoSwitch {
            cfg,
            ha,
            reader,
            group,
            epochs: Mutex::new(epochs),
            st: Mutex::default(),
            leader: Mutex::default(),
            contact: Mutex::default(),
            client: RemotingClient::new(ClientConfig::default()),
            notify: OnceLock::new(),
        })
    }

    // ------------------------------------------------------------ epochs

    /// The epoch file, locked.
    pub fn epochs(&self) -> MutexGuard<'_, EpochFile> {
        lock(&self.epochs)
    }

    /// The last local epoch (-1: none), as heartbeats report it.
    pub fn last_epoch(&self) -> i32 {
        self.epochs().last_epoch()
    }

    // ------------------------------------------------------------ roles

    pub fn is_master(&self) -> bool {
        lock(&self.st).master
    }

    /// The master epoch of the role held.
    pub fn master_epoch(&self) -> i32 {
        lock(&self.st).master_epoch
    }

    /// This broker's controller id (0 until known).
    pub fn my_id(&self) -> i64 {
        lock(&self.st).my_id
    }

    pub fn set_my_id(&self, id: i64) {
        lock(&self.st).my_id = id;
    }

    /// The controller made this broker master of `epoch` with `set`: the
    /// epoch entry (epoch, log end) is appended (the caller cut the log to
    /// its last complete record first).
    pub fn become_master(&self, epoch: i32, set: BTreeSet<i64>, ss_epoch: i32) {
        let end = self.reader.max_offset();
        {
            let mut e = self.epochs();
            if !e.become_master(epoch, end) {
                tracing::error!(epoch, end, "epoch entry not appended");
            }
        }
        let mut st = lock(&self.st);
        st.master = true;
        st.master_epoch = epoch;
        st.local = set;
        let me = st.my_id;
        st.local.insert(me);
        st.remote = None;
        st.ss_epoch = ss_epoch;
        st.became_master = Some(Instant::now());
        let now = Instant::now();
        for s in st.slaves.values_mut() {
            s.caught_up.get_or_insert(now);
        }
        self.recompute(&mut st);
        tracing::info!(epoch, start = end, set = ?st.local, ss_epoch, "AutoSwitch: master");
    }

    /// This broker follows a master now.
    pub fn become_slave(&self, epoch: i32) {
        let mut st = lock(&self.st);
        st.master = false;
        st.master_epoch = epoch;
        st.remote = None;
        st.became_master = None;
        tracing::info!(epoch, "AutoSwitch: slave");
    }

    /// The controller's SyncStateSet (poll, notify): adopted when newer.
    pub fn adopt_set(&self, master_epoch: i32, set: BTreeSet<i64>, ss_epoch: i32) {
        let mut st = lock(&self.st);
        if !st.master || master_epoch != st.master_epoch || ss_epoch <= st.ss_epoch {
            return;
        }
        tracing::info!(
            ?set,
            ss_epoch,
            "AutoSwitch: SyncStateSet from the controller"
        );
        st.local = set;
        st.ss_epoch = ss_epoch;
        st.remote = None;
        self.recompute(&mut st);
    }

    /// (local set, set epoch, in-flight proposal).
    pub fn sync_state_set(&self) -> (BTreeSet<i64>, i32, Option<BTreeSet<i64>>) {
        let st = lock(&self.st);
        (st.local.clone(), st.ss_epoch, st.remote.clone())
    }

    // ------------------------------------------------------------ controller

    pub fn set_leader(&self, leader: Option<String>) {
        self.set_route(leader, false);
    }

    /// The controller the ALTERs go to; `forward`: a follower that passes
    /// them on to the leader.
    pub fn set_route(&self, to: Option<String>, forward: bool) {
        *lock(&self.leader) = to.map(|a| (a, forward));
    }

    /// The agent reached the controller leader.
    pub fn controller_contact(&self) {
        *lock(&self.contact) = Some(Instant::now());
    }

    /// A master that has not reached the controller for longer than the
    /// heartbeat timeout: the controller may have elected another master,
    /// so it acknowledges no write (§ fencing in docs/controller.md).
    pub fn fenced(&self) -> bool {
        if !self.is_master() {
            return false;
        }
        lock(&self.contact).is_none_or(|t| t.elapsed() > self.cfg.controller_timeout)
    }

    // ------------------------------------------------------------ slaves

    /// A slave's connection (from `addr`) finished its handshake.
    pub fn slave_connected(&self, id: i64, addr: &str, learner: bool) {
        let mut st = lock(&self.st);
        let s = st.slaves.entry(id).or_default();
        s.addr = addr.to_owned();
        s.connections += 1;
        s.learner = learner;
        s.ack = -1;
    }

    /// A slave's connection closed: proposes the set without it (taking
    /// effect once the controller has it).
    pub fn slave_closed(self: &Arc<Self>, id: i64) {
        let mut st = lock(&self.st);
        let Some(s) = st.slaves.get_mut(&id) else {
            return;
        };
        s.connections = s.connections.saturating_sub(1);
        if s.connections > 0 {
            return;
        }
        if st.master && st.local.contains(&id) {
            let mut next = st.local.clone();
            next.remove(&id);
            self.propose(&mut st, next);
        }
    }

    /// The slave had everything the master has at `at` (the time of its
    /// ack).
    pub fn caught_up(&self, id: i64, at: Instant) {
        if let Some(s) = lock(&self.st).slaves.get_mut(&id) {
            s.caught_up = Some(s.caught_up.map_or(at, |c| c.max(at)));
        }
    }

    /// An ack from slave `id`; `transfer` is (master end, time) of the last
    /// frame sent to it.
    pub fn acked(self: &Arc<Self>, id: i64, offset: i64, transfer: Option<(i64, Instant)>) {
        let mut st = lock(&self.st);
        let max = self.reader.max_offset();
        let Some(s) = st.slaves.get_mut(&id) else {
            return;
        };
        s.ack = offset;
        let learner = s.learner;
        if !learner {
            if offset >= max {
                s.caught_up = Some(Instant::now());
            } else if let Some((end, at)) = transfer.filter(|(end, _)| offset >= *end) {
                let _ = end;
                s.caught_up = Some(s.caught_up.map_or(at, |c| c.max(at)));
            }
        }
        if !st.master {
            return;
        }
        let members = st.union();
        if !learner && !members.contains(&id) {
            let start = self.epochs().last().map_or(0, |(_, s)| s);
            if offset >= self.reader.confirm_offset() && offset >= start {
                let mut next = st.local.clone();
                next.insert(id);
                self.propose(&mut st, next);
            }
        }
        if members.contains(&id) {
            self.recompute(&mut st);
        }
    }

    /// The periodic shrink check (`checkSyncStateSetPeriod`): members that
    /// have not caught up for `haMaxTimeSlaveNotCatchup`, or never did,
    /// leave the set (through the controller).
    pub fn check_shrink(self: &Arc<Self>) {
        let mut st = lock(&self.st);
        if !st.master || st.remote.is_some() {
            return;
        }
        let since = st.became_master.map_or(Duration::ZERO, |t| t.elapsed());
        let me = st.my_id;
        let limit = self.cfg.max_not_catchup;
        let keep: BTreeSet<i64> = st
            .local
            .iter()
            .copied()
            .filter(|id| {
                *id == me
                    || match st.slaves.get(id) {
                        Some(s) if s.connections == 0 => false,
                        Some(s) => s.caught_up.is_some_and(|t| t.elapsed() <= limit),
                        // Never connected since this broker became master:
                        // it gets the same time to come.
                        None => since <= limit,
                    }
            })
            .collect();
        if keep != st.local {
            tracing::info!(from = ?st.local, to = ?keep, "AutoSwitch: shrinking the SyncStateSet");
            self.propose(&mut st, keep);
        }
    }

    // ------------------------------------------------------------ confirm

    /// Recomputes the confirm offset and releases the sends it covers.
    fn recompute(&self, st: &mut SetState) {
        if !st.master {
            return;
        }
        let max = self.reader.max_offset();
        let members = st.union();
        let others: Vec<i64> = members
            .iter()
            .copied()
            .filter(|id| *id != st.my_id)
            .collect();
        // "The log end" (no limit) is kept as i64::MAX; a held value must
        // then be frozen at the end as it is now, and it is no floor for
        // the members' acks: records written after a member was added wait
        // for it.
        let limited = self.reader.confirm_limited();
        let old = self.reader.confirm_offset().min(max);
        let confirm = if !self.cfg.all_ack || others.is_empty() {
            i64::MAX
        } else {
            let mut c = max;
            for id in &others {
                match st.slaves.get(id) {
                    Some(s) if s.connections > 0 && s.ack > 0 => c = c.min(s.ack),
                    // A member without a connection (#6662), or one that
                    // has not acked anything yet (a fresh connection,
                    // #6728): the old value stays.
                    _ => {
                        self.reader.set_confirm_offset(old);
                        self.group.confirmed(old);
                        return;
                    }
                }
            }
            if limited {
                c.max(old)
            } else {
                c
            }
        };
        self.reader.set_confirm_offset(confirm);
        self.group.confirmed(confirm.min(max));
    }

    /// Recompute after the master's own log grew (a send wants to know
    /// whether it is covered already).
    pub fn refresh(&self) {
        let mut st = lock(&self.st);
        self.recompute(&mut st);
    }

    /// A slave: the master's confirm offset, capped at its own end.
    pub fn slave_confirm(&self, master_confirm: i64) {
        let c = master_confirm.min(self.reader.max_offset());
        self.reader.set_confirm_offset(c);
    }

    /// The connected slaves for GET_BROKER_HA_STATUS: (address, ack,
    /// learner, in the SyncStateSet).
    pub fn connected_slaves(&self) -> Vec<(String, i64, bool, bool)> {
        let st = lock(&self.st);
        let members = st.union();
        let mut v: Vec<_> = st
            .slaves
            .iter()
            .filter(|(_, s)| s.connections > 0)
            .map(|(id, s)| (s.addr.clone(), s.ack, s.learner, members.contains(id)))
            .collect();
        v.sort();
        v
    }

    /// Replicas a send's `minInSyncReplicas` check sees: the larger of the
    /// local and the proposed set.
    pub fn in_sync_count(&self) -> usize {
        let st = lock(&self.st);
        st.local
            .len()
            .max(st.remote.as_ref().map_or(0, |r| r.len()))
            .max(1)
    }

    // ------------------------------------------------------------ ALTER

    /// Sends CONTROLLER_ALTER_SYNC_STATE_SET for `next` unless one is in
    /// flight; the local set changes only on SUCCESS.
    fn propose(self: &Arc<Self>, st: &mut SetState, mut next: BTreeSet<i64>) {
        next.insert(st.my_id);
        if st.remote.is_some() || next == st.local {
            return;
        }
        let Some((leader, forward)) = lock(&self.leader).clone() else {
            return;
        };
        st.remote = Some(next.clone());
        let header = AlterSyncStateSetRequestHeader {
            broker_name: self.cfg.broker_name.clone(),
            master_broker_id: st.my_id,
            master_epoch: st.master_epoch,
            invoke_time: crate::wire::now_ms(),
        };
        let body = SyncStateSetBody {
            sync_state_set: next.clone(),
            sync_state_set_epoch: st.ss_epoch,
        };
        let (me, epoch) = (self.clone(), st.master_epoch);
        tracing::info!(from = ?st.local, to = ?next, "AutoSwitch: ALTER_SYNC_STATE_SET");
        tokio::spawn(async move {
            let mut cmd = RemotingCommand::request(rq::CONTROLLER_ALTER_SYNC_STATE_SET);
            cmd.ext = header.to_ext();
            if forward {
                cmd.ext.insert(crate::controller::FORWARD, "true");
            }
            let cmd = cmd.with_body(crate::wire::bodies::to_fastjson(&body));
            let r = me.client.invoke(&leader, cmd, Duration::from_secs(3)).await;
            let mut st = lock(&me.st);
            if st.remote.as_ref() != Some(&next) || st.master_epoch != epoch {
                return;
            }
            st.remote = None;
            let mut altered = false;
            match r {
                Ok(r) if r.code == rs::SUCCESS => {
                    altered = true;
                    let parsed: Option<SyncStateSetBody> =
                        crate::wire::json::from_fastjson(&r.body_bytes()).ok();
                    let new_epoch = AlterSyncStateSetResponseHeader::from_ext(&r.ext)
                        .ok()
                        .and_then(|h| h.new_sync_state_set_epoch);
                    let (set, e) = match parsed {
                        Some(b) if !b.sync_state_set.is_empty() => {
                            (b.sync_state_set, b.sync_state_set_epoch)
                        }
                        _ => (next, new_epoch.unwrap_or(st.ss_epoch + 1)),
                    };
                    tracing::info!(?set, ss_epoch = e, "AutoSwitch: SyncStateSet altered");
                    st.local = set;
                    st.ss_epoch = e;
                    me.controller_contact();
                }
                Ok(r) => {
                    tracing::warn!(code = r.code, remark = ?r.remark, "AutoSwitch: ALTER refused")
                }
                Err(e) => tracing::warn!(error = %e, "AutoSwitch: ALTER failed"),
            }
            me.recompute(&mut st);
            // Members whose connections closed while this ALTER was in
            // flight (two slaves dropping at once, apache/rocketmq PR
            // #9897) leave now, not at the next periodic check. Only after
            // a SUCCESS: a refused master does not retry in a loop.
            if altered {
                let my_id = st.my_id;
                let gone: Vec<i64> = st
                    .local
                    .iter()
                    .copied()
                    .filter(|id| {
                        *id != my_id && st.slaves.get(id).is_some_and(|s| s.connections == 0)
                    })
                    .collect();
                if !gone.is_empty() {
                    let mut next = st.local.clone();
                    for id in gone {
                        next.remove(&id);
                    }
                    me.propose(&mut st, next);
                }
            }
        });
    }
}

/// The periodic SyncStateSet check, for as long as `auto` lives.
pub fn start_shrink_check(auto: &Arc<AutoSwitch>) {
    let weak = Arc::downgrade(auto);
    let every = auto.cfg.check_period;
    actix::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(a) = weak.upgrade() else { return };
            a.check_shrink();
        }
    });
}

#[cfg(test)]
mod tests;
