//! Test harness shared by the black-box tests in `tests/`.
//!
//! * [`TestServer`]: name server(s) and a broker started in-process on a
//!   dedicated thread running an `actix::System`, on free ports and a temp
//!   store; dropping (or [`TestServer::stop`]) shuts the broker down
//!   gracefully and stops the system.
//! * [`ChildServer`]: the `actormq` binary as a child process (crash tests),
//!   killed with SIGKILL on drop.
//! * Small raw-request helpers over [`RemotingClient`] so tests pick queues
//!   and flags explicitly and see every response code.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actormq::actors::broker::Broker;
use actormq::actors::namesrv::NameServer;
use actormq::actors::server::IoPool;
use actormq::client::{ClientConfig, RemotingClient};
use actormq::config::{BrokerConfig, NamesrvConfig};
use actormq::wire::codes::{request, response};
use actormq::wire::headers::admin::{CreateTopicRequestHeader, TopicOnlyHeader};
use actormq::wire::headers::offset::{OffsetResponseHeader, QueueRequestHeader};
use actormq::wire::headers::pull::{
    pull_flag, PullMessageRequestHeader, PullMessageResponseHeader,
};
use actormq::wire::headers::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use actormq::wire::headers::CommandHeader;
use actormq::wire::message::{decode_record, encode_properties, MessageExt};
use actormq::wire::{now_ms, ExtFields, RemotingCommand};
use bytes::Bytes;

/// Default per-call timeout of the test clients.
pub const CALL: Duration = Duration::from_secs(3);

// ------------------------------------------------------------ in-process

/// Options of an in-process [`TestServer`].
pub struct Opts {
    pub namesrvs: usize,
    pub broker: bool,
    /// Store root; a fresh temp dir when `None`.
    pub store: Option<PathBuf>,
    pub tweak_broker: Box<dyn FnOnce(&mut BrokerConfig) + Send>,
    pub tweak_namesrv: Box<dyn Fn(&mut NamesrvConfig) + Send>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            namesrvs: 1,
            broker: true,
            store: None,
            tweak_broker: Box::new(|_| {}),
            tweak_namesrv: Box::new(|_| {}),
        }
    }
}

impl Opts {
    pub fn store(mut self, p: &Path) -> Self {
        self.store = Some(p.to_owned());
        self
    }
    pub fn broker(mut self, f: impl FnOnce(&mut BrokerConfig) + Send + 'static) -> Self {
        self.tweak_broker = Box::new(f);
        self
    }
    pub fn namesrv(mut self, f: impl Fn(&mut NamesrvConfig) + Send + 'static) -> Self {
        self.tweak_namesrv = Box::new(f);
        self
    }
}

/// Name server(s) + broker running on their own actix system thread.
pub struct TestServer {
    pub namesrv_addrs: Vec<String>,
    /// `127.0.0.1:port` of the broker, if one was started.
    pub broker_addr: Option<String>,
    pub broker_name: String,
    pub cluster: String,
    pub store: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stop_tx: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Started {
    namesrvs: Vec<String>,
    broker: Option<(String, String, String)>,
}

impl TestServer {
    /// One name server and one broker with test-friendly settings.
    pub fn start_default() -> TestServer {
        Self::start(Opts::default())
    }

