//! The epoch file `epochFileCheckpoint` (RocketMQ's `EpochFileCache` over
//! a `CheckpointFile`) and the search for the point where a slave's log
//! stops agreeing with its master's.
//!
//! On disk (text, `\n` line ends):
//!
//! ```text
//! <entry count>
//! <crc32 of the entry lines, terminators included, & 0x7FFFFFFF>
//! <epoch>-<startOffset>
//! ...
//! ```
//!
//! Before each write the old file is copied to `epochFileCheckpoint.bak`;
//! reading falls back to the `.bak` when the main file is missing, empty or
//! fails its count or CRC check. An empty list is never written (the old
//! file stays), as Java's `CheckpointFile#write` does. The new content goes
//! to a temp file that is fsynced and renamed over the old one, so a crash
//! leaves the old or the new file, never half of one.
//!
//! Each entry ends where the next begins; the last one is open
//! (`i64::MAX`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One epoch: the master of `epoch` wrote the log from `start` to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start: i64,
    pub end: i64,
}

/// The entries of an epoch file, with or without a file behind them.
#[derive(Debug, Clone, Default)]
pub struct EpochFile {
    path: Option<PathBuf>,
    /// epoch → start offset.
    map: BTreeMap<i32, i64>,
}

fn bak(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".bak");
    PathBuf::from(s)
}

/// The file's text for `entries` (epoch, start), ascending.
pub fn encode(entries: &[(i32, i64)]) -> String {
    let lines: String = entries.iter().map(|(e, s)| format!("{e}-{s}\n")).collect();
    let crc = crc32fast::hash(lines.as_bytes()) & 0x7FFF_FFFF;
    format!("{}\n{crc}\n{lines}", entries.len())
}

/// Parses a file's text; None when the count or the CRC does not match.
pub fn decode(text: &str) -> Option<Vec<(i32, i64)>> {
    let mut it = text.split_inclusive('\n');
    let count: usize = it.next()?.trim().parse().ok()?;
    let crc: u32 = it.next()?.trim().parse().ok()?;
    let mut lines = String::new();
    let mut out = Vec::with_capacity(count);
    for l in it {
        if l.trim().is_empty() {
            continue;
        }
        lines.push_str(l.trim_end_matches(['\r', '\n']));
        lines.push('\n');
        let (e, s) = l.trim().split_once('-')?;
        out.push((e.parse().ok()?, s.parse().ok()?));
    }
    if out.len() != count || (crc != 0 && crc32fast::hash(lines.as_bytes()) & 0x7FFF_FFFF != crc) {
        return None;
    }
    Some(out)
}

impl EpochFile {
    /// An in-memory list (a master's list received in a handshake).
    pub fn from_entries(entries: impl IntoIterator<Item = (i32, i64)>) -> EpochFile {
        EpochFile {
            path: None,
            map: entries.into_iter().collect(),
        }
    }

