//! Consumer offsets and queue offsets (codes 14, 15, 29–32).

crate::ext_header! {
    pub struct QueryConsumerOffsetRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        opt set_zero_if_not_found: bool = "setZeroIfNotFound",
    }
}

crate::ext_header! {
    pub struct UpdateConsumerOffsetRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req commit_offset: i64 = "commitOffset",
    }
}

crate::ext_header! {
    /// Shared by GET_MAX_OFFSET, GET_MIN_OFFSET, GET_EARLIEST_MSG_STORETIME.
    pub struct QueueRequestHeader {
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        opt committed: bool = "committed",
    }
}

crate::ext_header! {
    pub struct OffsetResponseHeader {
        req offset: i64 = "offset",
    }
}

crate::ext_header! {
    pub struct TimestampResponseHeader {
        req timestamp: i64 = "timestamp",
    }
}

crate::ext_header! {
    pub struct SearchOffsetRequestHeader {
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req timestamp: i64 = "timestamp",
        opt boundary_type: String = "boundaryType",
    }
}
