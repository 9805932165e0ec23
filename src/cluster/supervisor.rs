//! The supervisor of `actormq cluster`: runs every child of a
//! [`ClusterSpec`] as a process of this same binary, relays their output,
//! restarts the ones that die and stops them in order.
//!
//! * Start: each child's config file (`namesrv.conf` / `broker.conf`, as
//!   RocketMQ's `NamesrvStartup` / `BrokerStartup` read them) is written to
//!   `<dir>/<name>/`; name servers start first, brokers (and controllers)
//!   once every name server accepts connections (or after
//!   [`NAMESRV_WAIT`]), proxies once every broker does (or after
//!   [`BROKER_WAIT`]).
//! * Children: `current_exe() namesrv|controller|broker|proxy -c FILE`, in a process group of
//!   their own (a terminal's Ctrl-C reaches the supervisor only, which then
//!   stops them in order), with `PR_SET_PDEATHSIG` = SIGKILL so none outlives
//!   a supervisor killed with SIGKILL. Every line a child prints on stdout
//!   or stderr is printed as `[name] line`, and appended to
//!   `<logDir>/<name>.log` when the file sets `logDir`.
//! * Restarts: a child that exits while the cluster runs is started again
//!   after a backoff doubling from 1 s up to 30 s (reset once a process ran
//!   for [`STABLE`]); its `restarts` count goes up with each new process.
//! * Stop (SIGINT / SIGTERM): proxies first, then brokers, then name
//!   servers and controllers; each group
//!   gets SIGTERM, up to the grace period (`stopGraceSecs`) to exit, then
//!   SIGKILL. A second signal skips the rest of the grace period. The
//!   supervisor exits 0 once every child is reaped.
//! * Every change is written to the status file ([`super::status`]).
//!
//! The supervisor's own lines are prefixed `[cluster]`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::spec::{ChildKind, ChildSpec, ClusterSpec};
use super::status::{now_ms, ChildStatus, ClusterStatus};

/// First restart delay; doubles per consecutive failure.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest restart delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A process that ran this long resets the backoff.
pub const STABLE: Duration = Duration::from_secs(60);
/// How long brokers wait for the name servers to accept connections.
pub const NAMESRV_WAIT: Duration = Duration::from_secs(15);
/// How long proxies wait for the brokers to accept connections.
pub const BROKER_WAIT: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_millis(100);

/// The last SIGINT / SIGTERM received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// A line of the supervisor's own (write errors, e.g. a closed pipe, are
/// ignored: the children must still be stopped).
fn say(msg: impl std::fmt::Display) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "[cluster] {msg}");
    let _ = o.flush();
}

/// Relays one output stream of a child, line by line.
fn pump(
    stream: impl Read + Send + 'static,
    name: String,
    log: Option<Arc<Mutex<File>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.trim_end_matches(['\n', '\r']);
                    {
                        let mut o = std::io::stdout().lock();
                        let _ = writeln!(o, "[{name}] {line}");
                        let _ = o.flush();
                    }
                    if let Some(l) = &log {
                        if let Ok(mut f) = l.lock() {
                            let _ = writeln!(f, "{line}");
                        }
                    }
                }
            }
        }
    })
}

fn describe(st: ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "ended".into(),
    }
}

/// The delay before restart number `failures` (1-based) of a run of quick
/// deaths: 1 s, 2 s, 4 s, ... at most 30 s.
pub fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    (BACKOFF_START * (1u32 << shift)).min(BACKOFF_MAX)
}

struct Proc {
    spec: ChildSpec,
    child: Option<Child>,
    started: Option<(Instant, u64)>,
    restarts: u32,
    /// Consecutive deaths without a stable run (drives the backoff).
    failures: u32,
    next_start: Option<(Instant, u64)>,
    state: &'static str,
    last_exit: Option<String>,
    pumps: Vec<JoinHandle<()>>,
    log: Option<Arc<Mutex<File>>>,
}

impl Proc {
    fn status(&self) -> ChildStatus {
        ChildStatus {
            name: self.spec.name.clone(),
            kind: self.spec.kind.key().into(),
            role: self.spec.role.clone(),
            ports: self.spec.ports.clone(),
            pid: self.child.as_ref().map(Child::id),
            state: self.state.into(),
            started_ms: self.started.map(|s| s.1),
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            next_start_ms: self.next_start.map(|s| s.1),
        }
    }

    fn join_pumps(&mut self) {
        for p in self.pumps.drain(..) {
            let _ = p.join();
        }
    }
}

/// The running supervisor.
pub struct Supervisor {
    spec: ClusterSpec,
    exe: PathBuf,
    procs: Vec<Proc>,
    started_ms: u64,
    state: &'static str,
}

