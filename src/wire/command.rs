//! `RemotingCommand`: the header + body carried by every remoting frame
//! (`RemotingCommand`, `RocketMQSerializable`), with both header encodings.
//!
//! Decoding is lenient the way the Java broker is: numbers may arrive as
//! strings or numbers, `extFields` values may be numbers or booleans (the C++
//! client sends them unquoted), `language` may be a name or an integer, and
//! unknown keys are ignored. Encoding is exact: JSON with sorted keys, null
//! fields omitted, every `extFields` value a string.

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

use super::WireError;

/// Version stamped on everything ActorMQ sends (`V5_3_3`).
pub const CURRENT_VERSION: i32 = 479;

pub const FLAG_RESPONSE: i32 = 0x1;
pub const FLAG_ONEWAY: i32 = 0x2;

/// Header serialization type, the high byte of the second frame word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerializeType {
    Json = 0,
    RocketMq = 1,
}

const LANGUAGES: [&str; 14] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP",
    "OMS", "RUST", "NODE_JS",
];

/// Language code of the sender; kept as the byte value of the Java enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LanguageCode(pub u8);

impl LanguageCode {
    pub const JAVA: LanguageCode = LanguageCode(0);
    pub const CPP: LanguageCode = LanguageCode(1);
    pub const RUST: LanguageCode = LanguageCode(12);

    pub fn name(self) -> &'static str {
        LANGUAGES.get(self.0 as usize).copied().unwrap_or("OTHER")
    }

    pub fn from_name(s: &str) -> LanguageCode {
        LANGUAGES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| LanguageCode(i as u8))
            .unwrap_or(LanguageCode(7))
    }
}

/// The typed-header fields, flattened to strings, in arrival order.
///
/// Keys and values live in one text buffer (a decoded header costs two
/// allocations, not two per field); a later value for a key wins.
#[derive(Clone, Default)]
pub struct ExtFields {
    text: String,
    /// (key start, key end, value end); the value follows its key. Inline
    /// up to the size of the largest common header (SEND_MESSAGE_V2).
    spans: Spans,
}

pub(crate) type Spans = smallvec::SmallVec<[(u32, u32, u32); INLINE_FIELDS]>;
/// Fields held without an allocation of their own.
pub const INLINE_FIELDS: usize = 16;

impl ExtFields {
    pub fn get(&self, key: &str) -> Option<&str> {
        // Typed headers look up every field, so compare raw bytes and build
        // a `str` only for the match.
        let (text, key) = (self.text.as_bytes(), key.as_bytes());
        self.spans
            .iter()
            .rev()
            .find(|&&(a, b, _)| {
                let (a, b) = (a as usize, b as usize);
                // Length and first byte settle almost every mismatch
                // without a call to memcmp.
                b - a == key.len() && text.get(a) == key.first() && text.get(a..b) == Some(key)
            })
            .map(|&(_, b, c)| &self.text[b as usize..c as usize])
    }

