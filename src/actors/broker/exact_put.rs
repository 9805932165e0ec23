//! `ExactPut`: the broker's own writes (schedule deliveries, transaction
//! commits, timer deliveries and roll re-parks) stored exactly once across a
//! crash, on top of `store::put_intent`.
//!
//! # Using it
//!
//! An owner opens one file of its own (`config/<owner>.intent`):
//!
//! ```text
//! let exact = ExactPut::open(path, reader, commit_log, levels);
//! ```
//!
//! Every internal batch goes through [`ExactPut::put`] with a tag that says
//! what the batch is for, enough for the owner to finish it later (say, the
//! level and source offsets, or the transaction):
//!
//! ```text
//! match exact.put(&records, tag, None).await {
//!     Ok(placed) => { save_progress(); placed.ticket.done(); }
//!     Err(f) => { /* f.landed records are stored; the rest are not */
//!                 save_progress_for(f.landed); f.ticket.done(); }
//! }
//! ```
//!
//! `put` encodes the records, appends the intent (commit-log end and one
//! fingerprint per record) and sends the Put in the same poll, so an intent
//! on file always precedes its Put in the writer's mailbox. Close the
//! ticket only once the progress is saved. A ticket dropped without
//! `done` (the owner died, or its future was cancelled by an actor
//! restart) leaves its intent *orphaned*.
//!
//! On start (and on an actor restart), before writing anything new, the
//! owner calls [`ExactPut::orphans`]: it waits for the commit-log writer's
//! mailbox to drain past any Put already sent, then reports each orphaned
//! intent with how many of its records are stored (`landed`, a prefix of
//! the batch). The owner treats those as delivered, writes the rest (with
//! `put(rest, tag, Some(orphan.ticket))`, which closes the old intent when
//! it opens the new one) or just moves its progress, then closes it.
//!
//! If the intent file cannot be opened, puts still work, without the
//! exactly-once guarantee (an error is logged).

use actix::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use super::commit_log::{CommitLogWriter, NextQueueOffset, Put, PutError, PutRecords, PutResult};
use super::store_path::{DelayLevels, NewRecord, StoreFailure};
use crate::store::put_intent::{self, Intent, IntentLog};
use crate::store::CommitLogReader;

#[derive(Debug, Default)]
struct State {
    log: Option<IntentLog>,
    /// Intents whose ticket is alive in this process.
    live: HashMap<u64, Weak<()>>,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Handle on one open intent; see the module doc.
#[must_use = "close the ticket with done() once the progress is saved"]
#[derive(Debug)]
pub struct Ticket {
    id: Option<u64>,
    state: Shared,
    _alive: Arc<()>,
}

impl Ticket {
    fn register(state: &Shared, id: Option<u64>) -> Ticket {
        let alive = Arc::new(());
        if let Some(id) = id {
            lock(state).live.insert(id, Arc::downgrade(&alive));
        }
        Ticket {
            id,
            state: state.clone(),
            _alive: alive,
        }
    }

