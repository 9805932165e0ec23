//! Tests of the facade: authentication and authorization end to end.

use super::*;
use crate::wire::codes::request as rq;
use crate::wire::codes::response as rs;

fn config() -> AuthConfig {
    AuthConfig {
        authentication_enabled: true,
        authorization_enabled: true,
        cluster_name: "DefaultCluster".into(),
        init_authentication_user: Some(r#"{"username":"root","password":"rootpw"}"#.into()),
        ..AuthConfig::default()
    }
}

fn auth() -> Auth {
    let a = Auth::new(config(), AuthStore::in_memory()).unwrap();
    let user = |n: &str, p: &str| model::UserInfo {
        username: Some(n.into()),
        password: Some(p.into()),
        ..Default::default()
    };
    a.store.create_user(user("alice", "alicepw"), None).unwrap();
    a.store.create_user(user("carol", "carolpw"), None).unwrap();
    let acl = r#"{"subject":"User:alice","policies":[{"entries":[
        {"resource":"Topic:orders*","actions":["Pub"],"sourceIps":["10.0.0.0/8"],"decision":"Allow"},
        {"resource":"Topic:orders-secret","actions":["All"],"decision":"Deny"},
        {"resource":"Group:g1","actions":["Sub"],"decision":"Allow"}]}]}"#;
    a.store
        .upsert_acl(Some(serde_json::from_str(acl).unwrap()), "User:alice")
        .unwrap();
    a
}

