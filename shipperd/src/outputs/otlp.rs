//! OpenTelemetry logs over OTLP/HTTP: each batch is one `ExportLogsServiceRequest` (protobuf,
//! gzip) POSTed to the configured logs endpoint.
//!
//! One resource (service.name `sec-tracker`, service.version, host.name the agent id), one scope
//! (`sec-tracker`), and a log record per event: its time, its severity (INFO → INFO 9, WARNING →
//! WARN 13, CRITICAL → FATAL 21, with the text), its type as the event name, and the event itself
//! as a structured body (a key-value list mirroring the event's JSON), so a backend can query its
//! fields. The answer is classified as the management server's is: 2xx delivered (a partial
//! success is logged with the collector's reason), 408/429/5xx retried (Retry-After honoured),
//! 401/403 pause, 413 split, another 4xx set aside.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT,
};
use reqwest::{Client, Url};
use sec_tracker_proto::config::{OtlpOutputConfig, Secret};
use sec_tracker_proto::Config;

use super::{connect_steps, step};
use crate::sender::tls::{self, client_config_for, TlsFiles};
use crate::sender::{parse_retry_after, Outcome, SenderError, Step};

/// The OTLP/HTTP logs output.
pub struct OtlpOutput {
    client: Client,
    url: Url,
    headers: HeaderMap,
    /// Header values, to scrub them from anything a collector echoes back.
    secrets: Vec<Secret>,
    agent_id: String,
    timeout: Duration,
    ca_file: Option<PathBuf>,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl OtlpOutput {
    pub fn new(c: &OtlpOutputConfig, config: &Config) -> Result<OtlpOutput, SenderError> {
        let url = Url::parse(c.url.trim()).map_err(|e| SenderError::BadUrl {
            url: c.url.clone(),
            problem: e.to_string(),
        })?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(SenderError::BadUrl {
                url: c.url.clone(),
                problem: "has no host".into(),
            });
        }
        if url.scheme() == "http" && config.agent.enable_tls {
            return Err(SenderError::PlainHttp { url: c.url.clone() });
        }
        let mut headers = HeaderMap::new();
        let mut secrets = Vec::new();
        for (name, value) in &c.headers {
            let bad = |problem: &str| SenderError::BadUrl {
                url: c.url.clone(),
                problem: format!("outputs.otlp.headers.{name} {problem}"),
            };
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("is not a header name"))?;
            let mut v = HeaderValue::from_str(value.expose())
                .map_err(|_| bad("holds characters not allowed in an HTTP header"))?;
            v.set_sensitive(true);
            headers.insert(name, v);
            secrets.push(value.clone());
        }
        let files = TlsFiles {
            section: "outputs.otlp",
            ca_file: c.ca_file.as_deref(),
            client_cert: c.client_cert.as_deref(),
            client_key: c.client_key.as_deref(),
        };
        let tls = client_config_for(&files, &[b"h2", b"http/1.1"])?;
        let client = Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(c.timeout)
            .connect_timeout(c.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(config.agent.enable_tls)
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SenderError::Client(tls::chain_text(&e)))?;
        Ok(OtlpOutput {
            client,
            url,
            headers,
            secrets,
            agent_id: config.agent_id(),
            timeout: c.timeout,
            ca_file: c.ca_file.clone(),
            tls,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub async fn send_batch(&self, payloads: &[&[u8]]) -> Outcome {
        let mut records = Vec::with_capacity(payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            match serde_json::from_slice::<serde_json::Value>(p) {
                Ok(serde_json::Value::Object(event)) => records.push(log_record(event)),
                _ => {
                    return Outcome::Rejected {
                        status: 0,
                        reason: format!("payload #{} is not a JSON object; not sent", i + 1),
                    }
                }
            }
        }
        self.export(records).await
    }

    /// POSTs one request holding `records` (none for the connection test).
    async fn export(&self, records: Vec<wire::LogRecord>) -> Outcome {
        let request = wire::ExportLogsServiceRequest {
            resource_logs: vec![wire::ResourceLogs {
                resource: Some(wire::Resource {
                    attributes: vec![
                        kv("service.name", string("sec-tracker")),
                        kv("service.version", string(env!("CARGO_PKG_VERSION"))),
                        kv("host.name", string(&self.agent_id)),
                    ],
                    dropped_attributes_count: 0,
                }),
                scope_logs: vec![wire::ScopeLogs {
                    scope: Some(wire::InstrumentationScope {
                        name: "sec-tracker".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    log_records: records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let raw = request.encode_to_vec();
        let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 3 + 64), Compression::new(3));
        let body = match gz.write_all(&raw).and_then(|_| gz.finish()) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Rejected {
                    status: 0,
                    reason: format!("cannot compress the export: {e}"),
                }
            }
        };
        let sent = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header(CONTENT_ENCODING, "gzip")
            .header(
                USER_AGENT,
                concat!("sec-tracker-shipperd/", env!("CARGO_PKG_VERSION")),
            )
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) => self.classify(resp).await,
            Err(e) => self.transport_failure(&e),
        }
    }

    async fn classify(&self, resp: reqwest::Response) -> Outcome {
        let status = resp.status();
        let code = status.as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = resp.bytes().await.unwrap_or_default();
        if status.is_success() {
            if let Ok(answer) = wire::ExportLogsServiceResponse::decode(body.as_ref()) {
                if let Some(p) = answer
                    .partial_success
                    .filter(|p| p.rejected_log_records > 0)
                {
                    tracing::warn!(
                        rejected = p.rejected_log_records,
                        reason = %self.scrub(p.error_message),
                        "the OTLP collector accepted the export but rejected some of its records"
                    );
                }
            }
            return Outcome::Delivered;
        }
        // An OTLP error body is a google.rpc.Status; its message (field 2) is what to show.
        let message = wire::Status::decode(body.as_ref())
            .map(|s| s.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        let reason = self.scrub(format!(
            "OTLP collector answered {code}{}",
            if message.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", message.trim())
            }
        ));
        match code {
            408 | 429 | 500..=599 => Outcome::Retry {
                after: retry_after,
                reason,
            },
            401 | 403 => Outcome::Unauthorized {
                status: code,
                reason: format!("{reason}; check outputs.otlp.headers"),
            },
            413 => Outcome::TooLarge,
            _ => Outcome::Rejected {
                status: code,
                reason,
            },
        }
    }

    fn transport_failure(&self, e: &reqwest::Error) -> Outcome {
        let err: &(dyn std::error::Error + 'static) = e;
        let host = self.url.host_str().unwrap_or("");
        if let Some(tls_err) = tls::find::<rustls::Error>(err) {
            return Outcome::TlsFailure {
                reason: tls::describe(tls_err, host, self.ca_file.as_deref()),
            };
        }
        let reason = if e.is_timeout() {
            format!(
                "no answer from {} within {} (outputs.otlp.timeout)",
                self.url,
                humantime::format_duration(self.timeout)
            )
        } else {
            format!("sending to {} failed: {}", self.url, tls::detail_text(e))
        };
        Outcome::Retry {
            after: None,
            reason: self.scrub(reason),
        }
    }

    fn scrub(&self, mut text: String) -> String {
        for s in &self.secrets {
            if !s.is_empty() && text.contains(s.expose()) {
                text = text.replace(s.expose(), "<redacted>");
            }
        }
        text
    }

    /// `dns`, `tcp`, `tls` (https), then `otlp`: an empty export, which a collector accepts.
    pub async fn test_connection(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let host = self
            .url
            .host_str()
            .unwrap_or("")
            .trim_matches(['[', ']'])
            .to_owned();
        let port = self.url.port_or_known_default().unwrap_or(4318);
        let Some(tcp) = connect_steps(&host, port, self.timeout, &mut steps).await else {
            return steps;
        };
        if self.url.scheme() == "https" {
            let name = match rustls::pki_types::ServerName::try_from(host.clone()) {
                Ok(n) => n,
                Err(e) => {
                    steps.push(step(
                        "tls",
                        false,
                        format!("{host:?} is not a TLS server name: {e}"),
                    ));
                    return steps;
                }
            };
            let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
            match tokio::time::timeout(self.timeout, connector.connect(name, tcp)).await {
                Ok(Ok(s)) => {
                    let (_, session) = s.get_ref();
                    let version = session
                        .protocol_version()
                        .map_or("?".into(), |v| format!("{v:?}"));
                    steps.push(step(
                        "tls",
                        true,
                        format!("{version}, certificate verified for {host}"),
                    ));
                }
                Ok(Err(e)) => {
                    let reason = match tls::find::<rustls::Error>(&e) {
                        Some(err) => tls::describe(err, &host, self.ca_file.as_deref()),
                        None => format!("TLS handshake failed: {e}"),
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
            }
        } else {
            steps.push(step(
                "tls",
                true,
                "skipped: plain http; nothing is encrypted".into(),
            ));
        }
        steps.push(match self.export(Vec::new()).await {
            Outcome::Delivered => step(
                "otlp",
                true,
                format!("POST {} accepted an (empty) export", self.url.path()),
            ),
            other => step("otlp", false, format!("POST {}: {other}", self.url.path())),
        });
        steps
    }
}

/// One event as a log record.
fn log_record(event: serde_json::Map<String, serde_json::Value>) -> wire::LogRecord {
    let text = |k: &str| event.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let (number, severity_text) = match text("severity") {
        "CRITICAL" => (21, "CRITICAL"),
        "WARNING" => (13, "WARNING"),
        _ => (9, "INFO"),
    };
    let time = humantime::parse_rfc3339(text("timestamp"))
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    let observed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let event_name = text("type").to_owned();
    let mut attributes = Vec::new();
    if let Some(seq) = event.get("seq").and_then(|v| v.as_u64()) {
        attributes.push(kv("sec_tracker.seq", int(seq as i64)));
    }
    if let Some(stream) = event.get("stream_id").and_then(|v| v.as_str()) {
        attributes.push(kv("sec_tracker.stream_id", string(stream)));
    }
    wire::LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: observed,
        severity_number: number,
        severity_text: severity_text.into(),
        body: Some(any_value(serde_json::Value::Object(event))),
        attributes,
        event_name,
        ..Default::default()
    }
}

/// A JSON value as an OTLP `AnyValue`: objects become key-value lists, arrays arrays.
fn any_value(v: serde_json::Value) -> wire::AnyValue {
    use wire::any_value::Value as V;
    let value = match v {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(V::BoolValue(b)),
        serde_json::Value::Number(n) => Some(match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::DoubleValue(n.as_f64().unwrap_or(0.0)),
        }),
        serde_json::Value::String(s) => Some(V::StringValue(s)),
        serde_json::Value::Array(items) => Some(V::ArrayValue(wire::ArrayValue {
            values: items.into_iter().map(any_value).collect(),
        })),
        serde_json::Value::Object(map) => Some(V::KvlistValue(wire::KeyValueList {
            values: map
                .into_iter()
                .map(|(k, v)| wire::KeyValue {
                    key: k,
                    value: Some(any_value(v)),
                })
                .collect(),
        })),
    };
    wire::AnyValue { value }
}

fn kv(key: &str, value: wire::AnyValue) -> wire::KeyValue {
    wire::KeyValue {
        key: key.into(),
        value: Some(value),
    }
}

fn string(s: &str) -> wire::AnyValue {
    wire::AnyValue {
        value: Some(wire::any_value::Value::StringValue(s.into())),
    }
}

fn int(i: i64) -> wire::AnyValue {
    wire::AnyValue {
        value: Some(wire::any_value::Value::IntValue(i)),
    }
}

/// The OTLP messages this output sends and reads, field for field as the OpenTelemetry
/// protocol defines them (opentelemetry/proto/{collector/logs,logs,common,resource}/v1, and
/// google.rpc.Status for errors); the tests decode what we send with the official generated
/// types (the `opentelemetry-proto` crate).
pub mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_logs: Vec<ResourceLogs>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceResponse {
        #[prost(message, optional, tag = "1")]
        pub partial_success: Option<ExportLogsPartialSuccess>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsPartialSuccess {
        #[prost(int64, tag = "1")]
        pub rejected_log_records: i64,
        #[prost(string, tag = "2")]
        pub error_message: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceLogs {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_logs: Vec<ScopeLogs>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "2")]
        pub dropped_attributes_count: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeLogs {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub log_records: Vec<LogRecord>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "4")]
        pub dropped_attributes_count: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogRecord {
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        #[prost(fixed64, tag = "11")]
        pub observed_time_unix_nano: u64,
        #[prost(int32, tag = "2")]
        pub severity_number: i32,
        #[prost(string, tag = "3")]
        pub severity_text: String,
        #[prost(message, optional, tag = "5")]
        pub body: Option<AnyValue>,
        #[prost(message, repeated, tag = "6")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "7")]
        pub dropped_attributes_count: u32,
        #[prost(fixed32, tag = "8")]
        pub flags: u32,
        #[prost(bytes = "vec", tag = "9")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "10")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "12")]
        pub event_name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<any_value::Value>,
    }

    pub mod any_value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(string, tag = "1")]
            StringValue(String),
            #[prost(bool, tag = "2")]
            BoolValue(bool),
            #[prost(int64, tag = "3")]
            IntValue(i64),
            #[prost(double, tag = "4")]
            DoubleValue(f64),
            #[prost(message, tag = "5")]
            ArrayValue(super::ArrayValue),
            #[prost(message, tag = "6")]
            KvlistValue(super::KeyValueList),
            #[prost(bytes = "vec", tag = "7")]
            BytesValue(Vec<u8>),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
}
