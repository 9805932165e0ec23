//! `Schedule`: delivers delay-level messages (`ScheduleMessageService`). Each level
//! L has its own queue `SCHEDULE_TOPIC_XXXX/L-1` in which messages are due
//! in store order, so the actor scans each queue from its persisted offset:
//! due messages are copied to their `REAL_TOPIC`/`REAL_QID`, the first one
//! not yet due arms a timer for its due time, and a caught-up level parks a
//! long-polling pull on its queue, which the next dispatch wakes up.
//!
//! Progress lives in `config/delayOffset.json` (`{"offsetTable":{"1":N}}`),
//! written after every delivered batch. Each batch is stored through
//! [`ExactPut`] (intent file `config/delayOffset.intent`), tagged with its
//! level, the source offset of every record and the offset after the batch,
//! so a crash between the store and the progress write is resolved on start
//! (and on an actor restart): the records found in the commit log count as
//! delivered, the progress moves just past them, and the scan delivers the
//! rest. A restart neither loses nor repeats deliveries.

use actix::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::commit_log::CommitLogWriter;
use super::crash_point;
use super::exact_put::{ExactPut, Ticket};
use super::queue::{read_or_wait, QueueActor, Read};
use super::store_path::{DelayLevels, NewRecord, SCHEDULE_TOPIC, TIMER_PROPS};
use super::topic::TopicRegistry;
use crate::actors::supervisor::armed;
use crate::store::CommitLogReader;
use crate::wire::message::{self, keys};
use crate::wire::now_ms;

/// Messages delivered per batch.
const BATCH: i32 = 32;
/// How long a caught-up level waits on its queue before looking again.
const IDLE_HOLD: Duration = Duration::from_secs(20);
/// Back-off after a failure (queue missing, store error).
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DelayOffsetFile {
    pub offset_table: BTreeMap<i32, i64>,
}

/// What an intent of the scheduler says about its batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct BatchTag {
    level: i32,
    /// Schedule-queue offset of each record of the batch.
    sources: Vec<i64>,
    /// The level's progress once the whole batch is stored.
    to: i64,
}

impl BatchTag {
    /// The level's progress when the first `landed` records are stored.
    fn progress_after(&self, landed: usize) -> i64 {
        self.sources.get(landed).copied().unwrap_or(self.to)
    }
}

pub struct Schedule {
    levels: Arc<DelayLevels>,
    topics: TopicRegistry,
    exact: ExactPut,
    store_host: SocketAddr,
    path: PathBuf,
    offsets: BTreeMap<i32, i64>,
    busy: HashSet<i32>,
}

impl Schedule {
    /// `path` is `delayOffset.json`; the intent file sits beside it.
    pub fn new(
        levels: Arc<DelayLevels>,
        topics: TopicRegistry,
        commit_log: Addr<CommitLogWriter>,
        reader: CommitLogReader,
        store_host: SocketAddr,
        path: PathBuf,
    ) -> Schedule {
        let exact = ExactPut::open(
            &path.with_extension("intent"),
            reader,
            commit_log,
            levels.clone(),
        );
        let mut s = Schedule {
            levels,
            topics,
            exact,
            store_host,
            path,
            offsets: BTreeMap::new(),
            busy: HashSet::new(),
        };
        s.load();
        s
    }

    fn load(&mut self) {
        match crate::store::metadata::read_json::<DelayOffsetFile>(&self.path) {
            Ok(f) => self.offsets = f.unwrap_or_default().offset_table,
            Err(e) => tracing::error!(error = %e, "cannot read delayOffset.json; starting from 0"),
        }
    }

