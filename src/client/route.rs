//! Topic routes from the name servers (`MQClientInstance.updateTopicRouteInfoFromNameServer`): lookup with
//! GET_ROUTEINFO_BY_TOPIC, a per-topic cache, and the translation of a
//! `TopicRouteData` into the write queues a producer uses and the read
//! queues a consumer pulls.
//!
//! [`Routes`] is the shared context of the producer, pull consumer and admin
//! client: it owns the remoting client and the name-server list.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::wire::bodies::{perm, MessageQueue, TopicRouteData};
use crate::wire::codes::{request, response};
use crate::wire::headers::namesrv::TopicHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::json::from_fastjson;
use crate::wire::{RemotingCommand, WireError};

use super::remoting::{ClientConfig, ClientError, RemotingClient};

/// The topic producers fall back to when theirs has no route yet (its
/// brokers auto-create the topic on first send).
pub use crate::wire::names::AUTO_CREATE_TOPIC;
/// Queues asked for when a topic is auto-created (Java's default).
pub const DEFAULT_TOPIC_QUEUE_NUMS: i32 = 4;
/// How long a route is trusted before it is fetched again (Java polls every 30 s).
const ROUTE_TTL: Duration = Duration::from_secs(30);
/// A borrowed `TBW102` route is re-checked sooner: the real one appears
/// once a broker has created the topic and re-registered.
const BORROWED_ROUTE_TTL: Duration = Duration::from_secs(3);

/// Splits `"a:9876;b:9876"` into addresses (also accepts `,` and spaces).
pub fn parse_namesrv_list(s: &str) -> Vec<String> {
    s.split([';', ',', ' '])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Write queues of `topic`: `orderTopicConf` if set, else every writable
/// queue of every broker that has a master, brokers in name order.
pub fn write_queues(topic: &str, route: &TopicRouteData) -> Vec<MessageQueue> {
    if let Some(conf) = route.order_topic_conf.as_deref().filter(|c| !c.is_empty()) {
        let mut out = Vec::new();
        for part in conf.split(';') {
            let Some((broker, n)) = part.split_once(':') else {
                continue;
            };
            let n: i32 = n.trim().parse().unwrap_or(0);
            out.extend((0..n).map(|q| mq(topic, broker.trim(), q)));
        }
        return out;
    }
    let mut datas: Vec<_> = route.queue_datas.iter().collect();
    datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let mut out = Vec::new();
    for qd in datas {
        if qd.perm & perm::WRITE == 0 {
            continue;
        }
        let has_master = route
            .broker_datas
            .iter()
            .any(|b| b.broker_name == qd.broker_name && b.master_addr().is_some());
        if !has_master {
            continue;
        }
        out.extend((0..qd.write_queue_nums).map(|q| mq(topic, &qd.broker_name, q)));
    }
    out
}

/// Read queues of `topic`: every readable queue, brokers in name order.
pub fn read_queues(topic: &str, route: &TopicRouteData) -> Vec<MessageQueue> {
    let mut datas: Vec<_> = route.queue_datas.iter().collect();
    datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    datas
        .into_iter()
        .filter(|qd| qd.perm & perm::READ != 0)
        .flat_map(|qd| (0..qd.read_queue_nums).map(move |q| mq(topic, &qd.broker_name, q)))
        .collect()
}

fn mq(topic: &str, broker: &str, queue_id: i32) -> MessageQueue {
    MessageQueue {
        topic: topic.to_string(),
        broker_name: broker.to_string(),
        queue_id,
    }
}

/// Turns the `TBW102` route into a stand-in route for a new topic: its
/// writable brokers, at most `queue_nums` queues each (the broker decides
/// whether it may auto-create).
pub fn borrow_default_route(default: &TopicRouteData, queue_nums: i32) -> TopicRouteData {
    let mut r = default.clone();
    r.queue_datas.retain(|qd| qd.perm & perm::WRITE != 0);
    for qd in &mut r.queue_datas {
        qd.write_queue_nums = qd.write_queue_nums.min(queue_nums);
        qd.read_queue_nums = qd.read_queue_nums.min(queue_nums);
    }
    r
}

/// A fetched route with its queue lists.
#[derive(Debug, Clone)]
pub struct TopicRoute {
    pub topic: String,
    pub data: TopicRouteData,
    pub write_queues: Vec<MessageQueue>,
    pub read_queues: Vec<MessageQueue>,
    /// True when this is `TBW102`'s route standing in for a missing topic.
    pub borrowed: bool,
}

impl TopicRoute {
    pub fn new(topic: &str, data: TopicRouteData, borrowed: bool) -> Self {
        TopicRoute {
            topic: topic.to_string(),
            write_queues: write_queues(topic, &data),
            read_queues: read_queues(topic, &data),
            data,
            borrowed,
        }
    }

    /// Master address of `broker_name`, or its lowest-id replica.
    pub fn broker_addr(&self, broker_name: &str) -> Option<String> {
        let bd = self
            .data
            .broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)?;
        bd.master_addr()
            .map(str::to_owned)
            .or_else(|| bd.broker_addrs.values().next().cloned())
    }

    /// Master addresses of every broker in the route.
    pub fn master_addrs(&self) -> Vec<String> {
        self.data
            .broker_datas
            .iter()
            .filter_map(|b| b.master_addr().map(str::to_owned))
            .collect()
    }
}

