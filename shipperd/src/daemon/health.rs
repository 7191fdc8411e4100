//! Health reports: `POST /api/v1/agent/health` every `agent.report_interval`, with the metrics
//! an operator needs to tell a healthy shipper from a stuck one.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sec_tracker_proto::json::{collector_losses_json, now_ns, shipper_metrics_json};
use sec_tracker_proto::local::client;
use sec_tracker_proto::v1::collector_client::CollectorClient;
use sec_tracker_proto::v1::{
    CollectorStatus, OutputStatus, ShipperState, ShipperStatus, StatusRequest,
};

use super::Shared;
use crate::outputs::Output;
use crate::sender::Outcome;

/// Reports to the management server (the lane whose output it is) about every output.
pub(super) async fn run(lanes: Vec<Arc<Shared>>, collector_socket: PathBuf) {
    let Some(Output::Server(sender)) = lanes
        .iter()
        .map(|l| &l.output)
        .find(|o| matches!(o, Output::Server(_)))
    else {
        return;
    };
    let shared = &lanes[0];
    let mut tick = tokio::time::interval(shared.config.agent.report_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let status = snapshot(&lanes).await;
        let healthy = status.last_error.is_empty()
            && status.collector_connected
            && status.state() != ShipperState::PausedAuth;
        let mut metrics = shipper_metrics_json(&status);
        if let Some(collector) = collector_status(&collector_socket).await {
            metrics["collector"] = collector_losses_json(&collector);
        }
        match sender
            .send_health(if healthy { "healthy" } else { "degraded" }, metrics)
            .await
        {
            Outcome::Delivered => {}
            other => tracing::debug!(outcome = ?other, "health report not delivered"),
        }
    }
}

/// collectord's status (for the health report: what it evicted and held back, the losses the
/// server cannot see in the events themselves; for the metrics). None when collectord does not
/// answer within a second.
pub(super) async fn collector_status(socket: &Path) -> Option<CollectorStatus> {
    let ask = async {
        let channel = client::connect(socket, &client::Trust::collector())
            .await
            .ok()?;
        CollectorClient::new(channel)
            .status(StatusRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
}

/// Everything `status` and the health report show, read now: the first output's figures at
/// the top (the management server's when there is one), every output's in `outputs`.
pub(super) async fn snapshot(lanes: &[Arc<Shared>]) -> ShipperStatus {
    let mut outputs = Vec::with_capacity(lanes.len());
    let mut first = None;
    for lane in lanes {
        let s = lane
            .with_queue(|q| q.stats())
            .await
            .ok()
            .unwrap_or_default();
        first.get_or_insert(s);
        outputs.push(OutputStatus {
            name: lane.output.name().into(),
            target: lane.output.target(),
            state: lane.state() as i32,
            last_error: lane.last_error(),
            last_success_ns: lane.last_success_ns.load(Ordering::Relaxed),
            queue_depth: s.depth,
            queue_bytes: s.bytes,
            oldest_queued_age_seconds: age_seconds(s.oldest_timestamp_ns),
            events_received: s.received_total,
            events_sent: s.sent_total,
            events_dropped: s.dropped_total,
            events_dead_lettered: s.dead_lettered_total,
            batches_sent: lane.batches_sent.load(Ordering::Relaxed),
            batches_resent: lane.batches_resent.load(Ordering::Relaxed),
            queue_path: lane.queue_path.display().to_string(),
            send_seconds: Some(lane.send_seconds.snapshot()),
        });
    }
    let shared = &lanes[0];
    let s = first.unwrap_or_default();
    ShipperStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        uptime_seconds: shared.started.elapsed().as_secs_f64(),
        server_url: match &shared.output {
            Output::Server(_) => shared.config.server.url.clone(),
            other => other.target(),
        },
        collector_connected: shared.collector_connected.load(Ordering::Relaxed),
        collector_stream_id: shared.stream_id(),
        last_received_seq: shared.last_seq.load(Ordering::Relaxed),
        events_received: s.received_total,
        events_sent: s.sent_total,
        events_dropped: s.dropped_total,
        dropped: Some(s.dropped),
        events_dead_lettered: s.dead_lettered_total,
        collector_gaps_missed: s.gaps_missed_total,
        queue_depth: s.depth,
        queue_bytes: s.bytes,
        oldest_queued_age_seconds: age_seconds(s.oldest_timestamp_ns),
        last_success_ns: shared.last_success_ns.load(Ordering::Relaxed),
        last_error: shared.last_error(),
        state: shared.state() as i32,
        rss_bytes: sec_tracker_proto::daemon::own_rss_bytes(),
        batches_sent: shared.batches_sent.load(Ordering::Relaxed),
        batches_resent: shared.batches_resent.load(Ordering::Relaxed),
        send_seconds: Some(shared.send_seconds.snapshot()),
        queue_path: shared.queue_path.display().to_string(),
        outputs,
    }
}

fn age_seconds(oldest_ns: Option<i64>) -> f64 {
    oldest_ns.map_or(0.0, |t| ((now_ns() - t).max(0) as f64) / 1e9)
}
