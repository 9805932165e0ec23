//! Turns name-server requests into `RouteTable` messages and answers.

use actix::prelude::*;
use std::time::Duration;

use super::route_table::*;
use crate::actors::session::{Channel, Processor, Responder};
use crate::wire::bodies::{self, KvTable, RegisterBrokerBody, TopicList};
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::namesrv::*;
use crate::wire::headers::CommandHeader;
use crate::wire::{RemotingCommand, WireError};

pub struct NamesrvProcessor {
    pub table: Addr<RouteTable>,
}

fn error(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::response_to(req, code).with_remark(remark)
}

fn bad_header(req: &RemotingCommand, e: WireError) -> RemotingCommand {
    error(req, rs::SYSTEM_ERROR, e.to_string())
}

impl Processor for NamesrvProcessor {
    fn process(&self, ch: &Channel, req: RemotingCommand, responder: Responder) {
        let table = self.table.clone();
        let channel_id = ch.id;
        responder.spawn(async move { Some(serve(table, channel_id, req).await) })
    }

    fn closed(&self, ch: &Channel) {
        self.table.do_send(ChannelClosed { channel_id: ch.id });
    }
}

async fn serve(table: Addr<RouteTable>, channel_id: u64, req: RemotingCommand) -> RemotingCommand {
    let ok = |r: &RemotingCommand| RemotingCommand::response_to(r, rs::SUCCESS);
    let mailbox_err = |r: &RemotingCommand| error(r, rs::SYSTEM_ERROR, "route table unavailable");
    match req.code {
        rq::REGISTER_BROKER => {
            let h = match RegisterBrokerRequestHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(&req, e),
            };
            if let Err(e) = crate::wire::names::check_cluster_name(&h.cluster_name)
                .and_then(|_| crate::wire::names::check_broker_name(&h.broker_name))
            {
                return error(&req, rs::INVALID_PARAMETER, e.to_string());
            }
            let raw = req.body_bytes();
            if h.body_crc32 != 0 && !raw.is_empty() {
                let crc = (crc32fast::hash(&raw) & 0x7FFF_FFFF) as i32;
                if crc != h.body_crc32 {
                    return error(&req, rs::SYSTEM_ERROR, "crc32 not match");
                }
            }
            let body = match decode_register_body(&raw, h.compressed) {
                Ok(b) => b,
                Err(e) => return error(&req, rs::SYSTEM_ERROR, format!("bad register body: {e}")),
            };
            let mut wrapper = body.topic_config_serialize_wrapper;
            // Lenient as the Java name server: a topic whose name breaks the
            // rules is left out of the routes, the rest registers.
            wrapper.topic_config_table.retain(|name, _| {
                let valid = crate::wire::names::check_topic(name).is_ok();
                if !valid {
                    tracing::warn!(topic = %name.escape_debug(), broker = %h.broker_name, "topic with an invalid name not routed");
                }
                valid
            });
            let res = table
                .send(RegisterBroker {
                    cluster: h.cluster_name,
                    broker_name: h.broker_name,
                    broker_addr: h.broker_addr,
                    broker_id: h.broker_id,
                    ha_server_addr: h.ha_server_addr,
                    timeout: h
                        .heartbeat_timeout_millis
                        .filter(|t| *t > 0)
                        .map(|t| Duration::from_millis(t as u64)),
                    data_version: wrapper.data_version,
                    topics: wrapper.topic_config_table,
                    channel_id,
                    enable_acting_master: h.enable_acting_master.unwrap_or(false),
                })
                .await;
            match res {
                Ok(r) => {
                    let mut resp = ok(&req);
                    RegisterBrokerResponseHeader {
                        ha_server_addr: r.ha_server_addr,
                        master_addr: r.master_addr,
                    }
                    .write_ext(&mut resp.ext);
                    resp
                }
                Err(_) => mailbox_err(&req),
            }
        }
        rq::UNREGISTER_BROKER => match BrokerIdentityHeader::from_ext(&req.ext) {
            Ok(h) => {
                let _ = table
                    .send(UnregisterBroker {
                        broker_addr: h.broker_addr,
                    })
                    .await;
                ok(&req)
            }
            Err(e) => bad_header(&req, e),
        },
        rq::QUERY_DATA_VERSION => match BrokerIdentityHeader::from_ext(&req.ext) {
            Ok(h) => {
                let dv = serde_json::from_slice(&req.body_bytes()).ok();
                match table
                    .send(TouchBroker {
                        broker_addr: h.broker_addr,
                        data_version: dv,
                    })
                    .await
                {
                    Ok((changed, stored)) => {
                        let mut resp = ok(&req).with_ext("changed", changed);
                        if let Some(s) = stored {
                            resp = resp.with_body(serde_json::to_vec(&s).unwrap_or_default());
                        }
                        resp
                    }
                    Err(_) => mailbox_err(&req),
                }
            }
            Err(e) => bad_header(&req, e),
        },
        rq::BROKER_HEARTBEAT => match BrokerHeartbeatRequestHeader::from_ext(&req.ext) {
            Ok(h) => {
                let _ = table
                    .send(TouchBroker {
                        broker_addr: h.broker_addr,
                        data_version: None,
                    })
                    .await;
                ok(&req)
            }
            Err(e) => bad_header(&req, e),
        },
        rq::GET_ROUTEINFO_BY_TOPIC => {
            let h = match TopicHeader::from_ext(&req.ext) {
                Ok(h) => h,
                Err(e) => return bad_header(&req, e),
            };
            match table
                .send(GetRoute {
                    topic: h.topic.clone(),
                })
                .await
            {
                Ok(Some(route)) => {
                    // Java dialect: bare numeric keys for pre-4.9.4 clients.
                    let standard =
                        req.version >= 401 || h.accept_standard_json_only.unwrap_or(false);
                    let body = if standard {
                        serde_json::to_string(&route).unwrap_or_default()
                    } else {
                        bodies::to_fastjson(&route)
                    };
                    ok(&req).with_body(body.into_bytes())
                }
                Ok(None) => error(
                    &req,
                    rs::TOPIC_NOT_EXIST,
                    format!(
                        "No topic route info in name server for the topic: {}",
                        h.topic
                    ),
                ),
                Err(_) => mailbox_err(&req),
            }
        }
        rq::GET_BROKER_CLUSTER_INFO => match table.send(GetClusterInfo).await {
            Ok(ci) => ok(&req).with_body(bodies::to_fastjson(&ci).into_bytes()),
            Err(_) => mailbox_err(&req),
        },
        rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER | rq::GET_TOPICS_BY_CLUSTER => {
            let cluster = if req.code == rq::GET_TOPICS_BY_CLUSTER {
                match req.ext.get("cluster") {
                    Some(c) => Some(c.to_owned()),
                    None => return bad_header(&req, WireError::MissingField("cluster")),
                }
            } else {
                None
            };
            match table.send(ListTopics { cluster }).await {
                Ok(list) => {
                    let body = TopicList {
                        topic_list: list,
                        broker_addr: None,
                    };
                    ok(&req).with_body(serde_json::to_vec(&body).unwrap_or_default())
                }
                Err(_) => mailbox_err(&req),
            }
        }
        rq::DELETE_TOPIC_IN_NAMESRV => match TopicHeader::from_ext(&req.ext) {
            Ok(h) => {
                let _ = table
                    .send(DeleteTopic {
                        topic: h.topic,
                        cluster: h.cluster_name,
                    })
                    .await;
                ok(&req)
            }
            Err(e) => bad_header(&req, e),
        },
        rq::REGISTER_TOPIC_IN_NAMESRV => match TopicHeader::from_ext(&req.ext) {
            Ok(h) => {
                let route: bodies::TopicRouteData =
                    crate::wire::json::from_fastjson(&req.body_bytes()).unwrap_or_default();
                let _ = table
                    .send(RegisterTopic {
                        topic: h.topic,
                        queue_datas: route.queue_datas,
                    })
                    .await;
                ok(&req)
            }
            Err(e) => bad_header(&req, e),
        },
        rq::PUT_KV_CONFIG
        | rq::GET_KV_CONFIG
        | rq::DELETE_KV_CONFIG
        | rq::GET_KVLIST_BY_NAMESPACE => serve_kv(&table, req).await,
        code => error(
            &req,
            rs::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {code} not supported"),
        ),
    }
}

