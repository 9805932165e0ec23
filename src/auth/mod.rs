//! Authentication and authorization (RocketMQ's ACL 2.0, `rocketmq-auth`):
//! who is asking (the signed `AccessKey`) and whether they may.
//!
//! * [`signature`]: the remoting and gRPC request signatures
//!   (`AclClientRPCHook`, `AclSigner`, `DefaultAuthenticationContextBuilder`).
//! * [`model`]: users and ACLs (`User`, `Acl`, `Policy`, `PolicyEntry`,
//!   `Resource`) and the admin bodies `UserInfo` / `AclInfo`.
//! * [`authorize`]: the decision (`UserAuthorizationHandler`,
//!   `AclAuthorizationHandler`) and what each request code needs
//!   (`DefaultAuthorizationContextBuilder`).
//! * [`store`]: users and ACLs on disk and the ten admin operations
//!   (`AuthenticationMetadataManagerImpl`, `AuthorizationMetadataManagerImpl`).
//! * [`plain_acl`]: import of a 4.x `plain_acl.yml` (`AuthMigrator`).
//!
//! [`Auth`] is the facade the server calls: `authenticate_remoting` once per
//! request (the broker's `AuthenticationPipeline`), then `authorize` with the
//! request's [`Requirement`]s (`AuthorizationPipeline`). Both pipelines turn
//! every refusal into `NO_PERMISSION` (16) with the exception's message as
//! the remark; [`AuthError`] carries both.

pub mod authorize;
pub mod model;
pub mod plain_acl;
pub mod settings;
pub mod signature;
pub mod store;

use std::net::IpAddr;
use std::sync::Arc;

pub use authorize::{auth_codes, requirements, Requirement};
pub use model::{Acl, User, UserStatus, UserType};
pub use store::AuthStore;

use crate::service::Refusal;
use crate::wire::codes::response as rs;
use crate::wire::command::ExtFields;

/// A refusal with RocketMQ's response code and remark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `AuthenticationException`: NO_PERMISSION.
    #[error("{0}")]
    Authentication(String),
    /// `AuthorizationException`: NO_PERMISSION.
    #[error("{0}")]
    Authorization(String),
    /// A request field missing (admin requests): INVALID_PARAMETER.
    #[error("{0}")]
    InvalidParameter(String),
    /// Anything else (admin requests, storage): SYSTEM_ERROR.
    #[error("{0}")]
    System(String),
}

impl AuthError {
    /// The remoting response code.
    pub fn code(&self) -> i32 {
        match self {
            AuthError::Authentication(_) | AuthError::Authorization(_) => rs::NO_PERMISSION,
            AuthError::InvalidParameter(_) => rs::INVALID_PARAMETER,
            AuthError::System(_) => rs::SYSTEM_ERROR,
        }
    }

    /// The remark shown to the client.
    pub fn remark(&self) -> &str {
        match self {
            AuthError::Authentication(s)
            | AuthError::Authorization(s)
            | AuthError::InvalidParameter(s)
            | AuthError::System(s) => s,
        }
    }
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Refusal {
        match e {
            AuthError::Authentication(s) | AuthError::Authorization(s) => Refusal::NoPermission(s),
            AuthError::InvalidParameter(s) => Refusal::InvalidParameter(s),
            AuthError::System(s) => Refusal::Failed(s),
        }
    }
}

/// Switches and bootstrap values (`AuthConfig`).
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub authentication_enabled: bool,
    pub authorization_enabled: bool,
    /// This broker's cluster, the resource of `Cluster` checks.
    pub cluster_name: String,
    /// Request codes never authenticated (`authenticationWhitelist`).
    pub authentication_whitelist: Vec<i32>,
    /// Request codes never authorized (`authorizationWhitelist`).
    pub authorization_whitelist: Vec<i32>,
    /// `initAuthenticationUser`: `{"username":..,"password":..}`.
    pub init_authentication_user: Option<String>,
    /// `innerClientAuthenticationCredentials`: `{"accessKey":..,"secretKey":..}`.
    pub inner_client_authentication_credentials: Option<String>,
}

impl AuthConfig {
    /// Parses a comma-separated list of request codes (the whitelists).
    pub fn parse_codes(list: &str) -> Vec<i32> {
        list.split(',')
            .filter_map(|c| c.trim().parse().ok())
            .collect()
    }
}

/// A caller whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthedUser {
    pub username: Arc<str>,
}

/// The facade: the store plus the switches.
pub struct Auth {
    pub config: AuthConfig,
    pub store: AuthStore,
}

impl Auth {
    /// Wraps an opened store and applies the bootstrap users.
    pub fn new(config: AuthConfig, store: AuthStore) -> Result<Auth, AuthError> {
        store.bootstrap(
            config.init_authentication_user.as_deref(),
            config.inner_client_authentication_credentials.as_deref(),
        )?;
        Ok(Auth { config, store })
    }

