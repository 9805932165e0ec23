//! `actormq cluster`: a supervised multi-process deployment — the name
//! servers, controllers, brokers and gRPC proxies of a TOML file run as
//! child processes of one supervisor (what RocketMQ leaves to `mqnamesrv` /
//! `mqbroker` / `mqproxy` scripts and an init system).
//!
//! * [`spec`]: the file format and its validation.
//! * [`supervisor`]: starting, relaying output, restarting with backoff,
//!   ordered stop.
//! * [`status`]: the JSON status file and `actormq cluster status`.

pub mod spec;
pub mod status;
pub mod supervisor;

use std::path::Path;

pub use spec::{ChildKind, ChildSpec, ClusterSpec};

/// `actormq cluster -c FILE`: runs the cluster until SIGINT/SIGTERM.
/// Returns the process exit code (2: the file or the dir is unusable).
pub fn run(file: &Path) -> i32 {
    let spec = match ClusterSpec::load(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("actormq cluster: {e}");
            return 2;
        }
    };
    match supervisor::Supervisor::prepare(spec) {
        Ok(s) => s.run(),
        Err(e) => {
            eprintln!("actormq cluster: {e}");
            2
        }
    }
}

/// `actormq cluster status`: prints the table of the cluster described by
/// `file` (or kept in `dir`, or in the default dir). Returns 0 while its
/// supervisor runs, 1 when it does not, 2 when there is nothing to read.
pub fn print_status(file: Option<&Path>, dir: Option<&Path>) -> i32 {
    let dir = match (file, dir) {
        (_, Some(d)) => d.to_owned(),
        (Some(f), None) => match ClusterSpec::load(f) {
            Ok(s) => s.dir,
            Err(e) => {
                eprintln!("actormq cluster status: {e}");
                return 2;
            }
        },
        (None, None) => spec::default_dir(),
    };
    let path = spec::status_path(&dir);
    match status::ClusterStatus::read(&path) {
        Ok(st) => {
            print!("{}", status::render(&st, status::now_ms()));
            if st.supervisor_alive() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            println!(
                "no cluster status in {} (the supervisor is not running there): {e}",
                dir.display()
            );
            2
        }
    }
}