    /// Loads `path` (or its `.bak`); a missing file is an empty list.
    pub fn load(path: &Path) -> EpochFile {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| decode(&t))
                .filter(|v| !v.is_empty())
        };
        let entries = read(path).or_else(|| {
            let b = read(&bak(path));
            if b.is_some() {
                tracing::warn!(file = %path.display(), "epoch file unreadable; using its .bak");
            }
            b
        });
        EpochFile {
            path: Some(path.to_owned()),
            map: entries.unwrap_or_default().into_iter().collect(),
        }
    }

    fn persist(&self) {
        let Some(path) = &self.path else { return };
        if self.map.is_empty() {
            return;
        }
        let text = encode(&self.pairs());
        let r = (|| -> std::io::Result<()> {
            if path.exists() {
                std::fs::copy(path, bak(path))?;
            }
            crate::store::metadata::write_atomic(path, text.as_bytes())
                .map_err(std::io::Error::other)
        })();
        if let Err(e) = r {
            tracing::error!(file = %path.display(), error = %e, "epoch file not written");
        }
    }

    fn pairs(&self) -> Vec<(i32, i64)> {
        self.map.iter().map(|(e, s)| (*e, *s)).collect()
    }

    /// The entries with their ends; the last ends at `last_end`.
    pub fn entries(&self, last_end: i64) -> Vec<EpochEntry> {
        let p = self.pairs();
        (0..p.len())
            .map(|i| EpochEntry {
                epoch: p[i].0,
                start: p[i].1,
                end: p.get(i + 1).map_or(last_end, |n| n.1),
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The last epoch, -1 when there is none.
    pub fn last_epoch(&self) -> i32 {
        self.map.keys().next_back().copied().unwrap_or(-1)
    }

    /// The last entry (epoch, start).
    pub fn last(&self) -> Option<(i32, i64)> {
        self.map.iter().next_back().map(|(e, s)| (*e, *s))
    }

    /// The start of `epoch`.
    pub fn start_of(&self, epoch: i32) -> Option<i64> {
        self.map.get(&epoch).copied()
    }

    /// The entry holding `offset` (the last one is open).
    pub fn entry_at(&self, offset: i64) -> Option<EpochEntry> {
        self.entries(i64::MAX)
            .into_iter()
            .find(|e| e.start <= offset && offset < e.end)
    }

    /// Appends `(epoch, start)`: refused (false) unless both are above the
    /// last entry's, as Java's `appendEntry`. Persisted at once.
    pub fn append(&mut self, epoch: i32, start: i64) -> bool {
        if let Some((e, s)) = self.last() {
            if e >= epoch || s >= start {
                return false;
            }
        }
        self.map.insert(epoch, start);
        self.persist();
        true
    }

    /// A master taking `epoch` at its log end `start`: drops entries of
    /// `epoch` and later (`truncateSuffixByEpoch`) and an entry of an
    /// earlier epoch that wrote nothing (it starts at `start`, so `epoch`
    /// replaces it: Java would refuse the append and keep reporting the
    /// old epoch), then appends.
    pub fn become_master(&mut self, epoch: i32, start: i64) -> bool {
        self.map.retain(|e, s| *e < epoch && *s < start);
        if let Some((_, s)) = self.last() {
            if s >= start {
                return false;
            }
        }
        self.map.insert(epoch, start);
        self.persist();
        true
    }

    /// Drops entries starting at or after `offset` (`truncateSuffixByOffset`).
    pub fn truncate_suffix(&mut self, offset: i64) {
        let before = self.map.len();
        self.map.retain(|_, s| *s < offset);
        if self.map.len() != before {
            self.persist();
        }
    }

    /// Drops entries that end at or before `min_offset` and moves the first
    /// start up to it (`truncatePrefixByOffset`, after segments are deleted).
    pub fn truncate_prefix(&mut self, min_offset: i64) {
        let keep: Vec<EpochEntry> = self
            .entries(i64::MAX)
            .into_iter()
            .filter(|e| e.end > min_offset)
            .collect();
        let mut map: BTreeMap<i32, i64> = keep.iter().map(|e| (e.epoch, e.start)).collect();
        if let Some(first) = keep.first() {
            if first.start < min_offset {
                map.insert(first.epoch, min_offset);
            }
        }
        if map != self.map {
            self.map = map;
            self.persist();
        }
    }
}

/// Where the slave's log (`slave`, ending at `slave_end`) stops agreeing
/// with the master's (`master`, ending at `master_end`): the highest slave
/// epoch the master has with the same start gives min(both ends)
/// (`findConsistentPoint`). A slave epoch the master held without writing
/// in it — a later epoch of the master's starts at the same offset (its
/// [`EpochFile::become_master`] replaced the empty entry), after the same
/// earlier entry — gives that start (apache/rocketmq PR #9942: a master
/// elected over an empty log; the other replicas still list the epoch
/// before). None: no common epoch (the slave cannot follow without an
/// operator).
pub fn consistent_point(
    slave: &EpochFile,
    slave_end: i64,
    master: &EpochFile,
    master_end: i64,
) -> Option<i64> {
    let m = master.entries(master_end);
    let s = slave.entries(slave_end);
    let same = |a: &EpochEntry, b: &EpochEntry| a.epoch == b.epoch && a.start == b.start;
    s.iter().enumerate().rev().find_map(|(i, e)| {
        if let Some(x) = m.iter().find(|x| same(x, e)) {
            return Some(x.end.min(e.end));
        }
        let j = m
            .iter()
            .position(|x| x.start == e.start && x.epoch > e.epoch)?;
        let before = match (i.checked_sub(1), j.checked_sub(1)) {
            (None, _) => true,
            (Some(a), Some(b)) => same(&s[a], &m[b]),
            (Some(_), None) => false,
        };
        before.then_some(e.start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_count_masked_crc_and_lines() {
        let text = encode(&[(1, 0), (2, 1_048_576)]);
        assert_eq!(text, "2\n447245663\n1-0\n2-1048576\n");
        assert_eq!(
            crc32fast::hash(b"7-7000\n8-8000\n") & 0x7FFF_FFFF,
            773_307_083
        );
        assert_eq!(decode(&text), Some(vec![(1, 0), (2, 1_048_576)]));
        assert_eq!(decode("2\n447245663\n1-0\n2-1048577\n"), None, "bad CRC");
        assert_eq!(decode("3\n447245663\n1-0\n2-1048576\n"), None, "bad count");
        assert_eq!(
            decode("1\n0\n5-10\n"),
            Some(vec![(5, 10)]),
            "CRC 0 is not checked"
        );
    }

    #[test]
    fn writes_keep_a_bak_and_a_damaged_file_falls_back_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("epochFileCheckpoint");
        let mut f = EpochFile::load(&p);
        assert!(f.is_empty());
        assert_eq!(f.last_epoch(), -1);
        assert!(f.append(1, 0));
        assert!(f.append(2, 1_048_576));
        assert!(!f.append(2, 2_000_000), "epoch not above the last");
        assert!(!f.append(3, 1_048_576), "start not above the last");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "2\n447245663\n1-0\n2-1048576\n"
        );
        assert_eq!(std::fs::read_to_string(bak(&p)).unwrap(), encode(&[(1, 0)]));
        std::fs::write(&p, "2\n447245663\n1-0\n2-104857").unwrap();
        let g = EpochFile::load(&p);
        assert_eq!(g.pairs(), vec![(1, 0)], "the .bak");
        std::fs::remove_file(&p).unwrap();
        assert_eq!(EpochFile::load(&p).pairs(), vec![(1, 0)]);
        let mut h = EpochFile::load(&p);
        h.truncate_suffix(0);
        assert!(h.is_empty());
        assert_eq!(
            EpochFile::load(&p).pairs(),
            vec![(1, 0)],
            "an empty list is not written"
        );
    }

    #[test]
    fn ends_lookups_and_truncations() {
        let mut f = EpochFile::from_entries([(1, 0), (3, 100), (4, 250)]);
        let e = f.entries(400);
        assert_eq!((e[0].end, e[1].end, e[2].end), (100, 250, 400));
        assert_eq!(f.entry_at(120).map(|e| e.epoch), Some(3));
        assert_eq!(f.entry_at(10_000).map(|e| e.epoch), Some(4));
        f.truncate_prefix(150);
        assert_eq!(f.pairs(), vec![(3, 150), (4, 250)]);
        f.truncate_suffix(250);
        assert_eq!(f.pairs(), vec![(3, 150)]);
        assert!(f.become_master(5, 150), "epoch 3 wrote nothing: replaced");
        assert_eq!(f.pairs(), vec![(5, 150)]);
        assert!(f.become_master(6, 300));
        assert!(f.become_master(6, 400), "a repeated epoch is replaced");
        assert_eq!(f.pairs(), vec![(5, 150), (6, 400)]);
    }

    #[test]
    fn the_consistent_point_is_the_last_common_epoch() {
        let master = EpochFile::from_entries([(1, 0), (2, 1000), (4, 1500)]);
        // A former master of epoch 3 that wrote past 1000 nobody copied.
        let old = EpochFile::from_entries([(1, 0), (2, 1000), (3, 1200)]);
        assert_eq!(consistent_point(&old, 1400, &master, 2000), Some(1200));
        // Epoch 3 is unknown to the master: epoch 1 ends at 900 on the old side.
        let old2 = EpochFile::from_entries([(1, 0), (3, 900)]);
        assert_eq!(consistent_point(&old2, 1400, &master, 2000), Some(900));
        // A slave behind the master: nothing to cut.
        let behind = EpochFile::from_entries([(1, 0), (2, 1000)]);
        assert_eq!(consistent_point(&behind, 1100, &master, 2000), Some(1100));
        // The old master of epoch 1 that wrote past where epoch 2 began.
        let first = EpochFile::from_entries([(1, 0)]);
        assert_eq!(consistent_point(&first, 1300, &master, 2000), Some(1000));
        // Same epoch, other start: no common point.
        let other = EpochFile::from_entries([(1, 5)]);
        assert_eq!(consistent_point(&other, 50, &master, 2000), None);
    }

    #[test]
    fn an_epoch_the_master_replaced_unwritten_ends_where_it_began() {
        // Nothing written: the new master of epoch 2 replaced (1, 0).
        let master = EpochFile::from_entries([(2, 0)]);
        let slave = EpochFile::from_entries([(1, 0)]);
        assert_eq!(consistent_point(&slave, 0, &master, 0), Some(0));
        // The old master of epoch 1 wrote what nobody copied.
        assert_eq!(consistent_point(&slave, 300, &master, 500), Some(0));
        // Later in the log: epoch 3 began at 700 and stayed empty on the
        // master that took epoch 4 there.
        let master = EpochFile::from_entries([(1, 0), (2, 400), (4, 700)]);
        let slave = EpochFile::from_entries([(1, 0), (2, 400), (3, 700)]);
        assert_eq!(consistent_point(&slave, 900, &master, 1000), Some(700));
        // Another history before that offset: the epoch before differs.
        let other = EpochFile::from_entries([(1, 0), (3, 700)]);
        assert_eq!(consistent_point(&other, 900, &master, 1000), Some(400));
    }
}
