//! Batch send bodies (`MessageDecoder.encodeMessages`): a concatenation of
//! `TOTALSIZE, MAGIC(0), BODYCRC(0), FLAG, BODYLEN+BODY, PROPLEN+PROPERTIES`.
//! The broker splits one into a record per entry; producers (and inner-batch
//! unwrapping clients) build one with [`encode_batch`].

use super::{Cursor, MessageError, MAX_PROPERTIES_LEN};
use bytes::{BufMut, Bytes, BytesMut};

/// Fixed bytes of one batch entry besides body and properties.
pub const BATCH_ENTRY_OVERHEAD: usize = 22;

/// One message of a batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    pub flag: i32,
    pub body: Bytes,
    pub properties: String,
}

/// One message of a batch body, borrowing its properties from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRef<'a> {
    pub flag: i32,
    pub body: Bytes,
    pub properties: &'a str,
}

/// Reads the entries of a batch body one by one, without copying: bodies
/// are slices of `body`, properties borrow from it.
pub fn batch_entries(body: &Bytes) -> impl Iterator<Item = Result<BatchRef<'_>, MessageError>> {
    let mut at = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || at >= body.len() {
            return None;
        }
        let entry = read_entry(body, at);
        match &entry {
            Ok((_, total)) => at += total,
            Err(_) => failed = true,
        }
        Some(entry.map(|(e, _)| e))
    })
}

fn read_entry(body: &Bytes, at: usize) -> Result<(BatchRef<'_>, usize), MessageError> {
    let mut c = Cursor::new(&body[at..], at);
    let total = c.len_i32("TOTALSIZE")?;
    c.i32("MAGICCODE")?;
    c.i32("BODYCRC")?;
    let flag = c.i32("FLAG")?;
    let body_len = c.len_i32("BODYLEN")?;
    let body_at = c.abs();
    c.take(body_len, "BODY")?;
    let prop_len = c.len_i16("PROPLEN")?;
    let props_at = c.abs();
    c.take(prop_len, "PROPERTIES")?;
    let properties = std::str::from_utf8(&body[props_at..props_at + prop_len]).map_err(|_| {
        MessageError::InvalidUtf8 {
            field: "PROPERTIES",
            offset: props_at,
        }
    })?;
    if c.pos() != total {
        return Err(MessageError::SizeMismatch {
            offset: at,
            declared: total,
            actual: c.pos(),
        });
    }
    let entry = BatchRef {
        flag,
        body: body.slice(body_at..body_at + body_len),
        properties,
    };
    Ok((entry, total))
}

/// Splits a batch body; bodies are zero-copy slices of `body`.
pub fn decode_batch(body: &Bytes) -> Result<Vec<BatchEntry>, MessageError> {
    batch_entries(body)
        .map(|e| {
            e.map(|e| BatchEntry {
                flag: e.flag,
                body: e.body,
                properties: e.properties.to_owned(),
            })
        })
        .collect()
}

/// Appends the batch encoding of `entries` to `out`.
pub fn encode_batch<'a>(
    entries: impl IntoIterator<Item = &'a BatchEntry>,
    out: &mut BytesMut,
) -> Result<(), MessageError> {
    for e in entries {
        if e.properties.len() > MAX_PROPERTIES_LEN {
            return Err(MessageError::PropertiesTooLong {
                len: e.properties.len(),
            });
        }
        let total = BATCH_ENTRY_OVERHEAD + e.body.len() + e.properties.len();
        if total > i32::MAX as usize {
            return Err(MessageError::BodyTooLong { len: e.body.len() });
        }
        out.reserve(total);
        out.put_i32(total as i32);
        out.put_i32(0);
        out.put_i32(0);
        out.put_i32(e.flag);
        out.put_i32(e.body.len() as i32);
        out.put_slice(&e.body);
        out.put_i16(e.properties.len() as i16);
        out.put_slice(e.properties.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn truncated_entry_is_error() {
        let e = BatchEntry {
            flag: 3,
            body: Bytes::from_static(b"hello"),
            properties: "A\u{1}b\u{2}".into(),
        };
        let mut out = BytesMut::new();
        encode_batch([&e], &mut out).unwrap();
        let full = out.freeze();
        assert_eq!(decode_batch(&full).unwrap(), vec![e]);
        for cut in 1..full.len() {
            assert!(decode_batch(&full.slice(..cut)).is_err(), "cut {cut}");
        }
        assert_eq!(decode_batch(&Bytes::new()).unwrap(), vec![]);
    }

    proptest! {
        #[test]
        fn batch_round_trip(
            items in proptest::collection::vec(
                (any::<i32>(), proptest::collection::vec(any::<u8>(), 0..64), "[a-z\u{1}\u{2}]{0,20}"),
                0..6,
            )
        ) {
            let entries: Vec<BatchEntry> = items
                .into_iter()
                .map(|(flag, body, properties)| BatchEntry { flag, body: body.into(), properties })
                .collect();
            let mut out = BytesMut::new();
            encode_batch(&entries, &mut out).unwrap();
            prop_assert_eq!(decode_batch(&out.freeze()).unwrap(), entries);
        }

        #[test]
        fn decode_batch_arbitrary_never_panics(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_batch(&Bytes::from(data));
        }
    }
}
