//! The default detection rules, each caught by performing its technique for real on this
//! machine (as `nobody` where an unprivileged attacker would do it), with the rule, severity and
//! process the operator sees; and benign counterparts that must stay quiet.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sec_tracker_proto::v1::subscribe_response::Item;
use sec_tracker_proto::v1::{
    event, Event, EventType, MonitorState, Severity, StatusRequest, SubscribeResponse,
};
use sec_tracker_testkit::{as_nobody, require_root, Daemon};
use tonic::Streaming;

const BIN: &str = env!("CARGO_BIN_EXE_collectord");

fn tag(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("st-{name}-{}-{nanos}", std::process::id())
}

/// One test at a time: each watches /etc and /usr/bin, and would see the others' changes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// collectord watching /etc, /usr/bin, /var/log and `extra`, with the process and network
/// monitors (what the default rules need), once every monitor runs.
async fn daemon(extra: &Path) -> Daemon {
    let config = format!(
        r#"{{"agent": {{"state_dir": "@STATE@"}}, "monitoring": {{"auth_monitor": false,
            "system_info": false, "scan_interval": "200ms",
            "watch_paths": ["/etc", "/usr/bin", "/var/log", "{}"]}}}}"#,
        extra.display()
    );
    let d = Daemon::start(Path::new(BIN), &config);
    let mut client = d.client().await;
    sec_tracker_testkit::eventually("every monitor running", Duration::from_secs(30), || {
        let mut c = client.clone();
        async move {
            let st = c.status(StatusRequest {}).await.ok()?.into_inner();
            st.monitors
                .iter()
                .filter(|m| m.enabled)
                .all(|m| m.state() == MonitorState::Running)
                .then_some(())
        }
    })
    .await;
    let _ = &mut client;
    d
}

/// Reads events until one satisfies `want`; fails at the deadline, listing what came.
async fn expect(
    s: &mut Streaming<SubscribeResponse>,
    what: &str,
    want: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.next()).await {
            Ok(Some(Ok(r))) => {
                if let Some(Item::Event(e)) = r.item {
                    if want(&e) {
                        return e;
                    }
                    seen.push(format!(
                        "[{}] {} {}",
                        e.rule_id,
                        e.severity().as_str_name(),
                        e.message
                    ));
                }
            }
            _ => panic!(
                "{what}: not seen within 20 s; saw:\n{}",
                seen[seen.len().saturating_sub(30)..].join("\n")
            ),
        }
    }
}

fn path_of(e: &Event) -> Vec<u8> {
    match &e.details {
        Some(event::Details::File(f)) => f.path.clone(),
        _ => Vec::new(),
    }
}

fn is_file(e: &Event, path: &Path) -> bool {
    path_of(e) == path.as_os_str().as_encoded_bytes()
}

fn exe_is(e: &Event, exe: &Path) -> bool {
    match &e.details {
        Some(event::Details::Process(p)) => p.exe == exe.as_os_str().as_encoded_bytes(),
        _ => false,
    }
}

fn mentions(e: &Event, t: &str) -> bool {
    match &e.details {
        Some(event::Details::Process(p)) => p.argv.iter().any(|a| a == t.as_bytes()),
        _ => false,
    }
}

