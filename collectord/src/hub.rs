//! The event hub: numbers every event, keeps the recent ones for replay, and hands them to
//! subscribers without ever letting a slow one hold up the monitors.
//!
//! Publishing takes a short lock: the flood check ([`flood`]), a seq, the event encoded once, and
//! a push into the [`ring`] (bounded in bytes, least severe out first). Every subscriber is a
//! task with a cursor into that ring: it reads what is there, sends it into a small bounded
//! channel towards its transport, and sleeps until the next publish. A subscriber that falls
//! behind loses only what the ring evicted under its cursor, and is told exactly how much with
//! a `Gap`: loss is counted and visible, never silent, and never slows anyone else.

mod flood;
mod ring;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::{Stream, StreamExt};
use prost::Message;
use sec_tracker_proto::v1::{
    event, subscribe_response_encoded::Item, Event, EventCount, EventType, Gap, GapReason,
    Severity, SeverityCounts, StreamHello, SubscribeRequest, SubscribeResponse,
    SubscribeResponseEncoded,
};
use sec_tracker_proto::Config;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

use flood::Flood;
pub use flood::FloodLimits;
pub use ring::RingLimits;
use ring::{Missing, Piece, Ring, Stored};

/// Events queued per subscriber between its task and its transport.
const SUBSCRIBER_QUEUE: usize = 256;
/// Events a subscriber takes from the ring per lock.
const READ_CHUNK: usize = 256;

pub struct Hub {
    stream_id: String,
    inner: Mutex<Inner>,
    /// Woken at every publish; subscribers wait on it when they have read everything.
    published: Notify,
    subscribers: AtomicUsize,
    skipped: AtomicU64,
}

struct Inner {
    ring: Ring,
    flood: Flood,
    /// Events published since the start, by (type, severity) as their protobuf numbers.
    published: BTreeMap<(i32, i32), u64>,
}

/// The ring's and the flood check's state, for `status`.
#[derive(Debug, Clone, Default)]
pub struct HubStats {
    pub oldest_seq: u64,
    pub latest_seq: u64,
    pub buffered: u64,
    pub buffered_bytes: u64,
    pub limits: Option<RingLimits>,
    pub evicted: SeverityCounts,
    pub suppressed: SeverityCounts,
    pub flood_summaries: u64,
    pub flood_pending: u64,
    pub published: Vec<EventCount>,
}

/// What a new subscriber starts from, decided atomically with respect to publishing.
struct Attach {
    hello: StreamHello,
    /// Told at once: what is gone before the first event the subscriber will get.
    gap: Option<Gap>,
    /// The first seq to read.
    from: u64,
    /// Why later missing seqs are missing, until the subscriber has caught up once.
    catching_up: GapReason,
}

impl Hub {
    pub fn new(ring: RingLimits, flood: FloodLimits) -> Arc<Hub> {
        Arc::new(Hub {
            stream_id: new_stream_id(),
            inner: Mutex::new(Inner {
                ring: Ring::new(ring),
                flood: Flood::new(flood, Instant::now()),
                published: BTreeMap::new(),
            }),
            published: Notify::new(),
            subscribers: AtomicUsize::new(0),
            skipped: AtomicU64::new(0),
        })
    }

    /// The hub sized by `agent.buffer_size`/`buffer_bytes` and `monitoring.flood_*`.
    pub fn from_config(config: &Config) -> Arc<Hub> {
        Hub::new(
            RingLimits {
                min_events: usize::try_from(config.agent.buffer_size).unwrap_or(usize::MAX),
                max_bytes: usize::try_from(config.agent.buffer_bytes).unwrap_or(usize::MAX),
            },
            FloodLimits {
                per_source: config.monitoring.flood_limit,
                window: config.monitoring.flood_window,
            },
        )
    }

    /// Random per collector start, so a subscriber can tell a restart from a gap.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// Numbers `event`, keeps it, and wakes the subscribers; never blocks on them. Returns its
    /// seq, or None when the event was held back as part of a flood (and counted).
    pub fn publish(&self, event: Event) -> Option<u64> {
        let now = Instant::now();
        let mut inner = self.lock();
        let summaries = inner.flood.summaries_due(now);
        for s in summaries {
            inner.keep(s, &self.stream_id);
        }
        let seq = inner
            .flood
            .admit(&event)
            .then(|| inner.keep(event, &self.stream_id));
        drop(inner);
        self.published.notify_waiters();
        seq
    }

