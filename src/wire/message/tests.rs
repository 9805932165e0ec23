//! Unit and property tests for the record codec.

use super::*;
use proptest::prelude::*;

fn v4(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn sample<'a>(topic: &'a str, body: &'a [u8], props: &'a str) -> RecordSpec<'a> {
    RecordSpec {
        topic,
        queue_id: 3,
        flag: 7,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: v4("10.0.0.2:5555"),
        store_timestamp: 1_700_000_000_123,
        store_host: v4("10.0.0.1:10911"),
        reconsume_times: 2,
        prepared_transaction_offset: 0,
        body,
        properties: props,
    }
}

fn encode(spec: &RecordSpec) -> Bytes {
    let mut out = BytesMut::new();
    encode_record(spec, &mut out).unwrap();
    out.freeze()
}

#[test]
fn layout_matches_protocol() {
    assert_eq!(MAGIC_V1, -626843481);
    assert_eq!(MAGIC_V2, -626843477);
    assert_eq!(BLANK_MAGIC, -875286124);
    let props = encode_properties([(keys::TAGS, "TagA"), (keys::UNIQ_KEY, "U1")]);
    let spec = sample("TopicTest", b"hello", &props);
    let rec = encode(&spec);
    assert_eq!(rec.len(), 91 + 5 + 9 + props.len());
    assert_eq!(rec.len(), record_len(&spec));
    let be32 = |p: usize| i32::from_be_bytes(rec[p..p + 4].try_into().unwrap());
    assert_eq!(be32(0) as usize, rec.len());
    assert_eq!(be32(MAGIC_POS), MAGIC_V1);
    assert_eq!(be32(BODY_CRC_POS), body_crc(b"hello"));
    assert_eq!(be32(QUEUE_ID_POS), 3);
    assert_eq!(be32(84), 5); // BODYLEN
    assert_eq!(&rec[88..93], b"hello");
    assert_eq!(rec[93], 9);
    let h = peek_record_header(&rec).unwrap();
    assert_eq!(h.total_size as usize, rec.len());
    assert_eq!(h.sys_flag, 0);
    assert_eq!(peek_store_timestamp(&rec).unwrap(), 1_700_000_000_123);
}

#[test]
fn decode_and_helpers() {
    let props = encode_properties([
        (keys::TAGS, "TagA"),
        (keys::KEYS, "k1 k2"),
        (keys::UNIQ_KEY, "U1"),
    ]);
    let spec = sample("TopicTest", b"hello", &props);
    let mut buf = BytesMut::new();
    encode_record(&spec, &mut buf).unwrap();
    assert!(patch_i64(&mut buf, QUEUE_OFFSET_POS, 42));
    assert!(patch_i64(&mut buf, PHYS_OFFSET_POS, 0x1234));
    let rec = buf.freeze();
    let m = decode_record(&rec, 0, true).unwrap();
    assert_eq!(m.queue_offset, 42);
    assert_eq!(m.commit_log_offset, 0x1234);
    assert_eq!(m.tags(), Some("TagA"));
    assert_eq!(m.keys(), Some("k1 k2"));
    assert_eq!(m.uniq_key(), Some("U1"));
    assert_eq!(m.offset_msg_id(), "0A00000100002A9F0000000000001234");
    assert_eq!(&m.body[..], b"hello");
    // zero copy: the body points into the record buffer
    assert_eq!(m.body.as_ptr(), rec[88..].as_ptr());
}

#[test]
fn v2_and_ipv6() {
    let topic = "%RETRY%".to_string() + &"g".repeat(150);
    let mut spec = sample(&topic, b"x", "");
    spec.born_host = "[::1]:99".parse().unwrap();
    spec.sys_flag = sysflag::STOREHOST_V6; // wrong bit: fixed by the encoder
    let rec = encode(&spec);
    let m = decode_record(&rec, 0, true).unwrap();
    assert_eq!(m.magic, MAGIC_V2);
    assert_eq!(m.sys_flag, sysflag::BORNHOST_V6);
    assert_eq!(m.topic, topic);
    assert_eq!(m.born_host, spec.born_host);
    assert_eq!(peek_store_timestamp(&rec).unwrap(), spec.store_timestamp);
}

#[test]
fn encode_limits() {
    let long_topic = "t".repeat(256);
    let mut out = BytesMut::new();
    assert_eq!(
        encode_record(&sample(&long_topic, b"", ""), &mut out),
        Err(MessageError::TopicTooLong { len: 256 })
    );
    let props = "p".repeat(32768);
    assert_eq!(
        encode_record(&sample("t", b"", &props), &mut out),
        Err(MessageError::PropertiesTooLong { len: 32768 })
    );
    assert!(out.is_empty());
}