/// A scratch directory outside /tmp, removed afterwards.
fn scratch() -> tempfile::TempDir {
    std::fs::create_dir_all("/var/lib/st-rules-tests").unwrap();
    tempfile::Builder::new()
        .prefix("t")
        .tempdir_in("/var/lib/st-rules-tests")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_run_from_tmp_or_memory_are_critical_and_from_home_are_not() {
    if !require_root("rules_exec") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = scratch();
    let d = daemon(dir.path()).await;
    let mut s = d.subscribe(&[EventType::Process], false).await;
    // The technique: nobody drops a payload in /tmp and runs it.
    let drop = tempfile::Builder::new()
        .prefix("st-drop")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(drop.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let payload = drop.path().join("payload");
    std::fs::copy("/bin/sleep", &payload).unwrap();
    let t = tag("tmp");
    assert!(as_nobody(&payload, None)
        .args(["0.01", &t])
        .status()
        .is_ok());
    let e = expect(&mut s, "payload run from /tmp", |e| {
        mentions(e, &t) && exe_is(e, &payload)
    })
    .await;
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("exec-from-writable-dir", Severity::Critical)
    );
    assert_eq!(e.mitre, ["T1204.002", "T1059"]);
    // From memory: a memfd executed (fileless).
    let t = tag("memfd");
    let script = format!(
        "import os\nfd = os.memfd_create('st', 0)\nos.write(fd, open('/bin/true', 'rb').read())\nos.execv('/proc/self/fd/%d' % fd, ['st', '{t}'])"
    );
    assert!(as_nobody(Path::new("/usr/bin/python3"), None)
        .args(["-c", &script])
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "a memfd run", |e| mentions(e, &t)).await;
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("exec-from-memory", Severity::Critical),
        "{e:?}"
    );
    // A kernel module tool run by hand (a dry run: nothing is loaded).
    let t = tag("modprobe");
    let modprobe = ["/usr/sbin/modprobe", "/sbin/modprobe"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("modprobe (kmod) is installed");
    let _ = Command::new(modprobe).args(["-n", "-q", &t]).status();
    let e = expect(&mut s, "modprobe run", |e| mentions(e, &t)).await;
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("kernel-module-tool", Severity::Warning),
        "{e:?}"
    );
    // Benign: a program built and run under a home-like directory stays INFO.
    let home = dir.path().join("home/alice/target");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy("/bin/sleep", home.join("app")).unwrap();
    let t = tag("home");
    assert!(Command::new(home.join("app"))
        .args(["0.01", &t])
        .status()
        .is_ok());
    let e = expect(&mut s, "a program run from home", |e| mentions(e, &t)).await;
    assert_eq!((e.rule_id.as_str(), e.severity()), ("", Severity::Info));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistence_and_privilege_files_are_caught_and_plain_config_is_a_warning() {
    if !require_root("rules_persistence") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = scratch();
    let t = tag("p");
    // (file to write, expected rule, severity); each written, then removed.
    let cases: Vec<(PathBuf, &str, Severity)> = vec![
        (
            format!("/etc/sudoers.d/{t}").into(),
            "sudoers-changed",
            Severity::Critical,
        ),
        (
            "/etc/ld.so.preload".into(),
            "ld-so-preload-changed",
            Severity::Critical,
        ),
        (
            format!("/etc/cron.d/{t}").into(),
            "cron-persistence",
            Severity::Warning,
        ),
        (
            format!("/etc/systemd/system/{t}.service").into(),
            "systemd-persistence",
            Severity::Warning,
        ),
        (
            format!("/etc/profile.d/{t}.sh").into(),
            "shell-profile-changed",
            Severity::Warning,
        ),
        (
            format!("/etc/.{t}").into(),
            "hidden-file-in-system-dir",
            Severity::Warning,
        ),
        (
            dir.path().join("home/eve/.ssh/authorized_keys"),
            "authorized-keys-changed",
            Severity::Warning,
        ),
        (
            format!("/etc/{t}.conf").into(),
            "etc-changed",
            Severity::Warning,
        ),
    ];
    assert!(
        !Path::new("/etc/ld.so.preload").exists(),
        "this test would replace /etc/ld.so.preload"
    );
    // Their directories exist before collectord watches, as on a real host.
    let mut made = Vec::new();
    for (path, ..) in &cases {
        let parent = path.parent().unwrap();
        if !parent.exists() {
            std::fs::create_dir_all(parent).unwrap();
            made.push(parent.to_path_buf());
        }
    }
    let d = daemon(dir.path()).await;
    let mut s = d.subscribe(&[EventType::File], false).await;
    for (path, rule, severity) in &cases {
        // An empty ld.so.preload loads nothing: safe to create for a moment.
        std::fs::write(
            path,
            if *rule == "ld-so-preload-changed" {
                ""
            } else {
                "# sec-tracker test\n"
            },
        )
        .unwrap();
        let e = expect(&mut s, &format!("{} written", path.display()), |e| {
            is_file(e, path) && !e.rule_id.is_empty()
        })
        .await;
        assert_eq!(
            (e.rule_id.as_str(), e.severity()),
            (*rule, *severity),
            "{}",
            path.display()
        );
        let f = match &e.details {
            Some(event::Details::File(f)) => f.clone(),
            _ => unreachable!(),
        };
        assert!(
            f.pid > 0 && f.entity_id.len() == 32,
            "the writer is named: {f:?}"
        );
        std::fs::remove_file(path).unwrap();
    }
    for m in made.iter().filter(|m| m.starts_with("/etc")) {
        let _ = std::fs::remove_dir(m);
    }
}

/// Creates a user and removes it: the account database changes (CRITICAL), by useradd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_added_is_critical_and_names_useradd() {
    if !require_root("rules_account") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = scratch();
    let d = daemon(dir.path()).await;
    let mut s = d.subscribe(&[EventType::File], false).await;
    let user = format!("st{}", std::process::id() % 100_000);
    assert!(Command::new("useradd")
        .args(["-M", "-s", "/usr/sbin/nologin", &user])
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "/etc/passwd changed", |e| {
        is_file(e, Path::new("/etc/passwd")) || is_file(e, Path::new("/etc/shadow"))
    })
    .await;
    let _ = Command::new("userdel").arg(&user).status();
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("account-database-changed", Severity::Critical)
    );
    assert_eq!(e.mitre, ["T1136.001", "T1098"]);
}

