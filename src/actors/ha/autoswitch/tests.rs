//! The master's SyncStateSet and confirm-offset rules, without sockets.

use super::*;
use crate::actors::broker::commit_log::FlushOutcome;
use crate::store::{recover, StoreConfig};

fn auto(dir: &std::path::Path, all_ack: bool) -> (Arc<AutoSwitch>, crate::store::CommitLog) {
    let cfg = StoreConfig {
        root: dir.to_owned(),
        commitlog_file_size: 64 * 1024,
        ..StoreConfig::default()
    };
    let mut log = recover(&cfg).unwrap().commit_log;
    log.append_replicated(0, &[7u8; 1000]).unwrap();
    let ac = AutoSwitchConfig {
        all_ack,
        check_period: Duration::from_millis(50),
        max_not_catchup: Duration::from_millis(200),
        sync_from_last_file: false,
        controller_timeout: Duration::from_millis(300),
        epoch_file: dir.join("epochFileCheckpoint"),
        broker_name: "b".into(),
        cluster: "c".into(),
    };
    let a = AutoSwitch::new(
        ac,
        HaConfig::default(),
        log.reader(),
        Arc::new(GroupTransfer::new(1 << 20)),
        0,
    );
    a.set_my_id(1);
    // Nobody listens there: every ALTER fails.
    a.set_leader(Some("127.0.0.1:1".into()));
    (a, log)
}

#[tokio::test]
async fn the_confirm_offset_is_the_lowest_member_ack_and_a_failed_shrink_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _log) = auto(dir.path(), true);
    a.become_master(1, [1, 2, 3].into(), 1);
    assert_eq!(
        a.epochs().last(),
        Some((1, 1000)),
        "epoch entry at the log end"
    );
    assert_eq!(
        a.reader.confirm_offset(),
        0,
        "members without connections: unchanged"
    );
    a.slave_connected(2, "s2", false);
    a.slave_connected(3, "s3", false);
    a.acked(2, 600, None);
    assert_eq!(
        a.reader.confirm_offset(),
        0,
        "member 3 has acked nothing yet (#6728)"
    );
    a.acked(3, 400, None);
    assert_eq!(a.reader.confirm_offset(), 400);
    let ok = a
        .group
        .wait_confirmed(400, Duration::from_millis(10), FlushOutcome::Ok);
    assert_eq!(ok.await, FlushOutcome::Ok);

    // Member 3 goes: the shrink is only proposed; the controller is out of
    // reach, so the set stays and the confirm offset with it (#6662).
    a.slave_closed(3);
    let (local, epoch, proposed) = a.sync_state_set();
    assert_eq!((local, epoch), ([1, 2, 3].into(), 1));
    assert_eq!(proposed, Some([1, 2].into()));
    a.acked(2, 1000, None);
    assert_eq!(a.reader.confirm_offset(), 400);
    for _ in 0..100 {
        if a.sync_state_set().2.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        a.sync_state_set(),
        ([1, 2, 3].into(), 1, None),
        "ALTER failed: nothing changed"
    );
    assert_eq!(a.reader.confirm_offset(), 400);
    let waited = a
        .group
        .wait_confirmed(900, Duration::from_millis(50), FlushOutcome::Ok);
    assert_eq!(
        waited.await,
        FlushOutcome::SlaveTimeout,
        "no ack without member 3"
    );
    assert_eq!(a.in_sync_count(), 3);
    assert_eq!(a.connected_slaves(), vec![("s2".into(), 1000, false, true)]);

    // A controller adopted set (poll / notify) with a newer epoch counts.
    a.adopt_set(1, [1, 2].into(), 2);
    assert_eq!(a.reader.confirm_offset(), 1000);
    assert!(a.fenced(), "no controller contact yet");
    a.controller_contact();
    assert!(!a.fenced());
}

#[tokio::test]
async fn learners_never_join_and_a_lagging_slave_is_not_added() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _log) = auto(dir.path(), true);
    a.become_master(3, [1].into(), 5);
    assert_eq!(a.reader.confirm_offset(), 1000, "alone: the log end");
    a.slave_connected(4, "s4", true);
    a.acked(4, 1000, None);
    assert_eq!(a.sync_state_set().2, None, "a learner is never proposed");
    a.slave_connected(2, "s2", false);
    a.acked(2, 999, None);
    assert_eq!(a.sync_state_set().2, None, "behind the confirm offset");
    a.acked(2, 1000, None);
    assert_eq!(
        a.sync_state_set().2,
        Some([1, 2].into()),
        "caught up: proposed"
    );
    assert_eq!(a.in_sync_count(), 2, "the proposed set counts (#5663)");
}

#[tokio::test]
async fn without_all_ack_the_confirm_offset_is_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _log) = auto(dir.path(), false);
    a.become_master(1, [1, 2].into(), 1);
    a.slave_connected(2, "s2", false);
    a.acked(2, 10, None);
    assert_eq!(a.reader.confirm_offset(), 1000);
    a.become_slave(2);
    a.slave_confirm(5000);
    assert_eq!(a.reader.confirm_offset(), 1000, "capped at the own end");
    a.slave_confirm(700);
    assert_eq!(a.reader.confirm_offset(), 700);
}

#[tokio::test]
async fn a_member_added_to_a_lone_master_holds_back_what_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let (a, mut log) = auto(dir.path(), true);
    // A controller that takes the ALTER and does not answer (yet).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    a.set_leader(Some(silent.local_addr().unwrap().to_string()));
    a.become_master(1, [1].into(), 1);
    assert_eq!(a.reader.confirm_offset(), 1000, "alone: the log end");
    a.slave_connected(2, "s2", false);
    a.acked(2, 1000, None);
    assert_eq!(
        a.sync_state_set().2,
        Some([1, 2].into()),
        "caught up: proposed"
    );
    // The master writes on; the new member has not acked that yet.
    log.append_replicated(1000, &[7u8; 500]).unwrap();
    a.refresh();
    assert_eq!(a.reader.confirm_offset(), 1000, "not the log end (1500)");
    let waited = a
        .group
        .wait_confirmed(1500, Duration::from_millis(30), FlushOutcome::Ok);
    assert_eq!(waited.await, FlushOutcome::SlaveTimeout);
    a.acked(2, 1500, None);
    assert_eq!(a.reader.confirm_offset(), 1500);

    // A member that drops while the master is alone-valued: frozen at the
    // end as it was, not following the log.
    let dir2 = tempfile::tempdir().unwrap();
    let (b, mut log2) = auto(dir2.path(), true);
    b.become_master(1, [1].into(), 1);
    b.adopt_set(1, [1, 3].into(), 2);
    log2.append_replicated(1000, &[7u8; 200]).unwrap();
    b.refresh();
    assert_eq!(
        b.reader.confirm_offset(),
        1000,
        "member 3 not connected: held"
    );
}
