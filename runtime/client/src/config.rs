//! How a [`crate::Client`] calls: timeouts, retries, credentials.

use crate::credentials::Credentials;
use std::time::Duration;

/// A client's settings; [`ClientConfig::default`] suits most calls.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Time for one attempt, from sending to the end of the answer (30 s).
    pub timeout: Duration,
    /// Time to open a connection (5 s).
    pub connect_timeout: Duration,
    /// Attempts after the first one, for failures that may be retried (3).
    pub retries: usize,
    /// First retry delay, doubled at each retry, with jitter (100 ms).
    pub backoff_min: Duration,
    /// Longest retry delay, also the cap on a `Retry-After` (5 s).
    pub backoff_max: Duration,
    /// The bearer token calls send (the caller's).
    pub credentials: Credentials,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            credentials: Credentials::Forward,
        }
    }
}

impl ClientConfig {
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Attempts after the first; 0 turns retries off.
    pub fn retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }
}
