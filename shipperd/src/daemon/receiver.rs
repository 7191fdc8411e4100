//! collectord → queues. Subscribes with the resume point the queues keep (`after_seq`,
//! `stream_id`), so a restart of either side continues where it stopped; what the collector can
//! no longer replay comes back as a gap, which is counted. Events are written to every output's
//! queue in groups (one transaction each) before they count as received. With several outputs,
//! the stream resumes after the event the least advanced queue holds, and each queue skips what
//! it already has.

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

/// A queue's resume point: the collector stream and the last seq it holds.
type Resume = Option<(String, u64)>;

pub(super) async fn run(lanes: Vec<Arc<Shared>>, socket: PathBuf) {
    let shared = Arc::clone(&lanes[0]);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shared.shutdown.is_cancelled() {
        match connect(&socket).await {
            Ok(client) => {
                backoff.reset();
                if let Err(e) = follow(&lanes, client).await {
                    tracing::warn!(error = %format!("{e:#}"), "lost the collector stream");
                    for l in &lanes {
                        l.set_error(format!("collector: {e:#}"));
                    }
                }
                for l in &lanes {
                    l.collector_connected.store(false, Ordering::Relaxed);
                }
            }
            Err(e) => {
                // A refused server identity is an attack or a misconfiguration: say it at once.
                if backoff.attempts() >= 5 || e.kind() == io::ErrorKind::PermissionDenied {
                    tracing::warn!(socket = %socket.display(), error = %e, "cannot reach collectord; retrying");
                    for l in &lanes {
                        l.set_error(format!("collector: {e}"));
                    }
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

async fn follow(lanes: &[Arc<Shared>], mut client: CollectorClient<Channel>) -> anyhow::Result<()> {
    let shared = &lanes[0];
    let mut stored: Vec<Resume> = Vec::with_capacity(lanes.len());
    for l in lanes {
        stored.push(l.with_queue(|q| q.resume_point()).await?);
    }
    let resume = common_resume(&stored);
    let request = match &resume {
        Some((stream_id, seq)) => SubscribeRequest {
            after_seq: *seq,
            stream_id: stream_id.clone(),
            ..Default::default()
        },
        // First start (or a new output): take everything the collector still holds.
        None => SubscribeRequest {
            replay: true,
            ..Default::default()
        },
    };
    let mut stream = client.subscribe(request).await?.into_inner();
    for l in lanes {
        l.collector_connected.store(true, Ordering::Relaxed);
    }
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
                _ = shared.shutdown.cancelled() => { store(lanes, &mut stored, &mut group).await; return Ok(()) }
                n = stream.next() => n,
                _ = tokio::time::sleep(GROUP_WAIT) => { store(lanes, &mut stored, &mut group).await; continue; }
            }
        };
        let Some(item) = next else {
            store(lanes, &mut stored, &mut group).await;
            anyhow::bail!("collectord closed the stream");
        };
        match item?.item {
            Some(Item::Hello(h)) => {
                for l in lanes {
                    *l.stream_id.lock().unwrap_or_else(|p| p.into_inner()) = h.stream_id.clone();
                }
            }
            Some(Item::Gap(g)) => {
                store(lanes, &mut stored, &mut group).await;
                report_gap(&g, resume.as_ref());
                for l in lanes {
                    let missed = g.missed;
                    if let Err(e) = l.with_queue(move |q| q.add_gap(missed)).await {
                        tracing::warn!(output = l.output.name(), error = %e, "cannot record a gap");
                    }
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
                    store(lanes, &mut stored, &mut group).await;
                }
            }
            None => {}
        }
    }
}

/// Where to resume so that no queue misses anything: after the least advanced queue's last
/// event; from the start of what the collector holds when a queue has none, or when the queues
/// hold different collector streams (each then skips what it has, see [`store`]).
fn common_resume(points: &[Resume]) -> Resume {
    let mut out: Resume = None;
    for p in points {
        let (stream, seq) = p.as_ref()?;
        match &out {
            None => out = Some((stream.clone(), *seq)),
            Some((s, q)) if s == stream => {
                if seq < q {
                    out = Some((stream.clone(), *seq));
                }
            }
            Some(_) => return None,
        }
    }
    out
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

/// Writes the group to every output's queue, retrying while the disk is full: until it is on
/// disk, the stream is not read further (the collector skips this reader ahead if that lasts,
/// and says so). A queue gets only the events after its own resume point (`stored`), so a
/// stream resumed for a less advanced queue adds no duplicates to the others.
async fn store(lanes: &[Arc<Shared>], stored: &mut [Resume], group: &mut Vec<NewEvent>) {
    if group.is_empty() {
        return;
    }
    let last = group.last().map(|e| (e.stream_id.clone(), e.seq));
    let mut all = Some(std::mem::take(group));
    for (i, lane) in lanes.iter().enumerate() {
        // The last lane takes the group itself: one output costs no copy.
        let mut events = if i + 1 == lanes.len() {
            all.take().unwrap_or_default()
        } else {
            all.clone().unwrap_or_default()
        };
        if let Some((stream, seq)) = &stored[i] {
            events.retain(|e| e.stream_id != *stream || e.seq > *seq);
        }
        if !events.is_empty() {
            store_in(lane, &mut events).await;
            if !events.is_empty() {
                // Shutdown while the disk failed: what is not stored is replayed next time.
                return;
            }
        }
        stored[i] = last.clone();
    }
}

/// Writes `events` to one lane's queue, retrying while the disk is full; `events` is left
/// empty once they are stored (or holds them when shutdown came first).
async fn store_in(shared: &Arc<Shared>, group: &mut Vec<NewEvent>) {
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
                        output = shared.output.name(),
                        dropped,
                        "queue full: the oldest events were dropped (counted in health)"
                    );
                }
                if shared.state() == ShipperState::DiskError {
                    shared.set_state(ShipperState::Idle);
                    tracing::info!(
                        output = shared.output.name(),
                        "the queue accepts writes again"
                    );
                }
                shared.last_seq.store(last, Ordering::Relaxed);
                shared.queued.notify_one();
                return;
            }
            Err(e) => {
                if shared.state() != ShipperState::DiskError {
                    tracing::error!(output = shared.output.name(), error = %e, "cannot write to the queue; holding events and retrying");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stream: &str, seq: u64) -> Resume {
        Some((stream.into(), seq))
    }

    #[test]
    fn the_stream_resumes_for_the_least_advanced_queue() {
        assert_eq!(common_resume(&[at("a", 10), at("a", 7)]), at("a", 7));
        assert_eq!(common_resume(&[at("a", 10)]), at("a", 10));
        // A new output's empty queue, or queues of different collector runs: everything held.
        assert_eq!(common_resume(&[at("a", 10), None]), None);
        assert_eq!(common_resume(&[at("a", 10), at("b", 3)]), None);
    }
}
