//! Committed consumer offsets, persisted as `config/consumerOffset.json` in the
//! RocketMQ shape `{"offsetTable":{"topic@group":{"0":12}}}`. Written with
//! quoted keys; Java's bare-key files are read too.

use super::config::StoreConfig;
use super::error::Result;
use super::metadata::{read_json, write_json_atomic};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerOffsets {
    #[serde(rename = "offsetTable", default)]
    pub table: HashMap<String, BTreeMap<i32, i64>>,
}

impl ConsumerOffsets {
    /// `topic@group`, the table key.
    pub fn key(topic: &str, group: &str) -> String {
        format!("{topic}@{group}")
    }

    pub fn path(cfg: &StoreConfig) -> PathBuf {
        cfg.config_dir().join("consumerOffset.json")
    }

    /// Loads the table; empty when the file does not exist.
    pub fn load(path: &Path) -> Result<ConsumerOffsets> {
        Ok(read_json(path)?.unwrap_or_default())
    }

    pub fn persist(&self, path: &Path) -> Result<()> {
        write_json_atomic(path, self)
    }

    pub fn commit(&mut self, topic: &str, group: &str, queue_id: i32, offset: i64) {
        self.table
            .entry(Self::key(topic, group))
            .or_default()
            .insert(queue_id, offset);
    }

    pub fn query(&self, topic: &str, group: &str, queue_id: i32) -> Option<i64> {
        self.table
            .get(&Self::key(topic, group))?
            .get(&queue_id)
            .copied()
    }

    /// Removes every entry of `group` (all topics); returns how many went.
    pub fn remove_group(&mut self, group: &str) -> usize {
        let before = self.table.len();
        self.table
            .retain(|k, _| k.rsplit_once('@').is_none_or(|(_, g)| g != group));
        before - self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_java_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::with_root(dir.path());
        let p = ConsumerOffsets::path(&cfg);
        assert_eq!(
            ConsumerOffsets::load(&p).unwrap(),
            ConsumerOffsets::default()
        );
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            &p,
            "{\n\t\"offsetTable\":{\n\t\t\"T@g\":{0:12,1:34}\n\t}\n}",
        )
        .unwrap();
        let mut o = ConsumerOffsets::load(&p).unwrap();
        assert_eq!(o.query("T", "g", 1), Some(34));
        o.commit("%RETRY%g", "g", 0, 5);
        o.persist(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("\"0\": 12"), "{text}");
        assert_eq!(ConsumerOffsets::load(&p).unwrap(), o);
        assert_eq!(o.remove_group("g"), 2);
    }
}
