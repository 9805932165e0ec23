//! The broker's role over real sockets: a SLAVE refuses sends, send-backs
//! and END_TRANSACTION as the Java broker does, and pulls unless
//! `slaveReadEnable`; the private ACTORMQ_CHANGE_ROLE trigger makes it a
//! master (sends accepted, delay levels delivered, transactions resolved,
//! registered as brokerId 0) and a slave again (sends refused, delay
//! delivery stopped until it is a master once more). `-p/--print-config`
//! spells the role and flush type as RocketMQ does.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use actormq::config::BrokerRole;
use actormq::wire::bodies::ClusterInfo;
use actormq::wire::codes::{request, response};
use actormq::wire::headers::CommandHeader;
use actormq::wire::json::from_fastjson;
use actormq::wire::RemotingCommand;
use common::*;

/// Java's answer when a processor rejects a request (`rejectRequest`).
const REJECT: &str = "[REJECTREQUEST]system busy, start flow control for a while";

fn slave_opts(slave_read: bool) -> Opts {
    Opts::default().broker(move |c| {
        c.broker_role = BrokerRole::Slave;
        c.broker_id = 1;
        c.slave_read_enable = slave_read;
        c.fault_injection_enable = true;
        c.message_delay_level = "1s 4s".into();
    })
}

fn master_opts(slave_read: bool) -> Opts {
    Opts::default().broker(move |c| {
        c.slave_read_enable = slave_read;
        c.fault_injection_enable = true;
        c.message_delay_level = "1s 4s".into();
    })
}

async fn change_role(b: &str, role: &str, broker_id: Option<i64>) -> RemotingCommand {
    let id = broker_id.map(|i| i.to_string());
    let mut fields = vec![("role", role), ("masterAddr", "127.0.0.1:1")];
    if let Some(id) = &id {
        fields.push(("brokerId", id));
    }
    call(
        &client(),
        b,
        request::ACTORMQ_CHANGE_ROLE,
        ext(&fields),
        None,
    )
    .await
}

async fn become_role(b: &str, role: &str, broker_id: Option<i64>) {
    let r = change_role(b, role, broker_id).await;
    assert_eq!(
        r.code,
        response::SUCCESS,
        "change to {role}: {:?}",
        r.remark
    );
    assert_eq!(r.ext.get("brokerRole"), Some(role));
}

async fn runtime_info(b: &str) -> serde_json::Value {
    let r = call(
        &client(),
        b,
        request::GET_BROKER_RUNTIME_INFO,
        Default::default(),
        None,
    )
    .await;
    assert_eq!(r.code, response::SUCCESS);
    serde_json::from_slice(&r.body_bytes()).unwrap()
}

