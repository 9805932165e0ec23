//! Feeds arbitrary bytes to the JSON (fastjson dialect) bodies peers send —
//! HEART_BEAT's `HeartbeatData`, REGISTER_BROKER's body (plain and the
//! zlib-compressed layout, inflation capped), subscription groups, the ACL
//! admin bodies — and to the name checks they pass through. None may panic.
#![no_main]
use actormq::auth::model::{AclInfo, UserInfo};
use actormq::wire::bodies::{HeartbeatData, SubscriptionGroupConfig};
use actormq::wire::json::from_fastjson;
use actormq::wire::register_body::decode_register_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(hb) = from_fastjson::<HeartbeatData>(data) {
        let _ = hb.check_names();
    }
    let _ = decode_register_body(data, false);
    let _ = decode_register_body(data, true);
    let _ = from_fastjson::<SubscriptionGroupConfig>(data);
    let _ = from_fastjson::<UserInfo>(data);
    let _ = from_fastjson::<AclInfo>(data);
});
