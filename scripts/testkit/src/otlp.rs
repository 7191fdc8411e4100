//! The OpenTelemetry collector double: `POST /v1/logs` over TLS on 127.0.0.1, decoded with the
//! official generated types (`opentelemetry-proto`), so what shipperd sends is checked against
//! the protocol's own definitions rather than our copy of them.
//!
//! Each accepted log record is kept as JSON (`{"resource": {…}, "scope": "…", "time_unix_nano",
//! "severity_number", "severity_text", "event_name", "attributes": {…}, "body": <the body as
//! JSON>}`). It can refuse on demand: a failing status, or an authorization header it requires.

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::server::TestCert;

#[derive(Default)]
struct State {
    records: Vec<Value>,
    /// Answer this status to every export instead of accepting it.
    failing: Option<u16>,
    requests: u64,
    /// After [`OtlpReceiver::stop`]: nothing more is recorded (so `records` is final).
    stopped: bool,
}

/// A running OTLP/HTTP logs receiver; stops (closing every connection) when dropped.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    /// Listens on `addr` (port 0: any) with `cert`; requires `authorization: <auth>` when given.
    pub async fn start(
        cert: &TestCert,
        addr: SocketAddr,
        auth: Option<&str>,
    ) -> std::io::Result<OtlpReceiver> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let tls = crate::server::server_tls(cert, None)?;
        let acceptor = TlsAcceptor::from(tls);
        let state = Arc::new(Mutex::new(State::default()));
        let auth = auth.map(str::to_owned);
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    r = listener.accept() => if let Ok((tcp, _)) = r {
                        let acceptor = acceptor.clone();
                        let state = Arc::clone(&shared);
                        let auth = auth.clone();
                        conns.spawn(async move {
                            let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
                                return;
                            };
                            let service = hyper::service::service_fn(move |req| {
                                handle(req, Arc::clone(&state), auth.clone())
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        });
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(OtlpReceiver { addr, state, task })
    }

    /// Stops as a crashed collector would: connections closed, nothing more recorded; what
    /// [`OtlpReceiver::records`] returns afterwards is all it ever accepted.
    pub async fn stop(&mut self) {
        self.lock().stopped = true;
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// `https://localhost:<port>/v1/logs`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/v1/logs", self.addr.port())
    }

    /// Every log record accepted so far, as JSON.
    pub fn records(&self) -> Vec<Value> {
        self.lock().records.clone()
    }

    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Answer `status` to every export (None: accept again).
    pub fn set_failing(&self, status: Option<u16>) {
        self.lock().failing = status;
    }

    /// Waits until `f` holds of the records, or `timeout` passes.
    pub async fn wait_until(&self, timeout: Duration, f: impl Fn(&[Value]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if f(&self.lock().records) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    auth: Option<String>,
) -> Result<Reply, Infallible> {
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    lock().requests += 1;
    if req.uri().path() != "/v1/logs" || req.method() != hyper::Method::POST {
        return Ok(reply(404, "text/plain", b"POST /v1/logs".to_vec()));
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(expected) = &auth {
        if header("authorization").as_deref() != Some(expected.as_str()) {
            return Ok(reply(401, "text/plain", b"unauthorized".to_vec()));
        }
    }
    if header("content-type").as_deref() != Some("application/x-protobuf") {
        return Ok(reply(415, "text/plain", b"protobuf only".to_vec()));
    }
    let gzip = header("content-encoding").is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(400, "text/plain", b"body".to_vec())),
    };
    if let Some(status) = lock().failing {
        return Ok(reply(status, "text/plain", b"failing on purpose".to_vec()));
    }
    let mut plain = Vec::new();
    let raw: &[u8] = if gzip {
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .is_err()
        {
            return Ok(reply(400, "text/plain", b"bad gzip".to_vec()));
        }
        &plain
    } else {
        &body
    };
    let request = match ExportLogsServiceRequest::decode(raw) {
        Ok(r) => r,
        Err(e) => return Ok(reply(400, "text/plain", e.to_string().into_bytes())),
    };
    let mut records = Vec::new();
    for rl in request.resource_logs {
        let resource = rl
            .resource
            .map(|r| attributes(r.attributes))
            .unwrap_or_default();
        for sl in rl.scope_logs {
            let scope = sl.scope.map(|s| s.name).unwrap_or_default();
            for r in sl.log_records {
                records.push(json!({
                    "resource": resource,
                    "scope": scope,
                    "time_unix_nano": r.time_unix_nano,
                    "observed_time_unix_nano": r.observed_time_unix_nano,
                    "severity_number": r.severity_number,
                    "severity_text": r.severity_text,
                    "event_name": r.event_name,
                    "attributes": attributes(r.attributes),
                    "body": r.body.map(json_of).unwrap_or(Value::Null),
                }));
            }
        }
    }
    let mut st = lock();
    if st.stopped {
        return Ok(reply(503, "text/plain", b"stopped".to_vec()));
    }
    st.records.extend(records);
    drop(st);
    let answer = ExportLogsServiceResponse {
        partial_success: None,
    };
    Ok(reply(200, "application/x-protobuf", answer.encode_to_vec()))
}

fn attributes(kvs: Vec<KeyValue>) -> Value {
    let mut m = Map::new();
    for kv in kvs {
        m.insert(kv.key, kv.value.map(json_of).unwrap_or(Value::Null));
    }
    Value::Object(m)
}

/// An `AnyValue` back as the JSON it was made from.
fn json_of(v: AnyValue) -> Value {
    match v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.into_iter().map(json_of).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => attributes(kv.values),
        Some(any_value::Value::BytesValue(b)) => json!({ "bytes": b }),
        #[allow(unreachable_patterns)]
        Some(_) => Value::Null,
    }
}
