//! The configuration file: its schema, its defaults, and a loader that reports every problem.
//!
//! The file is JSON in the schema operators already use, every key optional: a partial file is merged over the
//! defaults. We walk the parsed JSON ourselves rather than deriving `Deserialize`, because an
//! operator fixing a config wants *all* of its problems at once, each naming its key, and a
//! suggestion when a key is a typo of a known one. Serde stops at the first.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// Where the daemons and the CLI look for the config when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/sec-tracker/config.json";
/// The collector's gRPC socket.
pub const DEFAULT_COLLECTOR_SOCKET: &str = "/run/sec-tracker/collector.sock";
/// shipperd's status socket.
pub const DEFAULT_SHIPPER_SOCKET: &str = "/run/sec-tracker-shipper/shipper.sock";
/// The group whose members may read the event stream.
pub const DEFAULT_SOCKET_GROUP: &str = "sec-tracker";
/// The user shipperd runs as.
pub const DEFAULT_SHIPPER_USER: &str = "sec-tracker";
/// The operator's detection rules.
pub const DEFAULT_RULES_DIR: &str = "/etc/sec-tracker/rules.d";
/// Where the daemons keep their state.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sec-tracker";
/// 32 MiB: at a few hundred bytes an event, a minute or more of 2,000 events/s, so a shipper
/// restart (or a short outage of its disk) loses nothing.
pub const DEFAULT_BUFFER_BYTES: u64 = 32 * 1024 * 1024;

/// A value that must never be printed: the server API key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that needs it (the Authorization header).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"<redacted>\"")
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub agent: AgentConfig,
    pub monitoring: MonitoringConfig,
    pub local_output: LocalOutputConfig,
    /// Where shipperd delivers besides (or instead of) the management server.
    pub outputs: OutputsConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Empty: server mode not configured.
    pub url: String,
    pub api_key: Secret,
    pub timeout: Duration,
    pub retry_max: u64,
    pub batch_size: u64,
    /// a file holding the API key (instead of `api_key` in this file).
    pub api_key_file: Option<PathBuf>,
    /// a PEM file of CA certificates trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub id: String,
    pub name: String,
    pub report_interval: Duration,
    /// The ring of recent events collectord keeps for replay holds at least this many events,
    /// however large they are...
    pub buffer_size: u64,
    /// ...and beyond that as many as fit in this many bytes (encoded events), taken only as
    /// events arrive. When full, the least severe events go first.
    pub buffer_bytes: u64,
    pub max_queue_size: u64,
    pub enable_tls: bool,
    /// the collector's socket.
    pub collector_socket: PathBuf,
    /// the group allowed to read the stream (besides root).
    pub socket_group: String,
    /// where the daemons keep state (collectord's file baseline; shipperd's queue).
    pub state_dir: PathBuf,
    /// shipperd's status socket.
    pub shipper_socket: PathBuf,
    /// The user shipperd runs as: clients trust its status socket only when root or this user
    /// serves it.
    pub shipper_user: String,
    /// Where shipperd serves `GET /metrics` (both daemons' counters, Prometheus' text format);
    /// None (the default): not served.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// The outputs other than the management server: each is optional, each gets its own durable
/// queue, cursor, status and counters in shipperd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputsConfig {
    pub syslog: Option<SyslogOutputConfig>,
    pub otlp: Option<OtlpOutputConfig>,
}

/// Syslog over TLS: RFC 5424 messages in RFC 5425 framing (octet counting) to a SIEM or relay.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogOutputConfig {
    /// `host:port` of the receiver (6514 is syslog-over-TLS's port).
    pub address: String,
    /// The name the receiver's certificate must carry; the host of `address` when empty.
    pub server_name: String,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// RFC 5424 facility by name (`auth`, `authpriv`, `local0`…).
    pub facility: String,
    pub app_name: String,
    pub timeout: Duration,
    pub batch_size: u64,
    /// Syslog has no acknowledgement: a batch counts as delivered once it is written and the
    /// connection still stands this long after (a receiver that closes or resets it within that
    /// time gets the batch again). It must cover how long a stopping receiver may hold read data
    /// before it closes its connections; 2 s leaves a loaded rsyslog room.
    pub confirm_after: Duration,
}

/// OpenTelemetry logs over OTLP/HTTP (protobuf).
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpOutputConfig {
    /// The logs endpoint, e.g. `https://collector:4318/v1/logs`.
    pub url: String,
    /// Headers sent with each export (authentication, tenant); their values are never logged.
    pub headers: Vec<(String, Secret)>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub timeout: Duration,
    pub batch_size: u64,
}

