//! queue → output (one loop per output, on its own queue). A batch is sent when it is full, or when the oldest waiting event has waited
//! `agent.report_interval`; a deep queue is sent back to back, a few batches at a time
//! ([`Output::max_in_flight`]: one round trip per batch would cap throughput at batch size /
//! round-trip time). An event
//! leaves the queue only when the server answered 2xx for its batch. What the server says decides
//! what happens next:
//!
//! | answer | action |
//! |---|---|
//! | 2xx | ack: the batch's events leave the queue |
//! | transport error, timeout, 408, 429, 5xx | retry with backoff (Retry-After honoured); after `server.retry_max` attempts the batch waits a report interval, kept |
//! | TLS / certificate failure | nothing sent; retry slowly, reported as the last error |
//! | 401, 403 | pause sending (events kept), retry every report interval |
//! | 413 | split the batch in two and send the halves; a single event: dead-lettered |
//! | other 4xx | the batch is set aside in the dead-letter table and reported |
//!
//! A failure pauses every sender, not only the one that saw it ([`Gate`]): a server that is down
//! or asked for `Retry-After` gets one attempt at a time, not one per batch in flight. So does a
//! queue that cannot record what the server said (a full or failing disk). Batches in
//! flight together can arrive in any order; each event carries its `seq` and timestamp.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Shared;
use crate::outputs::Output;
use crate::queue::{Batch, QueueError};
use crate::sender::{Backoff, Outcome};
use sec_tracker_proto::v1::ShipperState;

/// How long every sender waits after the queue failed to record a batch's outcome: the batch is
/// sent again, and without a pause a failing disk would have it sent at network speed.
const UNSETTLED_PAUSE: Duration = Duration::from_secs(1);

pub(super) async fn run(shared: Arc<Shared>) {
    let batch_size = shared.output.batch_size(&shared.config);
    let interval = shared.config.agent.report_interval;
    // Enough to keep the link busy while the receiver handles a batch; more only adds memory
    // (a batch in flight is held whole).
    let in_flight = shared.output.max_in_flight();
    let slots = Arc::new(Semaphore::new(in_flight));
    let gate = Arc::new(Gate::default());
    let mut senders = tokio::task::JoinSet::new();
    while !shared.shutdown.is_cancelled() {
        let permit = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            p = Arc::clone(&slots).acquire_owned() => p.expect("the semaphore is never closed"),
        };
        // This loop holds one slot while it waits: the others are the batches in flight.
        let others_idle = || slots.available_permits() + 1 == in_flight;
        let Some(batch) = next_due_batch(&shared, batch_size, interval, others_idle).await else {
            continue;
        };
        shared.set_state_if_ok(ShipperState::Sending);
        senders.spawn(deliver(
            Arc::clone(&shared),
            Arc::clone(&gate),
            batch,
            permit,
        ));
        // Reap the finished ones so the set does not grow.
        while senders.try_join_next().is_some() {}
    }
    // Shutdown: senders see the token in their waits; one mid-request is cut off by the drain
    // timeout and its batch is sent again, same id, after the restart.
    while senders.join_next().await.is_some() {}
}

/// What the dispatcher found in the queue.
enum Found {
    /// A batch is due (`None`: every batch there is already in flight).
    Due(Option<Batch>),
    /// Not yet: `events` wait in no batch, the oldest for `age`.
    NotYet { events: u64, age: Duration },
}

