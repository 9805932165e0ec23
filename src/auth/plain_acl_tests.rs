//! Tests of the 4.x `plain_acl.yml` reader and its migration.

use super::*;
use crate::auth::authorize::{decide, Denial, Requirement};
use crate::auth::model::UserStatus;

/// A file in the shape 4.x brokers shipped and operators edited: comments,
/// blank lines, sequences at and below their key's indent, quoted values,
/// numeric secrets, an empty value, a flow list and a data version block.
const FILE: &str = r#"
# global rules
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*

accounts:
  - accessKey: RocketMQ
    secretKey: 12345678   # numeric, read as text
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
      - broken
    groupPerms:
    # a comment between the key and its items
    - groupA=DENY
    - groupB=PUB|SUB
    - '%RETRY%groupC=SUB'

  - accessKey: "rocketmq2"
    secretKey: 'it''s secret'
    whiteRemoteAddress: 192.168.1.*
    # an admin may do anything
    admin: true

  - accessKey: app
    secretKey: appsecret
    topicPerms: [orders=PUB, 'audit=SUB']
    defaultTopicPerm: ''

  - accessKey: RocketMQ
    secretKey: duplicate
    admin: true

dataVersion:
  - counter: 3
    timestamp: 1700000000000
"#;

#[test]
fn parses_a_realistic_file() {
    let f = parse(FILE).unwrap();
    assert_eq!(
        f.global_white_remote_addresses,
        vec!["10.10.103.*", "192.168.0.*"]
    );
    assert_eq!(f.accounts.len(), 4);
    let a = &f.accounts[0];
    assert_eq!(
        (a.access_key.as_str(), a.secret_key.as_str(), a.admin),
        ("RocketMQ", "12345678", false)
    );
    assert_eq!(a.white_remote_address, None);
    assert_eq!(a.default_topic_perm.as_deref(), Some("DENY"));
    assert_eq!(
        a.topic_perms,
        vec!["topicA=DENY", "topicB=PUB|SUB", "topicC=SUB", "broken"]
    );
    assert_eq!(
        a.group_perms,
        vec!["groupA=DENY", "groupB=PUB|SUB", "%RETRY%groupC=SUB"]
    );
    let b = &f.accounts[1];
    assert_eq!(
        (b.access_key.as_str(), b.secret_key.as_str(), b.admin),
        ("rocketmq2", "it's secret", true)
    );
    assert_eq!(b.white_remote_address.as_deref(), Some("192.168.1.*"));
    assert_eq!(f.accounts[2].topic_perms, vec!["orders=PUB", "audit=SUB"]);
    assert_eq!(f.accounts[2].default_topic_perm.as_deref(), Some(""));
}

#[test]
fn rejects_what_it_does_not_understand() {
    let bad = |text: &str| parse(text).unwrap_err();
    assert_eq!(
        bad("accounts:\n  - accessKey: a\n    colour: red\n").line,
        3
    );
    assert_eq!(
        bad("accounts:\n  - accessKey: &a x\n").message,
        "unsupported YAML: &a x"
    );
    assert!(bad("other: 1\n").message.contains("unknown key"));
    assert!(bad("accounts:\n\t- accessKey: a\n")
        .message
        .contains("tabs"));
    assert!(bad("accounts:\n  - accessKey: a\n      secretKey: b\n")
        .message
        .contains("indentation"));
    assert!(bad("accounts:\n  - accessKey: a\n    admin: maybe\n")
        .message
        .contains("admin"));
    assert!(bad("accounts:\n  - accessKey: a\n    accessKey: b\n")
        .message
        .contains("duplicate"));
    assert_eq!(parse("# nothing\n").unwrap(), PlainAclFile::default());
}

