//! `Revive`: one actor per revive queue of `rmq_sys_REVIVE_LOG_<cluster>`
//! (RocketMQ's `PopReviveService`). It reads the queue's check-point (CK)
//! and ack records in order, keeps the CKs not yet fully acked, and once a
//! CK's invisible time has passed asks the POP service to redeliver its
//! un-acked messages through the retry topic (or the DLQ). Its progress —
//! the revive offset, the smallest queue offset of a CK still pending — is
//! committed as group `CID_RMQ_SYS_REVIVE_GROUP`'s offset, so a restart
//! re-reads from there and rebuilds the pending CKs.
//!
//! Unlike RocketMQ, CK and ack records are written straight into the revive
//! queue (not through the timer wheel at their due time), so the actor holds
//! the pending CKs in memory and checks due times itself.
//!
//! Supervised by the catching supervisor; a restart drops the in-memory
//! CKs and re-reads them from the committed revive offset. Only a master
//! revives; on a slave the actor idles.

use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::offsets::{CommitOffset, QueryOffset};
use super::processor::BrokerCtx;
use super::queue::{Pull, PullQuery, PullStatus};
use super::topic::UpsertTopic;
use crate::actors::supervisor::{self, armed, guard_with, restarts};
use crate::config::BrokerConfig;
use crate::service::broker::BrokerService;
use crate::wire::bodies::{perm, TopicConfig};
use crate::wire::message;
use crate::wire::pop::{
    AckRecord, CheckPoint, CkKey, ACK_TAG, BATCH_ACK_TAG, CK_TAG, REVIVE_GROUP,
};

/// Records read per step.
const BATCH: usize = 256;
/// Pause between steps when caught up.
const IDLE: Duration = Duration::from_millis(200);
/// How long after its due time a CK is revived, so acks sent just before
/// are read first.
const GRACE_MS: i64 = 500;

/// `reviveQueueNum` (default 8).
pub fn revive_queue_num(cfg: &BrokerConfig) -> i32 {
    cfg.unknown
        .get("reviveQueueNum")
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(8)
        .clamp(1, 64)
}

/// Creates the revive topic and starts one `Revive` per queue on an
/// arbiter of their own (stopped at shutdown).
pub async fn start(ctx: &Arc<BrokerCtx>) -> (Arbiter, Vec<Addr<Revive>>) {
    let (topic, n) = (ctx.pop.revive_topic.clone(), ctx.pop.revive_queues);
    if ctx
        .topics
        .get(&topic)
        .is_none_or(|t| t.config.queue_count() < n)
    {
        let mut cfg = TopicConfig::new(&topic, n, perm::READ | perm::WRITE);
        cfg.topic_sys_flag = 0;
        if !matches!(ctx.topic_manager.send(UpsertTopic(cfg)).await, Ok(Ok(_))) {
            tracing::error!(%topic, "cannot create the revive topic; POP redelivery is off");
        }
    }
    let arbiter = Arbiter::new();
    let addrs: Vec<Addr<Revive>> = (0..n)
        .map(|qid| {
            let svc = BrokerService::new(ctx.clone());
            supervisor::start_in_arbiter(&arbiter.handle(), "Revive", move |_| {
                Revive::new(svc, qid)
            })
        })
        .collect();
    // Fault-injection target (ACTORMQ_INJECT_FAULT): revive queue 0's actor.
    let scope = ctx.cfg.store_path_root_dir.display().to_string();
    supervisor::targets::register(&scope, "revive", addrs[0].clone().recipient());
    (arbiter, addrs)
}

/// A CK not yet fully acked.
struct Pending {
    ck: CheckPoint,
    /// The CK record's offset in the revive queue.
    ro: i64,
    acked: u32,
}

impl Pending {
    fn complete(&self) -> bool {
        let n = self.ck.deltas.len().min(32);
        let all = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
        self.acked & all == all
    }
}

/// What a step owns while it runs.
#[derive(Default)]
struct Scan {
    read_offset: Option<i64>,
    pending: HashMap<CkKey, Pending>,
}

pub struct Revive {
    svc: BrokerService,
    qid: i32,
    scan: Option<Scan>,
}

impl Revive {
    fn new(svc: BrokerService, qid: i32) -> Revive {
        Revive {
            svc,
            qid,
            scan: Some(Scan::default()),
        }
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        let Some(scan) = self.scan.take() else {
            return; // a step is running
        };
        let fut = step(self.svc.clone(), self.qid, scan);
        ctx.spawn(fut.into_actor(self).map(|(scan, more), act, ctx| {
            let _ = guard_with(act, ctx, "Revive", move |act, ctx| {
                act.scan = Some(scan);
                let wait = if more { Duration::ZERO } else { IDLE };
                ctx.run_later(wait, |_, ctx| ctx.notify(Step));
            });
        }));
    }
}

