//! `shipperd`: delivers collectord's event stream to the management server.
//!
//! Thin by design: init logging, load the config (exit 64 when it is bad), refuse to run as root
//! unless told, open the queue, start the receiver, the sender and the status socket, and on
//! SIGTERM/SIGINT stop receiving, let an in-flight send finish (bounded), and exit. Everything
//! received is already on disk, so a stop loses nothing.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sec_tracker_proto::daemon::EXIT_BAD_CONFIG;
use shipperd::cli::Args;
use shipperd::daemon::{self, Options};

fn main() -> ExitCode {
    shipperd::memory::single_malloc_arena();
    let args = Args::parse();
    let (config, config_path) = match args.daemon.start("shipperd") {
        Ok(c) => c,
        Err(code) => return code,
    };
    if nix::unistd::geteuid().is_root() && !args.allow_root {
        eprintln!(
            "shipperd: refusing to run as root: it needs no privilege; run it as user sec-tracker \
             (or pass --allow-root)"
        );
        return ExitCode::FAILURE;
    }
    let options = Options {
        collector_socket: args
            .collector_socket
            .unwrap_or_else(|| config.agent.collector_socket.clone()),
        socket: args
            .socket
            .unwrap_or_else(|| config.agent.shipper_socket.clone()),
        state_dir: args
            .state_dir
            .unwrap_or_else(|| config.agent.state_dir.clone()),
        config_path,
        drain_timeout: Duration::from_secs(10),
    };
    // A file size limit (RLIMIT_FSIZE) must make the queue's writes fail with EFBIG, reported
    // and retried like a full disk, not kill the daemon: block SIGXFSZ in this thread before
    // the runtime exists, so every thread inherits the mask.
    if let Err(e) = nix::sys::signal::SigSet::from(nix::sys::signal::Signal::SIGXFSZ).thread_block()
    {
        eprintln!("shipperd: cannot block SIGXFSZ: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("shipperd")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shipperd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(config, options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(daemon::Error::Config(e)) => {
            eprintln!("shipperd: {e:#}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(daemon::Error::Other(e)) => {
            tracing::error!("{e:#}");
            eprintln!("shipperd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