/// A program copied into /usr/bin by hand is CRITICAL; the same file installed by dpkg is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_planted_in_usr_bin_is_critical_and_a_package_install_is_quiet() {
    if !require_root("rules_system_binary") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = scratch();
    let d = daemon(dir.path()).await;
    let mut s = d.subscribe(&[EventType::File], false).await;
    let name = format!("st-planted-{}", std::process::id());
    let planted = PathBuf::from("/usr/bin").join(&name);
    assert!(Command::new("cp")
        .arg("/bin/true")
        .arg(&planted)
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "the planted binary", |e| is_file(e, &planted)).await;
    std::fs::remove_file(&planted).unwrap();
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("system-binary-changed", Severity::Critical)
    );
    // A real package, installed and removed by dpkg.
    let pkg = format!("st-benign-{}", std::process::id());
    let root = dir.path().join("pkg");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::copy("/bin/true", root.join("usr/bin").join(&pkg)).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!("Package: {pkg}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: sec-tracker test\n"),
    )
    .unwrap();
    let deb = dir.path().join("p.deb");
    assert!(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap()
        .status
        .success());
    assert!(Command::new("dpkg")
        .arg("-i")
        .arg(&deb)
        .output()
        .unwrap()
        .status
        .success());
    let installed = PathBuf::from("/usr/bin").join(&pkg);
    let e = expect(&mut s, "the packaged binary", |e| is_file(e, &installed)).await;
    let _ = Command::new("dpkg").args(["--purge", &pkg]).output();
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("", Severity::Info),
        "{e:?}"
    );
}

/// A shell or interpreter listening is a bind shell (CRITICAL); another program's new port is a
/// WARNING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interpreter_listening_is_a_bind_shell() {
    if !require_root("rules_bind_shell") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = scratch();
    let d = daemon(dir.path()).await;
    let mut s = d.subscribe(&[EventType::Network], false).await;
    let mut shell = as_nobody(Path::new("/usr/bin/python3"), None)
        .args(["-c", "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1], flush=True)\ntime.sleep(30)"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(shell.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u32 = line.trim().parse().unwrap();
    let e = expect(&mut s, "python listening", |e| match &e.details {
        Some(event::Details::Network(n)) => n.local_port == port,
        _ => false,
    })
    .await;
    let _ = shell.kill();
    let _ = shell.wait();
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("bind-shell", Severity::Critical),
        "{}",
        e.message
    );
    // This test binary listening: a new port, not a shell.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = u32::from(l.local_addr().unwrap().port());
    let e = expect(&mut s, "the test listening", |e| match &e.details {
        Some(event::Details::Network(n)) => n.local_port == port,
        _ => false,
    })
    .await;
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("new-listener", Severity::Warning)
    );
}

/// Login records moved away by hand are covering tracks (CRITICAL); logrotate rotating them is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_records_moved_by_hand_are_critical_and_logrotate_is_quiet() {
    if !require_root("rules_log_tampering") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = scratch();
    let btmp = Path::new("/var/log/btmp");
    let saved = dir.path().join("btmp.saved");
    if btmp.exists() {
        std::fs::copy(btmp, &saved).unwrap();
    } else {
        std::fs::write(btmp, b"").unwrap();
    }
    let d = daemon(dir.path()).await;
    let mut s = d.subscribe(&[EventType::File], false).await;
    let aside = dir.path().join("btmp.gone");
    assert!(Command::new("mv")
        .arg(btmp)
        .arg("/var/log/btmp.st-aside")
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "btmp moved", |e| {
        is_file(e, Path::new("/var/log/btmp.st-aside"))
    })
    .await;
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("auth-log-removed", Severity::Critical),
        "{e:?}"
    );
    std::fs::rename("/var/log/btmp.st-aside", btmp).unwrap();
    let _ = aside;
    // logrotate rotating it.
    let conf = dir.path().join("logrotate.conf");
    std::fs::write(
        &conf,
        "/var/log/btmp {\n  rotate 1\n  create 0660 root utmp\n  missingok\n}\n",
    )
    .unwrap();
    let state = dir.path().join("logrotate.state");
    assert!(Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(&state)
        .arg(&conf)
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "btmp rotated", |e| {
        is_file(e, Path::new("/var/log/btmp.1"))
    })
    .await;
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("", Severity::Info),
        "{e:?}"
    );
    let _ = std::fs::remove_file("/var/log/btmp.1");
    if saved.exists() {
        std::fs::copy(&saved, btmp).unwrap();
    }
}
