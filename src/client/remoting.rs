//! Remoting client (RocketMQ's `NettyRemotingClient`): request/response
//! over pooled TCP connections, optionally TLS (`tls.enable`; see
//! [`crate::tls::ClientTls`]).
//!
//! One connection per address, opened lazily on first use and reused. Each
//! connection has a writer task (fed through a channel, so any number of
//! requests can be in flight at once) and a reader task that completes
//! pending calls by `opaque` and hands server-initiated requests
//! (`NOTIFY_CONSUMER_IDS_CHANGED`, `CHECK_TRANSACTION_STATE`, ...) to the
//! registered handler. A broken connection fails all its pending calls at
//! once and is dropped from the pool, so the next call reconnects.
//!
//! Only `tokio::spawn` is used, so the client works inside an actix system
//! (current-thread runtime) as well as on a multi-thread tokio runtime.
//! Used by the rest of `crate::client`, the CLI and broker→namesrv code.
//!
//! TLS: [`RemotingClient::with_tls`] chooses; [`RemotingClient::new`] takes
//! the process default ([`crate::tls::client_default`], set by the CLI's
//! `--tls`), so every client a tool builds speaks TLS when asked to.
//!
//! Credentials (RocketMQ's `AclClientRPCHook` with `SessionCredentials`):
//! a client with [`Credentials`] signs every request it sends — after all
//! ext fields and the body are set, just before the frame is queued — with
//! [`crate::auth::signature::sign_remoting`] (`AccessKey`, optional
//! `SecurityToken`, `Signature`). [`RemotingClient::new`] and
//! [`RemotingClient::with_tls`] take the process default
//! ([`default_credentials`], set by the CLI's `--access-key`/`--secret-key`);
//! [`RemotingClient::with_options`] chooses. A request that already carries a
//! `Signature` (signed by its caller) is sent as it is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OnceCell};
use tokio::task::AbortHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::tls::{ClientTls, ReadHalf, Stream, WriteHalf};
use crate::wire::command::{FLAG_ONEWAY, FLAG_RESPONSE};
use crate::wire::{FrameCodec, Inbound, RemotingCommand};

use super::handlers::Handlers;

pub use super::error::{expect_code, ClientError};

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// Timeout callers use when they have no better idea (3 s, like Java).
    pub default_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(3),
            default_timeout: Duration::from_secs(3),
        }
    }
}

/// ACL credentials a client signs its requests with (RocketMQ's
/// `SessionCredentials`: `accessKey`, `secretKey`, `securityToken`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub security_token: Option<String>,
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            security_token: None,
        }
    }

    /// Signs `cmd` as `AclClientRPCHook.doBeforeRequest` does, unless it
    /// already carries a `Signature` (its caller signed it).
    pub fn sign(&self, cmd: &mut RemotingCommand) {
        if cmd.ext.get(crate::auth::signature::SIGNATURE).is_some() {
            return;
        }
        let body = cmd.body_bytes();
        crate::auth::signature::sign_remoting(
            &mut cmd.ext,
            &body,
            &self.access_key,
            &self.secret_key,
            self.security_token.as_deref(),
        );
    }
}

/// The secret stays out of logs and panics.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

static CREDENTIALS_DEFAULT: OnceLock<Credentials> = OnceLock::new();

/// Makes `c` the credentials of every client the process builds with
/// [`RemotingClient::new`] or [`RemotingClient::with_tls`] from now on;
/// `false` if a default was already set (the first one stays).
pub fn set_default_credentials(c: Credentials) -> bool {
    CREDENTIALS_DEFAULT.set(c).is_ok()
}

/// The process default credentials, if any were set.
pub fn default_credentials() -> Option<Credentials> {
    CREDENTIALS_DEFAULT.get().cloned()
}

/// Handler for requests the server sends us; a returned command is sent back
/// as the response (opaque and response flag are filled in here).
pub type RequestHandler =
    Arc<dyn Fn(String, RemotingCommand) -> Option<RemotingCommand> + Send + Sync>;

