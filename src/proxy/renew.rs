//! Auto-renew of invisible time for push consumers (RocketMQ's
//! `ReceiptHandleProcessor` / `DefaultReceiptHandleManager`): a push
//! consumer receives with `auto_renew` and no invisible time, and takes as
//! long as its handler needs; the proxy pops with
//! `defaultInvisibleTimeMills` and keeps every message it handed out
//! invisible until the client acks it (or nacks, or forwards it to the
//! DLQ), or goes away.
//!
//! * Per (client id, group), per message id: the handle the client holds,
//!   the current one (each renewal makes a new one), when it was received
//!   and how often it was renewed.
//! * Every `renewSchedulePeriodMillis`, handles expiring within
//!   `renewAheadTimeMillis` get CHANGE_MESSAGE_INVISIBLETIME with RocketMQ's
//!   `RenewStrategyPolicy` steps (1 m, 3 m, 5 m, 10 m, 30 m, 1 h, then 1 h);
//!   a handle that cannot be renewed `maxRenewRetryTimes` times in a row, or
//!   has already expired, is dropped (the message comes again).
//! * After `renewMaxTimeMillis` the proxy stops and leaves the message the
//!   group's retry delay for its delivery attempt.
//! * A client the proxy forgot (NotifyClientTermination, or silent past
//!   `channelExpiredTimeout`): its handles get
//!   `invisibleTimeMillisWhenClear` (1 s) and are dropped, so the messages
//!   go to the group's other consumers soon.
//! * Ack / ChangeInvisibleDuration / ForwardMessageToDeadLetterQueue come
//!   with the handle the client was given: [`Renewals::take`] answers the
//!   current one and stops renewing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::grpc::Proxy;
use super::receive::{handle_cmd, Handle};
use crate::service::Caller;
use crate::wire::now_ms;

/// RocketMQ's `RenewStrategyPolicy`: the invisible time of renewal n.
const STEPS_MS: [i64; 6] = [60_000, 180_000, 300_000, 600_000, 1_800_000, 3_600_000];

/// The group's customized retry delays (what the message gets when the
/// proxy stops renewing it after `renewMaxTimeMillis`).
const RETRY_DELAYS_MS: [i64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// One message handed out with auto-renew.
#[derive(Debug, Clone)]
pub struct Managed {
    /// The topic as the client names it.
    pub topic: String,
    /// The handle the client was given (its later calls carry it).
    pub original: String,
    /// The handle valid now.
    pub current: Handle,
    pub reconsume_times: i32,
    pub received_ms: i64,
    pub renewals: usize,
    pub failures: u32,
    pub caller: Caller,
}

type Key = (String, String);

/// A handle as clients hold it (the broker's plus the commit-log offset).
pub fn client_text(h: &Handle) -> String {
    format!("{} {}", h.render(), h.commit_log_offset.unwrap_or(-1))
}

/// Every auto-renewed handle. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Renewals {
    inner: Arc<Mutex<HashMap<Key, HashMap<String, Managed>>>>,
}

impl Renewals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, HashMap<String, Managed>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, client: &str, group: &str, msg_id: &str, m: Managed) {
        self.lock()
            .entry((client.to_owned(), group.to_owned()))
            .or_default()
            .insert(msg_id.to_owned(), m);
    }

    /// Stops renewing the message `msg_id` the client holds as `handle`;
    /// answers its entry (`current` is the handle to use instead), or None
    /// when the proxy does not manage it (then the client's handle stands).
    /// A call that then fails puts the entry back ([`Self::add`]), so the
    /// client's retry finds it (rocketmq #11174).
    pub fn take(&self, client: &str, group: &str, msg_id: &str, handle: &str) -> Option<Managed> {
        let mut all = self.lock();
        let key = (client.to_owned(), group.to_owned());
        let msgs = all.get_mut(&key)?;
        let m = msgs.get(msg_id)?;
        if m.original != handle && client_text(&m.current) != handle {
            return None;
        }
        let m = msgs.remove(msg_id)?;
        if msgs.is_empty() {
            all.remove(&key);
        }
        Some(m)
    }

    /// Removes and answers every handle of clients `gone` says are gone.
    fn drain_gone(&self, gone: impl Fn(&str) -> bool) -> Vec<(String, Managed)> {
        let mut all = self.lock();
        let keys: Vec<Key> = all.keys().filter(|(c, _)| gone(c)).cloned().collect();
        let mut out = Vec::new();
        for k in keys {
            if let Some(msgs) = all.remove(&k) {
                out.extend(msgs.into_values().map(|m| (k.1.clone(), m)));
            }
        }
        out
    }

    /// The handles expiring before `until`: (client, group, message id, entry).
    fn due(&self, until: i64) -> Vec<(String, String, String, Managed)> {
        let all = self.lock();
        let mut out = Vec::new();
        for ((c, g), msgs) in all.iter() {
            for (id, m) in msgs {
                if m.current.next_visible() <= until {
                    out.push((c.clone(), g.clone(), id.clone(), m.clone()));
                }
            }
        }
        out
    }

    /// Applies `f` to the entry if it is still the one `original` names.
    fn update(
        &self,
        c: &str,
        g: &str,
        id: &str,
        original: &str,
        f: impl FnOnce(&mut Managed) -> bool,
    ) {
        let mut all = self.lock();
        let key = (c.to_owned(), g.to_owned());
        let Some(msgs) = all.get_mut(&key) else {
            return;
        };
        let keep = match msgs.get_mut(id) {
            Some(m) if m.original == original => f(m),
            _ => return,
        };
        if !keep {
            msgs.remove(id);
            if msgs.is_empty() {
                all.remove(&key);
            }
        }
    }
}

