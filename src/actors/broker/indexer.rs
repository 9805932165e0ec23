//! `Indexer`: owns the message index ([`IndexStore`]) on its own arbiter,
//! off the send path. The `CommitLogWriter` tells it, once per `Put` batch,
//! how far the commit log has been written ([`IndexUpTo`]); the indexer
//! reads the new records back from the mapped log and indexes their keys.
//!
//! At start (and after a supervised restart) it reopens the index files and
//! catches up with the log in bounded steps, so queries interleave with a
//! long rebuild; `IndexUpTo` is ignored meanwhile (the scan reaches those
//! records anyway). Every second it msyncs the index and records the durable
//! progress in the checkpoint, which bounds the re-indexing after a crash.

use actix::prelude::*;
use std::path::PathBuf;
use std::time::Duration;

use super::commit_log::CommitLogWriter;
use crate::actors::supervisor::restarts;
use crate::config::BrokerConfig;
use crate::store::checkpoint::store_index_progress;
use crate::store::{Checkpoint, CommitLogReader, IndexConfig, IndexHits, IndexStore, StoreConfig};

/// Records indexed per catch-up step.
const CATCH_UP_STEP: usize = 20_000;
/// How often the index is made durable.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Retry delay after an I/O error (e.g. no space for a new index file).
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Indexer {
    cfg: IndexConfig,
    reader: CommitLogReader,
    checkpoint_path: PathBuf,
    /// Durable progress after a crash; used by the first open only.
    crash_progress: Option<i64>,
    store: Option<IndexStore>,
    catching_up: bool,
    recorded_progress: i64,
}

impl Indexer {
    pub fn new(
        cfg: IndexConfig,
        reader: CommitLogReader,
        checkpoint_path: PathBuf,
        crash_progress: Option<i64>,
    ) -> Self {
        Indexer {
            cfg,
            reader,
            checkpoint_path,
            crash_progress,
            store: None,
            catching_up: true,
            recorded_progress: -1,
        }
    }

    fn store(&mut self) -> Option<&mut IndexStore> {
        if self.store.is_none() {
            let crash = self.crash_progress;
            match IndexStore::open(self.cfg.clone(), &self.reader, crash) {
                Ok(s) => {
                    tracing::info!(
                        indexed_end = s.indexed_end(),
                        files = s.file_count(),
                        "index opened"
                    );
                    self.crash_progress = None;
                    self.store = Some(s);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the message index");
                    return None;
                }
            }
        }
        self.store.as_mut()
    }

    fn flush(&mut self) {
        let Some(st) = self.store.as_mut() else {
            return;
        };
        match st.flush() {
            Ok(p) if p != self.recorded_progress => {
                match store_index_progress(&self.checkpoint_path, p) {
                    Ok(()) => self.recorded_progress = p,
                    Err(e) => tracing::warn!(error = %e, "cannot record index progress"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "index flush failed"),
        }
    }
}

impl Actor for Indexer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.catching_up = true;
        ctx.notify(CatchUp);
        ctx.run_interval(FLUSH_EVERY, |act, _| act.flush());
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.flush();
    }
}

impl Supervised for Indexer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        restarts::record("Indexer");
        // The page cache still holds everything written: reopen and resume.
        self.store = None;
    }
}

/// Internal: one bounded catch-up step.
#[derive(Message)]
#[rtype(result = "()")]
struct CatchUp;

impl Handler<CatchUp> for Indexer {
    type Result = ();
    fn handle(&mut self, _: CatchUp, ctx: &mut Context<Self>) {
        let reader = self.reader.clone();
        let Some(st) = self.store() else {
            ctx.notify_later(CatchUp, RETRY_AFTER);
            return;
        };
        let res = st.catch_up(&reader, CATCH_UP_STEP);
        let end = st.indexed_end();
        match res {
            Ok(true) => {
                if self.catching_up {
                    tracing::info!(indexed_end = end, "index caught up with the commit log");
                }
                self.catching_up = false;
            }
            Ok(false) => {
                ctx.notify(CatchUp);
            }
            Err(e) => {
                tracing::error!(error = %e, "indexing failed; retrying");
                ctx.notify_later(CatchUp, RETRY_AFTER);
            }
        }
    }
}

/// The commit log is written up to this offset (sent by the writer once per
/// `Put` batch).
#[derive(Message)]
#[rtype(result = "()")]
pub struct IndexUpTo(pub i64);

