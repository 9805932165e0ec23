//! `Timer`: delivers 5.x timer messages (`TIMER_DELIVER_MS`,
//! `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`, `__STARTDELIVERTIME`), parked by the
//! store path in `rmq_sys_wheel_timer` queue 0 with their due time in
//! `TIMER_OUT_MS`, through a timing wheel persisted in the store
//! (`store::timer_store`: `timerwheel`, `timerlog/`, `config/timercheck`).
//!
//! * Enqueue: the actor scans the timer queue in order (parking a
//!   long-polling pull when caught up) and appends one timer-log unit per
//!   message to the slot of its due time. A due time a roll window or more
//!   ahead (`timerRollWindowSlot`) gets a roll entry at the window's end
//!   instead.
//! * Dequeue: as wall time reaches a slot, its units are read (the only
//!   per-message state in memory, and only for that one slot), ordered by
//!   due time and handed out when their exact due ms passes — never early,
//!   within a precision unit late at worst. A due entry goes to its
//!   `REAL_TOPIC`/`REAL_QID`; a roll entry whose
//!   due time is still ahead is re-parked in the timer queue with
//!   `TIMER_ROLL_TIMES` + 1 (so its commit-log record is renewed too) and
//!   scanned again.
//! * Progress: the checkpoint holds the timer-queue offset scanned and the
//!   first ms not yet handled; it is written after every step, so a clean
//!   restart neither loses nor repeats a timer.
//! * Crashes: every delivery / re-park batch is stored through [`ExactPut`]
//!   (intent file `config/timercheck.intent`), tagged with the timer-log
//!   position of the unit behind each record and the fire time of the
//!   batch's last entry; the intent is closed once the checkpoint covering
//!   the batch is written. A process crash (or an actor restart) between
//!   the two is resolved on start, before the wheel moves: the records found
//!   in the commit log count as handled, the missing rest of the batch is
//!   stored, then the read position moves past the batch. A delivery or a
//!   roll re-park is thus neither lost nor repeated. A Put that stores only
//!   part of a batch is finished the same way while running.
//!
//! Limitations: a timer waits on its parked commit-log record. Rolling renews
//! the record every roll window (2 days by default), which stays inside the
//! default retention (72 h); with `fileReservedTime` shorter than the roll
//! window a record can expire before its timer fires, and the timer is then
//! dropped with a warning. Power loss (not a process crash) may lose the
//! timers enqueued since the last flush (`timerFlushIntervalMs`), and a
//! crash inside the enqueue step itself (between appending timer-log units
//! and writing the scanned offset, in one mailbox turn with no await in
//! between) enqueues those messages a second time.

use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::commit_log::CommitLogWriter;
use super::crash_point;
use super::exact_put::{ExactPut, Orphan, PutFailed, Ticket};
use super::queue::{read_or_wait, QueueActor, Read};
use super::store_path::{timer_due, DelayLevels, NewRecord, TIMER_PROPS, TIMER_TOPIC};
use super::topic::TopicRegistry;
use crate::actors::supervisor::armed;
use crate::config::BrokerConfig;
use crate::store::timer_log::TimerUnit;
use crate::store::timer_store::{TimerStore, TimerStoreConfig};
use crate::store::CommitLogReader;
use crate::wire::message::{self, keys};
use crate::wire::now_ms;

mod deliver;
mod scan;

use deliver::Tick;
use scan::{Found, Scan};

const SCAN_BATCH: i32 = 256;
const DELIVER_BATCH: usize = 256;
/// Empty slots walked per mailbox turn when catching up after downtime.
const CATCH_UP_SLOTS: usize = 4096;
const IDLE_HOLD: Duration = Duration::from_secs(20);
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One unit of the current slot, not yet handled.
#[derive(Debug, Clone, Copy)]
struct Entry {
    fire: i64,
    pos: i64,
    unit: TimerUnit,
}

/// The intent tag of a delivery batch: enough to finish it after a crash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct BatchTag {
    /// Fire time of the batch's last entry: with the whole batch stored,
    /// everything before `last + 1` is handled.
    last: i64,
    /// Timer-log position of the unit behind each record, in record order.
    units: Vec<i64>,
}

/// A batch stored in part: `rest` still to store, under `ticket`'s intent,
/// before the read position may pass `last`.
#[derive(Debug)]
struct Unfinished {
    rest: Vec<Entry>,
    last: i64,
    ticket: Ticket,
}

pub struct Timer {
    topics: TopicRegistry,
    exact: ExactPut,
    reader: CommitLogReader,
    store_host: SocketAddr,
    cfg: TimerStoreConfig,
    flush_every: Duration,
    store: Option<TimerStore>,
    scanning: bool,
    /// Unhandled entries of the slot starting at `.0` (the one holding
    /// `read_from`), by fire time; `None` until that slot is read.
    current: Option<(i64, Vec<Entry>)>,
    /// Entries being stored (fire time of the last one, count).
    in_flight: Option<(i64, usize)>,
    /// Batches stored in part, finished before anything else is delivered.
    unfinished: Vec<Unfinished>,
    /// Time the armed wake-up fires at.
    armed: Option<i64>,
    flushing: bool,
}

