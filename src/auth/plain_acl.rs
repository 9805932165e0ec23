//! Import of RocketMQ 4.x ACL files (`plain_acl.yml`, read by 4.x's
//! `PlainPermissionManager` into `PlainAccessData` / `PlainAccessConfig`)
//! into ACL 2.0 users and policies, the way 5.x's `AuthMigrator` does when
//! `migrateAuthFromV1Enabled` is set:
//!
//! * every account becomes a user (`accessKey` / `secretKey`; `admin: true`
//!   makes it a super user), unless a user of that name exists already
//!   (then the account is skipped whole); across files the first account
//!   with an access key wins;
//! * `topicPerms` / `groupPerms` entries `name=PERM` become literal
//!   `Custom` entries, `defaultTopicPerm` / `defaultGroupPerm` become
//!   `Topic:*` / `Group:*` entries of the `Default` policy. `PUB` → Pub,
//!   `SUB` → Sub, `PUB|SUB` or `SUB|PUB` → Pub+Sub, anything else → All; the
//!   decision is Deny for exactly `DENY`, else Allow;
//! * `whiteRemoteAddress` and `globalWhiteRemoteAddresses` are not carried
//!   over (their 4.x patterns like `192.168.1.*` or `1.1.1.1-5` are no
//!   CIDRs). The report lists them so an operator can add `sourceIps`.
//!
//! YAML: a small strict reader for the block subset these files use
//! (mappings, sequences, plain or quoted scalars, `[a, b]` flow lists,
//! comments). Anything else (anchors, block scalars, flow maps, tabs) is an
//! error with its line number rather than a guess: one file format does not
//! justify a YAML library in the broker (the maintained serde_yaml is
//! archived; its successors pull in libyaml ports).

use super::model::{
    user_subject, Acl, AclInfo, Action, Decision, Policy, PolicyEntry, PolicyType, Resource,
    ResourceType, UserInfo, UserType,
};
use super::store::AuthStore;

/// A YAML error: the 1-based line and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plain_acl.yml line {line}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node, usize)>),
}

struct Line {
    no: usize,
    indent: usize,
    text: String,
}

fn err(line: usize, message: impl Into<String>) -> YamlError {
    YamlError {
        line,
        message: message.into(),
    }
}

/// Drops a comment: `#` at the start or after a blank, outside quotes.
fn strip_comment(s: &str) -> &str {
    let (mut single, mut double, mut prev_blank) = (false, false, true);
    for (i, c) in s.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_blank => return &s[..i],
            _ => {}
        }
        prev_blank = c == ' ';
    }
    s
}

fn lines(text: &str) -> Result<Vec<Line>, YamlError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let body = strip_comment(raw).trim_end();
        let indent = body.len() - body.trim_start_matches(' ').len();
        let rest = &body[indent..];
        if rest.starts_with('\t') {
            return Err(err(no, "tabs are not allowed for indentation"));
        }
        if rest.is_empty() || (indent == 0 && (rest == "---" || rest == "...")) {
            continue;
        }
        out.push(Line {
            no,
            indent,
            text: rest.to_owned(),
        });
    }
    Ok(out)
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: value` or `key:`; None when the text is no mapping entry.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let i = text
        .find(": ")
        .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
    let key = text[..i].trim();
    (!key.is_empty() && !key.starts_with(['"', '\'', '[', '{']))
        .then(|| (key, text[i + 1..].trim()))
}

fn scalar(text: &str, no: usize) -> Result<Node, YamlError> {
    let t = text.trim();
    if t.is_empty() || t == "~" || t == "null" {
        return Ok(Node::Null);
    }
    if let Some(inner) = t.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| err(no, "unclosed flow sequence"))?;
        if inner.trim().is_empty() {
            return Ok(Node::Seq(Vec::new()));
        }
        return inner
            .split(',')
            .map(|p| scalar(p, no))
            .collect::<Result<_, _>>()
            .map(Node::Seq);
    }
    if t.starts_with(['{', '&', '*', '|', '>', '!', '%', '@', '`']) {
        return Err(err(no, format!("unsupported YAML: {t}")));
    }
    if let Some(inner) = t.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .ok_or_else(|| err(no, "unclosed quote"))?;
        return Ok(Node::Scalar(inner.replace("''", "'")));
    }
    if let Some(inner) = t.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| err(no, "unclosed quote"))?;
        if inner.contains('\\') {
            return Err(err(
                no,
                "escapes in double-quoted strings are not supported",
            ));
        }
        return Ok(Node::Scalar(inner.to_owned()));
    }
    Ok(Node::Scalar(t.to_owned()))
}