type Reply = oneshot::Sender<Result<RemotingCommand, ClientError>>;
type Slot = Arc<OnceCell<Arc<Conn>>>;

/// Process-wide request id counter (Java: one static atomic).
static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(0);

fn next_opaque() -> i32 {
    NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed)
}

/// Outbound queue depth per connection; senders wait when it is full.
const WRITE_QUEUE: usize = 8192;

/// A pooled, pipelining remoting client. Cheap to clone.
#[derive(Clone)]
pub struct RemotingClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    tls: Option<ClientTls>,
    credentials: Option<Credentials>,
    conns: Mutex<HashMap<String, Slot>>,
    handler: Arc<Handlers>,
    shut: AtomicBool,
}

/// One live TCP connection.
struct Conn {
    addr: String,
    tx: mpsc::Sender<RemotingCommand>,
    pending: Mutex<HashMap<i32, Reply>>,
    closed: AtomicBool,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Conn {
    /// Marks the connection dead, fails every pending call and stops its
    /// tasks. Idempotent.
    fn fail(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let drained: Vec<Reply> = lock(&self.pending).drain().map(|(_, r)| r).collect();
        for r in drained {
            let _ = r.send(Err(ClientError::Closed {
                addr: self.addr.clone(),
            }));
        }
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

/// Poison-tolerant lock: a panic elsewhere must not wedge the client.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a pending entry when the call finishes or is cancelled.
struct PendingGuard<'a> {
    conn: &'a Conn,
    opaque: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.conn.pending).remove(&self.opaque);
    }
}

impl RemotingClient {
    /// A client with the process's default TLS and credentials (none
    /// unless the process set them).
    pub fn new(config: ClientConfig) -> Self {
        Self::with_tls(config, crate::tls::client_default())
    }

    /// A client whose connections use `tls` (`None`: plain TCP), signing
    /// with the process default credentials.
    pub fn with_tls(config: ClientConfig, tls: Option<ClientTls>) -> Self {
        Self::with_options(config, tls, default_credentials())
    }

