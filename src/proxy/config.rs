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
    /// Honour `auto_renew` receives of push consumers: the proxy keeps
    /// their messages invisible until acked (`ReceiptHandleProcessor`).
    pub enable_proxy_auto_renew: bool,
    /// Renew handles that expire within this long.
    pub renew_ahead_time_millis: i64,
    /// How often the renew task runs.
    pub renew_schedule_period_millis: i64,
    /// Renew for at most this long after the receive.
    pub renew_max_time_millis: i64,
    /// Failed renewals of one handle before it is given up.
    pub max_renew_retry_times: u32,
    /// Invisible time left to the handles of a client that went away.
    pub invisible_time_millis_when_clear: i64,
    /// A multi-entry AckMessage as one BATCH_ACK_MESSAGE per broker.
    pub enable_batch_ack: bool,
    /// Authentication / authorization in CLUSTER mode (the same JSON feeds
    /// RocketMQ's `AuthConfig`): users and ACLs come from the brokers.
    pub authentication_enabled: bool,
    pub authorization_enabled: bool,
    /// `{"accessKey":..,"secretKey":..}`: what the proxy signs its own
    /// requests to the brokers with.
    pub inner_client_authentication_credentials: String,
    /// Comma-separated request codes never authenticated / authorized.
    pub authentication_whitelist: String,
    pub authorization_whitelist: String,
    /// How often the users and ACLs are read again from the brokers.
    pub user_cache_refresh_seconds: u64,
    pub acl_cache_refresh_seconds: u64,
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
            enable_proxy_auto_renew: true,
            renew_ahead_time_millis: 10_000,
            renew_schedule_period_millis: 5_000,
            renew_max_time_millis: 3 * 3600 * 1000,
            max_renew_retry_times: 3,
            invisible_time_millis_when_clear: 1_000,
            enable_batch_ack: false,
            authentication_enabled: false,
            authorization_enabled: false,
            inner_client_authentication_credentials: String::new(),
            authentication_whitelist: String::new(),
            authorization_whitelist: String::new(),
            user_cache_refresh_seconds: 10,
            acl_cache_refresh_seconds: 10,
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
