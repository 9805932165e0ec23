//! `actormq cluster` driven from tests: a supervisor in its own process
//! group, its status file, and a guard that kills it and its children.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_actormq");
pub const SMALL_STORE: &str =
    "mapedFileSizeCommitLog = 1048576\nmaxHashSlotNum = 5000\nmaxIndexNum = 20000\n";

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A running supervisor; on drop, it and every child pid its status file
/// names get SIGKILL (the children also die by PDEATHSIG).
pub struct Supervisor {
    pub child: Child,
    pub dir: PathBuf,
    pub file: PathBuf,
    pub out: PathBuf,
}

impl Supervisor {
    pub fn start(dir: &Path, toml: &str) -> Supervisor {
        let file = dir.join("cluster.toml");
        std::fs::write(&file, toml).unwrap();
        let out = dir.join("supervisor.out");
        let log = std::fs::File::create(&out).unwrap();
        let child = Command::new(BIN)
            .args(["cluster", "-c"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn the supervisor");
        Supervisor {
            child,
            dir: dir.join("c"),
            file,
            out,
        }
    }

    pub fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join("cluster-status.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn child_status(&self, name: &str) -> Option<serde_json::Value> {
        self.status()?["children"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.child_status(name)?["pid"].as_u64().map(|p| p as u32)
    }

    pub fn all_pids(&self) -> Vec<u32> {
        let Some(st) = self.status() else {
            return Vec::new();
        };
        st["children"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["pid"].as_u64().map(|p| p as u32))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// `actormq cluster status -c FILE`: (exit code, stdout).
    pub fn status_cmd(&self) -> (i32, String) {
        let o = Command::new(BIN)
            .args(["cluster", "status", "-c"])
            .arg(&self.file)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    /// Waits until every child in `names` runs with a listening port.
    pub fn wait_running(&self, names: &[&str], within: Duration) {
        let ok = wait_until(within, || {
            names.iter().all(|n| {
                self.child_status(n).is_some_and(|c| {
                    c["state"] == "running"
                        && c["ports"][0].as_u64().is_some_and(|p| {
                            std::net::TcpStream::connect(("127.0.0.1", p as u16)).is_ok()
                        })
                })
            })
        });
        assert!(
            ok,
            "children {names:?} not running; status {:?}\noutput:\n{}",
            self.status(),
            self.output()
        );
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let pids = self.all_pids();
        // SAFETY: plain kill(2) of processes this test started.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in pids {
            if alive(p) {
                unsafe { libc::kill(p as i32, libc::SIGKILL) };
            }
        }
    }
}
