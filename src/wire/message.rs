//! RocketMQ message codecs (`MessageDecoder`, `CommitLog.MessageExtEncoder`): the stored record layout shared by
//! the CommitLog and by pull/query/view bodies, sysflag bits, magic codes, and
//! re-exports of the properties and batch codecs. Pure functions, no I/O.
//!
//! Writers: the broker's send path encodes with [`encode_record`] and the store
//! patches QUEUEOFFSET / PHYSICALOFFSET in place. Readers: recovery scans with
//! [`peek_record_header`]; pull/query paths and clients use [`decode_record`].

mod batch;
mod cursor;
mod properties;

pub(crate) use cursor::Cursor;

pub use batch::{
    batch_entries, decode_batch, encode_batch, BatchEntry, BatchRef, BATCH_ENTRY_OVERHEAD,
};
pub use properties::{
    decode_properties, encode_properties, java_hash, keys, property, tags_code, with_property,
    without_property, PropertyView, NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR, TRANSIENT_PREFIX,
};

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

/// Magic of a v1 record (1-byte topic length).
pub const MAGIC_V1: i32 = 0xDAA3_20A7u32 as i32;
/// Magic of a v2 record (2-byte topic length).
pub const MAGIC_V2: i32 = 0xDAA3_20ABu32 as i32;
/// Magic of the end-of-segment filler.
pub const BLANK_MAGIC: i32 = 0xCBD4_3194u32 as i32;
/// Size of the end-of-segment filler (TOTALSIZE + MAGIC).
pub const BLANK_LEN: usize = 8;

pub const TOTAL_SIZE_POS: usize = 0;
pub const MAGIC_POS: usize = 4;
pub const BODY_CRC_POS: usize = 8;
pub const QUEUE_ID_POS: usize = 12;
pub const FLAG_POS: usize = 16;
pub const QUEUE_OFFSET_POS: usize = 20;
pub const PHYS_OFFSET_POS: usize = 28;
pub const SYSFLAG_POS: usize = 36;
pub const BORN_TIMESTAMP_POS: usize = 40;
pub const BORN_HOST_POS: usize = 48;
/// Bytes covered by [`RecordHeader`].
pub const HEADER_LEN: usize = 40;
/// Smallest possible record (IPv4 hosts, v1, empty body/topic/properties).
pub const MIN_RECORD_LEN: usize = 91;
/// Longest topic a record can hold.
pub const MAX_TOPIC_LEN: usize = 255;
/// Topics longer than this are written with [`MAGIC_V2`].
pub const V1_MAX_TOPIC_LEN: usize = 127;
/// Longest properties string (signed 16-bit length).
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;

/// `MessageSysFlag` bits.
pub mod sysflag {
    pub const COMPRESSED: i32 = 0x1;
    pub const MULTI_TAGS: i32 = 0x2;
    pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
    pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
    pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
    pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
    pub const TRANSACTION_MASK: i32 = 0xC;
    pub const BORNHOST_V6: i32 = 0x10;
    pub const STOREHOST_V6: i32 = 0x20;
    pub const NEED_UNWRAP: i32 = 0x40;
    pub const INNER_BATCH: i32 = 0x80;
    pub const COMPRESSION_LZ4: i32 = 0x100;
    pub const COMPRESSION_ZSTD: i32 = 0x200;
    pub const COMPRESSION_ZLIB: i32 = 0x300;
    pub const COMPRESSION_MASK: i32 = 0x700;

    /// The transaction type bits of `flag`.
    pub fn transaction_type(flag: i32) -> i32 {
        flag & TRANSACTION_MASK
    }

    /// `flag` with its transaction type replaced by `ty`.
    pub fn with_transaction_type(flag: i32, ty: i32) -> i32 {
        (flag & !TRANSACTION_MASK) | (ty & TRANSACTION_MASK)
    }

    /// True for records that must not be dispatched to a consume queue.
    pub fn is_prepared_or_rollback(flag: i32) -> bool {
        matches!(
            transaction_type(flag),
            TRANSACTION_PREPARED_TYPE | TRANSACTION_ROLLBACK_TYPE
        )
    }
}

