//! The message properties string (`MessageDecoder.messageProperties2String`, `MessageConst`), reserved key names, and the
//! Java `String.hashCode` used for tag codes (`MessageExtBrokerInner.tagsString2tagsCode`).
//!
//! Properties are `key \u{1} value \u{2}` pairs. Decoding follows the Java rules:
//! split on `\u{2}`, keep a pair only when `\u{1}` has at least one character on
//! each side, and let later duplicates overwrite earlier ones.

/// Separator between a key and its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Terminator after every pair.
pub const PROPERTY_SEPARATOR: char = '\u{2}';
/// Prefix of properties that must never be stored.
pub const TRANSIENT_PREFIX: &str = "__RMQ.TRANSIENT.";

/// Well-known property names (`MessageConst` in the Java client).
pub mod keys {
    pub const KEYS: &str = "KEYS";
    pub const TAGS: &str = "TAGS";
    pub const WAIT: &str = "WAIT";
    pub const DELAY: &str = "DELAY";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QID: &str = "REAL_QID";
    pub const TRAN_MSG: &str = "TRAN_MSG";
    pub const PGROUP: &str = "PGROUP";
    pub const MIN_OFFSET: &str = "MIN_OFFSET";
    pub const MAX_OFFSET: &str = "MAX_OFFSET";
    pub const BUYER_ID: &str = "BUYER_ID";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const TRANSFER_FLAG: &str = "TRANSFER_FLAG";
    pub const CORRECTION_FLAG: &str = "CORRECTION_FLAG";
    pub const MQ2_FLAG: &str = "MQ2_FLAG";
    pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
    pub const MSG_REGION: &str = "MSG_REGION";
    pub const TRACE_ON: &str = "TRACE_ON";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const EXTEND_UNIQ_INFO: &str = "EXTEND_UNIQ_INFO";
    pub const DUP_INFO: &str = "DUP_INFO";
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    pub const CONSUME_START_TIME: &str = "CONSUME_START_TIME";
    pub const INNER_NUM: &str = "INNER_NUM";
    pub const INNER_BASE: &str = "INNER_BASE";
    pub const TRAN_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    pub const TRANSACTION_ID: &str = "__transactionId__";
    pub const INSTANCE_ID: &str = "INSTANCE_ID";
    pub const CORRELATION_ID: &str = "CORRELATION_ID";
    pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
    pub const TTL: &str = "TTL";
    pub const ARRIVE_TIME: &str = "ARRIVE_TIME";
    pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
    pub const MSG_TYPE: &str = "MSG_TYPE";
    pub const CLUSTER: &str = "CLUSTER";
    pub const POP_CK: &str = "POP_CK";
    pub const POP_CK_OFFSET: &str = "POP_CK_OFFSET";
    pub const FIRST_POP_TIME: &str = "1ST_POP_TIME";
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
    pub const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
    pub const FORWARD_QUEUE_ID: &str = "PROPERTY_FORWARD_QUEUE_ID";
    pub const REDIRECT: &str = "REDIRECT";
    pub const INNER_MULTI_DISPATCH: &str = "INNER_MULTI_DISPATCH";
    pub const INNER_MULTI_QUEUE_OFFSET: &str = "INNER_MULTI_QUEUE_OFFSET";
    pub const TRACE_CONTEXT: &str = "TRACE_CONTEXT";
    pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
    pub const TIMER_ENQUEUE_MS: &str = "TIMER_ENQUEUE_MS";
    pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
    pub const TIMER_ROLL_TIMES: &str = "TIMER_ROLL_TIMES";
    pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
    pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
    pub const TIMER_DELAY_LEVEL: &str = "TIMER_DELAY_LEVEL";
    pub const BORN_HOST: &str = "__BORNHOST";
    pub const BORN_TIMESTAMP: &str = "BORN_TIMESTAMP";
    pub const CRC32: &str = "__CRC32#";
    pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
    pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
}

/// Java `String.hashCode()`: `h = 31*h + c` over UTF-16 code units, wrapping.
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(u as i32))
}

/// Consume-queue tag code: the Java hash of the tag sign-extended; 0 without a tag.
pub fn tags_code(tags: Option<&str>) -> i64 {
    match tags {
        Some(t) if !t.is_empty() => java_hash(t) as i64,
        _ => 0,
    }
}

/// Encodes pairs as `k\u{1}v\u{2}...` (always ending in `\u{2}` when non-empty).
pub fn encode_properties<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(k);
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(v);
        out.push(PROPERTY_SEPARATOR);
    }
    out
}