/// Waits until a batch is due and takes it: a batch recorded and not handed out (from before a
/// restart, or half of a split one) at once; otherwise a full batch, or whatever waits once the
/// oldest of it has waited `interval`. None when the wait ended for another reason (shutdown,
/// queue error): the caller loops.
async fn next_due_batch(
    shared: &Shared,
    batch_size: usize,
    interval: Duration,
    nothing_in_flight: impl Fn() -> bool,
) -> Option<Batch> {
    loop {
        if shared.shutdown.is_cancelled() {
            return None;
        }
        // One visit to the queue thread decides and takes the batch.
        let found = shared
            .with_queue(move |q| {
                let waiting = q.waiting()?;
                let now_ns = sec_tracker_proto::json::now_ns();
                let age = waiting
                    .oldest_timestamp_ns
                    .map(|t| Duration::from_nanos(now_ns.saturating_sub(t).max(0) as u64))
                    .unwrap_or_default();
                let due = waiting.unclaimed_batches > 0
                    || waiting.events as usize >= batch_size
                    || (waiting.events > 0 && age >= interval);
                Ok(if due {
                    Found::Due(q.next_batch(batch_size)?)
                } else {
                    Found::NotYet {
                        events: waiting.events,
                        age,
                    }
                })
            })
            .await;
        let wait = match found {
            Ok(Found::Due(batch)) => return batch,
            Ok(Found::NotYet { events: 0, .. }) => {
                if nothing_in_flight() {
                    shared.set_state_if_ok(ShipperState::Idle);
                }
                interval
            }
            Ok(Found::NotYet { age, .. }) => interval - age,
            Err(e) => {
                shared.set_error(format!("queue: {e}"));
                sleep_or_stop(shared, Duration::from_secs(1)).await;
                return None;
            }
        };
        tokio::select! {
            _ = shared.shutdown.cancelled() => return None,
            _ = shared.queued.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Sends one batch until it is settled: delivered, split, or dead-lettered. Holds its slot
/// meanwhile.
async fn deliver(shared: Arc<Shared>, gate: Arc<Gate>, batch: Batch, _slot: OwnedSemaphorePermit) {
    let interval = shared.config.agent.report_interval;
    let retry_max = shared.config.server.retry_max.max(1);
    let id = batch.batch_id.clone();
    if batch.attempts > 0 {
        shared.batches_resent.fetch_add(1, Ordering::Relaxed);
    }
    let payloads: Vec<&[u8]> = batch.events.iter().map(|e| e.payload.as_slice()).collect();
    let mut attempts = 0u64;
    loop {
        if !gate.wait(&shared).await {
            // Shutdown: the batch stays recorded and goes out again after the restart.
            return;
        }
        if attempts > 0 {
            shared.batches_resent.fetch_add(1, Ordering::Relaxed);
        }
        let started = Instant::now();
        let output: &Output = &shared.output;
        match output.send_batch(&id, &payloads).await {
            Outcome::Delivered => {
                shared.send_seconds.observe(started.elapsed());
                shared.batches_sent.fetch_add(1, Ordering::Relaxed);
                shared.success();
                gate.success();
                let batch_id = id.clone();
                if let Err(e) = shared.with_queue(move |q| q.ack(&batch_id)).await {
                    // The server has it; unsettled, it goes out again under the same id.
                    give_back(&shared, &gate, &id, e).await;
                } else if shared.state() != ShipperState::DiskError {
                    shared.set_state(ShipperState::Sending);
                }
                tracing::debug!(output = output.name(), events = payloads.len(), took = ?started.elapsed(), "batch delivered");
                return;
            }
            Outcome::Retry { after, reason } => {
                attempts += 1;
                shared.set_state(ShipperState::Retrying);
                shared.set_error(format!("{}: {reason}", output.name()));
                if attempts % retry_max == 0 {
                    // Enough for this round: the batch stays queued and waits an interval.
                    tracing::warn!(output = output.name(), attempts, reason = %reason, "batch not delivered; it stays queued and is retried in {}", humantime::format_duration(interval));
                    gate.failure(after.unwrap_or_default().max(interval));
                } else {
                    let wait = gate.failure(after.unwrap_or_default());
                    tracing::info!(output = output.name(), attempt = attempts, reason = %reason, retry_in = ?wait, "batch not delivered; retrying");
                }
            }
            Outcome::TlsFailure { reason } => {
                attempts += 1;
                shared.set_state(ShipperState::Retrying);
                shared.set_error(format!("TLS: {reason}"));
                tracing::error!(output = output.name(), reason = %reason, "TLS to {} failed: nothing was sent", output.peer());
                gate.failure(Duration::from_secs(5));
            }
            Outcome::Unauthorized { status, reason } => {
                attempts += 1;
                shared.set_state(ShipperState::PausedAuth);
                shared.set_error(format!(
                    "{} refused our credentials ({status}): {reason}",
                    output.peer()
                ));
                tracing::error!(output = output.name(), status, reason = %reason, "{} refused {}; sending is paused, events are kept", output.peer(), output.credentials());
                gate.pause(interval);
            }
            Outcome::TooLarge => {
                let batch_id = id.clone();
                let settled = match shared.with_queue(move |q| q.split(&batch_id)).await {
                    Ok(true) => {
                        tracing::info!(events = payloads.len(), "413: batch split in two");
                        Ok(())
                    }
                    Ok(false) => {
                        tracing::error!(
                            "413 for a single event: set aside in the dead-letter table"
                        );
                        let batch_id = id.clone();
                        shared
                            .with_queue(move |q| q.dead_letter(&batch_id, 413, "payload too large"))
                            .await
                    }
                    Err(e) => Err(e),
                };
                match settled {
                    // The halves (or the next batch) are due now.
                    Ok(()) => shared.queued.notify_one(),
                    Err(e) => give_back(&shared, &gate, &id, e).await,
                }
                return;
            }
            Outcome::Rejected { status, reason } => {
                tracing::error!(output = output.name(), status, reason = %reason, events = payloads.len(), "{} rejected a batch: set aside in the dead-letter table", output.peer());
                shared.set_error(format!(
                    "{} rejected a batch ({status}): {reason}",
                    output.peer()
                ));
                let batch_id = id.clone();
                if let Err(e) = shared
                    .with_queue(move |q| q.dead_letter(&batch_id, status, &reason))
                    .await
                {
                    give_back(&shared, &gate, &id, e).await;
                }
                return;
            }
        }
    }
}

/// A batch whose outcome the queue could not record goes back unsettled: the dispatcher hands it
/// out again (same id) and is woken to do so, once every sender has paused [`UNSETTLED_PAUSE`].
async fn give_back(shared: &Shared, gate: &Gate, batch_id: &str, error: QueueError) {
    shared.set_error(format!("queue: {error}"));
    gate.pause(UNSETTLED_PAUSE);
    let batch_id = batch_id.to_owned();
    let _ = shared.queue.run(move |q| q.release(&batch_id)).await;
    shared.queued.notify_one();
}

/// When the next attempt may go out, shared by every sender: after a failure all of them wait,
/// and the backoff grows once per failed attempt after a wait, not once per batch in flight.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    backoff: Backoff,
    closed_until: Option<Instant>,
}

impl Gate {
    /// Waits until sending is allowed; false on shutdown.
    async fn wait(&self, shared: &Shared) -> bool {
        loop {
            let until = self.lock().closed_until;
            match until {
                Some(t) if t > Instant::now() => {
                    tokio::select! {
                        _ = shared.shutdown.cancelled() => return false,
                        _ = tokio::time::sleep_until(t.into()) => {}
                    }
                }
                _ => return !shared.shutdown.is_cancelled(),
            }
        }
    }

    /// A retryable failure: closes the gate for the next backoff delay, at least `floor`
    /// (a `Retry-After`). A failure of a request sent while the gate was already closed for an
    /// earlier one extends the wait to `floor` but does not grow the backoff. Returns the wait.
    fn failure(&self, floor: Duration) -> Duration {
        let mut s = self.lock();
        let now = Instant::now();
        let wait = match s.closed_until {
            Some(t) if t > now => (t - now).max(floor),
            _ => s.backoff.next_delay().max(floor),
        };
        s.closed_until = Some(now + wait);
        wait
    }

    /// Closes the gate for exactly `d` (401/403: the key will not fix itself sooner).
    fn pause(&self, d: Duration) {
        let mut s = self.lock();
        let until = Instant::now() + d;
        s.closed_until = Some(s.closed_until.map_or(until, |t| t.max(until)));
    }

    fn success(&self) {
        let mut s = self.lock();
        s.backoff.reset();
        s.closed_until = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
    fn set_state_if_ok(&self, s: ShipperState) {
        if !matches!(
            self.state(),
            ShipperState::DiskError | ShipperState::PausedAuth | ShipperState::Retrying
        ) {
            self.set_state(s);
        }
    }
}
