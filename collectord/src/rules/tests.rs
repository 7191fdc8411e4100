use super::*;
use sec_tracker_proto::v1::{
    event, AuthAction, AuthEvent, EventType, FileAction, FileEvent, ProcessAction, ProcessEvent,
    ProcessRef,
};

fn exec(exe: &str, ancestors: &[&str]) -> Event {
    Event {
        r#type: EventType::Process as i32,
        details: Some(event::Details::Process(ProcessEvent {
            action: ProcessAction::Exec as i32,
            exe: exe.as_bytes().to_vec(),
            name: exe.rsplit('/').next().unwrap().into(),
            ancestors: ancestors
                .iter()
                .map(|n| ProcessRef {
                    name: (*n).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn file(action: FileAction, path: &str, writer: &str) -> Event {
    Event {
        r#type: EventType::File as i32,
        details: Some(event::Details::File(FileEvent {
            action: action as i32,
            path: path.as_bytes().to_vec(),
            exe: writer.as_bytes().to_vec(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn defaults() -> RuleSet {
    load(DEFAULT_RULES, None).unwrap_or_else(|p| {
        panic!(
            "the built-in rules have problems:\n{}",
            p.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn fired(set: &RuleSet, e: &Event) -> Option<(String, Severity)> {
    set.best_match(e).map(|r| (r.id.clone(), r.severity))
}

#[test]
fn the_built_in_rules_load_and_each_has_a_title_and_technique_or_none() {
    let set = defaults();
    assert!(set.rules.len() >= 20, "{}", set.rules.len());
    for r in &set.rules {
        assert!(!r.title.is_empty() && !r.description.is_empty(), "{}", r.id);
        assert_eq!(r.origin, "built-in");
    }
}

#[test]
fn globs_match_as_documented() {
    assert!(glob(b"/etc/sudoers.d/*", b"/etc/sudoers.d/90-x"));
    assert!(glob(
        b"*/.ssh/authorized_keys",
        b"/home/a/.ssh/authorized_keys"
    ));
    assert!(glob(b"/usr/*/.*", b"/usr/bin/.hidden"));
    assert!(!glob(b"/usr/*/.*", b"/usr/bin/visible"));
    assert!(glob(b"* (deleted)", b"/tmp/x (deleted)"));
    assert!(glob(b"a?c", b"abc") && !glob(b"a?c", b"ac"));
    assert!(glob(b"*", b"") && !glob(b"", b"x"));
}

#[test]
fn severity_comes_from_the_most_severe_rule_and_names_it() {
    let set = defaults();
    let mut e = exec("/tmp/payload", &["bash", "sshd"]);
    set.apply(&mut e);
    assert_eq!(e.severity(), Severity::Critical);
    assert_eq!(e.rule_id, "exec-from-writable-dir");
    assert_eq!(e.mitre, ["T1204.002", "T1059"]);
    // Benign: a program built under $HOME and run from there.
    let mut e = exec("/home/alice/src/app/target/debug/app", &["cargo", "bash"]);
    set.apply(&mut e);
    assert_eq!((e.severity(), e.rule_id.as_str()), (Severity::Info, ""));
}

#[test]
fn exceptions_decide_with_the_program_that_did_it() {
    let set = defaults();
    assert_eq!(
        fired(
            &set,
            &file(FileAction::Modified, "/usr/bin/ls", "/usr/bin/vim")
        ),
        Some(("system-binary-changed".into(), Severity::Critical))
    );
    assert_eq!(
        fired(
            &set,
            &file(FileAction::Modified, "/usr/bin/ls", "/usr/bin/dpkg")
        ),
        None,
        "the package manager replacing a binary is quiet"
    );
    assert_eq!(
        fired(&set, &exec("/usr/sbin/modprobe", &["bash"])).map(|f| f.0),
        Some("kernel-module-tool".into())
    );
    assert_eq!(
        fired(
            &set,
            &exec("/usr/sbin/modprobe", &["systemd-udevd", "systemd"])
        ),
        None
    );
}

#[test]
fn operators_add_override_and_silence_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("50-local.json"),
        r#"{"rules": [{"id": "curl-from-web-server", "title": "curl run by the web server",
                       "description": "d", "severity": "warning", "mitre": ["T1105"],
                       "match": {"type": "process", "process.name": "curl",
                                 "process.ancestors.name": ["nginx", "apache2"]}}],
            "overrides": [{"id": "exec-from-writable-dir", "except": [{"process.exe": {"prefix": ["/tmp/build-"]}}]},
                          {"id": "etc-changed", "enabled": false},
                          {"id": "ssh-root-login", "severity": "critical"}]}"#,
    )
    .unwrap();
    let set = load(DEFAULT_RULES, Some(dir.path())).unwrap();
    assert_eq!(
        fired(&set, &exec("/usr/bin/curl", &["sh", "nginx"])),
        Some(("curl-from-web-server".into(), Severity::Warning))
    );
    assert_eq!(fired(&set, &exec("/tmp/build-1/app", &[])), None);
    assert!(fired(&set, &exec("/tmp/other", &[])).is_some());
    assert_eq!(
        fired(
            &set,
            &file(FileAction::Modified, "/etc/hosts", "/usr/bin/vim")
        ),
        None
    );
    let root = Event {
        r#type: EventType::Auth as i32,
        details: Some(event::Details::Auth(AuthEvent {
            action: AuthAction::SshAccepted as i32,
            user: "root".into(),
            success: true,
            ..Default::default()
        })),
        ..Default::default()
    };
    assert_eq!(fired(&set, &root).map(|f| f.1), Some(Severity::Critical));
}

#[test]
fn every_problem_is_named_with_file_rule_and_field() {
    let mut set = RuleSet::default();
    let mut problems = Vec::new();
    load::read_file(
        r#"{"rules": [
              {"id": "a", "title": "t", "severity": "severe", "match": {"process.exee": "/x"}},
              {"id": "b", "title": "t", "severity": "info", "mitre": ["1059"],
               "match": {"file.mode": "rwx", "process.name": "x", "auth.user": "root"}},
              {"title": "no id", "severity": "info", "match": {"type": "file"}, "exept": []}
            ],
            "overides": []}"#,
        "50-bad.json",
        &mut set,
        &mut problems,
    );
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let has = |s: &str| text.iter().any(|t| t.contains(s));
    assert!(
        has("50-bad.json: overides: unknown key; did you mean \"overrides\"?"),
        "{text:#?}"
    );
    assert!(has("rule a: severity: needed"), "{text:#?}");
    assert!(
        has("rule a: match.process.exee: unknown field; did you mean \"process.exe\"?"),
        "{text:#?}"
    );
    assert!(
        has("rule b: mitre: must be a list of ATT&CK technique ids"),
        "{text:#?}"
    );
    assert!(
        has("rule b: match.file.mode: wrong value for file.mode (a number"),
        "{text:#?}"
    );
    assert!(
        has("rule b: match: tests fields of different event types (auth, process)"),
        "{text:#?}"
    );
    assert!(has("rule #3: id: needed"), "{text:#?}");
    assert!(
        has("rule #3: exept: unknown key; did you mean \"except\"?"),
        "{text:#?}"
    );
    assert!(set.rules.is_empty(), "a rule with a problem is not used");
}

#[test]
fn a_bad_override_names_the_rule_it_meant() {
    let mut set = defaults();
    let mut problems = Vec::new();
    load::read_file(
        r#"{"overrides": [{"id": "exec-from-writable-dirs", "severity": "info"}]}"#,
        "x.json",
        &mut set,
        &mut problems,
    );
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .to_string()
            .contains("no such rule; did you mean \"exec-from-writable-dir\"?"),
        "{}",
        problems[0]
    );
}