    pub fn start(opts: Opts) -> TestServer {
        let tmp = if opts.store.is_none() {
            Some(tempfile::tempdir().expect("temp dir"))
        } else {
            None
        };
        let store = opts
            .store
            .clone()
            .unwrap_or_else(|| tmp.as_ref().unwrap().path().to_owned());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Started, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let store2 = store.clone();
        let thread = std::thread::Builder::new()
            .name("test-server".into())
            .spawn(move || run_system(opts, store2, ready_tx, stop_rx))
            .expect("spawn server thread");
        let started = match ready_rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => panic!("server did not start: {e}"),
            Err(e) => panic!("server did not start in time: {e}"),
        };
        let (broker_addr, broker_name, cluster) = match started.broker {
            Some((a, n, c)) => (Some(a), n, c),
            None => (None, String::new(), String::new()),
        };
        TestServer {
            namesrv_addrs: started.namesrvs,
            broker_addr,
            broker_name,
            cluster,
            store,
            _tmp: tmp,
            stop_tx: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn namesrv(&self) -> &str {
        &self.namesrv_addrs[0]
    }

    /// `a;b` list of all name servers.
    pub fn namesrv_list(&self) -> String {
        self.namesrv_addrs.join(";")
    }

    pub fn broker(&self) -> &str {
        self.broker_addr.as_deref().expect("no broker started")
    }

    /// Graceful stop (broker shutdown, then the system); waits for it.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn run_system(
    opts: Opts,
    store: PathBuf,
    ready: std::sync::mpsc::Sender<Result<Started, String>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let sys = actix::System::new();
    sys.block_on(async move {
        let pool = IoPool::new(2);
        let mut namesrvs = Vec::new();
        let mut ns_addrs = Vec::new();
        for i in 0..opts.namesrvs {
            let mut c = NamesrvConfig {
                listen_port: 0,
                listen_addr: "127.0.0.1".into(),
                kv_config_path: store.join(format!("namesrv{i}/kvConfig.json")),
                ..NamesrvConfig::default()
            };
            (opts.tweak_namesrv)(&mut c);
            match NameServer::start(&c, pool.clone()).await {
                Ok(ns) => {
                    ns_addrs.push(format!("127.0.0.1:{}", ns.addr.port()));
                    namesrvs.push(ns);
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("name server: {e}")));
                    return;
                }
            }
        }
        let mut broker = None;
        if opts.broker {
            let mut c = BrokerConfig {
                listen_port: 0,
                listen_addr: "127.0.0.1".into(),
                broker_ip1: "127.0.0.1".into(),
                namesrv_addr: ns_addrs.join(";"),
                store_path_root_dir: store.clone(),
                maped_file_size_commit_log: 1024 * 1024,
                maped_file_size_consume_queue: 1000 * 20,
                register_broker_interval_ms: 1_000,
                flush_consumer_offset_interval: 200,
                io_threads: 2,
                // ~4 MiB index files instead of 420 MB (they are fallocated).
                expiry: actormq::config::ExpiryConfig {
                    max_hash_slot_num: 50_000,
                    max_index_num: 200_000,
                    ..Default::default()
                },
                ..BrokerConfig::default()
            };
            (opts.tweak_broker)(&mut c);
            match Broker::start(c, pool.clone()).await {
                Ok(b) => broker = Some(b),
                Err(e) => {
                    let _ = ready.send(Err(format!("broker: {e}")));
                    for ns in &namesrvs {
                        ns.stop();
                    }
                    pool.stop();
                    return;
                }
            }
        }
        let info = broker.as_ref().map(|b: &Broker| {
            (
                format!("127.0.0.1:{}", b.addr.port()),
                b.ctx.cfg.broker_name.clone(),
                b.ctx.cfg.broker_cluster_name.clone(),
            )
        });
        let _ = ready.send(Ok(Started {
            namesrvs: ns_addrs,
            broker: info,
        }));
        // Wait for the stop signal (or the handle being dropped).
        let _ = stop.await;
        if let Some(b) = broker {
            b.shutdown().await;
        }
        for ns in &namesrvs {
            ns.stop();
        }
        pool.stop();
        actix::System::current().stop();
    });
    let _ = sys.run();
}

// ----------------------------------------------------------- child process

/// A free TCP port on 127.0.0.1 (bound then released).
/// A port for a server a test starts. Taken below Linux's ephemeral range
/// (32768 and up), so an outgoing connection of a concurrent test cannot
/// take it between this check and the server's bind (a port from
/// `bind(0)` could); handed out two apart and checked with its neighbour,
/// since a broker also listens on port + 1 (`haListenPort`). Each test
/// process starts at its own offset.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 614) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let bindable = |p: u32| std::net::TcpListener::bind(("127.0.0.1", p as u16)).is_ok();
    for _ in 0..SPAN {
        let p = LOW + NEXT.fetch_add(2, Ordering::SeqCst) % SPAN;
        if bindable(p) && bindable(p + 1) {
            return p as u16;
        }
    }
    panic!("no free port pair in {LOW}..{}", LOW + SPAN);
}

/// The `actormq` binary running as a child; SIGKILLed on drop.
pub struct ChildServer {
    pub child: Child,
    pub name: String,
}

