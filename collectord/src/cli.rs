//! collectord's command line. It lives in the library so that `sec-trackerctl manpages` renders
//! collectord(8) from the very definition the daemon parses.

use std::path::PathBuf;

use clap::Parser;
use sec_tracker_proto::daemon::DaemonArgs;

/// collectord's options.
#[derive(Parser, Debug)]
#[command(
    name = "collectord",
    version,
    about = "sec-tracker collector: watches the host and serves the event stream",
    long_about = "sec-tracker collector: watches the host and serves the event stream.\n\n\
        collectord runs as root keeping only a named set of capabilities, watches processes, \
        files, logins and network connections, judges every event with the detection rules and \
        serves the numbered event stream over gRPC on a Unix socket to shipperd and \
        sec-trackerctl. It exits 64 on a bad config or rule. Under systemd it runs as the unit \
        sec-tracker-collectord.service."
)]
pub struct Args {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Socket to serve on; overrides agent.collector_socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}
