//! The broker's services called directly, as the gRPC proxy's LOCAL mode
//! will call them: no frame, no client socket. A broker runs in-process on
//! a temp store; broker → client calls land in a recording connection.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::actors::broker::Broker;
use crate::actors::server::IoPool;
use crate::config::BrokerConfig;
use crate::service::connection::ClientConnection;
use crate::service::{Caller, Refusal};
use crate::wire::bodies::{ConsumerData, HeartbeatData, MessageQueue, SubscriptionData};
use crate::wire::headers::consume::{
    CheckTransactionStateRequestHeader, ConsumeMessageDirectlyRequestHeader,
    GetConsumerRunningInfoRequestHeader, ResetOffsetRequestHeader,
};
use crate::wire::message::{decode_record, encode_properties};

/// Records every broker → client call; answers calls with a fixed body.
#[derive(Debug)]
struct Recorder {
    id: u64,
    calls: Mutex<Vec<String>>,
}

impl Recorder {
    fn new(id: u64) -> Arc<Recorder> {
        Arc::new(Recorder {
            id,
            calls: Mutex::new(Vec::new()),
        })
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn record(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
}

impl ClientConnection for Recorder {
    fn id(&self) -> u64 {
        self.id
    }
    fn remote(&self) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], 5000 + self.id as u16))
    }
    fn is_open(&self) -> bool {
        true
    }
    fn notify_consumer_ids_changed(&self, group: &str) -> bool {
        self.record(format!("notify {group}"));
        true
    }
    fn check_transaction_state(&self, h: CheckTransactionStateRequestHeader, _: Bytes) -> bool {
        self.record(format!("check {}", h.commit_log_offset));
        true
    }
    fn reset_offset(&self, h: ResetOffsetRequestHeader, offsets: &[(MessageQueue, i64)]) -> bool {
        let o: Vec<i64> = offsets.iter().map(|(_, o)| *o).collect();
        self.record(format!("reset {} {:?}", h.topic, o));
        true
    }
    fn consumer_running_info(
        &self,
        h: GetConsumerRunningInfoRequestHeader,
        _: Duration,
    ) -> BoxFuture<'static, Result<Bytes, Refusal>> {
        self.record(format!("running {}", h.client_id));
        Box::pin(async { Ok(Bytes::from_static(b"{\"properties\":{}}")) })
    }
    fn consume_message_directly(
        &self,
        h: ConsumeMessageDirectlyRequestHeader,
        message: Bytes,
        _: Duration,
    ) -> BoxFuture<'static, Result<Bytes, Refusal>> {
        let body = decode_record(&message, 0, false)
            .map(|m| m.body)
            .unwrap_or_default();
        self.record(format!(
            "direct {} {}",
            h.msg_id.unwrap_or_default(),
            String::from_utf8_lossy(&body)
        ));
        Box::pin(async { Err(Refusal::ClientTimeout("slow consumer".into())) })
    }
}

/// Runs `f` against a fresh in-process broker (no name server).
fn with_broker<F, Fut>(f: F)
where
    F: FnOnce(BrokerService) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    actix::System::new().block_on(async move {
        let pool = IoPool::new(1);
        let cfg = BrokerConfig {
            listen_port: 0,
            listen_addr: "127.0.0.1".into(),
            broker_ip1: "127.0.0.1".into(),
            namesrv_addr: String::new(),
            store_path_root_dir: root,
            maped_file_size_commit_log: 1 << 20,
            maped_file_size_consume_queue: 1000 * 20,
            expiry: crate::config::ExpiryConfig {
                max_hash_slot_num: 5_000,
                max_index_num: 20_000,
                ..Default::default()
            },
            ..BrokerConfig::default()
        };
        let broker = Broker::start(cfg, pool.clone())
            .await
            .expect("broker starts");
        f(BrokerService::new(broker.ctx.clone())).await;
        broker.shutdown().await;
        pool.stop();
    });
}

fn send_req<'a>(topic: &'a str, props: &'a str, body: &'static [u8]) -> SendRequest<'a> {
    SendRequest {
        topic,
        default_topic: "",
        default_topic_queue_nums: 4,
        queue_id: 0,
        sys_flag: 0,
        flag: 0,
        born_timestamp: crate::wire::now_ms(),
        properties: props,
        reconsume_times: 0,
        max_reconsume_times: None,
        body: Bytes::from_static(body),
        batch: false,
    }
}

fn pull_req(topic: &str, queue_id: i32, offset: i64) -> PullRequest {
    PullRequest {
        group: "g1".into(),
        topic: topic.into(),
        queue_id,
        offset,
        max_msgs: 32,
        commit_offset: None,
        hold: None,
        subscription: None,
    }
}

