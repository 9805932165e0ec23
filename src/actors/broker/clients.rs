//! `ClientRegistry`: the producers and consumers connected to this broker,
//! by group, from their heartbeats. Tells every member of a consumer group
//! when the group's membership changes (NOTIFY_CONSUMER_IDS_CHANGED), drops
//! clients whose connection closed or who went silent, and publishes the
//! groups' subscriptions for the pull path.

use actix::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::service::connection::ClientConn;
use crate::wire::bodies::{ConsumerData, HeartbeatData, SubscriptionData};

struct Member {
    /// The client's connection, whatever its transport.
    channel: ClientConn,
    last_seen: Instant,
    data: Option<ConsumerData>,
    /// Language and version from the client's last heartbeat.
    language: String,
    version: i32,
}

/// (group, topic) → subscription, shared with the pull path.
#[derive(Clone, Default)]
pub struct Subscriptions(
    Arc<RwLock<HashMap<(String, String), SubscriptionData>>>,
    /// group → message model (`CLUSTERING` / `BROADCASTING`).
    Arc<RwLock<HashMap<String, String>>>,
);

impl Subscriptions {
    /// The message model of a consumer group with live members.
    pub fn message_model(&self, group: &str) -> Option<String> {
        self.1.read().ok()?.get(group).cloned()
    }

    pub fn get(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        self.0
            .read()
            .ok()?
            .get(&(group.to_owned(), topic.to_owned()))
            .cloned()
    }
}

pub struct ClientRegistry {
    consumers: HashMap<String, HashMap<String, Member>>,
    producers: HashMap<String, HashMap<String, Member>>,
    subs: Subscriptions,
    expire: Duration,
}

impl ClientRegistry {
    pub fn new(subs: Subscriptions, expire: Duration) -> Self {
        ClientRegistry {
            consumers: HashMap::new(),
            producers: HashMap::new(),
            subs,
            expire,
        }
    }

    fn notify_group(&self, group: &str) {
        let Some(members) = self.consumers.get(group) else {
            return;
        };
        for m in members.values() {
            m.channel.notify_consumer_ids_changed(group);
        }
    }

    fn republish_subs(&self) {
        let mut map = HashMap::new();
        let mut models = HashMap::new();
        for (group, members) in &self.consumers {
            for m in members.values() {
                if let Some(d) = &m.data {
                    models.insert(group.clone(), d.message_model.clone());
                    for s in &d.subscription_data_set {
                        map.insert((group.clone(), s.topic.clone()), s.clone());
                    }
                }
            }
        }
        if let Ok(mut w) = self.subs.0.write() {
            *w = map;
        }
        if let Ok(mut w) = self.subs.1.write() {
            *w = models;
        }
    }

    /// Removes members matching `pred`; returns the consumer groups changed.
    fn remove_where(&mut self, pred: impl Fn(&str, &Member) -> bool) -> Vec<String> {
        let mut changed = Vec::new();
        for (group, members) in self.consumers.iter_mut() {
            let before = members.len();
            members.retain(|id, m| !pred(id, m));
            if members.len() != before {
                changed.push(group.clone());
            }
        }
        self.consumers.retain(|_, m| !m.is_empty());
        for members in self.producers.values_mut() {
            members.retain(|id, m| !pred(id, m));
        }
        self.producers.retain(|_, m| !m.is_empty());
        changed
    }

    fn after_removal(&mut self, changed: Vec<String>) {
        if changed.is_empty() {
            return;
        }
        self.republish_subs();
        for g in changed {
            self.notify_group(&g);
        }
    }
}

impl Actor for ClientRegistry {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        let scan = (self.expire / 12).max(Duration::from_millis(100));
        ctx.run_interval(scan, |act, _| {
            let expire = act.expire;
            let now = Instant::now();
            let changed = act.remove_where(|_, m| {
                now.duration_since(m.last_seen) > expire || !m.channel.is_open()
            });
            act.after_removal(changed);
        });
    }
}

impl Supervised for ClientRegistry {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("ClientRegistry");
        // Soft state rebuilt from its owners: members whose connection
        // closed (their ChannelClosed may be the message that failed) go,
        // the pull path's snapshot is republished from the member table,
        // and the groups that lost members hear of it. Live clients'
        // next heartbeats refresh the rest.
        let changed = self.remove_where(|_, m| !m.channel.is_open());
        self.republish_subs();
        for g in changed {
            self.notify_group(&g);
        }
    }
}

/// A HEART_BEAT. Returns the consumer groups (clustering) that are new, so
/// the caller can create their retry topics.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct Heartbeat {
    pub channel: ClientConn,
    pub data: HeartbeatData,
    /// The request's language name and version.
    pub language: String,
    pub version: i32,
}