impl Handler<IndexUpTo> for Indexer {
    type Result = ();
    fn handle(&mut self, m: IndexUpTo, ctx: &mut Context<Self>) {
        if self.catching_up {
            return;
        }
        let reader = self.reader.clone();
        let Some(st) = self.store() else { return };
        if st.indexed_end() >= m.0 {
            return;
        }
        if let Err(e) = st.catch_up(&reader, usize::MAX) {
            tracing::error!(error = %e, "indexing failed; retrying");
            self.catching_up = true;
            ctx.notify_later(CatchUp, RETRY_AFTER);
        }
    }
}

/// Looks up `topic#key` among records stored within `[begin, end]`.
#[derive(Message)]
#[rtype(result = "IndexHits")]
pub struct QueryIndex {
    pub topic: String,
    pub key: String,
    pub max: usize,
    pub begin: i64,
    pub end: i64,
}

impl Handler<QueryIndex> for Indexer {
    type Result = MessageResult<QueryIndex>;
    fn handle(&mut self, q: QueryIndex, _: &mut Context<Self>) -> Self::Result {
        let hits = match self.store() {
            Some(st) => st.query(&q.topic, &q.key, q.max, q.begin, q.end),
            None => IndexHits::default(),
        };
        MessageResult(hits)
    }
}

/// Makes the index durable now and records the progress (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushIndex;

impl Handler<FlushIndex> for Indexer {
    type Result = ();
    fn handle(&mut self, _: FlushIndex, _: &mut Context<Self>) {
        self.flush();
    }
}

/// Deletes index files wholly below the commit log's new minimum offset.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct DeleteIndexBefore(pub i64);

impl Handler<DeleteIndexBefore> for Indexer {
    type Result = usize;
    fn handle(&mut self, m: DeleteIndexBefore, _: &mut Context<Self>) -> usize {
        let Some(st) = self.store() else { return 0 };
        match st.delete_before_phys(m.0) {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(files = n, min_offset = m.0, "expired index files deleted");
                }
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete expired index files");
                0
            }
        }
    }
}

/// Whether the indexer has caught up with the commit log, and where it is.
#[derive(Message)]
#[rtype(result = "(bool, i64)")]
pub struct IndexStatus;

impl Handler<IndexStatus> for Indexer {
    type Result = MessageResult<IndexStatus>;
    fn handle(&mut self, _: IndexStatus, _: &mut Context<Self>) -> Self::Result {
        let end = self.store.as_ref().map_or(0, |s| s.indexed_end());
        MessageResult((!self.catching_up, end))
    }
}

/// The running indexer (absent with `messageIndexEnable=false`) and its
/// arbiter; what the broker's wiring keeps.
pub struct IndexerHandle {
    pub addr: Option<Addr<Indexer>>,
    arbiter: Option<Arbiter>,
}

impl IndexerHandle {
    /// Starts the indexer on its own arbiter. After an unclean stop the
    /// index progress recorded in the checkpoint bounds what is trusted.
    pub fn start(
        cfg: &BrokerConfig,
        store_cfg: &StoreConfig,
        reader: CommitLogReader,
        was_clean_shutdown: bool,
    ) -> Self {
        if !cfg.expiry.message_index_enable {
            return IndexerHandle {
                addr: None,
                arbiter: None,
            };
        }
        let cp_path = store_cfg.checkpoint_path();
        let crash_progress = if was_clean_shutdown {
            None
        } else {
            Checkpoint::load(&cp_path)
                .ok()
                .flatten()
                .and_then(|c| c.index_flushed)
        };
        let icfg = IndexConfig::new(
            &store_cfg.root,
            cfg.expiry.max_hash_slot_num,
            cfg.expiry.max_index_num,
        );
        let arbiter = Arbiter::new();
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
            Indexer::new(icfg, reader, cp_path, crash_progress)
        });
        IndexerHandle {
            addr: Some(addr),
            arbiter: Some(arbiter),
        }
    }

    /// Makes the writer feed this indexer.
    pub fn attach(&self, writer: CommitLogWriter) -> CommitLogWriter {
        match &self.addr {
            Some(a) => writer.with_indexer(a.clone().recipient()),
            None => writer,
        }
    }

    /// Final flush, then stops the arbiter.
    pub async fn shutdown(&self) {
        if let Some(a) = &self.addr {
            let _ = a.send(FlushIndex).await;
        }
        if let Some(arb) = &self.arbiter {
            arb.stop();
        }
    }
}
