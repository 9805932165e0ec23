//! `actormq`: the ActorMQ command line — servers (`namesrv`, `broker`,
//! `standalone`) and tools (`produce`, `consume`, `admin`, `bench`); the
//! tools take `--tls` and its companions (`actormq::cli::TlsArgs`) anywhere
//! on the line, and so do `--access-key`/`--secret-key`
//! (`actormq::cli::CredentialArgs`), which sign every request.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use actormq::actors::broker::Broker;
use actormq::actors::namesrv::NameServer;
use actormq::actors::server::IoPool;
use actormq::config::{load_properties, BrokerConfig, NamesrvConfig};
use actormq::controller::{ControllerConfig, ControllerNode};

#[derive(Parser)]
#[command(
    name = "actormq",
    version,
    about = "A RocketMQ-compatible message broker built on actors"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    tls: actormq::cli::TlsArgs,
    #[command(flatten)]
    credentials: actormq::cli::CredentialArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a name server (like `mqnamesrv`).
    Namesrv(NamesrvArgs),
    /// Run a broker (like `mqbroker`).
    Broker(BrokerArgs),
    /// Run a controller node of the 5.x controller mode (like `mqcontroller`).
    Controller(ControllerArgs),
    /// Run a name server and a broker in one process (single-node mode).
    Standalone(StandaloneArgs),
    /// Run the 5.x gRPC proxy in CLUSTER mode (like `mqproxy`): its own
    /// process, in front of the brokers the name servers know.
    Proxy(ProxyArgs),
    /// Send messages.
    Produce(actormq::cli::produce::ProduceArgs),
    /// Receive messages.
    Consume(actormq::cli::consume::ConsumeArgs),
    /// Benchmarks against any RocketMQ-compatible cluster.
    #[command(subcommand)]
    Bench(actormq::bench::BenchCmd),
    /// Administration tools (like `mqadmin`).
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Run the name servers and brokers of a cluster file as supervised
    /// child processes (`cluster -c FILE`), or show them (`cluster status`).
    Cluster(ClusterArgs),
}

