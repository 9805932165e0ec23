//! The controller's state machine for openraft (`RaftStateMachine`): the
//! applied [`ReplicasInfo`], shared read-only with the controller actor,
//! and its snapshots, written with bincode to
//! `controllerStorePath/raft/snapshot` (atomically replaced). On start the
//! state is the last snapshot; openraft re-applies the committed log after
//! it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::log_store::{decode, encode};
use super::raft::TypeConfig;
use super::state::ReplicasInfo;

type Err = StorageError<u64>;

/// What has been applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub state: ReplicasInfo,
    pub last_applied: Option<LogId<u64>>,
    pub membership: StoredMembership<u64, BasicNode>,
}

/// Read side of the applied state, for the controller actor.
pub type SharedState = Arc<RwLock<Applied>>;

pub fn read(s: &SharedState) -> std::sync::RwLockReadGuard<'_, Applied> {
    s.read().unwrap_or_else(|e| e.into_inner())
}

fn write(s: &SharedState) -> std::sync::RwLockWriteGuard<'_, Applied> {
    s.write().unwrap_or_else(|e| e.into_inner())
}

fn snap_err(e: impl ToString) -> Err {
    StorageIOError::write_snapshot(None, &std::io::Error::other(e.to_string())).into()
}

/// The snapshot file: its meta and the encoded [`Applied`].
type SnapshotFile = (SnapshotMeta<u64, BasicNode>, Vec<u8>);

#[derive(Clone)]
pub struct StateMachine {
    path: PathBuf,
    pub shared: SharedState,
}

impl StateMachine {
    /// Opens the state machine in `dir`, starting from its snapshot if any.
    pub fn open(dir: &Path) -> std::io::Result<StateMachine> {
        let path = dir.join("snapshot");
        let applied = match std::fs::read(&path) {
            Ok(b) => {
                let (_, data): SnapshotFile = decode(&b).map_err(std::io::Error::other)?;
                decode::<Applied>(&data).map_err(std::io::Error::other)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Applied::default(),
            Err(e) => return Err(e),
        };
        Ok(StateMachine {
            path,
            shared: Arc::new(RwLock::new(applied)),
        })
    }

    async fn save(&self, file: SnapshotFile) -> Result<(), Err> {
        let bytes = encode(&file).map_err(snap_err)?;
        let path = self.path.clone();
        match tokio::task::spawn_blocking(move || {
            crate::store::metadata::write_atomic(&path, &bytes)
        })
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(snap_err(e)),
            Err(e) => Err(snap_err(e)),
        }
    }

    fn load_file(&self) -> Result<Option<SnapshotFile>, String> {
        match std::fs::read(&self.path) {
            Ok(b) => decode(&b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, Err> {
        let applied = read(&self.shared).clone();
        let data = encode(&applied).map_err(snap_err)?;
        let snapshot_id = applied.last_applied.map_or_else(
            || "0-0".to_string(),
            |l| format!("{}-{}", l.leader_id.term, l.index),
        );
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id,
        };
        self.save((meta.clone(), data.clone())).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), Err> {
        let a = read(&self.shared);
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, Err>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut a = write(&self.shared);
        let mut out = Vec::new();
        for e in entries {
            a.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(events) => {
                    for ev in &events {
                        a.state.apply(ev);
                    }
                }
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(e.log_id), m);
                }
            }
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Err> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Err> {
        let data = snapshot.into_inner();
        let applied: Applied = decode(&data).map_err(snap_err)?;
        self.save((meta.clone(), data)).await?;
        *write(&self.shared) = applied;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, Err> {
        Ok(self
            .load_file()
            .map_err(snap_err)?
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}
