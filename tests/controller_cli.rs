//! `actormq admin` against a controller group, as an operator runs it:
//! getControllerMetaData, getSyncStateSet, electMaster (designated),
//! cleanBrokerMetadata, and the controller's GET/UPDATE_CONTROLLER_CONFIG.

mod common;
mod controller_support;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actormq::wire::codes::{request as rq, response as rs};
use actormq::wire::RemotingCommand;
use controller_support::*;

fn admin(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_actormq"))
        .arg("admin")
        .args(args)
        .output()
        .expect("run actormq admin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// GET_CONTROLLER_CONFIG of one node.
async fn config(c: &actormq::client::remoting::RemotingClient, addr: &str) -> String {
    let cmd = RemotingCommand::request(rq::GET_CONTROLLER_CONFIG);
    let r = c.invoke(addr, cmd, CALL).await.unwrap();
    String::from_utf8_lossy(&r.body_bytes()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_read_and_change_the_controller() {
    let g = Group::start(3, Mode::Standalone, "");
    let c = common::client();
    let l = g.leader(&c, Duration::from_secs(20)).await;
    let all = g.addrs.join(";");
    // Any node (here a follower first in the list) leads the tool to the leader.
    let follower = g.addrs[(l + 1) % 3].clone();
    let (ok, out) = admin(&["getControllerMetaData", "-a", &follower]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("ControllerLeaderAddress\t{}", g.addrs[l])),
        "{out}"
    );
    assert_eq!(out.matches("#Peer:").count(), 3, "{out}");

    let leader = g.addrs[l].clone();
    let pair = Pair::start(&g, [&c, &c], &leader, HEARTBEAT_TIMEOUT_MS).await;

    let (ok, out) = admin(&["getSyncStateSet", "-a", &follower, "-b", "broker-a"]);
    assert!(ok, "{out}");
    assert!(out.contains("#MasterBrokerId\t1"), "{out}");
    assert!(out.contains("#SyncStateSetEpoch\t2"), "{out}");
    assert_eq!(out.matches("InSyncReplica:").count(), 2, "{out}");

    // A designated election moves the master to 2.
    let (ok, out) = admin(&[
        "electMaster",
        "-a",
        &all,
        "-c",
        "c",
        "--bn",
        "broker-a",
        "-b",
        "2",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("#BrokerMasterAddr\t127.0.0.1:20002"), "{out}");
    assert!(out.contains("#MasterEpoch\t2"), "{out}");
    // An id that is not a candidate fails.
    let (ok, out) = admin(&["electMaster", "-a", &all, "--bn", "broker-a", "-b", "7"]);
    assert!(
        !ok && out.contains(&rs::CONTROLLER_ELECT_MASTER_FAILED.to_string()),
        "{out}"
    );

    // Living replicas are not cleaned unless asked.
    let clean_1 = [
        "cleanBrokerMetadata",
        "-a",
        &all,
        "-b",
        "broker-a",
        "--bi",
        "1",
    ];
    let (ok, out) = admin(&clean_1);
    assert!(
        !ok && out.contains(&rs::CONTROLLER_INVALID_CLEAN_BROKER_METADATA.to_string()),
        "{out}"
    );
    pair.beat_a.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (ok, out) = admin(&clean_1);
    assert!(ok, "{out}");
    let (_, out) = admin(&["getSyncStateSet", "-a", &all, "-b", "broker-a"]);
    assert_eq!(out.matches("Replica:").count(), 1, "{out}");

    // The addressed node's own config.
    assert!(config(&c, &leader)
        .await
        .contains("controllerDLegerGroup=test"));
    let up = |body: &str| {
        RemotingCommand::request(rq::UPDATE_CONTROLLER_CONFIG).with_body(body.as_bytes().to_vec())
    };
    let r = c
        .invoke(&leader, up("configStorePath=/tmp/x"), CALL)
        .await
        .unwrap();
    assert_eq!(r.code, rs::NO_PERMISSION);
    let r = c
        .invoke(&leader, up("enableElectUncleanMaster=true"), CALL)
        .await
        .unwrap();
    assert_eq!(r.code, rs::SUCCESS);
    assert!(config(&c, &leader)
        .await
        .contains("enableElectUncleanMaster=true"));
}
