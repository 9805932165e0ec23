//! Remoting adapter of ACL 2.0 administration (AUTH_CREATE_USER 3001 …
//! AUTH_LIST_ACL 3010), and the authentication / authorization check every
//! request passes before its service is called.

use std::net::IpAddr;
use std::sync::Arc;

use super::{bad_body, error, ok, refused};
use crate::auth::authorize::auth_codes as ac;
use crate::auth::{Auth, AuthError};
use crate::service::broker::{AuthAdmin, AuthAdminReply, BrokerService};
use crate::service::Caller;
use crate::wire::RemotingCommand;

/// Authenticates `req` (its `AccessKey` / `Signature`) and authorizes it
/// for `source`; the authenticated user, if any.
pub fn check(
    auth: &Auth,
    req: &RemotingCommand,
    source: IpAddr,
) -> Result<Option<Arc<str>>, AuthError> {
    let body = req.body_bytes();
    let user = auth.authenticate_remoting(req.code, req.version, &req.ext, &body)?;
    auth.authorize_remoting(req.code, &req.ext, &body, Some(source))?;
    Ok(user.map(|u| u.username))
}

/// A refused check, with RocketMQ's code and remark.
pub fn denied(req: &RemotingCommand, e: AuthError) -> RemotingCommand {
    error(req, e.code(), e.remark().to_owned())
}

pub fn is_admin_code(code: i32) -> bool {
    (ac::AUTH_CREATE_USER..=ac::AUTH_LIST_ACL).contains(&code)
}

fn field(req: &RemotingCommand, key: &str) -> Option<String> {
    req.ext
        .get(key)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn body<T: serde::de::DeserializeOwned>(req: &RemotingCommand) -> Result<Option<T>, String> {
    let raw = req.body_bytes();
    if raw.is_empty() {
        return Ok(None);
    }
    crate::wire::json::from_fastjson(&raw)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The request as a typed admin operation; a body that does not parse is
/// the error.
fn operation(req: &RemotingCommand) -> Result<AuthAdmin, String> {
    let user = |name: Option<String>| -> Result<crate::auth::model::UserInfo, String> {
        let mut info: crate::auth::model::UserInfo = body(req)?.unwrap_or_default();
        if info.username.is_none() {
            info.username = name;
        }
        Ok(info)
    };
    let subject = field(req, "subject").unwrap_or_default();
    Ok(match req.code {
        ac::AUTH_CREATE_USER => AuthAdmin::CreateUser(user(field(req, "username"))?),
        ac::AUTH_UPDATE_USER => AuthAdmin::UpdateUser(user(field(req, "username"))?),
        ac::AUTH_DELETE_USER => AuthAdmin::DeleteUser(field(req, "username").unwrap_or_default()),
        ac::AUTH_GET_USER => AuthAdmin::GetUser(field(req, "username").unwrap_or_default()),
        ac::AUTH_LIST_USER => AuthAdmin::ListUsers(field(req, "filter")),
        ac::AUTH_CREATE_ACL | ac::AUTH_UPDATE_ACL => AuthAdmin::UpsertAcl {
            info: body(req)?,
            subject,
        },
        ac::AUTH_DELETE_ACL => AuthAdmin::DeleteAcl {
            subject,
            policy_type: field(req, "policyType"),
            resource: field(req, "resource"),
        },
        ac::AUTH_GET_ACL => AuthAdmin::GetAcl(subject),
        _ => AuthAdmin::ListAcls {
            subject_filter: field(req, "subjectFilter"),
            resource_filter: field(req, "resourceFilter"),
        },
    })
}

pub fn serve(svc: &BrokerService, caller: &Caller, req: &RemotingCommand) -> RemotingCommand {
    let op = match operation(req) {
        Ok(op) => op,
        Err(e) => return bad_body(req, "user or acl", e),
    };
    let json = |v: &dyn erased::Json| ok(req).with_body(v.to_json());
    match svc.auth_admin(caller, op) {
        Ok(AuthAdminReply::Done) => ok(req),
        Ok(AuthAdminReply::User(u)) => u.map_or_else(|| ok(req), |u| json(&u)),
        Ok(AuthAdminReply::Users(us)) => json(&us),
        Ok(AuthAdminReply::Acl(a)) => a.map_or_else(|| ok(req), |a| json(&a)),
        Ok(AuthAdminReply::Acls(as_)) => json(&as_),
        Err(r) => refused(req, r),
    }
}

mod erased {
    /// Any serializable body (keeps `serve` to one match).
    pub trait Json {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}
