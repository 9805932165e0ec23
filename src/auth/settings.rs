//! Authentication and authorization switches from broker.conf /
//! namesrv.conf, with RocketMQ 5.3's keys (`BrokerConfig` / `AuthConfig` in
//! Java): `authenticationEnabled`, `authorizationEnabled`,
//! `authenticationWhitelist`, `authorizationWhitelist`,
//! `initAuthenticationUser`, `innerClientAuthenticationCredentials`,
//! `migrateAuthFromV1Enabled`; plus `plainAclPath`, where the 4.x
//! `plain_acl.yml` to migrate is (Java reads `conf/plain_acl.yml` under
//! `rocketmq.home.dir`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Auth, AuthConfig, AuthStore};

/// The keys above, parsed; `enabled()` is false unless one switch is on.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub config: AuthConfig,
    pub migrate_from_v1: bool,
    pub plain_acl_path: Option<PathBuf>,
}

/// Keys this module reads (the config loaders keep them out of "unknown").
pub const KEYS: &[&str] = &[
    "authenticationEnabled",
    "authorizationEnabled",
    "authenticationWhitelist",
    "authorizationWhitelist",
    "initAuthenticationUser",
    "innerClientAuthenticationCredentials",
    "migrateAuthFromV1Enabled",
    "plainAclPath",
];

fn flag(m: &BTreeMap<String, String>, key: &str) -> Result<bool, String> {
    match m.get(key).map(|v| v.trim()) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(format!(
            "bad value for {key}: {v:?} (expected true or false)"
        )),
    }
}

fn json_object(
    m: &BTreeMap<String, String>,
    key: &str,
    fields: [&str; 2],
) -> Result<Option<String>, String> {
    let Some(v) = m.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let parsed: serde_json::Value =
        serde_json::from_str(v).map_err(|e| format!("bad value for {key}: not JSON ({e})"))?;
    for f in fields {
        if !parsed.get(f).is_some_and(|x| x.is_string()) {
            return Err(format!(
                "bad value for {key}: the JSON needs a string \"{f}\""
            ));
        }
    }
    Ok(Some(v.to_owned()))
}

impl AuthSettings {
    /// Reads the keys from a properties map; `cluster` is the resource of
    /// `Cluster` checks.
    pub fn from_properties(
        m: &BTreeMap<String, String>,
        cluster: &str,
    ) -> Result<AuthSettings, String> {
        let codes = |k: &str| {
            m.get(k)
                .map(|v| AuthConfig::parse_codes(v))
                .unwrap_or_default()
        };
        Ok(AuthSettings {
            config: AuthConfig {
                authentication_enabled: flag(m, "authenticationEnabled")?,
                authorization_enabled: flag(m, "authorizationEnabled")?,
                cluster_name: cluster.to_owned(),
                authentication_whitelist: codes("authenticationWhitelist"),
                authorization_whitelist: codes("authorizationWhitelist"),
                init_authentication_user: json_object(
                    m,
                    "initAuthenticationUser",
                    ["username", "password"],
                )?,
                inner_client_authentication_credentials: json_object(
                    m,
                    "innerClientAuthenticationCredentials",
                    ["accessKey", "secretKey"],
                )?,
            },
            migrate_from_v1: flag(m, "migrateAuthFromV1Enabled")?,
            plain_acl_path: m
                .get("plainAclPath")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        })
    }

    pub fn enabled(&self) -> bool {
        self.config.authentication_enabled || self.config.authorization_enabled
    }

    /// The (accessKey, secretKey) this server signs its own requests with.
    pub fn inner_credentials(&self) -> Option<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(
            self.config
                .inner_client_authentication_credentials
                .as_deref()?,
        )
        .ok()?;
        Some((
            v.get("accessKey")?.as_str()?.to_owned(),
            v.get("secretKey")?.as_str()?.to_owned(),
        ))
    }

    /// Opens the users and ACLs under `config_dir`, bootstraps the first
    /// users and imports `plain_acl.yml` when asked. `None` when both
    /// switches are off.
    pub fn open(&self, config_dir: &std::path::Path) -> Result<Option<Arc<Auth>>, String> {
        if !self.enabled() {
            return Ok(None);
        }
        let store = AuthStore::open(config_dir).map_err(|e| e.remark().to_owned())?;
        let auth = Auth::new(self.config.clone(), store).map_err(|e| e.remark().to_owned())?;
        if self.migrate_from_v1 {
            if let Some(path) = &self.plain_acl_path {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let file = super::plain_acl::parse(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let report = super::plain_acl::import(&auth.store, &[file]);
                tracing::info!(?report, "plain_acl.yml migrated into users and ACLs");
            }
        }
        Ok(Some(Arc::new(auth)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_rocketmq_keys() {
        let s = AuthSettings::from_properties(
            &map(&[
                ("authenticationEnabled", "true"),
                ("authorizationEnabled", "TRUE"),
                ("authenticationWhitelist", "10, 11"),
                (
                    "initAuthenticationUser",
                    r#"{"username":"root","password":"pw"}"#,
                ),
                (
                    "innerClientAuthenticationCredentials",
                    r#"{"accessKey":"in","secretKey":"s"}"#,
                ),
            ]),
            "C",
        )
        .unwrap();
        assert!(s.enabled() && s.config.authorization_enabled);
        assert_eq!(s.config.authentication_whitelist, vec![10, 11]);
        assert_eq!(s.inner_credentials(), Some(("in".into(), "s".into())));
        assert!(!AuthSettings::from_properties(&map(&[]), "C")
            .unwrap()
            .enabled());
    }

    #[test]
    fn bad_values_name_their_key() {
        for (k, v) in [
            ("authenticationEnabled", "yes"),
            ("initAuthenticationUser", "{"),
            (
                "innerClientAuthenticationCredentials",
                r#"{"accessKey":"a"}"#,
            ),
        ] {
            let e = AuthSettings::from_properties(&map(&[(k, v)]), "C").unwrap_err();
            assert!(e.contains(k), "{e}");
        }
    }
}
