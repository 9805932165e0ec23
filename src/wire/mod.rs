//! The remoting wire: frames, commands, codes, typed headers, JSON bodies and
//! the stored-message codec. Knows nothing of files, sockets or actors.

pub mod bodies;
pub mod codes;
pub mod command;
pub mod controller;
pub mod frame;
pub mod headers;
pub mod inflate;
pub mod json;
pub mod json_header;
pub mod message;
pub mod msgid;
pub mod names;
pub mod pop;
pub mod register_body;

pub use command::{ExtFields, RemotingCommand};
pub use frame::{FrameCodec, Inbound};

/// Errors of the wire layer.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame length {0} out of range")]
    FrameLength(i64),
    #[error("unknown header serialize type {0}")]
    UnknownSerializeType(u8),
    #[error("truncated at byte {at}: need {need}, have {have}")]
    Truncated { at: usize, need: usize, have: usize },
    #[error("malformed header: {0}")]
    BadHeader(String),
    #[error("the custom field <{0}> is null")]
    MissingField(&'static str),
    #[error("the custom field <{0}> has a bad value {1:?}")]
    BadField(&'static str, String),
    #[error("malformed body: {0}")]
    BadBody(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
