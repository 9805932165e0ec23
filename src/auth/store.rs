//! Users and ACLs: in memory, persisted as JSON under the broker's config
//! directory (`users.json`, `acls.json`, each written atomically), and the
//! ten admin operations with RocketMQ's checks and messages
//! (`AuthenticationMetadataManagerImpl`, `AuthorizationMetadataManagerImpl`,
//! the `AUTH_*` handlers of `AdminBrokerProcessor`,
//! `LocalAuthenticationMetadataProvider` / `LocalAuthorizationMetadataProvider`
//! for the list filters). RocketMQ keeps these in RocksDB; the files hold
//! the admin body shapes (`UserInfo`, `AclInfo`).
//!
//! Bootstrap (`AuthenticationMetadataManagerImpl.initUser`): the
//! `initAuthenticationUser` and `innerClientAuthenticationCredentials`
//! users are created as super users when absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use super::model::{
    subject_username, user_subject, Acl, AclInfo, PolicyType, Resource, User, UserInfo, UserStatus,
    UserType,
};
use super::AuthError;
use crate::store::metadata::{read_json, write_json_atomic};

pub const USERS_FILE: &str = "users.json";
pub const ACLS_FILE: &str = "acls.json";

#[derive(Default)]
struct State {
    users: BTreeMap<String, Arc<User>>,
    /// By subject key (`User:<name>`).
    acls: BTreeMap<String, Arc<Acl>>,
}

/// The users and ACLs of one broker.
pub struct AuthStore {
    dir: Option<PathBuf>,
    state: RwLock<State>,
}

fn authn(s: impl Into<String>) -> AuthError {
    AuthError::Authentication(s.into())
}

fn authz(s: impl Into<String>) -> AuthError {
    AuthError::Authorization(s.into())
}

fn blank(s: Option<&str>) -> bool {
    s.is_none_or(|s| s.trim().is_empty())
}

impl AuthStore {
    /// Loads `users.json` and `acls.json` from `config_dir` (absent files
    /// are empty); every change is written back there.
    pub fn open(config_dir: &Path) -> Result<AuthStore, AuthError> {
        let load = |name: &str| config_dir.join(name);
        let sys = |e: crate::store::StoreError| AuthError::System(e.to_string());
        let users: Vec<User> = read_json(&load(USERS_FILE))
            .map_err(sys)?
            .unwrap_or_default();
        let acls: Vec<Acl> = read_json(&load(ACLS_FILE))
            .map_err(sys)?
            .unwrap_or_default();
        let state = State {
            users: users
                .into_iter()
                .map(|u| (u.username.clone(), Arc::new(u)))
                .collect(),
            acls: acls
                .into_iter()
                .map(|a| (a.subject.clone(), Arc::new(a)))
                .collect(),
        };
        Ok(AuthStore {
            dir: Some(config_dir.to_path_buf()),
            state: RwLock::new(state),
        })
    }

    /// `<storePathRootDir>/config`.
    pub fn open_under_root(store_root: &Path) -> Result<AuthStore, AuthError> {
        AuthStore::open(&store_root.join("config"))
    }

    /// A store that is never written (tests, auth switched off).
    pub fn in_memory() -> AuthStore {
        AuthStore {
            dir: None,
            state: RwLock::new(State::default()),
        }
    }

