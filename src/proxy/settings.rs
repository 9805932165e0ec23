//! What the proxy knows of each gRPC client, keyed by `x-mq-client-id`:
//! its Settings (from Telemetry), the open Telemetry stream (the way back
//! for transaction checks) and when it was last heard of
//! (`GrpcClientSettingsManager`, `GrpcClientChannel` in RocketMQ's proxy).
//! Also the server half of the Settings exchange: the client's Settings
//! echoed with what the server decides (backoff, limits, group order).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

use super::backend::GroupSettings;
use super::config::ProxyConfig;
use super::convert::ms_dur;
use super::pb::{self, retry_policy::Strategy, settings::PubSub, ClientType};
use crate::wire::now_ms;

/// Server → client telemetry commands.
pub type TelemetryTx = mpsc::Sender<Result<pb::TelemetryCommand, tonic::Status>>;

/// One client as the proxy sees it.
#[derive(Debug)]
pub struct ClientState {
    pub settings: Option<pb::Settings>,
    pub telemetry: Option<(u64, TelemetryTx)>,
    pub last_seen: i64,
}

/// Every known client. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    inner: Arc<Mutex<HashMap<String, ClientState>>>,
}

impl Clients {
    fn with<R>(&self, id: &str, f: impl FnOnce(&mut ClientState) -> R) -> R {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let st = m.entry(id.to_owned()).or_insert_with(|| ClientState {
            settings: None,
            telemetry: None,
            last_seen: now_ms(),
        });
        st.last_seen = now_ms();
        f(st)
    }

    pub fn set_settings(&self, id: &str, s: pb::Settings) {
        self.with(id, |st| st.settings = Some(s));
    }

    pub fn settings(&self, id: &str) -> Option<pb::Settings> {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.get(id).and_then(|s| s.settings.clone())
    }

    pub fn touch(&self, id: &str) {
        self.with(id, |_| ());
    }

    pub fn attach(&self, id: &str, stream: u64, tx: TelemetryTx) {
        self.with(id, |st| st.telemetry = Some((stream, tx)));
    }

    /// The stream ended: forget it (if it is still the current one).
    pub fn detach(&self, id: &str, stream: u64) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(st) = m.get_mut(id) {
            if st.telemetry.as_ref().is_some_and(|(s, _)| *s == stream) {
                st.telemetry = None;
            }
        }
    }

    pub fn telemetry(&self, id: &str) -> Option<TelemetryTx> {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.get(id)
            .and_then(|s| s.telemetry.as_ref().map(|(_, t)| t.clone()))
    }

    pub fn remove(&self, id: &str) -> Option<ClientState> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    /// Drops clients silent for longer than `expire_ms` without a stream.
    pub fn expire(&self, expire_ms: i64) -> Vec<String> {
        let now = now_ms();
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<String> = m
            .iter()
            .filter(|(_, s)| s.telemetry.is_none() && now - s.last_seen > expire_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            m.remove(k);
        }
        gone
    }
}

/// RocketMQ's default customized retry delays (the delay levels 3..18).
const RETRY_DELAYS_S: [i64; 18] = [
    1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200,
];

/// The producer half: backoff and publishing limits.
pub fn producer_reply(mut s: pb::Settings, cfg: &ProxyConfig) -> pb::Settings {
    s.backoff_policy = Some(pb::RetryPolicy {
        max_attempts: cfg.grpc_client_producer_max_attempts,
        strategy: Some(Strategy::ExponentialBackoff(pb::ExponentialBackoff {
            initial: Some(ms_dur(cfg.grpc_client_producer_backoff_initial_millis)),
            max: Some(ms_dur(cfg.grpc_client_producer_backoff_max_millis)),
            multiplier: cfg.grpc_client_producer_backoff_multiplier,
        })),
    });
    if let Some(PubSub::Publishing(p)) = &mut s.pub_sub {
        p.max_body_size = if cfg.max_message_size > 0 {
            cfg.max_message_size.min(i32::MAX as i64) as i32
        } else {
            i32::MAX
        };
        p.validate_message_type = cfg.enable_topic_message_type_check;
    }
    s.metric = Some(pb::Metric {
        on: false,
        endpoints: None,
    });
    s
}

