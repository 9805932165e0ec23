//! CLUSTER mode: the proxy as its own process, talking remoting to the
//! brokers it finds through the name servers (RocketMQ's
//! `ClusterServiceManager`): routes by GET_ROUTEINFO_BY_TOPIC, topic types
//! by GET_TOPIC_CONFIG, sends by SEND_MESSAGE_V2, END_TRANSACTION one-way,
//! registrations by HEART_BEAT (so brokers send CHECK_TRANSACTION_STATE
//! back on this proxy's connection, relayed to the producer's Telemetry).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backend::*;
use crate::client::{ClientError, Routes};
use crate::service::connection::ClientConn;
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{SubscriptionGroupConfig, TopicConfig};
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::admin::TopicOnlyHeader;
use crate::wire::headers::consume::{
    ConsumerSendMsgBackRequestHeader, EndTransactionRequestHeader,
};
use crate::wire::headers::pop::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    PopMessageRequestHeader, PopMessageResponseHeader,
};
use crate::wire::headers::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use crate::wire::headers::CommandHeader;
use crate::wire::names::AUTO_CREATE_TOPIC;
use crate::wire::RemotingCommand;

const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct ClusterBackend {
    routes: Routes,
    /// Round robin over write queues for non-FIFO sends.
    next: Arc<AtomicUsize>,
    /// gRPC clients by remoting client id, for CHECK_TRANSACTION_STATE.
    conns: Arc<Mutex<HashMap<String, ClientConn>>>,
    /// Topic types by topic, with when they were read (the Java proxy's
    /// metadata cache refreshes every 20 s).
    types: Arc<TypeCache>,
    /// ACL 2.0 against the brokers' users and ACLs (`auth_sync`).
    auth: Option<Arc<crate::auth::Auth>>,
}

type TypeCache = Mutex<HashMap<String, (Option<String>, std::time::Instant)>>;

fn lock(
    t: &TypeCache,
) -> std::sync::MutexGuard<'_, HashMap<String, (Option<String>, std::time::Instant)>> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a cached topic type is used.
const TYPE_TTL: Duration = Duration::from_secs(20);

pub fn refusal(e: ClientError) -> Refusal {
    match e {
        ClientError::Remote { code, remark } => Refusal::from_remoting(code, remark),
        ClientError::Timeout { .. } => Refusal::ClientTimeout(e.to_string()),
        ClientError::NoRoute(r) => Refusal::TopicNotExist(r),
        e => Refusal::Failed(e.to_string()),
    }
}

impl ClusterBackend {
    /// A backend for `cfg.namesrv_addr`; its requests are signed with
    /// `innerClientAuthenticationCredentials` when set (else the process
    /// default). Call [`Self::start_auth`] before serving.
    pub fn new(cfg: &super::ProxyConfig) -> Result<Arc<ClusterBackend>, String> {
        let creds = super::auth_sync::inner_credentials(cfg)?
            .or_else(crate::client::remoting::default_credentials);
        let client = crate::client::RemotingClient::with_options(
            crate::client::remoting::ClientConfig::default(),
            crate::tls::client_default(),
            creds,
        );
        let routes = Routes::with_client(&cfg.namesrv_addr, client);
        let conns: Arc<Mutex<HashMap<String, ClientConn>>> = Arc::default();
        let relay = conns.clone();
        // Brokers ask the proxy's connection to check transactions; the
        // header's producer group is a topic, whose producers are asked.
        routes.client().add_code_handler(
            "proxy",
            rq::CHECK_TRANSACTION_STATE,
            Arc::new(move |_addr: String, cmd: RemotingCommand| {
                relay_check(&relay, cmd);
                None
            }),
        );
        Ok(Arc::new(ClusterBackend {
            routes,
            next: Arc::default(),
            conns,
            types: Arc::default(),
            auth: super::auth_sync::cluster_auth(cfg),
        }))
    }

    /// With ACL on: reads the brokers' users and ACLs, and keeps them fresh.
    pub async fn start_auth(&self, cfg: &super::ProxyConfig) {
        if let Some(a) = &self.auth {
            super::auth_sync::start(a.clone(), self.routes.clone(), cfg).await;
        }
    }

