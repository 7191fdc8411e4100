//! Syslog over TLS: each event as one RFC 5424 message, framed by octet counting as RFC 5425
//! says (`MSG-LEN SP SYSLOG-MSG`), over one verified TLS connection kept open between batches.
//!
//! The message is `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID - MSG`: the facility from the
//! config and the severity from the event's (CRITICAL → crit, WARNING → warning, INFO → info),
//! the event's own time (microseconds, the most RFC 5424 allows), the agent id as host name, the
//! event type as MSGID, and the event's JSON, as the management server gets it, as MSG.
//!
//! Syslog has no acknowledgement. A batch counts as delivered once it is written and the
//! connection is still standing `confirm_after` later: a receiver that stops, restarts or
//! resets the connection within that time (an rsyslog restart resets it at once when it left
//! data unread) gets the batch again on the next connection. What this cannot see is a
//! receiver process that took the bytes into its socket and then died before reading them, after
//! `confirm_after`: for that guarantee the receiver must acknowledge, which RFC 5425 does not.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use sec_tracker_proto::config::{SyslogOutputConfig, SYSLOG_FACILITIES};
use sec_tracker_proto::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{connect_any, connect_steps, step, EventHead};
use crate::sender::tls::{self, client_config_for, TlsFiles};
use crate::sender::{Outcome, SenderError, Step};

/// The syslog-over-TLS output.
pub struct SyslogOutput {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    ca_file: Option<PathBuf>,
    facility: u8,
    app_name: String,
    hostname: String,
    timeout: Duration,
    confirm_after: Duration,
    /// The open connection, if any: writers take turns; confirmations do not hold it.
    conn: tokio::sync::Mutex<Option<Connection>>,
    connections: AtomicU64,
}

/// One TLS connection: its write half, and what a reader task saw of it.
struct Connection {
    writer: WriteHalf<TlsStream<TcpStream>>,
    health: Arc<ConnectionHealth>,
    reader: tokio::task::AbortHandle,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The read half lives in the reader task: ending it closes the socket.
        self.reader.abort();
    }
}

/// Set by the reader task when the receiver closed or reset the connection (a syslog receiver
/// sends nothing, so anything it reads is the end).
#[derive(Default)]
struct ConnectionHealth {
    broken: AtomicBool,
    why: Mutex<String>,
}

impl ConnectionHealth {
    fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn why(&self) -> String {
        self.why.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn mark(&self, why: String) {
        *self.why.lock().unwrap_or_else(|p| p.into_inner()) = why;
        self.broken.store(true, Ordering::Release);
    }
}

impl SyslogOutput {
    pub fn new(c: &SyslogOutputConfig, config: &Config) -> Result<SyslogOutput, SenderError> {
        let bad = |problem: String| SenderError::BadUrl {
            url: c.address.clone(),
            problem,
        };
        let (host, port) = c
            .address
            .rsplit_once(':')
            .ok_or_else(|| bad("outputs.syslog.address must be host:port".into()))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port: u16 = port
            .parse()
            .map_err(|_| bad(format!("{port:?} is not a port number")))?;
        let name = if c.server_name.is_empty() {
            host.clone()
        } else {
            c.server_name.clone()
        };
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| bad(format!("{name:?} is not a valid TLS server name: {e}")))?;
        let files = TlsFiles {
            section: "outputs.syslog",
            ca_file: c.ca_file.as_deref(),
            client_cert: c.client_cert.as_deref(),
            client_key: c.client_key.as_deref(),
        };
        let tls = client_config_for(&files, &[])?;
        let facility = SYSLOG_FACILITIES
            .iter()
            .find(|(n, _)| *n == c.facility)
            .map_or(10, |(_, f)| *f);
        Ok(SyslogOutput {
            host,
            port,
            server_name,
            connector: TlsConnector::from(tls),
            ca_file: c.ca_file.clone(),
            facility,
            app_name: c.app_name.clone(),
            hostname: header_token(&config.agent_id(), 255),
            timeout: c.timeout,
            confirm_after: c.confirm_after,
            conn: tokio::sync::Mutex::new(None),
            connections: AtomicU64::new(0),
        })
    }

    pub fn target(&self) -> String {
        if self.host.contains(':') {
            format!("syslog+tls://[{}]:{}", self.host, self.port)
        } else {
            format!("syslog+tls://{}:{}", self.host, self.port)
        }
    }

