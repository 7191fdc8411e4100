use super::*;

/// The documented full example (the README of the agent sec-tracker replaces), as an operator would paste it.
const SEED_EXAMPLE: &str = r#"{
  "server":  {"url": "https://your-server.com", "api_key": "your-api-key", "timeout": "30s", "retry_max": 3, "batch_size": 100},
  "agent":   {"id": "unique-agent-id", "name": "server-name", "report_interval": "60s",
              "buffer_size": 1000, "max_queue_size": 10000, "enable_tls": true},
  "monitoring": {"system_info": true, "process_monitor": true, "file_monitor": true,
              "network_monitor": true, "auth_monitor": true,
              "watch_paths": ["/etc", "/usr/bin", "/var/log"], "scan_interval": "5s"},
  "local_output": {"json_format": false, "one_shot": false, "show_timestamp": true,
              "show_colors": true, "compact_output": false}
}"#;

fn problems(text: &str) -> Vec<String> {
    match Config::from_json_str(text) {
        Ok(c) => panic!("expected problems, loaded {c:?}"),
        Err(e) => e.problems(),
    }
}

#[test]
fn seed_example_loads_with_its_values() {
    let c = Config::from_json_str(SEED_EXAMPLE).expect("the documented example");
    assert_eq!(c.server.url, "https://your-server.com");
    assert_eq!(c.server.api_key.expose(), "your-api-key");
    assert_eq!(c.server.timeout, Duration::from_secs(30));
    assert_eq!(c.agent.id, "unique-agent-id");
    assert_eq!(c.agent.report_interval, Duration::from_secs(60));
    assert_eq!(c.monitoring.scan_interval, Duration::from_secs(5));
    assert_eq!(c.monitoring.watch_paths.len(), 3);
}

