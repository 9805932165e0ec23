//! The cluster file (TOML): which name servers and brokers `actormq cluster`
//! runs, parsed and validated into a [`ClusterSpec`].
//!
//! ```toml
//! [cluster]
//! name = "DefaultCluster"          # brokerClusterName of every broker
//! dir = "/tmp/actormq-cluster"     # generated configs, stores, status file
//! logDir = "logs"                  # optional: <logDir>/<name>.log per child
//! stopGraceSecs = 15               # SIGTERM → SIGKILL grace on shutdown
//!
//! [[namesrv]]                      # RocketMQ's NamesrvStartup
//! name = "ns1"
//! port = 9876                      # namesrv.conf's listenPort
//!
//! [[broker]]                       # RocketMQ's BrokerStartup; every other
//! name = "broker-a-0"              # entry is a broker.conf key
//! listenPort = 10911
//! brokerName = "broker-a"
//! brokerId = 0
//! brokerRole = "SYNC_MASTER"
//! ```
//!
//! A kind's entries may also be written as named tables (`[broker.b0]`
//! with `name` taken from the table key). Every entry other than `name`
//! (and a name server's `port`) is a RocketMQ config key, written verbatim
//! to the child's generated `broker.conf` / `namesrv.conf`: strings, numbers
//! and booleans only. A broker gets `brokerClusterName` (the cluster name),
//! `namesrvAddr` (every name server, `127.0.0.1:port;...`) and
//! `storePathRootDir` (`<dir>/<name>/store`) unless it sets them.
//!
//! `[[controller]]` (RocketMQ's `ControllerStartup`): `port` is its peer
//! port (9878); `controllerDLegerPeers` (every controller, `n0`, `n1`, ...
//! in file order), `controllerDLegerSelfId`, `controllerDLegerGroup` and
//! `controllerStorePath` (`<dir>/<name>/controller`) are filled in unless
//! set. A broker with `enableControllerMode = true` gets `controllerAddr`
//! (every controller, or every name server with
//! `enableControllerInNamesrv = true`) unless it sets it.
//!
//! `[[proxy]]` (RocketMQ's `ProxyStartup` in CLUSTER mode, `actormq proxy`):
//! every entry other than `name` is an `rmq-proxy.json` key, written with
//! its TOML type to the child's generated `<dir>/<name>/rmq-proxy.json`;
//! `namesrvAddr` (every name server) and `rocketMQClusterName` (the
//! cluster's name) are filled in unless set; `grpcServerPort` (8081) is its
//! port. Proxies start once the brokers accept connections and stop first.
//!
//! Validation rejects, with the file and the offending entry named: an
//! unknown kind, a
//! missing or duplicate name, a name unusable as a file name, a port used
//! twice (a broker's `listenPort` and its HA port, `haListenPort` or
//! listenPort + 1 as in Java's `MessageStoreConfig.haListenPort`), and
//! values the broker or name server itself would refuse.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{BrokerConfig, NamesrvConfig};

/// What a child process is (in start order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildKind {
    Namesrv,
    /// RocketMQ 5's `ControllerStartup` (`actormq controller`).
    Controller,
    Broker,
    /// RocketMQ 5's `ProxyStartup` in CLUSTER mode (`actormq proxy`).
    Proxy,
}

impl ChildKind {
    /// The key of its tables in the file, and the `actormq` subcommand.
    pub fn key(self) -> &'static str {
        match self {
            ChildKind::Namesrv => "namesrv",
            ChildKind::Controller => "controller",
            ChildKind::Broker => "broker",
            ChildKind::Proxy => "proxy",
        }
    }

    /// Order of shutdown: higher stops first (proxies, then brokers, then
    /// name servers and controllers).
    pub fn stop_rank(self) -> u8 {
        match self {
            ChildKind::Proxy => 2,
            ChildKind::Broker => 1,
            ChildKind::Namesrv | ChildKind::Controller => 0,
        }
    }

    fn conf_file(self) -> &'static str {
        match self {
            ChildKind::Namesrv => "namesrv.conf",
            ChildKind::Controller => "controller.conf",
            ChildKind::Broker => "broker.conf",
            ChildKind::Proxy => "rmq-proxy.json",
        }
    }
}

