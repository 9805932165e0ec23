//! The name server role: a `RouteTable` actor and its request processor.
//!
//! The route table runs under `supervisor::start`: a panic anywhere in it
//! restarts it (backoff, restart limit) with its address kept, and
//! `restarting()` repairs the tables from the live-broker list and makes
//! every broker send its full registration again (see `RouteTable::repair`).

pub mod processor;
pub mod route_table;

use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

use crate::actors::server::{serve_tls, IoPool};
use crate::config::NamesrvConfig;
pub use route_table::RouteTable;

/// A running name server.
pub struct NameServer {
    pub addr: std::net::SocketAddr,
    pub table: Addr<RouteTable>,
    /// The embedded controller (`enableControllerInNamesrv=true`).
    pub controller: Option<crate::controller::ControllerNode>,
    accept: tokio::task::JoinHandle<()>,
}

impl NameServer {
    /// Binds and starts serving; call inside an actix System.
    pub async fn start(cfg: &NamesrvConfig, pool: IoPool) -> std::io::Result<NameServer> {
        let tls = cfg.tls.server()?;
        let listener =
            tokio::net::TcpListener::bind((cfg.listen_addr.as_str(), cfg.listen_port)).await?;
        let addr = listener.local_addr()?;
        let expire = Duration::from_millis(cfg.broker_expire_ms);
        let scan = Duration::from_millis(cfg.scan_interval_ms.max(10));
        let table =
            crate::actors::supervisor::start("RouteTable", move |_| RouteTable::new(expire, scan));
        let auth_dir = cfg
            .kv_config_path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let auth = cfg.auth.open(&auth_dir).map_err(std::io::Error::other)?;
        let controller = match &cfg.controller {
            Some(c) => Some(crate::controller::ControllerNode::start(c, pool.clone()).await?),
            None => None,
        };
        let processor = Arc::new(processor::NamesrvProcessor {
            controller: controller.as_ref().map(|c| c.processor.clone()),
            auth,
            service: crate::service::namesrv::NamesrvService::new(table.clone()),
            table: table.clone(),
        });
        let accept = serve_tls(listener, processor, pool, cfg.limits.clone(), tls);
        tracing::info!(%addr, "name server listening");
        Ok(NameServer {
            addr,
            table,
            controller,
            accept,
        })
    }

    pub fn stop(&self) {
        self.accept.abort();
        if let Some(c) = &self.controller {
            c.stop();
        }
        // A name server stopped by a fatal supervision failure exits non-zero.
        crate::actors::supervisor::exit_if_fatal();
    }
}

impl actix::Supervised for RouteTable {
    fn restarting(&mut self, _: &mut Self::Context) {
        crate::actors::supervisor::restarts::record("RouteTable");
        self.repair();
    }
}

crate::inject_panic_handler!(RouteTable, "RouteTable");
