//! Supervision: panics become restarts, with a backoff and a limit.
//!
//! actix restarts a `Supervised` actor that *stops*, keeping its address and
//! mailbox, but it does not catch panics: a panic in a handler, in
//! `started()` or in a `run_interval` closure unwinds out of the actor's
//! task, the task is dropped and the actor's mailbox closes for good.
//!
//! [`start`] / [`start_in_arbiter`] replace `actix::Supervisor` for every
//! long-lived actor: the actor's whole context future is polled under
//! `catch_unwind`, so a panic *anywhere* in the actor (handler, `started()`,
//! periodic closure, spawned actor future) is caught. The supervisor logs
//! it, waits a backoff (doubling from `supervisorBackoffMs`, capped at
//! `supervisorBackoffMaxMs`) with the mailbox kept (messages sent meanwhile
//! wait), then restarts the actor: `Supervised::restarting` rebuilds its
//! state and `started()` runs again. `catch_unwind` costs nothing while
//! nothing panics and nothing is allocated per message. A handler whose
//! caller must get an answer even when it fails (the commit-log append, a
//! queue query) runs its body through [`guard`], which turns the panic into
//! an error reply and then restarts the actor the same way.
//!
//! Past `supervisorMaxRestarts` failures of one actor within
//! `supervisorRestartWindowMs`, the failure is fatal: a clear error is
//! logged and the process is stopped cleanly (SIGTERM to itself, so the
//! binary's graceful shutdown persists and flushes everything; exit code
//! [`EXIT_FATAL`]); a watchdog exits hard if that shutdown hangs. Keeping a
//! half-dead broker that refuses one kind of request forever is worse.

use actix::dev::{AsyncContextParts, ContextFut};
use actix::prelude::*;
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Mutex, RwLock};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Exit code of a process stopped by a fatal supervision failure
/// (`EX_SOFTWARE`).
pub const EXIT_FATAL: i32 = 70;

/// Error returned by a handler whose body panicked or failed fatally.
#[derive(Debug, Clone, thiserror::Error)]
#[error("actor failure: {0}")]
pub struct ActorFailure(pub String);

thread_local! {
    /// Set by [`guard`] when it caught a panic and stopped its actor; read
    /// by the supervisor that restarts it on this thread.
    static FAILED: Cell<bool> = const { Cell::new(false) };
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Runs `f`; on panic stops the actor (so its supervisor restarts it, with
/// the backoff of a failure) and returns the panic as an error.
pub fn guard<A, R, F>(ctx: &mut A::Context, what: &str, f: F) -> Result<R, ActorFailure>
where
    A: Actor<Context = Context<A>>,
    F: FnOnce() -> R,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Ok(r),
        Err(p) => {
            let msg = panic_text(p.as_ref());
            tracing::error!(actor = what, panic = %msg, "actor panicked; restarting it");
            FAILED.with(|f| f.set(true));
            ctx.stop();
            Err(ActorFailure(format!("{what} panicked: {msg}")))
        }
    }
}

// ------------------------------------------------------------ policy

/// Backoff and limit of restarts (the `supervisor*` broker keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Failures of one actor tolerated within `window`; one more is fatal.
    pub max_restarts: u32,
    pub window: Duration,
    /// Wait before the first restart; doubles per failure in the window.
    pub backoff: Duration,
    pub backoff_max: Duration,
}

impl PolicyConfig {
    pub const DEFAULT: PolicyConfig = PolicyConfig {
        max_restarts: 10,
        window: Duration::from_secs(60),
        backoff: Duration::from_millis(100),
        backoff_max: Duration::from_secs(10),
    };
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig::DEFAULT
    }
}

static POLICY: RwLock<PolicyConfig> = RwLock::new(PolicyConfig::DEFAULT);

/// Sets the restart policy of every actor (process-wide; the broker sets it
/// from its configuration at start).
pub fn configure(p: PolicyConfig) {
    if let Ok(mut g) = POLICY.write() {
        *g = p;
    }
}

fn current_policy() -> PolicyConfig {
    POLICY.read().map(|g| *g).unwrap_or_default()
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Restart after this wait.
    RestartAfter(Duration),
    /// Too many failures: give up (fatal).
    GiveUp,
}

