//! The HTTPS sender: one attempt at delivering a batch (or a health report) to the management
//! server, classified into an [`Outcome`] the delivery loop acts on.
//!
//! TLS is rustls (ring provider, TLS 1.2 and 1.3), trusting the system roots plus an optional
//! `server.ca_file`, with an optional client certificate; certificates and host names are always
//! verified. Bodies are JSON; batches are gzip-compressed. The API key goes only into the
//! `Authorization` header (marked sensitive) and is scrubbed from anything we report.
//!
//! Proxies: the sender connects directly (proxy environment variables are ignored), so that what
//! `test-connection` checks (DNS, TCP, TLS to the server) is what delivery uses.

mod retry_after;
pub mod tls;

pub use retry_after::parse_retry_after;
pub use sec_tracker_proto::backoff::{Backoff, MAX_RETRY_AFTER};

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::header::{
    HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT,
};
use reqwest::{Client, Response, StatusCode, Url};
use sec_tracker_proto::config::{Config, Secret};

/// Where the API key is read from when the config names none.
pub const API_KEY_ENV: &str = "SEC_TRACKER_API_KEY";
/// The batch endpoint, under `server.url`.
pub const DATA_PATH: &str = "/api/v1/agent/data";
/// The health endpoint, under `server.url`.
pub const HEALTH_PATH: &str = "/api/v1/agent/health";
/// gzip level for batches: most of level 6's ratio on JSON at a fraction of the CPU.
const GZIP_LEVEL: u32 = 3;
/// How much of an error response's body goes into a reason.
const BODY_SNIPPET_CHARS: usize = 200;

/// Why a [`Sender`] could not be built. Names the config key or file at fault; never holds the
/// API key.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("server.url is empty: server mode needs the management server's https:// URL")]
    NoUrl,
    #[error("server.url {url:?} is not usable: {problem}")]
    BadUrl { url: String, problem: String },
    #[error(
        "server.url {url:?} is plain http; use https, or set agent.enable_tls to false to allow it"
    )]
    PlainHttp { url: String },
    #[error(
        "no API key: set server.api_key or server.api_key_file in the config, or the \
         {API_KEY_ENV} environment variable"
    )]
    NoApiKey,
    #[error("the API key from {source_name} {problem}")]
    ApiKey {
        source_name: String,
        problem: String,
    },
    #[error("{key} {}: {problem}", path.display())]
    File {
        key: String,
        path: PathBuf,
        problem: String,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
}

/// Where the API key came from (for messages; the key itself is never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Config,
    File(PathBuf),
    Env,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Config => f.write_str("server.api_key"),
            KeySource::File(p) => write!(f, "server.api_key_file {}", p.display()),
            KeySource::Env => write!(f, "the {API_KEY_ENV} environment variable"),
        }
    }
}

/// What one attempt came to, and so what the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the batch may leave the queue.
    Delivered,
    /// Transport error, timeout, 408, 429, 5xx: try again later, no sooner than `after` when the
    /// server said so (`Retry-After` on 429/503).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// 401/403: the API key was refused. Pause sending, keep the events, report it.
    Unauthorized { status: u16, reason: String },
    /// 413: split the batch.
    TooLarge,
    /// Another 4xx (or 3xx): permanent for this batch; set it aside. `status` 0: refused here,
    /// before sending (a payload that is not a JSON object, a batch id unusable as a header).
    Rejected { status: u16, reason: String },
    /// The TLS handshake failed (unknown CA, expired certificate, wrong host, no common
    /// parameters): nothing was sent. Retry slowly and report loudly.
    TlsFailure { reason: String },
}

impl Outcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Delivered => f.write_str("delivered"),
            Outcome::Retry {
                after: Some(d),
                reason,
            } => write!(
                f,
                "will retry (not before {}): {reason}",
                humantime::format_duration(*d)
            ),
            Outcome::Retry {
                after: None,
                reason,
            } => write!(f, "will retry: {reason}"),
            Outcome::Unauthorized { reason, .. } => write!(f, "unauthorized: {reason}"),
            Outcome::TooLarge => f.write_str("batch too large for the server (413)"),
            Outcome::Rejected { reason, .. } => write!(f, "rejected: {reason}"),
            Outcome::TlsFailure { reason } => write!(f, "TLS failure: {reason}"),
        }
    }
}

