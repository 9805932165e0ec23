//! The authorization decision and what each request needs, mirroring
//! RocketMQ's `UserAuthorizationHandler` + `AclAuthorizationHandler` (the
//! decision), `PolicyEntry.isMatch*` / `Environment` / `IPAddressUtils`
//! (matching), and `DefaultAuthorizationContextBuilder` with the
//! `@RocketMQAction` / `@RocketMQResource` annotations of the request
//! headers (which request needs which resource and action).
//!
//! The decision for one requirement (a resource and the actions of which
//! any one suffices):
//! 1. a `Super` user may do anything;
//! 2. the entries of the user's `Custom` policy that match (resource covers
//!    it, an action matches or the entry has `All`, the source address is in
//!    the entry's IPs or ranges, or the entry has none) are collected; only
//!    when none matches are the `Default` policy's entries tried;
//! 3. the most specific match decides: a typed resource before `*`, then
//!    literal before prefixed before any, a longer prefix before a shorter,
//!    and at equal specificity `Deny` before `Allow`. So a matching deny
//!    wins over every allow that is not more specific than it; a literal
//!    allow still beats a prefixed deny, as in RocketMQ;
//! 4. no match, or a deny: refused.

use std::net::IpAddr;

use super::model::{
    Acl, Action, Decision, PolicyEntry, PolicyType, Resource, ResourcePattern, ResourceType,
};
use crate::store::metadata::parse_lenient;
use crate::wire::bodies::{HeartbeatData, MessageQueue};
use crate::wire::codes::request as rq;
use crate::wire::command::ExtFields;

/// Admin request codes of ACL 2.0 (`RequestCode.AUTH_*`); defined here
/// because `wire::codes` does not carry them yet.
pub mod auth_codes {
    pub const AUTH_CREATE_USER: i32 = 3001;
    pub const AUTH_UPDATE_USER: i32 = 3002;
    pub const AUTH_DELETE_USER: i32 = 3003;
    pub const AUTH_GET_USER: i32 = 3004;
    pub const AUTH_LIST_USER: i32 = 3005;
    pub const AUTH_CREATE_ACL: i32 = 3006;
    pub const AUTH_UPDATE_ACL: i32 = 3007;
    pub const AUTH_DELETE_ACL: i32 = 3008;
    pub const AUTH_GET_ACL: i32 = 3009;
    pub const AUTH_LIST_ACL: i32 = 3010;
}

/// An IP or a CIDR range from a policy entry (`IPAddressUtils`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// `a.b.c.d`, an IPv6 address, or either with `/prefix`; None otherwise
    /// (`isValidIPOrCidr`).
    pub fn parse(s: &str) -> Option<IpRange> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().ok()?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(IpRange { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// One thing a request needs: `resource`, with any one of `actions`
/// (`DefaultAuthorizationContext`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub resource: Resource,
    pub actions: &'static [Action],
}

impl Requirement {
    fn new(resource: Resource, actions: &'static [Action]) -> Requirement {
        Requirement { resource, actions }
    }
}

/// Why a requirement was refused (the tail of RocketMQ's remark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    NoMatch,
    Deny,
}

impl Denial {
    pub fn detail(self) -> &'static str {
        match self {
            Denial::NoMatch => "no matched policies.",
            Denial::Deny => "the decision is deny.",
        }
    }
}

fn entry_matches(e: &PolicyEntry, req: &Requirement, source: Option<IpAddr>) -> bool {
    if !e.resource.covers(&req.resource) || e.actions.is_empty() {
        return false;
    }
    let action_ok = req.actions.contains(&Action::Any)
        || req
            .actions
            .iter()
            .any(|a| e.actions.contains(a) || e.actions.contains(&Action::All));
    if !action_ok {
        return false;
    }
    if e.source_ips.is_empty() {
        return true;
    }
    let Some(ip) = source else { return false };
    e.source_ips
        .iter()
        .any(|r| IpRange::parse(r).is_some_and(|r| r.contains(ip)))
}

/// Sort key of a matched entry, smallest decides (`comparePolicyEntries`).
fn priority(e: &PolicyEntry) -> (bool, u8, isize, bool) {
    let r = &e.resource;
    let pattern = match r.pattern {
        ResourcePattern::Literal => 0,
        ResourcePattern::Prefixed => 1,
        ResourcePattern::Any => 2,
    };
    let longer_first = match r.pattern {
        ResourcePattern::Prefixed => -(r.name.as_deref().map_or(0, str::len) as isize),
        _ => 0,
    };
    (
        r.kind == ResourceType::Any,
        pattern,
        longer_first,
        e.decision == Decision::Allow,
    )
}

