//! `actormq admin <command>`: a subset of `mqadmin` with its command names
//! and output layout — consumerProgress, consumerConnection,
//! resetOffsetByTime, updateTopic, deleteTopic, topicList, clusterList,
//! updateSubGroup, haStatus, and the ACL 2.0 user and ACL commands of
//! [`super::acl_admin`]. Built on [`crate::client::Admin`].

use clap::{Args, Subcommand};

use crate::client::group_admin::SubscriptionGroupConfig;
use crate::client::{Admin, TopicTarget};
use crate::wire::bodies::perm;

use super::CliResult;

#[derive(Args, Debug, Clone)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub cmd: AdminCmd,
}

#[derive(Args, Debug, Clone)]
pub struct Ns {
    /// Name server address(es), `host:port;host:port`.
    #[arg(short = 'n', long = "namesrvAddr", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
}

/// Where a topic or group goes: a cluster (`-c`) or one broker (`-b`).
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// Every master of this cluster.
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
    /// One broker, `host:port`.
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker: Option<String>,
}

impl Target {
    pub(crate) fn to_target(&self) -> TopicTarget {
        match (&self.broker, &self.cluster) {
            (Some(b), _) => TopicTarget::Broker(b.clone()),
            (None, Some(c)) => TopicTarget::Cluster(c.clone()),
            (None, None) => TopicTarget::Cluster("DefaultCluster".into()),
        }
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum AdminCmd {
    /// A group's progress per queue, its TPS and total lag.
    #[command(name = "consumerProgress")]
    ConsumerProgress {
        #[command(flatten)]
        ns: Ns,
        #[arg(short = 'g', long = "groupName")]
        group: String,
    },
    /// A group's connections and subscriptions.
    #[command(name = "consumerConnection")]
    ConsumerConnection {
        #[command(flatten)]
        ns: Ns,
        #[arg(short = 'g', long = "consumerGroup")]
        group: String,
    },
    /// Move a group's offsets on a topic to a point in time.
    #[command(name = "resetOffsetByTime")]
    ResetOffsetByTime {
        #[command(flatten)]
        ns: Ns,
        #[arg(short = 'g', long = "group")]
        group: String,
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// `now` or milliseconds since the epoch.
        #[arg(short = 's', long = "timestamp")]
        timestamp: String,
        #[arg(short = 'f', long = "force", default_value_t = true, action = clap::ArgAction::Set)]
        force: bool,
    },
    /// Create or update a topic.
    #[command(name = "updateTopic")]
    UpdateTopic {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
        read: i32,
        #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
        write: i32,
        #[arg(short = 'p', long = "perm", default_value_t = perm::READ | perm::WRITE)]
        perm: i32,
        #[arg(short = 'o', long = "order", default_value_t = false, action = clap::ArgAction::Set)]
        order: bool,
    },
    /// Delete a topic from a cluster's brokers and the name servers.
    #[command(name = "deleteTopic")]
    DeleteTopic {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// Every topic the name server knows.
    #[command(name = "topicList")]
    TopicList {
        #[command(flatten)]
        ns: Ns,
    },
    /// Clusters, brokers and their addresses.
    #[command(name = "clusterList")]
    ClusterList {
        #[command(flatten)]
        ns: Ns,
    },
    /// A broker group's replication state (`HAStatusSubCommand`,
    /// GET_BROKER_HA_STATUS): a master's slaves with their acknowledged
    /// offsets and lag, a slave's master and its own log end.
    #[command(name = "haStatus")]
    HaStatus {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
    },
    /// Create or update a subscription group.
    #[command(name = "updateSubGroup")]
    UpdateSubGroup {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        target: Target,
        #[arg(short = 'g', long = "groupName")]
        group: String,
        #[arg(short = 's', long = "consumeEnable", default_value_t = true, action = clap::ArgAction::Set)]
        consume_enable: bool,
        #[arg(short = 'd', long = "consumeBroadcastEnable", default_value_t = true, action = clap::ArgAction::Set)]
        broadcast_enable: bool,
        #[arg(short = 'o', long = "consumeMessageOrderly", default_value_t = false, action = clap::ArgAction::Set)]
        orderly: bool,
        #[arg(short = 'q', long = "retryQueueNums", default_value_t = 1)]
        retry_queue_nums: i32,
        #[arg(short = 'r', long = "retryMaxTimes", default_value_t = 16)]
        retry_max_times: i32,
    },
    /// Users and ACLs (createUser ... listAcl; see [`super::acl_admin`]).
    #[command(flatten)]
    Acl(super::acl_admin::AclCmd),
}

/// `yyyy-MM-dd HH:mm:ss` (UTC) of a ms timestamp, as mqadmin prints.
fn format_ms(ms: i64) -> String {
    if ms <= 0 {
        return String::new();
    }
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn consumer_progress(admin: &Admin, group: &str) -> CliResult {
    let stats = admin.consume_stats(group).await?;
    // Which client holds which queue, from the consumers' running info.
    let mut owner = std::collections::HashMap::new();
    if let Ok(cc) = admin.consumer_connection(group).await {
        for c in &cc.connection_set {
            if let Ok(info) = admin.consumer_running_info(group, &c.client_id).await {
                let ip = c.client_addr.split(':').next().unwrap_or("").to_string();
                if let Some(t) = crate::client::push::offsets::field_value(&info, "mqTable") {
                    for (mq, _) in crate::client::push::offsets::parse_mq_map(t).0 {
                        owner.insert(mq, ip.clone());
                    }
                }
            }
        }
    }
    println!(
        "{:<32}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20} {:<20}  #LastTime",
        "#Topic",
        "#Broker Name",
        "#QID",
        "#Broker Offset",
        "#Consumer Offset",
        "#Client IP",
        "#Diff"
    );
    for (mq, w) in &stats.offsets {
        println!(
            "{:<32}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20} {:<20}  {}",
            mq.topic,
            mq.broker_name,
            mq.queue_id,
            w.broker_offset,
            w.consumer_offset,
            owner.get(mq).map_or("NA", String::as_str),
            w.broker_offset - w.consumer_offset,
            format_ms(w.last_timestamp)
        );
    }
    println!();
    println!("Consume TPS: {}", stats.consume_tps);
    println!("Diff Total: {}", stats.diff_total());
    Ok(())
}

async fn consumer_connection(admin: &Admin, group: &str) -> CliResult {
    let cc = admin.consumer_connection(group).await?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (i, c) in cc.connection_set.iter().enumerate() {
        println!(
            "{:03}  {:<32} {:<22} {:<8} {}",
            i + 1,
            c.client_id,
            c.client_addr,
            text(&c.language),
            c.version
        );
    }
    println!("\nBelow is subscription:");
    for (i, s) in cc.subscription_table.values().enumerate() {
        println!(
            "{:03}  Topic: {:<40} SubExpression: {}",
            i + 1,
            s.topic,
            s.sub_string
        );
    }
    println!("ConsumeType: {}", text(&cc.consume_type));
    println!("MessageModel: {}", text(&cc.message_model));
    println!("ConsumeFromWhere: {}", text(&cc.consume_from_where));
    Ok(())
}

pub async fn run(args: AdminArgs) -> CliResult {
    run_admin(args.cmd).await
}

/// Runs one admin command (the binary flattens [`AdminCmd`] into its
/// `admin` subcommand).
pub async fn run_admin(cmd: AdminCmd) -> CliResult {
    let ns = match &cmd {
        AdminCmd::ConsumerProgress { ns, .. }
        | AdminCmd::ConsumerConnection { ns, .. }
        | AdminCmd::ResetOffsetByTime { ns, .. }
        | AdminCmd::UpdateTopic { ns, .. }
        | AdminCmd::DeleteTopic { ns, .. }
        | AdminCmd::TopicList { ns }
        | AdminCmd::ClusterList { ns }
        | AdminCmd::HaStatus { ns, .. }
        | AdminCmd::UpdateSubGroup { ns, .. } => ns.namesrv.clone(),
        AdminCmd::Acl(c) => c.ns().namesrv.clone(),
    };
    let admin = Admin::new(&ns);
    let r = run_cmd(&admin, cmd).await;
    admin.routes().client().shutdown();
    r
}

/// `haStatus`: GET_BROKER_HA_STATUS of one broker (`-b`) or of every
/// broker of a cluster (`-c`), printed as `HAStatusSubCommand` does.
async fn ha_status(admin: &Admin, target: &Target) -> CliResult {
    use crate::actors::ha::status::{HaRuntimeInfo, GET_BROKER_HA_STATUS};
    let addrs: Vec<String> = match (&target.broker, &target.cluster) {
        (Some(b), _) => vec![b.clone()],
        (None, c) => {
            let cluster = c.clone().unwrap_or_else(|| "DefaultCluster".into());
            let info = admin.cluster_info().await?;
            let names = info
                .cluster_addr_table
                .get(&cluster)
                .cloned()
                .unwrap_or_default();
            names
                .iter()
                .filter_map(|n| info.broker_addr_table.get(n))
                .flat_map(|bd| bd.broker_addrs.values().cloned())
                .collect()
        }
    };
    for addr in addrs {
        let cmd = crate::wire::RemotingCommand::request(GET_BROKER_HA_STATUS);
        let client = admin.routes().client();
        let r = client
            .invoke(&addr, cmd, admin.routes().default_timeout())
            .await?;
        if r.code != crate::wire::codes::response::SUCCESS {
            return Err(format!("haStatus of {addr}: code {} {:?}", r.code, r.remark).into());
        }
        let info: HaRuntimeInfo = serde_json::from_slice(&r.body_bytes())
            .map_err(|e| format!("haStatus of {addr}: bad HARuntimeInfo: {e}"))?;
        if info.master {
            println!(
                "#MasterAddr: {addr}  #MasterCommitLogMaxOffset: {}  #SlaveNum: {}  #InSyncSlaveNum: {}",
                info.master_commit_log_max_offset,
                info.ha_connection_info.len(),
                info.in_sync_slave_nums
            );
            println!(
                "{:<24}  {:<16}  {:<16}  #Status",
                "#SlaveAddr", "#SlaveAckOffset", "#Diff"
            );
            for c in &info.ha_connection_info {
                let status = match (c.async_learner, c.in_sync) {
                    (true, _) => "Learner",
                    (false, true) => "OK",
                    (false, false) => "Fall Behind",
                };
                println!(
                    "{:<24}  {:<16}  {:<16}  {status}",
                    c.addr, c.slave_ack_offset, c.diff
                );
            }
        } else {
            let c = &info.ha_client_runtime_info;
            println!(
                "#SlaveAddr: {addr}  #MasterAddr: {}  #MaxOffset: {}  #IsActivated: {}",
                c.master_addr, c.max_offset, c.is_activated
            );
        }
    }
    Ok(())
}

async fn run_cmd(admin: &Admin, cmd: AdminCmd) -> CliResult {
    match cmd {
        AdminCmd::Acl(c) => super::acl_admin::run(admin, c).await,
        AdminCmd::HaStatus { target, .. } => ha_status(admin, &target).await,
        AdminCmd::ConsumerProgress { group, .. } => consumer_progress(admin, &group).await,
        AdminCmd::ConsumerConnection { group, .. } => consumer_connection(admin, &group).await,
        AdminCmd::ResetOffsetByTime {
            group,
            topic,
            timestamp,
            force,
            ..
        } => {
            let ts = if timestamp.trim() == "now" {
                -1
            } else {
                timestamp
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| format!("bad timestamp {timestamp:?}: use now or ms"))?
            };
            let table = admin
                .reset_offset_by_time(&topic, &group, ts, force)
                .await?;
            println!(
                "rollback consumer offset by specified group[{group}], topic[{topic}], force[{force}], timestamp(string)[{timestamp}], timestamp(long)[{ts}]"
            );
            println!(
                "{:<40}  {:<40}  {:<40}",
                "#brokerName", "#queueId", "#offset"
            );
            for (mq, off) in table {
                println!("{:<40}  {:<40}  {:<40}", mq.broker_name, mq.queue_id, off);
            }
            Ok(())
        }
        AdminCmd::UpdateTopic {
            target,
            topic,
            read,
            write,
            perm,
            order,
            ..
        } => {
            let addrs = admin
                .create_topic_rw(&target.to_target(), &topic, read, write, perm, order)
                .await?;
            for a in addrs {
                println!("create topic to {a} success.");
            }
            println!("topic={topic} readQueueNums={read} writeQueueNums={write} perm={perm} order={order}");
            Ok(())
        }
        AdminCmd::DeleteTopic { target, topic, .. } => {
            admin.delete_topic(&target.to_target(), &topic).await?;
            println!("delete topic [{topic}] from cluster and name servers success.");
            Ok(())
        }
        AdminCmd::TopicList { .. } => {
            let mut topics = admin.topic_list().await?;
            topics.sort();
            for t in topics {
                println!("{t}");
            }
            Ok(())
        }
        AdminCmd::ClusterList { .. } => {
            let info = admin.cluster_info().await?;
            println!(
                "{:<22}  {:<22}  {:<4}  {:<6}  #Addr",
                "#Cluster Name", "#Broker Name", "#BID", "#Role"
            );
            for (cluster, brokers) in &info.cluster_addr_table {
                for b in brokers {
                    let Some(bd) = info.broker_addr_table.get(b) else {
                        continue;
                    };
                    for (id, addr) in &bd.broker_addrs {
                        // Java's `MixAll.MASTER_ID` is 0; any other id is a slave.
                        let role = if *id == 0 { "MASTER" } else { "SLAVE" };
                        println!("{cluster:<22}  {b:<22}  {id:<4}  {role:<6}  {addr}");
                    }
                }
            }
            Ok(())
        }
        AdminCmd::UpdateSubGroup {
            target,
            group,
            consume_enable,
            broadcast_enable,
            orderly,
            retry_queue_nums,
            retry_max_times,
            ..
        } => {
            let mut cfg = SubscriptionGroupConfig::new(&group);
            cfg.consume_enable = consume_enable;
            cfg.consume_broadcast_enable = broadcast_enable;
            cfg.consume_message_orderly = orderly;
            cfg.retry_queue_nums = retry_queue_nums;
            cfg.retry_max_times = retry_max_times;
            for a in admin.update_sub_group(&target.to_target(), &cfg).await? {
                println!("create subscription group to {a} success.");
            }
            println!("{}", serde_json::to_string(&cfg).unwrap_or_default());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AdminArgs,
    }

    #[test]
    fn parses_mqadmin_style_commands() {
        let c = Cli::parse_from([
            "x",
            "updateTopic",
            "-n",
            "a:1",
            "-c",
            "C",
            "-t",
            "T",
            "-r",
            "4",
            "-w",
            "2",
        ]);
        assert!(matches!(
            c.args.cmd,
            AdminCmd::UpdateTopic {
                read: 4,
                write: 2,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["x", "updateTopic", "-t", "T"]).is_err());
        let c = Cli::parse_from(["x", "resetOffsetByTime", "-g", "G", "-t", "T", "-s", "now"]);
        assert!(matches!(
            c.args.cmd,
            AdminCmd::ResetOffsetByTime { force: true, .. }
        ));
        let c = Cli::parse_from(["x", "consumerProgress", "-g", "G"]);
        assert!(matches!(c.args.cmd, AdminCmd::ConsumerProgress { .. }));
    }

    #[test]
    fn dates() {
        assert_eq!(format_ms(0), "");
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14 22:13:20");
    }
}
