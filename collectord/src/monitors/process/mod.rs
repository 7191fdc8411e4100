//! Process monitor: exec and exit of every process, and uid/gid changes, from the kernel process
//! connector; `/proc` polling only where the connector cannot be opened, and it says so.
//!
//! The connector is read on a dedicated thread — at real-time priority when allowed — that reads
//! `/proc/<pid>` the moment an exec arrives and publishes straight into the hub. Receive-buffer
//! overruns (the kernel dropping messages) are counted and announced, never silent.

mod connector;
pub mod context;
mod poll;
pub mod proc_reader;
mod stdio;
mod tracker;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::time::{clock_gettime, ClockId};
use sec_tracker_proto::v1::{MonitorState, Severity};

use super::{Monitor, MonitorContext, MonitorFuture};
use connector::Recv;
use tracker::Tracker;

pub use connector::{parse_datagram, Connector, ProcEvent};

pub const NAME: &str = "process_monitor";
/// SCHED_FIFO priority of the reader: above every normal task, well below kernel threads.
pub const READER_PRIORITY: i32 = 10;

/// The process monitor, with the connector subscribed beforehand (while collectord still held
/// CAP_NET_ADMIN; see [`crate::privileges`]), or why it could not be.
pub struct ProcessMonitor {
    pub connector: Option<std::io::Result<Connector>>,
    /// The reader's thread, made real-time at start (`monitoring.realtime_priority`).
    pub reader: Option<std::io::Result<crate::privileges::RealtimeThread>>,
}

impl Monitor for ProcessMonitor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Box<Self>, ctx: MonitorContext) -> MonitorFuture {
        let (connector, reader) = (self.connector, self.reader);
        Box::pin(async move {
            match connector.unwrap_or_else(|| Connector::open(Duration::from_millis(200))) {
                Ok(conn) => {
                    let thread = match reader {
                        Some(Ok(t)) => Some(t),
                        Some(Err(e)) => {
                            tracing::warn!(
                                error = %e,
                                "cannot run the process connector reader at real-time priority (needs CAP_SYS_NICE at start); \
                                 command lines of the shortest-lived processes may be missed"
                            );
                            None
                        }
                        None => None,
                    };
                    if thread.is_some() {
                        tracing::info!("process connector reader runs at real-time priority");
                    }
                    super::run_on_thread_of(thread, "proc-connector", ctx, move |c| {
                        read_connector(conn, c)
                    })
                    .await
                }
                Err(e) => {
                    let why = format!(
                        "process connector unavailable ({e}); polling /proc every {}: processes shorter than that are missed",
                        humantime::format_duration(ctx.config.monitoring.scan_interval)
                    );
                    tracing::warn!("{why}");
                    ctx.health.set_state(MonitorState::Fallback, why.clone());
                    ctx.notice("monitor_fallback", Severity::Warning, 0, why);
                    poll::run(ctx).await
                }
            }
        })
    }
}

/// Converts the connector's CLOCK_MONOTONIC timestamps to UTC.
struct Clock {
    offset_ns: i64,
}

impl Clock {
    fn new() -> Clock {
        let ns = |id| {
            clock_gettime(id)
                .map(|t| t.tv_sec() * 1_000_000_000 + t.tv_nsec())
                .unwrap_or(0)
        };
        Clock {
            offset_ns: ns(ClockId::CLOCK_REALTIME) - ns(ClockId::CLOCK_MONOTONIC),
        }
    }
    fn utc(&self, mono_ns: u64) -> i64 {
        mono_ns as i64 + self.offset_ns
    }
}

