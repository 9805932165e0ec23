//! `actormq admin` ACL 2.0 commands, named and lettered as `mqadmin`'s
//! (`org.apache.rocketmq.tools.command.auth`): `createUser`, `updateUser`,
//! `deleteUser`, `getUser`, `listUser` (`CreateUserSubCommand` ...) and
//! `createAcl`, `updateAcl`, `deleteAcl`, `getAcl`, `listAcl`
//! (`CreateAclSubCommand` ...). Each goes to one broker (`-b`) or to every
//! master of a cluster (`-c`, routed through the name server) as the
//! AUTH_CREATE_USER (3001) … AUTH_LIST_ACL (3010) requests of
//! `DefaultMQAdminExt`, with the header fields `username`, `filter`,
//! `subject`, `policyType`, `resource`, `subjectFilter`, `resourceFilter`
//! and the JSON bodies `UserInfo` / `AclInfo`.
//!
//! The requests are signed like any other when the tool is given
//! `--access-key`/`--secret-key` (see [`crate::client::remoting`]); the
//! broker lets only a super user (or a user with the admin rights) run them.

use clap::Subcommand;

use crate::auth::model::{AclInfo, PolicyEntryInfo, PolicyInfo, UserInfo};
use crate::client::{expect_code, Admin};
use crate::wire::codes::response;
use crate::wire::{ExtFields, RemotingCommand};

use super::admin::{Ns, Target};
use super::CliResult;

/// Request codes (`RequestCode.AUTH_*`).
mod code {
    pub const CREATE_USER: i32 = 3001;
    pub const UPDATE_USER: i32 = 3002;
    pub const DELETE_USER: i32 = 3003;
    pub const GET_USER: i32 = 3004;
    pub const LIST_USER: i32 = 3005;
    pub const CREATE_ACL: i32 = 3006;
    pub const UPDATE_ACL: i32 = 3007;
    pub const DELETE_ACL: i32 = 3008;
    pub const GET_ACL: i32 = 3009;
    pub const LIST_ACL: i32 = 3010;
}

/// The arguments of `createAcl` and `updateAcl` (`CreateAclSubCommand`).
#[derive(clap::Args, Debug, Clone)]
pub struct AclSpec {
    /// The subject, e.g. `User:alice`.
    #[arg(short = 's', long = "subject")]
    pub subject: String,
    /// Resources, e.g. `Topic:T`, `Group:G`, `Topic:Prefix*`, `*`
    /// (comma-separated or repeated).
    #[arg(
        short = 'r',
        long = "resources",
        value_delimiter = ',',
        required = true
    )]
    pub resources: Vec<String>,
    /// Actions: `Pub`, `Sub`, `Create`, `Update`, `Delete`, `Get`, `List`, `All`.
    #[arg(short = 'a', long = "actions", value_delimiter = ',', required = true)]
    pub actions: Vec<String>,
    /// Source IPs or CIDR ranges the entries apply to.
    #[arg(short = 'i', long = "sourceIp", value_delimiter = ',')]
    pub source_ips: Vec<String>,
    /// `Allow` or `Deny`.
    #[arg(short = 'd', long = "decision")]
    pub decision: String,
}

