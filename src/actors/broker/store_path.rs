//! The one place where a record about to be stored is redirected: every
//! writer (sends, send-backs, transaction commits, schedule and timer
//! deliveries) builds a [`NewRecord`] and turns it into a [`PutRecord`]
//! through [`NewRecord::encode`], which applies the storage rules of
//! RocketMQ's system topics (`TopicValidator`, `TransactionalMessageUtil`):
//!
//! * a transaction half message (`TRAN_MSG=true` or sysFlag PREPARED) is
//!   parked in `RMQ_SYS_TRANS_HALF_TOPIC` queue 0 with `REAL_TOPIC`,
//!   `REAL_QID` and `__transactionId__`, its transaction bits cleared;
//! * `DELAY=L>0` (transaction type NOT or COMMIT) parks it in
//!   `SCHEDULE_TOPIC_XXXX` queue `L-1`, tags code = store time + delay;
//! * timer properties (`TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`,
//!   `TIMER_DELAY_MS`, `__STARTDELIVERTIME`) with a due time in the future
//!   park it in `rmq_sys_wheel_timer` queue 0 with `TIMER_OUT_MS`;
//! * otherwise the tags code is the hash of `TAGS`.

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use super::commit_log::{
    self, CommitLogWriter, FlushOutcome, PutError, PutRecord, PutRecords, PutResults,
};
use crate::wire::message::{self, keys, sysflag, PropertyView, RecordSpec};

pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
pub const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// Consumer group whose offsets hold the transaction checker's progress.
pub const TRANS_GROUP: &str = "CID_RMQ_SYS_TRANS";

/// Timer properties a parked or delivered message loses.
pub const TIMER_PROPS: &[&str] = &[
    keys::TIMER_DELIVER_MS,
    keys::TIMER_DELAY_SEC,
    keys::TIMER_DELAY_MS,
    keys::START_DELIVER_TIME,
    keys::TIMER_OUT_MS,
];

/// The delay of each level (`messageDelayLevel`), in ms; level 1 first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayLevels(Vec<i64>);

#[derive(Debug, thiserror::Error)]
#[error("bad delay level {0:?}: expected a number followed by s, m, h or d")]
pub struct BadDelayLevel(String);

impl DelayLevels {
    /// Parses `"1s 5s 10s 1m 2h 1d"`.
    pub fn parse(s: &str) -> Result<DelayLevels, BadDelayLevel> {
        let mut out = Vec::new();
        for tok in s.split_whitespace() {
            let (num, unit) = tok.split_at(tok.len().saturating_sub(1));
            let mult = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(BadDelayLevel(tok.to_owned())),
            };
            let n: i64 = num.parse().map_err(|_| BadDelayLevel(tok.to_owned()))?;
            out.push(n.max(0) * mult);
        }
        if out.is_empty() {
            return Err(BadDelayLevel(s.to_owned()));
        }
        Ok(DelayLevels(out))
    }

    /// Parses, falling back to RocketMQ's defaults on a bad value.
    pub fn parse_or_default(s: &str) -> DelayLevels {
        Self::parse(s).unwrap_or_else(|e| {
            tracing::error!(error = %e, "messageDelayLevel invalid; using the defaults");
            Self::parse("1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h")
                .unwrap_or(DelayLevels(vec![1000]))
        })
    }

    /// Every level's delay in ms, level 1 first.
    pub fn as_ms(&self) -> &[i64] {
        &self.0
    }

    pub fn max_level(&self) -> i32 {
        self.0.len() as i32
    }

    /// Delay of `level` (clamped to 1..=max), ms.
    pub fn delay_ms(&self, level: i32) -> i64 {
        let i = (level.clamp(1, self.max_level()) - 1) as usize;
        self.0.get(i).copied().unwrap_or(0)
    }
}

/// A record to store, before the redirect rules.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub topic: Arc<str>,
    pub queue_id: i32,
    pub flag: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: Bytes,
    pub properties: String,
}