    async fn invoke(
        &self,
        addr: &str,
        cmd: RemotingCommand,
        ok: &[i32],
    ) -> Result<RemotingCommand, Refusal> {
        let resp = self
            .routes
            .client()
            .invoke(addr, cmd, TIMEOUT)
            .await
            .map_err(refusal)?;
        crate::client::expect_code(resp, ok).map_err(refusal)
    }

    fn master(&self, route: &crate::client::TopicRoute, broker: &str) -> Result<String, Refusal> {
        route
            .broker_addr(broker)
            .ok_or_else(|| Refusal::Failed(format!("no master address for broker {broker}")))
    }

    /// A master of any broker (for brokers named in handles).
    async fn broker_addr(&self, broker: &str) -> Result<String, Refusal> {
        self.routes
            .broker_addr(broker)
            .ok_or_else(|| Refusal::InvalidParameter(format!("unknown broker {broker}")))
    }

    async fn all_masters(&self, topic: &str) -> Result<Vec<String>, Refusal> {
        let route = self.routes.route(topic).await.map_err(refusal)?;
        Ok(route.master_addrs())
    }
}

fn relay_check(conns: &Mutex<HashMap<String, ClientConn>>, cmd: RemotingCommand) {
    use crate::wire::headers::consume::CheckTransactionStateRequestHeader;
    let Ok(h) = CheckTransactionStateRequestHeader::from_ext(&cmd.ext) else {
        return;
    };
    let body = cmd.body_bytes();
    let Ok(m) = crate::wire::message::decode_record(&body, 0, false) else {
        return;
    };
    let group = m
        .property(crate::wire::message::keys::PGROUP)
        .unwrap_or(&m.topic)
        .to_owned();
    let targets: Vec<ClientConn> = conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(k, c)| k.starts_with(&format!("{group}@")) && c.is_open())
        .map(|(_, c)| c.clone())
        .collect();
    if let Some(c) = targets.first() {
        c.check_transaction_state(h, body);
    }
}

impl Backend for ClusterBackend {
    fn auth(&self) -> Option<Arc<crate::auth::Auth>> {
        self.auth.clone()
    }

    fn topic(&self, _caller: Caller, topic: String) -> Reply<TopicInfo> {
        let routes = self.routes.clone();
        let client = routes.client().clone();
        Box::pin(async move {
            let route = routes
                .fetch(&topic)
                .await
                .map_err(refusal)?
                .ok_or_else(|| Refusal::topic_not_exist(&topic))?;
            let addr = route
                .broker_datas
                .iter()
                .find_map(|b| b.master_addr().map(str::to_owned));
            let mut message_type = None;
            if let Some(addr) = addr {
                let mut cmd = RemotingCommand::request(rq::GET_TOPIC_CONFIG);
                cmd.ext = TopicOnlyHeader {
                    topic: topic.clone(),
                }
                .to_ext();
                if let Ok(r) = client.invoke(&addr, cmd, TIMEOUT).await {
                    #[derive(serde::Deserialize)]
                    #[serde(rename_all = "camelCase")]
                    struct Body {
                        topic_config: TopicConfig,
                    }
                    if let Some(b) = (r.code == rs::SUCCESS)
                        .then(|| serde_json::from_slice::<Body>(&r.body_bytes()).ok())
                        .flatten()
                    {
                        message_type = super::local::message_type_of(&b.topic_config.attributes);
                    }
                }
            }
            Ok(TopicInfo {
                route,
                message_type,
            })
        })
    }

    fn message_type(&self, caller: Caller, topic: String) -> Reply<Option<String>> {
        if let Some((ty, at)) = lock(&self.types).get(&topic) {
            if at.elapsed() < TYPE_TTL {
                let ty = ty.clone();
                return Box::pin(async move { Ok(ty) });
            }
        }
        let info = self.topic(caller, topic.clone());
        let types = self.types.clone();
        Box::pin(async move {
            let ty = info.await?.message_type;
            lock(&types).insert(topic, (ty.clone(), std::time::Instant::now()));
            Ok(ty)
        })
    }