impl ChildServer {
    pub fn spawn(name: &str, args: &[&str], log: &Path) -> ChildServer {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_actormq"))
            .args(args)
            .env("ACTORMQ_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn actormq");
        ChildServer {
            child,
            name: name.to_owned(),
        }
    }

    /// `kill -9`, then reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The arguments of `actormq standalone` on these ports, store and config
/// file (callers append their own options).
pub fn standalone_args(ns_port: u16, b_port: u16, store: &Path, conf: &Path) -> Vec<String> {
    vec![
        "standalone".to_string(),
        "--namesrv-port".into(),
        ns_port.to_string(),
        "--broker-port".into(),
        b_port.to_string(),
        "--store".into(),
        store.to_str().unwrap().into(),
        "-c".into(),
        conf.to_str().unwrap().into(),
    ]
}

/// Runs `actormq standalone` on `store` with config file `conf` and fresh
/// ports, its output in `log`, and waits up to `within` for the broker port
/// (panicking with the log if it does not open). Returns the process and
/// the broker address.
pub fn spawn_standalone(
    store: &Path,
    conf: &Path,
    log: &Path,
    within: Duration,
) -> (ChildServer, String) {
    let (ns_port, b_port) = (free_port(), free_port());
    let args = standalone_args(ns_port, b_port, store, conf);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut proc = ChildServer::spawn("standalone", &args, log);
    let broker = format!("127.0.0.1:{b_port}");
    if !wait_port(&broker, within) {
        let running = proc.is_running();
        let text = std::fs::read_to_string(log).unwrap_or_default();
        panic!("broker did not come up (running: {running}); log:\n{text}");
    }
    (proc, broker)
}

/// Waits for `child` up to `timeout`; past it the child is killed and
/// reaped and the answer is None.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `addr` accepts TCP connections.
pub fn wait_port(addr: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

// ------------------------------------------------------------ raw requests

pub fn client() -> RemotingClient {
    RemotingClient::new(ClientConfig {
        connect_timeout: Duration::from_secs(2),
        default_timeout: CALL,
    })
}

/// Sends a request with the given ext fields and body; returns the response.
pub async fn call(
    c: &RemotingClient,
    addr: &str,
    code: i32,
    ext: ExtFields,
    body: Option<Bytes>,
) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code);
    cmd.ext = ext;
    if let Some(b) = body {
        cmd = cmd.with_body(b);
    }
    c.invoke(addr, cmd, CALL)
        .await
        .unwrap_or_else(|e| panic!("request {code} to {addr} failed: {e}"))
}

pub fn ext(pairs: &[(&str, &str)]) -> ExtFields {
    let mut e = ExtFields::default();
    for (k, v) in pairs {
        e.insert(*k, *v);
    }
    e
}

/// A message as the tests send it.
#[derive(Debug, Clone, Default)]
pub struct Msg {
    pub body: Vec<u8>,
    pub tags: Option<String>,
    pub keys: Option<String>,
    pub props: Vec<(String, String)>,
}

impl Msg {
    pub fn new(body: impl Into<Vec<u8>>) -> Msg {
        Msg {
            body: body.into(),
            ..Default::default()
        }
    }
    pub fn tags(mut self, t: &str) -> Msg {
        self.tags = Some(t.into());
        self
    }
    pub fn keys(mut self, k: &str) -> Msg {
        self.keys = Some(k.into());
        self
    }
    pub fn prop(mut self, k: &str, v: &str) -> Msg {
        self.props.push((k.into(), v.into()));
        self
    }
    pub fn properties(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .props
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(t) = &self.tags {
            pairs.push(("TAGS", t));
        }
        if let Some(k) = &self.keys {
            pairs.push(("KEYS", k));
        }
        pairs.push(("WAIT", "true"));
        encode_properties(pairs)
    }
}

pub fn send_header(
    topic: &str,
    queue_id: i32,
    props: &str,
    batch: bool,
) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "test_pg".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: now_ms(),
        flag: 0,
        properties: Some(props.into()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(batch),
        max_reconsume_times: None,
        broker_name: None,
    }
}