impl AclSpec {
    /// The `AclInfo` body (`AclInfo.of`): one policy, one entry a resource.
    fn to_info(&self) -> AclInfo {
        let list = |v: &[String]| -> Option<Vec<String>> {
            let v: Vec<String> = v
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            (!v.is_empty()).then_some(v)
        };
        let entries = self
            .resources
            .iter()
            .map(|r| PolicyEntryInfo {
                resource: Some(r.trim().to_owned()),
                actions: list(&self.actions),
                source_ips: list(&self.source_ips),
                decision: Some(self.decision.trim().to_owned()),
            })
            .collect();
        AclInfo {
            subject: Some(self.subject.trim().to_owned()),
            policies: Some(vec![PolicyInfo {
                policy_type: Some("Custom".into()),
                entries: Some(entries),
            }]),
        }
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum AclCmd {
    /// Create a user (`CreateUserSubCommand`).
    #[command(name = "createUser")]
    CreateUser {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 'u', long = "username")]
        username: String,
        #[arg(short = 'p', long = "password")]
        password: String,
        /// `Super` or `Normal` (the broker's default: `Normal`).
        #[arg(short = 't', long = "userType")]
        user_type: Option<String>,
    },
    /// Change a user's password, type or status (`UpdateUserSubCommand`).
    #[command(name = "updateUser")]
    UpdateUser {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 'u', long = "username")]
        username: String,
        #[arg(short = 'p', long = "password", required_unless_present_any = ["user_type", "user_status"])]
        password: Option<String>,
        #[arg(short = 't', long = "userType")]
        user_type: Option<String>,
        /// `enable` or `disable`.
        #[arg(short = 's', long = "userStatus")]
        user_status: Option<String>,
    },
    /// Delete a user (`DeleteUserSubCommand`).
    #[command(name = "deleteUser")]
    DeleteUser {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 'u', long = "username")]
        username: String,
    },
    /// Show a user (`GetUserSubCommand`).
    #[command(name = "getUser")]
    GetUser {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 'u', long = "username")]
        username: String,
    },
    /// List users, optionally those whose name contains a filter
    /// (`ListUserSubCommand`).
    #[command(name = "listUser")]
    ListUser {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 'f', long = "filter")]
        filter: Option<String>,
    },
    /// Create a subject's ACL (`CreateAclSubCommand`).
    #[command(name = "createAcl")]
    CreateAcl {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        spec: AclSpec,
    },
    /// Add or change entries of a subject's ACL (`UpdateAclSubCommand`).
    #[command(name = "updateAcl")]
    UpdateAcl {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        spec: AclSpec,
    },
    /// Delete a subject's ACL, or one resource of it
    /// (`DeleteAclSubCommand`).
    #[command(name = "deleteAcl")]
    DeleteAcl {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 's', long = "subject")]
        subject: String,
        #[arg(short = 'r', long = "resources")]
        resource: Option<String>,
        /// `Custom` or `Default`.
        #[arg(short = 't', long = "policyType")]
        policy_type: Option<String>,
    },
    /// Show a subject's ACL (`GetAclSubCommand`).
    #[command(name = "getAcl")]
    GetAcl {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 's', long = "subject")]
        subject: String,
    },
    /// List ACLs, optionally filtered by subject and resource
    /// (`ListAclSubCommand`).
    #[command(name = "listAcl")]
    ListAcl {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 's', long = "subject")]
        subject: Option<String>,
        #[arg(short = 'r', long = "resource")]
        resource: Option<String>,
    },
}

impl AclCmd {
    /// The name server options of any command.
    pub fn ns(&self) -> &Ns {
        match self {
            AclCmd::CreateUser { ns, .. }
            | AclCmd::UpdateUser { ns, .. }
            | AclCmd::DeleteUser { ns, .. }
            | AclCmd::GetUser { ns, .. }
            | AclCmd::ListUser { ns, .. }
            | AclCmd::CreateAcl { ns, .. }
            | AclCmd::UpdateAcl { ns, .. }
            | AclCmd::DeleteAcl { ns, .. }
            | AclCmd::GetAcl { ns, .. }
            | AclCmd::ListAcl { ns, .. } => ns,
        }
    }

    fn target(&self) -> &Target {
        match self {
            AclCmd::CreateUser { target, .. }
            | AclCmd::UpdateUser { target, .. }
            | AclCmd::DeleteUser { target, .. }
            | AclCmd::GetUser { target, .. }
            | AclCmd::ListUser { target, .. }
            | AclCmd::CreateAcl { target, .. }
            | AclCmd::UpdateAcl { target, .. }
            | AclCmd::DeleteAcl { target, .. }
            | AclCmd::GetAcl { target, .. }
            | AclCmd::ListAcl { target, .. } => target,
        }
    }

