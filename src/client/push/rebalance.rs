//! Rebalance: decide which queues of each subscribed topic this member
//! consumes, give up the others (commit their offsets, unlock ordered
//! ones) and start pulling the new ones.
//!
//! Clustering: read queues and member ids (GET_CONSUMER_LIST_BY_GROUP)
//! are sorted and split by the configured [`super::Allocation`].
//! Broadcasting: every read queue.

use std::sync::Arc;

use crate::wire::bodies::{ConsumerIdList, MessageQueue};
use crate::wire::codes::{request, response};
use crate::wire::headers::client::ConsumerGroupHeader;
use crate::wire::headers::CommandHeader;
use crate::wire::json::from_fastjson;
use crate::wire::RemotingCommand;

use super::super::remoting::{expect_code, ClientError};
use super::super::route::Routes;
use super::core::Core;
use super::queue::QueueState;
use super::MessageModel;

/// Member ids of `group` as the broker at `addr` knows them.
pub async fn consumer_ids(
    routes: &Routes,
    addr: &str,
    group: &str,
) -> Result<Vec<String>, ClientError> {
    let mut cmd = RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP);
    cmd.ext = ConsumerGroupHeader {
        consumer_group: group.to_string(),
    }
    .to_ext();
    let resp = routes
        .client()
        .invoke(addr, cmd, routes.default_timeout())
        .await?;
    let resp = expect_code(resp, &[response::SUCCESS])?;
    let list: ConsumerIdList = from_fastjson(&resp.body_bytes())
        .map_err(|e| crate::wire::WireError::BadBody(format!("ConsumerIdList: {e}")))?;
    Ok(list.consumer_id_list)
}

/// The queues `me` should own of `topic` under `model`; `None` when the
/// answer cannot be known yet (no route, no member list).
pub async fn target_queues(
    routes: &Routes,
    topic: &str,
    group: &str,
    me: &str,
    model: MessageModel,
    allocation: super::Allocation,
) -> Option<Vec<MessageQueue>> {
    let route = routes.route(topic).await.ok()?;
    let mut all = route.read_queues.clone();
    all.sort();
    if model == MessageModel::Broadcasting {
        return Some(all);
    }
    let addr = all
        .iter()
        .find_map(|q| route.broker_addr(&q.broker_name))
        .or_else(|| route.master_addrs().into_iter().next())?;
    let mut ids = match consumer_ids(routes, &addr, group).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::debug!(topic, error = %e, "no consumer list yet");
            return None;
        }
    };
    ids.sort();
    ids.dedup();
    if !ids.iter().any(|i| i == me) {
        return None;
    }
    Some(allocation.allocate(&all, &ids, me))
}

/// One rebalance round; returns true if it should be retried soon.
pub async fn rebalance(core: &Arc<Core>) -> bool {
    let mut retry_soon = false;
    for topic in core.subs.keys() {
        if core.is_shut() {
            return false;
        }
        let target = target_queues(
            &core.routes,
            topic,
            &core.cfg.group,
            &core.client_id,
            core.cfg.model,
            core.cfg.allocation,
        )
        .await;
        match target {
            Some(t) => apply(core, topic, t).await,
            None => retry_soon = true,
        }
    }
    retry_soon
}

async fn apply(core: &Arc<Core>, topic: &str, target: Vec<MessageQueue>) {
    let (gone, added): (Vec<Arc<QueueState>>, Vec<MessageQueue>) = {
        let mut map = core.lock_queues();
        let gone_keys: Vec<MessageQueue> = map
            .keys()
            .filter(|q| q.topic == topic && !target.contains(q))
            .cloned()
            .collect();
        let gone = gone_keys.iter().filter_map(|k| map.remove(k)).collect();
        let added = target
            .iter()
            .filter(|q| !map.contains_key(q))
            .cloned()
            .collect();
        (gone, added)
    };
    if !gone.is_empty() {
        tracing::info!(topic, count = gone.len(), "giving up queues");
    }
    for q in gone {
        release(core, &q).await;
    }
    if added.is_empty() {
        return;
    }
    tracing::info!(topic, count = added.len(), client = %core.client_id, "taking queues");
    let mut states = Vec::new();
    {
        let mut map = core.lock_queues();
        if core.is_shut() {
            return;
        }
        for mq in &added {
            let s = map
                .entry(mq.clone())
                .or_insert_with(|| Arc::new(QueueState::new(mq.clone())))
                .clone();
            states.push(s);
        }
    }
    if core.listener.is_orderly() {
        super::orderly::lock(core, &added).await;
    }
    for state in states {
        super::pulling::start(core, state);
    }
}

/// Gives a queue up: stop its tasks, wait for a running ordered call,
/// commit its offset and (ordered) unlock it.
async fn release(core: &Arc<Core>, q: &Arc<QueueState>) {
    q.drop_queue();
    let _guard = q.consuming.lock().await;
    if let Some(off) = q.lock_window().commit_offset() {
        core.offsets.update(&q.mq, off, true);
    }
    core.offsets
        .persist(std::slice::from_ref(&q.mq), false)
        .await;
    core.offsets.remove(&q.mq);
    if core.listener.is_orderly() {
        super::orderly::unlock(core, std::slice::from_ref(&q.mq)).await;
    }
}
