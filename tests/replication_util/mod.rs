//! Helpers shared by the replication tests (`tests/replication*.rs`):
//! brokers as child processes with a role, reading a store's commit log,
//! a process's memory and signals.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use crate::common::{spawn_standalone, ChildServer};

/// The commit-log bytes of the store at `root` in `[0, end)`; a store
/// whose log starts later (an empty slave's copy starts at the master's
/// last segment) gets zeros before its first segment.
pub fn log_bytes(root: &Path, end: i64) -> Vec<u8> {
    // Segments only: a segment being prepared has a `.creating` name.
    let mut files: Vec<_> = std::fs::read_dir(root.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.parse::<i64>().is_ok())
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let start: i64 = f.file_name().unwrap().to_str().unwrap().parse().unwrap();
        if start >= end {
            break;
        }
        if out.is_empty() {
            out.resize(start as usize, 0);
        }
        assert_eq!(start as usize, out.len(), "segments are contiguous");
        let data = std::fs::read(&f).unwrap();
        let take = ((end - start) as usize).min(data.len());
        out.extend_from_slice(&data[..take]);
    }
    out
}

/// The first segment's start offset of the store at `root`.
pub fn first_segment(root: &Path) -> Option<i64> {
    std::fs::read_dir(root.join("commitlog"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .min()
}

/// `actormq standalone` as broker `name` with `role` and the extra
/// broker.conf `lines`, on `dir/store`; returns it and its address.
pub fn spawn_broker(dir: &Path, name: &str, role: &str, lines: &str) -> (ChildServer, String) {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("broker.conf");
    let id = if role == "SLAVE" { 1 } else { 0 };
    std::fs::write(
        &conf,
        format!(
            "brokerName={name}\nbrokerRole={role}\nbrokerId={id}\n\
             maxHashSlotNum=5000\nmaxIndexNum=20000\n\
             brokerIP1=127.0.0.1\nlistenAddr=127.0.0.1\n{lines}\n"
        ),
    )
    .unwrap();
    spawn_standalone(
        &dir.join("store"),
        &conf,
        &dir.join("broker.log"),
        Duration::from_secs(20),
    )
}

/// The anonymous resident memory of process `pid` (`RssAnon`), in bytes:
/// heap and stacks, without the mapped store files.
pub fn rss_anon(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .expect("RssAnon in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child of this test process.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}