/// Decoding / encoding failures, with the byte offset they occurred at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("truncated {field} at offset {offset}: need {need} bytes, have {have}")]
    Truncated {
        field: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("bad magic code {magic:#010x} at offset {offset}")]
    BadMagic { offset: usize, magic: i32 },
    #[error("blank end-of-segment filler at offset {offset}")]
    Blank { offset: usize },
    #[error("invalid {field} {value} at offset {offset}")]
    InvalidLength {
        field: &'static str,
        offset: usize,
        value: i64,
    },
    #[error("record at offset {offset} declares {declared} bytes but its fields take {actual}")]
    SizeMismatch {
        offset: usize,
        declared: usize,
        actual: usize,
    },
    #[error("body CRC mismatch at offset {offset}: stored {stored}, computed {computed}")]
    BodyCrc {
        offset: usize,
        stored: i32,
        computed: i32,
    },
    #[error("{field} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str, offset: usize },
    #[error("topic is {len} bytes, max {MAX_TOPIC_LEN}")]
    TopicTooLong { len: usize },
    #[error("properties are {len} bytes, max {MAX_PROPERTIES_LEN}")]
    PropertiesTooLong { len: usize },
    #[error("body is {len} bytes, too long for a record")]
    BodyTooLong { len: usize },
}

/// Everything needed to encode one stored record.
#[derive(Debug, Clone, Copy)]
pub struct RecordSpec<'a> {
    pub topic: &'a str,
    pub queue_id: i32,
    pub flag: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: &'a [u8],
    pub properties: &'a str,
}

fn host_len(a: &SocketAddr) -> usize {
    if a.is_ipv6() {
        20
    } else {
        8
    }
}

/// Encoded size of `spec` (no validation).
pub fn record_len(spec: &RecordSpec) -> usize {
    record_len_with(spec, 0)
}

/// Encoded size of `spec` with `extra` more bytes of properties.
pub fn record_len_with(spec: &RecordSpec, extra: usize) -> usize {
    let topic_len_size = if spec.topic.len() > V1_MAX_TOPIC_LEN {
        2
    } else {
        1
    };
    72 + host_len(&spec.born_host)
        + host_len(&spec.store_host)
        + spec.body.len()
        + topic_len_size
        + spec.topic.len()
        + 2
        + spec.properties.len()
        + extra
}

fn put_host(out: &mut BytesMut, a: &SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => out.put_slice(&ip.octets()),
        IpAddr::V6(ip) => out.put_slice(&ip.octets()),
    }
    out.put_i32(a.port() as i32);
}

/// Stored BODYCRC of `body`.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

/// Appends the full record for `spec` to `out`. QUEUEOFFSET and PHYSICALOFFSET
/// are written as 0; the IPv6 host bits of SYSFLAG follow the host addresses.
pub fn encode_record(spec: &RecordSpec, out: &mut BytesMut) -> Result<(), MessageError> {
    encode_record_with(spec, &[], out)
}

/// [`encode_record`] with the stored properties being `spec.properties`
/// followed by the pieces of `tail` (what the broker appends), so that they
/// need not be joined in a buffer of their own first.
pub fn encode_record_with(
    spec: &RecordSpec,
    tail: &[&str],
    out: &mut BytesMut,
) -> Result<(), MessageError> {
    let topic = spec.topic.as_bytes();
    if topic.len() > MAX_TOPIC_LEN {
        return Err(MessageError::TopicTooLong { len: topic.len() });
    }
    let tail_len: usize = tail.iter().map(|p| p.len()).sum();
    let props_len = spec.properties.len() + tail_len;
    if props_len > MAX_PROPERTIES_LEN {
        return Err(MessageError::PropertiesTooLong { len: props_len });
    }
    let len = record_len_with(spec, tail_len);
    if len > i32::MAX as usize {
        return Err(MessageError::BodyTooLong {
            len: spec.body.len(),
        });
    }
    let mut sys_flag = spec.sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6);
    if spec.born_host.is_ipv6() {
        sys_flag |= sysflag::BORNHOST_V6;
    }
    if spec.store_host.is_ipv6() {
        sys_flag |= sysflag::STOREHOST_V6;
    }
    let v2 = topic.len() > V1_MAX_TOPIC_LEN;
    out.reserve(len);
    out.put_i32(len as i32);
    out.put_i32(if v2 { MAGIC_V2 } else { MAGIC_V1 });
    out.put_i32(body_crc(spec.body));
    out.put_i32(spec.queue_id);
    out.put_i32(spec.flag);
    out.put_i64(0);
    out.put_i64(0);
    out.put_i32(sys_flag);
    out.put_i64(spec.born_timestamp);
    put_host(out, &spec.born_host);
    out.put_i64(spec.store_timestamp);
    put_host(out, &spec.store_host);
    out.put_i32(spec.reconsume_times);
    out.put_i64(spec.prepared_transaction_offset);
    out.put_i32(spec.body.len() as i32);
    out.put_slice(spec.body);
    if v2 {
        out.put_i16(topic.len() as i16);
    } else {
        out.put_u8(topic.len() as u8);
    }
    out.put_slice(topic);
    out.put_i16(props_len as i16);
    out.put_slice(spec.properties.as_bytes());
    for p in tail {
        out.put_slice(p.as_bytes());
    }
    Ok(())
}

