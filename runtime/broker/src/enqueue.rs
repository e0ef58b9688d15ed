//! Enqueue: sign an envelope and append it to its queue's ready stream, or,
//! when it has a future `eta`, add it to the delayed set; on a sharded
//! queue, to those of one shard ([`crate::shards`]).

use crate::envelope::{Envelope, now_ms};
use crate::{Broker, Result, ShardChoice};
use pym_core::keys;
use redis::Script;
use std::sync::LazyLock;

/// Lua: `schedule(delayed, signal, due, member)` adds `member` to the
/// delayed set, due at `due`, and wakes a promoter if it became the
/// earliest. Put (with `concat!`) at the head of every script that delays
/// a task, so the wake rule is written once.
macro_rules! lua_schedule_fn {
    () => {
        r#"
local function schedule(delayed, signal, due, member)
  redis.call('ZADD', delayed, due, member)
  local head = redis.call('ZRANGE', delayed, 0, 0)
  if head[1] == member then
    redis.call('LPUSH', signal, '1')
    redis.call('LTRIM', signal, 0, 0)
  end
end
"#
    };
}
pub(crate) use lua_schedule_fn;

/// ZADD a delayed member and wake a promoter if it became the earliest.
static SCHEDULE: LazyLock<Script> = LazyLock::new(|| Script::new(SCHEDULE_LUA));

/// The source of [`SCHEDULE`] (KEYS: delayed, signal; ARGV: due, member).
pub(crate) const SCHEDULE_LUA: &str = concat!(
    lua_schedule_fn!(),
    "schedule(KEYS[1], KEYS[2], ARGV[1], ARGV[2])\nreturn 1\n"
);

impl Broker {
    /// Sign and enqueue one envelope (delayed if its `eta` is in the future).
    pub async fn enqueue(&self, env: Envelope) -> Result<()> {
        self.enqueue_keyed(env, ShardChoice::Next).await
    }

    /// [`Broker::enqueue`] on the shard `shard` names (of a key: the same
    /// key, the same shard, so a key's tasks keep their order).
    pub async fn enqueue_keyed(&self, env: Envelope, shard: ShardChoice<'_>) -> Result<()> {
        let shards = self.register_queue(&env.queue).await?;
        let qk = shards.pick(shard);
        let (eta, priority) = (env.eta, env.priority);
        let message = self.signer().seal_owned(env);
        match eta {
            Some(eta) if eta > now_ms() => {
                let _: i64 = SCHEDULE
                    .key(&qk.delayed)
                    .key(&qk.signal)
                    .arg(eta)
                    .arg(keys::delayed_member(priority, &message))
                    .invoke_async(&mut self.conn())
                    .await?;
            }
            _ => {
                let _: String = redis::cmd("XADD")
                    .arg(qk.ready(priority))
                    .arg("*")
                    .arg(keys::FIELD_MESSAGE)
                    .arg(message)
                    .query_async(&mut self.conn())
                    .await?;
            }
        }
        Ok(())
    }

    /// Enqueue many immediate envelopes in one pipeline.
    pub async fn enqueue_batch(&self, envs: &[Envelope]) -> Result<()> {
        if envs.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for env in envs {
            let shards = self.register_queue(&env.queue).await?;
            let qk = shards.pick(ShardChoice::Next);
            pipe.cmd("XADD")
                .arg(qk.ready(env.priority))
                .arg("*")
                .arg(keys::FIELD_MESSAGE)
                .arg(self.signer().seal(env))
                .ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }
}
