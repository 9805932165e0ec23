//! Broker liveness (RocketMQ's `DefaultBrokerHeartbeatManager`: each
//! controller keeps its own table from the heartbeats it receives; it is
//! not replicated) and the master election policy (`DefaultElectPolicy`).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::state::BrokerSet;

/// What the last heartbeat of one replica said (`BrokerLiveInfo`).
#[derive(Debug, Clone)]
pub struct LiveInfo {
    pub cluster: String,
    pub address: String,
    pub last_seen: Instant,
    pub timeout: Duration,
    pub epoch: i32,
    pub max_offset: i64,
    pub confirm_offset: i64,
    /// `brokerElectionPriority`: lower is preferred.
    pub priority: i32,
    /// The connection the heartbeats came on; its close marks the replica
    /// dead at once.
    pub channel: u64,
}

/// Replicas heard from, by (broker name, broker id).
#[derive(Debug, Default)]
pub struct LiveTable {
    map: HashMap<(String, i64), LiveInfo>,
}

impl LiveTable {
    /// Records a heartbeat. Epoch and offsets move only forward (a higher
    /// epoch, or the same epoch with a higher max offset); the time, the
    /// timeout and the priority always.
    pub fn beat(&mut self, name: &str, id: i64, info: LiveInfo) {
        match self.map.get_mut(&(name.to_owned(), id)) {
            Some(old) => {
                if info.epoch > old.epoch
                    || (info.epoch == old.epoch && info.max_offset > old.max_offset)
                {
                    old.epoch = info.epoch;
                    old.max_offset = info.max_offset;
                    old.confirm_offset = info.confirm_offset;
                }
                old.last_seen = info.last_seen;
                old.timeout = info.timeout;
                old.priority = info.priority;
                old.address = info.address;
                old.channel = info.channel;
                old.cluster = info.cluster;
            }
            None => {
                self.map.insert((name.to_owned(), id), info);
            }
        }
    }

    pub fn get(&self, name: &str, id: i64) -> Option<&LiveInfo> {
        self.map.get(&(name.to_owned(), id))
    }

    pub fn is_alive(&self, name: &str, id: i64, now: Instant) -> bool {
        self.get(name, id)
            .is_some_and(|l| now.duration_since(l.last_seen) <= l.timeout)
    }

    /// Drops the replicas whose heartbeats stopped; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, i64)> {
        let dead: Vec<(String, i64)> = self
            .map
            .iter()
            .filter(|(_, l)| now.duration_since(l.last_seen) > l.timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &dead {
            self.map.remove(k);
        }
        dead
    }

    /// Drops the replicas whose heartbeats came on a closed connection.
    pub fn channel_closed(&mut self, channel: u64) -> Vec<(String, i64)> {
        let gone: Vec<(String, i64)> = self
            .map
            .iter()
            .filter(|(_, l)| l.channel == channel)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            self.map.remove(k);
        }
        gone
    }

    /// Alive replicas of a set (for role-change notifications).
    pub fn alive_members(&self, name: &str, now: Instant) -> Vec<(i64, String)> {
        self.map
            .iter()
            .filter(|((n, _), l)| n == name && now.duration_since(l.last_seen) <= l.timeout)
            .map(|((_, id), l)| (*id, l.address.clone()))
            .collect()
    }
}

/// An election's question: the nominee (`brokerId`, None for −1) and
/// whether it is designated (`designateElect`, from `mqadmin electMaster`).
#[derive(Debug, Clone, Copy)]
pub struct Nomination {
    pub nominee: Option<i64>,
    pub designated: bool,
}

/// RocketMQ's `DefaultElectPolicy`: the first election goes to the
/// nominee; then the alive SyncStateSet members, or with
/// `enableElectUncleanMaster` every alive replica; the current master is
/// kept while it is a candidate (unless another id is designated); else the
/// replica with the highest epoch, then max offset, then the lowest
/// priority value (then the lowest id, so equal candidates never collapse).
pub fn elect(
    set: &BrokerSet,
    live: &LiveTable,
    n: Nomination,
    unclean: bool,
    now: Instant,
) -> Option<i64> {
    if set.master_epoch == 0 {
        if let Some(id) = n.nominee.filter(|id| set.replicas.contains_key(id)) {
            return Some(id);
        }
    }
    let alive = |id: &i64| live.is_alive(&set.name, *id, now);
    let in_sync: BTreeSet<i64> = set.sync_state_set.iter().copied().filter(alive).collect();
    if let Some(m) = pick(set, live, &in_sync, n) {
        return Some(m);
    }
    if unclean {
        let all: BTreeSet<i64> = set.replicas.keys().copied().filter(alive).collect();
        return pick(set, live, &all, n);
    }
    None
}