    /// Authenticates a remoting request (`DefaultAuthenticationHandler`).
    /// `Ok(None)` when authentication is off or `code` is whitelisted.
    pub fn authenticate_remoting(
        &self,
        code: i32,
        version: i32,
        ext: &ExtFields,
        body: &[u8],
    ) -> Result<Option<AuthedUser>, AuthError> {
        if !self.config.authentication_enabled
            || self.config.authentication_whitelist.contains(&code)
        {
            return Ok(None);
        }
        let username = ext
            .get(signature::ACCESS_KEY)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| AuthError::Authentication("username cannot be null.".into()))?;
        let user = self.checked_user(username)?;
        if !signature::verify_remoting(ext, version, body, &user.password) {
            return Err(AuthError::Authentication("check signature failed.".into()));
        }
        Ok(Some(AuthedUser {
            username: Arc::from(username),
        }))
    }

    /// Authenticates a gRPC call from its `authorization` and
    /// `x-mq-date-time` metadata. A call without `authorization` has no user
    /// and is refused, like a remoting request without `AccessKey`.
    pub fn authenticate_grpc(
        &self,
        authorization: Option<&str>,
        date_time: Option<&str>,
    ) -> Result<Option<AuthedUser>, AuthError> {
        if !self.config.authentication_enabled {
            return Ok(None);
        }
        let no_user = || AuthError::Authentication("username cannot be null.".into());
        let header = authorization
            .filter(|a| !a.is_empty())
            .ok_or_else(no_user)?;
        let parsed = signature::parse_grpc_authorization(header, date_time)
            .map_err(|e| AuthError::Authentication(e.to_string()))?;
        if parsed.access_key.is_empty() {
            return Err(no_user());
        }
        let user = self.checked_user(&parsed.access_key)?;
        if !signature::verify_grpc(&parsed, date_time.unwrap_or(""), &user.password) {
            return Err(AuthError::Authentication("check signature failed.".into()));
        }
        Ok(Some(AuthedUser {
            username: Arc::from(parsed.access_key.as_str()),
        }))
    }

    fn checked_user(&self, username: &str) -> Result<Arc<User>, AuthError> {
        let user = self
            .store
            .user(username)
            .ok_or_else(|| AuthError::Authentication(format!("User:{username} is not found.")))?;
        if user.user_status == UserStatus::Disable {
            return Err(AuthError::Authentication(format!(
                "User:{username} is disabled."
            )));
        }
        Ok(user)
    }

    /// Authorizes every requirement of a request for `user` (the access key
    /// the request carried, authenticated or not) from `source`.
    /// `Ok(())` when authorization is off, `code` is whitelisted or there
    /// is nothing to check.
    pub fn authorize(
        &self,
        user: Option<&str>,
        code: i32,
        reqs: &[Requirement],
        source: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        if !self.config.authorization_enabled
            || reqs.is_empty()
            || self.config.authorization_whitelist.contains(&code)
        {
            return Ok(());
        }
        // RocketMQ fails on a null subject with its generic message.
        let username = user.ok_or_else(|| {
            AuthError::Authorization(
                "Authorization failed. Please verify your access rights and try again.".into(),
            )
        })?;
        let u = self
            .store
            .user(username)
            .ok_or_else(|| AuthError::Authorization(format!("User:{username} not found.")))?;
        // RocketMQ's UserAuthorizationHandler means to refuse disabled users
        // here but reads the status of the bare subject, not of the stored
        // user; ActorMQ checks the stored user.
        if u.user_status == UserStatus::Disable {
            return Err(AuthError::Authentication(format!(
                "User:{username} is disabled."
            )));
        }
        if u.user_type == UserType::Super {
            return Ok(());
        }
        let acl = self.store.acl(&model::user_subject(username));
        for req in reqs {
            if let Err(denial) = authorize::decide(acl.as_deref(), req, source) {
                let from = source.map(|ip| ip.to_string()).unwrap_or_default();
                return Err(AuthError::Authorization(format!(
                    "User:{username} has no permission to access {} from {from}, {}",
                    req.resource.key(),
                    denial.detail()
                )));
            }
        }
        Ok(())
    }

    /// Builds the requirements of a remoting request and authorizes them.
    pub fn authorize_remoting(
        &self,
        code: i32,
        ext: &ExtFields,
        body: &[u8],
        source: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        if !self.config.authorization_enabled {
            return Ok(());
        }
        let reqs = requirements(code, ext, body, &self.config.cluster_name)
            .map_err(|e| AuthError::Authorization(e.to_string()))?;
        self.authorize(ext.get(signature::ACCESS_KEY), code, &reqs, source)
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
