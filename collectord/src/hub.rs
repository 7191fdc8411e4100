//! The event hub: numbers every event, keeps the most recent ones in a ring for replay, and fans
//! them out to subscribers without ever letting a slow one hold up the monitors.
//!
//! Publishing takes a short lock, appends to the ring and sends on a `broadcast` channel whose
//! capacity is the ring's. Each subscriber has its own task that forwards from the broadcast
//! receiver into a small bounded channel: when a subscriber falls more than a ring's worth
//! behind, the broadcast receiver reports how many it skipped and the subscriber is told through
//! a `Gap` — loss is counted and visible, never silent, and never slows anyone else.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sec_tracker_proto::v1::{
    subscribe_response::Item, Event, EventType, Gap, GapReason, Severity, StreamHello,
    SubscribeRequest, SubscribeResponse,
};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// Events queued per subscriber between its forwarding task and its transport.
const SUBSCRIBER_QUEUE: usize = 256;

pub struct Hub {
    stream_id: String,
    capacity: usize,
    inner: Mutex<Ring>,
    live: broadcast::Sender<Arc<Event>>,
    subscribers: AtomicUsize,
    skipped: AtomicU64,
}

struct Ring {
    events: VecDeque<Arc<Event>>,
    next_seq: u64,
}

/// What a new subscriber gets, decided atomically with respect to publishing.
struct Attach {
    hello: StreamHello,
    gap: Option<Gap>,
    replay: Vec<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
}

impl Hub {
    pub fn new(capacity: usize) -> Arc<Hub> {
        let capacity = capacity.max(1);
        let (live, _) = broadcast::channel(capacity);
        Arc::new(Hub {
            stream_id: new_stream_id(),
            capacity,
            inner: Mutex::new(Ring {
                events: VecDeque::with_capacity(capacity.min(65_536)),
                next_seq: 1,
            }),
            live,
            subscribers: AtomicUsize::new(0),
            skipped: AtomicU64::new(0),
        })
    }

    /// Random per collector start, so a subscriber can tell a restart from a gap.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Numbers `event`, keeps it, and hands it to every live subscriber. Never blocks on them.
    pub fn publish(&self, mut event: Event) -> u64 {
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        event.seq = seq;
        event.stream_id.clone_from(&self.stream_id);
        let event = Arc::new(event);
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(Arc::clone(&event));
        // An error only means nobody is subscribed right now.
        let _ = self.live.send(event);
        seq
    }

    /// (oldest retained seq, latest seq, retained count); 0 for none.
    pub fn bounds(&self) -> (u64, u64, usize) {
        let ring = self.lock();
        let oldest = ring.events.front().map_or(0, |e| e.seq);
        (oldest, ring.next_seq - 1, ring.events.len())
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Events skipped for slow subscribers, over all of them, since start.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding this lock leaves the ring consistent (every mutation is a single
        // push/pop), so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn attach(&self, req: &SubscribeRequest) -> Attach {
        let ring = self.lock();
        let live = self.live.subscribe();
        let latest = ring.next_seq - 1;
        let oldest = ring.events.front().map_or(latest + 1, |e| e.seq);
        let hello = StreamHello {
            stream_id: self.stream_id.clone(),
            oldest_seq: if ring.events.is_empty() { 0 } else { oldest },
            latest_seq: latest,
        };
        let resuming = req.after_seq > 0 || !req.stream_id.is_empty();
        let same_stream = req.stream_id.is_empty() || req.stream_id == self.stream_id;
        let mut gap = None;
        // Where replay starts: the first seq the subscriber has not seen.
        let from = if !resuming {
            if req.replay {
                0
            } else {
                latest + 1
            }
        } else if !same_stream {
            // The collector restarted: everything of this stream is new to the subscriber.
            let missed = oldest.saturating_sub(1);
            gap = Some(Gap {
                reason: GapReason::CollectorRestarted as i32,
                missed,
                first_missed_seq: if missed > 0 { 1 } else { 0 },
                last_missed_seq: missed,
                previous_stream_id: req.stream_id.clone(),
            });
            0
        } else {
            let from = req.after_seq.saturating_add(1);
            if from < oldest && from <= latest {
                let last = oldest - 1;
                gap = Some(Gap {
                    reason: GapReason::RingOverrun as i32,
                    missed: last - from + 1,
                    first_missed_seq: from,
                    last_missed_seq: last,
                    previous_stream_id: String::new(),
                });
            }
            from
        };
        let replay = ring
            .events
            .iter()
            .filter(|e| e.seq >= from)
            .cloned()
            .collect();
        Attach {
            hello,
            gap,
            replay,
            live,
        }
    }

    /// A stream of responses for one subscriber: hello, an optional gap, the replay, then live
    /// events, all filtered by the request. Used by the gRPC service and by in-process readers.
    pub fn subscribe(self: &Arc<Self>, req: SubscribeRequest) -> ReceiverStream<SubscribeResponse> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let attach = self.attach(&req);
        let hub = Arc::clone(self);
        hub.subscribers.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let filter = Filter::new(&req);
            forward(&hub, attach, &filter, &tx).await;
            hub.subscribers.fetch_sub(1, Ordering::Relaxed);
        });
        ReceiverStream::new(rx)
    }
}

