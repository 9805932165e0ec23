//! Query by key (QUERY_MESSAGE) and view by commit-log offset
//! (VIEW_MESSAGE_BY_ID).
//!
//! Key lookups go through the `Indexer` actor; the records are returned as
//! zero-copy slices of the mapped commit log. Like the Java broker, a key
//! query returns every record whose key hash and store time match: telling
//! hash collisions apart by the key text is the client's job.

use bytes::Bytes;

use super::BrokerService;
use crate::actors::broker::indexer::QueryIndex;
use crate::service::{Caller, Refusal};

#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub topic: String,
    pub key: String,
    pub max: i32,
    pub begin: i64,
    pub end: i64,
    /// A unique-key query (`_UNIQUE_KEY_QUERY`): the broker's own limit.
    pub unique: bool,
}

pub struct QueryHits {
    /// The stored records, oldest first; empty when nothing matched.
    pub records: Vec<Bytes>,
    pub index_last_update_timestamp: i64,
    pub index_last_update_phy_offset: i64,
}

impl BrokerService {
    pub async fn query_by_key(
        &self,
        _caller: &Caller,
        q: QueryRequest,
    ) -> Result<QueryHits, Refusal> {
        let ctx = self.ctx();
        let ex = &ctx.cfg.expiry;
        let max = if q.unique {
            ex.default_query_max_num
        } else {
            q.max
        };
        let max = max.min(ex.max_msgs_num_batch).max(1) as usize;
        let hits = match &ctx.indexer {
            Some(ix) => ix
                .send(QueryIndex {
                    topic: q.topic,
                    key: q.key,
                    max,
                    begin: q.begin,
                    end: q.end,
                })
                .await
                .map_err(|_| Refusal::busy("index"))?,
            None => Default::default(),
        };
        let mut offsets = hits.phys_offsets;
        offsets.sort_unstable();
        offsets.dedup();
        let records = offsets
            .iter()
            .filter_map(|&o| {
                ctx.reader
                    .read_record(o)
                    .filter(|r| looks_like_record_at(r, o))
            })
            .collect();
        Ok(QueryHits {
            records,
            index_last_update_timestamp: hits.last_update_timestamp,
            index_last_update_phy_offset: hits.last_update_phy_offset,
        })
    }

    /// The record stored at a commit-log offset (an offset message id).
    pub fn view_by_offset(&self, _caller: &Caller, offset: i64) -> Result<Bytes, Refusal> {
        match self.ctx().reader.read_record(offset) {
            Some(rec) if looks_like_record_at(&rec, offset) => Ok(rec),
            _ => Err(Refusal::Failed(format!(
                "can not find message by the offset, {offset}"
            ))),
        }
    }
}

/// A record really starts at `offset` (not an arbitrary position inside
/// one): its magic is valid and its PHYSICALOFFSET field says so.
fn looks_like_record_at(rec: &[u8], offset: i64) -> bool {
    use crate::wire::message::{self, PHYS_OFFSET_POS};
    let magic_ok = message::peek_record_header(rec).is_ok_and(|h| !h.is_blank());
    let phys = rec
        .get(PHYS_OFFSET_POS..PHYS_OFFSET_POS + 8)
        .and_then(|s| s.try_into().ok())
        .map(i64::from_be_bytes);
    magic_ok && phys == Some(offset)
}
