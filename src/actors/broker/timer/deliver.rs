//! The dequeue side of [`Timer`]: as wall time reaches a slot, its due
//! entries are delivered to their real topic or re-parked (roll entries).

use super::*;

/// Wakes the dequeue side: deliver what is due, move on to the next slot.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Tick;

impl Handler<Tick> for Timer {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        self.tick(ctx);
    }
}

impl Timer {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() {
            return; // its completion ticks again
        }
        if !self.unfinished.is_empty() {
            let u = self.unfinished.remove(0);
            return self.deliver(ctx, u.rest, u.last, Some(u.ticket));
        }
        enum Step {
            Wait(i64),
            Deliver(Vec<Entry>),
            Again,
        }
        let now = now_ms();
        let mut moved = 0usize;
        let step = loop {
            let Some(store) = self.store.as_mut() else {
                return;
            };
            let precision = store.precision_ms();
            let read_from = store.read_from();
            let slot = store.slot_of(read_from);
            if self.current.as_ref().is_some_and(|(s, _)| *s != slot) {
                self.current = None;
            }
            if self.current.is_none() {
                if slot > now {
                    break Step::Wait(slot);
                }
                let mut entries: Vec<Entry> = store
                    .slot_units(slot)
                    .into_iter()
                    .map(|(pos, unit)| Entry {
                        fire: unit.fire_ms(),
                        pos,
                        unit,
                    })
                    .filter(|e| e.fire >= read_from)
                    .collect();
                entries.sort_by_key(|e| (e.fire, e.pos));
                self.current = Some((slot, entries));
            }
            let current = &mut self.current.get_or_insert_with(|| (slot, Vec::new())).1;
            if current.first().is_some_and(|e| e.fire <= now) {
                let mut n = current
                    .iter()
                    .take_while(|e| e.fire <= now)
                    .count()
                    .min(DELIVER_BATCH);
                // Keep entries of one ms together: progress is kept per ms.
                while n < current.len() && current[n].fire == current[n - 1].fire {
                    n += 1;
                }
                break Step::Deliver(current.drain(..n).collect());
            }
            if current.is_empty() && now >= slot + precision {
                store.set_read_from(slot + precision);
                self.current = None;
                moved += 1;
                if moved >= CATCH_UP_SLOTS {
                    break Step::Again;
                }
                continue;
            }
            break Step::Wait(current.first().map_or(slot + precision, |e| e.fire));
        };
        if moved > 0 {
            self.save();
        }
        match step {
            Step::Wait(at) => self.arm(ctx, at),
            Step::Deliver(batch) => {
                let last = batch.last().map_or(now, |e| e.fire);
                self.deliver(ctx, batch, last, None)
            }
            Step::Again => ctx.notify(Tick),
        }
    }
}

