//! Leases and reclaim. A delivered task is leased to its worker for the
//! visibility timeout; the worker's heartbeat keeps renewing the lease of the
//! tasks it still runs. Tasks whose lease ran out (their worker died or hung)
//! are claimed by another worker and run again, with their delivery count.
//! A worker the registry ([`crate::workers`]) finds dead has its tasks
//! taken over at once ([`takeover`]), without waiting for their leases.

use crate::fetch::Delivery;
use crate::{Broker, Result};
use pym_core::keys;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// Renew the lease of ARGV[3..] if still owned by ARGV[2]; return the ids
/// this consumer no longer owns (reclaimed by someone else, or gone).
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  else
    table.insert(lost, id)
  end
end
return lost
"#,
    )
});

/// Claim up to ARGV[4] entries idle for ARGV[3] ms; return
/// {id, message or '', delivery count} for each.
static RECLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local claimed = {}
local cursor = '0-0'
local want = tonumber(ARGV[4])
for _ = 1, 10 do
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', want - #claimed)
  cursor = r[1]
  for _, e in ipairs(r[2]) do table.insert(claimed, e) end
  if cursor == '0-0' or #claimed >= want then break end
end
local out = {}
for _, e in ipairs(claimed) do
  local id = e[1]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local n = 1
  if p[1] then n = p[1][4] end
  local msg = ''
  local f = e[2]
  if type(f) == 'table' then
    for i = 1, #f, 2 do if f[i] == ARGV[5] then msg = f[i + 1] end end
  end
  table.insert(out, {id, msg, n})
end
return out
"#,
    )
});

/// Move up to ARGV[4] entries pending for consumer ARGV[2] to ARGV[3];
/// return {id, message or '', delivery count} for each. Once ARGV[2] has
/// nothing pending left, remove it from the group.
static TAKEOVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[4], ARGV[2])
local out = {}
for _, p in ipairs(pending) do
  local id = p[1]
  local e = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, id)[1]
  local msg = ''
  if type(e) == 'table' and type(e[2]) == 'table' then
    for i = 1, #e[2], 2 do if e[2][i] == ARGV[5] then msg = e[2][i + 1] end end
  end
  table.insert(out, {id, msg, p[4] + 1})
end
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return out
"#,
    )
});

/// Remove other consumers with nothing pending, idle for ARGV[3] ms.
static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if name ~= ARGV[2] and pending == 0 and idle > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed = removed + 1
  end
end
return removed
"#,
    )
});

/// Ids per heartbeat script call.
const HEARTBEAT_CHUNK: usize = 500;

/// Renew the leases of `ids` on `stream`. Returns the ids that were lost.
pub async fn heartbeat(
    broker: &Broker,
    stream: &str,
    consumer: &str,
    ids: &[String],
) -> Result<Vec<String>> {
    let mut lost = Vec::new();
    for chunk in ids.chunks(HEARTBEAT_CHUNK) {
        let mut inv = HEARTBEAT.key(stream);
        inv.arg(keys::GROUP).arg(consumer);
        for id in chunk {
            inv.arg(id);
        }
        let l: Vec<String> = inv.invoke_async(&mut broker.conn()).await?;
        lost.extend(l);
    }
    Ok(lost)
}

/// Claim up to `count` entries of `stream` whose lease expired.
pub async fn reclaim(
    broker: &Broker,
    stream: &str,
    consumer: &str,
    visibility: Duration,
    count: usize,
) -> Result<Vec<Delivery>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, u64)> = RECLAIM
        .key(stream)
        .arg(keys::GROUP)
        .arg(consumer)
        .arg(visibility.as_millis() as u64)
        .arg(count)
        .arg(keys::FIELD_MESSAGE)
        .invoke_async(&mut broker.conn())
        .await?;
    Ok(deliveries(stream, rows))
}

/// Take over up to `count` tasks that the dead consumer `dead` holds on
/// `stream`, for `me` (no lease to wait out: its worker stopped beating).
/// `dead` leaves the group once it holds nothing there.
pub async fn takeover(
    broker: &Broker,
    stream: &str,
    dead: &str,
    me: &str,
    count: usize,
) -> Result<Vec<Delivery>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, u64)> = TAKEOVER
        .key(stream)
        .arg(keys::GROUP)
        .arg(dead)
        .arg(me)
        .arg(count)
        .arg(keys::FIELD_MESSAGE)
        .invoke_async(&mut broker.conn())
        .await?;
    Ok(deliveries(stream, rows))
}

/// Deliveries of `stream` from script rows `(id, message or '', count)`.
fn deliveries(stream: &str, rows: Vec<(String, String, u64)>) -> Vec<Delivery> {
    rows.into_iter()
        .map(|(id, message, deliveries)| Delivery {
            stream: stream.to_owned(),
            id,
            message: (!message.is_empty()).then_some(message),
            deliveries,
        })
        .collect()
}

/// Delete consumers of `stream` (other than `me`) idle longer than `idle`
/// with nothing pending, so restarts do not pile consumers up.
pub async fn reap_consumers(
    broker: &Broker,
    stream: &str,
    me: &str,
    idle: Duration,
) -> Result<u64> {
    Ok(REAP
        .key(stream)
        .arg(keys::GROUP)
        .arg(me)
        .arg(idle.as_millis() as u64)
        .invoke_async(&mut broker.conn())
        .await?)
}
