//! Broker metadata files (`config/*.json`): crash-safe atomic writes, a
//! lenient reader that also accepts fastjson's bare map keys (as RocketMQ's
//! `ConfigManager` files are written by fastjson), and [`MetaWriter`], which
//! moves the serialization and the fsyncs of a file off the actor threads.

use super::error::{Result, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// Writes `value` as JSON to `path` atomically: temp file, fsync, rename,
/// fsync of the directory. Readers see the old or the new file, never a mix.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &json)
}

/// Writes raw bytes atomically (see [`write_json_atomic`]).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
    f.write_all(data)
        .map_err(|e| StoreError::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| StoreError::io("sync", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("sync dir", dir, e))
}

/// The single writer of one metadata file, on a thread of its own.
///
/// The owning actor hands it snapshots; serialization, the temp-file write
/// and both fsyncs happen on the writer's thread, so the actix threads that
/// serve sessions (and the client registry, the route table) never wait for
/// the disk. Snapshots coalesce: a snapshot submitted while an older one is
/// still pending replaces it, and the file is only ever written by this
/// thread, in submission order, so a later snapshot is never overwritten by
/// an earlier one. [`MetaWriter::flush`] blocks until everything submitted
/// is on disk (graceful shutdown's final persist, restarts reloading the
/// file).
pub struct MetaWriter {
    inner: Arc<WriterShared>,
}

type Snapshot = Box<dyn FnOnce() -> std::result::Result<Vec<u8>, serde_json::Error> + Send>;

struct WriterShared {
    path: PathBuf,
    state: Mutex<WriterState>,
    cv: Condvar,
}

#[derive(Default)]
struct WriterState {
    pending: Option<Snapshot>,
    submitted: u64,
    /// Highest submission the file reflects (written or superseded).
    done: u64,
    stop: bool,
}

impl MetaWriter {
    /// Starts the writer thread for `path`.
    pub fn new(path: PathBuf) -> MetaWriter {
        let inner = Arc::new(WriterShared {
            path,
            state: Mutex::new(WriterState::default()),
            cv: Condvar::new(),
        });
        let w = inner.clone();
        let name = format!(
            "meta-{}",
            w.path.file_stem().unwrap_or_default().to_string_lossy()
        );
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || w.run());
        if let Err(e) = spawned {
            // Without a thread, submissions are written inline (see submit).
            tracing::error!(error = %e, "cannot start a metadata writer thread");
            inner.lock().stop = true;
        }
        MetaWriter { inner }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues a snapshot of `value` (taken now; serialized on the writer
    /// thread), replacing a pending one.
    pub fn submit<T: Serialize + Send + 'static>(&self, value: T) {
        let job: Snapshot = Box::new(move || serde_json::to_vec_pretty(&value));
        let mut g = self.inner.lock();
        if g.stop {
            drop(g);
            if let Err(e) = self.inner.write(job) {
                tracing::error!(error = %e, "cannot persist metadata");
            }
            return;
        }
        g.submitted += 1;
        g.pending = Some(job);
        self.inner.cv.notify_all();
    }

    /// Blocks until every snapshot submitted so far is written (or failed).
    pub fn flush(&self) {
        let mut g = self.inner.lock();
        let target = g.submitted;
        while g.done < target && !g.stop {
            g = self.inner.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether a submitted snapshot is not on disk yet.
    pub fn busy(&self) -> bool {
        let g = self.inner.lock();
        g.done < g.submitted
    }
}

impl Drop for MetaWriter {
    fn drop(&mut self) {
        // The thread writes what is pending, then ends.
        self.inner.lock().stop = true;
        self.inner.cv.notify_all();
    }
}

impl WriterShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, job: Snapshot) -> Result<()> {
        let json = job().map_err(|source| StoreError::Json {
            path: self.path.clone(),
            source,
        })?;
        write_atomic(&self.path, &json)
    }

    fn run(&self) {
        loop {
            let (job, seq) = {
                let mut g = self.lock();
                loop {
                    if let Some(j) = g.pending.take() {
                        break (j, g.submitted);
                    }
                    if g.stop {
                        return;
                    }
                    g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
                }
            };
            if let Err(e) = self.write(job) {
                tracing::error!(error = %e, "cannot persist metadata");
            }
            let mut g = self.lock();
            g.done = g.done.max(seq);
            self.cv.notify_all();
        }
    }
}

/// Reads JSON from `path` (standard or fastjson dialect); None when missing.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", path, e)),
    };
    parse_lenient(&text)
        .map(Some)
        .map_err(|source| StoreError::Json {
            path: path.to_path_buf(),
            source,
        })
}

/// Parses standard JSON, falling back to fastjson's dialect.
pub fn parse_lenient<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(first) => serde_json::from_str(&fastjson_to_standard(text)).map_err(|_| first),
    }
}

pub use crate::wire::json::fastjson_to_standard;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn quotes_bare_keys_only_outside_strings() {
        let s = r#"{"offsetTable":{"T@g":{0:12,1:34}},"s":"{5:x, 'a'}","arr":[{1:2},3]}"#;
        let v: serde_json::Value = serde_json::from_str(&fastjson_to_standard(s)).unwrap();
        assert_eq!(v["offsetTable"]["T@g"]["1"], 34);
        assert_eq!(v["s"], "{5:x, 'a'}");
        assert_eq!(v["arr"][0]["1"], 2);
        assert_eq!(v["arr"][1], 3);
        let standard = r#"{"a":{"0":1},"b":"x\"y"}"#;
        assert_eq!(fastjson_to_standard(standard), standard);
        let objkey = r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:123}}"#;
        let v: serde_json::Value = serde_json::from_str(&fastjson_to_standard(objkey)).unwrap();
        let m = v["offsetTable"].as_object().unwrap();
        assert_eq!(m.values().next().unwrap(), 123);
        assert!(m.keys().next().unwrap().contains("brokerName"));
        let m: BTreeMap<String, BTreeMap<i32, i64>> =
            parse_lenient("{ \"x\" : { -1 : 5 , 2: 6 } }").unwrap();
        assert_eq!(m["x"][&-1], 5);
    }

    #[test]
    fn writer_coalesces_and_keeps_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config").join("consumerOffset.json");
        let w = MetaWriter::new(p.clone());
        for i in 0..200 {
            let mut m = BTreeMap::new();
            m.insert("n".to_string(), i);
            w.submit(m);
        }
        w.flush();
        assert!(!w.busy());
        let got: BTreeMap<String, i32> = read_json(&p).unwrap().unwrap();
        assert_eq!(got["n"], 199);
        drop(w);
    }

    #[test]
    fn atomic_write_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config").join("topics.json");
        assert_eq!(read_json::<BTreeMap<String, i32>>(&p).unwrap(), None);
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), 1);
        write_json_atomic(&p, &m).unwrap();
        m.insert("b".to_string(), 2);
        write_json_atomic(&p, &m).unwrap();
        assert_eq!(read_json::<BTreeMap<String, i32>>(&p).unwrap(), Some(m));
        assert!(!p.with_file_name("topics.json.tmp").exists());
        std::fs::write(&p, "{not json").unwrap();
        assert!(matches!(
            read_json::<BTreeMap<String, i32>>(&p),
            Err(StoreError::Json { .. })
        ));
    }
}
