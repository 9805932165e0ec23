//! Delay levels and timer messages arrive no earlier than due and within
//! about a second after, also when the broker restarts during the wait;
//! `timerMaxDelaySec` refuses sends and transaction commits asking for more.
//! (Crashes in the middle of a delivery: `tests/crash_exact.rs`.)

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

// ------------------------------------------------------- timing wheel

/// A broker whose roll window is two 1 s slots: any timer more than 2 s
/// ahead rolls over (is re-parked) before it is delivered.
fn tiny_window(store: Option<&Path>) -> Opts {
    let o = Opts::default().broker(|c| {
        c.timer_precision_ms = 1000;
        c.timer_roll_window_slot = 2;
    });
    match store {
        Some(p) => o.store(p),
        None => o,
    }
}

const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";

fn roll_times(m: &MessageExtAt) -> i64 {
    m.msg
        .property("TIMER_ROLL_TIMES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_beyond_the_roll_window_rolls_and_arrives_on_time() {
    let srv = TestServer::start(tiny_window(None));
    let c = client();
    let b = srv.broker();
    create_topic(&c, b, "RollT", 1).await;
    let due = now_ms() + 6000;
    send_ok(
        &c,
        b,
        "RollT",
        0,
        &Msg::new("rolled").prop("TIMER_DELIVER_MS", &due.to_string()),
    )
    .await;
    send_ok(
        &c,
        b,
        "RollT",
        0,
        &Msg::new("short").prop("TIMER_DELAY_MS", "1500"),
    )
    .await;
    let got = arrivals(b, "RollT", 2, Duration::from_secs(9)).await;
    assert_eq!(got.len(), 2, "not everything arrived");
    assert_eq!(&got[0].msg.body[..], b"short");
    assert_eq!(roll_times(&got[0]), 0, "a timer inside the window rolled");
    assert_eq!(&got[1].msg.body[..], b"rolled");
    check_window("rolled", due, got[1].at_ms);
    assert!(roll_times(&got[1]) >= 1, "{:?}", got[1].msg.properties);
    assert_eq!(got[1].msg.property("TIMER_OUT_MS"), None);
    // Each roll re-parked the message in the timer queue.
    let parked = pull_all(&c, b, TIMER_TOPIC, 0).await;
    assert_eq!(parked.len() as i64, 2 + roll_times(&got[1]));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(pull_all(&c, b, "RollT", 0).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_a_rolled_wait_delivers_once_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(tiny_window(Some(dir.path())));
    let c = client();
    let b = srv.broker().to_owned();
    create_topic(&c, &b, "RollR", 1).await;
    let due = now_ms() + 6000;
    send_ok(
        &c,
        &b,
        "RollR",
        0,
        &Msg::new("rolled").prop("TIMER_DELIVER_MS", &due.to_string()),
    )
    .await;
    // Wait for the first roll (a second record in the timer queue), then
    // restart in the middle of the rolled wait.
    let rolled = eventually(Duration::from_secs(4), || {
        let (c, b) = (&c, &b);
        async move { (pull_all(c, b, TIMER_TOPIC, 0).await.len() >= 2).then_some(()) }
    })
    .await;
    assert!(rolled.is_some(), "the timer did not roll");
    assert!(now_ms() < due - 1500, "too late to restart mid-wait");
    srv.stop();
    let srv = TestServer::start(tiny_window(Some(dir.path())));
    let b = srv.broker().to_owned();
    let got = arrivals(&b, "RollR", 1, Duration::from_secs(8)).await;
    assert_eq!(got.len(), 1, "the rolled timer was lost");
    assert!(
        got[0].at_ms >= due - 50,
        "arrived {} ms early",
        due - got[0].at_ms
    );
    assert!(
        got[0].at_ms <= due + 1500,
        "arrived {} ms late",
        got[0].at_ms - due
    );
    assert!(roll_times(&got[0]) >= 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        pull_all(&c, &b, "RollR", 0).await.len(),
        1,
        "a delivery was repeated"
    );
}

/// `(slot time in s, unit count)` of the wheel slot for `due_ms`
/// (`<store>/timerwheel`, 2 × 7 × 86 400 slots of 32 bytes at 1 s precision).
fn wheel_slot(store: &Path, due_ms: i64) -> (i64, i32) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(store.join("timerwheel")).expect("timerwheel");
    let idx = (due_ms / 1000) % (2 * 7 * 86_400);
    let mut b = [0u8; 32];
    f.read_exact_at(&mut b, idx as u64 * 32).unwrap();
    (
        i64::from_be_bytes(b[0..8].try_into().unwrap()),
        i32::from_be_bytes(b[24..28].try_into().unwrap()),
    )
}

/// Timer-queue offset scanned, from `<store>/config/timercheck`.
fn scanned_offset(store: &Path) -> i64 {
    let b = std::fs::read(store.join("config/timercheck")).unwrap_or_default();
    b.get(16..24)
        .map(|s| i64::from_be_bytes(s.try_into().unwrap()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_hours_ahead_waits_in_the_wheel_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(opts(Some(dir.path())));
    let c = client();
    let b = srv.broker().to_owned();
    create_topic(&c, &b, "LongT", 1).await;
    send_ok(
        &c,
        &b,
        "LongT",
        0,
        &Msg::new("later").prop("TIMER_DELAY_SEC", &(5 * 3600).to_string()),
    )
    .await;
    let parked = pull_all(&c, &b, TIMER_TOPIC, 0).await;
    assert_eq!(parked.len(), 1);
    let due: i64 = parked[0].property("TIMER_OUT_MS").unwrap().parse().unwrap();
    let enqueued = eventually(Duration::from_secs(3), || async {
        (scanned_offset(dir.path()) == 1).then_some(())
    })
    .await;
    assert!(enqueued.is_some(), "the timer queue was not scanned");
    assert_eq!(wheel_slot(dir.path(), due), (due / 1000, 1));
    srv.stop();

    let srv = TestServer::start(opts(Some(dir.path())));
    let b = srv.broker().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        pull_all(&c, &b, "LongT", 0).await.is_empty(),
        "delivered early"
    );
    // Still in its slot, not scanned (enqueued) a second time.
    assert_eq!(wheel_slot(dir.path(), due), (due / 1000, 1));
    assert_eq!(scanned_offset(dir.path()), 1);
    assert_eq!(pull_all(&c, &b, TIMER_TOPIC, 0).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_beyond_the_max_delay_is_refused() {
    use actormq::wire::codes::response;
    let srv = TestServer::start(Opts::default().broker(|c| c.timer_max_delay_sec = 60));
    let c = client();
    let b = srv.broker();
    create_topic(&c, b, "MaxT", 1).await;
    let far = (now_ms() + 120_000).to_string();
    for m in [
        Msg::new("sec").prop("TIMER_DELAY_SEC", "61"),
        Msg::new("ms").prop("TIMER_DELAY_MS", "61000"),
        Msg::new("at").prop("TIMER_DELIVER_MS", &far),
    ] {
        let r = send_raw(&c, b, "MaxT", 0, &m).await;
        assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
        let remark = r.remark.unwrap_or_default();
        assert!(remark.contains("max delay 60000ms"), "{remark}");
    }
    // Within the limit, and a delay level (which wins), are accepted.
    send_ok(
        &c,
        b,
        "MaxT",
        0,
        &Msg::new("ok").prop("TIMER_DELAY_SEC", "60"),
    )
    .await;
    send_ok(
        &c,
        b,
        "MaxT",
        0,
        &Msg::new("lvl")
            .prop("DELAY", "1")
            .prop("TIMER_DELAY_SEC", "999"),
    )
    .await;
    assert_eq!(pull_all(&c, b, TIMER_TOPIC, 0).await.len(), 1);
}

/// END_TRANSACTION commit applies `timerMaxDelaySec` too (RocketMQ runs the
/// put hook on the committed message): a refused commit is MESSAGE_ILLEGAL
/// and stays unresolved, a commit within the limit is delivered on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_beyond_the_timer_max_delay_is_refused() {
    use actormq::wire::codes::{request, response};
    use actormq::wire::headers::send::SendMessageResponseHeader;
    use actormq::wire::headers::CommandHeader;

    let srv = TestServer::start(Opts::default().broker(|c| c.timer_max_delay_sec = 60));
    let c = client();
    let b = srv.broker();
    create_topic(&c, b, "TxTimer", 1).await;
    let half = |body: &str, delay_sec: &str| {
        Msg::new(body)
            .prop("TRAN_MSG", "true")
            .prop("PGROUP", "timer_pg")
            .prop("UNIQ_KEY", &format!("UK-{body}"))
            .prop("TIMER_DELAY_SEC", delay_sec)
    };
    let mut sent = Vec::new();
    for (body, delay) in [("far", "61"), ("near", "1")] {
        let m = half(body, delay);
        let mut h = send_header("TxTimer", 0, &m.properties(), false);
        h.producer_group = "timer_pg".into();
        h.sys_flag = 4; // prepared: not checked until the commit
        let r = call(
            &c,
            b,
            request::SEND_MESSAGE_V2,
            h.to_v2().to_ext(),
            Some(body.as_bytes().to_vec().into()),
        )
        .await;
        assert_eq!(r.code, response::SUCCESS, "half send: {:?}", r.remark);
        sent.push(SendMessageResponseHeader::from_ext(&r.ext).unwrap());
    }
    let commit = |s: &SendMessageResponseHeader| commit_cmd(s, "timer_pg");
    // Refused, and again: the half message was not marked resolved.
    for _ in 0..2 {
        let r = c.invoke(b, commit(&sent[0]), CALL).await.unwrap();
        assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
        let remark = r.remark.unwrap_or_default();
        assert!(remark.contains("max delay 60000ms"), "{remark}");
    }
    let due = now_ms() + 1000;
    let r = c.invoke(b, commit(&sent[1]), CALL).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let got = arrivals(b, "TxTimer", 1, Duration::from_secs(4)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].msg.body[..], b"near");
    check_window("near", due, got[0].at_ms);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pull_all(&c, b, "TxTimer", 0).await.len(), 1);
}
