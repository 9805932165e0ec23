//! Batch preparation for [`super::producer::Producer`] (`MessageBatch`):
//! validation (one topic, no retry topic, no delay), one `UNIQ_KEY` per
//! message, and the split into consecutive runs that fit the broker's
//! message size limit.

use crate::wire::message::keys;
use crate::wire::message::{BatchEntry, BATCH_ENTRY_OVERHEAD};
use crate::wire::msgid::new_uniq_id;

use super::message::Message;
use super::remoting::ClientError;

use crate::wire::names::RETRY_PREFIX;

pub fn batch_topic(msgs: &[Message]) -> Result<String, ClientError> {
    let Some(first) = msgs.first() else {
        return Err(ClientError::Invalid("empty batch".into()));
    };
    if msgs.iter().any(|m| m.topic != first.topic) {
        return Err(ClientError::Invalid(
            "batch messages must share one topic".into(),
        ));
    }
    if first.topic.starts_with(RETRY_PREFIX) {
        return Err(ClientError::Invalid(
            "batches cannot go to retry topics".into(),
        ));
    }
    if msgs.iter().any(|m| m.property(keys::DELAY).is_some()) {
        return Err(ClientError::Invalid(
            "batch messages cannot be delayed".into(),
        ));
    }
    Ok(first.topic.clone())
}

pub fn batch_entries(msgs: &[Message]) -> (Vec<BatchEntry>, Vec<String>) {
    let ids: Vec<String> = msgs.iter().map(|_| new_uniq_id()).collect();
    let entries = msgs
        .iter()
        .zip(&ids)
        .map(|(m, id)| BatchEntry {
            flag: m.flag,
            body: m.body.clone(),
            properties: m.encode_properties(id),
        })
        .collect();
    (entries, ids)
}

pub fn entry_size(e: &BatchEntry) -> usize {
    BATCH_ENTRY_OVERHEAD + e.body.len() + e.properties.len()
}

/// Consecutive ranges of `entries` whose encoded size stays within `limit`.
pub fn split_batch(
    entries: &[BatchEntry],
    limit: usize,
) -> Result<Vec<std::ops::Range<usize>>, ClientError> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, e) in entries.iter().enumerate() {
        let n = entry_size(e);
        if n > limit {
            return Err(ClientError::Invalid(format!(
                "message {i} is {n} bytes, over the {limit} byte limit"
            )));
        }
        if size + n > limit {
            out.push(start..i);
            start = i;
            size = 0;
        }
        size += n;
    }
    if start < entries.len() {
        out.push(start..entries.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(len: usize) -> BatchEntry {
        BatchEntry {
            flag: 0,
            body: Bytes::from(vec![0u8; len]),
            properties: String::new(),
        }
    }

    #[test]
    fn batches_split_at_the_limit() {
        let es: Vec<_> = (0..5).map(|_| entry(78)).collect(); // 100 bytes each
        assert_eq!(split_batch(&es, 250).unwrap(), vec![0..2, 2..4, 4..5]);
        assert_eq!(split_batch(&es, 500).unwrap(), vec![0..5]);
        assert!(split_batch(&es, 99).is_err());
        assert!(split_batch(&[], 10).unwrap().is_empty());
    }
}
