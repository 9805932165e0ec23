//! Errors of the client: transport failures from [`super::remoting`],
//! remote error responses, and codec / routing failures of the higher
//! layers, in one enum so callers match on a single type.

use crate::wire::message::MessageError;
use crate::wire::{RemotingCommand, WireError};

/// Errors of remote calls.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("request to {addr} timed out after {millis} ms")]
    Timeout { addr: String, millis: u64 },
    #[error("connection to {addr} closed")]
    Closed { addr: String },
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    #[error("remote error {code}: {remark}")]
    Remote { code: i32, remark: String },
    /// No usable route (no name server answer, no writable queue, ...).
    #[error("no route: {0}")]
    NoRoute(String),
    /// A message body (pull result, batch) that does not decode or encode.
    #[error("message codec: {0}")]
    Message(#[from] MessageError),
    /// Bad caller input (empty batch, mixed topics, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl ClientError {
    /// Builds `Remote` from an unexpected response.
    pub fn remote(resp: &RemotingCommand) -> ClientError {
        ClientError::Remote {
            code: resp.code,
            remark: resp.remark.clone().unwrap_or_default(),
        }
    }

    /// The remote response code, if this is a `Remote` error.
    pub fn remote_code(&self) -> Option<i32> {
        match self {
            ClientError::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Fails with [`ClientError::Remote`] unless the response code is one of `ok`.
pub fn expect_code(resp: RemotingCommand, ok: &[i32]) -> Result<RemotingCommand, ClientError> {
    if ok.contains(&resp.code) {
        Ok(resp)
    } else {
        Err(ClientError::remote(&resp))
    }
}