/// One step of [`Sender::test_connection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `"dns"`, `"tcp"`, `"tls"` or `"api"`.
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The HTTPS client for one management server.
pub struct Sender {
    client: Client,
    base: Url,
    data_url: Url,
    health_url: Url,
    /// `Bearer <key>`, marked sensitive.
    auth: HeaderValue,
    /// Kept only to scrub it out of anything a server sends back.
    api_key: Secret,
    key_source: KeySource,
    agent_id: String,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    ca_file: Option<PathBuf>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("url", &self.base.as_str())
            .field("agent_id", &self.agent_id)
            .field(
                "api_key",
                &format_args!("<redacted, from {}>", self.key_source),
            )
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as {}", self.base, self.agent_id)
    }
}

fn api_key(config: &Config) -> Result<(Secret, KeySource), SenderError> {
    let server = &config.server;
    let (key, source) = if !server.api_key.is_empty() {
        (server.api_key.expose().trim().to_owned(), KeySource::Config)
    } else if let Some(path) = &server.api_key_file {
        let source = KeySource::File(path.clone());
        let text = std::fs::read(path).map_err(|e| SenderError::File {
            key: "server.api_key_file".into(),
            path: path.clone(),
            problem: format!("cannot read: {e}"),
        })?;
        let text = String::from_utf8(text).map_err(|_| SenderError::ApiKey {
            source_name: source.to_string(),
            problem: "is not UTF-8 text".into(),
        })?;
        warn_if_world_readable(path);
        (text.trim().to_owned(), source)
    } else {
        match std::env::var(API_KEY_ENV) {
            Ok(v) => (v.trim().to_owned(), KeySource::Env),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(SenderError::ApiKey {
                    source_name: KeySource::Env.to_string(),
                    problem: "is not UTF-8 text".into(),
                })
            }
            Err(std::env::VarError::NotPresent) => return Err(SenderError::NoApiKey),
        }
    };
    if key.is_empty() {
        return Err(SenderError::ApiKey {
            source_name: source.to_string(),
            problem: "is empty".into(),
        });
    }
    Ok((Secret::new(key), source))
}

fn warn_if_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o044 != 0 {
            tracing::warn!(
                path = %path.display(),
                "server.api_key_file is readable by others than its owner; chmod 600 it (owned by the shipper's user)"
            );
        }
    }
}

