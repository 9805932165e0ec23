//! Ranges of the numeric configuration keys, checked once when a
//! `broker.conf` / `namesrv.conf` is applied (`BrokerConfig::apply`,
//! `NamesrvConfig::apply`), so that no value can make the store divide by
//! zero, spin a timer, overflow a duration or refuse every send later.
//!
//! The bounds follow what the store and the actors need (RocketMQ's own
//! defaults sit inside every range): segment sizes at least 64 KiB, the
//! consume queue a multiple of its 20-byte unit (`ConsumeQueue.CQ_STORE_UNIT_SIZE`),
//! intervals at least 1 ms and at most a day or so (tokio timers add them to
//! `Instant::now`), ratios in percent 0..=100.

use super::{BrokerConfig, ConfigError, NamesrvConfig};
use std::collections::BTreeMap;

const KIB: i128 = 1024;
const MINUTE_MS: i128 = 60_000;
const HOUR_MS: i128 = 60 * MINUTE_MS;
const DAY_MS: i128 = 24 * HOUR_MS;
/// Smallest segment of any mapped store file.
const MIN_SEGMENT: i128 = 64 * KIB;
/// Segment positions are Java ints in RocketMQ's layouts (blank fillers
/// carry the remaining length as an int).
const MAX_SEGMENT: i128 = i32::MAX as i128;
/// The consume-queue unit (`CQ_STORE_UNIT_SIZE`).
const CQ_UNIT: i128 = 20;
/// Room the store keeps beside a body for the record's fixed fields, topic
/// and properties (`StoreConfig::max_record_len`).
const RECORD_OVERHEAD: i128 = 64 * KIB;

/// One numeric key: its value and inclusive bounds.
struct Range {
    key: &'static str,
    /// The other spelling RocketMQ accepts, if any (`mappedFile…` / `mapedFile…`).
    alias: Option<&'static str>,
    value: i128,
    min: i128,
    max: i128,
}

const fn r(key: &'static str, value: i128, min: i128, max: i128) -> Range {
    Range {
        key,
        alias: None,
        value,
        min,
        max,
    }
}

/// The key as the file spelled it.
fn spelled(m: &BTreeMap<String, String>, key: &'static str, alias: Option<&'static str>) -> String {
    match alias {
        Some(a) if m.contains_key(a) && !m.contains_key(key) => a.to_owned(),
        _ => key.to_owned(),
    }
}

fn out_of_range(key: String, value: impl ToString, allowed: String) -> ConfigError {
    ConfigError::OutOfRange {
        key,
        value: value.to_string(),
        allowed,
    }
}

fn check_all(m: &BTreeMap<String, String>, ranges: &[Range]) -> Result<(), ConfigError> {
    for x in ranges {
        if x.value < x.min || x.value > x.max {
            return Err(out_of_range(
                spelled(m, x.key, x.alias),
                x.value,
                format!("{}..={}", x.min, x.max),
            ));
        }
    }
    Ok(())
}

pub(super) fn check_namesrv(
    c: &NamesrvConfig,
    m: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    check_all(
        m,
        &[
            r("brokerExpireMillis", c.broker_expire_ms as i128, 1, DAY_MS),
            r(
                "scanNotActiveBrokerInterval",
                c.scan_interval_ms as i128,
                1,
                HOUR_MS,
            ),
        ],
    )
}

