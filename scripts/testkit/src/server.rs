//! The management-server double: an HTTPS server with a throwaway CA, in process.
//!
//! [`TestCa`] issues certificates (for localhost, for another host name, expired, for a client);
//! [`TestServer`] serves `POST /api/v1/agent/data` and `/api/v1/agent/health` over TLS on
//! 127.0.0.1, checks the Bearer key, gunzips and parses the body, records what it received (in
//! memory, and with [`ServerOptions::record_dir`] in files, before it answers), and misbehaves on
//! demand ([`Mode`]): failing statuses, `Retry-After`, stalling, refusing connections, refusing
//! the key, size limits. The `test-server` binary serves it to scripts.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// The key a [`TestServer`] accepts unless told otherwise.
pub const TEST_API_KEY: &str = "test-api-key-5f1c0e7d2b";

/// A throwaway certificate authority.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// A certificate (signed by a [`TestCa`]) and its private key.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for TestCert {
    fn clone(&self) -> Self {
        TestCert {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TestCert {
    /// A certificate (chain) and key from PEM text, e.g. written earlier by [`TestCert::write`].
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> io::Result<TestCert> {
        use rustls::pki_types::pem::PemObject;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(io::Error::other)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(io::Error::other)?;
        Ok(TestCert {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            chain,
            key,
        })
    }

    /// Writes `<stem>.crt` and `<stem>.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> io::Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((cert, key))
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl TestCa {
    /// A new CA ("sec-tracker test CA"). Panics if rcgen fails (test code).
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "sec-tracker test CA");
        let cert = params.self_signed(&key).expect("self-sign CA");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the CA certificate (PEM) to `path`, e.g. for `server.ca_file`.
    pub fn write_ca_pem(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, &self.cert_pem)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> TestCert {
        let key = KeyPair::generate().expect("generate key");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("certificate names");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    /// A server certificate for these names (DNS names or IP addresses).
    pub fn server_cert(&self, names: &[&str]) -> TestCert {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A server certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn localhost_cert(&self) -> TestCert {
        self.server_cert(&["localhost", "127.0.0.1", "::1"])
    }

    /// A server certificate for these names that expired on 2021-01-01.
    pub fn expired_cert(&self, names: &[&str]) -> TestCert {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, true)
    }

    /// A client certificate (mTLS) for `name`.
    pub fn client_cert(&self, name: &str) -> TestCert {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
    }
}

/// How the server behaves; switch with [`TestServer::set_mode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Check the key, parse, record, answer 200.
    Accept,
    /// Answer `status` to the next `times` requests (`None`: forever), then [`Mode::Accept`].
    FailStatus { status: u16, times: Option<u32> },
    /// Answer `status` (429 or 503) with `Retry-After: secs` to the next `times` requests
    /// (`None`: forever), then [`Mode::Accept`].
    RetryAfter {
        status: u16,
        secs: u64,
        times: Option<u32>,
    },
    /// Accept TCP and TLS, read the request, never answer.
    Stall,
    /// Close the listening socket (connection refused) and every open connection.
    RefuseConnections,
    /// Answer 401 to everything.
    Unauthorized,
    /// Accept, but answer 413 to a batch of more than `max_payloads` payloads or with a payload
    /// whose JSON is longer than `max_payload_bytes`, as servers that cap request and event size do.
    Limit {
        max_payloads: usize,
        max_payload_bytes: usize,
    },
}

/// What [`TestServer::start_with`] can change.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The Bearer key accepted.
    pub api_key: String,
    /// Where to listen (port 0: any).
    pub addr: SocketAddr,
    /// Require a client certificate signed by this CA (PEM).
    pub client_ca_pem: Option<String>,
    /// Answer 413 to batches with more payloads than this.
    pub max_payloads: Option<usize>,
    /// Keep each payload as its raw JSON text (checked, not parsed into a tree) in
    /// [`ReceivedBatch::raw_payloads`], leaving `payloads` empty: a cheap sink for benchmarks,
    /// so that the server's own parsing is not what limits the figure.
    pub raw_payloads: bool,
    /// Also append what is accepted to files in this directory, written before the 2xx (so a
    /// server killed at any moment has every event it acknowledged): `received.tsv` (batch id,
    /// tab, one event's JSON, a line per event), `batches.tsv` (batch id, tab, event count) and
    /// `health.jsonl` (each health report).
    pub record_dir: Option<PathBuf>,
    /// Keep nothing in memory (with `record_dir`, for long runs).
    pub forget: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            api_key: TEST_API_KEY.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_ca_pem: None,
            max_payloads: None,
            raw_payloads: false,
            record_dir: None,
            forget: false,
        }
    }
}

