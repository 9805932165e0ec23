//! TLS on the remoting ports (RocketMQ's `tls.server.mode`,
//! `tls.server.authClient`): black-box, over real sockets, with a CA and
//! certificates made at test time.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use actormq::client::{ClientConfig, RemotingClient};
use actormq::tls::{ClientTls, ClientTlsOptions, TlsConfig};
use actormq::wire::codes::{request, response};
use actormq::wire::RemotingCommand;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test CA, a server certificate for 127.0.0.1/localhost and two client
/// certificates: one signed by the CA, one self-signed (rogue).
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "ActorMQ test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca_cert.pem());
        let leaf =
            |names: Vec<String>, usage: ExtendedKeyUsagePurpose, file: &str, signed: bool| {
                let key = KeyPair::generate().unwrap();
                let mut p = CertificateParams::new(names).unwrap();
                p.distinguished_name.push(DnType::CommonName, file);
                p.extended_key_usages = vec![usage];
                let cert = if signed {
                    p.signed_by(&key, &ca_cert, &ca_key).unwrap()
                } else {
                    p.self_signed(&key).unwrap()
                };
                write(&format!("{file}.pem"), cert.pem());
                write(&format!("{file}.key"), key.serialize_pem());
            };
        let server_names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        leaf(
            server_names,
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
            true,
        );
        leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth, "client", true);
        leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth, "rogue", false);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// The `tls.*` keys of a server in `mode`, plus `extra`.
    fn server_keys(&self, mode: &str, extra: &[(&str, String)]) -> TlsConfig {
        let mut m = BTreeMap::new();
        m.insert("tls.server.mode".to_string(), mode.to_string());
        m.insert("tls.server.certPath".to_string(), self.p("server.pem"));
        m.insert("tls.server.keyPath".to_string(), self.p("server.key"));
        for (k, v) in extra {
            m.insert(k.to_string(), v.clone());
        }
        TlsConfig::from_properties(&m).expect("tls keys")
    }

    /// A client that trusts the CA, showing `cert` (`client`, `rogue`) if any.
    fn client(&self, cert: Option<&str>) -> RemotingClient {
        let tls = ClientTls::new(&ClientTlsOptions {
            ca: Some(self.path("ca.pem")),
            insecure: false,
            cert: cert.map(|c| self.path(&format!("{c}.pem"))),
            key: cert.map(|c| self.path(&format!("{c}.key"))),
        })
        .unwrap();
        RemotingClient::with_tls(config(), Some(tls))
    }
}

fn config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(3),
        default_timeout: CALL,
    }
}

fn plain_client() -> RemotingClient {
    RemotingClient::with_tls(config(), None)
}

/// Whether a request on `c` to `addr` gets any answer.
async fn answers(c: &RemotingClient, addr: &str) -> bool {
    let cmd = RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO);
    c.invoke(addr, cmd, CALL).await.is_ok()
}

/// A raw plaintext connection that sends one frame: true when the server
/// closes it without a byte of answer.
async fn plaintext_closed(addr: &str) -> bool {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut frame = bytes::BytesMut::new();
    RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO).encode_to(&mut frame);
    let _ = s.write_all(&frame).await;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Sends `body` to queue 0 of `topic` and returns it as pulled back.
