//! Feeds arbitrary bytes to the remoting frame decoder (both header
//! encodings, typed-header parsing of the result): it must never panic.
#![no_main]
use actormq::wire::headers::{pull::PullMessageRequestHeader, send::SendMessageRequestHeader, CommandHeader};
use actormq::wire::{FrameCodec, Inbound};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(item)) = codec.decode(&mut buf) {
        if let Inbound::Command(cmd) = item {
            let _ = SendMessageRequestHeader::decode(cmd.code, &cmd.ext);
            let _ = PullMessageRequestHeader::from_ext(&cmd.ext);
        }
    }
});
