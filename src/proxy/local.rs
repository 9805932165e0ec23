//! LOCAL mode: the proxy inside the broker's process, calling
//! [`BrokerService`] directly (RocketMQ's `LocalServiceManager`). Routes
//! come from the broker's own topic table, one broker, id 0.
//!
//! Service calls run on one of the broker's I/O arbiters (their futures
//! belong to an actix thread); the gRPC handler awaits the answer.

use std::future::Future;
use std::sync::Arc;

use super::backend::*;
use crate::actors::broker::groups::EnsureGroup;
use crate::actors::server::IoPool;
use crate::service::broker::{
    AckRequest, BrokerService, ChangeInvisibleRequest, EndTransactionRequest, HeartbeatRequest,
    PopRequest, SendBackRequest, SendRequest, TransactionDecision, UnregisterRequest,
};
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{BrokerData, QueueData, TopicRouteData};
use crate::wire::message::sysflag;
use crate::wire::names::AUTO_CREATE_TOPIC;

pub struct LocalBackend {
    svc: BrokerService,
    pool: IoPool,
}

impl LocalBackend {
    pub fn new(svc: BrokerService, pool: IoPool) -> Arc<LocalBackend> {
        Arc::new(LocalBackend { svc, pool })
    }

    /// Runs `f` on a broker arbiter and answers its result.
    fn run<T, F, Fut>(&self, f: F) -> Reply<T>
    where
        T: Send + 'static,
        F: FnOnce(BrokerService) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Refusal>> + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let svc = self.svc.clone();
        let sent = self.pool.first().spawn_fn(move || {
            actix::spawn(async move {
                let _ = tx.send(f(svc).await);
            });
        });
        Box::pin(async move {
            if !sent {
                return Err(Refusal::busy("broker"));
            }
            rx.await.unwrap_or_else(|_| Err(Refusal::busy("broker")))
        })
    }
}

/// The topic's `message.type` attribute (as set with `+message.type=FIFO`).
pub fn message_type_of(attrs: &std::collections::BTreeMap<String, String>) -> Option<String> {
    attrs
        .get("message.type")
        .or_else(|| attrs.get("+message.type"))
        .map(|t| t.to_ascii_uppercase())
}

fn local_route(svc: &BrokerService, topic: &str) -> Result<TopicInfo, Refusal> {
    let ctx = svc.ctx();
    let t = ctx
        .topics
        .get(topic)
        .ok_or_else(|| Refusal::topic_not_exist(topic))?;
    let c = &t.config;
    let name = ctx.cfg.broker_name.clone();
    let route = TopicRouteData {
        order_topic_conf: None,
        queue_datas: vec![QueueData {
            broker_name: name.clone(),
            read_queue_nums: c.read_queue_nums,
            write_queue_nums: c.write_queue_nums,
            perm: c.perm,
            topic_sys_flag: c.topic_sys_flag,
        }],
        broker_datas: vec![BrokerData {
            cluster: ctx.cfg.broker_cluster_name.clone(),
            broker_name: name,
            broker_addrs: [(0i64, ctx.cfg.broker_addr())].into_iter().collect(),
            zone_name: None,
            ..Default::default()
        }],
        filter_server_table: Default::default(),
    };
    Ok(TopicInfo {
        route,
        message_type: message_type_of(&c.attributes),
    })
}

impl Backend for LocalBackend {
    fn auth(&self) -> Option<Arc<crate::auth::Auth>> {
        self.svc.ctx().auth.clone()
    }

    fn topic(&self, _caller: Caller, topic: String) -> Reply<TopicInfo> {
        let r = local_route(&self.svc, &topic);
        Box::pin(async move { r })
    }

    fn message_type(&self, _caller: Caller, topic: String) -> Reply<Option<String>> {
        let r = match self.svc.ctx().topics.get(&topic) {
            Some(t) => Ok(message_type_of(&t.config.attributes)),
            None => Err(Refusal::topic_not_exist(&topic)),
        };
        Box::pin(async move { r })
    }

    fn send(&self, caller: Caller, cmd: SendCmd) -> Reply<Sent> {
        self.run(move |svc| async move {
            let queue_id = match (&cmd.shard_key, svc.ctx().topics.get(&cmd.topic)) {
                (Some(k), Some(t)) => {
                    fifo_queue_index(k, t.config.write_queue_nums.max(1) as usize) as i32
                }
                _ => -1,
            };
            let req = SendRequest {
                topic: &cmd.topic,
                default_topic: AUTO_CREATE_TOPIC,
                default_topic_queue_nums: 4,
                queue_id,
                sys_flag: cmd.sys_flag,
                flag: 0,
                born_timestamp: cmd.born_timestamp,
                properties: &cmd.properties,
                reconsume_times: cmd.reconsume_times,
                max_reconsume_times: None,
                body: cmd.body.clone(),
                batch: false,
            };
            let r = svc.send(&caller, req).await?;
            let first = r
                .results
                .first()
                .ok_or_else(|| Refusal::Failed("nothing stored".into()))?;
            Ok(Sent {
                broker_name: svc.ctx().cfg.broker_name.clone(),
                queue_id: r.queue_id,
                queue_offset: first.queue_offset,
                commit_log_offset: first.phys_offset,
                msg_id: r
                    .transaction_id
                    .as_ref()
                    .map(|u| u.as_str().to_owned())
                    .unwrap_or_default(),
                flush_ok: r.flush == crate::actors::broker::commit_log::FlushOutcome::Ok,
            })
        })
    }

