//! Configuration in RocketMQ's properties format (`broker.conf`,
//! `namesrv.conf`): `key=value` lines, `#`/`!` comments, RocketMQ key names.
//!
//! Raw text is parsed into a key → value map first, then validated into typed
//! configs; unknown keys are kept and ignored (so a RocketMQ user's existing
//! file loads), and `-p/--print-config` prints the effective values.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("bad value for {key}: {value:?} ({why})")]
    BadValue {
        key: String,
        value: String,
        why: &'static str,
    },
    #[error("bad value for {key}: {value} (allowed: {allowed})")]
    OutOfRange {
        key: String,
        value: String,
        allowed: String,
    },
}

#[path = "config_ranges.rs"]
mod ranges;

/// Parses Java properties text (the subset RocketMQ configs use, plus line
/// continuations with a trailing backslash).
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let sep = entry.find(['=', ':']);
        let (k, v) = match sep {
            Some(i) => (&entry[..i], &entry[i + 1..]),
            None => (entry.as_str(), ""),
        };
        let k = k.trim();
        if !k.is_empty() {
            out.insert(k.to_owned(), v.trim().to_owned());
        }
    }
    out
}

pub fn load_properties(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    std::fs::read_to_string(path)
        .map(|t| parse_properties(&t))
        .map_err(|e| ConfigError::Read(path.to_owned(), e))
}

pub(crate) fn get<T: std::str::FromStr>(
    map: &BTreeMap<String, String>,
    key: &str,
    slot: &mut T,
) -> Result<(), ConfigError> {
    if let Some(v) = map.get(key) {
        *slot = v.trim().parse().map_err(|_| ConfigError::BadValue {
            key: key.to_owned(),
            value: v.clone(),
            why: "not a valid value of this type",
        })?;
    }
    Ok(())
}

/// A string-valued setting with a fixed set of values: parsed leniently
/// (trimmed, any case), printed in RocketMQ's spelling.
pub trait ConfigEnum: Copy + FromStr + fmt::Display + 'static {
    /// Every value, in RocketMQ's order.
    const ALL: &'static [Self];
    /// What the error says when a value is not one of them.
    const EXPECTED: &'static str;
    /// The value as RocketMQ spells it.
    fn as_str(self) -> &'static str;

    fn parse_lenient(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

/// Defines a [`ConfigEnum`]: variants with their RocketMQ spellings.
macro_rules! config_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? } expected $expected:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl ConfigEnum for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            const EXPECTED: &'static str = $expected;
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = &'static str;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse_lenient(s).ok_or(Self::EXPECTED)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

config_enum! {
    /// `brokerRole` (Java `BrokerRole`): a master takes writes; a slave
    /// only serves reads, and those only with `slaveReadEnable`. A
    /// SYNC_MASTER answers a send only once a slave has it (`actors::ha`).
    BrokerRole {
        AsyncMaster = "ASYNC_MASTER",
        SyncMaster = "SYNC_MASTER",
        Slave = "SLAVE",
    } expected "expected ASYNC_MASTER, SYNC_MASTER or SLAVE"
}

impl BrokerRole {
    pub fn is_master(self) -> bool {
        self != BrokerRole::Slave
    }
}

config_enum! {
    /// `flushDiskType` (Java `FlushDiskType`): ASYNC_FLUSH flushes every
    /// `flushIntervalCommitLog` ms; SYNC_FLUSH answers a send after fsync.
    FlushDiskType {
        AsyncFlush = "ASYNC_FLUSH",
        SyncFlush = "SYNC_FLUSH",
    } expected "expected ASYNC_FLUSH or SYNC_FLUSH"
}

/// Reads a [`ConfigEnum`] value; the error names the key and the values.
fn get_enum<T: ConfigEnum>(
    map: &BTreeMap<String, String>,
    key: &str,
    slot: &mut T,
) -> Result<(), ConfigError> {
    if let Some(v) = map.get(key) {
        *slot = T::parse_lenient(v).ok_or_else(|| ConfigError::BadValue {
            key: key.to_owned(),
            value: v.clone(),
            why: T::EXPECTED,
        })?;
    }
    Ok(())
}

fn home_store() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join("store")
}

