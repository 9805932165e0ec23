//! ActorMQ's own RocketMQ remoting client: connection pool and request
//! matching ([`remoting`]), name-server routes ([`route`]), a producer
//! ([`producer`]), pull-based consumption and offsets ([`pull`]) and a few
//! admin calls ([`admin`]). Used by the CLI, benchmarks and black-box tests.
//!
//! Everything shares one [`route::Routes`] context (remoting client, name
//! servers, route cache); build one and hand clones to each role to share
//! connections.

pub mod admin;
pub mod batch;
pub mod error;
pub mod fault;
pub mod group_admin;
mod handlers;
pub mod lite_pull;
pub mod message;
pub mod producer;
pub mod pull;
pub mod push;
pub mod remoting;
pub mod route;
pub mod transaction;
pub mod upkeep;

pub use admin::{Admin, TopicTarget};
pub use message::Message;
pub use producer::{Producer, ProducerConfig, SendFuture, SendResult, SendStatus};
pub use pull::{PullConsumer, PullResult, PullStatus};
pub use remoting::{
    expect_code, ClientConfig, ClientError, Credentials, RemotingClient, RequestHandler,
};
pub use route::{Routes, TopicRoute};

/// This host's outward IP as text (127.0.0.1 if unknown).
pub fn local_ip() -> String {
    use std::sync::OnceLock;
    static IP: OnceLock<String> = OnceLock::new();
    IP.get_or_init(|| {
        std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("8.8.8.8:80").map(|_| s))
            .and_then(|s| s.local_addr())
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| "127.0.0.1".into())
    })
    .clone()
}

/// A Java-style client id, `ip@pid#nanos`, stable for the process.
pub fn client_id() -> String {
    use std::sync::OnceLock;
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        format!("{}@{}#{nanos}", local_ip(), std::process::id())
    })
    .clone()
}

/// `ip@instance` for a named instance, else the process's [`client_id`]
/// (Java: `clientIP@instanceName`).
pub fn client_id_for(instance: Option<&str>) -> String {
    match instance.filter(|i| !i.is_empty()) {
        Some(i) => format!("{}@{i}", local_ip()),
        None => client_id(),
    }
}
