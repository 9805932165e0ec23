//! QueryRoute, SendMessage and EndTransaction (RocketMQ's `RouteActivity`,
//! `SendMessageActivity`, `EndTransactionActivity`), and the half messages
//! remembered for EndTransaction (`TransactionDataManager`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::backend::EndTx;
use super::convert;
use super::grpc::{authorize, Meta, Proxy};
use super::pb::{self, Code, Permission};
use super::status::{ok, overall, status, Failure};
use crate::wire::bodies::perm;
use crate::wire::codes::request as rq;
use crate::wire::message::sysflag;
use crate::wire::now_ms;

/// Where a half message is, for END_TRANSACTION.
#[derive(Debug, Clone)]
pub struct TxData {
    pub broker_name: String,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    pub msg_id: String,
}

/// Half messages by `topic@transactionId`, kept for
/// `transactionDataExpireMillis` after the send (or the check).
#[derive(Debug, Clone, Default)]
pub struct TxCache {
    inner: Arc<Mutex<HashMap<String, (TxData, i64)>>>,
}

impl TxCache {
    /// Remembers `data` for `ttl_ms` under the topic and transaction id.
    pub fn put(&self, topic: &str, tx_id: &str, data: TxData, ttl_ms: i64) {
        let now = now_ms();
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (_, expires)| *expires > now);
        m.insert(format!("{topic}@{tx_id}"), (data, now + ttl_ms));
    }

    pub fn take(&self, topic: &str, tx_id: &str) -> Option<TxData> {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&format!("{topic}@{tx_id}"))
            .filter(|(_, expires)| *expires > now_ms())
            .map(|(d, _)| d)
    }
}

/// The endpoints clients are told to use: this proxy. The request's
/// addresses keep their host (what the client could reach) with the
/// proxy's port, unless `useEndpointPortFromRequest`.
pub fn own_endpoints(p: &Proxy, asked: Option<&pb::Endpoints>) -> pb::Endpoints {
    let port = i32::from(p.addr.port());
    match asked.filter(|e| !e.addresses.is_empty()) {
        Some(e) => pb::Endpoints {
            scheme: e.scheme,
            addresses: e
                .addresses
                .iter()
                .map(|a| pb::Address {
                    host: a.host.clone(),
                    port: if p.cfg.use_endpoint_port_from_request {
                        a.port
                    } else {
                        port
                    },
                })
                .collect(),
        },
        None => {
            let ip = p.addr.ip();
            let host = if ip.is_unspecified() {
                crate::client::local_ip()
            } else {
                ip.to_string()
            };
            pb::Endpoints {
                scheme: if ip.is_ipv6() {
                    pb::AddressScheme::IPv6
                } else {
                    pb::AddressScheme::IPv4
                } as i32,
                addresses: vec![pb::Address { host, port }],
            }
        }
    }
}

fn queue(
    topic: &str,
    id: i32,
    permission: Permission,
    broker: &pb::Broker,
    types: &[i32],
) -> pb::MessageQueue {
    pb::MessageQueue {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: topic.to_owned(),
        }),
        id,
        permission: permission as i32,
        broker: Some(broker.clone()),
        accept_message_types: types.to_vec(),
    }
}

/// One broker's queues of a topic: read-only ids first, then write-only,
/// then read-write (`RouteActivity.genMessageQueueFromQueueData`).
fn broker_queues(
    topic: &str,
    q: &crate::wire::bodies::QueueData,
    broker: &pb::Broker,
    types: &[i32],
) -> Vec<pb::MessageQueue> {
    let (readable, writable) = (q.perm & perm::READ != 0, q.perm & perm::WRITE != 0);
    let (mut r, mut w, mut rw) = (0, 0, 0);
    if readable && writable {
        rw = q.read_queue_nums.min(q.write_queue_nums);
        r = q.read_queue_nums - rw;
        w = q.write_queue_nums - rw;
    } else if readable {
        r = q.read_queue_nums;
    } else if writable {
        w = q.write_queue_nums;
    }
    let mut out = Vec::new();
    let mut id = 0;
    for (n, p) in [
        (r, Permission::Read),
        (w, Permission::Write),
        (rw, Permission::ReadWrite),
    ] {
        for _ in 0..n {
            out.push(queue(topic, id, p, broker, types));
            id += 1;
        }
    }
    if out.is_empty() {
        out.push(queue(topic, 0, Permission::None, broker, types));
    }
    out
}

pub async fn query_route(
    p: &Proxy,
    m: Meta,
    r: pb::QueryRouteRequest,
) -> Result<pb::QueryRouteResponse, Failure> {
    let topic = r.topic.map(|t| t.name).unwrap_or_default();
    crate::wire::names::check_topic(&topic)
        .map_err(|e| Failure::new(Code::IllegalTopic, e.to_string()))?;
    authorize(p, &m, rq::GET_ROUTEINFO_BY_TOPIC, &topic, None)?;
    let info = p.backend.topic(m.caller, topic.clone()).await?;
    let endpoints = own_endpoints(p, r.endpoints.as_ref());
    let types = convert::accepted_types(info.message_type.as_deref());
    let mut queues = Vec::new();
    for q in &info.route.queue_datas {
        for b in info
            .route
            .broker_datas
            .iter()
            .filter(|b| b.broker_name == q.broker_name)
        {
            for id in b.broker_addrs.keys() {
                let broker = pb::Broker {
                    name: b.broker_name.clone(),
                    id: *id as i32,
                    endpoints: Some(endpoints.clone()),
                };
                queues.extend(broker_queues(&topic, q, &broker, &types));
            }
        }
    }
    Ok(pb::QueryRouteResponse {
        status: Some(ok()),
        message_queues: queues,
    })
}

