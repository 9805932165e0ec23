//! The storage engine: commit log, consume queues, flushing, checkpoint and
//! crash recovery, plus broker metadata files. No sockets, no actors: the actor
//! layer owns a [`CommitLog`] (single writer) and one [`ConsumeQueue`] per
//! queue, shares [`CommitLogReader`]s freely and runs one [`Flusher`].

pub mod checkpoint;
pub mod cleanup;
pub mod commit_log;
pub mod config;
pub mod confirm_wait;
pub mod consume_queue;
pub mod consumer_offsets;
pub mod error;
pub mod flush;
pub mod index;
pub mod index_file;
pub mod live_scan;
pub mod lock;
pub mod mapped_file;
pub mod metadata;
pub(crate) mod prepare;
pub mod put_intent;
pub mod recovery;
#[cfg(test)]
mod reserve_tests;
pub mod timer_checkpoint;
pub mod timer_log;
pub mod timer_store;
pub mod timer_wheel;

pub use checkpoint::Checkpoint;
pub use commit_log::{AppendResult, CommitLog, CommitLogReader};
pub use config::{FlushMode, StoreConfig};
pub use consume_queue::{Boundary, ConsumeQueue, CqUnit};
pub use consumer_offsets::ConsumerOffsets;
pub use error::StoreError;
pub use flush::Flusher;
pub use index::{IndexConfig, IndexHits, IndexStore};
pub use lock::StoreLock;
pub use recovery::{dispatch_info, recover, DispatchRequest, Recovered};