fn parse_url(config: &Config) -> Result<Url, SenderError> {
    let raw = config.server.url.trim();
    if raw.is_empty() {
        return Err(SenderError::NoUrl);
    }
    let url = Url::parse(raw).map_err(|e| SenderError::BadUrl {
        url: raw.to_owned(),
        problem: e.to_string(),
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SenderError::BadUrl {
            url: format!("{}://…@{}", url.scheme(), url.host_str().unwrap_or("")),
            problem: "must not carry a user name or password; the API key goes in \
                      server.api_key or server.api_key_file"
                .into(),
        });
    }
    match url.scheme() {
        "https" => {}
        "http" if !config.agent.enable_tls => {
            tracing::warn!(url = %url, "plain http: agent.enable_tls is false, nothing is encrypted");
        }
        "http" => {
            return Err(SenderError::PlainHttp {
                url: raw.to_owned(),
            })
        }
        other => {
            return Err(SenderError::BadUrl {
                url: raw.to_owned(),
                problem: format!("scheme {other:?}: use https://"),
            })
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(SenderError::BadUrl {
            url: raw.to_owned(),
            problem: "has no host".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(SenderError::BadUrl {
            url: raw.to_owned(),
            problem: "must not have a query or fragment".into(),
        });
    }
    Ok(url)
}

fn endpoint(base: &Url, path: &str) -> Result<Url, SenderError> {
    let joined = format!("{}{path}", base.as_str().trim_end_matches('/'));
    Url::parse(&joined).map_err(|e| SenderError::BadUrl {
        url: base.to_string(),
        problem: e.to_string(),
    })
}

impl Sender {
    /// Builds the HTTPS client from `config` (see the module docs). Reads the API key
    /// (`server.api_key`, else `server.api_key_file` trimmed, else `$SEC_TRACKER_API_KEY`), the CA
    /// file and the client certificate now, so a mistake shows at start.
    pub fn new(config: &Config) -> Result<Sender, SenderError> {
        let base = parse_url(config)?;
        let (api_key, key_source) = api_key(config)?;
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", api_key.expose())).map_err(|_| {
                SenderError::ApiKey {
                    source_name: key_source.to_string(),
                    problem:
                        "holds characters not allowed in an HTTP header (control characters or \
                          non-ASCII)"
                            .into(),
                }
            })?;
        auth.set_sensitive(true);
        let tls = tls::client_config(&config.server)?;
        let timeout = config.server.timeout;
        let client = Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(config.agent.enable_tls)
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SenderError::Client(tls::chain_text(&e)))?;
        Ok(Sender {
            client,
            data_url: endpoint(&base, DATA_PATH)?,
            health_url: endpoint(&base, HEALTH_PATH)?,
            base,
            auth,
            api_key,
            key_source,
            agent_id: config.agent_id(),
            timeout,
            tls,
            ca_file: config.server.ca_file.clone(),
        })
    }

    pub fn url(&self) -> &Url {
        &self.base
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn key_source(&self) -> &KeySource {
        &self.key_source
    }

    /// `host:port` of the server, for messages.
    fn authority(&self) -> String {
        let host = self.base.host_str().unwrap_or("");
        match self.base.port_or_known_default() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        }
    }

    /// The host name as certificates name it (no brackets around IPv6).
    fn host(&self) -> String {
        let host = self.base.host_str().unwrap_or("");
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned()
    }

    /// POSTs one batch: `{"agent_id","timestamp","batch_id","payloads":[…]}` gzip-compressed,
    /// with `Idempotency-Key` and `X-Batch-Id` set to `batch_id`. One attempt, classified.
    /// Each payload must be one JSON object's bytes; they are copied in verbatim.
    pub async fn send_batch(&self, batch_id: &str, payloads: &[&[u8]]) -> Outcome {
        let Ok(id_header) = HeaderValue::from_str(batch_id) else {
            return Outcome::Rejected {
                status: 0,
                reason: format!("batch id {batch_id:?} cannot be sent as an HTTP header"),
            };
        };
        let body = match self.batch_body(batch_id, payloads) {
            Ok(b) => b,
            Err(reason) => return Outcome::Rejected { status: 0, reason },
        };
        let request = self
            .client
            .post(self.data_url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "gzip")
            .header(
                USER_AGENT,
                concat!("sec-tracker-shipperd/", env!("CARGO_PKG_VERSION")),
            )
            .header("idempotency-key", id_header.clone())
            .header("x-batch-id", id_header)
            .body(body);
        self.classify(request.send().await).await
    }

    /// POSTs a health report: `{"agent_id","timestamp","status","metrics"}`. One attempt.
    pub async fn send_health(&self, status: &str, metrics: serde_json::Value) -> Outcome {
        let body = serde_json::json!({
            "agent_id": self.agent_id,
            "timestamp": now_rfc3339(),
            "status": status,
            "metrics": metrics,
        });
        let request = self
            .client
            .post(self.health_url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("sec-tracker-shipperd/", env!("CARGO_PKG_VERSION")),
            )
            .body(body.to_string());
        self.classify(request.send().await).await
    }

    fn batch_body(&self, batch_id: &str, payloads: &[&[u8]]) -> Result<Vec<u8>, String> {
        for (i, p) in payloads.iter().enumerate() {
            if !looks_like_object(p) {
                return Err(format!(
                    "payload #{} of batch {batch_id} is not a JSON object; not sent",
                    i + 1
                ));
            }
        }
        let raw: usize = payloads.iter().map(|p| p.len() + 1).sum();
        let mut gz = GzEncoder::new(
            Vec::with_capacity(raw / 4 + 64),
            Compression::new(GZIP_LEVEL),
        );
        let write = |gz: &mut GzEncoder<Vec<u8>>| -> io::Result<()> {
            write!(
                gz,
                "{{\"agent_id\":{},\"timestamp\":\"{}\",\"batch_id\":{},\"payloads\":[",
                json_string(&self.agent_id),
                now_rfc3339(),
                json_string(batch_id)
            )?;
            for (i, p) in payloads.iter().enumerate() {
                if i > 0 {
                    gz.write_all(b",")?;
                }
                gz.write_all(p)?;
            }
            gz.write_all(b"]}")
        };
        write(&mut gz).map_err(|e| format!("cannot compress batch {batch_id}: {e}"))?;
        gz.finish()
            .map_err(|e| format!("cannot compress batch {batch_id}: {e}"))
    }

    async fn classify(&self, result: reqwest::Result<Response>) -> Outcome {
        match result {
            Ok(resp) => self.classify_response(resp).await,
            Err(e) => self.classify_error(&e).await,
        }
    }

    async fn classify_response(&self, resp: Response) -> Outcome {
        let status = resp.status();
        let code = status.as_u16();
        if status.is_success() {
            drain(resp).await;
            return Outcome::Delivered;
        }
        let retry_after = if matches!(code, 429 | 503) {
            resp.headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let snippet = self.body_snippet(resp).await;
        let mut reason = format!("server answered {}", status_text(status));
        if let Some(d) = retry_after {
            reason.push_str(&format!(
                " (Retry-After: {})",
                humantime::format_duration(d)
            ));
        }
        if !snippet.is_empty() {
            reason.push_str(&format!(": {snippet}"));
        }
        match code {
            408 | 429 | 500..=599 => Outcome::Retry {
                after: retry_after,
                reason,
            },
            401 | 403 => Outcome::Unauthorized {
                status: code,
                reason: format!("{reason}; the API key from {} was refused", self.key_source),
            },
            413 => Outcome::TooLarge,
            300..=399 => Outcome::Rejected {
                status: code,
                reason: format!(
                    "{reason}; redirect to {} not followed: point server.url at the final address",
                    location.as_deref().unwrap_or("(no Location)")
                ),
            },
            _ => Outcome::Rejected {
                status: code,
                reason,
            },
        }
    }

    async fn classify_error(&self, e: &reqwest::Error) -> Outcome {
        let (outcome, ambiguous) = self.classify_error_now(e);
        // With TLS 1.3 a server refuses a client certificate only after our side of the
        // handshake is done, and hyper may then drop its alert ("connection was not ready"). When
        // the connection died without a clear cause, a bare handshake tells what it was.
        if ambiguous && self.base.scheme() == "https" {
            if let Some(reason) = self.tls_diagnosis().await {
                return Outcome::TlsFailure {
                    reason: self.scrub(reason),
                };
            }
        }
        outcome
    }

    /// The outcome for a transport error, and whether its cause is unclear (worth a probe).
    fn classify_error_now(&self, e: &reqwest::Error) -> (Outcome, bool) {
        let err: &(dyn StdError + 'static) = e;
        let authority = self.authority();
        if e.is_timeout() {
            let reason = format!(
                "no answer from {authority} within {} (server.timeout); the server is down, \
                 stalled or unreachable",
                humantime::format_duration(self.timeout)
            );
            return (
                Outcome::Retry {
                    after: None,
                    reason,
                },
                false,
            );
        }
        if let Some(tls_err) = tls::find::<rustls::Error>(err) {
            let reason = tls::describe(tls_err, &self.host(), self.ca_file.as_deref());
            let reason = self.scrub(reason);
            return (Outcome::TlsFailure { reason }, false);
        }
        let text = tls::chain_text(err);
        let kind = tls::io_kind(err);
        let ambiguous = text.contains("connection was not ready")
            || matches!(
                kind,
                Some(io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset)
            );
        let detail = tls::detail_text(e);
        let reason = match kind {
            Some(io::ErrorKind::ConnectionRefused) => format!(
                "connection refused by {authority}: the server is down or not listening on that \
                 port"
            ),
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted) => {
                format!("connection to {authority} was reset: {detail}")
            }
            Some(io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe) => {
                format!("{authority} closed the connection: {detail}")
            }
            Some(io::ErrorKind::TimedOut) => format!(
                "no answer from {authority} within {} (server.timeout)",
                humantime::format_duration(self.timeout)
            ),
            Some(io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable) => {
                format!("{authority} is unreachable: {detail}")
            }
            _ if text.contains("dns error") || text.contains("failed to lookup address") => {
                format!("cannot resolve {}: {detail}", self.host())
            }
            _ => format!("sending to {authority} failed: {detail}"),
        };
        let reason = self.scrub(reason);
        (
            Outcome::Retry {
                after: None,
                reason,
            },
            ambiguous,
        )
    }

    async fn body_snippet(&self, mut resp: Response) -> String {
        let mut buf = Vec::new();
        while buf.len() < 4096 {
            match resp.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&buf);
        let mut out = String::new();
        for word in text.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.extend(word.chars().map(|c| if c.is_control() { ' ' } else { c }));
        }
        if out.chars().count() > BODY_SNIPPET_CHARS {
            out = out.chars().take(BODY_SNIPPET_CHARS).collect();
            out.push('…');
        }
        self.scrub(out)
    }

    /// Removes the API key from text that came from elsewhere (a server's answer).
    fn scrub(&self, text: String) -> String {
        let key = self.api_key.expose();
        if key.is_empty() || !text.contains(key) {
            text
        } else {
            text.replace(key, "<redacted>")
        }
    }

    /// For `sec-trackerctl test-connection`: resolves the host, connects, does a TLS handshake
    /// with the same trust and checks as delivery, then POSTs an authenticated health report.
    /// Stops at the first step that fails; that step is last in the list, with the reason.
    pub async fn test_connection(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let host = self.host();
        let port = self.base.port_or_known_default().unwrap_or(443);
        let t = self.timeout;
        let step = |name, ok, detail: String| Step { name, ok, detail };

        // DNS
        let addrs: Vec<SocketAddr> =
            match tokio::time::timeout(t, tokio::net::lookup_host((host.as_str(), port))).await {
                Ok(Ok(a)) => a.collect(),
                Ok(Err(e)) => {
                    steps.push(step("dns", false, format!("cannot resolve {host}: {e}")));
                    return steps;
                }
                Err(_) => {
                    steps.push(step(
                        "dns",
                        false,
                        format!(
                            "resolving {host} took longer than {}",
                            humantime::format_duration(t)
                        ),
                    ));
                    return steps;
                }
            };
        if addrs.is_empty() {
            steps.push(step("dns", false, format!("{host} resolves to no address")));
            return steps;
        }
        let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        steps.push(step("dns", true, format!("{host} → {}", list.join(", "))));

        // TCP
        let mut failures = Vec::new();
        let mut stream = None;
        for addr in &addrs {
            match tokio::time::timeout(t, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    stream = Some((s, *addr));
                    break;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    failures.push(format!("{addr}: connection refused"));
                }
                Ok(Err(e)) => failures.push(format!("{addr}: {e}")),
                Err(_) => failures.push(format!(
                    "{addr}: no answer within {}",
                    humantime::format_duration(t)
                )),
            }
        }
        let Some((tcp, addr)) = stream else {
            steps.push(step(
                "tcp",
                false,
                format!("cannot connect to port {port}: {}", failures.join("; ")),
            ));
            return steps;
        };
        steps.push(step("tcp", true, format!("connected to {addr}")));

        // TLS
        if self.base.scheme() == "https" {
            match self.handshake(tcp, &host).await {
                Ok(detail) => steps.push(step("tls", true, detail)),
                Err(e) => {
                    steps.push(step("tls", false, e.text()));
                    return steps;
                }
            }
        } else {
            drop(tcp);
            steps.push(step(
                "tls",
                true,
                "skipped: plain http (agent.enable_tls is false); nothing is encrypted".into(),
            ));
        }

        // API
        let outcome = self
            .send_health("healthy", serde_json::json!({ "test_connection": true }))
            .await;
        steps.push(match outcome {
            Outcome::Delivered => step(
                "api",
                true,
                format!(
                    "POST {HEALTH_PATH} accepted with the API key from {}",
                    self.key_source
                ),
            ),
            other => step("api", false, format!("POST {HEALTH_PATH}: {other}")),
        });
        steps
    }

    /// Connects and does a bare TLS handshake; `Some(reason)` when TLS itself failed.
    async fn tls_diagnosis(&self) -> Option<String> {
        let host = self.host();
        let port = self.base.port_or_known_default().unwrap_or(443);
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        let tcp = tokio::time::timeout(self.timeout, connect)
            .await
            .ok()?
            .ok()?;
        match self.handshake(tcp, &host).await {
            Err(Probe::Tls(reason)) => Some(reason),
            _ => None,
        }
    }

    /// A TLS handshake over `tcp` with the sender's TLS config, in a blocking task, then a short
    /// read for an alert the server sends after it (TLS 1.3 refuses client certificates there).
    async fn handshake(&self, tcp: tokio::net::TcpStream, host: &str) -> Result<String, Probe> {
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| Probe::Other(format!("{host:?} is not a valid TLS server name: {e}")))?;
        let timeout = self.timeout;
        let sock = tcp
            .into_std()
            .and_then(|s| {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                Ok(s)
            })
            .map_err(|e| Probe::Other(format!("socket setup failed: {e}")))?;
        let config = self.tls.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut sock = sock;
            let mut conn = rustls::ClientConnection::new(config, name).map_err(Probe::Rustls)?;
            while conn.is_handshaking() {
                conn.complete_io(&mut sock).map_err(io_probe)?;
            }
            let version = conn
                .protocol_version()
                .map_or("?".into(), |v| format!("{v:?}"));
            let suite = conn
                .negotiated_cipher_suite()
                .map_or("?".into(), |s| format!("{:?}", s.suite()));
            // Listen briefly for a post-handshake alert.
            let until = std::time::Instant::now() + timeout.min(Duration::from_millis(300));
            loop {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
                    break;
                }
                match conn.read_tls(&mut sock) {
                    Ok(0) => break,
                    Ok(_) => {
                        conn.process_new_packets().map_err(Probe::Rustls)?;
                    }
                    Err(_) => break,
                }
            }
            conn.send_close_notify();
            let _ = sock.set_write_timeout(Some(Duration::from_millis(300)));
            let _ = conn.complete_io(&mut sock);
            Ok(format!("{version} {suite}"))
        })
        .await
        .map_err(|e| Probe::Other(format!("handshake task failed: {e}")))?;
        match joined {
            Ok(params) => Ok(format!(
                "{params}, certificate verified for {host}{}",
                if self.tls.client_auth_cert_resolver.has_certs() {
                    ", client certificate accepted"
                } else {
                    ""
                }
            )),
            Err(Probe::Rustls(e)) => {
                Err(Probe::Tls(tls::describe(&e, host, self.ca_file.as_deref())))
            }
            Err(other) => Err(other),
        }
    }
}

