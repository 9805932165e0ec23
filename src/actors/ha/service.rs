//! `HaService`: the master side's listener (Java's `DefaultHAService` and
//! its `AcceptSocketService`). Bound on `haListenPort` before the broker
//! registers, so REGISTER_BROKER carries the real `haServerAddr`; every
//! accepted slave gets its own [`HaConnection`] actor. Like Java it runs
//! whatever the role: a slave promoted to master serves its own slaves at
//! once.
//!
//! The service and its connections run on the arbiter they are started in
//! (`Actor::start_in_arbiter`); the broker puts them on the commit-log
//! writer's thread when that thread is also the session thread (2 cores or
//! fewer), so a send's wake-up of the transfer and a slave's report
//! releasing the waiting sends stay on one thread (see `actors::ha`).

use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

use super::connection::HaConnection;
use super::group_transfer::GroupTransfer;
use super::HaConfig;
use crate::store::CommitLogReader;

pub struct HaService {
    /// Registered with the reactor of the service's own arbiter when it
    /// starts (bound before, on whatever thread set the broker up).
    listener: Option<std::net::TcpListener>,
    group: Arc<GroupTransfer>,
    reader: CommitLogReader,
    cfg: HaConfig,
    connections: Vec<Addr<HaConnection>>,
}

/// Binds the HA listener: `haListenPort`, or the broker port + 1 (a free
/// port when that one is taken).
pub async fn bind(
    listen_addr: &str,
    broker_port: u16,
    cfg: &HaConfig,
) -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = match cfg.listen_port {
        Some(p) => TcpListener::bind((listen_addr, p)).await?,
        None => match TcpListener::bind((listen_addr, broker_port.wrapping_add(1))).await {
            Ok(l) => l,
            Err(e) => {
                // Not configured explicitly: any free port rather than no
                // broker (the registration carries the real one).
                tracing::warn!(error = %e, port = broker_port.wrapping_add(1), "HA port taken; using a free one");
                TcpListener::bind((listen_addr, 0)).await?
            }
        },
    };
    let a = l.local_addr()?;
    Ok((l, a))
}

impl HaService {
    pub fn new(
        listener: TcpListener,
        group: Arc<GroupTransfer>,
        reader: CommitLogReader,
        cfg: HaConfig,
    ) -> std::io::Result<Self> {
        Ok(HaService {
            listener: Some(listener.into_std()?),
            group,
            reader,
            cfg,
            connections: Vec::new(),
        })
    }
}

/// A slave connected.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Accepted(pub tokio::net::TcpStream, pub SocketAddr);

/// Accepts slaves on `listener` and hands each to `me`, until `me` stops
/// (the HA listeners, classic and AutoSwitch).
pub(crate) async fn accept_loop<A>(listener: TcpListener, me: Addr<A>)
where
    A: Actor + Handler<Accepted>,
    A::Context: actix::dev::ToEnvelope<A, Accepted>,
{
    loop {
        match listener.accept().await {
            Ok((s, peer)) => {
                if me.send(Accepted(s, peer)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "HA accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

impl Actor for HaService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let listener = match self.listener.take().map(TcpListener::from_std) {
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                tracing::error!(error = %e, "HA listener cannot be registered; no slave can connect");
                return;
            }
            None => return,
        };
        ctx.spawn(accept_loop(listener, ctx.address()).into_actor(self));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for c in self.connections.drain(..) {
            c.do_send(Close);
        }
    }
}

impl Handler<Accepted> for HaService {
    type Result = ();
    fn handle(&mut self, m: Accepted, _: &mut Context<Self>) {
        self.connections.retain(|c| c.connected());
        let c = HaConnection::new(
            m.0,
            m.1.to_string(),
            self.group.clone(),
            self.reader.clone(),
            self.cfg.clone(),
        );
        self.connections.push(c.start());
    }
}

/// Stops the service, or one connection (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

impl Handler<Close> for HaService {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Close> for HaConnection {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
