//! Name-server request headers (codes 100–106, 206, 216, 322, 904).

crate::ext_header! {
    pub struct TopicHeader {
        req topic: String = "topic",
        opt accept_standard_json_only: bool = "acceptStandardJsonOnly",
        opt cluster_name: String = "clusterName",
    }
}

crate::ext_header! {
    pub struct RegisterBrokerRequestHeader {
        req broker_name: String = "brokerName",
        req broker_addr: String = "brokerAddr",
        req cluster_name: String = "clusterName",
        def ha_server_addr: String = "haServerAddr",
        req broker_id: i64 = "brokerId",
        opt heartbeat_timeout_millis: i64 = "heartbeatTimeoutMillis",
        opt enable_acting_master: bool = "enableActingMaster",
        def compressed: bool = "compressed",
        def body_crc32: i32 = "bodyCrc32",
    }
}

crate::ext_header! {
    pub struct RegisterBrokerResponseHeader {
        opt ha_server_addr: String = "haServerAddr",
        opt master_addr: String = "masterAddr",
    }
}

crate::ext_header! {
    /// UNREGISTER_BROKER and QUERY_DATA_VERSION share these fields.
    pub struct BrokerIdentityHeader {
        req broker_name: String = "brokerName",
        req broker_addr: String = "brokerAddr",
        req cluster_name: String = "clusterName",
        opt broker_id: i64 = "brokerId",
    }
}

crate::ext_header! {
    pub struct QueryDataVersionResponseHeader {
        req changed: bool = "changed",
    }
}

crate::ext_header! {
    pub struct BrokerHeartbeatRequestHeader {
        req cluster_name: String = "clusterName",
        req broker_addr: String = "brokerAddr",
        req broker_name: String = "brokerName",
        opt broker_id: i64 = "brokerId",
        opt heartbeat_timeout_mills: i64 = "heartbeatTimeoutMills",
        // Controller mode (`BrokerHeartbeatRequestHeader`, code 904 at a
        // controller): the replica's last epoch, CommitLog max and confirm
        // offsets, and `brokerElectionPriority`.
        opt epoch: i32 = "epoch",
        opt max_offset: i64 = "maxOffset",
        opt confirm_offset: i64 = "confirmOffset",
        opt election_priority: i32 = "electionPriority",
    }
}

crate::ext_header! {
    pub struct KvConfigHeader {
        req namespace: String = "namespace",
        opt key: String = "key",
        opt value: String = "value",
    }
}