    /// Sets `key`, replacing an earlier value.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) {
        let value = value.as_ref();
        self.set_with(key.as_ref(), |s| s.push_str(value));
    }

    /// Appends a pair, keeping an earlier one with the same key (decoders
    /// keep what arrived; `get` returns the last).
    pub fn push(&mut self, key: &str, value: &str) {
        self.push_with(key, |s| s.push_str(value));
    }

    /// Appends a pair whose value `write` appends to the text (no string of
    /// its own for a rendered value).
    pub fn push_with(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        self.text.push_str(key);
        let key_end = self.text.len();
        write(&mut self.text);
        self.push_span(start, key_end, self.text.len());
    }

    /// Sets `key` to the value `write` appends, replacing an earlier value
    /// in its place.
    pub fn set_with(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        match (0..self.spans.len()).find(|&i| self.entry(i).0 == key) {
            Some(i) => {
                // Re-append the pair at the end of the text; the old bytes
                // stay unused (rare: headers are built once).
                let start = self.text.len();
                self.text.push_str(key);
                write(&mut self.text);
                self.spans[i] = (
                    start as u32,
                    (start + key.len()) as u32,
                    self.text.len() as u32,
                );
            }
            None => self.push_with(key, write),
        }
    }

    /// Room for `text` more bytes of keys and values and `fields` more pairs.
    pub fn reserve(&mut self, text: usize, fields: usize) {
        self.text.reserve(text);
        self.spans.reserve(fields);
    }

    /// Builds fields from a text and (key start, key end, value end)
    /// positions on char boundaries of it.
    pub(crate) fn from_parts(text: String, spans: Spans) -> ExtFields {
        ExtFields { text, spans }
    }

    fn push_span(&mut self, start: usize, key_end: usize, end: usize) {
        self.spans.push((start as u32, key_end as u32, end as u32));
    }

    fn entry(&self, i: usize) -> (&str, &str) {
        let (a, b, c) = self.spans[i];
        (
            &self.text[a as usize..b as usize],
            &self.text[b as usize..c as usize],
        )
    }

    /// Drops every value of `key`.
    pub fn remove(&mut self, key: &str) {
        let text = &self.text;
        self.spans
            .retain(|&mut (a, b, _)| &text[a as usize..b as usize] != key);
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> {
        (0..self.spans.len()).map(|i| self.entry(i))
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A command's body: one buffer inline (requests, most responses), or the
/// slices of a pull response.
pub type Body = smallvec::SmallVec<[Bytes; 1]>;

/// One remoting command: a request or a response.
#[derive(Debug, Clone, PartialEq)]
pub struct RemotingCommand {
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext: ExtFields,
    /// The body, possibly in several pieces (pull responses are lists of
    /// slices of the mapped commit log and are written with vectored I/O).
    pub body: Body,
    /// How the header arrived (responses always go out as JSON).
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::RUST,
            version: CURRENT_VERSION,
            opaque: 0,
            flag: 0,
            remark: None,
            ext: ExtFields::default(),
            body: Body::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// A response to `req` with the given code; opaque copied, flag set.
    pub fn response_to(req: &RemotingCommand, code: i32) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::JAVA,
            version: CURRENT_VERSION,
            opaque: req.opaque,
            flag: FLAG_RESPONSE,
            remark: None,
            ext: ExtFields::default(),
            body: Body::new(),
            serialize_type: SerializeType::Json,
        }
    }

    pub fn new_response(code: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::JAVA,
            version: CURRENT_VERSION,
            opaque: 0,
            flag: FLAG_RESPONSE,
            remark,
            ext: ExtFields::default(),
            body: Body::new(),
            serialize_type: SerializeType::Json,
        }
    }

    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        let b = body.into();
        self.body = if b.is_empty() {
            Body::new()
        } else {
            smallvec::smallvec![b]
        };
        self
    }

    pub fn with_ext(mut self, key: &str, value: impl ToString) -> Self {
        self.ext.insert(key, value.to_string());
        self
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    pub fn body_len(&self) -> usize {
        self.body.iter().map(|b| b.len()).sum()
    }

    /// The body as one buffer (copies only when it is in several pieces).
    pub fn body_bytes(&self) -> Bytes {
        match self.body.len() {
            0 => Bytes::new(),
            1 => self.body[0].clone(),
            _ => {
                let mut out = BytesMut::with_capacity(self.body_len());
                for b in &self.body {
                    out.extend_from_slice(b);
                }
                out.freeze()
            }
        }
    }

    /// Decodes a header (the bytes after the type/length word) plus body.
    pub fn decode(stype: u8, header: &[u8], body: Bytes) -> Result<Self, WireError> {
        let mut cmd = match stype {
            0 => decode_json_header(header)?,
            1 => decode_binary_header(header)?,
            other => return Err(WireError::UnknownSerializeType(other)),
        };
        cmd.body = if body.is_empty() {
            Body::new()
        } else {
            smallvec::smallvec![body]
        };
        Ok(cmd)
    }

    /// Encodes the frame prefix (length words) and the JSON header into
    /// `out`; the body pieces follow separately (vectored write) or are
    /// appended by [`RemotingCommand::encode_to`].
    pub fn encode_head(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u64(0); // frame_len + type/header_len, patched below
        write_json_header(self, out);
        let header_len = out.len() - start - 8;
        let frame_len = 4 + header_len + self.body_len();
        out[start..start + 4].copy_from_slice(&(frame_len as u32).to_be_bytes());
        out[start + 4..start + 8].copy_from_slice(&(header_len as u32).to_be_bytes());
    }

    /// Encodes the whole frame (JSON header) into `out`.
    pub fn encode_to(&self, out: &mut BytesMut) {
        self.encode_head(out);
        for b in &self.body {
            out.extend_from_slice(b);
        }
    }

    /// Encodes the whole frame with a ROCKETMQ binary header.
    pub fn encode_binary_to(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u64(0);
        out.put_i16(self.code as i16);
        out.put_u8(self.language.0);
        out.put_i16(self.version as i16);
        out.put_i32(self.opaque);
        out.put_i32(self.flag);
        match &self.remark {
            Some(r) if !r.is_empty() => {
                out.put_i32(r.len() as i32);
                out.extend_from_slice(r.as_bytes());
            }
            _ => out.put_i32(0),
        }
        let ext_len: usize = self.ext.iter().map(|(k, v)| 6 + k.len() + v.len()).sum();
        out.put_i32(ext_len as i32);
        for (k, v) in self.ext.iter() {
            out.put_i16(k.len() as i16);
            out.extend_from_slice(k.as_bytes());
            out.put_i32(v.len() as i32);
            out.extend_from_slice(v.as_bytes());
        }
        let header_len = out.len() - start - 8;
        let frame_len = 4 + header_len + self.body_len();
        out[start..start + 4].copy_from_slice(&(frame_len as u32).to_be_bytes());
        let word = (1u32 << 24) | header_len as u32;
        out[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
        for b in &self.body {
            out.extend_from_slice(b);
        }
    }
}

// ---------------------------------------------------------------- JSON

fn write_json_header(cmd: &RemotingCommand, out: &mut BytesMut) {
    super::json_header::encode(cmd, out);
}

/// Appends `v` as a JSON string literal.
pub fn json_string(s: &mut String, v: &str) {
    s.push('"');
    super::json_header::escape(v, |chunk| {
        // Chunks are whole runs of `v` or ASCII escapes: valid UTF-8.
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default())
    });
    s.push('"');
}

