//! What the rules cost per event: the built-in set judging a mix of the events a host makes
//! (program starts with their lineage, exits, file changes, connections, logins), timed over many
//! rounds; prints the median of 7 runs per kind and for the mix.
//!
//! `cargo bench -p collectord --bench rules` (scripts/bench/rules.sh runs it for the README).

use std::hint::black_box;
use std::time::Instant;

use collectord::rules::Rules;
use sec_tracker_proto::v1::{
    event, AuthAction, AuthEvent, Event, EventType, FileAction, FileEvent, NetworkAction,
    NetworkEvent, ProcessAction, ProcessEvent, ProcessRef,
};

fn ev(r#type: EventType, d: event::Details) -> Event {
    Event {
        r#type: r#type as i32,
        details: Some(d),
        ..Default::default()
    }
}

fn ancestor(pid: u32, name: &str, exe: &str) -> ProcessRef {
    ProcessRef {
        pid,
        name: name.into(),
        exe: exe.into(),
        entity_id: "0123456789abcdef0123456789abcdef".into(),
    }
}

/// One of each kind a busy host makes most of.
fn corpus() -> Vec<(&'static str, Event)> {
    let exec = ProcessEvent {
        action: ProcessAction::Exec as i32,
        pid: 4242,
        ppid: 4200,
        uid: 1000,
        euid: 1000,
        user: "alice".into(),
        name: "git".into(),
        exe: b"/usr/bin/git".to_vec(),
        argv: vec![b"git".to_vec(), b"status".to_vec(), b"--short".to_vec()],
        cwd: b"/home/alice/src".to_vec(),
        parent_name: "bash".into(),
        ancestors: vec![
            ancestor(4200, "bash", "/usr/bin/bash"),
            ancestor(4190, "sshd", "/usr/sbin/sshd"),
            ancestor(702, "sshd", "/usr/sbin/sshd"),
            ancestor(1, "systemd", "/usr/lib/systemd/systemd"),
        ],
        login_uid: Some(1000),
        login_user: "alice".into(),
        unit: "session-3.scope".into(),
        ..Default::default()
    };
    let exit = ProcessEvent {
        action: ProcessAction::Exit as i32,
        pid: 4242,
        name: "git".into(),
        exe: b"/usr/bin/git".to_vec(),
        ..Default::default()
    };
    let file = FileEvent {
        action: FileAction::Modified as i32,
        path: b"/var/log/syslog".to_vec(),
        kind: "file".into(),
        size: 81_920,
        size_before: 81_000,
        mode: 0o640,
        mode_before: 0o640,
        exe: b"/usr/sbin/rsyslogd".to_vec(),
        user: "syslog".into(),
        mtime_ns: 2,
        mtime_before_ns: 1,
        ..Default::default()
    };
    let etc = FileEvent {
        action: FileAction::Modified as i32,
        path: b"/etc/resolv.conf".to_vec(),
        kind: "file".into(),
        exe: b"/usr/lib/systemd/systemd-resolved".to_vec(),
        ..Default::default()
    };
    let net = NetworkEvent {
        action: NetworkAction::ConnectionEstablished as i32,
        protocol: "tcp".into(),
        local_port: 51_234,
        remote_address: "198.51.100.7".into(),
        remote_port: 443,
        exe: b"/usr/bin/curl".to_vec(),
        process_name: "curl".into(),
        user: "alice".into(),
        ..Default::default()
    };
    let auth = AuthEvent {
        action: AuthAction::SshAccepted as i32,
        user: "alice".into(),
        source_address: "192.0.2.10".into(),
        method: "publickey".into(),
        success: true,
        service: "sshd".into(),
        verified: true,
        ..Default::default()
    };
    vec![
        (
            "process exec",
            ev(EventType::Process, event::Details::Process(exec)),
        ),
        (
            "process exit",
            ev(EventType::Process, event::Details::Process(exit)),
        ),
        (
            "file in /var/log",
            ev(EventType::File, event::Details::File(file)),
        ),
        (
            "file in /etc (excepted)",
            ev(EventType::File, event::Details::File(etc)),
        ),
        (
            "connection",
            ev(EventType::Network, event::Details::Network(net)),
        ),
        ("ssh login", ev(EventType::Auth, event::Details::Auth(auth))),
    ]
}

/// Nanoseconds per call of `f` over `rounds` calls, median of 7 runs.
fn median_ns(rounds: u32, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..rounds {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(rounds)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[3]
}

fn main() {
    let rules = Rules::load(None).expect("the built-in rules load");
    let set = rules.current();
    let corpus = corpus();
    println!("{} built-in rules", set.rules.len());
    for (what, e) in &corpus {
        let ns = median_ns(200_000, || {
            black_box(set.best_match(black_box(e)));
        });
        let verdict = set.best_match(e).map_or("-", |r| r.id.as_str());
        println!("{what:<24} {ns:>7.0} ns/event   (rule: {verdict})");
    }
    let ns = median_ns(50_000, || {
        for (_, e) in &corpus {
            black_box(set.best_match(black_box(e)));
        }
    }) / corpus.len() as f64;
    println!("{:<24} {ns:>7.0} ns/event", "the mix");
}
