//! Tests of the authorization decision and the request table.

use super::*;
use crate::auth::model::{Acl, Policy};

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn entry(resource: &str, actions: &[Action], ips: &[&str], decision: Decision) -> PolicyEntry {
    PolicyEntry {
        resource: Resource::parse(resource).unwrap(),
        actions: actions.to_vec(),
        source_ips: ips.iter().map(|s| s.to_string()).collect(),
        decision,
    }
}

fn acl(custom: Vec<PolicyEntry>, default: Vec<PolicyEntry>) -> Acl {
    let mut policies = Vec::new();
    if !custom.is_empty() {
        policies.push(Policy {
            policy_type: PolicyType::Custom,
            entries: custom,
        });
    }
    if !default.is_empty() {
        policies.push(Policy {
            policy_type: PolicyType::Default,
            entries: default,
        });
    }
    Acl {
        subject: "User:u".into(),
        policies,
    }
}

fn pub_topic(t: &str) -> Requirement {
    Requirement::new(Resource::topic(t), &[Pub])
}

const ALLOW: Decision = Decision::Allow;
const DENY: Decision = Decision::Deny;

#[test]
fn no_acl_or_no_match_is_refused() {
    assert_eq!(
        decide(None, &pub_topic("t"), ip("1.2.3.4")),
        Err(Denial::NoMatch)
    );
    let a = acl(vec![entry("Topic:other", &[Pub], &[], ALLOW)], vec![]);
    assert_eq!(
        decide(Some(&a), &pub_topic("t"), ip("1.2.3.4")),
        Err(Denial::NoMatch)
    );
    // Right resource, wrong action.
    let a = acl(vec![entry("Topic:t", &[Sub], &[], ALLOW)], vec![]);
    assert_eq!(
        decide(Some(&a), &pub_topic("t"), None),
        Err(Denial::NoMatch)
    );
}

#[test]
fn allow_and_all_and_any_actions() {
    let a = acl(vec![entry("Topic:t", &[Action::All], &[], ALLOW)], vec![]);
    assert_eq!(decide(Some(&a), &pub_topic("t"), None), Ok(()));
    // A request listing several actions needs any one of them.
    let a = acl(vec![entry("Topic:t", &[Get], &[], ALLOW)], vec![]);
    let route = Requirement::new(Resource::topic("t"), &[Pub, Sub, Get]);
    assert_eq!(decide(Some(&a), &route, None), Ok(()));
    let any = Requirement::new(Resource::topic("t"), &[Action::Any]);
    assert_eq!(decide(Some(&a), &any, None), Ok(()));
}

#[test]
fn deny_wins_at_equal_specificity() {
    // Listed allow first: order of entries does not matter.
    let a = acl(
        vec![
            entry("Topic:t", &[Pub], &[], ALLOW),
            entry("Topic:t", &[Pub, Sub], &[], DENY),
        ],
        vec![],
    );
    assert_eq!(decide(Some(&a), &pub_topic("t"), None), Err(Denial::Deny));
    let a = acl(
        vec![
            entry("Topic:ord*", &[Pub], &[], ALLOW),
            entry("Topic:ab*", &[Pub], &[], DENY),
            entry("Topic:ord*", &[Pub], &[], DENY),
        ],
        vec![],
    );
    assert_eq!(
        decide(Some(&a), &pub_topic("order"), None),
        Err(Denial::Deny)
    );
    // A deny on everything beats an allow on everything.
    let a = acl(
        vec![
            entry("*", &[Action::All], &[], ALLOW),
            entry("*", &[Pub], &[], DENY),
        ],
        vec![],
    );
    assert_eq!(decide(Some(&a), &pub_topic("t"), None), Err(Denial::Deny));
}

#[test]
fn more_specific_entries_decide() {
    // Literal over prefixed: a literal allow is an exception to a prefix deny.
    let a = acl(
        vec![
            entry("Topic:order*", &[Pub], &[], DENY),
            entry("Topic:order-eu", &[Pub], &[], ALLOW),
        ],
        vec![],
    );
    assert_eq!(decide(Some(&a), &pub_topic("order-eu"), None), Ok(()));
    assert_eq!(
        decide(Some(&a), &pub_topic("order-us"), None),
        Err(Denial::Deny)
    );
    // Longer prefix first, both ways.
    let a = acl(
        vec![
            entry("Topic:o*", &[Pub], &[], DENY),
            entry("Topic:order*", &[Pub], &[], ALLOW),
        ],
        vec![],
    );
    assert_eq!(decide(Some(&a), &pub_topic("order-1"), None), Ok(()));
    assert_eq!(
        decide(Some(&a), &pub_topic("other"), None),
        Err(Denial::Deny)
    );
    let a = acl(
        vec![
            entry("Topic:order*", &[Pub], &[], DENY),
            entry("Topic:o*", &[Pub], &[], ALLOW),
        ],
        vec![],
    );
    assert_eq!(
        decide(Some(&a), &pub_topic("order-1"), None),
        Err(Denial::Deny)
    );
    // Prefixed over "Topic:*", and a typed resource over "*".
    let a = acl(
        vec![
            entry("Topic:*", &[Pub], &[], DENY),
            entry("Topic:ok*", &[Pub], &[], ALLOW),
        ],
        vec![],
    );
    assert_eq!(decide(Some(&a), &pub_topic("ok1"), None), Ok(()));
    let a = acl(
        vec![
            entry("*", &[Pub], &[], DENY),
            entry("Topic:*", &[Pub], &[], ALLOW),
        ],
        vec![],
    );
    assert_eq!(decide(Some(&a), &pub_topic("x"), None), Ok(()));
    // Type mismatch never matches.
    let a = acl(vec![entry("Group:t", &[Pub], &[], ALLOW)], vec![]);
    assert_eq!(
        decide(Some(&a), &pub_topic("t"), None),
        Err(Denial::NoMatch)
    );
}

