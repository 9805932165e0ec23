//! What a slave's metadata sync asks its master for (Java's
//! `SlaveSynchronize`, served by `AdminBrokerProcessor`):
//! GET_ALL_CONSUMER_OFFSET (43), the consumer offset table as
//! `ConsumerOffsetManager#encode` writes it, and GET_ALL_DELAY_OFFSET (45),
//! the stored `delayOffset.json` (Java reads the file too). Both come from
//! the files the broker persists, made current first where the broker can.

use super::BrokerService;
use crate::actors::broker::offsets::PersistOffsets;
use crate::service::{Caller, Refusal};

impl BrokerService {
    /// GET_ALL_CONSUMER_OFFSET: `{"offsetTable":{"topic@group":{"0":12}}}`.
    pub async fn all_consumer_offsets(&self, _caller: &Caller) -> Result<Vec<u8>, Refusal> {
        let ctx = self.ctx();
        ctx.offsets.send(PersistOffsets).await?;
        let path = crate::actors::broker::store_config(&ctx.cfg)
            .config_dir()
            .join("consumerOffset.json");
        match std::fs::read(&path) {
            Ok(b) if !b.is_empty() => Ok(b),
            Ok(_) => Ok(br#"{"offsetTable":{}}"#.to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(br#"{"offsetTable":{}}"#.to_vec())
            }
            Err(e) => Err(Refusal::Failed(format!(
                "No consumer offset in this broker: {e}"
            ))),
        }
    }

    /// GET_ALL_DELAY_OFFSET: `delayOffset.json` as stored; Java's
    /// SYSTEM_ERROR "No delay offset in this broker" when there is none.
    pub async fn all_delay_offsets(&self, _caller: &Caller) -> Result<Vec<u8>, Refusal> {
        let path = crate::actors::broker::store_config(&self.ctx().cfg)
            .config_dir()
            .join("delayOffset.json");
        match std::fs::read(&path) {
            Ok(b) if !b.is_empty() => Ok(b),
            _ => Err(Refusal::Failed("No delay offset in this broker".into())),
        }
    }
}

impl BrokerService {
    /// GET_BROKER_HA_STATUS (907): this broker's `HARuntimeInfo` — a
    /// master's connected slaves (acknowledged offset, lag, in sync), a
    /// slave's master address and its own log end.
    pub fn ha_status(&self, _caller: &Caller) -> crate::actors::ha::status::HaRuntimeInfo {
        let ctx = self.ctx();
        crate::actors::ha::status::HaRuntimeInfo::collect(
            &ctx.ha,
            !ctx.role.is_slave(),
            ctx.reader.max_offset(),
        )
    }
}