/// Sends a transaction half message (sysflag PREPARED, `TRAN_MSG`, `PGROUP`
/// = `group`, `UNIQ_KEY` = `UK-<body>`) and returns the send response.
pub async fn send_half_message(
    c: &RemotingClient,
    b: &str,
    topic: &str,
    body: &str,
    group: &str,
) -> SendMessageResponseHeader {
    let props = Msg::new(body)
        .prop("TRAN_MSG", "true")
        .prop("PGROUP", group)
        .prop("UNIQ_KEY", &format!("UK-{body}"))
        .properties();
    let mut h = send_header(topic, 0, &props, false);
    h.producer_group = group.into();
    h.sys_flag = 4;
    let r = call(
        c,
        b,
        request::SEND_MESSAGE_V2,
        h.to_v2().to_ext(),
        Some(Bytes::from(body.to_owned())),
    )
    .await;
    assert_eq!(r.code, response::SUCCESS, "half send: {:?}", r.remark);
    SendMessageResponseHeader::from_ext(&r.ext).unwrap()
}

/// END_TRANSACTION for a half message of producer group `group`: `kind` 8
/// commits, 12 rolls back; `from_check` marks an answer to a check.
pub fn end_transaction_cmd(
    group: &str,
    queue_offset: i64,
    phys: i64,
    kind: i32,
    uniq: &str,
    from_check: bool,
) -> RemotingCommand {
    let h = actormq::wire::headers::consume::EndTransactionRequestHeader {
        topic: None,
        producer_group: group.into(),
        tran_state_table_offset: queue_offset,
        commit_log_offset: phys,
        commit_or_rollback: kind,
        from_transaction_check: Some(from_check),
        msg_id: uniq.into(),
        transaction_id: Some(uniq.into()),
    };
    let mut cmd = RemotingCommand::request(request::END_TRANSACTION);
    cmd.ext = h.to_ext();
    cmd
}

/// The producer's commit of the half message `s` answered (not from a check).
pub fn commit_cmd(s: &SendMessageResponseHeader, group: &str) -> RemotingCommand {
    end_transaction_cmd(
        group,
        s.queue_offset,
        phys_of(&s.msg_id),
        8,
        s.transaction_id.as_deref().unwrap_or(""),
        false,
    )
}

/// SEND_MESSAGE_V2 of one message; returns the raw response.
pub async fn send_raw(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    queue_id: i32,
    m: &Msg,
) -> RemotingCommand {
    let h = send_header(topic, queue_id, &m.properties(), false);
    call(
        c,
        broker,
        request::SEND_MESSAGE_V2,
        h.to_v2().to_ext(),
        Some(Bytes::from(m.body.clone())),
    )
    .await
}

/// Sends one message and insists on SUCCESS.
pub async fn send_ok(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    queue_id: i32,
    m: &Msg,
) -> SendMessageResponseHeader {
    let r = send_raw(c, broker, topic, queue_id, m).await;
    assert_eq!(
        r.code,
        response::SUCCESS,
        "send to {topic}/{queue_id} failed: {:?}",
        r.remark
    );
    SendMessageResponseHeader::from_ext(&r.ext).expect("send response header")
}

/// Creates (or updates) a topic on the broker.
pub async fn create_topic(c: &RemotingClient, broker: &str, topic: &str, queues: i32) {
    create_topic_with(c, broker, topic, queues, None).await
}

