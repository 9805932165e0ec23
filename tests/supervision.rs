//! Supervision: faults injected into a Queue actor, a Topic actor and a
//! Session (ACTORMQ_INJECT_FAULT, `faultInjectionEnable=true`). After each,
//! the restart counter has moved, sends and pulls work, and nothing sent
//! before or after is lost.
//!
//! One test function: the restart counters are process-wide.

mod common;

use std::time::Duration;

use actormq::actors::supervisor::restarts;
use actormq::client::RemotingClient;
use actormq::wire::codes::{request, response};
use actormq::wire::headers::send::SendMessageResponseHeader;
use actormq::wire::headers::CommandHeader;
use common::*;

const TOPIC: &str = "Supervised";
const QUEUES: i32 = 2;

async fn inject(c: &RemotingClient, b: &str, target: &str, kind: &str, queue: i32) {
    let q = queue.to_string();
    let r = call(
        c,
        b,
        request::ACTORMQ_INJECT_FAULT,
        ext(&[
            ("target", target),
            ("kind", kind),
            ("topic", TOPIC),
            ("queueId", &q),
        ]),
        None,
    )
    .await;
    assert_eq!(
        r.code,
        response::SUCCESS,
        "inject {target}/{kind}: {:?}",
        r.remark
    );
}

/// Sends with a few retries: the first call may race the restart.
async fn send_retrying(
    c: &RemotingClient,
    b: &str,
    queue: i32,
    body: &str,
) -> SendMessageResponseHeader {
    let mut last = String::new();
    for _ in 0..20 {
        match c.invoke(b, send_cmd(queue, body), CALL).await {
            Ok(r) if r.code == response::SUCCESS => {
                return SendMessageResponseHeader::from_ext(&r.ext).unwrap()
            }
            Ok(r) => last = format!("code {} {:?}", r.code, r.remark),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("send of {body} to queue {queue} kept failing: {last}");
}

fn send_cmd(queue: i32, body: &str) -> actormq::wire::RemotingCommand {
    let m = Msg::new(body).tags("S");
    let mut cmd =
        actormq::wire::RemotingCommand::request(request::SEND_MESSAGE_V2).with_body(m.body.clone());
    cmd.ext = send_header(TOPIC, queue, &m.properties(), false)
        .to_v2()
        .to_ext();
    cmd
}

/// Every message in `sent` (per queue, in order) is pullable, and nothing else.
async fn check_all(c: &RemotingClient, b: &str, sent: &[Vec<String>], stage: &str) {
    for q in 0..QUEUES {
        let mut got = None;
        for _ in 0..20 {
            let r = tokio::time::timeout(Duration::from_secs(5), pull_all_lenient(c, b, q)).await;
            if let Ok(Some(v)) = r {
                got = Some(v);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = got.unwrap_or_else(|| panic!("{stage}: queue {q} not pullable"));
        assert_eq!(got, sent[q as usize], "{stage}: queue {q} contents differ");
    }
}

/// Like `pull_all` but `None` on a transient error (racing a restart).
async fn pull_all_lenient(c: &RemotingClient, b: &str, q: i32) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r = c
            .invoke(b, pull_cmd(TOPIC, q, offset, 32, None, None), CALL)
            .await
            .ok()?;
        match r.code {
            response::SUCCESS => {
                let h = actormq::wire::headers::pull::PullMessageResponseHeader::from_ext(&r.ext)
                    .ok()?;
                for m in decode_checked(&r.body_bytes()) {
                    assert_eq!(
                        m.queue_offset,
                        out.len() as i64,
                        "gap or duplicate in queue {q}"
                    );
                    out.push(String::from_utf8(m.body.to_vec()).unwrap());
                }
                offset = h.next_begin_offset;
            }
            response::PULL_NOT_FOUND => return Some(out),
            _ => return None,
        }
    }
}

async fn wait_counter(what: &str, above: u64) -> u64 {
    eventually(Duration::from_secs(3), || async {
        let n = restarts::get(what);
        (n > above).then_some(n)
    })
    .await
    .unwrap_or_else(|| panic!("{what} restart counter stayed at {above}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_restart_and_nothing_is_lost() {
    let s = TestServer::start(Opts::default().broker(|c| {
        c.fault_injection_enable = true;
        c.maped_file_size_commit_log = 64 * 1024;
    }));
    let c = client();
    let b = s.broker().to_owned();
    create_topic(&c, &b, TOPIC, QUEUES).await;
    let mut sent: Vec<Vec<String>> = vec![Vec::new(); QUEUES as usize];
    let mut n = 0;
    let mut send_some = |c: RemotingClient, b: String, count: usize| {
        let start = n;
        n += count;
        async move {
            let mut out = Vec::new();
            for i in start..start + count {
                let q = (i % QUEUES as usize) as i32;
                let body = format!("msg-{i}");
                let h = send_retrying(&c, &b, q, &body).await;
                out.push((q, h.queue_offset, body));
            }
            out
        }
    };
    let record = |sent: &mut Vec<Vec<String>>, batch: Vec<(i32, i64, String)>| {
        for (q, off, body) in batch {
            let v = &mut sent[q as usize];
            assert_eq!(
                off,
                v.len() as i64,
                "queue {q} offset jumped after a restart"
            );
            v.push(body);
        }
    };
    record(&mut sent, send_some(c.clone(), b.clone(), 20).await);
    check_all(&c, &b, &sent, "baseline").await;

    for (target, kind, counter) in [
        ("queue", "error", "Queue"),
        ("queue", "panic", "Queue"),
        ("topic", "error", "Topic"),
        ("topic", "panic", "Topic"),
    ] {
        let before = restarts::get(counter);
        inject(&c, &b, target, kind, 0).await;
        let after = wait_counter(counter, before).await;
        assert!(after > before);
        let stage = format!("after {target} {kind}");
        check_all(&c, &b, &sent, &stage).await;
        record(&mut sent, send_some(c.clone(), b.clone(), 10).await);
        check_all(&c, &b, &sent, &stage).await;
        // A held pull on the restarted queue still wakes up.
        let off = sent[0].len() as i64;
        let hold = {
            let (c, b) = (c.clone(), b.clone());
            tokio::spawn(async move {
                c.invoke(
                    &b,
                    pull_cmd(TOPIC, 0, off, 32, None, Some(Duration::from_secs(5))),
                    Duration::from_secs(8),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        record(&mut sent, send_some(c.clone(), b.clone(), 2).await);
        let r = tokio::time::timeout(Duration::from_secs(2), hold)
            .await
            .unwrap_or_else(|_| panic!("{stage}: held pull not woken"))
            .unwrap()
            .unwrap();
        assert_eq!(
            r.code,
            response::SUCCESS,
            "{stage}: held pull {:?}",
            r.remark
        );
    }

    // Session faults: our own connection is closed; the client reconnects.
    for kind in ["error", "panic"] {
        let victim = client();
        let r = call(
            &victim,
            &b,
            request::GET_MAX_OFFSET,
            ext(&[("topic", TOPIC), ("queueId", "0")]),
            None,
        )
        .await;
        assert_eq!(r.code, response::SUCCESS);
        inject(&victim, &b, "session", kind, 0).await;
        let closed = eventually(Duration::from_secs(3), || async {
            (!victim.connected_addrs().contains(&b)).then_some(())
        })
        .await;
        assert!(closed.is_some(), "session {kind}: connection not closed");
        // Next use reconnects.
        record(&mut sent, send_some(victim.clone(), b.clone(), 4).await);
        check_all(&victim, &b, &sent, &format!("after session {kind}")).await;
        // Other connections were not affected.
        let r = call(
            &c,
            &b,
            request::GET_MAX_OFFSET,
            ext(&[("topic", TOPIC), ("queueId", "1")]),
            None,
        )
        .await;
        assert_eq!(r.code, response::SUCCESS);
    }
    let total: usize = sent.iter().map(Vec::len).sum();
    assert_eq!(total, 20 + 4 * 12 + 8);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_is_off_by_default() {
    let s = TestServer::start_default();
    let c = client();
    create_topic(&c, s.broker(), TOPIC, 1).await;
    let r = call(
        &c,
        s.broker(),
        request::ACTORMQ_INJECT_FAULT,
        ext(&[
            ("target", "queue"),
            ("kind", "panic"),
            ("topic", TOPIC),
            ("queueId", "0"),
        ]),
        None,
    )
    .await;
    assert_eq!(r.code, response::REQUEST_CODE_NOT_SUPPORTED);
    s.stop();
}
