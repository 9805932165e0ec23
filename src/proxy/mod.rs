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

mod auth_sync;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod convert;
mod grpc;
pub mod local;
mod receive;
mod renew;
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
    /// Binds `cfg.grpc_server_port` on `listen` and serves `backend` on
    /// the current runtime, or on `runtime` when given (LOCAL mode runs it
    /// on a broker I/O thread, beside the services it calls).
    pub async fn start(
        cfg: ProxyConfig,
        listen: &str,
        backend: Arc<dyn Backend>,
        runtime: Option<tokio::runtime::Handle>,
    ) -> std::io::Result<ProxyServer> {
        let std_listener = std::net::TcpListener::bind((listen, cfg.grpc_server_port))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve = async move {
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => return tracing::warn!(error = %e, "gRPC listener"),
            };
            let auth = backend.auth();
            let svc = grpc::Messaging::new(Arc::new(cfg), backend, addr);
            let max = 130 * 1024 * 1024;
            let server = pb::messaging_service_server::MessagingServiceServer::new(svc)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max);
            let router = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
                .add_service(tonic::service::interceptor::InterceptedService::new(
                    server,
                    grpc::Interceptor { auth },
                ));
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = router
                .serve_with_incoming_shutdown(incoming(listener), shutdown)
                .await
            {
                tracing::warn!(error = %e, "gRPC server stopped");
            }
        };
        let task = match runtime {
            Some(rt) => rt.spawn(serve),
            None => tokio::spawn(serve),
        };
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
fn incoming(
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
