//! Names that clients choose and the broker turns into paths or keys:
//! topics, consumer/producer groups, broker and cluster names. One choke
//! point with RocketMQ's rules (`TopicValidator`, `Validators.checkGroup`),
//! and the one definition of the protocol's reserved names and prefixes.
//!
//! Rules: characters `[%|a-zA-Z0-9_-]`, not empty; a topic at most 127
//! characters, a group at most 255. A retry or dead-letter topic is its
//! prefix followed by a valid group, so it may run to prefix + 255. None of
//! these names can hold `/`, `\` or `.`, so none can leave a directory.

/// Prefix of a consumer group's retry topic (`MixAll.RETRY_GROUP_TOPIC_PREFIX`).
pub const RETRY_PREFIX: &str = "%RETRY%";
/// Prefix of a consumer group's dead-letter topic (`MixAll.DLQ_GROUP_TOPIC_PREFIX`).
pub const DLQ_PREFIX: &str = "%DLQ%";
/// The topic new topics inherit from (`TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
pub const AUTO_CREATE_TOPIC: &str = "TBW102";
/// `TopicValidator.RMQ_SYS_SELF_TEST_TOPIC`.
pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
/// `TopicValidator.TOPIC_MAX_LENGTH`.
pub const TOPIC_MAX_LEN: usize = 127;
/// `Validators.CHARACTER_MAX_LENGTH`, the limit for groups.
pub const GROUP_MAX_LEN: usize = 255;

/// Why a name was refused; the text is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the specified {kind} is blank")]
    Blank { kind: &'static str },
    #[error("the specified {kind}[{name}] is longer than {kind} max length {max}")]
    TooLong {
        kind: &'static str,
        name: String,
        max: usize,
    },
    #[error("the specified {kind}[{name}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$")]
    Illegal { kind: &'static str, name: String },
}

fn legal_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'-' | b'_')
}

fn check(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Blank { kind });
    }
    if !name.bytes().all(legal_byte) {
        return Err(NameError::Illegal {
            kind,
            name: printable(name),
        });
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            kind,
            name: printable(name),
            max,
        });
    }
    Ok(())
}

/// A name as it may be shown in a reply: at most 300 characters, no
/// control characters.
fn printable(name: &str) -> String {
    name.chars()
        .take(300)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A topic name: a plain topic (≤ 127), or a retry / dead-letter topic built
/// from a valid group.
pub fn check_topic(name: &str) -> Result<(), NameError> {
    for prefix in [RETRY_PREFIX, DLQ_PREFIX] {
        if let Some(group) = name.strip_prefix(prefix) {
            return check("topic", group, GROUP_MAX_LEN).map_err(|_| {
                if name.bytes().all(legal_byte) {
                    NameError::TooLong {
                        kind: "topic",
                        name: printable(name),
                        max: prefix.len() + GROUP_MAX_LEN,
                    }
                } else {
                    NameError::Illegal {
                        kind: "topic",
                        name: printable(name),
                    }
                }
            });
        }
    }
    check("topic", name, TOPIC_MAX_LEN)
}

/// A producer or consumer group name.
pub fn check_group(name: &str) -> Result<(), NameError> {
    check("group", name, GROUP_MAX_LEN)
}

/// A broker name (`brokerName`): it becomes a topic, so a topic's rules.
pub fn check_broker_name(name: &str) -> Result<(), NameError> {
    check("brokerName", name, TOPIC_MAX_LEN)
}

/// A cluster name (`brokerClusterName`): it becomes a topic too.
pub fn check_cluster_name(name: &str) -> Result<(), NameError> {
    check("brokerClusterName", name, TOPIC_MAX_LEN)
}

/// `%RETRY%<group>`.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_PREFIX}{group}")
}

/// `%DLQ%<group>`.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

/// True for `%RETRY%…` topics.
pub fn is_retry_topic(topic: &str) -> bool {
    topic.starts_with(RETRY_PREFIX)
}

/// True for `%DLQ%…` topics.
pub fn is_dlq_topic(topic: &str) -> bool {
    topic.starts_with(DLQ_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_topics() {
        assert!(check_topic("TopicTest").is_ok());
        assert!(check_topic("a|b%c-d_e").is_ok());
        assert!(check_topic(&"t".repeat(127)).is_ok());
        assert!(matches!(
            check_topic(&"t".repeat(128)),
            Err(NameError::TooLong { max: 127, .. })
        ));
        assert_eq!(check_topic(""), Err(NameError::Blank { kind: "topic" }));
        for bad in ["a/b", "..", "a.b", "a b", "x\\y", "é", "a\0"] {
            assert!(
                matches!(check_topic(bad), Err(NameError::Illegal { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn retry_and_dlq_topics_follow_the_group_rules() {
        assert!(check_topic(&retry_topic(&"g".repeat(255))).is_ok());
        assert!(check_topic(&dlq_topic("g1")).is_ok());
        assert!(matches!(
            check_topic("%DLQ%/../../x/q"),
            Err(NameError::Illegal { .. })
        ));
        assert!(matches!(
            check_topic(&retry_topic(&"g".repeat(256))),
            Err(NameError::TooLong { max: 262, .. })
        ));
        assert!(check_topic("%DLQ%").is_err());
    }

    #[test]
    fn groups_brokers_clusters() {
        assert!(check_group(&"g".repeat(255)).is_ok());
        assert!(check_group(&"g".repeat(256)).is_err());
        assert!(check_group("g/../x").is_err());
        assert!(check_broker_name("broker-a").is_ok());
        assert!(check_broker_name("../b").is_err());
        assert!(check_cluster_name("DefaultCluster").is_ok());
        assert!(check_cluster_name("").is_err());
    }

    #[test]
    fn messages_name_the_refused_thing() {
        let e = check_topic("a/b").unwrap_err().to_string();
        assert!(e.contains("topic[a/b]"), "{e}");
        let e = check_group("x y").unwrap_err().to_string();
        assert!(e.contains("group[x y]"), "{e}");
    }

    proptest! {
        /// Whatever passes the check is one plain path component.
        #[test]
        fn accepted_names_are_single_path_components(s in "\\PC{0,40}") {
            if check_topic(&s).is_ok() {
                let p = std::path::Path::new(&s);
                let comps: Vec<_> = p.components().collect();
                prop_assert_eq!(comps.len(), 1);
                prop_assert!(matches!(comps[0], std::path::Component::Normal(_)));
            }
        }
    }
}
