//! Feeds arbitrary bytes to the stored-message and batch decoders: they
//! must never panic, whatever the lengths inside claim.
#![no_main]
use actormq::wire::message::{decode_batch, decode_records};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    let _ = decode_records(&b);
    let _ = decode_batch(&b);
});
