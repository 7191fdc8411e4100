//! The HTTPS sender against the in-process test server: real TLS on loopback.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sec_tracker_proto::config::{Config, Secret};
use sec_tracker_testkit::server::{Mode, ServerOptions, TestCa, TestServer, TEST_API_KEY};
use shipperd::sender::{parse_retry_after, Backoff, Outcome, Sender, SenderError};

struct Fixture {
    ca: TestCa,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
}

fn fixture() -> Fixture {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write_ca_pem(&ca_file).unwrap();
    Fixture { ca, dir, ca_file }
}

fn config(url: &str, ca_file: Option<&Path>) -> Config {
    let mut c = Config::default();
    c.server.url = url.to_owned();
    c.server.api_key = Secret::new(TEST_API_KEY);
    c.server.ca_file = ca_file.map(Path::to_owned);
    c.server.timeout = Duration::from_secs(5);
    c.agent.id = "agent-test".into();
    c
}

async fn server(f: &Fixture, mode: Mode) -> (TestServer, Sender) {
    let server = TestServer::start(&f.ca.localhost_cert(), mode)
        .await
        .unwrap();
    let sender = Sender::new(&config(&server.url, Some(&f.ca_file))).unwrap();
    (server, sender)
}

const P1: &[u8] = br#"{"type":"process","tag":"one"}"#;
const P2: &[u8] = br#"{"type":"file","tag":"two","n":2}"#;

#[tokio::test]
async fn delivered_gzip_bearer_and_batch_id_visible_on_server() {
    let f = fixture();
    let (server, sender) = server(&f, Mode::Accept).await;
    assert_eq!(
        sender.send_batch("b-1", &[P1, P2]).await,
        Outcome::Delivered
    );
    let batches = server.batches();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.batch_id, "b-1");
    assert_eq!(b.agent_id, "agent-test");
    assert!(
        humantime::parse_rfc3339(&b.timestamp).is_ok(),
        "{}",
        b.timestamp
    );
    assert_eq!(b.payloads[0]["tag"], "one");
    assert_eq!(b.payloads[1]["n"], 2);
    assert_eq!(b.headers["content-encoding"], "gzip");
    assert_eq!(b.headers["content-type"], "application/json");
    assert_eq!(b.headers["authorization"], format!("Bearer {TEST_API_KEY}"));
    assert_eq!(b.headers["idempotency-key"], "b-1");
    assert_eq!(b.headers["x-batch-id"], "b-1");
    // gzip really is on the wire: the body starts with the gzip magic, so it parsed only after
    // gunzip; and a health report goes through as well.
    let health = sender
        .send_health("healthy", serde_json::json!({"queue_depth": 3}))
        .await;
    assert_eq!(health, Outcome::Delivered);
    let h = &server.health_reports()[0];
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["agent_id"], "agent-test");
    assert_eq!(h["metrics"]["queue_depth"], 3);
}

/// The delivery loop runs these on a multi-threaded runtime.
#[allow(dead_code)]
fn futures_are_send(sender: &Sender) {
    fn send<T: Send>(_: T) {}
    send(sender.send_batch("b", &[]));
    send(sender.send_health("healthy", serde_json::Value::Null));
    send(sender.test_connection());
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Sender>();
}

#[tokio::test]
async fn not_an_object_payload_is_refused_locally() {
    let f = fixture();
    let (server, sender) = server(&f, Mode::Accept).await;
    let out = sender.send_batch("b-x", &[P1, b"not json"]).await;
    assert!(
        matches!(&out, Outcome::Rejected { status: 0, reason } if reason.contains("payload #2")),
        "{out:?}"
    );
    assert_eq!(server.request_count(), 0);
}

async fn outcome_for(mode: Mode) -> Outcome {
    let f = fixture();
    let (_server, sender) = server(&f, mode).await;
    sender.send_batch("b-1", &[P1]).await
}

fn fail(status: u16) -> Mode {
    Mode::FailStatus {
        status,
        times: None,
    }
}

