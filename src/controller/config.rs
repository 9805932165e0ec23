//! Controller settings (`ControllerConfig`), with RocketMQ's keys and
//! defaults, from `controller.conf` or from a `namesrv.conf` with
//! `enableControllerInNamesrv=true`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{get, ConfigError};

/// One `controllerDLegerPeers` entry: `n0-127.0.0.1:9878`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub id: String,
    pub addr: String,
}

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `controllerDLegerGroup`.
    pub group: String,
    /// `controllerDLegerPeers`; identical on every node. A node's Raft id
    /// is its position in this list.
    pub peers: Vec<PeerSpec>,
    /// `controllerDLegerSelfId`.
    pub self_id: String,
    /// `controllerStorePath` (default `~/DLedgerController`).
    pub store_path: PathBuf,
    /// `enableElectUncleanMaster`.
    pub elect_unclean_master: bool,
    /// `notifyBrokerRoleChanged`.
    pub notify_role_changed: bool,
    /// `scanNotActiveBrokerInterval` (ms).
    pub scan_interval_ms: u64,
    /// `controllerHeartBeatTimeoutMills` (ms): the timeout of heartbeats
    /// that do not carry their own.
    pub heartbeat_timeout_ms: u64,
    /// `listenAddr` to bind (the port is this node's peer port, as
    /// RocketMQ's DLedger controller binds there).
    pub listen_addr: String,
    /// ActorMQ: Raft heartbeat period (`controllerRaftHeartbeatMillis`,
    /// 250); elections time out after 4–8 of them.
    pub raft_heartbeat_ms: u64,
    /// ActorMQ: a snapshot after this many log entries
    /// (`controllerSnapshotLogs`, 1000), then the log before it is purged.
    pub snapshot_logs: u64,
    /// Every key as given, for GET_CONTROLLER_CONFIG.
    pub properties: BTreeMap<String, String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            group: "DefaultControllerGroup".into(),
            peers: Vec::new(),
            self_id: "n0".into(),
            store_path: std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join("DLedgerController"),
            elect_unclean_master: false,
            notify_role_changed: true,
            scan_interval_ms: 5_000,
            heartbeat_timeout_ms: 10_000,
            listen_addr: "0.0.0.0".into(),
            raft_heartbeat_ms: 250,
            snapshot_logs: 1000,
            properties: BTreeMap::new(),
        }
    }
}

fn bad(key: &str, value: &str, why: &'static str) -> ConfigError {
    ConfigError::BadValue {
        key: key.into(),
        value: value.into(),
        why,
    }
}

/// Parses `n0-127.0.0.1:9878;n1-127.0.0.1:9868`.
pub fn parse_peers(text: &str) -> Result<Vec<PeerSpec>, ConfigError> {
    let mut out = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((id, addr)) = part.split_once('-') else {
            return Err(bad("controllerDLegerPeers", part, "expected id-host:port"));
        };
        if addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(bad("controllerDLegerPeers", part, "expected id-host:port"));
        }
        out.push(PeerSpec {
            id: id.trim().into(),
            addr: addr.trim().into(),
        });
    }
    Ok(out)
}

impl ControllerConfig {
    /// Reads the controller keys. Without `controllerDLegerPeers` the node
    /// is a group of one on `listenPort` (default 9878).
    pub fn from_properties(m: &BTreeMap<String, String>) -> Result<ControllerConfig, ConfigError> {
        let mut c = ControllerConfig::default();
        get(m, "controllerDLegerGroup", &mut c.group)?;
        get(m, "controllerDLegerSelfId", &mut c.self_id)?;
        if let Some(p) = m.get("controllerStorePath") {
            c.store_path = PathBuf::from(p.trim());
        }
        get(m, "enableElectUncleanMaster", &mut c.elect_unclean_master)?;
        get(m, "notifyBrokerRoleChanged", &mut c.notify_role_changed)?;
        get(m, "scanNotActiveBrokerInterval", &mut c.scan_interval_ms)?;
        get(
            m,
            "controllerHeartBeatTimeoutMills",
            &mut c.heartbeat_timeout_ms,
        )?;
        get(m, "listenAddr", &mut c.listen_addr)?;
        get(m, "controllerRaftHeartbeatMillis", &mut c.raft_heartbeat_ms)?;
        get(m, "controllerSnapshotLogs", &mut c.snapshot_logs)?;
        c.peers = match m.get("controllerDLegerPeers") {
            Some(p) => parse_peers(p)?,
            None => {
                let mut port: u16 = 9878;
                get(m, "listenPort", &mut port)?;
                vec![PeerSpec {
                    id: c.self_id.clone(),
                    addr: format!("127.0.0.1:{port}"),
                }]
            }
        };
        if c.self_index().is_none() {
            return Err(bad(
                "controllerDLegerSelfId",
                &c.self_id,
                "not one of controllerDLegerPeers",
            ));
        }
        for (key, v, min) in [
            ("scanNotActiveBrokerInterval", c.scan_interval_ms, 10),
            (
                "controllerHeartBeatTimeoutMills",
                c.heartbeat_timeout_ms,
                100,
            ),
            ("controllerRaftHeartbeatMillis", c.raft_heartbeat_ms, 20),
            ("controllerSnapshotLogs", c.snapshot_logs, 1),
        ] {
            if v < min {
                return Err(bad(key, &v.to_string(), "too small"));
            }
        }
        c.properties = m.clone();
        Ok(c)
    }

    /// This node's position in the peers (its Raft node id).
    pub fn self_index(&self) -> Option<usize> {
        self.peers.iter().position(|p| p.id == self.self_id)
    }

    pub fn self_addr(&self) -> &str {
        self.self_index()
            .map_or("", |i| self.peers[i].addr.as_str())
    }

    /// The port this node serves (its peer port).
    pub fn port(&self) -> u16 {
        self.self_addr()
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(9878)
    }

    /// `peers` as CONTROLLER_GET_METADATA_INFO shows them: `n0:addr;n1:addr;`.
    pub fn peers_text(&self) -> String {
        self.peers
            .iter()
            .map(|p| format!("{}:{};", p.id, p.addr))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_properties;

    #[test]
    fn peers_and_self() {
        let m = parse_properties(
            "controllerDLegerGroup=g\ncontrollerDLegerPeers=n0-127.0.0.1:9878;n1-127.0.0.1:9868\ncontrollerDLegerSelfId=n1\n",
        );
        let c = ControllerConfig::from_properties(&m).unwrap();
        assert_eq!(c.self_index(), Some(1));
        assert_eq!(c.port(), 9868);
        assert_eq!(c.peers_text(), "n0:127.0.0.1:9878;n1:127.0.0.1:9868;");
        let m = parse_properties(
            "controllerDLegerPeers=n0-127.0.0.1:9878\ncontrollerDLegerSelfId=n5\n",
        );
        assert!(ControllerConfig::from_properties(&m).is_err());
    }
}
