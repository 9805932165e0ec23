//! POP consumption formats (RocketMQ 5.x): the receipt handle
//! (`ExtraInfoUtil`), the check-point and ack records of the revive topic
//! (`PopCheckPoint`, `AckMsg`, `BatchAckMsg`), the BATCH_ACK_MESSAGE body
//! (`BatchAckMessageRequestBody`), the offset-info strings of a POP
//! response, and the names POP derives from topics and groups (`KeyBuilder`).

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::names::RETRY_PREFIX;

/// `reviveQid` of handles from orderly POPs (`KeyBuilder.POP_ORDER_REVIVE_QUEUE`).
pub const ORDER_REVIVE_QID: i32 = 999;
/// Topic types in handles and offset infos: a normal topic, a V1 retry
/// topic `%RETRY%<group>_<topic>`, a V2 retry topic `%RETRY%<group>+<topic>`.
pub const TOPIC_NORMAL: i32 = 0;
pub const TOPIC_RETRY_V1: i32 = 1;
pub const TOPIC_RETRY_V2: i32 = 2;
/// Tags of the revive records (`PopAckConstants`).
pub const CK_TAG: &str = "ck";
pub const ACK_TAG: &str = "ack";
pub const BATCH_ACK_TAG: &str = "bAck";
/// Consumer group owning the revive topic's offsets (`PopAckConstants.REVIVE_GROUP`).
pub const REVIVE_GROUP: &str = "CID_RMQ_SYS_REVIVE_GROUP";
/// Most messages one check-point covers (its bitmap is 32 bits).
pub const MAX_CK_MSGS: usize = 32;

/// The revive topic of a cluster (`PopAckConstants.buildClusterReviveTopic`).
pub fn revive_topic(cluster: &str) -> String {
    format!("rmq_sys_REVIVE_LOG_{cluster}")
}

/// `KeyBuilder.buildPopRetryTopicV1`: `%RETRY%<group>_<topic>`.
pub fn retry_topic_v1(group: &str, topic: &str) -> String {
    format!("{RETRY_PREFIX}{group}_{topic}")
}

/// `KeyBuilder.buildPopRetryTopicV2`: `%RETRY%<group>+<topic>`.
pub fn retry_topic_v2(group: &str, topic: &str) -> String {
    format!("{RETRY_PREFIX}{group}+{topic}")
}

/// The topic a handle of type `ty` was popped from (`ExtraInfoUtil.getRealTopic`).
pub fn real_topic(topic: &str, group: &str, ty: i32) -> String {
    match ty {
        TOPIC_RETRY_V1 => retry_topic_v1(group, topic),
        TOPIC_RETRY_V2 => retry_topic_v2(group, topic),
        _ => topic.to_owned(),
    }
}

/// The type of `topic` as seen by `group`, and the original topic
/// (`KeyBuilder.parseNormalTopic`): a retry topic of the group maps back to
/// the topic it retries.
pub fn classify(topic: &str, group: &str) -> (i32, String) {
    if let Some(rest) = topic
        .strip_prefix(RETRY_PREFIX)
        .and_then(|r| r.strip_prefix(group))
    {
        if let Some(t) = rest.strip_prefix('_').filter(|t| !t.is_empty()) {
            return (TOPIC_RETRY_V1, t.to_owned());
        }
        if let Some(t) = rest.strip_prefix('+').filter(|t| !t.is_empty()) {
            return (TOPIC_RETRY_V2, t.to_owned());
        }
    }
    (TOPIC_NORMAL, topic.to_owned())
}

/// A POP receipt handle: the `POP_CK` property and ACK's `extraInfo`
/// (`ExtraInfoUtil.buildExtraInfo`), optionally followed by the commit-log
/// offset the 5.x proxy appends (`ReceiptHandle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle {
    pub ck_start_offset: i64,
    pub pop_time: i64,
    pub invisible_ms: i64,
    pub revive_qid: i32,
    pub topic_type: i32,
    pub broker_name: String,
    pub queue_id: i32,
    /// The message's queue offset (absent in the 7-field form).
    pub queue_offset: Option<i64>,
    pub commit_log_offset: Option<i64>,
}

