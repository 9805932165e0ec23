//! Telemetry, the client's long-lived stream (`ClientActivity.telemetry`):
//! the client sends its Settings, the proxy registers it and answers with
//! the Settings it decided; the proxy later pushes transaction checks
//! (`RecoverOrphanedTransactionCommand`) on the same stream. A
//! [`TelemetryConn`] is that way back as the broker's `ClientConnection`.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use super::convert;
use super::grpc::{registration, Meta, Proxy};
use super::pb::{self, settings::PubSub, telemetry_command::Command, ClientType, Code};
use super::send::{TxCache, TxData};
use super::settings::{self, Clients};
use super::status::{ok, Failure};
use crate::service::connection::{ClientConn, ClientConnection};
use crate::service::Refusal;
use crate::wire::bodies::MessageQueue;
use crate::wire::headers::consume::{
    CheckTransactionStateRequestHeader, ConsumeMessageDirectlyRequestHeader,
    GetConsumerRunningInfoRequestHeader, ResetOffsetRequestHeader,
};

type Item = Result<pb::TelemetryCommand, tonic::Status>;

static STREAMS: AtomicU64 = AtomicU64::new(1);

/// Opens a client's stream: its commands are served by a task, the
/// server's go out through the returned receiver.
pub fn open(
    p: &Arc<Proxy>,
    meta: Meta,
    mut inbound: tonic::Streaming<pb::TelemetryCommand>,
) -> mpsc::Receiver<Item> {
    let (tx, rx) = mpsc::channel::<Item>(64);
    let stream = STREAMS.fetch_add(1, Ordering::Relaxed);
    p.clients.attach(&meta.client_id, stream, tx.clone());
    let p = p.clone();
    tokio::spawn(async move {
        while let Some(cmd) = inbound.next().await {
            let Ok(cmd) = cmd else { break };
            if let Some(Command::Settings(s)) = cmd.command {
                match on_settings(&p, &meta, s).await {
                    Ok(reply) => {
                        let out = pb::TelemetryCommand {
                            status: Some(ok()),
                            command: Some(Command::Settings(reply)),
                        };
                        if tx.send(Ok(out)).await.is_err() {
                            break;
                        }
                    }
                    Err(f) => {
                        // Errors close the stream: client errors as
                        // INVALID_ARGUMENT, the rest as INTERNAL.
                        let code = f.code as i32;
                        let st = if (40000..50000).contains(&code) {
                            tonic::Status::invalid_argument(f.message)
                        } else {
                            tonic::Status::internal(f.message)
                        };
                        let _ = tx.send(Err(st)).await;
                        break;
                    }
                }
            }
            // Thread-stack and verify results are not asked for: ignored.
        }
        p.clients.detach(&meta.client_id, stream);
    });
    rx
}

/// A client's Settings: check, register, store, and the reply.
async fn on_settings(p: &Proxy, meta: &Meta, s: pb::Settings) -> Result<pb::Settings, Failure> {
    let reply = match (&s.pub_sub, settings::client_type(&s)) {
        (Some(PubSub::Publishing(pubs)), _) => {
            for t in &pubs.topics {
                crate::wire::names::check_topic(&t.name)
                    .map_err(|e| Failure::new(Code::IllegalTopic, e.to_string()))?;
            }
            settings::producer_reply(s, &p.cfg)
        }
        (Some(PubSub::Subscription(sub)), _) => {
            let group = sub
                .group
                .as_ref()
                .map(|g| g.name.clone())
                .unwrap_or_default();
            crate::wire::names::check_group(&group)
                .map_err(|e| Failure::new(Code::IllegalConsumerGroup, e.to_string()))?;
            let g = p.backend.group(meta.caller.clone(), group).await?;
            settings::consumer_reply(s, &p.cfg, g)
        }
        (None, ClientType::Producer) => settings::producer_reply(s, &p.cfg),
        _ => {
            return Err(Failure::new(
                Code::BadRequest,
                "there is no publishing or subscription data in settings",
            ))
        }
    };
    let reg = registration(p, meta, &reply)?;
    p.backend.register(meta.caller.clone(), reg).await?;
    p.clients.set_settings(&meta.client_id, reply.clone());
    Ok(reply)
}

