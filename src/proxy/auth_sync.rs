//! ACL 2.0 in CLUSTER mode. The proxy verifies the gRPC `authorization`
//! header and authorizes each call as LOCAL mode does, against the users
//! and ACLs of the brokers: RocketMQ's proxy reads them from one broker of
//! `rocketMQClusterName` with AUTH_GET_USER / AUTH_GET_ACL through caches
//! refreshed in the background (`ProxyAuthenticationMetadataProvider`,
//! `ProxyAuthorizationMetadataProvider` over `ClusterMetadataService`).
//! ActorMQ keeps a copy of all of them, read with AUTH_LIST_USER /
//! AUTH_LIST_ACL when the proxy starts and every `userCacheRefreshSeconds`
//! (10 s) after, so the per-call check stays a map lookup; a change made at
//! the brokers reaches the proxy within that period. Requests to the
//! brokers are signed with `innerClientAuthenticationCredentials`.

use std::sync::Arc;
use std::time::Duration;

use super::config::ProxyConfig;
use crate::auth::model::{AclInfo, UserInfo};
use crate::auth::{Acl, Auth, AuthConfig, AuthStore, User, UserStatus, UserType};
use crate::client::{Credentials, Routes};
use crate::wire::codes::response as rs;
use crate::wire::RemotingCommand;

const AUTH_LIST_USER: i32 = 3005;
const AUTH_LIST_ACL: i32 = 3010;

/// The credentials the proxy signs its remoting requests with.
pub fn inner_credentials(cfg: &ProxyConfig) -> Result<Option<Credentials>, String> {
    let text = cfg.inner_client_authentication_credentials.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("innerClientAuthenticationCredentials: not JSON ({e})"))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("innerClientAuthenticationCredentials: no string \"{k}\""))
    };
    Ok(Some(Credentials::new(
        field("accessKey")?,
        field("secretKey")?,
    )))
}

/// The proxy's [`Auth`] when either switch is on: an empty in-memory copy,
/// filled by [`start`].
pub fn cluster_auth(cfg: &ProxyConfig) -> Option<Arc<Auth>> {
    if !cfg.authentication_enabled && !cfg.authorization_enabled {
        return None;
    }
    let config = AuthConfig {
        authentication_enabled: cfg.authentication_enabled,
        authorization_enabled: cfg.authorization_enabled,
        cluster_name: cfg.rocketmq_cluster_name.clone(),
        authentication_whitelist: AuthConfig::parse_codes(&cfg.authentication_whitelist),
        authorization_whitelist: AuthConfig::parse_codes(&cfg.authorization_whitelist),
        init_authentication_user: None,
        inner_client_authentication_credentials: None,
    };
    Auth::new(config, AuthStore::in_memory()).ok().map(Arc::new)
}

/// Reads the users and ACLs once (before the proxy serves), then keeps
/// reading them in the background.
pub async fn start(auth: Arc<Auth>, routes: Routes, cfg: &ProxyConfig) {
    let cluster = cfg.rocketmq_cluster_name.clone();
    if let Err(e) = sync_once(&auth, &routes, &cluster).await {
        tracing::warn!(error = %e, "cannot read users and ACLs from the brokers yet");
    }
    let every = Duration::from_secs(
        cfg.user_cache_refresh_seconds
            .min(cfg.acl_cache_refresh_seconds)
            .max(1),
    );
    let weak = Arc::downgrade(&auth);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(auth) = weak.upgrade() else { break };
            if let Err(e) = sync_once(&auth, &routes, &cluster).await {
                tracing::warn!(error = %e, "cannot refresh users and ACLs");
            }
        }
    });
}

/// A master of `cluster` (any master when the cluster is unknown).
async fn one_broker(routes: &Routes, cluster: &str) -> Result<String, String> {
    let info = crate::client::Admin::with_routes(routes.clone())
        .cluster_info()
        .await
        .map_err(|e| e.to_string())?;
    let named = info
        .cluster_addr_table
        .get(cluster)
        .into_iter()
        .flatten()
        .filter_map(|b| info.broker_addr_table.get(b));
    let any = info.broker_addr_table.values();
    named
        .chain(any)
        .find_map(|b| b.master_addr().map(str::to_owned))
        .ok_or_else(|| "no broker registered with the name servers".to_owned())
}

async fn list<T: serde::de::DeserializeOwned>(
    routes: &Routes,
    addr: &str,
    code: i32,
) -> Result<Vec<T>, String> {
    let resp = routes
        .client()
        .invoke(addr, RemotingCommand::request(code), Duration::from_secs(3))
        .await
        .map_err(|e| e.to_string())?;
    if resp.code != rs::SUCCESS {
        return Err(format!(
            "request {code} refused by {addr}: {} {}",
            resp.code,
            resp.remark.unwrap_or_default()
        ));
    }
    let body = resp.body_bytes();
    if body.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&body).map_err(|e| format!("request {code}: bad body: {e}"))
}

/// One read of every user and ACL.
pub async fn sync_once(auth: &Auth, routes: &Routes, cluster: &str) -> Result<(), String> {
    let addr = one_broker(routes, cluster).await?;
    let users: Vec<UserInfo> = list(routes, &addr, AUTH_LIST_USER).await?;
    let acls: Vec<AclInfo> = list(routes, &addr, AUTH_LIST_ACL).await?;
    let users = users
        .into_iter()
        .filter_map(|u| {
            Some(User {
                username: u.username.clone()?,
                password: u.password.clone().unwrap_or_default(),
                user_type: u.user_type().unwrap_or(UserType::Normal),
                user_status: u.user_status().unwrap_or(UserStatus::Enable),
            })
        })
        .collect();
    let acls = acls
        .into_iter()
        .filter_map(|a| Acl::try_from(a).ok())
        .collect();
    auth.store.replace_all(users, acls);
    Ok(())
}