    /// The request (code, header fields, JSON body) and how the answer is
    /// shown.
    fn request(&self) -> Request {
        let json = |v: &dyn ErasedJson| Some(v.bytes());
        let opt = |k: &'static str, v: &Option<String>| {
            v.iter()
                .map(|v| (k, v.trim().to_owned()))
                .collect::<Vec<_>>()
        };
        match self {
            AclCmd::CreateUser {
                username,
                password,
                user_type,
                ..
            } => {
                let info = UserInfo {
                    username: Some(username.trim().to_owned()),
                    password: Some(password.trim().to_owned()),
                    user_type: user_type.as_ref().map(|t| t.trim().to_owned()),
                    user_status: None,
                };
                let f = vec![("username", username.trim().to_owned())];
                (code::CREATE_USER, f, json(&info), Show::Done("create user"))
            }
            AclCmd::UpdateUser {
                username,
                password,
                user_type,
                user_status,
                ..
            } => {
                let t = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_owned());
                let info = UserInfo {
                    username: Some(username.trim().to_owned()),
                    password: t(password),
                    user_type: t(user_type),
                    user_status: t(user_status),
                };
                let f = vec![("username", username.trim().to_owned())];
                (code::UPDATE_USER, f, json(&info), Show::Done("update user"))
            }
            AclCmd::DeleteUser { username, .. } => (
                code::DELETE_USER,
                vec![("username", username.trim().to_owned())],
                None,
                Show::Done("delete user"),
            ),
            AclCmd::GetUser { username, .. } => (
                code::GET_USER,
                vec![("username", username.trim().to_owned())],
                None,
                Show::Users,
            ),
            AclCmd::ListUser { filter, .. } => {
                (code::LIST_USER, opt("filter", filter), None, Show::Users)
            }
            AclCmd::CreateAcl { spec, .. } | AclCmd::UpdateAcl { spec, .. } => {
                let (c, what) = match self {
                    AclCmd::CreateAcl { .. } => (code::CREATE_ACL, "create acl"),
                    _ => (code::UPDATE_ACL, "update acl"),
                };
                let f = vec![("subject", spec.subject.trim().to_owned())];
                (c, f, json(&spec.to_info()), Show::Done(what))
            }
            AclCmd::DeleteAcl {
                subject,
                resource,
                policy_type,
                ..
            } => {
                let mut f = vec![("subject", subject.trim().to_owned())];
                f.extend(opt("policyType", policy_type));
                f.extend(opt("resource", resource));
                (code::DELETE_ACL, f, None, Show::Done("delete acl"))
            }
            AclCmd::GetAcl { subject, .. } => (
                code::GET_ACL,
                vec![("subject", subject.trim().to_owned())],
                None,
                Show::Acls,
            ),
            AclCmd::ListAcl {
                subject, resource, ..
            } => {
                let mut f = opt("subjectFilter", subject);
                f.extend(opt("resourceFilter", resource));
                (code::LIST_ACL, f, None, Show::Acls)
            }
        }
    }
}