/// How a bare handshake went wrong.
enum Probe {
    /// rustls refused (raw; described by `handshake`).
    Rustls(rustls::Error),
    /// rustls refused, as a sentence.
    Tls(String),
    /// Not TLS's fault: timeout, connection closed, ….
    Other(String),
}

impl Probe {
    fn text(self) -> String {
        match self {
            Probe::Rustls(e) => e.to_string(),
            Probe::Tls(s) | Probe::Other(s) => s,
        }
    }
}

/// A handshake's I/O error: the rustls error inside it, or a sentence.
fn io_probe(e: io::Error) -> Probe {
    if let Some(inner) = tls::find::<rustls::Error>(&e) {
        return Probe::Rustls(inner.clone());
    }
    Probe::Other(match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            "no TLS answer from the server within server.timeout".into()
        }
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
            format!("the server closed the connection during the TLS handshake ({e})")
        }
        _ => format!("TLS handshake failed: {e}"),
    })
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A cheap shape check (the payloads are our own serialized events): `{ … }`.
fn looks_like_object(p: &[u8]) -> bool {
    let t = p.trim_ascii();
    t.first() == Some(&b'{') && t.last() == Some(&b'}')
}

fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

/// Reads (a bounded amount of) a response body so the connection can be reused.
async fn drain(mut resp: Response) {
    let mut read = 0usize;
    while read < 64 * 1024 {
        match resp.chunk().await {
            Ok(Some(c)) => read += c.len(),
            _ => break,
        }
    }
}
