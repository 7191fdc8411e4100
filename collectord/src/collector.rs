//! Assembles a running collector: the hub, the enabled monitors and the system sampler. Used by
//! the `collectord` daemon and, in-process, by `sec-trackerctl` when no daemon is running.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sec_tracker_proto::v1::{CollectorStatus, MonitorState, MonitorStatus, Severity, SystemInfo};
use sec_tracker_proto::Config;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::monitors::auth::AuthMonitor;
use crate::monitors::file::FileMonitor;
use crate::monitors::network::NetworkMonitor;
use crate::monitors::process::ProcessMonitor;
use crate::monitors::system_info::{self, SystemInfoMonitor, SystemSampler};
use crate::monitors::{agent_notice, Monitor, MonitorContext, MonitorHealth};
use crate::privileges::Opened;
use crate::processes::Processes;
use crate::rules::Rules;

pub struct Collector {
    config: Arc<Config>,
    /// The rules in force; [`Collector::reload_rules`] swaps them.
    rules: Rules,
    hub: Arc<Hub>,
    sampler: Arc<Mutex<SystemSampler>>,
    health: Vec<Arc<MonitorHealth>>,
    shutdown: CancellationToken,
    tasks: std::sync::Mutex<JoinSet<()>>,
    started: Instant,
    started_at_ns: i64,
    /// Shown in status.
    pub socket_path: Option<PathBuf>,
    pub config_path: Option<PathBuf>,
}

impl Collector {
    /// Starts every enabled monitor, opening what they need itself (in-process use, as root).
    /// Must be called inside a tokio runtime.
    /// Rules that cannot be read are reported and the built-in ones used.
    pub fn start(
        config: Config,
        config_path: Option<PathBuf>,
        socket_path: Option<PathBuf>,
    ) -> Arc<Collector> {
        let opened = Opened::open(&config, None);
        let rules = Rules::load(Some(&config.monitoring.rules_dir)).unwrap_or_else(|problems| {
            for p in &problems {
                tracing::warn!("{p}");
            }
            tracing::warn!("rule files have problems: using the built-in rules only");
            Rules::load(None).expect("the built-in rules are checked by their tests")
        });
        Collector::start_with(config, config_path, socket_path, opened, rules)
    }

    /// Starts every enabled monitor with what was opened while the start-up capabilities were
    /// still held (the daemon drops them in between). Must be called inside a tokio runtime.
    pub fn start_with(
        config: Config,
        config_path: Option<PathBuf>,
        socket_path: Option<PathBuf>,
        opened: Opened,
        rules: Rules,
    ) -> Arc<Collector> {
        let config = Arc::new(config);
        let hub = Hub::from_config(&config);
        let sampler = Arc::new(Mutex::new(SystemSampler::new()));
        let shutdown = CancellationToken::new();
        let m = &config.monitoring;
        let monitors: Vec<(Box<dyn Monitor>, bool)> = vec![
            (
                Box::new(SystemInfoMonitor::new(Arc::clone(&sampler))),
                m.system_info,
            ),
            (
                Box::new(ProcessMonitor {
                    connector: opened.connector,
                    reader: opened.reader,
                }),
                m.process_monitor,
            ),
            (
                Box::new(FileMonitor {
                    fanotify: opened.fanotify,
                }),
                m.file_monitor,
            ),
            (Box::new(AuthMonitor), m.auth_monitor),
            (Box::new(NetworkMonitor), m.network_monitor),
        ];
        let mut tasks = JoinSet::new();
        let mut health = Vec::new();
        let processes = Arc::new(Processes::default());
        for (monitor, enabled) in monitors {
            let h = MonitorHealth::new(monitor.name(), enabled);
            health.push(Arc::clone(&h));
            if !enabled {
                continue;
            }
            let ctx = MonitorContext {
                config: Arc::clone(&config),
                hub: Arc::clone(&hub),
                shutdown: shutdown.clone(),
                health: Arc::clone(&h),
                processes: Arc::clone(&processes),
                rules: rules.clone(),
            };
            tasks.spawn(async move {
                let name = h.name;
                match monitor.run(ctx).await {
                    Ok(()) => h.set_state(MonitorState::Stopped, ""),
                    Err(e) => {
                        tracing::error!(monitor = name, error = %format!("{e:#}"), "monitor failed");
                        h.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        h.set_state(MonitorState::Failed, format!("{e:#}"));
                    }
                }
            });
        }
        let stall_after = config.monitoring.stall_after;
        tasks.spawn(watchdog(
            Arc::clone(&hub),
            health.clone(),
            stall_after,
            shutdown.clone(),
        ));
        Arc::new(Collector {
            rules,
            config,
            hub,
            sampler,
            health,
            shutdown,
            tasks: std::sync::Mutex::new(tasks),
            started: Instant::now(),
            started_at_ns: sec_tracker_proto::json::now_ns(),
            socket_path,
            config_path,
        })
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads the rules again (SIGHUP): on any problem the rules in force stay, and the problems
    /// are returned.
    pub fn reload_rules(&self) -> Result<usize, Vec<crate::rules::Problem>> {
        let fresh = Rules::load(Some(&self.config.monitoring.rules_dir))?;
        let n = fresh.current().rules.len();
        self.rules.replace((*fresh.current()).clone());
        Ok(n)
    }

    /// Cancelled when the collector stops; subscriber streams end with it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn snapshot(&self) -> SystemInfo {
        system_info::collect_now(&self.sampler).await
    }