    fn send(&self, _caller: Caller, cmd: SendCmd) -> Reply<Sent> {
        let routes = self.routes.clone();
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        Box::pin(async move {
            let route = routes.publish_route(&cmd.topic).await.map_err(refusal)?;
            let mut queues = crate::client::route::write_queues(&cmd.topic, &route.data);
            if queues.is_empty() {
                return Err(Refusal::NoPermission(format!(
                    "no writable queue for {}",
                    cmd.topic
                )));
            }
            queues.sort_by(|a, b| (&a.broker_name, a.queue_id).cmp(&(&b.broker_name, b.queue_id)));
            let i = match &cmd.shard_key {
                Some(k) => fifo_queue_index(k, queues.len()),
                None => turn % queues.len(),
            };
            let mq = &queues[i];
            let addr = this.master(&route, &mq.broker_name)?;
            let h = SendMessageRequestHeader {
                producer_group: cmd.topic.clone(),
                topic: cmd.topic.clone(),
                default_topic: AUTO_CREATE_TOPIC.into(),
                default_topic_queue_nums: 4,
                queue_id: mq.queue_id,
                sys_flag: cmd.sys_flag,
                born_timestamp: cmd.born_timestamp,
                flag: 0,
                properties: Some(cmd.properties),
                reconsume_times: Some(cmd.reconsume_times),
                unit_mode: Some(false),
                batch: Some(false),
                max_reconsume_times: None,
                broker_name: Some(mq.broker_name.clone()),
            };
            let mut req = RemotingCommand::request(rq::SEND_MESSAGE_V2);
            req.ext = h.to_v2().to_ext();
            let req = req.with_body(cmd.body);
            let ok = [
                rs::SUCCESS,
                rs::FLUSH_DISK_TIMEOUT,
                rs::FLUSH_SLAVE_TIMEOUT,
                rs::SLAVE_NOT_AVAILABLE,
            ];
            let resp = this.invoke(&addr, req, &ok).await?;
            let r = SendMessageResponseHeader::from_ext(&resp.ext)
                .map_err(|e| Refusal::Failed(e.to_string()))?;
            let commit_log_offset =
                crate::wire::msgid::decode_offset_msg_id(&r.msg_id).map_or(-1, |(_, o)| o);
            let uniq = crate::wire::message::property(
                h.properties.as_deref().unwrap_or(""),
                crate::wire::message::keys::UNIQ_KEY,
            )
            .map(str::to_owned)
            .or(r.transaction_id)
            .unwrap_or_else(|| r.msg_id.clone());
            Ok(Sent {
                broker_name: mq.broker_name.clone(),
                queue_id: r.queue_id,
                queue_offset: r.queue_offset,
                commit_log_offset,
                msg_id: uniq,
                flush_ok: resp.code == rs::SUCCESS,
            })
        })
    }

    fn end_transaction(&self, _caller: Caller, cmd: EndTx) -> Reply<()> {
        let this = self.clone();
        Box::pin(async move {
            let addr = this.broker_addr(&cmd.broker_name).await?;
            let h = EndTransactionRequestHeader {
                topic: Some(cmd.producer_group.clone()),
                producer_group: cmd.producer_group,
                tran_state_table_offset: cmd.half_queue_offset,
                commit_log_offset: cmd.half_offset,
                commit_or_rollback: cmd.commit_or_rollback,
                from_transaction_check: Some(cmd.from_check),
                msg_id: cmd.msg_id,
                transaction_id: Some(cmd.transaction_id),
            };
            let mut req = RemotingCommand::request(rq::END_TRANSACTION);
            req.ext = h.to_ext();
            this.routes
                .client()
                .invoke_oneway(&addr, req)
                .await
                .map_err(refusal)
        })
    }