/// Name-server settings.
#[derive(Debug, Clone)]
pub struct NamesrvConfig {
    pub listen_port: u16,
    pub listen_addr: String,
    /// How long a silent broker stays registered (RocketMQ: 120 s).
    pub broker_expire_ms: u64,
    /// How often expired brokers are swept (RocketMQ: 5 s).
    pub scan_interval_ms: u64,
    pub kv_config_path: PathBuf,
    /// Authentication / authorization (`authenticationEnabled`, ...); the
    /// users and ACLs live beside `kvConfigPath`.
    pub auth: crate::auth::settings::AuthSettings,
    /// The `tls.*` keys (see `crate::tls`).
    pub tls: crate::tls::TlsConfig,
    /// Connection limits (`serverChannelMaxIdleTimeSeconds`, ...).
    pub limits: crate::actors::server::ServerLimits,
    /// `enableControllerInNamesrv=true`: the controller keys of the same
    /// file, for a controller inside this process.
    pub controller: Option<crate::controller::ControllerConfig>,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        NamesrvConfig {
            listen_port: 9876,
            listen_addr: "0.0.0.0".into(),
            broker_expire_ms: 120_000,
            scan_interval_ms: 5_000,
            kv_config_path: std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join("namesrv/kvConfig.json"),
            auth: Default::default(),
            tls: crate::tls::TlsConfig::default(),
            limits: Default::default(),
            controller: None,
        }
    }
}

impl NamesrvConfig {
    pub fn apply(&mut self, m: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        get(m, "listenPort", &mut self.listen_port)?;
        get(m, "listenAddr", &mut self.listen_addr)?;
        get(m, "brokerExpireMillis", &mut self.broker_expire_ms)?;
        get(m, "scanNotActiveBrokerInterval", &mut self.scan_interval_ms)?;
        if let Some(p) = m.get("kvConfigPath") {
            self.kv_config_path = PathBuf::from(p);
        }
        self.auth = crate::auth::settings::AuthSettings::from_properties(m, "").map_err(|why| {
            ConfigError::BadValue {
                key: "authentication".into(),
                value: why,
                why: "see the value",
            }
        })?;
        self.tls = crate::tls::TlsConfig::from_properties(m)?;
        self.limits = crate::actors::server::ServerLimits::from_properties(m)?;
        let mut embed = false;
        get(m, "enableControllerInNamesrv", &mut embed)?;
        self.controller = if embed {
            // `listenPort` is the name server's: a controller group of one
            // (no `controllerDLegerPeers`) takes its own default port.
            let mut keys = m.clone();
            keys.remove("listenPort");
            Some(crate::controller::ControllerConfig::from_properties(&keys)?)
        } else {
            None
        };
        ranges::check_namesrv(self, m)
    }

    pub fn print(&self) -> String {
        format!(
            "listenPort={}\nlistenAddr={}\nbrokerExpireMillis={}\nscanNotActiveBrokerInterval={}\nkvConfigPath={}\n",
            self.listen_port,
            self.listen_addr,
            self.broker_expire_ms,
            self.scan_interval_ms,
            self.kv_config_path.display()
        )
    }
}

