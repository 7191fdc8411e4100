//! collectord → queue. Subscribes with the resume point the queue keeps (`after_seq`,
//! `stream_id`), so a restart of either side continues where it stopped; what the collector can
//! no longer replay comes back as a gap, which is counted. Events are written to the queue in
//! groups (one transaction each) before they count as received.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sec_tracker_proto::backoff::Backoff;
use sec_tracker_proto::json::EventJson;
use sec_tracker_proto::local::client;
use sec_tracker_proto::v1::collector_client::CollectorClient;
use sec_tracker_proto::v1::subscribe_response::Item;
use sec_tracker_proto::v1::ShipperState;
use sec_tracker_proto::v1::{Gap, GapReason, SubscribeRequest};
use tonic::transport::Channel;

use super::Shared;
use crate::queue::NewEvent;

/// Events written per transaction at most, and how long the first of them waits for company.
const GROUP: usize = 1024;
const GROUP_WAIT: Duration = Duration::from_millis(20);

pub(super) async fn run(shared: Arc<Shared>, socket: PathBuf) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shared.shutdown.is_cancelled() {
        match connect(&socket).await {
            Ok(client) => {
                backoff.reset();
                if let Err(e) = follow(&shared, client).await {
                    tracing::warn!(error = %format!("{e:#}"), "lost the collector stream");
                    shared.set_error(format!("collector: {e:#}"));
                }
                shared.collector_connected.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                // A refused server identity is an attack or a misconfiguration: say it at once.
                if backoff.attempts() >= 5 || e.kind() == io::ErrorKind::PermissionDenied {
                    tracing::warn!(socket = %socket.display(), error = %e, "cannot reach collectord; retrying");
                    shared.set_error(format!("collector: {e}"));
                }
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn connect(path: &Path) -> io::Result<CollectorClient<Channel>> {
    let channel = client::connect(path, &client::Trust::collector()).await?;
    Ok(CollectorClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

async fn follow(shared: &Arc<Shared>, mut client: CollectorClient<Channel>) -> anyhow::Result<()> {
    let resume = shared.with_queue(|q| q.resume_point()).await?;
    let request = match &resume {
        Some((stream_id, seq)) => SubscribeRequest {
            after_seq: *seq,
            stream_id: stream_id.clone(),
            ..Default::default()
        },
        // First start: take everything the collector still holds.
        None => SubscribeRequest {
            replay: true,
            ..Default::default()
        },
    };
    let mut stream = client.subscribe(request).await?.into_inner();
    shared.collector_connected.store(true, Ordering::Relaxed);
    tracing::info!(resume = ?resume, "subscribed to collectord");
    let mut group: Vec<NewEvent> = Vec::with_capacity(GROUP);
    loop {
        let next = if group.is_empty() {
            tokio::select! {
                _ = shared.shutdown.cancelled() => return Ok(()),
                n = stream.next() => n,
            }
        } else {
            tokio::select! {
                _ = shared.shutdown.cancelled() => { store(shared, &mut group).await; return Ok(()) }
                n = stream.next() => n,
                _ = tokio::time::sleep(GROUP_WAIT) => { store(shared, &mut group).await; continue; }
            }
        };
        let Some(item) = next else {
            store(shared, &mut group).await;
            anyhow::bail!("collectord closed the stream");
        };
        match item?.item {
            Some(Item::Hello(h)) => {
                *shared.stream_id.lock().unwrap_or_else(|p| p.into_inner()) = h.stream_id
            }
            Some(Item::Gap(g)) => {
                store(shared, &mut group).await;
                report_gap(&g, resume.as_ref());
                let missed = g.missed;
                if let Err(e) = shared.with_queue(move |q| q.add_gap(missed)).await {
                    tracing::warn!(error = %e, "cannot record a gap");
                }
            }
            Some(Item::Event(e)) => {
                let payload = serde_json::to_vec(&EventJson(&e))?;
                group.push(NewEvent {
                    stream_id: e.stream_id.clone(),
                    seq: e.seq,
                    timestamp_ns: e.timestamp_ns,
                    payload,
                    severity: e.severity(),
                });
                if group.len() >= GROUP {
                    store(shared, &mut group).await;
                }
            }
            None => {}
        }
    }
}

/// Says what a gap lost, in the operator's terms.
fn report_gap(g: &Gap, resume: Option<&(String, u64)>) {
    let range = if g.first_missed_seq > 0 {
        format!(" (seq {}..={})", g.first_missed_seq, g.last_missed_seq)
    } else {
        String::new()
    };
    match g.reason() {
        GapReason::CollectorRestarted => {
            let before = match resume {
                Some((stream, seq)) => format!(
                    "whatever its previous run (stream {stream}) produced after seq {seq}, the last stored here, \
                     and had not sent was in its memory and is lost"
                ),
                None => "what its previous run had not sent is lost".to_owned(),
            };
            if g.missed == 0 {
                tracing::info!("collectord restarted: {before}; nothing of its new run was missed");
            } else {
                tracing::warn!(
                    missed = g.missed,
                    "collectord restarted: {before}; {} events of its new run were no longer held{range}",
                    g.missed
                );
            }
        }
        GapReason::SlowSubscriber => tracing::warn!(
            missed = g.missed,
            "this shipper fell behind collectord: {} events were skipped{range}",
            g.missed
        ),
        GapReason::RingOverrun | GapReason::Unspecified => tracing::warn!(
            missed = g.missed,
            "collectord no longer held {} events this shipper had not stored{range}: they are lost",
            g.missed
        ),
    }
}

/// Writes the group to the queue, retrying while the disk is full: until it is on disk, the
/// stream is not read further (the collector skips this reader ahead if that lasts, and says so).
async fn store(shared: &Arc<Shared>, group: &mut Vec<NewEvent>) {
    if group.is_empty() {
        return;
    }
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let events = std::mem::take(group);
        let last = events.last().map(|e| e.seq).unwrap_or(0);
        let (result, events) = shared
            .queue
            .run(move |q| (q.push(&events), events))
            .await
            .unwrap_or_else(|e| (Err(e), Vec::new()));
        match result {
            Ok(dropped) => {
                if dropped > 0 {
                    tracing::warn!(
                        dropped,
                        "queue full: the oldest events were dropped (counted in health)"
                    );
                }
                if shared.state() == ShipperState::DiskError {
                    shared.set_state(ShipperState::Idle);
                    tracing::info!("the queue accepts writes again");
                }
                shared.last_seq.store(last, Ordering::Relaxed);
                shared.queued.notify_one();
                return;
            }
            Err(e) => {
                if shared.state() != ShipperState::DiskError {
                    tracing::error!(error = %e, "cannot write to the queue; holding events and retrying");
                }
                shared.set_state(ShipperState::DiskError);
                shared.set_error(format!("queue: {e}"));
                *group = events;
                if shared.shutdown.is_cancelled() {
                    return;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
