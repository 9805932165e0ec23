//! JSON bodies of the core flows (`TopicRouteData`, `ClusterInfo`, `HeartbeatData`, ...): routes, cluster info,
//! broker registration, heartbeats, topic configs, and small wrappers.
//!
//! Readers are lenient (unknown fields ignored, missing ones defaulted,
//! enums accepted by name or ordinal, bare numeric keys accepted); writers
//! produce compact JSON in the Java field names.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    pub state_version: i64,
    pub timestamp: i64,
    pub counter: i64,
}

impl DataVersion {
    pub fn now() -> Self {
        DataVersion {
            state_version: 0,
            timestamp: crate::wire::now_ms(),
            counter: 0,
        }
    }
    pub fn bump(&mut self) {
        self.counter += 1;
        self.timestamp = crate::wire::now_ms();
    }
}

/// Topic permission bits (`PermName`).
pub mod perm {
    pub const PRIORITY: i32 = 8;
    pub const READ: i32 = 4;
    pub const WRITE: i32 = 2;
    pub const INHERIT: i32 = 1;
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_filter_type: String,
    pub topic_sys_flag: i32,
    pub order: bool,
    pub attributes: BTreeMap<String, String>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            topic_name: String::new(),
            read_queue_nums: 16,
            write_queue_nums: 16,
            perm: perm::READ | perm::WRITE,
            topic_filter_type: "SINGLE_TAG".into(),
            topic_sys_flag: 0,
            order: false,
            attributes: BTreeMap::new(),
        }
    }
}

impl TopicConfig {
    pub fn new(name: &str, queues: i32, perm: i32) -> Self {
        TopicConfig {
            topic_name: name.to_owned(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm,
            ..Default::default()
        }
    }
    pub fn queue_count(&self) -> i32 {
        self.read_queue_nums.max(self.write_queue_nums)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigSerializeWrapper {
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    pub data_version: DataVersion,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterBrokerBody {
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
    pub filter_server_list: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    #[serde(deserialize_with = "id_map")]
    pub broker_addrs: BTreeMap<i64, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
    pub enable_acting_master: bool,
}

impl BrokerData {
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get(&0).map(String::as_str)
    }
}

fn id_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<i64, String>, D::Error> {
    let raw: HashMap<String, String> = HashMap::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| k.trim().parse::<i64>().ok().map(|k| (k, v)))
        .collect())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicRouteData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    pub queue_datas: Vec<QueueData>,
    pub broker_datas: Vec<BrokerData>,
    pub filter_server_table: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    pub cluster_addr_table: BTreeMap<String, Vec<String>>,
}

/// Serializes to JSON, then rewrites the `brokerAddrs` maps with bare
/// numeric keys as fastjson does by default (`{0:"host:port"}`). Used for
/// ClusterInfo always and for routes asked for by pre-4.9.4 clients.
pub fn to_fastjson<T: Serialize>(v: &T) -> String {
    let text = serde_json::to_string(v).unwrap_or_default();
    unquote_numeric_keys(&text)
}

/// Rewrites `"123":` object keys to `123:` (outside of string values).
fn unquote_numeric_keys(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut prev_sig = b' ';
    while i < b.len() {
        if b[i] == b'"' {
            // Find the end of the string literal.
            let start = i;
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            let end = (j + 1).min(b.len());
            let inner = &s[start + 1..end.saturating_sub(1).max(start + 1)];
            let is_key = (prev_sig == b'{' || prev_sig == b',') && end < b.len() && b[end] == b':';
            let numeric = !inner.is_empty()
                && inner
                    .bytes()
                    .enumerate()
                    .all(|(n, c)| c.is_ascii_digit() || (n == 0 && c == b'-' && inner.len() > 1));
            if is_key && numeric {
                out.push_str(inner);
            } else {
                out.push_str(&s[start..end]);
            }
            prev_sig = b'"';
            i = end;
            continue;
        }
        if !b[i].is_ascii_whitespace() {
            prev_sig = b[i];
        }
        let ch_len = match b[i] {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        out.push_str(&s[i..(i + ch_len).min(s.len())]);
        i += ch_len;
    }
    out
}

// ---------------------------------------------------------- heartbeats

/// Accepts an enum as its Java name or its ordinal, mapping to the name.
fn enum_name<'de, D: Deserializer<'de>>(
    d: D,
    names: &'static [&'static str],
) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => match s.parse::<usize>() {
            Ok(n) => names.get(n).copied().unwrap_or(names[0]).to_owned(),
            Err(_) => s,
        },
        serde_json::Value::Number(n) => names
            .get(n.as_u64().unwrap_or(0) as usize)
            .copied()
            .unwrap_or(names[0])
            .to_owned(),
        _ => names[0].to_owned(),
    })
}