/// One child process of the cluster.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub name: String,
    pub kind: ChildKind,
    /// `namesrv`, or the broker's role (`ASYNC_MASTER`, `SYNC_MASTER`, `SLAVE`).
    pub role: String,
    /// Ports it listens on (the first one serves clients).
    pub ports: Vec<u16>,
    /// The properties of its generated config file.
    pub props: BTreeMap<String, String>,
    /// A proxy's `rmq-proxy.json` keys with their JSON types (`props` holds
    /// the same as text).
    pub json: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ChildSpec {
    /// The generated config file's path.
    pub fn conf_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.name).join(self.kind.conf_file())
    }

    /// The config file's text (`key=value` lines, RocketMQ's properties;
    /// a JSON object for a proxy).
    pub fn conf_text(&self) -> String {
        if let Some(j) = &self.json {
            let mut s = serde_json::to_string_pretty(j).unwrap_or_else(|_| "{}".into());
            s.push('\n');
            return s;
        }
        let mut s = format!("# generated by `actormq cluster` for {}\n", self.name);
        for (k, v) in &self.props {
            s.push_str(&format!("{k}={v}\n"));
        }
        s
    }

    /// Arguments of `actormq` that run it.
    pub fn args(&self, dir: &Path) -> Vec<String> {
        vec![
            self.kind.key().to_owned(),
            "-c".to_owned(),
            self.conf_path(dir).to_string_lossy().into_owned(),
        ]
    }
}

/// A parsed, validated cluster file.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub name: String,
    /// Absolute.
    pub dir: PathBuf,
    /// Absolute; `None` when children's output is not kept in files.
    pub log_dir: Option<PathBuf>,
    pub stop_grace: Duration,
    /// Name servers first, then brokers, each in file order.
    pub children: Vec<ChildSpec>,
}