/// Failure history of one actor instance.
#[derive(Debug, Default)]
pub struct RestartPolicy {
    recent: VecDeque<Instant>,
}

impl RestartPolicy {
    /// Records a failure at `now` and decides.
    pub fn on_failure(&mut self, now: Instant, cfg: &PolicyConfig) -> Verdict {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > cfg.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let n = self.recent.len() as u32;
        if n > cfg.max_restarts {
            return Verdict::GiveUp;
        }
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        Verdict::RestartAfter(cfg.backoff.saturating_mul(factor).min(cfg.backoff_max))
    }

    /// Failures within the window so far.
    pub fn recent(&self) -> usize {
        self.recent.len()
    }
}

fn decide(policy: &mut RestartPolicy, what: &str, why: &str) -> Verdict {
    let cfg = current_policy();
    let v = policy.on_failure(Instant::now(), &cfg);
    match v {
        Verdict::RestartAfter(d) => tracing::error!(
            actor = what,
            failure = why,
            backoff_ms = d.as_millis() as u64,
            failures_in_window = policy.recent(),
            "actor failed; restarting it after a backoff"
        ),
        Verdict::GiveUp => fatal(
            what,
            &format!(
                "{what} failed {} times within {:?} (supervisorMaxRestarts={}); last failure: {why}",
                policy.recent(),
                cfg.window,
                cfg.max_restarts
            ),
        ),
    }
    v
}

// ------------------------------------------------------------- fatal

static FATAL: Mutex<Option<String>> = Mutex::new(None);
static FATAL_ACTION: RwLock<Option<fn(&str)>> = RwLock::new(None);

/// Replaces what a fatal failure does (default: stop the process cleanly).
/// In-process tests use it; the binary keeps the default.
pub fn on_fatal(action: fn(&str)) {
    if let Ok(mut g) = FATAL_ACTION.write() {
        *g = Some(action);
    }
}

/// The reason of the fatal failure, once one happened.
pub fn fatal_reason() -> Option<String> {
    FATAL.lock().ok().and_then(|g| g.clone())
}

/// Declares a fatal failure: logs it and stops the process (once).
pub fn fatal(what: &str, reason: &str) {
    {
        let Ok(mut g) = FATAL.lock() else { return };
        if g.is_some() {
            return;
        }
        *g = Some(reason.to_owned());
    }
    tracing::error!(
        actor = what,
        reason,
        "FATAL: restart limit reached; stopping the process"
    );
    eprintln!("actormq: FATAL: {reason}; stopping the process");
    match FATAL_ACTION.read().ok().and_then(|g| *g) {
        Some(action) => action(reason),
        None => stop_process(),
    }
}

/// SIGTERM to ourselves: the binary's signal handler runs the graceful
/// shutdown (final persist, flush, `abort` marker removed). A watchdog
/// exits hard should that shutdown hang.
fn stop_process() {
    let _ = std::thread::Builder::new()
        .name("fatal-watchdog".into())
        .spawn(|| {
            std::thread::sleep(Duration::from_secs(30));
            eprintln!("actormq: graceful stop after the fatal failure timed out; exiting");
            std::process::exit(EXIT_FATAL);
        });
    #[cfg(unix)]
    // SAFETY: plain syscalls without memory arguments.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGTERM);
    }
    #[cfg(not(unix))]
    std::process::exit(EXIT_FATAL);
}

/// Called at the end of a graceful shutdown: a process stopped by a fatal
/// failure exits with [`EXIT_FATAL`] (unless tests replaced the action).
pub fn exit_if_fatal() {
    let default_action = FATAL_ACTION.read().map(|g| g.is_none()).unwrap_or(true);
    if let Some(r) = fatal_reason() {
        if default_action {
            eprintln!("actormq: stopped after a fatal failure: {r}");
            std::process::exit(EXIT_FATAL);
        }
    }
}

// -------------------------------------------------- catching supervisor