impl Supervisor {
    /// Checks that no live supervisor owns the cluster dir, writes every
    /// child's config file and opens the log files.
    pub fn prepare(spec: ClusterSpec) -> Result<Supervisor, String> {
        let status_path = spec.status_path();
        if let Ok(old) = ClusterStatus::read(&status_path) {
            if old.supervisor_alive() && old.supervisor_pid != std::process::id() {
                return Err(format!(
                    "a supervisor (pid {}) already runs the cluster in {}",
                    old.supervisor_pid,
                    spec.dir.display()
                ));
            }
        }
        let exe = std::env::current_exe().map_err(|e| format!("cannot find actormq: {e}"))?;
        let mkdir =
            |d: &PathBuf| std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()));
        mkdir(&spec.dir)?;
        if let Some(l) = &spec.log_dir {
            mkdir(l)?;
        }
        let mut procs = Vec::new();
        for c in &spec.children {
            mkdir(&spec.dir.join(&c.name))?;
            let conf = c.conf_path(&spec.dir);
            std::fs::write(&conf, c.conf_text()).map_err(|e| format!("{}: {e}", conf.display()))?;
            let log = match &spec.log_dir {
                Some(d) => {
                    let p = d.join(format!("{}.log", c.name));
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&p)
                        .map_err(|e| format!("{}: {e}", p.display()))?;
                    Some(Arc::new(Mutex::new(f)))
                }
                None => None,
            };
            procs.push(Proc {
                spec: c.clone(),
                child: None,
                started: None,
                restarts: 0,
                failures: 0,
                next_start: None,
                state: "stopped",
                last_exit: None,
                pumps: Vec::new(),
                log,
            });
        }
        Ok(Supervisor {
            spec,
            exe,
            procs,
            started_ms: now_ms(),
            state: "starting",
        })
    }

    fn write_status(&self) {
        let st = ClusterStatus {
            cluster: self.spec.name.clone(),
            supervisor_pid: std::process::id(),
            state: self.state.into(),
            started_ms: self.started_ms,
            updated_ms: now_ms(),
            children: self.procs.iter().map(Proc::status).collect(),
        };
        if let Err(e) = st.write(&self.spec.status_path()) {
            say(format!("cannot write the status file: {e}"));
        }
    }

    fn spawn(&mut self, i: usize) {
        let parent = std::process::id() as libc::pid_t;
        let p = &mut self.procs[i];
        let mut cmd = Command::new(&self.exe);
        cmd.args(p.spec.args(&self.spec.dir))
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setpgid(0, 0);
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The supervisor died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let first = p.started.is_none() && p.last_exit.is_none();
        match cmd.spawn() {
            Ok(mut child) => {
                // The relays of earlier processes ended with their pipes.
                p.pumps.retain(|h| !h.is_finished());
                if !first {
                    p.restarts += 1;
                }
                let name = p.spec.name.clone();
                if let Some(o) = child.stdout.take() {
                    p.pumps.push(pump(o, name.clone(), p.log.clone()));
                }
                if let Some(e) = child.stderr.take() {
                    p.pumps.push(pump(e, name.clone(), p.log.clone()));
                }
                say(format!(
                    "{} {} {} (pid {}, {}, ports {:?})",
                    if first { "started" } else { "restarted" },
                    p.spec.kind.key(),
                    name,
                    child.id(),
                    p.spec.role,
                    p.spec.ports
                ));
                p.child = Some(child);
                p.started = Some((Instant::now(), now_ms()));
                p.next_start = None;
                p.state = "running";
            }
            Err(e) => {
                say(format!("cannot start {}: {e}", p.spec.name));
                p.last_exit = Some(format!("spawn failed: {e}"));
                p.started = None;
                Self::schedule_restart(p);
            }
        }
        self.write_status();
    }

    fn schedule_restart(p: &mut Proc) {
        if p.started.is_some_and(|(t, _)| t.elapsed() >= STABLE) {
            p.failures = 0;
        }
        p.failures += 1;
        let delay = backoff(p.failures);
        p.next_start = Some((Instant::now() + delay, now_ms() + delay.as_millis() as u64));
        p.state = "restarting";
        say(format!(
            "{} exited ({}); restarting in {} s",
            p.spec.name,
            p.last_exit.as_deref().unwrap_or("?"),
            delay.as_secs()
        ));
    }

    /// Reaps children that exited; schedules their restarts.
    fn reap(&mut self) -> bool {
        let mut changed = false;
        for p in &mut self.procs {
            let Some(c) = p.child.as_mut() else { continue };
            if let Ok(Some(st)) = c.try_wait() {
                p.child = None;
                p.last_exit = Some(describe(st));
                Self::schedule_restart(p);
                changed = true;
            }
        }
        changed
    }

    /// Waits until every port accepts connections, at most `within`
    /// (children that died meanwhile are reaped and rescheduled).
    fn wait_ports(&mut self, ports: &[u16], within: Duration, what: &str, next: &str) {
        let deadline = Instant::now() + within;
        while !Self::interrupted()
            && !ports
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        {
            if Instant::now() >= deadline {
                say(format!("{what} not reachable yet; starting {next} anyway"));
                break;
            }
            if self.reap() {
                self.write_status();
            }
            std::thread::sleep(TICK);
        }
    }

    fn interrupted() -> bool {
        SIGNAL.load(Ordering::SeqCst) != 0
    }

    /// Starts everything, supervises until SIGINT/SIGTERM, stops everything.
    /// Returns the process exit code.
    pub fn run(mut self) -> i32 {
        install_signal_handlers();
        self.write_status();
        say(format!(
            "cluster {} in {} (supervisor pid {})",
            self.spec.name,
            self.spec.dir.display(),
            std::process::id()
        ));
        let namesrvs: Vec<usize> = (0..self.procs.len())
            .filter(|&i| self.procs[i].spec.kind == ChildKind::Namesrv)
            .collect();
        for &i in &namesrvs {
            self.spawn(i);
        }
        let ns_ports: Vec<u16> = namesrvs
            .iter()
            .map(|&i| self.procs[i].spec.ports[0])
            .collect();
        self.wait_ports(&ns_ports, NAMESRV_WAIT, "name servers", "the brokers");
        for i in 0..self.procs.len() {
            if Self::interrupted() {
                break;
            }
            if !matches!(
                self.procs[i].spec.kind,
                ChildKind::Namesrv | ChildKind::Proxy
            ) {
                self.spawn(i);
            }
        }
        // Proxies find the brokers through the name servers: start them
        // once the brokers accept connections (they registered by then, or
        // do within their first registration round).
        let proxies: Vec<usize> = (0..self.procs.len())
            .filter(|&i| self.procs[i].spec.kind == ChildKind::Proxy)
            .collect();
        if !proxies.is_empty() {
            let broker_ports: Vec<u16> = (self.procs.iter())
                .filter(|p| p.spec.kind == ChildKind::Broker)
                .filter_map(|p| p.spec.ports.first().copied().filter(|p| *p != 0))
                .collect();
            self.wait_ports(&broker_ports, BROKER_WAIT, "brokers", "proxies");
            for i in proxies {
                if Self::interrupted() {
                    break;
                }
                self.spawn(i);
            }
        }
        self.state = "running";
        self.write_status();
        while !Self::interrupted() {
            let mut changed = self.reap();
            let now = Instant::now();
            for i in 0..self.procs.len() {
                if self.procs[i].next_start.is_some_and(|(t, _)| t <= now) {
                    self.spawn(i);
                    changed = false; // spawn wrote the status
                }
            }
            if changed {
                self.write_status();
            }
            std::thread::sleep(TICK);
        }
        let sig = SIGNAL.swap(0, Ordering::SeqCst);
        say(format!("signal {sig}: stopping the cluster"));
        self.stop();
        0
    }

    /// Stops proxies, brokers, then name servers: SIGTERM, grace period,
    /// SIGKILL.
    fn stop(&mut self) {
        self.state = "stopping";
        for p in &mut self.procs {
            if p.child.is_none() {
                p.next_start = None;
                p.state = "stopped";
            }
        }
        self.write_status();
        let mut ranks: Vec<u8> = self.procs.iter().map(|p| p.spec.kind.stop_rank()).collect();
        ranks.sort_unstable_by(|a, b| b.cmp(a));
        ranks.dedup();
        for rank in ranks {
            let group: Vec<usize> = (0..self.procs.len())
                .filter(|&i| self.procs[i].spec.kind.stop_rank() == rank)
                .collect();
            self.stop_group(&group);
        }
        self.state = "stopped";
        self.write_status();
        say("all children stopped");
    }

    fn stop_group(&mut self, group: &[usize]) {
        for &i in group {
            let p = &mut self.procs[i];
            if let Some(c) = &p.child {
                say(format!(
                    "stopping {} {} (pid {})",
                    p.spec.kind.key(),
                    p.spec.name,
                    c.id()
                ));
                // SAFETY: a plain kill(2) of our own child.
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
                p.state = "stopping";
            }
        }
        self.write_status();
        let deadline = Instant::now() + self.spec.stop_grace;
        let mut killed = false;
        loop {
            let mut left = 0;
            for &i in group {
                let p = &mut self.procs[i];
                let Some(c) = p.child.as_mut() else { continue };
                match c.try_wait() {
                    Ok(Some(st)) => {
                        p.child = None;
                        p.join_pumps();
                        p.last_exit = Some(describe(st));
                        p.state = "stopped";
                        say(format!(
                            "{} {} stopped ({})",
                            p.spec.kind.key(),
                            p.spec.name,
                            describe(st)
                        ));
                        self.write_status();
                    }
                    Ok(None) => left += 1,
                    Err(_) => {
                        p.child = None;
                        p.state = "stopped";
                    }
                }
            }
            if left == 0 {
                break;
            }
            let again = SIGNAL.swap(0, Ordering::SeqCst) != 0;
            if !killed && (again || Instant::now() >= deadline) {
                killed = true;
                for &i in group {
                    let p = &mut self.procs[i];
                    if let Some(c) = p.child.as_mut() {
                        say(format!("{} did not stop in time: SIGKILL", p.spec.name));
                        let _ = c.kill();
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_thirty() {
        let got: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
