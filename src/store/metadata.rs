//! Broker metadata files (`config/*.json`): crash-safe atomic writes and a
//! lenient reader that also accepts fastjson's bare map keys (protocol.md §6.7).

use super::error::{Result, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::Path;

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