/// Starts `A` on the current arbiter under the catching supervisor.
pub fn start<A, F>(what: &'static str, f: F) -> Addr<A>
where
    A: Supervised + Actor<Context = Context<A>>,
    F: FnOnce(&mut Context<A>) -> A + 'static,
{
    let mut ctx = Context::new();
    let act = f(&mut ctx);
    let addr = ctx.address();
    actix::spawn(Guarded::new(what, ctx.into_future(act)));
    addr
}

/// Starts `A` on `arb` under the catching supervisor.
pub fn start_in_arbiter<A, F>(arb: &ArbiterHandle, what: &'static str, f: F) -> Addr<A>
where
    A: Supervised + Actor<Context = Context<A>>,
    F: FnOnce(&mut Context<A>) -> A + Send + 'static,
{
    // 16 is actix's default mailbox capacity (`Supervisor::start_in_arbiter`).
    let (tx, rx) = actix::dev::channel::channel(16);
    arb.spawn_fn(move || {
        let mut ctx = Context::with_receiver(rx);
        let act = f(&mut ctx);
        actix::spawn(Guarded::new(what, ctx.into_future(act)));
    });
    Addr::new(tx)
}

/// The actor's context future, polled under `catch_unwind`.
struct Guarded<A: Supervised + Actor<Context = Context<A>>> {
    fut: ContextFut<A, Context<A>>,
    what: &'static str,
    policy: RestartPolicy,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<A: Supervised + Actor<Context = Context<A>>> Guarded<A> {
    fn new(what: &'static str, fut: ContextFut<A, Context<A>>) -> Self {
        Guarded {
            fut,
            what,
            policy: RestartPolicy::default(),
            backoff: None,
        }
    }
}

impl<A: Supervised + Actor<Context = Context<A>>> Future for Guarded<A> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.backoff.as_mut() {
                if b.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.backoff = None;
                // `restarting()` rebuilds the state; `started()` runs on the
                // next poll. False: every address is gone, nobody to serve.
                if !this.fut.restart() {
                    return Poll::Ready(());
                }
            }
            FAILED.with(|f| f.set(false));
            let fut = &mut this.fut;
            let why = match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *fut).poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(())) => {
                    if !FAILED.with(|f| f.replace(false)) {
                        // A plain stop: restart at once, as actix does.
                        if !this.fut.restart() {
                            return Poll::Ready(());
                        }
                        continue;
                    }
                    "a guarded panic".to_owned()
                }
                Err(p) => {
                    let msg = panic_text(p.as_ref());
                    tracing::error!(actor = this.what, panic = %msg, "actor panicked");
                    msg
                }
            };
            if !this.fut.ctx().parts().connected() {
                return Poll::Ready(());
            }
            match decide(&mut this.policy, this.what, &why) {
                Verdict::RestartAfter(d) => {
                    this.backoff = Some(Box::pin(tokio::time::sleep(d)));
                }
                // The actor ends: its mailbox closes, senders get errors
                // while the process stops.
                Verdict::GiveUp => return Poll::Ready(()),
            }
        }
    }
}

// ------------------------------------------------------ fault injection

/// Kinds of injected faults (tests only; see `faultInjectionEnable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The actor reports a fatal error and stops.
    Error,
    /// The actor panics inside a handler.
    Panic,
    /// The actor's next periodic closure panics.
    PanicInInterval,
    /// The actor panics now, and once more in `started()` after the restart.
    PanicInStarted,
    /// The actor panics in its next unit of regular work.
    PanicInWork,
}

impl Fault {
    pub fn parse(s: &str) -> Option<Fault> {
        match s {
            "error" => Some(Fault::Error),
            "panic" => Some(Fault::Panic),
            "panicInInterval" => Some(Fault::PanicInInterval),
            "panicInStarted" => Some(Fault::PanicInStarted),
            "panicInWork" => Some(Fault::PanicInWork),
            _ => None,
        }
    }
}

