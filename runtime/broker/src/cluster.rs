//! Redis Cluster (`redis-cluster://`, see [`crate::cluster_url`]): the
//! shared connection, pipelines split by slot, and dedicated per-node
//! connections for blocking reads.
//!
//! Every key of a queue carries its `{queue}` hash tag, so a script or an
//! atomic pipeline on one queue runs on one node. What spans queues is
//! split: the worker settles each queue's outcomes in a pipeline of its
//! own ([`crate::ack::settle`]) and blocks on each queue apart; plain
//! (non-atomic) pipelines are split here, by slot, as redis-rs refuses a
//! cluster pipeline whose commands hash to different slots.

use crate::cluster_url::ClusterUrl;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisResult, Value,
};
use std::collections::HashMap;
use std::time::Duration;

/// Connects to the cluster of `url` (asking the seed nodes for the slots).
pub(crate) async fn connect(
    url: &ClusterUrl,
    response_timeout: Duration,
    connection_timeout: Duration,
) -> RedisResult<ClusterConnection> {
    let nodes = url
        .nodes
        .iter()
        .map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p).into_connection_info())
        .collect::<RedisResult<Vec<_>>>()?;
    let mut b = ClusterClientBuilder::new(nodes)
        .response_timeout(response_timeout)
        .connection_timeout(connection_timeout);
    if let Some(u) = &url.username {
        b = b.username(u);
    }
    if let Some(p) = &url.password {
        b = b.password(p);
    }
    b.build()?.get_async_connection().await
}

/// The slot of a pipelined command: that of its first argument, the key
/// of every command pym pipelines (`GET`, `DEL`, `XADD`, `ZREM`...);
/// `None` for a command without arguments.
fn slot_of(cmd: &Cmd) -> Option<Slot> {
    match cmd.args_iter().nth(1)? {
        redis::Arg::Simple(key) => Some(Slot::for_key(key)),
        _ => None,
    }
}

/// The commands of `pipeline` grouped by slot, in order of first
/// appearance; each group keeps the pipeline's order.
fn by_slot(pipeline: &Pipeline) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<Option<Slot>, usize> = HashMap::new();
    for (i, cmd) in pipeline.cmd_iter().enumerate() {
        let g = *index.entry(slot_of(cmd)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

/// Sends `pipeline` on the cluster. An atomic one (MULTI/EXEC) must be on
/// one slot and goes as is; a plain one is split into one pipeline per
/// slot, sent concurrently, and the replies put back in order.
pub(crate) async fn pipeline(
    conn: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let groups = by_slot(pipeline);
    if pipeline.is_transaction() || groups.len() <= 1 {
        return conn.req_packed_commands(pipeline, offset, count).await;
    }
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let sends = groups.iter().map(|group| {
        let mut sub = redis::pipe();
        for &i in group {
            sub.add_command(cmds[i].clone());
        }
        let mut conn = conn.clone();
        async move { conn.req_packed_commands(&sub, 0, sub.len()).await }
    });
    let replies = futures::future::try_join_all(sends).await?;
    let mut out = vec![Value::Nil; cmds.len()];
    for (group, values) in groups.iter().zip(replies) {
        if values.len() != group.len() {
            return Err((ErrorKind::Client, "a split pipeline lost replies").into());
        }
        for (&i, v) in group.iter().zip(values) {
            out[i] = v;
        }
    }
    Ok(out.into_iter().skip(offset).take(count).collect())
}

/// A dedicated connection (configured by `cfg`) to the master that holds
/// the slot of `key` now, for blocking commands on keys of that slot: a
/// blocked command would stall every other request on a shared socket.
/// If the slot moves, commands on it answer `MOVED`: take a new one.
pub(crate) async fn node_conn(
    conn: &ClusterConnection,
    url: &ClusterUrl,
    key: &str,
    cfg: &AsyncConnectionConfig,
) -> RedisResult<MultiplexedConnection> {
    let mut conn = conn.clone();
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut conn)
        .await?;
    let slots: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await?;
    let (host, port) = master_of(&slots, slot).ok_or_else(|| {
        redis::RedisError::from((
            ErrorKind::ClusterConnectionNotFound,
            "no master holds the slot of the key",
            format!("slot {slot}"),
        ))
    })?;
    let mut settings = RedisConnectionInfo::default();
    if let Some(u) = &url.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &url.password {
        settings = settings.set_password(p);
    }
    let info = ConnectionAddr::Tcp(host, port)
        .into_connection_info()?
        .set_redis_settings(settings);
    redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(cfg)
        .await
}

/// The `(host, port)` of the master of `slot` in a `CLUSTER SLOTS` reply:
/// entries `[start, end, [host, port, id, ...], replicas...]`.
fn master_of(slots: &Value, slot: i64) -> Option<(String, u16)> {
    let Value::Array(ranges) = slots else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let Value::Array(r) = range else { return None };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (r.first(), r.get(1), r.get(2))
        else {
            return None;
        };
        if !(*start..=*end).contains(&slot) {
            return None;
        }
        let host = match master.first()? {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let port = match master.get(1)? {
            Value::Int(p) => u16::try_from(*p).ok()?,
            _ => return None,
        };
        (!host.is_empty() && host != "?").then_some((host, port))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_are_grouped_by_slot_in_order() {
        let mut p = redis::pipe();
        p.cmd("GET").arg("pym:worker:a");
        p.cmd("XADD").arg("pym:{q}:ready:high").arg("*");
        p.cmd("GET").arg("pym:worker:b");
        p.cmd("XADD").arg("pym:{q}:ready:low").arg("*");
        p.cmd("GET").arg("pym:worker:a");
        p.cmd("PING");
        let groups = by_slot(&p);
        // worker:a and worker:b hash to different slots (checked, not assumed).
        assert_ne!(Slot::for_key("pym:worker:a"), Slot::for_key("pym:worker:b"));
        assert_eq!(groups, vec![vec![0, 4], vec![1, 3], vec![2], vec![5]]);
    }

    #[test]
    fn the_master_of_a_slot_is_read_from_cluster_slots() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let node = |h: &str, p: i64| Value::Array(vec![bulk(h), Value::Int(p), bulk("id")]);
        let range = |a: i64, b: i64, master: Value| {
            Value::Array(vec![Value::Int(a), Value::Int(b), master, node("r", 1)])
        };
        let slots = Value::Array(vec![
            range(0, 5460, node("10.0.0.1", 7000)),
            range(5461, 10922, node("10.0.0.2", 7001)),
            range(10923, 16383, node("", 7002)),
        ]);
        let table = [
            (0, Some(("10.0.0.1", 7000))),
            (5460, Some(("10.0.0.1", 7000))),
            (5461, Some(("10.0.0.2", 7001))),
            (12000, None),
            (16384, None),
        ];
        for (slot, want) in table {
            let got = master_of(&slots, slot);
            assert_eq!(got.as_ref().map(|(h, p)| (h.as_str(), *p)), want, "{slot}");
        }
        assert_eq!(master_of(&Value::Nil, 0), None);
    }
}
