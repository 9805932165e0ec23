//! Consumer offsets of a push / lite pull consumer: an in-memory table of
//! the next offset to consume per queue, persisted to the broker
//! (clustering: UPDATE_CONSUMER_OFFSET, one-way every 5 s, sync when a
//! queue is given up) or to a local JSON file (broadcasting:
//! `<dir>/<clientId>/<group>/offsets.json`, Java's `.rocketmq_offsets`
//! layout and fastjson shape `{"offsetTable":{{"brokerName":..}:12}}`).
//!
//! Also the reader and writer of fastjson maps keyed by whole
//! `MessageQueue` objects (fastjson map keys), used by ResetOffsetBody,
//! ConsumeStats and ConsumerRunningInfo.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::wire::bodies::MessageQueue;

use super::super::pull::PullConsumer;
use super::super::remoting::ClientError;

/// Parses a JSON object whose keys are `MessageQueue`s: bare fastjson
/// object keys, string keys holding JSON objects, or `topic@broker@qid`
/// strings. Unparseable entries are skipped; returns the entries and the
/// byte length consumed.
pub fn parse_mq_map(text: &str) -> (Vec<(MessageQueue, serde_json::Value)>, usize) {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return (out, 0);
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b'}') => return (out, i + 1),
            Some(b',') => {
                i += 1;
                continue;
            }
            None => return (out, i),
            _ => {}
        }
        let (key, after_key) = match b[i] {
            b'{' => {
                let end = match matching_brace(b, i) {
                    Some(e) => e,
                    None => return (out, b.len()),
                };
                (
                    serde_json::from_str::<MessageQueue>(&text[i..=end]).ok(),
                    end + 1,
                )
            }
            b'"' => {
                let mut it = serde_json::Deserializer::from_str(&text[i..]).into_iter::<String>();
                match it.next() {
                    Some(Ok(s)) => (mq_from_string(&s), i + it.byte_offset()),
                    _ => return (out, b.len()),
                }
            }
            _ => return (out, i),
        };
        i = skip_ws(b, after_key);
        if b.get(i) != Some(&b':') {
            return (out, i);
        }
        let mut it =
            serde_json::Deserializer::from_str(&text[i + 1..]).into_iter::<serde_json::Value>();
        let value = match it.next() {
            Some(Ok(v)) => v,
            _ => return (out, b.len()),
        };
        i = i + 1 + it.byte_offset();
        if let Some(k) = key {
            out.push((k, value));
        }
    }
}