struct Parser {
    lines: Vec<Line>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Line> {
        self.lines.get(self.pos)
    }

    /// The block starting at the current line, whose indent is `indent`.
    fn block(&mut self, indent: usize) -> Result<Node, YamlError> {
        match self.peek() {
            Some(l) if is_item(&l.text) => self.seq(indent),
            Some(_) => self.map(indent),
            None => Ok(Node::Null),
        }
    }

    fn seq(&mut self, indent: usize) -> Result<Node, YamlError> {
        let mut items = Vec::new();
        while let Some(l) = self.peek() {
            if l.indent != indent || !is_item(&l.text) {
                break;
            }
            let no = l.no;
            let content = l.text[1..].trim_start().to_owned();
            let col = indent + (l.text.len() - content.len());
            if content.is_empty() {
                self.pos += 1;
                items.push(match self.peek() {
                    Some(n) if n.indent > indent => {
                        let i = n.indent;
                        self.block(i)?
                    }
                    _ => Node::Null,
                });
            } else if split_key(&content).is_some() && !content.starts_with(['\'', '"', '[']) {
                // "- key: v": a mapping whose first key sits after the dash.
                self.lines[self.pos].indent = col;
                self.lines[self.pos].text = content;
                items.push(self.map(col)?);
            } else {
                self.pos += 1;
                items.push(scalar(&content, no)?);
            }
        }
        Ok(Node::Seq(items))
    }

    fn map(&mut self, indent: usize) -> Result<Node, YamlError> {
        let mut entries: Vec<(String, Node, usize)> = Vec::new();
        while let Some(l) = self.peek() {
            if l.indent < indent || (l.indent == indent && is_item(&l.text)) {
                break;
            }
            let no = l.no;
            if l.indent > indent {
                return Err(err(no, "unexpected indentation"));
            }
            let (key, value) =
                split_key(&l.text).ok_or_else(|| err(no, "expected `key: value`"))?;
            let (key, value) = (key.to_owned(), value.to_owned());
            if entries.iter().any(|e| e.0 == key) {
                return Err(err(no, format!("duplicate key {key}")));
            }
            self.pos += 1;
            let node = if !value.is_empty() {
                scalar(&value, no)?
            } else {
                match self.peek() {
                    Some(n) if n.indent > indent => {
                        let i = n.indent;
                        self.block(i)?
                    }
                    // A sequence may sit at its key's indent.
                    Some(n) if n.indent == indent && is_item(&n.text) => self.seq(indent)?,
                    _ => Node::Null,
                }
            };
            entries.push((key, node, no));
        }
        Ok(Node::Map(entries))
    }
}

/// One 4.x account (`PlainAccessConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainAccessConfig {
    pub access_key: String,
    pub secret_key: String,
    pub white_remote_address: Option<String>,
    pub admin: bool,
    pub default_topic_perm: Option<String>,
    pub default_group_perm: Option<String>,
    pub topic_perms: Vec<String>,
    pub group_perms: Vec<String>,
}

/// One 4.x ACL file (`PlainAccessData`; `dataVersion` is ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainAclFile {
    pub global_white_remote_addresses: Vec<String>,
    pub accounts: Vec<PlainAccessConfig>,
}

