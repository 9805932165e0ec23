//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320).

use crate::wire::command::ExtFields;
use crate::wire::WireError;

crate::ext_header! {
    /// `SendMessageRequestHeader` with its long key names.
    pub struct SendMessageRequestHeader borrowed as SendMessageRequestHeaderRef {
        def producer_group: String = "producerGroup",
        req topic: String = "topic",
        def default_topic: String = "defaultTopic",
        def default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        def queue_id: i32 = "queueId",
        def sys_flag: i32 = "sysFlag",
        def born_timestamp: i64 = "bornTimestamp",
        def flag: i32 = "flag",
        opt properties: String = "properties",
        opt reconsume_times: i32 = "reconsumeTimes",
        opt unit_mode: bool = "unitMode",
        opt batch: bool = "batch",
        opt max_reconsume_times: i32 = "maxReconsumeTimes",
        opt broker_name: String = "bname",
    }
}

crate::ext_header! {
    /// `SendMessageRequestHeaderV2`: the same fields under one-letter keys.
    pub struct SendMessageRequestHeaderV2 borrowed as SendMessageRequestHeaderV2Ref {
        def a: String = "a",
        req b: String = "b",
        def c: String = "c",
        def d: i32 = "d",
        def e: i32 = "e",
        def f: i32 = "f",
        def g: i64 = "g",
        def h: i32 = "h",
        opt i: String = "i",
        opt j: i32 = "j",
        opt k: bool = "k",
        opt l: i32 = "l",
        opt m: bool = "m",
        opt n: String = "n",
    }
}

impl SendMessageRequestHeader {
    /// Reads either key dialect, by request code.
    pub fn decode(code: i32, ext: &ExtFields) -> Result<Self, WireError> {
        SendMessageRequestHeaderRef::decode(code, ext).map(|h| h.to_owned_header())
    }

    pub fn to_v2(&self) -> SendMessageRequestHeaderV2 {
        SendMessageRequestHeaderV2 {
            a: self.producer_group.clone(),
            b: self.topic.clone(),
            c: self.default_topic.clone(),
            d: self.default_topic_queue_nums,
            e: self.queue_id,
            f: self.sys_flag,
            g: self.born_timestamp,
            h: self.flag,
            i: self.properties.clone(),
            j: self.reconsume_times,
            k: self.unit_mode,
            l: self.max_reconsume_times,
            m: self.batch,
            n: self.broker_name.clone(),
        }
    }
}

impl<'a> SendMessageRequestHeaderRef<'a> {
    /// Reads either key dialect, by request code.
    pub fn decode(code: i32, ext: &'a ExtFields) -> Result<Self, WireError> {
        if code == crate::wire::codes::request::SEND_MESSAGE {
            return Self::from_ext(ext);
        }
        let v = SendMessageRequestHeaderV2Ref::from_ext(ext)?;
        Ok(SendMessageRequestHeaderRef {
            producer_group: v.a,
            topic: v.b,
            default_topic: v.c,
            default_topic_queue_nums: v.d,
            queue_id: v.e,
            sys_flag: v.f,
            born_timestamp: v.g,
            flag: v.h,
            properties: v.i,
            reconsume_times: v.j,
            unit_mode: v.k,
            max_reconsume_times: v.l,
            batch: v.m,
            broker_name: v.n.or_else(|| ext.get("bname")),
        })
    }
}

crate::ext_header! {
    pub struct SendMessageResponseHeader {
        req msg_id: String = "msgId",
        req queue_id: i32 = "queueId",
        req queue_offset: i64 = "queueOffset",
        opt transaction_id: String = "transactionId",
        opt batch_uniq_id: String = "batchUniqId",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codes::request::{SEND_MESSAGE, SEND_MESSAGE_V2};
    use crate::wire::headers::CommandHeader;

    fn sample() -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: "PG".into(),
            topic: "T".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 3,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_123,
            flag: 0,
            properties: Some("KEYS\u{1}k\u{2}".into()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            batch: Some(true),
            max_reconsume_times: None,
            broker_name: Some("b0".into()),
        }
    }

    #[test]
    fn both_dialects_read_back_the_same_header() {
        let h = sample();
        assert_eq!(
            SendMessageRequestHeader::decode(SEND_MESSAGE, &h.to_ext()).unwrap(),
            h
        );
        assert_eq!(
            SendMessageRequestHeader::decode(SEND_MESSAGE_V2, &h.to_v2().to_ext()).unwrap(),
            h
        );
    }

    #[test]
    fn the_borrowed_header_points_into_the_fields() {
        let ext = sample().to_v2().to_ext();
        let r = SendMessageRequestHeaderRef::decode(SEND_MESSAGE_V2, &ext).unwrap();
        assert_eq!(r.topic, "T");
        assert!(std::ptr::eq(r.topic, ext.get("b").unwrap()));
        assert_eq!(r.properties, Some("KEYS\u{1}k\u{2}"));
        let mut no_topic = ext.clone();
        no_topic.remove("b");
        assert!(matches!(
            SendMessageRequestHeaderRef::decode(SEND_MESSAGE_V2, &no_topic),
            Err(WireError::MissingField("b"))
        ));
    }
}