impl Actor for Revive {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        armed::fire("Revive", armed::Point::Started);
        ctx.notify(Step);
    }
}

impl Supervised for Revive {
    fn restarting(&mut self, _: &mut Context<Self>) {
        restarts::record("Revive");
        // Re-read from the committed revive offset.
        self.scan = Some(Scan::default());
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Step;

impl Handler<Step> for Revive {
    type Result = ();
    fn handle(&mut self, _: Step, ctx: &mut Context<Self>) {
        let _ = guard_with(self, ctx, "Revive", |act, ctx| act.step(ctx));
    }
}

/// One step: read the next records, then revive what is due (only when
/// caught up, so no ack is left unread), then commit the revive offset.
/// Returns the scan and whether more records wait.
async fn step(svc: BrokerService, qid: i32, mut scan: Scan) -> (Scan, bool) {
    let ctx = svc.ctx();
    if ctx.role.is_slave() {
        return (Scan::default(), false);
    }
    let topic = ctx.pop.revive_topic.clone();
    let Some(queue) = ctx.topics.get(&topic).and_then(|t| t.queue(qid).cloned()) else {
        return (scan, false);
    };
    let offset = match scan.read_offset {
        Some(o) => o,
        None => {
            let q = QueryOffset {
                group: REVIVE_GROUP.into(),
                topic: topic.clone(),
                queue_id: qid,
            };
            match ctx.offsets.send(q).await {
                Ok(o) => o.unwrap_or(0).max(0),
                Err(_) => return (scan, false),
            }
        }
    };
    let query = PullQuery {
        offset,
        max_msgs: BATCH as i32,
        tag_codes: None,
        sql: None,
    };
    let Ok(Ok(out)) = queue.send(Pull { query, hold: None }).await else {
        return (scan, false);
    };
    if matches!(
        out.status,
        PullStatus::OffsetTooSmall | PullStatus::OffsetOverflowBadly
    ) {
        scan.read_offset = Some(out.next_begin);
        return (scan, true);
    }
    for b in &out.bodies {
        if let Ok(m) = message::decode_record(b, 0, false) {
            apply(&mut scan.pending, &m);
        }
    }
    scan.read_offset = Some(out.next_begin.max(offset));
    let more = out.bodies.len() >= BATCH;
    if !more {
        revive_due(&svc, &mut scan.pending).await;
    }
    let commit = scan
        .pending
        .values()
        .map(|p| p.ro)
        .min()
        .unwrap_or(out.next_begin.max(offset));
    ctx.offsets.do_send(CommitOffset {
        group: REVIVE_GROUP.into(),
        topic,
        queue_id: qid,
        offset: commit,
    });
    (scan, more)
}

/// Takes one revive-queue record into the pending CKs.
fn apply(pending: &mut HashMap<CkKey, Pending>, m: &message::MessageExt) {
    match m.tags() {
        Some(CK_TAG) => {
            if let Ok(ck) = serde_json::from_slice::<CheckPoint>(&m.body) {
                let p = Pending {
                    ck,
                    ro: m.queue_offset,
                    acked: 0,
                };
                pending.insert(p.ck.key(), p);
            }
        }
        Some(ACK_TAG) | Some(BATCH_ACK_TAG) => {
            let Ok(ack) = serde_json::from_slice::<AckRecord>(&m.body) else {
                return;
            };
            let key = ack.key();
            let Some(p) = pending.get_mut(&key) else {
                return; // its CK is done, or was never written here
            };
            for o in ack.offsets() {
                if let Some(i) = p.ck.index_of(o).filter(|i| *i < 32) {
                    p.acked |= 1 << i;
                }
            }
            if p.complete() {
                pending.remove(&key);
            }
        }
        _ => {}
    }
}

/// Revives every pending CK past its invisible time; one that fails stays
/// for the next step.
async fn revive_due(svc: &BrokerService, pending: &mut HashMap<CkKey, Pending>) {
    let now = crate::wire::now_ms();
    let mut due: Vec<(i64, CkKey)> = pending
        .iter()
        .filter(|(_, p)| p.ck.pop_time + p.ck.invisible_ms + GRACE_MS <= now)
        .map(|(k, p)| (p.ro, k.clone()))
        .collect();
    due.sort();
    for (_, key) in due {
        let Some(p) = pending.get(&key) else { continue };
        match svc.revive_checkpoint(&p.ck, p.acked).await {
            Ok(()) => {
                pending.remove(&key);
            }
            Err(e) => {
                tracing::warn!(topic = %key.topic, group = %key.group, error = %e, "revive failed; will retry");
                break;
            }
        }
    }
}

crate::inject_panic_handler!(Revive, "Revive");