/// Where a record goes after the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement<'a> {
    /// Borrowed from the input unless a rule moved the record.
    pub topic: Cow<'a, str>,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub properties: Cow<'a, str>,
    pub tags_code: i64,
    pub dispatch: bool,
}

fn is_true(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Due time (ms) of a timer message, if it carries timer properties.
pub fn timer_due(props: &str, store_ts: i64) -> Option<i64> {
    timer_due_in(&PropertyView::new(props), store_ts)
}

/// The due time the timer properties ask for, measured from `now`, in
/// RocketMQ's order (`HookUtils.transformTimerMessage`): the first present
/// of `TIMER_DELAY_SEC`, `TIMER_DELAY_MS` and `TIMER_DELIVER_MS` decides,
/// `Err` when it is not a number. None without any of the three.
fn timer_property_due(props: &PropertyView, now: i64) -> Option<Result<i64, ()>> {
    let num = |k| {
        props
            .get(k)
            .map(|v| v.trim().parse::<i64>().map_err(|_| ()))
    };
    if let Some(s) = num(keys::TIMER_DELAY_SEC) {
        return Some(s.map(|s| now.saturating_add(s.saturating_mul(1000))));
    }
    if let Some(ms) = num(keys::TIMER_DELAY_MS) {
        return Some(ms.map(|ms| now.saturating_add(ms)));
    }
    num(keys::TIMER_DELIVER_MS)
}

/// The due time: the timer properties (see [`timer_property_due`]; one
/// that is not a number means no timer), or else the legacy
/// `__STARTDELIVERTIME`.
fn timer_due_in(props: &PropertyView, store_ts: i64) -> Option<i64> {
    match timer_property_due(props, store_ts) {
        Some(due) => due.ok(),
        None => props
            .get(keys::START_DELIVER_TIME)
            .and_then(|v| v.trim().parse::<i64>().ok()),
    }
}

/// The send-time check of a timer message (RocketMQ `HookUtils`, also run
/// when END_TRANSACTION commits a half message): with transaction type NOT
/// or COMMIT, no delay level and not already parked, the deciding timer
/// property (see [`timer_property_due`]) must be a number and put the due
/// time at most `max_delay_sec` ahead. The error is the Java broker's
/// remark for MESSAGE_ILLEGAL.
pub fn check_timer_delay(
    props: &PropertyView,
    sys_flag: i32,
    now: i64,
    max_delay_sec: i64,
) -> Result<(), String> {
    let tx = sysflag::transaction_type(sys_flag);
    if tx != sysflag::TRANSACTION_NOT_TYPE && tx != sysflag::TRANSACTION_COMMIT_TYPE {
        return Ok(());
    }
    let level = props
        .get(keys::DELAY)
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if level > 0 || props.get(keys::TIMER_OUT_MS).is_some() {
        return Ok(());
    }
    let max_ms = max_delay_sec.saturating_mul(1000);
    let illegal = || {
        format!(
            "timer message illegal, the delay time should not be bigger than the max delay {max_ms}ms; or if set del msg, the delay time should be bigger than the current time"
        )
    };
    let due = match timer_property_due(props, now) {
        None => return Ok(()),
        Some(due) => due.map_err(|_| illegal())?,
    };
    if due > now && due - now > max_ms {
        return Err(illegal());
    }
    Ok(())
}

fn strip(props: &str, names: &[&str]) -> String {
    let pairs = message::decode_properties(props);
    message::encode_properties(
        pairs
            .iter()
            .filter(|(k, _)| !names.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// Where the storage rules send a record, decided from its properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parking {
    /// Stored where it was sent.
    None,
    /// A transaction half message.
    Half,
    /// Delay level (clamped to the configured levels) and its due time.
    Delay { level: i32, due: i64 },
    /// A timer message due at this time.
    Timer { due: i64 },
}

/// Decides the parking of a record bound for `topic` with `props` (viewed).
pub fn parking(
    levels: &DelayLevels,
    view: &PropertyView,
    topic: &str,
    sys_flag: i32,
    store_ts: i64,
) -> Parking {
    let system = [
        HALF_TOPIC,
        SCHEDULE_TOPIC,
        TIMER_TOPIC,
        OP_TOPIC,
        CHECK_MAX_TOPIC,
    ]
    .contains(&topic);
    if system {
        return Parking::None;
    }
    let tx = sysflag::transaction_type(sys_flag);
    if tx == sysflag::TRANSACTION_PREPARED_TYPE
        || (tx == sysflag::TRANSACTION_NOT_TYPE && is_true(view.get(keys::TRAN_MSG)))
    {
        return Parking::Half;
    }
    if tx != sysflag::TRANSACTION_NOT_TYPE && tx != sysflag::TRANSACTION_COMMIT_TYPE {
        return Parking::None;
    }
    let delay = view
        .get(keys::DELAY)
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if delay > 0 {
        let level = delay.min(levels.max_level());
        return Parking::Delay {
            level,
            due: store_ts + levels.delay_ms(level),
        };
    }
    match timer_due_in(view, store_ts).filter(|d| *d > store_ts) {
        Some(due) => Parking::Timer { due },
        None => Parking::None,
    }
}

/// Applies the storage rules to a record bound for `topic`/`queue_id`.
pub fn place<'a>(
    levels: &DelayLevels,
    topic: &'a str,
    queue_id: i32,
    sys_flag: i32,
    props: &'a str,
    store_ts: i64,
) -> Placement<'a> {
    let view = PropertyView::new(props);
    let parked = |props: String, sys_flag: i32, t: &'static str, q: i32, code: i64| Placement {
        topic: Cow::Borrowed(t),
        queue_id: q,
        sys_flag,
        properties: Cow::Owned(props),
        tags_code: code,
        dispatch: true,
    };
    let real = |props: &str| {
        let p = message::with_property(props, keys::REAL_TOPIC, topic);
        message::with_property(&p, keys::REAL_QID, &queue_id.to_string())
    };
    match parking(levels, &view, topic, sys_flag, store_ts) {
        Parking::Half => {
            let mut p = real(props);
            if let Some(u) = view.get(keys::UNIQ_KEY) {
                p = message::with_property(&p, keys::TRANSACTION_ID, u);
            }
            let flag = sysflag::with_transaction_type(sys_flag, sysflag::TRANSACTION_NOT_TYPE);
            parked(
                p,
                flag,
                HALF_TOPIC,
                0,
                message::tags_code(view.get(keys::TAGS)),
            )
        }
        Parking::Delay { level, due } => {
            let mut p = real(&strip(props, TIMER_PROPS));
            p = message::with_property(&p, keys::DELAY, &level.to_string());
            parked(p, sys_flag, SCHEDULE_TOPIC, level - 1, due)
        }
        Parking::Timer { due } => {
            let p = message::with_property(&real(props), keys::TIMER_OUT_MS, &due.to_string());
            parked(p, sys_flag, TIMER_TOPIC, 0, due)
        }
        Parking::None => Placement {
            topic: Cow::Borrowed(topic),
            queue_id,
            sys_flag,
            properties: Cow::Borrowed(props),
            tags_code: message::tags_code(view.get(keys::TAGS)),
            dispatch: !sysflag::is_prepared_or_rollback(sys_flag),
        },
    }
}

