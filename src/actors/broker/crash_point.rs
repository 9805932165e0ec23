//! Named crash points for crash tests: `crash_point::hit(NAME)` placed at a
//! spot in the code kills the process there, but only when a test armed
//! that very name (ACTORMQ_INJECT_FAULT with `target=crashPoint`,
//! `kind=<name>`, allowed by `faultInjectionEnable=true`; `kind=none`
//! disarms). Unarmed, a hit costs one relaxed atomic load.
//!
//! The process dies by SIGKILL sent to itself: exactly what `kill -9` does
//! (no destructors, no flush, the page cache survives), and unlike
//! `abort()` it never writes a core dump of the mapped store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The delay-level scheduler, after a delivery batch was stored and before
/// its progress (`delayOffset.json`) is saved.
pub const SCHEDULE_AFTER_PUT: &str = "schedule.after_put";
/// END_TRANSACTION, after the committed message and the op record were
/// stored and before the intent is closed.
pub const TRANSACTION_AFTER_PUT: &str = "transaction.after_put";
/// The transaction checker, after a half message checked too often was
/// moved to `TRANS_CHECK_MAX_TIME_TOPIC` and before the intent is closed.
pub const TRANSACTION_DISCARD_AFTER_PUT: &str = "transaction.discard_after_put";

/// The timer, after a batch delivering due timer messages to their real
/// topics was stored and before the timer checkpoint is saved.
pub const TIMER_AFTER_PUT: &str = "timer.after_put";
/// The timer, after a batch re-parking rolled timer messages in the timer
/// queue was stored and before the timer checkpoint is saved.
pub const TIMER_AFTER_ROLL: &str = "timer.after_roll";

static ARMED: AtomicBool = AtomicBool::new(false);
static POINT: Mutex<String> = Mutex::new(String::new());

/// Arms `name`; `"none"` or `""` disarms.
pub fn arm(name: &str) {
    let name = name.trim();
    let mut p = POINT.lock().unwrap_or_else(|e| e.into_inner());
    if name.is_empty() || name == "none" {
        p.clear();
        ARMED.store(false, Ordering::Release);
    } else {
        *p = name.to_owned();
        ARMED.store(true, Ordering::Release);
    }
}

/// Kills the process if `name` is armed.
#[inline]
pub fn hit(name: &str) {
    if ARMED.load(Ordering::Relaxed) {
        hit_armed(name);
    }
}

#[cold]
fn hit_armed(name: &str) {
    let armed = POINT.lock().map(|p| *p == name).unwrap_or(false);
    if armed {
        tracing::error!(point = name, "crash point reached: killing the process");
        // SAFETY: plain syscalls on our own pid.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_armed_name_matches_and_none_disarms() {
        arm("some.other.point");
        hit("not.this.one"); // still alive
        arm("none");
        assert!(!ARMED.load(Ordering::Relaxed));
        hit("some.other.point");
    }
}