impl Timer {
    pub fn new(
        levels: Arc<DelayLevels>,
        topics: TopicRegistry,
        commit_log: Addr<CommitLogWriter>,
        reader: CommitLogReader,
        store_host: SocketAddr,
        broker: &BrokerConfig,
    ) -> Timer {
        let cfg = TimerStoreConfig::new(
            &broker.store_path_root_dir,
            broker.timer_precision_ms.min(i64::MAX as u64) as i64,
            broker.timer_roll_window_slot,
            broker.mapped_file_size_timer_log.min(i64::MAX as u64) as i64,
        );
        let exact = ExactPut::open(
            &cfg.checkpoint_path().with_extension("intent"),
            reader.clone(),
            commit_log,
            levels,
        );
        let mut t = Timer {
            topics,
            exact,
            reader,
            store_host,
            cfg,
            flush_every: Duration::from_millis(broker.timer_flush_interval_ms.max(10)),
            store: None,
            scanning: false,
            current: None,
            in_flight: None,
            unfinished: Vec::new(),
            armed: None,
            flushing: false,
        };
        t.open();
        t
    }

    fn open(&mut self) {
        self.store = None;
        self.current = None;
        self.in_flight = None;
        // Dropped tickets leave their intents open, for `resume` to find.
        self.unfinished.clear();
        self.armed = None;
        match TimerStore::open(self.cfg.clone(), now_ms()) {
            Ok(s) => self.store = Some(s),
            Err(e) => tracing::error!(error = %e, "cannot open the timer wheel; retrying"),
        }
    }

    fn queue(&self) -> Option<Addr<QueueActor>> {
        self.topics
            .get(TIMER_TOPIC)
            .and_then(|t| t.queue(0).cloned())
    }

    /// Wakes the actor at `at` unless a wake-up no later is armed.
    fn arm(&mut self, ctx: &mut Context<Self>, at: i64) {
        if self.armed.is_some_and(|a| a <= at) {
            return;
        }
        self.armed = Some(at);
        let wait = Duration::from_millis((at - now_ms()).max(0) as u64);
        ctx.run_later(wait, move |act, ctx| {
            if act.armed == Some(at) {
                act.armed = None;
            }
            ctx.notify(Tick);
        });
    }

    /// Writes the checkpoint; false when it could not be written.
    fn save(&self) -> bool {
        let Some(s) = &self.store else { return false };
        match s.save() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot write the timer checkpoint");
                false
            }
        }
    }

    /// Moves the read position past a stored batch ending at `last`, then
    /// closes its intent. If the checkpoint cannot be written the intent
    /// stays open, and the next start resolves it from the commit log.
    fn advance(&mut self, last: i64, ticket: Option<Ticket>) {
        if let Some(s) = self.store.as_mut() {
            s.set_read_from(last + 1);
        }
        if self.save() {
            if let Some(t) = ticket {
                t.done();
            }
        }
    }

    /// The first ms a new entry may fire at: not before anything handled,
    /// being stored, or waiting to be finished.
    fn floor(&self) -> i64 {
        let read_from = self.store.as_ref().map_or(i64::MIN, |s| s.read_from());
        let busy = self.in_flight.iter().map(|(last, _)| *last);
        let open = self.unfinished.iter().map(|u| u.last);
        busy.chain(open)
            .map(|last| last + 1)
            .fold(read_from, i64::max)
    }

    /// Enqueues scanned messages; returns the offset to scan next (the
    /// first message not enqueued when the store failed).
    fn enqueue(&mut self, ctx: &mut Context<Self>, found: &[Found], next: i64) -> i64 {
        // Nothing may land before what is handled or being handled, so the
        // checkpoint never claims an entry it skipped.
        let floor = self.floor();
        let Some(store) = self.store.as_mut() else {
            return found.first().map_or(next, |f| f.queue_offset);
        };
        let now = now_ms();
        let current_slot = store.slot_of(store.read_from());
        let mut wake: Option<i64> = None;
        let mut resume = next;
        for f in found {
            let (fire, magic) = store.placement(f.due, now, floor);
            match store.enqueue(fire, magic, now, f.phys, f.size, f.topic_hash) {
                Ok((pos, unit)) => {
                    if let Some((_, cur)) = self
                        .current
                        .as_mut()
                        .filter(|(s, _)| *s == current_slot && store.slot_of(fire) == *s)
                    {
                        let at = cur.partition_point(|e| (e.fire, e.pos) <= (fire, pos));
                        cur.insert(at, Entry { fire, pos, unit });
                        wake = Some(wake.map_or(fire, |w| w.min(fire)));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot enqueue a timer message; retrying");
                    resume = f.queue_offset;
                    break;
                }
            }
        }
        if let Some(w) = wake {
            self.arm(ctx, w);
        }
        resume
    }
}

