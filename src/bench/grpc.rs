//! The 5.x gRPC API under load, beside remoting: `bench produce --protocol
//! grpc|both --endpoint HOST:PORT` sends through the proxy
//! (`MessagingService.SendMessage`, C channels × W calls in flight), and
//! `bench grpc-receive` drains a topic with ReceiveMessage + AckMessage as
//! a simple consumer does. The topic is prepared over remoting (name
//! server), as for the remoting rows.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

use super::produce::ProduceBench;
use super::stats::{progress, Report, Samples};
use super::target::{prepare_topic, BenchResult};
use crate::proxy::pb::{self, messaging_service_client::MessagingServiceClient, Code};

mod h2call;
use h2call::H2Caller;

type Client = MessagingServiceClient<Channel>;

/// `bench produce`: the remoting row's shape, and which API runs it.
#[derive(clap::Args, Debug, Clone)]
pub struct ProduceCmd {
    #[command(flatten)]
    pub bench: ProduceBench,
    /// Remoting to the brokers, gRPC through a proxy, or both in one run.
    #[arg(long, value_enum, default_value_t = Protocol::Remoting)]
    pub protocol: Protocol,
    /// The proxy's gRPC endpoint (`--protocol grpc|both`).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub endpoint: String,
    /// The gRPC load generator: `lean` (HTTP/2 straight on the h2 crate) or
    /// `tonic` (tonic's generated client, ~3× the client CPU per call).
    #[arg(long, value_enum, default_value_t = GrpcClient::Lean)]
    pub grpc_client: GrpcClient,
}

/// Which client drives a gRPC produce row.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GrpcClient {
    #[default]
    Lean,
    Tonic,
}

/// One caller of SendMessage, over either client.
#[derive(Clone)]
enum SendCaller {
    Lean(H2Caller, http::Uri),
    Tonic(Client),
}

impl SendCaller {
    async fn connect(kind: GrpcClient, endpoint: &str, client_id: &str) -> BenchResult<Self> {
        Ok(match kind {
            GrpcClient::Lean => {
                let c = H2Caller::connect(endpoint, client_id).await?;
                let uri = c.uri("/apache.rocketmq.v2.MessagingService/SendMessage")?;
                SendCaller::Lean(c, uri)
            }
            GrpcClient::Tonic => SendCaller::Tonic(connect(endpoint).await?),
        })
    }

    /// One SendMessage; true when it answered OK.
    async fn send(&mut self, msg: pb::SendMessageRequest, client_id: &str) -> bool {
        match self {
            SendCaller::Lean(c, uri) => matches!(
                c.unary::<_, pb::SendMessageResponse>(uri, &msg).await,
                Ok(r) if ok(&r.status)
            ),
            SendCaller::Tonic(c) => matches!(
                c.send_message(request(msg, client_id)).await,
                Ok(r) if ok(&r.get_ref().status)
            ),
        }
    }
}

/// Which API a produce row uses.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Remoting,
    Grpc,
    /// A remoting row then a gRPC row, same shape, same run.
    Both,
}

async fn connect(endpoint: &str) -> BenchResult<Client> {
    let url = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let ch = Channel::from_shared(url)?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(MessagingServiceClient::new(ch)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024))
}

/// A request with the metadata every call carries.
fn request<T>(msg: T, client_id: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    let md = r.metadata_mut();
    if let Ok(v) = client_id.parse() {
        md.insert("x-mq-client-id", v);
    }
    md.insert(
        "x-mq-language",
        tonic::metadata::MetadataValue::from_static("RUST"),
    );
    md.insert(
        "x-mq-protocol",
        tonic::metadata::MetadataValue::from_static("v2"),
    );
    r
}

fn resource(name: &str) -> Option<pb::Resource> {
    Some(pb::Resource {
        resource_namespace: String::new(),
        name: name.to_owned(),
    })
}

fn message(topic: &str, body: &Bytes) -> pb::Message {
    pb::Message {
        topic: resource(topic),
        user_properties: Default::default(),
        system_properties: Some(pb::SystemProperties {
            message_id: crate::wire::msgid::new_uniq_id(),
            born_timestamp: Some(crate::proxy::convert::ms_ts(crate::wire::now_ms())),
            message_type: pb::MessageType::Normal as i32,
            body_encoding: pb::Encoding::Identity as i32,
            ..Default::default()
        }),
        body: body.clone(),
    }
}

fn ok(s: &Option<pb::Status>) -> bool {
    s.as_ref().is_some_and(|s| s.code == Code::Ok as i32)
}