/// Creates (or updates) a topic with RocketMQ's `attributes` string
/// (`+message.type=FIFO`).
pub async fn create_topic_with(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    queues: i32,
    attributes: Option<&str>,
) {
    let h = CreateTopicRequestHeader {
        topic: topic.into(),
        default_topic: "TBW102".into(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm: 6,
        topic_filter_type: Some("SINGLE_TAG".into()),
        topic_sys_flag: Some(0),
        order: Some(false),
        attributes: attributes.map(str::to_owned),
        force: None,
    };
    let r = call(
        c,
        broker,
        request::UPDATE_AND_CREATE_TOPIC,
        h.to_ext(),
        None,
    )
    .await;
    assert_eq!(
        r.code,
        response::SUCCESS,
        "create topic {topic}: {:?}",
        r.remark
    );
}

pub async fn topic_config(c: &RemotingClient, broker: &str, topic: &str) -> RemotingCommand {
    let h = TopicOnlyHeader {
        topic: topic.into(),
    };
    call(c, broker, request::GET_TOPIC_CONFIG, h.to_ext(), None).await
}

/// A pull request; `suspend` sets SUSPEND with that hold time.
pub fn pull_cmd(
    topic: &str,
    queue_id: i32,
    offset: i64,
    max: i32,
    sub: Option<&str>,
    suspend: Option<Duration>,
) -> RemotingCommand {
    let mut flag = 0;
    if sub.is_some() {
        flag |= pull_flag::SUBSCRIPTION;
    }
    if suspend.is_some() {
        flag |= pull_flag::SUSPEND;
    }
    let h = PullMessageRequestHeader {
        consumer_group: "test_cg".into(),
        topic: topic.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: max,
        sys_flag: flag,
        commit_offset: 0,
        suspend_timeout_millis: suspend.map_or(0, |d| d.as_millis() as i64),
        subscription: sub.map(str::to_owned),
        sub_version: now_ms(),
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
        request_source: None,
        broker_name: None,
    };
    let mut cmd = RemotingCommand::request(request::PULL_MESSAGE);
    cmd.ext = h.to_ext();
    cmd
}

pub async fn pull_raw(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
    max: i32,
    sub: Option<&str>,
) -> RemotingCommand {
    c.invoke(
        broker,
        pull_cmd(topic, queue_id, offset, max, sub, None),
        CALL,
    )
    .await
    .unwrap_or_else(|e| panic!("pull {topic}/{queue_id}@{offset} failed: {e}"))
}

/// Decodes a pull body checking every record's body CRC.
pub fn decode_checked(body: &Bytes) -> Vec<MessageExt> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let m =
            decode_record(body, at, true).unwrap_or_else(|e| panic!("corrupt record at {at}: {e}"));
        at += m.store_size as usize;
        out.push(m);
    }
    out
}

/// Pulls a whole queue from offset 0 (stopping at the max offset), every
/// record decoded with its CRC checked.
pub async fn pull_all(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    queue_id: i32,
) -> Vec<MessageExt> {
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..10_000 {
        let r = pull_raw(c, broker, topic, queue_id, offset, 32, None).await;
        match r.code {
            response::SUCCESS => {
                let h = PullMessageResponseHeader::from_ext(&r.ext).unwrap();
                let msgs = decode_checked(&r.body_bytes());
                assert!(!msgs.is_empty(), "FOUND with an empty body");
                assert!(h.next_begin_offset > offset, "no progress at {offset}");
                offset = h.next_begin_offset;
                out.extend(msgs);
            }
            response::PULL_NOT_FOUND => return out,
            response::PULL_RETRY_IMMEDIATELY => {
                let h = PullMessageResponseHeader::from_ext(&r.ext).unwrap();
                offset = h.next_begin_offset;
            }
            code => panic!(
                "pull {topic}/{queue_id}@{offset}: code {code} {:?}",
                r.remark
            ),
        }
    }
    panic!("pull_all did not finish");
}

/// GET_MAX_OFFSET / GET_MIN_OFFSET.
pub async fn queue_offset(
    c: &RemotingClient,
    broker: &str,
    code: i32,
    topic: &str,
    queue_id: i32,
) -> i64 {
    let h = QueueRequestHeader {
        topic: topic.into(),
        queue_id,
        committed: None,
    };
    let r = call(c, broker, code, h.to_ext(), None).await;
    assert_eq!(
        r.code,
        response::SUCCESS,
        "offset query {code}: {:?}",
        r.remark
    );
    OffsetResponseHeader::from_ext(&r.ext).unwrap().offset
}

/// Retries `f` until it returns `Some` or `within` passes.
pub async fn eventually<T, F, Fut>(within: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the name server has a route for `topic`.
pub async fn wait_route(c: &RemotingClient, namesrv: &str, topic: &str) -> Bytes {
    eventually(Duration::from_secs(5), || async {
        let r = call(
            c,
            namesrv,
            request::GET_ROUTEINFO_BY_TOPIC,
            ext(&[("topic", topic)]),
            None,
        )
        .await;
        (r.code == response::SUCCESS).then(|| r.body_bytes())
    })
    .await
    .unwrap_or_else(|| panic!("no route for {topic} on {namesrv}"))
}

/// Deterministic pseudo-random bytes (xorshift), so bodies differ.
pub fn pseudo_body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 0xff) as u8
        })
        .collect()
}

