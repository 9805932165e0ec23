//! `RouteTable`: the name server's whole state — clusters, brokers, topic →
//! queue data, broker liveness and the KV config — owned by one actor.
//!
//! Brokers register every 30 s; a broker whose registration is older than
//! its timeout (120 s by default) is dropped by a periodic scan, and at once
//! when its connection closes. Queue data is taken from the master's
//! registration only, when its data version changed.

use actix::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::wire::bodies::{
    BrokerData, ClusterInfo, DataVersion, QueueData, TopicConfig, TopicRouteData,
};

struct LiveBroker {
    cluster: String,
    broker_name: String,
    last_update: Instant,
    timeout: Duration,
    data_version: DataVersion,
    channel_id: u64,
    ha_server_addr: String,
}

pub struct RouteTable {
    clusters: BTreeMap<String, BTreeSet<String>>,
    brokers: BTreeMap<String, BrokerData>,
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
    live: HashMap<String, LiveBroker>,
    kv: BTreeMap<String, BTreeMap<String, String>>,
    default_timeout: Duration,
    scan_interval: Duration,
}

impl RouteTable {
    pub fn new(default_timeout: Duration, scan_interval: Duration) -> Self {
        RouteTable {
            clusters: BTreeMap::new(),
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            live: HashMap::new(),
            kv: BTreeMap::new(),
            default_timeout,
            scan_interval,
        }
    }

    fn remove_broker_addr(&mut self, addr: &str) {
        let Some(live) = self.live.remove(addr) else {
            return;
        };
        tracing::info!(broker = %live.broker_name, addr, "broker removed from route table");
        let mut name_gone = false;
        if let Some(bd) = self.brokers.get_mut(&live.broker_name) {
            bd.broker_addrs.retain(|_, a| a != addr);
            name_gone = bd.broker_addrs.is_empty();
        }
        if name_gone {
            self.brokers.remove(&live.broker_name);
            if let Some(set) = self.clusters.get_mut(&live.cluster) {
                set.remove(&live.broker_name);
                if set.is_empty() {
                    self.clusters.remove(&live.cluster);
                }
            }
            self.topics.retain(|_, qds| {
                qds.remove(&live.broker_name);
                !qds.is_empty()
            });
        }
    }

    /// After a restart: the tables derived from registrations are made
    /// consistent with the live brokers (a panic may have left one update
    /// half-done), and every live broker's data version is forgotten so its
    /// next heartbeat or registration (within `registerBrokerIntervalMs`)
    /// brings its full topic table again, as after a name-server restart in
    /// RocketMQ (`RouteInfoManager` is soft state). The KV table is kept:
    /// no broker would send it again.
    pub(crate) fn repair(&mut self) {
        let live = &self.live;
        for bd in self.brokers.values_mut() {
            bd.broker_addrs.retain(|_, a| live.contains_key(a));
        }
        self.brokers.retain(|_, bd| !bd.broker_addrs.is_empty());
        for l in self.live.values_mut() {
            l.data_version = DataVersion::default();
        }
        let brokers = &self.brokers;
        for names in self.clusters.values_mut() {
            names.retain(|n| brokers.contains_key(n));
        }
        self.clusters.retain(|_, n| !n.is_empty());
        for qds in self.topics.values_mut() {
            qds.retain(|n, _| brokers.contains_key(n));
        }
        self.topics.retain(|_, q| !q.is_empty());
    }

    fn scan(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| now.duration_since(l.last_update) > l.timeout)
            .map(|(a, _)| a.clone())
            .collect();
        for a in expired {
            tracing::warn!(addr = %a, "broker expired (no registration within its timeout)");
            self.remove_broker_addr(&a);
        }
    }
}

impl Actor for RouteTable {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        use crate::actors::supervisor::armed;
        ctx.set_mailbox_capacity(4096);
        armed::fire("RouteTable", armed::Point::Started);
        ctx.run_interval(self.scan_interval, |act, _| {
            armed::fire("RouteTable", armed::Point::Interval);
            act.scan()
        });
    }
}