async fn broker_active(b: &str) -> String {
    runtime_info(b).await["table"]["brokerActive"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn broker_config(b: &str) -> String {
    let r = call(
        &client(),
        b,
        request::GET_BROKER_CONFIG,
        Default::default(),
        None,
    )
    .await;
    String::from_utf8(r.body_bytes().to_vec()).unwrap()
}

/// The ids the name server lists for the broker set `name`.
async fn registered_ids(ns: &str, name: &str) -> BTreeMap<i64, String> {
    let r = call(
        &client(),
        ns,
        request::GET_BROKER_CLUSTER_INFO,
        Default::default(),
        None,
    )
    .await;
    let info: ClusterInfo = from_fastjson(&r.body_bytes()).expect("ClusterInfo");
    info.broker_addr_table
        .get(name)
        .map(|bd| bd.broker_addrs.clone())
        .unwrap_or_default()
}

/// Waits until the name server lists exactly `id` → `addr` for `name`.
async fn wait_registered(ns: &str, name: &str, id: i64, addr: &str) {
    let want: BTreeMap<i64, String> = [(id, addr.to_owned())].into();
    let got = eventually(Duration::from_secs(5), || async {
        let ids = registered_ids(ns, name).await;
        (ids == want).then_some(ids)
    })
    .await;
    assert!(
        got.is_some(),
        "name server lists {:?}, expected {want:?}",
        registered_ids(ns, name).await
    );
}

async fn assert_send_refused(b: &str, topic: &str) {
    let r = send_raw(&client(), b, topic, 0, &Msg::new("refused")).await;
    assert_eq!(r.code, response::SYSTEM_BUSY, "{:?}", r.remark);
    assert_eq!(r.remark.as_deref(), Some(REJECT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_refuses_writes_end_transaction_and_pulls() {
    let srv = TestServer::start(slave_opts(false));
    let c = client();
    let b = srv.broker();
    // Topic administration stays open on a slave (Java's AdminBrokerProcessor).
    create_topic(&c, b, "RoleT", 1).await;

    assert_send_refused(b, "RoleT").await;
    let batch = call(
        &c,
        b,
        request::SEND_BATCH_MESSAGE,
        send_header("RoleT", 0, "", true).to_v2().to_ext(),
        Some(bytes::Bytes::from_static(b"x")),
    )
    .await;
    assert_eq!(batch.code, response::SYSTEM_BUSY);

    let back = send_back(&c, b, "role_cg", 0, 1, None).await;
    assert_eq!(back.code, response::SYSTEM_BUSY, "{:?}", back.remark);
    assert_eq!(back.remark.as_deref(), Some(REJECT));

    let end = c
        .invoke(
            b,
            end_transaction_cmd("role_pg", 0, 0, 8, "U1", false),
            CALL,
        )
        .await
        .unwrap();
    assert_eq!(end.code, response::SLAVE_NOT_AVAILABLE, "{:?}", end.remark);
    assert_eq!(end.remark, None);

    let pull = pull_raw(&c, b, "RoleT", 0, 0, 32, None).await;
    assert_eq!(pull.code, response::SYSTEM_BUSY, "{:?}", pull.remark);
    assert_eq!(pull.remark.as_deref(), Some(REJECT));

    // The role is reported: no master-only service runs, the configuration
    // says SLAVE, and the name server lists the broker under id 1.
    assert_eq!(broker_active(b).await, "false");
    assert!(broker_config(b).await.contains("brokerRole=SLAVE\n"));
    wait_registered(srv.namesrv(), &srv.broker_name, 1, b).await;

    // Bad role changes are refused and change nothing.
    for (role, id) in [
        ("LEADER", None),
        ("SLAVE", Some(0)),
        ("SYNC_MASTER", Some(2)),
    ] {
        let r = change_role(b, role, id).await;
        assert_eq!(r.code, response::INVALID_PARAMETER, "{role} {id:?}");
    }
    assert_send_refused(b, "RoleT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_trigger_needs_fault_injection() {
    let srv = TestServer::start(Opts::default());
    let r = change_role(srv.broker(), "SLAVE", Some(1)).await;
    assert_eq!(r.code, response::REQUEST_CODE_NOT_SUPPORTED);
    send_ok(
        &client(),
        srv.broker(),
        "RoleN",
        0,
        &Msg::new("still a master"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_serves_pulls_only_with_slave_read_enable() {
    for slave_read in [true, false] {
        let srv = TestServer::start(master_opts(slave_read));
        let c = client();
        let b = srv.broker();
        create_topic(&c, b, "ReadT", 1).await;
        send_ok(&c, b, "ReadT", 0, &Msg::new("kept")).await;
        become_role(b, "SLAVE", Some(2)).await;
        assert_send_refused(b, "ReadT").await;
        let r = pull_raw(&c, b, "ReadT", 0, 0, 32, None).await;
        if slave_read {
            assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
            let got = decode_checked(&r.body_bytes());
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].body.as_ref(), b"kept");
        } else {
            assert_eq!(r.code, response::SYSTEM_BUSY, "{:?}", r.remark);
            assert_eq!(r.remark.as_deref(), Some(REJECT));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_roles_starts_and_stops_the_master_services() {
    let srv = TestServer::start(slave_opts(true));
    let c = client();
    let b = srv.broker();
    let ns = srv.namesrv();
    create_topic(&c, b, "SwitchT", 1).await;
    assert_send_refused(b, "SwitchT").await;

    // Slave → master: sends are accepted, and a delay-level message sent
    // now is delivered, so the schedule service runs.
    become_role(b, "ASYNC_MASTER", None).await;
    assert_eq!(broker_active(b).await, "true");
    assert!(broker_config(b).await.contains("brokerRole=ASYNC_MASTER\n"));
    wait_registered(ns, &srv.broker_name, 0, b).await;
    send_ok(&c, b, "SwitchT", 0, &Msg::new("plain")).await;
    send_ok(
        &c,
        b,
        "SwitchT",
        0,
        &Msg::new("delayed-1").prop("DELAY", "1"),
    )
    .await;
    let got = wait_messages(&c, b, "SwitchT", 0, 2, Duration::from_secs(10)).await;
    let bodies: Vec<&[u8]> = got.iter().map(|m| m.body.as_ref()).collect();
    assert_eq!(bodies, [&b"plain"[..], b"delayed-1"]);

    // The transaction service runs too: a half message commits.
    let half = send_half_message(&c, b, "SwitchT", "half", "role_pg").await;
    let end = c
        .invoke(b, commit_cmd(&half, "role_pg"), CALL)
        .await
        .unwrap();
    assert_eq!(end.code, response::SUCCESS, "{:?}", end.remark);
    let got = wait_messages(&c, b, "SwitchT", 0, 3, Duration::from_secs(10)).await;
    assert_eq!(got.last().map(|m| m.body.as_ref()), Some(&b"half"[..]));

    // Master → slave with a delay-level message pending (level 2, 4 s):
    // sends are refused again and the message is not delivered while the
    // broker is a slave, well past its due time...
    let sent = std::time::Instant::now();
    let delayed = Msg::new("delayed-2").prop("DELAY", "2");
    send_ok(&c, b, "SwitchT", 0, &delayed).await;
    become_role(b, "SLAVE", None).await;
    // Only meaningful if the switch finished before the message was due
    // (it takes milliseconds; a machine stalled for seconds proves nothing).
    let switched_before_due = sent.elapsed() < Duration::from_secs(3);
    assert_send_refused(b, "SwitchT").await;
    assert_eq!(broker_active(b).await, "false");
    wait_registered(ns, &srv.broker_name, 1, b).await;
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(sent.elapsed())).await;
    let got = pull_all(&c, b, "SwitchT", 0).await;
    if switched_before_due {
        assert_eq!(got.len(), 3, "delivered while a slave: {:?}", got.last());
    } else {
        eprintln!("the switch to slave outlasted the delay; absence not checked");
    }

    // ...and is delivered, once, when the broker is a master again.
    become_role(b, "SYNC_MASTER", None).await;
    let got = wait_messages(&c, b, "SwitchT", 0, 4, Duration::from_secs(10)).await;
    let bodies: Vec<&[u8]> = got.iter().map(|m| m.body.as_ref()).collect();
    assert_eq!(bodies, [&b"plain"[..], b"delayed-1", b"half", b"delayed-2"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pull_all(&c, b, "SwitchT", 0).await.len(), 4);
}

/// `actormq broker -c <file> -p`: role and flush type read in any case,
/// printed in RocketMQ's spelling; a bad value names its key.
#[test]
fn print_config_spells_enums_as_rocketmq() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let conf = dir.path().join("broker.conf");
        std::fs::write(&conf, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_actormq"))
            .args(["broker", "-c", conf.to_str().unwrap(), "-p"])
            .output()
            .expect("run actormq")
    };
    let out = run("brokerRole = slave\nbrokerId=1\nflushDiskType=sync_flush\n");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "brokerRole=SLAVE\n",
        "brokerId=1\n",
        "flushDiskType=SYNC_FLUSH\n",
        "slaveReadEnable=false\n",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    let out = run("brokerRole=PRIMARY\n");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("brokerRole") && err.contains("SYNC_MASTER"),
        "{err}"
    );
    let out = run("brokerRole=SLAVE\nbrokerId=0\n");
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("brokerId"));
}
