//! Message queries (`QueryMessageProcessor`): QUERY_MESSAGE (12) and
//! VIEW_MESSAGE_BY_ID (33).

/// Extra ext field of QUERY_MESSAGE: `"true"` when `key` is a `UNIQ_KEY`.
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

crate::ext_header! {
    pub struct QueryMessageRequestHeader {
        req topic: String = "topic",
        req key: String = "key",
        req max_num: i32 = "maxNum",
        req begin_timestamp: i64 = "beginTimestamp",
        req end_timestamp: i64 = "endTimestamp",
    }
}

crate::ext_header! {
    pub struct QueryMessageResponseHeader {
        req index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        req index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    }
}

crate::ext_header! {
    pub struct ViewMessageRequestHeader {
        opt topic: String = "topic",
        req offset: i64 = "offset",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::headers::CommandHeader;

    #[test]
    fn round_trip() {
        let h = QueryMessageRequestHeader {
            topic: "T".into(),
            key: "k".into(),
            max_num: 32,
            begin_timestamp: 0,
            end_timestamp: i64::MAX,
        };
        let ext = h.to_ext();
        assert_eq!(ext.get("maxNum"), Some("32"));
        assert_eq!(QueryMessageRequestHeader::from_ext(&ext).unwrap(), h);
        let v = ViewMessageRequestHeader::from_ext(&h.to_ext());
        assert!(v.is_err(), "offset is required");
    }
}
