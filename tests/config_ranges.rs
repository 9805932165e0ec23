//! Out-of-range configuration values stop `actormq` at start with a message
//! naming the key and the allowed range, instead of a panic (a zero-sized
//! commit-log segment divided by zero) or a broker that starts and then
//! fails every send (a 100-byte segment) or spins a CPU (a 0 ms flush
//! interval).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Runs `actormq <args>` and waits for it to exit; returns the exit status
/// and output. A process still running after 15 s is killed and fails the
/// test (it accepted the configuration).
fn run_to_exit(args: &[&str], log: &Path) -> (std::process::ExitStatus, String) {
    let mut proc = ChildServer::spawn("actormq", args, log);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = proc.child.try_wait() {
            return (status, std::fs::read_to_string(log).unwrap_or_default());
        }
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("actormq {args:?} kept running with a bad configuration; log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_standalone_with_an_out_of_range_value_exits_with_the_key_and_range() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (line, key, allowed)) in [
        (
            "mapedFileSizeCommitLog=0",
            "mapedFileSizeCommitLog",
            "65536..=",
        ),
        (
            "mappedFileSizeCommitLog=100",
            "mappedFileSizeCommitLog",
            "65536..=",
        ),
        ("flushIntervalCommitLog=0", "flushIntervalCommitLog", "1..="),
        (
            "mapedFileSizeConsumeQueue=7",
            "mapedFileSizeConsumeQueue",
            "65540..=",
        ),
        (
            "diskSpaceWarningLevelRatio=400",
            "diskSpaceWarningLevelRatio",
            "0..=100",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let conf = dir.path().join(format!("bad{i}.conf"));
        std::fs::write(&conf, format!("brokerName=broker-bad\n{line}\n")).unwrap();
        let store = dir.path().join(format!("store{i}"));
        let (ns, b) = (free_port().to_string(), free_port().to_string());
        let args = [
            "standalone",
            "--namesrv-port",
            &ns,
            "--broker-port",
            &b,
            "--store",
            store.to_str().unwrap(),
            "-c",
            conf.to_str().unwrap(),
        ];
        let (status, text) = run_to_exit(&args, &dir.path().join(format!("bad{i}.log")));
        assert!(
            !status.success(),
            "{line}: exited with {status}; log:\n{text}"
        );
        assert!(!text.contains("panicked"), "{line}: panicked; log:\n{text}");
        assert!(
            text.contains(key) && text.contains(allowed),
            "{line}: the message does not name {key} and {allowed}; log:\n{text}"
        );
    }
}

#[test]
fn a_name_server_with_an_out_of_range_value_exits_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("namesrv.conf");
    std::fs::write(&conf, "scanNotActiveBrokerInterval=0\n").unwrap();
    let port = free_port().to_string();
    let args = ["namesrv", "-c", conf.to_str().unwrap(), "--port", &port];
    let (status, text) = run_to_exit(&args, &dir.path().join("ns.log"));
    assert!(!status.success(), "exited with {status}; log:\n{text}");
    assert!(
        text.contains("scanNotActiveBrokerInterval") && text.contains("1..="),
        "{text}"
    );
}
