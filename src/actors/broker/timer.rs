//! `Timer`: delivers 5.x timer messages (`TIMER_DELIVER_MS`,
//! `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`, `__STARTDELIVERTIME`), parked by the
//! store path in `rmq_sys_wheel_timer` queue 0 with their due time in
//! `TIMER_OUT_MS`.
//!
//! Unlike delay levels, due times in the timer queue are in no order, so
//! the actor reads the queue sequentially into a pending set ordered by due
//! time (a timing wheel with unbounded span) and arms one actor timer for the
//! earliest entry. A caught-up scan parks a long-polling pull on the queue,
//! so new timer messages are seen as soon as they are dispatched.
//!
//! Restart safety: every scanned or delivered batch appends its changes to
//! `config/timerCheckpoint.journal` (see `store::timer_journal`), which is
//! compacted when it outgrows the pending set, so the cost per batch does not
//! grow with the number of waiting timers. A crash between a delivery and
//! its journal append repeats the delivery (at-least-once).

use actix::prelude::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::commit_log::CommitLogWriter;
use super::queue::{Pull, PullQuery, PullStatus, QueueActor};
use super::store_path::{self, timer_due, DelayLevels, NewRecord, TIMER_PROPS, TIMER_TOPIC};
use super::topic::TopicRegistry;
use crate::store::timer_journal::{TimerJournal, TimerOp};
use crate::store::CommitLogReader;
use crate::wire::message::{self, keys};
use crate::wire::now_ms;

const SCAN_BATCH: i32 = 256;
const DELIVER_BATCH: usize = 256;
const IDLE_HOLD: Duration = Duration::from_secs(20);
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One parked message: (due ms, queue offset) → (commit-log offset, size).
type Pending = crate::store::timer_journal::TimerSet;

pub struct Timer {
    levels: Arc<DelayLevels>,
    topics: TopicRegistry,
    commit_log: Addr<CommitLogWriter>,
    reader: CommitLogReader,
    store_host: SocketAddr,
    path: PathBuf,
    scan_offset: i64,
    pending: Pending,
    scanning: bool,
    delivering: bool,
    /// Due time the armed timer fires for.
    armed: Option<i64>,
    journal: Option<TimerJournal>,
}

impl Timer {
    pub fn new(
        levels: Arc<DelayLevels>,
        topics: TopicRegistry,
        commit_log: Addr<CommitLogWriter>,
        reader: CommitLogReader,
        store_host: SocketAddr,
        path: PathBuf,
    ) -> Timer {
        let mut t = Timer {
            levels,
            topics,
            commit_log,
            reader,
            store_host,
            path,
            scan_offset: 0,
            pending: Pending::new(),
            scanning: false,
            delivering: false,
            armed: None,
            journal: None,
        };
        t.load();
        t
    }

    fn load(&mut self) {
        let path = self.path.with_extension("journal");
        match TimerJournal::open(&path) {
            Ok((j, scan, set)) => {
                self.scan_offset = scan;
                self.pending = set;
                self.journal = Some(j);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot open the timer journal; timers will not persist")
            }
        }
    }

    /// Appends the changes of one scanned or delivered batch to the journal.
    fn persist(&mut self, ops: &[TimerOp]) {
        if let Some(j) = self.journal.as_mut() {
            if let Err(e) = j.append(ops, self.scan_offset, &self.pending) {
                tracing::error!(error = %e, "cannot append to the timer journal");
            }
        }
    }

    /// Arms the timer for the earliest pending message if it is earlier
    /// than what is armed.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some(&(due, _)) = self.pending.keys().next() else {
            return;
        };
        if self.armed.is_some_and(|a| a <= due) {
            return;
        }
        self.armed = Some(due);
        let wait = Duration::from_millis((due - now_ms()).max(0) as u64);
        ctx.run_later(wait, move |act, ctx| {
            if act.armed == Some(due) {
                act.armed = None;
            }
            ctx.notify(Deliver);
        });
    }

    fn queue(&self) -> Option<Addr<QueueActor>> {
        self.topics
            .get(TIMER_TOPIC)
            .and_then(|t| t.queue(0).cloned())
    }
}

impl Actor for Timer {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Scan);
        ctx.notify(Deliver);
    }
}

impl Supervised for Timer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("Timer");
        self.scanning = false;
        self.delivering = false;
        self.armed = None;
        self.load();
    }
}

struct ScanOutcome {
    next: i64,
    found: Vec<((i64, i64), (i64, i32))>,
    again: Duration,
}

