//! The fetch loop: wait for a free slot, read what is ready (blocking only
//! when nothing is), hand it out; on errors back off and recreate the
//! consumer groups if Redis lost them.

use super::Shared;
use super::dispatch::dispatch;
use crate::fetch::{self, Delivery, Reconnect};
use crate::{BrokerError, Result};
use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::time::Duration;

/// Fetch from `streams` (in priority order; every ready stream of the
/// worker, or on a Redis Cluster those of one queue) until the worker goes
/// quiet.
pub(super) async fn fetch_loop(shared: Arc<Shared>, streams: Arc<[String]>) {
    let mut backoff = Reconnect::default();
    // This loop's own connection for reads (blocking reads stall it).
    let mut conn = None;
    let mut groups_ok = false;
    while !shared.quiet.is_cancelled() {
        if !groups_ok {
            if let Err(e) = ensure_groups(&shared).await {
                failed(&shared, &mut backoff, "cannot reach the broker", e).await;
                continue;
            }
            groups_ok = true;
        }
        let Some(first) = shared.slot().await else {
            break;
        };
        match read(&shared, &mut conn, &streams, shared.room()).await {
            Ok(deliveries) => {
                backoff.reset();
                shared.set_ready(true);
                dispatch(&shared, deliveries, first).await;
            }
            Err(e) => {
                drop(first);
                conn = None;
                groups_ok = !fetch::is_nogroup(&e);
                failed(&shared, &mut backoff, "fetching tasks failed", e).await;
            }
        }
    }
}

/// Create the consumer groups of every shard and register the queues.
async fn ensure_groups(shared: &Shared) -> Result<()> {
    let mut conn = shared.broker.conn();
    for q in &shared.shards {
        fetch::ensure_groups(&mut conn, q).await?;
    }
    for q in &shared.queues {
        let _ = shared.broker.register_queue(q).await;
    }
    shared.set_ready(true);
    Ok(())
}

/// Read up to `room` deliveries on this loop's own connection (replies of a
/// batch are parsed by its own driver, in parallel with the settling
/// pipelines on the shared one): what is there, and only when nothing is,
/// block for up to the configured time.
/// The connection is taken anew when the Redis master moved (Sentinel).
async fn read(
    shared: &Shared,
    conn: &mut Option<(MultiplexedConnection, u64)>,
    streams: &[String],
    room: usize,
) -> Result<Vec<Delivery>> {
    let generation = shared.broker.master_generation();
    if conn.as_ref().is_some_and(|(_, g)| *g != generation) {
        *conn = None;
    }
    let (conn, _) = match conn {
        Some(c) => c,
        None => conn.insert((shared.broker.blocking_conn(&streams[0]).await?, generation)),
    };
    let name = &shared.config.name;
    let now = fetch::read_now(conn, name, streams, room).await?;
    if !now.is_empty() {
        return Ok(now);
    }
    fetch::read(conn, name, streams, room, Some(shared.config.block)).await
}

/// Mark the broker unreachable and wait before the next try.
async fn failed(shared: &Shared, backoff: &mut Reconnect, what: &str, e: BrokerError) {
    shared.set_ready(false);
    let d = backoff.next_delay();
    tracing::warn!(error = %e, retry_in = ?d, "{what}");
    sleep_or_quiet(shared, d).await;
}

/// Sleep `d`, or less if the worker goes quiet.
pub(super) async fn sleep_or_quiet(shared: &Shared, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shared.quiet.cancelled() => {}
    }
}
