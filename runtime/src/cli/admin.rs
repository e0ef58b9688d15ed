//! `check`, `token`, `dead` and `stats`: one-shot commands.

use super::serve::connect;
use super::{App, DeadCmd, DeadSelection, Fail, StatsArgs, TokenArgs, runtime, usage};
use crate::config::Config;
use pym_broker::{Broker, Queue, dead, keys, shards, stats, workers as registry};
use pym_core::Metrics;
use pym_http::Auth;

/// `check`: load the config and the spec, bind the handlers, report.
pub(super) fn check(app: &App, config: &Config, metrics: Metrics) -> Result<(), Fail> {
    let svc = app.build(config, Queue::eager(), metrics)?;
    let n = svc.spec().operations.len();
    println!(
        "ok: {} {} — {n} operation{} bound, config {}",
        config.name,
        config.version,
        if n == 1 { "" } else { "s" },
        config
            .source
            .as_ref()
            .map_or("<embedded/defaults>".to_string(), |p| p
                .display()
                .to_string())
    );
    Ok(())
}

/// `token`: mint a JWT with the configured key (and its `kid`, if named).
pub(super) fn token(config: &Config, a: &TokenArgs) -> Result<(), Fail> {
    let auth = Auth::required(&config.jwt).map_err(usage)?;
    let claims: serde_json::Value = serde_json::from_str(&a.claims)
        .map_err(|e| usage(format!("--claims must be a JSON object: {e}")))?;
    if !claims.is_object() {
        return Err(usage("--claims must be a JSON object"));
    }
    // `sub`, `exp`, `iss`, `aud`, `iat`, `nbf` come from USER, --ttl and the config.
    pym_http::auth::check_extra_claims(&claims).map_err(|m| usage(format!("--claims: {m}")))?;
    let token = match a.ttl {
        Some(t) => auth.mint_for(&a.user_id, claims, t),
        None => auth.mint(&a.user_id, claims),
    }
    .map_err(|e| usage(e.description))?;
    println!("{token}");
    Ok(())
}

/// `dead list|replay|purge`. A sharded queue's dead letters are kept by
/// shard: listed shard by shard, an id is looked for in every shard, and
/// `--all` covers them all.
pub(super) async fn dead(config: &Config, cmd: DeadCmd) -> Result<(), Fail> {
    let broker = connect(config).await?;
    let shards_of = |queue: &str| {
        let queue = queue.to_owned();
        let mut conn = broker.conn();
        async move {
            let n = shards::recorded_of(&mut conn, &queue)
                .await
                .map_err(runtime)?;
            Ok::<_, Fail>(keys::shards(&queue, n))
        }
    };
    match cmd {
        DeadCmd::List {
            queue,
            limit,
            offset,
            json,
        } => {
            let shards = shards_of(&queue).await?;
            dead_list(&broker, &queue, &shards, (offset, limit), json).await
        }
        // `--id` xor `--all` (clap): no id means all.
        DeadCmd::Replay(DeadSelection { queue, id, .. }) => {
            let shards = shards_of(&queue).await?;
            dead_replay(&broker, &queue, &shards, id).await
        }
        DeadCmd::Purge(DeadSelection { queue, id, .. }) => {
            let shards = shards_of(&queue).await?;
            dead_purge(&broker, &queue, &shards, id).await
        }
    }
}

/// `dead list`: `(offset, limit)` of each shard.
async fn dead_list(
    broker: &Broker,
    queue: &str,
    shards: &[String],
    (offset, limit): (usize, usize),
    json: bool,
) -> Result<(), Fail> {
    let mut conn = broker.conn();
    if !json {
        println!(
            "{:<38} {:<28} {:<18} {:>8}  error",
            "id", "task", "reason", "attempts"
        );
    }
    for shard in shards {
        let list = dead::list(&mut conn, shard, offset, limit)
            .await
            .map_err(runtime)?;
        if json {
            for d in &list {
                println!("{}", serde_json::to_string(d).unwrap_or_default());
            }
            continue;
        }
        for d in &list {
            println!(
                "{:<38} {:<28} {:<18} {:>8}  {}",
                d.id,
                d.task.as_deref().unwrap_or("?"),
                d.reason.label(),
                d.attempts,
                d.error
            );
        }
        let total = dead::count(&mut conn, shard).await.map_err(runtime)?;
        let of = match shards.len() {
            1 => format!("queue {queue}"),
            n => format!("shard {shard} of queue {queue} ({n} shards)"),
        };
        println!("({} shown of {total} in {of})", list.len());
    }
    Ok(())
}

