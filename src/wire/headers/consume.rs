//! Headers of retry, transactions and consumer administration (codes 36, 37,
//! 39, 203, 207, 208, 220, 222, 307).

crate::ext_header! {
    /// CONSUMER_SEND_MSG_BACK (36).
    pub struct ConsumerSendMsgBackRequestHeader {
        req offset: i64 = "offset",
        req group: String = "group",
        def delay_level: i32 = "delayLevel",
        opt origin_msg_id: String = "originMsgId",
        opt origin_topic: String = "originTopic",
        opt unit_mode: bool = "unitMode",
        opt max_reconsume_times: i32 = "maxReconsumeTimes",
    }
}

crate::ext_header! {
    /// END_TRANSACTION (37).
    pub struct EndTransactionRequestHeader {
        opt topic: String = "topic",
        def producer_group: String = "producerGroup",
        def tran_state_table_offset: i64 = "tranStateTableOffset",
        req commit_log_offset: i64 = "commitLogOffset",
        req commit_or_rollback: i32 = "commitOrRollback",
        opt from_transaction_check: bool = "fromTransactionCheck",
        def msg_id: String = "msgId",
        opt transaction_id: String = "transactionId",
    }
}

crate::ext_header! {
    /// CHECK_TRANSACTION_STATE (39), broker → producer.
    pub struct CheckTransactionStateRequestHeader {
        opt topic: String = "topic",
        req tran_state_table_offset: i64 = "tranStateTableOffset",
        req commit_log_offset: i64 = "commitLogOffset",
        opt msg_id: String = "msgId",
        opt transaction_id: String = "transactionId",
        opt offset_msg_id: String = "offsetMsgId",
        opt broker_name: String = "bname",
    }
}

crate::ext_header! {
    /// DELETE_SUBSCRIPTIONGROUP (207).
    pub struct DeleteSubscriptionGroupRequestHeader {
        req group_name: String = "groupName",
        opt clean_offset: bool = "cleanOffset",
    }
}

crate::ext_header! {
    /// GET_CONSUME_STATS (208).
    pub struct GetConsumeStatsRequestHeader {
        req consumer_group: String = "consumerGroup",
        opt topic: String = "topic",
    }
}

crate::ext_header! {
    /// GET_CONSUMER_RUNNING_INFO (307).
    pub struct GetConsumerRunningInfoRequestHeader {
        req consumer_group: String = "consumerGroup",
        req client_id: String = "clientId",
        opt jstack_enable: bool = "jstackEnable",
    }
}

crate::ext_header! {
    /// INVOKE_BROKER_TO_RESET_OFFSET (222) and RESET_CONSUMER_CLIENT_OFFSET (220).
    pub struct ResetOffsetRequestHeader {
        req topic: String = "topic",
        req group: String = "group",
        def timestamp: i64 = "timestamp",
        def is_force: bool = "isForce",
        opt queue_id: i32 = "queueId",
        opt offset: i64 = "offset",
    }
}

crate::ext_header! {
    /// CONSUME_MESSAGE_DIRECTLY (309): admin → broker, and broker → consumer
    /// (`ConsumeMessageDirectlyResultRequestHeader`).
    pub struct ConsumeMessageDirectlyRequestHeader {
        req consumer_group: String = "consumerGroup",
        opt client_id: String = "clientId",
        opt msg_id: String = "msgId",
        opt broker_name: String = "brokerName",
        opt topic: String = "topic",
        opt topic_sys_flag: i32 = "topicSysFlag",
        opt group_sys_flag: i32 = "groupSysFlag",
    }
}
