//! Accept loop shared by the name server and the broker: accepts
//! connections and starts a [`Session`] for each on one of the I/O arbiters
//! (one per core, round robin), so sessions spread over the cores.
//!
//! Past `max_connections` a new connection gets one SYSTEM_BUSY frame
//! naming the cap and is closed, so the descriptors the store needs stay
//! available. At the first start the soft RLIMIT_NOFILE is raised to the
//! hard limit, as RocketMQ's start scripts do with `ulimit -n`.
//!
//! With TLS ([`serve_tls`], `tls.server.mode` permissive or enforcing) the
//! accept task only accepts: telling TLS from plaintext by the first byte
//! and the handshake run as a task on the session's arbiter, within the
//! handshake timeout, so a slow or silent peer never holds up accepting. A
//! connection counts against `max_connections` from its accept on.

use actix::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use super::session::{ConnLimits, Processor, Session};
use crate::tls::{ServerTls, Stream};
use crate::wire::codes::response;
use crate::wire::RemotingCommand;

/// Limits of one listening server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub conn: ConnLimits,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            conn: ConnLimits::default(),
            max_connections: 10_000,
        }
    }
}

impl ServerLimits {
    /// Keys: RocketMQ's `serverChannelMaxIdleTimeSeconds` (120), and
    /// ActorMQ's `serverMaxConnections` (10,000), `serverMaxInFlightRequests`
    /// (per connection, 1,024) and `serverFrameTimeoutMillis` (30,000).
    pub fn from_properties(
        m: &std::collections::BTreeMap<String, String>,
    ) -> Result<ServerLimits, crate::config::ConfigError> {
        fn num(
            m: &std::collections::BTreeMap<String, String>,
            key: &str,
            min: u64,
            max: u64,
        ) -> Result<Option<u64>, crate::config::ConfigError> {
            let Some(v) = m.get(key) else { return Ok(None) };
            match v.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(crate::config::ConfigError::BadValue {
                    key: key.into(),
                    value: v.clone(),
                    why: "out of range (see docs: connection limits)",
                }),
            }
        }
        let mut l = ServerLimits::default();
        if let Some(s) = num(m, "serverChannelMaxIdleTimeSeconds", 1, 86_400)? {
            l.conn.idle_timeout = Duration::from_secs(s);
        }
        if let Some(n) = num(m, "serverMaxConnections", 1, 1_000_000)? {
            l.max_connections = n as usize;
        }
        if let Some(n) = num(m, "serverMaxInFlightRequests", 1, 1_000_000)? {
            l.conn.max_in_flight = n as usize;
        }
        if let Some(ms) = num(m, "serverFrameTimeoutMillis", 100, 3_600_000)? {
            l.conn.frame_timeout = Duration::from_millis(ms);
        }
        Ok(l)
    }
}

/// Raises the soft open-files limit to the hard one (once per process);
/// returns the soft limit now in force.
// `rlim_t` is u64 on Linux only.
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile_limit() -> u64 {
    static RAISED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *RAISED.get_or_init(|| {
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        unsafe {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return 0;
            }
            if lim.rlim_cur < lim.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                    tracing::info!(
                        from = lim.rlim_cur,
                        to = lim.rlim_max,
                        "raised the open-files limit"
                    );
                    return lim.rlim_max;
                }
            }
            lim.rlim_cur
        }
    })
}

/// Decrements the live-connection count when a session ends.
pub(crate) struct ConnGuard(Arc<AtomicUsize>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Tells a refused client why, then closes.
async fn refuse(mut stream: tokio::net::TcpStream, max: usize) {
    use tokio::io::AsyncWriteExt;
    let cmd = RemotingCommand::new_response(
        response::SYSTEM_BUSY,
        Some(format!(
            "[OVERLOAD] too many connections: the server serves at most {max}"
        )),
    );
    let mut buf = bytes::BytesMut::new();
    cmd.encode_to(&mut buf);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&buf)).await;
    let _ = stream.shutdown().await;
}

