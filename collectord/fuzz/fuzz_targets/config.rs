//! Fuzzes the config loader (`Config::from_json_str`, what `Config::load` runs on the file's
//! text) and `parse_duration`. Never panics; a config it accepts keeps every rule the loader
//! enforces (anything else must have come back as `Err` with at least one problem).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sec_tracker_proto::config::{parse_duration, Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    // `load` refuses a file that is not UTF-8; the lossy text of one still makes a good input.
    let text = String::from_utf8_lossy(data);
    let first = Config::from_json_str(&text);
    match &first {
        Ok(c) => check(c),
        Err(e) => {
            assert!(!e.problems().is_empty());
            if let ConfigError::Invalid { problems, .. } = e {
                assert!(!problems.is_empty());
            }
            let _ = e.to_string();
        }
    }
    // Deterministic: the same text gives the same answer.
    match (&first, Config::from_json_str(&text)) {
        (Ok(a), Ok(b)) => assert_eq!(*a, b),
        (Err(a), Err(b)) => assert_eq!(a.problems(), b.problems()),
        _ => panic!("two loads of the same text disagree"),
    }

    if let Ok(d) = parse_duration(&text) {
        assert!(!d.is_zero());
    }
});

fn check(c: &Config) {
    let _ = format!("{c:?}");
    assert!(!c.server.timeout.is_zero());
    assert!(!c.agent.report_interval.is_zero());
    assert!(!c.monitoring.scan_interval.is_zero());
    assert!(c.server.retry_max <= 1000);
    assert!((1..=10_000).contains(&c.server.batch_size));
    assert!((1..=10_000_000).contains(&c.agent.buffer_size));
    assert!((1..=100_000_000).contains(&c.agent.max_queue_size));
    assert!((256..=16 * 1024 * 1024).contains(&c.monitoring.max_cmdline_bytes));
    for p in [
        &c.agent.collector_socket,
        &c.agent.state_dir,
        &c.agent.shipper_socket,
    ] {
        assert!(!p.as_os_str().is_empty());
    }
    for p in [
        &c.server.api_key_file,
        &c.server.ca_file,
        &c.server.client_cert,
        &c.server.client_key,
    ]
    .into_iter()
    .flatten()
    {
        assert!(!p.as_os_str().is_empty());
    }
    let m = &c.monitoring;
    for p in m
        .watch_paths
        .iter()
        .chain(&m.exclude_paths)
        .chain(&m.auth_logs)
    {
        assert!(p.is_absolute(), "{p:?}");
    }
    assert_eq!(
        c.server.client_cert.is_some(),
        c.server.client_key.is_some()
    );
    let url = c.server.url.trim().to_ascii_lowercase();
    assert!(
        url.is_empty()
            || (url.starts_with("https://") && url.len() > "https://".len())
            || (url.starts_with("http://") && !c.agent.enable_tls),
        "{url:?}"
    );
}
