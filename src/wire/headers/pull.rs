//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361).

crate::ext_header! {
    pub struct PullMessageRequestHeader {
        def consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req queue_offset: i64 = "queueOffset",
        def max_msg_nums: i32 = "maxMsgNums",
        def sys_flag: i32 = "sysFlag",
        def commit_offset: i64 = "commitOffset",
        def suspend_timeout_millis: i64 = "suspendTimeoutMillis",
        opt subscription: String = "subscription",
        def sub_version: i64 = "subVersion",
        opt expression_type: String = "expressionType",
        opt max_msg_bytes: i32 = "maxMsgBytes",
        opt request_source: i32 = "requestSource",
        opt broker_name: String = "bname",
    }
}

crate::ext_header! {
    pub struct PullMessageResponseHeader {
        req suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        req next_begin_offset: i64 = "nextBeginOffset",
        req min_offset: i64 = "minOffset",
        req max_offset: i64 = "maxOffset",
        opt offset_delta: i64 = "offsetDelta",
        opt topic_sys_flag: i32 = "topicSysFlag",
        opt group_sys_flag: i32 = "groupSysFlag",
        opt forbidden_type: i32 = "forbiddenType",
    }
}

/// `PullSysFlag` bits.
pub mod pull_flag {
    pub const COMMIT_OFFSET: i32 = 0x1;
    pub const SUSPEND: i32 = 0x2;
    pub const SUBSCRIPTION: i32 = 0x4;
    pub const CLASS_FILTER: i32 = 0x8;
    pub const LITE_PULL: i32 = 0x10;
}
