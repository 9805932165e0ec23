use super::super::{parse_properties, BrokerConfig, NamesrvConfig, BROKER_KEYS};

/// Every numeric broker key: a value outside its range and one inside.
const BROKER: &[(&str, &str, &str)] = &[
    // A master's id is forced to 0 (BrokerStartup); ranges apply to slaves.
    (
        "brokerId",
        "2000000\nbrokerRole=SLAVE",
        "3\nbrokerRole=SLAVE",
    ),
    ("listenPort", "70000", "10911"),
    ("defaultTopicQueueNums", "0", "16"),
    ("mapedFileSizeCommitLog", "0", "1048576"),
    ("mappedFileSizeCommitLog", "100", "65536"),
    ("mapedFileSizeConsumeQueue", "65550", "6000000"),
    ("mappedFileSizeConsumeQueue", "20", "65540"),
    ("fileReservedTime", "100000", "48"),
    ("diskMaxUsedSpaceRatio", "101", "75"),
    ("diskSpaceCleanForciblyRatio", "250", "85"),
    ("diskSpaceWarningLevelRatio", "101", "90"),
    ("cleanResourceInterval", "0", "10000"),
    ("deleteCommitLogFilesInterval", "99999999999", "100"),
    ("deleteFileBatchMax", "0", "10"),
    ("diskUsageOverrideRatio", "NaN", "50"),
    ("maxHashSlotNum", "0", "5000"),
    ("maxIndexNum", "1", "20000"),
    ("defaultQueryMaxNum", "0", "32"),
    ("maxMsgsNumBatch", "-1", "64"),
    ("flushIntervalCommitLog", "0", "500"),
    ("syncFlushTimeout", "0", "5000"),
    ("maxMessageSize", "0", "65536"),
    ("registerBrokerIntervalMs", "0", "1000"),
    ("clientChannelExpireMillis", "0", "120000"),
    ("flushConsumerOffsetInterval", "0", "5000"),
    ("ioThreads", "100000", "2"),
    ("transactionCheckInterval", "0", "200"),
    ("transactionTimeOut", "18446744073709551615", "1000"),
    ("transactionCheckMax", "-1", "1"),
    ("timerPrecisionMs", "0", "1000"),
    ("timerRollWindowSlot", "0", "2"),
    ("timerRollWindowSlots", "-3", "2"),
    ("timerMaxDelaySec", "0", "86400"),
    ("timerFlushIntervalMs", "0", "1000"),
    ("mappedFileSizeTimerLog", "52", "104857600"),
    ("rebalanceLockMaxLiveTime", "0", "60000"),
    ("supervisorMaxRestarts", "-1", "2"),
    ("supervisorRestartWindowMs", "0", "60000"),
    ("supervisorBackoffMs", "99999999999", "10"),
    ("supervisorBackoffMaxMs", "5", "500"),
];

/// Keys whose values are not numbers (names, paths, flags, enums, lists).
const NOT_NUMERIC: &[&str] = &[
    "brokerClusterName",
    "brokerName",
    "brokerIP1",
    "listenAddr",
    "namesrvAddr",
    "storePathRootDir",
    "flushDiskType",
    "brokerRole",
    "slaveReadEnable",
    "autoCreateTopicEnable",
    "autoCreateSubscriptionGroup",
    "deleteWhen",
    "cleanFileForciblyEnable",
    "messageIndexEnable",
    "longPollingEnable",
    "faultInjectionEnable",
    "commitLogOwnThread",
    "messageDelayLevel",
    "enablePropertyFilter",
];

/// Keys range-checked by their own parser (`actors::ha::HaConfig::apply`:
/// ports, positive intervals and sizes).
const CHECKED_ELSEWHERE: &[&str] = &[
    "haListenPort",
    "haMasterAddress",
    "haSendHeartbeatInterval",
    "haHousekeepingInterval",
    "haTransferBatchSize",
    "haMaxGapNotInSync",
    "haSlaveSyncInterval",
    "haMasterBrokerAddress",
];

