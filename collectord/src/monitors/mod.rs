//! The monitors: one folder each, each implementing [`Monitor`].
//!
//! A monitor gets a [`MonitorContext`] carrying the config, the hub to publish into, the
//! shutdown token and its own counters, and runs until shutdown. Monitors never block on
//! subscribers: publishing only appends to the hub's ring.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sec_tracker_proto::v1::{
    event, AgentNotice, Event, EventType, MonitorState, MonitorStatus, Severity,
};
use sec_tracker_proto::Config;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

pub mod auth;
pub mod file;
pub mod network;
pub mod process;
pub mod system_info;

pub type MonitorFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// One source of events.
pub trait Monitor: Send + 'static {
    /// The name used as the events' `source` and in `status`, e.g. `process_monitor`.
    fn name(&self) -> &'static str;
    /// Runs until `ctx.shutdown` is cancelled. An error ends only this monitor.
    fn run(self: Box<Self>, ctx: MonitorContext) -> MonitorFuture;
}

#[derive(Clone)]
pub struct MonitorContext {
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    pub shutdown: CancellationToken,
    pub health: Arc<MonitorHealth>,
}

impl MonitorContext {
    /// Publishes an event from this monitor, counting it.
    pub fn emit(&self, event: Event) -> u64 {
        self.health.events.fetch_add(1, Ordering::Relaxed);
        self.hub.publish(event)
    }

    /// Publishes a notice about the agent itself (a fallback, a loss), so that it reaches the
    /// operator through the same stream as everything else.
    pub fn notice(&self, kind: &str, severity: Severity, lost: u64, message: String) {
        self.hub.publish(Event {
            timestamp_ns: sec_tracker_proto::json::now_ns(),
            r#type: EventType::System as i32,
            severity: severity as i32,
            source: self.health.name.to_owned(),
            message,
            details: Some(event::Details::Agent(AgentNotice {
                kind: kind.to_owned(),
                monitor: self.health.name.to_owned(),
                lost,
            })),
            ..Default::default()
        });
    }
}

/// Runs a blocking monitor loop on a thread of its own (inotify, netlink and log reads block,
/// and must never stall the async runtime), finishing when the loop returns.
pub fn run_on_thread(
    thread_name: &str,
    ctx: MonitorContext,
    body: impl FnOnce(&MonitorContext) -> anyhow::Result<()> + Send + 'static,
) -> MonitorFuture {
    let thread_name = thread_name.to_owned();
    Box::pin(async move {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let _ = done_tx.send(body(&ctx));
            })?;
        done_rx.await.unwrap_or(Ok(()))
    })
}

/// A monitor's counters and state, shown by `status`.
pub struct MonitorHealth {
    pub name: &'static str,
    pub enabled: bool,
    pub events: AtomicU64,
    pub lost: AtomicU64,
    pub errors: AtomicU64,
    state: Mutex<(MonitorState, String)>,
}

impl MonitorHealth {
    pub fn new(name: &'static str, enabled: bool) -> Arc<MonitorHealth> {
        let state = if enabled {
            MonitorState::Starting
        } else {
            MonitorState::Disabled
        };
        Arc::new(MonitorHealth {
            name,
            enabled,
            events: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            state: Mutex::new((state, String::new())),
        })
    }

    /// `detail` says why, or how it runs.
    pub fn set_state(&self, state: MonitorState, detail: impl Into<String>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = (state, detail.into());
    }

    pub fn status(&self) -> MonitorStatus {
        let (state, detail) = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        MonitorStatus {
            name: self.name.to_owned(),
            enabled: self.enabled,
            state: state as i32,
            detail,
            events: self.events.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}