/// A message as a producer sent it: its properties are the sent string
/// followed by what the broker appends (`tail`: `UNIQ_KEY`, `CLUSTER`).
pub struct Sent<'a> {
    pub topic: &'a Arc<str>,
    pub queue_id: i32,
    pub flag: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub body: &'a Bytes,
    pub props: &'a str,
    /// The view of `props`.
    pub view: &'a PropertyView<'a>,
    pub tail: &'a [&'a str],
}

impl Sent<'_> {
    /// Encodes the record into `arena` and splits it off, so that the
    /// records of a batch share one allocation. A record the rules leave in
    /// place (the usual case) is written straight from the pieces; a parked
    /// one goes through [`NewRecord::encode`].
    pub fn encode(
        &self,
        levels: &DelayLevels,
        store_ts: i64,
        arena: &mut BytesMut,
    ) -> Result<PutRecord, message::MessageError> {
        if parking(levels, self.view, self.topic, self.sys_flag, store_ts) != Parking::None {
            return self
                .record(self.stored_properties())
                .encode(levels, store_ts);
        }
        let spec = RecordSpec {
            topic: self.topic,
            queue_id: self.queue_id,
            flag: self.flag,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_timestamp: store_ts,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: 0,
            body: self.body,
            properties: self.props,
        };
        debug_assert!(arena.is_empty());
        message::encode_record_with(&spec, self.tail, arena)?;
        // A buffer the record fills is taken whole (a split would allocate
        // the shared header that lets several records use one buffer).
        let buf = if arena.len() == arena.capacity() {
            std::mem::take(arena)
        } else {
            arena.split()
        };
        Ok(PutRecord {
            buf,
            topic: self.topic.clone(),
            queue_id: self.queue_id,
            tags_code: message::tags_code(self.view.get(keys::TAGS)),
            dispatch: !sysflag::is_prepared_or_rollback(self.sys_flag),
        })
    }

    /// The properties as they are stored: the sent ones, then the tail.
    pub fn stored_properties(&self) -> String {
        let mut s = String::with_capacity(self.props.len() + 96);
        s.push_str(self.props);
        self.tail.iter().for_each(|p| s.push_str(p));
        s
    }

    /// The same message as an owned record with `properties`.
    pub fn record(&self, properties: String) -> NewRecord {
        NewRecord {
            topic: self.topic.clone(),
            queue_id: self.queue_id,
            flag: self.flag,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: 0,
            body: self.body.clone(),
            properties,
        }
    }
}