fn pick(
    set: &BrokerSet,
    live: &LiveTable,
    candidates: &BTreeSet<i64>,
    n: Nomination,
) -> Option<i64> {
    if candidates.is_empty() {
        return None;
    }
    if let Some(m) = set.master.filter(|m| candidates.contains(m)) {
        if !n.designated || n.nominee == Some(m) {
            return Some(m);
        }
    }
    if n.designated {
        return n.nominee.filter(|id| candidates.contains(id));
    }
    let rank = |id: &i64| {
        let l = live.get(&set.name, *id);
        (
            std::cmp::Reverse(l.map_or(-1, |l| l.epoch)),
            std::cmp::Reverse(l.map_or(-1, |l| l.max_offset)),
            l.map_or(i32::MAX, |l| l.priority),
            *id,
        )
    };
    candidates.iter().min_by_key(|id| rank(id)).copied()
}

#[cfg(test)]
mod tests {
    use super::super::state::{Event, ReplicasInfo};
    use super::*;

    fn beat(t: &mut LiveTable, id: i64, epoch: i32, max: i64, prio: i32, now: Instant) {
        t.beat(
            "b",
            id,
            LiveInfo {
                cluster: "c".into(),
                address: format!("a{id}"),
                last_seen: now,
                timeout: Duration::from_secs(3),
                epoch,
                max_offset: max,
                confirm_offset: 0,
                priority: prio,
                channel: 0,
            },
        );
    }

    fn three() -> ReplicasInfo {
        let mut st = ReplicasInfo::default();
        for id in 1..=3 {
            st.apply(&Event::ApplyBrokerId {
                cluster: "c".into(),
                broker_name: "b".into(),
                id,
                address: format!("a{id}"),
                check_code: String::new(),
            });
        }
        st
    }

    #[test]
    fn first_nominee_wins_then_the_best_in_sync_replica() {
        let mut st = three();
        let now = Instant::now();
        let mut live = LiveTable::default();
        let self_nominated = Nomination {
            nominee: Some(2),
            designated: false,
        };
        assert_eq!(
            elect(st.set("b").unwrap(), &live, self_nominated, false, now),
            Some(2)
        );
        st.apply(&Event::ElectMaster {
            broker_name: "b".into(),
            master: Some(2),
        });
        st.apply(&Event::AlterSyncStateSet {
            broker_name: "b".into(),
            set: [1, 2, 3].into(),
        });
        beat(&mut live, 1, 1, 100, 5, now);
        beat(&mut live, 3, 1, 200, 9, now);
        let internal = Nomination {
            nominee: None,
            designated: false,
        };
        // Master 2 is dead: 3 has the higher offset.
        assert_eq!(
            elect(st.set("b").unwrap(), &live, internal, false, now),
            Some(3)
        );
        beat(&mut live, 1, 1, 200, 5, now);
        assert_eq!(
            elect(st.set("b").unwrap(), &live, internal, false, now),
            Some(1)
        );
        let designated = Nomination {
            nominee: Some(3),
            designated: true,
        };
        assert_eq!(
            elect(st.set("b").unwrap(), &live, designated, false, now),
            Some(3)
        );
        // Nobody in sync is alive: only an unclean election finds one.
        st.apply(&Event::AlterSyncStateSet {
            broker_name: "b".into(),
            set: [2].into(),
        });
        assert_eq!(
            elect(st.set("b").unwrap(), &live, internal, false, now),
            None
        );
        assert_eq!(
            elect(st.set("b").unwrap(), &live, internal, true, now),
            Some(1)
        );
    }

    #[test]
    fn silent_replicas_expire() {
        let mut live = LiveTable::default();
        let then = Instant::now();
        beat(&mut live, 1, 0, 0, 0, then);
        assert!(live.is_alive("b", 1, then));
        let later = then + Duration::from_secs(4);
        assert!(!live.is_alive("b", 1, later));
        assert_eq!(live.expire(later), vec![("b".to_string(), 1)]);
        assert!(live.get("b", 1).is_none());
    }
}
