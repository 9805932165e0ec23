//! Client registration headers (codes 34, 35, 38, 40).

crate::ext_header! {
    pub struct UnregisterClientRequestHeader {
        req client_id: String = "clientID",
        opt producer_group: String = "producerGroup",
        opt consumer_group: String = "consumerGroup",
    }
}

crate::ext_header! {
    /// GET_CONSUMER_LIST_BY_GROUP and NOTIFY_CONSUMER_IDS_CHANGED.
    pub struct ConsumerGroupHeader {
        req consumer_group: String = "consumerGroup",
    }
}