fn queue(topic: &str, group: &str) -> GroupQueue {
    GroupQueue {
        group: group.into(),
        topic: topic.into(),
        queue_id: 0,
    }
}

#[test]
fn send_pull_offsets_and_query_without_a_socket() {
    with_broker(|svc| async move {
        let me = Caller::internal();
        let props = encode_properties([("KEYS", "order-7"), ("TAGS", "A")]);
        let mut phys = Vec::new();
        for body in [&b"one"[..], b"two", b"three"] {
            let r = svc.send(&me, send_req("T1", &props, body)).await.unwrap();
            assert_eq!(r.queue_id, 0);
            assert!(r.transaction_id.is_some());
            phys.push(r.results[0].phys_offset);
        }
        assert_eq!(svc.queue_bounds(&me, "T1", 0).await.unwrap(), (0, 3));

        let reply = svc.pull(&me, pull_req("T1", 0, 1)).await.unwrap();
        let bodies: Vec<_> = reply
            .outcome
            .bodies
            .iter()
            .map(|b| decode_record(b, 0, true).unwrap().body)
            .collect();
        assert_eq!(bodies, vec![Bytes::from("two"), Bytes::from("three")]);

        // Offsets: none yet (the queue starts at 0, so 0 when asked), then committed.
        assert_eq!(
            svc.consumer_offset(&me, queue("T1", "g1"), true).await,
            Ok(0)
        );
        assert!(matches!(
            svc.consumer_offset(&me, queue("T1", "g1"), false).await,
            Err(Refusal::QueryNotFound(_))
        ));
        svc.commit_offset(&me, queue("T1", "g1"), 2).await.unwrap();
        assert_eq!(
            svc.consumer_offset(&me, queue("T1", "g1"), false).await,
            Ok(2)
        );

        // View by offset and query by key read the same record.
        let rec = svc.view_by_offset(&me, phys[1]).unwrap();
        assert_eq!(
            decode_record(&rec, 0, true).unwrap().body,
            Bytes::from("two")
        );
        assert!(matches!(
            svc.view_by_offset(&me, phys[1] + 1),
            Err(Refusal::Failed(_))
        ));
        let mut hits = None;
        for _ in 0..50 {
            let q = QueryRequest {
                topic: "T1".into(),
                key: "order-7".into(),
                max: 32,
                begin: 0,
                end: i64::MAX,
                unique: false,
            };
            let h = svc.query_by_key(&me, q).await.unwrap();
            if h.records.len() == 3 {
                hits = Some(h);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(hits.is_some(), "the key index finds all three");
    });
}

#[test]
fn refusals_are_typed() {
    with_broker(|svc| async move {
        let me = Caller::internal();
        let r = svc.send(&me, send_req("a/b", "", b"x")).await;
        assert!(matches!(r, Err(Refusal::InvalidName(_))), "{:?}", r.err());
        let r = svc.pull(&me, pull_req("Nope", 0, 0)).await;
        assert!(matches!(r, Err(Refusal::TopicNotExist(_))));
        svc.send(&me, send_req("T2", "", b"x")).await.unwrap();
        let r = svc.pull(&me, pull_req("T2", 99, 0)).await;
        assert!(matches!(r, Err(Refusal::InvalidParameter(_))));
        let mut big = send_req("T2", "", b"x");
        big.queue_id = 1_000;
        assert!(matches!(
            svc.send(&me, big).await,
            Err(Refusal::InvalidParameter(_))
        ));
        let end = EndTransactionRequest {
            producer_group: "pg".into(),
            half_queue_offset: 0,
            half_offset: 0,
            decision: TransactionDecision::Commit,
            from_check: false,
            msg_id: String::new(),
        };
        let r = svc.end_transaction(&me, end).await;
        assert_eq!(
            r,
            Err(Refusal::Failed("the message is not a half message".into()))
        );
        let mut cfg = svc.topic_config(&me, "T2").unwrap();
        cfg.read_queue_nums = 0;
        assert!(matches!(
            svc.upsert_topic(&me, cfg).await,
            Err(Refusal::InvalidParameter(_))
        ));
        assert!(matches!(
            svc.topic_config(&me, "Gone"),
            Err(Refusal::TopicNotExist(_))
        ));
    });
}

fn consumer(group: &str, topic: &str) -> ConsumerData {
    ConsumerData {
        group_name: group.into(),
        consume_type: "CONSUME_PASSIVELY".into(),
        message_model: "CLUSTERING".into(),
        consume_from_where: "CONSUME_FROM_FIRST_OFFSET".into(),
        subscription_data_set: vec![SubscriptionData {
            topic: topic.into(),
            sub_string: "*".into(),
            ..Default::default()
        }],
        unit_mode: false,
    }
}

fn heartbeat(client: &str, conn: Arc<Recorder>) -> HeartbeatRequest {
    HeartbeatRequest {
        data: HeartbeatData {
            client_id: client.into(),
            consumer_data_set: vec![consumer("cg", "T3")],
            ..Default::default()
        },
        connection: conn,
        language: "RUST".into(),
        version: 479,
    }
}

#[test]
fn broker_to_client_calls_go_through_the_connection_trait() {
    with_broker(|svc| async move {
        let me = Caller::internal();
        let (a, b) = (Recorder::new(1), Recorder::new(2));
        svc.heartbeat(&me, heartbeat("client-a", a.clone()))
            .await
            .unwrap();
        // A first consumer creates the group's retry topic.
        assert!(svc.topic_config(&me, "%RETRY%cg").is_ok());
        svc.heartbeat(&me, heartbeat("client-b", b.clone()))
            .await
            .unwrap();
        assert_eq!(
            svc.consumer_ids(&me, "cg").await.unwrap(),
            vec!["client-a".to_owned(), "client-b".to_owned()]
        );
        // Both members heard that the group changed when b joined.
        assert!(
            a.calls().contains(&"notify cg".to_owned()),
            "{:?}",
            a.calls()
        );
        assert!(b.calls().contains(&"notify cg".to_owned()));

        let info = svc
            .consumer_running_info(&me, "cg", "client-b", false)
            .await
            .unwrap();
        assert_eq!(&info[..], b"{\"properties\":{}}");
        assert!(b.calls().contains(&"running client-b".to_owned()));

        let sent = svc
            .send(&me, send_req("T3", "", b"direct-me"))
            .await
            .unwrap();
        let phys = sent.results[0].phys_offset;
        let r = svc
            .consume_message_directly(&me, "cg", "client-a", phys, "MID")
            .await;
        assert!(matches!(r, Err(Refusal::ClientTimeout(_))));
        assert!(
            a.calls().contains(&"direct MID direct-me".to_owned()),
            "{:?}",
            a.calls()
        );

        let reset = ResetOffsetRequest {
            topic: "T3".into(),
            group: "cg".into(),
            timestamp: -1,
            force: true,
            queue_id: None,
            offset: None,
        };
        let table = svc.reset_offset(&me, reset).await.unwrap();
        assert_eq!(table[0].1, 1, "reset to the end of queue 0");
        assert!(
            a.calls().iter().any(|c| c.starts_with("reset T3 [1")),
            "{:?}",
            a.calls()
        );

        let u = UnregisterRequest {
            client_id: "client-b".into(),
            producer_group: None,
            consumer_group: Some("cg".into()),
        };
        svc.unregister(&me, u).await.unwrap();
        assert_eq!(
            svc.consumer_ids(&me, "cg").await.unwrap(),
            vec!["client-a".to_owned()]
        );
        assert!(matches!(
            svc.consumer_running_info(&me, "cg", "client-b", false)
                .await,
            Err(Refusal::Failed(_))
        ));
    });
}

#[test]
fn subscription_groups_and_topics_admin() {
    with_broker(|svc| async move {
        let me = Caller::internal();
        let g = crate::actors::broker::groups::SubscriptionGroupConfig {
            group_name: "admin_g".into(),
            retry_max_times: 3,
            ..Default::default()
        };
        svc.upsert_group(&me, g).await.unwrap();
        let all = svc.all_groups(&me).await.unwrap();
        assert_eq!(all.subscription_group_table["admin_g"].retry_max_times, 3);
        svc.delete_group(&me, "admin_g").await.unwrap();
        let all = svc.all_groups(&me).await.unwrap();
        assert!(!all.subscription_group_table.contains_key("admin_g"));

        let cfg = crate::wire::bodies::TopicConfig::new("AdminT", 3, 6);
        svc.upsert_topic(&me, cfg).await.unwrap();
        assert_eq!(svc.topic_config(&me, "AdminT").unwrap().write_queue_nums, 3);
        assert!(svc
            .all_topics(&me)
            .topic_config_table
            .contains_key("AdminT"));
        svc.delete_topic(&me, "AdminT").await.unwrap();
        assert!(svc.topic_config(&me, "AdminT").is_err());
    });
}