impl NewRecord {
    /// Applies the rules and encodes the record with store time `store_ts`.
    pub fn encode(
        &self,
        levels: &DelayLevels,
        store_ts: i64,
    ) -> Result<PutRecord, message::MessageError> {
        let p = place(
            levels,
            &self.topic,
            self.queue_id,
            self.sys_flag,
            &self.properties,
            store_ts,
        );
        let spec = RecordSpec {
            topic: &p.topic,
            queue_id: p.queue_id,
            flag: self.flag,
            sys_flag: p.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_timestamp: store_ts,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            body: &self.body,
            properties: &p.properties,
        };
        let mut buf = BytesMut::with_capacity(message::record_len(&spec));
        message::encode_record(&spec, &mut buf)?;
        Ok(PutRecord {
            buf,
            // The usual case keeps the topic: share its name, don't copy it.
            topic: if *p.topic == *self.topic {
                self.topic.clone()
            } else {
                Arc::from(p.topic.as_ref())
            },
            queue_id: p.queue_id,
            tags_code: p.tags_code,
            dispatch: p.dispatch,
        })
    }

    /// A copy of stored message `m` (flag, sysflag, born info, reconsume
    /// times, body) bound for `topic`/`queue_id` with `properties`.
    pub fn copy_of(
        m: &message::MessageExt,
        topic: String,
        queue_id: i32,
        store_host: SocketAddr,
        properties: String,
    ) -> NewRecord {
        NewRecord {
            topic: topic.into(),
            queue_id,
            flag: m.flag,
            sys_flag: m.sys_flag,
            born_timestamp: m.born_timestamp,
            born_host: m.born_host,
            store_host,
            reconsume_times: m.reconsume_times,
            prepared_transaction_offset: m.prepared_transaction_offset,
            body: m.body.clone(),
            properties,
        }
    }