#[test]
fn default_policy_only_when_custom_has_no_match() {
    let a = acl(
        vec![entry("Topic:t", &[Pub], &[], ALLOW)],
        vec![entry("Topic:*", &[Pub], &[], DENY)],
    );
    assert_eq!(
        decide(Some(&a), &pub_topic("t"), None),
        Ok(()),
        "custom match, default not consulted"
    );
    assert_eq!(decide(Some(&a), &pub_topic("u"), None), Err(Denial::Deny));
    let a = acl(vec![], vec![entry("Topic:*", &[Pub, Sub], &[], ALLOW)]);
    assert_eq!(decide(Some(&a), &pub_topic("u"), None), Ok(()));
}

#[test]
fn source_ips_and_cidr_ranges() {
    let a = acl(
        vec![entry(
            "Topic:t",
            &[Pub],
            &["10.1.0.0/16", "192.168.0.7", "fd00::/8"],
            ALLOW,
        )],
        vec![],
    );
    for (addr, ok) in [
        ("10.1.200.3", true),
        ("10.2.0.1", false),
        ("192.168.0.7", true),
        ("192.168.0.8", false),
        ("fd12::1", true),
        ("fe80::1", false),
        ("::ffff:10.1.0.9", true),
    ] {
        assert_eq!(
            decide(Some(&a), &pub_topic("t"), ip(addr)).is_ok(),
            ok,
            "{addr}"
        );
    }
    assert_eq!(
        decide(Some(&a), &pub_topic("t"), None),
        Err(Denial::NoMatch),
        "unknown source"
    );
    // A deny restricted to one range only applies there.
    let a = acl(
        vec![
            entry("Topic:t", &[Pub], &[], ALLOW),
            entry("Topic:t", &[Pub], &["10.0.0.0/8"], DENY),
        ],
        vec![],
    );
    assert_eq!(
        decide(Some(&a), &pub_topic("t"), ip("10.9.9.9")),
        Err(Denial::Deny)
    );
    assert_eq!(decide(Some(&a), &pub_topic("t"), ip("11.0.0.1")), Ok(()));
}

#[test]
fn ip_range_parsing() {
    assert!(IpRange::parse("0.0.0.0/0")
        .unwrap()
        .contains("8.8.8.8".parse().unwrap()));
    assert!(IpRange::parse("10.0.0.1/33").is_none());
    assert!(IpRange::parse("10.0.0.*").is_none());
    assert!(IpRange::parse("::/0")
        .unwrap()
        .contains("::1".parse().unwrap()));
    assert!(!IpRange::parse("::/0")
        .unwrap()
        .contains("1.2.3.4".parse().unwrap()));
}

fn ext(pairs: &[(&str, &str)]) -> ExtFields {
    let mut e = ExtFields::default();
    for (k, v) in pairs {
        e.insert(k, v);
    }
    e
}

fn keys(reqs: &[Requirement]) -> Vec<(String, &'static [Action])> {
    reqs.iter().map(|r| (r.resource.key(), r.actions)).collect()
}

fn req(code: i32, pairs: &[(&str, &str)], body: &[u8]) -> Vec<(String, &'static [Action])> {
    keys(&requirements(code, &ext(pairs), body, "DefaultCluster").unwrap())
}