#[tokio::test]
async fn status_500_is_retry() {
    let out = outcome_for(fail(500)).await;
    assert!(
        matches!(&out, Outcome::Retry { after: None, reason } if reason.contains("500 Internal Server Error")),
        "{out:?}"
    );
}

#[tokio::test]
async fn status_503_with_retry_after_is_retry_after_2s() {
    let out = outcome_for(Mode::RetryAfter {
        status: 503,
        secs: 2,
        times: None,
    })
    .await;
    assert!(
        matches!(&out, Outcome::Retry { after: Some(d), .. } if *d == Duration::from_secs(2)),
        "{out:?}"
    );
}

#[tokio::test]
async fn status_429_is_retry_and_honours_retry_after() {
    let out = outcome_for(fail(429)).await;
    assert!(matches!(out, Outcome::Retry { after: None, .. }), "{out:?}");
    let out = outcome_for(Mode::RetryAfter {
        status: 429,
        secs: 7,
        times: Some(1),
    })
    .await;
    assert!(
        matches!(out, Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7)),
        "{out:?}"
    );
}

#[tokio::test]
async fn status_408_is_retry() {
    let out = outcome_for(fail(408)).await;
    assert!(matches!(out, Outcome::Retry { .. }), "{out:?}");
}

#[tokio::test]
async fn status_401_and_403_are_unauthorized() {
    let out = outcome_for(Mode::Unauthorized).await;
    assert!(
        matches!(&out, Outcome::Unauthorized { status: 401, reason } if reason.contains("server.api_key")),
        "{out:?}"
    );
    let out = outcome_for(fail(403)).await;
    assert!(
        matches!(out, Outcome::Unauthorized { status: 403, .. }),
        "{out:?}"
    );
}

#[tokio::test]
async fn wrong_key_is_unauthorized_and_key_not_in_reason() {
    let f = fixture();
    let server = TestServer::start(&f.ca.localhost_cert(), Mode::Accept)
        .await
        .unwrap();
    let mut c = config(&server.url, Some(&f.ca_file));
    c.server.api_key = Secret::new("wrong-key-zzz");
    let sender = Sender::new(&c).unwrap();
    let out = sender.send_batch("b-1", &[P1]).await;
    assert!(
        matches!(&out, Outcome::Unauthorized { status: 401, .. }),
        "{out:?}"
    );
    assert!(!format!("{out:?} {out}").contains("wrong-key-zzz"));
    assert!(server.batches().is_empty());
}

#[tokio::test]
async fn status_413_is_too_large() {
    assert_eq!(outcome_for(fail(413)).await, Outcome::TooLarge);
    // A server with a payload limit.
    let f = fixture();
    let opts = ServerOptions {
        max_payloads: Some(1),
        ..ServerOptions::default()
    };
    let server = TestServer::start_with(&f.ca.localhost_cert(), Mode::Accept, opts)
        .await
        .unwrap();
    let sender = Sender::new(&config(&server.url, Some(&f.ca_file))).unwrap();
    assert_eq!(sender.send_batch("b", &[P1, P2]).await, Outcome::TooLarge);
    assert_eq!(sender.send_batch("b1", &[P1]).await, Outcome::Delivered);
}

#[tokio::test]
async fn status_400_is_rejected() {
    let out = outcome_for(fail(400)).await;
    assert!(
        matches!(&out, Outcome::Rejected { status: 400, reason } if reason.contains("400 Bad Request") && reason.contains("test failure 400")),
        "{out:?}"
    );
}

#[tokio::test]
async fn fail_status_for_n_requests_then_accepts() {
    let f = fixture();
    let (server, sender) = server(
        &f,
        Mode::FailStatus {
            status: 500,
            times: Some(2),
        },
    )
    .await;
    assert!(matches!(
        sender.send_batch("a", &[P1]).await,
        Outcome::Retry { .. }
    ));
    assert!(matches!(
        sender.send_batch("a", &[P1]).await,
        Outcome::Retry { .. }
    ));
    assert_eq!(sender.send_batch("a", &[P1]).await, Outcome::Delivered);
    let statuses: Vec<_> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    assert_eq!(server.requests()[0].batch_id.as_deref(), Some("a"));
}

