//! queue → server. A batch is sent when it is full, or when the oldest queued event has waited
//! `agent.report_interval`; a deep queue is sent back to back. An event leaves the queue only
//! when the server answered 2xx for its batch. What the server says decides what happens next:
//!
//! | answer | action |
//! |---|---|
//! | 2xx | ack: the batch's events leave the queue |
//! | transport error, timeout, 408, 429, 5xx | retry with backoff (Retry-After honoured); after `server.retry_max` attempts the batch waits a report interval, kept |
//! | TLS / certificate failure | nothing sent; retry slowly, reported as the last error |
//! | 401, 403 | pause sending (events kept), retry every report interval |
//! | 413 | split the batch in two and send the halves |
//! | other 4xx | the batch is set aside in the dead-letter table and reported |

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::sender::{Backoff, Outcome, Sender};

pub(super) async fn run(shared: Arc<Shared>, sender: Arc<Sender>) {
    let batch_size = shared.config.server.batch_size as usize;
    let interval = shared.config.agent.report_interval;
    let retry_max = shared.config.server.retry_max.max(1);
    let mut backoff = Backoff::default();
    let mut attempts = 0u64;
    let mut last_batch_id = String::new();
    while !shared.shutdown.is_cancelled() {
        // Wait for a full batch, or for the oldest event to have waited an interval.
        let stats = match shared.with_queue(|q| q.stats()).await {
            Ok(s) => s,
            Err(e) => {
                shared.set_error(format!("queue: {e}"));
                sleep_or_stop(&shared, Duration::from_secs(1)).await;
                continue;
            }
        };
        if stats.depth == 0 {
            shared.set_state_if_ok("idle");
            wait_for_events(&shared, interval).await;
            continue;
        }
        let oldest_age = stats
            .oldest_timestamp_ns
            .map(|t| Duration::from_nanos((sec_tracker_proto::json::now_ns() - t).max(0) as u64))
            .unwrap_or_default();
        if stats.in_flight == 0 && (stats.depth as usize) < batch_size && oldest_age < interval {
            wait_for_events(&shared, interval - oldest_age).await;
            // Re-check: either enough arrived, or the oldest has waited long enough.
            let again = shared.with_queue(|q| q.stats()).await;
            if let Ok(s) = again {
                let aged = s.oldest_timestamp_ns.is_some_and(|t| {
                    Duration::from_nanos((sec_tracker_proto::json::now_ns() - t).max(0) as u64)
                        >= interval
                });
                if (s.depth as usize) < batch_size && !aged && !shared.shutdown.is_cancelled() {
                    continue;
                }
            }
        }
        let batch = match shared.with_queue(move |q| q.next_batch(batch_size)).await {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => {
                shared.set_error(format!("queue: {e}"));
                sleep_or_stop(&shared, Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.batch_id == last_batch_id || batch.attempts > 0 {
            shared.batches_resent.fetch_add(1, Ordering::Relaxed);
        }
        last_batch_id.clone_from(&batch.batch_id);
        shared.set_state_if_ok("sending");
        let payloads: Vec<&[u8]> = batch.events.iter().map(|e| e.payload.as_slice()).collect();
        let started = Instant::now();
        let outcome = sender.send_batch(&batch.batch_id, &payloads).await;
        let id = batch.batch_id.clone();
        match outcome {
            Outcome::Delivered => {
                if let Err(e) = shared.with_queue(move |q| q.ack(&id)).await {
                    // The server has it; if the ack is lost the batch is re-sent with the same id.
                    shared.set_error(format!("queue: {e}"));
                }
                shared.batches_sent.fetch_add(1, Ordering::Relaxed);
                shared.success();
                shared.set_state("sending");
                backoff.reset();
                attempts = 0;
                tracing::debug!(events = batch.events.len(), took = ?started.elapsed(), "batch delivered");
            }
            Outcome::Retry { after, reason } => {
                attempts += 1;
                shared.set_state("retrying");
                shared.set_error(format!("server: {reason}"));
                let mut wait = backoff.next_delay().max(after.unwrap_or_default());
                if attempts >= retry_max {
                    // Enough for this round: the batch stays queued and waits an interval.
                    tracing::warn!(attempts, reason = %reason, "batch not delivered; it stays queued and is retried in {}", humantime::format_duration(interval));
                    wait = wait.max(interval);
                    attempts = 0;
                } else {
                    tracing::info!(attempt = attempts, reason = %reason, retry_in = ?wait, "batch not delivered; retrying");
                }
                sleep_or_stop(&shared, wait).await;
            }
            Outcome::TlsFailure { reason } => {
                shared.set_state("retrying");
                shared.set_error(format!("TLS: {reason}"));
                tracing::error!(reason = %reason, "TLS to the server failed: nothing was sent");
                let wait = backoff.next_delay().max(Duration::from_secs(5));
                sleep_or_stop(&shared, wait).await;
            }
            Outcome::Unauthorized { status, reason } => {
                shared.set_state("paused_auth");
                shared.set_error(format!("server refused the API key ({status}): {reason}"));
                tracing::error!(status, reason = %reason, "the server refused the API key; sending is paused, events are kept");
                sleep_or_stop(&shared, interval).await;
            }
            Outcome::TooLarge => {
                let id2 = id.clone();
                match shared.with_queue(move |q| q.split(&id2)).await {
                    Ok(true) => {
                        tracing::info!(events = batch.events.len(), "413: batch split in two")
                    }
                    Ok(false) => {
                        tracing::error!(
                            "413 for a single event: set aside in the dead-letter table"
                        );
                        let _ = shared
                            .with_queue(move |q| q.dead_letter(&id, 413, "payload too large"))
                            .await;
                    }
                    Err(e) => shared.set_error(format!("queue: {e}")),
                }
            }
            Outcome::Rejected { status, reason } => {
                tracing::error!(status, reason = %reason, events = batch.events.len(), "the server rejected a batch: set aside in the dead-letter table");
                shared.set_error(format!("server rejected a batch ({status}): {reason}"));
                let r = reason.clone();
                let _ = shared
                    .with_queue(move |q| q.dead_letter(&id, status, &r))
                    .await;
            }
        }
    }
}

async fn wait_for_events(shared: &Shared, at_most: Duration) {
    tokio::select! {
        _ = shared.shutdown.cancelled() => {}
        _ = shared.queued.notified() => {}
        _ = tokio::time::sleep(at_most) => {}
    }
}

async fn sleep_or_stop(shared: &Shared, d: Duration) {
    tokio::select! {
        _ = shared.shutdown.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

impl Shared {
    /// Only when not in an error state that a later success clears.
    fn set_state_if_ok(&self, s: &'static str) {
        if !matches!(self.state(), "disk_error" | "paused_auth" | "retrying") {
            self.set_state(s);
        }
    }
}