/// A batch the server accepted (answered 2xx).
#[derive(Debug, Clone)]
pub struct ReceivedBatch {
    pub batch_id: String,
    pub agent_id: String,
    pub timestamp: String,
    pub payloads: Vec<Value>,
    /// With [`ServerOptions::raw_payloads`]: the payloads as received, instead of `payloads`.
    pub raw_payloads: Vec<Box<serde_json::value::RawValue>>,
    /// Request headers, names lower-case.
    pub headers: BTreeMap<String, String>,
    /// Body size on the wire (compressed when it was).
    pub wire_bytes: usize,
    pub at: Instant,
}

/// Every HTTP request the server read, whatever it answered.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub path: String,
    /// The status answered; `None` while stalled.
    pub status: Option<u16>,
    /// The `X-Batch-Id` header, if any.
    pub batch_id: Option<String>,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    batches: Vec<ReceivedBatch>,
    health: Vec<Value>,
    requests: Vec<RequestRecord>,
    tls_failures: u64,
    connections: u64,
}

struct Shared {
    state: Mutex<State>,
    files: Mutex<Option<Files>>,
    mode: Mutex<Mode>,
    opts: ServerOptions,
    /// Bumped on every mode change, to wake the accept loop.
    generation: watch::Sender<u64>,
    /// Whether the listening socket is open.
    listening: watch::Sender<bool>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn mode(&self) -> MutexGuard<'_, Mode> {
        self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running server; stops when dropped.
pub struct TestServer {
    /// `https://localhost:<port>`.
    pub url: String,
    pub port: u16,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts on 127.0.0.1 (any port) with `cert`, accepting [`TEST_API_KEY`].
    pub async fn start(cert: &TestCert, mode: Mode) -> io::Result<TestServer> {
        TestServer::start_with(cert, mode, ServerOptions::default()).await
    }

    pub async fn start_with(
        cert: &TestCert,
        mode: Mode,
        opts: ServerOptions,
    ) -> io::Result<TestServer> {
        let acceptor = TlsAcceptor::from(server_tls(cert, opts.client_ca_pem.as_deref())?);
        let listener = TcpListener::bind(opts.addr).await?;
        let addr = listener.local_addr()?;
        let files = match &opts.record_dir {
            Some(dir) => Some(Files::open(dir)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            files: Mutex::new(files),
            mode: Mutex::new(mode),
            opts,
            generation: watch::Sender::new(0),
            listening: watch::Sender::new(true),
        });
        let task = tokio::spawn(accept_loop(listener, addr, acceptor, shared.clone()));
        let server = TestServer {
            url: format!("https://localhost:{}", addr.port()),
            port: addr.port(),
            addr,
            shared,
            task,
        };
        server.wait_listening().await;
        Ok(server)
    }

    /// `https://<host>:<port>`.
    pub fn url_for(&self, host: &str) -> String {
        format!("https://{host}:{}", self.port)
    }

    /// Switches behaviour. Returns once the listening socket matches the mode (closed for
    /// [`Mode::RefuseConnections`], open otherwise).
    pub async fn set_mode(&self, mode: Mode) {
        *self.shared.mode() = mode;
        self.shared.generation.send_modify(|g| *g += 1);
        self.wait_listening().await;
    }