fn text_of(node: &Node, no: usize, key: &str) -> Result<Option<String>, YamlError> {
    match node {
        Node::Null => Ok(None),
        Node::Scalar(s) => Ok(Some(s.clone())),
        _ => Err(err(no, format!("{key} must be a single value"))),
    }
}

fn list_of(node: &Node, no: usize, key: &str) -> Result<Vec<String>, YamlError> {
    match node {
        Node::Null => Ok(Vec::new()),
        Node::Seq(items) => items
            .iter()
            .filter(|n| **n != Node::Null)
            .map(|n| text_of(n, no, key).map(Option::unwrap_or_default))
            .collect(),
        _ => Err(err(no, format!("{key} must be a list"))),
    }
}

fn account(node: &Node, no: usize) -> Result<PlainAccessConfig, YamlError> {
    let Node::Map(entries) = node else {
        return Err(err(no, "an account must be a mapping"));
    };
    let mut a = PlainAccessConfig::default();
    for (key, value, no) in entries {
        let no = *no;
        match key.as_str() {
            "accessKey" => a.access_key = text_of(value, no, key)?.unwrap_or_default(),
            "secretKey" => a.secret_key = text_of(value, no, key)?.unwrap_or_default(),
            "whiteRemoteAddress" => a.white_remote_address = text_of(value, no, key)?,
            "admin" => {
                a.admin = match text_of(value, no, key)?
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    None | Some("false" | "no" | "off") => false,
                    Some("true" | "yes" | "on") => true,
                    Some(other) => {
                        return Err(err(no, format!("admin must be true or false, not {other}")))
                    }
                }
            }
            "defaultTopicPerm" => a.default_topic_perm = text_of(value, no, key)?,
            "defaultGroupPerm" => a.default_group_perm = text_of(value, no, key)?,
            "topicPerms" => a.topic_perms = list_of(value, no, key)?,
            "groupPerms" => a.group_perms = list_of(value, no, key)?,
            other => return Err(err(no, format!("unknown account key {other}"))),
        }
    }
    Ok(a)
}

/// Reads a `plain_acl.yml`.
pub fn parse(text: &str) -> Result<PlainAclFile, YamlError> {
    let mut p = Parser {
        lines: lines(text)?,
        pos: 0,
    };
    let root = p.block(0)?;
    if let Some(l) = p.peek() {
        return Err(err(l.no, "unexpected content"));
    }
    let mut file = PlainAclFile::default();
    let entries = match root {
        Node::Null => return Ok(file),
        Node::Map(entries) => entries,
        _ => return Err(err(1, "the file must be a mapping")),
    };
    for (key, value, no) in &entries {
        match key.as_str() {
            "globalWhiteRemoteAddresses" => {
                file.global_white_remote_addresses = list_of(value, *no, key)?
            }
            "accounts" => match value {
                Node::Null => {}
                Node::Seq(items) => {
                    for item in items {
                        file.accounts.push(account(item, *no)?);
                    }
                }
                _ => return Err(err(*no, "accounts must be a list")),
            },
            "dataVersion" => {}
            other => return Err(err(*no, format!("unknown key {other}"))),
        }
    }
    Ok(file)
}

/// `AuthMigrator.parseActions`.
fn perm_actions(perm: &str) -> Vec<Action> {
    match perm.trim() {
        "PUB" => vec![Action::Pub],
        "SUB" => vec![Action::Sub],
        "PUB|SUB" | "SUB|PUB" => vec![Action::Pub, Action::Sub],
        _ => vec![Action::All],
    }
}

/// `AuthMigrator.parseDecision`.
fn perm_decision(perm: &str) -> Decision {
    if perm.trim().is_empty() || perm == "DENY" {
        Decision::Deny
    } else {
        Decision::Allow
    }
}