/// The deciding entry of `acl` for `req` from `source`, if any matches.
pub fn deciding_entry<'a>(
    acl: &'a Acl,
    req: &Requirement,
    source: Option<IpAddr>,
) -> Option<&'a PolicyEntry> {
    [PolicyType::Custom, PolicyType::Default]
        .into_iter()
        .filter_map(|t| acl.policy(t))
        .map(|p| {
            p.entries
                .iter()
                .filter(|e| entry_matches(e, req, source))
                .min_by_key(|e| priority(e))
        })
        .find_map(|best| best)
}

/// The decision for a normal user's `acl` (None: the user has no ACL).
pub fn decide(acl: Option<&Acl>, req: &Requirement, source: Option<IpAddr>) -> Result<(), Denial> {
    match acl.and_then(|acl| deciding_entry(acl, req, source)) {
        None => Err(Denial::NoMatch),
        Some(e) if e.decision == Decision::Deny => Err(Denial::Deny),
        Some(_) => Ok(()),
    }
}

use Action::{Create, Delete, Get, Pub, Sub, Update};

fn is_retry(topic: &str) -> bool {
    topic.starts_with("%RETRY%")
}

/// A topic named by a request: a `%RETRY%` topic stands for its group.
fn topic_or_group(topic: &str, actions: &'static [Action]) -> Requirement {
    if is_retry(topic) {
        Requirement::new(Resource::group(topic), actions)
    } else {
        Requirement::new(Resource::topic(topic), actions)
    }
}

/// Ext-field driven rows (RocketMQ's annotations): the resource fields in
/// declaration order, each (kind, ext key, splitter).
type Fields = &'static [(ResourceType, &'static str, Option<char>)];

const T: ResourceType = ResourceType::Topic;
const G: ResourceType = ResourceType::Group;
const C: ResourceType = ResourceType::Cluster;