/// The consumer half: the group's retry policy and order, batch and poll.
pub fn consumer_reply(mut s: pb::Settings, cfg: &ProxyConfig, g: GroupSettings) -> pb::Settings {
    s.backoff_policy = Some(pb::RetryPolicy {
        max_attempts: g.retry_max_times + 1,
        strategy: Some(Strategy::CustomizedBackoff(pb::CustomizedBackoff {
            next: RETRY_DELAYS_S.iter().map(|s| ms_dur(s * 1000)).collect(),
        })),
    });
    if let Some(PubSub::Subscription(sub)) = &mut s.pub_sub {
        sub.fifo = Some(g.orderly);
        sub.receive_batch_size = Some(cfg.grpc_client_consumer_long_polling_batch_size);
        sub.long_polling_timeout = Some(ms_dur(
            cfg.grpc_client_consumer_max_long_polling_timeout_millis,
        ));
    }
    s.metric = Some(pb::Metric {
        on: false,
        endpoints: None,
    });
    s
}

/// The client's kind from its Settings.
pub fn client_type(s: &pb::Settings) -> ClientType {
    s.client_type
        .and_then(|t| ClientType::try_from(t).ok())
        .unwrap_or(ClientType::Unspecified)
}

/// A consumer's group name from its Settings.
pub fn consumer_group(s: &pb::Settings) -> Option<&str> {
    match &s.pub_sub {
        Some(PubSub::Subscription(sub)) => sub.group.as_ref().map(|g| g.name.as_str()),
        _ => None,
    }
}

/// A producer's topics from its Settings.
pub fn publishing_topics(s: &pb::Settings) -> Vec<String> {
    match &s.pub_sub {
        Some(PubSub::Publishing(p)) => p.topics.iter().map(|t| t.name.clone()).collect(),
        _ => Vec::new(),
    }
}

/// `backoff_policy.max_attempts` as the server set it (1 + retries).
pub fn max_attempts(s: &pb::Settings) -> i32 {
    s.backoff_policy.as_ref().map_or(17, |b| b.max_attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_get_exponential_backoff_and_a_body_limit() {
        let s = pb::Settings {
            client_type: Some(ClientType::Producer as i32),
            pub_sub: Some(PubSub::Publishing(pb::Publishing::default())),
            ..Default::default()
        };
        let r = producer_reply(s, &ProxyConfig::default());
        let b = r.backoff_policy.unwrap();
        assert_eq!(b.max_attempts, 3);
        assert!(matches!(b.strategy, Some(Strategy::ExponentialBackoff(_))));
        let Some(PubSub::Publishing(p)) = r.pub_sub else {
            panic!()
        };
        assert_eq!(p.max_body_size, 4 * 1024 * 1024);
        assert!(p.validate_message_type);
    }

    #[test]
    fn consumers_get_the_group_retry_policy_and_poll_settings() {
        let s = pb::Settings {
            client_type: Some(ClientType::SimpleConsumer as i32),
            pub_sub: Some(PubSub::Subscription(pb::Subscription::default())),
            ..Default::default()
        };
        let g = GroupSettings {
            retry_max_times: 16,
            orderly: true,
        };
        let r = consumer_reply(s, &ProxyConfig::default(), g);
        assert_eq!(max_attempts(&r), 17);
        let Some(PubSub::Subscription(sub)) = r.pub_sub else {
            panic!()
        };
        assert_eq!(sub.fifo, Some(true));
        assert_eq!(sub.receive_batch_size, Some(32));
        assert_eq!(sub.long_polling_timeout.unwrap().seconds, 20);
    }
}
