//! Tests of the user/ACL store: the admin operations and persistence.

use super::*;
use crate::auth::model::{Action, Decision};

fn info(name: &str, pw: Option<&str>, t: Option<&str>) -> UserInfo {
    UserInfo {
        username: Some(name.into()),
        password: pw.map(Into::into),
        user_type: t.map(Into::into),
        user_status: None,
    }
}

fn acl_info(json: &str) -> Option<AclInfo> {
    Some(serde_json::from_str(json).unwrap())
}

const ACL_A: &str = r#"{"subject":"User:alice","policies":[{"entries":[{"resource":"Topic:a*","actions":["Pub"],"decision":"Allow"}]}]}"#;

#[test]
fn user_crud_with_rocketmq_errors() {
    let s = AuthStore::in_memory();
    s.create_user(info("alice", Some("pw"), None), None)
        .unwrap();
    let a = s.get_user("alice").unwrap().unwrap();
    assert_eq!(
        (a.user_type, a.user_status),
        (UserType::Normal, UserStatus::Enable)
    );
    assert_eq!(
        s.create_user(info("alice", Some("pw"), None), None),
        Err(AuthError::Authentication("The user is existed".into()))
    );
    assert_eq!(
        s.create_user(info("bob", None, None), None),
        Err(AuthError::Authentication(
            "password can not be blank".into()
        ))
    );
    assert_eq!(
        s.create_user(info(" ", Some("x"), None), None)
            .unwrap_err()
            .code(),
        crate::wire::codes::response::INVALID_PARAMETER
    );
    assert_eq!(
        s.update_user(info("nobody", Some("x"), None), None),
        Err(AuthError::Authentication("The user is not exist".into()))
    );
    // Update keeps what the body leaves out.
    let mut u = info("alice", Some(""), None);
    u.user_status = Some("disable".into());
    s.update_user(u, None).unwrap();
    let a = s.get_user("alice").unwrap().unwrap();
    assert_eq!(
        (a.password.as_str(), a.user_status),
        ("pw", UserStatus::Disable)
    );

    s.create_user(info("bob", Some("b"), None), None).unwrap();
    assert_eq!(s.list_users(Some("li")).len(), 1);
    assert_eq!(s.list_users(None).len(), 2);
    s.delete_user("bob", None).unwrap();
    s.delete_user("bob", None).unwrap();
    assert_eq!(s.get_user("bob").unwrap(), None);
}

