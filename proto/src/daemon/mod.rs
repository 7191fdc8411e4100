//! What every sec-tracker program does the same way at start and stop: logging, loading the
//! config (exit 64 when it is bad), and waiting for SIGTERM or SIGINT.

pub mod journal;
pub mod logging;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::Config;

/// Exit status for a bad config file (EX_USAGE), so that systemd's `RestartPreventExitStatus=`
/// stops restarting a daemon whose config cannot work.
pub const EXIT_BAD_CONFIG: u8 = 64;

/// The options every daemon takes (`#[command(flatten)]` them into its own).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DaemonArgs {
    /// Log to this file instead of stderr or the journal, rotated at 10 MiB with 5 gzipped
    /// files kept (e.g. /var/log/sec-tracker/agent.log).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Config file (JSON); default /etc/sec-tracker/config.json when it exists.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl DaemonArgs {
    /// The first steps of every daemon: logging, then the config. On failure it has said why
    /// on stderr, and the exit code is 1 (the log) or 64 (the config).
    pub fn start(&self, program: &str) -> Result<(Config, Option<PathBuf>), ExitCode> {
        if let Err(e) = logging::init_daemon(program, self.log_file.as_deref()) {
            eprintln!("{program}: cannot open the log file: {e}");
            return Err(ExitCode::FAILURE);
        }
        load_config(program, self.config.as_deref())
    }
}

/// Loads `path` (or the default config when it exists, or the defaults), or prints every problem
/// prefixed with `program` and returns exit status 64.
pub fn load_config(
    program: &str,
    path: Option<&Path>,
) -> Result<(Config, Option<PathBuf>), ExitCode> {
    Config::load_or_default(path).map_err(|e| {
        eprintln!("{program}: {e}");
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

/// SIGTERM and SIGINT, installed at once: once a daemon's socket is visible, SIGTERM must already
/// mean a clean stop.
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Must be called inside a tokio runtime.
    pub fn install() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for either; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// This process's resident memory (`VmRSS`), for `status` and health reports; 0 if unreadable.
pub fn own_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