/// Where the cluster keeps its files when the file names no `dir`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("actormq-cluster")
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    }
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n != "."
        && n != ".."
        && n != "cluster"
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl ClusterSpec {
    /// Reads and validates a cluster file.
    pub fn load(path: &Path) -> Result<ClusterSpec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and validates a cluster file's text.
    pub fn parse(text: &str) -> Result<ClusterSpec, String> {
        let root: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            format!("not a valid TOML file: {}", e.message().trim())
        })?;
        let mut name = "DefaultCluster".to_owned();
        let mut dir = default_dir();
        let mut log_dir = None;
        let mut stop_grace = Duration::from_secs(15);
        // (kind, entry name, entries) in file order per kind.
        let mut raw: Vec<(ChildKind, String, toml::Table)> = Vec::new();
        for (key, v) in &root {
            let kind = match key.as_str() {
                "cluster" => {
                    let t = v.as_table().ok_or("[cluster] must be a table")?;
                    for (k, v) in t {
                        let s = scalar(v).ok_or_else(|| format!("cluster.{k}: not a value"))?;
                        match k.as_str() {
                            "name" => name = s,
                            "dir" => dir = absolute(PathBuf::from(s)),
                            "logDir" => log_dir = Some(PathBuf::from(s)),
                            "stopGraceSecs" => {
                                let n: u64 = s.parse().map_err(|_| {
                                    format!("cluster.stopGraceSecs: `{s}` is not a number of seconds")
                                })?;
                                stop_grace = Duration::from_secs(n);
                            }
                            _ => {
                                return Err(format!(
                                    "cluster.{k}: unknown key (known: name, dir, logDir, stopGraceSecs)"
                                ))
                            }
                        }
                    }
                    continue;
                }
                "namesrv" => ChildKind::Namesrv,
                "broker" => ChildKind::Broker,
                "controller" => ChildKind::Controller,
                "proxy" => ChildKind::Proxy,
                other => {
                    return Err(format!(
                    "[{other}]: unknown kind (known: cluster, namesrv, controller, broker, proxy)"
                ))
                }
            };
            match v {
                toml::Value::Array(items) => {
                    for (i, it) in items.iter().enumerate() {
                        let t = it
                            .as_table()
                            .ok_or_else(|| format!("{key}[{i}]: must be a table ([[{key}]])"))?;
                        let n = t
                            .get("name")
                            .and_then(|n| n.as_str())
                            .ok_or_else(|| format!("{key}[{i}]: missing `name` (a string)"))?;
                        raw.push((kind, n.to_owned(), t.clone()));
                    }
                }
                toml::Value::Table(named) => {
                    for (n, it) in named {
                        let t = it
                            .as_table()
                            .ok_or_else(|| format!("{key}.{n}: must be a table ([{key}.{n}])"))?;
                        if let Some(inner) = t.get("name").and_then(|x| x.as_str()) {
                            if inner != n {
                                return Err(format!(
                                    "{key}.{n}: `name = \"{inner}\"` differs from the table name"
                                ));
                            }
                        }
                        raw.push((kind, n.clone(), t.clone()));
                    }
                }
                _ => return Err(format!("`{key}` must be [[{key}]] tables")),
            }
        }
        let log_dir = log_dir.map(|l| if l.is_absolute() { l } else { dir.join(l) });
        raw.sort_by_key(|(k, _, _)| *k);
        if raw.is_empty() {
            return Err("no [[namesrv]] or [[broker]] to run".into());
        }
        let controllers = controller_peers(&raw)?;
        let namesrv_addr = raw
            .iter()
            .filter(|(k, _, _)| *k == ChildKind::Namesrv)
            .map(|(_, n, t)| {
                let port = match t.get("port").or_else(|| t.get("listenPort")) {
                    Some(v) => v
                        .as_integer()
                        .and_then(|p| u16::try_from(p).ok())
                        .ok_or_else(|| format!("namesrv {n}: port must be a port number"))?,
                    None => 9876,
                };
                Ok(format!("127.0.0.1:{port}"))
            })
            .collect::<Result<Vec<_>, String>>()?
            .join(";");
        let mut names: HashMap<String, ChildKind> = HashMap::new();
        let mut ports: HashMap<u16, String> = HashMap::new();
        let mut children = Vec::new();
        for (kind, n, t) in raw {
            let what = format!("{} {n}", kind.key());
            if !valid_name(&n) {
                return Err(format!(
                    "{what}: invalid name (letters, digits, '-', '_', '.'; not `cluster`)"
                ));
            }
            if names.insert(n.clone(), kind).is_some() {
                return Err(format!("{what}: duplicate name `{n}`"));
            }
            let mut props = BTreeMap::new();
            let mut json = None;
            for (k, v) in &t {
                if k == "name" {
                    continue;
                }
                let s = scalar(v)
                    .ok_or_else(|| format!("{what}: `{k}` must be a string, number or boolean"))?;
                let k = if kind == ChildKind::Namesrv && k == "port" {
                    "listenPort"
                } else {
                    k.as_str()
                };
                props.insert(k.to_owned(), s);
            }
            let child_dir = dir.join(&n);
            if !matches!(kind, ChildKind::Namesrv | ChildKind::Proxy) {
                props.remove("port");
            }
            let (role, child_ports) = match kind {
                ChildKind::Controller => {
                    let (i, port) = controllers
                        .ids
                        .iter()
                        .position(|c| *c == n)
                        .map(|i| (i, controllers.ports[i]))
                        .unwrap_or((0, 9878));
                    props
                        .entry("controllerDLegerGroup".into())
                        .or_insert_with(|| format!("{name}-controller"));
                    props
                        .entry("controllerDLegerPeers".into())
                        .or_insert_with(|| controllers.peers());
                    props
                        .entry("controllerDLegerSelfId".into())
                        .or_insert_with(|| format!("n{i}"));
                    props
                        .entry("controllerStorePath".into())
                        .or_insert_with(|| child_dir.join("controller").to_string_lossy().into());
                    crate::controller::ControllerConfig::from_properties(&props)
                        .map_err(|e| format!("{what}: {e}"))?;
                    ("controller".to_owned(), vec![port])
                }
                ChildKind::Namesrv => {
                    props
                        .entry("listenPort".into())
                        .or_insert_with(|| "9876".into());
                    props.entry("kvConfigPath".into()).or_insert_with(|| {
                        child_dir.join("kvConfig.json").to_string_lossy().into()
                    });
                    let mut c = NamesrvConfig::default();
                    c.apply(&props).map_err(|e| format!("{what}: {e}"))?;
                    ("namesrv".to_owned(), vec![c.listen_port])
                }
                ChildKind::Broker => {
                    props
                        .entry("brokerClusterName".into())
                        .or_insert_with(|| name.clone());
                    if !namesrv_addr.is_empty() {
                        props
                            .entry("namesrvAddr".into())
                            .or_insert_with(|| namesrv_addr.clone());
                    }
                    props
                        .entry("storePathRootDir".into())
                        .or_insert_with(|| child_dir.join("store").to_string_lossy().into());
                    if props
                        .get("enableControllerMode")
                        .is_some_and(|v| v == "true")
                        && !controllers.addrs.is_empty()
                    {
                        props
                            .entry("controllerAddr".into())
                            .or_insert_with(|| controllers.addrs.join(";"));
                    }
                    let mut c = BrokerConfig::default();
                    c.apply(&props).map_err(|e| format!("{what}: {e}"))?;
                    let mut p = vec![c.listen_port];
                    match c.ha.listen_port {
                        Some(0) => {}
                        Some(h) => p.push(h),
                        None if c.listen_port != 0 => p.push(c.listen_port.wrapping_add(1)),
                        None => {}
                    }
                    (c.broker_role.to_string(), p)
                }
                ChildKind::Proxy => {
                    let (j, port) =
                        proxy_json(&t, &name, &namesrv_addr).map_err(|e| format!("{what}: {e}"))?;
                    props = j
                        .iter()
                        .map(|(k, v)| {
                            let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                            (k.clone(), s)
                        })
                        .collect();
                    json = Some(j);
                    ("proxy".to_owned(), vec![port])
                }
            };
            for p in child_ports.iter().copied().filter(|p| *p != 0) {
                if let Some(other) = ports.insert(p, n.clone()) {
                    return Err(format!(
                        "{what}: port {p} is already used by {}",
                        if other == n {
                            "itself".to_owned()
                        } else {
                            other
                        }
                    ));
                }
            }
            children.push(ChildSpec {
                name: n,
                kind,
                role,
                ports: child_ports,
                props,
                json,
            });
        }
        Ok(ClusterSpec {
            name,
            dir,
            log_dir,
            stop_grace,
            children,
        })
    }

    /// The status file's path.
    pub fn status_path(&self) -> PathBuf {
        status_path(&self.dir)
    }
}