#[derive(Deserialize)]
struct JsonHeader {
    #[serde(default, deserialize_with = "lenient_i32")]
    code: i32,
    #[serde(default, deserialize_with = "lenient_language")]
    language: LanguageCode,
    #[serde(default, deserialize_with = "lenient_i32")]
    version: i32,
    #[serde(default, deserialize_with = "lenient_i32")]
    opaque: i32,
    #[serde(default, deserialize_with = "lenient_i32")]
    flag: i32,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    remark: Option<String>,
    #[serde(rename = "extFields", default, deserialize_with = "lenient_ext")]
    ext: ExtFields,
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, WireError> {
    match super::json_header::decode(header) {
        Some(cmd) => Ok(cmd),
        None => decode_json_general(header),
    }
}

/// The general (serde) reader: every lenient rule, precise errors.
pub fn decode_json_general(header: &[u8]) -> Result<RemotingCommand, WireError> {
    let h: JsonHeader =
        serde_json::from_slice(header).map_err(|e| WireError::BadHeader(e.to_string()))?;
    Ok(RemotingCommand {
        code: h.code,
        language: h.language,
        version: h.version,
        opaque: h.opaque,
        flag: h.flag,
        remark: h.remark.filter(|r| !r.is_empty()),
        ext: h.ext,
        body: Body::new(),
        serialize_type: SerializeType::Json,
    })
}

/// A JSON scalar rendered the way Java's `toString` would render it.
struct Scalar(Option<String>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON scalar")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Scalar, A::Error> {
                while a.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Scalar, A::Error> {
                while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
        }
        d.deserialize_any(V)
    }
}

fn lenient_i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let s = Scalar::deserialize(d)?;
    Ok(s.0.and_then(|v| parse_i64(&v)).unwrap_or(0) as i32)
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Scalar::deserialize(d)?.0)
}

fn lenient_language<'de, D: Deserializer<'de>>(d: D) -> Result<LanguageCode, D::Error> {
    let s = Scalar::deserialize(d)?;
    Ok(match s.0 {
        Some(v) => match v.parse::<u8>() {
            Ok(n) => LanguageCode(n),
            Err(_) => LanguageCode::from_name(&v),
        },
        None => LanguageCode::JAVA,
    })
}