/// `bench produce --protocol grpc`: the same shape as the remoting row.
pub async fn run_grpc_produce(
    a: &ProduceBench,
    endpoint: &str,
    kind: GrpcClient,
) -> BenchResult<Report> {
    prepare_topic(&a.namesrv, &a.topic, a.queues).await?;
    let body = Bytes::from(vec![b'a'; a.size]);
    let sent = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(AtomicU64::new(a.count.unwrap_or(u64::MAX)));
    let deadline = Instant::now() + Duration::from_secs(a.duration);
    let counted = a.count.is_some();
    let more = move || {
        if counted {
            budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
                .is_ok()
        } else {
            Instant::now() < deadline
        }
    };
    let bar = progress("produce grpc".into(), sent.clone());
    let client_id = format!("{}@bench-grpc", crate::client::client_id());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.connections.max(1) {
        let client = SendCaller::connect(kind, endpoint, &client_id).await?;
        for _ in 0..a.window.max(1) {
            let (mut client, more, sent) = (client.clone(), more.clone(), sent.clone());
            let (topic, body, id) = (a.topic.clone(), body.clone(), client_id.clone());
            tasks.push(tokio::spawn(async move {
                let mut s = Samples::default();
                while more() {
                    let req = pb::SendMessageRequest {
                        messages: vec![message(&topic, &body)],
                    };
                    let t0 = Instant::now();
                    if client.send(req, &id).await {
                        s.record(t0.elapsed(), 1, body.len() as u64);
                        sent.fetch_add(1, Ordering::Relaxed);
                    } else {
                        s.errors += 1;
                    }
                }
                s
            }));
        }
    }
    let all = super::stats::join_samples(tasks).await;
    let elapsed = start.elapsed();
    bar.abort();
    let notes = format!(
        "{} B, {} channel x {} in flight, gRPC via {endpoint}, {kind:?} client",
        a.size, a.connections, a.window
    );
    Ok(Report::from_samples("produce grpc", all, elapsed, notes))
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReceiveBench {
    /// The proxy's gRPC endpoint.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub endpoint: String,
    #[arg(short = 't', long, default_value = "BenchmarkTopic")]
    pub topic: String,
    #[arg(short = 'g', long, default_value = "BenchmarkGrpcGroup")]
    pub group: String,
    /// Receive calls in flight.
    #[arg(short = 'w', long, default_value_t = 4)]
    pub window: usize,
    /// Messages per receive (≤ 32).
    #[arg(long, default_value_t = 32)]
    pub batch: i32,
    /// Stop after this many seconds, or when a receive finds nothing.
    #[arg(short = 'd', long, default_value_t = 30)]
    pub duration: u64,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One receive + ack round: messages received and acked.
async fn receive_round(client: &mut Client, a: &ReceiveBench, id: &str) -> Result<u64, ()> {
    let mq = pb::MessageQueue {
        topic: resource(&a.topic),
        id: -1,
        ..Default::default()
    };
    let req = pb::ReceiveMessageRequest {
        group: resource(&a.group),
        message_queue: Some(mq),
        filter_expression: Some(pb::FilterExpression {
            r#type: pb::FilterType::Tag as i32,
            expression: "*".into(),
        }),
        batch_size: a.batch,
        invisible_duration: Some(crate::proxy::convert::ms_dur(30_000)),
        auto_renew: false,
        long_polling_timeout: Some(crate::proxy::convert::ms_dur(5_000)),
        attempt_id: None,
    };
    let mut req = request(req, id);
    req.set_timeout(Duration::from_secs(10));
    let mut stream = client
        .receive_message(req)
        .await
        .map_err(|_| ())?
        .into_inner();
    let mut entries = Vec::new();
    while let Ok(Some(item)) = stream.message().await {
        if let Some(pb::receive_message_response::Content::Message(m)) = item.content {
            let sp = m.system_properties.unwrap_or_default();
            entries.push(pb::AckMessageEntry {
                message_id: sp.message_id,
                receipt_handle: sp.receipt_handle.unwrap_or_default(),
                lite_topic: None,
            });
        }
    }
    let n = entries.len() as u64;
    if n == 0 {
        return Ok(0);
    }
    let ack = pb::AckMessageRequest {
        group: resource(&a.group),
        topic: resource(&a.topic),
        entries,
    };
    match client.ack_message(request(ack, id)).await {
        Ok(r) if ok(&r.get_ref().status) => Ok(n),
        _ => Err(()),
    }
}

/// `bench grpc-receive`: receive + ack until the topic is drained.
pub async fn run_grpc_receive(a: &ReceiveBench) -> BenchResult<Report> {
    let client = connect(&a.endpoint).await?;
    let got = Arc::new(AtomicU64::new(0));
    let bar = progress("receive grpc".into(), got.clone());
    let deadline = Instant::now() + Duration::from_secs(a.duration);
    let id = format!("{}@bench-grpc-receive", crate::client::client_id());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.window.max(1) {
        let (mut client, a, got, id) = (client.clone(), a.clone(), got.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            let mut last = Instant::now();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match receive_round(&mut client, &a, &id).await {
                    Ok(0) => {
                        if last.elapsed() > Duration::from_secs(3) {
                            break;
                        }
                    }
                    Ok(n) => {
                        s.record(t0.elapsed(), n, 0);
                        got.fetch_add(n, Ordering::Relaxed);
                        last = Instant::now();
                    }
                    Err(()) => s.errors += 1,
                }
            }
            (s, last)
        }));
    }
    let mut all = Samples::default();
    let mut end = start;
    for t in tasks {
        if let Ok((s, last)) = t.await {
            all.merge(s);
            end = end.max(last);
        }
    }
    bar.abort();
    let notes = format!(
        "receive {} + ack, {} in flight, gRPC via {}",
        a.batch, a.window, a.endpoint
    );
    Ok(Report::from_samples(
        "receive+ack grpc",
        all,
        end.duration_since(start),
        notes,
    ))
}
