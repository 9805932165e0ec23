//! Unit tests of the leader's decisions (`ops`): codes, check order and
//! the events each request commits.

use std::time::{Duration, Instant};

use super::*;
use crate::controller::elect::{LiveInfo, LiveTable, Nomination};
use crate::controller::state::{Event, ReplicasInfo};
use crate::wire::codes::response as rs;
use crate::wire::controller::SyncStateSetBody;

fn live(ids: &[i64], now: Instant) -> LiveTable {
    let mut t = LiveTable::default();
    for id in ids {
        t.beat(
            "b",
            *id,
            LiveInfo {
                cluster: "c".into(),
                address: format!("a{id}"),
                last_seen: now,
                timeout: Duration::from_secs(10),
                epoch: 1,
                max_offset: 0,
                confirm_offset: 0,
                priority: 0,
                channel: 0,
            },
        );
    }
    t
}

/// Set "b" with ids 1..=n, master 1 (epoch 1), SyncStateSet {1, 2}.
fn state(n: i64) -> ReplicasInfo {
    let mut st = ReplicasInfo::default();
    for id in 1..=n {
        st.apply(&Event::ApplyBrokerId {
            cluster: "c".into(),
            broker_name: "b".into(),
            id,
            address: format!("a{id}"),
            check_code: format!("a{id};1"),
        });
    }
    st.apply(&Event::ElectMaster {
        broker_name: "b".into(),
        master: Some(1),
    });
    st.apply(&Event::AlterSyncStateSet {
        broker_name: "b".into(),
        set: [1, 2].into(),
    });
    st
}

fn view<'a>(state: &'a ReplicasInfo, live: &'a LiveTable, now: Instant) -> View<'a> {
    View {
        state,
        live,
        now,
        unclean: false,
    }
}

fn alter(master: i64, master_epoch: i32, set: &[i64], ss_epoch: i32) -> Request {
    Request::Alter(
        AlterSyncStateSetRequestHeader {
            broker_name: "b".into(),
            master_broker_id: master,
            master_epoch,
            invoke_time: 0,
        },
        SyncStateSetBody {
            sync_state_set: set.iter().copied().collect(),
            sync_state_set_epoch: ss_epoch,
        },
    )
}

#[test]
fn apply_broker_id_cases() {
    let now = Instant::now();
    let (st, lt) = (state(2), live(&[], now));
    let v = view(&st, &lt, now);
    let apply = |name: &str, id: i64, code: &str| {
        v.decide(&Request::ApplyBrokerId(ApplyBrokerIdRequestHeader {
            cluster_name: "c".into(),
            broker_name: name.into(),
            applied_broker_id: id,
            register_check_code: code.into(),
        }))
    };
    let d = apply("new", 1, "x:1;5");
    assert_eq!(d.reply.code, rs::SUCCESS);
    assert!(matches!(&d.events[..], [Event::ApplyBrokerId { address, .. }] if address == "x:1"));
    assert_eq!(
        apply("new", 2, "x:1;5").reply.code,
        rs::CONTROLLER_BROKER_ID_INVALID
    );
    let again = apply("b", 2, "a2;1");
    assert_eq!((again.reply.code, again.events.len()), (rs::SUCCESS, 0));
    assert_eq!(
        apply("b", 2, "other;1").reply.code,
        rs::CONTROLLER_BROKER_ID_INVALID
    );
    assert_eq!(apply("b", 3, "a3;1").events.len(), 1);
}

#[test]
fn alter_checks_in_rocketmq_order() {
    let now = Instant::now();
    let (st, lt) = (state(3), live(&[1, 2], now));
    let v = view(&st, &lt, now);
    let code = |r: Request| v.decide(&r).reply.code;
    assert_eq!(
        code(alter(1, 1, &[1, 2], 2)),
        rs::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
        "unchanged"
    );
    assert_eq!(code(alter(2, 0, &[1], 0)), rs::CONTROLLER_INVALID_MASTER);
    assert_eq!(
        code(alter(1, 0, &[1], 0)),
        rs::CONTROLLER_FENCED_MASTER_EPOCH
    );
    assert_eq!(
        code(alter(1, 1, &[1], 0)),
        rs::CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH
    );
    assert_eq!(
        code(alter(1, 1, &[1, 9], 2)),
        rs::CONTROLLER_INVALID_REPLICAS
    );
    assert_eq!(
        code(alter(1, 1, &[1, 3], 2)),
        rs::CONTROLLER_BROKER_NOT_ALIVE
    );
    assert_eq!(
        code(alter(1, 1, &[2], 2)),
        rs::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
        "without the master"
    );
    let d = v.decide(&alter(1, 1, &[1], 2));
    assert_eq!(d.reply.code, rs::SUCCESS);
    assert_eq!(d.reply.ext.get("newSyncStateSetEpoch"), Some("3"));
}

