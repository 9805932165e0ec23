//! Interoperability with an unmodified third-party client: the PyPI
//! `rocketmq==0.4.4` package (rocketmq-client-cpp underneath) runs
//! `tests/python/rmq_roundtrip.py` against an in-process name server and
//! broker, once with a push consumer and once with a pull consumer.
//!
//! The interpreter comes from `ACTORMQ_PYTHON` (a venv with the package).
//! Unset: the test fails when `ACTORMQ_REQUIRE_PYTHON=1`, else it is skipped
//! with a loud notice.
//!
//! A second script, `tests/python/rmq_features.py`, exercises delay-level,
//! one-way, orderly and batch sends and broadcast, orderly and retrying push
//! consumers.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TIMEOUT: Duration = Duration::from_secs(120);

fn python() -> Option<String> {
    match std::env::var("ACTORMQ_PYTHON") {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ => {
            if std::env::var("ACTORMQ_REQUIRE_PYTHON").as_deref() == Ok("1") {
                panic!("ACTORMQ_REQUIRE_PYTHON=1 but ACTORMQ_PYTHON is not set");
            }
            eprintln!();
            eprintln!("**************************************************************");
            eprintln!("* SKIPPED third_party_python: set ACTORMQ_PYTHON to a Python *");
            eprintln!("* with `rocketmq==0.4.4` installed (e.g. /tmp/venv/bin/python) *");
            eprintln!("**************************************************************");
            None
        }
    }
}

/// Runs a script from tests/python with `args`, its output captured in a
/// temp file (the C++ client also writes its logs under $HOME, pointed
/// there). Returns the exit status (None after `timeout`, the child killed),
/// the output and the run time.
fn run_python(
    py: &str,
    script: &str,
    args: &[&str],
    timeout: Duration,
) -> (Option<std::process::ExitStatus>, String, Duration) {
    let script = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.log");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(py)
        .arg(&script)
        .args(args)
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    let started = Instant::now();
    let status = wait_child(&mut child, timeout);
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    (status, output, started.elapsed())
}

/// Runs the round-trip script; panics with its output on failure/timeout.
fn run_script(py: &str, namesrv: &str, mode: &str, count: u32) {
    let count_arg = count.to_string();
    let (status, output, took) = run_python(
        py,
        "rmq_roundtrip.py",
        &[namesrv, mode, &count_arg],
        TIMEOUT,
    );
    match status {
        Some(st) if st.success() => {
            eprintln!("python {mode} ({took:?}): {}", output.trim());
            let summary = format!("{mode}: sent {count} in");
            assert!(
                output.contains(&summary),
                "unexpected script output: {output}"
            );
            assert!(
                output.contains("missing 0"),
                "unexpected script output: {output}"
            );
        }
        Some(st) => panic!("python {mode} round trip failed ({st}):\n{output}"),
        None => panic!("python {mode} round trip timed out after {TIMEOUT:?}:\n{output}"),
    }
}

#[test]
fn rocketmq_python_client_push_and_pull() {
    let Some(py) = python() else { return };
    let s = TestServer::start(Opts::default().broker(|c| {
        c.register_broker_interval_ms = 1_000;
    }));
    let ns = s.namesrv().to_owned();
    run_script(&py, &ns, "push", 1000);
    run_script(&py, &ns, "pull", 1000);
    s.stop();
}

/// Runs `rmq_features.py`; panics with its output unless it ends with
/// "features: ok".
fn run_features(py: &str, namesrv: &str) {
    let (status, output, took) =
        run_python(py, "rmq_features.py", &[namesrv], Duration::from_secs(300));
    match status {
        Some(st) if st.success() && output.contains("features: ok") => {
            eprintln!("python features ({took:?}):\n{}", output.trim());
        }
        Some(st) => panic!("python features failed ({st}):\n{output}"),
        None => panic!("python features timed out:\n{output}"),
    }
}

#[test]
fn rocketmq_python_client_features() {
    let Some(py) = python() else { return };
    let s = TestServer::start(Opts::default().broker(|c| {
        c.register_broker_interval_ms = 1_000;
        c.message_delay_level = "1s 2s 3s".into();
    }));
    let ns = s.namesrv().to_owned();
    run_features(&py, &ns);
    s.stop();
}