fn lenient_ext<'de, D: Deserializer<'de>>(d: D) -> Result<ExtFields, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = ExtFields;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_unit<E: de::Error>(self) -> Result<ExtFields, E> {
            Ok(ExtFields::default())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<ExtFields, A::Error> {
            let mut out = ExtFields::default();
            while let Some((k, v)) = a.next_entry::<String, Scalar>()? {
                if let Some(v) = v.0 {
                    out.push(&k, &v);
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// Parses an integer the way a lenient Java reader would accept it.
pub fn parse_i64(v: &str) -> Option<i64> {
    let t = v.trim();
    t.parse::<i64>()
        .ok()
        .or_else(|| t.parse::<f64>().ok().map(|f| f as i64))
}

// -------------------------------------------------------------- binary

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() - self.pos < n {
            return Err(WireError::Truncated {
                at: self.pos,
                need: n,
                have: self.buf.len() - self.pos,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16, WireError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, WireError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn len(&mut self) -> Result<usize, WireError> {
        let n = self.i32()?;
        if n < 0 || n as usize > self.buf.len() {
            return Err(WireError::BadHeader(format!("length {n} out of range")));
        }
        Ok(n as usize)
    }
    fn str(&mut self, n: usize) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| WireError::BadHeader("invalid UTF-8".into()))
    }

    fn string(&mut self, n: usize) -> Result<String, WireError> {
        self.str(n).map(str::to_owned)
    }
}

fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, WireError> {
    let mut c = Cursor {
        buf: header,
        pos: 0,
    };
    let code = c.i16()? as i32;
    let language = LanguageCode(c.take(1)?[0]);
    let version = c.i16()? as i32;
    let opaque = c.i32()?;
    let flag = c.i32()?;
    let rlen = c.len()?;
    let remark = if rlen > 0 {
        Some(c.string(rlen)?)
    } else {
        None
    };
    let ext_len = c.len()?;
    let ext_bytes = c.take(ext_len)?;
    let mut e = Cursor {
        buf: ext_bytes,
        pos: 0,
    };
    let mut ext = ExtFields::default();
    while e.pos < ext_bytes.len() {
        let kl = e.i16()?;
        if kl < 0 {
            return Err(WireError::BadHeader("negative key length".into()));
        }
        let k = e.str(kl as usize)?;
        let vl = e.len()?;
        let v = e.str(vl)?;
        ext.push(k, v);
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext,
        body: Body::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_cpp_style_json() {
        // Numbers inside extFields, empty remark, newline after the header.
        let h = br#"{"code":10,"extFields":{"queueId":3,"batch":false,"topic":"T"},"flag":0,"language":"CPP","opaque":5,"remark":"","version":63}
"#;
        let c = RemotingCommand::decode(0, h, Bytes::new()).unwrap();
        assert_eq!(c.code, 10);
        assert_eq!(c.language, LanguageCode::CPP);
        assert_eq!(c.ext.get("queueId"), Some("3"));
        assert_eq!(c.ext.get("batch"), Some("false"));
        assert_eq!(c.remark, None);
    }

    #[test]
    fn binary_worked_example() {
        let bytes = [
            0x00, 0x69, 0x00, 0x01, 0xdf, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d, 0x00,
            0x05, b't', b'o', b'p', b'i', b'c', 0, 0, 0, 2, b'T', b'1',
        ];
        let c = RemotingCommand::decode(1, &bytes, Bytes::new()).unwrap();
        assert_eq!(c.code, 105);
        assert_eq!(c.version, 479);
        assert_eq!(c.opaque, 7);
        assert_eq!(c.ext.get("topic"), Some("T1"));
    }

    #[test]
    fn json_is_sorted_and_round_trips() {
        let mut c = RemotingCommand::request(105)
            .with_ext("topic", "T1")
            .with_ext("a", 1);
        c.opaque = 9;
        let mut out = BytesMut::new();
        c.encode_to(&mut out);
        let hl = u32::from_be_bytes(out[4..8].try_into().unwrap()) as usize;
        let text = std::str::from_utf8(&out[8..8 + hl]).unwrap();
        assert!(text.starts_with(r#"{"code":105,"extFields":{"a":"1","topic":"T1"},"flag":0"#));
        let back = RemotingCommand::decode(0, &out[8..8 + hl], Bytes::new()).unwrap();
        assert_eq!(back.ext.get("topic"), Some("T1"));
        assert_eq!(back.opaque, 9);
    }
}
