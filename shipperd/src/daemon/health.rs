//! Health reports: `POST /api/v1/agent/health` every `agent.report_interval`, with the metrics
//! an operator needs to tell a healthy shipper from a stuck one.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use sec_tracker_proto::json::{now_ns, rfc3339_seconds};
use sec_tracker_proto::v1::ShipperStatus;
use serde_json::{json, Value};

use super::Shared;
use crate::sender::{Outcome, Sender};

pub(super) async fn run(shared: Arc<Shared>, sender: Arc<Sender>) {
    let mut tick = tokio::time::interval(shared.config.agent.report_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let status = snapshot(&shared).await;
        let healthy = status.last_error.is_empty()
            && status.collector_connected
            && status.state != "paused_auth";
        match sender
            .send_health(
                if healthy { "healthy" } else { "degraded" },
                metrics(&status),
            )
            .await
        {
            Outcome::Delivered => {}
            other => tracing::debug!(outcome = ?other, "health report not delivered"),
        }
    }
}

/// Everything `status` and the health report show, read now.
pub(super) async fn snapshot(shared: &Shared) -> ShipperStatus {
    let stats = shared.with_queue(|q| q.stats()).await.ok();
    let s = stats.unwrap_or_default();
    ShipperStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        uptime_seconds: shared.started.elapsed().as_secs_f64(),
        server_url: shared.config.server.url.clone(),
        collector_connected: shared.collector_connected.load(Ordering::Relaxed),
        collector_stream_id: shared.stream_id(),
        last_received_seq: shared.last_seq.load(Ordering::Relaxed),
        events_received: s.received_total,
        events_sent: s.sent_total,
        events_dropped: s.dropped_total,
        events_dead_lettered: s.dead_lettered_total,
        collector_gaps_missed: s.gaps_missed_total,
        queue_depth: s.depth,
        queue_bytes: s.bytes,
        oldest_queued_age_seconds: s
            .oldest_timestamp_ns
            .map_or(0.0, |t| ((now_ns() - t).max(0) as f64) / 1e9),
        last_success_ns: shared.last_success_ns.load(Ordering::Relaxed),
        last_error: shared.last_error(),
        state: shared.state().into(),
        rss_bytes: rss_bytes(),
        batches_sent: shared.batches_sent.load(Ordering::Relaxed),
        batches_resent: shared.batches_resent.load(Ordering::Relaxed),
        queue_path: shared.queue_path.display().to_string(),
    }
}

pub fn metrics(s: &ShipperStatus) -> Value {
    json!({
        "uptime_seconds": s.uptime_seconds.round() as u64,
        "events_received": s.events_received,
        "events_sent": s.events_sent,
        "events_dropped": s.events_dropped,
        "events_dead_lettered": s.events_dead_lettered,
        "collector_gaps_missed": s.collector_gaps_missed,
        "queue_depth": s.queue_depth,
        "queue_bytes": s.queue_bytes,
        "oldest_queued_age_seconds": s.oldest_queued_age_seconds,
        "last_success": if s.last_success_ns > 0 { rfc3339_seconds(s.last_success_ns) } else { String::new() },
        "last_error": s.last_error,
        "collector_connected": s.collector_connected,
        "state": s.state,
        "batches_sent": s.batches_sent,
        "batches_resent": s.batches_resent,
        "rss_bytes": s.rss_bytes,
    })
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
