//! The message a producer sends (`Message`, `MessageConst`): body, tags, keys,
//! user properties and the send options that travel as properties —
//! delay level (`DELAY`), timer delivery (`TIMER_DELIVER_MS` /
//! `TIMER_DELAY_SEC`) and the ordering key (`__SHARDINGKEY`).
//!
//! Also the body compression of single sends: bodies of at least
//! [`COMPRESS_OVER`] bytes are zlib-compressed and flagged
//! `COMPRESSED | COMPRESSION_ZLIB`, as the Java producer does
//! (`compressMsgBodyOverHowmuch`). Used by [`super::producer`].

use std::io::Write;

use bytes::Bytes;

use crate::wire::message::{encode_properties, keys, sysflag};

/// Bodies this long or longer are compressed (Java default 4096).
pub const COMPRESS_OVER: usize = 4096;
/// zlib level of the Java producer.
const COMPRESS_LEVEL: u32 = 5;

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub topic: String,
    pub tags: Option<String>,
    pub keys: Vec<String>,
    /// User properties (reserved names such as `UNIQ_KEY` are overwritten).
    pub properties: Vec<(String, String)>,
    pub body: Bytes,
    pub flag: i32,
}

impl Message {
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Message {
            topic: topic.into(),
            body: body.into(),
            ..Default::default()
        }
    }

    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.tags = Some(tags.into());
        self
    }

    pub fn with_keys<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Sets a property, replacing an earlier value of the same key.
    pub fn with_property(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.set_property(k, v);
        self
    }

    pub fn set_property(&mut self, k: impl Into<String>, v: impl Into<String>) {
        let k = k.into();
        self.properties.retain(|(pk, _)| *pk != k);
        self.properties.push((k, v.into()));
    }

    pub fn property(&self, k: &str) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn remove_property(&mut self, k: &str) -> Option<String> {
        let pos = self.properties.iter().position(|(pk, _)| pk == k)?;
        Some(self.properties.remove(pos).1)
    }

    /// Delivery after delay level `level` (1..18: 1 s … 2 h, `messageDelayLevel`).
    pub fn with_delay_level(self, level: i32) -> Self {
        self.with_property(keys::DELAY, level.to_string())
    }

    /// Timer message delivered at `deliver_ms` (ms since the epoch).
    pub fn with_deliver_time_ms(self, deliver_ms: i64) -> Self {
        self.with_property(keys::TIMER_DELIVER_MS, deliver_ms.to_string())
    }

    /// Timer message delivered `secs` seconds after it is stored.
    pub fn with_delay_secs(self, secs: i64) -> Self {
        self.with_property(keys::TIMER_DELAY_SEC, secs.to_string())
    }

    /// The ordering key: messages with the same key go to one queue when
    /// sent with [`super::producer::Producer::send_ordered`].
    pub fn with_sharding_key(self, key: impl Into<String>) -> Self {
        self.with_property(keys::SHARDING_KEY, key)
    }

    pub fn sharding_key(&self) -> Option<&str> {
        self.property(keys::SHARDING_KEY)
    }

    /// The properties string for the wire, with `uniq_key` as `UNIQ_KEY`.
    pub fn encode_properties(&self, uniq_key: &str) -> String {
        let joined_keys = self.keys.join(" ");
        let reserved = [keys::TAGS, keys::KEYS, keys::UNIQ_KEY, keys::WAIT];
        let mut pairs: Vec<(&str, &str)> = self
            .properties
            .iter()
            .filter(|(k, v)| !v.is_empty() && !reserved.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(t) = self.tags.as_deref().filter(|t| !t.is_empty()) {
            pairs.push((keys::TAGS, t));
        }
        if !joined_keys.is_empty() {
            pairs.push((keys::KEYS, &joined_keys));
        }
        pairs.push((keys::WAIT, "true"));
        pairs.push((keys::UNIQ_KEY, uniq_key));
        encode_properties(pairs)
    }
}

/// The body to put on the wire and the sysFlag bits describing it: the
/// zlib-compressed body with `COMPRESSED | COMPRESSION_ZLIB` when `body` is
/// at least `over` bytes and compression shrinks it, else the body as is.
pub fn compress_body(body: &Bytes, over: usize) -> (Bytes, i32) {
    if body.len() < over {
        return (body.clone(), 0);
    }
    let mut enc = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(body.len() / 2),
        flate2::Compression::new(COMPRESS_LEVEL),
    );
    let packed = enc.write_all(body).and_then(|_| enc.finish());
    match packed {
        Ok(z) if z.len() < body.len() => (
            Bytes::from(z),
            sysflag::COMPRESSED | sysflag::COMPRESSION_ZLIB,
        ),
        _ => (body.clone(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::decode_properties;
    use std::io::Read;

    #[test]
    fn properties_string() {
        let m = Message::new("T", "x")
            .with_tags("TagA")
            .with_keys(["k1", "k2"])
            .with_property("color", "red")
            .with_property("color", "blue")
            .with_property("UNIQ_KEY", "spoofed")
            .with_delay_level(3)
            .with_sharding_key("order-1");
        let p = decode_properties(&m.encode_properties("ID1"));
        let get = |k: &str| p.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str());
        assert_eq!(get("TAGS"), Some("TagA"));
        assert_eq!(get("KEYS"), Some("k1 k2"));
        assert_eq!(get("color"), Some("blue"));
        assert_eq!(get("UNIQ_KEY"), Some("ID1"));
        assert_eq!(get("WAIT"), Some("true"));
        assert_eq!(get("DELAY"), Some("3"));
        assert_eq!(get("__SHARDINGKEY"), Some("order-1"));
    }

    #[test]
    fn compression_threshold_and_roundtrip() {
        let small = Bytes::from(vec![b'a'; COMPRESS_OVER - 1]);
        assert_eq!(compress_body(&small, COMPRESS_OVER).1, 0);
        let big = Bytes::from(vec![b'a'; 10_000]);
        let (z, flag) = compress_body(&big, COMPRESS_OVER);
        assert_eq!(flag, 0x301);
        assert!(z.len() < 1000);
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, big);
    }
}