/// A request: its code, header fields, JSON body, and how its answer is
/// shown.
type Request = (i32, Vec<(&'static str, String)>, Option<Vec<u8>>, Show);

/// How an answer is printed.
#[derive(Clone, Copy)]
enum Show {
    /// `"<what> to <addr> success."`, as mqadmin prints.
    Done(&'static str),
    /// A `UserInfo` or a list of them, as a table.
    Users,
    /// An `AclInfo` or a list of them, as a table.
    Acls,
}

trait ErasedJson {
    fn bytes(&self) -> Vec<u8>;
}

impl<T: serde::Serialize> ErasedJson for T {
    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A body that is one `T` or a list of them (GET answers one, LIST many;
/// an empty body is none).
fn one_or_many<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<Vec<T>, String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    if let Ok(v) = crate::wire::json::from_fastjson::<Vec<T>>(raw) {
        return Ok(v);
    }
    crate::wire::json::from_fastjson::<T>(raw)
        .map(|v| vec![v])
        .map_err(|e| e.to_string())
}

fn user_row(a: &str, b: &str, c: &str, d: &str) -> String {
    format!("{a:<16}  {b:<22}  {c:<22}  {d:<22}")
}

fn print_users(users: &[UserInfo]) {
    if users.is_empty() {
        println!("there is no user found.");
        return;
    }
    println!(
        "{}",
        user_row("#UserName", "#Password", "#UserType", "#UserStatus")
    );
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    for u in users {
        println!(
            "{}",
            user_row(
                &s(&u.username),
                &s(&u.password),
                &s(&u.user_type),
                &s(&u.user_status)
            )
        );
    }
}

fn print_acls(acls: &[AclInfo]) {
    if acls.is_empty() {
        println!("there is no acl found.");
        return;
    }
    let row = |cols: [&str; 6]| {
        println!(
            "{:<16}  {:<10}  {:<22}  {:<22}  {:<22}  {}",
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]
        )
    };
    row([
        "#Subject",
        "#PolicyType",
        "#Resource",
        "#Actions",
        "#SourceIp",
        "#Decision",
    ]);
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let l = |v: &Option<Vec<String>>| v.as_deref().unwrap_or_default().join(",");
    for acl in acls {
        let subject = s(&acl.subject);
        let policies = acl.policies.as_deref().unwrap_or_default();
        if policies.is_empty() {
            row([&subject, "", "", "", "", ""]);
        }
        for p in policies {
            for e in p.entries.as_deref().unwrap_or_default() {
                row([
                    &subject,
                    &s(&p.policy_type),
                    &s(&e.resource),
                    &l(&e.actions),
                    &l(&e.source_ips),
                    &s(&e.decision),
                ]);
            }
        }
    }
}

/// Runs one ACL command against its broker(s); stops at the first broker
/// that refuses, with its code and remark.
pub async fn run(admin: &Admin, cmd: AclCmd) -> CliResult {
    let addrs = admin.target_addrs(&cmd.target().to_target()).await?;
    let (code, fields, body, show) = cmd.request();
    let client = admin.routes().client();
    for addr in addrs {
        let mut req = RemotingCommand::request(code);
        let mut ext = ExtFields::default();
        for (k, v) in &fields {
            ext.insert(k, v);
        }
        req.ext = ext;
        if let Some(b) = &body {
            req = req.with_body(bytes::Bytes::from(b.clone()));
        }
        let resp = client
            .invoke(&addr, req, admin.routes().default_timeout())
            .await?;
        let resp = expect_code(resp, &[response::SUCCESS]).map_err(|e| format!("{addr}: {e}"))?;
        let raw = resp.body_bytes();
        match show {
            Show::Done(what) => println!("{what} to {addr} success."),
            Show::Users => print_users(&one_or_many(&raw).map_err(|e| format!("{addr}: {e}"))?),
            Show::Acls => print_acls(&one_or_many(&raw).map_err(|e| format!("{addr}: {e}"))?),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: AclCmd,
    }

    #[test]
    fn parses_mqadmin_letters() {
        let c = Cli::parse_from([
            "x",
            "createAcl",
            "-b",
            "h:1",
            "-s",
            "User:u",
            "-r",
            "Topic:A,Topic:B",
            "-r",
            "Group:G",
            "-a",
            "Pub,Sub",
            "-i",
            "127.0.0.1",
            "-d",
            "Allow",
        ]);
        let AclCmd::CreateAcl { spec, .. } = &c.cmd else {
            panic!("not createAcl")
        };
        assert_eq!(spec.resources, ["Topic:A", "Topic:B", "Group:G"]);
        let info = spec.to_info();
        let entries = info.policies.unwrap()[0].entries.clone().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0].actions.as_deref(),
            Some(&["Pub".to_string(), "Sub".to_string()][..])
        );
        // A target is required, and only one.
        assert!(Cli::try_parse_from(["x", "getUser", "-u", "u"]).is_err());
        assert!(Cli::try_parse_from(["x", "getUser", "-u", "u", "-b", "a", "-c", "C"]).is_err());
        // updateUser needs something to change.
        assert!(Cli::try_parse_from(["x", "updateUser", "-b", "a", "-u", "u"]).is_err());
        assert!(
            Cli::try_parse_from(["x", "updateUser", "-b", "a", "-u", "u", "-s", "disable"]).is_ok()
        );
        let c = Cli::parse_from(["x", "listAcl", "-c", "C", "-s", "User:", "-r", "Topic:"]);
        let (code, fields, body, _) = c.cmd.request();
        assert_eq!(code, 3010);
        assert_eq!(
            fields,
            [
                ("subjectFilter", "User:".to_string()),
                ("resourceFilter", "Topic:".to_string())
            ]
        );
        assert!(body.is_none());
    }
}
