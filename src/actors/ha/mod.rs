//! Master–slave replication of the commit log: RocketMQ's classic HA
//! (`DefaultHAService`, `DefaultHAConnection`, `DefaultHAClient`,
//! `GroupTransferService`), as actors.
//!
//! * On every broker a [`service::HaService`] actor listens on
//!   `haListenPort` (Java: `listenPort + 1`; 0 picks a free port) — the
//!   address REGISTER_BROKER carries as `haServerAddr` — and starts one
//!   [`connection::HaConnection`] actor per slave that connects (Java's
//!   `AcceptSocketService`, which runs whatever the role).
//! * On a slave one [`client::HaClient`] actor follows the master at
//!   `haMasterAddress`, or at the `haServerAddr` the name server returned
//!   in its REGISTER_BROKER response (`Registrar` feeds [`MasterAddress`]).
//! * [`group_transfer::GroupTransfer`] holds the slaves' acknowledged
//!   offsets and the SYNC_MASTER sends waiting for them.
//!
//! Wire layout (`DefaultHAClient#reportSlaveMaxOffset`,
//! `DefaultHAConnection.WriteSocketService`), all integers big-endian:
//!
//! ```text
//! slave → master   [8: max physical offset of the slave's commit log]
//! master → slave   [8: physical offset of the body][4: body size][body]
//! ```
//!
//! The body is a raw range of the master's commit log (records and segment
//! fillers, never crossing a segment end), at most `haTransferBatchSize`
//! bytes; a frame with an empty body is a heartbeat, sent after
//! `haSendHeartbeatInterval` without data. The master starts a slave where
//! its first report says; a slave reporting 0 (an empty store) starts at
//! the master's last segment, as Java's does, and its log begins there
//! (`store::ha_append`). A slave that receives
//! an offset other than its own end closes and reconnects, as Java's
//! `DefaultHAClient#dispatchReadRequest` does. Either side drops a
//! connection silent for `haHousekeepingInterval`. A learner
//! (`asyncLearner=true`) first sends [`LEARNER_HELLO`]; the master then
//! replicates to it but never counts it.

pub mod autoswitch;
pub mod client;
pub mod connection;
pub mod group_transfer;
pub mod service;
pub mod slave_sync;
pub mod status;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::ConfigError;

/// Size of the slave's report (`DefaultHAClient.REPORT_HEADER_SIZE`).
pub const REPORT_HEADER_SIZE: usize = 8;
/// Size of a transfer header (`DefaultHAConnection.TRANSFER_HEADER_SIZE`).
pub const TRANSFER_HEADER_SIZE: usize = 12;

/// What an `asyncLearner` slave sends before its first report, in the
/// report's 8-byte slot. Classic HA has no handshake (RocketMQ's learners
/// announce themselves in the AutoSwitch handshake); a negative offset is
/// never a report, so an ActorMQ master reads this one as "do not count
/// me" and a Java master, which expects offsets only, should not be
/// followed by a learner.
pub const LEARNER_HELLO: i64 = -0x004c_4541_524e_4552; // -"LEARNER"

/// The transfer header of a body of `size` bytes at `offset`.
pub fn transfer_header(offset: i64, size: i32) -> [u8; TRANSFER_HEADER_SIZE] {
    let mut h = [0u8; TRANSFER_HEADER_SIZE];
    h[..8].copy_from_slice(&offset.to_be_bytes());
    h[8..].copy_from_slice(&size.to_be_bytes());
    h
}

