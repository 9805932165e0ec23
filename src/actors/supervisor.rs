//! Supervision helpers.
//!
//! actix restarts a `Supervised` actor that stops, keeping its address and
//! mailbox, but it does not catch panics: a panic unwinds through the
//! arbiter's event loop and kills the thread. Handlers of supervised actors
//! therefore run their bodies through [`guard`], which turns a panic into an
//! error and stops the actor, so its supervisor restarts it with state
//! rebuilt from the store.

use actix::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Error returned by a handler whose body panicked or failed fatally.
#[derive(Debug, Clone, thiserror::Error)]
#[error("actor failure: {0}")]
pub struct ActorFailure(pub String);

/// Runs `f`; on panic stops the actor (so the supervisor restarts it) and
/// returns the panic as an error.
pub fn guard<A, R, F>(ctx: &mut A::Context, what: &str, f: F) -> Result<R, ActorFailure>
where
    A: Actor<Context = Context<A>>,
    F: FnOnce() -> R,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Ok(r),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            tracing::error!(actor = what, panic = %msg, "actor panicked; restarting it");
            ctx.stop();
            Err(ActorFailure(format!("{what} panicked: {msg}")))
        }
    }
}

/// Kinds of injected faults (tests only; see `faultInjectionEnable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The actor reports a fatal error and stops.
    Error,
    /// The actor panics inside a handler.
    Panic,
}

impl Fault {
    pub fn parse(s: &str) -> Option<Fault> {
        match s {
            "error" => Some(Fault::Error),
            "panic" => Some(Fault::Panic),
            _ => None,
        }
    }
}

/// Restart counters, so tests and operators can see supervision at work.
pub mod restarts {
    use std::collections::HashMap;
    use std::sync::Mutex;

    static COUNTS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

    pub fn record(what: &str) {
        if let Ok(mut g) = COUNTS.lock() {
            *g.get_or_insert_with(HashMap::new)
                .entry(what.to_owned())
                .or_default() += 1;
        }
    }

    pub fn get(what: &str) -> u64 {
        COUNTS
            .lock()
            .ok()
            .and_then(|g| g.as_ref().and_then(|m| m.get(what).copied()))
            .unwrap_or(0)
    }
}
