//! Tests of the ACL 2.0 model and its JSON shapes.

use super::*;

#[test]
fn resource_keys_round_trip() {
    for (key, kind, name, pattern) in [
        ("*", ResourceType::Any, None, ResourcePattern::Any),
        ("Topic:*", ResourceType::Topic, None, ResourcePattern::Any),
        (
            "Topic:order*",
            ResourceType::Topic,
            Some("order"),
            ResourcePattern::Prefixed,
        ),
        (
            "Group:g1",
            ResourceType::Group,
            Some("g1"),
            ResourcePattern::Literal,
        ),
        (
            "Cluster:DefaultCluster",
            ResourceType::Cluster,
            Some("DefaultCluster"),
            ResourcePattern::Literal,
        ),
    ] {
        let r = Resource::parse(key).unwrap();
        assert_eq!(
            (r.kind, r.name.as_deref(), r.pattern),
            (kind, name, pattern),
            "{key}"
        );
        assert_eq!(r.key(), key);
    }
    // Type names are case-insensitive on the way in, canonical on the way out.
    assert_eq!(Resource::parse("topic:a").unwrap().key(), "Topic:a");
    assert_eq!(Resource::parse("Queue:a"), None);
    assert_eq!(Resource::parse(" "), None);
    assert_eq!(Resource::group("%RETRY%g").name.as_deref(), Some("g"));
}

#[test]
fn user_json_is_user_info() {
    let u = User::new("alice", "pw", UserType::Super);
    let json = serde_json::to_string(&u).unwrap();
    assert_eq!(
        json,
        r#"{"username":"alice","password":"pw","userType":"Super","userStatus":"enable"}"#
    );
    let back: User =
        serde_json::from_str(&json.replace("Super", "SUPER").replace("enable", "ENABLE")).unwrap();
    assert_eq!(back, u);
    let info: UserInfo =
        serde_json::from_str(r#"{"username":"bob","userType":"normal","userStatus":"weird"}"#)
            .unwrap();
    assert_eq!(info.user_type(), Some(UserType::Normal));
    assert_eq!(info.user_status(), None);
    assert_eq!(info.password, None);
}

const ACL_JSON: &str = r#"{"subject":"User:alice","policies":[{"policyType":"Custom","entries":[{"resource":"Topic:order*","actions":["Pub","Sub"],"sourceIps":["10.0.0.0/8","192.168.1.7"],"decision":"Allow"},{"resource":"Group:g1","actions":["Sub"],"decision":"Deny"}]},{"policyType":"Default","entries":[{"resource":"*","actions":["All"],"decision":"Allow"}]}]}"#;

#[test]
fn acl_json_is_acl_info_and_round_trips() {
    let acl: Acl = serde_json::from_str(ACL_JSON).unwrap();
    assert_eq!(acl.subject, "User:alice");
    let custom = acl.policy(PolicyType::Custom).unwrap();
    assert_eq!(
        custom.entries[0].resource,
        Resource::parse("Topic:order*").unwrap()
    );
    assert_eq!(custom.entries[0].actions, vec![Action::Pub, Action::Sub]);
    assert_eq!(
        custom.entries[0].source_ips,
        vec!["10.0.0.0/8", "192.168.1.7"]
    );
    assert_eq!(custom.entries[1].decision, Decision::Deny);
    assert_eq!(
        acl.policy(PolicyType::Default).unwrap().entries[0]
            .resource
            .kind,
        ResourceType::Any
    );
    assert_eq!(serde_json::to_string(&acl).unwrap(), ACL_JSON);
}

#[test]
fn acl_info_is_converted_like_the_broker() {
    // No policy type → Custom; unknown actions dropped; lower-case names.
    let info: AclInfo = serde_json::from_str(
        r#"{"subject":"user:bob","policies":[{"entries":[{"resource":"topic:t","actions":["pub","Fly"],"decision":"allow"}]}]}"#,
    )
    .unwrap();
    let acl = Acl::try_from(info).unwrap();
    assert_eq!(acl.subject, "User:bob");
    assert_eq!(acl.policies[0].policy_type, PolicyType::Custom);
    assert_eq!(acl.policies[0].entries[0].actions, vec![Action::Pub]);

    let bad =
        |json: &str| Acl::try_from(serde_json::from_str::<AclInfo>(json).unwrap()).unwrap_err();
    assert_eq!(bad(r#"{"subject":"User:b"}"#), "The policies is empty.");
    assert_eq!(
        bad(r#"{"subject":"Role:b","policies":[]}"#),
        "The subject type is null."
    );
    let entry = |e: &str| format!(r#"{{"subject":"User:b","policies":[{{"entries":[{e}]}}]}}"#);
    assert_eq!(
        bad(&entry(r#"{"actions":["Pub"],"decision":"Allow"}"#)),
        "The resource is null."
    );
    assert_eq!(
        bad(&entry(
            r#"{"resource":"Topic:t","actions":["Any"],"decision":"Allow"}"#
        )),
        "The actions can not be Any."
    );
    assert_eq!(
        bad(&entry(r#"{"resource":"Topic:t","actions":["Pub"]}"#)),
        "The decision is null or illegal."
    );
    assert_eq!(
        bad(&entry(
            r#"{"resource":"Topic:t","actions":["Pub"],"sourceIps":["10.1.1.*"],"decision":"Allow"}"#
        )),
        "The source ip is invalid."
    );
}

#[test]
fn merge_and_remove_follow_acl_update_policy() {
    let mut acl: Acl = serde_json::from_str(ACL_JSON).unwrap();
    let update: Acl = serde_json::from_str(
        r#"{"subject":"User:alice","policies":[{"entries":[{"resource":"Group:g1","actions":["Sub"],"decision":"Allow"},{"resource":"Topic:x","actions":["Pub"],"decision":"Allow"}]}]}"#,
    )
    .unwrap();
    acl.merge(update.policies);
    let custom = acl.policy(PolicyType::Custom).unwrap();
    assert_eq!(custom.entries.len(), 3);
    assert_eq!(
        custom.entries[1].decision,
        Decision::Allow,
        "same resource replaced"
    );
    acl.remove_entry(PolicyType::Default, &Resource::any_of(ResourceType::Any));
    assert!(
        acl.policy(PolicyType::Default).is_none(),
        "emptied policy dropped"
    );
}
