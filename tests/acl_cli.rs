//! ACL 2.0 from the command line, black-box with the real `actormq`
//! binary: `--access-key/--secret-key` sign every request a tool sends
//! (RocketMQ's `AclClientRPCHook`), and `actormq admin` manages users and
//! ACLs with mqadmin's commands (`createUser`, `createAcl`, `getAcl`,
//! `listUser`, ...) against a broker and name server with
//! `authenticationEnabled` / `authorizationEnabled`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use actormq::auth::settings::AuthSettings;
use actormq::client::{ClientConfig, Credentials, RemotingClient};
use common::*;

const ROOT: &str = "--access-key root --secret-key root-secret";

fn auth_keys() -> BTreeMap<String, String> {
    [
        ("authenticationEnabled", "true"),
        ("authorizationEnabled", "true"),
        (
            "initAuthenticationUser",
            r#"{"username":"root","password":"root-secret"}"#,
        ),
        (
            "innerClientAuthenticationCredentials",
            r#"{"accessKey":"broker-inner","secretKey":"inner-secret"}"#,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn start() -> TestServer {
    TestServer::start(
        Opts::default()
            .broker(|b| b.unknown.extend(auth_keys()))
            .namesrv(|n| n.auth = AuthSettings::from_properties(&auth_keys(), "").unwrap()),
    )
}

/// Runs `actormq` with `line` (NS, BROKER and CLUSTER replaced); returns
/// (success, stdout + stderr).
async fn cli(line: String) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_actormq"))
            .args(line.split_whitespace())
            .env("ACTORMQ_LOG", "warn")
            .output()
            .expect("run actormq");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

/// A library client signing as `ak`/`sk` (the explicit constructor).
fn signed_client(ak: &str, sk: &str) -> RemotingClient {
    RemotingClient::with_options(
        ClientConfig::default(),
        None,
        Some(Credentials::new(ak, sk)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_and_signed_tools() {
    let s = start();
    let (ns, b, cluster) = (
        s.namesrv().to_string(),
        s.broker().to_string(),
        s.cluster.clone(),
    );
    let run = |l: &str| {
        cli(l
            .replace("NS", &ns)
            .replace("BROKER", &b)
            .replace("CLUSTER", &cluster))
    };

    // Without credentials the broker refuses the admin request.
    let (ok, out) = run("admin listUser -n NS -b BROKER").await;
    assert!(!ok && out.contains("username cannot be null"), "{out}");

    // Root creates a normal user, a topic, and (cluster-wide, routed
    // through the signed name server) an ACL giving the user Pub on it.
    let (ok, out) = run(&format!(
        "admin createUser -n NS -b BROKER -u carol -p carol-secret -t Normal {ROOT}"
    ))
    .await;
    assert!(ok && out.contains("create user to"), "{out}");
    let (ok, out) = run(&format!(
        "admin updateTopic -n NS -b BROKER -t AclCliT -r 1 -w 1 {ROOT}"
    ))
    .await;
    assert!(ok, "{out}");
    let (ok, out) = run(&format!(
        "{ROOT} admin createAcl -n NS -c CLUSTER -s User:carol -r Topic:AclCliT \
         -a Pub -i 127.0.0.1 -d Allow"
    ))
    .await;
    assert!(
        ok && out.contains(&format!("create acl to {b} success.")),
        "{out}"
    );

    // The route reaches the name server (queried signed, as root).
    let root = signed_client("root", "root-secret");
    wait_route(&root, &ns, "AclCliT").await;

    // carol may publish to the topic with her keys ...
    let carol = "--access-key carol --secret-key carol-secret";
    let (ok, out) = run(&format!("produce -n NS -t AclCliT -c 3 -q {carol}")).await;
    assert!(ok, "{out}");
    let stored = eventually(Duration::from_secs(5), || async {
        let n = pull_all(&root, &b, "AclCliT", 0).await.len();
        (n == 3).then_some(())
    })
    .await;
    assert!(stored.is_some(), "carol's 3 messages are stored");
    // consume signs too (heartbeat, pull, offsets): root reads them back.
    let (ok, out) = run(&format!(
        "consume -n NS -t AclCliT -g acl_cli_g -c 3 --from first --timeout 20 -q {ROOT}"
    ))
    .await;
    assert!(ok && out.contains("received 3 msgs"), "{out}");
    // ... but not with a wrong secret, nor to a topic she has no Pub on.
    let (ok, out) =
        run("produce -n NS -t AclCliT -c 1 -q --access-key carol --secret-key nope").await;
    assert!(!ok && out.contains("check signature failed"), "{out}");
    let (ok, out) = run(&format!("produce -n NS -t {} -c 1 -q {carol}", s.cluster)).await;
    assert!(!ok, "no Pub on another topic: {out}");
    // Her keys do not open the admin commands either.
    let (ok, out) = run(&format!("admin listUser -n NS -b BROKER {carol}")).await;
    assert!(!ok && out.contains("no permission"), "{out}");

    // getAcl, listAcl and listUser show what was created.
    let (ok, out) = run(&format!(
        "admin getAcl -n NS -b BROKER -s User:carol {ROOT}"
    ))
    .await;
    let row = out.lines().find(|l| l.starts_with("User:carol"));
    let cols: Vec<&str> = row.unwrap_or_default().split_whitespace().collect();
    assert!(
        ok && cols
            == [
                "User:carol",
                "Custom",
                "Topic:AclCliT",
                "Pub",
                "127.0.0.1",
                "Allow"
            ],
        "{out}"
    );
    let (ok, out) = run(&format!(
        "admin listAcl -n NS -c CLUSTER -s User:car -r Topic:AclCli {ROOT}"
    ))
    .await;
    assert!(ok && out.contains("Topic:AclCliT"), "{out}");
    let (ok, out) = run(&format!("admin listUser -n NS -b BROKER -f car {ROOT}")).await;
    let row = out.lines().find(|l| l.starts_with("carol"));
    assert!(
        ok && row.is_some_and(|r| r.contains("Normal")) && !out.contains("root "),
        "{out}"
    );

    // Deleting the ACL takes her Pub away; deleting her user her login.
    let (ok, out) = run(&format!(
        "admin deleteAcl -n NS -b BROKER -s User:carol -r Topic:AclCliT {ROOT}"
    ))
    .await;
    assert!(ok, "{out}");
    let (ok, out) = run(&format!("produce -n NS -t AclCliT -c 1 -q {carol}")).await;
    assert!(!ok, "Pub was deleted: {out}");
    let (ok, out) = run(&format!("admin deleteUser -n NS -b BROKER -u carol {ROOT}")).await;
    assert!(ok, "{out}");
    let (ok, out) = run(&format!("admin getUser -n NS -b BROKER -u carol {ROOT}")).await;
    assert!(ok && out.contains("there is no user found."), "{out}");
    s.stop();
}