impl Handle {
    /// Parses the 7-, 8- or 9-field form; extra fields are ignored.
    pub fn parse(s: &str) -> Result<Handle, String> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() < 7 {
            return Err(format!(
                "illegal receipt handle (extraInfo) [{s}]: {} fields, need at least 7",
                f.len()
            ));
        }
        fn num<T: std::str::FromStr>(s: &str, what: &str, all: &str) -> Result<T, String> {
            s.parse().map_err(|_| {
                format!("illegal receipt handle (extraInfo) [{all}]: bad {what} {s:?}")
            })
        }
        let ty: i32 = num(f[4], "topic type", s)?;
        if !(TOPIC_NORMAL..=TOPIC_RETRY_V2).contains(&ty) {
            return Err(format!(
                "illegal receipt handle (extraInfo) [{s}]: topic type {ty}"
            ));
        }
        Ok(Handle {
            ck_start_offset: num(f[0], "start offset", s)?,
            pop_time: num(f[1], "pop time", s)?,
            invisible_ms: num(f[2], "invisible time", s)?,
            revive_qid: num(f[3], "revive queue id", s)?,
            topic_type: ty,
            broker_name: f[5].to_owned(),
            queue_id: num(f[6], "queue id", s)?,
            queue_offset: f.get(7).map(|v| num(v, "queue offset", s)).transpose()?,
            commit_log_offset: f
                .get(8)
                .map(|v| num(v, "commit log offset", s))
                .transpose()?,
        })
    }

    /// The broker's 8-field form.
    pub fn render(&self) -> String {
        format!(
            "{} {} {} {} {} {} {} {}",
            self.ck_start_offset,
            self.pop_time,
            self.invisible_ms,
            self.revive_qid,
            self.topic_type,
            self.broker_name,
            self.queue_id,
            self.queue_offset.unwrap_or(self.ck_start_offset)
        )
    }

    /// When the message becomes visible again.
    pub fn next_visible(&self) -> i64 {
        self.pop_time.saturating_add(self.invisible_ms)
    }
}

/// A check-point record (`PopCheckPoint`): the messages one POP read from
/// one queue, revived unless acked within the invisible time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckPoint {
    /// Queue offset the read started at.
    #[serde(rename = "so")]
    pub start_offset: i64,
    #[serde(rename = "pt")]
    pub pop_time: i64,
    #[serde(rename = "it")]
    pub invisible_ms: i64,
    /// Ack bitmap (kept 0 in records; acks are their own records).
    #[serde(rename = "bm", default)]
    pub bitmap: i32,
    #[serde(rename = "n")]
    pub num: u8,
    #[serde(rename = "q")]
    pub queue_id: i32,
    /// The real topic (the retry topic for retry messages).
    #[serde(rename = "t")]
    pub topic: String,
    #[serde(rename = "c")]
    pub group: String,
    #[serde(rename = "ro", default)]
    pub revive_offset: i64,
    /// Offsets of the messages, relative to `start_offset`.
    #[serde(rename = "d", default)]
    pub deltas: Vec<i32>,
    #[serde(rename = "bn", default)]
    pub broker_name: String,
    /// Re-put count (a string in RocketMQ's record, absent when none).
    #[serde(rename = "rp", default, skip_serializing_if = "Option::is_none")]
    pub re_put: Option<String>,
}

impl CheckPoint {
    /// Queue offset of message `i`.
    pub fn offset_of(&self, i: usize) -> Option<i64> {
        self.deltas
            .get(i)
            .map(|d| self.start_offset + i64::from(*d))
    }

    /// Index of the message at queue offset `offset`.
    pub fn index_of(&self, offset: i64) -> Option<usize> {
        self.deltas
            .iter()
            .position(|d| self.start_offset + i64::from(*d) == offset)
    }

    /// The record's `UNIQ_KEY`.
    pub fn uniq_key(&self) -> String {
        format!(
            "{}@{}@{}@{}@{}@{}@{CK_TAG}",
            self.topic,
            self.queue_id,
            self.start_offset,
            self.group,
            self.pop_time,
            self.broker_name
        )
    }

    /// Identity of the check-point an ack refers to.
    pub fn key(&self) -> CkKey {
        CkKey::new(
            &self.topic,
            &self.group,
            self.queue_id,
            self.start_offset,
            self.pop_time,
        )
    }
}

/// What matches an ack to its check-point (`PopReviveService`'s merge key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CkKey {
    pub topic: String,
    pub group: String,
    pub queue_id: i32,
    pub start_offset: i64,
    pub pop_time: i64,
}

impl CkKey {
    pub fn new(topic: &str, group: &str, queue_id: i32, start_offset: i64, pop_time: i64) -> CkKey {
        CkKey {
            topic: topic.to_owned(),
            group: group.to_owned(),
            queue_id,
            start_offset,
            pop_time,
        }
    }
}

/// An ack record (`AckMsg`); a batch ack (`BatchAckMsg`) carries `aol`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRecord {
    /// The acked offset (single acks).
    #[serde(rename = "ao", default)]
    pub ack_offset: i64,
    #[serde(rename = "so")]
    pub start_offset: i64,
    #[serde(rename = "c")]
    pub group: String,
    #[serde(rename = "t")]
    pub topic: String,
    #[serde(rename = "q")]
    pub queue_id: i32,
    #[serde(rename = "pt")]
    pub pop_time: i64,
    #[serde(rename = "bn", default)]
    pub broker_name: String,
    /// The acked offsets (batch acks).
    #[serde(rename = "aol", default, skip_serializing_if = "Vec::is_empty")]
    pub ack_offsets: Vec<i64>,
}

