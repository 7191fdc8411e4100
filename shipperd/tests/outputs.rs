//! The outputs beside the management server, end to end: collectord → shipperd → a real
//! rsyslogd receiving syslog over TLS, and an OTLP/HTTP receiver decoding with the official
//! OpenTelemetry types, at the same time as the management server. Each output has its own
//! queue: one that is down holds back only itself, and when it comes back it gets everything it
//! missed, through its outages, its restarts and shipperd's.

mod stack;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sec_tracker_proto::v1::ShipperState;
use sec_tracker_testkit::otlp::OtlpReceiver;
use sec_tracker_testkit::rsyslog::{self, Rsyslog};
use sec_tracker_testkit::server::TestCa;
use sec_tracker_testkit::{eventually, require_root};
use serde_json::{json, Value};
use stack::{setup, Stack};

const OTLP_AUTH: &str = "Bearer otlp-secret-9d2e";

fn needs_rsyslog(test: &str) -> bool {
    if rsyslog::available() {
        return true;
    }
    let msg =
        format!("{test}: needs rsyslogd with its TLS driver (apt install rsyslog rsyslog-gnutls)");
    if std::env::var_os(sec_tracker_testkit::REQUIRE_ALL_ENV).is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// File name → how many times its "created" event arrived, from syslog lines
/// (`PRI HOSTNAME APP-NAME MSGID MSG`).
fn syslog_names(lines: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in lines {
        let Some(json) = l.splitn(5, ' ').nth(4) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(json) else {
            continue;
        };
        if let Some(name) = created_name(&v) {
            *out.entry(name).or_default() += 1;
        }
    }
    out
}

fn otlp_names(records: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in records {
        if let Some(name) = created_name(&r["body"]) {
            *out.entry(name).or_default() += 1;
        }
    }
    out
}

fn created_name(event: &Value) -> Option<String> {
    (event["type"] == "file" && event["details"]["action"] == "created").then(|| {
        let path = event["details"]["path"].as_str().unwrap_or("");
        path.rsplit('/').next().unwrap_or("").to_owned()
    })
}

fn missing<'a>(names: &'a [String], got: &BTreeMap<String, usize>) -> Vec<&'a String> {
    names.iter().filter(|n| !got.contains_key(*n)).collect()
}

