//! The running daemon: the receiver (collectord → queues), a delivery loop per output (its
//! queue → the management server, syslog or OTLP), health reports, the status socket and the
//! opt-in metrics listener. Each output is a lane ([`Shared`]) with its own durable queue,
//! cursor, state and counters, so an output that is down holds back only itself.

mod delivery;
mod health;
mod metrics;
mod receiver;
mod status;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use sec_tracker_proto::daemon::StopSignals;
use sec_tracker_proto::metrics::LatencyHistogram;
use sec_tracker_proto::v1::ShipperState;
use sec_tracker_proto::Config;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::outputs::Output;
use crate::queue::{Queue, QueueError};

pub struct Options {
    pub collector_socket: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub config_path: Option<PathBuf>,
    pub drain_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration problem: exit 64.
    #[error("{0:#}")]
    Config(anyhow::Error),
    #[error("{0:#}")]
    Other(anyhow::Error),
}

/// The queue, owned by a thread of its own: SQLite does blocking I/O and fsync, and one thread
/// (rather than whichever threads of the blocking pool are free) keeps the thread count, and
/// with it the allocator's per-thread arenas, small. Jobs run in the order they are sent.
pub struct QueueThread {
    jobs: std::sync::mpsc::Sender<QueueJob>,
}

type QueueJob = Box<dyn FnOnce(&mut Queue) + Send>;

impl QueueThread {
    fn start(mut queue: Queue) -> anyhow::Result<QueueThread> {
        let (jobs, rx) = std::sync::mpsc::channel::<QueueJob>();
        std::thread::Builder::new()
            .name("queue".into())
            .spawn(move || {
                // Ends when every sender is gone (the daemon stopped).
                while let Ok(job) = rx.recv() {
                    // A panic is a bug; the job's caller sees it as an error and the queue, whose
                    // memory state changes only after a commit, carries on.
                    let run = std::panic::AssertUnwindSafe(|| job(&mut queue));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!("a queue operation panicked");
                    }
                }
            })
            .context("starting the queue thread")?;
        Ok(QueueThread { jobs })
    }

    /// Runs `f` on the queue thread and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Queue) -> T + Send + 'static,
    ) -> Result<T, QueueError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |q| {
                let _ = tx.send(f(q));
            }))
            .map_err(|_| QueueError::Internal("the queue thread has stopped".into()))?;
        rx.await
            .map_err(|_| QueueError::Internal("a queue operation failed".into()))
    }
}

/// One output's lane: what its tasks share. The receiver writes to every lane.
pub struct Shared {
    pub config: Arc<Config>,
    pub output: Output,
    pub queue: QueueThread,
    pub queue_path: PathBuf,
    pub started: Instant,
    pub collector_connected: AtomicBool,
    pub stream_id: Mutex<String>,
    pub last_seq: AtomicU64,
    pub last_success_ns: AtomicI64,
    pub last_error: Mutex<String>,
    pub state: Mutex<ShipperState>,
    pub batches_sent: AtomicU64,
    pub batches_resent: AtomicU64,
    /// Seconds from sending a batch to its acceptance.
    pub send_seconds: LatencyHistogram,
    /// Woken when events were queued, so a full batch goes out at once.
    pub queued: Notify,
    pub shutdown: CancellationToken,
}