/// Writes `v` big-endian at `pos` of an encoded record (used to patch offsets).
/// Returns false when `buf` is too short.
pub fn patch_i64(buf: &mut [u8], pos: usize, v: i64) -> bool {
    match buf.get_mut(pos..pos + 8) {
        Some(s) => {
            s.copy_from_slice(&v.to_be_bytes());
            true
        }
        None => false,
    }
}

/// A fully decoded record (`MessageExt` in Java).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    pub store_size: i32,
    pub magic: i32,
    pub body_crc: i32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: Bytes,
    pub topic: String,
    pub properties: String,
}

impl MessageExt {
    pub fn property(&self, key: &str) -> Option<&str> {
        property(&self.properties, key)
    }
    pub fn tags(&self) -> Option<&str> {
        self.property(keys::TAGS)
    }
    pub fn keys(&self) -> Option<&str> {
        self.property(keys::KEYS)
    }
    pub fn uniq_key(&self) -> Option<&str> {
        self.property(keys::UNIQ_KEY)
    }
    pub fn transaction_type(&self) -> i32 {
        sysflag::transaction_type(self.sys_flag)
    }
    /// The offset message id (store host + commit log offset).
    pub fn offset_msg_id(&self) -> String {
        crate::wire::msgid::offset_msg_id(self.store_host, self.commit_log_offset)
    }
    /// A spec that re-encodes this message (e.g. for retry or schedule topics).
    pub fn as_spec(&self) -> RecordSpec<'_> {
        RecordSpec {
            topic: &self.topic,
            queue_id: self.queue_id,
            flag: self.flag,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_timestamp: self.store_timestamp,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            body: &self.body,
            properties: &self.properties,
        }
    }
}

/// The fixed first 40 bytes of a record (or a blank filler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub total_size: i32,
    pub magic: i32,
    pub body_crc: i32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub phys_offset: i64,
    pub sys_flag: i32,
}

impl RecordHeader {
    pub fn is_blank(&self) -> bool {
        self.magic == BLANK_MAGIC
    }
}

/// Reads the header at the start of `buf` without touching the rest. A blank
/// filler needs only 8 bytes (its other fields read as 0). Errors on unknown
/// magic or a TOTALSIZE too small for the magic's kind.
pub fn peek_record_header(buf: &[u8]) -> Result<RecordHeader, MessageError> {
    let mut c = Cursor::new(buf, 0);
    let total_size = c.i32("TOTALSIZE")?;
    let magic = c.i32("MAGICCODE")?;
    let min = match magic {
        BLANK_MAGIC => BLANK_LEN,
        MAGIC_V1 | MAGIC_V2 => MIN_RECORD_LEN,
        _ => return Err(MessageError::BadMagic { offset: 4, magic }),
    };
    if total_size < min as i32 {
        return Err(MessageError::InvalidLength {
            field: "TOTALSIZE",
            offset: 0,
            value: total_size as i64,
        });
    }
    if magic == BLANK_MAGIC {
        return Ok(RecordHeader {
            total_size,
            magic,
            body_crc: 0,
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            phys_offset: 0,
            sys_flag: 0,
        });
    }
    Ok(RecordHeader {
        total_size,
        magic,
        body_crc: c.i32("BODYCRC")?,
        queue_id: c.i32("QUEUEID")?,
        flag: c.i32("FLAG")?,
        queue_offset: c.i64("QUEUEOFFSET")?,
        phys_offset: c.i64("PHYSICALOFFSET")?,
        sys_flag: c.i32("SYSFLAG")?,
    })
}

/// STORETIMESTAMP of the record at the start of `buf` (cheap: no body read).
pub fn peek_store_timestamp(buf: &[u8]) -> Result<i64, MessageError> {
    let h = peek_record_header(buf)?;
    if h.is_blank() {
        return Err(MessageError::Blank { offset: 0 });
    }
    let pos = BORN_HOST_POS
        + if h.sys_flag & sysflag::BORNHOST_V6 != 0 {
            20
        } else {
            8
        };
    let mut c = Cursor::new(buf, 0);
    c.take(pos, "header")?;
    c.i64("STORETIMESTAMP")
}

/// A record decoded in place: strings and body borrow the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub header: RecordHeader,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    /// Offset of the body relative to the start of the record.
    pub body_pos: usize,
    pub body: &'a [u8],
    pub topic: &'a str,
    /// Properties; invalid UTF-8 is replaced (as Java does).
    pub properties: Cow<'a, str>,
}

impl RecordView<'_> {
    pub fn property(&self, key: &str) -> Option<&str> {
        property(&self.properties, key)
    }
}