impl AckRecord {
    pub fn key(&self) -> CkKey {
        CkKey::new(
            &self.topic,
            &self.group,
            self.queue_id,
            self.start_offset,
            self.pop_time,
        )
    }

    /// Every offset this record acks.
    pub fn offsets(&self) -> Vec<i64> {
        if self.ack_offsets.is_empty() {
            vec![self.ack_offset]
        } else {
            self.ack_offsets.clone()
        }
    }

    /// The record's tag and `UNIQ_KEY`.
    pub fn tag_and_key(&self) -> (&'static str, String) {
        let tag = if self.ack_offsets.is_empty() {
            ACK_TAG
        } else {
            BATCH_ACK_TAG
        };
        let key = format!(
            "{}@{}@{}@{}@{}@{}@{tag}",
            self.topic, self.queue_id, self.ack_offset, self.group, self.pop_time, self.broker_name
        );
        (tag, key)
    }
}

/// One entry of BATCH_ACK_MESSAGE's body (`BatchAck`); long names are
/// accepted as aliases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAckEntry {
    #[serde(rename = "c", alias = "consumerGroup")]
    pub group: String,
    /// The original topic.
    #[serde(rename = "t", alias = "topic")]
    pub topic: String,
    /// Topic type "0" | "1" | "2".
    #[serde(rename = "r", alias = "retry")]
    pub retry: String,
    #[serde(rename = "so", alias = "startOffset")]
    pub start_offset: i64,
    #[serde(rename = "q", alias = "queueId")]
    pub queue_id: i32,
    #[serde(rename = "rq", alias = "reviveQueueId")]
    pub revive_qid: i32,
    #[serde(rename = "pt", alias = "popTime")]
    pub pop_time: i64,
    #[serde(rename = "it", alias = "invisibleTime")]
    pub invisible_ms: i64,
    /// Base64 of Java's `BitSet.toByteArray()`: bit i acks `so + i`.
    #[serde(rename = "b", alias = "bitSet")]
    pub bits: String,
}

impl BatchAckEntry {
    /// The acked offsets.
    pub fn offsets(&self) -> Result<Vec<i64>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.bits.trim())
            .map_err(|e| format!("bad bitSet {:?}: {e}", self.bits))?;
        let mut out = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            for bit in 0..8 {
                if b & (1 << bit) != 0 {
                    out.push(self.start_offset + (i * 8 + bit) as i64);
                }
            }
        }
        Ok(out)
    }

    /// An entry acking `offsets` (all at or after `start_offset`).
    pub fn encode_bits(start_offset: i64, offsets: &[i64]) -> String {
        let mut bytes: Vec<u8> = Vec::new();
        for o in offsets {
            let i = (o - start_offset).max(0) as usize;
            if bytes.len() <= i / 8 {
                bytes.resize(i / 8 + 1, 0);
            }
            bytes[i / 8] |= 1 << (i % 8);
        }
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// BATCH_ACK_MESSAGE's body (`BatchAckMessageRequestBody`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchAckBody {
    #[serde(default)]
    pub broker_name: String,
    #[serde(default)]
    pub acks: Vec<BatchAckEntry>,
}

/// The offset-info strings of a POP response (`ExtraInfoUtil`), built per
/// queue read: `startOffsetInfo`, `msgOffsetInfo`, `orderCountInfo`.
#[derive(Debug, Clone, Default)]
pub struct OffsetInfos {
    pub start: String,
    pub msgs: String,
    pub order_counts: String,
}

fn push_entry(s: &mut String, entry: std::fmt::Arguments) {
    use std::fmt::Write;
    if !s.is_empty() {
        s.push(';');
    }
    let _ = s.write_fmt(entry);
}

impl OffsetInfos {
    /// One queue read: where it started and the offsets it returned.
    pub fn add_read(&mut self, ty: i32, queue_id: i32, start: i64, offsets: &[i64]) {
        push_entry(&mut self.start, format_args!("{ty} {queue_id} {start}"));
        let list: Vec<String> = offsets.iter().map(i64::to_string).collect();
        push_entry(
            &mut self.msgs,
            format_args!("{ty} {queue_id} {}", list.join(",")),
        );
    }