    /// Writes the batch and waits `confirm_after` for the connection to prove it still stands.
    pub async fn send_batch(&self, payloads: &[&[u8]]) -> Outcome {
        let mut frames = Vec::with_capacity(payloads.iter().map(|p| p.len() + 96).sum());
        for (i, p) in payloads.iter().enumerate() {
            let Some(head) = EventHead::of(p) else {
                return Outcome::Rejected {
                    status: 0,
                    reason: format!("payload #{} is not a JSON object; not sent", i + 1),
                };
            };
            self.frame(&head, p, &mut frames);
        }
        let health = {
            let mut guard = self.conn.lock().await;
            let conn = match guard.as_mut() {
                Some(c) if !c.health.is_broken() => c,
                _ => {
                    *guard = None;
                    match self.connect().await {
                        Ok(c) => guard.insert(c),
                        Err(outcome) => return outcome,
                    }
                }
            };
            let write = async {
                conn.writer.write_all(&frames).await?;
                conn.writer.flush().await
            };
            match tokio::time::timeout(self.timeout, write).await {
                Ok(Ok(())) => Arc::clone(&conn.health),
                Ok(Err(e)) => {
                    let why = conn.health.why();
                    *guard = None;
                    return Outcome::Retry {
                        after: None,
                        reason: format!(
                            "writing to {} failed: {e}{}",
                            self.target(),
                            if why.is_empty() {
                                String::new()
                            } else {
                                format!(" ({why})")
                            }
                        ),
                    };
                }
                Err(_) => {
                    *guard = None;
                    return Outcome::Retry {
                        after: None,
                        reason: format!(
                            "{} took no data for {}: the receiver is stalled",
                            self.target(),
                            humantime::format_duration(self.timeout)
                        ),
                    };
                }
            }
        };
        tokio::time::sleep(self.confirm_after).await;
        if health.is_broken() {
            Outcome::Retry {
                after: None,
                reason: format!(
                    "{} closed the connection right after a batch ({}): it is sent again",
                    self.target(),
                    health.why()
                ),
            }
        } else {
            Outcome::Delivered
        }
    }

    /// Appends one RFC 5425 frame holding the RFC 5424 message for `payload`.
    fn frame(&self, head: &EventHead<'_>, payload: &[u8], out: &mut Vec<u8>) {
        let severity = match head.severity.as_deref() {
            Some("CRITICAL") => 2,
            Some("WARNING") => 4,
            _ => 6,
        };
        let pri = u16::from(self.facility) * 8 + severity;
        let timestamp = head
            .timestamp
            .as_deref()
            .and_then(rfc5424_timestamp)
            .unwrap_or_else(|| "-".into());
        let msgid = header_token(head.kind.as_deref().unwrap_or(""), 32);
        let header = format!(
            "<{pri}>1 {timestamp} {} {} - {msgid} - ",
            self.hostname, self.app_name
        );
        let len = header.len() + payload.len();
        out.extend_from_slice(format!("{len} ").as_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
    }

    async fn connect(&self) -> Result<Connection, Outcome> {
        let retry = |reason| Outcome::Retry {
            after: None,
            reason,
        };
        let addrs: Vec<_> = match tokio::time::timeout(
            self.timeout,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => return Err(retry(format!("cannot resolve {}: {e}", self.host))),
            Err(_) => return Err(retry(format!("resolving {} timed out", self.host))),
        };
        let (tcp, _) = connect_any(&addrs, self.timeout)
            .await
            .map_err(|f| retry(format!("cannot connect to {}: {f}", self.target())))?;
        let _ = tcp.set_nodelay(true);
        let tls = match tokio::time::timeout(
            self.timeout,
            self.connector.connect(self.server_name.clone(), tcp),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(self.handshake_failure(e)),
            Err(_) => {
                return Err(retry(format!(
                    "no TLS answer from {} within {}",
                    self.target(),
                    humantime::format_duration(self.timeout)
                )))
            }
        };
        let (mut reader, writer) = tokio::io::split(tls);
        let health = Arc::new(ConnectionHealth::default());
        let seen = Arc::clone(&health);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) => return seen.mark("the receiver closed it".into()),
                    // A syslog receiver has nothing to say; ignore it and wait for the end.
                    Ok(_) => {}
                    Err(e) => return seen.mark(e.to_string()),
                }
            }
        })
        .abort_handle();
        let n = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(target_address = %self.target(), connection = n, "syslog connection open");
        Ok(Connection {
            writer,
            health,
            reader,
        })
    }

    fn handshake_failure(&self, e: std::io::Error) -> Outcome {
        match tls::find::<rustls::Error>(&e) {
            Some(err) => Outcome::TlsFailure {
                reason: tls::describe(err, &self.server_name_text(), self.ca_file.as_deref()),
            },
            None => Outcome::Retry {
                after: None,
                reason: format!("TLS handshake with {} failed: {e}", self.target()),
            },
        }
    }

    fn server_name_text(&self) -> String {
        match &self.server_name {
            ServerName::DnsName(n) => n.as_ref().to_owned(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            other => format!("{other:?}"),
        }
    }

    /// `dns`, `tcp`, `tls`, then `syslog`: one message (MSGID `test_connection`, severity info)
    /// sent on its own connection and confirmed as a batch is.
    pub async fn test_connection(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let Some(tcp) = connect_steps(&self.host, self.port, self.timeout, &mut steps).await else {
            return steps;
        };
        let handshake = tokio::time::timeout(
            self.timeout,
            self.connector.connect(self.server_name.clone(), tcp),
        )
        .await;
        let mut tls_stream = match handshake {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let reason = match self.handshake_failure(e) {
                    Outcome::TlsFailure { reason } | Outcome::Retry { reason, .. } => reason,
                    other => other.to_string(),
                };
                steps.push(step("tls", false, reason));
                return steps;
            }
            Err(_) => {
                steps.push(step(
                    "tls",
                    false,
                    "no TLS answer within the timeout".into(),
                ));
                return steps;
            }
        };
        let (_, session) = tls_stream.get_ref();
        let version = session
            .protocol_version()
            .map_or("?".into(), |v| format!("{v:?}"));
        let suite = session
            .negotiated_cipher_suite()
            .map_or("?".into(), |s| format!("{:?}", s.suite()));
        steps.push(step(
            "tls",
            true,
            format!(
                "{version} {suite}, certificate verified for {}",
                self.server_name_text()
            ),
        ));
        let payload = serde_json::json!({
            "type": "test_connection",
            "severity": "INFO",
            "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            "message": "sec-trackerctl test-connection",
        })
        .to_string();
        let mut frame = Vec::new();
        if let Some(head) = EventHead::of(payload.as_bytes()) {
            self.frame(&head, payload.as_bytes(), &mut frame);
        }
        let written = async {
            tls_stream.write_all(&frame).await?;
            tls_stream.flush().await
        };
        if let Err(e) = written.await {
            steps.push(step(
                "syslog",
                false,
                format!("writing a message failed: {e}"),
            ));
            return steps;
        }
        // The receiver sends nothing: a read that ends within confirm_after means it hung up.
        let mut buf = [0u8; 64];
        match tokio::time::timeout(self.confirm_after, tls_stream.read(&mut buf)).await {
            Err(_) => steps.push(step(
                "syslog",
                true,
                format!(
                    "a test message (MSGID test_connection) was written and the connection stood \
                     {} after it",
                    humantime::format_duration(self.confirm_after)
                ),
            )),
            Ok(r) => steps.push(step(
                "syslog",
                false,
                format!(
                    "the receiver hung up after the test message: {}",
                    match r {
                        Ok(_) => "closed".to_owned(),
                        Err(e) => e.to_string(),
                    }
                ),
            )),
        }
        let _ = tls_stream.shutdown().await;
        steps
    }
}