fn broker(text: &str) -> Result<BrokerConfig, String> {
    let mut c = BrokerConfig::default();
    c.apply(&parse_properties(text))
        .map(|()| c)
        .map_err(|e| e.to_string())
}

#[test]
fn every_numeric_broker_key_has_a_range() {
    for key in BROKER_KEYS {
        let in_table = BROKER.iter().any(|(k, _, _)| k == key);
        assert!(
            in_table || NOT_NUMERIC.contains(key) || CHECKED_ELSEWHERE.contains(key),
            "{key}: neither in the range table nor a non-numeric key"
        );
        assert!(
            !(in_table && NOT_NUMERIC.contains(key)),
            "{key} listed twice"
        );
    }
}

#[test]
fn an_out_of_range_value_names_its_key_and_an_in_range_one_is_accepted() {
    for (key, bad, good) in BROKER {
        let err = broker(&format!("{key}={bad}\n"))
            .err()
            .unwrap_or_else(|| panic!("{key}={bad} was accepted"));
        assert!(err.contains(key), "{key}={bad}: {err}");
        if let Err(e) = broker(&format!("{key}={good}\n")) {
            panic!("{key}={good} refused: {e}");
        }
    }
}

#[test]
fn range_errors_state_the_allowed_range() {
    let err = broker("mapedFileSizeCommitLog=100\n").unwrap_err();
    assert!(err.contains("65536..="), "{err}");
    let err = broker("flushIntervalCommitLog=0\n").unwrap_err();
    assert!(err.contains("1..="), "{err}");
    let err = broker("diskSpaceWarningLevelRatio=101\n").unwrap_err();
    assert!(err.contains("0..=100"), "{err}");
    let err = broker("mapedFileSizeConsumeQueue=65550\n").unwrap_err();
    assert!(err.contains("multiple of the 20-byte"), "{err}");
}

#[test]
fn an_explicit_max_message_size_must_fit_a_commit_log_segment() {
    let err = broker("mapedFileSizeCommitLog=1048576\nmaxMessageSize=4194304\n").unwrap_err();
    assert!(
        err.contains("maxMessageSize") && err.contains("mapedFileSizeCommitLog"),
        "{err}"
    );
    broker("mapedFileSizeCommitLog=1048576\nmaxMessageSize=983040\n").unwrap();
    // Without an explicit maxMessageSize, small segments stay usable: the
    // store caps records at the segment size.
    broker("mapedFileSizeCommitLog=65536\n").unwrap();
}

#[test]
fn no_value_of_any_key_panics() {
    let values = [
        "0",
        "-1",
        "1",
        "20",
        "65536",
        "4294967296",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551615",
        "340282366920938463463374607431768211456",
        "NaN",
        "inf",
        "-inf",
        "1e300",
        "",
        "x",
        " 7 ",
    ];
    for key in BROKER_KEYS {
        for v in values {
            let _ = broker(&format!("{key}={v}\n"));
        }
    }
    for key in [
        "listenPort",
        "brokerExpireMillis",
        "scanNotActiveBrokerInterval",
    ] {
        for v in values {
            let _ = NamesrvConfig::default().apply(&parse_properties(&format!("{key}={v}\n")));
        }
    }
}

#[test]
fn namesrv_keys_have_ranges() {
    for (key, bad, good) in [
        ("listenPort", "65536", "9876"),
        ("brokerExpireMillis", "0", "120000"),
        ("scanNotActiveBrokerInterval", "0", "5000"),
    ] {
        let mut c = NamesrvConfig::default();
        let err = c
            .apply(&parse_properties(&format!("{key}={bad}\n")))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{key}={bad}: {err}");
        let mut c = NamesrvConfig::default();
        c.apply(&parse_properties(&format!("{key}={good}\n")))
            .unwrap_or_else(|e| panic!("{key}={good}: {e}"));
    }
}