    fn register(&self, _caller: Caller, reg: Registration) -> Reply<()> {
        let this = self.clone();
        Box::pin(async move {
            let topics: Vec<String> = match &reg.consumer {
                Some(c) => c.subscriptions.iter().map(|s| s.topic.clone()).collect(),
                None => reg.producer_groups.clone(),
            };
            // Producers: the proxy's own client id per group, so checks
            // come back here and are relayed to one live producer.
            for g in &reg.producer_groups {
                this.conns
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(format!("{g}@{}", reg.client_id), reg.connection.clone());
            }
            let data = heartbeat_data(&reg, &crate::client::client_id());
            let body = serde_json::to_vec(&data).map_err(|e| Refusal::Failed(e.to_string()))?;
            let mut addrs: Vec<String> = Vec::new();
            for t in topics {
                addrs.extend(this.all_masters(&t).await.unwrap_or_default());
            }
            addrs.sort();
            addrs.dedup();
            for a in addrs {
                let req = RemotingCommand::request(rq::HEART_BEAT).with_body(body.clone());
                this.invoke(&a, req, &[rs::SUCCESS]).await?;
            }
            Ok(())
        })
    }

    fn unregister(&self, _caller: Caller, u: Unregistration) -> Reply<()> {
        // The relay forgets the producer; brokers drop the proxy's consumer
        // registration once its heartbeats stop naming the group.
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for g in &u.producer_groups {
            conns.remove(&format!("{g}@{}", u.client_id));
        }
        Box::pin(async { Ok(()) })
    }

    fn group(&self, _caller: Caller, group: String) -> Reply<GroupSettings> {
        let this = self.clone();
        Box::pin(async move {
            let info = crate::client::Admin::with_routes(this.routes.clone())
                .cluster_info()
                .await
                .map_err(refusal)?;
            let addr = info
                .broker_addr_table
                .values()
                .find_map(|b| b.master_addr().map(str::to_owned));
            let Some(addr) = addr else {
                return Ok(GroupSettings {
                    retry_max_times: 16,
                    orderly: false,
                });
            };
            let req = RemotingCommand::request(rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG);
            let resp = this.invoke(&addr, req, &[rs::SUCCESS]).await?;
            #[derive(serde::Deserialize, Default)]
            #[serde(rename_all = "camelCase", default)]
            struct Groups {
                subscription_group_table: HashMap<String, SubscriptionGroupConfig>,
            }
            let groups: Groups = serde_json::from_slice(&resp.body_bytes()).unwrap_or_default();
            Ok(match groups.subscription_group_table.get(&group) {
                Some(c) => GroupSettings {
                    retry_max_times: c.retry_max_times,
                    orderly: c.consume_message_orderly,
                },
                None => GroupSettings {
                    retry_max_times: 16,
                    orderly: false,
                },
            })
        })
    }

    fn pop(&self, _caller: Caller, cmd: PopCmd) -> Reply<Popped> {
        let this = self.clone();
        Box::pin(async move {
            let route = this.routes.route(&cmd.topic).await.map_err(refusal)?;
            let broker = if route.broker_addr(&cmd.broker_name).is_some() {
                cmd.broker_name.clone()
            } else {
                let names: Vec<&String> = route
                    .data
                    .broker_datas
                    .iter()
                    .map(|b| &b.broker_name)
                    .collect();
                let turn = this.next.fetch_add(1, Ordering::Relaxed);
                names
                    .get(turn % names.len().max(1))
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            };
            let addr = this.master(&route, &broker)?;
            let h = PopMessageRequestHeader {
                consumer_group: cmd.group.clone(),
                topic: cmd.topic.clone(),
                queue_id: -1,
                max_msg_nums: cmd.max_msgs,
                invisible_time: cmd.invisible_ms,
                poll_time: cmd.poll_ms,
                born_time: 0,
                init_mode: 1,
                exp_type: Some(cmd.expression_type.clone()),
                exp: Some(cmd.expression.clone()),
                order: Some(cmd.order),
                attempt_id: cmd.attempt_id.clone(),
            };
            let mut req = RemotingCommand::request(rq::POP_MESSAGE);
            req.ext = h.to_ext();
            let wait = TIMEOUT + Duration::from_millis(cmd.poll_ms.max(0) as u64);
            let resp = this
                .routes
                .client()
                .invoke(&addr, req, wait)
                .await
                .map_err(refusal)?;
            match resp.code {
                rs::SUCCESS => popped(&resp, &cmd.group, &broker),
                rs::POLLING_TIMEOUT | rs::PULL_NOT_FOUND => Ok(Popped {
                    timed_out: true,
                    ..Default::default()
                }),
                rs::POLLING_FULL => Ok(Popped {
                    polling_full: true,
                    ..Default::default()
                }),
                code => Err(Refusal::from_remoting(
                    code,
                    resp.remark.unwrap_or_default(),
                )),
            }
        })
    }