    /// Replaces every user and ACL at once (a CLUSTER-mode proxy's copy of
    /// what the brokers hold); nothing is written.
    pub fn replace_all(&self, users: Vec<User>, acls: Vec<Acl>) {
        let mut st = self.write();
        st.users = users
            .into_iter()
            .map(|u| (u.username.clone(), Arc::new(u)))
            .collect();
        st.acls = acls
            .into_iter()
            .map(|a| (a.subject.clone(), Arc::new(a)))
            .collect();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, st: &State, users: bool, acls: bool) -> Result<(), AuthError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let sys = |e: crate::store::StoreError| AuthError::System(e.to_string());
        if users {
            let v: Vec<&User> = st.users.values().map(|u| u.as_ref()).collect();
            write_json_atomic(&dir.join(USERS_FILE), &v).map_err(sys)?;
        }
        if acls {
            let v: Vec<&Acl> = st.acls.values().map(|a| a.as_ref()).collect();
            write_json_atomic(&dir.join(ACLS_FILE), &v).map_err(sys)?;
        }
        Ok(())
    }

    /// The user named `username` (the authentication hot path: one map
    /// lookup and a reference count).
    pub fn user(&self, username: &str) -> Option<Arc<User>> {
        self.read().users.get(username).cloned()
    }

    /// The ACL of a subject key (`User:<name>`).
    pub fn acl(&self, subject: &str) -> Option<Arc<Acl>> {
        self.read().acls.get(subject).cloned()
    }

    /// `isNotSuperUserLogin`: no access key means authentication is off and
    /// counts as a super user; an unknown one fails (`isSuperUser`).
    fn caller_is_super(st: &State, caller: Option<&str>) -> Result<bool, AuthError> {
        match caller.filter(|c| !c.is_empty()) {
            None => Ok(true),
            Some(c) => st
                .users
                .get(c)
                .map(|u| u.user_type == UserType::Super)
                .ok_or_else(|| authn(format!("User:{c} is not found"))),
        }
    }

    /// Applies the bootstrap users (see the module doc).
    pub fn bootstrap(
        &self,
        init_user: Option<&str>,
        inner_credentials: Option<&str>,
    ) -> Result<(), AuthError> {
        #[derive(Deserialize)]
        struct InitUser {
            username: String,
            password: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Credentials {
            access_key: String,
            secret_key: String,
        }
        if let Some(json) = init_user.filter(|j| !j.trim().is_empty()) {
            let u: InitUser =
                serde_json::from_str(json).map_err(|_| authn("Init authentication user error."))?;
            self.ensure_super(&u.username, &u.password)
                .map_err(|_| authn("Init authentication user error."))?;
        }
        if let Some(json) = inner_credentials.filter(|j| !j.trim().is_empty()) {
            let c: Credentials = serde_json::from_str(json)
                .map_err(|_| authn("Init inner client authentication credentials error"))?;
            self.ensure_super(&c.access_key, &c.secret_key)
                .map_err(|_| authn("Init inner client authentication credentials error"))?;
        }
        Ok(())
    }

    fn ensure_super(&self, username: &str, password: &str) -> Result<(), AuthError> {
        if self.user(username).is_some() {
            return Ok(());
        }
        let info = UserInfo {
            username: Some(username.into()),
            password: Some(password.into()),
            user_type: Some(UserType::Super.name().into()),
            user_status: None,
        };
        self.create_user(info, None)
    }

    /// AUTH_CREATE_USER: `info` is the body with the header's `username`.
    pub fn create_user(&self, info: UserInfo, caller: Option<&str>) -> Result<(), AuthError> {
        if blank(info.username.as_deref()) {
            return Err(AuthError::InvalidParameter("The username is blank".into()));
        }
        let mut st = self.write();
        if info.user_type() == Some(UserType::Super) && !Self::caller_is_super(&st, caller)? {
            return Err(AuthError::System(
                "The super user can only be create by super user".into(),
            ));
        }
        if blank(info.password.as_deref()) {
            return Err(authn("password can not be blank"));
        }
        let username = info.username.clone().unwrap_or_default();
        if st.users.contains_key(&username) {
            return Err(authn("The user is existed"));
        }
        let user = User {
            username: username.clone(),
            password: info.password.clone().unwrap_or_default(),
            user_type: info.user_type().unwrap_or(UserType::Normal),
            user_status: info.user_status().unwrap_or(UserStatus::Enable),
        };
        st.users.insert(username.clone(), Arc::new(user));
        self.persist(&st, true, false).inspect_err(|_| {
            st.users.remove(&username);
        })
    }

    /// AUTH_UPDATE_USER: sets what the body carries (a blank password, an
    /// absent or unknown type or status leave the old value).
    pub fn update_user(&self, info: UserInfo, caller: Option<&str>) -> Result<(), AuthError> {
        if blank(info.username.as_deref()) {
            return Err(AuthError::InvalidParameter("The username is blank".into()));
        }
        let mut st = self.write();
        let is_super = Self::caller_is_super(&st, caller)?;
        if info.user_type() == Some(UserType::Super) && !is_super {
            return Err(AuthError::System(
                "The super user can only be update by super user".into(),
            ));
        }
        let username = info.username.clone().unwrap_or_default();
        let old = st
            .users
            .get(&username)
            .cloned()
            .ok_or_else(|| authn("The user is not exist"))?;
        if old.user_type == UserType::Super && !is_super {
            return Err(authn("The super user can only be update by super user"));
        }
        let mut new = (*old).clone();
        if !blank(info.password.as_deref()) {
            new.password = info.password.clone().unwrap_or_default();
        }
        new.user_type = info.user_type().unwrap_or(new.user_type);
        new.user_status = info.user_status().unwrap_or(new.user_status);
        st.users.insert(username.clone(), Arc::new(new));
        self.persist(&st, true, false).inspect_err(|_| {
            st.users.insert(username.clone(), old.clone());
        })
    }

    /// AUTH_DELETE_USER: removes the user and its ACL; an unknown user is
    /// not an error.
    pub fn delete_user(&self, username: &str, caller: Option<&str>) -> Result<(), AuthError> {
        let mut st = self.write();
        let Some(old) = st.users.get(username).cloned() else {
            return Ok(());
        };
        if old.user_type == UserType::Super && !Self::caller_is_super(&st, caller)? {
            return Err(authn("The super user can only be update by super user"));
        }
        st.users.remove(username);
        let acl = st.acls.remove(&user_subject(username));
        self.persist(&st, true, acl.is_some()).inspect_err(|_| {
            st.users.insert(username.to_owned(), old.clone());
            if let Some(a) = &acl {
                st.acls.insert(a.subject.clone(), a.clone());
            }
        })
    }

    /// AUTH_GET_USER: None when there is no such user (an empty body).
    pub fn get_user(&self, username: &str) -> Result<Option<User>, AuthError> {
        if username.trim().is_empty() {
            return Err(AuthError::InvalidParameter("The username is blank".into()));
        }
        Ok(self.user(username).map(|u| (*u).clone()))
    }

    /// AUTH_LIST_USER: users whose name contains `filter` (all when blank).
    pub fn list_users(&self, filter: Option<&str>) -> Vec<User> {
        let f = filter.filter(|f| !f.trim().is_empty());
        self.read()
            .users
            .values()
            .filter(|u| f.is_none_or(|f| u.username.contains(f)))
            .map(|u| (**u).clone())
            .collect()
    }

    /// AUTH_CREATE_ACL and AUTH_UPDATE_ACL (the same in RocketMQ): the body's
    /// policies are merged into the subject's ACL, created when absent.
    /// `header_subject` is used when the body names none.
    pub fn upsert_acl(&self, info: Option<AclInfo>, header_subject: &str) -> Result<(), AuthError> {
        let mut info = info
            .filter(|i| i.policies.as_ref().is_some_and(|p| !p.is_empty()))
            .ok_or_else(|| authz("The body of acl is null"))?;
        if info.subject.is_none() {
            info.subject = Some(header_subject.to_owned());
        }
        let acl = Acl::try_from(info).map_err(authz)?;
        let mut st = self.write();
        let username = subject_username(&acl.subject).unwrap_or_default();
        if !st.users.contains_key(username) {
            return Err(authz(format!(
                "The subject of {} is not exist.",
                acl.subject
            )));
        }
        let subject = acl.subject.clone();
        let old = st.acls.get(&subject).cloned();
        let new = match &old {
            None => acl,
            Some(o) => {
                let mut merged = (**o).clone();
                merged.merge(acl.policies);
                merged
            }
        };
        st.acls.insert(subject.clone(), Arc::new(new));
        self.persist(&st, false, true).inspect_err(|_| match &old {
            Some(o) => {
                st.acls.insert(subject.clone(), o.clone());
            }
            None => {
                st.acls.remove(&subject);
            }
        })
    }

    /// AUTH_DELETE_ACL: with a `resource`, drops that entry of the policy
    /// (`Custom` when `policy_type` is absent or unknown); without one, or
    /// when no policy is left, the whole ACL. ActorMQ refuses a resource it
    /// cannot parse (RocketMQ would delete the whole ACL).
    pub fn delete_acl(
        &self,
        subject: &str,
        policy_type: Option<&str>,
        resource: Option<&str>,
    ) -> Result<(), AuthError> {
        let username = subject_username(subject).ok_or_else(|| authz("The subject is null."))?;
        let policy_type = policy_type
            .and_then(PolicyType::by_name)
            .unwrap_or(PolicyType::Custom);
        let resource = match resource.filter(|r| !r.trim().is_empty()) {
            None => None,
            Some(r) => Some(Resource::parse(r).ok_or_else(|| authz("The resource is null."))?),
        };
        let key = user_subject(username);
        let mut st = self.write();
        if !st.users.contains_key(username) {
            return Err(authz("The subject is not exist."));
        }
        let old = st
            .acls
            .get(&key)
            .cloned()
            .ok_or_else(|| authz("The acl is not exist."))?;
        let mut new = (*old).clone();
        if let Some(r) = &resource {
            new.remove_entry(policy_type, r);
        }
        if resource.is_none() || new.policies.is_empty() {
            st.acls.remove(&key);
        } else {
            st.acls.insert(key.clone(), Arc::new(new));
        }
        self.persist(&st, false, true).inspect_err(|_| {
            st.acls.insert(key.clone(), old.clone());
        })
    }

    /// AUTH_GET_ACL: None when the user has no ACL (an empty body).
    pub fn get_acl(&self, subject: &str) -> Result<Option<Acl>, AuthError> {
        let username =
            subject_username(subject).ok_or_else(|| authz("The subject is not exist."))?;
        let st = self.read();
        if !st.users.contains_key(username) {
            return Err(authz("The subject is not exist."));
        }
        Ok(st.acls.get(&user_subject(username)).map(|a| (**a).clone()))
    }

    /// AUTH_LIST_ACL: ACLs whose subject contains `subject_filter`; with a
    /// `resource_filter` (not already in the subject key), only entries
    /// whose resource key contains it, dropping what is left empty.
    pub fn list_acls(
        &self,
        subject_filter: Option<&str>,
        resource_filter: Option<&str>,
    ) -> Vec<Acl> {
        let sf = subject_filter.filter(|f| !f.trim().is_empty());
        let rf = resource_filter.filter(|f| !f.trim().is_empty());
        let st = self.read();
        let mut out = Vec::new();
        for (subject, acl) in &st.acls {
            if sf.is_some_and(|f| !subject.contains(f)) {
                continue;
            }
            let mut acl = (**acl).clone();
            if let Some(f) = rf.filter(|f| !subject.contains(f)) {
                for p in &mut acl.policies {
                    p.entries.retain(|e| e.resource.key().contains(f));
                }
                acl.policies.retain(|p| !p.entries.is_empty());
            }
            if !acl.policies.is_empty() {
                out.push(acl);
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