#[tokio::test]
async fn stalled_server_is_retry_after_the_timeout() {
    let f = fixture();
    let server = TestServer::start(&f.ca.localhost_cert(), Mode::Stall)
        .await
        .unwrap();
    let mut c = config(&server.url, Some(&f.ca_file));
    c.server.timeout = Duration::from_secs(1);
    let sender = Sender::new(&c).unwrap();
    let start = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(10), sender.send_batch("s", &[P1]))
        .await
        .expect("send_batch must not hang on a stalled server");
    let took = start.elapsed();
    assert!(
        matches!(&out, Outcome::Retry { reason, .. } if reason.contains("within 1s")),
        "{out:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        server.request_count(),
        1,
        "the request did reach the server"
    );
}

#[tokio::test]
async fn connection_refused_is_retry_and_recovers() {
    let f = fixture();
    let (server, sender) = server(&f, Mode::Accept).await;
    assert_eq!(sender.send_batch("a", &[P1]).await, Outcome::Delivered);
    server.set_mode(Mode::RefuseConnections).await;
    let out = sender.send_batch("b", &[P1]).await;
    assert!(
        matches!(&out, Outcome::Retry { reason, .. } if reason.contains("connection refused")),
        "{out:?}"
    );
    server.set_mode(Mode::Accept).await;
    assert_eq!(sender.send_batch("b", &[P1]).await, Outcome::Delivered);
    assert_eq!(server.batches().len(), 2);
}