// ------------------------------------------------- consumption helpers

/// Commit-log offset of a stored message from its offset message id.
pub fn phys_of(offset_msg_id: &str) -> i64 {
    let tail = &offset_msg_id[offset_msg_id.len().saturating_sub(16)..];
    i64::from_str_radix(tail, 16).expect("offset msg id")
}

/// CONSUMER_SEND_MSG_BACK; returns the raw response.
pub async fn send_back(
    c: &RemotingClient,
    broker: &str,
    group: &str,
    phys: i64,
    delay_level: i32,
    max_reconsume: Option<i32>,
) -> RemotingCommand {
    let off = phys.to_string();
    let lvl = delay_level.to_string();
    let mut e = ext(&[("offset", &off), ("group", group), ("delayLevel", &lvl)]);
    if let Some(m) = max_reconsume {
        e.insert("maxReconsumeTimes", m.to_string());
    }
    call(c, broker, request::CONSUMER_SEND_MSG_BACK, e, None).await
}

/// Waits until queue `topic/queue_id` holds at least `n` messages; returns
/// them all.
pub async fn wait_messages(
    c: &RemotingClient,
    broker: &str,
    topic: &str,
    queue_id: i32,
    n: usize,
    within: Duration,
) -> Vec<MessageExt> {
    let deadline = Instant::now() + within;
    loop {
        let got = if topic_config(c, broker, topic).await.code == response::SUCCESS {
            pull_all(c, broker, topic, queue_id).await
        } else {
            Vec::new()
        };
        if got.len() >= n || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// HEART_BEAT registering `client_id` with producer groups and consumer
/// data (JSON values of `ConsumerData`).
pub async fn heartbeat(
    c: &RemotingClient,
    broker: &str,
    client_id: &str,
    producers: &[&str],
    consumers: Vec<serde_json::Value>,
) -> RemotingCommand {
    let body = serde_json::json!({
        "clientID": client_id,
        "producerDataSet": producers.iter().map(|g| serde_json::json!({"groupName": g})).collect::<Vec<_>>(),
        "consumerDataSet": consumers,
    });
    call(
        c,
        broker,
        request::HEART_BEAT,
        ExtFields::default(),
        Some(Bytes::from(body.to_string())),
    )
    .await
}

/// A push consumer's `ConsumerData` subscribing `topics` with `sub`.
pub fn consumer_data(group: &str, model: &str, topics: &[(&str, &str, &str)]) -> serde_json::Value {
    serde_json::json!({
        "groupName": group,
        "consumeType": "CONSUME_PASSIVELY",
        "messageModel": model,
        "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET",
        "unitMode": false,
        "subscriptionDataSet": topics.iter().map(|(t, expr, ty)| serde_json::json!({
            "classFilterMode": false, "topic": t, "subString": expr, "tagsSet": [],
            "codeSet": [], "subVersion": now_ms(), "expressionType": ty
        })).collect::<Vec<_>>(),
    })
}

// ------------------------------------------------------------ POP helpers

/// One POP_MESSAGE as a test builds it.
#[derive(Debug, Clone)]
pub struct PopCall<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    pub queue_id: i32,
    pub max: i32,
    pub invisible_ms: i64,
    pub poll_ms: i64,
    pub order: bool,
    pub attempt_id: Option<&'a str>,
}

impl<'a> PopCall<'a> {
    pub fn new(group: &'a str, topic: &'a str) -> PopCall<'a> {
        PopCall {
            group,
            topic,
            queue_id: -1,
            max: 32,
            invisible_ms: 60_000,
            poll_ms: 0,
            order: false,
            attempt_id: None,
        }
    }
}

/// A POP response with each message's receipt handle, built as RocketMQ's
/// remoting client does (`MQClientAPIImpl#processPopResponse`): `POP_CK`
/// when the record has one, else from `startOffsetInfo` / `msgOffsetInfo`.
#[derive(Debug)]
pub struct Popped {
    pub code: i32,
    pub remark: Option<String>,
    pub ext: ExtFields,
    /// (message, handle) pairs.
    pub msgs: Vec<(MessageExt, String)>,
}

