//! The enqueue side of [`Timer`]: scanning `rmq_sys_wheel_timer` queue 0 in
//! order and appending one timer-log unit per message to its slot.

use super::*;

/// A scanned timer message.
pub(super) struct Found {
    pub(super) due: i64,
    pub(super) queue_offset: i64,
    pub(super) phys: i64,
    pub(super) size: i32,
    pub(super) topic_hash: i32,
}

struct ScanOutcome {
    next: i64,
    found: Vec<Found>,
    again: Duration,
}

async fn scan(queue: Addr<QueueActor>, from: i64) -> ScanOutcome {
    let mut out = ScanOutcome {
        next: from,
        found: Vec::new(),
        again: RETRY_AFTER,
    };
    match read_or_wait(&queue, from, SCAN_BATCH, IDLE_HOLD).await {
        Read::Found(r) => {
            for b in &r.bodies {
                let Ok(m) = message::decode_record(b, 0, false) else {
                    continue;
                };
                let due = m
                    .property(keys::TIMER_OUT_MS)
                    .and_then(|v| v.trim().parse().ok())
                    .or_else(|| timer_due(&m.properties, m.store_timestamp))
                    .unwrap_or(m.store_timestamp);
                let topic = m.property(keys::REAL_TOPIC).unwrap_or_default();
                out.found.push(Found {
                    due,
                    queue_offset: m.queue_offset,
                    phys: m.commit_log_offset,
                    size: m.store_size,
                    topic_hash: message::java_hash(topic),
                });
            }
            out.next = r.next_begin;
            out.again = Duration::ZERO;
        }
        Read::CaughtUp => out.again = Duration::ZERO,
        Read::MoveTo(next) => {
            out.next = next;
            out.again = Duration::ZERO;
        }
        Read::Failed => {}
    }
    out
}

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Scan;

impl Handler<Scan> for Timer {
    type Result = ();
    fn handle(&mut self, _: Scan, ctx: &mut Context<Self>) {
        self.scan_step(ctx);
    }
}

impl Timer {
    fn scan_step(&mut self, ctx: &mut Context<Self>) {
        if self.scanning {
            return;
        }
        let (Some(queue), Some(store)) = (self.queue(), self.store.as_ref()) else {
            ctx.run_later(RETRY_AFTER, |_, ctx| ctx.notify(Scan));
            return;
        };
        self.scanning = true;
        let from = store.scan_offset();
        ctx.spawn(scan(queue, from).into_actor(self).map(move |r, act, ctx| {
            act.scanned(ctx, r, from);
        }));
    }

    fn scanned(&mut self, ctx: &mut Context<Self>, r: ScanOutcome, from: i64) {
        self.scanning = false;
        let mut again = r.again;
        if r.next != from || !r.found.is_empty() {
            let next = self.enqueue(ctx, &r.found, r.next);
            if next != r.next {
                again = RETRY_AFTER;
            }
            if let Some(s) = self.store.as_mut() {
                s.set_scan_offset(next);
            }
            self.save();
        }
        if again.is_zero() {
            ctx.notify(Scan);
        } else {
            ctx.run_later(again, |_, ctx| ctx.notify(Scan));
        }
    }
}