/// Runs `rmq_acl.py` and returns its exit code and output.
fn run_acl(py: &str, ns: &str, who: (&str, &str), topic: &str, mode: &str) -> (i32, String) {
    let (status, output, _) = run_python(
        py,
        "rmq_acl.py",
        &[ns, who.0, who.1, topic, mode],
        Duration::from_secs(90),
    );
    let code = status.and_then(|s| s.code()).unwrap_or(-1);
    (code, output)
}

/// A root-signed admin request.
async fn as_root(
    c: &actormq::client::RemotingClient,
    addr: &str,
    mut cmd: actormq::wire::RemotingCommand,
) {
    let body = cmd.body_bytes();
    actormq::auth::signature::sign_remoting(&mut cmd.ext, &body, "root", "root-secret", None);
    let r = c.invoke(addr, cmd, CALL).await.unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
}

#[test]
fn rocketmq_python_client_with_acl() {
    let Some(py) = python() else { return };
    let keys = || -> std::collections::BTreeMap<String, String> {
        [
            ("authenticationEnabled", "true"),
            ("authorizationEnabled", "true"),
            (
                "initAuthenticationUser",
                r#"{"username":"root","password":"root-secret"}"#,
            ),
            (
                "innerClientAuthenticationCredentials",
                r#"{"accessKey":"inner","secretKey":"inner-secret"}"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let s = TestServer::start(
        Opts::default()
            .broker(move |c| c.unknown.extend(keys()))
            .namesrv(move |n| {
                n.auth =
                    actormq::auth::settings::AuthSettings::from_properties(&keys(), "").unwrap()
            }),
    );
    let ns = s.namesrv().to_owned();
    let b = s.broker().to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client();
        for topic in ["PyAcl", "PyOther"] {
            let mut cmd = actormq::wire::RemotingCommand::request(17);
            cmd.ext = ext(&[
                ("topic", topic),
                ("readQueueNums", "2"),
                ("writeQueueNums", "2"),
                ("perm", "6"),
            ]);
            as_root(&c, &b, cmd).await;
        }
        let user = r#"{"username":"py","password":"py-secret","userType":"Normal"}"#;
        let mut cmd =
            actormq::wire::RemotingCommand::request(3001).with_body(user.as_bytes().to_vec());
        cmd.ext = ext(&[("username", "py")]);
        as_root(&c, &b, cmd).await;
        let acl = r#"{"subject":"User:py","policies":[{"policyType":"Custom","entries":[
            {"resource":"Topic:PyAcl","actions":["Pub","Sub"],"decision":"Allow"},
            {"resource":"Group:CID_acl*","actions":["Sub"],"decision":"Allow"}]}]}"#;
        let mut cmd =
            actormq::wire::RemotingCommand::request(3006).with_body(acl.as_bytes().to_vec());
        cmd.ext = ext(&[("subject", "User:py")]);
        as_root(&c, &b, cmd).await;
        // The new topics reach the name server with the next registration.
        let routed = eventually(Duration::from_secs(10), || {
            let c = c.clone();
            let ns = ns.clone();
            async move {
                let mut cmd = actormq::wire::RemotingCommand::request(105);
                cmd.ext = ext(&[("topic", "PyOther")]);
                let body = cmd.body_bytes();
                actormq::auth::signature::sign_remoting(
                    &mut cmd.ext,
                    &body,
                    "root",
                    "root-secret",
                    None,
                );
                let r = c.invoke(&ns, cmd, CALL).await.ok()?;
                (r.code == 0).then_some(())
            }
        })
        .await;
        assert!(routed.is_some(), "topics routed");
    });
    let py_user = ("py", "py-secret");
    let (code, out) = run_acl(&py, &ns, py_user, "PyAcl", "send");
    assert_eq!(code, 0, "a valid key sends:\n{out}");
    let (code, out) = run_acl(&py, &ns, py_user, "PyAcl", "consume");
    assert_eq!(code, 0, "a valid key consumes:\n{out}");
    let (code, out) = run_acl(&py, &ns, ("py", "wrong-secret"), "PyAcl", "send");
    assert_eq!(code, 3, "a wrong secret is refused:\n{out}");
    let (code, out) = run_acl(&py, &ns, ("stranger", "x"), "PyAcl", "send");
    assert_eq!(code, 3, "an unknown key is refused:\n{out}");
    let (code, out) = run_acl(&py, &ns, py_user, "PyOther", "send");
    assert_eq!(code, 3, "a topic without Pub is refused:\n{out}");
    assert!(
        out.contains("no permission") || out.contains("NO_PERMISSION") || out.contains("refused"),
        "{out}"
    );
    s.stop();
}