fn mq_from_string(s: &str) -> Option<MessageQueue> {
    if let Ok(mq) = serde_json::from_str::<MessageQueue>(s) {
        return Some(mq);
    }
    let mut parts = s.rsplitn(3, '@');
    let qid = parts.next()?.parse().ok()?;
    let broker = parts.next()?.to_string();
    let topic = parts.next()?.to_string();
    Some(MessageQueue {
        topic,
        broker_name: broker,
        queue_id: qid,
    })
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Index of the `}` closing the `{` at `start`, skipping strings.
fn matching_brace(b: &[u8], start: usize) -> Option<usize> {
    let (mut depth, mut in_str, mut i) = (0i32, false, start);
    while i < b.len() {
        match (in_str, b[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_str = false,
            (false, b'"') => in_str = true,
            (false, b'{') => depth += 1,
            (false, b'}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The text right after `"field":` in a JSON document (the field's value
/// and everything that follows it).
pub fn field_value<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    let key = format!("\"{field}\"");
    let at = text.find(&key)? + key.len();
    let rest = text[at..].trim_start();
    rest.strip_prefix(':')
}

/// `{"offsetTable":{<mq>:n,..}}`-style map parsed from `text`'s `field`.
pub fn parse_mq_offsets(text: &str, field: &str) -> Vec<(MessageQueue, i64)> {
    let Some(v) = field_value(text, field) else {
        return Vec::new();
    };
    parse_mq_map(v)
        .0
        .into_iter()
        .filter_map(|(mq, v)| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .map(|n| (mq, n))
        })
        .collect()
}

/// Writes a fastjson map keyed by `MessageQueue` objects; values are JSON.
pub fn write_mq_map<'a>(entries: impl IntoIterator<Item = (&'a MessageQueue, String)>) -> String {
    let mut out = String::from("{");
    for (i, (mq, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(mq).unwrap_or_default());
        out.push(':');
        out.push_str(&v);
    }
    out.push('}');
    out
}

/// Where offsets are persisted.
pub enum OffsetBackend {
    /// The broker, through `PullConsumer`'s offset calls.
    Broker(PullConsumer),
    /// A local JSON file.
    File(PathBuf),
}

/// The offset table of one consumer group.
pub struct OffsetTable {
    group: String,
    backend: OffsetBackend,
    table: Mutex<HashMap<MessageQueue, i64>>,
}

impl OffsetTable {
    pub fn new(group: &str, backend: OffsetBackend) -> Self {
        let mut table = HashMap::new();
        if let OffsetBackend::File(path) = &backend {
            if let Ok(text) = std::fs::read_to_string(path) {
                table.extend(parse_mq_offsets(&text, "offsetTable"));
            }
        }
        OffsetTable {
            group: group.to_string(),
            backend,
            table: Mutex::new(table),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MessageQueue, i64>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `offset` for `mq`; with `increase_only` an older value wins.
    pub fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) {
        let mut t = self.lock();
        let slot = t.entry(mq.clone()).or_insert(offset);
        if !increase_only || offset > *slot {
            *slot = offset;
        }
    }

    pub fn get(&self, mq: &MessageQueue) -> Option<i64> {
        self.lock().get(mq).copied()
    }

    pub fn remove(&self, mq: &MessageQueue) {
        self.lock().remove(mq);
    }

    /// The stored offset (broker or file), `None` if there is none.
    pub async fn read_stored(&self, mq: &MessageQueue) -> Result<Option<i64>, ClientError> {
        match &self.backend {
            OffsetBackend::Broker(p) => {
                let o = p.query_offset(&self.group, mq).await?;
                if let Some(o) = o.filter(|o| *o >= 0) {
                    self.update(mq, o, false);
                    return Ok(Some(o));
                }
                Ok(None)
            }
            OffsetBackend::File(_) => Ok(self.get(mq)),
        }
    }

    /// Persists the offsets of `mqs` (broker: one-way or sync; file: the
    /// whole table).
    pub async fn persist(&self, mqs: &[MessageQueue], oneway: bool) {
        match &self.backend {
            OffsetBackend::Broker(p) => {
                for mq in mqs {
                    let Some(o) = self.get(mq) else { continue };
                    let r = if oneway {
                        p.update_offset_oneway(&self.group, mq, o).await
                    } else {
                        p.update_offset(&self.group, mq, o).await
                    };
                    if let Err(e) = r {
                        tracing::debug!(queue = mq.queue_id, error = %e, "offset commit failed");
                    }
                }
            }
            OffsetBackend::File(path) => {
                let entries: Vec<(MessageQueue, i64)> =
                    self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect();
                let map = write_mq_map(entries.iter().map(|(k, v)| (k, v.to_string())));
                let text = format!("{{\"offsetTable\":{map}}}");
                if let Err(e) = write_atomically(path, &text) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write offsets");
                }
            }
        }
    }
}

fn write_atomically(path: &PathBuf, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(t: &str, b: &str, q: i32) -> MessageQueue {
        MessageQueue {
            topic: t.into(),
            broker_name: b.into(),
            queue_id: q,
        }
    }

    #[test]
    fn fastjson_object_keys() {
        let text = r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:123,{"brokerName":"b","queueId":1,"topic":"T"}:"7"}}"#;
        let got = parse_mq_offsets(text, "offsetTable");
        assert_eq!(got, vec![(mq("T", "b", 0), 123), (mq("T", "b", 1), 7)]);
        // String keys holding JSON, and topic@broker@qid keys.
        let text = r#"{"offsetTable": {"{\"brokerName\":\"b\",\"queueId\":2,\"topic\":\"T\"}": 5, "T@b@3": 9}}"#;
        let got = parse_mq_offsets(text, "offsetTable");
        assert_eq!(got, vec![(mq("T", "b", 2), 5), (mq("T", "b", 3), 9)]);
        // Round trip of what we write.
        let a = mq("X", "y", 4);
        let w = format!(
            "{{\"offsetTable\":{}}}",
            write_mq_map([(&a, "11".to_string())])
        );
        assert_eq!(parse_mq_offsets(&w, "offsetTable"), vec![(a, 11)]);
        assert!(parse_mq_offsets("garbage", "offsetTable").is_empty());
        assert!(parse_mq_offsets(r#"{"offsetTable":{{"brokerName""#, "offsetTable").is_empty());
    }

    #[test]
    fn local_file_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/g/offsets.json");
        let t = OffsetTable::new("g", OffsetBackend::File(path.clone()));
        t.update(&mq("T", "b", 0), 10, true);
        t.update(&mq("T", "b", 0), 5, true);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(t.persist(&[], false));
        let t2 = OffsetTable::new("g", OffsetBackend::File(path));
        assert_eq!(t2.get(&mq("T", "b", 0)), Some(10));
    }
}
