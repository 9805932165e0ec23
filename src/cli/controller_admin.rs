//! `actormq admin` commands of the 5.x controller, with mqadmin's names:
//! getControllerMetaData, getSyncStateSet, getBrokerEpoch, electMaster,
//! cleanBrokerMetadata. Leader-only requests go to the leader that
//! CONTROLLER_GET_METADATA_INFO names (asking each `-a` address in turn).

use clap::Subcommand;
use std::time::Duration;

use crate::client::remoting::{ClientConfig, RemotingClient};
use crate::client::Admin;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::controller::{BrokerReplicasInfo, ReplicaIdentity};
use crate::wire::headers::controller::*;
use crate::wire::headers::CommandHeader;
use crate::wire::json::from_fastjson;
use crate::wire::RemotingCommand;

use super::CliResult;

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Subcommand, Debug, Clone)]
pub enum ControllerCmd {
    /// The controller group, its leader and peers.
    #[command(name = "getControllerMetaData")]
    GetControllerMetaData {
        /// Controller address(es), `host:port;host:port`.
        #[arg(short = 'a', long = "controllerAddress")]
        controller: String,
    },
    /// Master, epochs and SyncStateSet of broker sets.
    #[command(name = "getSyncStateSet")]
    GetSyncStateSet {
        #[arg(short = 'a', long = "controllerAddress")]
        controller: String,
        /// Broker names, comma-separated.
        #[arg(short = 'b', long = "brokerName")]
        brokers: String,
    },
    /// The epoch entries of a broker set's replicas (GET_BROKER_EPOCH_CACHE
    /// to each broker found at the name server).
    #[command(name = "getBrokerEpoch")]
    GetBrokerEpoch {
        #[arg(short = 'n', long = "namesrvAddr", default_value = "127.0.0.1:9876")]
        namesrv: String,
        #[arg(short = 'b', long = "brokerName")]
        broker: String,
    },
    /// Elects the given replica master (`designateElect`).
    #[command(name = "electMaster")]
    ElectMaster {
        #[arg(short = 'a', long = "controllerAddress")]
        controller: String,
        #[arg(short = 'c', long = "clusterName", default_value = "DefaultCluster")]
        cluster: String,
        /// mqadmin's `-bn`.
        #[arg(long = "bn", alias = "brokerName")]
        broker_name: String,
        #[arg(short = 'b', long = "brokerId")]
        broker_id: i64,
    },
    /// Removes a broker set, or some of its replicas, from the controller.
    #[command(name = "cleanBrokerMetadata")]
    CleanBrokerMetadata {
        #[arg(short = 'a', long = "controllerAddress")]
        controller: String,
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        #[arg(short = 'b', long = "brokerName")]
        broker_name: String,
        /// mqadmin's `-bi`: ids `1;2;3` (none: the whole set).
        #[arg(long = "bi", alias = "brokerControllerIdsToClean")]
        ids: Option<String>,
        /// mqadmin's `-l`: also clean replicas that are alive.
        #[arg(short = 'l', long = "cleanLivingBroker", default_value_t = false)]
        living: bool,
    },
}

fn refused(resp: &RemotingCommand) -> Box<dyn std::error::Error> {
    format!(
        "CODE: {}  DESC: {}",
        resp.code,
        resp.remark.as_deref().unwrap_or_default()
    )
    .into()
}

/// CONTROLLER_GET_METADATA_INFO at the first address that answers.
async fn metadata(
    client: &RemotingClient,
    addrs: &str,
) -> Result<GetMetaDataResponseHeader, Box<dyn std::error::Error>> {
    let mut last = String::from("no controller address given");
    for addr in addrs.split(';').map(str::trim).filter(|a| !a.is_empty()) {
        let cmd = RemotingCommand::request(rq::CONTROLLER_GET_METADATA_INFO);
        match client.invoke(addr, cmd, TIMEOUT).await {
            Ok(r) if r.code == rs::SUCCESS => {
                return Ok(GetMetaDataResponseHeader::from_ext(&r.ext)?)
            }
            Ok(r) => last = refused(&r).to_string(),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last.into())
}

/// Sends a leader-only request to the leader; returns its SUCCESS answer.
async fn to_leader(
    client: &RemotingClient,
    addrs: &str,
    cmd: RemotingCommand,
) -> Result<RemotingCommand, Box<dyn std::error::Error>> {
    let meta = metadata(client, addrs).await?;
    if meta.controller_leader_address.is_empty() {
        return Err("the controller group has no leader now".into());
    }
    let r = client
        .invoke(&meta.controller_leader_address, cmd, TIMEOUT)
        .await?;
    if r.code != rs::SUCCESS {
        return Err(refused(&r));
    }
    Ok(r)
}

fn request(code: i32, header: &impl CommandHeader) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code);
    cmd.ext = header.to_ext();
    cmd
}

fn print_replica(label: &str, r: &ReplicaIdentity) {
    println!(
        "{label}\tbrokerName={}, brokerId={}, brokerAddress={}, alive={}",
        r.broker_name, r.broker_id, r.broker_address, r.alive
    );
}