fn signed(pairs: &[(&str, &str)], body: &[u8], ak: &str, sk: &str) -> ExtFields {
    let mut e = ExtFields::default();
    for (k, v) in pairs {
        e.insert(k, v);
    }
    signature::sign_remoting(&mut e, body, ak, sk, None);
    e
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn authentication_outcomes_and_remarks() {
    let a = auth();
    let ext = signed(&[("b", "orders-1")], b"m", "alice", "alicepw");
    let who = a
        .authenticate_remoting(rq::SEND_MESSAGE_V2, 479, &ext, b"m")
        .unwrap();
    assert_eq!(who.unwrap().username.as_ref(), "alice");

    let fail = |ext: &ExtFields, body: &[u8]| {
        a.authenticate_remoting(rq::SEND_MESSAGE_V2, 479, ext, body)
            .unwrap_err()
    };
    assert_eq!(fail(&ext, b"x").remark(), "check signature failed.");
    assert_eq!(fail(&ext, b"x").code(), rs::NO_PERMISSION);
    let wrong_key = signed(&[("b", "t")], b"", "alice", "guess");
    assert_eq!(fail(&wrong_key, b"").remark(), "check signature failed.");
    let ghost = signed(&[("b", "t")], b"", "ghost", "x");
    assert_eq!(fail(&ghost, b"").remark(), "User:ghost is not found.");
    let mut unsigned = ExtFields::default();
    unsigned.insert("b", "t");
    assert_eq!(fail(&unsigned, b"").remark(), "username cannot be null.");

    let disable = model::UserInfo {
        username: Some("carol".into()),
        user_status: Some("Disable".into()),
        ..Default::default()
    };
    a.store.update_user(disable, None).unwrap();
    let carol = signed(&[("b", "t")], b"", "carol", "carolpw");
    assert_eq!(fail(&carol, b"").remark(), "User:carol is disabled.");

    // Off, or whitelisted: no user, no check.
    let mut cfg = config();
    cfg.authentication_whitelist = AuthConfig::parse_codes(" 34, 105");
    let b = Auth::new(cfg, AuthStore::in_memory()).unwrap();
    assert_eq!(
        b.authenticate_remoting(rq::HEART_BEAT, 479, &unsigned, b""),
        Ok(None)
    );
    assert!(b
        .authenticate_remoting(rq::SEND_MESSAGE, 479, &unsigned, b"")
        .is_err());
    let off = Auth::new(AuthConfig::default(), AuthStore::in_memory()).unwrap();
    assert_eq!(
        off.authenticate_remoting(rq::SEND_MESSAGE, 479, &unsigned, b""),
        Ok(None)
    );
}

#[test]
fn grpc_authentication() {
    let a = auth();
    let dt = "20240101T000000Z";
    let h = signature::grpc_authorization_value("alice", "alicepw", dt);
    assert_eq!(
        a.authenticate_grpc(Some(&h), Some(dt))
            .unwrap()
            .unwrap()
            .username
            .as_ref(),
        "alice"
    );
    assert_eq!(
        a.authenticate_grpc(Some(&h), Some("20240101T000001Z"))
            .unwrap_err()
            .remark(),
        "check signature failed."
    );
    assert_eq!(
        a.authenticate_grpc(Some(&h), None).unwrap_err().remark(),
        "datetime is null."
    );
    assert_eq!(
        a.authenticate_grpc(None, Some(dt)).unwrap_err().remark(),
        "username cannot be null."
    );
}

#[test]
fn authorization_outcomes_and_remarks() {
    let a = auth();
    let send = |topic: &str, user: &str, from: &str| {
        let ext = signed(&[("b", topic)], b"", user, "whatever");
        a.authorize_remoting(rq::SEND_MESSAGE_V2, &ext, b"", ip(from))
    };
    assert_eq!(send("orders-1", "alice", "10.1.2.3"), Ok(()));
    let e = send("orders-1", "alice", "192.168.0.1").unwrap_err();
    assert_eq!(e.code(), rs::NO_PERMISSION);
    assert_eq!(
        e.remark(),
        "User:alice has no permission to access Topic:orders-1 from 192.168.0.1, no matched policies."
    );
    assert_eq!(
        send("orders-secret", "alice", "10.1.2.3").unwrap_err().remark(),
        "User:alice has no permission to access Topic:orders-secret from 10.1.2.3, the decision is deny."
    );
    // A user without an ACL, and a super user.
    assert!(send("orders-1", "carol", "10.1.2.3").is_err());
    assert_eq!(send("anything", "root", "1.1.1.1"), Ok(()));
    assert_eq!(
        send("t", "ghost", "1.1.1.1").unwrap_err().remark(),
        "User:ghost not found."
    );

    // Every requirement must pass: the pull's group is allowed, the topic not.
    let pull = signed(
        &[("topic", "orders-1"), ("consumerGroup", "g1")],
        b"",
        "alice",
        "x",
    );
    let e = a
        .authorize_remoting(rq::PULL_MESSAGE, &pull, b"", ip("10.0.0.1"))
        .unwrap_err();
    assert!(e.remark().contains("Topic:orders-1"), "{}", e.remark());
    // Creating a topic needs Create; cluster admin needs Cluster:Update.
    let create = signed(&[("topic", "orders-2")], b"", "alice", "x");
    assert!(a
        .authorize_remoting(rq::UPDATE_AND_CREATE_TOPIC, &create, b"", ip("10.0.0.1"))
        .is_err());
    let admin = signed(&[("username", "bob")], b"", "alice", "x");
    let e = a
        .authorize_remoting(auth_codes::AUTH_CREATE_USER, &admin, b"", ip("10.0.0.1"))
        .unwrap_err();
    assert!(
        e.remark().contains("Cluster:DefaultCluster"),
        "{}",
        e.remark()
    );

    // No access key with authorization on: RocketMQ's generic refusal.
    let mut bare = ExtFields::default();
    bare.insert("b", "orders-1");
    let e = a
        .authorize_remoting(rq::SEND_MESSAGE_V2, &bare, b"", ip("10.0.0.1"))
        .unwrap_err();
    assert_eq!(
        e.remark(),
        "Authorization failed. Please verify your access rights and try again."
    );
    // Codes without requirements pass; whitelisted codes pass.
    assert_eq!(
        a.authorize_remoting(rq::GET_ALL_TOPIC_CONFIG, &bare, b"", None),
        Ok(())
    );
    let mut cfg = config();
    cfg.authorization_whitelist = vec![rq::SEND_MESSAGE_V2];
    let b = Auth::new(cfg, AuthStore::in_memory()).unwrap();
    assert_eq!(
        b.authorize_remoting(rq::SEND_MESSAGE_V2, &bare, b"", None),
        Ok(())
    );
}

#[test]
fn errors_map_onto_service_refusals() {
    let r: Refusal = AuthError::Authorization("no".into()).into();
    assert_eq!(r.remoting_code(), rs::NO_PERMISSION);
    let r: Refusal = AuthError::InvalidParameter("x".into()).into();
    assert_eq!(r.remoting_code(), rs::INVALID_PARAMETER);
    let r: Refusal = AuthError::System("x".into()).into();
    assert_eq!(r.remoting_code(), rs::SYSTEM_ERROR);
}
