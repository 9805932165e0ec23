//! The ACL 2.0 model of RocketMQ 5.x: users (`auth.authentication.model.User`,
//! `UserType`, `UserStatus`) and access control lists
//! (`auth.authorization.model.Acl`, `Policy`, `PolicyEntry`, `Resource`,
//! `Environment`; `common.resource.ResourceType`, `ResourcePattern`;
//! `common.action.Action`; `Decision`, `PolicyType`).
//!
//! JSON: users serialize as the admin body `UserInfo`
//! (`{"username","password","userType":"Super","userStatus":"enable"}`) and
//! ACLs as `AclInfo` (`{"subject":"User:u","policies":[{"policyType":"Custom",
//! "entries":[{"resource":"Topic:t*","actions":["Pub"],"sourceIps":[..],
//! "decision":"Allow"}]}]}`), the shapes the broker's `UserConverter` /
//! `AclConverter` produce. Enum names are read case-insensitively
//! (`getByName`); the admin wire structs ([`UserInfo`], [`AclInfo`]) keep
//! every field optional so a request body parses exactly as the Java broker
//! reads it, and the conversions report what is missing with RocketMQ's texts.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// The Java enum's `name` (what JSON carries).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// `getByName`: case-insensitive; None for anything else.
            pub fn by_name(s: &str) -> Option<$name> {
                [$($name::$variant),+].into_iter().find(|v| v.name().eq_ignore_ascii_case(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::by_name(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("unknown ", stringify!($name), " {}"), s))
                })
            }
        }
    };
}

named_enum!(UserType { Super => "Super", Normal => "Normal" });
named_enum!(UserStatus { Enable => "enable", Disable => "disable" });
named_enum!(
    /// `ResourceType` (without `Unknown`).
    ResourceType { Any => "Any", Cluster => "Cluster", Namespace => "Namespace", Topic => "Topic", Group => "Group" }
);
named_enum!(ResourcePattern { Any => "ANY", Literal => "LITERAL", Prefixed => "PREFIXED" });
named_enum!(
    /// `Action` (without `Unknown`). `All` in an entry grants every action;
    /// `Any` in a request is satisfied by any entry action.
    Action {
        All => "All", Any => "Any", Pub => "Pub", Sub => "Sub", Create => "Create",
        Update => "Update", Delete => "Delete", Get => "Get", List => "List",
    }
);
named_enum!(Decision { Allow => "Allow", Deny => "Deny" });
named_enum!(PolicyType { Custom => "Custom", Default => "Default" });

/// A user (`User`), as persisted and as `UserInfo` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub username: String,
    pub password: String,
    pub user_type: UserType,
    pub user_status: UserStatus,
}

impl User {
    pub fn new(username: &str, password: &str, user_type: UserType) -> User {
        User {
            username: username.to_owned(),
            password: password.to_owned(),
            user_type,
            user_status: UserStatus::Enable,
        }
    }

    /// `User.getSubjectKey`: `User:<name>`.
    pub fn subject(&self) -> String {
        user_subject(&self.username)
    }
}

/// `SubjectType.USER` key of a user name.
pub fn user_subject(username: &str) -> String {
    format!("User:{username}")
}

/// The user named by a subject key (`Subject.of`): `User:<name>`, the type
/// read case-insensitively. None for any other subject type.
pub fn subject_username(subject: &str) -> Option<&str> {
    let (kind, name) = subject.split_once(':')?;
    kind.eq_ignore_ascii_case("User").then_some(name)
}

/// The admin body `UserInfo`: every field optional, enum names as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_status: Option<String>,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> UserInfo {
        UserInfo {
            username: Some(u.username.clone()),
            password: Some(u.password.clone()),
            user_type: Some(u.user_type.name().into()),
            user_status: Some(u.user_status.name().into()),
        }
    }
}

impl UserInfo {
    /// The typed type and status (`UserConverter`: unknown names read as
    /// absent).
    pub fn user_type(&self) -> Option<UserType> {
        self.user_type.as_deref().and_then(UserType::by_name)
    }

    pub fn user_status(&self) -> Option<UserStatus> {
        self.user_status.as_deref().and_then(UserStatus::by_name)
    }
}