const CONSUME_TYPES: &[&str] = &["CONSUME_ACTIVELY", "CONSUME_PASSIVELY", "CONSUME_POP"];
const MESSAGE_MODELS: &[&str] = &["BROADCASTING", "CLUSTERING"];
// Ordinals of ConsumeFromWhere in Java.
const CONSUME_FROM: &[&str] = &[
    "CONSUME_FROM_LAST_OFFSET",
    "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
    "CONSUME_FROM_MIN_OFFSET",
    "CONSUME_FROM_MAX_OFFSET",
    "CONSUME_FROM_FIRST_OFFSET",
    "CONSUME_FROM_TIMESTAMP",
];

fn de_consume_type<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(d, CONSUME_TYPES)
}
fn de_message_model<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(d, MESSAGE_MODELS)
}
fn de_consume_from<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(d, CONSUME_FROM)
}

/// Booleans as `true`/`false`, `"true"`, 0/1 or `"0"`/`"1"`.
pub fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
        serde_json::Value::String(s) => s == "1" || s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

/// Integers as numbers or strings.
pub fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        serde_json::Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

fn lenient_codes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Array(a) => a
            .into_iter()
            .filter_map(|x| match x {
                serde_json::Value::Number(n) => n.as_i64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    #[serde(deserialize_with = "lenient_bool")]
    pub class_filter_mode: bool,
    pub topic: String,
    pub sub_string: String,
    pub tags_set: Vec<String>,
    #[serde(deserialize_with = "lenient_codes")]
    pub code_set: Vec<i64>,
    #[serde(deserialize_with = "lenient_i64")]
    pub sub_version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_type: Option<String>,
}

/// A subscription group's settings (Java `SubscriptionGroupConfig`): the
/// body of UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, an entry of
/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG's table and of the broker's
/// `config/subscriptionGroup.json`. Missing fields take Java's defaults;
/// booleans are read leniently.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    #[serde(deserialize_with = "lenient_bool")]
    pub consume_enable: bool,
    #[serde(deserialize_with = "lenient_bool")]
    pub consume_from_min_enable: bool,
    #[serde(deserialize_with = "lenient_bool")]
    pub consume_broadcast_enable: bool,
    #[serde(deserialize_with = "lenient_bool")]
    pub consume_message_orderly: bool,
    pub retry_queue_nums: i32,
    pub retry_max_times: i32,
    pub broker_id: i64,
    pub which_broker_when_consume_slowly: i64,
    #[serde(deserialize_with = "lenient_bool")]
    pub notify_consumer_ids_changed_enable: bool,
    pub group_sys_flag: i32,
    pub consume_timeout_minute: i32,
}