impl Actor for Timer {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        armed::fire("Timer", armed::Point::Started);
        self.resume(ctx);
        ctx.run_interval(self.flush_every, |act, ctx| {
            armed::fire("Timer", armed::Point::Interval);
            act.flush(ctx)
        });
        ctx.run_interval(RETRY_AFTER, |act, ctx| {
            if act.store.is_none() {
                act.open();
                if act.store.is_some() {
                    act.resume(ctx);
                }
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Broker shutdown: make everything durable.
        if let Some(s) = self.store.as_mut() {
            let r = s.flush_job().and_then(|j| j.run());
            match r.and_then(|pos| s.flushed(pos)) {
                Ok(()) => {}
                Err(e) => tracing::error!(error = %e, "final timer flush failed"),
            }
        }
    }
}

crate::inject_panic_handler!(Timer, "Timer");

impl Supervised for Timer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("Timer");
        // Rebuilt from the store: the wheel, the timer log and the
        // checkpoint are reopened; `started()` resolves open intents and
        // resumes scanning from the checkpointed offset.
        self.scanning = false;
        self.flushing = false;
        self.open();
    }
}

impl Timer {
    /// Resolves the batches a crash (or an actor restart) interrupted, then
    /// starts scanning and delivering; nothing else runs in between.
    fn resume(&mut self, ctx: &mut Context<Self>) {
        let exact = self.exact.clone();
        let found = async move { exact.orphans().await };
        ctx.wait(found.into_actor(self).map(|orphans, act, ctx| {
            for o in orphans {
                act.resolve(o);
            }
            ctx.notify(Scan);
            ctx.notify(Tick);
        }));
    }

    /// One interrupted batch: what landed counts as handled; the rest is
    /// stored (first thing `Tick` does) before the read position passes it.
    fn resolve(&mut self, o: Orphan) {
        let tag = match serde_json::from_slice::<BatchTag>(&o.tag) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "unreadable timer intent dropped");
                return o.ticket.done();
            }
        };
        // Without the wheel the ticket is dropped, so the intent stays
        // orphaned and is resolved once the wheel opens.
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let rest: Vec<Entry> = tag
            .units
            .get(o.landed..)
            .unwrap_or_default()
            .iter()
            .filter_map(|&pos| {
                let unit = store.unit_at(pos);
                if unit.is_none() {
                    tracing::warn!(pos, "timer unit of an interrupted batch is gone");
                }
                unit.map(|unit| Entry {
                    fire: unit.fire_ms(),
                    pos,
                    unit,
                })
            })
            .collect();
        tracing::info!(
            landed = o.landed,
            batch = o.batch_len,
            missing = rest.len(),
            last = tag.last,
            "interrupted timer delivery resolved"
        );
        if rest.is_empty() {
            self.advance(tag.last, Some(o.ticket));
        } else {
            self.unfinished.push(Unfinished {
                rest,
                last: tag.last,
                ticket: o.ticket,
            });
            self.unfinished.sort_by_key(|u| u.last);
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing {
            return;
        }
        let Some(s) = self.store.as_ref() else { return };
        let job = match s.flush_job() {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot flush the timer wheel");
                return;
            }
        };
        self.flushing = true;
        let fut = async move { tokio::task::spawn_blocking(move || job.run()).await };
        ctx.spawn(fut.into_actor(self).map(|r, act, _| {
            act.flushing = false;
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "timer flush task failed");
                    return;
                }
            };
            let Some(s) = act.store.as_mut() else { return };
            if let Err(e) = r.and_then(|pos| s.flushed(pos)) {
                tracing::error!(error = %e, "timer flush failed");
            }
        }));
    }
}

/// Number of timer messages waiting (for stats and tests): the current
/// slot's unhandled entries plus every later slot's count.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct PendingTimers;

impl Handler<PendingTimers> for Timer {
    type Result = usize;
    fn handle(&mut self, _: PendingTimers, _: &mut Context<Self>) -> usize {
        let Some(s) = self.store.as_ref() else {
            return 0;
        };
        let slot = s.slot_of(s.read_from());
        let later = s.count_from(slot + s.precision_ms()).max(0) as usize;
        let current = match &self.current {
            Some((s, c)) if *s == slot => c.len(),
            _ => s
                .slot_units(slot)
                .iter()
                .filter(|(_, u)| u.fire_ms() >= s.read_from())
                .count(),
        };
        let open: usize = self.unfinished.iter().map(|u| u.rest.len()).sum();
        current + later + open + self.in_flight.map_or(0, |(_, n)| n)
    }
}