/// Broker settings, with RocketMQ's key names and defaults.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub broker_cluster_name: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub broker_ip1: String,
    pub listen_port: u16,
    pub listen_addr: String,
    pub namesrv_addr: String,
    pub store_path_root_dir: PathBuf,
    pub flush_disk_type: FlushDiskType,
    /// The role the broker starts in (`brokerRole`); at run time the role
    /// lives in `actors::broker::role::Role` and may change.
    pub broker_role: BrokerRole,
    /// Whether a slave serves pulls (`slaveReadEnable`, Java's default false).
    pub slave_read_enable: bool,
    pub auto_create_topic_enable: bool,
    pub auto_create_subscription_group: bool,
    pub default_topic_queue_nums: i32,
    pub maped_file_size_commit_log: u64,
    pub maped_file_size_consume_queue: u64,
    pub file_reserved_time: u64,
    pub delete_when: String,
    /// File expiry and the message index (see `store::cleanup`, `store::index`).
    pub expiry: ExpiryConfig,
    pub flush_interval_commit_log: u64,
    pub sync_flush_timeout: u64,
    pub max_message_size: usize,
    pub register_broker_interval_ms: u64,
    pub long_polling_enable: bool,
    pub client_channel_expire_ms: u64,
    pub fault_injection_enable: bool,
    pub flush_consumer_offset_interval: u64,
    /// Session arbiters (threads); 0 = one per core.
    pub io_threads: usize,
    /// Run the commit-log writer on its own thread (`true`) or on the first
    /// session arbiter (`false`: no thread hop for sessions placed there).
    pub commit_log_own_thread: bool,
    /// Delay levels, e.g. `1s 5s 10s ...` (`messageDelayLevel`).
    pub message_delay_level: String,
    /// SQL92 property filters on pulls (`enablePropertyFilter`).
    pub enable_property_filter: bool,
    /// Transaction check period, ms (`transactionCheckInterval`).
    pub transaction_check_interval: u64,
    /// Age before a half message is checked, ms (`transactionTimeOut`).
    pub transaction_time_out: u64,
    /// Checks before a half message is abandoned (`transactionCheckMax`).
    pub transaction_check_max: i32,
    /// Timer message precision, ms (`timerPrecisionMs`; the wheel snaps it
    /// down to 100, 200, 500 or 1000 like RocketMQ).
    pub timer_precision_ms: u64,
    /// Slots a timer may be placed ahead of now before it rolls over
    /// (`timerRollWindowSlot`; `timerRollWindowSlots` accepted too).
    pub timer_roll_window_slot: i64,
    /// Longest accepted timer delay, s (`timerMaxDelaySec`): sends beyond it
    /// are refused with MESSAGE_ILLEGAL.
    pub timer_max_delay_sec: i64,
    /// Period of the timer wheel / log flush, ms (`timerFlushIntervalMs`).
    pub timer_flush_interval_ms: u64,
    /// Size of one `timerlog` segment (`mappedFileSizeTimerLog`).
    pub mapped_file_size_timer_log: u64,
    /// Lease of an ordered-consumption queue lock, ms (`rebalanceLockMaxLiveTime`).
    pub rebalance_lock_max_live_time: u64,
    pub unknown: BTreeMap<String, String>,
    // --- supervision (ActorMQ's own keys; see `actors::supervisor`) ---
    /// Failures of one actor tolerated within `supervisorRestartWindowMs`;
    /// one more stops the process (`supervisorMaxRestarts`).
    pub supervisor_max_restarts: u32,
    /// `supervisorRestartWindowMs`.
    pub supervisor_restart_window_ms: u64,
    /// First restart backoff, doubling per failure (`supervisorBackoffMs`).
    pub supervisor_backoff_ms: u64,
    /// Backoff cap (`supervisorBackoffMaxMs`).
    pub supervisor_backoff_max_ms: u64,
    /// Replication settings (`haListenPort`, `haMasterAddress`, ...; see
    /// `actors::ha`).
    pub ha: crate::actors::ha::HaConfig,
    /// The `tls.*` keys (see `crate::tls`); also kept in `unknown`.
    pub tls: crate::tls::TlsConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            broker_cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            broker_ip1: "127.0.0.1".into(),
            listen_port: 10911,
            listen_addr: "0.0.0.0".into(),
            namesrv_addr: std::env::var("NAMESRV_ADDR").unwrap_or_default(),
            store_path_root_dir: home_store(),
            flush_disk_type: FlushDiskType::AsyncFlush,
            broker_role: BrokerRole::AsyncMaster,
            slave_read_enable: false,
            auto_create_topic_enable: true,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 8,
            maped_file_size_commit_log: 1024 * 1024 * 1024,
            maped_file_size_consume_queue: 300_000 * 20,
            file_reserved_time: 72,
            delete_when: "04".into(),
            expiry: ExpiryConfig::default(),
            flush_interval_commit_log: 500,
            sync_flush_timeout: 5_000,
            max_message_size: 4 * 1024 * 1024,
            register_broker_interval_ms: 30_000,
            long_polling_enable: true,
            client_channel_expire_ms: 120_000,
            fault_injection_enable: false,
            flush_consumer_offset_interval: 5_000,
            io_threads: 0,
            // On small machines the writer shares the first session thread:
            // measured faster on 2 cores (no thread hop per send).
            commit_log_own_thread: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                > 2,
            message_delay_level: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"
                .into(),
            enable_property_filter: false,
            transaction_check_interval: 30_000,
            transaction_time_out: 6_000,
            transaction_check_max: 15,
            timer_precision_ms: 1_000,
            timer_roll_window_slot: 2 * 86_400,
            timer_max_delay_sec: 3 * 86_400,
            timer_flush_interval_ms: 1_000,
            mapped_file_size_timer_log: 100 * 1024 * 1024,
            rebalance_lock_max_live_time: 60_000,
            unknown: BTreeMap::new(),
            supervisor_max_restarts: 10,
            supervisor_restart_window_ms: 60_000,
            supervisor_backoff_ms: 100,
            supervisor_backoff_max_ms: 10_000,
            ha: crate::actors::ha::HaConfig::default(),
            tls: crate::tls::TlsConfig::default(),
        }
    }
}

