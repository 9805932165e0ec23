//! Topic administration on the broker (codes 17, 215, 351).

crate::ext_header! {
    pub struct CreateTopicRequestHeader {
        req topic: String = "topic",
        def default_topic: String = "defaultTopic",
        req read_queue_nums: i32 = "readQueueNums",
        req write_queue_nums: i32 = "writeQueueNums",
        req perm: i32 = "perm",
        opt topic_filter_type: String = "topicFilterType",
        opt topic_sys_flag: i32 = "topicSysFlag",
        opt order: bool = "order",
        opt attributes: String = "attributes",
        opt force: bool = "force",
    }
}

crate::ext_header! {
    pub struct TopicOnlyHeader {
        req topic: String = "topic",
    }
}

crate::ext_header! {
    pub struct InjectFaultHeader {
        req target: String = "target",
        req kind: String = "kind",
        opt topic: String = "topic",
        opt queue_id: i32 = "queueId",
    }
}
