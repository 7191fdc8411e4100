//! `collectord`: runs the monitors and serves the event stream on a Unix socket.
//!
//! Thin by design: init logging, load the config (exit 64 when it is bad), bind the socket,
//! serve, tell systemd we are ready, and on SIGTERM/SIGINT drain within a timeout and remove the
//! socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use collectord::{peer::PeerPolicy, privileges, server, socket, Collector};
use sec_tracker_proto::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::wrappers::UnixListenerStream;

/// Exit status for a configuration error (EX_CONFIG is 78; the brief asks for 64, EX_USAGE).
const EXIT_BAD_CONFIG: u8 = 64;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(
    name = "collectord",
    version,
    about = "sec-tracker collector: watches the host and serves the event stream"
)]
struct Args {
    /// Log to this file instead of stderr, rotated at 10 MiB with 5 gzipped files kept
    /// (e.g. /var/log/sec-tracker/agent.log).
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Config file (JSON); default /etc/sec-tracker/config.json when it exists.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Socket to serve on; overrides agent.collector_socket.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = collectord::logfile::init_tracing(args.log_file.as_deref()) {
        eprintln!("collectord: cannot open the log file: {e}");
        return ExitCode::FAILURE;
    }
    let (config, config_path) = match Config::load_or_default(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("collectord: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let socket_path = args
        .socket
        .unwrap_or_else(|| config.agent.collector_socket.clone());
    let (listener, policy) = match prepare(&config, &socket_path) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("collectord: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("collectord")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("collectord: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, config_path, socket_path, listener, policy)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("collectord: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Binds the socket (the one use of CAP_CHOWN) and drops every capability the enabled monitors
/// do not need. Runs before the runtime exists: capabilities are per thread, and threads made
/// afterwards inherit the reduced sets.
fn prepare(
    config: &Config,
    socket_path: &std::path::Path,
) -> anyhow::Result<(socket::Staged, PeerPolicy)> {
    let policy = PeerPolicy::new(&config.agent.socket_group);
    if policy.group_gid().is_none() {
        tracing::warn!(group = %config.agent.socket_group, "socket group does not exist: only root may read the stream");
    }
    let listener =
        socket::bind(socket_path, policy.group_gid()).context("binding the collector socket")?;
    if nix::unistd::geteuid().is_root() {
        let wanted = privileges::needed(config);
        let kept = privileges::drop_all_but(&wanted)?;
        tracing::info!(kept = %privileges::names(&kept), "dropped every other capability; no_new_privs set");
        let missing: caps::CapsHashSet = wanted.difference(&kept).copied().collect();
        if !missing.is_empty() {
            tracing::warn!(
                missing = %privileges::names(&missing),
                "started without capabilities the enabled monitors need: they will run degraded"
            );
        }
    } else {
        tracing::info!("not running as root: keeping the capabilities this process was given");
    }
    Ok((listener, policy))
}

async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    socket_path: PathBuf,
    staged: socket::Staged,
    policy: PeerPolicy,
) -> anyhow::Result<()> {
    // Signals first: once the socket is visible, SIGTERM must already mean a clean stop.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let collector = Collector::start(config, config_path, Some(socket_path.clone()));
    tracing::info!(socket = %socket_path.display(), stream_id = collector.hub().stream_id(), "collectord serving");

    let listener = socket::into_tokio(staged.publish()?).context("registering the socket")?;
    let stop = collector.shutdown_token();
    let stopping = stop.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server::service(std::sync::Arc::clone(&collector), policy))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                stopping.cancelled().await
            }),
    );
    // Readiness for systemd Type=notify; a no-op elsewhere.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
        r = &mut Box::pin(async { stop.cancelled().await }) => r,
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    collector.stop(DRAIN_TIMEOUT).await;
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("clients did not disconnect within {DRAIN_TIMEOUT:?}"),
    }
    if let Err(e) = std::fs::remove_file(&socket_path) {
        tracing::warn!(error = %e, "cannot remove the socket");
    }
    tracing::info!("collectord stopped");
    Ok(())
}
