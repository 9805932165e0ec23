//! The controller embedded in the name server (`enableControllerInNamesrv`):
//! three name servers each run a controller node; their own ports answer
//! the controller requests; they agree on a leader, followers refuse
//! writes, and a master whose heartbeats stop is replaced. The name
//! server keeps serving its own requests beside them.

mod common;
mod controller_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actormq::wire::codes::{request as rq, response as rs};
use actormq::wire::RemotingCommand;
use controller_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_servers_with_embedded_controllers_elect_and_fail_over() {
    let g = Group::start(3, Mode::InNamesrv, "");
    let c = common::client();
    let l = g.leader(&c, Duration::from_secs(20)).await;
    for f in (0..3).filter(|i| *i != l) {
        let (code, _) = Replica::next_id(&c, &g.addrs[f], "c", "broker-a").await;
        assert_eq!(code, rs::CONTROLLER_NOT_LEADER, "follower n{f}");
    }
    // Still a name server: cluster info answers.
    let r = c
        .invoke(
            &g.addrs[l],
            RemotingCommand::request(rq::GET_BROKER_CLUSTER_INFO),
            CALL,
        )
        .await
        .unwrap();
    assert_eq!(r.code, rs::SUCCESS);
    // Brokers reach the controller through the name server ports.
    let leader = g.addrs[l].clone();
    let pair = Pair::start(&g, [&c, &c], &leader, HEARTBEAT_TIMEOUT_MS).await;
    pair.beat_a.store(false, Ordering::Relaxed);
    let took = wait_master(&g, &c, "broker-a", 2, 2, Duration::from_secs(10)).await;
    eprintln!("embedded: master replaced {took:?} after its heartbeats stopped");
}