#[test]
fn corrupt_records_are_errors() {
    let rec = encode(&sample("T", b"body", "A\u{1}b\u{2}"));
    let mut bad = rec.to_vec();
    bad[88] ^= 1;
    let bad = Bytes::from(bad);
    assert!(matches!(
        decode_record(&bad, 0, true),
        Err(MessageError::BodyCrc { .. })
    ));
    assert!(decode_record(&bad, 0, false).is_ok());
    for cut in 0..rec.len() {
        assert!(decode_record(&rec.slice(..cut), 0, false).is_err());
    }
    assert!(decode_record(&rec, rec.len() + 5, false).is_err());
    // A blank filler.
    let mut blank = BytesMut::new();
    blank.put_i32(8);
    blank.put_i32(BLANK_MAGIC);
    let blank = blank.freeze();
    assert!(peek_record_header(&blank).unwrap().is_blank());
    assert_eq!(
        decode_record(&blank, 0, false),
        Err(MessageError::Blank { offset: 0 })
    );
    // Two records back to back.
    let mut two = BytesMut::from(&rec[..]);
    two.extend_from_slice(&rec);
    let all = decode_records(&two.freeze()).unwrap();
    assert_eq!(all.len(), 2);
}

fn arb_host() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(ip.into()), p)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(ip.into()), p)),
    ]
}

proptest! {
    #[test]
    fn record_round_trip(
        topic in "[A-Za-z0-9%_-]{1,255}",
        queue_id in any::<i32>(),
        flag in any::<i32>(),
        sys_flag in any::<i32>(),
        born_timestamp in any::<i64>(),
        born_host in arb_host(),
        store_timestamp in any::<i64>(),
        store_host in arb_host(),
        reconsume_times in any::<i32>(),
        prepared_transaction_offset in any::<i64>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        properties in "[a-zA-Z\u{1}\u{2}é]{0,64}",
        qoff in any::<i64>(),
        poff in any::<i64>(),
    ) {
        let spec = RecordSpec {
            topic: &topic, queue_id, flag, sys_flag, born_timestamp, born_host,
            store_timestamp, store_host, reconsume_times, prepared_transaction_offset,
            body: &body, properties: &properties,
        };
        let mut buf = BytesMut::new();
        encode_record(&spec, &mut buf).unwrap();
        prop_assert_eq!(buf.len(), record_len(&spec));
        patch_i64(&mut buf, QUEUE_OFFSET_POS, qoff);
        patch_i64(&mut buf, PHYS_OFFSET_POS, poff);
        let rec = buf.freeze();
        let m = decode_record(&rec, 0, true).unwrap();
        let mut want_flag = sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6);
        if born_host.is_ipv6() { want_flag |= sysflag::BORNHOST_V6; }
        if store_host.is_ipv6() { want_flag |= sysflag::STOREHOST_V6; }
        prop_assert_eq!(m.sys_flag, want_flag);
        prop_assert_eq!(m.magic, if topic.len() > 127 { MAGIC_V2 } else { MAGIC_V1 });
        prop_assert_eq!(m.store_size as usize, rec.len());
        prop_assert_eq!(m.queue_offset, qoff);
        prop_assert_eq!(m.commit_log_offset, poff);
        prop_assert_eq!((m.queue_id, m.flag, m.born_timestamp, m.store_timestamp), (queue_id, flag, born_timestamp, store_timestamp));
        prop_assert_eq!((m.born_host, m.store_host), (born_host, store_host));
        prop_assert_eq!((m.reconsume_times, m.prepared_transaction_offset), (reconsume_times, prepared_transaction_offset));
        prop_assert_eq!(&m.body[..], &body[..]);
        prop_assert_eq!(&m.topic, &topic);
        prop_assert_eq!(&m.properties, &properties);
        prop_assert_eq!(peek_store_timestamp(&rec).unwrap(), store_timestamp);
        // Re-encoding the decoded message gives the same bytes (offsets aside).
        let mut again = BytesMut::new();
        encode_record(&m.as_spec(), &mut again).unwrap();
        prop_assert_eq!(&again[..QUEUE_OFFSET_POS], &rec[..QUEUE_OFFSET_POS]);
        prop_assert_eq!(&again[SYSFLAG_POS..], &rec[SYSFLAG_POS..]);
    }

    #[test]
    fn decode_arbitrary_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256), at in 0usize..300) {
        let b = Bytes::from(data);
        let _ = decode_record(&b, at, true);
        let _ = decode_records(&b);
        let _ = peek_record_header(&b);
        let _ = peek_store_timestamp(&b);
    }

    #[test]
    fn decode_mutated_never_panics(idx in 0usize..120, val in any::<u8>(), cut in 0usize..130) {
        let mut rec = encode(&sample("TopicX", b"some body", "K\u{1}v\u{2}")).to_vec();
        let i = idx % rec.len();
        rec[i] = val;
        rec.truncate(cut.min(rec.len()));
        let b = Bytes::from(rec);
        let _ = decode_record(&b, 0, true);
        let _ = decode_records(&b);
    }
}