// ------------------------------------------------------------ messages

#[derive(Message)]
#[rtype(result = "RegisterResult")]
pub struct RegisterBroker {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: i64,
    pub ha_server_addr: String,
    pub timeout: Option<Duration>,
    pub data_version: DataVersion,
    pub topics: BTreeMap<String, TopicConfig>,
    pub channel_id: u64,
    pub enable_acting_master: bool,
}

#[derive(Debug, Default)]
pub struct RegisterResult {
    pub master_addr: Option<String>,
    pub ha_server_addr: Option<String>,
}

impl Handler<RegisterBroker> for RouteTable {
    type Result = MessageResult<RegisterBroker>;

    fn handle(&mut self, r: RegisterBroker, _: &mut Context<Self>) -> Self::Result {
        self.clusters
            .entry(r.cluster.clone())
            .or_default()
            .insert(r.broker_name.clone());
        let bd = self
            .brokers
            .entry(r.broker_name.clone())
            .or_insert_with(|| BrokerData {
                cluster: r.cluster.clone(),
                broker_name: r.broker_name.clone(),
                ..Default::default()
            });
        bd.enable_acting_master = r.enable_acting_master;
        // An address moving to a new id replaces the old entry.
        bd.broker_addrs
            .retain(|id, a| !(a == &r.broker_addr && *id != r.broker_id));
        // Another address holds this id: the one with the higher
        // `stateVersion` keeps it. Controller-mode brokers carry their
        // master epoch there, so a resumed old master cannot take id 0
        // back from the master elected after it (apache/rocketmq#6316,
        // `RouteInfoManager#registerBroker`).
        if let Some(holder) = bd
            .broker_addrs
            .get(&r.broker_id)
            .filter(|a| **a != r.broker_addr)
        {
            if let Some(held) = self.live.get(holder) {
                if held.data_version.state_version > r.data_version.state_version {
                    tracing::warn!(
                        broker = %r.broker_name,
                        id = r.broker_id,
                        holder = %holder,
                        holder_state_version = held.data_version.state_version,
                        addr = %r.broker_addr,
                        state_version = r.data_version.state_version,
                        "registration ignored: the id is held by a broker with a higher stateVersion"
                    );
                    self.live.remove(&r.broker_addr);
                    return MessageResult(RegisterResult::default());
                }
            }
        }
        let first = bd
            .broker_addrs
            .insert(r.broker_id, r.broker_addr.clone())
            .is_none();

        let prev = self.live.get(&r.broker_addr);
        let changed = first
            || prev
                .map(|l| l.data_version != r.data_version)
                .unwrap_or(true);
        if r.broker_id == 0 && changed {
            // Topics this master no longer has lose its queue data.
            for (topic, qds) in self.topics.iter_mut() {
                if !r.topics.contains_key(topic) {
                    qds.remove(&r.broker_name);
                }
            }
            self.topics.retain(|_, q| !q.is_empty());
            for (name, tc) in &r.topics {
                self.topics.entry(name.clone()).or_default().insert(
                    r.broker_name.clone(),
                    QueueData {
                        broker_name: r.broker_name.clone(),
                        read_queue_nums: tc.read_queue_nums,
                        write_queue_nums: tc.write_queue_nums,
                        perm: tc.perm,
                        topic_sys_flag: tc.topic_sys_flag,
                    },
                );
            }
        }
        self.live.insert(
            r.broker_addr.clone(),
            LiveBroker {
                cluster: r.cluster,
                broker_name: r.broker_name.clone(),
                last_update: Instant::now(),
                timeout: r.timeout.unwrap_or(self.default_timeout),
                data_version: r.data_version,
                channel_id: r.channel_id,
                ha_server_addr: r.ha_server_addr,
            },
        );
        let mut result = RegisterResult::default();
        if r.broker_id != 0 {
            if let Some(master) = self
                .brokers
                .get(&r.broker_name)
                .and_then(|b| b.master_addr())
            {
                result.ha_server_addr = self.live.get(master).map(|l| l.ha_server_addr.clone());
                result.master_addr = Some(master.to_owned());
            }
        }
        MessageResult(result)
    }
}

