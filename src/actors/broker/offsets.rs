//! `OffsetManager`: committed consumer offsets per (group, topic, queue),
//! persisted to `config/consumerOffset.json` every
//! `flushConsumerOffsetInterval` and on shutdown (RocketMQ's
//! `ConsumerOffsetManager`).
//!
//! The actor only takes a snapshot; a [`MetaWriter`] serializes and fsyncs
//! it on its own thread, so a table of thousands of groups does not stall
//! the arbiter this actor shares with others. A restart reloads the file
//! once every submitted snapshot is on disk, unless the table holds commits
//! not yet submitted (then the table is newer than the file and stays).

use actix::prelude::*;
use std::path::PathBuf;
use std::time::Duration;

use crate::actors::supervisor::{armed, restarts};
use crate::store::metadata::MetaWriter;
use crate::store::ConsumerOffsets;

pub struct OffsetManager {
    table: ConsumerOffsets,
    writer: MetaWriter,
    dirty: bool,
    persist_every: Duration,
}

impl OffsetManager {
    pub fn load(path: PathBuf, persist_every: Duration) -> OffsetManager {
        let table = match ConsumerOffsets::load(&path) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot read consumer offsets; starting empty");
                ConsumerOffsets::default()
            }
        };
        OffsetManager {
            table,
            writer: MetaWriter::new(path),
            dirty: false,
            persist_every,
        }
    }

    /// Hands a snapshot to the writer thread (nothing when unchanged).
    fn persist(&mut self) {
        if !self.dirty {
            return;
        }
        self.writer.submit(self.table.clone());
        self.dirty = false;
    }
}

impl Supervised for OffsetManager {
    fn restarting(&mut self, _: &mut Context<Self>) {
        restarts::record("OffsetManager");
        // Rebuild from the file once it reflects every snapshot handed out.
        self.writer.flush();
        match ConsumerOffsets::load(self.writer.path()) {
            Ok(t) if !self.dirty => self.table = t,
            Ok(_) => tracing::info!("offset table newer than consumerOffset.json; kept"),
            Err(e) => tracing::error!(error = %e, "cannot reload consumer offsets; table kept"),
        }
    }
}

impl Actor for OffsetManager {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        armed::fire("OffsetManager", armed::Point::Started);
        ctx.run_interval(self.persist_every, |act, _| {
            armed::fire("OffsetManager", armed::Point::Interval);
            act.persist()
        });
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.persist();
    }
}

crate::inject_panic_handler!(OffsetManager, "OffsetManager");

#[derive(Message)]
#[rtype(result = "Option<i64>")]
pub struct QueryOffset {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
}

impl Handler<QueryOffset> for OffsetManager {
    type Result = Option<i64>;
    fn handle(&mut self, m: QueryOffset, _: &mut Context<Self>) -> Option<i64> {
        self.table.query(&m.topic, &m.group, m.queue_id)
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CommitOffset {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub offset: i64,
}

impl Handler<CommitOffset> for OffsetManager {
    type Result = ();
    fn handle(&mut self, m: CommitOffset, _: &mut Context<Self>) {
        self.table.commit(&m.topic, &m.group, m.queue_id, m.offset);
        self.dirty = true;
    }
}

/// Removes every offset of a topic (topic deletion).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetTopicOffsets(pub String);

impl Handler<ForgetTopicOffsets> for OffsetManager {
    type Result = ();
    fn handle(&mut self, m: ForgetTopicOffsets, _: &mut Context<Self>) {
        let prefix = format!("{}@", m.0);
        self.table.table.retain(|k, _| !k.starts_with(&prefix));
        self.dirty = true;
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct PersistOffsets;

impl Handler<PersistOffsets> for OffsetManager {
    type Result = ();
    fn handle(&mut self, _: PersistOffsets, _: &mut Context<Self>) {
        // Graceful shutdown: complete before answering.
        self.dirty = true;
        self.persist();
        self.writer.flush();
    }
}

/// The topics a group has committed offsets for.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct TopicsOfGroup(pub String);

impl Handler<TopicsOfGroup> for OffsetManager {
    type Result = Vec<String>;
    fn handle(&mut self, m: TopicsOfGroup, _: &mut Context<Self>) -> Vec<String> {
        let suffix = format!("@{}", m.0);
        let mut topics: Vec<String> = self
            .table
            .table
            .keys()
            .filter_map(|k| k.strip_suffix(&suffix).map(str::to_owned))
            .collect();
        topics.sort();
        topics
    }
}

/// A slave's copy of its master's offset table (Java's
/// `SlaveSynchronize#syncConsumerOffset`). Java overwrites the table; here
/// an entry the slave committed itself since the last sync (its value
/// differs from `previous`, the master's table as last applied) is kept
/// unless the master's value has caught up with it, so a consumer that
/// moved to the slave while the master was away keeps its progress when
/// the master comes back with an older offset.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyMasterOffsets {
    pub master: ConsumerOffsets,
    pub previous: Option<ConsumerOffsets>,
}

impl Handler<ApplyMasterOffsets> for OffsetManager {
    type Result = ();
    fn handle(&mut self, m: ApplyMasterOffsets, _: &mut Context<Self>) {
        let prev = |k: &str, q: &i32| {
            m.previous
                .as_ref()
                .and_then(|p| p.table.get(k))
                .and_then(|t| t.get(q))
                .copied()
        };
        for (key, queues) in &m.master.table {
            let local = self.table.table.entry(key.clone()).or_default();
            for (q, &offset) in queues {
                let keep_local = match local.get(q) {
                    Some(&l) => l != offset && prev(key, q) != Some(l) && l > offset,
                    None => false,
                };
                if !keep_local && local.get(q) != Some(&offset) {
                    local.insert(*q, offset);
                    self.dirty = true;
                }
            }
        }
    }
}