impl SubscriptionGroupConfig {
    /// Java's defaults for `group`.
    pub fn new(group: &str) -> Self {
        SubscriptionGroupConfig {
            group_name: group.to_owned(),
            ..Default::default()
        }
    }
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        SubscriptionGroupConfig {
            group_name: String::new(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            consume_message_orderly: false,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
            group_sys_flag: 0,
            consume_timeout_minute: 15,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerData {
    pub group_name: String,
    #[serde(deserialize_with = "de_consume_type")]
    pub consume_type: String,
    #[serde(deserialize_with = "de_message_model")]
    pub message_model: String,
    #[serde(deserialize_with = "de_consume_from")]
    pub consume_from_where: String,
    pub subscription_data_set: Vec<SubscriptionData>,
    #[serde(deserialize_with = "lenient_bool")]
    pub unit_mode: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerData {
    pub group_name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct HeartbeatData {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(rename = "producerDataSet")]
    pub producer_data_set: Vec<ProducerData>,
    #[serde(rename = "consumerDataSet")]
    pub consumer_data_set: Vec<ConsumerData>,
    #[serde(rename = "heartbeatFingerprint", deserialize_with = "lenient_i64")]
    pub heartbeat_fingerprint: i64,
    #[serde(rename = "withoutSub", deserialize_with = "lenient_bool")]
    pub without_sub: bool,
}

impl HeartbeatData {
    /// Every group and subscribed topic named in the heartbeat passes
    /// RocketMQ's name rules (a consumer group becomes `%RETRY%<group>`).
    pub fn check_names(&self) -> Result<(), super::names::NameError> {
        for p in &self.producer_data_set {
            super::names::check_group(&p.group_name)?;
        }
        for c in &self.consumer_data_set {
            super::names::check_group(&c.group_name)?;
            for s in &c.subscription_data_set {
                super::names::check_topic(&s.topic)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueue {
    pub broker_name: String,
    pub queue_id: i32,
    pub topic: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerIdList {
    pub consumer_id_list: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicList {
    pub topic_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KvTable {
    pub table: BTreeMap<String, String>,
}

/// Parses a TAG subscription expression into tags (`*`/empty = all).
pub fn parse_tags(expr: &str) -> Vec<String> {
    let e = expr.trim();
    if e.is_empty() || e == "*" {
        return Vec::new();
    }
    e.split("||")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_group_config_takes_java_defaults_for_missing_fields() {
        let g: SubscriptionGroupConfig =
            serde_json::from_str(r#"{"groupName":"g","consumeEnable":"false","retryMaxTimes":3}"#)
                .unwrap();
        assert_eq!(g.group_name, "g");
        assert!(!g.consume_enable);
        assert_eq!(g.retry_max_times, 3);
        assert_eq!(g.consume_timeout_minute, 15);
        assert_eq!(g, {
            let mut d = SubscriptionGroupConfig::new("g");
            d.consume_enable = false;
            d.retry_max_times = 3;
            d
        });
        let json = serde_json::to_string(&g).unwrap();
        assert!(
            json.contains(r#""whichBrokerWhenConsumeSlowly":1"#),
            "{json}"
        );
    }

    #[test]
    fn route_fastjson_dialect() {
        let mut addrs = BTreeMap::new();
        addrs.insert(0, "127.0.0.1:10911".to_string());
        let r = TopicRouteData {
            broker_datas: vec![BrokerData {
                cluster: "c".into(),
                broker_name: "b".into(),
                broker_addrs: addrs,
                ..Default::default()
            }],
            ..Default::default()
        };
        let fj = to_fastjson(&r);
        assert!(
            fj.contains(r#""brokerAddrs":{0:"127.0.0.1:10911"}"#),
            "{fj}"
        );
        let back: TopicRouteData = crate::wire::json::from_fastjson(fj.as_bytes()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn cpp_heartbeat_with_ordinals() {
        let hb = r#"{"clientID":"1.2.3.4@1","consumerDataSet":[{"consumeFromWhere":4,"consumeType":1,"groupName":"g","messageModel":1,"subscriptionDataSet":[{"classFilterMode":"0","codeSet":[],"subString":"*","subVersion":"12","tagsSet":[],"topic":"T"}],"unitMode":"0"}],"producerDataSet":[{"groupName":"p"}]}"#;
        let h: HeartbeatData = serde_json::from_str(hb).unwrap();
        let c = &h.consumer_data_set[0];
        assert_eq!(c.consume_type, "CONSUME_PASSIVELY");
        assert_eq!(c.message_model, "CLUSTERING");
        assert_eq!(c.consume_from_where, "CONSUME_FROM_FIRST_OFFSET");
        assert_eq!(c.subscription_data_set[0].sub_version, 12);
    }
}