async fn serve_kv(table: &Addr<RouteTable>, req: RemotingCommand) -> RemotingCommand {
    let h = match KvConfigHeader::from_ext(&req.ext) {
        Ok(h) => h,
        Err(e) => return bad_header(&req, e),
    };
    let need_key = |k: Option<String>| k.ok_or(WireError::MissingField("key"));
    let msg = match req.code {
        rq::PUT_KV_CONFIG => match (need_key(h.key), h.value) {
            (Ok(key), Some(value)) => Kv::Put {
                namespace: h.namespace,
                key,
                value,
            },
            (Err(e), _) => return bad_header(&req, e),
            (_, None) => return bad_header(&req, WireError::MissingField("value")),
        },
        rq::GET_KV_CONFIG => match need_key(h.key) {
            Ok(key) => Kv::Get {
                namespace: h.namespace,
                key,
            },
            Err(e) => return bad_header(&req, e),
        },
        rq::DELETE_KV_CONFIG => match need_key(h.key) {
            Ok(key) => Kv::Delete {
                namespace: h.namespace,
                key,
            },
            Err(e) => return bad_header(&req, e),
        },
        _ => Kv::List {
            namespace: h.namespace,
        },
    };
    match table.send(msg).await {
        Ok(KvResult::Done) => RemotingCommand::response_to(&req, rs::SUCCESS),
        Ok(KvResult::Value(Some(v))) => {
            RemotingCommand::response_to(&req, rs::SUCCESS).with_ext("value", v)
        }
        Ok(KvResult::Table(Some(t))) => RemotingCommand::response_to(&req, rs::SUCCESS)
            .with_body(serde_json::to_vec(&KvTable { table: t }).unwrap_or_default()),
        Ok(_) => error(&req, rs::QUERY_NOT_FOUND, "No config item"),
        Err(_) => error(&req, rs::SYSTEM_ERROR, "route table unavailable"),
    }
}

