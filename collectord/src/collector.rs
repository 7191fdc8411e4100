//! Assembles a running collector: the hub, the enabled monitors and the system sampler. Used by
//! the `collectord` daemon and, in-process, by `sec-trackerctl` when no daemon is running.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sec_tracker_proto::v1::{CollectorStatus, MonitorState, MonitorStatus, SystemInfo};
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
use crate::monitors::{Monitor, MonitorContext, MonitorHealth};

pub struct Collector {
    config: Arc<Config>,
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
    /// Starts every enabled monitor. Must be called inside a tokio runtime.
    pub fn start(
        config: Config,
        config_path: Option<PathBuf>,
        socket_path: Option<PathBuf>,
    ) -> Arc<Collector> {
        let config = Arc::new(config);
        let hub = Hub::new(config.agent.buffer_size as usize);
        let sampler = Arc::new(Mutex::new(SystemSampler::new()));
        let shutdown = CancellationToken::new();
        let m = &config.monitoring;
        let monitors: Vec<(Box<dyn Monitor>, bool)> = vec![
            (
                Box::new(SystemInfoMonitor::new(Arc::clone(&sampler))),
                m.system_info,
            ),
            (Box::new(ProcessMonitor), m.process_monitor),
            (Box::new(FileMonitor), m.file_monitor),
            (Box::new(AuthMonitor), m.auth_monitor),
            (Box::new(NetworkMonitor), m.network_monitor),
        ];
        let mut tasks = JoinSet::new();
        let mut health = Vec::new();
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
        Arc::new(Collector {
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

    /// Cancelled when the collector stops; subscriber streams end with it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn snapshot(&self) -> SystemInfo {
        system_info::collect_now(&self.sampler).await
    }

    pub fn status(&self) -> CollectorStatus {
        let (oldest, latest, buffered) = self.hub.bounds();
        let monitors: Vec<MonitorStatus> = self.health.iter().map(|h| h.status()).collect();
        CollectorStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            stream_id: self.hub.stream_id().into(),
            pid: std::process::id(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            latest_seq: latest,
            oldest_seq: oldest,
            buffer_size: self.hub.capacity() as u64,
            buffered: buffered as u64,
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

fn effective_capabilities() -> Vec<String> {
    caps::read(None, caps::CapSet::Effective)
        .map(|set| {
            let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
            v.sort();
            v
        })
        .unwrap_or_default()
}
