//! The fallback: diff the set of `/proc` pids every `scan_interval`. It misses every process
//! that lives less than one interval, which is why it is only used when the connector cannot be
//! opened, and announced as such.

use std::collections::HashSet;

use super::tracker::{list_pids, Tracker};
use crate::monitors::MonitorContext;

pub(super) async fn run(ctx: MonitorContext) -> anyhow::Result<()> {
    let max_cmdline = ctx.config.monitoring.max_cmdline_bytes as usize;
    let interval = ctx.config.monitoring.scan_interval;
    let ctx2 = ctx.clone();
    let processes = std::sync::Arc::clone(&ctx.processes);
    let mut tracker = tokio::task::spawn_blocking(move || {
        let mut t = Tracker::new(max_cmdline, processes);
        t.seed_from_proc();
        t
    })
    .await?;
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let c = ctx2.clone();
        tracker = tokio::task::spawn_blocking(move || {
            scan(&mut tracker, &c);
            tracker
        })
        .await?;
    }
}

fn scan(tracker: &mut Tracker, ctx: &MonitorContext) {
    let now = sec_tracker_proto::json::now_ns();
    let live: HashSet<u32> = list_pids().into_iter().collect();
    let gone: Vec<u32> = tracker.known_pids().filter(|p| !live.contains(p)).collect();
    for pid in gone {
        ctx.emit(tracker.exit(pid, None, now));
    }
    let mut new: Vec<u32> = live.into_iter().filter(|p| !tracker.is_known(*p)).collect();
    // Parents (lower pids, mostly) first, so that children find their parent's node.
    new.sort_unstable();
    for pid in new {
        ctx.emit(tracker.exec(pid, now));
    }
}
