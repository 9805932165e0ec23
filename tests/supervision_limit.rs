//! The restart limit: with `supervisorMaxRestarts=2`, a third failure of
//! one actor within the window is fatal. The `actormq` process (a child)
//! logs a clear fatal error, runs its graceful shutdown (the store's
//! `abort` marker is removed: a clean stop, not a half-dead process) and
//! exits with code 70; a restart on the same store serves every message
//! acknowledged before.

mod common;

use std::time::{Duration, Instant};

use actormq::wire::codes::{request, response};
use common::*;

fn conf(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let conf = dir.join("broker.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerClusterName=LimitCluster\nbrokerName=broker-limit\nbrokerIP1=127.0.0.1\n\
             mapedFileSizeCommitLog=65536\nregisterBrokerIntervalMs=1000\n\
             faultInjectionEnable=true\n{extra}"
        ),
    )
    .unwrap();
    conf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_restart_limit_the_process_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let c = client();
    let extra = "supervisorMaxRestarts=2\nsupervisorBackoffMs=10\nsupervisorBackoffMaxMs=50\n";
    let log = dir.path().join("run0.log");
    let (mut proc, b) = spawn_standalone(
        &store,
        &conf(dir.path(), extra),
        &log,
        Duration::from_secs(15),
    );
    create_topic(&c, &b, "LimitT", 1).await;
    let sent = send_ok(&c, &b, "LimitT", 0, &Msg::new("before-the-end")).await;

    // Two failures are restarted; the third is fatal.
    for _ in 0..3 {
        let r = c
            .invoke(
                &b,
                {
                    let mut cmd =
                        actormq::wire::RemotingCommand::request(request::ACTORMQ_INJECT_FAULT);
                    cmd.ext = ext(&[("target", "offsets"), ("kind", "panic")]);
                    cmd
                },
                CALL,
            )
            .await;
        if let Ok(r) = r {
            assert_eq!(r.code, response::SUCCESS, "inject: {:?}", r.remark);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = proc.child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            proc.kill9();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("process did not stop after the restart limit; log:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(70),
        "exit status {status:?}; log:\n{text}"
    );
    assert!(
        text.contains("FATAL") && text.contains("OffsetManager failed 3 times"),
        "no clear fatal error in the log:\n{text}"
    );
    assert!(text.contains("broker stopped"), "no graceful stop:\n{text}");
    assert!(
        !store.join("abort").exists(),
        "abort marker left: not a clean stop"
    );

    // Same store, default limits: everything acknowledged is there.
    let log1 = dir.path().join("run1.log");
    let (_proc, b) = spawn_standalone(
        &store,
        &conf(dir.path(), ""),
        &log1,
        Duration::from_secs(15),
    );
    let got = pull_all(&c, &b, "LimitT", 0).await;
    assert_eq!(got.len(), 1, "messages after the restart");
    assert_eq!(got[0].queue_offset, sent.queue_offset);
    assert_eq!(got[0].body.as_ref(), b"before-the-end");
}