#[test]
fn accounts_map_to_policies_like_auth_migrator() {
    let f = parse(FILE).unwrap();
    let acl = account_acl(&f.accounts[0]).unwrap();
    let custom = acl.policy(PolicyType::Custom).unwrap();
    let shown: Vec<(String, Vec<Action>, Decision)> = custom
        .entries
        .iter()
        .map(|e| (e.resource.key(), e.actions.clone(), e.decision))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("Topic:topicA".into(), vec![Action::All], Decision::Deny),
            (
                "Topic:topicB".into(),
                vec![Action::Pub, Action::Sub],
                Decision::Allow
            ),
            ("Topic:topicC".into(), vec![Action::Sub], Decision::Allow),
            ("Group:groupA".into(), vec![Action::All], Decision::Deny),
            (
                "Group:groupB".into(),
                vec![Action::Pub, Action::Sub],
                Decision::Allow
            ),
            ("Group:groupC".into(), vec![Action::Sub], Decision::Allow),
        ]
    );
    let default = acl.policy(PolicyType::Default).unwrap();
    assert_eq!(default.entries[0].resource.key(), "Topic:*");
    assert_eq!(default.entries[0].decision, Decision::Deny);
    assert_eq!(default.entries[1].resource.key(), "Group:*");
    assert_eq!(default.entries[1].actions, vec![Action::Sub]);
    // An admin with no perms gets no ACL; a blank default perm adds nothing.
    assert_eq!(account_acl(&f.accounts[1]), None);
    assert!(account_acl(&f.accounts[2])
        .unwrap()
        .policy(PolicyType::Default)
        .is_none());
}

#[test]
fn import_creates_users_and_acls_that_authorize_as_before() {
    let store = AuthStore::in_memory();
    store
        .create_user(
            UserInfo {
                username: Some("app".into()),
                password: Some("kept".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
    let report = import(&store, &[parse(FILE).unwrap()]);
    assert_eq!(report.created, vec!["RocketMQ", "rocketmq2"]);
    assert_eq!(report.skipped, vec!["app", "RocketMQ"]);
    assert!(report.failed.is_empty());
    assert_eq!(
        report.ignored_addresses,
        vec!["10.10.103.*", "192.168.0.*", "rocketmq2: 192.168.1.*"]
    );

    let u = store.user("RocketMQ").unwrap();
    assert_eq!(
        (u.password.as_str(), u.user_type, u.user_status),
        ("12345678", UserType::Normal, UserStatus::Enable)
    );
    assert_eq!(store.user("rocketmq2").unwrap().user_type, UserType::Super);
    assert_eq!(
        store.user("app").unwrap().password,
        "kept",
        "existing user untouched"
    );
    assert!(store.acl("User:app").is_none());

    let acl = store.acl("User:RocketMQ").unwrap();
    let check = |r: Resource, a: &'static [Action]| {
        decide(
            Some(&acl),
            &Requirement {
                resource: r,
                actions: a,
            },
            None,
        )
    };
    assert_eq!(check(Resource::topic("topicB"), &[Action::Pub]), Ok(()));
    assert_eq!(
        check(Resource::topic("topicC"), &[Action::Pub]),
        Err(Denial::Deny),
        "default DENY applies"
    );
    assert_eq!(
        check(Resource::topic("topicA"), &[Action::Sub]),
        Err(Denial::Deny)
    );
    assert_eq!(
        check(Resource::topic("other"), &[Action::Sub]),
        Err(Denial::Deny)
    );
    assert_eq!(
        check(Resource::group("any-group"), &[Action::Sub]),
        Ok(()),
        "defaultGroupPerm SUB"
    );
    assert_eq!(
        check(Resource::group("groupA"), &[Action::Sub]),
        Err(Denial::Deny)
    );

    // A second import changes nothing.
    let again = import(&store, &[parse(FILE).unwrap()]);
    assert!(again.created.is_empty());
}

#[test]
fn an_account_without_a_secret_fails_alone() {
    let store = AuthStore::in_memory();
    let f = parse("accounts:\n  - accessKey: a\n  - accessKey: b\n    secretKey: s\n").unwrap();
    let report = import(&store, &[f]);
    assert_eq!(
        report.failed,
        vec![("a".to_string(), "password can not be blank".to_string())]
    );
    assert_eq!(report.created, vec!["b"]);
}
