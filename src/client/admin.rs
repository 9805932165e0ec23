//! Administration calls (`MQAdminImpl`, `DefaultMQAdminExt`): create and delete
//! topics on brokers (one broker, or every master of a cluster found via the
//! name server), cluster info and the topic list from the name server.
//! Consumer-group administration is in [`super::group_admin`].

use crate::wire::bodies::{ClusterInfo, TopicList};
use crate::wire::codes::{request, response};
use crate::wire::headers::admin::{CreateTopicRequestHeader, TopicOnlyHeader};
use crate::wire::headers::namesrv::TopicHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::json::from_fastjson;
use crate::wire::{RemotingCommand, WireError};

use super::remoting::{expect_code, ClientError};
use super::route::{Routes, AUTO_CREATE_TOPIC};

/// Where a topic is created or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicTarget {
    /// One broker, by address.
    Broker(String),
    /// Every master of a cluster, found with GET_BROKER_CLUSTER_INFO.
    Cluster(String),
}

/// Admin client over the shared [`Routes`] context.
#[derive(Clone)]
pub struct Admin {
    routes: Routes,
}

impl Admin {
    pub fn new(namesrv: &str) -> Self {
        Admin {
            routes: Routes::connect(namesrv),
        }
    }

    pub fn with_routes(routes: Routes) -> Self {
        Admin { routes }
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Creates (or updates) `topic` with `queue_nums` read and write queues.
    /// Returns the broker addresses it was created on.
    pub async fn create_topic(
        &self,
        target: &TopicTarget,
        topic: &str,
        queue_nums: i32,
        perm: i32,
    ) -> Result<Vec<String>, ClientError> {
        self.create_topic_rw(target, topic, queue_nums, queue_nums, perm, false)
            .await
    }

    /// Creates (or updates) `topic` with separate read / write queue counts.
    pub async fn create_topic_rw(
        &self,
        target: &TopicTarget,
        topic: &str,
        read: i32,
        write: i32,
        perm: i32,
        order: bool,
    ) -> Result<Vec<String>, ClientError> {
        let addrs = self.target_addrs(target).await?;
        let h = CreateTopicRequestHeader {
            topic: topic.to_string(),
            default_topic: AUTO_CREATE_TOPIC.to_string(),
            read_queue_nums: read,
            write_queue_nums: write,
            perm,
            topic_filter_type: Some("SINGLE_TAG".into()),
            topic_sys_flag: Some(0),
            order: Some(order),
            attributes: None,
            force: None,
        };
        for addr in &addrs {
            let mut cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC);
            cmd.ext = h.to_ext();
            self.broker_call(addr, cmd).await?;
        }
        self.routes.invalidate(topic);
        Ok(addrs)
    }

    /// Deletes `topic` from the target brokers, then from every name server.
    pub async fn delete_topic(&self, target: &TopicTarget, topic: &str) -> Result<(), ClientError> {
        for addr in self.target_addrs(target).await? {
            let mut cmd = RemotingCommand::request(request::DELETE_TOPIC_IN_BROKER);
            cmd.ext = TopicOnlyHeader {
                topic: topic.to_string(),
            }
            .to_ext();
            self.broker_call(&addr, cmd).await?;
        }
        let cluster = match target {
            TopicTarget::Cluster(c) => Some(c.clone()),
            TopicTarget::Broker(_) => None,
        };
        let header = TopicHeader {
            topic: topic.to_string(),
            accept_standard_json_only: None,
            cluster_name: cluster,
        };
        for ns in self.routes.namesrv_addrs() {
            let mut cmd = RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV);
            cmd.ext = header.to_ext();
            self.broker_call(ns, cmd).await?;
        }
        self.routes.invalidate(topic);
        Ok(())
    }

    /// GET_BROKER_CLUSTER_INFO from a name server.
    pub async fn cluster_info(&self) -> Result<ClusterInfo, ClientError> {
        let resp = self
            .routes
            .invoke_namesrv(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO))
            .await?;
        let resp = expect_code(resp, &[response::SUCCESS])?;
        from_fastjson(&resp.body_bytes())
            .map_err(|e| WireError::BadBody(format!("ClusterInfo: {e}")).into())
    }

    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
    pub async fn topic_list(&self) -> Result<Vec<String>, ClientError> {
        let resp = self
            .routes
            .invoke_namesrv(RemotingCommand::request(
                request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
            ))
            .await?;
        let resp = expect_code(resp, &[response::SUCCESS])?;
        let list: TopicList = from_fastjson(&resp.body_bytes())
            .map_err(|e| WireError::BadBody(format!("TopicList: {e}")))?;
        Ok(list.topic_list)
    }

    /// Master addresses of the target.
    pub async fn target_addrs(&self, target: &TopicTarget) -> Result<Vec<String>, ClientError> {
        match target {
            TopicTarget::Broker(addr) => Ok(vec![addr.clone()]),
            TopicTarget::Cluster(name) => {
                let info = self.cluster_info().await?;
                let names = info
                    .cluster_addr_table
                    .get(name)
                    .ok_or_else(|| ClientError::NoRoute(format!("cluster {name} not found")))?;
                let addrs: Vec<String> = names
                    .iter()
                    .filter_map(|b| info.broker_addr_table.get(b))
                    .filter_map(|bd| bd.master_addr().map(str::to_owned))
                    .collect();
                if addrs.is_empty() {
                    return Err(ClientError::NoRoute(format!(
                        "cluster {name} has no master"
                    )));
                }
                Ok(addrs)
            }
        }
    }

    async fn broker_call(
        &self,
        addr: &str,
        cmd: RemotingCommand,
    ) -> Result<RemotingCommand, ClientError> {
        let resp = self
            .routes
            .client()
            .invoke(addr, cmd, self.routes.default_timeout())
            .await?;
        expect_code(resp, &[response::SUCCESS])
    }
}