/// Starts the renew task of a proxy (ends with the proxy).
pub fn start(p: &Arc<Proxy>) {
    if !p.cfg.enable_proxy_auto_renew {
        return;
    }
    let weak: Weak<Proxy> = Arc::downgrade(p);
    let period = Duration::from_millis(p.cfg.renew_schedule_period_millis.max(100) as u64);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(p) = weak.upgrade() else { break };
            renew_round(&p).await;
        }
    });
}

/// One round: clear the handles of clients that went away, renew the
/// handles about to expire.
pub async fn renew_round(p: &Proxy) {
    let clear_ms = p.cfg.invisible_time_millis_when_clear;
    for (group, m) in p.renewals.drain_gone(|c| p.clients.settings(c).is_none()) {
        if m.current.next_visible() > now_ms() {
            let cmd = handle_cmd(&group, &m.topic, &m.current);
            let _ = p
                .backend
                .change_invisible(m.caller.clone(), cmd, clear_ms)
                .await;
        }
    }
    let now = now_ms();
    for (c, g, id, m) in p.renewals.due(now + p.cfg.renew_ahead_time_millis) {
        if m.current.next_visible() <= now {
            // Too late: the broker hands it out again; nothing to renew.
            p.renewals.update(&c, &g, &id, &m.original, |_| false);
            continue;
        }
        let cmd = handle_cmd(&g, &m.topic, &m.current);
        let stop = now - m.received_ms >= p.cfg.renew_max_time_millis;
        let invisible = if stop {
            let i = (m.reconsume_times.max(0) as usize).min(RETRY_DELAYS_MS.len() - 1);
            RETRY_DELAYS_MS[i]
        } else {
            STEPS_MS[m.renewals.min(STEPS_MS.len() - 1)]
        };
        let r = p
            .backend
            .change_invisible(m.caller.clone(), cmd, invisible)
            .await;
        let max_failures = p.cfg.max_renew_retry_times;
        let clog = m.current.commit_log_offset;
        p.renewals.update(&c, &g, &id, &m.original, |e| match r {
            Ok(text) if !stop => match Handle::parse(&text) {
                Ok(mut h) => {
                    h.commit_log_offset = clog;
                    e.current = h;
                    e.renewals += 1;
                    e.failures = 0;
                    true
                }
                Err(_) => false,
            },
            Ok(_) => false,
            Err(err) => {
                e.failures += 1;
                tracing::debug!(msg = %id, error = %err, "auto-renew failed");
                e.failures < max_failures
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> Managed {
        Managed {
            topic: "T".into(),
            original: text.into(),
            current: Handle::parse(text).unwrap(),
            reconsume_times: 0,
            received_ms: now_ms(),
            renewals: 0,
            failures: 0,
            caller: Caller::connection(([127, 0, 0, 1], 1).into(), 0),
        }
    }

    #[test]
    fn handles_are_taken_by_the_original_or_the_current_text() {
        let r = Renewals::default();
        let soon = format!("5 {} 4000 1 0 b 0 5 77", now_ms());
        r.add("c1", "g", "m1", entry(&soon));
        // Another client, group or handle does not take it.
        assert!(r.take("c2", "g", "m1", &soon).is_none());
        assert!(r.take("c1", "g2", "m1", &soon).is_none());
        assert!(r.take("c1", "g", "m1", "1 2 3 4 0 b 0 9 1").is_none());
        // Renewed: the client's original text still finds the new handle.
        let renewed = format!("5 {} 60000 1 0 b 0 5", now_ms() + 10);
        r.update("c1", "g", "m1", &soon, |e| {
            e.current = Handle::parse(&renewed).unwrap();
            e.current.commit_log_offset = Some(77);
            e.renewals += 1;
            true
        });
        let e = r.take("c1", "g", "m1", &soon).expect("managed");
        assert_eq!(e.current.invisible_ms, 60_000);
        assert_eq!(e.current.commit_log_offset, Some(77));
        assert!(r.take("c1", "g", "m1", &soon).is_none(), "taken once");
        // Put back after a failed call, it is found by its current text.
        let text = client_text(&e.current);
        r.add("c1", "g", "m1", e);
        assert!(r.take("c1", "g", "m1", &text).is_some());
    }

    #[test]
    fn due_lists_handles_expiring_before_the_horizon_and_gone_clients_drain() {
        let r = Renewals::default();
        let now = now_ms();
        r.add(
            "c1",
            "g",
            "soon",
            entry(&format!("1 {now} 3000 1 0 b 0 1 1")),
        );
        r.add(
            "c1",
            "g",
            "late",
            entry(&format!("2 {now} 600000 1 0 b 0 2 2")),
        );
        r.add(
            "c2",
            "g",
            "other",
            entry(&format!("3 {now} 3000 1 0 b 0 3 3")),
        );
        let due: Vec<String> = r.due(now + 10_000).into_iter().map(|d| d.2).collect();
        assert_eq!(due.len(), 2);
        assert!(due.contains(&"soon".to_owned()) && due.contains(&"other".to_owned()));
        let gone = r.drain_gone(|c| c == "c2");
        assert_eq!(gone.len(), 1);
        assert_eq!(r.due(now + 10_000).len(), 1);
    }
}
