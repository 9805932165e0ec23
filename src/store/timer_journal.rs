//! Append-only journal of the timer's pending set.
//!
//! Timer messages wait in a set ordered by due time. Rewriting the whole set
//! after every batch costs O(pending) per batch; instead every change is
//! appended as a fixed 29-byte record — `Add` (due, queue offset, commit-log
//! offset, size), `Remove` (due, queue offset) and `Scan` (the queue offset
//! scanned up to) — and the journal is rewritten compactly (write-temp-then-
//! rename) once it holds more than twice the live entries. Replaying it
//! rebuilds the set; a torn last record (crash mid-write) is ignored, so the
//! state is always a prefix of what was written.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::error::{Result, StoreError};

/// (due ms, queue offset) → (commit-log offset, size).
pub type TimerSet = BTreeMap<(i64, i64), (i64, i32)>;

const REC: usize = 29;
const ADD: u8 = 1;
const REMOVE: u8 = 2;
const SCAN: u8 = 3;

/// One change to the pending set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerOp {
    Add {
        due: i64,
        queue_offset: i64,
        phys: i64,
        size: i32,
    },
    Remove {
        due: i64,
        queue_offset: i64,
    },
    Scan {
        offset: i64,
    },
}

impl TimerOp {
    fn encode(&self, out: &mut Vec<u8>) {
        let (op, a, b, c, d) = match *self {
            TimerOp::Add {
                due,
                queue_offset,
                phys,
                size,
            } => (ADD, due, queue_offset, phys, size),
            TimerOp::Remove { due, queue_offset } => (REMOVE, due, queue_offset, 0, 0),
            TimerOp::Scan { offset } => (SCAN, offset, 0, 0, 0),
        };
        out.push(op);
        out.extend_from_slice(&a.to_be_bytes());
        out.extend_from_slice(&b.to_be_bytes());
        out.extend_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&d.to_be_bytes());
    }

    fn decode(r: &[u8]) -> Option<TimerOp> {
        let i64_at = |p: usize| i64::from_be_bytes(r[p..p + 8].try_into().unwrap_or([0; 8]));
        let (a, b, c) = (i64_at(1), i64_at(9), i64_at(17));
        let d = i32::from_be_bytes(r[25..29].try_into().unwrap_or([0; 4]));
        match r[0] {
            ADD => Some(TimerOp::Add {
                due: a,
                queue_offset: b,
                phys: c,
                size: d,
            }),
            REMOVE => Some(TimerOp::Remove {
                due: a,
                queue_offset: b,
            }),
            SCAN => Some(TimerOp::Scan { offset: a }),
            _ => None,
        }
    }
}

pub struct TimerJournal {
    path: PathBuf,
    file: File,
    records: u64,
}

impl TimerJournal {
    /// Opens (creating) the journal and replays it: returns the journal,
    /// the scanned-up-to offset and the pending set.
    pub fn open(path: &Path) -> Result<(TimerJournal, i64, TimerSet)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
        }
        let mut data = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut data)
                    .map_err(|e| StoreError::io("read", path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("open", path, e)),
        }
        let mut set = TimerSet::new();
        let mut scan = 0i64;
        let whole = data.len() / REC * REC;
        for rec in data[..whole].chunks_exact(REC) {
            match TimerOp::decode(rec) {
                Some(TimerOp::Add {
                    due,
                    queue_offset,
                    phys,
                    size,
                }) => {
                    set.insert((due, queue_offset), (phys, size));
                }
                Some(TimerOp::Remove { due, queue_offset }) => {
                    set.remove(&(due, queue_offset));
                }
                Some(TimerOp::Scan { offset }) => scan = scan.max(offset),
                None => break,
            }
        }
        let mut j = TimerJournal {
            path: path.to_owned(),
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| StoreError::io("open", path, e))?,
            records: (whole / REC) as u64,
        };
        if whole != data.len() || j.records > 2 * set.len() as u64 + 1024 {
            j.compact(scan, &set)?;
        }
        Ok((j, scan, set))
    }

    /// Appends changes (one write; the page cache keeps them across a
    /// process crash). Compacts when the journal outgrows the live set.
    pub fn append(&mut self, ops: &[TimerOp], scan: i64, live: &TimerSet) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(ops.len() * REC);
        for op in ops {
            op.encode(&mut buf);
        }
        self.file
            .write_all(&buf)
            .map_err(|e| StoreError::io("append", &self.path, e))?;
        self.records += ops.len() as u64;
        if self.records > 2 * live.len() as u64 + 1024 {
            self.compact(scan, live)?;
        }
        Ok(())
    }

    /// Rewrites the journal as `Scan` + one `Add` per live entry.
    pub fn compact(&mut self, scan: i64, live: &TimerSet) -> Result<()> {
        let mut buf = Vec::with_capacity((live.len() + 1) * REC);
        TimerOp::Scan { offset: scan }.encode(&mut buf);
        for (&(due, queue_offset), &(phys, size)) in live {
            TimerOp::Add {
                due,
                queue_offset,
                phys,
                size,
            }
            .encode(&mut buf);
        }
        super::metadata::write_atomic(&self.path, &buf)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| StoreError::io("open", &self.path, e))?;
        self.records = (live.len() + 1) as u64;
        Ok(())
    }

    /// Makes appended records durable (clean shutdown, periodic).
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io("sync", &self.path, e))
    }

    /// Records currently in the file (for tests).
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("timer.journal");
        let (mut j, scan, set) = TimerJournal::open(&p).unwrap();
        assert_eq!((scan, set.len()), (0, 0));
        let mut live = TimerSet::new();
        for i in 0..5000i64 {
            live.insert((1000 + i, i), (i * 100, 100));
            j.append(
                &[
                    TimerOp::Add {
                        due: 1000 + i,
                        queue_offset: i,
                        phys: i * 100,
                        size: 100,
                    },
                    TimerOp::Scan { offset: i + 1 },
                ],
                i + 1,
                &live,
            )
            .unwrap();
        }
        for i in 0..4990i64 {
            live.remove(&(1000 + i, i));
            j.append(
                &[TimerOp::Remove {
                    due: 1000 + i,
                    queue_offset: i,
                }],
                5000,
                &live,
            )
            .unwrap();
        }
        // Compaction kept the file proportional to the live set.
        assert!(
            j.records() <= 2 * live.len() as u64 + 1024 + 2,
            "{}",
            j.records()
        );
        drop(j);
        let (_, scan, set) = TimerJournal::open(&p).unwrap();
        assert_eq!(scan, 5000);
        assert_eq!(set, live);
    }

    #[test]
    fn torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("timer.journal");
        let (mut j, _, _) = TimerJournal::open(&p).unwrap();
        let mut live = TimerSet::new();
        live.insert((5, 1), (10, 20));
        j.append(
            &[
                TimerOp::Add {
                    due: 5,
                    queue_offset: 1,
                    phys: 10,
                    size: 20,
                },
                TimerOp::Scan { offset: 2 },
            ],
            2,
            &live,
        )
        .unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[ADD, 0, 0, 7]).unwrap();
        drop(f);
        let (_, scan, set) = TimerJournal::open(&p).unwrap();
        assert_eq!(scan, 2);
        assert_eq!(set, live);
    }
}