#[test]
fn send_and_pull_requirements() {
    let pubs: &[Action] = &[Pub];
    let subs: &[Action] = &[Sub];
    assert_eq!(
        req(rq::SEND_MESSAGE, &[("topic", "T")], b""),
        vec![("Topic:T".into(), pubs)]
    );
    assert_eq!(
        req(rq::SEND_MESSAGE_V2, &[("b", "T"), ("a", "pg")], b""),
        vec![("Topic:T".into(), pubs)]
    );
    assert_eq!(
        req(rq::SEND_BATCH_MESSAGE, &[("b", "%RETRY%cg")], b""),
        vec![("Group:cg".into(), subs)]
    );
    assert_eq!(
        req(rq::SEND_MESSAGE_V2, &[("b", "%RETRY%cg"), ("a", "g2")], b""),
        vec![("Group:g2".into(), subs)]
    );
    assert_eq!(
        req(
            rq::PULL_MESSAGE,
            &[("topic", "T"), ("consumerGroup", "cg")],
            b""
        ),
        vec![("Topic:T".into(), subs), ("Group:cg".into(), subs)]
    );
    assert_eq!(
        req(
            rq::LITE_PULL_MESSAGE,
            &[("topic", "%RETRY%cg"), ("consumerGroup", "cg")],
            b""
        ),
        vec![("Group:cg".into(), subs)]
    );
    assert_eq!(
        req(rq::END_TRANSACTION, &[("topic", "T")], b""),
        vec![("Topic:T".into(), pubs)]
    );
    assert_eq!(
        req(rq::END_TRANSACTION, &[("tranStateTableOffset", "1")], b""),
        vec![]
    );
    assert_eq!(
        req(rq::CONSUMER_SEND_MSG_BACK, &[("group", "cg")], b""),
        vec![("Group:cg".into(), subs)]
    );
    // No ext fields at all: nothing to check.
    assert_eq!(req(rq::SEND_MESSAGE, &[], b""), vec![]);
}

#[test]
fn offset_route_and_body_requirements() {
    let r = req(
        rq::UPDATE_CONSUMER_OFFSET,
        &[("topic", "T"), ("consumerGroup", "cg")],
        b"",
    );
    assert_eq!(
        r,
        vec![
            ("Topic:T".into(), &[Sub, Update][..]),
            ("Group:cg".into(), &[Sub, Update][..])
        ]
    );
    let r = req(
        rq::QUERY_CONSUMER_OFFSET,
        &[("topic", "%RETRY%cg"), ("consumerGroup", "cg")],
        b"",
    );
    assert_eq!(r, vec![("Group:cg".into(), &[Sub, Get][..])]);
    assert_eq!(
        req(rq::GET_ROUTEINFO_BY_TOPIC, &[("topic", "T")], b""),
        vec![("Topic:T".into(), &[Pub, Sub, Get][..])]
    );

    let hb = br#"{"clientID":"c","producerDataSet":[{"groupName":"pg"}],"consumerDataSet":[{"groupName":"cg","subscriptionDataSet":[{"topic":"T1"},{"topic":"%RETRY%cg"}]}]}"#;
    let r = req(rq::HEART_BEAT, &[("x", "y")], hb);
    assert_eq!(
        r,
        vec![
            ("Group:cg".into(), &[Sub][..]),
            ("Topic:T1".into(), &[Sub][..])
        ]
    );
    let lock = br#"{"consumerGroup":"cg","clientId":"c","mqSet":[{"topic":"T","brokerName":"b","queueId":0}]}"#;
    let r = req(rq::LOCK_BATCH_MQ, &[("x", "y")], lock);
    assert_eq!(
        r,
        vec![
            ("Group:cg".into(), &[Sub][..]),
            ("Topic:T".into(), &[Sub][..])
        ]
    );
    assert_eq!(
        requirements(rq::HEART_BEAT, &ext(&[("x", "y")]), b"{oops", "c"),
        Err(ParseError)
    );
    let sg = br#"{"groupName":"cg","consumeEnable":true}"#;
    assert_eq!(
        req(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, &[("x", "y")], sg),
        vec![("Group:cg".into(), &[Create][..])]
    );
}

#[test]
fn annotated_requirements() {
    assert_eq!(
        req(rq::UPDATE_AND_CREATE_TOPIC, &[("topic", "T")], b""),
        vec![("Topic:T".into(), &[Create][..])]
    );
    assert_eq!(
        req(rq::DELETE_TOPIC_IN_BROKER, &[("topic", "T")], b""),
        vec![("Topic:T".into(), &[Delete][..])]
    );
    assert_eq!(
        req(rq::DELETE_SUBSCRIPTIONGROUP, &[("groupName", "g")], b""),
        vec![("Group:g".into(), &[Delete][..])]
    );
    let r = req(
        rq::GET_CONSUME_STATS,
        &[("consumerGroup", "g"), ("topicList", "A;B")],
        b"",
    );
    assert_eq!(
        r,
        vec![
            ("Group:g".into(), &[Get][..]),
            ("Topic:A".into(), &[Get][..]),
            ("Topic:B".into(), &[Get][..])
        ]
    );
    assert_eq!(
        req(rq::REGISTER_BROKER, &[("clusterName", "C1")], b""),
        vec![("Cluster:C1".into(), &[Update][..])]
    );
    assert_eq!(
        req(rq::UNREGISTER_BROKER, &[("brokerName", "b")], b""),
        vec![("Cluster:DefaultCluster".into(), &[Update][..])]
    );
    assert_eq!(
        req(auth_codes::AUTH_LIST_ACL, &[("x", "y")], b""),
        vec![("Cluster:DefaultCluster".into(), &[Get][..])]
    );
    // Codes RocketMQ does not map: authentication only.
    assert_eq!(req(rq::GET_ALL_TOPIC_CONFIG, &[("x", "y")], b""), vec![]);
    assert_eq!(req(rq::GET_BROKER_CLUSTER_INFO, &[("x", "y")], b""), vec![]);
}