/// A gRPC client as the broker's way back to it.
#[derive(Debug)]
pub struct TelemetryConn {
    id: u64,
    client_id: String,
    remote: SocketAddr,
    clients: Clients,
    txs: TxCache,
    expire_ms: i64,
}

/// The connection object of a client (its id is stable per client id, so
/// re-registrations replace, not add).
pub fn connection(p: &Proxy, client_id: &str, remote: SocketAddr) -> ClientConn {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    client_id.hash(&mut h);
    Arc::new(TelemetryConn {
        id: h.finish() | (1 << 63),
        client_id: client_id.to_owned(),
        remote,
        clients: p.clients.clone(),
        txs: p.txs.clone(),
        expire_ms: p.cfg.transaction_data_expire_millis,
    })
}

/// A transaction check for one of this proxy's producers: remember the
/// half message and ask the client (`RecoverOrphanedTransactionCommand`).
pub fn recover_orphaned(
    clients: &Clients,
    txs: &TxCache,
    client_id: &str,
    header: &CheckTransactionStateRequestHeader,
    record: &Bytes,
    ttl_ms: i64,
) -> bool {
    let Ok(m) = crate::wire::message::decode_record(record, 0, false) else {
        return false;
    };
    let tx_id = header
        .transaction_id
        .clone()
        .or_else(|| m.uniq_key().map(str::to_owned))
        .unwrap_or_default();
    let msg_id = header.msg_id.clone().unwrap_or_else(|| tx_id.clone());
    let broker = header.broker_name.clone().unwrap_or_default();
    let data = TxData {
        broker_name: broker,
        queue_offset: header.tran_state_table_offset,
        commit_log_offset: header.commit_log_offset,
        msg_id,
    };
    txs.put(&m.topic, &tx_id, data, ttl_ms);
    let Some(tx) = clients.telemetry(client_id) else {
        return false;
    };
    let cmd = Command::RecoverOrphanedTransactionCommand(pb::RecoverOrphanedTransactionCommand {
        message: Some(convert::from_stored(&m, &m.topic, None)),
        transaction_id: tx_id,
    });
    tx.try_send(Ok(pb::TelemetryCommand {
        status: Some(ok()),
        command: Some(cmd),
    }))
    .is_ok()
}

impl ClientConnection for TelemetryConn {
    fn id(&self) -> u64 {
        self.id
    }

    fn remote(&self) -> SocketAddr {
        self.remote
    }

    fn is_open(&self) -> bool {
        self.clients
            .telemetry(&self.client_id)
            .is_some_and(|t| !t.is_closed())
    }

    fn notify_consumer_ids_changed(&self, _group: &str) -> bool {
        // gRPC consumers do not rebalance: nothing to tell.
        self.is_open()
    }

    fn check_transaction_state(
        &self,
        header: CheckTransactionStateRequestHeader,
        message: Bytes,
    ) -> bool {
        recover_orphaned(
            &self.clients,
            &self.txs,
            &self.client_id,
            &header,
            &message,
            self.expire_ms,
        )
    }

    fn reset_offset(
        &self,
        _header: ResetOffsetRequestHeader,
        _offsets: &[(MessageQueue, i64)],
    ) -> bool {
        false
    }

    fn consumer_running_info(
        &self,
        _header: GetConsumerRunningInfoRequestHeader,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, Refusal>> {
        Box::pin(async {
            Err(Refusal::Unsupported(
                "gRPC clients report no running info".into(),
            ))
        })
    }

    fn consume_message_directly(
        &self,
        _header: ConsumeMessageDirectlyRequestHeader,
        _message: Bytes,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, Refusal>> {
        Box::pin(async {
            Err(Refusal::Unsupported(
                "gRPC clients do not consume directly".into(),
            ))
        })
    }
}

/// Drops clients silent past `channelExpiredTimeout` (their Settings too).
pub fn start_housekeeping(p: &Arc<Proxy>) {
    let weak = Arc::downgrade(p);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            let Some(p) = weak.upgrade() else { break };
            for id in p.clients.expire(p.cfg.channel_expired_timeout) {
                tracing::debug!(client = %id, "gRPC client expired");
            }
        }
    });
}
