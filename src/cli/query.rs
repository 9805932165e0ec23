//! `actormq admin queryMsgByKey | queryMsgById | queryMsgByUniqueKey |
//! queryMsgByOffset`: find stored messages the way `mqadmin` does and print
//! them in its layout.
//!
//! Key queries ask every master broker of the topic (QUERY_MESSAGE) and, as
//! the Java client does, drop hash collisions by checking the message's
//! `KEYS` / `UNIQ_KEY` text. By-id queries decode the offset message id into
//! the store host and commit-log offset (VIEW_MESSAGE_BY_ID); by-offset
//! queries pull one message from a queue.

use clap::Subcommand;
use std::time::Duration;

use super::CliResult;
use crate::client::pull::inflate_body;
use crate::client::{ClientError, PullConsumer, PullStatus, Routes};
use crate::wire::bodies::MessageQueue;
use crate::wire::codes::{request, response};
use crate::wire::headers::query::{
    QueryMessageRequestHeader, ViewMessageRequestHeader, UNIQUE_KEY_QUERY,
};
use crate::wire::headers::CommandHeader;
use crate::wire::message::{decode_properties, decode_records, MessageExt};
use crate::wire::{msgid, RemotingCommand};

#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum QueryCommand {
    /// Query messages by key (KEYS).
    #[command(name = "queryMsgByKey")]
    QueryMsgByKey {
        #[arg(short = 'n', long = "namesrvAddr")]
        namesrv: String,
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'k', long = "msgKey")]
        key: String,
        /// Most messages per broker.
        #[arg(short = 'c', long = "maxNum", default_value_t = 64)]
        max_num: i32,
        /// Store time range start, ms.
        #[arg(short = 'b', long = "beginTimestamp", default_value_t = 0)]
        begin: i64,
        /// Store time range end, ms.
        #[arg(short = 'e', long = "endTimestamp", default_value_t = i64::MAX)]
        end: i64,
    },
    /// Query a message by its offset message id.
    #[command(name = "queryMsgById")]
    QueryMsgById {
        #[arg(short = 'n', long = "namesrvAddr")]
        namesrv: String,
        /// Offset message id(s), comma-separated.
        #[arg(short = 'i', long = "msgId")]
        msg_id: String,
    },
    /// Query a message by its unique key (the producer's msgId).
    #[command(name = "queryMsgByUniqueKey")]
    QueryMsgByUniqueKey {
        #[arg(short = 'n', long = "namesrvAddr")]
        namesrv: String,
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'i', long = "msgId")]
        uniq_key: String,
    },
    /// Query the message at a queue offset.
    #[command(name = "queryMsgByOffset")]
    QueryMsgByOffset {
        #[arg(short = 'n', long = "namesrvAddr")]
        namesrv: String,
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'b', long = "brokerName")]
        broker: String,
        #[arg(short = 'i', long = "queueId")]
        queue_id: i32,
        #[arg(short = 'o', long = "offset")]
        offset: i64,
    },
}

pub async fn run(cmd: QueryCommand) -> CliResult {
    let msgs = match cmd {
        QueryCommand::QueryMsgByKey {
            namesrv,
            topic,
            key,
            max_num,
            begin,
            end,
        } => {
            let routes = Routes::connect(&namesrv);
            query_by_key(&routes, &topic, &key, max_num, begin, end, false).await?
        }
        QueryCommand::QueryMsgByUniqueKey {
            namesrv,
            topic,
            uniq_key,
        } => {
            let routes = Routes::connect(&namesrv);
            query_by_key(&routes, &topic, &uniq_key, 32, 0, i64::MAX, true).await?
        }
        QueryCommand::QueryMsgById { namesrv, msg_id } => {
            let routes = Routes::connect(&namesrv);
            let mut out = Vec::new();
            for id in msg_id.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                out.push(view_by_id(&routes, id).await?);
            }
            out
        }
        QueryCommand::QueryMsgByOffset {
            namesrv,
            topic,
            broker,
            queue_id,
            offset,
        } => {
            let routes = Routes::connect(&namesrv);
            query_by_offset(&routes, &topic, &broker, queue_id, offset).await?
        }
    };
    if msgs.is_empty() {
        return Err("no message found".into());
    }
    for m in &msgs {
        print!("{}", render(m));
        println!();
    }
    Ok(())
}

/// Keeps the messages really carrying `key` (in `KEYS`, or as `UNIQ_KEY`
/// when `unique`): the broker also returns hash collisions.
pub fn filter_by_key(msgs: Vec<MessageExt>, key: &str, unique: bool) -> Vec<MessageExt> {
    msgs.into_iter()
        .filter(|m| {
            if unique {
                m.uniq_key() == Some(key)
            } else {
                m.keys().is_some_and(|ks| ks.split(' ').any(|k| k == key))
            }
        })
        .collect()
}

