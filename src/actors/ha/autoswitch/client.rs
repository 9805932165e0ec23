//! The slave side of AutoSwitch HA (Java's `AutoSwitchHAClient`).
//!
//! While the broker is a slave in controller mode and knows its id and its
//! master's HA address (from the name server's REGISTER_BROKER answer), it
//!
//! 1. READY: cuts its log back to the end of its last complete record (a
//!    transfer may have stopped inside one) and trims the epoch file;
//! 2. connects and sends HANDSHAKE (16 bytes: `isSyncFromLastFile`,
//!    `isAsyncLearner`, its broker id);
//! 3. on the master's reply (log end + epoch list) finds the consistent
//!    point ([`super::epoch::consistent_point`]) and truncates its commit
//!    log, consume queues and epoch file to it — the commit log is zeroed
//!    and msynced and the queues flushed before anything is reported, so
//!    the cut survives a crash (apache/rocketmq#10666); no common epoch:
//!    the connection closes and the slave retries;
//! 4. TRANSFER: acks its end at once, then appends every frame's body at
//!    the frame's offset (a frame elsewhere than its end closes), records a
//!    new epoch entry when the header names another epoch than the last
//!    one, takes the master's confirm offset capped at its own end, and
//!    acks when its end grew or every `haSendHeartbeatInterval`.
//!
//! Any error closes the connection; it is re-established after a backoff.

use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::epoch::{consistent_point, EpochFile};
use super::frames::{MasterCodec, MasterFrame, SlaveFrame};
use super::AutoSwitch;
use crate::actors::broker::commit_log::TruncateLog;
use crate::actors::ha::client::{append, io_err, HaClientDeps, HaClientState};