/// Iterates the valid `(key, value)` pairs in string order, duplicates included.
fn raw_pairs(s: &str) -> impl DoubleEndedIterator<Item = (&str, &str)> {
    // Both separators are ASCII, so a byte scan finds them (cheaper than a
    // char searcher on these short strings) and every cut is a char boundary.
    let sub = move |part: &[u8]| {
        let at = part.as_ptr() as usize - s.as_ptr() as usize;
        &s[at..at + part.len()]
    };
    s.as_bytes()
        .split(|&b| b == PROPERTY_SEPARATOR as u8)
        .filter_map(move |seg| {
            let at = seg.iter().position(|&b| b == NAME_VALUE_SEPARATOR as u8)?;
            let (k, v) = (&seg[..at], &seg[at + 1..]);
            (!k.is_empty() && !v.is_empty()).then(|| (sub(k), sub(v)))
        })
}

/// A properties string scanned once, for code that asks it several
/// questions (the send path looks up about a dozen keys per message). The
/// first 16 pairs live inline, so a typical message allocates nothing here.
pub struct PropertyView<'a> {
    inline: [(&'a str, &'a str); 16],
    len: usize,
    more: Vec<(&'a str, &'a str)>,
}

impl<'a> PropertyView<'a> {
    pub fn new(s: &'a str) -> PropertyView<'a> {
        let mut v = PropertyView {
            inline: [("", ""); 16],
            len: 0,
            more: Vec::new(),
        };
        for pair in raw_pairs(s) {
            if v.len < v.inline.len() {
                v.inline[v.len] = pair;
                v.len += 1;
            } else {
                v.more.push(pair);
            }
        }
        v
    }

    /// The value of `key` (the last occurrence wins, as in Java).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.more
            .iter()
            .rev()
            .chain(self.inline[..self.len].iter().rev())
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

/// Decodes a properties string. A duplicate key keeps the position of its
/// first occurrence and the value of its last one.
pub fn decode_properties(s: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in raw_pairs(s) {
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.to_owned(),
            None => out.push((k.to_owned(), v.to_owned())),
        }
    }
    out
}

/// Finds one property without allocating (the last occurrence wins, as in Java).
pub fn property<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    raw_pairs(s).rev().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Returns `s` with `key` set to `value` (replacing any earlier value in place).
pub fn with_property(s: &str, key: &str, value: &str) -> String {
    let mut pairs = decode_properties(s);
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_owned(),
        None => pairs.push((key.to_owned(), value.to_owned())),
    }
    encode_properties(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Returns `s` without `key` (and normalised: invalid segments dropped).
pub fn without_property(s: &str, key: &str) -> String {
    let pairs = decode_properties(s);
    encode_properties(
        pairs
            .iter()
            .filter(|(k, _)| k != key)
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn java_hash_known_values() {
        assert_eq!(java_hash("TagA"), 2598919);
        assert_eq!(java_hash("*"), 42);
        assert_eq!(java_hash(""), 0);
        assert_eq!(tags_code(None), 0);
        assert_eq!(tags_code(Some("TagA")), 2598919);
        // Overflowing hash is sign-extended.
        let h = java_hash("a-long-tag-value-that-overflows");
        assert_eq!(tags_code(Some("a-long-tag-value-that-overflows")), h as i64);
        // Non-BMP characters hash as two UTF-16 units.
        assert_eq!(java_hash("😀"), 0xD83Di32 * 31 + 0xDE00);
    }

    #[test]
    fn decode_java_rules() {
        let s = "A\u{1}1\u{2}\u{1}x\u{2}B\u{1}\u{2}C\u{1}3\u{2}A\u{1}9\u{2}junk\u{2}D\u{1}4";
        let got = decode_properties(s);
        let want: Vec<(String, String)> = [("A", "9"), ("C", "3"), ("D", "4")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(property(s, "A"), Some("9"));
        assert_eq!(property(s, "B"), None);
        assert_eq!(property(s, "D"), Some("4"));
        assert_eq!(property("", "A"), None);
    }

    #[test]
    fn set_and_remove() {
        let s = encode_properties([("TAGS", "a"), ("KEYS", "k1 k2")]);
        let s2 = with_property(&s, "TAGS", "b");
        assert_eq!(s2, "TAGS\u{1}b\u{2}KEYS\u{1}k1 k2\u{2}");
        let s3 = with_property(&s2, "CLUSTER", "c");
        assert_eq!(property(&s3, "CLUSTER"), Some("c"));
        assert_eq!(
            without_property(&s3, "TAGS"),
            "KEYS\u{1}k1 k2\u{2}CLUSTER\u{1}c\u{2}"
        );
    }

    proptest! {
        #[test]
        fn properties_round_trip(
            map in proptest::collection::btree_map("[^\u{1}\u{2}]{1,12}", "[^\u{1}\u{2}]{1,20}", 0..8)
        ) {
            let s = encode_properties(map.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let back = decode_properties(&s);
            let want: Vec<(String, String)> = map.clone().into_iter().collect();
            prop_assert_eq!(&back, &want);
            for (k, v) in &map {
                prop_assert_eq!(property(&s, k), Some(v.as_str()));
            }
        }

        #[test]
        fn decode_arbitrary_never_panics(s in ".{0,64}") {
            let _ = decode_properties(&s);
            let _ = property(&s, "A");
        }
    }
}
