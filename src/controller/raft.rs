//! openraft's types for the controller and its network: the Raft RPCs
//! between controllers travel over the remoting port every controller
//! already serves, as ActorMQ-private request codes
//! (`ACTORMQ_RAFT_APPEND` 9910, `ACTORMQ_RAFT_VOTE` 9911,
//! `ACTORMQ_RAFT_SNAPSHOT` 9912). The request body is bincode of openraft's
//! request; the answer body is bincode of `Result<response, RaftError>`.

use std::io::Cursor;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::log_store::{decode, encode};
use super::state::Event;
use crate::client::remoting::RemotingClient;
use crate::wire::codes::request as rq;
use crate::wire::RemotingCommand;

openraft::declare_raft_types!(
    /// The controller's Raft: entries carry [`Event`]s; nodes are the
    /// `controllerDLegerPeers`, numbered by their position in that list.
    pub TypeConfig:
        D = Vec<Event>,
        R = (),
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// Makes a [`Peer`] per remote controller. A node dials its peers at the
/// addresses of its own `controllerDLegerPeers` (by position, the node
/// id), not at those in the replicated membership: each node may reach the
/// others under its own addresses (a NAT, a proxy), as DLedger dials from
/// its own `peers`.
pub struct Network {
    pub client: RemotingClient,
    pub peers: Vec<String>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            client: self.client.clone(),
            target,
            addr: self
                .peers
                .get(target as usize)
                .cloned()
                .unwrap_or_else(|| node.addr.clone()),
        }
    }
}

/// The connection to one remote controller.
pub struct Peer {
    client: RemotingClient,
    target: u64,
    addr: String,
}

type RpcErr<E> = RPCError<u64, BasicNode, RaftError<u64, E>>;

impl Peer {
    async fn call<Req, Resp, E>(
        &self,
        code: i32,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RpcErr<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = encode(req)
            .map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e))))?;
        let cmd = RemotingCommand::request(code).with_body(body);
        let resp = self
            .client
            .invoke(&self.addr, cmd, ttl)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        if resp.code != 0 {
            let why = std::io::Error::other(resp.remark.clone().unwrap_or_default());
            return Err(RPCError::Unreachable(Unreachable::new(&why)));
        }
        let r: Result<Resp, RaftError<u64, E>> = decode(&resp.body_bytes())
            .map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e))))?;
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr<openraft::error::Infallible>> {
        self.call(rq::ACTORMQ_RAFT_APPEND, &rpc, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        self.call(rq::ACTORMQ_RAFT_SNAPSHOT, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr<openraft::error::Infallible>> {
        self.call(rq::ACTORMQ_RAFT_VOTE, &rpc, option.hard_ttl())
            .await
    }
}

/// Serves one Raft RPC arriving from another controller; the answer body.
pub async fn serve_rpc(raft: &Raft, code: i32, body: &[u8]) -> Result<Vec<u8>, String> {
    match code {
        rq::ACTORMQ_RAFT_APPEND => encode(&raft.append_entries(decode(body)?).await),
        rq::ACTORMQ_RAFT_VOTE => encode(&raft.vote(decode(body)?).await),
        rq::ACTORMQ_RAFT_SNAPSHOT => encode(&raft.install_snapshot(decode(body)?).await),
        _ => Err(format!("not a Raft request code: {code}")),
    }
}