impl Shared {
    /// Runs `f` on the queue thread (see [`QueueThread`]).
    pub async fn with_queue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Queue) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        self.queue.run(f).await?
    }

    pub fn set_error(&self, e: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e.into();
    }

    pub fn set_state(&self, s: ShipperState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    pub fn state(&self) -> ShipperState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn stream_id(&self) -> String {
        self.stream_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn success(&self) {
        self.last_success_ns
            .store(sec_tracker_proto::json::now_ns(), Ordering::Relaxed);
    }
}

pub async fn run(config: Config, options: Options) -> Result<(), Error> {
    let mut signals = StopSignals::install()
        .context("installing the signal handlers")
        .map_err(Error::Other)?;
    warn_if_world_readable(&config, options.config_path.as_deref());
    let outputs = Output::all(&config).map_err(|e| Error::Config(anyhow::Error::new(e)))?;
    if outputs.is_empty() {
        return Err(Error::Config(anyhow::anyhow!(
            "server.url is not set and no other output is configured: shipperd has nowhere to \
             send (set server.url, outputs.syslog or outputs.otlp in the config file)"
        )));
    }
    let dir = options.state_dir.join("shipperd");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the state directory {}", dir.display()))
        .map_err(Error::Other)?;
    let config = Arc::new(config);
    let shutdown = CancellationToken::new();
    let mut lanes = Vec::new();
    for output in outputs {
        lanes.push(Arc::new(open_lane(
            output,
            &dir,
            Arc::clone(&config),
            shutdown.clone(),
        )?));
    }
    let primary = Arc::clone(&lanes[0]);

    let status_server = status::serve(lanes.clone(), &options.socket).map_err(Error::Other)?;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(receiver::run(
        lanes.clone(),
        options.collector_socket.clone(),
    ));
    for lane in &lanes {
        tasks.spawn(delivery::run(Arc::clone(lane)));
    }
    if lanes.iter().any(|l| matches!(l.output, Output::Server(_))) {
        tasks.spawn(health::run(lanes.clone(), options.collector_socket.clone()));
    }
    if let Some(addr) = config.agent.metrics_listen {
        // Opt-in. A port that cannot be had is said loudly, and delivery goes on without it.
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(address = %addr, "serving metrics at /metrics");
                tasks.spawn(metrics::serve(
                    lanes.clone(),
                    listener,
                    options.collector_socket.clone(),
                ));
            }
            Err(e) => {
                tracing::error!(address = %addr, error = %e, "cannot serve metrics (agent.metrics_listen)")
            }
        }
    }
    let targets: Vec<String> = lanes
        .iter()
        .map(|l| format!("{} {}", l.output.name(), l.output.target()))
        .collect();
    tracing::info!(
        outputs = %targets.join(", "),
        collector = %options.collector_socket.display(),
        queue = %primary.queue_path.display(),
        "shipperd running"
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    let name = signals.recv().await;
    tracing::info!("{name}: stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
    let drained = tokio::time::timeout(options.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "tasks did not stop within {:?}; what they held is still in the queue",
            options.drain_timeout
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), status_server).await;
    tracing::info!("shipperd stopped");
    Ok(())
}

/// Opens an output's queue (`<state>/shipperd/<queue_file>`) and its lane.
fn open_lane(
    output: Output,
    dir: &std::path::Path,
    config: Arc<Config>,
    shutdown: CancellationToken,
) -> Result<Shared, Error> {
    let queue_path = dir.join(output.queue_file());
    let (queue, report) = Queue::open(&queue_path, config.agent.max_queue_size)
        .with_context(|| format!("opening the queue {}", queue_path.display()))
        .map_err(Error::Other)?;
    if let Some(aside) = &report.moved_aside {
        tracing::error!(
            output = output.name(),
            moved_to = %aside.display(),
            problem = report.problem.as_deref().unwrap_or(""),
            "the queue was corrupt: it was moved aside and a new one started"
        );
    }
    Ok(Shared {
        config,
        output,
        queue: QueueThread::start(queue).map_err(Error::Other)?,
        queue_path,
        started: Instant::now(),
        collector_connected: AtomicBool::new(false),
        stream_id: Mutex::new(String::new()),
        last_seq: AtomicU64::new(0),
        last_success_ns: AtomicI64::new(0),
        last_error: Mutex::new(
            report
                .moved_aside
                .as_ref()
                .map(|p| format!("corrupt queue moved aside to {}", p.display()))
                .unwrap_or_default(),
        ),
        state: Mutex::new(ShipperState::Idle),
        batches_sent: AtomicU64::new(0),
        batches_resent: AtomicU64::new(0),
        send_seconds: LatencyHistogram::default(),
        queued: Notify::new(),
        shutdown,
    })
}

/// The config is readable by the readers' group (it must be: `watch` reads it): the API key
/// belongs in a file of the shipper's own (`server.api_key_file`, 0600), not there.
fn warn_if_world_readable(config: &Config, path: Option<&std::path::Path>) {
    use std::os::unix::fs::PermissionsExt;
    let Some(p) = path else { return };
    let Ok(m) = std::fs::metadata(p) else { return };
    let mode = m.permissions().mode();
    if !config.server.api_key.is_empty() && mode & 0o044 != 0 {
        tracing::warn!(
            config = %p.display(),
            "server.api_key is in a config file others can read (the event readers' group among them): \
             put the key in server.api_key_file, mode 0600, owned by the shipper's user"
        );
    } else if mode & 0o004 != 0 {
        tracing::warn!(config = %p.display(), "the config file is world-readable: chmod 0640 it (owner root, group sec-tracker)");
    }
}