    fn end_transaction(&self, caller: Caller, cmd: EndTx) -> Reply<()> {
        self.run(move |svc| async move {
            let decision = match cmd.commit_or_rollback {
                sysflag::TRANSACTION_COMMIT_TYPE => TransactionDecision::Commit,
                sysflag::TRANSACTION_ROLLBACK_TYPE => TransactionDecision::Rollback,
                _ => TransactionDecision::Unknown,
            };
            let req = EndTransactionRequest {
                producer_group: cmd.producer_group,
                half_queue_offset: cmd.half_queue_offset,
                half_offset: cmd.half_offset,
                decision,
                from_check: cmd.from_check,
                msg_id: cmd.msg_id,
            };
            svc.end_transaction(&caller, req).await
        })
    }

    fn register(&self, caller: Caller, reg: Registration) -> Reply<()> {
        self.run(move |svc| async move {
            let hb = HeartbeatRequest {
                data: heartbeat_data(&reg, &reg.client_id),
                connection: reg.connection.clone(),
                language: reg.language.clone(),
                version: 0,
            };
            svc.heartbeat(&caller, hb).await
        })
    }

    fn unregister(&self, caller: Caller, u: Unregistration) -> Reply<()> {
        self.run(move |svc| async move {
            let groups = u.producer_groups.into_iter().map(|g| (Some(g), None));
            for (producer_group, consumer_group) in
                groups.chain(u.consumer_group.map(|g| (None, Some(g))))
            {
                let req = UnregisterRequest {
                    client_id: u.client_id.clone(),
                    producer_group,
                    consumer_group,
                };
                svc.unregister(&caller, req).await?;
            }
            Ok(())
        })
    }

    fn group(&self, _caller: Caller, group: String) -> Reply<GroupSettings> {
        let groups = self.svc.ctx().groups.clone();
        Box::pin(async move {
            match groups.send(EnsureGroup(group.clone())).await {
                Ok(Some(c)) => Ok(GroupSettings {
                    retry_max_times: c.retry_max_times,
                    orderly: c.consume_message_orderly,
                }),
                Ok(None) => Err(Refusal::GroupNotExist(format!(
                    "subscription group not exist, {group}"
                ))),
                Err(_) => Err(Refusal::busy("group manager")),
            }
        })
    }

    fn pop(&self, caller: Caller, cmd: PopCmd) -> Reply<Popped> {
        self.run(move |svc| async move {
            let req = PopRequest {
                group: cmd.group,
                topic: cmd.topic,
                queue_id: -1,
                max_msgs: cmd.max_msgs.max(1) as u32,
                invisible_ms: cmd.invisible_ms.max(0) as u64,
                poll_ms: cmd.poll_ms.max(0) as u64,
                order: cmd.order,
                expression_type: cmd.expression_type,
                expression: cmd.expression,
                // ConsumeInitMode.MAX, as the Java proxy asks.
                init_mode: 1,
                attempt_id: cmd.attempt_id,
            };
            match svc.pop(&caller, req).await {
                Ok(r) => Ok(Popped {
                    messages: r
                        .messages
                        .into_iter()
                        .map(|m| (m.message, m.receipt_handle))
                        .collect(),
                    ..Default::default()
                }),
                Err(Refusal::PollingFull(_)) => Ok(Popped {
                    polling_full: true,
                    ..Default::default()
                }),
                Err(e) => Err(e),
            }
        })
    }

    fn ack(&self, caller: Caller, cmd: HandleCmd) -> Reply<()> {
        self.run(move |svc| async move {
            let req = AckRequest {
                group: cmd.group,
                topic: cmd.topic,
                queue_id: cmd.queue_id,
                receipt_handle: cmd.extra_info,
                offset: cmd.offset,
            };
            svc.ack(&caller, req).await
        })
    }

    fn batch_ack(&self, caller: Caller, _topic: String, cmds: Vec<HandleCmd>) -> Reply<()> {
        self.run(move |svc| async move {
            let reqs = cmds
                .into_iter()
                .map(|cmd| AckRequest {
                    group: cmd.group,
                    topic: cmd.topic,
                    queue_id: cmd.queue_id,
                    receipt_handle: cmd.extra_info,
                    offset: cmd.offset,
                })
                .collect();
            svc.batch_ack(&caller, reqs).await
        })
    }

    fn change_invisible(&self, caller: Caller, cmd: HandleCmd, invisible_ms: i64) -> Reply<String> {
        self.run(move |svc| async move {
            let req = ChangeInvisibleRequest {
                group: cmd.group,
                topic: cmd.topic,
                queue_id: cmd.queue_id,
                receipt_handle: cmd.extra_info,
                offset: cmd.offset,
                invisible_ms: invisible_ms.max(0) as u64,
            };
            svc.change_invisible(&caller, req)
                .await
                .map(|r| r.receipt_handle)
        })
    }

    fn to_dlq(&self, caller: Caller, cmd: DlqCmd) -> Reply<()> {
        self.run(move |svc| async move {
            let req = SendBackRequest {
                offset: cmd.commit_log_offset,
                group: cmd.group,
                delay_level: -1,
                max_reconsume_times: Some(0),
            };
            svc.send_back(&caller, req).await
        })
    }
}