/// A proxy entry as its `rmq-proxy.json` object (TOML types kept), with
/// the name servers and cluster name filled in, checked by reading it as
/// the proxy would; and its gRPC port.
fn proxy_json(
    t: &toml::Table,
    cluster: &str,
    namesrv_addr: &str,
) -> Result<(serde_json::Map<String, serde_json::Value>, u16), String> {
    let mut j = serde_json::Map::new();
    for (k, v) in t {
        if k == "name" {
            continue;
        }
        let v = match v {
            toml::Value::String(s) => serde_json::Value::from(s.as_str()),
            toml::Value::Integer(i) => serde_json::Value::from(*i),
            toml::Value::Float(f) => serde_json::Value::from(*f),
            toml::Value::Boolean(b) => serde_json::Value::from(*b),
            _ => return Err(format!("`{k}` must be a string, number or boolean")),
        };
        j.insert(k.clone(), v);
    }
    if !namesrv_addr.is_empty() {
        j.entry("namesrvAddr")
            .or_insert_with(|| namesrv_addr.into());
    }
    j.entry("rocketMQClusterName")
        .or_insert_with(|| cluster.into());
    let c: crate::proxy::ProxyConfig = serde_json::from_value(serde_json::Value::Object(j.clone()))
        .map_err(|e| format!("not a valid rmq-proxy.json: {e}"))?;
    if c.namesrv_addr.is_empty() {
        return Err("no name servers: add a [[namesrv]] or set namesrvAddr".into());
    }
    if !c.proxy_mode.eq_ignore_ascii_case("CLUSTER") {
        return Err(format!(
            "proxyMode {}: `actormq cluster` runs proxies in CLUSTER mode (LOCAL is a broker's enableProxy)",
            c.proxy_mode
        ));
    }
    Ok((j, c.grpc_server_port))
}