/// `(code, resource fields, a Cluster fallback, actions)` for codes RocketMQ
/// builds from header annotations. A row with `cluster_fallback` asks for
/// `Cluster:<this cluster>` when no field named a resource.
const ANNOTATED: &[(i32, Fields, bool, &[Action])] = &[
    (
        rq::UPDATE_AND_CREATE_TOPIC,
        &[(T, "topic", None)],
        false,
        &[Create],
    ),
    (
        rq::DELETE_TOPIC_IN_BROKER,
        &[(T, "topic", None)],
        false,
        &[Delete],
    ),
    (
        rq::SEARCH_OFFSET_BY_TIMESTAMP,
        &[(T, "topic", None)],
        false,
        &[Get],
    ),
    (rq::GET_MAX_OFFSET, &[(T, "topic", None)], false, &[Get]),
    (rq::GET_MIN_OFFSET, &[(T, "topic", None)], false, &[Get]),
    (
        rq::GET_EARLIEST_MSG_STORETIME,
        &[(T, "topic", None)],
        false,
        &[Get],
    ),
    (rq::VIEW_MESSAGE_BY_ID, &[(T, "topic", None)], false, &[Get]),
    (
        rq::GET_TOPIC_STATS_INFO,
        &[(T, "topic", None)],
        false,
        &[Get],
    ),
    (rq::GET_TOPIC_CONFIG, &[(T, "topic", None)], false, &[Get]),
    (
        rq::DELETE_SUBSCRIPTIONGROUP,
        &[(G, "groupName", None)],
        false,
        &[Delete],
    ),
    (
        rq::GET_CONSUMER_CONNECTION_LIST,
        &[(G, "consumerGroup", None)],
        false,
        &[Get],
    ),
    (
        rq::GET_CONSUMER_RUNNING_INFO,
        &[(G, "consumerGroup", None)],
        false,
        &[Get],
    ),
    (
        rq::GET_CONSUME_STATS,
        &[
            (G, "consumerGroup", None),
            (T, "topic", None),
            (T, "topicList", Some(';')),
        ],
        false,
        &[Get],
    ),
    (
        rq::INVOKE_BROKER_TO_RESET_OFFSET,
        &[(G, "group", None), (T, "topic", None)],
        false,
        &[Update],
    ),
    (
        rq::CONSUME_MESSAGE_DIRECTLY,
        &[(G, "consumerGroup", None), (T, "topic", None)],
        false,
        &[Sub],
    ),
    // POP (5.x headers annotated `@RocketMQAction(..., action = SUB)` with
    // `consumerGroup` and `topic` as resources).
    (
        rq::POP_MESSAGE,
        &[(G, "consumerGroup", None), (T, "topic", None)],
        false,
        &[Sub],
    ),
    (
        rq::ACK_MESSAGE,
        &[(G, "consumerGroup", None), (T, "topic", None)],
        false,
        &[Sub],
    ),
    (
        rq::CHANGE_MESSAGE_INVISIBLETIME,
        &[(G, "consumerGroup", None), (T, "topic", None)],
        false,
        &[Sub],
    ),
    (
        rq::PEEK_MESSAGE,
        &[(G, "consumerGroup", None), (T, "topic", None)],
        false,
        &[Sub],
    ),
    (
        rq::NOTIFICATION,
        &[(G, "consumerGroup", None), (T, "topic", None)],
        false,
        &[Sub],
    ),
    (
        rq::POLLING_INFO,
        &[(G, "consumerGroup", None), (T, "topic", None)],
        false,
        &[Sub],
    ),
    (rq::GET_PRODUCER_CONNECTION_LIST, &[], true, &[Get]),
    (rq::WIPE_WRITE_PERM_OF_BROKER, &[], true, &[Update]),
    (rq::PUT_KV_CONFIG, &[], true, &[Update]),
    (rq::GET_KV_CONFIG, &[], true, &[Get]),
    (rq::DELETE_KV_CONFIG, &[], true, &[Update]),
    (rq::GET_KVLIST_BY_NAMESPACE, &[], true, &[Get]),
    (rq::REGISTER_TOPIC_IN_NAMESRV, &[], true, &[Update]),
    (
        rq::REGISTER_BROKER,
        &[(C, "clusterName", None)],
        true,
        &[Update],
    ),
    (
        rq::UNREGISTER_BROKER,
        &[(C, "clusterName", None)],
        true,
        &[Update],
    ),
    (
        rq::DELETE_TOPIC_IN_NAMESRV,
        &[(C, "clusterName", None)],
        true,
        &[Update],
    ),
    (
        rq::BROKER_HEARTBEAT,
        &[(C, "clusterName", None)],
        true,
        &[Update],
    ),
    (
        rq::QUERY_DATA_VERSION,
        &[(C, "clusterName", None)],
        true,
        &[Get],
    ),
    (auth_codes::AUTH_CREATE_USER, &[], true, &[Update]),
    (auth_codes::AUTH_UPDATE_USER, &[], true, &[Update]),
    (auth_codes::AUTH_DELETE_USER, &[], true, &[Update]),
    (auth_codes::AUTH_GET_USER, &[], true, &[Get]),
    (auth_codes::AUTH_LIST_USER, &[], true, &[Get]),
    (auth_codes::AUTH_CREATE_ACL, &[], true, &[Update]),
    (auth_codes::AUTH_UPDATE_ACL, &[], true, &[Update]),
    (auth_codes::AUTH_DELETE_ACL, &[], true, &[Update]),
    (auth_codes::AUTH_GET_ACL, &[], true, &[Get]),
    (auth_codes::AUTH_LIST_ACL, &[], true, &[Get]),
    // ActorMQ, stricter than RocketMQ (which checks nothing for these):
    // changing the broker's configuration is a cluster update, and so is
    // the private fault-injection request.
    (rq::UPDATE_BROKER_CONFIG, &[], true, &[Update]),
    (rq::ACTORMQ_INJECT_FAULT, &[], true, &[Update]),
];

/// A request the requirements could not be read from (RocketMQ: "parse
/// authorization context error.").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse authorization context error.")]
pub struct ParseError;

