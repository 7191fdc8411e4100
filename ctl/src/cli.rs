//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sec_tracker_proto::v1::{EventType, Severity};

#[derive(Parser, Debug)]
#[command(
    name = "sec-trackerctl",
    version,
    about = "Watch sec-tracker's security events and system state, and check the agent",
    long_about = "Watch sec-tracker's security events and system state, and check the agent.\n\n\
        watch and snapshot read from a running collectord when its socket is there, and otherwise \
        run the collector in-process (standalone local mode; root gives the full process monitor).",
    after_help = "Seed equivalents: -local → watch, -local -oneshot → snapshot, -json → --json, \
        -config → --config, -config-check → config-check, -test-connection → test-connection, \
        -version → version"
)]
pub(crate) struct Cli {
    /// collectord's socket [default: agent.collector_socket, /run/sec-tracker/collector.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Config file (JSON) [default: /etc/sec-tracker/config.json when it exists]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// shipperd's status socket [default: agent.shipper_socket, /run/sec-tracker-shipper/shipper.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub shipper_socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Continuous monitoring: system information, then every event as it happens
    Watch(WatchArgs),
    /// One-shot system scan (-local -oneshot)
    Snapshot(SnapshotArgs),
    /// Is collectord running, and how are its monitors doing
    Status(StatusArgs),
    /// Check a config file; lists every problem and exits non-zero when there is one
    ConfigCheck,
    /// Check the way to the management server: DNS, TCP, TLS, then the API key
    TestConnection,
    /// Both daemons' counters in Prometheus' text format (as shipperd serves them at /metrics)
    Metrics,
    /// The detection rules: list them, or try them on recorded events
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print the version
    Version,
    /// Print a shell's completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "bash: sec-trackerctl completions bash > \
        /usr/local/share/bash-completion/completions/sec-trackerctl (install.sh and the .deb put \
        them in place)")]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Write the man pages (sec-trackerctl(1) and one per subcommand, collectord(8),
    /// shipperd(8)) into DIR/man1 and DIR/man8
    #[command(hide = true)]
    Manpages {
        /// The directory (created when missing)
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum RulesCommand {
    /// Every rule in force (built-in, then monitoring.rules_dir): id, severity, ATT&CK, title
    List {
        /// One JSON object per rule
        #[arg(long)]
        json: bool,
    },
    /// Replays recorded events (`watch --json` lines) through the rules and prints what would fire
    Test {
        /// A file of JSON lines, or - for standard input
        file: PathBuf,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct OutputArgs {
    /// One JSON object per line (JSONL)
    #[arg(long)]
    pub json: bool,
    /// One line per event
    #[arg(long)]
    pub compact: bool,
    /// No colours (also: NO_COLOR, or output that is not a terminal)
    #[arg(long)]
    pub no_color: bool,
}

#[derive(Args, Debug)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// Only these event types (comma-separated)
    #[arg(long = "type", value_delimiter = ',', value_name = "TYPES")]
    pub types: Vec<TypeArg>,
    /// Only events at or above this severity
    #[arg(long, value_name = "LEVEL", default_value = "info", ignore_case = true)]
    pub min_severity: SeverityArg,
    /// Run the collector in-process even when collectord is running
    #[arg(long)]
    pub standalone: bool,
    /// Start with the events collectord still holds, not only new ones
    #[arg(long)]
    pub replay: bool,
    /// Only processes in this container (an id or its first digits, a runtime such as docker,
    /// or "any"), and the file, network and auth events of those processes
    #[arg(long, value_name = "ID|RUNTIME|any")]
    pub container: Option<String>,
    /// Only processes of this systemd unit (`ssh.service`; a trailing * matches a prefix), and
    /// their file, network and auth events
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,
    /// Only processes of this user (the login user, kept through sudo and su, or the user it runs
    /// as), and their file, network and auth events
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct SnapshotArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// Collect in-process even when collectord is running
    #[arg(long)]
    pub standalone: bool,
}

#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// An event type, as `--type` takes it.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeArg {
    Process,
    File,
    Auth,
    Network,
    System,
}

impl From<TypeArg> for EventType {
    fn from(t: TypeArg) -> EventType {
        match t {
            TypeArg::Process => EventType::Process,
            TypeArg::File => EventType::File,
            TypeArg::Auth => EventType::Auth,
            TypeArg::Network => EventType::Network,
            TypeArg::System => EventType::System,
        }
    }
}

/// A severity, as `--min-severity` takes it.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeverityArg {
    Info,
    #[value(alias = "warn")]
    Warning,
    #[value(alias = "crit")]
    Critical,
}

impl From<SeverityArg> for Severity {
    fn from(s: SeverityArg) -> Severity {
        match s {
            SeverityArg::Info => Severity::Info,
            SeverityArg::Warning => Severity::Warning,
            SeverityArg::Critical => Severity::Critical,
        }
    }
}