/// What a policy entry applies to (`Resource`). `name` is None for the
/// `Any` pattern; for `Prefixed` it is the prefix without the `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    pub kind: ResourceType,
    pub name: Option<String>,
    pub pattern: ResourcePattern,
}

impl Resource {
    pub fn literal(kind: ResourceType, name: &str) -> Resource {
        Resource {
            kind,
            name: Some(name.to_owned()),
            pattern: ResourcePattern::Literal,
        }
    }

    pub fn topic(name: &str) -> Resource {
        Resource::literal(ResourceType::Topic, name)
    }

    /// `Resource.ofGroup`: a `%RETRY%` prefix names its group.
    pub fn group(name: &str) -> Resource {
        Resource::literal(
            ResourceType::Group,
            name.strip_prefix("%RETRY%").unwrap_or(name),
        )
    }

    pub fn cluster(name: &str) -> Resource {
        Resource::literal(ResourceType::Cluster, name)
    }

    /// Every resource of a kind (`Topic:*`).
    pub fn any_of(kind: ResourceType) -> Resource {
        Resource {
            kind,
            name: None,
            pattern: ResourcePattern::Any,
        }
    }

    /// `Resource.of(key)`: `*`, `Type:*`, `Type:prefix*`, `Type:name`; None
    /// for an unknown or blank type.
    pub fn parse(key: &str) -> Option<Resource> {
        if key.trim().is_empty() {
            return None;
        }
        if key == "*" {
            return Some(Resource::any_of(ResourceType::Any));
        }
        let (kind, name) = key.split_once(':').unwrap_or((key, ""));
        let kind = ResourceType::by_name(kind)?;
        Some(if name == "*" {
            Resource::any_of(kind)
        } else if let Some(prefix) = name.strip_suffix('*') {
            // Like StringUtils.substringBefore: up to the first '*'.
            let prefix = &name[..name.find('*').unwrap_or(prefix.len())];
            Resource {
                kind,
                name: Some(prefix.to_owned()),
                pattern: ResourcePattern::Prefixed,
            }
        } else {
            Resource::literal(kind, name)
        })
    }

    /// `getResourceKey`: the inverse of [`Resource::parse`].
    pub fn key(&self) -> String {
        if self.kind == ResourceType::Any {
            return "*".into();
        }
        let name = self.name.as_deref().unwrap_or("");
        match self.pattern {
            ResourcePattern::Any => format!("{}:*", self.kind),
            ResourcePattern::Literal => format!("{}:{name}", self.kind),
            ResourcePattern::Prefixed => format!("{}:{name}*", self.kind),
        }
    }