fn perm_entry(resource: Resource, perm: &str) -> PolicyEntry {
    PolicyEntry {
        resource,
        actions: perm_actions(perm),
        source_ips: Vec::new(),
        decision: perm_decision(perm),
    }
}

/// `name=PERM` (as `StringUtils.split(s, "=")`: empty parts vanish); None
/// unless exactly two parts remain.
fn split_perm(s: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = s.split('=').filter(|p| !p.is_empty()).collect();
    match parts[..] {
        [name, perm] => Some((name.trim(), perm.trim())),
        _ => None,
    }
}

/// The ACL an account migrates to (`AuthMigrator.createAcl`); None when
/// the account grants nothing.
pub fn account_acl(a: &PlainAccessConfig) -> Option<Acl> {
    let mut custom = Vec::new();
    for (name, perm) in a.topic_perms.iter().filter_map(|s| split_perm(s)) {
        custom.push(perm_entry(Resource::topic(name), perm));
    }
    for (name, perm) in a.group_perms.iter().filter_map(|s| split_perm(s)) {
        custom.push(perm_entry(Resource::group(name), perm));
    }
    let mut default = Vec::new();
    for (kind, perm) in [
        (ResourceType::Topic, &a.default_topic_perm),
        (ResourceType::Group, &a.default_group_perm),
    ] {
        if let Some(p) = perm.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            default.push(perm_entry(Resource::any_of(kind), p));
        }
    }
    let mut policies = Vec::new();
    for (policy_type, entries) in [(PolicyType::Custom, custom), (PolicyType::Default, default)] {
        if !entries.is_empty() {
            policies.push(Policy {
                policy_type,
                entries,
            });
        }
    }
    (!policies.is_empty()).then(|| Acl {
        subject: user_subject(&a.access_key),
        policies,
    })
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Users created (with their ACLs).
    pub created: Vec<String>,
    /// Accounts left alone: a user of that name existed, or an earlier
    /// account had the same access key.
    pub skipped: Vec<String>,
    /// Accounts that failed, with RocketMQ's reason.
    pub failed: Vec<(String, String)>,
    /// 4.x address rules not carried over (`account: rule`, or the global ones).
    pub ignored_addresses: Vec<String>,
}

/// Migrates `files` (in order) into `store` (`AuthMigrator.migrate`).
pub fn import(store: &AuthStore, files: &[PlainAclFile]) -> ImportReport {
    let mut report = ImportReport::default();
    let mut seen = std::collections::HashSet::new();
    for file in files {
        report
            .ignored_addresses
            .extend(file.global_white_remote_addresses.iter().cloned());
        for a in &file.accounts {
            if !seen.insert(a.access_key.clone()) || store.user(&a.access_key).is_some() {
                report.skipped.push(a.access_key.clone());
                continue;
            }
            if let Some(w) = a
                .white_remote_address
                .as_deref()
                .filter(|w| !w.trim().is_empty())
            {
                report
                    .ignored_addresses
                    .push(format!("{}: {w}", a.access_key));
            }
            match migrate_account(store, a) {
                Ok(()) => report.created.push(a.access_key.clone()),
                Err(e) => report
                    .failed
                    .push((a.access_key.clone(), e.remark().to_owned())),
            }
        }
    }
    report
}

fn migrate_account(store: &AuthStore, a: &PlainAccessConfig) -> Result<(), super::AuthError> {
    let user_type = if a.admin {
        UserType::Super
    } else {
        UserType::Normal
    };
    let info = UserInfo {
        username: Some(a.access_key.clone()),
        password: Some(a.secret_key.clone()),
        user_type: Some(user_type.name().into()),
        user_status: None,
    };
    store.create_user(info, None)?;
    match account_acl(a) {
        Some(acl) => {
            let subject = acl.subject.clone();
            store.upsert_acl(Some(AclInfo::from(acl)), &subject)
        }
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "plain_acl_tests.rs"]
mod tests;
