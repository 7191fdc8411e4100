//! shipperd's command line. It lives in the library (with or without the `daemon` feature) so
//! that `sec-trackerctl manpages` renders shipperd(8) from the very definition the daemon parses.

use std::path::PathBuf;

use clap::Parser;
use sec_tracker_proto::daemon::DaemonArgs;

/// shipperd's options.
#[derive(Parser, Debug)]
#[command(
    name = "shipperd",
    version,
    about = "sec-tracker shipper: delivers collectord's events to the management server",
    long_about = "sec-tracker shipper: delivers collectord's events to the management server.\n\n\
        shipperd runs as user sec-tracker with no capability, subscribes to collectord's event \
        stream, writes every event to a durable queue before counting it as received, and \
        delivers the queue in gzipped batches over verified TLS (POST /api/v1/agent/data, health \
        reports to /api/v1/agent/health), at least once, through restarts and outages; and, when configured, to syslog over TLS \
        (outputs.syslog) and OpenTelemetry logs (outputs.otlp), each from a queue of its own. The API \
        key comes from SEC_TRACKER_API_KEY or server.api_key_file. It exits 64 on a bad config. \
        Under systemd it runs as the unit sec-tracker-shipperd.service."
)]
pub struct Args {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// collectord's socket; overrides agent.collector_socket.
    #[arg(long, value_name = "PATH")]
    pub collector_socket: Option<PathBuf>,
    /// The status socket to serve; overrides agent.shipper_socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Where the queue lives; overrides agent.state_dir.
    #[arg(long, value_name = "PATH")]
    pub state_dir: Option<PathBuf>,
    /// Run even as root (shipperd needs no privilege and should run as user sec-tracker).
    #[arg(long)]
    pub allow_root: bool,
}