/// An RFC 5424 header field: printable US-ASCII without spaces, at most `max` characters;
/// `-` (the nil value) when nothing is left.
fn header_token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

/// The event's RFC 3339 time with at most six fractional digits, as RFC 5424 requires; None
/// when it is not such a time.
fn rfc5424_timestamp(t: &str) -> Option<String> {
    let parsed = humantime::parse_rfc3339(t).ok()?;
    Some(humantime::format_rfc3339_micros(parsed).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output() -> SyslogOutput {
        let mut config = Config::default();
        config.agent.id = "web 1\n".into();
        let c = SyslogOutputConfig {
            address: "127.0.0.1:6514".into(),
            ..Default::default()
        };
        SyslogOutput::new(&c, &config).unwrap()
    }

    #[test]
    fn an_event_becomes_one_octet_counted_rfc5424_message() {
        let payload = br#"{"seq":7,"timestamp":"2026-12-01T10:20:30.123456789Z","type":"process_start","severity":"WARNING","message":"m"}"#;
        let mut out = Vec::new();
        let o = output();
        o.frame(&EventHead::of(payload).unwrap(), payload, &mut out);
        let text = String::from_utf8(out).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        // authpriv (10) * 8 + warning (4) = 84; microseconds; the host name without its space.
        let expected = format!(
            "<84>1 2026-12-01T10:20:30.123456Z web1 sec-tracker - process_start - {}",
            std::str::from_utf8(payload).unwrap()
        );
        assert_eq!(msg, expected);
    }

    #[test]
    fn missing_fields_become_nil_values() {
        let payload = br#"{"message":"no type, no time"}"#;
        let mut out = Vec::new();
        output().frame(&EventHead::of(payload).unwrap(), payload, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("<86>1 - web1 sec-tracker - - - {"), "{text}");
    }

    #[test]
    fn a_payload_that_is_not_an_object_is_refused_before_sending() {
        assert!(EventHead::of(b"[1,2]").is_none());
        assert!(EventHead::of(b"not json").is_none());
    }
}