async fn wait_all(
    what: &str,
    names: &[String],
    timeout: Duration,
    got: impl Fn() -> BTreeMap<String, usize>,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let m = missing(names, &got());
        if m.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{} of {} events never reached {what}, e.g. {:?}\n{}",
                m.len(),
                names.len(),
                &m[..m.len().min(5)],
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_and_otlp_get_every_event_through_outages_and_restarts() {
    if !require_root("outputs") || !needs_rsyslog("outputs") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let mut s = Stack::start(
        &ca,
        stack::Setup {
            shipper_at_start: false,
            ..setup(&cert, Path::new("ca"))
        },
    )
    .await;
    let ca_path = s.dir.path().join("ca.pem");
    let mut syslog = Rsyslog::start(&s.dir.path().join("rsyslog"), &cert, ca.ca_pem()).unwrap();
    let any_port = "127.0.0.1:0".parse().unwrap();
    let mut otlp = OtlpReceiver::start(&cert, any_port, Some(OTLP_AUTH))
        .await
        .unwrap();
    let otlp_addr = otlp.addr;
    s.set_outputs(json!({
        "syslog": {"address": format!("localhost:{}", syslog.port), "ca_file": ca_path,
                   "timeout": "2s", "batch_size": 50, "confirm_after": "2s"},
        "otlp": {"url": otlp.url(), "ca_file": ca_path, "timeout": "2s", "batch_size": 25,
                 "headers": {"authorization": OTLP_AUTH}},
    }));
    s.start_shipper();
    let log = || String::new();

    // 1. Steady: every output gets every event.
    let mut names = s.make_events(60);
    s.wait_delivered(&names, Duration::from_secs(60)).await;
    wait_all(
        "syslog",
        &names,
        Duration::from_secs(60),
        || syslog_names(&syslog.lines()),
        || syslog.log(),
    )
    .await;
    wait_all(
        "otlp",
        &names,
        Duration::from_secs(60),
        || otlp_names(&otlp.records()),
        log,
    )
    .await;

    // What rsyslog received is RFC 5424 as an operator's SIEM would parse it.
    let line = syslog
        .lines()
        .into_iter()
        .find(|l| l.contains(&names[0]))
        .unwrap();
    let fields: Vec<&str> = line.splitn(5, ' ').collect();
    // authpriv (10) * 8 + info (6): a file created in a watched tree is INFO.
    assert_eq!(
        &fields[..4],
        ["86", "e2e-agent", "sec-tracker", "file"],
        "{line}"
    );
    let event: Value = serde_json::from_str(fields[4]).unwrap();
    assert_eq!(event["severity"], "INFO", "{line}");
    assert!(event["seq"].as_u64().is_some(), "{line}");
    // And OTLP's records are what the protocol's own types decode.
    let record = otlp
        .records()
        .into_iter()
        .find(|r| created_name(&r["body"]).as_deref() == Some(names[0].as_str()))
        .unwrap();
    assert_eq!(
        record["resource"]["service.name"], "sec-tracker",
        "{record}"
    );
    assert_eq!(record["resource"]["host.name"], "e2e-agent", "{record}");
    assert_eq!(record["severity_number"], 9, "{record}");
    assert_eq!(record["event_name"], "file", "{record}");
    assert_eq!(
        record["body"]["seq"], record["attributes"]["sec_tracker.seq"],
        "{record}"
    );
    let ts = humantime::parse_rfc3339(record["body"]["timestamp"].as_str().unwrap()).unwrap();
    let ns = ts.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    assert_eq!(record["time_unix_nano"].as_u64(), Some(ns), "{record}");

    // 2. Outage of both: rsyslog stopped, the OTLP collector answering 503. The management
    //    server keeps getting events meanwhile; the other two queue theirs.
    syslog.stop();
    otlp.set_failing(Some(503));
    let during = s.make_events(60);
    s.wait_delivered(&during, Duration::from_secs(60)).await;
    let status = eventually(
        "both outputs to queue and retry",
        Duration::from_secs(60),
        || async {
            let st = s.shipper_status().await;
            let by: BTreeMap<String, _> = st
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.clone()))
                .collect();
            let waiting = |n: &str| {
                by.get(n)
                    .is_some_and(|o| o.queue_depth >= 60 && o.state() == ShipperState::Retrying)
            };
            (waiting("syslog") && waiting("otlp")).then_some(st)
        },
    )
    .await;
    let server = status.outputs.iter().find(|o| o.name == "server").unwrap();
    assert!(server.events_sent >= 120, "{server:?}");
    assert_eq!(status.outputs.len(), 3);
    names.extend(during);

    // 3. They come back: everything they missed arrives.
    syslog.restart();
    otlp.set_failing(None);
    wait_all(
        "syslog",
        &names,
        Duration::from_secs(90),
        || syslog_names(&syslog.lines()),
        || syslog.log(),
    )
    .await;
    wait_all(
        "otlp",
        &names,
        Duration::from_secs(90),
        || otlp_names(&otlp.records()),
        log,
    )
    .await;

    // 4. Restarts while events flow (500 a second from another thread): rsyslog three times,
    //    the OTLP collector once (stopped, then a new one on the same port), shipperd once.
    let tree = s.tree.clone();
    let flow = std::thread::spawn(move || {
        let mut made = Vec::new();
        for i in 0..3000 {
            let name = format!("flow-{i}");
            std::fs::write(tree.join(&name), "x").unwrap();
            made.push(name);
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        made
    });
    let flowed =
        |got: &BTreeMap<String, usize>| got.keys().filter(|k| k.starts_with("flow-")).count();
    let mut otlp_before: Vec<Value> = Vec::new();
    for (at, what) in [
        (300, "syslog"),
        (600, "otlp"),
        (900, "syslog"),
        (1200, "shipperd"),
        (1500, "syslog"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let got = match what {
                "otlp" => flowed(&otlp_names(&otlp.records())),
                "shipperd" => s
                    .delivered_names()
                    .keys()
                    .filter(|k| k.starts_with("flow-"))
                    .count(),
                _ => flowed(&syslog_names(&syslog.lines())),
            };
            if got >= at {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never got {at} of the flow: {got}\n{}",
                s.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match what {
            "syslog" => syslog.restart(),
            "otlp" => {
                otlp.stop().await;
                otlp_before.extend(otlp.records());
                otlp = OtlpReceiver::start(&cert, otlp_addr, Some(OTLP_AUTH))
                    .await
                    .unwrap();
            }
            _ => {
                assert_eq!(s.stop_shipper(), Some(0), "{}", s.log());
                s.start_shipper();
            }
        }
    }
    let more = flow.join().unwrap();
    wait_all(
        "the server",
        &more,
        Duration::from_secs(120),
        || {
            s.delivered_names()
                .into_iter()
                .map(|(k, v)| (k, v.len()))
                .collect()
        },
        || s.log(),
    )
    .await;
    wait_all(
        "syslog",
        &more,
        Duration::from_secs(120),
        || syslog_names(&syslog.lines()),
        || syslog.log(),
    )
    .await;
    // The collector that was stopped and the one that replaced it have everything between them.
    wait_all(
        "otlp",
        &more,
        Duration::from_secs(120),
        || {
            let mut all = otlp_before.clone();
            all.extend(otlp.records());
            otlp_names(&all)
        },
        log,
    )
    .await;
    names.extend(more.iter().cloned());
    let syslog_got = syslog_names(&syslog.lines());
    let duplicates: usize = syslog_got.values().map(|n| n - 1).sum();
    eprintln!(
        "syslog: {} events, {duplicates} delivered more than once (at-least-once across 4 rsyslog restarts and one of shipperd)",
        names.len(),
    );

    // 5. Each output reports itself, and test-connection checks each.
    let status = s.shipper_status().await;
    let names_of: Vec<&str> = status.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names_of, ["server", "syslog", "otlp"]);
    let ctl = sec_tracker_testkit::workspace_bin(stack::SHIPPERD, "sec-trackerctl");
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
    for step in ["api", "syslog", "otlp"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(step)),
            "{step}: {text}"
        );
    }
    assert!(!text.contains("otlp-secret"), "{text}");
    // With rsyslog down, its step fails and says where; the command fails.
    syslog.stop();
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
            .any(|l| l.contains("FAIL") && l.contains("tcp") && l.contains("refused")),
        "{text}"
    );
    assert!(!s.log().contains("otlp-secret"), "{}", s.log());
}

