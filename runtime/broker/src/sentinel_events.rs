//! What the sentinels announce, heard on every sentinel at once (only the
//! leader of a failover announces its steps): a promotion about to start
//! holds the broker's commands back from the old master, whose later
//! writes would be lost; `+switch-master` moves them to the new one; an
//! aborted failover releases them.
//!
//! Sentinel sends `REPLICAOF NO ONE` to the chosen replica on its timer
//! tick after announcing `+failover-state-send-slaveof-noone`, so a
//! broker that stops writing on that message has written nothing the
//! promotion can lose, bar the messages it had not yet received.

use crate::primary::Follower;
use futures::StreamExt;
use std::sync::Weak;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The channels listened to.
const CHANNELS: [&str; 5] = [
    "+switch-master",
    "+failover-state-send-slaveof-noone",
    "-failover-abort-not-elected",
    "-failover-abort-no-good-slave",
    "-failover-abort-slave-timeout",
];

/// A sentinel's announcement about the master the broker follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SentinelEvent {
    /// A replica is about to be promoted: stop writing to the master.
    Promoting,
    /// The master is now `host:port`.
    Switched {
        /// The new master's address, as the sentinels know it.
        host: String,
        /// The new master's port.
        port: u16,
    },
    /// The failover was given up: the master stays.
    Aborted,
}

/// The event a message on `channel` announces about master `name`, if any.
///
/// Payloads: `+switch-master`: `<name> <old-ip> <old-port> <new-ip>
/// <new-port>`; `+failover-state-send-slaveof-noone`: `slave <ip>:<port>
/// <ip> <port> @ <name> <master-ip> <master-port>`; `-failover-abort-*`:
/// `master <name> <ip> <port>`.
pub fn parse_event(channel: &str, payload: &str, name: &str) -> Option<SentinelEvent> {
    let parts: Vec<&str> = payload.split(' ').collect();
    match (channel, &parts[..]) {
        ("+switch-master", [n, _, _, host, port]) if *n == name => Some(SentinelEvent::Switched {
            host: (*host).to_owned(),
            port: port.parse().ok()?,
        }),
        ("+failover-state-send-slaveof-noone", [.., "@", n, _, _]) if *n == name => {
            Some(SentinelEvent::Promoting)
        }
        (c, ["master", n, _, _]) if c.starts_with("-failover-abort-") && *n == name => {
            Some(SentinelEvent::Aborted)
        }
        _ => None,
    }
}

/// Listens on every sentinel (each resubscribing after a failure) until
/// `stop`, and tells `follower`.
pub(crate) fn spawn_listeners(
    follower: Weak<Follower>,
    sentinels: Vec<redis::Client>,
    name: String,
    stop: CancellationToken,
) {
    for sentinel in sentinels {
        let (follower, name, stop) = (follower.clone(), name.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = listen(&follower, &sentinel, &name) => if let Err(e) = r {
                        tracing::debug!(error = %e, "sentinel subscription failed; subscribing again");
                    },
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
    }
}

async fn listen(
    follower: &Weak<Follower>,
    sentinel: &redis::Client,
    name: &str,
) -> redis::RedisResult<()> {
    let mut pubsub = sentinel.get_async_pubsub().await?;
    pubsub.subscribe(&CHANNELS[..]).await?;
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let payload: String = msg.get_payload()?;
        let Some(event) = parse_event(msg.get_channel_name(), &payload, name) else {
            continue;
        };
        let Some(follower) = follower.upgrade() else {
            return Ok(());
        };
        tracing::info!(?event, "a sentinel announced a failover step");
        match event {
            SentinelEvent::Promoting => follower.hold(),
            SentinelEvent::Switched { host, port } => follower.switch(host, port).await,
            SentinelEvent::Aborted => follower.release(),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_messages_about_our_master_are_events() {
        let switched = |h: &str, port| {
            Some(SentinelEvent::Switched {
                host: h.into(),
                port,
            })
        };
        let table = [
            (
                "+switch-master",
                "m 127.0.0.1 6379 127.0.0.1 6380",
                switched("127.0.0.1", 6380),
            ),
            (
                "+switch-master",
                "m 10.0.0.1 6379 ::1 7000",
                switched("::1", 7000),
            ),
            (
                "+switch-master",
                "other 127.0.0.1 6379 127.0.0.1 6380",
                None,
            ),
            ("+switch-master", "m 127.0.0.1 6379 127.0.0.1 port", None),
            ("+switch-master", "m 127.0.0.1 6379", None),
            ("+switch-master", "", None),
            (
                "+failover-state-send-slaveof-noone",
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ m 127.0.0.1 6379",
                Some(SentinelEvent::Promoting),
            ),
            (
                "+failover-state-send-slaveof-noone",
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ other 127.0.0.1 6379",
                None,
            ),
            (
                "-failover-abort-no-good-slave",
                "master m 127.0.0.1 6379",
                Some(SentinelEvent::Aborted),
            ),
            (
                "-failover-abort-not-elected",
                "master m 127.0.0.1 6379",
                Some(SentinelEvent::Aborted),
            ),
            (
                "-failover-abort-not-elected",
                "master other 127.0.0.1 6379",
                None,
            ),
            ("+sdown", "master m 127.0.0.1 6379", None),
        ];
        for (channel, payload, want) in table {
            assert_eq!(
                parse_event(channel, payload, "m"),
                want,
                "{channel} {payload}"
            );
        }
    }
}
