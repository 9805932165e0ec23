//! The proxy's settings: RocketMQ's `rmq-proxy.json` keys (`ProxyConfig`
//! field names). Unknown keys are ignored, as the Java proxy does with
//! fields it does not have.

use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProxyConfig {
    /// `LOCAL` or `CLUSTER`.
    pub proxy_mode: String,
    #[serde(rename = "rocketMQClusterName")]
    pub rocketmq_cluster_name: String,
    /// `host:port;host:port`.
    pub namesrv_addr: String,
    pub grpc_server_port: u16,
    /// QueryRoute keeps the client's port instead of `grpcServerPort`.
    pub use_endpoint_port_from_request: bool,
    /// Max body bytes (≤ 0: unlimited); sent as `publishing.max_body_size`.
    pub max_message_size: i64,
    pub enable_message_body_empty_check: bool,
    pub max_user_property_size: usize,
    pub user_property_max_num: usize,
    pub max_message_group_size: usize,
    pub default_invisible_time_mills: i64,
    pub min_invisible_time_mills_for_recv: i64,
    pub max_invisible_time_mills: i64,
    pub max_delay_time_mills: i64,
    pub max_transaction_recovery_second: i64,
    pub enable_topic_message_type_check: bool,
    pub grpc_client_producer_max_attempts: i32,
    pub grpc_client_producer_backoff_initial_millis: i64,
    pub grpc_client_producer_backoff_max_millis: i64,
    pub grpc_client_producer_backoff_multiplier: f32,
    pub grpc_client_consumer_min_long_polling_timeout_millis: i64,
    pub grpc_client_consumer_max_long_polling_timeout_millis: i64,
    pub grpc_client_consumer_long_polling_batch_size: i32,
    /// How long half-message data is kept for EndTransaction.
    pub transaction_data_expire_millis: i64,
    /// A client silent this long is dropped.
    pub channel_expired_timeout: i64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            proxy_mode: "CLUSTER".into(),
            rocketmq_cluster_name: "DefaultCluster".into(),
            namesrv_addr: std::env::var("NAMESRV_ADDR").unwrap_or_default(),
            grpc_server_port: 8081,
            use_endpoint_port_from_request: false,
            max_message_size: 4 * 1024 * 1024,
            enable_message_body_empty_check: true,
            max_user_property_size: 16 * 1024,
            user_property_max_num: 128,
            max_message_group_size: 64,
            default_invisible_time_mills: 60_000,
            min_invisible_time_mills_for_recv: 10_000,
            max_invisible_time_mills: 12 * 3600 * 1000,
            max_delay_time_mills: 24 * 3600 * 1000,
            max_transaction_recovery_second: 3600,
            enable_topic_message_type_check: true,
            grpc_client_producer_max_attempts: 3,
            grpc_client_producer_backoff_initial_millis: 10,
            grpc_client_producer_backoff_max_millis: 1000,
            grpc_client_producer_backoff_multiplier: 2.0,
            grpc_client_consumer_min_long_polling_timeout_millis: 5_000,
            grpc_client_consumer_max_long_polling_timeout_millis: 20_000,
            grpc_client_consumer_long_polling_batch_size: 32,
            transaction_data_expire_millis: 30_000,
            channel_expired_timeout: 120_000,
        }
    }
}

impl ProxyConfig {
    /// Reads an `rmq-proxy.json`; an empty or missing file is an error, as
    /// in the Java proxy.
    pub fn load(path: &Path) -> Result<ProxyConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if text.trim().is_empty() {
            return Err(format!("{} is empty", path.display()));
        }
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmq_proxy_json_keys_override_the_defaults() {
        let c: ProxyConfig = serde_json::from_str(
            r#"{"rocketMQClusterName":"C1","grpcServerPort":18081,"maxMessageSize":1024,"unknownKey":1}"#,
        )
        .unwrap();
        assert_eq!(c.rocketmq_cluster_name, "C1");
        assert_eq!(c.grpc_server_port, 18081);
        assert_eq!(c.max_message_size, 1024);
        assert_eq!(c.grpc_client_consumer_long_polling_batch_size, 32);
    }
}
