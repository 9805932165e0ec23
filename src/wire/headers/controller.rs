//! Controller request and response headers (codes 1001–1013,
//! `org.apache.rocketmq.remoting.protocol.header.controller.*`). The
//! heartbeat (904) uses `namesrv::BrokerHeartbeatRequestHeader`.

crate::ext_header! {
    /// CONTROLLER_GET_METADATA_INFO response (`GetMetaDataResponseHeader`).
    pub struct GetMetaDataResponseHeader {
        def group: String = "group",
        def controller_leader_id: String = "controllerLeaderId",
        def controller_leader_address: String = "controllerLeaderAddress",
        def is_leader: bool = "isLeader",
        def peers: String = "peers",
    }
}

crate::ext_header! {
    /// CONTROLLER_GET_NEXT_BROKER_ID request (`GetNextBrokerIdRequestHeader`).
    pub struct GetNextBrokerIdRequestHeader {
        req cluster_name: String = "clusterName",
        req broker_name: String = "brokerName",
    }
}

crate::ext_header! {
    pub struct GetNextBrokerIdResponseHeader {
        def cluster_name: String = "clusterName",
        def broker_name: String = "brokerName",
        opt next_broker_id: i64 = "nextBrokerId",
    }
}

crate::ext_header! {
    /// CONTROLLER_APPLY_BROKER_ID request (`ApplyBrokerIdRequestHeader`);
    /// `registerCheckCode` is `"<brokerAddr>;<millis>"`.
    pub struct ApplyBrokerIdRequestHeader {
        req cluster_name: String = "clusterName",
        req broker_name: String = "brokerName",
        req applied_broker_id: i64 = "appliedBrokerId",
        req register_check_code: String = "registerCheckCode",
    }
}

crate::ext_header! {
    /// Response of APPLY_BROKER_ID and REGISTER_BROKER (the register reply
    /// adds the master fields when a live master exists).
    pub struct RegisterBrokerToControllerResponseHeader {
        def cluster_name: String = "clusterName",
        def broker_name: String = "brokerName",
        opt master_broker_id: i64 = "masterBrokerId",
        opt master_address: String = "masterAddress",
        opt master_epoch: i32 = "masterEpoch",
        opt sync_state_set_epoch: i32 = "syncStateSetEpoch",
    }
}

crate::ext_header! {
    /// CONTROLLER_REGISTER_BROKER request (`RegisterBrokerToControllerRequestHeader`).
    pub struct RegisterBrokerToControllerRequestHeader {
        req cluster_name: String = "clusterName",
        req broker_name: String = "brokerName",
        req broker_id: i64 = "brokerId",
        req broker_address: String = "brokerAddress",
        def invoke_time: i64 = "invokeTime",
    }
}

crate::ext_header! {
    /// CONTROLLER_GET_REPLICA_INFO request.
    pub struct GetReplicaInfoRequestHeader {
        req broker_name: String = "brokerName",
    }
}

crate::ext_header! {
    /// CONTROLLER_GET_REPLICA_INFO response (`GetReplicaInfoResponseHeader`).
    pub struct GetReplicaInfoResponseHeader {
        opt master_broker_id: i64 = "masterBrokerId",
        opt master_address: String = "masterAddress",
        opt master_epoch: i32 = "masterEpoch",
    }
}

crate::ext_header! {
    /// CONTROLLER_ALTER_SYNC_STATE_SET request; the body is the proposed
    /// `SyncStateSet`.
    pub struct AlterSyncStateSetRequestHeader {
        req broker_name: String = "brokerName",
        req master_broker_id: i64 = "masterBrokerId",
        req master_epoch: i32 = "masterEpoch",
        def invoke_time: i64 = "invokeTime",
    }
}

crate::ext_header! {
    pub struct AlterSyncStateSetResponseHeader {
        opt new_sync_state_set_epoch: i32 = "newSyncStateSetEpoch",
    }
}

crate::ext_header! {
    /// CONTROLLER_ELECT_MASTER request (`ElectMasterRequestHeader`).
    pub struct ElectMasterRequestHeader {
        req cluster_name: String = "clusterName",
        req broker_name: String = "brokerName",
        req broker_id: i64 = "brokerId",
        def designate_elect: bool = "designateElect",
        def invoke_time: i64 = "invokeTime",
    }
}

crate::ext_header! {
    /// CONTROLLER_ELECT_MASTER response, also the header of
    /// NOTIFY_BROKER_ROLE_CHANGED (`NotifyBrokerRoleChangedRequestHeader`
    /// has the same four fields).
    pub struct ElectMasterResponseHeader {
        opt master_broker_id: i64 = "masterBrokerId",
        opt master_address: String = "masterAddress",
        opt master_epoch: i32 = "masterEpoch",
        opt sync_state_set_epoch: i32 = "syncStateSetEpoch",
    }
}

crate::ext_header! {
    /// CLEAN_BROKER_DATA request (`CleanControllerBrokerDataRequestHeader`);
    /// ids as `"1;2;3"`.
    pub struct CleanBrokerDataRequestHeader {
        opt cluster_name: String = "clusterName",
        req broker_name: String = "brokerName",
        opt broker_controller_ids_to_clean: String = "brokerControllerIdsToClean",
        def is_clean_living_broker: bool = "isCleanLivingBroker",
        def invoke_time: i64 = "invokeTime",
    }
}