async fn send_and_pull(c: &RemotingClient, broker: &str, topic: &str, body: &str) -> bool {
    send_ok(c, broker, topic, 0, &Msg::new(body)).await;
    pull_all(c, broker, topic, 0)
        .await
        .iter()
        .any(|m| m.body.as_ref() == body.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcing_serves_tls_and_closes_plaintext() {
    let pki = Pki::new();
    // The name server is plaintext: the broker's own client too.
    let tls = pki.server_keys("enforcing", &[("tls.enable", "false".into())]);
    let s = TestServer::start(Opts::default().broker(move |c| c.tls = tls));
    let b = s.broker().to_string();
    let c = pki.client(None);
    create_topic(&c, &b, "TlsEnf", 1).await;
    assert!(send_and_pull(&c, &b, "TlsEnf", "over tls").await);
    assert!(!answers(&plain_client(), &b).await, "plaintext was served");
    assert!(plaintext_closed(&b).await);
    // The TLS connection is unaffected by the refused ones.
    assert!(send_and_pull(&c, &b, "TlsEnf", "still tls").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_serves_both_on_one_port() {
    let pki = Pki::new();
    let tls = pki.server_keys("permissive", &[]);
    let s = TestServer::start(Opts::default().broker(move |c| c.tls = tls));
    let b = s.broker().to_string();
    let (secure, plain) = (pki.client(None), plain_client());
    create_topic(&plain, &b, "TlsPerm", 1).await;
    send_ok(&secure, &b, "TlsPerm", 0, &Msg::new("from tls")).await;
    send_ok(&plain, &b, "TlsPerm", 0, &Msg::new("from plain")).await;
    for c in [&secure, &plain] {
        let bodies: Vec<Vec<u8>> = pull_all(c, &b, "TlsPerm", 0)
            .await
            .into_iter()
            .map(|m| m.body.to_vec())
            .collect();
        assert_eq!(bodies, vec![b"from tls".to_vec(), b"from plain".to_vec()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_client_requires_a_certificate_from_the_trusted_ca() {
    let pki = Pki::new();
    let tls = pki.server_keys(
        "enforcing",
        &[
            ("tls.server.authClient", "true".into()),
            ("tls.server.trustCertPath", pki.p("ca.pem")),
            ("tls.enable", "false".into()),
        ],
    );
    let s = TestServer::start(Opts::default().broker(move |c| c.tls = tls));
    let b = s.broker().to_string();
    assert!(
        !answers(&pki.client(None), &b).await,
        "served without a cert"
    );
    assert!(
        !answers(&pki.client(Some("rogue")), &b).await,
        "served a rogue cert"
    );
    let c = pki.client(Some("client"));
    create_topic(&c, &b, "TlsAuth", 1).await;
    assert!(send_and_pull(&c, &b, "TlsAuth", "with cert").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_server_over_tls_answers_routes_and_brokers_register_over_tls() {
    let pki = Pki::new();
    let ns_tls = pki.server_keys("enforcing", &[]);
    let ca = pki.p("ca.pem");
    let s = TestServer::start(
        Opts::default()
            .namesrv(move |c| c.tls = ns_tls.clone())
            .broker(move |c| {
                // The broker's own client: TLS to the name server, trusting the CA.
                let mut m = BTreeMap::new();
                m.insert("tls.enable".to_string(), "true".to_string());
                m.insert("tls.client.trustCertPath".to_string(), ca);
                c.tls = TlsConfig::from_properties(&m).unwrap();
            }),
    );
    let (ns, b) = (s.namesrv().to_string(), s.broker().to_string());
    create_topic(&plain_client(), &b, "TlsRoute", 2).await;
    let c = pki.client(None);
    let route = wait_route(&c, &ns, "TlsRoute").await;
    assert!(
        String::from_utf8_lossy(&route).contains(&b),
        "route names the broker"
    );
    let r = c
        .invoke(
            &ns,
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", "TlsRoute"),
            CALL,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    assert!(!answers(&plain_client(), &ns).await, "plaintext was served");
}

/// A name server alone, with `mode` and a handshake timeout.
fn namesrv_only(pki: &Pki, mode: &str, handshake_ms: u64) -> TestServer {
    let tls = pki.server_keys(
        mode,
        &[(
            "tls.server.handshakeTimeoutMillis",
            handshake_ms.to_string(),
        )],
    );
    TestServer::start(
        Opts {
            broker: false,
            ..Opts::default()
        }
        .namesrv(move |c| c.tls = tls.clone()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_does_not_block_accepting() {
    let pki = Pki::new();
    // A handshake timeout far beyond the calls' timeouts: were the accept
    // task waiting on the stalled peer, the next clients would time out.
    let s = namesrv_only(&pki, "permissive", 120_000);
    let ns = s.namesrv().to_string();
    let mut silent = tokio::net::TcpStream::connect(&ns).await.unwrap();
    let mut half_hello = tokio::net::TcpStream::connect(&ns).await.unwrap();
    half_hello.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert!(answers(&pki.client(None), &ns).await);
    assert!(answers(&plain_client(), &ns).await);
    // Both stalled peers are still being waited for, not closed.
    let mut buf = [0u8; 8];
    for s in [&mut silent, &mut half_hello] {
        let r = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
        assert!(
            r.is_err(),
            "stalled connection was answered or closed: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_completes_is_closed() {
    let pki = Pki::new();
    let s = namesrv_only(&pki, "enforcing", 300);
    let mut half_hello = tokio::net::TcpStream::connect(s.namesrv()).await.unwrap();
    half_hello.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(10), half_hello.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
}

/// Runs `actormq args...`; returns (success, stdout + stderr).
fn cli(args: &[String]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_actormq"))
        .args(args)
        .env("ACTORMQ_LOG", "warn")
        .output()
        .expect("run actormq");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn cli_tools_speak_tls_to_an_enforcing_standalone() {
    let pki = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let conf = work.path().join("broker.conf");
    std::fs::write(
        &conf,
        format!(
            "tls.server.mode=enforcing\ntls.server.certPath={}\ntls.server.keyPath={}\n\
             tls.client.trustCertPath={}\nautoCreateTopicEnable=true\n",
            pki.p("server.pem"),
            pki.p("server.key"),
            pki.p("ca.pem")
        ),
    )
    .unwrap();
    let (ns_port, b_port) = (free_port(), free_port());
    let log = work.path().join("standalone.log");
    let args = words(&format!(
        "standalone --namesrv-port {ns_port} --broker-port {b_port} --store {} -c {}",
        work.path().join("store").display(),
        conf.display()
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _proc = ChildServer::spawn("standalone", &args, &log);
    let ns = format!("127.0.0.1:{ns_port}");
    assert!(
        wait_port(&format!("127.0.0.1:{b_port}"), Duration::from_secs(20)),
        "standalone did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let ca = pki.p("ca.pem");
    let produce = format!("produce -n {ns} -t TlsCli -c 5 -q");
    // The broker registers over TLS: wait until the route is there.
    let mut last = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, out) = cli(&words(&format!("{produce} --tls --tls-ca {ca}")));
        if ok {
            break;
        }
        last = out;
        assert!(
            std::time::Instant::now() < deadline,
            "produce --tls never worked: {last}\nlog: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = last;
    let (ok, out) = cli(&words(&format!("{produce} --tls-insecure")));
    assert!(ok, "--tls-insecure: {out}");
    let (ok, out) = cli(&words(&format!(
        "consume -n {ns} -t TlsCli -g tls_cli -c 10 --from first --timeout 20 --tls --tls-ca {ca}"
    )));
    assert!(ok && out.contains("received 10 msgs"), "{out}");
    let (ok, out) = cli(&words(&format!("admin topicList -n {ns} --tls-insecure")));
    assert!(ok && out.lines().any(|l| l == "TlsCli"), "{out}");
    // Without TLS the same command fails, and so does --tls without a trust choice.
    let (ok, out) = cli(&words(&produce));
    assert!(!ok, "plaintext produce worked against enforcing: {out}");
    let (ok, out) = cli(&words(&format!("{produce} --tls")));
    assert!(!ok && out.contains("--tls-ca"), "{out}");
}
