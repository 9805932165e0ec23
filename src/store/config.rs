//! Store configuration and the on-disk layout (the layout of RocketMQ's `storePathRootDir`, `StorePathConfigHelper`).

use std::path::{Path, PathBuf};

/// When appended data is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FlushMode {
    /// Flush dirty ranges every `flush_interval_ms`.
    Async,
    /// Group commit: senders wait for a flush covering their record.
    Sync,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    pub root: PathBuf,
    pub commitlog_file_size: u64,
    pub cq_units_per_file: u64,
    pub flush: FlushMode,
    pub flush_interval_ms: u64,
    pub sync_flush_timeout_ms: u64,
    pub max_message_size: usize,
    /// Reserve the commit log's blocks (`fallocate`) ahead of the writer, a
    /// step at a time (`commit_log::RESERVE_STEP`): running out of disk then
    /// fails an append with `DiskFull` instead of faulting (SIGBUS) on a
    /// write into a sparse mapping. Consume-queue and index files stay
    /// sparse either way.
    pub preallocate: bool,
    /// Delay of each `messageDelayLevel` level in ms (level 1 first): the
    /// consume-queue tags code of a `SCHEDULE_TOPIC_XXXX` record is its due
    /// time, which recovery recomputes from these when it rebuilds units.
    pub delay_levels_ms: Vec<i64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        StoreConfig {
            root: home.join("store"),
            commitlog_file_size: 1 << 30,
            cq_units_per_file: 300_000,
            flush: FlushMode::Async,
            flush_interval_ms: 500,
            sync_flush_timeout_ms: 5000,
            max_message_size: 4 << 20,
            preallocate: true,
            delay_levels_ms: [
                1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600,
                7200,
            ]
            .iter()
            .map(|s| s * 1000)
            .collect(),
        }
    }
}

impl StoreConfig {
    /// A config rooted at `root` with default sizes.
    pub fn with_root(root: impl AsRef<Path>) -> Self {
        StoreConfig {
            root: root.as_ref().to_path_buf(),
            ..Default::default()
        }
    }
    pub fn commitlog_dir(&self) -> PathBuf {
        self.root.join("commitlog")
    }
    pub fn consumequeue_dir(&self) -> PathBuf {
        self.root.join("consumequeue")
    }
    /// `consumequeue/<topic>/<queueId>`. Refuses a topic that is not one
    /// plain path component (defence in depth: the broker checks names
    /// before they get here), so no topic reaches outside the store root.
    pub fn queue_dir(
        &self,
        topic: &str,
        queue_id: i32,
    ) -> Result<PathBuf, crate::store::StoreError> {
        let mut parts = Path::new(topic).components();
        let single = matches!(
            (parts.next(), parts.next()),
            (Some(std::path::Component::Normal(_)), None)
        );
        if !single || topic.contains(['/', '\\', '\0']) || queue_id < 0 {
            return Err(crate::store::StoreError::OutsideRoot {
                name: format!("{topic}/{queue_id}"),
            });
        }
        Ok(self
            .consumequeue_dir()
            .join(topic)
            .join(queue_id.to_string()))
    }
    pub fn checkpoint_path(&self) -> PathBuf {
        self.root.join("checkpoint")
    }
    pub fn abort_path(&self) -> PathBuf {
        self.root.join("abort")
    }
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }
    /// Bytes of one consume-queue segment.
    pub fn cq_file_size(&self) -> u64 {
        self.cq_units_per_file * crate::store::consume_queue::CQ_UNIT_SIZE as u64
    }
    /// Largest encoded record the commit log accepts (body limit + 64 KiB).
    pub fn max_record_len(&self) -> usize {
        self.max_message_size + 64 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_dirs_stay_under_the_store_root() {
        let cfg = StoreConfig::with_root("/srv/store");
        assert_eq!(
            cfg.queue_dir("T", 3).unwrap(),
            PathBuf::from("/srv/store/consumequeue/T/3")
        );
        for bad in [
            "..",
            ".",
            "",
            "a/b",
            "%DLQ%/../../x",
            "/abs",
            "a\\b",
            "a\0b",
        ] {
            assert!(cfg.queue_dir(bad, 0).is_err(), "{bad:?}");
        }
        assert!(cfg.queue_dir("T", -1).is_err());
    }
}