async fn sync_state_set(client: &RemotingClient, addrs: &str, brokers: &str) -> CliResult {
    let names: Vec<&str> = brokers
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    let cmd = RemotingCommand::request(rq::CONTROLLER_GET_SYNC_STATE_DATA)
        .with_body(serde_json::to_vec(&names)?);
    let r = to_leader(client, addrs, cmd).await?;
    let info: BrokerReplicasInfo = from_fastjson(&r.body_bytes())?;
    for (name, set) in &info.replicas_info_table {
        println!("\n#brokerName\t{name}");
        println!("#MasterBrokerId\t{}", set.master_broker_id.unwrap_or(-1));
        println!(
            "#MasterAddr\t{}",
            set.master_address.as_deref().unwrap_or_default()
        );
        println!("#MasterEpoch\t{}", set.master_epoch);
        println!("#SyncStateSetEpoch\t{}", set.sync_state_set_epoch);
        println!("#SyncStateSetNums\t{}", set.in_sync_replicas.len());
        for r in &set.in_sync_replicas {
            print_replica("InSyncReplica:", r);
        }
        for r in &set.not_in_sync_replicas {
            print_replica("NotInSyncReplica:", r);
        }
    }
    Ok(())
}

async fn broker_epoch(client: &RemotingClient, namesrv: &str, broker: &str) -> CliResult {
    let admin = Admin::new(namesrv);
    let info = admin.cluster_info().await;
    admin.routes().client().shutdown();
    let info = info?;
    let Some(data) = info.broker_addr_table.get(broker) else {
        return Err(format!("broker {broker} is not registered at the name server").into());
    };
    for (id, addr) in &data.broker_addrs {
        let r = client
            .invoke(
                addr,
                RemotingCommand::request(rq::GET_BROKER_EPOCH_CACHE),
                TIMEOUT,
            )
            .await?;
        println!(
            "\n#clusterName\t{}\n#brokerName\t{broker}\n#brokerAddr\t{addr}\n#brokerId\t{id}",
            data.cluster
        );
        if r.code != rs::SUCCESS {
            println!("{}", refused(&r));
            continue;
        }
        let v: serde_json::Value = from_fastjson(&r.body_bytes())?;
        for e in v["epochList"].as_array().into_iter().flatten() {
            println!(
                "#Epoch: EpochEntry{{epoch={}, startOffset={}, endOffset={}}}",
                e["epoch"], e["startOffset"], e["endOffset"]
            );
        }
    }
    Ok(())
}

/// Runs one controller admin command.
pub async fn run(cmd: ControllerCmd) -> CliResult {
    let client = RemotingClient::new(ClientConfig::default());
    let r = run_with(&client, cmd).await;
    client.shutdown();
    r
}

async fn run_with(client: &RemotingClient, cmd: ControllerCmd) -> CliResult {
    match cmd {
        ControllerCmd::GetControllerMetaData { controller } => {
            let m = metadata(client, &controller).await?;
            println!("ControllerGroup\t{}", m.group);
            println!("ControllerLeaderId\t{}", m.controller_leader_id);
            println!("ControllerLeaderAddress\t{}", m.controller_leader_address);
            for p in m.peers.split(';').filter(|p| !p.is_empty()) {
                println!("#Peer:\t{p}");
            }
            Ok(())
        }
        ControllerCmd::GetSyncStateSet {
            controller,
            brokers,
        } => sync_state_set(client, &controller, &brokers).await,
        ControllerCmd::GetBrokerEpoch { namesrv, broker } => {
            broker_epoch(client, &namesrv, &broker).await
        }
        ControllerCmd::ElectMaster {
            controller,
            cluster,
            broker_name,
            broker_id,
        } => {
            let h = ElectMasterRequestHeader {
                cluster_name: cluster.clone(),
                broker_name: broker_name.clone(),
                broker_id,
                designate_elect: true,
                invoke_time: crate::wire::now_ms(),
            };
            let r = to_leader(
                client,
                &controller,
                request(rq::CONTROLLER_ELECT_MASTER, &h),
            )
            .await?;
            let h = ElectMasterResponseHeader::from_ext(&r.ext)?;
            println!(
                "\n#ClusterName\t{cluster}\n#BrokerName\t{broker_name}\n#BrokerMasterAddr\t{}\n#MasterEpoch\t{}\n#SyncStateSetEpoch\t{}",
                h.master_address.unwrap_or_default(),
                h.master_epoch.unwrap_or_default(),
                h.sync_state_set_epoch.unwrap_or_default()
            );
            Ok(())
        }
        ControllerCmd::CleanBrokerMetadata {
            controller,
            cluster,
            broker_name,
            ids,
            living,
        } => {
            let h = CleanBrokerDataRequestHeader {
                cluster_name: cluster,
                broker_name: broker_name.clone(),
                broker_controller_ids_to_clean: ids,
                is_clean_living_broker: living,
                invoke_time: crate::wire::now_ms(),
            };
            to_leader(client, &controller, request(rq::CLEAN_BROKER_DATA, &h)).await?;
            println!("clear broker {broker_name} metadata from controller success!");
            Ok(())
        }
    }
}