const BROKER_KEYS: &[&str] = &[
    "brokerClusterName",
    "brokerName",
    "brokerId",
    "brokerIP1",
    "listenPort",
    "listenAddr",
    "namesrvAddr",
    "storePathRootDir",
    "flushDiskType",
    "brokerRole",
    "slaveReadEnable",
    "autoCreateTopicEnable",
    "autoCreateSubscriptionGroup",
    "defaultTopicQueueNums",
    "mapedFileSizeCommitLog",
    "mappedFileSizeCommitLog",
    "mapedFileSizeConsumeQueue",
    "mappedFileSizeConsumeQueue",
    "fileReservedTime",
    "deleteWhen",
    "diskMaxUsedSpaceRatio",
    "diskSpaceCleanForciblyRatio",
    "diskSpaceWarningLevelRatio",
    "cleanFileForciblyEnable",
    "cleanResourceInterval",
    "deleteCommitLogFilesInterval",
    "deleteFileBatchMax",
    "diskUsageOverrideRatio",
    "messageIndexEnable",
    "maxHashSlotNum",
    "maxIndexNum",
    "defaultQueryMaxNum",
    "maxMsgsNumBatch",
    "flushIntervalCommitLog",
    "syncFlushTimeout",
    "maxMessageSize",
    "registerBrokerIntervalMs",
    "longPollingEnable",
    "clientChannelExpireMillis",
    "faultInjectionEnable",
    "flushConsumerOffsetInterval",
    "ioThreads",
    "commitLogOwnThread",
    "messageDelayLevel",
    "enablePropertyFilter",
    "transactionCheckInterval",
    "transactionTimeOut",
    "transactionCheckMax",
    "timerPrecisionMs",
    "timerRollWindowSlot",
    "timerRollWindowSlots",
    "timerMaxDelaySec",
    "timerFlushIntervalMs",
    "mappedFileSizeTimerLog",
    "rebalanceLockMaxLiveTime",
    "supervisorMaxRestarts",
    "supervisorRestartWindowMs",
    "supervisorBackoffMs",
    "supervisorBackoffMaxMs",
    "haListenPort",
    "haMasterAddress",
    "haSendHeartbeatInterval",
    "haHousekeepingInterval",
    "haTransferBatchSize",
    "haMaxGapNotInSync",
];