/// The RFC 5424 facility names and numbers.
pub const SYSLOG_FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

impl Default for SyslogOutputConfig {
    fn default() -> Self {
        SyslogOutputConfig {
            address: String::new(),
            server_name: String::new(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            facility: "authpriv".into(),
            app_name: "sec-tracker".into(),
            timeout: Duration::from_secs(30),
            batch_size: 200,
            confirm_after: Duration::from_secs(2),
        }
    }
}

impl Default for OtlpOutputConfig {
    fn default() -> Self {
        OtlpOutputConfig {
            url: String::new(),
            headers: Vec::new(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            timeout: Duration::from_secs(30),
            batch_size: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MonitoringConfig {
    pub system_info: bool,
    pub process_monitor: bool,
    pub file_monitor: bool,
    pub network_monitor: bool,
    pub auth_monitor: bool,
    pub watch_paths: Vec<PathBuf>,
    pub scan_interval: Duration,
    /// command lines longer than this are cut (and marked so).
    pub max_cmdline_bytes: u64,
    /// run the process connector reader at real-time priority (needs CAP_SYS_NICE), so
    /// that the command line of a process that lives a millisecond is read before it exits.
    pub realtime_priority: bool,
    /// paths under watch_paths that are not watched (the agent's own files always are not).
    pub exclude_paths: Vec<PathBuf>,
    /// regular files larger than this are not hashed (and say so).
    pub max_hash_bytes: u64,
    /// Files the file monitor's baseline keeps at most (over all watch paths): past it files are
    /// still watched and reported, but not kept, so memory stays bounded whatever the trees hold.
    pub max_files: u64,
    /// A monitor busy this long on one step (a read that never returns) is reported stalled.
    pub stall_after: Duration,
    /// Events one source (a program, a directory, an address) may publish per `flood_window`;
    /// past it its INFO and WARNING events are counted, not published, and one summary event
    /// says how many (CRITICAL events always pass).
    pub flood_limit: u64,
    pub flood_window: Duration,
    /// the text auth logs to follow (those that exist).
    pub auth_logs: Vec<PathBuf>,
    /// The operator's detection rules (`*.json`), read after the built-in ones.
    pub rules_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalOutputConfig {
    pub json_format: bool,
    pub one_shot: bool,
    pub show_timestamp: bool,
    pub show_colors: bool,
    pub compact_output: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig {
                url: String::new(),
                api_key: Secret::default(),
                timeout: Duration::from_secs(30),
                retry_max: 3,
                batch_size: 100,
                api_key_file: None,
                ca_file: None,
                client_cert: None,
                client_key: None,
            },
            agent: AgentConfig {
                id: String::new(),
                name: String::new(),
                report_interval: Duration::from_secs(60),
                buffer_size: 1000,
                buffer_bytes: DEFAULT_BUFFER_BYTES,
                max_queue_size: 10_000,
                enable_tls: true,
                collector_socket: PathBuf::from(DEFAULT_COLLECTOR_SOCKET),
                socket_group: DEFAULT_SOCKET_GROUP.to_owned(),
                state_dir: PathBuf::from(DEFAULT_STATE_DIR),
                shipper_socket: PathBuf::from(DEFAULT_SHIPPER_SOCKET),
                shipper_user: DEFAULT_SHIPPER_USER.to_owned(),
                metrics_listen: None,
            },
            monitoring: MonitoringConfig {
                system_info: true,
                process_monitor: true,
                file_monitor: true,
                network_monitor: true,
                auth_monitor: true,
                // The seed's three, and where the default rules look: the other program
                // directories, the kernel and boot loader, root's SSH keys, the cron spools.
                watch_paths: [
                    "/etc",
                    "/usr/bin",
                    "/var/log",
                    "/usr/sbin",
                    "/usr/local/bin",
                    "/usr/local/sbin",
                    "/boot",
                    "/root/.ssh",
                    "/var/spool/cron",
                ]
                .iter()
                .map(PathBuf::from)
                .collect(),
                scan_interval: Duration::from_secs(5),
                max_cmdline_bytes: 32 * 1024,
                realtime_priority: true,
                exclude_paths: vec![PathBuf::from("/var/log/sec-tracker")],
                max_hash_bytes: 64 * 1024 * 1024,
                max_files: 200_000,
                stall_after: Duration::from_secs(30),
                flood_limit: 50_000,
                flood_window: Duration::from_secs(10),
                auth_logs: vec![
                    PathBuf::from("/var/log/auth.log"),
                    PathBuf::from("/var/log/secure"),
                ],
                rules_dir: PathBuf::from(DEFAULT_RULES_DIR),
            },
            local_output: LocalOutputConfig {
                json_format: false,
                one_shot: false,
                show_timestamp: true,
                show_colors: true,
                compact_output: false,
            },
            outputs: OutputsConfig::default(),
        }
    }
}

/// One thing wrong with a config file, naming its key (`agent.buffer_size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} is not valid JSON: {source}", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("config file {} has {} problem{}:\n{}", path.display(), problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// Every problem, one per entry (a read or syntax error is one problem).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { problems, .. } => {
                problems.iter().map(|p| p.to_string()).collect()
            }
            other => vec![other.to_string()],
        }
    }
}

