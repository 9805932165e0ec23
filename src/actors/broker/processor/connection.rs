//! A remoting session as a [`ClientConnection`]: each broker → client call
//! becomes a request frame on the client's connection.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;

use crate::actors::session::Channel;
use crate::service::connection::ClientConnection;
use crate::service::Refusal;
use crate::wire::bodies::MessageQueue;
use crate::wire::codes::{request as rq, response as rs};
use crate::wire::headers::client::ConsumerGroupHeader;
use crate::wire::headers::consume::{
    CheckTransactionStateRequestHeader, ConsumeMessageDirectlyRequestHeader,
    GetConsumerRunningInfoRequestHeader, ResetOffsetRequestHeader,
};
use crate::wire::headers::CommandHeader;
use crate::wire::RemotingCommand;

fn request(code: i32, header: &impl CommandHeader) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code);
    header.write_ext(&mut cmd.ext);
    cmd
}

/// Sends `cmd` and turns the client's answer into the body or a refusal.
fn call(
    ch: &Channel,
    cmd: RemotingCommand,
    timeout: Duration,
    what: &'static str,
) -> BoxFuture<'static, Result<Bytes, Refusal>> {
    let ch = ch.clone();
    Box::pin(async move {
        match ch.invoke(cmd, timeout).await {
            Some(r) if r.code == rs::SUCCESS => Ok(r.body_bytes()),
            Some(r) => Err(Refusal::Failed(format!(
                "the client answered {what} with code {}: {}",
                r.code,
                r.remark.unwrap_or_default()
            ))),
            None => Err(Refusal::ClientTimeout(format!(
                "consumer {} did not answer {what} in time",
                ch.peer
            ))),
        }
    })
}

impl ClientConnection for Channel {
    fn id(&self) -> u64 {
        self.id
    }

    fn remote(&self) -> SocketAddr {
        self.peer
    }

    fn is_open(&self) -> bool {
        Channel::is_open(self)
    }

    fn notify_consumer_ids_changed(&self, group: &str) -> bool {
        let h = ConsumerGroupHeader {
            consumer_group: group.to_owned(),
        };
        self.oneway(request(rq::NOTIFY_CONSUMER_IDS_CHANGED, &h))
    }

    fn check_transaction_state(
        &self,
        header: CheckTransactionStateRequestHeader,
        message: Bytes,
    ) -> bool {
        self.oneway(request(rq::CHECK_TRANSACTION_STATE, &header).with_body(message))
    }

    fn reset_offset(
        &self,
        header: ResetOffsetRequestHeader,
        offsets: &[(MessageQueue, i64)],
    ) -> bool {
        let body = crate::wire::json::mq_keyed(offsets.iter().map(|(mq, o)| (mq, o.to_string())));
        let body = format!("{{\"offsetTable\":{body}}}");
        self.oneway(request(rq::RESET_CONSUMER_CLIENT_OFFSET, &header).with_body(body.into_bytes()))
    }

    fn consumer_running_info(
        &self,
        header: GetConsumerRunningInfoRequestHeader,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, Refusal>> {
        let cmd = request(rq::GET_CONSUMER_RUNNING_INFO, &header);
        call(self, cmd, timeout, "GET_CONSUMER_RUNNING_INFO")
    }

    fn consume_message_directly(
        &self,
        header: ConsumeMessageDirectlyRequestHeader,
        message: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, Refusal>> {
        let cmd = request(rq::CONSUME_MESSAGE_DIRECTLY, &header).with_body(message);
        call(self, cmd, timeout, "CONSUME_MESSAGE_DIRECTLY")
    }
}
