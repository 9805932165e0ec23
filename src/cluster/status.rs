//! The supervisor's status file (`<dir>/cluster-status.json`) and
//! `actormq cluster status`, which reads it.
//!
//! The supervisor rewrites the file (to a temp file, then `rename`, so a
//! reader never sees half of it) on every change: a child started, exited,
//! scheduled for a restart or stopped, and the supervisor's own state
//! (`starting`, `running`, `stopping`, `stopped`). Fields are camelCase like
//! RocketMQ's JSON bodies:
//!
//! ```json
//! {"cluster":"DefaultCluster","supervisorPid":4242,"state":"running",
//!  "startedMs":1700000000000,"updatedMs":1700000005000,
//!  "children":[{"name":"broker-a-1","kind":"broker","role":"SLAVE",
//!    "ports":[10921,10922],"pid":4250,"state":"running",
//!    "startedMs":1700000004000,"restarts":1,"lastExit":"signal 9"}]}
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One child as the status file shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChildStatus {
    pub name: String,
    pub kind: String,
    pub role: String,
    pub ports: Vec<u16>,
    /// Its process while one runs.
    pub pid: Option<u32>,
    /// `running`, `restarting` (waiting out the backoff), `stopping`,
    /// `stopped`.
    pub state: String,
    /// When the current process started (ms since the epoch).
    pub started_ms: Option<u64>,
    /// How often the supervisor restarted it.
    pub restarts: u32,
    /// How its last process ended (`exit 1`, `signal 9`).
    pub last_exit: Option<String>,
    /// When a `restarting` child starts again (ms since the epoch).
    pub next_start_ms: Option<u64>,
}

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub cluster: String,
    pub supervisor_pid: u32,
    pub state: String,
    pub started_ms: u64,
    pub updated_ms: u64,
    pub children: Vec<ChildStatus>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ClusterStatus {
    /// Writes the file atomically (temp file + rename).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }

    pub fn read(path: &Path) -> Result<ClusterStatus, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether the supervisor that wrote the file still runs.
    pub fn supervisor_alive(&self) -> bool {
        self.state != "stopped" && pid_alive(self.supervisor_pid)
    }
}

/// `kill(pid, 0)`: the process exists (and is not a zombie we could see).
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid as i32, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // A zombie still "exists"; /proc tells (state Z).
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit(')')
            .next()
            .map(|rest| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => true,
    }
}

/// `1h02m`, `3m04s`, `12s`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The table `actormq cluster status` prints.
pub fn render(st: &ClusterStatus, now: u64) -> String {
    let alive = st.supervisor_alive();
    let mut out = if alive {
        format!(
            "cluster {}: supervisor pid {} {}, up {}\n",
            st.cluster,
            st.supervisor_pid,
            st.state,
            human_duration(now.saturating_sub(st.started_ms))
        )
    } else {
        format!(
            "cluster {}: supervisor is not running (last pid {}, last state {}); the table below is its last record\n",
            st.cluster, st.supervisor_pid, st.state
        )
    };
    let rows: Vec<[String; 7]> = st
        .children
        .iter()
        .map(|c| {
            let uptime = match (c.state.as_str(), c.started_ms) {
                ("running", Some(t)) if alive => human_duration(now.saturating_sub(t)),
                ("restarting", _) => match c.next_start_ms {
                    Some(t) => format!("restart in {}", human_duration(t.saturating_sub(now))),
                    None => "-".into(),
                },
                _ => "-".into(),
            };
            [
                c.name.clone(),
                c.pid.map_or("-".into(), |p| p.to_string()),
                c.role.clone(),
                c.ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                c.state.clone(),
                uptime,
                c.restarts.to_string(),
            ]
        })
        .collect();
    let head = [
        "NAME", "PID", "ROLE", "PORTS", "STATE", "UPTIME", "RESTARTS",
    ]
    .map(str::to_owned);
    let mut width = [0usize; 7];
    for r in std::iter::once(&head).chain(rows.iter()) {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    for r in std::iter::once(&head).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_renders() {
        let st = ClusterStatus {
            cluster: "C".into(),
            supervisor_pid: std::process::id(),
            state: "running".into(),
            started_ms: 1_000,
            updated_ms: 2_000,
            children: vec![ChildStatus {
                name: "b1".into(),
                kind: "broker".into(),
                role: "SLAVE".into(),
                ports: vec![10921, 10922],
                pid: Some(77),
                state: "running".into(),
                started_ms: Some(1_000),
                restarts: 2,
                last_exit: Some("signal 9".into()),
                next_start_ms: None,
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        st.write(&p).unwrap();
        assert_eq!(ClusterStatus::read(&p).unwrap(), st);
        let text = render(&st, 62_000);
        assert!(text.contains("supervisor pid"), "{text}");
        let row = text.lines().find(|l| l.starts_with("b1")).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            ["b1", "77", "SLAVE", "10921,10922", "running", "1m01s", "2"]
        );
        let gone = ClusterStatus {
            state: "stopped".into(),
            ..st
        };
        assert!(render(&gone, 0).contains("not running"));
    }
}