#[test]
fn only_super_users_touch_super_users() {
    let s = AuthStore::in_memory();
    s.bootstrap(Some(r#"{"username":"root","password":"r"}"#), None)
        .unwrap();
    s.create_user(info("n", Some("p"), None), Some("root"))
        .unwrap();
    let e = s
        .create_user(info("x", Some("p"), Some("Super")), Some("n"))
        .unwrap_err();
    assert_eq!(
        e,
        AuthError::System("The super user can only be create by super user".into())
    );
    assert_eq!(e.code(), crate::wire::codes::response::SYSTEM_ERROR);
    assert_eq!(
        s.update_user(info("root", Some("new"), None), Some("n")),
        Err(AuthError::Authentication(
            "The super user can only be update by super user".into()
        ))
    );
    assert!(s.delete_user("root", Some("n")).is_err());
    assert!(
        s.delete_user("root", Some("ghost")).is_err(),
        "unknown caller"
    );
    s.create_user(info("x", Some("p"), Some("Super")), Some("root"))
        .unwrap();
    s.delete_user("x", Some("root")).unwrap();
}

#[test]
fn bootstrap_creates_super_users_once() {
    let s = AuthStore::in_memory();
    let init = r#"{"username":"admin","password":"pw1"}"#;
    let inner = r#"{"accessKey":"inner","secretKey":"sk"}"#;
    s.bootstrap(Some(init), Some(inner)).unwrap();
    assert_eq!(s.user("admin").unwrap().user_type, UserType::Super);
    assert_eq!(s.user("inner").unwrap().password, "sk");
    // An existing user is left alone.
    s.update_user(info("admin", Some("changed"), None), None)
        .unwrap();
    s.bootstrap(Some(init), None).unwrap();
    assert_eq!(s.user("admin").unwrap().password, "changed");
    assert_eq!(
        s.bootstrap(Some("{bad"), None),
        Err(AuthError::Authentication(
            "Init authentication user error.".into()
        ))
    );
}

#[test]
fn acl_crud_with_rocketmq_errors() {
    let s = AuthStore::in_memory();
    assert_eq!(
        s.upsert_acl(acl_info(ACL_A), "User:alice"),
        Err(AuthError::Authorization(
            "The subject of User:alice is not exist.".into()
        ))
    );
    s.create_user(info("alice", Some("pw"), None), None)
        .unwrap();
    assert_eq!(
        s.upsert_acl(None, "User:alice"),
        Err(AuthError::Authorization("The body of acl is null".into()))
    );
    s.upsert_acl(acl_info(ACL_A), "User:alice").unwrap();
    // Subject from the header when the body has none; entries merge.
    let more = r#"{"policies":[{"policyType":"Default","entries":[{"resource":"Group:*","actions":["Sub"],"decision":"Allow"}]},{"entries":[{"resource":"Topic:a*","actions":["Pub","Sub"],"decision":"Deny"}]}]}"#;
    s.upsert_acl(acl_info(more), "User:alice").unwrap();
    let acl = s.get_acl("User:alice").unwrap().unwrap();
    let custom = acl.policy(PolicyType::Custom).unwrap();
    assert_eq!(custom.entries.len(), 1);
    assert_eq!(
        (custom.entries[0].decision, custom.entries[0].actions.len()),
        (Decision::Deny, 2)
    );
    assert_eq!(
        acl.policy(PolicyType::Default).unwrap().entries[0].actions,
        vec![Action::Sub]
    );

    assert_eq!(s.list_acls(Some("ali"), None).len(), 1);
    assert_eq!(s.list_acls(Some("bob"), None).len(), 0);
    let only_groups = s.list_acls(None, Some("Group"));
    assert_eq!(only_groups[0].policies.len(), 1);
    assert_eq!(only_groups[0].policies[0].policy_type, PolicyType::Default);
    assert!(s.list_acls(None, Some("Cluster")).is_empty());

    s.delete_acl("User:alice", Some("Default"), Some("Group:*"))
        .unwrap();
    assert!(s
        .get_acl("User:alice")
        .unwrap()
        .unwrap()
        .policy(PolicyType::Default)
        .is_none());
    assert_eq!(
        s.delete_acl("User:alice", None, Some("Bogus:x")),
        Err(AuthError::Authorization("The resource is null.".into()))
    );
    // The last entry gone: the ACL goes too.
    s.delete_acl("User:alice", None, Some("Topic:a*")).unwrap();
    assert_eq!(s.get_acl("User:alice").unwrap(), None);
    assert_eq!(
        s.delete_acl("User:alice", None, None),
        Err(AuthError::Authorization("The acl is not exist.".into()))
    );
    assert_eq!(
        s.get_acl("User:ghost"),
        Err(AuthError::Authorization("The subject is not exist.".into()))
    );
    // Deleting a user deletes its ACL.
    s.upsert_acl(acl_info(ACL_A), "User:alice").unwrap();
    s.delete_user("alice", None).unwrap();
    assert!(s.acl("User:alice").is_none());
}

#[test]
fn persists_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = AuthStore::open_under_root(dir.path()).unwrap();
        s.bootstrap(Some(r#"{"username":"root","password":"r"}"#), None)
            .unwrap();
        s.create_user(info("alice", Some("pw"), None), None)
            .unwrap();
        s.upsert_acl(acl_info(ACL_A), "User:alice").unwrap();
    }
    let users = std::fs::read_to_string(dir.path().join("config").join(USERS_FILE)).unwrap();
    assert!(users.contains(r#""userType": "Super""#), "{users}");
    let acls = std::fs::read_to_string(dir.path().join("config").join(ACLS_FILE)).unwrap();
    assert!(acls.contains(r#""resource": "Topic:a*""#), "{acls}");
    assert!(!dir.path().join("config").join("users.json.tmp").exists());

    let s = AuthStore::open_under_root(dir.path()).unwrap();
    assert_eq!(s.user("root").unwrap().user_type, UserType::Super);
    assert_eq!(s.user("alice").unwrap().password, "pw");
    let acl = s.acl("User:alice").unwrap();
    assert_eq!(acl.policies[0].entries[0].resource.key(), "Topic:a*");

    s.delete_user("alice", None).unwrap();
    let s = AuthStore::open_under_root(dir.path()).unwrap();
    assert!(s.user("alice").is_none());
    assert!(s.acl("User:alice").is_none());
}

#[test]
fn a_corrupt_file_is_an_error_not_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(USERS_FILE), "[{").unwrap();
    assert!(matches!(
        AuthStore::open(dir.path()),
        Err(AuthError::System(_))
    ));
}
