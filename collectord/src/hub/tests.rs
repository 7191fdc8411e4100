use super::*;
use futures_util::StreamExt;
use std::time::Duration;

fn ev(t: EventType, sev: Severity, msg: &str) -> Event {
    Event {
        r#type: t as i32,
        severity: sev as i32,
        message: msg.into(),
        ..Default::default()
    }
}

async fn next(s: &mut ReceiverStream<SubscribeResponse>) -> Item {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("timed out waiting for the stream")
        .expect("stream ended")
        .item
        .expect("empty item")
}

async fn next_event(s: &mut ReceiverStream<SubscribeResponse>) -> Event {
    match next(s).await {
        Item::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn seq_is_strictly_increasing_and_stamped_with_the_stream() {
    let hub = Hub::new(10);
    let a = hub.publish(ev(EventType::Process, Severity::Info, "a"));
    let b = hub.publish(ev(EventType::Process, Severity::Info, "b"));
    assert_eq!((a, b), (1, 2));
    assert_eq!(hub.bounds(), (1, 2, 2));
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_events_then_live() {
    let hub = Hub::new(100);
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
    let hub = Hub::new(16);
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
    let hub = Hub::new(4);
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
    let hub = Hub::new(100);
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
    let hub = Hub::new(8);
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
