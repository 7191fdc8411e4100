//! collectord → shipperd → an HTTPS management server, all real processes on this machine, with
//! the server failing, stalling and refusing on purpose. Events are made by writing files with
//! unique names into a tree that collectord's file monitor watches, so every test knows exactly
//! which events it must find at the server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sec_tracker_testkit::server::{Mode, TestCa, TestServer, TEST_API_KEY};
use sec_tracker_testkit::{require_root, wait_for};
use serde_json::Value;

mod stack;

use stack::{setup, Setup, Stack, SHIPPERD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_and_kill_9_loses_none() {
    if !require_root("e2e_kill9") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(&ca, setup(&cert, Path::new("ca"))).await;
    let mut all = s.make_events(30);
    s.wait_delivered(&all, Duration::from_secs(30)).await;
    let b = &s.server.batches()[0];
    assert_eq!(
        b.headers.get("content-encoding").map(String::as_str),
        Some("gzip")
    );
    assert_eq!(b.agent_id, "e2e-agent");
    // kill -9 while events flow, again and again.
    for round in 0..5 {
        all.extend(s.make_events(40));
        let before = s.server.batches().len();
        // Kill once something of this round is moving (or right away on even rounds).
        if round % 2 == 1 {
            let _ = s
                .server
                .wait_for_requests(before + 1, Duration::from_secs(5))
                .await;
        }
        s.kill9_shipper();
        all.extend(s.make_events(10));
        s.start_shipper();
    }
    s.wait_delivered(&all, Duration::from_secs(60)).await;
    s.assert_duplicates_are_resent_batches();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_are_ridden_out_and_retry_after_is_respected() {
    if !require_root("e2e_outages") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(&ca, setup(&cert, Path::new("ca"))).await;
    let mut all = Vec::new();
    for mode in [
        Mode::RefuseConnections,
        Mode::Stall,
        Mode::FailStatus {
            status: 500,
            times: Some(3),
        },
        Mode::FailStatus {
            status: 429,
            times: Some(2),
        },
    ] {
        let failures = s.log().matches("batch not delivered").count();
        s.server.set_mode(mode.clone()).await;
        let names = s.make_events(15);
        all.extend(names);
        // Let the shipper hit the failure, then recover.
        wait_for(
            &format!("shipperd to fail under {mode:?}"),
            Duration::from_secs(20),
            || (s.log().matches("batch not delivered").count() > failures).then_some(()),
        );
        s.server.set_mode(Mode::Accept).await;
        s.wait_delivered(&all, Duration::from_secs(60)).await;
    }
    // 503 with Retry-After: 3 — the next attempt waits at least that long.
    s.server.clear();
    s.server
        .set_mode(Mode::RetryAfter {
            status: 503,
            secs: 3,
            times: None,
        })
        .await;
    let names = s.make_events(5);
    let data = |server: &TestServer| -> Vec<sec_tracker_testkit::server::RequestRecord> {
        server
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/data"))
            .collect()
    };
    wait_for("a 503 for data", Duration::from_secs(30), || {
        data(&s.server)
            .iter()
            .any(|r| r.status == Some(503))
            .then_some(())
    });
    s.server.set_mode(Mode::Accept).await;
    s.wait_delivered(&names, Duration::from_secs(60)).await;
    let reqs = data(&s.server);
    let refused = reqs
        .iter()
        .position(|r| r.status == Some(503))
        .expect("a 503 was answered");
    let next = &reqs[refused + 1];
    let waited = next.at.duration_since(reqs[refused].at);
    assert!(
        waited >= Duration::from_millis(2900),
        "Retry-After: 3 not respected: retried after {waited:?}"
    );
    s.assert_duplicates_are_resent_batches();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_sends_nothing_and_says_why() {
    if !require_root("e2e_tls") {
        return;
    }
    let ca = TestCa::new();
    let good = ca.localhost_cert();
    let expired = ca.expired_cert(&["localhost"]);
    let other = ca.server_cert(&["other.example"]);
    let cases: Vec<(&str, Setup<'_>, &str)> = vec![
        (
            "unknown CA",
            Setup {
                ca_file: None,
                ..setup(&good, Path::new("ca"))
            },
            "certificate",
        ),
        ("expired", setup(&expired, Path::new("ca")), "expired"),
        (
            "wrong host name",
            setup(&other, Path::new("ca")),
            "localhost",
        ),
    ];
    for (what, setup, hint) in cases {
        let mut s = Stack::start(&ca, setup).await;
        let names = s.make_events(5);
        wait_for(
            &format!("the TLS error for {what} in shipperd's log"),
            Duration::from_secs(30),
            || s.log().contains("TLS to the server failed").then_some(()),
        );
        assert_eq!(
            s.server.request_count(),
            0,
            "{what}: no HTTP request may reach the server"
        );
        let log = s.log();
        assert!(
            log.to_lowercase().contains(hint),
            "{what}: the reason should mention {hint:?}:\n{log}"
        );
        assert!(!log.contains(TEST_API_KEY), "the API key was logged");
        assert!(!names.is_empty());
        s.kill9_shipper();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_pauses_sending_and_keeps_events() {
    if !require_root("e2e_401") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(
        &ca,
        Setup {
            api_key: "wrong-key-123",
            ..setup(&cert, Path::new("ca"))
        },
    )
    .await;
    s.make_events(5);
    wait_for("the 401 in shipperd's log", Duration::from_secs(30), || {
        s.log()
            .contains("the server refused the API key")
            .then_some(())
    });
    assert!(s.server.batches().is_empty());
    assert!(!s.log().contains("wrong-key-123"), "the API key was logged");
    // Events are kept: fix the key (restart with the right one) and they arrive.
    s.kill9_shipper();
    let cfg = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("wrong-key-123", TEST_API_KEY);
    std::fs::write(&s.config, cfg).unwrap();
    let names = s.make_events(3);
    s.start_shipper();
    s.wait_delivered(&names, Duration::from_secs(30)).await;
    assert!(
        s.delivered_names().len() >= 8,
        "the 5 events queued during the 401s were kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_without_traffic_resend_nothing() {
    if !require_root("e2e_restart") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(&ca, setup(&cert, Path::new("ca"))).await;
    let names = s.make_events(25);
    s.wait_delivered(&names, Duration::from_secs(30)).await;
    let data_requests = |server: &TestServer| {
        server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/data"))
            .count()
    };
    let before = data_requests(&s.server);
    for _ in 0..2 {
        assert_eq!(s.stop_shipper(), Some(0));
        s.start_shipper();
        // A health report proves the new shipper is up and talking to the server.
        s.next_health_report(Duration::from_secs(10));
    }
    assert_eq!(
        data_requests(&s.server),
        before,
        "a restart with nothing new sent data again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_queue_is_moved_aside_and_shipping_goes_on() {
    if !require_root("e2e_corrupt") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(&ca, setup(&cert, Path::new("ca"))).await;
    s.kill9_shipper();
    let db = s.state_dir().join("shipperd").join("queue.db");
    std::fs::write(&db, b"this is not a database, it is garbage \x00\xff").unwrap();
    let _ = std::fs::remove_file(db.with_extension("db-wal"));
    let _ = std::fs::remove_file(db.with_extension("db-shm"));
    s.start_shipper();
    let names = s.make_events(5);
    s.wait_delivered(&names, Duration::from_secs(30)).await;
    assert!(s.log().contains("the queue was corrupt"), "{}", s.log());
    let aside = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
    assert!(aside, "the corrupt store is kept aside for inspection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_the_oldest_and_reports_the_exact_count() {
    if !require_root("e2e_queue_full") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(
        &ca,
        Setup {
            max_queue: 20,
            ..setup(&cert, Path::new("ca"))
        },
    )
    .await;
    s.server.set_mode(Mode::RefuseConnections).await;
    let names = s.make_events(50);
    // Health cannot reach the server either; wait for the log to show the drops.
    wait_for("drops", Duration::from_secs(30), || {
        s.log().contains("queue full").then_some(())
    });
    // Events still on their way from the collector are simply delivered after this: the check
    // below holds either way.
    s.server.set_mode(Mode::Accept).await;
    // Health reports say exactly how many went: with what arrived, that is all 50.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let delivered = s.delivered_names().len() as u64;
        let dropped = s
            .server
            .health_reports()
            .last()
            .and_then(|h| h["metrics"]["events_dropped"].as_u64())
            .unwrap_or(0);
        if delivered + dropped == 50 && dropped > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivered {delivered} + dropped {dropped} != 50\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        s.delivered_names().contains_key(&names[49]),
        "the newest event is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_too_large_are_split_and_an_event_too_large_alone_is_set_aside() {
    if !require_root("e2e_413") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(&ca, setup(&cert, Path::new("ca"))).await;
    // The size of an ordinary event as the server sees it, so that the limit below passes every
    // ordinary event (they differ by a few bytes, or ~100 when one is attributed and another is
    // not) and refuses one whose file name is 240 bytes longer (it is in the message and the
    // path: ~480 bytes more).
    let first = s.make_events(10);
    s.wait_delivered(&first, Duration::from_secs(30)).await;
    let ordinary = s
        .server
        .payloads()
        .iter()
        .map(|p| p.to_string().len())
        .max()
        .unwrap();
    let max_payloads = 4;
    s.server
        .set_mode(Mode::Limit {
            max_payloads,
            max_payload_bytes: ordinary + 240,
        })
        .await;
    let mut names = s.make_events(15);
    let huge = format!("huge-{}-{}", std::process::id(), "h".repeat(240));
    std::fs::write(s.tree.join(&huge), "x").unwrap();
    names.extend(s.make_events(15));
    // Batches of up to 20 are halved until the server takes them: every ordinary event arrives.
    s.wait_delivered(&names, Duration::from_secs(30)).await;
    // The huge event, refused even alone, is set aside and counted, not retried forever.
    wait_for(
        "a health report counting one dead letter",
        Duration::from_secs(20),
        || {
            s.server
                .health_reports()
                .iter()
                .any(|h| h["metrics"]["events_dead_lettered"] == 1)
                .then_some(())
        },
    );
    assert!(
        !s.delivered_names().contains_key(&huge),
        "the oversized event was accepted"
    );
    let log = s.log();
    assert!(log.contains("413: batch split in two"), "{log}");
    assert!(log.contains("413 for a single event"), "{log}");
    let refused = s
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/agent/data" && r.status == Some(413))
        .count();
    assert!(refused >= 2, "{refused} batches answered 413");
    // Shipping goes on after it.
    let later = s.make_events(5);
    s.wait_delivered(&later, Duration::from_secs(20)).await;
    let last = s.next_health_report(Duration::from_secs(20));
    assert_eq!(last["metrics"]["events_dead_lettered"], 1, "{last}");
    s.assert_duplicates_are_resent_batches();
}

#[test]
fn shipperd_refuses_root_unless_told() {
    if !require_root("e2e_root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(
        &cfg,
        r#"{"server": {"url": "https://localhost:1", "api_key": "k"}}"#,
    )
    .unwrap();
    let out = Command::new(SHIPPERD)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to run as root"));
}

/// As deployed: shipperd as an unprivileged user in the sec-tracker group, and the operator's
/// `sec-trackerctl status` and `test-connection` showing both daemons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_shipperd_and_the_operators_view() {
    use std::os::unix::fs::PermissionsExt;
    if !require_root("e2e_unprivileged") {
        return;
    }
    let gid = sec_tracker_testkit::socket_group_gid();

    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(&ca, setup(&cert, Path::new("ca"))).await;
    s.kill9_shipper();
    // Let the unprivileged user reach what it needs, and nothing more.
    for p in [s.dir.path(), s.collector.dir.path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for p in [s.config.clone(), s.dir.path().join("ca.pem")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::create_dir_all(s.state_dir()).unwrap();
    // The root shipper that Stack started made the queue: hand it over, as install.sh would.
    assert!(Command::new("chown")
        .args(["-R", "65534"])
        .arg(s.state_dir())
        .status()
        .unwrap()
        .success());
    let bin = s.dir.path().join("shipperd");
    std::fs::copy(SHIPPERD, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = std::fs::File::create(s.dir.path().join("shipperd.log")).unwrap();
    // Its socket lives where it may create files: its own state directory.
    let sock = s.state_dir().join("shipper.sock");
    let child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", &format!("--groups={gid}")])
        .arg(&bin)
        .arg("--config")
        .arg(&s.config)
        .arg("--collector-socket")
        .arg(&s.collector.socket)
        .arg("--socket")
        .arg(&sock)
        .arg("--state-dir")
        .arg(s.state_dir())
        .stderr(log)
        .spawn()
        .unwrap();
    s.shipper = Some(child);
    let log_path = s.dir.path().join("shipperd.log");
    wait_for("shipperd's status socket", Duration::from_secs(20), || {
        let up = std::os::unix::net::UnixStream::connect(&sock).ok();
        if up.is_none() && s.shipper.as_mut().unwrap().try_wait().unwrap().is_some() {
            panic!(
                "shipperd exited: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        up
    });
    let names = s.make_events(10);
    s.wait_delivered(&names, Duration::from_secs(30)).await;

    let ctl = Path::new(SHIPPERD).with_file_name("sec-trackerctl");
    let out = Command::new(&ctl)
        .arg("--config")
        .arg(&s.config)
        .arg("--socket")
        .arg(&s.collector.socket)
        .arg("--shipper-socket")
        .arg(&sock)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["collector"]["running"], true);
    assert_eq!(v["shipper"]["running"], true);
    assert_eq!(v["shipper"]["collector_connected"], true);
    assert!(v["shipper"]["events_sent"].as_u64().unwrap() >= 10, "{v}");
    let human = Command::new(&ctl)
        .arg("--config")
        .arg(&s.config)
        .arg("--socket")
        .arg(&s.collector.socket)
        .arg("--shipper-socket")
        .arg(&sock)
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("collectord: running")
            && text.contains("shipperd: ")
            && text.contains("last send:"),
        "{text}"
    );
    assert!(!text.contains(TEST_API_KEY));

    let tc = Command::new(&ctl)
        .arg("--config")
        .arg(&s.config)
        .arg("test-connection")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tc.stdout);
    assert!(
        tc.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&tc.stderr)
    );
    for step in ["dns", "tcp", "tls", "api"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(step)),
            "{step}: {text}"
        );
    }
    s.server.set_mode(Mode::Unauthorized).await;
    let tc = Command::new(&ctl)
        .arg("--config")
        .arg(&s.config)
        .arg("test-connection")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tc.stdout);
    assert_eq!(tc.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("FAIL") && l.contains("api")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_in_flight_at_a_crash_is_resent_with_the_same_id() {
    if !require_root("e2e_inflight") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(&ca, setup(&cert, Path::new("ca"))).await;
    s.server.set_mode(Mode::Stall).await;
    let names = s.make_events(5);
    let stalled_id = wait_for(
        "a data request held by the stalled server",
        Duration::from_secs(30),
        || {
            s.server
                .requests()
                .into_iter()
                .find(|r| r.path.ends_with("/data") && r.status.is_none())
                .and_then(|r| r.batch_id)
        },
    );
    s.kill9_shipper();
    s.server.set_mode(Mode::Accept).await;
    s.start_shipper();
    s.wait_delivered(&names, Duration::from_secs(30)).await;
    let ids: BTreeSet<String> = s.delivered_names().values().flatten().cloned().collect();
    assert!(
        ids.contains(&stalled_id),
        "the in-flight batch {stalled_id} must be re-sent under its id; got {ids:?}"
    );
}

/// Unmounts on drop, so a failing test does not leave a mount behind.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_nothing_and_shipping_resumes_when_space_returns() {
    if !require_root("e2e_disk_full") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(&ca, setup(&cert, Path::new("ca"))).await;
    s.kill9_shipper();
    let state = s.state_dir();
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount tmpfs");
    let _guard = Tmpfs(state.clone());
    s.start_shipper();
    let first = s.make_events(3);
    s.wait_delivered(&first, Duration::from_secs(30)).await;
    // Fill the disk.
    let filler = state.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let during = s.make_events(200);
    wait_for(
        "the disk-full error in shipperd's log",
        Duration::from_secs(30),
        || s.log().contains("cannot write to the queue").then_some(()),
    );
    assert!(
        s.shipper.as_mut().unwrap().try_wait().unwrap().is_none(),
        "shipperd must keep running"
    );
    // Space comes back: everything made meanwhile arrives.
    std::fs::remove_file(&filler).unwrap();
    s.wait_delivered(&during, Duration::from_secs(60)).await;
    assert!(
        s.log().contains("the queue accepts writes again"),
        "{}",
        s.log()
    );
    s.kill9_shipper();
}

/// `GET path` on a plain HTTP port: (status code, content type, body).
async fn http_get(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the metrics listener answers within 10 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (code, content_type, body.to_owned())
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// An operator's Prometheus scrapes shipperd's opt-in `/metrics`: both daemons' counters, what
/// was delivered and how long it took, collectord's events by type and severity and its
/// monitors' states; nothing but `GET /metrics` is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_for_both_daemons() {
    if !require_root("e2e_metrics") {
        return;
    }
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(
        &ca,
        Setup {
            metrics_listen: Some(addr),
            ..setup(&cert, Path::new("ca"))
        },
    )
    .await;
    let names = s.make_events(25);
    s.wait_delivered(&names, Duration::from_secs(30)).await;
    let delivered = s
        .server
        .batches()
        .iter()
        .map(|b| b.payloads.len())
        .sum::<usize>() as f64;

    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (code, content_type, body) = http_get(addr, "GET", "/metrics").await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let sent = metric(&body, "sec_tracker_shipper_events_sent_total").unwrap_or(0.0);
        let files = metric(
            &body,
            r#"sec_tracker_collector_events_total{type="file",severity="info"}"#,
        )
        .unwrap_or(0.0);
        if sent >= delivered && files >= 25.0 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "sent {sent} of {delivered}, files {files}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(metric(&body, "sec_tracker_shipper_up"), Some(1.0));
    assert_eq!(metric(&body, "sec_tracker_collector_up"), Some(1.0));
    assert_eq!(
        metric(
            &body,
            r#"sec_tracker_collector_monitor_state{monitor="file_monitor",state="running"}"#
        ),
        Some(1.0),
        "{body}"
    );
    let batches = metric(&body, "sec_tracker_shipper_batches_sent_total").unwrap();
    assert!(batches >= 1.0, "{body}");
    assert_eq!(
        metric(&body, "sec_tracker_shipper_send_duration_seconds_count"),
        Some(batches),
        "every delivered batch timed: {body}"
    );
    assert_eq!(
        metric(
            &body,
            r#"sec_tracker_shipper_send_duration_seconds_bucket{le="+Inf"}"#
        ),
        Some(batches)
    );
    assert_eq!(
        metric(&body, "sec_tracker_shipper_queue_events"),
        Some(0.0),
        "{body}"
    );
    assert!(body.contains("# TYPE sec_tracker_shipper_send_duration_seconds histogram"));

    let (code, _, _) = http_get(addr, "GET", "/").await;
    assert_eq!(code, 404);
    let (code, _, _) = http_get(addr, "POST", "/metrics").await;
    assert_eq!(code, 405);
    assert!(
        s.log().contains("serving metrics at /metrics"),
        "{}",
        s.log()
    );
}