    fn ack(&self, _caller: Caller, cmd: HandleCmd) -> Reply<()> {
        let this = self.clone();
        Box::pin(async move {
            let addr = this.broker_addr(&cmd.broker_name).await?;
            let h = AckMessageRequestHeader {
                consumer_group: cmd.group,
                topic: cmd.topic,
                queue_id: cmd.queue_id,
                extra_info: cmd.extra_info,
                offset: cmd.offset,
            };
            let mut req = RemotingCommand::request(rq::ACK_MESSAGE);
            req.ext = h.to_ext();
            this.invoke(&addr, req, &[rs::SUCCESS]).await.map(|_| ())
        })
    }

    fn batch_ack(&self, _caller: Caller, topic: String, cmds: Vec<HandleCmd>) -> Reply<()> {
        let this = self.clone();
        Box::pin(async move {
            let Some(first) = cmds.first() else {
                return Ok(());
            };
            let broker = first.broker_name.clone();
            let addr = this.broker_addr(&broker).await?;
            let body = batch_ack_body(&broker, &topic, &cmds)?;
            let req = RemotingCommand::request(rq::BATCH_ACK_MESSAGE)
                .with_body(serde_json::to_vec(&body).map_err(|e| Refusal::Failed(e.to_string()))?);
            this.invoke(&addr, req, &[rs::SUCCESS]).await.map(|_| ())
        })
    }

    fn change_invisible(
        &self,
        _caller: Caller,
        cmd: HandleCmd,
        invisible_ms: i64,
    ) -> Reply<String> {
        let this = self.clone();
        Box::pin(async move {
            let addr = this.broker_addr(&cmd.broker_name).await?;
            let old = crate::wire::pop::Handle::parse(&cmd.extra_info)
                .map_err(Refusal::InvalidParameter)?;
            let h = ChangeInvisibleTimeRequestHeader {
                consumer_group: cmd.group,
                topic: cmd.topic,
                queue_id: cmd.queue_id,
                extra_info: cmd.extra_info,
                offset: cmd.offset,
                invisible_time: invisible_ms,
            };
            let mut req = RemotingCommand::request(rq::CHANGE_MESSAGE_INVISIBLETIME);
            req.ext = h.to_ext();
            let resp = this.invoke(&addr, req, &[rs::SUCCESS]).await?;
            let r = ChangeInvisibleTimeResponseHeader::from_ext(&resp.ext)
                .map_err(|e| Refusal::Failed(e.to_string()))?;
            // The new handle as RocketMQ's remoting client builds it.
            let new = crate::wire::pop::Handle {
                ck_start_offset: cmd.offset,
                pop_time: r.pop_time,
                invisible_ms: r.invisible_time,
                revive_qid: r.revive_qid,
                queue_offset: Some(cmd.offset),
                commit_log_offset: None,
                ..old
            };
            Ok(new.render())
        })
    }

    fn to_dlq(&self, _caller: Caller, cmd: DlqCmd) -> Reply<()> {
        let this = self.clone();
        Box::pin(async move {
            let addr = this.broker_addr(&cmd.broker_name).await?;
            let h = ConsumerSendMsgBackRequestHeader {
                offset: cmd.commit_log_offset,
                group: cmd.group,
                delay_level: -1,
                origin_msg_id: Some(cmd.origin_msg_id),
                origin_topic: Some(cmd.origin_topic),
                unit_mode: Some(false),
                max_reconsume_times: Some(0),
            };
            let mut req = RemotingCommand::request(rq::CONSUMER_SEND_MSG_BACK);
            req.ext = h.to_ext();
            this.invoke(&addr, req, &[rs::SUCCESS]).await.map(|_| ())
        })
    }
}

