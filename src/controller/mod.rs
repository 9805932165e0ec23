//! The RocketMQ 5.x controller ("controller mode", AutoSwitch HA): broker
//! ids, liveness, master election and SyncStateSets for every broker set,
//! replicated across the controller nodes with openraft.
//!
//! * [`state`]: the replicated data and its events; [`ops`]: the leader's
//!   decisions per request; [`elect`]: heartbeats and the election policy.
//! * [`raft`], [`log_store`], [`state_machine`]: openraft's types, network
//!   (over the remoting port) and storage (bincode, `controllerStorePath`).
//! * [`actor::Controller`]: the actor of one node; [`processor`]: its
//!   remoting requests.
//!
//! A node runs standalone (`actormq controller -c controller.conf`,
//! listening on its own `controllerDLegerPeers` port) or inside a name
//! server (`enableControllerInNamesrv=true`), which then also answers the
//! controller codes on its own port.

pub mod actor;
pub mod broker_agent;
pub mod config;
pub mod elect;
pub mod log_store;
pub mod ops;
pub mod processor;
pub mod raft;
pub mod state;
pub mod state_machine;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use openraft::{BasicNode, SnapshotPolicy};

pub use config::ControllerConfig;

/// ActorMQ's request ext field asking a follower to forward to the leader
/// (a broker that cannot reach the leader itself, apache/rocketmq#10812):
/// `true` on a broker's request or heartbeat, [`FORWARDED`] on the copy a
/// follower passes on (never forwarded again).
pub const FORWARD: &str = "actormqForward";
/// [`FORWARD`]'s value on a forwarded copy.
pub const FORWARDED: &str = "forwarded";
use processor::ControllerProcessor;

use crate::actors::server::{serve_tls, IoPool, ServerLimits};
use crate::client::remoting::{ClientConfig, RemotingClient};

/// A running controller node.
pub struct ControllerNode {
    pub addr: std::net::SocketAddr,
    pub processor: Arc<ControllerProcessor>,
    accept: tokio::task::JoinHandle<()>,
}

fn raft_config(cfg: &ControllerConfig) -> std::io::Result<Arc<openraft::Config>> {
    let hb = cfg.raft_heartbeat_ms;
    let c = openraft::Config {
        cluster_name: cfg.group.clone(),
        heartbeat_interval: hb,
        election_timeout_min: hb * 4,
        election_timeout_max: hb * 8,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_logs),
        max_in_snapshot_log_to_keep: cfg.snapshot_logs,
        ..Default::default()
    };
    c.validate().map(Arc::new).map_err(std::io::Error::other)
}

/// Opens the Raft storage and starts Raft, the actor and the processor.
pub async fn start_processor(cfg: &ControllerConfig) -> std::io::Result<Arc<ControllerProcessor>> {
    let dir = cfg.store_path.join("raft");
    let (logs, sm) = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            Ok::<_, std::io::Error>((
                log_store::LogStore::open(&dir)?,
                state_machine::StateMachine::open(&dir)?,
            ))
        })
        .await
        .map_err(std::io::Error::other)??
    };
    let shared = sm.shared.clone();
    let client = RemotingClient::new(ClientConfig {
        connect_timeout: Duration::from_millis(cfg.raft_heartbeat_ms * 2),
        ..ClientConfig::default()
    });
    let peers: Vec<String> = cfg.peers.iter().map(|p| p.addr.clone()).collect();
    let network = raft::Network {
        client: client.clone(),
        peers: peers.clone(),
    };
    let me = cfg.self_index().unwrap_or(0) as u64;
    let raft = raft::Raft::new(me, raft_config(cfg)?, network, logs, sm)
        .await
        .map_err(std::io::Error::other)?;
    if !raft.is_initialized().await.map_err(std::io::Error::other)? {
        let members: BTreeMap<u64, BasicNode> = cfg
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u64, BasicNode::new(&p.addr)))
            .collect();
        // Every node proposes the same membership; the ones that lose
        // the race are told it is not allowed, which is fine.
        if let Err(e) = raft.initialize(members).await {
            tracing::info!(error = %e, "controller: Raft membership already initialized");
        }
    }
    let controller =
        actor::Controller::new(cfg.clone(), raft.clone(), shared, client.clone()).start();
    Ok(Arc::new(ControllerProcessor {
        controller,
        raft,
        heartbeat_timeout: Duration::from_millis(cfg.heartbeat_timeout_ms),
        me,
        peers,
        client,
    }))
}

impl ControllerNode {
    /// Binds this node's peer port and serves; call inside an actix System.
    pub async fn start(cfg: &ControllerConfig, pool: IoPool) -> std::io::Result<ControllerNode> {
        let listener =
            tokio::net::TcpListener::bind((cfg.listen_addr.as_str(), cfg.port())).await?;
        let addr = listener.local_addr()?;
        let processor = start_processor(cfg).await?;
        let accept = serve_tls(
            listener,
            processor.clone(),
            pool,
            ServerLimits::default(),
            None,
        );
        tracing::info!(%addr, id = %cfg.self_id, group = %cfg.group, "controller listening");
        Ok(ControllerNode {
            addr,
            processor,
            accept,
        })
    }

    pub fn stop(&self) {
        self.accept.abort();
    }
}
