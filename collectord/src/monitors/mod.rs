//! The monitors: one folder each, each implementing [`Monitor`].
//!
//! A monitor gets a [`MonitorContext`] carrying the config, the hub to publish into, the
//! shutdown token and its own counters, and runs until shutdown. Monitors never block on
//! subscribers: publishing only appends to the hub's ring.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sec_tracker_proto::v1::{
    event, AgentNotice, Event, EventType, MonitorState, MonitorStatus, Severity,
};
use sec_tracker_proto::Config;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::processes::Processes;

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
    /// What the process monitor saw run, for the others to check claims against.
    pub processes: Arc<Processes>,
    /// The detection rules every event goes through.
    pub rules: crate::rules::Rules,
}

impl MonitorContext {
    /// Publishes an event from this monitor, counting it (also when it is held back as part of
    /// a flood: the monitor saw it). Returns its seq, or None when held back.
    pub fn emit(&self, mut event: Event) -> Option<u64> {
        self.health.events.fetch_add(1, Ordering::Relaxed);
        self.name_the_process(&mut event);
        self.rules.apply(&mut event);
        self.hub.publish(event)
    }

    /// The entity id of the process a file, network or auth event names, so that a server can
    /// join it with that process's own events. An auth line's pid counts only when its writer
    /// was verified: a forged line's pid is someone else's.
    fn name_the_process(&self, event: &mut Event) {
        if let Some(event::Details::File(f)) = &mut event.details {
            // A writer gone before its /proc entry was read: the process monitor saw it run.
            if f.pid != 0 && (f.exe.is_empty() || f.user.is_empty()) {
                let (exe, user) = self.processes.exe_and_user(f.pid);
                if f.exe.is_empty() {
                    f.exe = exe;
                }
                if f.user.is_empty() {
                    f.user = user;
                }
            }
        }
        if let Some(event::Details::Auth(a)) = &mut event.details {
            // sudo logs no pid: name the sudo that ran just then, when only one did.
            if a.verified && a.pid == 0 && a.entity_id.is_empty() {
                a.entity_id = self
                    .processes
                    .sole_recent(Duration::from_secs(10), &a.service)
                    .unwrap_or_default();
                return;
            }
        }
        let (pid, slot) = match &mut event.details {
            Some(event::Details::File(f)) => (f.pid, &mut f.entity_id),
            Some(event::Details::Network(n)) => (n.pid, &mut n.entity_id),
            Some(event::Details::Auth(a)) if a.verified => (a.pid, &mut a.entity_id),
            _ => return,
        };
        if pid != 0 && slot.is_empty() {
            *slot = self.processes.entity_id(pid);
        }
    }

    /// Publishes a notice about the agent itself (a fallback, a loss), so that it reaches the
    /// operator through the same stream as everything else.
    pub fn notice(&self, kind: &str, severity: Severity, lost: u64, message: String) {
        self.hub.publish(agent_notice(
            self.health.name,
            kind,
            severity,
            lost,
            message,
        ));
    }
}

/// An event about the agent itself, from `monitor`.
pub fn agent_notice(
    monitor: &str,
    kind: &str,
    severity: Severity,
    lost: u64,
    message: String,
) -> Event {
    Event {
        timestamp_ns: sec_tracker_proto::json::now_ns(),
        r#type: EventType::System as i32,
        severity: severity as i32,
        source: monitor.to_owned(),
        message,
        details: Some(event::Details::Agent(AgentNotice {
            kind: kind.to_owned(),
            monitor: monitor.to_owned(),
            lost,
        })),
        ..Default::default()
    }
}

/// Runs a blocking monitor loop on a thread of its own (inotify, netlink and log reads block,
/// and must never stall the async runtime), finishing when the loop returns.
pub fn run_on_thread(
    thread_name: &str,
    ctx: MonitorContext,
    body: impl FnOnce(&MonitorContext) -> anyhow::Result<()> + Send + 'static,
) -> MonitorFuture {
    run_on_thread_of(None, thread_name, ctx, body)
}

/// As [`run_on_thread`], on `thread` when one was made at start (see
/// [`crate::privileges::RealtimeThread`]), else on a new one.
pub fn run_on_thread_of(
    thread: Option<crate::privileges::RealtimeThread>,
    thread_name: &str,
    ctx: MonitorContext,
    body: impl FnOnce(&MonitorContext) -> anyhow::Result<()> + Send + 'static,
) -> MonitorFuture {
    let thread_name = thread_name.to_owned();
    Box::pin(async move {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job = move || {
            let _ = done_tx.send(body(&ctx));
        };
        match thread {
            Some(t) => t.run(job)?,
            None => {
                std::thread::Builder::new().name(thread_name).spawn(job)?;
            }
        }
        done_rx.await.unwrap_or(Ok(()))
    })
}

/// A monitor's counters and state, shown by `status`, and its liveness: a monitor marks each
/// step of its work ([`MonitorHealth::working`]); one that stays on a step longer than
/// `monitoring.stall_after` (a read that never returns) is reported stalled by the collector's
/// watchdog.
pub struct MonitorHealth {
    pub name: &'static str,
    pub enabled: bool,
    pub events: AtomicU64,
    pub lost: AtomicU64,
    pub errors: AtomicU64,
    state: Mutex<(MonitorState, String)>,
    /// Milliseconds since `epoch` when the current step began (or last made progress); 0: idle.
    busy_since_ms: AtomicU64,
    epoch: Instant,
    /// The state before the watchdog said stalled, to return to.
    before_stall: Mutex<Option<(MonitorState, String)>>,
}

/// One step of a monitor's work, from [`MonitorHealth::working`]; idle again when dropped.
pub struct Working<'a>(&'a MonitorHealth);

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.0.busy_since_ms.store(0, Ordering::Relaxed);
    }
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
            busy_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            before_stall: Mutex::new(None),
        })
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means idle.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Marks the start of a step of work, which lasts until the guard is dropped.
    pub fn working(&self) -> Working<'_> {
        self.busy_since_ms.store(self.now_ms(), Ordering::Relaxed);
        Working(self)
    }

    /// A long step (a walk of a large tree) is still moving.
    pub fn progress(&self) {
        if self.busy_since_ms.load(Ordering::Relaxed) != 0 {
            self.busy_since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// How long the current step has gone without progress; None when idle.
    pub fn busy_for(&self) -> Option<Duration> {
        match self.busy_since_ms.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(self.now_ms().saturating_sub(since))),
        }
    }

    pub fn state(&self) -> MonitorState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// The watchdog's verdict: stalled (keeping what to return to), or no longer.
    pub fn mark_stalled(&self, stalled: bool, detail: String) -> bool {
        let mut before = self.before_stall.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match (stalled, before.is_some()) {
            (true, false) => {
                *before = Some(std::mem::replace(
                    &mut *state,
                    (MonitorState::Stalled, detail),
                ));
                true
            }
            (false, true) => {
                if state.0 == MonitorState::Stalled {
                    *state = before.take().unwrap_or_default();
                } else {
                    *before = None;
                }
                true
            }
            _ => false,
        }
    }

    /// `detail` says why, or how it runs. While stalled, the new state is what it returns to.
    pub fn set_state(&self, state: MonitorState, detail: impl Into<String>) {
        let mut before = self.before_stall.lock().unwrap_or_else(|p| p.into_inner());
        match before.as_mut() {
            Some(b) => *b = (state, detail.into()),
            None => *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (state, detail.into()),
        }
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