impl BrokerConfig {
    pub fn apply(&mut self, m: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        get(m, "brokerClusterName", &mut self.broker_cluster_name)?;
        get(m, "brokerName", &mut self.broker_name)?;
        get(m, "brokerId", &mut self.broker_id)?;
        get(m, "brokerIP1", &mut self.broker_ip1)?;
        get(m, "listenPort", &mut self.listen_port)?;
        get(m, "listenAddr", &mut self.listen_addr)?;
        get(m, "namesrvAddr", &mut self.namesrv_addr)?;
        if let Some(p) = m.get("storePathRootDir") {
            self.store_path_root_dir = expand_home(p);
        }
        get_enum(m, "flushDiskType", &mut self.flush_disk_type)?;
        get_enum(m, "brokerRole", &mut self.broker_role)?;
        get(m, "slaveReadEnable", &mut self.slave_read_enable)?;
        get(
            m,
            "autoCreateTopicEnable",
            &mut self.auto_create_topic_enable,
        )?;
        get(
            m,
            "autoCreateSubscriptionGroup",
            &mut self.auto_create_subscription_group,
        )?;
        get(
            m,
            "defaultTopicQueueNums",
            &mut self.default_topic_queue_nums,
        )?;
        get(
            m,
            "mapedFileSizeCommitLog",
            &mut self.maped_file_size_commit_log,
        )?;
        get(
            m,
            "mappedFileSizeCommitLog",
            &mut self.maped_file_size_commit_log,
        )?;
        get(
            m,
            "mapedFileSizeConsumeQueue",
            &mut self.maped_file_size_consume_queue,
        )?;
        get(
            m,
            "mappedFileSizeConsumeQueue",
            &mut self.maped_file_size_consume_queue,
        )?;
        get(m, "fileReservedTime", &mut self.file_reserved_time)?;
        get(m, "deleteWhen", &mut self.delete_when)?;
        self.expiry.apply(m)?;
        get(
            m,
            "flushIntervalCommitLog",
            &mut self.flush_interval_commit_log,
        )?;
        get(m, "syncFlushTimeout", &mut self.sync_flush_timeout)?;
        get(m, "maxMessageSize", &mut self.max_message_size)?;
        get(
            m,
            "registerBrokerIntervalMs",
            &mut self.register_broker_interval_ms,
        )?;
        get(m, "longPollingEnable", &mut self.long_polling_enable)?;
        get(
            m,
            "clientChannelExpireMillis",
            &mut self.client_channel_expire_ms,
        )?;
        get(m, "faultInjectionEnable", &mut self.fault_injection_enable)?;
        get(
            m,
            "flushConsumerOffsetInterval",
            &mut self.flush_consumer_offset_interval,
        )?;
        get(m, "ioThreads", &mut self.io_threads)?;
        get(m, "commitLogOwnThread", &mut self.commit_log_own_thread)?;
        get(m, "messageDelayLevel", &mut self.message_delay_level)?;
        get(m, "enablePropertyFilter", &mut self.enable_property_filter)?;
        get(
            m,
            "transactionCheckInterval",
            &mut self.transaction_check_interval,
        )?;
        get(m, "transactionTimeOut", &mut self.transaction_time_out)?;
        get(m, "transactionCheckMax", &mut self.transaction_check_max)?;
        get(m, "timerPrecisionMs", &mut self.timer_precision_ms)?;
        get(m, "timerRollWindowSlot", &mut self.timer_roll_window_slot)?;
        get(m, "timerRollWindowSlots", &mut self.timer_roll_window_slot)?;
        get(m, "timerMaxDelaySec", &mut self.timer_max_delay_sec)?;
        get(m, "timerFlushIntervalMs", &mut self.timer_flush_interval_ms)?;
        get(
            m,
            "mappedFileSizeTimerLog",
            &mut self.mapped_file_size_timer_log,
        )?;
        get(
            m,
            "rebalanceLockMaxLiveTime",
            &mut self.rebalance_lock_max_live_time,
        )?;
        get(
            m,
            "supervisorMaxRestarts",
            &mut self.supervisor_max_restarts,
        )?;
        get(
            m,
            "supervisorRestartWindowMs",
            &mut self.supervisor_restart_window_ms,
        )?;
        get(m, "supervisorBackoffMs", &mut self.supervisor_backoff_ms)?;
        get(
            m,
            "supervisorBackoffMaxMs",
            &mut self.supervisor_backoff_max_ms,
        )?;
        self.ha.apply(m)?;
        self.tls = crate::tls::TlsConfig::from_properties(m)?;
        for (k, v) in m {
            if !BROKER_KEYS.contains(&k.as_str()) {
                self.unknown.insert(k.clone(), v.clone());
            }
        }
        // Controller mode (RocketMQ 5.x): the configured role and id are
        // ignored; the broker starts as a slave (refusing writes) under a
        // placeholder id until the controller names its id and master.
        if self
            .unknown
            .get("enableControllerMode")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            self.broker_role = BrokerRole::Slave;
            self.broker_id = self.broker_id.max(1);
        }
        self.check_broker_id()?;
        ranges::check_broker(self, m)?;
        if self.default_topic_queue_nums < 1 {
            return Err(ConfigError::BadValue {
                key: "defaultTopicQueueNums".into(),
                value: self.default_topic_queue_nums.to_string(),
                why: "must be at least 1",
            });
        }
        // Both names become topics, so directories in the store.
        let named = [
            ("brokerClusterName", &self.broker_cluster_name),
            ("brokerName", &self.broker_name),
        ];
        for (key, value) in named {
            if crate::wire::names::check_cluster_name(value).is_err() {
                return Err(ConfigError::BadValue {
                    key: key.into(),
                    value: value.clone(),
                    why: "allowed characters are [%|a-zA-Z0-9_-], at most 127 of them",
                });
            }
        }
        Ok(())
    }

    pub fn is_sync_flush(&self) -> bool {
        self.flush_disk_type == FlushDiskType::SyncFlush
    }

    /// RocketMQ's rule (Java `BrokerStartup`): a master's id is 0
    /// (`MixAll.MASTER_ID`, forced), a slave's must be above 0.
    pub fn check_broker_id(&mut self) -> Result<(), ConfigError> {
        if self.broker_role.is_master() {
            self.broker_id = 0;
        } else if self.broker_id <= 0 {
            return Err(ConfigError::BadValue {
                key: "brokerId".into(),
                value: self.broker_id.to_string(),
                why: "a SLAVE's brokerId must be greater than 0",
            });
        }
        Ok(())
    }

    /// The address clients and name servers are told to use.
    pub fn broker_addr(&self) -> String {
        format!("{}:{}", self.broker_ip1, self.listen_port)
    }

    pub fn print(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: String| {
            s.push_str(k);
            s.push('=');
            s.push_str(&v);
            s.push('\n');
        };
        line("brokerClusterName", self.broker_cluster_name.clone());
        line("brokerName", self.broker_name.clone());
        line("brokerId", self.broker_id.to_string());
        line("brokerIP1", self.broker_ip1.clone());
        line("listenPort", self.listen_port.to_string());
        line("namesrvAddr", self.namesrv_addr.clone());
        line(
            "storePathRootDir",
            self.store_path_root_dir.display().to_string(),
        );
        line("flushDiskType", self.flush_disk_type.to_string());
        line("brokerRole", self.broker_role.to_string());
        line("slaveReadEnable", self.slave_read_enable.to_string());
        line(
            "autoCreateTopicEnable",
            self.auto_create_topic_enable.to_string(),
        );
        line(
            "defaultTopicQueueNums",
            self.default_topic_queue_nums.to_string(),
        );
        line(
            "mapedFileSizeCommitLog",
            self.maped_file_size_commit_log.to_string(),
        );
        line(
            "mapedFileSizeConsumeQueue",
            self.maped_file_size_consume_queue.to_string(),
        );
        line("fileReservedTime", self.file_reserved_time.to_string());
        line("deleteWhen", self.delete_when.clone());
        for l in self.expiry.print().lines() {
            if let Some((k, v)) = l.split_once('=') {
                line(k, v.to_owned());
            }
        }
        line(
            "flushIntervalCommitLog",
            self.flush_interval_commit_log.to_string(),
        );
        line("syncFlushTimeout", self.sync_flush_timeout.to_string());
        line("maxMessageSize", self.max_message_size.to_string());
        line("longPollingEnable", self.long_polling_enable.to_string());
        line("messageDelayLevel", self.message_delay_level.clone());
        line("timerPrecisionMs", self.timer_precision_ms.to_string());
        line(
            "timerRollWindowSlot",
            self.timer_roll_window_slot.to_string(),
        );
        line("timerMaxDelaySec", self.timer_max_delay_sec.to_string());
        s
    }
}

fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(rest);
        }
    }
    PathBuf::from(p)
}

/// File expiry, disk-space guard and message index settings (RocketMQ names).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiryConfig {
    /// `diskMaxUsedSpaceRatio` (%): above it expired files go at any hour.
    pub disk_max_used_space_ratio: u32,
    /// `diskSpaceCleanForciblyRatio` (%): above it files go whatever their age.
    pub disk_space_clean_forcibly_ratio: u32,
    /// `diskSpaceWarningLevelRatio` (%): above it sends are refused (disk full).
    pub disk_space_warning_level_ratio: u32,
    /// `cleanFileForciblyEnable`.
    pub clean_file_forcibly_enable: bool,
    /// `cleanResourceInterval`, ms between expiry checks.
    pub clean_resource_interval: u64,
    /// `deleteCommitLogFilesInterval`, ms between two segment deletions.
    pub delete_commit_log_files_interval: u64,
    /// `deleteFileBatchMax`: segments deleted per check at most.
    pub delete_file_batch_max: usize,
    /// `diskUsageOverrideRatio` (%): test knob replacing the measured disk
    /// usage; negative (the default) measures the real filesystem.
    pub disk_usage_override_ratio: f64,
    /// `messageIndexEnable`.
    pub message_index_enable: bool,
    /// `maxHashSlotNum`, hash slots per index file.
    pub max_hash_slot_num: u32,
    /// `maxIndexNum`, entries per index file.
    pub max_index_num: u32,
    /// `defaultQueryMaxNum`: results of a unique-key query.
    pub default_query_max_num: i32,
    /// `maxMsgsNumBatch`: cap on QUERY_MESSAGE's maxNum.
    pub max_msgs_num_batch: i32,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        ExpiryConfig {
            disk_max_used_space_ratio: 75,
            disk_space_clean_forcibly_ratio: 85,
            disk_space_warning_level_ratio: 90,
            clean_file_forcibly_enable: true,
            clean_resource_interval: 10_000,
            delete_commit_log_files_interval: 100,
            delete_file_batch_max: 10,
            disk_usage_override_ratio: -1.0,
            message_index_enable: true,
            max_hash_slot_num: 5_000_000,
            max_index_num: 5_000_000 * 4,
            default_query_max_num: 32,
            max_msgs_num_batch: 64,
        }
    }
}