#[derive(Args)]
struct ClusterArgs {
    /// Cluster file (TOML; see config/cluster-2m.toml).
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<ClusterCmd>,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Show each child's name, pid, role, ports, uptime and restarts.
    Status {
        /// The cluster's dir (instead of reading it from `-c FILE`).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `actormq admin ...`: each tool family flattened in from its module.
#[derive(Subcommand)]
enum AdminCmd {
    #[command(flatten)]
    Query(actormq::cli::query::QueryCommand),
    #[command(flatten)]
    Group(actormq::cli::admin::AdminCmd),
    #[command(flatten)]
    Controller(actormq::cli::controller_admin::ControllerCmd),
}

#[derive(Args)]
struct NamesrvArgs {
    /// Properties file (namesrv.conf).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(short = 'p', long = "print-config")]
    print_config: bool,
    /// Listen port (overrides the file).
    #[arg(long)]
    port: Option<u16>,
}

#[derive(Args)]
struct ControllerArgs {
    /// Properties file (controller.conf: controllerDLegerGroup,
    /// controllerDLegerPeers, controllerDLegerSelfId, controllerStorePath, ...).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct BrokerArgs {
    /// Properties file (broker.conf).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Name server list, `host:port;host:port`.
    #[arg(short = 'n', long = "namesrv-addr")]
    namesrv_addr: Option<String>,
    /// Print the effective configuration and exit.
    #[arg(short = 'p', long = "print-config")]
    print_config: bool,
    /// Listen port (overrides the file).
    #[arg(long)]
    port: Option<u16>,
    /// Store root directory (overrides the file).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Also serve the 5.x gRPC API in this process (LOCAL proxy mode).
    #[arg(long)]
    enable_proxy: bool,
    #[command(flatten)]
    grpc: GrpcArgs,
}

/// The gRPC proxy's options shared by `broker --enable-proxy`,
/// `standalone` and `proxy`.
#[derive(Args)]
struct GrpcArgs {
    /// gRPC port of the 5.x API (`grpcServerPort`; 0 = off in LOCAL mode).
    #[arg(long)]
    grpc_port: Option<u16>,
    /// Proxy settings file (`rmq-proxy.json` keys).
    #[arg(long = "proxy-config")]
    proxy_config: Option<PathBuf>,
}

impl GrpcArgs {
    /// The proxy's settings, and whether its port was asked for.
    fn config(&self) -> (actormq::proxy::ProxyConfig, bool) {
        let mut c = match &self.proxy_config {
            Some(p) => actormq::proxy::ProxyConfig::load(p).unwrap_or_else(|e| fail(e)),
            None => actormq::proxy::ProxyConfig::default(),
        };
        if let Some(p) = self.grpc_port {
            c.grpc_server_port = p;
        }
        (c, self.grpc_port.is_some() || self.proxy_config.is_some())
    }
}

#[derive(Args)]
struct ProxyArgs {
    /// Name server list, `host:port;host:port` (`namesrvAddr`).
    #[arg(short = 'n', long = "namesrv-addr")]
    namesrv_addr: Option<String>,
    /// `rmq-proxy.json`.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// gRPC port (`grpcServerPort`, default 8081).
    #[arg(long)]
    grpc_port: Option<u16>,
}

#[derive(Args)]
struct StandaloneArgs {
    #[arg(long, default_value_t = 9876)]
    namesrv_port: u16,
    #[arg(long, default_value_t = 10911)]
    broker_port: u16,
    /// Store root directory (default ~/store).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Broker properties file (broker.conf keys).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Print the effective broker configuration and exit.
    #[arg(short = 'p', long = "print-config")]
    print_config: bool,
    #[command(flatten)]
    grpc: GrpcArgs,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ACTORMQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("actormq: {msg}");
    std::process::exit(2);
}

fn namesrv_config(a: &NamesrvArgs) -> NamesrvConfig {
    let mut c = NamesrvConfig::default();
    if let Some(p) = &a.config {
        let m = load_properties(p).unwrap_or_else(|e| fail(e));
        c.apply(&m).unwrap_or_else(|e| fail(e));
    }
    if let Some(p) = a.port {
        c.listen_port = p;
    }
    c
}

fn broker_config(config: Option<&PathBuf>) -> BrokerConfig {
    let mut c = BrokerConfig::default();
    if let Some(p) = config {
        let m = load_properties(p).unwrap_or_else(|e| fail(e));
        c.apply(&m).unwrap_or_else(|e| fail(e));
    }
    c
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn run_servers(
    namesrv: Option<NamesrvConfig>,
    broker: Option<BrokerConfig>,
    proxy: Option<(actormq::proxy::ProxyConfig, bool)>,
) {
    let sys = actix::System::new();
    sys.block_on(async move {
        let io_threads = broker.as_ref().map(|b| b.io_threads).unwrap_or(0);
        let pool = IoPool::new(io_threads);
        let ns = match &namesrv {
            Some(c) => Some(
                NameServer::start(c, pool.clone())
                    .await
                    .unwrap_or_else(|e| {
                        fail(format!(
                            "cannot start the name server on port {}: {e}",
                            c.listen_port
                        ))
                    }),
            ),
            None => None,
        };
        let b = match broker {
            Some(c) => Some(
                Broker::start(c, pool.clone())
                    .await
                    .unwrap_or_else(|e| fail(e)),
            ),
            None => None,
        };
        // Controller mode: ids and roles from the controller.
        let _agent = b
            .as_ref()
            .and_then(|b| actormq::controller::broker_agent::start_if_enabled(&b.ctx));
        if let Some(n) = &ns {
            println!(
                "The Name Server boot success. serializeType=JSON, address {}",
                n.addr
            );
        }
        if let Some(b) = &b {
            println!(
                "The broker[{}, {}] boot success. serializeType=JSON and name server is {}",
                b.ctx.cfg.broker_name,
                b.ctx.cfg.broker_addr(),
                b.ctx.cfg.namesrv_addr
            );
        }
        // LOCAL proxy mode: the gRPC API over this broker's services.
        // `required`: the port was asked for; the default one (8081) may be
        // taken (a second node on the host), which only costs the gRPC API.
        let grpc = match (&b, proxy.filter(|(p, _)| p.grpc_server_port != 0)) {
            (Some(b), Some((p, required))) => {
                let svc = actormq::service::broker::BrokerService::new(b.ctx.clone());
                let backend = actormq::proxy::local::LocalBackend::new(svc, pool.clone());
                let port = p.grpc_server_port;
                // Served on the first I/O thread, where the calls it makes run.
                let (tx, rx) = tokio::sync::oneshot::channel();
                pool.first().spawn_fn(move || {
                    let _ = tx.send(tokio::runtime::Handle::current());
                });
                let rt = rx.await.ok();
                match actormq::proxy::ProxyServer::start(p, "0.0.0.0", backend, rt).await {
                    Ok(s) => {
                        let port = s.addr.port();
                        println!("The gRPC proxy (LOCAL mode) boot success, port {port}");
                        Some(s)
                    }
                    Err(e) if required => fail(format!("cannot serve gRPC on port {port}: {e}")),
                    Err(e) => {
                        tracing::warn!(port, error = %e, "gRPC API off: its default port is taken");
                        None
                    }
                }
            }
            _ => None,
        };
        shutdown_signal().await;
        println!("shutting down...");
        if let Some(g) = grpc {
            g.stop().await;
        }
        if let Some(b) = b {
            b.shutdown().await;
        }
        if let Some(n) = ns {
            n.stop();
        }
        pool.stop();
        actix::System::current().stop();
    });
    let _ = sys.run();
}

fn run_controller(a: &ControllerArgs) {
    let m = match &a.config {
        Some(p) => load_properties(p).unwrap_or_else(|e| fail(e)),
        None => Default::default(),
    };
    let cfg = ControllerConfig::from_properties(&m).unwrap_or_else(|e| fail(e));
    let sys = actix::System::new();
    sys.block_on(async move {
        let pool = IoPool::new(0);
        let node = ControllerNode::start(&cfg, pool.clone())
            .await
            .unwrap_or_else(|e| {
                fail(format!(
                    "cannot start the controller on {}: {e}",
                    cfg.self_addr()
                ))
            });
        println!(
            "The controller {} of group {} boot success, address {}",
            cfg.self_id, cfg.group, node.addr
        );
        shutdown_signal().await;
        println!("shutting down...");
        node.stop();
        pool.stop();
        actix::System::current().stop();
    });
    let _ = sys.run();
}

fn run_tool<F: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>>(f: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(e));
    if let Err(e) = rt.block_on(f) {
        fail(e);
    }
}

/// mimalloc commits whole arenas eagerly by default (~14 MiB resident for an
/// idle broker). Its first arena exists before `main`, so the setting that
/// turns this off must be in the environment at exec time: set it and
/// re-exec once (same pid, same arguments).
fn commit_memory_on_demand() {
    #[cfg(unix)]
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            let mut args = std::env::args_os();
            let argv0 = args.next().unwrap_or_default();
            let err = std::process::Command::new(exe)
                .arg0(argv0)
                .args(args)
                .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
                .exec();
            // Only reached when exec failed: carry on with eager commit.
            eprintln!("actormq: re-exec for on-demand memory commit failed: {err}");
        }
    }
}