    /// Writes `delayOffset.json`; false when it could not be written.
    fn persist(&self) -> bool {
        let f = DelayOffsetFile {
            offset_table: self.offsets.clone(),
        };
        match crate::store::metadata::write_json_atomic(&self.path, &f) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot persist delayOffset.json");
                false
            }
        }
    }

    /// Saves the progress a batch reached, then closes its intent. If the
    /// progress cannot be written the intent stays open (orphaned), and the
    /// next start resolves it from the commit log.
    fn advance(&mut self, level: i32, offset: i64, ticket: Option<Ticket>) {
        let cur = self.offsets.get(&level).copied().unwrap_or(0);
        if offset != cur {
            self.offsets.insert(level, offset);
        } else if ticket.is_none() {
            return;
        }
        if self.persist() {
            if let Some(t) = ticket {
                t.done();
            }
        }
    }
}

impl Actor for Schedule {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.begin(ctx);
    }
}

impl Schedule {
    fn begin(&mut self, ctx: &mut Context<Self>) {
        armed::fire("Schedule", armed::Point::Started);
        // Interrupted batches first (a crash, or futures cancelled by an
        // actor restart); no scan runs before they are resolved.
        let exact = self.exact.clone();
        let resume = async move { exact.orphans().await };
        ctx.wait(resume.into_actor(self).map(|orphans, act, ctx| {
            for o in orphans {
                match serde_json::from_slice::<BatchTag>(&o.tag) {
                    Ok(tag) => {
                        // A saved offset only ever covers stored records, so
                        // one past this batch (a later batch saved, its
                        // intent not closed) stands.
                        let saved = act.offsets.get(&tag.level).copied().unwrap_or(0);
                        let to = tag.progress_after(o.landed).max(saved);
                        tracing::info!(
                            level = tag.level,
                            landed = o.landed,
                            batch = o.batch_len,
                            progress = to,
                            "interrupted delay delivery resolved"
                        );
                        act.advance(tag.level, to, Some(o.ticket));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "unreadable schedule intent dropped");
                        o.ticket.done();
                    }
                }
            }
            for level in 1..=act.levels.max_level() {
                ctx.notify(ScanLevel(level));
            }
        }));
    }
}

impl Supervised for Schedule {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("Schedule");
        // Rebuilt from `delayOffset.json`; `started()` resolves the open
        // intent (`delayOffset.intent`) and rescans every level's queue.
        self.busy.clear();
        self.load();
    }
}

crate::inject_panic_handler!(Schedule, "Schedule");

/// What a scan found and when to scan again.
struct Scanned {
    offset: i64,
    again: Duration,
    /// The stored batch's intent, closed once `offset` is saved.
    ticket: Option<Ticket>,
}

