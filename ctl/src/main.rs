//! `sec-trackerctl`: the operator's client for sec-tracker.
//!
//! `watch` streams events (human, compact or JSON lines), `snapshot` prints system information
//! once, `status` reports on collectord, `config-check` validates a config file. Both `watch`
//! and `snapshot` work without any daemon: when collectord's socket is absent they run the
//! collector library in-process.

mod cli;
mod commands;
mod render;
mod seed;
mod source;

use std::process::ExitCode;

use clap::Parser;
use sec_tracker_proto::daemon::{load_config, logging};

use cli::{Cli, Command};
use commands::Context;

fn main() -> ExitCode {
    // The seed's single-dash forms (`sec-tracker -local -json`) become today's subcommands.
    let args = match seed::modern_args(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("sec-trackerctl: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    logging::init_cli();

    match &cli.command {
        Command::Version => {
            println!("sec-trackerctl {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::ConfigCheck => {
            return ExitCode::from(commands::config_check::run(cli.config.as_deref()))
        }
        Command::Completions { shell } => return commands::docs::completions(*shell),
        Command::Manpages { dir } => return commands::docs::manpages(dir),
        _ => {}
    }
    let (config, config_path) = match load_config("sec-trackerctl", cli.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| config.agent.collector_socket.clone());
    let shipper_socket = cli
        .shipper_socket
        .clone()
        .unwrap_or_else(|| config.agent.shipper_socket.clone());
    let ctx = Context {
        config,
        config_path,
        socket,
        shipper_socket,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sec-trackerctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Watch(a) => commands::watch::run(&ctx, a).await.map(|()| 0),
            Command::Snapshot(a) => commands::snapshot::run(&ctx, a).await.map(|()| 0),
            Command::Status(a) => commands::status::run(&ctx, a).await,
            Command::TestConnection => commands::test_connection::run(&ctx.config).await,
            Command::Metrics => commands::metrics::run(&ctx).await,
            Command::Rules(r) => commands::rules::run(&ctx, r),
            Command::ConfigCheck
            | Command::Version
            | Command::Completions { .. }
            | Command::Manpages { .. } => Ok(0),
        }
    });
    // Don't wait for the in-process monitors' blocking reads on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sec-trackerctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `sec-trackerctl watch | head` ends quietly when head exits.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
