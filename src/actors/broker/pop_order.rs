//! `PopOrderKeeper`: persists the orderly POP state (RocketMQ's
//! `ConsumerOrderInfoManager`, `config/consumerOrderInfo.json`) every
//! `flushConsumerOffsetInterval` when it changed, and at shutdown, so after
//! a restart a FIFO queue stays blocked while its popped messages are
//! invisible and keeps their delivery counts. The JSON is ActorMQ's own
//! (the file is read by nothing else). Serialising and fsync run on the
//! `MetaWriter`'s thread.

use actix::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::pop_state::{OrderInfo, PopState};
use crate::actors::supervisor::{armed, guarded_interval, restarts};
use crate::store::metadata::{read_json, MetaWriter};

/// The file's content.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct OrderFile {
    #[serde(default)]
    pub table: HashMap<String, OrderInfo>,
}

/// `config/consumerOrderInfo.json`.
pub fn path(config_dir: &Path) -> PathBuf {
    config_dir.join("consumerOrderInfo.json")
}

/// The persisted orderly state (empty when missing or unreadable).
pub fn load(path: &Path) -> HashMap<String, OrderInfo> {
    match read_json::<OrderFile>(path) {
        Ok(f) => f.map(|f| f.table).unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "cannot read orderly POP state; starting empty");
            HashMap::new()
        }
    }
}

pub struct PopOrderKeeper {
    pop: Arc<PopState>,
    writer: MetaWriter,
    every: Duration,
    /// Version of the last snapshot handed to the writer.
    written: u64,
}

impl PopOrderKeeper {
    pub fn new(pop: Arc<PopState>, path: PathBuf, every: Duration) -> PopOrderKeeper {
        PopOrderKeeper {
            pop,
            writer: MetaWriter::new(path),
            every,
            written: 0,
        }
    }

    fn persist(&mut self) {
        let (version, table) = self.pop.order_snapshot();
        if version != self.written {
            self.writer.submit(OrderFile { table });
            self.written = version;
        }
    }
}

impl Actor for PopOrderKeeper {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        armed::fire("PopOrderKeeper", armed::Point::Started);
        guarded_interval(ctx, self.every, "PopOrderKeeper", |act, _| {
            armed::fire("PopOrderKeeper", armed::Point::Interval);
            act.persist()
        });
    }
}

impl Supervised for PopOrderKeeper {
    fn restarting(&mut self, _: &mut Context<Self>) {
        restarts::record("PopOrderKeeper");
        // The state lives in `PopState`; write it again at the next tick.
        self.written = u64::MAX;
    }
}

/// Writes the state now and waits for the file (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PersistOrder;

impl Handler<PersistOrder> for PopOrderKeeper {
    type Result = ();
    fn handle(&mut self, _: PersistOrder, _: &mut Context<Self>) {
        self.persist();
        self.writer.flush();
    }
}

crate::inject_panic_handler!(PopOrderKeeper, "PopOrderKeeper");
