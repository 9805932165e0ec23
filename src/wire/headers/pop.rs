//! POP consumption (codes 200050–200055, 200151): RocketMQ 5.x's
//! `PopMessageRequestHeader`, `PopMessageResponseHeader`,
//! `AckMessageRequestHeader`, `ChangeInvisibleTimeRequestHeader` /
//! `ResponseHeader`, `PeekMessageRequestHeader`,
//! `NotificationRequestHeader` / `ResponseHeader`,
//! `PollingInfoRequestHeader` / `ResponseHeader`.

crate::ext_header! {
    pub struct PopMessageRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req max_msg_nums: i32 = "maxMsgNums",
        req invisible_time: i64 = "invisibleTime",
        req poll_time: i64 = "pollTime",
        def born_time: i64 = "bornTime",
        def init_mode: i32 = "initMode",
        opt exp_type: String = "expType",
        opt exp: String = "exp",
        opt order: bool = "order",
        opt attempt_id: String = "attemptId",
    }
}

crate::ext_header! {
    pub struct PopMessageResponseHeader {
        req pop_time: i64 = "popTime",
        req invisible_time: i64 = "invisibleTime",
        req revive_qid: i32 = "reviveQid",
        req rest_num: i64 = "restNum",
        opt start_offset_info: String = "startOffsetInfo",
        opt msg_offset_info: String = "msgOffsetInfo",
        opt order_count_info: String = "orderCountInfo",
    }
}

crate::ext_header! {
    pub struct AckMessageRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req extra_info: String = "extraInfo",
        req offset: i64 = "offset",
    }
}

crate::ext_header! {
    pub struct ChangeInvisibleTimeRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req extra_info: String = "extraInfo",
        req offset: i64 = "offset",
        req invisible_time: i64 = "invisibleTime",
    }
}

crate::ext_header! {
    pub struct ChangeInvisibleTimeResponseHeader {
        req pop_time: i64 = "popTime",
        req invisible_time: i64 = "invisibleTime",
        req revive_qid: i32 = "reviveQid",
    }
}

crate::ext_header! {
    pub struct PeekMessageRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req max_msg_nums: i32 = "maxMsgNums",
    }
}

crate::ext_header! {
    pub struct RestNumResponseHeader {
        req rest_num: i64 = "restNum",
    }
}

crate::ext_header! {
    pub struct NotificationRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req poll_time: i64 = "pollTime",
        def born_time: i64 = "bornTime",
        opt order: bool = "order",
        opt attempt_id: String = "attemptId",
    }
}

crate::ext_header! {
    pub struct NotificationResponseHeader {
        req has_msg: bool = "hasMsg",
        def polling_full: bool = "pollingFull",
    }
}

crate::ext_header! {
    pub struct PollingInfoRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
    }
}

crate::ext_header! {
    pub struct PollingInfoResponseHeader {
        req polling_num: i32 = "pollingNum",
    }
}
