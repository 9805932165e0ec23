//! The Raft log and vote on disk (openraft's `RaftLogStorage`), under
//! `controllerStorePath/raft/`:
//!
//! * `log`: the entries, each `u32 length | u32 crc32 | bincode(entry)`
//!   (big-endian). A torn tail (short or bad record) is cut at start-up.
//! * `vote`: bincode of the last vote, replaced atomically.
//! * `meta`: bincode of (last purged log id, committed log id).
//!
//! Every write happens on tokio's blocking pool and is fsynced before
//! openraft hears of it; openraft serializes the calls, so writes never
//! reorder. Entries stay in memory as well (the controller's log is small:
//! one entry per registration, election or SyncStateSet change, purged
//! after each snapshot).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, StorageError, StorageIOError, Vote};

use super::raft::TypeConfig;

type Err = StorageError<u64>;

/// bincode with openraft's serde types.
pub fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).map_err(|e| e.to_string())
}

pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice(b, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| e.to_string())
}

fn io_err(e: impl ToString) -> Err {
    StorageIOError::write_logs(&std::io::Error::other(e.to_string())).into()
}

/// Runs file work off the actix/tokio threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, Err> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(io_err),
        Err(e) => Err(io_err(e)),
    }
}

#[derive(Default)]
struct Inner {
    /// index → (entry, offset of its record in `log`).
    entries: BTreeMap<u64, (Entry<TypeConfig>, u64)>,
    log_len: u64,
    last_purged: Option<LogId<u64>>,
    committed: Option<LogId<u64>>,
    vote: Option<Vote<u64>>,
}

/// The log store; clones share it (the log reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    dir: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn record(entry: &Entry<TypeConfig>) -> Result<Vec<u8>, String> {
    let payload = encode(entry)?;
    let mut r = Vec::with_capacity(payload.len() + 8);
    r.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    r.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    r.extend_from_slice(&payload);
    Ok(r)
}

/// Reads the records of `log`; returns the entries and the length of the
/// valid prefix.
/// Entries with the offsets of their records.
type Records = Vec<(Entry<TypeConfig>, u64)>;

fn read_log(path: &Path) -> std::io::Result<(Records, u64)> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap_or_default());
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(entry) = decode::<Entry<TypeConfig>>(payload) else {
            break;
        };
        out.push((entry, at as u64));
        at += 8 + len;
    }
    Ok((out, at as u64))
}

impl LogStore {
    /// Opens (or creates) the store in `dir`, cutting a torn log tail.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let (entries, valid) = read_log(&dir.join("log"))?;
        let log = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("log"))?;
        if log.metadata()?.len() != valid {
            tracing::warn!(dir = %dir.display(), valid, "controller: cutting a torn Raft log tail");
            log.set_len(valid)?;
            log.sync_all()?;
        }
        let mut inner = Inner {
            log_len: valid,
            ..Inner::default()
        };
        if let Ok(b) = std::fs::read(dir.join("vote")) {
            inner.vote = Some(decode::<Vote<u64>>(&b).map_err(std::io::Error::other)?);
        }
        if let Ok(b) = std::fs::read(dir.join("meta")) {
            (inner.last_purged, inner.committed) = decode(&b).map_err(std::io::Error::other)?;
        }
        // A purge that crashed between its two writes leaves purged
        // entries in the file: skip them.
        let purged = inner.last_purged.map_or(0, |l| l.index + 1);
        for (e, off) in entries
            .into_iter()
            .filter(|(e, _)| e.log_id.index >= purged)
        {
            inner.entries.insert(e.log_id.index, (e, off));
        }
        Ok(LogStore {
            dir: dir.to_path_buf(),
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    async fn write_meta(&self) -> Result<(), Err> {
        let meta = {
            let g = lock(&self.inner);
            encode(&(g.last_purged, g.committed)).map_err(io_err)?
        };
        let path = self.dir.join("meta");
        blocking(move || {
            crate::store::metadata::write_atomic(&path, &meta).map_err(std::io::Error::other)
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, Err> {
        let g = lock(&self.inner);
        Ok(g.entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, Err> {
        let g = lock(&self.inner);
        let last = g.entries.values().next_back().map(|(e, _)| e.log_id);
        Ok(LogState {
            last_purged_log_id: g.last_purged,
            last_log_id: last.or(g.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), Err> {
        let bytes = encode(vote).map_err(io_err)?;
        let path = self.dir.join("vote");
        blocking(move || {
            crate::store::metadata::write_atomic(&path, &bytes).map_err(std::io::Error::other)
        })
        .await?;
        lock(&self.inner).vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, Err> {
        Ok(lock(&self.inner).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), Err> {
        lock(&self.inner).committed = committed;
        self.write_meta().await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, Err> {
        Ok(lock(&self.inner).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), Err>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut buf = Vec::new();
        {
            let mut g = lock(&self.inner);
            for e in entries {
                let off = g.log_len + buf.len() as u64;
                buf.extend_from_slice(&record(&e).map_err(io_err)?);
                g.entries.insert(e.log_id.index, (e, off));
            }
            g.log_len += buf.len() as u64;
        }
        let path = self.dir.join("log");
        let r = blocking(move || {
            let mut f = OpenOptions::new().append(true).open(&path)?;
            f.write_all(&buf)?;
            f.sync_data()
        })
        .await;
        match &r {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        r
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), Err> {
        let cut = {
            let mut g = lock(&self.inner);
            let Some(cut) = g
                .entries
                .range(log_id.index..)
                .next()
                .map(|(_, (_, off))| *off)
            else {
                return Ok(());
            };
            g.entries.retain(|i, _| *i < log_id.index);
            g.log_len = cut;
            cut
        };
        let path = self.dir.join("log");
        blocking(move || {
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(cut)?;
            f.sync_all()
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), Err> {
        // Rewrite the log with what is left (purges follow snapshots, so
        // this is rare and the rest is small).
        let rest = {
            let mut g = lock(&self.inner);
            g.entries.retain(|i, _| *i > log_id.index);
            g.last_purged = Some(log_id);
            let mut buf = Vec::new();
            let mut offsets = Vec::new();
            for (i, (e, _)) in g.entries.iter() {
                offsets.push((*i, buf.len() as u64));
                buf.extend_from_slice(&record(e).map_err(io_err)?);
            }
            for (i, off) in offsets {
                if let Some(slot) = g.entries.get_mut(&i) {
                    slot.1 = off;
                }
            }
            g.log_len = buf.len() as u64;
            buf
        };
        self.write_meta().await?;
        let path = self.dir.join("log");
        blocking(move || {
            crate::store::metadata::write_atomic(&path, &rest).map_err(std::io::Error::other)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openraft_types_round_trip_through_bincode() {
        let vote = Vote::new_committed(3, 1);
        assert_eq!(decode::<Vote<u64>>(&encode(&vote).unwrap()).unwrap(), vote);
        let meta: (Option<LogId<u64>>, Option<LogId<u64>>) = (
            None,
            Some(LogId::new(openraft::CommittedLeaderId::new(2, 1), 7)),
        );
        let back: (Option<LogId<u64>>, Option<LogId<u64>>) =
            decode(&encode(&meta).unwrap()).unwrap();
        assert_eq!(back, meta);
    }
}
