//! Settling a delivered task: every outcome acks and deletes the stream
//! entry in the same MULTI as the write that replaces it (retry, dead
//! letter, hand-back), so no crash between two steps can lose or double it.

use crate::dead::DeadLetter;
use crate::{Broker, Result};
use pym_core::keys::{self, CapKeys, QueueKeys};
use redis::cluster_routing::Slot;
use std::collections::HashMap;

/// What becomes of a delivered entry.
#[derive(Debug, Clone)]
pub enum Settle {
    /// Done: ack and delete.
    Ack,
    /// Done, for a task with a replay guard: also remember its id
    /// (`SET key 1 NX EX ttl_secs`) in the same transaction as the ack.
    AckProcessed { key: String, ttl_secs: u64 },
    /// Run again later: add the next attempt to the delayed set.
    Retry { due_ms: u64, member: String },
    /// Give up: record a dead letter.
    Dead(Box<DeadLetter>),
    /// Not run (worker draining): put the message back as ready at once.
    HandBack { message: String },
    /// Not run, its concurrency cap being full: park the delayed-set
    /// `member` ([`crate::concurrency`]).
    Park {
        cap: Box<CapKeys>,
        max: u32,
        member: String,
    },
    /// `then`, and give back what the run held ([`Release`]).
    Release {
        then: Box<Settle>,
        release: Box<Release>,
    },
    /// A tracked task's outcome: write its record, then settle as `then`.
    Record {
        write: Box<crate::task_record::RecordWrite>,
        then: Box<Settle>,
    },
}

/// What a run of a flow-controlled task holds until it is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The task id.
    pub id: String,
    /// The unique lock, released when the task finishes (`until =
    /// "finished"`): succeeded or dead-lettered, not on a retry.
    pub lock: Option<String>,
    /// A place of this cap (of so many places), given back whatever the
    /// outcome.
    pub cap: Option<(CapKeys, u32)>,
}

impl Release {
    /// Append the releases that settling with `then` makes.
    fn add_to_pipe(&self, pipe: &mut redis::Pipeline, qk: &QueueKeys, then: &Settle) {
        if let Some((cap, max)) = &self.cap {
            crate::concurrency::add_release(pipe, cap, *max, qk, &self.id);
        }
        if let Some(lock) = &self.lock
            && then.finishes()
        {
            crate::unique::add_release(pipe, lock, &self.id);
        }
    }
}

impl Settle {
    pub fn label(&self) -> &'static str {
        match self {
            Settle::Ack | Settle::AckProcessed { .. } => "ack",
            Settle::Retry { .. } => "retry",
            Settle::Dead(_) => "dead",
            Settle::HandBack { .. } => "hand_back",
            Settle::Park { .. } => "park",
            Settle::Release { then, .. } | Settle::Record { then, .. } => then.label(),
        }
    }

    /// Whether the task is finished (succeeded or dead-lettered): no
    /// attempt of it will run again.
    pub fn finishes(&self) -> bool {
        match self {
            Settle::Ack | Settle::AckProcessed { .. } | Settle::Dead(_) => true,
            Settle::Retry { .. } | Settle::HandBack { .. } | Settle::Park { .. } => false,
            Settle::Release { then, .. } | Settle::Record { then, .. } => then.finishes(),
        }
    }
}

/// One outcome to write: entry `id` of ready stream `stream` of `queue`.
#[derive(Debug, Clone, Copy)]
pub struct Settlement<'a> {
    pub queue: &'a str,
    pub stream: &'a str,
    pub id: &'a str,
    pub settle: &'a Settle,
}

/// Write every outcome of `batch` in one atomic pipeline (all or none).
/// On a Redis Cluster, where one transaction cannot span queues (their
/// slots differ), in one atomic pipeline per queue, sent concurrently:
/// all or none per queue.
pub async fn settle(broker: &Broker, batch: &[Settlement<'_>]) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    if !broker.is_cluster() {
        let () = pipeline(batch).query_async(&mut broker.conn()).await?;
        return Ok(());
    }
    let writes = per_queue(batch).into_iter().map(|part| {
        let mut conn = broker.conn();
        async move {
            let () = pipeline(&part).query_async(&mut conn).await?;
            Ok::<_, crate::BrokerError>(())
        }
    });
    futures::future::try_join_all(writes).await?;
    Ok(())
}