/// A pool of arbiters (event-loop threads) for sessions.
#[derive(Clone)]
pub struct IoPool {
    arbiters: Arc<Vec<ArbiterHandle>>,
    next: Arc<AtomicUsize>,
}

impl IoPool {
    /// `threads == 0` picks the default: one per core but one, so the
    /// flusher, the prefaulter and co-located clients keep a core (on 2
    /// cores a single session thread measured best: see docs/performance.md).
    pub fn new(threads: usize) -> IoPool {
        let n = if threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .saturating_sub(1)
                .max(1)
        } else {
            threads
        };
        let arbiters = (0..n).map(|_| Arbiter::new().handle()).collect();
        IoPool {
            arbiters: Arc::new(arbiters),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn pick(&self) -> &ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        &self.arbiters[i]
    }

    /// The first arbiter (a fixed home for actors that want to share a
    /// thread with sessions).
    pub fn first(&self) -> &ArbiterHandle {
        &self.arbiters[0]
    }

    pub fn stop(&self) {
        for a in self.arbiters.iter() {
            a.stop();
        }
    }
}

/// Accepts connections until the returned handle is dropped or aborted,
/// with the default limits.
pub fn serve(
    listener: TcpListener,
    processor: Arc<dyn Processor>,
    pool: IoPool,
) -> tokio::task::JoinHandle<()> {
    serve_with(listener, processor, pool, ServerLimits::default())
}

/// Accepts connections until the returned handle is dropped or aborted.
pub fn serve_with(
    listener: TcpListener,
    processor: Arc<dyn Processor>,
    pool: IoPool,
    limits: ServerLimits,
) -> tokio::task::JoinHandle<()> {
    serve_tls(listener, processor, pool, limits, None)
}

/// Accepts connections, plain or TLS as `tls` says (`None`: plaintext only,
/// RocketMQ's `disabled`), until the returned handle is dropped or aborted.
pub fn serve_tls(
    listener: TcpListener,
    processor: Arc<dyn Processor>,
    pool: IoPool,
    limits: ServerLimits,
    tls: Option<ServerTls>,
) -> tokio::task::JoinHandle<()> {
    raise_nofile_limit();
    let live = Arc::new(AtomicUsize::new(0));
    actix::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    if live.fetch_add(1, Ordering::Relaxed) >= limits.max_connections {
                        live.fetch_sub(1, Ordering::Relaxed);
                        tracing::warn!(
                            max = limits.max_connections,
                            "connection refused: too many connections"
                        );
                        actix::spawn(refuse(stream, limits.max_connections));
                        continue;
                    }
                    let guard = ConnGuard(live.clone());
                    let std_stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot hand over connection");
                            continue;
                        }
                    };
                    let p = processor.clone();
                    let conn = limits.conn.clone();
                    let tls = tls.clone();
                    pool.pick().spawn_fn(move || {
                        match tokio::net::TcpStream::from_std(std_stream) {
                            Ok(s) => adopt(s, tls, p, conn, guard),
                            Err(e) => tracing::warn!(error = %e, "cannot adopt connection"),
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// Starts the session of an accepted connection on the current arbiter,
/// after the TLS handshake when the port speaks TLS.
fn adopt(
    s: tokio::net::TcpStream,
    tls: Option<ServerTls>,
    p: Arc<dyn Processor>,
    conn: ConnLimits,
    guard: ConnGuard,
) {
    let (Ok(peer), Ok(local)) = (s.peer_addr(), s.local_addr()) else {
        return;
    };
    let _ = s.set_nodelay(true);
    match tls {
        None => {
            Session::start(Stream::Tcp(s), (peer, local), p, conn, guard);
        }
        Some(tls) => {
            actix::spawn(async move {
                match tls.accept(s).await {
                    Ok(stream) => {
                        Session::start(stream, (peer, local), p, conn, guard);
                    }
                    Err(e) => {
                        tracing::info!(%peer, error = %e, mode = tls.mode().name(), "connection closed before serving")
                    }
                }
            });
        }
    }
}
