//! Arbitrary text as the broker meets it: the message properties string
//! (`PropertyView`), a SQL92 subscription (`filter::parse`), topic and group
//! names (`wire::names`) and a gRPC `authorization` header. None may panic.
#![no_main]
use actormq::auth::signature::parse_grpc_authorization;
use actormq::wire::message::PropertyView;
use actormq::wire::names::{check_group, check_topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let view = PropertyView::new(s);
    let _ = view.get("TAGS");
    let _ = view.get("UNIQ_KEY");
    let _ = actormq::filter::parse(s);
    let _ = check_topic(s);
    let _ = check_group(s);
    let _ = parse_grpc_authorization(s, Some("20240101T000000Z"));
});