    /// A copy of a stored message bound for its `REAL_TOPIC` / `REAL_QID`,
    /// without the parking properties in `drop` (schedule / timer delivery).
    pub fn unpark(
        m: &message::MessageExt,
        store_host: SocketAddr,
        drop: &[&str],
    ) -> Option<NewRecord> {
        let topic = m.property(keys::REAL_TOPIC)?.to_owned();
        let queue_id = m.property(keys::REAL_QID)?.trim().parse().ok()?;
        Some(NewRecord::copy_of(
            m,
            topic,
            queue_id,
            store_host,
            strip(&m.properties, drop),
        ))
    }
}

/// Why a store failed, for mapping to a response code.
#[derive(Debug, thiserror::Error)]
pub enum StoreFailure {
    #[error("{0}")]
    Put(#[from] PutError),
    #[error("message illegal: {0}")]
    Encode(#[from] message::MessageError),
    #[error("commit log unavailable")]
    Mailbox,
}

/// Encodes and appends records (one mailbox turn), waiting for the flush
/// when `wait`.
pub async fn store(
    commit_log: &Addr<CommitLogWriter>,
    levels: &DelayLevels,
    records: &[NewRecord],
    wait: bool,
) -> Result<(PutResults, FlushOutcome), StoreFailure> {
    let now = crate::wire::now_ms();
    let records = records
        .iter()
        .map(|r| r.encode(levels, now))
        .collect::<Result<PutRecords, _>>()?;
    match commit_log::put(commit_log, records, wait).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(StoreFailure::Mailbox),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> DelayLevels {
        DelayLevels::parse("1s 5s 10s 2m 1h").unwrap()
    }

    #[test]
    fn parses_levels() {
        let l = levels();
        assert_eq!(l.max_level(), 5);
        assert_eq!(l.delay_ms(1), 1000);
        assert_eq!(l.delay_ms(4), 120_000);
        assert_eq!(l.delay_ms(99), 3_600_000);
        assert!(DelayLevels::parse("1x").is_err());
        assert!(DelayLevels::parse("").is_err());
    }

    fn sent<'a>(
        topic: &'a Arc<str>,
        body: &'a Bytes,
        props: &'a str,
        view: &'a PropertyView<'a>,
        tail: &'a [&'a str],
    ) -> Sent<'a> {
        Sent {
            topic,
            queue_id: 2,
            flag: 0,
            sys_flag: 0,
            born_timestamp: 5,
            born_host: "127.0.0.1:1000".parse().unwrap(),
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            body,
            props,
            view,
            tail,
        }
    }

    #[test]
    fn a_sent_record_carries_its_tail_and_records_share_one_buffer() {
        let topic: Arc<str> = Arc::from("T");
        let props = message::encode_properties([("TAGS", "a"), ("KEYS", "k")]);
        let view = PropertyView::new(&props);
        let tail = [
            "UNIQ_KEY", "\u{1}", "U1", "\u{2}", "CLUSTER", "\u{1}", "C", "\u{2}",
        ];
        let mut arena = BytesMut::with_capacity(4096);
        let mut bufs = Vec::new();
        for body in [Bytes::from_static(b"one"), Bytes::from_static(b"two")] {
            let s = sent(&topic, &body, &props, &view, &tail);
            let r = s.encode(&levels(), 77, &mut arena).unwrap();
            assert_eq!(r.queue_id, 2);
            assert_eq!(r.tags_code, message::tags_code(Some("a")));
            assert!(r.dispatch);
            bufs.push(r.buf);
        }
        // The second record starts where the first ends: one allocation.
        assert_eq!(
            bufs[0].as_ptr().wrapping_add(bufs[0].len()),
            bufs[1].as_ptr()
        );
        for (b, body) in bufs.into_iter().zip(["one", "two"]) {
            let m = message::decode_record(&b.freeze(), 0, true).unwrap();
            assert_eq!(&m.body[..], body.as_bytes());
            assert_eq!(m.properties, format!("{props}{}", tail.concat()));
            assert_eq!(m.property("UNIQ_KEY"), Some("U1"));
            assert_eq!(m.property("CLUSTER"), Some("C"));
            assert_eq!(m.store_timestamp, 77);
        }
    }

    #[test]
    fn a_sent_delay_message_is_parked_with_its_tail() {
        let topic: Arc<str> = Arc::from("T");
        let props = message::encode_properties([("DELAY", "2")]);
        let view = PropertyView::new(&props);
        let tail = ["UNIQ_KEY", "\u{1}", "U2", "\u{2}"];
        let body = Bytes::from_static(b"x");
        let mut arena = BytesMut::new();
        let r = sent(&topic, &body, &props, &view, &tail)
            .encode(&levels(), 1000, &mut arena)
            .unwrap();
        assert_eq!(&*r.topic, SCHEDULE_TOPIC);
        assert_eq!(r.queue_id, 1);
        let m = message::decode_record(&r.buf.freeze(), 0, true).unwrap();
        assert_eq!(m.property("UNIQ_KEY"), Some("U2"));
        assert_eq!(m.property("REAL_TOPIC"), Some("T"));
        assert_eq!(m.property("REAL_QID"), Some("2"));
    }

    #[test]
    fn delay_goes_to_schedule_topic() {
        let props =
            message::encode_properties([("DELAY", "2"), ("TAGS", "a"), ("TIMER_DELAY_SEC", "9")]);
        let p = place(&levels(), "T", 3, 0, &props, 1000);
        assert_eq!(p.topic, SCHEDULE_TOPIC);
        assert_eq!(p.queue_id, 1);
        assert_eq!(p.tags_code, 6000);
        assert_eq!(message::property(&p.properties, "REAL_TOPIC"), Some("T"));
        assert_eq!(message::property(&p.properties, "REAL_QID"), Some("3"));
        assert_eq!(message::property(&p.properties, "TIMER_DELAY_SEC"), None);
        // Level above the max clamps.
        let props = message::encode_properties([("DELAY", "40")]);
        assert_eq!(place(&levels(), "T", 0, 0, &props, 0).queue_id, 4);
    }

    #[test]
    fn prepared_goes_to_half_topic_and_rollback_is_not_dispatched() {
        let props =
            message::encode_properties([("TRAN_MSG", "true"), ("UNIQ_KEY", "U1"), ("DELAY", "1")]);
        let p = place(
            &levels(),
            "T",
            2,
            sysflag::TRANSACTION_PREPARED_TYPE,
            &props,
            0,
        );
        assert_eq!((p.topic.as_ref(), p.queue_id), (HALF_TOPIC, 0));
        assert_eq!(sysflag::transaction_type(p.sys_flag), 0);
        assert_eq!(
            message::property(&p.properties, keys::TRANSACTION_ID),
            Some("U1")
        );
        assert!(p.dispatch);
        let committed = place(
            &levels(),
            "T",
            2,
            sysflag::TRANSACTION_COMMIT_TYPE,
            &props,
            0,
        );
        assert_eq!(committed.topic, SCHEDULE_TOPIC);
        let rb = place(&levels(), "T", 2, sysflag::TRANSACTION_ROLLBACK_TYPE, "", 0);
        assert!(!rb.dispatch);
    }

    #[test]
    fn timer_delay_beyond_the_max_is_refused() {
        let p = |k, v| message::encode_properties([(k, v)]);
        let day = 86_400;
        let chk = |s: &str, flag| check_timer_delay(&PropertyView::new(s), flag, 0, day);
        assert!(chk(&p("TIMER_DELAY_SEC", "86400"), 0).is_ok());
        let e = chk(&p("TIMER_DELAY_SEC", "86401"), 0).unwrap_err();
        assert!(e.contains("max delay 86400000ms"), "{e}");
        assert!(chk(&p("TIMER_DELAY_MS", "86400001"), 0).is_err());
        assert!(chk(&p("TIMER_DELIVER_MS", "86400001"), 0).is_err());
        assert!(chk(&p("TIMER_DELIVER_MS", "x"), 0).is_err());
        // A delay level wins; half messages are checked at commit.
        let both = message::encode_properties([("DELAY", "1"), ("TIMER_DELAY_SEC", "999999")]);
        assert!(chk(&both, 0).is_ok());
        let big = p("TIMER_DELAY_SEC", "999999");
        assert!(chk(&big, sysflag::TRANSACTION_PREPARED_TYPE).is_ok());
        assert!(chk("", 0).is_ok());
    }

    #[test]
    fn timer_properties_are_read_in_rocketmq_order() {
        let props = |pairs: &[(&str, &str)]| message::encode_properties(pairs.iter().copied());
        let due = |p: &str| timer_due(p, 10_000);
        let all = props(&[
            ("TIMER_DELIVER_MS", "50000"),
            ("TIMER_DELAY_MS", "3000"),
            ("TIMER_DELAY_SEC", "2"),
        ]);
        assert_eq!(due(&all), Some(12_000), "TIMER_DELAY_SEC first");
        let ms_at = props(&[("TIMER_DELIVER_MS", "50000"), ("TIMER_DELAY_MS", "3000")]);
        assert_eq!(due(&ms_at), Some(13_000), "then TIMER_DELAY_MS");
        let at = props(&[("TIMER_DELIVER_MS", "50000"), ("__STARTDELIVERTIME", "7")]);
        assert_eq!(due(&at), Some(50_000), "then TIMER_DELIVER_MS");
        assert_eq!(
            due(&props(&[("__STARTDELIVERTIME", "20000")])),
            Some(20_000)
        );
        // The deciding property is not a number: no timer, no fallback.
        let bad = props(&[("TIMER_DELAY_SEC", "x"), ("TIMER_DELIVER_MS", "50000")]);
        assert_eq!(due(&bad), None);
        // The send check follows the same order: the small TIMER_DELAY_SEC
        // decides, the far TIMER_DELIVER_MS is ignored; a bad one refuses.
        let chk = |p: &str| check_timer_delay(&PropertyView::new(p), 0, 10_000, 60);
        assert!(chk(&all).is_ok());
        let far = props(&[
            ("TIMER_DELAY_MS", "1000"),
            ("TIMER_DELIVER_MS", "999999999"),
        ]);
        assert!(chk(&far).is_ok());
        let far_first = props(&[("TIMER_DELAY_MS", "61000"), ("TIMER_DELIVER_MS", "20000")]);
        assert!(chk(&far_first).is_err());
        assert!(chk(&bad).is_err());
        // And what is accepted parks with the same due time.
        let p = place(&levels(), "T", 1, 0, &far, 10_000);
        assert_eq!(
            message::property(&p.properties, keys::TIMER_OUT_MS),
            Some("11000")
        );
    }

    #[test]
    fn timer_goes_to_wheel_only_when_in_the_future() {
        let props = message::encode_properties([("TIMER_DELAY_MS", "1500")]);
        let p = place(&levels(), "T", 1, 0, &props, 10_000);
        assert_eq!(p.topic, TIMER_TOPIC);
        assert_eq!(
            message::property(&p.properties, keys::TIMER_OUT_MS),
            Some("11500")
        );
        let past = message::encode_properties([("TIMER_DELIVER_MS", "5")]);
        assert_eq!(place(&levels(), "T", 1, 0, &past, 10_000).topic, "T");
        let legacy = message::encode_properties([("__STARTDELIVERTIME", "20000")]);
        assert_eq!(
            place(&levels(), "T", 1, 0, &legacy, 10_000).tags_code,
            20_000
        );
    }
}
