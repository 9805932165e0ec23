//! The broker's and the name server's capabilities as typed calls,
//! independent of any wire.
//!
//! ```text
//!   remoting frames ──► actors/*/processor (decode header ─┐
//!   gRPC (proxy)    ──► proxy adapters                     ├─► service ──► actors ──► store
//!   in-process      ──────────────────────────────────────┘   (typed request → Result<Reply, Refusal>)
//! ```
//!
//! Every call takes the caller's identity ([`Caller`]) and a typed request,
//! and returns a typed reply or a [`Refusal`]. Refusals are a closed set,
//! mapped onto remoting response codes in one place ([`refusal`]); no
//! service sees a `RemotingCommand`, a frame or a socket. Cross-cutting
//! concerns (authorization, metrics) hook in here once, not per handler.
//!
//! * [`broker`]: send, pull, query/view, offsets, client registration,
//!   queue locks, end transaction, admin.
//! * [`namesrv`]: broker registration, routes, KV config, cluster info.

pub mod broker;
pub mod connection;
pub mod namesrv;
pub mod refusal;

use std::net::SocketAddr;
use std::sync::Arc;

pub use refusal::Refusal;

/// Who is asking: enough for authorization, auditing and metrics. Cheap to
/// build per request (no allocation unless a client id or user is known).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The peer's address (RocketMQ's `bornHost` for sends).
    pub remote: SocketAddr,
    /// The connection the request came on (0 when in-process).
    pub connection: u64,
    /// The client's instance id, when the protocol tells it (heartbeats,
    /// gRPC's `x-mq-client-id`).
    pub client_id: Option<Arc<str>>,
    /// The authenticated user, once authentication is on.
    pub user: Option<Arc<str>>,
}

impl Caller {
    /// A caller known only by its connection.
    pub fn connection(remote: SocketAddr, connection: u64) -> Caller {
        Caller {
            remote,
            connection,
            client_id: None,
            user: None,
        }
    }

    /// The broker itself (internal deliveries, tests).
    pub fn internal() -> Caller {
        Caller::connection(SocketAddr::from(([127, 0, 0, 1], 0)), 0)
    }
}
