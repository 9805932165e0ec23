//! Finding (or creating) the benchmark topic on any RocketMQ-compatible
//! cluster through its name server, and the requests the workers send.

use bytes::{Bytes, BytesMut};
use std::time::Duration;

use crate::client::{ClientConfig, RemotingClient};
use crate::wire::bodies::{ClusterInfo, TopicRouteData};
use crate::wire::codes::{request, response};
use crate::wire::headers::send::SendMessageRequestHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::message::{encode_batch, BatchEntry};
use crate::wire::{msgid, now_ms, RemotingCommand};

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A write (or read) queue of the benchmark topic.
#[derive(Debug, Clone)]
pub struct TargetQueue {
    pub broker_addr: String,
    pub broker_name: String,
    pub queue_id: i32,
}

/// How a benchmark's connections are made.
#[derive(Debug, Clone, Default)]
pub enum Transport {
    /// As the process says (the global `--tls` options).
    #[default]
    Default,
    /// Plain TCP, whatever the options say.
    Plain,
    /// TLS with these settings.
    Tls(crate::tls::ClientTls),
}

fn bench_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(3),
        default_timeout: Duration::from_secs(10),
    }
}

pub fn client() -> RemotingClient {
    RemotingClient::new(bench_config())
}

/// A client over the given transport.
pub fn client_over(t: &Transport) -> RemotingClient {
    match t {
        Transport::Default => client(),
        Transport::Plain => RemotingClient::with_tls(bench_config(), None),
        Transport::Tls(tls) => RemotingClient::with_tls(bench_config(), Some(tls.clone())),
    }
}

pub(super) async fn route(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
) -> BenchResult<Option<TopicRouteData>> {
    let cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
    let r = client.invoke(namesrv, cmd, Duration::from_secs(3)).await?;
    if r.code == response::TOPIC_NOT_EXIST {
        return Ok(None);
    }
    if r.code != response::SUCCESS {
        return Err(format!("route lookup failed: code {} {:?}", r.code, r.remark).into());
    }
    Ok(Some(crate::wire::json::from_fastjson(&r.body_bytes())?))
}

/// Returns the topic's queues, creating the topic with `queues` queues on
/// every master broker when it does not exist.
pub async fn prepare_topic(
    namesrv: &str,
    topic: &str,
    queues: i32,
) -> BenchResult<Vec<TargetQueue>> {
    let c = client();
    let namesrv = namesrv
        .split(';')
        .next()
        .unwrap_or(namesrv)
        .trim()
        .to_owned();
    let mut rd = route(&c, &namesrv, topic).await?;
    if rd.is_none() {
        let ci = c
            .invoke(
                &namesrv,
                RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO),
                Duration::from_secs(3),
            )
            .await?;
        let info: ClusterInfo = crate::wire::json::from_fastjson(&ci.body_bytes())?;
        for bd in info.broker_addr_table.values() {
            let Some(addr) = bd.master_addr() else {
                continue;
            };
            let cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
                .with_ext("topic", topic)
                .with_ext("defaultTopic", "TBW102")
                .with_ext("readQueueNums", queues)
                .with_ext("writeQueueNums", queues)
                .with_ext("perm", 6)
                .with_ext("topicFilterType", "SINGLE_TAG")
                .with_ext("topicSysFlag", 0)
                .with_ext("order", false);
            let r = c.invoke(addr, cmd, Duration::from_secs(5)).await?;
            if r.code != response::SUCCESS {
                return Err(format!("cannot create topic on {addr}: {:?}", r.remark).into());
            }
        }
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            rd = route(&c, &namesrv, topic).await?;
            if rd.is_some() {
                break;
            }
        }
    }
    let rd = rd.ok_or("topic did not appear in the name server's routes")?;
    let mut out = Vec::new();
    for qd in &rd.queue_datas {
        let Some(addr) = rd
            .broker_datas
            .iter()
            .find(|b| b.broker_name == qd.broker_name)
            .and_then(|b| b.master_addr())
        else {
            continue;
        };
        for q in 0..qd.write_queue_nums.max(qd.read_queue_nums) {
            out.push(TargetQueue {
                broker_addr: addr.to_owned(),
                broker_name: qd.broker_name.clone(),
                queue_id: q,
            });
        }
    }
    c.shutdown();
    if out.is_empty() {
        return Err("topic has no queues on a master".into());
    }
    Ok(out)
}

/// The target broker's `flushDiskType`, read with GET_BROKER_CONFIG
/// ("unknown" when the broker does not say).
pub async fn flush_mode(broker_addr: &str) -> String {
    let c = client();
    let r = c
        .invoke(
            broker_addr,
            RemotingCommand::request(request::GET_BROKER_CONFIG),
            Duration::from_secs(3),
        )
        .await;
    c.shutdown();
    match r {
        Ok(r) if r.code == response::SUCCESS => {
            crate::config::parse_properties(&String::from_utf8_lossy(&r.body_bytes()))
                .get("flushDiskType")
                .cloned()
                .unwrap_or_else(|| "unknown".into())
        }
        _ => "unknown".into(),
    }
}

/// A SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE with `batch > 1`) request.
pub fn send_request(
    topic: &str,
    queue_id: i32,
    body: &Bytes,
    batch: usize,
    extra_props: &str,
) -> RemotingCommand {
    let uniq = msgid::new_uniq_id();
    let mut props = String::with_capacity(64 + extra_props.len());
    props.push_str("UNIQ_KEY\u{1}");
    props.push_str(&uniq);
    props.push_str("\u{2}WAIT\u{1}true\u{2}");
    props.push_str(extra_props);
    let header = SendMessageRequestHeader {
        producer_group: "BENCH_PRODUCER".into(),
        topic: topic.to_owned(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: now_ms(),
        flag: 0,
        properties: Some(props.clone()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(batch > 1),
        max_reconsume_times: None,
        broker_name: None,
    };
    let code = if batch > 1 {
        request::SEND_BATCH_MESSAGE
    } else {
        request::SEND_MESSAGE_V2
    };
    let mut cmd = RemotingCommand::request(code);
    header.to_v2().write_ext(&mut cmd.ext);
    if batch > 1 {
        let entries: Vec<BatchEntry> = (0..batch)
            .map(|_| BatchEntry {
                flag: 0,
                body: body.clone(),
                properties: format!("UNIQ_KEY\u{1}{}\u{2}{}", msgid::new_uniq_id(), extra_props),
            })
            .collect();
        let mut out = BytesMut::with_capacity(batch * (body.len() + 64));
        let _ = encode_batch(entries.iter(), &mut out);
        cmd.with_body(out.freeze())
    } else {
        cmd.with_body(body.clone())
    }
}