/// QUERY_MESSAGE on every master of `topic`, collisions dropped.
pub async fn query_by_key(
    routes: &Routes,
    topic: &str,
    key: &str,
    max_num: i32,
    begin: i64,
    end: i64,
    unique: bool,
) -> Result<Vec<MessageExt>, ClientError> {
    let route = routes.route(topic).await?;
    let header = QueryMessageRequestHeader {
        topic: topic.to_owned(),
        key: key.to_owned(),
        max_num,
        begin_timestamp: begin,
        end_timestamp: end,
    };
    let mut found = Vec::new();
    for addr in route.master_addrs() {
        let mut cmd = RemotingCommand::request(request::QUERY_MESSAGE);
        cmd.ext = header.to_ext();
        if unique {
            cmd.ext.insert(UNIQUE_KEY_QUERY, "true");
        }
        let resp = routes
            .client()
            .invoke(&addr, cmd, query_timeout(routes))
            .await?;
        match resp.code {
            response::SUCCESS => found.extend(decode_records(&resp.body_bytes())?),
            response::QUERY_NOT_FOUND => {}
            _ => return Err(ClientError::remote(&resp)),
        }
    }
    let mut msgs = filter_by_key(found, key, unique);
    msgs.iter_mut().for_each(inflate_body);
    msgs.sort_by_key(|m| (m.store_timestamp, m.commit_log_offset));
    Ok(msgs)
}

fn query_timeout(routes: &Routes) -> Duration {
    routes.default_timeout().max(Duration::from_secs(5))
}

/// VIEW_MESSAGE_BY_ID at the store host named in the offset message id.
pub async fn view_by_id(routes: &Routes, msg_id: &str) -> Result<MessageExt, ClientError> {
    let (host, offset) = msgid::decode_offset_msg_id(msg_id)
        .ok_or_else(|| ClientError::Invalid(format!("not an offset message id: {msg_id}")))?;
    let mut cmd = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID);
    cmd.ext = ViewMessageRequestHeader {
        topic: None,
        offset,
    }
    .to_ext();
    let resp = routes
        .client()
        .invoke(&host.to_string(), cmd, query_timeout(routes))
        .await?;
    if resp.code != response::SUCCESS {
        return Err(ClientError::remote(&resp));
    }
    let mut m = decode_records(&resp.body_bytes())?
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::Invalid("empty VIEW_MESSAGE_BY_ID body".into()))?;
    inflate_body(&mut m);
    Ok(m)
}

/// Pulls the one message at `offset` of a queue.
pub async fn query_by_offset(
    routes: &Routes,
    topic: &str,
    broker: &str,
    queue_id: i32,
    offset: i64,
) -> Result<Vec<MessageExt>, ClientError> {
    let consumer = PullConsumer::with_routes("TOOLS_CONSUMER", routes.clone());
    let mq = MessageQueue {
        broker_name: broker.to_owned(),
        queue_id,
        topic: topic.to_owned(),
    };
    let r = consumer.pull(&mq, offset, 1, None, "*").await?;
    match r.status {
        PullStatus::Found => Ok(r.messages.into_iter().take(1).collect()),
        _ => Ok(Vec::new()),
    }
}

/// `yyyy-MM-dd HH:mm:ss,SSS` in local time (mqadmin's format).
pub fn human_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: localtime_r writes only the struct we pass.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return ms.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        ms.rem_euclid(1000)
    )
}

/// One message in mqadmin's `printMsg` layout.
pub fn render(m: &MessageExt) -> String {
    let props: Vec<String> = decode_properties(&m.properties)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let rows: [(&str, String); 15] = [
        ("OffsetID:", m.offset_msg_id()),
        ("Topic:", m.topic.clone()),
        ("Tags:", format!("[{}]", m.tags().unwrap_or("null"))),
        ("Keys:", format!("[{}]", m.keys().unwrap_or("null"))),
        ("Queue ID:", m.queue_id.to_string()),
        ("Queue Offset:", m.queue_offset.to_string()),
        ("CommitLog Offset:", m.commit_log_offset.to_string()),
        ("Reconsume Times:", m.reconsume_times.to_string()),
        ("Born Timestamp:", human_time(m.born_timestamp)),
        ("Store Timestamp:", human_time(m.store_timestamp)),
        ("Born Host:", m.born_host.to_string()),
        ("Store Host:", m.store_host.to_string()),
        ("System Flag:", m.sys_flag.to_string()),
        ("Properties:", format!("{{{}}}", props.join(", "))),
        (
            "Message Body:",
            String::from_utf8_lossy(&m.body).into_owned(),
        ),
    ];
    let mut s = String::new();
    for (k, v) in rows {
        s.push_str(&format!("{k:<20} {v}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::{encode_properties, keys};

    fn msg(keys_prop: Option<&str>, uniq: &str) -> MessageExt {
        let mut pairs = vec![(keys::UNIQ_KEY, uniq)];
        if let Some(k) = keys_prop {
            pairs.push((keys::KEYS, k));
        }
        MessageExt {
            store_size: 0,
            magic: 0,
            body_crc: 0,
            queue_id: 1,
            flag: 0,
            queue_offset: 7,
            commit_log_offset: 4096,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp: 0,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: bytes::Bytes::from_static(b"hello"),
            topic: "T".into(),
            properties: encode_properties(pairs),
        }
    }

    #[test]
    fn filters_collisions_and_renders() {
        let all = vec![
            msg(Some("Aa x"), "U1"),
            msg(Some("BB"), "U2"),
            msg(None, "U3"),
        ];
        let got = filter_by_key(all.clone(), "Aa", false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].uniq_key(), Some("U1"));
        assert_eq!(filter_by_key(all, "U3", true).len(), 1);
        let text = render(&msg(Some("k"), "U9"));
        assert!(text.contains("Keys:                [k]"), "{text}");
        assert!(text.contains("Queue Offset:        7"));
        assert!(text.contains("Message Body:        hello"));
        assert!(text.starts_with("OffsetID:            7F00000100002A9F0000000000001000"));
    }
}
