//! The 5.x gRPC API (`apache.rocketmq.v2.MessagingService`) as a proxy, the
//! way RocketMQ's `proxy` module serves it:
//!
//! ```text
//!   5.x client ──gRPC──► grpc.rs (MessagingService) ──► Backend ─┬─ local.rs:   BrokerService in this process
//!                         telemetry.rs (Settings, checks)         └─ cluster.rs: remoting to the brokers of the name servers
//! ```
//!
//! * LOCAL mode (`actormq standalone`, `actormq broker --enable-proxy`): the
//!   proxy lives in the broker's process and calls the service layer
//!   directly, no remoting hop.
//! * CLUSTER mode (`actormq proxy -n NAMESRV`): its own process; it finds
//!   brokers through the name servers and talks remoting to them.
//!
//! Whatever the mode, clients only ever see the proxy's own endpoint in
//! routes (QueryRoute), so every later call comes back here.

pub mod backend;
pub mod cluster;
pub mod config;
pub mod convert;
mod grpc;
pub mod local;
mod receive;
mod send;
pub mod settings;
pub mod status;
mod telemetry;

/// The generated `apache.rocketmq.v2` messages, server and client.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("apache.rocketmq.v2");
}

use std::net::SocketAddr;
use std::sync::Arc;

pub use backend::Backend;
pub use config::ProxyConfig;

/// A running gRPC listener; dropping it does not stop it, [`Self::stop`] does.
pub struct ProxyServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyServer {
    /// Binds `cfg.grpc_server_port` on `listen` and serves `backend`.
    pub async fn start(
        cfg: ProxyConfig,
        listen: &str,
        backend: Arc<dyn Backend>,
    ) -> std::io::Result<ProxyServer> {
        let listener = tokio::net::TcpListener::bind((listen, cfg.grpc_server_port)).await?;
        let addr = listener.local_addr()?;
        let auth = backend.auth();
        let svc = grpc::Messaging::new(Arc::new(cfg), backend, addr);
        let max = 130 * 1024 * 1024;
        let server = pb::messaging_service_server::MessagingServiceServer::new(svc)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let incoming = tokio_stream_incoming(listener);
        let router = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .tcp_nodelay(true)
            .add_service(tonic::service::interceptor::InterceptedService::new(
                server,
                grpc::Interceptor { auth },
            ));
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
            {
                tracing::warn!(error = %e, "gRPC server stopped");
            }
        });
        Ok(ProxyServer {
            addr,
            stop: Some(tx),
            task,
        })
    }

    /// Stops accepting and closes the connections.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.task).await;
        self.task.abort();
    }
}

/// Accepted connections as the stream tonic serves (with TCP_NODELAY).
fn tokio_stream_incoming(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((r, l))
    })
}