impl ExpiryConfig {
    fn apply(&mut self, m: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        get(
            m,
            "diskMaxUsedSpaceRatio",
            &mut self.disk_max_used_space_ratio,
        )?;
        get(
            m,
            "diskSpaceCleanForciblyRatio",
            &mut self.disk_space_clean_forcibly_ratio,
        )?;
        get(
            m,
            "diskSpaceWarningLevelRatio",
            &mut self.disk_space_warning_level_ratio,
        )?;
        get(
            m,
            "cleanFileForciblyEnable",
            &mut self.clean_file_forcibly_enable,
        )?;
        get(
            m,
            "cleanResourceInterval",
            &mut self.clean_resource_interval,
        )?;
        get(
            m,
            "deleteCommitLogFilesInterval",
            &mut self.delete_commit_log_files_interval,
        )?;
        get(m, "deleteFileBatchMax", &mut self.delete_file_batch_max)?;
        get(
            m,
            "diskUsageOverrideRatio",
            &mut self.disk_usage_override_ratio,
        )?;
        get(m, "messageIndexEnable", &mut self.message_index_enable)?;
        get(m, "maxHashSlotNum", &mut self.max_hash_slot_num)?;
        get(m, "maxIndexNum", &mut self.max_index_num)?;
        get(m, "defaultQueryMaxNum", &mut self.default_query_max_num)?;
        get(m, "maxMsgsNumBatch", &mut self.max_msgs_num_batch)?;
        if self.max_hash_slot_num == 0 || self.max_index_num < 2 {
            return Err(ConfigError::BadValue {
                key: "maxHashSlotNum/maxIndexNum".into(),
                value: format!("{}/{}", self.max_hash_slot_num, self.max_index_num),
                why: "need at least 1 slot and 2 entries",
            });
        }
        Ok(())
    }