/// Replication settings, RocketMQ's `MessageStoreConfig` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// `haListenPort`; `None`: the broker's listen port + 1 (Java's
    /// `BrokerStartup`); `Some(0)`: a free port.
    pub listen_port: Option<u16>,
    /// `haMasterAddress`: the master's HA address, fixed; empty: learned
    /// from the name server.
    pub master_address: String,
    /// `haSendHeartbeatInterval`, ms (5 s).
    pub send_heartbeat_interval: u64,
    /// `haHousekeepingInterval`, ms (20 s): a silent connection is closed.
    pub housekeeping_interval: u64,
    /// `haTransferBatchSize`: most bytes in one frame (32 KiB).
    pub transfer_batch_size: usize,
    /// `haMaxGapNotInSync`: a slave further behind is not in sync (256 MiB).
    pub max_gap_not_in_sync: i64,
    /// How often a slave copies its master's metadata, ms (Java's
    /// `SlaveSynchronize`, every 10 s); key `haSlaveSyncInterval`.
    pub slave_sync_interval: u64,
    /// The master's broker (remoting) address for that copy, fixed; empty:
    /// the name server's `masterAddr`; key `haMasterBrokerAddress`.
    pub master_broker_address: String,
    /// `inSyncReplicas`: replicas, the master included, a SYNC_MASTER send
    /// waits for (RocketMQ 5; default 1). With this and
    /// `minInSyncReplicas` at 1 and no `enableAutoInSyncReplicas`, a
    /// SYNC_MASTER keeps RocketMQ 4.9's rule (one slave, else
    /// SLAVE_NOT_AVAILABLE).
    pub in_sync_replicas: usize,
    /// `minInSyncReplicas`: fewer replicas in sync than this refuses sends
    /// with IN_SYNC_REPLICAS_NOT_ENOUGH (default 1).
    pub min_in_sync_replicas: usize,
    /// `enableAutoInSyncReplicas`: lower the replicas waited for to those
    /// in sync, down to `minInSyncReplicas` (default false).
    pub auto_in_sync_replicas: bool,
    /// `asyncLearner`: this slave replicates but its master never counts
    /// it (default false).
    pub async_learner: bool,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            listen_port: None,
            master_address: String::new(),
            send_heartbeat_interval: 5_000,
            housekeeping_interval: 20_000,
            transfer_batch_size: 32 * 1024,
            max_gap_not_in_sync: 256 * 1024 * 1024,
            slave_sync_interval: 10_000,
            master_broker_address: String::new(),
            in_sync_replicas: 1,
            min_in_sync_replicas: 1,
            auto_in_sync_replicas: false,
            async_learner: false,
        }
    }
}

fn parse<T: std::str::FromStr>(
    m: &BTreeMap<String, String>,
    key: &str,
    why: &'static str,
    ok: impl Fn(&T) -> bool,
) -> Result<Option<T>, ConfigError> {
    let Some(v) = m.get(key) else { return Ok(None) };
    match v.trim().parse::<T>() {
        Ok(x) if ok(&x) => Ok(Some(x)),
        _ => Err(ConfigError::BadValue {
            key: key.into(),
            value: v.clone(),
            why,
        }),
    }
}

impl HaConfig {
    pub fn apply(&mut self, m: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        if let Some(p) = parse::<u16>(m, "haListenPort", "a port, 0 for any", |_| true)? {
            self.listen_port = Some(p);
        }
        if let Some(a) = m.get("haMasterAddress") {
            self.master_address = a.trim().to_owned();
        }
        let positive = "a positive number";
        if let Some(v) = parse(m, "haSendHeartbeatInterval", positive, |v: &u64| *v > 0)? {
            self.send_heartbeat_interval = v;
        }
        if let Some(v) = parse(m, "haHousekeepingInterval", positive, |v: &u64| *v > 0)? {
            self.housekeeping_interval = v;
        }
        if let Some(v) = parse(m, "haTransferBatchSize", positive, |v: &usize| *v > 0)? {
            self.transfer_batch_size = v;
        }
        if let Some(v) = parse(m, "haMaxGapNotInSync", positive, |v: &i64| *v > 0)? {
            self.max_gap_not_in_sync = v;
        }
        if let Some(v) = parse(m, "haSlaveSyncInterval", positive, |v: &u64| *v > 0)? {
            self.slave_sync_interval = v;
        }
        if let Some(a) = m.get("haMasterBrokerAddress") {
            self.master_broker_address = a.trim().to_owned();
        }
        let replicas = "a replica count from 1 to 64 (the master included)";
        let count = |v: &usize| (1..=64).contains(v);
        if let Some(v) = parse(m, "inSyncReplicas", replicas, count)? {
            self.in_sync_replicas = v;
        }
        if let Some(v) = parse(m, "minInSyncReplicas", replicas, count)? {
            self.min_in_sync_replicas = v;
        }
        let flag = "true or false";
        if let Some(v) = parse(m, "enableAutoInSyncReplicas", flag, |_: &bool| true)? {
            self.auto_in_sync_replicas = v;
        }
        if let Some(v) = parse(m, "asyncLearner", flag, |_: &bool| true)? {
            self.async_learner = v;
        }
        Ok(())
    }
}