impl Config {
    /// Loads `path` (a file or a pipe such as `<(echo '{…}')`) merged over the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_json_str(&text).map_err(|e| e.with_path(path))
    }

    /// Loads `path` when given; otherwise the default path when it exists; otherwise the defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        match path {
            Some(p) => Ok((Config::load(p)?, Some(p.to_owned()))),
            None => {
                let default = Path::new(DEFAULT_CONFIG_PATH);
                if default.exists() {
                    Ok((Config::load(default)?, Some(default.to_owned())))
                } else {
                    Ok((Config::default(), None))
                }
            }
        }
    }

    /// Parses config text merged over the defaults. Errors carry an empty path.
    pub fn from_json_str(text: &str) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|source| ConfigError::Syntax {
            path: PathBuf::new(),
            source,
        })?;
        let mut config = Config::default();
        let mut problems = Vec::new();
        apply(&value, &mut config, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: PathBuf::new(),
                problems,
            })
        }
    }

    /// The agent id to report: the configured one, else the host name.
    pub fn agent_id(&self) -> String {
        if self.agent.id.is_empty() {
            hostname_fallback()
        } else {
            self.agent.id.clone()
        }
    }
}

fn hostname_fallback() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

impl ConfigError {
    fn with_path(self, p: &Path) -> ConfigError {
        match self {
            ConfigError::Syntax { source, .. } => ConfigError::Syntax {
                path: p.to_owned(),
                source,
            },
            ConfigError::Invalid { problems, .. } => ConfigError::Invalid {
                path: p.to_owned(),
                problems,
            },
            other => other,
        }
    }
}

const SECTIONS: [&str; 5] = ["server", "agent", "monitoring", "local_output", "outputs"];
const OUTPUTS: [&str; 2] = ["syslog", "otlp"];

