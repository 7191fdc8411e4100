use super::*;
use futures_util::StreamExt;
use sec_tracker_proto::v1::subscribe_response::Item;
use std::time::Duration;

/// A hub whose ring holds exactly `events` events, with no flood limit in the way.
fn hub(events: usize) -> Arc<Hub> {
    Hub::new(
        RingLimits {
            min_events: events,
            max_bytes: 0,
        },
        FloodLimits {
            per_source: u64::MAX,
            window: Duration::from_secs(3600),
        },
    )
}

fn ev(t: EventType, sev: Severity, msg: &str) -> Event {
    Event {
        r#type: t as i32,
        severity: sev as i32,
        message: msg.into(),
        ..Default::default()
    }
}

async fn next(s: &mut (impl Stream<Item = SubscribeResponse> + Unpin)) -> Item {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("timed out waiting for the stream")
        .expect("stream ended")
        .item
        .expect("empty item")
}

async fn next_event(s: &mut (impl Stream<Item = SubscribeResponse> + Unpin)) -> Event {
    match next(s).await {
        Item::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn seq_is_strictly_increasing_and_stamped_with_the_stream() {
    let hub = self::hub(10);
    let a = hub.publish(ev(EventType::Process, Severity::Info, "a"));
    let b = hub.publish(ev(EventType::Process, Severity::Info, "b"));
    assert_eq!((a, b), (Some(1), Some(2)));
    let st = hub.stats();
    assert_eq!((st.oldest_seq, st.latest_seq, st.buffered), (1, 2, 2));
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_events_then_live() {
    let hub = self::hub(100);
    for i in 0..10 {
        hub.publish(ev(EventType::Process, Severity::Info, &format!("e{i}")));
    }
    let mut s = hub.subscribe(SubscribeRequest {
        after_seq: 4,
        stream_id: hub.stream_id().to_owned(),
        ..Default::default()
    });
    match next(&mut s).await {
        Item::Hello(h) => assert_eq!((h.oldest_seq, h.latest_seq), (1, 10)),
        other => panic!("{other:?}"),
    }
    for want in 5..=10 {
        assert_eq!(next_event(&mut s).await.seq, want);
    }
    hub.publish(ev(EventType::Process, Severity::Info, "live"));
    let e = next_event(&mut s).await;
    assert_eq!((e.seq, e.message.as_str()), (11, "live"));
}

#[tokio::test]
async fn overrun_is_reported_with_the_exact_count() {
    let hub = self::hub(16);
    for _ in 0..100 {
        hub.publish(ev(EventType::Process, Severity::Info, "x"));
    }
    let mut s = hub.subscribe(SubscribeRequest {
        after_seq: 10,
        stream_id: hub.stream_id().to_owned(),
        ..Default::default()
    });
    assert!(matches!(next(&mut s).await, Item::Hello(_)));
    match next(&mut s).await {
        Item::Gap(g) => {
            assert_eq!(g.reason, GapReason::RingOverrun as i32);
            // retained: 85..=100, so 11..=84 are gone
            assert_eq!(
                (g.missed, g.first_missed_seq, g.last_missed_seq),
                (74, 11, 84)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(next_event(&mut s).await.seq, 85);
}

#[tokio::test]
async fn another_stream_id_is_reported_as_a_restart() {
    let hub = self::hub(4);
    for _ in 0..6 {
        hub.publish(ev(EventType::Process, Severity::Info, "x"));
    }
    let mut s = hub.subscribe(SubscribeRequest {
        after_seq: 1234,
        stream_id: "old-stream".into(),
        ..Default::default()
    });
    assert!(matches!(next(&mut s).await, Item::Hello(_)));
    match next(&mut s).await {
        Item::Gap(g) => {
            assert_eq!(g.reason, GapReason::CollectorRestarted as i32);
            assert_eq!(g.previous_stream_id, "old-stream");
            assert_eq!(g.missed, 2, "seq 1 and 2 of the new stream are gone");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(next_event(&mut s).await.seq, 3);
}

#[tokio::test]
async fn filters_by_type_and_minimum_severity() {
    let hub = self::hub(100);
    let mut s = hub.subscribe(SubscribeRequest {
        types: vec![EventType::Auth as i32],
        min_severity: Severity::Warning as i32,
        ..Default::default()
    });
    assert!(matches!(next(&mut s).await, Item::Hello(_)));
    hub.publish(ev(EventType::Auth, Severity::Info, "info auth"));
    hub.publish(ev(EventType::Process, Severity::Critical, "crit process"));
    hub.publish(ev(EventType::Auth, Severity::Critical, "crit auth"));
    assert_eq!(next_event(&mut s).await.message, "crit auth");
}

#[tokio::test]
async fn a_stalled_subscriber_is_skipped_ahead_without_blocking_publishers_or_others() {
    let hub = self::hub(8);
    let mut stalled = hub.subscribe(SubscribeRequest::default());
    let mut healthy = hub.subscribe(SubscribeRequest::default());
    assert!(matches!(next(&mut stalled).await, Item::Hello(_)));
    assert!(matches!(next(&mut healthy).await, Item::Hello(_)));
    // Far more than the subscriber queue plus the ring: publish must not block.
    let total = (SUBSCRIBER_QUEUE + 8) as u64 * 4;
    for i in 0..total {
        hub.publish(ev(EventType::Process, Severity::Info, &i.to_string()));
        // The healthy subscriber keeps up.
        assert_eq!(next_event(&mut healthy).await.seq, i + 1);
    }
    // The stalled one now reads: what it receives plus what it was told it missed is everything.
    let mut seen = 0u64;
    let mut missed = 0u64;
    let mut last = 0u64;
    while last < total {
        match next(&mut stalled).await {
            Item::Event(e) => {
                assert!(e.seq > last);
                last = e.seq;
                seen += 1;
            }
            Item::Gap(g) => {
                assert_eq!(g.reason, GapReason::SlowSubscriber as i32);
                missed += g.missed;
                last = g.last_missed_seq;
            }
            Item::Hello(_) => panic!("second hello"),
        }
    }
    assert!(missed > 0, "the stalled subscriber must have been skipped");
    assert_eq!(seen + missed, total);
    assert_eq!(hub.skipped_total(), missed);
}

/// A restarting shipper finds the CRITICAL event a flood of INFO events came after, and is told
/// exactly how many INFO events the ring let go meanwhile.
#[tokio::test]
async fn a_flood_of_info_cannot_push_a_critical_event_out_before_a_reader_returns() {
    let hub = Hub::new(
        RingLimits {
            min_events: 1,
            max_bytes: 64 * 1024,
        },
        FloodLimits {
            per_source: u64::MAX,
            window: Duration::from_secs(3600),
        },
    );
    let last_read = hub
        .publish(ev(EventType::Process, Severity::Info, "before"))
        .unwrap();
    for i in 0..5000 {
        hub.publish(ev(EventType::File, Severity::Info, &format!("flood {i}")));
        if i == 2500 {
            hub.publish(ev(EventType::Process, Severity::Critical, "the evidence"));
        }
    }
    let st = hub.stats();
    assert!(st.buffered_bytes <= 64 * 1024);
    assert!(st.evicted.info > 4000, "{:?}", st.evicted);
    assert_eq!((st.evicted.warning, st.evicted.critical), (0, 0));
    let mut s = hub.subscribe(SubscribeRequest {
        after_seq: last_read,
        stream_id: hub.stream_id().to_owned(),
        ..Default::default()
    });
    assert!(matches!(next(&mut s).await, Item::Hello(_)));
    let (mut events, mut missed, mut critical) = (0u64, 0u64, 0);
    while events + missed < st.latest_seq - last_read {
        match next(&mut s).await {
            Item::Event(e) => {
                events += 1;
                if e.message == "the evidence" {
                    critical += 1;
                }
            }
            Item::Gap(g) => {
                assert_eq!(g.reason, GapReason::RingOverrun as i32);
                missed += g.missed;
            }
            Item::Hello(_) => panic!("second hello"),
        }
    }
    assert_eq!(critical, 1, "the CRITICAL event is replayed");
    // Every evicted event after the one the reader had is counted, once.
    assert_eq!(missed, st.evicted.info - 1);
    assert_eq!(events, st.buffered);
}

/// Events of a flood are counted, not published: publish says so and status counts them.
#[tokio::test]
async fn a_flooding_source_is_held_back_and_counted() {
    let hub = Hub::new(
        RingLimits {
            min_events: 100_000,
            max_bytes: 0,
        },
        FloodLimits {
            per_source: 10,
            window: Duration::from_secs(3600),
        },
    );
    let file = |sev: Severity| Event {
        details: Some(sec_tracker_proto::v1::event::Details::File(
            sec_tracker_proto::v1::FileEvent {
                path: b"/srv/uploads/x".to_vec(),
                ..Default::default()
            },
        )),
        ..ev(EventType::File, sev, "File renamed")
    };
    let published = (0..100)
        .filter(|_| hub.publish(file(Severity::Info)).is_some())
        .count();
    assert_eq!(published, 10);
    assert!(hub.publish(file(Severity::Critical)).is_some());
    let st = hub.stats();
    assert_eq!(
        (
            st.suppressed.info,
            st.suppressed.warning,
            st.suppressed.critical
        ),
        (90, 0, 0)
    );
    assert_eq!(st.latest_seq, 11);
}

/// A WARNING kept among INFO events the ring let go: the resuming reader gets each run of
/// missing seqs just before the event that follows it, so every gap and event agree in order.
#[tokio::test]
async fn gaps_come_in_order_between_the_events_kept() {
    let hub = Hub::new(
        RingLimits {
            min_events: 1,
            max_bytes: 4 * 1024,
        },
        FloodLimits {
            per_source: u64::MAX,
            window: Duration::from_secs(3600),
        },
    );
    for i in 0..300 {
        let sev = if i == 20 {
            Severity::Warning
        } else {
            Severity::Info
        };
        hub.publish(ev(EventType::Process, sev, &format!("e{i}")));
    }
    let latest = hub.stats().latest_seq;
    let mut s = hub.subscribe(SubscribeRequest {
        after_seq: 1,
        stream_id: hub.stream_id().to_owned(),
        ..Default::default()
    });
    assert!(matches!(next(&mut s).await, Item::Hello(_)));
    let mut at = 1u64; // the last seq accounted for
    while at < latest {
        match next(&mut s).await {
            Item::Gap(g) => {
                assert_eq!(g.first_missed_seq, at + 1, "{g:?}");
                assert_eq!(g.missed, g.last_missed_seq - g.first_missed_seq + 1);
                at = g.last_missed_seq;
            }
            Item::Event(e) => {
                assert_eq!(e.seq, at + 1, "{}", e.message);
                at = e.seq;
            }
            Item::Hello(_) => panic!("second hello"),
        }
    }
}