async fn forward(hub: &Hub, attach: Attach, filter: &Filter, tx: &mpsc::Sender<SubscribeResponse>) {
    let Attach {
        hello,
        gap,
        replay,
        mut live,
    } = attach;
    if tx.send(item(Item::Hello(hello))).await.is_err() {
        return;
    }
    if let Some(gap) = gap {
        if tx.send(item(Item::Gap(gap))).await.is_err() {
            return;
        }
    }
    let mut last_sent = 0u64;
    let mut last_log: Option<std::time::Instant> = None;
    let mut skipped_since_log = 0u64;
    for e in replay {
        last_sent = e.seq;
        if filter.accepts(&e) && tx.send(event_item(&e)).await.is_err() {
            return;
        }
    }
    loop {
        match live.recv().await {
            Ok(e) => {
                if e.seq <= last_sent {
                    continue; // already replayed
                }
                last_sent = e.seq;
                if filter.accepts(&e) && tx.send(event_item(&e)).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                hub.skipped.fetch_add(n, Ordering::Relaxed);
                // At most one line a minute per subscriber: the count is in status and the gap.
                skipped_since_log += n;
                if last_log.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
                    tracing::warn!(
                        skipped = skipped_since_log,
                        "a subscriber read too slowly and was skipped ahead"
                    );
                    skipped_since_log = 0;
                    last_log = Some(std::time::Instant::now());
                }
                let gap = Gap {
                    reason: GapReason::SlowSubscriber as i32,
                    missed: n,
                    first_missed_seq: last_sent + 1,
                    last_missed_seq: last_sent + n,
                    previous_stream_id: String::new(),
                };
                last_sent += n;
                if tx.send(item(Item::Gap(gap))).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn item(i: Item) -> SubscribeResponse {
    SubscribeResponse { item: Some(i) }
}

fn event_item(e: &Event) -> SubscribeResponse {
    item(Item::Event(e.clone()))
}

/// Server-side filter by type and minimum severity.
struct Filter {
    types: Vec<i32>,
    min_severity: i32,
}

impl Filter {
    fn new(req: &SubscribeRequest) -> Filter {
        Filter {
            types: req
                .types
                .iter()
                .copied()
                .filter(|t| *t != EventType::Unspecified as i32)
                .collect(),
            min_severity: req.min_severity,
        }
    }

    fn accepts(&self, e: &Event) -> bool {
        (self.types.is_empty() || self.types.contains(&e.r#type))
            && e.severity >= self.min_severity.max(Severity::Info as i32)
    }
}

fn new_stream_id() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