/// `dead replay`: the letter `id` (in whichever shard holds it), or all.
async fn dead_replay(
    broker: &Broker,
    queue: &str,
    shards: &[String],
    id: Option<String>,
) -> Result<(), Fail> {
    let Some(id) = id else {
        let (mut ok, mut refused) = (0, 0);
        for shard in shards {
            let (o, r) = dead::replay_all(broker, shard).await.map_err(runtime)?;
            (ok, refused) = (ok + o, refused + r);
        }
        println!("replayed {ok}, refused {refused} (unverifiable: purge them)");
        return Ok(());
    };
    for shard in shards {
        if dead::replay(broker, shard, &id).await.map_err(runtime)? {
            println!("replayed {id}");
            return Ok(());
        }
    }
    Err(usage(format!(
        "no dead letter {id} in queue {queue}; see `dead list --queue {queue}`"
    )))
}

/// `dead purge`: the letter `id` (in whichever shard holds it), or all.
async fn dead_purge(
    broker: &Broker,
    queue: &str,
    shards: &[String],
    id: Option<String>,
) -> Result<(), Fail> {
    let mut conn = broker.conn();
    let Some(id) = id else {
        let mut n = 0;
        for shard in shards {
            n += dead::purge_before(&mut conn, shard, u64::MAX)
                .await
                .map_err(runtime)?;
        }
        println!("purged {n}");
        return Ok(());
    };
    for shard in shards {
        if dead::purge(&mut conn, shard, &id).await.map_err(runtime)? {
            println!("purged {id}");
            return Ok(());
        }
    }
    Err(usage(format!("no dead letter {id} in queue {queue}")))
}

pub(super) async fn stats(config: &Config, a: StatsArgs) -> Result<(), Fail> {
    let broker = connect(config).await?;
    if a.workers {
        return workers(&broker, a.json).await;
    }
    let mut conn = broker.conn();
    if a.schedules {
        let all = super::schedules::read(&mut conn, a.queue.as_deref()).await?;
        match a.json {
            true => println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default()),
            false => super::schedules::print(&all),
        }
        return Ok(());
    }
    let all = match &a.queue {
        Some(q) => vec![stats::queue_stats(&mut conn, q).await.map_err(runtime)?],
        None => stats::all_stats(&mut conn).await.map_err(runtime)?,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    } else {
        println!(
            "{:<24} {:>8} {:>9} {:>11} {:>13} {:>6}",
            "queue", "ready", "in_flight", "delayed_due", "delayed_later", "dead"
        );
        for s in &all {
            println!(
                "{:<24} {:>8} {:>9} {:>11} {:>13} {:>6}",
                s.queue, s.ready, s.in_flight, s.delayed_due, s.delayed_later, s.dead
            );
        }
        let periodic = super::schedules::read(&mut conn, a.queue.as_deref()).await?;
        if !periodic.is_empty() {
            println!();
            super::schedules::print(&periodic);
        }
    }
    Ok(())
}

/// `stats --workers`: the live workers, as they last described themselves.
async fn workers(broker: &Broker, json: bool) -> Result<(), Fail> {
    let live = registry::live(broker, registry::WorkerLiveness::default())
        .await
        .map_err(runtime)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&live).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "{:<32} {:<24} {:>11} {:>9} {:<10} queues",
        "worker", "pod", "concurrency", "in_flight", "version"
    );
    for w in &live {
        println!(
            "{:<32} {:<24} {:>11} {:>9} {:<10} {}",
            w.name,
            w.pod.as_deref().unwrap_or("-"),
            w.concurrency,
            w.in_flight,
            w.version,
            w.queues.join(",")
        );
    }
    Ok(())
}