    async fn wait_listening(&self) {
        let want = *self.shared.mode() != Mode::RefuseConnections;
        let mut rx = self.shared.listening.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| *l == want)).await;
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode().clone()
    }

    /// Batches accepted, in order of arrival (resends included).
    pub fn batches(&self) -> Vec<ReceivedBatch> {
        self.shared.state().batches.clone()
    }

    /// Runs `f` over the batches accepted so far without copying them (for tests that count
    /// over many events while they arrive).
    pub fn with_batches<R>(&self, f: impl FnOnce(&[ReceivedBatch]) -> R) -> R {
        f(&self.shared.state().batches)
    }

    /// Every payload accepted, in order (resends included).
    pub fn payloads(&self) -> Vec<Value> {
        let st = self.shared.state();
        st.batches
            .iter()
            .flat_map(|b| b.payloads.iter().cloned())
            .collect()
    }

    /// Health reports accepted (the whole JSON bodies).
    pub fn health_reports(&self) -> Vec<Value> {
        self.shared.state().health.clone()
    }

    /// Every HTTP request read, whatever the answer.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.state().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.state().requests.len()
    }

    /// TLS handshakes that failed (e.g. the client refused the certificate).
    pub fn tls_failures(&self) -> u64 {
        self.shared.state().tls_failures
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> u64 {
        self.shared.state().connections
    }

    /// Forgets what was received (batches, health, requests, counters).
    pub fn clear(&self) {
        *self.shared.state() = State::default();
    }

    /// Polls until `at_least` payloads were accepted or `timeout` passes; true if they were.
    pub async fn wait_for_payloads(&self, at_least: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| {
            s.batches.iter().map(|b| b.payloads.len()).sum::<usize>() >= at_least
        })
        .await
    }

    /// Polls until `at_least` HTTP requests were read or `timeout` passes.
    pub async fn wait_for_requests(&self, at_least: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.requests.len() >= at_least)
            .await
    }

    async fn wait_until(&self, timeout: Duration, f: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if f(&self.shared.state()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A TLS server configuration presenting `cert` (HTTP/1.1 by ALPN), requiring a client
/// certificate from `client_ca` when given.
pub fn server_tls(
    cert: &TestCert,
    client_ca: Option<&str>,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let err = |e: rustls::Error| io::Error::other(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(err)?;
    let builder = match client_ca {
        Some(pem) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(c.map_err(io::Error::other)?).map_err(err)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(io::Error::other)?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .map_err(err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The record files of [`ServerOptions::record_dir`].
struct Files {
    received: std::fs::File,
    batches: std::fs::File,
    health: std::fs::File,
}

impl Files {
    fn open(dir: &Path) -> io::Result<Files> {
        std::fs::create_dir_all(dir)?;
        let append = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
        };
        Ok(Files {
            received: append("received.tsv")?,
            batches: append("batches.tsv")?,
            health: append("health.jsonl")?,
        })
    }
}

impl Shared {
    /// Appends an accepted batch to the record files (one write each, so lines never interleave).
    fn record_batch<'a>(&self, batch_id: &str, payloads: impl Iterator<Item = &'a str>) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let Some(f) = files.as_mut() else { return };
        let mut lines = String::new();
        let mut n = 0;
        for p in payloads {
            lines.push_str(batch_id);
            lines.push('\t');
            lines.push_str(p);
            lines.push('\n');
            n += 1;
        }
        use std::io::Write;
        let _ = f.received.write_all(lines.as_bytes());
        let _ = writeln!(f.batches, "{batch_id}\t{n}");
    }

    fn record_health(&self, doc: &Value) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = files.as_mut() {
            use std::io::Write;
            let _ = writeln!(f.health, "{doc}");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
) {
    let mut listener = Some(listener);
    let mut generation = shared.generation.subscribe();
    let mut conns = JoinSet::new();
    loop {
        if *shared.mode() == Mode::RefuseConnections {
            listener = None;
            conns.abort_all();
            shared.listening.send_replace(false);
            if generation.changed().await.is_err() {
                return;
            }
            continue;
        }
        if listener.is_none() {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    shared.listening.send_replace(true);
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
        }
        let Some(l) = &listener else { continue };
        tokio::select! {
            r = l.accept() => {
                if let Ok((tcp, _)) = r {
                    shared.state().connections += 1;
                    conns.spawn(serve_connection(tcp, acceptor.clone(), shared.clone()));
                }
            }
            r = generation.changed() => if r.is_err() { return },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_connection(tcp: tokio::net::TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        _ => {
            shared.state().tls_failures += 1;
            return;
        }
    };
    let service = hyper::service::service_fn(move |req| handle(req, shared.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, body: Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Result<Reply, Infallible> {
    let at = Instant::now();
    let path = req.uri().path().to_owned();
    let is_post = req.method() == hyper::Method::POST;
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let record = |status: Option<u16>| RequestRecord {
        path: path.clone(),
        status,
        batch_id: headers.get("x-batch-id").cloned(),
        at,
    };

    // Misbehaviour first.
    let stall = *shared.mode() == Mode::Stall;
    if stall {
        shared.state().requests.push(record(None));
        let never: Infallible = std::future::pending().await;
        match never {}
    }
    let forced: Option<Reply> = {
        let mut mode = shared.mode();
        let (forced, used_up) = match &mut *mode {
            Mode::Accept | Mode::RefuseConnections | Mode::Limit { .. } => (None, false),
            Mode::Stall => (None, false),
            Mode::Unauthorized => (Some(reply(401, json!({"error": "invalid API key"}))), false),
            Mode::FailStatus { status, times } => (
                Some(reply(
                    *status,
                    json!({"error": format!("test failure {status}")}),
                )),
                count_down(times),
            ),
            Mode::RetryAfter {
                status,
                secs,
                times,
            } => {
                let mut r = reply(*status, json!({"error": "try later"}));
                r.headers_mut()
                    .insert(hyper::header::RETRY_AFTER, (*secs).into());
                (Some(r), count_down(times))
            }
        };
        if used_up {
            *mode = Mode::Accept;
        }
        forced
    };
    let response = match forced {
        Some(r) => r,
        None => accept(&shared, &path, is_post, &headers, &body, at),
    };
    shared
        .state()
        .requests
        .push(record(Some(response.status().as_u16())));
    Ok(response)
}

/// The 413 for a batch over [`ServerOptions::max_payloads`] or the limits of [`Mode::Limit`];
/// `sizes` are the lengths of its payloads' JSON.
fn too_large(shared: &Shared, sizes: &[usize]) -> Option<Reply> {
    let (mode_count, max_bytes) = match *shared.mode() {
        Mode::Limit {
            max_payloads,
            max_payload_bytes,
        } => (Some(max_payloads), Some(max_payload_bytes)),
        _ => (None, None),
    };
    let max_count = match (shared.opts.max_payloads, mode_count) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(max) = max_count.filter(|&max| sizes.len() > max) {
        return Some(reply(
            413,
            json!({"error": format!("at most {max} payloads")}),
        ));
    }
    if let Some(max) = max_bytes.filter(|&max| sizes.iter().any(|&n| n > max)) {
        return Some(reply(
            413,
            json!({"error": format!("a payload is over {max} bytes")}),
        ));
    }
    None
}

/// Counts down a `times`; true when that was the last one.
fn count_down(times: &mut Option<u32>) -> bool {
    match times {
        Some(n) => {
            *n = n.saturating_sub(1);
            *n == 0
        }
        None => false,
    }
}

fn accept(
    shared: &Shared,
    path: &str,
    is_post: bool,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    at: Instant,
) -> Reply {
    let is_data = path == "/api/v1/agent/data";
    if !is_data && path != "/api/v1/agent/health" {
        return reply(404, json!({"error": "no such endpoint"}));
    }
    if !is_post {
        return reply(405, json!({"error": "POST only"}));
    }
    let expected = format!("Bearer {}", shared.opts.api_key);
    if headers.get("authorization") != Some(&expected) {
        return reply(401, json!({"error": "invalid API key"}));
    }
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    let mut plain = Vec::new();
    let raw: &[u8] = if gzip {
        if let Err(e) = flate2::read::GzDecoder::new(body).read_to_end(&mut plain) {
            return reply(400, json!({"error": format!("bad gzip: {e}")}));
        }
        &plain
    } else {
        body
    };
    if is_data && shared.opts.raw_payloads {
        #[derive(serde::Deserialize)]
        struct RawBatch {
            #[serde(default)]
            batch_id: String,
            #[serde(default)]
            agent_id: String,
            #[serde(default)]
            timestamp: String,
            payloads: Vec<Box<serde_json::value::RawValue>>,
        }
        let doc: RawBatch = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => return reply(400, json!({"error": format!("invalid batch: {e}")})),
        };
        let sizes: Vec<usize> = doc.payloads.iter().map(|p| p.get().len()).collect();
        if let Some(r) = too_large(shared, &sizes) {
            return r;
        }
        let n = doc.payloads.len();
        shared.record_batch(&doc.batch_id, doc.payloads.iter().map(|p| p.get()));
        if shared.opts.forget {
            return reply(200, json!({"status": "ok", "accepted": n}));
        }
        shared.state().batches.push(ReceivedBatch {
            batch_id: doc.batch_id,
            agent_id: doc.agent_id,
            timestamp: doc.timestamp,
            payloads: Vec::new(),
            raw_payloads: doc.payloads,
            headers: headers.clone(),
            wire_bytes: body.len(),
            at,
        });
        return reply(200, json!({"status": "ok", "accepted": n}));
    }
    let doc: Value = match serde_json::from_slice(raw) {
        Ok(v) => v,
        Err(e) => return reply(400, json!({"error": format!("invalid JSON: {e}")})),
    };
    if !is_data {
        shared.record_health(&doc);
        if !shared.opts.forget {
            shared.state().health.push(doc);
        }
        return reply(200, json!({"status": "ok"}));
    }
    let Some(payloads) = doc.get("payloads").and_then(Value::as_array) else {
        return reply(400, json!({"error": "payloads must be a list"}));
    };
    let sizes: Vec<usize> = payloads.iter().map(|p| p.to_string().len()).collect();
    if let Some(r) = too_large(shared, &sizes) {
        return r;
    }
    let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let batch = ReceivedBatch {
        batch_id: text("batch_id"),
        agent_id: text("agent_id"),
        timestamp: text("timestamp"),
        payloads: payloads.clone(),
        raw_payloads: Vec::new(),
        headers: headers.clone(),
        wire_bytes: body.len(),
        at,
    };
    let n = batch.payloads.len();
    if shared
        .files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some()
    {
        let texts: Vec<String> = batch.payloads.iter().map(Value::to_string).collect();
        shared.record_batch(&batch.batch_id, texts.iter().map(String::as_str));
    }
    if !shared.opts.forget {
        shared.state().batches.push(batch);
    }
    reply(200, json!({"status": "ok", "accepted": n}))
}