pub(super) fn check_broker(
    c: &BrokerConfig,
    m: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let e = &c.expiry;
    let commit_log = Range {
        alias: Some("mappedFileSizeCommitLog"),
        ..r(
            "mapedFileSizeCommitLog",
            c.maped_file_size_commit_log as i128,
            MIN_SEGMENT,
            MAX_SEGMENT,
        )
    };
    let cq = Range {
        alias: Some("mappedFileSizeConsumeQueue"),
        ..r(
            "mapedFileSizeConsumeQueue",
            c.maped_file_size_consume_queue as i128,
            // The smallest multiple of the unit that is at least 64 KiB.
            (MIN_SEGMENT + CQ_UNIT - 1) / CQ_UNIT * CQ_UNIT,
            MAX_SEGMENT / CQ_UNIT * CQ_UNIT,
        )
    };
    let ranges = [
        r("brokerId", c.broker_id as i128, 0, 1_000_000),
        r(
            "defaultTopicQueueNums",
            c.default_topic_queue_nums as i128,
            1,
            1024,
        ),
        commit_log,
        cq,
        r(
            "fileReservedTime",
            c.file_reserved_time as i128,
            0,
            24 * 3650,
        ),
        r(
            "diskMaxUsedSpaceRatio",
            e.disk_max_used_space_ratio as i128,
            0,
            100,
        ),
        r(
            "diskSpaceCleanForciblyRatio",
            e.disk_space_clean_forcibly_ratio as i128,
            0,
            100,
        ),
        r(
            "diskSpaceWarningLevelRatio",
            e.disk_space_warning_level_ratio as i128,
            0,
            100,
        ),
        r(
            "cleanResourceInterval",
            e.clean_resource_interval as i128,
            1,
            DAY_MS,
        ),
        r(
            "deleteCommitLogFilesInterval",
            e.delete_commit_log_files_interval as i128,
            0,
            HOUR_MS,
        ),
        r(
            "deleteFileBatchMax",
            e.delete_file_batch_max as i128,
            1,
            10_000,
        ),
        r(
            "maxHashSlotNum",
            e.max_hash_slot_num as i128,
            1,
            100_000_000,
        ),
        r("maxIndexNum", e.max_index_num as i128, 2, 400_000_000),
        r(
            "defaultQueryMaxNum",
            e.default_query_max_num as i128,
            1,
            65_536,
        ),
        r("maxMsgsNumBatch", e.max_msgs_num_batch as i128, 1, 65_536),
        r(
            "flushIntervalCommitLog",
            c.flush_interval_commit_log as i128,
            1,
            HOUR_MS,
        ),
        r("syncFlushTimeout", c.sync_flush_timeout as i128, 1, HOUR_MS),
        r(
            "maxMessageSize",
            c.max_message_size as i128,
            1,
            MAX_SEGMENT - RECORD_OVERHEAD,
        ),
        r(
            "registerBrokerIntervalMs",
            c.register_broker_interval_ms as i128,
            100,
            HOUR_MS,
        ),
        r(
            "clientChannelExpireMillis",
            c.client_channel_expire_ms as i128,
            1,
            DAY_MS,
        ),
        r(
            "flushConsumerOffsetInterval",
            c.flush_consumer_offset_interval as i128,
            1,
            HOUR_MS,
        ),
        r("ioThreads", c.io_threads as i128, 0, 1024),
        r(
            "transactionCheckInterval",
            c.transaction_check_interval as i128,
            1,
            DAY_MS,
        ),
        r(
            "transactionTimeOut",
            c.transaction_time_out as i128,
            0,
            DAY_MS,
        ),
        r(
            "transactionCheckMax",
            c.transaction_check_max as i128,
            0,
            1_000_000,
        ),
        r("timerPrecisionMs", c.timer_precision_ms as i128, 1, DAY_MS),
        Range {
            alias: Some("timerRollWindowSlots"),
            ..r(
                "timerRollWindowSlot",
                c.timer_roll_window_slot as i128,
                1,
                100_000_000,
            )
        },
        r(
            "timerMaxDelaySec",
            c.timer_max_delay_sec as i128,
            1,
            10 * 365 * 86_400,
        ),
        r(
            "timerFlushIntervalMs",
            c.timer_flush_interval_ms as i128,
            1,
            HOUR_MS,
        ),
        r(
            "mappedFileSizeTimerLog",
            c.mapped_file_size_timer_log as i128,
            MIN_SEGMENT,
            MAX_SEGMENT,
        ),
        r(
            "rebalanceLockMaxLiveTime",
            c.rebalance_lock_max_live_time as i128,
            1,
            DAY_MS,
        ),
        r(
            "supervisorMaxRestarts",
            c.supervisor_max_restarts as i128,
            0,
            1_000_000,
        ),
        r(
            "supervisorRestartWindowMs",
            c.supervisor_restart_window_ms as i128,
            1,
            DAY_MS,
        ),
        r(
            "supervisorBackoffMs",
            c.supervisor_backoff_ms as i128,
            0,
            HOUR_MS,
        ),
        r(
            "supervisorBackoffMaxMs",
            c.supervisor_backoff_max_ms as i128,
            0,
            DAY_MS,
        ),
    ];
    check_all(m, &ranges)?;
    if c.maped_file_size_consume_queue as i128 % CQ_UNIT != 0 {
        return Err(out_of_range(
            spelled(
                m,
                "mapedFileSizeConsumeQueue",
                Some("mappedFileSizeConsumeQueue"),
            ),
            c.maped_file_size_consume_queue,
            format!("a multiple of the {CQ_UNIT}-byte consume-queue unit"),
        ));
    }
    let ratio = e.disk_usage_override_ratio;
    if !ratio.is_finite() || ratio > 100.0 {
        return Err(out_of_range(
            "diskUsageOverrideRatio".into(),
            ratio,
            "a negative value (measure the disk) or 0..=100".into(),
        ));
    }
    // A file that asks for bodies larger than a commit-log segment can hold
    // would have every such send refused: say so at start. (Without an
    // explicit maxMessageSize the store caps records at the segment size.)
    let segment = c.maped_file_size_commit_log as i128;
    if m.contains_key("maxMessageSize") && c.max_message_size as i128 + RECORD_OVERHEAD > segment {
        return Err(out_of_range(
            "maxMessageSize".into(),
            c.max_message_size,
            format!(
                "1..={} with {}={segment} (a record of the largest body plus {RECORD_OVERHEAD} bytes of header room must fit one segment)",
                segment - RECORD_OVERHEAD,
                spelled(m, "mapedFileSizeCommitLog", Some("mappedFileSizeCommitLog")),
            ),
        ));
    }
    if c.supervisor_backoff_max_ms < c.supervisor_backoff_ms {
        return Err(out_of_range(
            "supervisorBackoffMaxMs".into(),
            c.supervisor_backoff_max_ms,
            format!("at least supervisorBackoffMs ({})", c.supervisor_backoff_ms),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "config_ranges_tests.rs"]
mod tests;
