//! Client-side CLI commands: `actormq produce`, `actormq consume` and
//! `actormq admin` (an `mqadmin` subset). Each
//! submodule exposes a clap `Args` struct and an async `run`; the binary's
//! `main` parses the command line and awaits `run` on a tokio runtime.

pub mod admin;
pub mod consume;
pub mod produce;
pub mod query;

pub use consume::ConsumeArgs;
pub use produce::ProduceArgs;

/// What the commands return: errors are printed by `main`.
pub type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Messages per second, guarding against a zero duration.
pub(crate) fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Whether stdout is an interactive terminal (progress bars only then).
pub(crate) fn stdout_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}