#[test]
fn elect_outcomes() {
    let now = Instant::now();
    let st = state(3);
    // Master alive: kept.
    let lt = live(&[1, 2], now);
    let n = |id: Option<i64>, designated| Nomination {
        nominee: id,
        designated,
    };
    assert_eq!(
        view(&st, &lt, now).elect("b", n(Some(2), false)).reply.code,
        rs::CONTROLLER_MASTER_STILL_EXIST
    );
    assert_eq!(
        view(&st, &lt, now).elect("zz", n(None, false)).reply.code,
        rs::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED
    );
    // Designated 3 is not in sync.
    assert_eq!(
        view(&st, &lt, now).elect("b", n(Some(3), true)).reply.code,
        rs::CONTROLLER_ELECT_MASTER_FAILED
    );
    // Master dead, nobody in sync alive: the controller's own election
    // clears the master; a nominee's changes nothing.
    let lt = live(&[3], now);
    let d = view(&st, &lt, now).elect("b", n(None, false));
    assert_eq!(d.reply.code, rs::CONTROLLER_MASTER_NOT_AVAILABLE);
    assert_eq!(
        d.events,
        vec![Event::ElectMaster {
            broker_name: "b".into(),
            master: None
        }]
    );
    let d = view(&st, &lt, now).elect("b", n(Some(3), false));
    assert_eq!(
        (d.reply.code, d.events.len()),
        (rs::CONTROLLER_ELECT_MASTER_FAILED, 0)
    );
    // Master dead, 2 in sync and alive: 2, both epochs + 1.
    let lt = live(&[2, 3], now);
    let d = view(&st, &lt, now).elect("b", n(None, false));
    assert_eq!(d.reply.code, rs::SUCCESS);
    assert_eq!(d.reply.ext.get("masterBrokerId"), Some("2"));
    assert_eq!(d.reply.ext.get("masterEpoch"), Some("2"));
    assert_eq!(d.reply.ext.get("syncStateSetEpoch"), Some("3"));
    assert_eq!(d.elected.as_deref(), Some("b"));
}

#[test]
fn register_shows_only_a_live_master() {
    let now = Instant::now();
    let st = state(2);
    let reg = Request::Register(RegisterBrokerToControllerRequestHeader {
        cluster_name: "c".into(),
        broker_name: "b".into(),
        broker_id: 2,
        broker_address: "a2".into(),
        invoke_time: 0,
    });
    let lt = live(&[1], now);
    let d = view(&st, &lt, now).decide(&reg);
    assert_eq!(d.reply.ext.get("masterBrokerId"), Some("1"));
    assert!(d.events.is_empty(), "same address: nothing to commit");
    let lt = live(&[], now);
    assert_eq!(
        view(&st, &lt, now)
            .decide(&reg)
            .reply
            .ext
            .get("masterBrokerId"),
        None
    );
}

#[test]
fn clean_refuses_living_or_bad_ids() {
    let now = Instant::now();
    let st = state(3);
    let lt = live(&[3], now);
    let clean = |ids: Option<&str>, living| {
        view(&st, &lt, now)
            .decide(&Request::Clean(CleanBrokerDataRequestHeader {
                cluster_name: None,
                broker_name: "b".into(),
                broker_controller_ids_to_clean: ids.map(str::to_owned),
                is_clean_living_broker: living,
                invoke_time: 0,
            }))
            .reply
            .code
    };
    let invalid = rs::CONTROLLER_INVALID_CLEAN_BROKER_METADATA;
    assert_eq!(clean(None, false), invalid, "the set has a master");
    assert_eq!(clean(Some("3"), false), invalid, "3 is alive");
    assert_eq!(clean(Some("x"), true), invalid);
    assert_eq!(clean(Some("1;2"), false), rs::SUCCESS);
    assert_eq!(clean(None, true), rs::SUCCESS);
}
