//! Handing deliveries to tasks: hold every delivery of a batch (so all of
//! them are heartbeated and counted in flight), then start each one as a
//! slot frees up, on the worker's task tracker.

use super::{Held, HeldKey, Shared};
use crate::fetch::Delivery;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// Hold `deliveries` and run them, the first in slot `first`. Stops early
/// when the worker goes quiet: what was held and not started is handed
/// back by the shutdown.
pub(super) async fn dispatch(
    shared: &Arc<Shared>,
    deliveries: Vec<Delivery>,
    first: OwnedSemaphorePermit,
) {
    let batch = hold(shared, deliveries);
    let mut first = Some(first);
    for (key, queue, d) in batch {
        let slot = match first.take() {
            Some(p) => p,
            None => match shared.slot().await {
                Some(p) => p,
                None => break,
            },
        };
        if shared.quiet.is_cancelled() {
            break;
        }
        let sh = shared.clone();
        let task_key = key.clone();
        // The run's future is boxed: the spawned future is moved several
        // times on spawn, and a small one moves cheaply.
        let handle = shared.tasks.spawn(async move {
            let settle = Box::pin(sh.executor.run(&sh.broker, &queue, &d)).await;
            sh.settle(task_key, settle);
            drop(slot);
        });
        if let Some(h) = shared.held.lock().unwrap().get_mut(&key) {
            h.abort = Some(handle.abort_handle());
        }
    }
}

/// Record `deliveries` as held (deliveries of streams we do not consume are
/// dropped: they stay pending for whoever does).
fn hold(shared: &Shared, deliveries: Vec<Delivery>) -> Vec<(HeldKey, Arc<str>, Arc<Delivery>)> {
    let batch: Vec<_> = deliveries
        .into_iter()
        .filter_map(|d| {
            let (stream, queue) = shared.streams.of.get(&d.stream)?.clone();
            Some(((stream, d.id.clone()), queue, Arc::new(d)))
        })
        .collect();
    let mut held = shared.held.lock().unwrap();
    for (key, queue, d) in &batch {
        held.insert(
            key.clone(),
            Held {
                queue: queue.clone(),
                delivery: d.clone(),
                abort: None,
                settling: false,
            },
        );
        if let Some(g) = shared.gauges.get(&**queue) {
            g.inc();
        }
    }
    batch
}