/// Reads a REGISTER_BROKER body: JSON, or the zlib-compressed layout
/// (protocol.md §6.3) when the header says so or JSON fails on a zlib start.
fn decode_register_body(raw: &[u8], compressed: bool) -> Result<RegisterBrokerBody, String> {
    if raw.is_empty() {
        return Ok(RegisterBrokerBody::default());
    }
    if !compressed {
        match crate::wire::json::from_fastjson(raw) {
            Ok(b) => return Ok(b),
            Err(e) if raw[0] != 0x78 => return Err(e.to_string()),
            Err(_) => {}
        }
    }
    decode_compressed_register_body(raw)
}

fn decode_compressed_register_body(raw: &[u8]) -> Result<RegisterBrokerBody, String> {
    use std::io::Read;
    let mut data = Vec::new();
    flate2::read::ZlibDecoder::new(raw)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    let mut pos = 0usize;
    let mut next = |data: &[u8]| -> Result<Vec<u8>, String> {
        let len_bytes = data.get(pos..pos + 4).ok_or("truncated")?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        if len < 0 {
            return Err("negative length".into());
        }
        let v = data
            .get(pos + 4..pos + 4 + len as usize)
            .ok_or("truncated")?
            .to_vec();
        pos += 4 + len as usize;
        Ok(v)
    };
    let mut body = RegisterBrokerBody::default();
    body.topic_config_serialize_wrapper.data_version =
        serde_json::from_slice(&next(&data)?).map_err(|e| e.to_string())?;
    let count_bytes = data.get(pos..pos + 4).ok_or("truncated")?;
    let count = i32::from_be_bytes([
        count_bytes[0],
        count_bytes[1],
        count_bytes[2],
        count_bytes[3],
    ]);
    pos += 4;
    let mut next = |data: &[u8]| -> Result<Vec<u8>, String> {
        let len_bytes = data.get(pos..pos + 4).ok_or("truncated")?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]])
            .max(0) as usize;
        let v = data
            .get(pos + 4..pos + 4 + len)
            .ok_or("truncated")?
            .to_vec();
        pos += 4 + len;
        Ok(v)
    };
    for _ in 0..count.max(0) {
        let text = String::from_utf8_lossy(&next(&data)?).into_owned();
        let mut parts = text.splitn(6, ' ');
        let name = parts.next().unwrap_or_default().to_owned();
        let num = |s: Option<&str>| s.and_then(|v| v.parse::<i32>().ok()).unwrap_or(0);
        let read = num(parts.next());
        let write = num(parts.next());
        let perm = num(parts.next());
        let filter = parts.next().unwrap_or("SINGLE_TAG").to_owned();
        let attributes = parts
            .next()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default();
        let tc = bodies::TopicConfig {
            topic_name: name.clone(),
            read_queue_nums: read,
            write_queue_nums: write,
            perm,
            topic_filter_type: filter,
            attributes,
            ..Default::default()
        };
        body.topic_config_serialize_wrapper
            .topic_config_table
            .insert(name, tc);
    }
    Ok(body)
}