impl Handler<Heartbeat> for ClientRegistry {
    type Result = Vec<String>;
    fn handle(&mut self, hb: Heartbeat, _: &mut Context<Self>) -> Vec<String> {
        let now = Instant::now();
        let id = hb.data.client_id.clone();
        for p in &hb.data.producer_data_set {
            self.producers
                .entry(p.group_name.clone())
                .or_default()
                .insert(
                    id.clone(),
                    Member {
                        channel: hb.channel.clone(),
                        last_seen: now,
                        data: None,
                        language: hb.language.clone(),
                        version: hb.version,
                    },
                );
        }
        let mut changed_groups = Vec::new();
        let mut new_groups = Vec::new();
        let mut subs_changed = false;
        for c in hb.data.consumer_data_set {
            let members = self.consumers.entry(c.group_name.clone()).or_default();
            if members.is_empty() && c.message_model != "BROADCASTING" {
                new_groups.push(c.group_name.clone());
            }
            let group = c.group_name.clone();
            match members.get_mut(&id) {
                Some(m) => {
                    m.last_seen = now;
                    m.channel = hb.channel.clone();
                    m.language = hb.language.clone();
                    m.version = hb.version;
                    if hb.data.without_sub {
                        continue;
                    }
                    if m.data
                        .as_ref()
                        .map(|d| d.subscription_data_set != c.subscription_data_set)
                        .unwrap_or(true)
                    {
                        subs_changed = true;
                    }
                    m.data = Some(c);
                }
                None => {
                    members.insert(
                        id.clone(),
                        Member {
                            channel: hb.channel.clone(),
                            last_seen: now,
                            data: Some(c),
                            language: hb.language.clone(),
                            version: hb.version,
                        },
                    );
                    changed_groups.push(group);
                    subs_changed = true;
                }
            }
        }
        if subs_changed {
            self.republish_subs();
        }
        for g in changed_groups {
            tracing::info!(group = %g, client = %id, "consumer joined group");
            self.notify_group(&g);
        }
        new_groups
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub client_id: String,
    pub producer_group: Option<String>,
    pub consumer_group: Option<String>,
}

impl Handler<Unregister> for ClientRegistry {
    type Result = ();
    fn handle(&mut self, m: Unregister, _: &mut Context<Self>) {
        if let Some(g) = &m.producer_group {
            if let Some(members) = self.producers.get_mut(g) {
                members.remove(&m.client_id);
            }
        }
        if let Some(g) = &m.consumer_group {
            let removed = self
                .consumers
                .get_mut(g)
                .map(|ms| ms.remove(&m.client_id).is_some())
                .unwrap_or(false);
            if removed {
                self.consumers.retain(|_, ms| !ms.is_empty());
                self.after_removal(vec![g.clone()]);
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct ChannelClosed(pub u64);

impl Handler<ChannelClosed> for ClientRegistry {
    type Result = ();
    fn handle(&mut self, m: ChannelClosed, _: &mut Context<Self>) {
        let changed = self.remove_where(|_, mem| mem.channel.id() == m.0);
        self.after_removal(changed);
    }
}

#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct ConsumerIds(pub String);

impl Handler<ConsumerIds> for ClientRegistry {
    type Result = Vec<String>;
    fn handle(&mut self, m: ConsumerIds, _: &mut Context<Self>) -> Vec<String> {
        let mut ids: Vec<String> = self
            .consumers
            .get(&m.0)
            .map(|ms| ms.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

/// One live channel of a producer group (transaction checks).
#[derive(Message)]
#[rtype(result = "Option<ClientConn>")]
pub struct ProducerChannel(pub String);

impl Handler<ProducerChannel> for ClientRegistry {
    type Result = Option<ClientConn>;
    fn handle(&mut self, m: ProducerChannel, _: &mut Context<Self>) -> Option<ClientConn> {
        let members = self.producers.get(&m.0)?;
        let mut live: Vec<&Member> = members.values().filter(|m| m.channel.is_open()).collect();
        live.sort_by_key(|m| std::cmp::Reverse(m.last_seen));
        live.first().map(|m| m.channel.clone())
    }
}

/// A live consumer of a group, as the admin requests report it.
#[derive(Debug, Clone)]
pub struct ConsumerInfo {
    pub client_id: String,
    pub channel: ClientConn,
    pub language: String,
    pub version: i32,
    pub data: Option<ConsumerData>,
}

/// The live consumers of a group.
#[derive(Message)]
#[rtype(result = "Vec<ConsumerInfo>")]
pub struct GroupConsumers(pub String);

impl Handler<GroupConsumers> for ClientRegistry {
    type Result = Vec<ConsumerInfo>;
    fn handle(&mut self, m: GroupConsumers, _: &mut Context<Self>) -> Vec<ConsumerInfo> {
        let mut out: Vec<ConsumerInfo> = self
            .consumers
            .get(&m.0)
            .map(|ms| {
                ms.iter()
                    .filter(|(_, m)| m.channel.is_open())
                    .map(|(id, m)| ConsumerInfo {
                        client_id: id.clone(),
                        channel: m.channel.clone(),
                        language: m.language.clone(),
                        version: m.version,
                        data: m.data.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        out
    }
}
