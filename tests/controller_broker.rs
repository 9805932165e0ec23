//! Brokers in controller mode (`enableControllerMode=true`), as processes
//! with a controller and a name server: each gets its id through the
//! broker-id protocol (kept in `brokerIdentity`), the first to nominate
//! itself becomes master and registers as id 0 at the name server, the
//! other follows as a slave under its controller id; after `kill -9` of the
//! master the controller elects the survivor (unclean election, so the
//! survivor need not have caught up first), which takes id 0 at
//! the name server; the old master restarted keeps its id and joins as a
//! slave.

mod common;
mod controller_support;

use std::time::Duration;

use actormq::wire::bodies::ClusterInfo;
use actormq::wire::codes::{request as rq, response as rs};
use actormq::wire::json::from_fastjson;
use actormq::wire::RemotingCommand;
use common::{client, eventually, free_port, wait_port, ChildServer};
use controller_support::*;

type Node = BrokerNode;

async fn addrs_at_namesrv(
    c: &actormq::client::remoting::RemotingClient,
    ns: &str,
) -> Vec<(i64, String)> {
    let r = c
        .invoke(
            ns,
            RemotingCommand::request(rq::GET_BROKER_CLUSTER_INFO),
            CALL,
        )
        .await
        .unwrap();
    let info: ClusterInfo = from_fastjson(&r.body_bytes()).unwrap_or_default();
    info.broker_addr_table
        .get("broker-a")
        .map(|b| {
            b.broker_addrs
                .iter()
                .map(|(id, a)| (*id, a.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// How many replicas of broker-a the controller hears (GET_SYNC_STATE_DATA).
async fn alive_at_controller(c: &actormq::client::remoting::RemotingClient, ctl: &str) -> usize {
    let cmd = RemotingCommand::request(rq::CONTROLLER_GET_SYNC_STATE_DATA)
        .with_body(br#"["broker-a"]"#.to_vec());
    let Ok(r) = c.invoke(ctl, cmd, CALL).await else {
        return 0;
    };
    let info: actormq::wire::controller::BrokerReplicasInfo =
        from_fastjson(&r.body_bytes()).unwrap_or_default();
    info.replicas_info_table
        .values()
        .flat_map(|s| s.in_sync_replicas.iter().chain(&s.not_in_sync_replicas))
        .filter(|r| r.alive)
        .count()
}

/// The name server's view when `master` (a controller id) is master: it
/// at id 0, the other under its controller id.
fn expected_routes(nodes: &[(i64, Node); 2], master: i64) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = nodes
        .iter()
        .map(|(id, n)| (if *id == master { 0 } else { *id }, n.addr.clone()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_take_ids_and_roles_from_the_controller_and_fail_over() {
    let g = Group::start(1, Mode::Standalone, "enableElectUncleanMaster=true");
    let c = client();
    let ctl = g.addrs[g.leader(&c, Duration::from_secs(20)).await].clone();
    let ns_port = free_port();
    let ns = format!("127.0.0.1:{ns_port}");
    let dir = tempfile::tempdir().unwrap();
    let _ns = ChildServer::spawn(
        "namesrv",
        &["namesrv", "--port", &ns_port.to_string()],
        &dir.path().join("ns.log"),
    );
    assert!(wait_port(&ns, Duration::from_secs(20)));
    let a = Node::new(dir.path(), 0, &ns, &g.addrs.join(";"), "");
    // The first broker nominates itself before the second exists.
    wait_master(&g, &c, "broker-a", 1, 1, Duration::from_secs(15)).await;
    let b = Node::new(dir.path(), 1, &ns, &g.addrs.join(";"), "");
    assert_eq!(a.identity().as_deref(), Some("c#broker-a#1"));
    let mut nodes = [(1i64, a), (2i64, b)];
    // Routes follow the controller: its master at id 0, the other under
    // its controller id. (Under heavy load a heartbeat gap can make the
    // controller re-elect meanwhile, so the master is read, not assumed.)
    let (master, epoch) = eventually(Duration::from_secs(15), || async {
        let (_, h, _) = replica_info(&c, &ctl, "broker-a").await;
        let m = h.master_broker_id?;
        let want = expected_routes(&nodes, m);
        (nodes[1].1.identity().as_deref() == Some("c#broker-a#2")
            && addrs_at_namesrv(&c, &ns).await == want
            && alive_at_controller(&c, &ctl).await == 2)
            .then_some((m, h.master_epoch.unwrap_or_default()))
    })
    .await
    .unwrap_or_else(|| panic!("routes {:?}\n{}", "see the log", nodes[1].1.logs()));

    // The master dies: the other is elected and takes id 0.
    let (dead, alive) = if master == 1 { (0, 1) } else { (1, 0) };
    nodes[dead].1.proc.take().unwrap().kill9();
    let survivor = nodes[alive].0;
    let took = wait_master(
        &g,
        &c,
        "broker-a",
        survivor,
        epoch + 1,
        Duration::from_secs(20),
    )
    .await;
    let routed = eventually(Duration::from_secs(15), || async {
        (addrs_at_namesrv(&c, &ns).await == vec![(0, nodes[alive].1.addr.clone())]).then_some(())
    })
    .await;
    assert!(routed.is_some(), "{:?}", addrs_at_namesrv(&c, &ns).await);
    eprintln!("controller mode: new master elected {took:?} after kill -9");

    // The old master comes back with its id, as a slave.
    nodes[dead].1.start();
    let want = expected_routes(&nodes, survivor);
    let back = eventually(Duration::from_secs(15), || async {
        (addrs_at_namesrv(&c, &ns).await == want).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "{:?}\n{}",
        addrs_at_namesrv(&c, &ns).await,
        nodes[dead].1.logs()
    );
    let (code, h, _) = replica_info(&c, &ctl, "broker-a").await;
    assert_eq!(
        (code, h.master_broker_id, h.master_epoch),
        (rs::SUCCESS, Some(survivor), Some(epoch + 1))
    );
}