/// `batch` split by queue, in order of first appearance. The queue is told
/// by the stream's slot (its `{queue}` hash tag): a plain ack carries no
/// queue name.
fn per_queue<'a>(batch: &[Settlement<'a>]) -> Vec<Vec<Settlement<'a>>> {
    let mut parts: Vec<(Slot, Vec<Settlement<'a>>)> = Vec::new();
    for s in batch {
        let slot = Slot::for_key(s.stream);
        match parts.iter_mut().find(|(at, _)| *at == slot) {
            Some((_, p)) => p.push(*s),
            None => parts.push((slot, vec![*s])),
        }
    }
    parts.into_iter().map(|(_, p)| p).collect()
}

/// The atomic pipeline that writes `batch`: the writes of each outcome,
/// then, per stream, one XACK and one XDEL of its plain acks.
pub fn pipeline(batch: &[Settlement<'_>]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut qks: HashMap<&str, QueueKeys> = HashMap::new();
    let mut acks: Vec<(&str, Vec<&str>)> = Vec::new();
    for s in batch {
        if matches!(s.settle, Settle::Ack) {
            match acks.iter_mut().find(|(stream, _)| *stream == s.stream) {
                Some((_, ids)) => ids.push(s.id),
                None => acks.push((s.stream, vec![s.id])),
            }
            continue;
        }
        let qk = qks
            .entry(s.queue)
            .or_insert_with(|| QueueKeys::new(s.queue));
        add_to_pipe(&mut pipe, qk, s.stream, s.id, s.settle);
    }
    for (stream, ids) in &acks {
        add_acks_to_pipe(&mut pipe, stream, ids);
    }
    pipe
}

/// Append the commands that ack and delete many finished entries of one
/// stream: one variadic XACK and one XDEL, however many ids.
fn add_acks_to_pipe(pipe: &mut redis::Pipeline, stream: &str, ids: &[&str]) {
    if ids.is_empty() {
        return;
    }
    pipe.cmd("XACK")
        .arg(stream)
        .arg(keys::GROUP)
        .arg(ids)
        .ignore();
    pipe.cmd("XDEL").arg(stream).arg(ids).ignore();
}

/// Append the commands that settle `stream`/`id` to an atomic pipeline.
fn add_to_pipe(
    pipe: &mut redis::Pipeline,
    qk: &QueueKeys,
    stream: &str,
    id: &str,
    settle: &Settle,
) {
    match settle {
        Settle::Ack => {}
        Settle::AckProcessed { key, ttl_secs } => {
            pipe.cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(*ttl_secs)
                .ignore();
        }
        Settle::Retry { due_ms, member } => {
            pipe.cmd("ZADD")
                .arg(&qk.delayed)
                .arg(*due_ms)
                .arg(member)
                .ignore();
            pipe.cmd("LPUSH").arg(&qk.signal).arg("1").ignore();
            pipe.cmd("LTRIM").arg(&qk.signal).arg(0).arg(0).ignore();
        }
        Settle::Dead(d) => d.add_to_pipe(pipe, qk),
        Settle::HandBack { message } => {
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg(keys::FIELD_MESSAGE)
                .arg(message)
                .ignore();
        }
        Settle::Park { cap, max, member } => {
            crate::concurrency::add_park(pipe, cap, *max, qk, stream, member);
        }
        Settle::Release { then, release } => {
            release.add_to_pipe(pipe, qk, then);
            return add_to_pipe(pipe, qk, stream, id, then);
        }
        Settle::Record { write, then } => {
            write.add_to_pipe(pipe);
            return add_to_pipe(pipe, qk, stream, id, then);
        }
    }
    add_acks_to_pipe(pipe, stream, &[id]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each command of `pipe` as its words.
    fn commands(pipe: &redis::Pipeline) -> Vec<String> {
        pipe.cmd_iter()
            .map(|c| {
                c.args_iter()
                    .map(|a| match a {
                        redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                        _ => "<cursor>".into(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn a_cluster_batch_is_split_by_the_queue_of_each_stream() {
        use crate::Priority;
        let (a, b) = (QueueKeys::new("a"), QueueKeys::new("b"));
        let retry = Settle::Retry {
            due_ms: 1,
            member: "m".into(),
        };
        let s = |queue, stream, id, settle| Settlement {
            queue,
            stream,
            id,
            settle,
        };
        let batch = [
            // plain acks carry no queue name: the stream tells it
            s("", a.ready(Priority::High), "1-0", &Settle::Ack),
            s("", b.ready(Priority::Low), "2-0", &Settle::Ack),
            s("a", a.ready(Priority::Low), "3-0", &retry),
            s("", b.ready(Priority::High), "4-0", &Settle::Ack),
        ];
        let parts = per_queue(&batch);
        assert_eq!(
            parts
                .iter()
                .map(|p| p.iter().map(|s| s.id).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
            [vec!["1-0", "3-0"], vec!["2-0", "4-0"]]
        );
    }

    #[test]
    fn one_pipeline_per_batch_with_acks_grouped_per_stream() {
        let ack = Settle::Ack;
        let retry = Settle::Retry {
            due_ms: 7,
            member: "mem".into(),
        };
        let back = Settle::HandBack {
            message: "msg".into(),
        };
        let processed = Settle::AckProcessed {
            key: "done".into(),
            ttl_secs: 60,
        };
        let s = |stream, id, settle| Settlement {
            queue: "q",
            stream,
            id,
            settle,
        };
        let batch = [
            s("a", "1-0", &ack),
            s("b", "2-0", &ack),
            s("a", "3-0", &retry),
            s("a", "4-0", &ack),
            s("b", "5-0", &back),
            s("a", "6-0", &processed),
        ];
        let qk = QueueKeys::new("q");
        let want = vec![
            format!("ZADD {} 7 mem", qk.delayed),
            format!("LPUSH {} 1", qk.signal),
            format!("LTRIM {} 0 0", qk.signal),
            format!("XACK a {} 3-0", keys::GROUP),
            "XDEL a 3-0".to_owned(),
            format!("XADD b * {} msg", keys::FIELD_MESSAGE),
            format!("XACK b {} 5-0", keys::GROUP),
            "XDEL b 5-0".to_owned(),
            "SET done 1 NX EX 60".to_owned(),
            format!("XACK a {} 6-0", keys::GROUP),
            "XDEL a 6-0".to_owned(),
            format!("XACK a {} 1-0 4-0", keys::GROUP),
            "XDEL a 1-0 4-0".to_owned(),
            format!("XACK b {} 2-0", keys::GROUP),
            "XDEL b 2-0".to_owned(),
        ];
        assert_eq!(commands(&pipeline(&batch)), want);
        assert!(commands(&pipeline(&[])).is_empty());
    }

    #[test]
    fn a_run_gives_back_its_place_always_and_its_lock_when_finished() {
        let cap = CapKeys::new("q", "t", None);
        let release = Release {
            id: "id1".into(),
            lock: Some("lock".into()),
            cap: Some((cap.clone(), 2)),
        };
        let dead = crate::dead::DeadLetter::new(
            "q",
            "1-0",
            "m",
            crate::dead::Reason::Fatal,
            "e".into(),
            1,
        );
        let retry = Settle::Retry {
            due_ms: 1,
            member: "m".into(),
        };
        let back = Settle::HandBack {
            message: "m".into(),
        };
        let table = [
            // (outcome, lock released)
            (Settle::Ack, true),
            (Settle::Dead(Box::new(dead)), true),
            (retry, false),
            (back, false),
        ];
        for (then, lock_released) in table {
            let label = then.label();
            let settle = Settle::Release {
                then: Box::new(then),
                release: Box::new(release.clone()),
            };
            assert_eq!(settle.label(), label);
            let batch = [Settlement {
                queue: "q",
                stream: "s",
                id: "1-0",
                settle: &settle,
            }];
            let cmds = commands(&pipeline(&batch));
            let evals: Vec<_> = cmds.iter().filter(|c| c.starts_with("EVAL")).collect();
            assert!(evals[0].contains(&cap.leases), "{label}: {cmds:?}");
            assert_eq!(
                evals.len(),
                1 + usize::from(lock_released),
                "{label}: {cmds:?}"
            );
            assert!(cmds.last().unwrap().starts_with("XDEL s 1-0"), "{label}");
        }
    }
}