    /// `Resource.isMatch`: does this (policy) resource cover `target`?
    pub fn covers(&self, target: &Resource) -> bool {
        if self.kind == ResourceType::Any {
            return true;
        }
        if self.kind != target.kind {
            return false;
        }
        match self.pattern {
            ResourcePattern::Any => true,
            ResourcePattern::Literal => self.name == target.name,
            ResourcePattern::Prefixed => match (&target.name, &self.name) {
                (Some(t), Some(p)) => t.starts_with(p.as_str()),
                _ => false,
            },
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// One rule (`PolicyEntry`); `source_ips` are IPs or CIDR ranges, empty for
/// every address (`Environment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    pub resource: Resource,
    pub actions: Vec<Action>,
    pub source_ips: Vec<String>,
    pub decision: Decision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub policy_type: PolicyType,
    pub entries: Vec<PolicyEntry>,
}

/// A subject's policies (`Acl`); `subject` is the key `User:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AclInfo", into = "AclInfo")]
pub struct Acl {
    pub subject: String,
    pub policies: Vec<Policy>,
}

impl Acl {
    pub fn policy(&self, t: PolicyType) -> Option<&Policy> {
        self.policies.iter().find(|p| p.policy_type == t)
    }

    /// `Acl.updatePolicy`: a new policy type is added; entries of an existing
    /// one replace the entry for the same resource or are appended.
    pub fn merge(&mut self, policies: Vec<Policy>) {
        for new in policies {
            match self
                .policies
                .iter_mut()
                .find(|p| p.policy_type == new.policy_type)
            {
                None => self.policies.push(new),
                Some(old) => {
                    for e in new.entries {
                        match old.entries.iter_mut().find(|o| o.resource == e.resource) {
                            Some(o) => *o = e,
                            None => old.entries.push(e),
                        }
                    }
                }
            }
        }
    }

    /// `Acl.deletePolicy`: drops the entry for `resource`, and the policy
    /// once it has no entries left.
    pub fn remove_entry(&mut self, t: PolicyType, resource: &Resource) {
        if let Some(i) = self.policies.iter().position(|p| p.policy_type == t) {
            self.policies[i].entries.retain(|e| &e.resource != resource);
            if self.policies[i].entries.is_empty() {
                self.policies.remove(i);
            }
        }
    }
}

/// The admin body `AclInfo` (and its `PolicyInfo`, `PolicyEntryInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AclInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<PolicyInfo>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<PolicyEntryInfo>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyEntryInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ips: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
}

impl From<Acl> for AclInfo {
    fn from(acl: Acl) -> AclInfo {
        let policies = acl
            .policies
            .into_iter()
            .map(|p| PolicyInfo {
                policy_type: Some(p.policy_type.name().into()),
                entries: Some(
                    p.entries
                        .into_iter()
                        .map(|e| PolicyEntryInfo {
                            resource: Some(e.resource.key()),
                            actions: Some(e.actions.iter().map(|a| a.name().to_owned()).collect()),
                            source_ips: (!e.source_ips.is_empty()).then_some(e.source_ips),
                            decision: Some(e.decision.name().into()),
                        })
                        .collect(),
                ),
            })
            .collect();
        AclInfo {
            subject: Some(acl.subject),
            policies: Some(policies),
        }
    }
}

impl TryFrom<AclInfo> for Acl {
    type Error = String;

    /// `AclConverter.convertAcl` followed by the manager's `validate`: a
    /// missing policy type reads as `Custom`, unknown action names are
    /// dropped, and what remains must be complete. Errors are RocketMQ's
    /// texts.
    fn try_from(info: AclInfo) -> Result<Acl, String> {
        let subject = info.subject.unwrap_or_default();
        let name = subject_username(&subject).ok_or("The subject type is null.")?;
        let subject = user_subject(name);
        let infos = info.policies.unwrap_or_default();
        if infos.is_empty() {
            return Err("The policies is empty.".into());
        }
        let mut policies = Vec::with_capacity(infos.len());
        for p in infos {
            let policy_type = p
                .policy_type
                .as_deref()
                .and_then(PolicyType::by_name)
                .unwrap_or(PolicyType::Custom);
            let entries = p.entries.unwrap_or_default();
            if entries.is_empty() {
                return Err("The policy entries is empty.".into());
            }
            let entries = entries
                .into_iter()
                .map(entry_from_info)
                .collect::<Result<_, _>>()?;
            policies.push(Policy {
                policy_type,
                entries,
            });
        }
        Ok(Acl { subject, policies })
    }
}

fn entry_from_info(e: PolicyEntryInfo) -> Result<PolicyEntry, String> {
    let resource = e
        .resource
        .as_deref()
        .and_then(Resource::parse)
        .ok_or("The resource is null.")?;
    let actions: Vec<Action> = e
        .actions
        .unwrap_or_default()
        .iter()
        .filter_map(|a| Action::by_name(a))
        .collect();
    if actions.is_empty() {
        return Err("The actions is empty.".into());
    }
    if actions.contains(&Action::Any) {
        return Err("The actions can not be Any.".into());
    }
    let source_ips = e.source_ips.unwrap_or_default();
    for ip in &source_ips {
        if ip.trim().is_empty() {
            return Err("The source ip is empty.".into());
        }
        if super::authorize::IpRange::parse(ip).is_none() {
            return Err("The source ip is invalid.".into());
        }
    }
    let decision = e
        .decision
        .as_deref()
        .and_then(Decision::by_name)
        .ok_or("The decision is null or illegal.")?;
    Ok(PolicyEntry {
        resource,
        actions,
        source_ips,
        decision,
    })
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
