//! `collectord`: runs the monitors and serves the event stream on a Unix socket.
//!
//! Thin by design: init logging, load the config (exit 64 when it is bad), bind the socket, drop
//! privileges, serve, tell systemd we are ready, and on SIGTERM/SIGINT drain within a timeout and
//! remove the socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use collectord::cli::Args;
use collectord::privileges::{self, Opened};
use collectord::rules::Rules;
use collectord::{server, Collector};
use sec_tracker_proto::daemon::StopSignals;
use sec_tracker_proto::local::peer::{self, Limits, PeerPolicy};
use sec_tracker_proto::local::{socket, LocalService};
use sec_tracker_proto::Config;

const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    // The server's API key is the shipper's alone: never kept where collectord, or anything it
    // runs (journalctl), could read it. Before any thread exists.
    std::env::remove_var("SEC_TRACKER_API_KEY");
    let args = Args::parse();
    let (config, config_path) = match args.daemon.start("collectord") {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Rules are part of the configuration: a problem in one stops the start, like a bad key.
    let rules = match Rules::load(Some(&config.monitoring.rules_dir)) {
        Ok(r) => r,
        Err(problems) => {
            for p in &problems {
                eprintln!("collectord: {p}");
                tracing::error!("{p}");
            }
            return ExitCode::from(64);
        }
    };
    let socket_path = args
        .socket
        .unwrap_or_else(|| config.agent.collector_socket.clone());
    let (staged, policy, opened) = match prepare(&config, &socket_path) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("collectord")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the runtime")),
    };
    match runtime.block_on(run(
        config,
        config_path,
        socket_path,
        staged,
        policy,
        opened,
        rules,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    tracing::error!("{e:#}");
    eprintln!("collectord: {e:#}");
    ExitCode::FAILURE
}

/// Binds the socket (CAP_CHOWN) and opens what the monitors need the start-up capabilities for
/// (the process connector, the fanotify group), then drops every capability the monitors do not
/// need while they run. Runs before the runtime exists: capabilities are per thread, and threads
/// made afterwards inherit the reduced sets.
fn prepare(
    config: &Config,
    socket_path: &std::path::Path,
) -> anyhow::Result<(socket::Staged, PeerPolicy, Opened)> {
    let policy = PeerPolicy::new(LocalService::Collector, &config.agent.socket_group);
    if policy.group_gid().is_none() {
        tracing::warn!(group = %config.agent.socket_group, "socket group does not exist: only root may read the stream");
    }
    let staged = socket::bind(socket_path, LocalService::Collector, policy.group_gid())
        .context("binding the collector socket")?;
    let root = nix::unistd::geteuid().is_root();
    let wanted = privileges::needed(config);
    let opened = Opened::open(config, root.then_some(&wanted));
    if root {
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
    Ok((staged, policy, opened))
}

async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    socket_path: PathBuf,
    staged: socket::Staged,
    policy: PeerPolicy,
    opened: Opened,
    rules: Rules,
) -> anyhow::Result<()> {
    let mut signals = StopSignals::install().context("installing the signal handlers")?;
    let collector = Collector::start_with(
        config,
        config_path,
        Some(socket_path.clone()),
        opened,
        rules,
    );
    // SIGHUP reads the rules again; a bad file keeps the rules in force and says why.
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let reloader = std::sync::Arc::clone(&collector);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match reloader.reload_rules() {
                Ok(n) => tracing::info!(rules = n, "SIGHUP: rules reloaded"),
                Err(problems) => {
                    for p in &problems {
                        tracing::error!("{p}");
                    }
                    tracing::error!("SIGHUP: the rules have problems; the rules in force stay");
                }
            }
        }
    });
    tracing::info!(socket = %socket_path.display(), stream_id = collector.hub().stream_id(), "collectord serving");

    let (listener, published) = staged.publish()?;
    let listener = socket::into_tokio(listener).context("registering the socket")?;
    let stop = collector.shutdown_token();
    let stopping = stop.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server::service(std::sync::Arc::clone(&collector), policy))
            .serve_with_incoming_shutdown(
                peer::serve_incoming(listener, LocalService::Collector, Limits::default()),
                async move { stopping.cancelled().await },
            ),
    );
    // Readiness for systemd Type=notify; a no-op elsewhere.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    tokio::select! {
        name = signals.recv() => tracing::info!("{name}: stopping"),
        _ = stop.cancelled() => {}
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    collector.stop(DRAIN_TIMEOUT).await;
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("clients did not disconnect within {DRAIN_TIMEOUT:?}"),
    }
    if let Err(e) = published.remove() {
        tracing::warn!(error = %e, "cannot remove the socket");
    }
    tracing::info!("collectord stopped");
    Ok(())
}