pub async fn pop_raw(
    c: &RemotingClient,
    broker: &str,
    broker_name: &str,
    p: &PopCall<'_>,
) -> Popped {
    let mut e = ext(&[
        ("consumerGroup", p.group),
        ("topic", p.topic),
        ("expType", "TAG"),
        ("exp", "*"),
    ]);
    e.insert("queueId", p.queue_id.to_string());
    e.insert("maxMsgNums", p.max.to_string());
    e.insert("invisibleTime", p.invisible_ms.to_string());
    e.insert("pollTime", p.poll_ms.to_string());
    e.insert("bornTime", now_ms().to_string());
    e.insert("initMode", "0");
    e.insert("order", p.order.to_string());
    if let Some(a) = p.attempt_id {
        e.insert("attemptId", a);
    }
    let mut cmd = RemotingCommand::request(actormq::wire::codes::request::POP_MESSAGE);
    cmd.ext = e;
    let r = c
        .invoke(
            broker,
            cmd,
            CALL + Duration::from_millis(p.poll_ms.max(0) as u64),
        )
        .await
        .unwrap_or_else(|e| panic!("pop {} failed: {e}", p.topic));
    let msgs = if r.code == response::SUCCESS {
        let h = actormq::wire::headers::pop::PopMessageResponseHeader::from_ext(&r.ext)
            .expect("pop response header");
        decode_checked(&r.body_bytes())
            .into_iter()
            .map(|m| {
                let handle = handle_of(&m, &h, p.group, broker_name);
                (m, handle)
            })
            .collect()
    } else {
        Vec::new()
    };
    Popped {
        code: r.code,
        remark: r.remark.clone(),
        ext: r.ext.clone(),
        msgs,
    }
}

fn handle_of(
    m: &MessageExt,
    h: &actormq::wire::headers::pop::PopMessageResponseHeader,
    group: &str,
    broker_name: &str,
) -> String {
    if let Some(ck) = m.property("POP_CK") {
        return ck.to_owned();
    }
    let (ty, _) = actormq::wire::pop::classify(&m.topic, group);
    let start = h
        .start_offset_info
        .as_deref()
        .unwrap_or_default()
        .split(';')
        .find_map(|e| {
            let f: Vec<&str> = e.split(' ').collect();
            (f.len() == 3 && f[0] == ty.to_string() && f[1] == m.queue_id.to_string())
                .then(|| f[2].to_owned())
        })
        .expect("startOffsetInfo entry of the message's queue");
    format!(
        "{start} {} {} {} {ty} {broker_name} {} {}",
        h.pop_time, h.invisible_time, h.revive_qid, m.queue_id, m.queue_offset
    )
}

/// ACK_MESSAGE for a popped message (the real topic from its handle).
pub async fn pop_ack(
    c: &RemotingClient,
    broker: &str,
    group: &str,
    topic: &str,
    m: &MessageExt,
    handle: &str,
) -> RemotingCommand {
    let h = actormq::wire::pop::Handle::parse(handle).expect("handle");
    let real = actormq::wire::pop::real_topic(topic, group, h.topic_type);
    let mut e = ext(&[
        ("consumerGroup", group),
        ("topic", &real),
        ("extraInfo", handle),
    ]);
    e.insert("queueId", h.queue_id.to_string());
    e.insert("offset", m.queue_offset.to_string());
    call(
        c,
        broker,
        actormq::wire::codes::request::ACK_MESSAGE,
        e,
        None,
    )
    .await
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP with `retryMaxTimes` (and FIFO when `orderly`).
pub async fn create_group(
    c: &RemotingClient,
    broker: &str,
    group: &str,
    retry_max: i32,
    orderly: bool,
) {
    let body = format!(
        r#"{{"groupName":"{group}","consumeEnable":true,"retryMaxTimes":{retry_max},"retryQueueNums":1,"consumeMessageOrderly":{orderly}}}"#
    );
    let r = call(
        c,
        broker,
        request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        ExtFields::default(),
        Some(Bytes::from(body)),
    )
    .await;
    assert_eq!(
        r.code,
        response::SUCCESS,
        "create group {group}: {:?}",
        r.remark
    );
}
