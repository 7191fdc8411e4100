//! Where shipperd delivers: the management server (the main output, [`crate::sender`]), syslog
//! over TLS ([`syslog`]) and OpenTelemetry logs over OTLP/HTTP ([`otlp`]). Each configured
//! output gets its own durable queue, cursor, status and counters in the daemon, so one that is
//! down holds back only itself; all of them answer a batch with the same [`Outcome`]s, so the
//! delivery loop (retries, backoff, splitting, dead letters) is the same for every output.

pub mod otlp;
pub mod syslog;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use sec_tracker_proto::Config;

use crate::sender::{Outcome, Sender, SenderError, Step};

/// One configured output.
pub enum Output {
    Server(Sender),
    Syslog(syslog::SyslogOutput),
    Otlp(otlp::OtlpOutput),
}

impl Output {
    /// Every output the config names, the management server first when `server.url` is set.
    /// Reads key, CA and certificate files now, so a mistake shows at start.
    pub fn all(config: &Config) -> Result<Vec<Output>, SenderError> {
        let mut outputs = Vec::new();
        if !config.server.url.trim().is_empty() {
            outputs.push(Output::Server(Sender::new(config)?));
        }
        if let Some(s) = &config.outputs.syslog {
            outputs.push(Output::Syslog(syslog::SyslogOutput::new(s, config)?));
        }
        if let Some(o) = &config.outputs.otlp {
            outputs.push(Output::Otlp(otlp::OtlpOutput::new(o, config)?));
        }
        Ok(outputs)
    }

    /// The output's name in status, metrics and logs: `server`, `syslog`, `otlp`.
    pub fn name(&self) -> &'static str {
        match self {
            Output::Server(_) => "server",
            Output::Syslog(_) => "syslog",
            Output::Otlp(_) => "otlp",
        }
    }

    /// Who answers, in sentences: "the server refused …".
    pub fn peer(&self) -> &'static str {
        match self {
            Output::Server(_) => "the server",
            Output::Syslog(_) => "the syslog receiver",
            Output::Otlp(_) => "the OTLP collector",
        }
    }

    /// What it authenticates with, in sentences.
    pub fn credentials(&self) -> &'static str {
        match self {
            Output::Server(_) => "the API key",
            Output::Syslog(_) => "the client certificate",
            Output::Otlp(_) => "the headers (outputs.otlp.headers)",
        }
    }

    /// Where it delivers, for people: a URL or `syslog+tls://host:port`.
    pub fn target(&self) -> String {
        match self {
            Output::Server(s) => s.url().to_string(),
            Output::Syslog(s) => s.target(),
            Output::Otlp(o) => o.url().to_string(),
        }
    }

    /// The queue's file name in shipperd's state directory. The server's keeps the name it
    /// always had, so an upgrade continues its queue.
    pub fn queue_file(&self) -> &'static str {
        match self {
            Output::Server(_) => "queue.db",
            Output::Syslog(_) => "queue-syslog.db",
            Output::Otlp(_) => "queue-otlp.db",
        }
    }

    /// Events per batch at most.
    pub fn batch_size(&self, config: &Config) -> usize {
        let n = match self {
            Output::Server(_) => config.server.batch_size,
            Output::Syslog(_) => config.outputs.syslog.as_ref().map_or(100, |s| s.batch_size),
            Output::Otlp(_) => config.outputs.otlp.as_ref().map_or(100, |o| o.batch_size),
        };
        n.max(1) as usize
    }

    /// Batches delivered at the same time at most. Syslog's wait for their confirmation
    /// (`confirm_after`, 2 s by default) without holding the connection, so many overlap: 32
    /// batches of 200 keep 3,200 events a second flowing.
    pub fn max_in_flight(&self) -> usize {
        match self {
            Output::Syslog(_) => 32,
            _ => 3,
        }
    }

    /// Delivers one batch of event payloads (each one JSON object), one attempt, classified.
    pub async fn send_batch(&self, batch_id: &str, payloads: &[&[u8]]) -> Outcome {
        match self {
            Output::Server(s) => s.send_batch(batch_id, payloads).await,
            Output::Syslog(s) => s.send_batch(payloads).await,
            Output::Otlp(o) => o.send_batch(payloads).await,
        }
    }

    /// For `sec-trackerctl test-connection`: each step on the way, stopping at the first that
    /// fails (last in the list, with the reason).
    pub async fn test_connection(&self) -> Vec<Step> {
        match self {
            Output::Server(s) => s.test_connection().await,
            Output::Syslog(s) => s.test_connection().await,
            Output::Otlp(o) => o.test_connection().await,
        }
    }
}

/// The `dns` and `tcp` steps of a connection test: the connected stream, or None with the
/// failed step pushed.
pub(crate) async fn connect_steps(
    host: &str,
    port: u16,
    timeout: Duration,
    steps: &mut Vec<Step>,
) -> Option<tokio::net::TcpStream> {
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                steps.push(step("dns", false, format!("cannot resolve {host}: {e}")));
                return None;
            }
            Err(_) => {
                let t = humantime::format_duration(timeout);
                steps.push(step(
                    "dns",
                    false,
                    format!("resolving {host} took longer than {t}"),
                ));
                return None;
            }
        };
    if addrs.is_empty() {
        steps.push(step("dns", false, format!("{host} resolves to no address")));
        return None;
    }
    let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    steps.push(step("dns", true, format!("{host} → {}", list.join(", "))));
    match connect_any(&addrs, timeout).await {
        Ok((tcp, addr)) => {
            steps.push(step("tcp", true, format!("connected to {addr}")));
            Some(tcp)
        }
        Err(failures) => {
            steps.push(step(
                "tcp",
                false,
                format!("cannot connect to port {port}: {failures}"),
            ));
            None
        }
    }
}

/// Connects to the first address that answers; the failures, in words, when none does.
pub(crate) async fn connect_any(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(tokio::net::TcpStream, SocketAddr), String> {
    let mut failures = Vec::new();
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok((s, *addr)),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                failures.push(format!("{addr}: connection refused"))
            }
            Ok(Err(e)) => failures.push(format!("{addr}: {e}")),
            Err(_) => failures.push(format!(
                "{addr}: no answer within {}",
                humantime::format_duration(timeout)
            )),
        }
    }
    Err(failures.join("; "))
}

pub(crate) fn step(name: &'static str, ok: bool, detail: String) -> Step {
    Step { name, ok, detail }
}

/// The few fields of an event payload that outputs put outside the JSON itself.
#[derive(serde::Deserialize)]
pub(crate) struct EventHead<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    pub severity: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    pub timestamp: Option<std::borrow::Cow<'a, str>>,
}

impl EventHead<'_> {
    /// Parses what a payload says about itself; None when it is not a JSON object.
    pub(crate) fn of(payload: &[u8]) -> Option<EventHead<'_>> {
        serde_json::from_slice(payload).ok()
    }
}