fn apply(value: &Value, c: &mut Config, problems: &mut Vec<Problem>) {
    let Some(top) = value.as_object() else {
        problems.push(Problem {
            key: String::new(),
            message: format!("the top level must be a JSON object, found {}", kind(value)),
        });
        return;
    };
    for (name, section) in top {
        if !SECTIONS.contains(&name.as_str()) {
            problems.push(unknown_key(name, name, &SECTIONS));
            continue;
        }
        let Some(obj) = section.as_object() else {
            problems.push(Problem {
                key: name.clone(),
                message: format!("must be an object, found {}", kind(section)),
            });
            continue;
        };
        if name == "outputs" {
            apply_outputs(obj, &mut c.outputs, problems);
            continue;
        }
        let mut s = Section::new(name, obj, problems);
        match name.as_str() {
            "server" => {
                let v = &mut c.server;
                s.string("url", &mut v.url);
                let mut key = String::new();
                if s.string("api_key", &mut key) {
                    v.api_key = Secret::new(key);
                }
                s.duration("timeout", &mut v.timeout);
                s.int("retry_max", 0, 1000, &mut v.retry_max);
                s.int("batch_size", 1, 10_000, &mut v.batch_size);
                s.optional_path("api_key_file", &mut v.api_key_file);
                s.optional_path("ca_file", &mut v.ca_file);
                s.optional_path("client_cert", &mut v.client_cert);
                s.optional_path("client_key", &mut v.client_key);
            }
            "agent" => {
                let v = &mut c.agent;
                s.string("id", &mut v.id);
                s.string("name", &mut v.name);
                s.duration("report_interval", &mut v.report_interval);
                s.int("buffer_size", 1, 10_000_000, &mut v.buffer_size);
                s.int("buffer_bytes", 64 * 1024, 4 << 30, &mut v.buffer_bytes);
                s.int("max_queue_size", 1, 100_000_000, &mut v.max_queue_size);
                s.bool("enable_tls", &mut v.enable_tls);
                s.path("collector_socket", &mut v.collector_socket);
                s.string("socket_group", &mut v.socket_group);
                s.path("state_dir", &mut v.state_dir);
                s.path("shipper_socket", &mut v.shipper_socket);
                s.string("shipper_user", &mut v.shipper_user);
                s.socket_addr("metrics_listen", &mut v.metrics_listen);
            }
            "monitoring" => {
                let v = &mut c.monitoring;
                s.bool("system_info", &mut v.system_info);
                s.bool("process_monitor", &mut v.process_monitor);
                s.bool("file_monitor", &mut v.file_monitor);
                s.bool("network_monitor", &mut v.network_monitor);
                s.bool("auth_monitor", &mut v.auth_monitor);
                s.path_list("watch_paths", &mut v.watch_paths);
                s.duration("scan_interval", &mut v.scan_interval);
                s.int(
                    "max_cmdline_bytes",
                    256,
                    16 * 1024 * 1024,
                    &mut v.max_cmdline_bytes,
                );
                s.bool("realtime_priority", &mut v.realtime_priority);
                s.path_list("exclude_paths", &mut v.exclude_paths);
                s.int("max_hash_bytes", 0, u64::MAX, &mut v.max_hash_bytes);
                s.int("max_files", 1, 100_000_000, &mut v.max_files);
                s.duration("stall_after", &mut v.stall_after);
                s.int("flood_limit", 1, u64::MAX, &mut v.flood_limit);
                s.duration("flood_window", &mut v.flood_window);
                s.path_list("auth_logs", &mut v.auth_logs);
                s.path("rules_dir", &mut v.rules_dir);
            }
            _ => {
                let v = &mut c.local_output;
                s.bool("json_format", &mut v.json_format);
                s.bool("one_shot", &mut v.one_shot);
                s.bool("show_timestamp", &mut v.show_timestamp);
                s.bool("show_colors", &mut v.show_colors);
                s.bool("compact_output", &mut v.compact_output);
            }
        }
        s.finish();
    }
    check_cross_field(c, problems);
}

/// `outputs.syslog` and `outputs.otlp`: each an object of its own keys.
fn apply_outputs(
    obj: &Map<String, Value>,
    outputs: &mut OutputsConfig,
    problems: &mut Vec<Problem>,
) {
    for (name, value) in obj {
        let full = format!("outputs.{name}");
        if !OUTPUTS.contains(&name.as_str()) {
            problems.push(unknown_key(&full, name, &OUTPUTS));
            continue;
        }
        let Some(section) = value.as_object() else {
            problems.push(Problem {
                key: full,
                message: format!("must be an object, found {}", kind(value)),
            });
            continue;
        };
        let mut s = Section::new(&full, section, problems);
        if name == "syslog" {
            let mut v = SyslogOutputConfig::default();
            s.string("address", &mut v.address);
            s.string("server_name", &mut v.server_name);
            s.optional_path("ca_file", &mut v.ca_file);
            s.optional_path("client_cert", &mut v.client_cert);
            s.optional_path("client_key", &mut v.client_key);
            if s.string("facility", &mut v.facility)
                && !SYSLOG_FACILITIES.iter().any(|(n, _)| *n == v.facility)
            {
                let names: Vec<&str> = SYSLOG_FACILITIES.iter().map(|(n, _)| *n).collect();
                let message = format!(
                    "{:?} is not a facility; one of {}",
                    v.facility,
                    names.join(", ")
                );
                s.problem("facility", message);
            }
            s.string("app_name", &mut v.app_name);
            s.duration("timeout", &mut v.timeout);
            s.int("batch_size", 1, 10_000, &mut v.batch_size);
            s.duration("confirm_after", &mut v.confirm_after);
            check_syslog(&mut s, &v);
            outputs.syslog = Some(v);
        } else {
            let mut v = OtlpOutputConfig::default();
            s.string("url", &mut v.url);
            s.headers("headers", &mut v.headers);
            s.optional_path("ca_file", &mut v.ca_file);
            s.optional_path("client_cert", &mut v.client_cert);
            s.optional_path("client_key", &mut v.client_key);
            s.duration("timeout", &mut v.timeout);
            s.int("batch_size", 1, 10_000, &mut v.batch_size);
            let url = v.url.trim().to_ascii_lowercase();
            if url.is_empty() {
                s.problem("url", "is required (the OTLP/HTTP logs endpoint, e.g. https://collector:4318/v1/logs)".into());
            } else if !url.starts_with("https://") && !url.starts_with("http://") {
                s.problem(
                    "url",
                    format!(
                        "{:?} must start with https:// (or http:// for a collector on this host)",
                        v.url
                    ),
                );
            }
            if v.client_cert.is_some() != v.client_key.is_some() {
                s.problem(
                    "client_cert",
                    "client_cert and client_key go together: set both or neither".into(),
                );
            }
            outputs.otlp = Some(v);
        }
        s.finish();
    }
}