/// UNREGISTER_BROKER. With `broker_id`, an address now registered under
/// another id is left alone: the request is older than the registration
/// (a broker restarted under a new role, e.g. a former master back as a
/// slave, whose earlier unregister arrives late; apache/rocketmq#5374,
/// #11043). Without it, the address is removed whatever its id.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterBroker {
    pub broker_addr: String,
    pub broker_id: Option<i64>,
}

impl Handler<UnregisterBroker> for RouteTable {
    type Result = ();
    fn handle(&mut self, m: UnregisterBroker, _: &mut Context<Self>) {
        if let (Some(want), Some(live)) = (m.broker_id, self.live.get(&m.broker_addr)) {
            let held = self
                .brokers
                .get(&live.broker_name)
                .and_then(|bd| bd.broker_addrs.iter().find(|(_, a)| **a == m.broker_addr))
                .map(|(id, _)| *id);
            if held.is_some_and(|id| id != want) {
                tracing::warn!(
                    addr = %m.broker_addr,
                    request_id = want,
                    registered_id = ?held,
                    "stale unregister ignored: the address is registered under another id"
                );
                return;
            }
        }
        self.remove_broker_addr(&m.broker_addr);
    }
}

/// Refreshes liveness (BROKER_HEARTBEAT, QUERY_DATA_VERSION); returns
/// whether the broker's data version differs from the stored one, and the
/// stored one.
#[derive(Message)]
#[rtype(result = "(bool, Option<DataVersion>)")]
pub struct TouchBroker {
    pub broker_addr: String,
    pub data_version: Option<DataVersion>,
}

impl Handler<TouchBroker> for RouteTable {
    type Result = MessageResult<TouchBroker>;
    fn handle(&mut self, m: TouchBroker, _: &mut Context<Self>) -> Self::Result {
        match self.live.get_mut(&m.broker_addr) {
            Some(l) => {
                l.last_update = Instant::now();
                let changed = m.data_version.map(|d| d != l.data_version).unwrap_or(false);
                MessageResult((changed, Some(l.data_version.clone())))
            }
            None => MessageResult((true, None)),
        }
    }
}

#[derive(Message)]
#[rtype(result = "Option<TopicRouteData>")]
pub struct GetRoute {
    pub topic: String,
}

impl Handler<GetRoute> for RouteTable {
    type Result = Option<TopicRouteData>;
    fn handle(&mut self, m: GetRoute, _: &mut Context<Self>) -> Option<TopicRouteData> {
        let qds = self.topics.get(&m.topic)?;
        let mut route = TopicRouteData::default();
        for (bn, qd) in qds {
            route.queue_datas.push(qd.clone());
            if let Some(bd) = self.brokers.get(bn) {
                route.broker_datas.push(bd.clone());
            }
        }
        if route.broker_datas.is_empty() {
            return None;
        }
        if let Some(conf) = self
            .kv
            .get("ORDER_TOPIC_CONFIG")
            .and_then(|n| n.get(&m.topic))
        {
            route.order_topic_conf = Some(conf.clone());
        }
        Some(route)
    }
}

#[derive(Message)]
#[rtype(result = "ClusterInfo")]
pub struct GetClusterInfo;

impl Handler<GetClusterInfo> for RouteTable {
    type Result = MessageResult<GetClusterInfo>;
    fn handle(&mut self, _: GetClusterInfo, _: &mut Context<Self>) -> Self::Result {
        MessageResult(ClusterInfo {
            broker_addr_table: self.brokers.clone(),
            cluster_addr_table: self
                .clusters
                .iter()
                .map(|(c, s)| (c.clone(), s.iter().cloned().collect()))
                .collect(),
        })
    }
}