    pub fn status(&self) -> CollectorStatus {
        let hub = self.hub.stats();
        let monitors: Vec<MonitorStatus> = self.health.iter().map(|h| h.status()).collect();
        CollectorStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            stream_id: self.hub.stream_id().into(),
            pid: std::process::id(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            latest_seq: hub.latest_seq,
            oldest_seq: hub.oldest_seq,
            buffer_size: self.config.agent.buffer_size,
            buffered: hub.buffered,
            buffer_bytes: self.config.agent.buffer_bytes,
            buffered_bytes: hub.buffered_bytes,
            evicted: Some(hub.evicted),
            suppressed: Some(hub.suppressed),
            flood_summaries: hub.flood_summaries,
            flood_pending: hub.flood_pending,
            published: hub.published,
            subscribers: self.hub.subscriber_count() as u32,
            subscriber_skipped: self.hub.skipped_total(),
            monitors,
            rss_bytes: sec_tracker_proto::daemon::own_rss_bytes(),
            capabilities: effective_capabilities(),
            socket_path: self
                .socket_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            config_path: self
                .config_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            started_at_ns: self.started_at_ns,
        }
    }

    /// Stops the monitors, waiting at most `timeout` for them.
    pub async fn stop(&self, timeout: Duration) {
        self.shutdown.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let drained = tokio::time::timeout(timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("monitors did not stop within {timeout:?}; abandoning them");
            tasks.abort_all();
        }
    }
}

/// Every second: flood summaries whose window is over are published (see [`Hub::tick`]); a
/// monitor busy on one step for longer than `stall_after` is marked stalled in
/// `status`, and said so in the stream (CRITICAL: the agent is blind there); when it moves
/// again, it is restored and that is said too.
async fn watchdog(
    hub: Arc<Hub>,
    health: Vec<Arc<MonitorHealth>>,
    stall_after: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for h in health.iter().filter(|h| h.enabled) {
            check_stall(&hub, h, stall_after);
        }
        hub.tick();
    }
}

fn check_stall(hub: &Hub, h: &MonitorHealth, stall_after: Duration) {
    match h.busy_for() {
        Some(busy) if busy > stall_after => {
            let detail = format!(
                "busy on one step for {}s without progress: its events are not coming",
                busy.as_secs()
            );
            if h.mark_stalled(true, detail.clone()) {
                let msg = format!("{} stalled: {detail}", h.name);
                tracing::error!("{msg}");
                hub.publish(agent_notice(
                    h.name,
                    "monitor_stalled",
                    Severity::Critical,
                    0,
                    msg,
                ));
            }
        }
        _ => {
            if h.mark_stalled(false, String::new()) {
                let msg = format!("{} is working again", h.name);
                tracing::warn!("{msg}");
                hub.publish(agent_notice(
                    h.name,
                    "monitor_recovered",
                    Severity::Warning,
                    0,
                    msg,
                ));
            }
        }
    }
}

fn effective_capabilities() -> Vec<String> {
    caps::read(None, caps::CapSet::Effective)
        .map(|set| {
            let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
            v.sort();
            v
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sec_tracker_proto::v1::{event, SubscribeRequest};
    use tokio_stream::StreamExt;

    /// A monitor thread that blocks on one step (as a read of a FIFO would) is marked stalled,
    /// said so in the stream, and restored when it moves again.
    #[tokio::test]
    async fn a_stuck_monitor_is_reported_stalled_then_recovered() {
        let hub = Hub::from_config(&Config::default());
        let mut stream = hub.subscribe(SubscribeRequest::default());
        let h = MonitorHealth::new("file_monitor", true);
        h.set_state(MonitorState::Running, "inotify on 3 directories");
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (busy_tx, busy_rx) = std::sync::mpsc::channel::<()>();
        let stuck = Arc::clone(&h);
        let thread = std::thread::spawn(move || {
            let _working = stuck.working();
            busy_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        busy_rx.recv().unwrap();
        let after = Duration::from_millis(50);
        check_stall(&hub, &h, after);
        assert_eq!(h.status().state(), MonitorState::Running, "not yet");
        std::thread::sleep(Duration::from_millis(120));
        check_stall(&hub, &h, after);
        let st = h.status();
        assert_eq!(st.state(), MonitorState::Stalled);
        assert!(st.detail.contains("without progress"), "{}", st.detail);
        // Said once, however long it lasts.
        check_stall(&hub, &h, after);
        release_tx.send(()).unwrap();
        thread.join().unwrap();
        check_stall(&hub, &h, after);
        let st = h.status();
        assert_eq!(
            (st.state(), st.detail.as_str()),
            (MonitorState::Running, "inotify on 3 directories")
        );
        let mut kinds = Vec::new();
        while kinds.len() < 2 {
            let r = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .unwrap()
                .unwrap();
            if let Some(sec_tracker_proto::v1::subscribe_response::Item::Event(e)) = r.item {
                if let Some(event::Details::Agent(a)) = &e.details {
                    kinds.push((a.kind.clone(), e.severity()));
                }
            }
        }
        assert_eq!(
            kinds,
            [
                ("monitor_stalled".to_owned(), Severity::Critical),
                ("monitor_recovered".to_owned(), Severity::Warning)
            ]
        );
    }
}