#[tokio::test]
async fn unknown_ca_is_tls_failure_and_nothing_sent() {
    let f = fixture();
    let server = TestServer::start(&f.ca.localhost_cert(), Mode::Accept)
        .await
        .unwrap();
    let sender = Sender::new(&config(&server.url, None)).unwrap();
    let out = sender.send_batch("b-1", &[P1]).await;
    assert!(
        matches!(&out, Outcome::TlsFailure { reason } if reason.contains("unknown certificate authority") && reason.contains("localhost")),
        "{out:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.request_count(), 0, "the server saw an HTTP request");
    assert!(server.tls_failures() >= 1);
}

#[tokio::test]
async fn wrong_host_name_is_tls_failure() {
    let f = fixture();
    let cert = f.ca.server_cert(&["other.example"]);
    let server = TestServer::start(&cert, Mode::Accept).await.unwrap();
    let sender = Sender::new(&config(&server.url_for("127.0.0.1"), Some(&f.ca_file))).unwrap();
    let out = sender.send_batch("b-1", &[P1]).await;
    match &out {
        Outcome::TlsFailure { reason } => {
            assert!(reason.contains("other.example"), "{reason}");
            assert!(reason.contains("not valid for host 127.0.0.1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn expired_certificate_is_tls_failure() {
    let f = fixture();
    let cert = f.ca.expired_cert(&["localhost", "127.0.0.1"]);
    let server = TestServer::start(&cert, Mode::Accept).await.unwrap();
    let sender = Sender::new(&config(&server.url, Some(&f.ca_file))).unwrap();
    let out = sender.send_batch("b-1", &[P1]).await;
    assert!(
        matches!(&out, Outcome::TlsFailure { reason } if reason.contains("expired on 2021-01-01")),
        "{out:?}"
    );
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn mutual_tls_client_certificate() {
    let f = fixture();
    let opts = ServerOptions {
        client_ca_pem: Some(f.ca.ca_pem().to_owned()),
        ..ServerOptions::default()
    };
    let server = TestServer::start_with(&f.ca.localhost_cert(), Mode::Accept, opts)
        .await
        .unwrap();
    let (cert, key) =
        f.ca.client_cert("agent-test")
            .write(f.dir.path(), "client")
            .unwrap();
    let mut c = config(&server.url, Some(&f.ca_file));
    c.server.client_cert = Some(cert);
    c.server.client_key = Some(key.clone());
    let with_cert = Sender::new(&c).unwrap();
    assert_eq!(with_cert.send_batch("m", &[P1]).await, Outcome::Delivered);

    let without = Sender::new(&config(&server.url, Some(&f.ca_file))).unwrap();
    let out = without.send_batch("m2", &[P1]).await;
    assert!(
        matches!(&out, Outcome::TlsFailure { reason } if reason.contains("client certificate")),
        "{out:?}"
    );
    assert_eq!(server.batches().len(), 1);
    let steps = without.test_connection().await;
    let last = steps.last().unwrap();
    assert_eq!((last.name, last.ok), ("tls", false), "{steps:#?}");
    assert!(last.detail.contains("client certificate"), "{steps:#?}");
    let steps = with_cert.test_connection().await;
    assert!(steps.iter().all(|s| s.ok) && steps.len() == 4, "{steps:#?}");

    // A key file that holds no key is named in the error.
    c.server.client_key = Some(f.ca_file.clone());
    let err = Sender::new(&c).unwrap_err().to_string();
    assert!(
        err.contains("server.client_key") && err.contains("no PEM private key"),
        "{err}"
    );
}

#[tokio::test]
async fn plain_http_refused_unless_tls_disabled() {
    let c = config("http://127.0.0.1:9/", None);
    let err = Sender::new(&c).unwrap_err();
    assert!(matches!(err, SenderError::PlainHttp { .. }), "{err}");
    assert!(err.to_string().contains("agent.enable_tls"), "{err}");
    let mut c = c;
    c.agent.enable_tls = false;
    assert!(Sender::new(&c).is_ok());
    let err = Sender::new(&config("ftp://x/", None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.url"), "{err}");
    let err = Sender::new(&config("https://user:pw@example.com/", None))
        .unwrap_err()
        .to_string();
    assert!(!err.contains("pw"), "{err}");
}

#[tokio::test]
async fn api_key_file_is_used_and_never_shown() {
    let f = fixture();
    let server = TestServer::start(&f.ca.localhost_cert(), Mode::Accept)
        .await
        .unwrap();
    let key_file = f.dir.path().join("api.key");
    std::fs::write(&key_file, format!("  {TEST_API_KEY}\n")).unwrap();
    let mut c = config(&server.url, Some(&f.ca_file));
    c.server.api_key = Secret::default();
    c.server.api_key_file = Some(key_file.clone());
    let sender = Sender::new(&c).unwrap();
    assert_eq!(sender.send_batch("k", &[P1]).await, Outcome::Delivered);
    let shown = format!("{sender:?} {sender}");
    assert!(!shown.contains(TEST_API_KEY), "{shown}");
    assert!(shown.contains("api.key"), "{shown}");

    // Refused key: the reason names the file, not the key.
    server.set_mode(Mode::Unauthorized).await;
    let out = sender.send_batch("k2", &[P1]).await;
    let text = format!("{out:?} {out}");
    assert!(
        text.contains("server.api_key_file") && !text.contains(TEST_API_KEY),
        "{text}"
    );

    // Missing and empty files are named.
    c.server.api_key_file = Some(f.dir.path().join("missing.key"));
    let err = Sender::new(&c).unwrap_err().to_string();
    assert!(
        err.contains("server.api_key_file") && err.contains("missing.key"),
        "{err}"
    );
    std::fs::write(&key_file, "\n").unwrap();
    c.server.api_key_file = Some(key_file);
    let err = Sender::new(&c).unwrap_err().to_string();
    assert!(err.contains("api.key") && err.contains("empty"), "{err}");

    // A key unusable in a header: named by source, not shown.
    let mut c = config(&server.url, Some(&f.ca_file));
    c.server.api_key = Secret::new("sekrit\u{1}value");
    let err = Sender::new(&c).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("server.api_key") && !text.contains("sekrit"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_ca_file_is_named() {
    let f = fixture();
    let mut c = config("https://localhost:1/", Some(&f.dir.path().join("nope.pem")));
    let err = Sender::new(&c).unwrap_err().to_string();
    assert!(
        err.contains("server.ca_file") && err.contains("nope.pem"),
        "{err}"
    );
    let junk = f.dir.path().join("junk.pem");
    std::fs::write(&junk, "hello").unwrap();
    c.server.ca_file = Some(junk);
    let err = Sender::new(&c).unwrap_err().to_string();
    assert!(
        err.contains("junk.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
}

#[test]
fn backoff_stays_within_bounds_and_grows() {
    let base = Duration::from_millis(100);
    let cap = Duration::from_secs(5);
    let mut b = Backoff::new(base, cap);
    let mut ceilings = Vec::new();
    for attempt in 0..20u32 {
        let ceiling = b.ceiling();
        let expected = base.saturating_mul(2u32.saturating_pow(attempt)).min(cap);
        assert_eq!(ceiling, expected, "attempt {attempt}");
        let d = b.next_delay();
        assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
        ceilings.push(ceiling);
    }
    assert!(ceilings.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*ceilings.last().unwrap(), cap);

    // Jitter: the average over many draws at the cap is about half of it.
    let total: Duration = (0..2000).map(|_| b.next_delay()).sum();
    let mean = total / 2000;
    assert!(
        mean > Duration::from_millis(2000) && mean < Duration::from_millis(3000),
        "{mean:?}"
    );

    // Retry-After is a floor, even above the cap.
    for _ in 0..50 {
        assert!(b.next_delay_after(Some(Duration::from_secs(7))) >= Duration::from_secs(7));
    }
    b.reset();
    assert_eq!(b.attempts(), 0);
    assert_eq!(b.ceiling(), base);
}

#[test]
fn retry_after_seconds_and_http_date() {
    let now = humantime::parse_rfc3339("2015-10-21T07:27:00Z").unwrap();
    assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(
        parse_retry_after("999999", SystemTime::now()),
        Some(shipperd::sender::MAX_RETRY_AFTER)
    );
}

#[tokio::test]
async fn test_connection_reports_the_failing_step() {
    let f = fixture();
    let server = TestServer::start(&f.ca.localhost_cert(), Mode::Accept)
        .await
        .unwrap();

    // All good.
    let sender = Sender::new(&config(&server.url, Some(&f.ca_file))).unwrap();
    let steps = sender.test_connection().await;
    let names: Vec<_> = steps.iter().map(|s| (s.name, s.ok)).collect();
    assert_eq!(
        names,
        [("dns", true), ("tcp", true), ("tls", true), ("api", true)],
        "{steps:#?}"
    );
    assert!(
        steps[2].detail.contains("verified for localhost"),
        "{steps:#?}"
    );

    // Unknown CA: TLS fails, no API call.
    let sender = Sender::new(&config(&server.url, None)).unwrap();
    let steps = sender.test_connection().await;
    let last = steps.last().unwrap();
    assert_eq!((last.name, last.ok), ("tls", false), "{steps:#?}");
    assert!(
        last.detail.contains("unknown certificate authority"),
        "{steps:#?}"
    );

    // Wrong key: the API step fails.
    let mut c = config(&server.url, Some(&f.ca_file));
    c.server.api_key = Secret::new("not-the-key");
    let steps = Sender::new(&c).unwrap().test_connection().await;
    let last = steps.last().unwrap();
    assert_eq!((last.name, last.ok), ("api", false), "{steps:#?}");
    assert!(last.detail.contains("401"), "{steps:#?}");
    assert!(!format!("{steps:?}").contains("not-the-key"));

    // Server down: TCP fails.
    server.set_mode(Mode::RefuseConnections).await;
    let steps = sender.test_connection().await;
    let last = steps.last().unwrap();
    assert_eq!((last.name, last.ok), ("tcp", false), "{steps:#?}");
    assert!(last.detail.contains("refused"), "{steps:#?}");
}