    fn print(&self) -> String {
        format!(
            "diskMaxUsedSpaceRatio={}\ndiskSpaceCleanForciblyRatio={}\ndiskSpaceWarningLevelRatio={}\n\
             cleanFileForciblyEnable={}\ncleanResourceInterval={}\ndeleteCommitLogFilesInterval={}\n\
             deleteFileBatchMax={}\nmessageIndexEnable={}\nmaxHashSlotNum={}\nmaxIndexNum={}\n",
            self.disk_max_used_space_ratio,
            self.disk_space_clean_forcibly_ratio,
            self.disk_space_warning_level_ratio,
            self.clean_file_forcibly_enable,
            self.clean_resource_interval,
            self.delete_commit_log_files_interval,
            self.delete_file_batch_max,
            self.message_index_enable,
            self.max_hash_slot_num,
            self.max_index_num,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rocketmq_broker_conf() {
        let text =
            "# comment\nbrokerClusterName = DefaultCluster\nbrokerName=broker-b\nbrokerId=0\n\
                    deleteWhen=04\nfileReservedTime=48\nbrokerRole=ASYNC_MASTER\n\
                    flushDiskType=SYNC_FLUSH\nnamesrvAddr=127.0.0.1:9876;127.0.0.1:9877\n\
                    someJavaOnlyKey=\\\n  continued\n";
        let m = parse_properties(text);
        let mut c = BrokerConfig::default();
        c.apply(&m).unwrap();
        assert_eq!(c.broker_name, "broker-b");
        assert_eq!(c.file_reserved_time, 48);
        assert!(c.is_sync_flush());
        assert_eq!(
            c.unknown.get("someJavaOnlyKey").map(String::as_str),
            Some("continued")
        );
    }

    #[test]
    fn rejects_bad_values() {
        let m = parse_properties("listenPort=notaport\n");
        assert!(BrokerConfig::default().apply(&m).is_err());
    }

    #[test]
    fn broker_and_cluster_names_follow_the_topic_rules() {
        for text in [
            "brokerName=../b\n",
            "brokerClusterName=a/b\n",
            "brokerName=\n",
        ] {
            let err = BrokerConfig::default()
                .apply(&parse_properties(text))
                .unwrap_err()
                .to_string();
            let key = text.split('=').next().unwrap();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn enum_values_parse_in_any_case_and_print_in_rocketmq_spelling() {
        let m = parse_properties(
            "brokerRole = slave\nbrokerId=2\nflushDiskType=Sync_Flush\nslaveReadEnable=true\n",
        );
        let mut c = BrokerConfig::default();
        c.apply(&m).unwrap();
        assert_eq!(c.broker_role, BrokerRole::Slave);
        assert_eq!(c.flush_disk_type, FlushDiskType::SyncFlush);
        assert!(c.slave_read_enable);
        let printed = c.print();
        for line in [
            "brokerRole=SLAVE\n",
            "flushDiskType=SYNC_FLUSH\n",
            "slaveReadEnable=true\n",
            "brokerId=2\n",
        ] {
            assert!(printed.contains(line), "{line:?} missing in\n{printed}");
        }
        // What is printed loads back to the same values.
        let mut again = BrokerConfig::default();
        again.apply(&parse_properties(&printed)).unwrap();
        assert_eq!(again.broker_role, BrokerRole::Slave);
        assert_eq!(again.flush_disk_type, FlushDiskType::SyncFlush);
    }

    #[test]
    fn a_bad_enum_value_names_its_key_and_the_allowed_values() {
        for (text, key, allowed) in [
            ("brokerRole=LEADER\n", "brokerRole", "SYNC_MASTER"),
            ("flushDiskType=SOMETIMES\n", "flushDiskType", "SYNC_FLUSH"),
        ] {
            let err = BrokerConfig::default()
                .apply(&parse_properties(text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(allowed), "{err}");
        }
    }

    #[test]
    fn broker_ids_follow_the_role() {
        // A master's id is forced to 0, as Java's BrokerStartup does.
        let mut c = BrokerConfig::default();
        c.apply(&parse_properties("brokerRole=SYNC_MASTER\nbrokerId=3\n"))
            .unwrap();
        assert_eq!(c.broker_id, 0);
        // A slave needs an id above 0.
        let err = BrokerConfig::default()
            .apply(&parse_properties("brokerRole=SLAVE\nbrokerId=0\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokerId"), "{err}");
    }
}