/// The controllers of a cluster file: their names, peer ports (`port`,
/// default 9878) and the addresses brokers reach them at (a name server
/// with `enableControllerInNamesrv` counts, at its own port).
struct Controllers {
    ids: Vec<String>,
    ports: Vec<u16>,
    addrs: Vec<String>,
}

impl Controllers {
    /// `controllerDLegerPeers`: `n0-127.0.0.1:port;...` in file order.
    fn peers(&self) -> String {
        let p: Vec<String> = (self.ports.iter().enumerate())
            .map(|(i, port)| format!("n{i}-127.0.0.1:{port}"))
            .collect();
        p.join(";")
    }
}

fn controller_peers(raw: &[(ChildKind, String, toml::Table)]) -> Result<Controllers, String> {
    let mut c = Controllers {
        ids: Vec::new(),
        ports: Vec::new(),
        addrs: Vec::new(),
    };
    for (kind, n, t) in raw {
        let port = |key: &str, default: u16| match t.get(key) {
            Some(v) => v
                .as_integer()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| format!("{} {n}: {key} must be a port number", kind.key())),
            None => Ok(default),
        };
        match kind {
            ChildKind::Controller => {
                let p = port("port", 9878)?;
                c.ids.push(n.clone());
                c.ports.push(p);
                c.addrs.push(format!("127.0.0.1:{p}"));
            }
            ChildKind::Namesrv
                if t.get("enableControllerInNamesrv").and_then(|v| v.as_bool()) == Some(true) =>
            {
                let p = port("port", 9876)?;
                c.addrs.push(format!("127.0.0.1:{p}"));
            }
            _ => {}
        }
    }
    Ok(c)
}