/// Follows the master for as long as the broker runs (spawn it).
pub async fn run(d: HaClientDeps, auto: Arc<AutoSwitch>, state: Arc<HaClientState>) {
    const MIN: Duration = Duration::from_millis(100);
    let mut backoff = MIN;
    loop {
        let slave = d.role.is_slave() && !auto.is_master() && auto.my_id() > 0;
        let addr = if slave {
            let a = d.master.get();
            d.master.set_wanted(a.is_none());
            a
        } else {
            d.master.set_wanted(false);
            None
        };
        let Some(addr) = addr else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if let Err(e) = cut_invalid_tail(&d, &auto).await {
            tracing::warn!(error = %e, "AutoSwitch: cutting the log tail failed");
        }
        match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => {
                tracing::info!(master = %addr, "AutoSwitch: connected to the master's HA port");
                state.connected.store(true, Ordering::Release);
                let r = follow(s, &d, &auto, &state).await;
                state.connected.store(false, Ordering::Release);
                match r {
                    Ok(()) => tracing::info!(master = %addr, "stopped following the master"),
                    Err(e) => {
                        tracing::warn!(master = %addr, error = %e, "AutoSwitch HA connection closed");
                        // The address may be stale (a former master): ask
                        // the name server again.
                        d.master.set(None);
                    }
                }
                backoff = MIN;
            }
            Ok(Err(e)) => {
                tracing::debug!(master = %addr, error = %e, "HA connect failed");
                d.master.set(None);
            }
            Err(_) => tracing::debug!(master = %addr, "HA connect timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// READY: the log ends at a complete record, the epoch file not past it.
async fn cut_invalid_tail(d: &HaClientDeps, auto: &AutoSwitch) -> std::io::Result<()> {
    let end = d
        .writer
        .send(TruncateLog { to: None })
        .await
        .map_err(io_err)?
        .map_err(io_err)?;
    auto.epochs().truncate_suffix(end.saturating_add(1));
    Ok(())
}

fn still_slave(d: &HaClientDeps, auto: &AutoSwitch) -> bool {
    d.role.is_slave() && !auto.is_master()
}

async fn follow(
    s: TcpStream,
    d: &HaClientDeps,
    auto: &Arc<AutoSwitch>,
    state: &HaClientState,
) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let (rd, mut wr) = s.into_split();
    let mut frames = FramedRead::new(rd, MasterCodec);
    let heartbeat = Duration::from_millis(d.cfg.send_heartbeat_interval);
    let housekeeping = Duration::from_millis(d.cfg.housekeeping_interval);
    let hs = SlaveFrame::Handshake {
        sync_from_last_file: auto.cfg.sync_from_last_file,
        async_learner: d.cfg.async_learner,
        broker_id: auto.my_id(),
    };
    wr.write_all(&hs.encode()).await?;
    // A new master (a higher epoch) means a new connection.
    let epoch_at_connect = auto.master_epoch();
    // HANDSHAKE: the master's end and epochs.
    let (master_end, master_epochs) = match tokio::time::timeout(housekeeping, frames.next()).await
    {
        Err(_) => return Err(io_err("no handshake reply from the master")),
        Ok(None) => return Err(io_err("the master closed the connection")),
        Ok(Some(Err(e))) => return Err(e),
        Ok(Some(Ok(MasterFrame::Handshake {
            max_offset, epochs, ..
        }))) => (max_offset, epochs),
        Ok(Some(Ok(MasterFrame::Transfer(..)))) => {
            return Err(io_err("TRANSFER before the handshake reply"))
        }
    };
    truncate(d, auto, master_end, &EpochFile::from_entries(master_epochs)).await?;
    // TRANSFER.
    let mut reported = d.reader.max_offset();
    wr.write_all(&SlaveFrame::Ack(reported).encode()).await?;
    state.reported.store(reported, Ordering::Release);
    let mut last_epoch = -1;
    let (mut last_report, mut last_read) = (Instant::now(), Instant::now());
    loop {
        if !still_slave(d, auto) || auto.master_epoch() != epoch_at_connect {
            return Ok(());
        }
        let wait = heartbeat.saturating_sub(last_report.elapsed());
        match tokio::time::timeout(wait, frames.next()).await {
            Err(_) => {}
            Ok(None) => return Err(io_err("the master closed the connection")),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(MasterFrame::Handshake { .. }))) => {
                return Err(io_err("a handshake reply during transfer"))
            }
            Ok(Some(Ok(MasterFrame::Transfer(h, body)))) => {
                last_read = Instant::now();
                let end = d.reader.max_offset();
                if end != 0 && h.offset != end {
                    return Err(io_err(format!(
                        "the master sent offset {}, the slave's log ends at {end}",
                        h.offset
                    )));
                }
                if h.epoch != last_epoch && h.epoch >= 0 {
                    let mut e = auto.epochs();
                    if e.start_of(h.epoch) != Some(h.epoch_start)
                        && !e.append(h.epoch, h.epoch_start)
                    {
                        tracing::warn!(epoch = h.epoch, start = h.epoch_start, last = ?e.last(),
                            "AutoSwitch: epoch entry from the master not appended");
                    }
                    last_epoch = h.epoch;
                }
                if !body.is_empty() {
                    append(d, h.offset, body).await?;
                }
                auto.slave_confirm(h.confirm);
            }
        }
        if last_read.elapsed() > housekeeping {
            return Err(io_err("HA housekeeping: the master is silent"));
        }
        let end = d.reader.max_offset();
        if end != reported || last_report.elapsed() >= heartbeat {
            wr.write_all(&SlaveFrame::Ack(end).encode()).await?;
            reported = end;
            state.reported.store(end, Ordering::Release);
            last_report = Instant::now();
        }
    }
}

/// Handshake truncation (§6.3 of the controller protocol).
async fn truncate(
    d: &HaClientDeps,
    auto: &AutoSwitch,
    master_end: i64,
    master: &EpochFile,
) -> std::io::Result<()> {
    let end = d.reader.max_offset();
    let local = auto.epochs().clone();
    if local.is_empty() {
        return Ok(());
    }
    let Some(point) = consistent_point(&local, end, master, master_end) else {
        return Err(io_err(format!(
            "no epoch in common with the master (local {:?}, master {:?})",
            local.entries(end),
            master.entries(master_end)
        )));
    };
    if point < end {
        tracing::warn!(
            from = end,
            to = point,
            "AutoSwitch: truncating the divergent tail"
        );
        d.writer
            .send(TruncateLog { to: Some(point) })
            .await
            .map_err(io_err)?
            .map_err(io_err)?;
    }
    auto.epochs().truncate_suffix(point);
    Ok(())
}