/// Scans one level's queue from `from`, delivering what is due.
async fn scan_level(
    queue: Addr<QueueActor>,
    exact: ExactPut,
    levels: Arc<DelayLevels>,
    store_host: SocketAddr,
    level: i32,
    from: i64,
) -> Scanned {
    let retry = Scanned {
        offset: from,
        again: RETRY_AFTER,
        ticket: None,
    };
    let out = match read_or_wait(&queue, from, BATCH, IDLE_HOLD).await {
        Read::Found(out) => out,
        Read::CaughtUp => {
            return Scanned {
                offset: from,
                again: Duration::ZERO,
                ticket: None,
            }
        }
        Read::MoveTo(offset) => {
            return Scanned {
                offset,
                again: Duration::ZERO,
                ticket: None,
            }
        }
        Read::Failed => return retry,
    };
    let mut offset = from;
    let mut batch = Vec::new();
    let mut sources = Vec::new();
    let mut wait = Duration::ZERO;
    let now = now_ms();
    for b in &out.bodies {
        let Ok(m) = message::decode_record(b, 0, false) else {
            offset += 1;
            continue;
        };
        let due = m.store_timestamp + levels.delay_ms(level);
        if due > now {
            wait = Duration::from_millis((due - now) as u64);
            break;
        }
        let mut drop: Vec<&str> = TIMER_PROPS.to_vec();
        drop.push(keys::DELAY);
        match NewRecord::unpark(&m, store_host, &drop) {
            Some(r) => {
                batch.push(r);
                sources.push(m.queue_offset);
            }
            None => tracing::warn!(
                level,
                offset = m.queue_offset,
                "delayed message without REAL_TOPIC; skipped"
            ),
        }
        offset = m.queue_offset + 1;
    }
    if offset == from && wait.is_zero() {
        // Nothing decodable: skip to what the queue said.
        offset = out.next_begin;
    }
    if batch.is_empty() {
        return Scanned {
            offset,
            again: wait,
            ticket: None,
        };
    }
    let tag = BatchTag {
        level,
        sources,
        to: offset,
    };
    let tag_bytes = serde_json::to_vec(&tag).unwrap_or_default();
    match exact.put(&batch, tag_bytes, None).await {
        Ok(placed) => {
            crash_point::hit(crash_point::SCHEDULE_AFTER_PUT);
            Scanned {
                offset,
                again: wait,
                ticket: Some(placed.ticket),
            }
        }
        Err(f) if f.landed == 0 => {
            tracing::error!(level, error = %f.error, "delayed delivery failed; retrying");
            f.ticket.done();
            retry
        }
        Err(f) => {
            tracing::error!(level, error = %f.error, landed = f.landed, "delayed delivery partly stored; retrying the rest");
            Scanned {
                offset: tag.progress_after(f.landed),
                again: RETRY_AFTER,
                ticket: Some(f.ticket),
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct ScanLevel(i32);

impl Handler<ScanLevel> for Schedule {
    type Result = ();
    fn handle(&mut self, ScanLevel(level): ScanLevel, ctx: &mut Context<Self>) {
        self.scan(ctx, level);
    }
}

impl Schedule {
    fn scan(&mut self, ctx: &mut Context<Self>, level: i32) {
        if !self.busy.insert(level) {
            return;
        }
        let queue = self
            .topics
            .get(SCHEDULE_TOPIC)
            .and_then(|t| t.queue(level - 1).cloned());
        let Some(queue) = queue else {
            self.busy.remove(&level);
            ctx.run_later(RETRY_AFTER, move |_, ctx| ctx.notify(ScanLevel(level)));
            return;
        };
        let from = self.offsets.get(&level).copied().unwrap_or(0);
        let fut = scan_level(
            queue,
            self.exact.clone(),
            self.levels.clone(),
            self.store_host,
            level,
            from,
        );
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            act.busy.remove(&level);
            act.advance(level, r.offset, r.ticket);
            if r.again.is_zero() {
                ctx.notify(ScanLevel(level));
            } else {
                ctx.run_later(r.again, move |_, ctx| ctx.notify(ScanLevel(level)));
            }
        }));
    }
}

/// The delivery offset of every level (GET_ALL_DELAY_OFFSET style).
#[derive(Message)]
#[rtype(result = "BTreeMap<i32, i64>")]
pub struct DelayOffsets;

impl Handler<DelayOffsets> for Schedule {
    type Result = MessageResult<DelayOffsets>;
    fn handle(&mut self, _: DelayOffsets, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.offsets.clone())
    }
}

/// A slave's copy of its master's `delayOffset.json` (Java's
/// `SlaveSynchronize#syncDelayOffset` writes the file): checked to parse,
/// then written atomically. Only called while a slave, when no `Schedule`
/// runs; a later switch to master starts the scheduler from it.
pub fn apply_master_delay_offsets(path: &std::path::Path, body: &[u8]) -> std::io::Result<bool> {
    let f: DelayOffsetFile = serde_json::from_slice(body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let cur = crate::store::metadata::read_json::<DelayOffsetFile>(path)
        .ok()
        .flatten()
        .unwrap_or_default();
    if cur.offset_table == f.offset_table {
        return Ok(false);
    }
    crate::store::metadata::write_json_atomic(path, &f).map_err(std::io::Error::other)?;
    Ok(true)
}
