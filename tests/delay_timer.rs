//! Delay levels and timer messages arrive no earlier than due and within
//! about a second after, also when the broker restarts during the wait.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use actormq::wire::now_ms;
use common::*;

fn opts(store: Option<&Path>) -> Opts {
    let o = Opts::default().broker(|c| c.message_delay_level = "1s 2s 3s".into());
    match store {
        Some(p) => o.store(p),
        None => o,
    }
}

/// Waits for `n` messages on T/0 and returns them with the elapsed time at
/// which the n-th arrived.
async fn arrivals(b: &str, topic: &str, n: usize, within: Duration) -> Vec<MessageExtAt> {
    let c = client();
    let start = Instant::now();
    let mut seen: Vec<MessageExtAt> = Vec::new();
    while start.elapsed() < within {
        let all = pull_all(&c, b, topic, 0).await;
        for m in all.into_iter().skip(seen.len()) {
            seen.push(MessageExtAt {
                at_ms: now_ms(),
                msg: m,
            });
        }
        if seen.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

struct MessageExtAt {
    at_ms: i64,
    msg: actormq::wire::message::MessageExt,
}

fn check_window(label: &str, due: i64, at: i64) {
    assert!(at >= due - 50, "{label}: arrived {} ms early", due - at);
    assert!(at <= due + 1200, "{label}: arrived {} ms late", at - due);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_levels_and_timers_arrive_on_time() {
    let srv = TestServer::start(opts(None));
    let c = client();
    let b = srv.broker();
    create_topic(&c, b, "DelayT", 1).await;
    let t0 = now_ms();
    send_ok(&c, b, "DelayT", 0, &Msg::new("lvl2").prop("DELAY", "2")).await;
    send_ok(&c, b, "DelayT", 0, &Msg::new("lvl1").prop("DELAY", "1")).await;
    let deliver_at = (t0 + 1500).to_string();
    send_ok(
        &c,
        b,
        "DelayT",
        0,
        &Msg::new("at").prop("TIMER_DELIVER_MS", &deliver_at),
    )
    .await;
    send_ok(
        &c,
        b,
        "DelayT",
        0,
        &Msg::new("ms").prop("TIMER_DELAY_MS", "2500"),
    )
    .await;
    send_ok(
        &c,
        b,
        "DelayT",
        0,
        &Msg::new("sec").prop("TIMER_DELAY_SEC", "1"),
    )
    .await;
    let legacy = (t0 + 3000).to_string();
    send_ok(
        &c,
        b,
        "DelayT",
        0,
        &Msg::new("legacy").prop("__STARTDELIVERTIME", &legacy),
    )
    .await;
    // DELAY wins over timer properties.
    send_ok(
        &c,
        b,
        "DelayT",
        0,
        &Msg::new("both")
            .prop("DELAY", "1")
            .prop("TIMER_DELAY_SEC", "30"),
    )
    .await;
    send_ok(&c, b, "DelayT", 0, &Msg::new("now").tags("x")).await;
    let got = arrivals(b, "DelayT", 8, Duration::from_secs(8)).await;
    assert_eq!(got.len(), 8, "not everything arrived");
    let due = |body: &str| match body {
        "now" => t0,
        "lvl1" | "sec" | "both" => t0 + 1000,
        "at" => t0 + 1500,
        "lvl2" => t0 + 2000,
        "ms" => t0 + 2500,
        "legacy" => t0 + 3000,
        other => panic!("unexpected {other}"),
    };
    for m in &got {
        let body = String::from_utf8_lossy(&m.msg.body).to_string();
        check_window(&body, due(&body), m.at_ms);
        for p in [
            "DELAY",
            "TIMER_DELAY_SEC",
            "TIMER_OUT_MS",
            "TIMER_DELIVER_MS",
        ] {
            assert_eq!(m.msg.property(p), None, "{body} kept {p}");
        }
    }
    assert_eq!(got[0].msg.property("TAGS"), Some("x"));
    // No duplicates later on.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(pull_all(&c, b, "DelayT", 0).await.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(opts(Some(dir.path())));
    let c = client();
    let b = srv.broker().to_owned();
    create_topic(&c, &b, "DelayR", 1).await;
    let t0 = now_ms();
    send_ok(&c, &b, "DelayR", 0, &Msg::new("early").prop("DELAY", "1")).await;
    send_ok(&c, &b, "DelayR", 0, &Msg::new("lvl3").prop("DELAY", "3")).await;
    send_ok(
        &c,
        &b,
        "DelayR",
        0,
        &Msg::new("timer").prop("TIMER_DELAY_MS", "3500"),
    )
    .await;
    // Let the level-1 message go out, then restart in the middle of the wait.
    let got = arrivals(&b, "DelayR", 1, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1);
    srv.stop();
    let srv = TestServer::start(opts(Some(dir.path())));
    let b = srv.broker().to_owned();
    let got = arrivals(&b, "DelayR", 3, Duration::from_secs(6)).await;
    let bodies: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.msg.body).to_string())
        .collect();
    assert_eq!(bodies, ["early", "lvl3", "timer"]);
    assert!(got[1].at_ms >= t0 + 3000 - 50, "lvl3 early");
    assert!(got[1].at_ms <= t0 + 3000 + 1500, "lvl3 late");
    assert!(got[2].at_ms >= t0 + 3500 - 50, "timer early");
    assert!(got[2].at_ms <= t0 + 3500 + 1500, "timer late");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        pull_all(&c, &b, "DelayR", 0).await.len(),
        3,
        "a delivery was repeated"
    );
}