fn read_connector(mut conn: Connector, ctx: &MonitorContext) -> anyhow::Result<()> {
    let clock = Clock::new();
    let max_cmdline = ctx.config.monitoring.max_cmdline_bytes as usize;
    let mut tracker = Tracker::new(max_cmdline, std::sync::Arc::clone(&ctx.processes));
    tracker.seed_from_proc();
    ctx.processes.watching();
    ctx.health
        .set_state(MonitorState::Running, "kernel process connector");
    tracing::info!("process monitor: kernel process connector subscribed");

    let mut events = Vec::with_capacity(64);
    let mut overruns_unreported = 0u64;
    let mut last_notice = Instant::now() - Duration::from_secs(60);
    while !ctx.shutdown.is_cancelled() {
        let _working = ctx.health.working();
        match conn.recv()? {
            Recv::Timeout => {}
            Recv::Overrun => {
                ctx.health.lost.fetch_add(1, Ordering::Relaxed);
                overruns_unreported += 1;
            }
            Recv::Data(n) => {
                events.clear();
                let malformed = parse_datagram(conn.data(n), &mut events);
                if malformed > 0 {
                    ctx.health
                        .errors
                        .fetch_add(malformed as u64, Ordering::Relaxed);
                }
                for ev in events.drain(..) {
                    handle(ev, &mut tracker, ctx, &clock)?;
                }
            }
        }
        // Loss is announced at most once a second, with the count since the last notice.
        if overruns_unreported > 0 && last_notice.elapsed() >= Duration::from_secs(1) {
            let msg = format!(
                "kernel dropped process events: the connector receive buffer overflowed {overruns_unreported} time(s)"
            );
            tracing::warn!("{msg}");
            ctx.notice("events_lost", Severity::Warning, overruns_unreported, msg);
            overruns_unreported = 0;
            last_notice = Instant::now();
        }
    }
    ctx.health.set_state(MonitorState::Stopped, "");
    Ok(())
}

fn handle(
    ev: ProcEvent,
    tracker: &mut Tracker,
    ctx: &MonitorContext,
    clock: &Clock,
) -> anyhow::Result<()> {
    match ev {
        ProcEvent::Ack { err } if err != 0 => {
            anyhow::bail!("the kernel refused the process connector subscription (error {err})")
        }
        ProcEvent::Fork {
            parent_tgid,
            child_pid,
            child_tgid,
            ts_ns,
        } if child_pid == child_tgid => {
            tracker.fork(parent_tgid, child_tgid, clock.utc(ts_ns));
        }
        ProcEvent::Exec { tgid, ts_ns, .. } => {
            let e = tracker.exec(tgid, clock.utc(ts_ns));
            if let Some(sec_tracker_proto::v1::event::Details::Process(p)) = &e.details {
                ctx.processes.started(tgid, &p.exe, &p.user, &p.entity_id);
            }
            ctx.emit(e);
        }
        // Threads exit (and change ids under glibc's setxid broadcast) one by one; report the
        // process once, through its main thread.
        ProcEvent::Exit {
            pid,
            tgid,
            exit_code,
            ts_ns,
            ..
        } if pid == tgid => {
            let e = tracker.exit(tgid, Some(exit_code), clock.utc(ts_ns));
            if let Some(sec_tracker_proto::v1::event::Details::Process(p)) = &e.details {
                ctx.processes.exited(tgid, &p.exe, &p.user, &p.entity_id);
            }
            ctx.emit(e);
        }
        // Any thread's change: a raw setresuid in one thread changes only that thread.
        ProcEvent::Uid {
            pid,
            tgid,
            ruid,
            euid,
            ts_ns,
        } => {
            if let Some(e) = tracker.uid_change(tgid, pid, ruid, euid, clock.utc(ts_ns)) {
                ctx.emit(e);
            }
        }
        ProcEvent::Gid {
            pid,
            tgid,
            rgid,
            egid,
            ts_ns,
        } if pid == tgid => {
            ctx.emit(tracker.gid_change(tgid, rgid, egid, clock.utc(ts_ns)));
        }
        // An attach (a detach names no tracer), to any thread of the process.
        ProcEvent::Ptrace {
            tgid,
            tracer_tgid,
            ts_ns,
            ..
        } if tracer_tgid != 0 => {
            if let Some(e) = tracker.ptrace_attach(tracer_tgid, tgid, clock.utc(ts_ns)) {
                ctx.emit(e);
            }
        }
        // The process's own name (threads name themselves for debuggers: not reported).
        ProcEvent::Comm {
            pid,
            tgid,
            comm,
            ts_ns,
        } if pid == tgid => {
            if let Some(e) = tracker.renamed(tgid, &comm, clock.utc(ts_ns)) {
                ctx.emit(e);
            }
        }
        _ => {}
    }
    Ok(())
}