async fn scan(queue: Addr<QueueActor>, from: i64) -> ScanOutcome {
    let query = |offset| PullQuery {
        offset,
        max_msgs: SCAN_BATCH,
        tag_codes: None,
        sql: None,
    };
    let mut out = ScanOutcome {
        next: from,
        found: Vec::new(),
        again: RETRY_AFTER,
    };
    let r = match queue
        .send(Pull {
            query: query(from),
            hold: None,
        })
        .await
    {
        Ok(Ok(r)) => r,
        _ => return out,
    };
    match r.status {
        PullStatus::Found => {
            for b in &r.bodies {
                let Ok(m) = message::decode_record(b, 0, false) else {
                    continue;
                };
                let due = m
                    .property(keys::TIMER_OUT_MS)
                    .and_then(|v| v.trim().parse().ok())
                    .or_else(|| timer_due(&m.properties, m.store_timestamp))
                    .unwrap_or(m.store_timestamp);
                out.found
                    .push(((due, m.queue_offset), (m.commit_log_offset, m.store_size)));
            }
            out.next = r.next_begin;
            out.again = Duration::ZERO;
        }
        PullStatus::NoNewMessage | PullStatus::OffsetOverflowOne | PullStatus::NoMessageInQueue => {
            let held = Pull {
                query: query(from),
                hold: Some(IDLE_HOLD),
            };
            if let Ok(Ok(_)) = queue.send(held).await {
                out.again = Duration::ZERO;
            }
        }
        _ => {
            out.next = r.next_begin.max(0);
            out.again = Duration::ZERO;
        }
    }
    out
}

#[derive(Message)]
#[rtype(result = "()")]
struct Scan;

impl Handler<Scan> for Timer {
    type Result = ();
    fn handle(&mut self, _: Scan, ctx: &mut Context<Self>) {
        if self.scanning {
            return;
        }
        let Some(queue) = self.queue() else {
            ctx.run_later(RETRY_AFTER, |_, ctx| ctx.notify(Scan));
            return;
        };
        self.scanning = true;
        let from = self.scan_offset;
        ctx.spawn(scan(queue, from).into_actor(self).map(move |r, act, ctx| {
            act.scanning = false;
            if r.next != from || !r.found.is_empty() {
                act.scan_offset = r.next;
                let mut ops: Vec<TimerOp> = r
                    .found
                    .iter()
                    .map(|&((due, queue_offset), (phys, size))| TimerOp::Add {
                        due,
                        queue_offset,
                        phys,
                        size,
                    })
                    .collect();
                ops.push(TimerOp::Scan { offset: r.next });
                act.pending.extend(r.found);
                act.persist(&ops);
                act.arm(ctx);
            }
            if r.again.is_zero() {
                ctx.notify(Scan);
            } else {
                ctx.run_later(r.again, |_, ctx| ctx.notify(Scan));
            }
        }));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Deliver;

impl Handler<Deliver> for Timer {
    type Result = ();
    fn handle(&mut self, _: Deliver, ctx: &mut Context<Self>) {
        if self.delivering {
            return;
        }
        let now = now_ms();
        let due: Vec<((i64, i64), (i64, i32))> = self
            .pending
            .range(..(now + 1, i64::MIN))
            .take(DELIVER_BATCH)
            .map(|(k, v)| (*k, *v))
            .collect();
        if due.is_empty() {
            self.arm(ctx);
            return;
        }
        let mut records = Vec::new();
        for (_, (phys, size)) in &due {
            let m = self
                .reader
                .read(*phys, *size)
                .and_then(|b| message::decode_record(&b, 0, false).ok());
            match m.and_then(|m| NewRecord::unpark(&m, self.store_host, TIMER_PROPS)) {
                Some(r) => records.push(r),
                None => tracing::warn!(
                    phys,
                    "timer message unreadable or without REAL_TOPIC; dropped"
                ),
            }
        }
        self.delivering = true;
        let (commit_log, levels) = (self.commit_log.clone(), self.levels.clone());
        let fut = async move { store_path::store(&commit_log, &levels, &records, false).await };
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            act.delivering = false;
            match r {
                Ok(_) => {
                    for (k, _) in &due {
                        act.pending.remove(k);
                    }
                    let ops: Vec<TimerOp> = due
                        .iter()
                        .map(|&((due, queue_offset), _)| TimerOp::Remove { due, queue_offset })
                        .collect();
                    act.persist(&ops);
                    ctx.notify(Deliver);
                }
                Err(e) => {
                    tracing::error!(error = %e, "timer delivery failed; retrying");
                    ctx.run_later(RETRY_AFTER, |_, ctx| ctx.notify(Deliver));
                }
            }
        }));
    }
}

/// Number of timer messages waiting (for stats and tests).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct PendingTimers;

impl Handler<PendingTimers> for Timer {
    type Result = usize;
    fn handle(&mut self, _: PendingTimers, _: &mut Context<Self>) -> usize {
        self.pending.len()
    }
}
