//! collectord as a real process on a private socket: what an operator or a subscriber sees.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use sec_tracker_proto::v1::subscribe_response::Item;
use sec_tracker_proto::v1::{
    event, EventType, GapReason, ProcessAction, ProcessEvent, Severity, SnapshotRequest,
    StatusRequest, SubscribeRequest, SubscribeResponse,
};
use sec_tracker_testkit::{eventually, require_root, wait_for, Daemon};
use tonic::Streaming;

const BIN: &str = env!("CARGO_BIN_EXE_collectord");
/// Only the process monitor, so that the tests see just what they cause (and the system report).
const PROCESS_ONLY: &str =
    r#"{"monitoring": {"file_monitor": false, "auth_monitor": false, "network_monitor": false}}"#;

/// A short-lived process (about 10 ms) whose last argument is `tag` and whose exit code is
/// `code`. Short enough to be gone long before a polling agent would look, long enough that a
/// test on a loaded 2-core CI machine running several collectors at once checks the fields
/// rather than scheduler luck (the exec-storm benchmark measures processes that live < 1 ms).
fn short_lived(tag: &str, code: i32) -> Command {
    let mut c = Command::new("/bin/sh");
    c.args(["-c", &format!("sleep 0.01; exit {code}"), tag]);
    c
}

fn tag(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("st-{name}-{}-{nanos}", std::process::id())
}

async fn next(s: &mut Streaming<SubscribeResponse>) -> Item {
    tokio::time::timeout(Duration::from_secs(20), s.next())
        .await
        .expect("timed out waiting for the stream")
        .expect("stream ended")
        .expect("stream error")
        .item
        .expect("empty item")
}

fn process(e: &sec_tracker_proto::v1::Event) -> Option<&ProcessEvent> {
    match &e.details {
        Some(event::Details::Process(p)) => Some(p),
        _ => None,
    }
}