/// A syslog receiver that presents a certificate from another CA is refused before anything is
/// sent, and the events wait in the syslog queue while the others flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syslog_receiver_with_an_untrusted_certificate_gets_nothing() {
    if !require_root("outputs_untrusted") || !needs_rsyslog("outputs_untrusted") {
        return;
    }
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let other = TestCa::new();
    let mut s = Stack::start(
        &ca,
        stack::Setup {
            shipper_at_start: false,
            ..setup(&cert, Path::new("ca"))
        },
    )
    .await;
    let ca_path = s.dir.path().join("ca.pem");
    let impostor = other.localhost_cert();
    let syslog = Rsyslog::start(&s.dir.path().join("rsyslog"), &impostor, other.ca_pem()).unwrap();
    s.set_outputs(json!({
        "syslog": {"address": format!("localhost:{}", syslog.port), "ca_file": ca_path, "timeout": "2s"},
    }));
    s.start_shipper();
    let names = s.make_events(20);
    s.wait_delivered(&names, Duration::from_secs(60)).await;
    let st = eventually(
        "the syslog output to report the TLS failure",
        Duration::from_secs(60),
        || async {
            let st = s.shipper_status().await;
            st.outputs
                .iter()
                .find(|o| o.name == "syslog" && o.last_error.contains("TLS") && o.queue_depth >= 20)
                .cloned()
        },
    )
    .await;
    assert!(
        st.last_error.to_lowercase().contains("certificate"),
        "{st:?}"
    );
    assert!(syslog.lines().is_empty(), "{:?}", syslog.lines());
}
