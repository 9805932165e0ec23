//! A slave that registered before its master finds the master's HA
//! address without waiting for its next registration: while it has none it
//! registers every second (`ha::MASTER_LOOKUP_INTERVAL`), whatever
//! `registerBrokerIntervalMs` says (30 s here, RocketMQ's default).

mod common;

use std::time::{Duration, Instant};

use actormq::config::BrokerRole;
use common::*;

const TOPIC: &str = "LateMaster";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_registered_before_its_master_follows_it_within_seconds() {
    let ns = TestServer::start(Opts {
        broker: false,
        ..Opts::default()
    });
    let addr = ns.namesrv().to_owned();
    let s = TestServer::start(Opts {
        namesrvs: 0,
        ..Opts::default().broker(move |c| {
            c.namesrv_addr = addr;
            c.broker_name = "late".into();
            c.broker_role = BrokerRole::Slave;
            c.broker_id = 1;
            c.slave_read_enable = true;
            c.register_broker_interval_ms = 30_000;
        })
    });
    // The slave's first registration finds no master.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let addr = ns.namesrv().to_owned();
    let m = TestServer::start(Opts {
        namesrvs: 0,
        ..Opts::default().broker(move |c| {
            c.namesrv_addr = addr;
            c.broker_name = "late".into();
            c.broker_role = BrokerRole::AsyncMaster;
            c.ha.listen_port = Some(0);
            c.register_broker_interval_ms = 30_000;
        })
    });
    let started = Instant::now();
    let c = client();
    create_topic(&c, m.broker(), TOPIC, 1).await;
    send_ok(&c, m.broker(), TOPIC, 0, &Msg::new("first")).await;
    // Well inside the slave's 30 s registration interval.
    let got = eventually(Duration::from_secs(10), || async {
        let max = queue_offset_or_none(&c, s.broker()).await?;
        (max == 1).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "the slave did not find its master within 10 s"
    );
    eprintln!(
        "the slave followed its late master after {:?}",
        started.elapsed()
    );
    let msgs = pull_all(&c, s.broker(), TOPIC, 0).await;
    assert_eq!(&msgs[0].body[..], b"first");
    m.stop();
    s.stop();
    ns.stop();
}

/// GET_MAX_OFFSET of queue 0 of `TOPIC`; None while the topic is unknown.
async fn queue_offset_or_none(c: &actormq::client::RemotingClient, b: &str) -> Option<i64> {
    use actormq::wire::codes::{request, response};
    use actormq::wire::headers::offset::{OffsetResponseHeader, QueueRequestHeader};
    use actormq::wire::headers::CommandHeader;
    let h = QueueRequestHeader {
        topic: TOPIC.into(),
        queue_id: 0,
        committed: None,
    };
    let r = call(c, b, request::GET_MAX_OFFSET, h.to_ext(), None).await;
    (r.code == response::SUCCESS)
        .then(|| OffsetResponseHeader::from_ext(&r.ext).ok())?
        .map(|h| h.offset)
}