/// Armed one-shot faults, by actor name: checked in `started()` and in
/// periodic closures (never on a per-message path).
pub mod armed {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// Where an armed fault fires.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Point {
        Interval,
        Started,
        /// The actor's next unit of regular work (for the commit-log
        /// writer: between appending a `Put` and dispatching it).
        Work,
    }

    static ANY: AtomicBool = AtomicBool::new(false);
    static ARMED: Mutex<Vec<(String, Point)>> = Mutex::new(Vec::new());

    pub fn arm(what: &str, at: Point) {
        if let Ok(mut g) = ARMED.lock() {
            g.push((what.to_owned(), at));
            ANY.store(true, Ordering::Release);
        }
    }

    /// Panics if a fault is armed for `what` at `at` (disarming it).
    pub fn fire(what: &str, at: Point) {
        if !ANY.load(Ordering::Acquire) {
            return;
        }
        let hit = ARMED.lock().ok().is_some_and(|mut g| {
            let pos = g.iter().position(|(w, p)| w == what && *p == at);
            if let Some(i) = pos {
                g.swap_remove(i);
            }
            ANY.store(!g.is_empty(), Ordering::Release);
            pos.is_some()
        });
        if hit {
            panic!("injected {what} panic ({at:?})");
        }
    }
}

/// Injects a fault into any supervised actor (ACTORMQ_INJECT_FAULT).
#[derive(Message)]
#[rtype(result = "Result<(), ActorFailure>")]
pub struct InjectPanic {
    pub fault: Fault,
}

/// Carries out an injected fault in `A`'s handler: `Panic` and
/// `PanicInStarted` panic here, `PanicInStarted` also arms a panic
/// in the next `started()`, `PanicInInterval` arms the next periodic
/// closure, `Error` stops the actor.
pub fn inject<A>(ctx: &mut Context<A>, what: &str, fault: Fault) -> Result<(), ActorFailure>
where
    A: Actor<Context = Context<A>>,
{
    tracing::warn!(actor = what, ?fault, "injecting a fault");
    match fault {
        Fault::Error => {
            ctx.stop();
            Err(ActorFailure("injected error".into()))
        }
        Fault::PanicInInterval => {
            armed::arm(what, armed::Point::Interval);
            Ok(())
        }
        Fault::PanicInWork => {
            armed::arm(what, armed::Point::Work);
            Ok(())
        }
        Fault::Panic | Fault::PanicInStarted => {
            if fault == Fault::PanicInStarted {
                armed::arm(what, armed::Point::Started);
            }
            panic!("injected {what} panic")
        }
    }
}

/// Implements `Handler<InjectPanic>` with [`inject`].
#[macro_export]
macro_rules! inject_panic_handler {
    ($actor:ty, $what:expr) => {
        impl actix::Handler<$crate::actors::supervisor::InjectPanic> for $actor {
            type Result = Result<(), $crate::actors::supervisor::ActorFailure>;
            fn handle(
                &mut self,
                m: $crate::actors::supervisor::InjectPanic,
                ctx: &mut actix::Context<Self>,
            ) -> Self::Result {
                $crate::actors::supervisor::inject(ctx, $what, m.fault)
            }
        }
    };
}

/// Where ACTORMQ_INJECT_FAULT finds an actor: the broker's wiring registers
/// each supervised actor under a target name, scoped by the broker's store
/// root (several brokers may share a test process). Weak: a registered
/// actor still stops once its owners drop it.
pub mod targets {
    use super::InjectPanic;
    use actix::{Recipient, WeakRecipient};
    use std::sync::Mutex;

    type Entry = (String, &'static str, WeakRecipient<InjectPanic>);
    static TARGETS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

    pub fn register(scope: &str, name: &'static str, r: Recipient<InjectPanic>) {
        if let Ok(mut g) = TARGETS.lock() {
            g.retain(|(s, n, w)| !(s == scope && *n == name) && w.upgrade().is_some());
            g.push((scope.to_owned(), name, r.downgrade()));
        }
    }

    pub fn lookup(scope: &str, name: &str) -> Option<Recipient<InjectPanic>> {
        let g = TARGETS.lock().ok()?;
        g.iter()
            .find(|(s, n, _)| s == scope && *n == name)
            .and_then(|(_, _, w)| w.upgrade())
    }
}

// Fault injection for supervised actors whose files are maintained
// elsewhere (their handler is nothing but `inject`).
crate::inject_panic_handler!(
    crate::actors::broker::clients::ClientRegistry,
    "ClientRegistry"
);
crate::inject_panic_handler!(
    crate::actors::broker::transaction::Transactions,
    "Transaction"
);

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

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