#[test]
fn seed_section_examples_and_local_mode_one_liners_load() {
    for text in [
        r#"{"local_output": {"compact_output": true}}"#,
        r#"{"local_output": {"show_colors": false}}"#,
        r#"{"local_output": {"show_colors": true}}"#,
        r#"{"local_output": {"compact_output": false}}"#,
        r#"{"monitoring": {"scan_interval": "10s"}}"#,
        "{}",
    ] {
        Config::from_json_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}

#[test]
fn partial_file_keeps_other_defaults() {
    let c = Config::from_json_str(r#"{"local_output": {"compact_output": true}}"#).unwrap();
    assert!(c.local_output.compact_output);
    let d = Config::default();
    assert_eq!(c.agent, d.agent);
    assert_eq!(c.monitoring, d.monitoring);
    assert_eq!(c.local_output.show_colors, d.local_output.show_colors);
}

#[test]
fn typo_names_the_key_and_suggests_the_right_one() {
    let p = problems(r#"{"agent": {"bufer_size": 10}}"#);
    assert_eq!(
        p,
        vec![r#"agent.bufer_size: unknown key; did you mean "buffer_size"?"#]
    );
    let p = problems(r#"{"monitorng": {}}"#);
    assert_eq!(
        p,
        vec![r#"monitorng: unknown key; did you mean "monitoring"?"#]
    );
}

#[test]
fn far_off_key_lists_the_known_ones() {
    let p = problems(r#"{"local_output": {"zzz": true}}"#);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("local_output.zzz: unknown key; known keys here: "),
        "{p:?}"
    );
    assert!(p[0].contains("compact_output"), "{p:?}");
}

#[test]
fn bad_durations_name_the_key() {
    let p = problems(r#"{"monitoring": {"scan_interval": "5 parsecs"}}"#);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("monitoring.scan_interval: \"5 parsecs\" is not a duration"),
        "{p:?}"
    );
    let p = problems(r#"{"server": {"timeout": 30}}"#);
    assert!(
        p[0].starts_with("server.timeout: expected a duration string"),
        "{p:?}"
    );
    let p = problems(r#"{"agent": {"report_interval": "0s"}}"#);
    assert!(p[0].contains("is zero"), "{p:?}");
}

#[test]
fn every_problem_is_listed_not_just_the_first() {
    let p = problems(
        r#"{"agent": {"buffer_size": 0, "enable_tls": "yes"},
            "monitoring": {"watch_paths": ["etc", 3]},
            "local_output": {"json_fromat": true}}"#,
    );
    assert_eq!(
        p,
        vec![
            "agent.buffer_size: must be between 1 and 10000000, got 0",
            "agent.enable_tls: expected true or false, found a string",
            "monitoring.watch_paths[0]: \"etc\" is not an absolute path",
            "monitoring.watch_paths[1]: expected a path string, found a number",
            "local_output.json_fromat: unknown key; did you mean \"json_format\"?",
        ]
    );
}

#[test]
fn plain_http_is_refused_unless_tls_is_disabled() {
    let p = problems(r#"{"server": {"url": "http://srv", "api_key": "k"}}"#);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("server.url:"), "{p:?}");
    Config::from_json_str(
        r#"{"server": {"url": "http://srv", "api_key": "k"}, "agent": {"enable_tls": false}}"#,
    )
    .expect("plain http allowed with enable_tls false");
}

#[test]
fn syntax_error_gives_line_and_column() {
    let e = Config::from_json_str("{\n  \"agent\": {,}\n}").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn api_key_never_appears_in_debug_or_errors() {
    let c = Config::from_json_str(SEED_EXAMPLE).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("your-api-key"), "{dbg}");
    assert!(dbg.contains("<redacted>"));
    let e = Config::from_json_str(r#"{"server": {"api_key": "s3cret", "url": "ftp://x"}}"#)
        .unwrap_err();
    assert!(!e.to_string().contains("s3cret"));
}

#[test]
fn load_reads_a_pipe_and_names_the_file_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, r#"{"agent": {"buffer_size": -1}}"#).unwrap();
    let msg = Config::load(&path).unwrap_err().to_string();
    assert!(msg.contains("c.json"), "{msg}");
    assert!(msg.contains("agent.buffer_size"), "{msg}");
    let missing = Config::load(&dir.path().join("nope.json"))
        .unwrap_err()
        .to_string();
    assert!(missing.starts_with("cannot read config file"), "{missing}");
}

#[test]
fn metrics_listen_is_an_address_and_port_or_nothing() {
    let c = Config::from_json_str(r#"{"agent": {"metrics_listen": "127.0.0.1:9464"}}"#).unwrap();
    assert_eq!(
        c.agent.metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    let c = Config::from_json_str(r#"{"agent": {"metrics_listen": "[::1]:9464"}}"#).unwrap();
    assert_eq!(c.agent.metrics_listen, Some("[::1]:9464".parse().unwrap()));
    let c = Config::from_json_str(r#"{"agent": {"metrics_listen": ""}}"#).unwrap();
    assert_eq!(c.agent.metrics_listen, None);
    assert_eq!(Config::default().agent.metrics_listen, None);
    for bad in [r#""localhost:9464""#, r#""127.0.0.1""#, "9464"] {
        let p = problems(&format!(r#"{{"agent": {{"metrics_listen": {bad}}}}}"#));
        assert!(
            p.len() == 1 && p[0].contains("agent.metrics_listen"),
            "{bad}: {p:?}"
        );
    }
}

#[test]
fn outputs_load_with_their_defaults() {
    let c = Config::from_json_str(
        r#"{"outputs": {
            "syslog": {"address": "siem.example.com:6514", "facility": "local4"},
            "otlp": {"url": "https://otel:4318/v1/logs", "headers": {"Authorization": "Bearer t0ken"}}
        }}"#,
    )
    .unwrap();
    let s = c.outputs.syslog.as_ref().unwrap();
    assert_eq!(s.address, "siem.example.com:6514");
    assert_eq!(s.facility, "local4");
    assert_eq!(s.app_name, "sec-tracker");
    assert_eq!(s.confirm_after, Duration::from_secs(2));
    let o = c.outputs.otlp.as_ref().unwrap();
    assert_eq!(o.headers[0].0, "authorization");
    assert_eq!(o.headers[0].1.expose(), "Bearer t0ken");
    // A header value is a secret: never in a debug print.
    assert!(!format!("{c:?}").contains("t0ken"));
    assert!(Config::default().outputs.syslog.is_none());
}

#[test]
fn every_output_problem_is_named_by_its_key() {
    let p = problems(
        r#"{"outputs": {
            "syslog": {"address": "no-port", "facility": "kernel", "app_name": "two words", "adress": 1},
            "otlp": {"headers": {"bad header": "x", "x-ok": "line\nbreak"}},
            "kafka": {}
        }}"#,
    );
    let text = p.join("\n");
    for expected in [
        "outputs.syslog.address: \"no-port\" is not host:port",
        "outputs.syslog.facility: \"kernel\" is not a facility",
        "outputs.syslog.app_name:",
        "outputs.syslog.adress: unknown key; did you mean \"address\"?",
        "outputs.otlp.url: is required",
        "outputs.otlp.headers.bad header: is not a valid HTTP header name",
        "outputs.otlp.headers.x-ok: holds characters not allowed",
        "outputs.kafka: unknown key",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The header's value is not echoed back in the problem.
    assert!(!text.contains("line"));
}

#[test]
fn the_readmes_outputs_example_loads() {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("\n## Outputs\n")
        .nth(1)
        .expect("the README has an Outputs section");
    let section = section.split("\n## ").next().unwrap();
    let example = section
        .split("```json\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a JSON example in Outputs");
    let c = Config::from_json_str(example).expect("the README's example");
    assert!(c.outputs.syslog.is_some() && c.outputs.otlp.is_some());
    assert_eq!(c.outputs.syslog.unwrap().address, "siem.example.com:6514");
}
