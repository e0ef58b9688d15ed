//! The settle loop: gather the outcomes queued by finished tasks into
//! batches and write each batch with [`ack::settle`] (one atomic pipeline),
//! retrying until Redis takes it: nothing is dropped while the worker runs.

use super::{SettleOp, Shared};
use crate::ack::{self, Settlement};
use crate::fetch::Reconnect;
use backon::Retryable;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const MAX_BATCH: usize = 1024;

/// Settle outcomes until `flush` is cancelled and nothing is left queued.
pub(super) async fn settle_loop(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<SettleOp>,
    flush: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let op = tokio::select! {
            biased;
            op = rx.recv() => op,
            _ = flush.cancelled() => rx.try_recv().ok(),
        };
        let Some(op) = op else {
            break;
        };
        batch.push(op);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        write(&shared, &batch).await;
        release(&shared, batch.drain(..));
    }
}

/// Write `batch`, retrying with the reconnect schedule until it is written.
async fn write(shared: &Shared, batch: &[SettleOp]) {
    let settlements: Vec<Settlement<'_>> = batch
        .iter()
        .map(|op| Settlement {
            queue: op.queue.as_deref().unwrap_or(""),
            stream: &op.key.0,
            id: &op.key.1,
            settle: &op.settle,
        })
        .collect();
    let _ = (|| ack::settle(&shared.broker, &settlements))
        .retry(Reconnect::policy())
        .notify(|e, retry_in| {
            tracing::warn!(error = %e, pending = batch.len(), ?retry_in, "settling tasks failed; retrying");
        })
        .await;
}

/// The tasks of `ops` are settled: no longer held nor in flight.
fn release(shared: &Shared, ops: impl Iterator<Item = SettleOp>) {
    let mut held = shared.held.lock().unwrap();
    for op in ops {
        if let Some(h) = held.remove(&op.key)
            && let Some(g) = shared.gauges.get(&*h.queue)
        {
            g.dec();
        }
    }
}