fn check_syslog(s: &mut Section<'_>, v: &SyslogOutputConfig) {
    match v.address.rsplit_once(':') {
        _ if v.address.trim().is_empty() => s.problem(
            "address",
            "is required: the receiver's host:port (6514 is syslog over TLS)".into(),
        ),
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
        _ => s.problem(
            "address",
            format!(
                "{:?} is not host:port (e.g. \"siem.example.com:6514\")",
                v.address
            ),
        ),
    }
    let printable =
        |t: &str| !t.is_empty() && t.len() <= 48 && t.bytes().all(|b| (33..=126).contains(&b));
    if !printable(&v.app_name) {
        s.problem(
            "app_name",
            format!(
                "{:?} must be 1 to 48 printable ASCII characters without spaces (RFC 5424)",
                v.app_name
            ),
        );
    }
    if v.client_cert.is_some() != v.client_key.is_some() {
        s.problem(
            "client_cert",
            "client_cert and client_key go together: set both or neither".into(),
        );
    }
}

/// Rules that involve more than one key.
fn check_cross_field(c: &Config, problems: &mut Vec<Problem>) {
    let url = c.server.url.trim();
    if !url.is_empty() {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("http://") {
            if c.agent.enable_tls {
                problems.push(Problem {
                    key: "server.url".into(),
                    message: format!(
                        "{url:?} is plain http; use https, or set agent.enable_tls to false to allow it"
                    ),
                });
            }
        } else if !lower.starts_with("https://") {
            problems.push(Problem {
                key: "server.url".into(),
                message: format!("{url:?} must start with https://"),
            });
        } else if url.len() <= "https://".len() {
            problems.push(Problem {
                key: "server.url".into(),
                message: "has no host".into(),
            });
        }
    }
    if c.server.client_cert.is_some() != c.server.client_key.is_some() {
        problems.push(Problem {
            key: "server.client_cert".into(),
            message: "client_cert and client_key go together: set both or neither".into(),
        });
    }
    if c.monitoring.flood_window < Duration::from_secs(1) {
        problems.push(Problem {
            key: "monitoring.flood_window".into(),
            message: format!(
                "must be at least 1s, got {}",
                humantime::format_duration(c.monitoring.flood_window)
            ),
        });
    }
    // A missing API key is shipperd's concern (it may come from api_key_file or the
    // environment); shipperd says so at start, the collector does not care.
}

struct Section<'a> {
    name: &'a str,
    obj: &'a Map<String, Value>,
    known: Vec<&'static str>,
    problems: &'a mut Vec<Problem>,
}

