//! `actormq cluster`, black-box with the real binary: a supervisor runs a
//! name server, a SYNC_MASTER and its SLAVE from a TOML file; a message
//! acknowledged by the master is pulled from the slave; a slave killed with
//! `kill -9` is restarted (restarts = 1 in `cluster status`) and serves
//! again; SIGTERM stops the brokers before the name server, leaves no
//! process behind and exits 0. Also: bad files are refused with clear
//! errors, `status` says when no supervisor runs, and children die with a
//! supervisor killed by SIGKILL (`PR_SET_PDEATHSIG`).

mod cluster_support;
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use actormq::wire::codes::response;
use cluster_support::*;
use common::*;

const TOPIC: &str = "ClusterTopic";

fn cluster_toml(dir: &Path, ns: u16, b0: [u16; 2], b1: [u16; 2]) -> String {
    format!(
        r#"[cluster]
name = "TestCluster"
dir = "{dir}"
logDir = "logs"
stopGraceSecs = 20

[[namesrv]]
name = "ns1"
port = {ns}

[[broker]]
name = "b0"
listenPort = {b0p}
haListenPort = {b0h}
brokerName = "broker-a"
brokerId = 0
brokerRole = "SYNC_MASTER"
syncFlushTimeout = 3000
{SMALL_STORE}
[[broker]]
name = "b1"
listenPort = {b1p}
haListenPort = {b1h}
brokerName = "broker-a"
brokerId = 1
brokerRole = "SLAVE"
slaveReadEnable = true
# No registerBrokerIntervalMs: a slave that registered before its master
# registers every second until it has the master's HA address.
{SMALL_STORE}"#,
        dir = dir.join("c").display(),
        b0p = b0[0],
        b0h = b0[1],
        b1p = b1[0],
        b1h = b1[1],
    )
}

/// Sends `body` to the master until a SYNC_MASTER SUCCESS (the slave has
/// it), then waits until the slave serves it.
async fn replicate_one(master: &str, slave: &str, body: &str) {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = send_raw(&c, master, TOPIC, 0, &Msg::new(body)).await;
        if r.code == response::SUCCESS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the master never acknowledged {body}: {} {:?}",
            r.code,
            r.remark
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let found = eventually(Duration::from_secs(20), || {
        let c = &c;
        async move {
            if topic_config(c, slave, TOPIC).await.code != response::SUCCESS {
                return None;
            }
            let msgs = pull_all(c, slave, TOPIC, 0).await;
            msgs.iter()
                .any(|m| &m.body[..] == body.as_bytes())
                .then_some(())
        }
    })
    .await;
    assert!(found.is_some(), "the slave never served {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_master_slave_cluster_replicates_restarts_and_stops_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (ns, b0, b0h, b1, b1h) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let mut sup = Supervisor::start(
        tmp.path(),
        &cluster_toml(tmp.path(), ns, [b0, b0h], [b1, b1h]),
    );
    sup.wait_running(&["ns1", "b0", "b1"], Duration::from_secs(30));
    let (master, slave) = (format!("127.0.0.1:{b0}"), format!("127.0.0.1:{b1}"));

    // 1. A message the master acknowledged is pulled from the slave.
    create_topic(&client(), &master, TOPIC, 1).await;
    replicate_one(&master, &slave, "before-the-crash").await;
    let (code, text) = sup.status_cmd();
    assert_eq!(code, 0, "{text}");
    for (name, role) in [("ns1", "namesrv"), ("b0", "SYNC_MASTER"), ("b1", "SLAVE")] {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1], sup.pid(name).unwrap().to_string(), "{text}");
        assert_eq!(cols[2], role, "{text}");
        assert_eq!(cols[4], "running", "{text}");
        assert_eq!(cols[6], "0", "restarts: {text}");
    }
    assert!(text.contains(&format!("{b1},{b1h}")), "ports: {text}");

    // 2. kill -9 of the slave: restarted, restarts = 1, serving again.
    let old = sup.pid("b1").unwrap();
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    let restarted = wait_until(Duration::from_secs(30), || {
        sup.child_status("b1").is_some_and(|c| {
            c["restarts"] == 1 && c["state"] == "running" && c["pid"].as_u64() != Some(old as u64)
        })
    });
    assert!(
        restarted,
        "b1 not restarted: {:?}\n{}",
        sup.status(),
        sup.output()
    );
    assert!(!alive(old), "the killed slave is gone");
    assert_eq!(sup.child_status("b1").unwrap()["lastExit"], "signal 9");
    sup.wait_running(&["b1"], Duration::from_secs(30));
    let (_, text) = sup.status_cmd();
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("b1 "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[6], "1", "restarts after kill -9: {text}");
    assert_eq!(sup.child_status("b0").unwrap()["restarts"], 0);
    replicate_one(&master, &slave, "after-the-restart").await;
    let on_slave = pull_all(&client(), &slave, TOPIC, 0).await;
    assert!(on_slave.iter().any(|m| &m.body[..] == b"before-the-crash"));

    // 3. SIGTERM: brokers stop before the name server, nothing is left.
    let pids = sup.all_pids();
    assert_eq!(pids.len(), 3);
    unsafe { libc::kill(sup.child.id() as i32, libc::SIGTERM) };
    let mut code = None;
    wait_until(Duration::from_secs(60), || {
        code = sup.child.try_wait().unwrap();
        code.is_some()
    });
    let out = sup.output();
    let code = code.unwrap_or_else(|| panic!("the supervisor did not exit:\n{out}"));
    assert_eq!(code.code(), Some(0), "{out}");
    for p in &pids {
        assert!(!alive(*p), "child {p} outlived the supervisor");
    }
    let at = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in the output:\n{out}"))
    };
    let ns_stop = at("[cluster] stopping namesrv ns1");
    assert!(at("[cluster] broker b0 stopped") < ns_stop, "{out}");
    assert!(at("[cluster] broker b1 stopped") < ns_stop, "{out}");
    assert!(ns_stop < at("[cluster] namesrv ns1 stopped"), "{out}");
    // Children's lines are relayed with their names, and kept in logDir.
    assert!(out.contains("[b1] The broker[broker-a"), "{out}");
    let b0_log = std::fs::read_to_string(tmp.path().join("c/logs/b0.log")).unwrap();
    assert!(b0_log.contains("The broker[broker-a"), "{b0_log}");
    assert_eq!(sup.status().unwrap()["state"], "stopped");
    let (code, text) = sup.status_cmd();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not running"), "{text}");
}

