//! Background upkeep of a producer (`MQClientInstance.startScheduledTask`): the routes of the
//! topics in use are refreshed every 30 s, and every broker in use gets a
//! HEART_BEAT with the producer group every 30 s (and once at first
//! contact, so the broker can call the producer back, e.g. for transaction
//! checks). [`Upkeep::shutdown`] sends UNREGISTER_CLIENT to each of them.
//!
//! Also the two calls every client role needs: [`heartbeat_to`] and
//! [`unregister_from`].

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::task::AbortHandle;

use crate::wire::bodies::{HeartbeatData, ProducerData};
use crate::wire::codes::{request, response};
use crate::wire::headers::client::UnregisterClientRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

use super::remoting::{expect_code, ClientError};
use super::route::Routes;

/// How often the loop wakes to look at its timers.
const TICK: Duration = Duration::from_millis(500);

/// Sends a HEART_BEAT with `body` to `addr` and checks the answer.
pub async fn heartbeat_to(routes: &Routes, addr: &str, body: Bytes) -> Result<(), ClientError> {
    let cmd = RemotingCommand::request(request::HEART_BEAT).with_body(body);
    let resp = routes
        .client()
        .invoke(addr, cmd, routes.default_timeout())
        .await?;
    expect_code(resp, &[response::SUCCESS]).map(|_| ())
}

/// Sends UNREGISTER_CLIENT for the given groups to `addr`.
pub async fn unregister_from(
    routes: &Routes,
    addr: &str,
    client_id: &str,
    producer_group: Option<&str>,
    consumer_group: Option<&str>,
) -> Result<(), ClientError> {
    let mut cmd = RemotingCommand::request(request::UNREGISTER_CLIENT);
    cmd.ext = UnregisterClientRequestHeader {
        client_id: client_id.to_string(),
        producer_group: producer_group.map(str::to_owned),
        consumer_group: consumer_group.map(str::to_owned),
    }
    .to_ext();
    let resp = routes
        .client()
        .invoke(addr, cmd, routes.default_timeout())
        .await?;
    expect_code(resp, &[response::SUCCESS]).map(|_| ())
}

/// The HEART_BEAT body of a producer-only client.
pub fn producer_heartbeat(client_id: &str, group: &str) -> Bytes {
    let hb = HeartbeatData {
        client_id: client_id.to_string(),
        producer_data_set: vec![ProducerData {
            group_name: group.to_string(),
        }],
        ..Default::default()
    };
    Bytes::from(serde_json::to_vec(&hb).unwrap_or_default())
}

/// Route refresh and heartbeats for one producer. Cheap to clone.
#[derive(Clone)]
pub struct Upkeep {
    inner: Arc<State>,
}

struct State {
    routes: Routes,
    client_id: String,
    group: Option<String>,
    heartbeat_every: Duration,
    refresh_every: Duration,
    topics: Mutex<BTreeSet<String>>,
    brokers: Mutex<BTreeSet<String>>,
    task: Mutex<Option<AbortHandle>>,
    started: AtomicBool,
    shut: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Upkeep {
    pub fn new(
        routes: Routes,
        client_id: String,
        group: Option<String>,
        heartbeat_every: Duration,
        refresh_every: Duration,
    ) -> Self {
        Upkeep {
            inner: Arc::new(State {
                routes,
                client_id,
                group,
                heartbeat_every,
                refresh_every,
                topics: Mutex::new(BTreeSet::new()),
                brokers: Mutex::new(BTreeSet::new()),
                task: Mutex::new(None),
                started: AtomicBool::new(false),
                shut: AtomicBool::new(false),
            }),
        }
    }

    /// Notes `topic` and broker `addr` as in use, heartbeats a broker seen
    /// for the first time, and starts the background loop on first call.
    /// Must run inside a tokio runtime.
    pub fn ensure_started(&self, topic: &str, addr: &str) {
        if self.inner.shut.load(Ordering::Acquire) {
            return;
        }
        if !lock(&self.inner.topics).contains(topic) {
            lock(&self.inner.topics).insert(topic.to_string());
        }
        let new_broker = lock(&self.inner.brokers).insert(addr.to_string());
        if new_broker {
            let me = self.inner.clone();
            let addr = addr.to_string();
            tokio::spawn(async move { me.heartbeat(&addr).await });
        }
        if !self.inner.started.swap(true, Ordering::AcqRel) {
            let weak = Arc::downgrade(&self.inner);
            let h = tokio::spawn(run(weak));
            *lock(&self.inner.task) = Some(h.abort_handle());
        }
    }

    /// Stops the loop and unregisters from every broker in use.
    pub async fn shutdown(&self) {
        if self.inner.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(t) = lock(&self.inner.task).take() {
            t.abort();
        }
        let brokers: Vec<String> = lock(&self.inner.brokers).iter().cloned().collect();
        for addr in brokers {
            if let Err(e) = unregister_from(
                &self.inner.routes,
                &addr,
                &self.inner.client_id,
                self.inner.group.as_deref(),
                None,
            )
            .await
            {
                tracing::debug!(addr, error = %e, "unregister failed");
            }
        }
    }
}

impl State {
    async fn heartbeat(&self, addr: &str) {
        let Some(group) = &self.group else { return };
        let body = producer_heartbeat(&self.client_id, group);
        if let Err(e) = heartbeat_to(&self.routes, addr, body).await {
            tracing::debug!(addr, error = %e, "producer heartbeat failed");
        }
    }

    async fn refresh_routes(&self) {
        let topics: Vec<String> = lock(&self.topics).iter().cloned().collect();
        for t in topics {
            match self.routes.refresh(&t).await {
                Ok(Some(route)) => {
                    let mut b = lock(&self.brokers);
                    b.extend(route.master_addrs());
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(topic = %t, error = %e, "route refresh failed"),
            }
        }
    }
}

async fn run(state: Weak<State>) {
    let mut last_refresh = Instant::now();
    let mut last_heartbeat = Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        let Some(s) = state.upgrade() else { return };
        if s.shut.load(Ordering::Acquire) {
            return;
        }
        if last_refresh.elapsed() >= s.refresh_every {
            s.refresh_routes().await;
            last_refresh = Instant::now();
        }
        if last_heartbeat.elapsed() >= s.heartbeat_every {
            let brokers: Vec<String> = lock(&s.brokers).iter().cloned().collect();
            for addr in brokers {
                s.heartbeat(&addr).await;
            }
            last_heartbeat = Instant::now();
        }
    }
}