/// All topics, or those of one cluster.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct ListTopics {
    pub cluster: Option<String>,
}

impl Handler<ListTopics> for RouteTable {
    type Result = Vec<String>;
    fn handle(&mut self, m: ListTopics, _: &mut Context<Self>) -> Vec<String> {
        match m.cluster {
            None => self.topics.keys().cloned().collect(),
            Some(c) => {
                let names = self.clusters.get(&c).cloned().unwrap_or_default();
                self.topics
                    .iter()
                    .filter(|(_, q)| q.keys().any(|b| names.contains(b)))
                    .map(|(t, _)| t.clone())
                    .collect()
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct DeleteTopic {
    pub topic: String,
    pub cluster: Option<String>,
}

impl Handler<DeleteTopic> for RouteTable {
    type Result = ();
    fn handle(&mut self, m: DeleteTopic, _: &mut Context<Self>) {
        match m.cluster.and_then(|c| self.clusters.get(&c).cloned()) {
            Some(names) => {
                if let Some(q) = self.topics.get_mut(&m.topic) {
                    q.retain(|b, _| !names.contains(b));
                    if q.is_empty() {
                        self.topics.remove(&m.topic);
                    }
                }
            }
            None => {
                self.topics.remove(&m.topic);
            }
        }
    }
}

/// Registers queue data for a topic directly (REGISTER_TOPIC_IN_NAMESRV).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterTopic {
    pub topic: String,
    pub queue_datas: Vec<QueueData>,
}

impl Handler<RegisterTopic> for RouteTable {
    type Result = ();
    fn handle(&mut self, m: RegisterTopic, _: &mut Context<Self>) {
        let entry = self.topics.entry(m.topic).or_default();
        for qd in m.queue_datas {
            if self.brokers.contains_key(&qd.broker_name) {
                entry.insert(qd.broker_name.clone(), qd);
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct ChannelClosed {
    pub channel_id: u64,
}

impl Handler<ChannelClosed> for RouteTable {
    type Result = ();
    fn handle(&mut self, m: ChannelClosed, _: &mut Context<Self>) {
        let addrs: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| l.channel_id == m.channel_id)
            .map(|(a, _)| a.clone())
            .collect();
        for a in addrs {
            tracing::info!(addr = %a, "broker connection closed");
            self.remove_broker_addr(&a);
        }
    }
}

/// KV config operations.
#[derive(Message)]
#[rtype(result = "KvResult")]
pub enum Kv {
    Put {
        namespace: String,
        key: String,
        value: String,
    },
    Get {
        namespace: String,
        key: String,
    },
    Delete {
        namespace: String,
        key: String,
    },
    List {
        namespace: String,
    },
}

pub enum KvResult {
    Done,
    Value(Option<String>),
    Table(Option<BTreeMap<String, String>>),
}

impl Handler<Kv> for RouteTable {
    type Result = MessageResult<Kv>;
    fn handle(&mut self, m: Kv, _: &mut Context<Self>) -> Self::Result {
        MessageResult(match m {
            Kv::Put {
                namespace,
                key,
                value,
            } => {
                self.kv.entry(namespace).or_default().insert(key, value);
                KvResult::Done
            }
            Kv::Get { namespace, key } => {
                KvResult::Value(self.kv.get(&namespace).and_then(|n| n.get(&key)).cloned())
            }
            Kv::Delete { namespace, key } => {
                if let Some(n) = self.kv.get_mut(&namespace) {
                    n.remove(&key);
                }
                KvResult::Done
            }
            Kv::List { namespace } => KvResult::Table(self.kv.get(&namespace).cloned()),
        })
    }
}

/// Number of live brokers (for tests and status output).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct LiveCount;

impl Handler<LiveCount> for RouteTable {
    type Result = usize;
    fn handle(&mut self, _: LiveCount, _: &mut Context<Self>) -> usize {
        self.live.len()
    }
}