#[test]
fn children_die_with_a_supervisor_killed_by_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let (ns, b0) = (free_port(), free_port());
    let toml = format!(
        "[cluster]\ndir = \"{}\"\n[[namesrv]]\nname = \"ns1\"\nport = {ns}\n\
         [[broker]]\nname = \"b0\"\nlistenPort = {b0}\nhaListenPort = 0\n{SMALL_STORE}",
        tmp.path().join("c").display()
    );
    let mut sup = Supervisor::start(tmp.path(), &toml);
    sup.wait_running(&["ns1", "b0"], Duration::from_secs(30));
    let pids = sup.all_pids();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(*p)));
    sup.child.kill().unwrap();
    sup.child.wait().unwrap();
    let gone = wait_until(Duration::from_secs(10), || pids.iter().all(|p| !alive(*p)));
    assert!(gone, "children {pids:?} outlived a SIGKILLed supervisor");
}

#[test]
fn bad_files_are_refused_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let head = format!("[cluster]\ndir = \"{}\"\n", dir.display());
    let cases = [
        (
            "[[namesrv]]\nname = \"n\"\nport = 30013\n[[proxy]]\nname = \"p\"\ngrpcServerPort = true\n",
            "not a valid rmq-proxy.json",
        ),
        ("[[nameserver]]\nname = \"n\"\n", "unknown kind"),
        (
            "[[namesrv]]\nname = \"x\"\nport = 30001\n[[broker]]\nname = \"x\"\nlistenPort = 30011\n",
            "duplicate name",
        ),
        (
            "[[namesrv]]\nname = \"n\"\nport = 30012\n[[broker]]\nname = \"b\"\nlistenPort = 30011\n",
            "port 30012 is already used by n",
        ),
        (
            "[[broker]]\nname = \"b\"\nbrokerRole = \"LEADER\"\n",
            "expected ASYNC_MASTER, SYNC_MASTER or SLAVE",
        ),
        ("[[broker]]\nname = \"b\"\nlistenPort = [1]\n", "must be a string, number or boolean"),
        ("[[broker]\n", "not a valid TOML file"),
    ];
    for (body, want) in cases {
        let file = tmp.path().join("bad.toml");
        std::fs::write(&file, format!("{head}{body}")).unwrap();
        let o = Command::new(BIN)
            .args(["cluster", "-c"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(want), "{body}: want `{want}` in: {err}");
        assert!(err.contains("bad.toml"), "names the file: {err}");
    }
    assert!(
        !dir.exists(),
        "a refused file starts nothing and writes nothing"
    );
    // No supervisor ever ran here.
    let o = Command::new(BIN)
        .args(["cluster", "status", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("not running"));
}

#[test]
fn the_example_files_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let s = actormq::cluster::ClusterSpec::load(&p).unwrap_or_else(|e| panic!("{e}"));
            let roles: Vec<&str> = s.children.iter().map(|c| c.role.as_str()).collect();
            assert!(roles.contains(&"namesrv"), "{}: {roles:?}", p.display());
            seen += 1;
        }
    }
    assert!(seen >= 1, "config/*.toml examples");
    let two = actormq::cluster::ClusterSpec::load(&dir.join("cluster-2m.toml")).unwrap();
    let roles: Vec<&str> = two.children.iter().map(|c| c.role.as_str()).collect();
    assert_eq!(roles, ["namesrv", "SYNC_MASTER", "SLAVE"]);
    let proxy = actormq::cluster::ClusterSpec::load(&dir.join("cluster-proxy.toml")).unwrap();
    let roles: Vec<&str> = proxy.children.iter().map(|c| c.role.as_str()).collect();
    assert_eq!(roles, ["namesrv", "ASYNC_MASTER", "proxy"]);
    assert_eq!(proxy.children[2].props["namesrvAddr"], "127.0.0.1:9876");
    let four = actormq::cluster::ClusterSpec::load(&dir.join("cluster-2m2s-async.toml")).unwrap();
    let roles: Vec<&str> = four.children.iter().map(|c| c.role.as_str()).collect();
    assert_eq!(
        roles,
        ["namesrv", "ASYNC_MASTER", "SLAVE", "ASYNC_MASTER", "SLAVE"]
    );
}

