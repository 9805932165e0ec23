//! `Indexer`: owns the message index ([`IndexStore`]) on its own arbiter,
//! off the send path. The `CommitLogWriter` tells it that the commit log
//! grew ([`IndexUpTo`]) only when it is idle (an [`IndexSignal`] says
//! whether a catch-up is already due); the indexer then waits
//! [`INDEX_BATCH_DELAY`], reads the new records back from the mapped log and
//! indexes their keys. Under load this is one wake-up of its thread per few
//! milliseconds, not one per `Put`: on a 2-core machine each cross-thread
//! wake-up takes CPU from the sessions. Queries catch up first, so a query
//! always sees every message stored before it.
//!
//! At start (and after a supervised restart) it reopens the index files and
//! catches up with the log in bounded steps, so queries interleave with a
//! long rebuild; `IndexUpTo` is ignored meanwhile (the scan reaches those
//! records anyway). Every second it msyncs the index and records the durable
//! progress in the checkpoint, which bounds the re-indexing after a crash.

use actix::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// How long a catch-up waits after the first new record, to index a batch.
pub const INDEX_BATCH_DELAY: Duration = Duration::from_millis(5);

/// Shared between the writer and the indexer: set while a catch-up is due.
#[derive(Default)]
pub struct IndexSignal {
    armed: AtomicBool,
}

impl IndexSignal {
    /// True when the caller must wake the indexer (it was idle).
    pub fn arm(&self) -> bool {
        !self.armed.swap(true, Ordering::AcqRel)
    }
}

pub struct Indexer {
    signal: Arc<IndexSignal>,
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
            signal: Arc::default(),
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
        // A catch-up scheduled in the old context is gone: disarm, so the
        // writer wakes us again.
        self.store = None;
        self.signal.armed.store(false, Ordering::Release);
    }
}

crate::inject_panic_handler!(Indexer, "Indexer");

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
                // Records written during the catch-up may have found the
                // signal armed: look once more, which also disarms it.
                ctx.run_later(INDEX_BATCH_DELAY, |act, ctx| act.index_new(ctx));
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

/// The commit log was cut back to this offset (a slave's truncation): the
/// entries of the records past it go, indexing resumes there.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TruncateIndex(pub i64);

impl Handler<TruncateIndex> for Indexer {
    type Result = ();
    fn handle(&mut self, m: TruncateIndex, _: &mut Context<Self>) {
        if let Some(st) = self.store() {
            if let Err(e) = st.truncate_from_phys(m.0) {
                tracing::error!(error = %e, offset = m.0, "index truncation failed");
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
    fn handle(&mut self, _: IndexUpTo, ctx: &mut Context<Self>) {
        ctx.run_later(INDEX_BATCH_DELAY, |act, ctx| act.index_new(ctx));
    }
}

impl Indexer {
    /// Indexes what the log holds now, then disarms the signal, unless
    /// more arrived meanwhile (a writer that found it armed sent nothing).
    fn index_new(&mut self, ctx: &mut Context<Self>) {
        if !self.catching_up {
            let reader = self.reader.clone();
            if let Some(st) = self.store() {
                if let Err(e) = st.catch_up(&reader, usize::MAX) {
                    tracing::error!(error = %e, "indexing failed; retrying");
                    self.catching_up = true;
                    ctx.notify_later(CatchUp, RETRY_AFTER);
                }
            }
        }
        self.signal.armed.store(false, Ordering::Release);
        let behind = self
            .store
            .as_ref()
            .is_some_and(|st| st.indexed_end() < self.reader.max_offset());
        if behind && !self.catching_up && self.signal.arm() {
            ctx.run_later(INDEX_BATCH_DELAY, |act, ctx| act.index_new(ctx));
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
        let reader = self.reader.clone();
        let catching_up = self.catching_up;
        let hits = match self.store() {
            Some(st) => {
                // Everything stored before the query is indexed first.
                if !catching_up {
                    if let Err(e) = st.catch_up(&reader, usize::MAX) {
                        tracing::warn!(error = %e, "indexing before a query failed");
                    }
                }
                st.query(&q.topic, &q.key, q.max, q.begin, q.end)
            }
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
    signal: Arc<IndexSignal>,
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
                signal: Arc::default(),
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
        let signal = Arc::new(IndexSignal::default());
        let sig = signal.clone();
        let addr =
            crate::actors::supervisor::start_in_arbiter(&arbiter.handle(), "Indexer", move |_| {
                let mut ix = Indexer::new(icfg, reader, cp_path, crash_progress);
                ix.signal = sig.clone();
                ix
            });
        IndexerHandle {
            addr: Some(addr),
            signal,
            arbiter: Some(arbiter),
        }
    }

    /// Makes the writer feed this indexer.
    pub fn attach(&self, writer: CommitLogWriter) -> CommitLogWriter {
        match &self.addr {
            Some(a) => writer
                .with_indexer(a.clone().recipient(), self.signal.clone())
                .with_index_truncate(a.clone().recipient()),
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