/// RocketMQ habits: invoked through a link named `mqnamesrv`, `mqbroker` or
/// `mqadmin`, the binary acts as that command.
fn args_with_alias() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let name = args
        .first()
        .and_then(|a| {
            std::path::Path::new(a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let sub = match name.as_str() {
        "mqnamesrv" => Some("namesrv"),
        "mqbroker" => Some("broker"),
        "mqadmin" => Some("admin"),
        "mqcontroller" => Some("controller"),
        _ => None,
    };
    if let Some(sub) = sub {
        args.insert(1, sub.into());
    }
    args
}

fn main() {
    commit_memory_on_demand();
    let cli = Cli::parse_from(args_with_alias());
    let is_server = matches!(
        cli.cmd,
        Cmd::Namesrv(_) | Cmd::Broker(_) | Cmd::Standalone(_) | Cmd::Proxy(_) | Cmd::Controller(_)
    );
    if is_server && cli.tls.enabled() {
        fail("--tls options are for the tools; servers take the tls.* keys of their config file");
    }
    if let Err(e) = cli.tls.install() {
        fail(format!("TLS: {e}"));
    }
    if is_server && cli.credentials.enabled() {
        fail("--access-key/--secret-key are for the tools; servers take innerClientAuthenticationCredentials from their config file");
    }
    cli.credentials.install();
    match cli.cmd {
        Cmd::Namesrv(a) => {
            let c = namesrv_config(&a);
            if a.print_config {
                print!("{}{}", c.print(), c.tls.print());
                return;
            }
            init_logging();
            run_servers(Some(c), None, None);
        }
        Cmd::Controller(a) => {
            init_logging();
            run_controller(&a);
        }
        Cmd::Broker(a) => {
            let mut c = broker_config(a.config.as_ref());
            if let Some(n) = a.namesrv_addr {
                c.namesrv_addr = n;
            }
            if let Some(p) = a.port {
                c.listen_port = p;
            }
            if let Some(s) = a.store {
                c.store_path_root_dir = s;
            }
            if a.print_config {
                print!("{}{}", c.print(), c.tls.print());
                return;
            }
            let proxy = a.enable_proxy.then(|| a.grpc.config());
            init_logging();
            run_servers(None, Some(c), proxy);
        }
        Cmd::Standalone(a) => {
            let ns = NamesrvConfig {
                listen_port: a.namesrv_port,
                ..NamesrvConfig::default()
            };
            let mut b = broker_config(a.config.as_ref());
            // One file for both: the name server speaks the broker's TLS.
            let ns = NamesrvConfig {
                tls: b.tls.clone(),
                ..ns
            };
            b.listen_port = a.broker_port;
            b.namesrv_addr = format!("127.0.0.1:{}", a.namesrv_port);
            if let Some(s) = a.store {
                b.store_path_root_dir = s;
            }
            // One node, one set of users: the name server takes the
            // broker file's authentication keys, its users and ACLs live
            // in the store's config directory beside the broker's.
            let mut ns = ns;
            ns.auth = actormq::auth::settings::AuthSettings::from_properties(&b.unknown, "")
                .unwrap_or_else(|e| fail(e));
            if ns.auth.enabled() {
                ns.kv_config_path = b.store_path_root_dir.join("namesrv").join("kvConfig.json");
            }
            if a.print_config {
                print!("{}{}", b.print(), b.tls.print());
                return;
            }
            let proxy = a.grpc.config();
            init_logging();
            run_servers(Some(ns), Some(b), Some(proxy));
        }
        Cmd::Proxy(a) => {
            let mut c = match &a.config {
                Some(p) => actormq::proxy::ProxyConfig::load(p).unwrap_or_else(|e| fail(e)),
                None => actormq::proxy::ProxyConfig::default(),
            };
            if let Some(n) = a.namesrv_addr {
                c.namesrv_addr = n;
            }
            if let Some(p) = a.grpc_port {
                c.grpc_server_port = p;
            }
            if c.namesrv_addr.is_empty() {
                fail("proxy: give the name servers with -n or namesrvAddr");
            }
            init_logging();
            run_tool(async move {
                let backend = actormq::proxy::cluster::ClusterBackend::new(&c)?;
                backend.start_auth(&c).await;
                let s = actormq::proxy::ProxyServer::start(c, "0.0.0.0", backend, None).await?;
                println!(
                    "The gRPC proxy (CLUSTER mode) boot success, port {}",
                    s.addr.port()
                );
                shutdown_signal().await;
                s.stop().await;
                Ok(())
            })
        }
        Cmd::Produce(a) => run_tool(actormq::cli::produce::run(a)),
        Cmd::Consume(a) => run_tool(actormq::cli::consume::run(a)),
        Cmd::Admin(AdminCmd::Query(q)) => run_tool(actormq::cli::query::run(q)),
        Cmd::Admin(AdminCmd::Group(c)) => run_tool(actormq::cli::admin::run_admin(c)),
        Cmd::Admin(AdminCmd::Controller(c)) => run_tool(actormq::cli::controller_admin::run(c)),
        Cmd::Cluster(a) => {
            let code = match a.cmd {
                Some(ClusterCmd::Status { dir }) => {
                    actormq::cluster::print_status(a.config.as_deref(), dir.as_deref())
                }
                None => match a.config {
                    Some(f) => actormq::cluster::run(&f),
                    None => fail("cluster: give the cluster file with -c FILE"),
                },
            };
            std::process::exit(code);
        }
        Cmd::Bench(b) => run_tool(async move {
            actormq::bench::run(b)
                .await
                .map_err(|e| e.to_string().into())
        }),
    }
}

/// mimalloc: the send path allocates per message (header strings, response
/// fields); glibc malloc/free were ~17 % of broker CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