#[test]
fn a_crash_looping_child_is_restarted_with_a_doubling_backoff_until_it_comes_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (ns, b0) = (free_port(), free_port());
    // The broker's port is taken: each start fails (exit 2) until it is freed.
    let blocker = std::net::TcpListener::bind(("0.0.0.0", b0)).unwrap();
    let toml = format!(
        "[cluster]\ndir = \"{}\"\n[[namesrv]]\nname = \"ns1\"\nport = {ns}\n\
         [[broker]]\nname = \"b0\"\nlistenPort = {b0}\nhaListenPort = 0\n{SMALL_STORE}",
        tmp.path().join("c").display()
    );
    let sup = Supervisor::start(tmp.path(), &toml);
    // (restarts so far, scheduled delay in ms) of each wait seen.
    let mut waits: Vec<(u64, u64)> = Vec::new();
    let seen = wait_until(Duration::from_secs(30), || {
        if let Some(c) = sup.child_status("b0") {
            if c["state"] == "restarting" {
                let st = sup.status().unwrap();
                let gap = c["nextStartMs"].as_u64().unwrap() - st["updatedMs"].as_u64().unwrap();
                let r = c["restarts"].as_u64().unwrap();
                if waits.last().map(|w| w.0) != Some(r) {
                    assert_eq!(c["lastExit"], "exit 2", "{c}");
                    waits.push((r, gap));
                }
            }
        }
        waits.len() >= 3
    });
    assert!(seen, "waits {waits:?}; output:\n{}", sup.output());
    // Delays of 1 s, 2 s, 4 s as scheduled (the status is written right
    // after the restart is scheduled, so the gap is the delay).
    let gaps: Vec<u64> = waits.iter().map(|w| w.1).collect();
    for (i, (r, gap)) in waits.iter().enumerate() {
        let want = 1000u64 << r;
        assert!(*gap <= want && *gap + 500 >= want, "wait {i}: {gaps:?}");
    }
    assert_eq!(waits[0].0, 0, "{waits:?}");
    // Freed, the broker comes up at its next attempt and stays up.
    drop(blocker);
    sup.wait_running(&["b0"], Duration::from_secs(30));
    let r = sup.child_status("b0").unwrap()["restarts"]
        .as_u64()
        .unwrap();
    assert!(r >= 3, "restarts {r}");
    assert!(sup
        .output()
        .contains("[cluster] b0 exited (exit 2); restarting in 2 s"));
}

#[test]
fn a_broker_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let (ns, b0) = (free_port(), free_port());
    let toml = format!(
        "[cluster]\ndir = \"{}\"\nstopGraceSecs = 1\n[[namesrv]]\nname = \"ns1\"\nport = {ns}\n\
         [[broker]]\nname = \"b0\"\nlistenPort = {b0}\nhaListenPort = 0\n{SMALL_STORE}",
        tmp.path().join("c").display()
    );
    let mut sup = Supervisor::start(tmp.path(), &toml);
    sup.wait_running(&["ns1", "b0"], Duration::from_secs(30));
    let pids = sup.all_pids();
    // A stopped process leaves SIGTERM pending; only SIGKILL ends it.
    let b0_pid = sup.pid("b0").unwrap();
    unsafe { libc::kill(b0_pid as i32, libc::SIGSTOP) };
    unsafe { libc::kill(sup.child.id() as i32, libc::SIGTERM) };
    let exited = wait_until(Duration::from_secs(30), || {
        sup.child.try_wait().unwrap().is_some()
    });
    let out = sup.output();
    assert!(exited, "the supervisor did not exit:\n{out}");
    assert_eq!(sup.child.wait().unwrap().code(), Some(0), "{out}");
    let killed = out
        .find("[cluster] b0 did not stop in time: SIGKILL")
        .unwrap_or_else(|| panic!("{out}"));
    let stopped = out
        .find("[cluster] broker b0 stopped (signal 9)")
        .unwrap_or_else(|| panic!("{out}"));
    let ns_stop = out
        .find("[cluster] stopping namesrv ns1")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(killed < stopped && stopped < ns_stop, "{out}");
    for p in pids {
        assert!(!alive(p), "child {p} left behind");
    }
}
