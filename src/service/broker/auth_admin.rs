//! Users and ACLs (RocketMQ 5.x ACL 2.0 admin: AUTH_CREATE_USER 3001 …
//! AUTH_LIST_ACL 3010). Only served with authentication or authorization
//! on; who may call them is decided by the request table (`Cluster`
//! Update / Get) and the store (only a super user creates or changes a
//! super user).

use super::BrokerService;
use crate::auth::model::{AclInfo, UserInfo};
use crate::auth::Auth;
use crate::service::{Caller, Refusal};

/// A user or ACL administration request.
#[derive(Debug, Clone)]
pub enum AuthAdmin {
    CreateUser(UserInfo),
    UpdateUser(UserInfo),
    DeleteUser(String),
    GetUser(String),
    ListUsers(Option<String>),
    /// Create and update are one operation (policies merged in).
    UpsertAcl {
        subject: String,
        info: Option<AclInfo>,
    },
    DeleteAcl {
        subject: String,
        policy_type: Option<String>,
        resource: Option<String>,
    },
    GetAcl(String),
    ListAcls {
        subject_filter: Option<String>,
        resource_filter: Option<String>,
    },
}

/// What an administration request answers.
#[derive(Debug, Clone)]
pub enum AuthAdminReply {
    Done,
    User(Option<UserInfo>),
    Users(Vec<UserInfo>),
    Acl(Option<AclInfo>),
    Acls(Vec<AclInfo>),
}

impl BrokerService {
    fn auth(&self) -> Result<&Auth, Refusal> {
        self.ctx().auth.as_deref().ok_or_else(|| {
            Refusal::Failed(
                "authentication and authorization are off on this broker (authenticationEnabled / authorizationEnabled)".into(),
            )
        })
    }

    pub fn auth_admin(&self, caller: &Caller, op: AuthAdmin) -> Result<AuthAdminReply, Refusal> {
        let store = &self.auth()?.store;
        let me = caller.user.as_deref();
        Ok(match op {
            AuthAdmin::CreateUser(u) => {
                store.create_user(u, me)?;
                AuthAdminReply::Done
            }
            AuthAdmin::UpdateUser(u) => {
                store.update_user(u, me)?;
                AuthAdminReply::Done
            }
            AuthAdmin::DeleteUser(name) => {
                store.delete_user(&name, me)?;
                AuthAdminReply::Done
            }
            AuthAdmin::GetUser(name) => {
                AuthAdminReply::User(store.get_user(&name)?.as_ref().map(UserInfo::from))
            }
            AuthAdmin::ListUsers(filter) => AuthAdminReply::Users(
                store
                    .list_users(filter.as_deref())
                    .iter()
                    .map(UserInfo::from)
                    .collect(),
            ),
            AuthAdmin::UpsertAcl { subject, info } => {
                store.upsert_acl(info, &subject)?;
                AuthAdminReply::Done
            }
            AuthAdmin::DeleteAcl {
                subject,
                policy_type,
                resource,
            } => {
                store.delete_acl(&subject, policy_type.as_deref(), resource.as_deref())?;
                AuthAdminReply::Done
            }
            AuthAdmin::GetAcl(subject) => {
                AuthAdminReply::Acl(store.get_acl(&subject)?.map(AclInfo::from))
            }
            AuthAdmin::ListAcls {
                subject_filter,
                resource_filter,
            } => AuthAdminReply::Acls(
                store
                    .list_acls(subject_filter.as_deref(), resource_filter.as_deref())
                    .into_iter()
                    .map(AclInfo::from)
                    .collect(),
            ),
        })
    }
}
