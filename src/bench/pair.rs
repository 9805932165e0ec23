//! A master and its slave as child processes of the current binary, for
//! `bench replication`: the master is `actormq standalone` (its own name
//! server), the slave `actormq broker` following the master's HA port
//! (`haMasterAddress`). Every child gets `PR_SET_PDEATHSIG` = SIGKILL, so
//! none outlives the bench, and is killed when its handle drops.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::target::{client, BenchResult};
use crate::actors::ha::status::{HaRuntimeInfo, GET_BROKER_HA_STATUS};
use crate::client::RemotingClient;
use crate::wire::codes::response;
use crate::wire::RemotingCommand;

/// A child process, killed (and reaped) on drop.
pub(super) struct Proc(Child);

impl Proc {
    /// `kill -9`, then reap.
    pub(super) fn kill9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Sends `sig` (SIGSTOP, SIGCONT, ...).
    pub(super) fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.0.id() as libc::pid_t, sig) };
    }

    pub(super) fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn free_port() -> BenchResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts the current binary with `args`, its output in `log`.
fn spawn(args: &[String], log: &Path) -> BenchResult<Proc> {
    spawn_exe(&std::env::current_exe()?, args, log, "warn")
}

/// Starts `exe` with `args` and `ACTORMQ_LOG=level`, its output in `log`.
pub(super) fn spawn_exe(exe: &Path, args: &[String], log: &Path, level: &str) -> BenchResult<Proc> {
    let out = std::fs::File::create(log)?;
    let parent = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env("ACTORMQ_LOG", level)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    Ok(Proc(cmd.spawn()?))
}

/// Waits up to 30 s until `addr` accepts connections; the error quotes `log`.
pub(super) async fn wait_port(addr: &str, log: &Path) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    Err(format!("{addr} did not open; log {}:\n{text}", log.display()).into())
}

/// `actormq broker` with config file `conf`, name server(s) `namesrv`,
/// listening on `port`, its store in `store`.
pub(super) fn broker_args(conf: &Path, namesrv: &str, port: u16, store: &Path) -> Vec<String> {
    [
        "broker",
        "-c",
        &conf.display().to_string(),
        "-n",
        namesrv,
        "--port",
        &port.to_string(),
        "--store",
        &store.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A master (and maybe its slave) under `dir`.
pub struct Pair {
    pub namesrv: String,
    pub master: String,
    dir: PathBuf,
    ha_port: u16,
    segment: u64,
    slave: Option<Proc>,
    master_proc: Option<Proc>,
}

impl Pair {
    /// Starts a master with `role` and commit-log segments of `segment`
    /// bytes under `dir` (emptied first).
    pub async fn master(dir: &Path, role: &str, segment: u64) -> BenchResult<Pair> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let (ns, port, ha_port) = (free_port()?, free_port()?, free_port()?);
        let conf = dir.join("master.conf");
        std::fs::write(
            &conf,
            format!(
                "brokerName=bench-rep\nbrokerRole={role}\nhaListenPort={ha_port}\n\
                 mapedFileSizeCommitLog={segment}\nbrokerIP1=127.0.0.1\nlistenAddr=127.0.0.1\n"
            ),
        )?;
        let args = [
            "standalone",
            "--namesrv-port",
            &ns.to_string(),
            "--broker-port",
            &port.to_string(),
            "--store",
            &dir.join("master").display().to_string(),
            "-c",
            &conf.display().to_string(),
        ]
        .map(str::to_owned);
        let log = dir.join("master.log");
        let proc = spawn(&args, &log)?;
        let master = format!("127.0.0.1:{port}");
        wait_port(&master, &log).await?;
        Ok(Pair {
            namesrv: format!("127.0.0.1:{ns}"),
            master,
            dir: dir.to_owned(),
            ha_port,
            segment,
            slave: None,
            master_proc: Some(proc),
        })
    }

    /// Starts an empty slave and waits until it reported to the master.
    pub async fn start_slave(&mut self) -> BenchResult<()> {
        let conf = self.dir.join("slave.conf");
        std::fs::write(
            &conf,
            format!(
                "brokerName=bench-rep\nbrokerRole=SLAVE\nbrokerId=1\n\
                 haMasterAddress=127.0.0.1:{}\nmapedFileSizeCommitLog={}\n\
                 brokerIP1=127.0.0.1\nlistenAddr=127.0.0.1\n",
                self.ha_port, self.segment
            ),
        )?;
        let port = free_port()?;
        let args = broker_args(&conf, &self.namesrv, port, &self.dir.join("slave"));
        let log = self.dir.join("slave.log");
        self.slave = Some(spawn(&args, &log)?);
        wait_port(&format!("127.0.0.1:{port}"), &log).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.slave_ack().await?.is_none() {
            if Instant::now() > deadline {
                return Err("the slave did not connect to the master".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The master's HA state.
    pub async fn status(&self) -> BenchResult<HaRuntimeInfo> {
        ha_status(&client(), &self.master).await
    }

    /// The slave's acknowledged offset as the master sees it (None before
    /// its first report).
    pub async fn slave_ack(&self) -> BenchResult<Option<i64>> {
        let st = self.status().await?;
        Ok(st
            .ha_connection_info
            .first()
            .map(|c| c.slave_ack_offset)
            .filter(|a| *a >= 0))
    }
}

/// GET_BROKER_HA_STATUS of `broker`.
pub async fn ha_status(c: &RemotingClient, broker: &str) -> BenchResult<HaRuntimeInfo> {
    let cmd = RemotingCommand::request(GET_BROKER_HA_STATUS);
    let r = c.invoke(broker, cmd, Duration::from_secs(3)).await?;
    if r.code != response::SUCCESS {
        return Err(format!("haStatus: code {} {:?}", r.code, r.remark).into());
    }
    Ok(serde_json::from_slice(&r.body_bytes())?)
}

impl Drop for Pair {
    fn drop(&mut self) {
        // The slave first, then the master, then their stores.
        self.slave.take();
        self.master_proc.take();
        let _ = std::fs::remove_dir_all(self.dir.join("slave"));
        let _ = std::fs::remove_dir_all(self.dir.join("master"));
    }
}