/// One message: checks, type against the topic's, store.
async fn send_one(
    p: &Proxy,
    m: &Meta,
    msg: &pb::Message,
    topic_type: Option<&str>,
) -> pb::SendResultEntry {
    let now = now_ms();
    let peer = m.caller.remote.to_string();
    let failed = |f: Failure| pb::SendResultEntry {
        status: Some(f.status()),
        ..Default::default()
    };
    let cmd = match convert::to_send(msg, &p.cfg, &peer, now) {
        Ok(c) => c,
        Err(f) => return failed(f),
    };
    let sp = msg.system_properties.clone().unwrap_or_default();
    let kind = convert::kind_of(&sp);
    if p.cfg.enable_topic_message_type_check && !convert::type_accepted(topic_type, kind) {
        return failed(Failure::new(
            Code::MessagePropertyConflictWithType,
            format!(
                "topic {} accepts {} messages, not {}",
                cmd.topic,
                topic_type.unwrap_or("NORMAL"),
                kind.as_str_name()
            ),
        ));
    }
    let topic = cmd.topic.clone();
    let half = cmd.sys_flag & sysflag::TRANSACTION_MASK == sysflag::TRANSACTION_PREPARED_TYPE;
    match p.backend.send(m.caller.clone(), cmd).await {
        Ok(s) => {
            if half {
                let data = TxData {
                    broker_name: s.broker_name.clone(),
                    queue_offset: s.queue_offset,
                    commit_log_offset: s.commit_log_offset,
                    msg_id: s.msg_id.clone(),
                };
                let ttl = p.cfg.transaction_data_expire_millis;
                p.txs.put(&topic, &s.msg_id, data, ttl);
            }
            let st = if s.flush_ok {
                ok()
            } else {
                status(Code::MasterPersistenceTimeout, "flush timeout")
            };
            pb::SendResultEntry {
                status: Some(st),
                message_id: s.msg_id.clone(),
                transaction_id: if half { s.msg_id } else { String::new() },
                offset: s.queue_offset,
                recall_handle: String::new(),
            }
        }
        Err(r) => failed(r.into()),
    }
}

pub async fn send_message(
    p: &Proxy,
    m: Meta,
    r: pb::SendMessageRequest,
) -> Result<pb::SendMessageResponse, Failure> {
    let topic = |msg: &pb::Message| {
        msg.topic
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    let Some(first) = r.messages.first() else {
        return Err(Failure::new(Code::MessageCorrupted, "no message to send"));
    };
    let t = topic(first);
    if r.messages.iter().any(|msg| topic(msg) != t) {
        return Err(Failure::new(
            Code::MessageCorrupted,
            "messages of one request must share a topic",
        ));
    }
    crate::wire::names::check_topic(&t)
        .map_err(|e| Failure::new(Code::IllegalTopic, e.to_string()))?;
    authorize(p, &m, rq::SEND_MESSAGE, &t, None)?;
    let topic_type = p.backend.message_type(m.caller.clone(), t).await?;
    let mut entries = Vec::with_capacity(r.messages.len());
    for msg in &r.messages {
        entries.push(send_one(p, &m, msg, topic_type.as_deref()).await);
    }
    let st = overall(entries.iter().filter_map(|e| e.status.clone()));
    Ok(pb::SendMessageResponse {
        status: Some(st),
        entries,
    })
}

pub async fn end_transaction(
    p: &Proxy,
    m: Meta,
    r: pb::EndTransactionRequest,
) -> Result<(), Failure> {
    if r.transaction_id.trim().is_empty() {
        return Err(Failure::new(
            Code::InvalidTransactionId,
            "transaction id cannot be blank",
        ));
    }
    let topic = r.topic.map(|t| t.name).unwrap_or_default();
    authorize(p, &m, rq::END_TRANSACTION, &topic, None)?;
    let Some(d) = p.txs.take(&topic, &r.transaction_id) else {
        return Err(Failure::new(
            Code::InternalServerError,
            "cannot found transaction data",
        ));
    };
    let commit_or_rollback = match pb::TransactionResolution::try_from(r.resolution) {
        Ok(pb::TransactionResolution::Commit) => sysflag::TRANSACTION_COMMIT_TYPE,
        Ok(pb::TransactionResolution::Rollback) => sysflag::TRANSACTION_ROLLBACK_TYPE,
        _ => sysflag::TRANSACTION_NOT_TYPE,
    };
    let cmd = EndTx {
        broker_name: d.broker_name,
        producer_group: topic,
        half_queue_offset: d.queue_offset,
        half_offset: d.commit_log_offset,
        commit_or_rollback,
        from_check: r.source == pb::TransactionSource::SourceServerCheck as i32,
        msg_id: if r.message_id.is_empty() {
            d.msg_id
        } else {
            r.message_id
        },
        transaction_id: r.transaction_id,
    };
    p.backend.end_transaction(m.caller, cmd).await?;
    Ok(())
}