    /// Consume counts of an orderly read: one entry per message delivered
    /// before (count above 0, as `ConsumerOrderInfoManager` keeps them) and
    /// the queue's smallest.
    pub fn add_order_counts(&mut self, ty: i32, queue_id: i32, counts: &[(i64, i32)]) {
        for (offset, c) in counts.iter().filter(|(_, c)| *c > 0) {
            push_entry(
                &mut self.order_counts,
                format_args!("{ty} qo{queue_id}%{offset} {c}"),
            );
        }
        let min = counts.iter().map(|(_, c)| *c).min().unwrap_or(0);
        push_entry(
            &mut self.order_counts,
            format_args!("{ty} {queue_id} {min}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_round_trip_and_proxy_form() {
        let h = Handle::parse("100 1718000000000 60000 3 0 broker-a 1 101 482193").unwrap();
        assert_eq!(h.ck_start_offset, 100);
        assert_eq!(h.queue_offset, Some(101));
        assert_eq!(h.commit_log_offset, Some(482193));
        assert_eq!(h.next_visible(), 1718000060000);
        assert_eq!(h.render(), "100 1718000000000 60000 3 0 broker-a 1 101");
        let seven = Handle::parse("5 1 2 0 1 b 3").unwrap();
        assert_eq!(seven.queue_offset, None);
        assert!(Handle::parse("1 2 3").is_err());
        assert!(Handle::parse("x 1 2 0 0 b 3 4").is_err());
        assert!(Handle::parse("1 1 2 0 7 b 3 4").is_err());
    }

    #[test]
    fn retry_topic_names() {
        assert_eq!(retry_topic_v1("g", "T"), "%RETRY%g_T");
        assert_eq!(classify("%RETRY%g_T", "g"), (TOPIC_RETRY_V1, "T".into()));
        assert_eq!(classify("%RETRY%g+T", "g"), (TOPIC_RETRY_V2, "T".into()));
        assert_eq!(classify("T", "g"), (TOPIC_NORMAL, "T".into()));
        assert_eq!(real_topic("T", "g", 1), "%RETRY%g_T");
    }

    #[test]
    fn records_use_rocketmq_field_names() {
        let ck = CheckPoint {
            start_offset: 10,
            pop_time: 5,
            invisible_ms: 60000,
            bitmap: 0,
            num: 2,
            queue_id: 1,
            topic: "T".into(),
            group: "g".into(),
            revive_offset: 0,
            deltas: vec![0, 2],
            broker_name: "b".into(),
            re_put: None,
        };
        let j = serde_json::to_value(&ck).unwrap();
        for k in ["so", "pt", "it", "bm", "n", "q", "t", "c", "ro", "d", "bn"] {
            assert!(j.get(k).is_some(), "{k}");
        }
        assert_eq!(ck.offset_of(1), Some(12));
        assert_eq!(ck.index_of(12), Some(1));
        let ack: AckRecord =
            serde_json::from_str(r#"{"ao":12,"so":10,"c":"g","t":"T","q":1,"pt":5,"bn":"b"}"#)
                .unwrap();
        assert_eq!(ack.key(), ck.key());
        assert_eq!(ack.offsets(), vec![12]);
    }

    #[test]
    fn batch_ack_bits_are_java_bitset_bytes() {
        let bits = BatchAckEntry::encode_bits(100, &[100, 102, 109]);
        let e = BatchAckEntry {
            group: "g".into(),
            topic: "T".into(),
            retry: "0".into(),
            start_offset: 100,
            queue_id: 0,
            revive_qid: 0,
            pop_time: 1,
            invisible_ms: 1,
            bits,
        };
        assert_eq!(e.offsets().unwrap(), vec![100, 102, 109]);
        let body: BatchAckBody = serde_json::from_str(
            r#"{"brokerName":"b","acks":[{"consumerGroup":"g","topic":"T","retry":"0","startOffset":1,"queueId":0,"reviveQueueId":0,"popTime":1,"invisibleTime":1,"bitSet":"AQ=="}]}"#,
        )
        .unwrap();
        assert_eq!(body.acks[0].offsets().unwrap(), vec![1]);
    }

    #[test]
    fn offset_infos() {
        let mut i = OffsetInfos::default();
        i.add_read(0, 1, 100, &[100, 101]);
        i.add_read(1, 0, 7, &[7]);
        assert_eq!(i.start, "0 1 100;1 0 7");
        assert_eq!(i.msgs, "0 1 100,101;1 0 7");
        i.add_order_counts(0, 1, &[(100, 2), (101, 1)]);
        assert_eq!(i.order_counts, "0 qo1%100 2;0 qo1%101 1;0 1 1");
        let mut j = OffsetInfos::default();
        j.add_order_counts(0, 1, &[(100, 1), (101, 0)]);
        assert_eq!(j.order_counts, "0 qo1%100 1;0 1 0");
    }
}
