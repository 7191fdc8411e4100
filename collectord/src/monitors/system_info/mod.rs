//! System information: host, OS, kernel, CPU, memory, filesystems, interfaces, uptime, load.
//! Published at start and every `agent.report_interval`.

mod collect;

use std::sync::Arc;

use sec_tracker_proto::v1::{event, Event, EventType, MonitorState, Severity};
use tokio::sync::Mutex;

pub use collect::SystemSampler;

use super::{Monitor, MonitorContext, MonitorFuture};

pub const NAME: &str = "system_info";

pub struct SystemInfoMonitor {
    sampler: Arc<Mutex<SystemSampler>>,
}

impl SystemInfoMonitor {
    /// Shares its sampler with `Snapshot`, so CPU usage deltas come from one sequence of samples.
    pub fn new(sampler: Arc<Mutex<SystemSampler>>) -> Self {
        SystemInfoMonitor { sampler }
    }
}

/// Collects now, off the async threads (reading /proc and statvfs can block).
pub async fn collect_now(sampler: &Arc<Mutex<SystemSampler>>) -> sec_tracker_proto::v1::SystemInfo {
    let sampler = Arc::clone(sampler);
    tokio::task::spawn_blocking(move || sampler.blocking_lock().collect())
        .await
        .unwrap_or_default()
}

pub fn system_event(info: sec_tracker_proto::v1::SystemInfo) -> Event {
    let cpu = info.cpu_info.clone().unwrap_or_default();
    let mem = info.memory_info.unwrap_or_default();
    let load = info.load_average.unwrap_or_default();
    Event {
        timestamp_ns: info.timestamp_ns,
        r#type: EventType::System as i32,
        severity: Severity::Info as i32,
        source: NAME.into(),
        message: format!(
            "System information: {} CPU {:.1}% memory {:.1}% load {:.2} {:.2} {:.2}",
            info.hostname, cpu.usage_percent, mem.usage_percent, load.one, load.five, load.fifteen
        ),
        details: Some(event::Details::System(info)),
        ..Default::default()
    }
}

impl Monitor for SystemInfoMonitor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Box<Self>, ctx: MonitorContext) -> MonitorFuture {
        Box::pin(async move {
            ctx.health.set_state(MonitorState::Running, "");
            let mut tick = tokio::time::interval(ctx.config.agent.report_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tick.tick() => {
                        let working = ctx.health.working();
                        let info = collect_now(&self.sampler).await;
                        drop(working);
                        ctx.emit(system_event(info));
                    }
                }
            }
        })
    }
}