    /// Publishes the flood summaries whose window is over, and gives back memory a flood left
    /// behind. Called every second, so that a summary does not wait for the next event.
    pub fn tick(&self) {
        let mut inner = self.lock();
        let summaries = inner.flood.summaries_due(Instant::now());
        let any = !summaries.is_empty();
        for s in summaries {
            inner.keep(s, &self.stream_id);
        }
        inner.ring.trim();
        drop(inner);
        if any {
            self.published.notify_waiters();
        }
    }

    pub fn stats(&self) -> HubStats {
        let inner = self.lock();
        let latest = inner.ring.next_seq() - 1;
        HubStats {
            oldest_seq: inner.ring.oldest().unwrap_or(0),
            latest_seq: latest,
            buffered: inner.ring.len() as u64,
            buffered_bytes: inner.ring.bytes() as u64,
            limits: Some(inner.ring.limits()),
            evicted: inner.ring.evicted(),
            suppressed: inner.flood.suppressed(),
            flood_summaries: inner.flood.summaries(),
            flood_pending: inner.flood.pending(),
            published: inner
                .published
                .iter()
                .map(|(&(r#type, severity), &count)| EventCount {
                    r#type,
                    severity,
                    count,
                })
                .collect(),
        }
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Events live subscribers missed because they read too slowly, over all of them.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation under this lock leaves the ring consistent (a push, then pops), so a
        // poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn attach(&self, req: &SubscribeRequest) -> Attach {
        let inner = self.lock();
        let next_seq = inner.ring.next_seq();
        let latest = next_seq - 1;
        let oldest = inner.ring.oldest();
        let hello = StreamHello {
            stream_id: self.stream_id.clone(),
            oldest_seq: oldest.unwrap_or(0),
            latest_seq: latest,
        };
        let resuming = req.after_seq > 0 || !req.stream_id.is_empty();
        let same_stream = req.stream_id.is_empty() || req.stream_id == self.stream_id;
        // Where the subscriber's reading starts, and why what is gone from there is gone.
        let (from, reason) = if !resuming {
            if req.replay {
                // Everything of this stream: what is no longer held is told as a gap, so a
                // shipper's first start counts what the collector lost before it came.
                (1, GapReason::RingOverrun)
            } else {
                (next_seq, GapReason::SlowSubscriber)
            }
        } else if !same_stream {
            (1, GapReason::CollectorRestarted)
        } else {
            (req.after_seq.saturating_add(1), GapReason::RingOverrun)
        };
        // What is gone before the first event still held is told at once (for a restart, even
        // when nothing is: the subscriber must learn that the stream changed).
        let first_held = oldest.map_or(next_seq, |o| o.max(from));
        let mut leading = Missing::default();
        if from < first_held && from <= latest {
            leading = Missing {
                count: first_held.min(next_seq) - from,
                first: from,
                last: first_held.min(next_seq) - 1,
            };
        }
        let gap = (leading.count > 0 || reason == GapReason::CollectorRestarted).then(|| {
            gap(
                reason,
                leading,
                if same_stream { "" } else { &req.stream_id },
            )
        });
        Attach {
            hello,
            gap,
            from: if leading.count > 0 {
                leading.last + 1
            } else {
                from
            },
            catching_up: if reason == GapReason::CollectorRestarted {
                GapReason::RingOverrun
            } else {
                reason
            },
        }
    }

    /// A stream for one subscriber, as collectord serves it: hello, an optional gap, the replay,
    /// then live events, all filtered by the request, each event as encoded at publish.
    pub fn subscribe_encoded(
        self: &Arc<Self>,
        req: SubscribeRequest,
    ) -> ReceiverStream<SubscribeResponseEncoded> {
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

    /// The same stream decoded, for readers in this process (`sec-trackerctl` without a daemon).
    pub fn subscribe(
        self: &Arc<Self>,
        req: SubscribeRequest,
    ) -> impl Stream<Item = SubscribeResponse> + Send + Unpin + 'static {
        self.subscribe_encoded(req).filter_map(|r| {
            // The hub encoded these itself: a failure would be a bug, and is skipped.
            std::future::ready(r.decode().ok())
        })
    }
}

impl Inner {
    /// Numbers, stamps, encodes and keeps one event.
    fn keep(&mut self, mut event: Event, stream_id: &str) -> u64 {
        let seq = self.ring.take_seq();
        event.seq = seq;
        event.stream_id = stream_id.to_owned();
        let encoded = event.encode_to_vec().into();
        *self
            .published
            .entry((event.r#type, event.severity))
            .or_default() += 1;
        self.ring.push(Stored {
            seq,
            r#type: event.r#type,
            severity: event.severity,
            accounting: matches!(event.details, Some(event::Details::Agent(_))),
            encoded,
        });
        seq
    }
}

async fn forward(
    hub: &Hub,
    attach: Attach,
    filter: &Filter,
    tx: &mpsc::Sender<SubscribeResponseEncoded>,
) {
    let Attach {
        hello,
        gap: first_gap,
        from,
        catching_up,
    } = attach;
    if tx.send(item(Item::Hello(hello))).await.is_err() {
        return;
    }
    // Told with the first read: what the ring let go between the attach and that read joins it,
    // so that the gap and the first event after it agree exactly.
    let mut first_gap = first_gap;
    let mut next = from;
    let mut reason = catching_up;
    let mut chunk = Vec::with_capacity(READ_CHUNK);
    let mut last_log: Option<Instant> = None;
    let mut skipped_since_log = 0u64;
    loop {
        // Registered before reading, so a publish between the read and the wait is not missed.
        let published = hub.published.notified();
        tokio::pin!(published);
        published.as_mut().enable();
        let read = hub.lock().ring.read(next, READ_CHUNK, &mut chunk);
        next = read.next;
        for piece in chunk.drain(..) {
            let response = match piece {
                Piece::Gone(m) => {
                    // The first run gone joins the gap told at attach when it continues it, so
                    // that a gap and the event after it agree exactly.
                    let g = match first_gap.take() {
                        Some(mut g) if g.missed == 0 || m.first == g.last_missed_seq + 1 => {
                            if g.missed == 0 {
                                g.first_missed_seq = m.first;
                            }
                            g.missed += m.count;
                            g.last_missed_seq = m.last;
                            g
                        }
                        Some(g) => {
                            if tx.send(item(Item::Gap(g))).await.is_err() {
                                return;
                            }
                            gap(reason, m, "")
                        }
                        None => gap(reason, m, ""),
                    };
                    if reason == GapReason::SlowSubscriber {
                        hub.skipped.fetch_add(m.count, Ordering::Relaxed);
                        // At most one line a minute per subscriber: the count is in status and
                        // the gap.
                        skipped_since_log += m.count;
                        if last_log
                            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60))
                        {
                            tracing::warn!(
                                skipped = skipped_since_log,
                                "a subscriber read too slowly and missed events the ring no longer held"
                            );
                            skipped_since_log = 0;
                            last_log = Some(Instant::now());
                        }
                    }
                    item(Item::Gap(g))
                }
                Piece::Event(e) => {
                    if let Some(g) = first_gap.take() {
                        if tx.send(item(Item::Gap(g))).await.is_err() {
                            return;
                        }
                    }
                    if !filter.accepts(&e) {
                        continue;
                    }
                    item(Item::Event(e.encoded))
                }
            };
            if tx.send(response).await.is_err() {
                return;
            }
        }
        if let Some(g) = first_gap.take() {
            if tx.send(item(Item::Gap(g))).await.is_err() {
                return;
            }
        }
        if read.caught_up {
            reason = GapReason::SlowSubscriber;
            tokio::select! {
                _ = published => {}
                _ = tx.closed() => return,
            }
        }
    }
}

fn gap(reason: GapReason, missing: Missing, previous_stream_id: &str) -> Gap {
    Gap {
        reason: reason as i32,
        missed: missing.count,
        first_missed_seq: missing.first,
        last_missed_seq: missing.last,
        previous_stream_id: previous_stream_id.to_owned(),
    }
}

fn item(i: Item) -> SubscribeResponseEncoded {
    SubscribeResponseEncoded { item: Some(i) }
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

    fn accepts(&self, e: &Stored) -> bool {
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