impl<'a> Section<'a> {
    fn new(name: &'a str, obj: &'a Map<String, Value>, problems: &'a mut Vec<Problem>) -> Self {
        Section {
            name,
            obj,
            known: Vec::new(),
            problems,
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.obj.get(key)
    }

    fn problem(&mut self, key: &str, message: String) {
        self.problems.push(Problem {
            key: format!("{}.{}", self.name, key),
            message,
        });
    }

    fn expected(&mut self, key: &str, what: &str, found: &Value) {
        self.problem(key, format!("expected {what}, found {}", kind(found)));
    }

    fn bool(&mut self, key: &'static str, target: &mut bool) {
        match self.get(key) {
            None => {}
            Some(Value::Bool(b)) => *target = *b,
            Some(v) => self.expected(key, "true or false", v),
        }
    }

    fn string(&mut self, key: &'static str, target: &mut String) -> bool {
        match self.get(key) {
            None => false,
            Some(Value::String(s)) => {
                target.clone_from(s);
                true
            }
            Some(v) => {
                self.expected(key, "a string", v);
                false
            }
        }
    }

    fn path(&mut self, key: &'static str, target: &mut PathBuf) {
        let mut s = String::new();
        if self.string(key, &mut s) {
            if s.is_empty() {
                self.problem(key, "must not be empty".into());
            } else {
                *target = PathBuf::from(s);
            }
        }
    }

    fn optional_path(&mut self, key: &'static str, target: &mut Option<PathBuf>) {
        let mut p = PathBuf::new();
        self.path(key, &mut p);
        if !p.as_os_str().is_empty() {
            *target = Some(p);
        }
    }

    /// `"127.0.0.1:9464"`, `"[::1]:9464"`; `""` for none.
    fn socket_addr(&mut self, key: &'static str, target: &mut Option<std::net::SocketAddr>) {
        let mut s = String::new();
        if !self.string(key, &mut s) {
            return;
        }
        if s.is_empty() {
            *target = None;
            return;
        }
        match s.parse() {
            Ok(addr) => *target = Some(addr),
            Err(_) => self.problem(
                key,
                format!(
                    "expected an address and a port such as \"127.0.0.1:9464\" (or \"\" for \
                     none), got {s:?}"
                ),
            ),
        }
    }

    fn int(&mut self, key: &'static str, min: u64, max: u64, target: &mut u64) {
        match self.get(key) {
            None => {}
            Some(v @ Value::Number(n)) => match n.as_u64() {
                Some(x) if (min..=max).contains(&x) => *target = x,
                Some(x) => self.problem(key, format!("must be between {min} and {max}, got {x}")),
                None => self.expected(key, "a whole number", v),
            },
            Some(v) => self.expected(key, "a whole number", v),
        }
    }

    fn duration(&mut self, key: &'static str, target: &mut Duration) {
        match self.get(key) {
            None => {}
            Some(Value::String(s)) => match parse_duration(s) {
                Ok(d) => *target = d,
                Err(msg) => self.problem(key, msg),
            },
            Some(v) => self.expected(key, "a duration string such as \"30s\" or \"5m\"", v),
        }
    }

    fn path_list(&mut self, key: &'static str, target: &mut Vec<PathBuf>) {
        match self.get(key) {
            None => {}
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) if s.starts_with('/') => out.push(PathBuf::from(s)),
                        Value::String(s) => self.problem(
                            &format!("{key}[{i}]"),
                            format!("{s:?} is not an absolute path"),
                        ),
                        v => self.expected(&format!("{key}[{i}]"), "a path string", v),
                    }
                }
                *target = out;
            }
            Some(v) => self.expected(key, "a list of paths", v),
        }
    }

    /// An object of header names to values (`{"authorization": "Bearer …"}`); values are secrets.
    fn headers(&mut self, key: &'static str, target: &mut Vec<(String, Secret)>) {
        match self.get(key) {
            None => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    let valid_name = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                    match value {
                        Value::String(v) if valid_name && v.bytes().all(|b| (32..127).contains(&b) || b == b'\t') => {
                            target.push((name.to_ascii_lowercase(), Secret::new(v.clone())))
                        }
                        Value::String(_) if !valid_name => {
                            self.problem(&format!("{key}.{name}"), "is not a valid HTTP header name".into())
                        }
                        Value::String(_) => self.problem(
                            &format!("{key}.{name}"),
                            "holds characters not allowed in an HTTP header (control characters or non-ASCII)".into(),
                        ),
                        v => self.expected(&format!("{key}.{name}"), "a string", v),
                    }
                }
            }
            Some(v) => self.expected(key, "an object of header names to values", v),
        }
    }

    /// Reports every key of the section that no getter asked for.
    fn finish(self) {
        let known: BTreeSet<&str> = self.known.iter().copied().collect();
        for key in self.obj.keys() {
            if !known.contains(key.as_str()) {
                let candidates: Vec<&str> = known.iter().copied().collect();
                self.problems.push(unknown_key(
                    &format!("{}.{}", self.name, key),
                    key,
                    &candidates,
                ));
            }
        }
    }
}

fn unknown_key(full: &str, key: &str, candidates: &[&str]) -> Problem {
    let best = candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(key, c), *c))
        .min();
    let message = match best {
        Some((d, c)) if d <= 2 || (d <= 3 && key.len() > 8) => {
            format!("unknown key; did you mean \"{c}\"?")
        }
        _ => format!("unknown key; known keys here: {}", candidates.join(", ")),
    };
    Problem {
        key: full.to_owned(),
        message,
    }
}

/// Parses `"30s"`, `"5m"`, `"1h 30m"`, `"250ms"`. Zero is refused: every duration here is an
/// interval or a timeout, and zero would spin or never wait.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d.is_zero() => Err(format!("{s:?} is zero; give a positive duration")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{s:?} is not a duration ({e}); use a number with a unit, e.g. \"30s\", \"5m\", \"1h\""
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