    /// Closes the intent: the batch and the owner's progress are both saved.
    pub fn done(self) {
        let Some(id) = self.id else { return };
        let mut s = lock(&self.state);
        s.live.remove(&id);
        if let Some(log) = s.log.as_mut() {
            if let Err(e) = log.done(id) {
                tracing::error!(error = %e, id, "cannot close a put intent");
            }
        }
    }
}

/// A Put that was acknowledged.
#[derive(Debug)]
pub struct Placed {
    pub ticket: Ticket,
    pub results: Vec<PutResult>,
}

/// A Put that failed; `landed` of its records (a prefix) are stored anyway.
#[derive(Debug)]
pub struct PutFailed {
    pub ticket: Ticket,
    pub landed: usize,
    pub error: StoreFailure,
}

/// An intent left open by a run (or a future) that died.
#[derive(Debug)]
pub struct Orphan {
    pub tag: Vec<u8>,
    pub batch_len: usize,
    /// How many records of the batch (a prefix) are in the commit log.
    pub landed: usize,
    pub ticket: Ticket,
}

#[derive(Clone)]
pub struct ExactPut {
    state: Shared,
    reader: CommitLogReader,
    commit_log: Addr<CommitLogWriter>,
    levels: Arc<DelayLevels>,
}

impl ExactPut {
    /// Opens the owner's intent file at `path`.
    pub fn open(
        path: &Path,
        reader: CommitLogReader,
        commit_log: Addr<CommitLogWriter>,
        levels: Arc<DelayLevels>,
    ) -> ExactPut {
        let log = match IntentLog::open(path) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(error = %e, "put intents unavailable: internal writes are at-least-once");
                None
            }
        };
        ExactPut {
            state: Arc::new(Mutex::new(State {
                log,
                live: HashMap::new(),
            })),
            reader,
            commit_log,
            levels,
        }
    }

    /// Whether some open intent has no live ticket (cheap; no I/O).
    pub fn has_orphans(&self) -> bool {
        let s = lock(&self.state);
        s.log.as_ref().is_some_and(|log| {
            log.open_intents()
                .any(|i| s.live.get(&i.id).is_none_or(|w| w.strong_count() == 0))
        })
    }

    /// Records the intent, then appends `records` (one writer turn). With
    /// `replacing`, that older intent is closed once the new one is on file.
    pub async fn put(
        &self,
        records: &[NewRecord],
        tag: Vec<u8>,
        replacing: Option<Ticket>,
    ) -> Result<Placed, PutFailed> {
        let failed = |ticket, landed, error| PutFailed {
            ticket,
            landed,
            error,
        };
        let now = crate::wire::now_ms();
        let encoded = match records
            .iter()
            .map(|r| r.encode(&self.levels, now))
            .collect::<Result<PutRecords, _>>()
        {
            Ok(e) => e,
            Err(e) => {
                let t = replacing.unwrap_or_else(|| Ticket::register(&self.state, None));
                return Err(failed(t, 0, e.into()));
            }
        };
        let fps = encoded
            .iter()
            .map(|r| put_intent::fingerprint(&r.buf))
            .collect::<Result<Vec<_>, _>>();
        let (ticket, intent) = {
            let mut s = lock(&self.state);
            let base = self.reader.max_offset();
            let begun = match (s.log.as_mut(), fps) {
                (None, _) => Ok(None),
                (Some(log), Ok(fps)) => log
                    .begin(base, fps.clone(), tag)
                    .map(|id| Some((id, base, fps))),
                (Some(_), Err(e)) => {
                    drop(s);
                    let t = replacing.unwrap_or_else(|| Ticket::register(&self.state, None));
                    return Err(failed(t, 0, e.into()));
                }
            };
            let begun = match begun {
                Ok(b) => b,
                Err(e) => {
                    drop(s);
                    tracing::error!(error = %e, "cannot record a put intent");
                    let t = replacing.unwrap_or_else(|| Ticket::register(&self.state, None));
                    let err = StoreFailure::Put(PutError::Store(e.to_string()));
                    return Err(failed(t, 0, err));
                }
            };
            drop(s);
            if let Some(old) = replacing {
                old.done();
            }
            let ticket = Ticket::register(&self.state, begun.as_ref().map(|b| b.0));
            let intent = begun.map(|(id, base, fingerprints)| Intent {
                id,
                base,
                fingerprints,
                tag: Vec::new(),
            });
            (ticket, intent)
        };
        // No await between the intent and this send: the Put is in the
        // writer's mailbox before anyone can find the intent orphaned.
        let sent = self.commit_log.send(Put {
            records: encoded,
            wait: false,
        });
        let error = match sent.await {
            Ok(Ok(a)) => {
                return Ok(Placed {
                    ticket,
                    results: a.results.into_vec(),
                })
            }
            Ok(Err(e)) => StoreFailure::Put(e),
            Err(_) => StoreFailure::Mailbox,
        };
        // The writer answered (or is gone): what it stored is in the log.
        let landed = intent.map_or(0, |i| put_intent::landed(&self.reader, &i));
        Err(failed(ticket, landed, error))
    }

    /// The orphaned intents, each with how much of its batch is stored.
    /// Each comes with a live ticket, so a second call skips it.
    pub async fn orphans(&self) -> Vec<Orphan> {
        if !self.has_orphans() {
            return Vec::new();
        }
        // A barrier: once this answers, every Put sent before it is stored.
        let _ = self
            .commit_log
            .send(NextQueueOffset(String::new(), 0))
            .await;
        let found: Vec<(Intent, Ticket)> = {
            let mut s = lock(&self.state);
            let State { log, live } = &mut *s;
            let Some(log) = log.as_ref() else {
                return Vec::new();
            };
            let orphaned: Vec<Intent> = log
                .open_intents()
                .filter(|i| live.get(&i.id).is_none_or(|w| w.strong_count() == 0))
                .cloned()
                .collect();
            // Claimed under the same lock: a concurrent call skips them.
            orphaned
                .into_iter()
                .map(|i| {
                    let alive = Arc::new(());
                    live.insert(i.id, Arc::downgrade(&alive));
                    let t = Ticket {
                        id: Some(i.id),
                        state: self.state.clone(),
                        _alive: alive,
                    };
                    (i, t)
                })
                .collect()
        };
        found
            .into_iter()
            .map(|(i, ticket)| {
                let landed = put_intent::landed(&self.reader, &i);
                tracing::info!(
                    id = i.id,
                    batch = i.fingerprints.len(),
                    landed,
                    "resuming an interrupted internal put"
                );
                Orphan {
                    ticket,
                    batch_len: i.fingerprints.len(),
                    landed,
                    tag: i.tag,
                }
            })
            .collect()
    }
}
