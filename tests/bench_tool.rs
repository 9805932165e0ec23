//! `actormq bench` as a user runs it: the real binary against a running
//! name server and broker, its `--json` report read back.

mod common;

use std::process::Command;

use common::*;

/// Runs `actormq bench <args> --json F` and returns the report's rows.
fn bench(args: &str, ns: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_actormq"));
    cmd.arg("bench")
        .args(args.replace("NS", ns).split_whitespace())
        .arg("--json")
        .arg(&json)
        .env("ACTORMQ_LOG", "warn");
    let out = cmd.output().expect("run actormq bench");
    assert!(
        out.status.success(),
        "bench {args} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("the --json report");
    match serde_json::from_str(&text).expect("a JSON report") {
        serde_json::Value::Array(rows) => rows,
        other => panic!("expected a list of rows, got {other}"),
    }
}

fn num(row: &serde_json::Value, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {row}"))
}

#[test]
fn produce_batch_consume_e2e_and_echo_report_what_they_did() {
    let s = TestServer::start_default();
    let ns = s.namesrv().to_string();

    // Exact counts: 300 single sends, 10 batches of 32, 200 async sends.
    let rows = bench("produce -n NS -t BenchT --queues 4 -w 8 --count 300", &ns);
    assert_eq!(num(&rows[0], "msgs"), 300.0, "{rows:?}");
    assert_eq!(num(&rows[0], "errors"), 0.0, "{rows:?}");
    assert!(num(&rows[0], "p50_ms") > 0.0, "{rows:?}");
    assert!(
        rows[0]["notes"].as_str().unwrap().contains("ASYNC_FLUSH"),
        "the target's flush mode is noted: {rows:?}"
    );
    let rows = bench(
        "produce -n NS -t BenchT --queues 4 --mode batch --batch 32 --count 320",
        &ns,
    );
    assert_eq!(num(&rows[0], "msgs"), 320.0, "{rows:?}");
    assert_eq!(num(&rows[0], "errors"), 0.0, "{rows:?}");
    // Async: one pipelined sender, 16 outstanding.
    let rows = bench(
        "produce -n NS -t BenchT --queues 4 --mode async -w 16 --count 200",
        &ns,
    );
    assert_eq!(num(&rows[0], "msgs"), 200.0, "{rows:?}");
    assert_eq!(rows[0]["name"], "produce async", "{rows:?}");
    // An unknown mode is refused, not run as something else.
    let out = Command::new(env!("CARGO_BIN_EXE_actormq"))
        .args([
            "bench", "produce", "-n", &ns, "--mode", "fast", "--count", "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid value 'fast'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Catch-up reads back exactly what is stored, body bytes included.
    let rows = bench("consume -n NS -t BenchT --queues 4", &ns);
    assert_eq!(num(&rows[0], "msgs"), 820.0, "{rows:?}");
    let mib = num(&rows[0], "mib_per_sec") * num(&rows[0], "seconds");
    assert!(
        (mib * 1024.0 * 1024.0 - 820.0 * 1024.0).abs() < 1.0,
        "820 bodies of 1 KiB: {rows:?}"
    );

    // Produce -> consume through long polling, paced.
    let rows = bench("e2e -n NS --rate 300 -d 2", &ns);
    let got = num(&rows[0], "msgs");
    assert!((500.0..=700.0).contains(&got), "{rows:?}");
    assert_eq!(num(&rows[0], "errors"), 0.0, "{rows:?}");

    // The loopback baseline needs no broker.
    let rows = bench("echo -w 4 -d 1", &ns);
    assert!(num(&rows[0], "msgs") > 100.0, "{rows:?}");
    assert_eq!(num(&rows[0], "errors"), 0.0, "{rows:?}");
}
