//! `Cleaner`: file expiry and the disk-space guard (RocketMQ's
//! `CleanCommitLogService` + `CleanConsumeQueueService`), every
//! `cleanResourceInterval` ms and once at start.
//!
//! Each check measures the store filesystem's usage (or takes the
//! `diskUsageOverrideRatio` test knob), updates the shared disk-full flag the
//! send path reads, and — at a `deleteWhen` hour or when space is short —
//! asks the `CommitLogWriter` to delete expired segments one at a time
//! (`deleteCommitLogFilesInterval` apart, at most `deleteFileBatchMax`).
//! When the commit log's minimum offset has moved, every `Queue` drops its
//! consume-queue files below it and the `Indexer` its index files.

use actix::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::commit_log::{CommitLogWriter, DeleteExpiredSegments};
use super::indexer::{DeleteIndexBefore, Indexer};
use super::queue::TrimQueue;
use super::topic::TopicRegistry;
use crate::config::BrokerConfig;
use crate::store::cleanup::{self, CleanPolicy};
use crate::store::CommitLogReader;

/// Settings of the cleaner, taken from the broker config.
#[derive(Debug, Clone)]
pub struct CleanerSettings {
    pub policy: CleanPolicy,
    pub store_root: PathBuf,
    /// Replaces the measured disk usage (percent) when set.
    pub usage_override: Option<f64>,
    /// `diskUsageOverrideFile` (ActorMQ's test knob): a file holding the
    /// usage percent, read at every check (so a test can fill and free the
    /// "disk" of a running broker); missing or unparsable: not used.
    pub usage_file: Option<PathBuf>,
    pub interval: Duration,
    pub delete_pause: Duration,
    pub batch_max: usize,
}

impl CleanerSettings {
    pub fn from_config(cfg: &BrokerConfig) -> Self {
        let e = &cfg.expiry;
        CleanerSettings {
            policy: CleanPolicy {
                file_reserved_hours: cfg.file_reserved_time,
                delete_hours: cleanup::parse_delete_when(&cfg.delete_when),
                max_used_ratio: e.disk_max_used_space_ratio as f64,
                clean_forcibly_ratio: e.disk_space_clean_forcibly_ratio as f64,
                warning_ratio: e.disk_space_warning_level_ratio as f64,
                clean_forcibly: e.clean_file_forcibly_enable,
            },
            store_root: cfg.store_path_root_dir.clone(),
            usage_override: (e.disk_usage_override_ratio >= 0.0)
                .then_some(e.disk_usage_override_ratio),
            usage_file: cfg
                .unknown
                .get("diskUsageOverrideFile")
                .map(|p| PathBuf::from(p.trim())),
            interval: Duration::from_millis(e.clean_resource_interval.max(10)),
            delete_pause: Duration::from_millis(e.delete_commit_log_files_interval),
            batch_max: e.delete_file_batch_max.max(1),
        }
    }
}

pub struct Cleaner {
    settings: CleanerSettings,
    writer: Addr<CommitLogWriter>,
    reader: CommitLogReader,
    topics: TopicRegistry,
    indexer: Option<Addr<Indexer>>,
    disk_full: Arc<AtomicBool>,
    /// A deletion round is under way.
    running: bool,
    /// Commit-log min offset the queues and index were last trimmed to.
    trimmed_to: i64,
}

impl Cleaner {
    pub fn new(
        settings: CleanerSettings,
        writer: Addr<CommitLogWriter>,
        reader: CommitLogReader,
        topics: TopicRegistry,
        indexer: Option<Addr<Indexer>>,
        disk_full: Arc<AtomicBool>,
    ) -> Self {
        Cleaner {
            settings,
            writer,
            reader,
            topics,
            indexer,
            disk_full,
            running: false,
            trimmed_to: -1,
        }
    }