/// The status file of the cluster kept under `dir`.
pub fn status_path(dir: &Path) -> PathBuf {
    dir.join("cluster-status.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
        [cluster]
        name = "C1"
        dir = "/tmp/x"
        [[namesrv]]
        name = "ns1"
        port = 9000
        [[broker]]
        name = "b0"
        listenPort = 9100
        brokerName = "a"
        brokerRole = "SYNC_MASTER"
        [[broker]]
        name = "b1"
        listenPort = 9200
        brokerName = "a"
        brokerId = 1
        brokerRole = "SLAVE"
        slaveReadEnable = true
    "#;

    #[test]
    fn parses_and_fills_defaults() {
        let s = ClusterSpec::parse(TWO).unwrap();
        assert_eq!(s.children.len(), 3);
        let b1 = &s.children[2];
        assert_eq!(b1.role, "SLAVE");
        assert_eq!(b1.ports, vec![9200, 9201]);
        assert_eq!(b1.props["namesrvAddr"], "127.0.0.1:9000");
        assert_eq!(b1.props["brokerClusterName"], "C1");
        assert_eq!(b1.props["storePathRootDir"], "/tmp/x/b1/store");
        assert_eq!(b1.props["slaveReadEnable"], "true");
        assert!(b1.conf_text().contains("\nbrokerId=1\n"));
        assert_eq!(s.children[1].role, "SYNC_MASTER");
        assert_eq!(s.children[0].props["listenPort"], "9000");
    }

    #[test]
    fn controllers_get_their_peers_and_brokers_their_addresses() {
        let s = ClusterSpec::parse(
            "[cluster]\nname = \"C\"\ndir = \"/tmp/x\"\n[[namesrv]]\nname = \"ns\"\n\
             [[controller]]\nname = \"c0\"\nport = 9000\n[[controller]]\nname = \"c1\"\nport = 9001\n\
             [[broker]]\nname = \"b0\"\nbrokerName = \"a\"\nenableControllerMode = true\n",
        )
        .unwrap();
        let kinds: Vec<ChildKind> = s.children.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                ChildKind::Namesrv,
                ChildKind::Controller,
                ChildKind::Controller,
                ChildKind::Broker
            ]
        );
        let c1 = &s.children[2];
        assert_eq!(
            c1.props["controllerDLegerPeers"],
            "n0-127.0.0.1:9000;n1-127.0.0.1:9001"
        );
        assert_eq!(c1.props["controllerDLegerSelfId"], "n1");
        assert_eq!(c1.ports, vec![9001]);
        assert!(!c1.props.contains_key("port"));
        assert_eq!(
            s.children[3].props["controllerAddr"],
            "127.0.0.1:9000;127.0.0.1:9001"
        );
        assert_eq!(
            s.children[3].role, "SLAVE",
            "controller mode starts as a slave"
        );
    }

    #[test]
    fn proxies_get_an_rmq_proxy_json_with_the_name_servers() {
        let s = ClusterSpec::parse(&format!(
            "{TWO}\n[[proxy]]\nname = \"p1\"\ngrpcServerPort = 9300\nenableProxyAutoRenew = false\n"
        ))
        .unwrap();
        let p = s.children.last().unwrap();
        assert_eq!(p.kind, ChildKind::Proxy);
        assert_eq!((p.role.as_str(), p.ports.clone()), ("proxy", vec![9300]));
        assert!(p.conf_path(&s.dir).ends_with("p1/rmq-proxy.json"));
        let j: serde_json::Value = serde_json::from_str(&p.conf_text()).unwrap();
        assert_eq!(j["namesrvAddr"], "127.0.0.1:9000");
        assert_eq!(j["rocketMQClusterName"], "C1");
        assert_eq!(j["grpcServerPort"], 9300);
        assert_eq!(j["enableProxyAutoRenew"], false);
        assert_eq!(p.args(&s.dir)[0], "proxy");
        assert!(ChildKind::Proxy.stop_rank() > ChildKind::Broker.stop_rank());
        let e = ClusterSpec::parse(&format!(
            "{TWO}\n[[proxy]]\nname = \"p1\"\ngrpcServerPort = 9100\n"
        ))
        .unwrap_err();
        assert!(e.contains("port 9100 is already used by b0"), "{e}");
    }

    #[test]
    fn rejects_bad_files() {
        let cases = [
            (
                "[[proxy]]\nname = \"p\"\nnamesrvAddr = \"127.0.0.1:1\"\nproxyMode = \"LOCAL\"",
                "CLUSTER mode",
            ),
            (
                "[[proxy]]\nname = \"p\"\nnamesrvAddr = \"127.0.0.1:1\"\ngrpcServerPort = \"x\"",
                "not a valid rmq-proxy.json",
            ),
            (
                "[[controller]]\nname = \"c\"\nscanNotActiveBrokerInterval = 0",
                "scanNotActiveBrokerInterval",
            ),
            ("[[brokr]]\nname = \"p\"", "unknown kind"),
            (
                "[[broker]]\nname = \"a\"\n[[broker]]\nname = \"a\"\nlistenPort = 1",
                "duplicate name",
            ),
            (
                "[[namesrv]]\nname = \"n\"\nport = 10912\n[[broker]]\nname = \"a\"",
                "port 10912",
            ),
            (
                "[[broker]]\nname = \"a\"\nbrokerRole = \"BOSS\"",
                "brokerRole",
            ),
            ("[[broker]]\nname = \"../a\"", "invalid name"),
            ("[[broker]]\nlistenPort = 1", "missing `name`"),
            (
                "[cluster]\nnme = 1\n[[broker]]\nname = \"a\"",
                "unknown key",
            ),
            ("", "no [[namesrv]]"),
        ];
        for (text, want) in cases {
            let e = ClusterSpec::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