/// Decodes the record at the start of `rec` without copying (error offsets
/// are relative to `rec`).
pub fn view_record(rec: &[u8], check_crc: bool) -> Result<RecordView<'_>, MessageError> {
    parse_record(rec, 0, check_crc)
}

/// Parses the record at `buf[at..]`; offsets in errors are absolute.
fn parse_record(buf: &[u8], at: usize, check_crc: bool) -> Result<RecordView<'_>, MessageError> {
    let rest = buf.get(at..).ok_or(MessageError::Truncated {
        field: "record",
        offset: at,
        need: 1,
        have: 0,
    })?;
    let h = peek_record_header(rest).map_err(|e| rebase(e, at))?;
    if h.is_blank() {
        return Err(MessageError::Blank { offset: at });
    }
    let total = h.total_size as usize;
    let rec = rest.get(..total).ok_or(MessageError::Truncated {
        field: "record",
        offset: at,
        need: total,
        have: rest.len(),
    })?;
    let mut c = Cursor::new(rec, at);
    c.take(HEADER_LEN, "header")?;
    let born_timestamp = c.i64("BORNTIMESTAMP")?;
    let born_host = c.host(h.sys_flag & sysflag::BORNHOST_V6 != 0, "BORNHOST")?;
    let store_timestamp = c.i64("STORETIMESTAMP")?;
    let store_host = c.host(h.sys_flag & sysflag::STOREHOST_V6 != 0, "STOREHOST")?;
    let reconsume_times = c.i32("RECONSUMETIMES")?;
    let prepared_transaction_offset = c.i64("PREPARED_TRANSACTION_OFFSET")?;
    let body_len = c.len_i32("BODYLEN")?;
    let body_pos = c.pos();
    let body = c.take(body_len, "BODY")?;
    if check_crc {
        let computed = body_crc(body);
        if computed != h.body_crc {
            return Err(MessageError::BodyCrc {
                offset: at,
                stored: h.body_crc,
                computed,
            });
        }
    }
    let topic_len = if h.magic == MAGIC_V2 {
        c.len_i16("TOPICLEN")?
    } else {
        c.take(1, "TOPICLEN")?[0] as usize
    };
    let topic_at = c.abs();
    let topic = std::str::from_utf8(c.take(topic_len, "TOPIC")?).map_err(|_| {
        MessageError::InvalidUtf8 {
            field: "TOPIC",
            offset: topic_at,
        }
    })?;
    let prop_len = c.len_i16("PROPLEN")?;
    let properties = String::from_utf8_lossy(c.take(prop_len, "PROPERTIES")?);
    if c.pos() != total {
        return Err(MessageError::SizeMismatch {
            offset: at,
            declared: total,
            actual: c.pos(),
        });
    }
    Ok(RecordView {
        header: h,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body_pos,
        body,
        topic,
        properties,
    })
}

/// Decodes the record starting at `at`. Never reads past the record's TOTALSIZE
/// nor past `buf`; the body is a zero-copy slice of `buf`.
pub fn decode_record(buf: &Bytes, at: usize, check_crc: bool) -> Result<MessageExt, MessageError> {
    let v = parse_record(buf, at, check_crc)?;
    let h = v.header;
    let body_at = at + v.body_pos;
    Ok(MessageExt {
        store_size: h.total_size,
        magic: h.magic,
        body_crc: h.body_crc,
        queue_id: h.queue_id,
        flag: h.flag,
        queue_offset: h.queue_offset,
        commit_log_offset: h.phys_offset,
        sys_flag: h.sys_flag,
        born_timestamp: v.born_timestamp,
        born_host: v.born_host,
        store_timestamp: v.store_timestamp,
        store_host: v.store_host,
        reconsume_times: v.reconsume_times,
        prepared_transaction_offset: v.prepared_transaction_offset,
        body: buf.slice(body_at..body_at + v.body.len()),
        topic: v.topic.to_owned(),
        properties: v.properties.into_owned(),
    })
}

/// Shifts the offset of a header error by `at`.
fn rebase(e: MessageError, at: usize) -> MessageError {
    match e {
        MessageError::Truncated {
            field,
            offset,
            need,
            have,
        } => MessageError::Truncated {
            field,
            offset: offset + at,
            need,
            have,
        },
        MessageError::BadMagic { offset, magic } => MessageError::BadMagic {
            offset: offset + at,
            magic,
        },
        MessageError::InvalidLength {
            field,
            offset,
            value,
        } => MessageError::InvalidLength {
            field,
            offset: offset + at,
            value,
        },
        other => other,
    }
}

/// Decodes a concatenation of records (a pull / query / view response body).
pub fn decode_records(buf: &Bytes) -> Result<Vec<MessageExt>, MessageError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let m = decode_record(buf, at, false)?;
        at += m.store_size as usize;
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