/// What the rest of the broker sees of replication (in `BrokerCtx`).
#[derive(Debug)]
pub struct HaRuntime {
    /// The slaves' acknowledgements and the sends waiting on them.
    pub group: Arc<group_transfer::GroupTransfer>,
    /// The bound HA address (`haServerAddr`).
    pub server_addr: String,
    /// The master's HA address as learned from the name server.
    pub master: MasterAddress,
    /// The slave side's connection state.
    pub client: Arc<client::HaClientState>,
    /// Controller mode: AutoSwitch HA in place of classic HA.
    pub auto: Option<Arc<autoswitch::AutoSwitch>>,
}

/// The master's HA address as the name server last told this broker
/// (REGISTER_BROKER's `haServerAddr`), shared by the `Registrar` (writer)
/// and the `HaClient` (reader).
/// Also holds the master's broker address (`masterAddr`), which the
/// metadata sync ([`slave_sync`]) and HA status use, and whether a slave's
/// `HaClient` is waiting for the HA address: the `Registrar` then
/// registers every second instead of every `registerBrokerIntervalMs`, so
/// a slave that registered before its master finds it within a second or
/// so (Java waits for the next 30 s registration).
#[derive(Debug, Clone, Default)]
pub struct MasterAddress(
    Arc<RwLock<Option<String>>>,
    Arc<RwLock<Option<String>>>,
    Arc<AtomicBool>,
);

/// How often a slave without its master's HA address registers again.
pub const MASTER_LOOKUP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl MasterAddress {
    pub fn set(&self, addr: Option<String>) {
        let addr = addr.filter(|a| !a.is_empty());
        let mut cur = self.0.write().unwrap_or_else(|e| e.into_inner());
        if *cur != addr {
            tracing::info!(master_ha = ?addr, "master HA address learned");
            *cur = addr;
        }
    }

    pub fn get(&self) -> Option<String> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The master's broker address (REGISTER_BROKER's `masterAddr`).
    pub fn set_broker(&self, addr: Option<String>) {
        let addr = addr.filter(|a| !a.is_empty());
        let mut cur = self.1.write().unwrap_or_else(|e| e.into_inner());
        if *cur != addr {
            tracing::info!(master = ?addr, "master broker address learned");
            *cur = addr;
        }
    }

    pub fn broker(&self) -> Option<String> {
        self.1.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `HaClient` is (not) waiting to learn the HA address.
    pub fn set_wanted(&self, wanted: bool) {
        self.2.store(wanted, Ordering::Release);
    }

    /// Whether to register again soon (see the type's doc).
    pub fn wanted(&self) -> bool {
        self.2.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_bad_values_are_refused() {
        let mut c = HaConfig::default();
        let m: BTreeMap<String, String> = [
            ("haListenPort", "0"),
            ("haMasterAddress", " 10.0.0.1:10912 "),
            ("haTransferBatchSize", "4096"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        c.apply(&m).unwrap();
        assert_eq!(c.listen_port, Some(0));
        assert_eq!(c.master_address, "10.0.0.1:10912");
        assert_eq!(c.transfer_batch_size, 4096);
        let bad: BTreeMap<String, String> = [("haMaxGapNotInSync".into(), "-1".into())].into();
        assert!(c.apply(&bad).is_err());
    }

    #[test]
    fn the_transfer_header_is_offset_then_size_big_endian() {
        let h = transfer_header(0x0102_0304_0506_0708, 0x0A0B_0C0D);
        assert_eq!(h, [1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D]);
    }
}