/// BATCH_ACK_MESSAGE's body for handles of one broker, as RocketMQ's
/// remoting client groups them: one entry per (topic type, queue,
/// check-point start, pop time), a bit per acked offset.
fn batch_ack_body(
    broker: &str,
    topic: &str,
    cmds: &[HandleCmd],
) -> Result<crate::wire::pop::BatchAckBody, Refusal> {
    use crate::wire::pop::{BatchAckBody, BatchAckEntry, Handle};
    let mut entries: Vec<(BatchAckEntry, Vec<i64>)> = Vec::new();
    for c in cmds {
        let h = Handle::parse(&c.extra_info).map_err(Refusal::InvalidParameter)?;
        let offset = h.queue_offset.unwrap_or(c.offset);
        let same = |e: &BatchAckEntry| {
            e.retry == h.topic_type.to_string()
                && e.queue_id == h.queue_id
                && e.start_offset == h.ck_start_offset
                && e.pop_time == h.pop_time
                && e.revive_qid == h.revive_qid
        };
        match entries.iter_mut().find(|(e, _)| same(e)) {
            Some((_, offsets)) => offsets.push(offset),
            None => entries.push((
                BatchAckEntry {
                    group: c.group.clone(),
                    topic: topic.to_owned(),
                    retry: h.topic_type.to_string(),
                    start_offset: h.ck_start_offset,
                    queue_id: h.queue_id,
                    revive_qid: h.revive_qid,
                    pop_time: h.pop_time,
                    invisible_ms: h.invisible_ms,
                    bits: String::new(),
                },
                vec![offset],
            )),
        }
    }
    let acks = entries
        .into_iter()
        .map(|(mut e, offsets)| {
            e.bits = BatchAckEntry::encode_bits(e.start_offset, &offsets);
            e
        })
        .collect();
    Ok(BatchAckBody {
        broker_name: broker.to_owned(),
        acks,
    })
}

/// A POP response's messages with their handles, as RocketMQ's remoting
/// client builds them (`MQClientAPIImpl.processPopResponse`): `POP_CK` when
/// the record has one, else from `startOffsetInfo`; orderly reads take
/// their delivery counts from `orderCountInfo`.
fn popped(resp: &RemotingCommand, group: &str, broker: &str) -> Result<Popped, Refusal> {
    let h = PopMessageResponseHeader::from_ext(&resp.ext)
        .map_err(|e| Refusal::Failed(e.to_string()))?;
    let records = crate::wire::message::decode_records(&resp.body_bytes())
        .map_err(|e| Refusal::Failed(e.to_string()))?;
    let entries = |s: &Option<String>| -> Vec<Vec<String>> {
        s.as_deref()
            .unwrap_or("")
            .split(';')
            .filter(|e| !e.is_empty())
            .map(|e| e.split(' ').map(str::to_owned).collect())
            .collect()
    };
    let starts = entries(&h.start_offset_info);
    let counts = entries(&h.order_count_info);
    let mut out = Vec::with_capacity(records.len());
    for mut m in records {
        let (ty, _) = crate::wire::pop::classify(&m.topic, group);
        let handle = match m.property(crate::wire::message::keys::POP_CK) {
            Some(ck) => ck.to_owned(),
            None => {
                let start = starts
                    .iter()
                    .find(|f| {
                        f.len() == 3 && f[0] == ty.to_string() && f[1] == m.queue_id.to_string()
                    })
                    .map(|f| f[2].clone())
                    .unwrap_or_else(|| m.queue_offset.to_string());
                format!(
                    "{start} {} {} {} {ty} {broker} {} {}",
                    h.pop_time, h.invisible_time, h.revive_qid, m.queue_id, m.queue_offset
                )
            }
        };
        let key = format!("qo{}%{}", m.queue_id, m.queue_offset);
        if let Some(c) = counts
            .iter()
            .find(|f| f.len() == 3 && f[1] == key)
            .and_then(|f| f[2].parse::<i32>().ok())
        {
            if c > 0 {
                m.reconsume_times = c;
            }
        }
        out.push((m, handle));
    }
    Ok(Popped {
        messages: out,
        ..Default::default()
    })
}