struct Cached {
    route: Arc<TopicRoute>,
    fetched: Instant,
}

/// Shared client context: remoting client, name servers, route cache.
/// Cheap to clone.
#[derive(Clone)]
pub struct Routes {
    inner: Arc<RoutesInner>,
}

struct RoutesInner {
    client: RemotingClient,
    namesrv: Vec<String>,
    next_namesrv: AtomicUsize,
    cache: Mutex<HashMap<String, Cached>>,
    /// Each queue's last `suggestWhichBrokerId` (Java's
    /// `PullAPIWrapper.pullFromWhichNodeTable`).
    pull_from: Mutex<HashMap<MessageQueue, i64>>,
}

impl Routes {
    /// A context with its own remoting client.
    pub fn connect(namesrv: &str) -> Self {
        Self::with_client(namesrv, RemotingClient::new(ClientConfig::default()))
    }

    pub fn with_client(namesrv: &str, client: RemotingClient) -> Self {
        Routes {
            inner: Arc::new(RoutesInner {
                client,
                namesrv: parse_namesrv_list(namesrv),
                next_namesrv: AtomicUsize::new(0),
                cache: Mutex::new(HashMap::new()),
                pull_from: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn client(&self) -> &RemotingClient {
        &self.inner.client
    }

    pub fn namesrv_addrs(&self) -> &[String] {
        &self.inner.namesrv
    }

    pub fn default_timeout(&self) -> Duration {
        self.inner.client.config().default_timeout
    }

    /// Sends `cmd` to a name server, trying each in turn (starting with the
    /// last one that answered) until one answers at all.
    pub async fn invoke_namesrv(
        &self,
        cmd: RemotingCommand,
    ) -> Result<RemotingCommand, ClientError> {
        let n = self.inner.namesrv.len();
        if n == 0 {
            return Err(ClientError::NoRoute("no name server address".into()));
        }
        let start = self.inner.next_namesrv.load(Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..n {
            let idx = (start + i) % n;
            let addr = &self.inner.namesrv[idx];
            match self
                .inner
                .client
                .invoke(addr, cmd.clone(), self.default_timeout())
                .await
            {
                Ok(resp) => {
                    self.inner.next_namesrv.store(idx, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(e) => {
                    tracing::debug!(addr, error = %e, "name server call failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ClientError::NoRoute("no name server".into())))
    }

    /// Asks the name servers for `topic`'s route; `None` if it does not exist.
    pub async fn fetch(&self, topic: &str) -> Result<Option<TopicRouteData>, ClientError> {
        let header = TopicHeader {
            topic: topic.to_string(),
            accept_standard_json_only: Some(true),
            cluster_name: None,
        };
        let mut cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC);
        cmd.ext = header.to_ext();
        let resp = self.invoke_namesrv(cmd).await?;
        match resp.code {
            response::SUCCESS => {
                let body = resp.body_bytes();
                let data: TopicRouteData = from_fastjson(&body)
                    .map_err(|e| WireError::BadBody(format!("TopicRouteData: {e}")))?;
                Ok(Some(data))
            }
            response::TOPIC_NOT_EXIST => Ok(None),
            _ => Err(ClientError::remote(&resp)),
        }
    }

    /// The cached route of `topic`, fetched when missing or stale.
    /// `NoRoute` if the topic does not exist.
    pub async fn route(&self, topic: &str) -> Result<Arc<TopicRoute>, ClientError> {
        if let Some(r) = self.cached(topic) {
            return Ok(r);
        }
        self.refresh(topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute(format!("topic {topic} does not exist")))
    }

    /// A route a producer can send `topic` to: the topic's own, or the
    /// auto-create topic's route standing in for it (like Java).
    pub async fn publish_route(&self, topic: &str) -> Result<Arc<TopicRoute>, ClientError> {
        if let Some(r) = self.cached(topic) {
            return Ok(r);
        }
        if let Some(r) = self.refresh(topic).await? {
            return Ok(r);
        }
        let default = self.fetch(AUTO_CREATE_TOPIC).await?.ok_or_else(|| {
            ClientError::NoRoute(format!(
                "topic {topic} does not exist and {AUTO_CREATE_TOPIC} has no route (auto-create off?)"
            ))
        })?;
        let route = Arc::new(TopicRoute::new(
            topic,
            borrow_default_route(&default, DEFAULT_TOPIC_QUEUE_NUMS),
            true,
        ));
        self.store(topic, route.clone());
        Ok(route)
    }

    /// Fetches `topic` again and updates the cache.
    pub async fn refresh(&self, topic: &str) -> Result<Option<Arc<TopicRoute>>, ClientError> {
        match self.fetch(topic).await? {
            Some(data) => {
                let route = Arc::new(TopicRoute::new(topic, data, false));
                self.store(topic, route.clone());
                Ok(Some(route))
            }
            None => {
                self.invalidate(topic);
                Ok(None)
            }
        }
    }

    /// Forgets the cached route (e.g. after TOPIC_NOT_EXIST from a broker).
    pub fn invalidate(&self, topic: &str) {
        self.lock().remove(topic);
    }

    /// Address of `broker_name` from any cached route.
    pub fn broker_addr(&self, broker_name: &str) -> Option<String> {
        self.lock()
            .values()
            .find_map(|c| c.route.broker_addr(broker_name))
    }

    /// Address of the broker serving `mq`, fetching its topic's route if needed.
    pub async fn addr_of(&self, mq: &MessageQueue) -> Result<String, ClientError> {
        if let Some(a) = self.broker_addr(&mq.broker_name) {
            return Ok(a);
        }
        let route = self.route(&mq.topic).await?;
        route
            .broker_addr(&mq.broker_name)
            .ok_or_else(|| ClientError::NoRoute(format!("broker {} not in route", mq.broker_name)))
    }

    /// Records a pull answer's `suggestWhichBrokerId` for `mq`
    /// (`PullAPIWrapper#updatePullFromWhichNode`).
    pub fn suggest(&self, mq: &MessageQueue, broker_id: i64) {
        let mut m = self
            .inner
            .pull_from
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.insert(mq.clone(), broker_id);
    }

    /// Where to pull `mq` from (`PullAPIWrapper#recalculatePullFromWhichNode`
    /// and `MQClientInstance#findBrokerAddressInSubscribe`): the broker id
    /// the last answer suggested when the route has it, else the master,
    /// else any replica of the broker name (the master is gone: its slave).
    pub async fn pull_addr_of(&self, mq: &MessageQueue) -> Result<String, ClientError> {
        let want = {
            let m = self
                .inner
                .pull_from
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            m.get(mq).copied().unwrap_or(0)
        };
        let route = self.route(&mq.topic).await?;
        let bd = route
            .data
            .broker_datas
            .iter()
            .find(|b| b.broker_name == mq.broker_name)
            .ok_or_else(|| {
                ClientError::NoRoute(format!("broker {} not in route", mq.broker_name))
            })?;
        bd.broker_addrs
            .get(&want)
            .or_else(|| bd.broker_addrs.get(&0))
            .or_else(|| bd.broker_addrs.values().next())
            .cloned()
            .ok_or_else(|| {
                ClientError::NoRoute(format!("broker {} has no address", mq.broker_name))
            })
    }

    /// A call to a broker of `broker_name` failed (connection refused,
    /// reset, timeout): every cached route naming it is fetched again on
    /// next use, so a master the name server dropped is no longer chosen.
    pub fn broker_failed(&self, broker_name: &str) {
        self.lock().retain(|_, c| {
            !c.route
                .data
                .broker_datas
                .iter()
                .any(|b| b.broker_name == broker_name)
        });
    }

    fn cached(&self, topic: &str) -> Option<Arc<TopicRoute>> {
        let map = self.lock();
        let c = map.get(topic)?;
        let ttl = if c.route.borrowed {
            BORROWED_ROUTE_TTL
        } else {
            ROUTE_TTL
        };
        (c.fetched.elapsed() < ttl).then(|| c.route.clone())
    }

    fn store(&self, topic: &str, route: Arc<TopicRoute>) {
        self.lock().insert(
            topic.to_string(),
            Cached {
                route,
                fetched: Instant::now(),
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::bodies::{BrokerData, QueueData};
    use std::collections::BTreeMap;

    fn broker(name: &str, ids: &[i64]) -> BrokerData {
        BrokerData {
            cluster: "c".into(),
            broker_name: name.into(),
            broker_addrs: ids
                .iter()
                .map(|&i| (i, format!("{name}:{i}")))
                .collect::<BTreeMap<_, _>>(),
            ..Default::default()
        }
    }

    fn qd(name: &str, r: i32, w: i32, perm: i32) -> QueueData {
        QueueData {
            broker_name: name.into(),
            read_queue_nums: r,
            write_queue_nums: w,
            perm,
            topic_sys_flag: 0,
        }
    }

    #[test]
    fn queues_from_route() {
        let route = TopicRouteData {
            queue_datas: vec![
                qd("b", 2, 1, 6),
                qd("a", 3, 2, 6),
                qd("c", 1, 1, 6),
                qd("d", 2, 2, 4),
            ],
            // "c" has only a slave: readable but not writable.
            broker_datas: vec![
                broker("a", &[0, 1]),
                broker("b", &[0]),
                broker("c", &[1]),
                broker("d", &[0]),
            ],
            ..Default::default()
        };
        let w: Vec<_> = write_queues("T", &route)
            .into_iter()
            .map(|q| (q.broker_name, q.queue_id))
            .collect();
        assert_eq!(w, vec![("a".into(), 0), ("a".into(), 1), ("b".into(), 0)]);
        let r = read_queues("T", &route);
        assert_eq!(r.len(), 3 + 2 + 1 + 2);
        assert!(r.iter().all(|q| q.topic == "T"));
        let tr = TopicRoute::new("T", route, false);
        assert_eq!(tr.broker_addr("a").as_deref(), Some("a:0"));
        assert_eq!(tr.broker_addr("c").as_deref(), Some("c:1"));
    }

    #[test]
    fn order_topic_conf_wins() {
        let route = TopicRouteData {
            order_topic_conf: Some("b1:2;b2:1".into()),
            queue_datas: vec![qd("b1", 8, 8, 6)],
            broker_datas: vec![broker("b1", &[0])],
            ..Default::default()
        };
        let w = write_queues("T", &route);
        assert_eq!(w.len(), 3);
        assert_eq!(w[2].broker_name, "b2");
    }

    #[test]
    fn borrowed_route_is_capped() {
        let route = TopicRouteData {
            queue_datas: vec![qd("a", 8, 8, 7)],
            broker_datas: vec![broker("a", &[0])],
            ..Default::default()
        };
        let b = borrow_default_route(&route, 4);
        assert_eq!(write_queues("New", &b).len(), 4);
        assert_eq!(
            parse_namesrv_list("127.0.0.1:9876; 127.0.0.2:9876;"),
            vec!["127.0.0.1:9876", "127.0.0.2:9876"]
        );
    }
}