    fn used_percent(&self) -> Option<f64> {
        let from_file = self.settings.usage_file.as_ref().and_then(|p| {
            let v: f64 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
            (0.0..=100.0).contains(&v).then_some(v)
        });
        from_file
            .or(self.settings.usage_override)
            .or_else(|| cleanup::disk_used_percent(&self.settings.store_root))
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        let Some(used) = self.used_percent() else {
            tracing::warn!(root = %self.settings.store_root.display(), "cannot measure disk usage");
            self.trim();
            return;
        };
        let d = self.settings.policy.decide(used, cleanup::local_hour());
        if let Some(full) = d.disk_full {
            if self.disk_full.swap(full, Ordering::AcqRel) != full {
                if full {
                    tracing::error!(used_percent = used, "disk full: refusing new messages");
                } else {
                    tracing::info!(
                        used_percent = used,
                        "disk space back to normal; accepting messages"
                    );
                }
            }
        }
        if !d.delete {
            self.trim();
            return;
        }
        if d.ignore_age {
            tracing::warn!(
                used_percent = used,
                "disk space critically low: deleting commit log files regardless of age"
            );
        }
        let older_than = self
            .settings
            .policy
            .expired_before(SystemTime::now(), d.ignore_age);
        let (writer, pause, max) = (
            self.writer.clone(),
            self.settings.delete_pause,
            self.settings.batch_max,
        );
        self.running = true;
        let round = async move {
            let mut deleted = 0usize;
            while deleted < max {
                match writer
                    .send(DeleteExpiredSegments { older_than, max: 1 })
                    .await
                {
                    Ok(Ok(1)) => deleted += 1,
                    Ok(Ok(_)) => break,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot delete a commit log segment");
                        break;
                    }
                    Err(_) => break,
                }
                if deleted < max && !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            deleted
        };
        ctx.spawn(round.into_actor(self).map(|deleted, act, _| {
            act.running = false;
            if deleted > 0 {
                tracing::info!(
                    deleted,
                    min_offset = act.reader.min_offset(),
                    "expired commit log segments deleted"
                );
            }
            act.trim();
        }));
    }

    /// Moves every queue's and the index's minimum to the commit log's.
    fn trim(&mut self) {
        let min = self.reader.min_offset();
        if min <= self.trimmed_to {
            return;
        }
        for (name, _) in self.topics.configs() {
            if let Some(t) = self.topics.get(&name) {
                for q in &t.queues {
                    q.do_send(TrimQueue(min));
                }
            }
        }
        if let Some(ix) = &self.indexer {
            ix.do_send(DeleteIndexBefore(min));
        }
        self.trimmed_to = min;
    }
}

impl Actor for Cleaner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.check(ctx);
        ctx.run_interval(self.settings.interval, |act, ctx| act.check(ctx));
    }
}

impl Supervised for Cleaner {
    fn restarting(&mut self, _: &mut Context<Self>) {
        crate::actors::supervisor::restarts::record("Cleaner");
        // Stateless apart from the run in flight (its future died with the
        // old context); `started()` measures the disk again.
        self.running = false;
    }
}

crate::inject_panic_handler!(Cleaner, "Cleaner");

/// Runs a check now (tests, admin); answers once it has been started.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CheckNow;

impl Handler<CheckNow> for Cleaner {
    type Result = ();
    fn handle(&mut self, _: CheckNow, ctx: &mut Context<Self>) {
        self.check(ctx);
    }
}

/// Starts the cleaner (supervised) and returns it.
pub fn start(
    cfg: &BrokerConfig,
    writer: Addr<CommitLogWriter>,
    reader: CommitLogReader,
    topics: TopicRegistry,
    indexer: Option<Addr<Indexer>>,
    disk_full: Arc<AtomicBool>,
) -> Addr<Cleaner> {
    let settings = CleanerSettings::from_config(cfg);
    crate::actors::supervisor::start("Cleaner", move |_| {
        Cleaner::new(settings, writer, reader, topics, indexer, disk_full)
    })
}