fn argv_text(p: &ProcessEvent) -> Vec<String> {
    p.argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_processes_arrive_with_pid_ppid_user_and_cmdline() {
    if !require_root("short_lived_processes") {
        return;
    }
    let d = Daemon::start(Path::new(BIN), PROCESS_ONLY);
    let mut client = d.client().await;
    let mut stream = client
        .subscribe(SubscribeRequest {
            types: vec![EventType::Process as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(next(&mut stream).await, Item::Hello(_)));

    let tag = tag("exec");
    let mut expected: HashMap<u32, (Vec<String>, &str, i32)> = HashMap::new();
    for i in 0..40 {
        let code = if i % 4 == 3 { 1 } else { 0 };
        let arg = format!("{tag}-{i}");
        let mut child = short_lived(&arg, code).spawn().unwrap();
        let argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            format!("sleep 0.01; exit {code}"),
            arg,
        ];
        expected.insert(child.id(), (argv, "root", code));
        child.wait().unwrap();
    }
    // Another user: setpriv drops to nobody, then execs true in the same process.
    let arg = format!("{tag}-nobody");
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/bin/sh",
            "-c",
            "sleep 0.01",
            &arg,
        ])
        .spawn()
        .unwrap();
    expected.insert(
        child.id(),
        (
            vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                "sleep 0.01".to_owned(),
                arg,
            ],
            "nobody",
            0,
        ),
    );
    child.wait().unwrap();

    let me = std::process::id();
    let mut execs_left: HashMap<u32, _> = expected.clone();
    let mut exits_left: HashMap<u32, i32> = expected
        .iter()
        .map(|(pid, (_, _, code))| (*pid, *code))
        .collect();
    while !execs_left.is_empty() || !exits_left.is_empty() {
        let Item::Event(e) = next(&mut stream).await else {
            continue;
        };
        let Some(p) = process(&e) else { continue };
        match p.action() {
            ProcessAction::Exec => {
                let argv = argv_text(p);
                let Some((want_argv, want_user, _)) = execs_left.get(&p.pid) else {
                    continue;
                };
                if argv != *want_argv {
                    continue; // setpriv's own exec, before it became true
                }
                assert_eq!(p.ppid, me, "ppid of {argv:?}");
                assert_eq!(p.user, *want_user, "user of {argv:?}");
                assert!(!p.details_missing, "{argv:?}");
                assert_eq!(e.r#type(), EventType::Process);
                assert_eq!(e.severity(), Severity::Info);
                assert_eq!(e.source, "process_monitor");
                assert!(
                    e.message.contains(&format!("PID: {}", p.pid)),
                    "{}",
                    e.message
                );
                execs_left.remove(&p.pid);
            }
            ProcessAction::Exit => {
                if let Some(code) = exits_left.remove(&p.pid) {
                    assert_eq!(p.exit_code, code, "exit code of pid {}", p.pid);
                    assert!(p.name == "sh" || p.name == "sleep", "{}", p.name);
                }
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_run_from_tmp_is_critical() {
    if !require_root("exec_from_tmp") {
        return;
    }
    let d = Daemon::start(Path::new(BIN), PROCESS_ONLY);
    let payload = tempfile::Builder::new()
        .prefix("st-payload")
        .tempdir_in("/tmp")
        .unwrap();
    let exe = payload.path().join("dropper");
    std::fs::copy("/bin/sleep", &exe).unwrap();
    let mut client = d.client().await;
    let mut stream = client
        .subscribe(SubscribeRequest {
            min_severity: Severity::Critical as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(next(&mut stream).await, Item::Hello(_)));
    let pid = Command::new(&exe).arg("0.01").spawn().unwrap().id();
    loop {
        let Item::Event(e) = next(&mut stream).await else {
            continue;
        };
        assert_eq!(
            e.severity(),
            Severity::Critical,
            "the filter passes only critical events"
        );
        if process(&e).is_some_and(|p| p.pid == pid && p.action() == ProcessAction::Exec) {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_replays_exactly_the_missed_events() {
    if !require_root("replay") {
        return;
    }
    let d = Daemon::start(Path::new(BIN), PROCESS_ONLY);
    let mut client = d.client().await;
    let mut stream = client
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let Item::Hello(hello) = next(&mut stream).await else {
        panic!("no hello")
    };
    let first = tag("before");
    short_lived(&first, 0).status().unwrap();
    let last_seen = loop {
        let Item::Event(e) = next(&mut stream).await else {
            continue;
        };
        if process(&e).is_some_and(|p| argv_text(p).contains(&first)) {
            break e.seq;
        }
    };
    drop(stream);

    // While disconnected:
    let missed = tag("missed");
    for i in 0..5 {
        short_lived(&format!("{missed}-{i}"), 0).status().unwrap();
    }
    let status_client = d.client().await;
    let latest = eventually(
        "the missed execs to be collected",
        Duration::from_secs(10),
        || {
            let mut c = status_client.clone();
            async move {
                let s = c.status(StatusRequest {}).await.ok()?.into_inner();
                (s.latest_seq >= last_seen + 10).then_some(s.latest_seq)
            }
        },
    )
    .await;

    let mut stream = client
        .subscribe(SubscribeRequest {
            after_seq: last_seen,
            stream_id: hello.stream_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(next(&mut stream).await, Item::Hello(_)));
    let mut seq = last_seen;
    let mut found = 0;
    while seq < latest {
        match next(&mut stream).await {
            Item::Event(e) => {
                assert_eq!(
                    e.seq,
                    seq + 1,
                    "replay must be contiguous from after_seq + 1"
                );
                seq = e.seq;
                if process(&e).is_some_and(|p| {
                    p.action() == ProcessAction::Exec
                        && argv_text(p).iter().any(|a| a.starts_with(&missed))
                }) {
                    found += 1;
                }
            }
            other => panic!("unexpected {other:?} in a replay that the ring still holds"),
        }
    }
    assert_eq!(found, 5, "every exec made while disconnected is replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overrun_ring_is_reported_as_a_gap_with_the_exact_count() {
    if !require_root("overrun") {
        return;
    }
    let d = Daemon::start(
        Path::new(BIN),
        r#"{"agent": {"buffer_size": 16, "buffer_bytes": 65536}, "monitoring": {"file_monitor": false, "auth_monitor": false, "network_monitor": false}}"#,
    );
    let mut client = d.client().await;
    let stream_id = client
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .stream_id;
    // Far more than 64 KiB of events (a few hundred bytes each).
    for _ in 0..600 {
        Command::new("/bin/true").status().unwrap();
    }
    eventually("the ring to overrun", Duration::from_secs(10), || {
        let mut c = client.clone();
        async move {
            (c.status(StatusRequest {})
                .await
                .ok()?
                .into_inner()
                .oldest_seq
                > 2)
            .then_some(())
        }
    })
    .await;
    let mut stream = client
        .subscribe(SubscribeRequest {
            after_seq: 1,
            stream_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let Item::Hello(hello) = next(&mut stream).await else {
        panic!("no hello")
    };
    let Item::Gap(gap) = next(&mut stream).await else {
        panic!("no gap")
    };
    assert_eq!(gap.reason(), GapReason::RingOverrun);
    assert_eq!(gap.first_missed_seq, 2);
    // The ring may have moved on between hello and the replay: the gap and the first replayed
    // event must agree with each other exactly.
    let Item::Event(first) = next(&mut stream).await else {
        panic!("no event after the gap")
    };
    assert_eq!(gap.last_missed_seq + 1, first.seq);
    assert_eq!(gap.missed, first.seq - 2);
    assert!(first.seq >= hello.oldest_seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_collector_run_is_reported_to_a_resuming_subscriber() {
    if !require_root("restart") {
        return;
    }
    let mut d = Daemon::start(Path::new(BIN), PROCESS_ONLY);
    let old = d
        .client()
        .await
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .stream_id;
    assert_eq!(d.stop(), Some(0));
    d.spawn(Path::new(BIN));
    let mut client = d.client().await;
    let mut stream = client
        .subscribe(SubscribeRequest {
            after_seq: 5,
            stream_id: old.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let Item::Hello(hello) = next(&mut stream).await else {
        panic!("no hello")
    };
    assert_ne!(hello.stream_id, old);
    let Item::Gap(gap) = next(&mut stream).await else {
        panic!("no gap")
    };
    assert_eq!(gap.reason(), GapReason::CollectorRestarted);
    assert_eq!(gap.previous_stream_id, old);
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_agrees_with_the_system() {
    if !require_root("snapshot") {
        return;
    }
    let d = Daemon::start(Path::new(BIN), PROCESS_ONLY);
    let s = d
        .client()
        .await
        .snapshot(SnapshotRequest {})
        .await
        .unwrap()
        .into_inner();

    assert_eq!(s.kernel, command_output("uname", &["-r"]));
    assert_eq!(s.hostname, command_output("uname", &["-n"]));
    let cpu = s.cpu_info.unwrap();
    assert_eq!(cpu.cores.to_string(), command_output("nproc", &["--all"]));
    assert!((0.0..=100.0).contains(&cpu.usage_percent));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb = |key: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    let mem = s.memory_info.unwrap();
    assert_eq!(mem.total, kb("MemTotal:"));
    assert_eq!(mem.used, mem.total - mem.available);
    // Available moves; it must be near what the kernel says now.
    let now_available = kb("MemAvailable:");
    assert!(
        mem.available.abs_diff(now_available) < mem.total / 20,
        "{} vs {}",
        mem.available,
        now_available
    );

    let root = s
        .disks
        .iter()
        .find(|d| d.mount_point == "/")
        .expect("/ is a real filesystem");
    let statfs = command_output("stat", &["-f", "-c", "%S %b %a", "/"]);
    let v: Vec<u64> = statfs
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(root.total, v[0] * v[1]);
    assert!(root.available.abs_diff(v[0] * v[2]) < 64 * 1024 * 1024);
    assert!(!s
        .disks
        .iter()
        .any(|d| ["proc", "sysfs", "tmpfs", "devtmpfs", "cgroup2"].contains(&d.fs_type.as_str())));
    assert!(s
        .network_interfaces
        .iter()
        .any(|n| n.name == "lo" && n.addresses.iter().any(|a| a.starts_with("127.0.0.1"))));
    assert!(s.uptime_seconds > 0.0);
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    if !require_root("sigterm") {
        return;
    }
    let mut d = Daemon::start(Path::new(BIN), PROCESS_ONLY);
    assert_eq!(d.stop(), Some(0));
    assert!(!d.socket.exists(), "socket left behind");
    assert!(d.log_text().contains("collectord stopped"));
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_is_not_stolen() {
    if !require_root("stale_socket") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("c.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap()); // leaves a dead socket file
    let config = dir.path().join("c.json");
    std::fs::write(&config, PROCESS_ONLY).unwrap();
    let mut first = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .spawn()
        .unwrap();
    wait_for("the first collector", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).ok()
    });
    let second = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another collectord is already serving")
    );
    assert!(
        std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "the first one still serves"
    );
    let mode = std::fs::metadata(&socket)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o660);
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn a_bad_config_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    std::fs::write(
        &config,
        r#"{"agent": {"bufer_size": 5}, "monitoring": {"scan_interval": "soon"}}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(dir.path().join("s"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"agent.bufer_size: unknown key; did you mean "buffer_size"?"#),
        "{err}"
    );
    assert!(err.contains("monitoring.scan_interval"), "{err}");
}

/// Capability masks as /proc shows them.
fn cap_mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | (1u64 << c))
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

#[test]
fn collectord_keeps_exactly_its_named_capabilities_in_every_thread() {
    if !require_root("capabilities") {
        return;
    }
    // NET_ADMIN (the connector), SYS_ADMIN (fanotify_init) and SYS_NICE are used at start only:
    // what runs keeps these two.
    const DAC_READ_SEARCH: u32 = 2;
    const SYS_PTRACE: u32 = 19;
    let cases = [
        // every monitor on (the default)
        (
            r#"{"agent": {"state_dir": "@STATE@"}, "monitoring": {"watch_paths": ["/etc"]}}"#,
            cap_mask(&[DAC_READ_SEARCH, SYS_PTRACE]),
            true,
        ),
        // process monitor only, no real-time priority
        (
            r#"{"monitoring": {"file_monitor": false, "auth_monitor": false, "network_monitor": false, "realtime_priority": false}}"#,
            cap_mask(&[DAC_READ_SEARCH, SYS_PTRACE]),
            false,
        ),
    ];
    for (config, want, realtime) in cases {
        let d = Daemon::start(Path::new(BIN), config);
        let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{}/task", d.pid()))
            .unwrap()
            .flatten()
            .collect();
        assert!(tasks.len() > 2, "collectord runs several threads");
        let mut reader_policy = None;
        for t in tasks {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap();
            let name = status_field(&status, "Name:");
            if name == "proc-connector" {
                // /proc/<pid>/task/<tid>/stat field 41: the scheduling policy (1: SCHED_FIFO).
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
                let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
                reader_policy = after_comm.split(' ').nth(38).map(str::to_owned);
            }
            for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
                let got = u64::from_str_radix(&status_field(&status, set), 16).unwrap();
                assert_eq!(got, want, "thread {name}: {set} {got:x}, want {want:x}");
            }
            assert_eq!(
                status_field(&status, "CapInh:"),
                "0000000000000000",
                "thread {name}"
            );
            assert_eq!(
                status_field(&status, "CapAmb:"),
                "0000000000000000",
                "thread {name}"
            );
            assert_eq!(status_field(&status, "NoNewPrivs:"), "1", "thread {name}");
        }
        // The reader made itself real-time without CAP_SYS_NICE (RLIMIT_RTPRIO, set at start).
        let want_policy = if realtime { "1" } else { "0" };
        assert_eq!(
            reader_policy.as_deref(),
            Some(want_policy),
            "{}",
            d.log_text()
        );
        assert!(d.log_text().contains("dropped every other capability"));
    }
}

#[test]
fn log_file_receives_the_log() {
    if !require_root("log_file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("c.sock");
    let log = dir.path().join("log").join("agent.log");
    let config = dir.path().join("c.json");
    std::fs::write(&config, PROCESS_ONLY).unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .arg("--log-file")
        .arg(&log)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the socket", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).ok()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("collectord serving") && text.contains("collectord stopped"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colour codes in a file");
    assert!(
        out.stderr.is_empty(),
        "nothing on stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An operator's rule added while collectord runs takes effect at SIGHUP; a broken file sent the
/// same way keeps the rules in force and says why; a broken file at start stops it with exit 64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_reload_on_sighup_and_a_broken_file_keeps_the_rules_in_force() {
    if !require_root("rules_reload") {
        return;
    }
    let rules = tempfile::tempdir().unwrap();
    let config = format!(
        r#"{{"monitoring": {{"file_monitor": false, "auth_monitor": false, "network_monitor": false,
             "rules_dir": "{}"}}}}"#,
        rules.path().display()
    );
    let d = Daemon::start(Path::new(BIN), &config);
    let mut s = d.subscribe(&[EventType::Process], false).await;
    let rule = |id: &str| {
        format!(
            r#"{{"rules": [{{"id": "{id}", "title": "a marker ran", "description": "d", "severity": "warning",
                 "match": {{"type": "process", "action": "exec", "process.args": {{"prefix": ["st-marker-"]}}}}}}]}}"#
        )
    };
    let run_marker = |t: &str| {
        Command::new("/bin/sh")
            .args(["-c", "sleep 0.01", t])
            .status()
            .unwrap();
    };
    let until_rule = |want: &'static str| {
        move |p: &ProcessEvent, e: &sec_tracker_proto::v1::Event| {
            p.action() == ProcessAction::Exec
                && argv_text(p).iter().any(|a| a.starts_with("st-marker-"))
                && e.rule_id == want
        }
    };
    std::fs::write(rules.path().join("50-marker.json"), rule("marker-ran")).unwrap();
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(d.pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    hup();
    let check = until_rule("marker-ran");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    'loaded: loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the new rule never applied"
        );
        run_marker(&tag("marker"));
        while let Ok(item) = tokio::time::timeout(Duration::from_millis(300), next(&mut s)).await {
            if let Item::Event(e) = item {
                if process(&e).is_some_and(|p| check(p, &e)) {
                    assert_eq!(e.severity(), Severity::Warning);
                    break 'loaded;
                }
            }
        }
    }
    // A broken file: the log says so, and the rule in force still applies.
    std::fs::write(rules.path().join("60-broken.json"), "{ not json").unwrap();
    hup();
    wait_for("the reload refused", Duration::from_secs(20), || {
        d.log_text()
            .contains("the rules in force stay")
            .then_some(())
    });
    assert!(
        d.log_text().contains("60-broken.json: not valid JSON"),
        "{}",
        d.log_text()
    );
    let t = tag("marker");
    run_marker(&t);
    loop {
        if let Item::Event(e) = next(&mut s).await {
            if process(&e).is_some_and(|p| argv_text(p).contains(&t)) && e.rule_id == "marker-ran" {
                break;
            }
        }
    }
    // At start, the same file is a configuration error.
    let cfg = rules.path().join("config.json");
    std::fs::write(&cfg, &config).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("60-broken.json: not valid JSON"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
