//! Helpers shared by the replication tests (`tests/replication*.rs`):
//! brokers as child processes with a role, reading a store's commit log,
//! a process's memory and signals.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use crate::common::{free_port, spawn_standalone, wait_port, ChildServer};

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

/// Broker `name` with `role` and the extra broker.conf `lines` as a child
/// process on `dir/store`: `actormq broker -n NS` registered on `ns`, or
/// `actormq standalone` (its own name server) without one. Returns it and
/// its address.
pub fn spawn_broker(
    dir: &Path,
    ns: Option<&str>,
    name: &str,
    role: &str,
    lines: &str,
) -> (ChildServer, String) {
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
    let (store, log) = (dir.join("store"), dir.join("broker.log"));
    let Some(ns) = ns else {
        return spawn_standalone(&store, &conf, &log, Duration::from_secs(20));
    };
    let port = free_port().to_string();
    let args = [
        "broker",
        "-c",
        conf.to_str().unwrap(),
        "-n",
        ns,
        "--port",
        &port,
        "--store",
        store.to_str().unwrap(),
    ];
    let mut p = ChildServer::spawn(name, &args, &log);
    let addr = format!("127.0.0.1:{port}");
    if !wait_port(&addr, Duration::from_secs(20)) {
        let running = p.is_running();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("broker {name} did not come up (running: {running}); log:\n{text}");
    }
    (p, addr)
}

/// The Python interpreter with `rocketmq==0.4.4` (`ACTORMQ_PYTHON`); None
/// (the test is skipped, loudly) when unset, unless
/// `ACTORMQ_REQUIRE_PYTHON=1`.
pub fn python() -> Option<String> {
    match std::env::var("ACTORMQ_PYTHON") {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ if std::env::var("ACTORMQ_REQUIRE_PYTHON").as_deref() == Ok("1") => {
            panic!("ACTORMQ_REQUIRE_PYTHON=1 but ACTORMQ_PYTHON is not set")
        }
        _ => {
            eprintln!("SKIPPED: set ACTORMQ_PYTHON to a Python with rocketmq==0.4.4");
            None
        }
    }
}

/// Runs `tests/python/{script}` with `args` (HOME in a temp dir: the C++
/// client logs there), killed after `timeout`. Returns whether it exited 0
/// and its output.
pub fn run_python(py: &str, script: &str, args: &[&str], timeout: Duration) -> (bool, String) {
    let script = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let home = tempfile::tempdir().unwrap();
    let out_path = home.path().join("out.log");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = std::process::Command::new(py)
        .arg(&script)
        .args(args)
        .env("HOME", home.path())
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    let deadline = std::time::Instant::now() + timeout;
    let ok = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.success();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (ok, std::fs::read_to_string(&out_path).unwrap_or_default())
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