    /// A client with explicit TLS and credentials (`None`: unsigned).
    pub fn with_options(
        config: ClientConfig,
        tls: Option<ClientTls>,
        credentials: Option<Credentials>,
    ) -> Self {
        RemotingClient {
            inner: Arc::new(Inner {
                config,
                tls,
                credentials,
                conns: Mutex::new(HashMap::new()),
                handler: Arc::new(Handlers::default()),
                shut: AtomicBool::new(false),
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The credentials this client signs with, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.inner.credentials.as_ref()
    }

    /// Signs `cmd` when the client has credentials; the last step before
    /// a request is queued.
    fn sign(&self, cmd: &mut RemotingCommand) {
        if let Some(c) = &self.inner.credentials {
            c.sign(cmd);
        }
    }

    /// Sends `cmd` to `addr` and waits for the matching response. The
    /// response is returned whatever its code; see [`expect_code`].
    pub async fn invoke(
        &self,
        addr: &str,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        let timed_out = || ClientError::Timeout {
            addr: addr.to_string(),
            millis: timeout.as_millis() as u64,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let conn = tokio::time::timeout_at(deadline, self.conn(addr))
            .await
            .map_err(|_| timed_out())??;
        let opaque = next_opaque();
        cmd.opaque = opaque;
        cmd.flag &= !(FLAG_RESPONSE | FLAG_ONEWAY);
        self.sign(&mut cmd);
        let (reply_tx, reply_rx) = oneshot::channel();
        lock(&conn.pending).insert(opaque, reply_tx);
        let _guard = PendingGuard {
            conn: &conn,
            opaque,
        };
        // `fail` sets `closed` before draining: checking after the insert
        // means a call is never left behind in a dead connection's map.
        if conn.closed.load(Ordering::Acquire) {
            return Err(self.closed(addr));
        }
        let call = async {
            conn.tx.send(cmd).await.map_err(|_| self.closed(addr))?;
            match reply_rx.await {
                Ok(r) => r,
                Err(_) => Err(self.closed(addr)),
            }
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        }
    }

    /// Sends `cmd` one-way (flag bit 1): no response is expected. Returns
    /// once the command is queued on the connection.
    pub async fn invoke_oneway(
        &self,
        addr: &str,
        mut cmd: RemotingCommand,
    ) -> Result<(), ClientError> {
        let conn = tokio::time::timeout(self.inner.config.default_timeout, self.conn(addr))
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.to_string(),
                millis: self.inner.config.default_timeout.as_millis() as u64,
            })??;
        cmd.opaque = next_opaque();
        cmd.flag = (cmd.flag & !FLAG_RESPONSE) | FLAG_ONEWAY;
        self.sign(&mut cmd);
        conn.tx.send(cmd).await.map_err(|_| self.closed(addr))
    }

    /// Installs the catch-all handler for server→client requests (asked
    /// after the per-code handlers).
    pub fn set_request_handler(&self, h: RequestHandler) {
        *self
            .inner
            .handler
            .fallback
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(h);
    }

    /// Registers `h` for server requests with `code` under `owner`
    /// (replacing that owner's earlier handler for the code). A handler
    /// returns `None` for requests that are not its business (another
    /// consumer group, another client id) so the next one is asked.
    pub fn add_code_handler(&self, owner: &str, code: i32, h: RequestHandler) {
        let mut hs = self
            .inner
            .handler
            .by_code
            .write()
            .unwrap_or_else(|e| e.into_inner());
        hs.retain(|(o, c, _)| !(o == owner && *c == code));
        hs.push((owner.to_string(), code, h));
    }

    /// Drops every handler registered under `owner`.
    pub fn remove_code_handlers(&self, owner: &str) {
        self.inner
            .handler
            .by_code
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(o, _, _)| o != owner);
    }

    /// Closes the connection to `addr` (pending calls fail with `Closed`).
    pub fn close(&self, addr: &str) {
        let slot = lock(&self.inner.conns).remove(addr);
        if let Some(conn) = slot.and_then(|s| s.get().cloned()) {
            conn.fail();
        }
    }

    /// Closes every connection; later calls fail with `Closed`.
    pub fn shutdown(&self) {
        self.inner.shut.store(true, Ordering::Release);
        let slots: Vec<Slot> = lock(&self.inner.conns).drain().map(|(_, s)| s).collect();
        for s in slots {
            if let Some(conn) = s.get() {
                conn.fail();
            }
        }
    }

    /// Addresses with an open (or opening) connection.
    pub fn connected_addrs(&self) -> Vec<String> {
        lock(&self.inner.conns).keys().cloned().collect()
    }

    fn closed(&self, addr: &str) -> ClientError {
        ClientError::Closed {
            addr: addr.to_string(),
        }
    }

    /// The live connection to `addr`, connecting if needed. Concurrent
    /// callers share one connection attempt.
    async fn conn(&self, addr: &str) -> Result<Arc<Conn>, ClientError> {
        loop {
            if self.inner.shut.load(Ordering::Acquire) {
                return Err(self.closed(addr));
            }
            let slot: Slot = lock(&self.inner.conns)
                .entry(addr.to_string())
                .or_default()
                .clone();
            let conn = slot
                .get_or_try_init(|| self.connect(addr, slot.clone()))
                .await?
                .clone();
            if !conn.closed.load(Ordering::Acquire) {
                return Ok(conn);
            }
            // Dead but not yet removed: drop the slot and retry.
            remove_slot(&self.inner.conns, addr, &slot);
        }
    }

    async fn connect(&self, addr: &str, slot: Slot) -> Result<Arc<Conn>, ClientError> {
        let connect_err = |reason: String| ClientError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let open = async {
            let tcp = TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            match &self.inner.tls {
                Some(tls) => tls.connect(addr, tcp).await,
                None => Ok(Stream::Tcp(tcp)),
            }
        };
        let stream = tokio::time::timeout(self.inner.config.connect_timeout, open)
            .await
            .map_err(|_| connect_err("connect timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let conn = Arc::new(Conn {
            addr: addr.to_string(),
            tx,
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        });
        let pool = Arc::downgrade(&self.inner);
        let writer = tokio::spawn(write_loop(
            conn.clone(),
            FramedWrite::new(wr, FrameCodec::default()),
            rx,
            pool.clone(),
            slot.clone(),
        ));
        let reader = tokio::spawn(read_loop(
            conn.clone(),
            FramedRead::new(rd, FrameCodec::default()),
            self.inner.handler.clone(),
            pool,
            slot,
        ));
        lock(&conn.tasks).extend([writer.abort_handle(), reader.abort_handle()]);
        tracing::debug!(addr, "remoting connection opened");
        Ok(conn)
    }
}

/// Removes `slot` from the pool if it is still the one registered for `addr`.
fn remove_slot(conns: &Mutex<HashMap<String, Slot>>, addr: &str, slot: &Slot) {
    let mut map = lock(conns);
    if map.get(addr).is_some_and(|s| Arc::ptr_eq(s, slot)) {
        map.remove(addr);
    }
}

/// Tears a connection down after an I/O failure or EOF.
fn broken(conn: &Conn, pool: &std::sync::Weak<Inner>, slot: &Slot) {
    if let Some(inner) = pool.upgrade() {
        remove_slot(&inner.conns, &conn.addr, slot);
    }
    conn.fail();
}

async fn write_loop(
    conn: Arc<Conn>,
    mut sink: FramedWrite<WriteHalf, FrameCodec>,
    mut rx: mpsc::Receiver<RemotingCommand>,
    pool: std::sync::Weak<Inner>,
    slot: Slot,
) {
    while let Some(cmd) = rx.recv().await {
        // Coalesce whatever is already queued into one flush.
        let mut res = sink.feed(cmd).await;
        while res.is_ok() {
            match rx.try_recv() {
                Ok(more) => res = sink.feed(more).await,
                Err(_) => break,
            }
        }
        if res.is_ok() {
            res = sink.flush().await;
        }
        if let Err(e) = res {
            tracing::debug!(addr = %conn.addr, error = %e, "remoting write failed");
            break;
        }
    }
    broken(&conn, &pool, &slot);
}

async fn read_loop(
    conn: Arc<Conn>,
    mut frames: FramedRead<ReadHalf, FrameCodec>,
    handler: Arc<Handlers>,
    pool: std::sync::Weak<Inner>,
    slot: Slot,
) {
    while let Some(item) = frames.next().await {
        let cmd = match item {
            Ok(Inbound::Command(cmd)) => cmd,
            Ok(Inbound::Malformed(e, _)) => {
                tracing::warn!(addr = %conn.addr, error = %e, "malformed frame from server");
                continue;
            }
            Err(e) => {
                tracing::debug!(addr = %conn.addr, error = %e, "remoting read failed");
                break;
            }
        };
        if cmd.is_response() {
            let waiter = lock(&conn.pending).remove(&cmd.opaque);
            match waiter {
                Some(w) => {
                    let _ = w.send(Ok(cmd));
                }
                None => {
                    tracing::debug!(addr = %conn.addr, opaque = cmd.opaque, "unmatched response")
                }
            }
            continue;
        }
        serve_request(&conn, &handler, cmd);
    }
    broken(&conn, &pool, &slot);
}

/// Runs the handler for a server→client request and queues its answer.
fn serve_request(conn: &Conn, handler: &Handlers, req: RemotingCommand) {
    let oneway = req.is_oneway();
    let opaque = req.opaque;
    let code = req.code;
    let answer = handler.answer(&conn.addr, req);
    if oneway {
        return;
    }
    if let Some(mut resp) = answer {
        resp.opaque = opaque;
        resp.flag = (resp.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
        if conn.tx.try_send(resp).is_err() {
            tracing::warn!(addr = %conn.addr, code, "cannot queue response to server request");
        }
    }
}

#[cfg(test)]
#[path = "remoting_tests.rs"]
mod tests;
