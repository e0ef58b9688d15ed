//! Settling a delivered task: every outcome acks and deletes the stream
//! entry in the same MULTI as the write that replaces it (retry, dead
//! letter, hand-back), so no crash between two steps can lose or double it.

use crate::dead::DeadLetter;
use pym_core::keys::{self, QueueKeys};

/// What becomes of a delivered entry.
#[derive(Debug, Clone)]
pub enum Settle {
    /// Done: ack and delete.
    Ack,
    /// Run again later: add the next attempt to the delayed set.
    Retry { due_ms: u64, member: String },
    /// Give up: record a dead letter.
    Dead(Box<DeadLetter>),
    /// Not run (worker draining): put the message back as ready at once.
    HandBack { message: String },
}

impl Settle {
    pub fn label(&self) -> &'static str {
        match self {
            Settle::Ack => "ack",
            Settle::Retry { .. } => "retry",
            Settle::Dead(_) => "dead",
            Settle::HandBack { .. } => "hand_back",
        }
    }
}

/// Append the commands that ack and delete many finished entries of one
/// stream: one variadic XACK and one XDEL, however many ids.
pub fn add_acks_to_pipe(pipe: &mut redis::Pipeline, stream: &str, ids: &[&str]) {
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
pub fn add_to_pipe(
    pipe: &mut redis::Pipeline,
    qk: &QueueKeys,
    stream: &str,
    id: &str,
    settle: &Settle,
) {
    match settle {
        Settle::Ack => {}
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
    }
    add_acks_to_pipe(pipe, stream, &[id]);
}