impl Timer {
    /// The records for a batch of due entries: each delivered to its
    /// `REAL_TOPIC`, or re-parked when a roll entry's due time is still
    /// ahead. Returns them with the entry behind each record, and how many
    /// of them are re-parks. Entries whose message is gone are dropped.
    fn records_for(&self, batch: &[Entry], now: i64) -> (Vec<NewRecord>, Vec<Entry>, usize) {
        let mut records = Vec::with_capacity(batch.len());
        let mut owners = Vec::with_capacity(batch.len());
        let mut reparks = 0;
        for e in batch {
            let m = self
                .reader
                .read(e.unit.phys, e.unit.size)
                .and_then(|b| message::decode_record(&b, 0, false).ok());
            let Some(m) = m else {
                tracing::warn!(
                    phys = e.unit.phys,
                    "timer message no longer in the commit log; dropped"
                );
                continue;
            };
            let due = m
                .property(keys::TIMER_OUT_MS)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(e.fire);
            let enqueued = e.unit.enqueue_ms.to_string();
            let dequeued = now.to_string();
            if due > now {
                // A roll entry (or a clock step back): park it again.
                let mut p = m.properties.clone();
                if e.unit.is_roll() {
                    let times = m
                        .property(keys::TIMER_ROLL_TIMES)
                        .and_then(|v| v.trim().parse::<i64>().ok())
                        .unwrap_or(0);
                    p = message::with_property(
                        &p,
                        keys::TIMER_ROLL_TIMES,
                        &(times + 1).to_string(),
                    );
                }
                p = message::with_property(&p, keys::TIMER_ENQUEUE_MS, &enqueued);
                p = message::with_property(&p, keys::TIMER_DEQUEUE_MS, &dequeued);
                records.push(NewRecord::copy_of(
                    &m,
                    TIMER_TOPIC.to_owned(),
                    0,
                    self.store_host,
                    p,
                ));
                owners.push(*e);
                reparks += 1;
                continue;
            }
            match NewRecord::unpark(&m, self.store_host, TIMER_PROPS) {
                Some(mut r) => {
                    r.properties =
                        message::with_property(&r.properties, keys::TIMER_ENQUEUE_MS, &enqueued);
                    r.properties =
                        message::with_property(&r.properties, keys::TIMER_DEQUEUE_MS, &dequeued);
                    records.push(r);
                    owners.push(*e);
                }
                None => tracing::warn!(
                    phys = e.unit.phys,
                    "timer message without REAL_TOPIC; dropped"
                ),
            }
        }
        (records, owners, reparks)
    }

    /// Stores a batch of due entries through [`ExactPut`]; once it is
    /// stored the read position moves past `last`. `replacing`: the intent
    /// of the batch this one finishes (an [`Unfinished`] rest).
    fn deliver(
        &mut self,
        ctx: &mut Context<Self>,
        batch: Vec<Entry>,
        last: i64,
        replacing: Option<Ticket>,
    ) {
        let (records, owners, reparks) = self.records_for(&batch, now_ms());
        let resumed = replacing.is_some();
        let tag = BatchTag {
            last,
            units: owners.iter().map(|e| e.pos).collect(),
        };
        let tag = serde_json::to_vec(&tag).unwrap_or_default();
        self.in_flight = Some((last, batch.len()));
        let exact = self.exact.clone();
        let fut = async move {
            if records.is_empty() {
                return Ok(replacing);
            }
            let placed = exact.put(&records, tag, replacing).await?;
            if reparks < records.len() {
                crash_point::hit(crash_point::TIMER_AFTER_PUT);
            }
            if reparks > 0 {
                crash_point::hit(crash_point::TIMER_AFTER_ROLL);
            }
            Ok(Some(placed.ticket))
        };
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            act.in_flight = None;
            match r {
                Ok(ticket) => {
                    act.advance(last, ticket);
                    ctx.notify(Tick);
                }
                Err(f) => act.delivery_failed(ctx, f, batch, owners, last, resumed),
            }
        }));
    }

    /// A failed delivery Put. Nothing stored of a fresh batch: it goes back
    /// to the slot and its intent is closed. Otherwise the records not
    /// stored are kept, with the intent, as an [`Unfinished`] rest.
    fn delivery_failed(
        &mut self,
        ctx: &mut Context<Self>,
        f: PutFailed,
        batch: Vec<Entry>,
        owners: Vec<Entry>,
        last: i64,
        resumed: bool,
    ) {
        if f.landed == 0 && !resumed {
            tracing::error!(error = %f.error, "timer delivery failed; retrying");
            f.ticket.done();
            if let Some((_, cur)) = self.current.as_mut() {
                cur.extend(batch);
                cur.sort_by_key(|e| (e.fire, e.pos));
            }
        } else {
            tracing::error!(error = %f.error, landed = f.landed, "timer delivery stored in part; retrying the rest");
            self.unfinished.push(Unfinished {
                rest: owners.into_iter().skip(f.landed).collect(),
                last,
                ticket: f.ticket,
            });
            self.unfinished.sort_by_key(|u| u.last);
        }
        ctx.run_later(RETRY_AFTER, |_, ctx| ctx.notify(Tick));
    }
}
