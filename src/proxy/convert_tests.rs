use super::*;

fn msg(topic: &str) -> pb::Message {
    pb::Message {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: topic.into(),
        }),
        user_properties: [("k".to_owned(), "v".to_owned())].into_iter().collect(),
        system_properties: Some(pb::SystemProperties {
            tag: Some("TagA".into()),
            keys: vec!["k1".into(), "k2".into()],
            message_id: "01ABC".into(),
            message_group: Some("g1".into()),
            ..Default::default()
        }),
        body: Bytes::from_static(b"hello"),
    }
}

#[test]
fn a_grpc_message_becomes_stored_properties() {
    let c = to_send(&msg("T"), &ProxyConfig::default(), "1.2.3.4:5", 1000).unwrap();
    let p = |k| message::property(&c.properties, k).map(str::to_owned);
    assert_eq!(p(keys::UNIQ_KEY).as_deref(), Some("01ABC"));
    assert_eq!(p(keys::TAGS).as_deref(), Some("TagA"));
    assert_eq!(p(keys::KEYS).as_deref(), Some("k1 k2"));
    assert_eq!(p(keys::SHARDING_KEY).as_deref(), Some("g1"));
    assert_eq!(p(keys::PGROUP).as_deref(), Some("T"));
    assert_eq!(p("k").as_deref(), Some("v"));
    assert_eq!(c.shard_key.as_deref(), Some("g1"));
    assert_eq!(
        kind_of(msg("T").system_properties.as_ref().unwrap()),
        MessageType::Fifo
    );
}

#[test]
fn sends_are_checked_in_the_proxy_order() {
    let cfg = ProxyConfig::default();
    let code = |m: &pb::Message| to_send(m, &cfg, "h", 0).unwrap_err().code;
    let mut m = msg("T");
    m.body = Bytes::new();
    assert_eq!(code(&m), Code::MessageBodyEmpty);
    let mut m = msg("T");
    m.user_properties.insert("UNIQ_KEY".into(), "x".into());
    assert_eq!(code(&m), Code::IllegalMessagePropertyKey);
    let mut m = msg("T");
    m.system_properties.as_mut().unwrap().tag = Some("a|b".into());
    assert_eq!(code(&m), Code::IllegalMessageTag);
    let mut m = msg("T");
    m.system_properties.as_mut().unwrap().message_id = " ".into();
    assert_eq!(code(&m), Code::IllegalMessageId);
    let mut m = msg("T");
    m.system_properties.as_mut().unwrap().delivery_timestamp = Some(ms_ts(2 * 86_400_000));
    assert_eq!(code(&m), Code::IllegalDeliveryTime);
    assert_eq!(code(&msg("a b")), Code::IllegalTopic);
}

#[test]
fn topic_types_accept_their_own_kind_and_mixed_takes_all() {
    assert!(type_accepted(None, MessageType::Normal));
    assert!(!type_accepted(None, MessageType::Fifo));
    assert!(type_accepted(Some("FIFO"), MessageType::Fifo));
    assert!(type_accepted(Some("MIXED"), MessageType::Transaction));
    assert_eq!(accepted_types(Some("MIXED")).len(), 4);
}

#[test]
fn a_stored_message_reads_back_with_its_digest_and_attempt() {
    let props = message::encode_properties([("UNIQ_KEY", "U1"), ("TAGS", "t"), ("a", "b")]);
    let m = MessageExt {
        store_size: 0,
        magic: 0,
        body_crc: 0,
        queue_id: 2,
        flag: 0,
        queue_offset: 7,
        commit_log_offset: 99,
        sys_flag: 0,
        born_timestamp: 1500,
        born_host: "1.2.3.4:5".parse().unwrap(),
        store_timestamp: 2500,
        store_host: "5.6.7.8:9".parse().unwrap(),
        reconsume_times: 2,
        prepared_transaction_offset: 0,
        body: Bytes::from_static(b"abc"),
        topic: "%RETRY%G_T".into(),
        properties: props,
    };
    let g = from_stored(&m, "T", Some("h".into()));
    let sp = g.system_properties.unwrap();
    assert_eq!(g.topic.unwrap().name, "T");
    assert_eq!(sp.message_id, "U1");
    assert_eq!(sp.delivery_attempt, Some(3));
    assert_eq!(
        sp.body_digest.unwrap().checksum,
        "900150983CD24FB0D6963F7D28E17F72"
    );
    assert_eq!(g.user_properties.get("a").map(String::as_str), Some("b"));
    assert!(!g.user_properties.contains_key("TAGS"));
    assert_eq!(sp.born_timestamp.map(|t| ts_ms(&t)), Some(1500));
}
