//! `Schedule`: delivers delay-level messages (protocol.md §7.3). Each level
//! L has its own queue `SCHEDULE_TOPIC_XXXX/L-1` in which messages are due
//! in store order, so the actor scans each queue from its persisted offset:
//! due messages are copied to their `REAL_TOPIC`/`REAL_QID`, the first one
//! not yet due arms a timer for its due time, and a caught-up level parks a
//! long-polling pull on its queue, which the next dispatch wakes up.
//!
//! Progress lives in `config/delayOffset.json` (`{"offsetTable":{"1":N}}`),
//! written after every delivered batch, so a restart neither loses nor
//! repeats deliveries (a crash between a batch and its write may repeat that
//! batch: at-least-once).

use actix::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::commit_log::CommitLogWriter;
use super::queue::{Pull, PullQuery, PullStatus, QueueActor};
use super::store_path::{self, DelayLevels, NewRecord, SCHEDULE_TOPIC, TIMER_PROPS};
use super::topic::TopicRegistry;
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

pub struct Schedule {
    levels: Arc<DelayLevels>,
    topics: TopicRegistry,
    commit_log: Addr<CommitLogWriter>,
    store_host: SocketAddr,
    path: PathBuf,
    offsets: BTreeMap<i32, i64>,
    busy: HashSet<i32>,
}

impl Schedule {
    pub fn new(
        levels: Arc<DelayLevels>,
        topics: TopicRegistry,
        commit_log: Addr<CommitLogWriter>,
        store_host: SocketAddr,
        path: PathBuf,
    ) -> Schedule {
        let mut s = Schedule {
            levels,
            topics,
            commit_log,
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

    fn persist(&self) {
        let f = DelayOffsetFile {
            offset_table: self.offsets.clone(),
        };
        if let Err(e) = crate::store::metadata::write_json_atomic(&self.path, &f) {
            tracing::error!(error = %e, "cannot persist delayOffset.json");
        }
    }
}

impl Actor for Schedule {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        for level in 1..=self.levels.max_level() {
            ctx.notify(ScanLevel(level));
        }
    }
}

impl Supervised for Schedule {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("Schedule");
        self.busy.clear();
        self.load();
    }
}

/// What a scan found and when to scan again.
struct Scanned {
    offset: i64,
    again: Duration,
}

/// Scans one level's queue from `from`, delivering what is due.
async fn scan_level(
    queue: Addr<QueueActor>,
    commit_log: Addr<CommitLogWriter>,
    levels: Arc<DelayLevels>,
    store_host: SocketAddr,
    level: i32,
    from: i64,
) -> Scanned {
    let query = |offset| PullQuery {
        offset,
        max_msgs: BATCH,
        tag_codes: None,
        sql: None,
    };
    let retry = Scanned {
        offset: from,
        again: RETRY_AFTER,
    };
    let out = match queue
        .send(Pull {
            query: query(from),
            hold: None,
        })
        .await
    {
        Ok(Ok(o)) => o,
        _ => return retry,
    };
    match out.status {
        PullStatus::Found => {}
        PullStatus::NoNewMessage | PullStatus::OffsetOverflowOne | PullStatus::NoMessageInQueue => {
            // Caught up: wait for the next dispatch (or the hold timeout).
            let held = Pull {
                query: query(from),
                hold: Some(IDLE_HOLD),
            };
            return match queue.send(held).await {
                Ok(Ok(_)) => Scanned {
                    offset: from,
                    again: Duration::ZERO,
                },
                _ => retry,
            };
        }
        _ => {
            return Scanned {
                offset: out.next_begin.max(0),
                again: Duration::ZERO,
            }
        }
    }
    let mut offset = from;
    let mut batch = Vec::new();
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
            Some(r) => batch.push(r),
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
    if !batch.is_empty() {
        if let Err(e) = store_path::store(&commit_log, &levels, &batch, false).await {
            tracing::error!(level, error = %e, "delayed delivery failed; retrying");
            return retry;
        }
    }
    Scanned {
        offset,
        again: wait,
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct ScanLevel(i32);

impl Handler<ScanLevel> for Schedule {
    type Result = ();
    fn handle(&mut self, ScanLevel(level): ScanLevel, ctx: &mut Context<Self>) {
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
            self.commit_log.clone(),
            self.levels.clone(),
            self.store_host,
            level,
            from,
        );
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            act.busy.remove(&level);
            if r.offset != from {
                act.offsets.insert(level, r.offset);
                act.persist();
            }
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