/// What a remoting request needs, as `DefaultAuthorizationContextBuilder`
/// builds it. `cluster` is this broker's (or name server's) cluster name
/// for `Cluster` checks. Empty: nothing to check beyond authentication
/// (codes RocketMQ does not map, and requests without ext fields).
pub fn requirements(
    code: i32,
    ext: &ExtFields,
    body: &[u8],
    cluster: &str,
) -> Result<Vec<Requirement>, ParseError> {
    if ext.is_empty() {
        return Ok(Vec::new());
    }
    let field = |k: &str| ext.get(k).filter(|v| !v.trim().is_empty());
    let topic = || field("topic").unwrap_or("");
    let mut out = Vec::new();
    match code {
        rq::GET_ROUTEINFO_BY_TOPIC => out.push(topic_or_group_route(topic())),
        rq::SEND_MESSAGE => out.push(send(topic(), field("group"))),
        rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE => {
            out.push(send(field("b").unwrap_or(""), field("a")))
        }
        rq::END_TRANSACTION => {
            out.extend(field("topic").map(|t| Requirement::new(Resource::topic(t), &[Pub])))
        }
        rq::CONSUMER_SEND_MSG_BACK => out.push(group(field("group"), &[Sub])),
        // LITE_PULL_MESSAGE: RocketMQ registers no header for it and checks
        // nothing; ActorMQ treats it as the pull it is.
        rq::PULL_MESSAGE | rq::LITE_PULL_MESSAGE => {
            topic_unless_retry(&mut out, topic(), &[Sub]);
            out.push(group(field("consumerGroup"), &[Sub]));
        }
        rq::QUERY_MESSAGE => out.push(Requirement::new(Resource::topic(topic()), &[Sub, Get])),
        rq::HEART_BEAT => {
            let hb: HeartbeatData = parse_body(body)?;
            out = heartbeat_requirements(&hb);
        }
        rq::UNREGISTER_CLIENT => {
            out.extend(field("consumerGroup").map(|g| Requirement::new(Resource::group(g), &[Sub])))
        }
        rq::GET_CONSUMER_LIST_BY_GROUP => out.push(group(field("consumerGroup"), &[Sub, Get])),
        rq::QUERY_CONSUMER_OFFSET => {
            topic_unless_retry(&mut out, topic(), &[Sub, Get]);
            out.push(group(field("consumerGroup"), &[Sub, Get]));
        }
        rq::UPDATE_CONSUMER_OFFSET => {
            topic_unless_retry(&mut out, topic(), &[Sub, Update]);
            out.push(group(field("consumerGroup"), &[Sub, Update]));
        }
        rq::LOCK_BATCH_MQ | rq::UNLOCK_BATCH_MQ => {
            let b: LockBatchBody = parse_body(body)?;
            out.push(Requirement::new(Resource::group(&b.consumer_group), &[Sub]));
            for mq in &b.mq_set {
                topic_unless_retry(&mut out, &mq.topic, &[Sub]);
            }
        }
        // ActorMQ, stricter than RocketMQ (no check there): creating or
        // updating a subscription group needs Create on the group.
        rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => {
            let b: GroupNameBody = parse_body(body)?;
            out.push(Requirement::new(Resource::group(&b.group_name), &[Create]));
        }
        _ => annotated(code, ext, cluster, &mut out),
    }
    Ok(out)
}

/// The requirements of a decoded HEART_BEAT body: `Sub` on every consumer
/// group and on every subscribed topic but retry topics. Producer groups
/// are not checked (RocketMQ neither).
pub fn heartbeat_requirements(hb: &HeartbeatData) -> Vec<Requirement> {
    let mut out = Vec::new();
    for c in &hb.consumer_data_set {
        out.push(Requirement::new(Resource::group(&c.group_name), &[Sub]));
        for s in &c.subscription_data_set {
            topic_unless_retry(&mut out, &s.topic, &[Sub]);
        }
    }
    out
}

fn topic_or_group_route(topic: &str) -> Requirement {
    if is_retry(topic) {
        Requirement::new(Resource::group(topic), &[Sub, Get])
    } else {
        Requirement::new(Resource::topic(topic), &[Pub, Sub, Get])
    }
}

/// A send to `%RETRY%<g>` is a consumer's: `Sub` on the group.
fn send(topic: &str, group_field: Option<&str>) -> Requirement {
    if is_retry(topic) {
        Requirement::new(Resource::group(group_field.unwrap_or(topic)), &[Sub])
    } else {
        Requirement::new(Resource::topic(topic), &[Pub])
    }
}

fn group(name: Option<&str>, actions: &'static [Action]) -> Requirement {
    Requirement::new(Resource::group(name.unwrap_or("")), actions)
}

fn topic_unless_retry(out: &mut Vec<Requirement>, topic: &str, actions: &'static [Action]) {
    if !is_retry(topic) {
        out.push(Requirement::new(Resource::topic(topic), actions));
    }
}

fn annotated(code: i32, ext: &ExtFields, cluster: &str, out: &mut Vec<Requirement>) {
    let Some(&(_, fields, cluster_fallback, actions)) = ANNOTATED.iter().find(|r| r.0 == code)
    else {
        return;
    };
    for &(kind, key, splitter) in fields {
        let Some(value) = ext.get(key) else { continue };
        let values: Vec<&str> = match splitter {
            Some(c) => value.split(c).filter(|v| !v.is_empty()).collect(),
            None => vec![value],
        };
        for v in values {
            out.push(match kind {
                ResourceType::Topic => topic_or_group(v, actions),
                _ => Requirement::new(Resource::literal(kind, v), actions),
            });
        }
    }
    if out.is_empty() && cluster_fallback {
        out.push(Requirement::new(Resource::cluster(cluster), actions));
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LockBatchBody {
    consumer_group: String,
    mq_set: Vec<MessageQueue>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GroupNameBody {
    group_name: String,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError)?;
    parse_lenient(text).map_err(|_| ParseError)
}

#[cfg(test)]
#[path = "authorize_tests.rs"]
mod tests;
