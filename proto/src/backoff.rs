//! Exponential backoff with full jitter, for every retry and reconnect loop: the sender's
//! retries, the shipper's reconnects to collectord and its queue writes, `watch`'s reconnects.

use std::time::Duration;

/// The longest `Retry-After` honoured; a larger value (or a date further out) is cut to this, so
/// a misconfigured server cannot silence the agent for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Exponential backoff with full jitter: the n-th delay (from 0) is
/// `min(cap, base * 2^n) * random(0..1)`, raised to a server's `Retry-After` when one is given.
/// [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 1 s base, 5 min cap.
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The upper bound of the next delay (before any `Retry-After` floor).
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.checked_pow(self.attempt).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// The next delay, jittered over `0..ceiling`.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_after(None)
    }

    /// The next delay, but never less than `retry_after` (a server's `Retry-After`).
    pub fn next_delay_after(&mut self, retry_after: Option<Duration>) -> Duration {
        let jittered = self.ceiling().mul_f64(rand::random::<f64>());
        self.attempt = self.attempt.saturating_add(1);
        match retry_after {
            Some(floor) => jittered.max(floor.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}
