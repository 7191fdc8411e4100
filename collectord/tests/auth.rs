//! The auth monitor against the real thing: a real sshd (on a spare port), rsyslog writing
//! /var/log/auth.log, real users, real sudo and su. `.ci/run` installs and starts rsyslog.

use sec_tracker_proto::json::Named;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use sec_tracker_proto::v1::subscribe_response::Item;
use sec_tracker_proto::v1::{event, AuthEvent, EventType, Severity, SubscribeResponse};
use sec_tracker_testkit::{require_root, wait_for, Daemon};
use tonic::Streaming;

const BIN: &str = env!("CARGO_BIN_EXE_collectord");
/// The auth monitor, and the process monitor that vouches for who wrote each line.
const AUTH_ONLY: &str = r#"{"agent": {"state_dir": "@STATE@"}, "monitoring": {"file_monitor": false, "network_monitor": false, "system_info": false}}"#;
const PASSWORD: &str = "St-Test-pw-7431";

/// The tests share the machine's auth.log (a burst in one would be seen by the collector of
/// another): one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The machine must have what the test drives; CI installs it (see .ci/run).
fn tools_present() -> bool {
    let missing: Vec<&str> = [
        "/usr/sbin/sshd",
        "/usr/bin/ssh",
        "/usr/bin/sshpass",
        "/usr/bin/sudo",
        "/usr/sbin/rsyslogd",
        "/usr/sbin/useradd",
    ]
    .into_iter()
    .filter(|p| !Path::new(p).exists())
    .collect();
    let rsyslog_running = Command::new("pgrep")
        .arg("-x")
        .arg("rsyslogd")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if missing.is_empty() && rsyslog_running {
        return true;
    }
    let msg = format!("auth tests need {missing:?} installed and rsyslogd running (rsyslogd running: {rsyslog_running}); .ci/run sets this up");
    if std::env::var_os(sec_tracker_testkit::REQUIRE_ALL_ENV).is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// A local user, removed (with its home and sudoers entry) when dropped.
struct User {
    name: String,
}

impl User {
    fn create(tag: &str) -> User {
        let name = format!("st{tag}{}", std::process::id() % 100_000);
        let _ = Command::new("userdel")
            .args(["-r", &name])
            .stderr(Stdio::null())
            .status();
        assert!(Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", &name])
            .status()
            .unwrap()
            .success());
        let mut p = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(p.stdin.as_mut().unwrap(), "{name}:{PASSWORD}").unwrap();
        assert!(p.wait().unwrap().success());
        User { name }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/etc/sudoers.d/{}", self.name));
        let _ = Command::new("pkill").args(["-u", &self.name]).status();
        let _ = Command::new("userdel")
            .args(["-r", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A new ed25519 key pair in `dir` (no passphrase): the private key's path (`.pub` beside it).
fn new_key(dir: &Path) -> PathBuf {
    let key = dir.join("id");
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(&key)
        .status()
        .unwrap()
        .success());
    key
}

/// Our own sshd on a free port, with the machine's host keys and PAM, logging to syslog.
struct Sshd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sshd {
    fn start() -> Sshd {
        Sshd::start_with("PermitRootLogin no\n")
    }

    /// An sshd with `extra` lines in its configuration.
    fn start_with(extra: &str) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey /etc/ssh/ssh_host_ed25519_key\nUsePAM yes\n\
                 PasswordAuthentication yes\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PidFile none\nSyslogFacility AUTH\nLogLevel INFO\nMaxAuthTries 10\nMaxStartups 50\n{extra}"
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        if !Path::new("/etc/ssh/ssh_host_ed25519_key").exists() {
            assert!(Command::new("ssh-keygen")
                .args(["-A"])
                .status()
                .unwrap()
                .success());
        }
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .spawn()
            .unwrap();
        wait_for("sshd to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Sshd {
            child,
            port,
            _dir: dir,
        }
    }

    fn ssh(&self, user: &str, extra: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.args([
            "-p",
            &self.port.to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .args(extra)
        .arg(format!("{user}@127.0.0.1"))
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        c
    }

    fn wrong_password(&self, user: &str) -> Command {
        let mut c = Command::new("sshpass");
        c.args([
            "-p",
            "definitely-wrong",
            "ssh",
            "-p",
            &self.port.to_string(),
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .args([
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .arg(format!("{user}@127.0.0.1"))
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn subscribe(d: &Daemon) -> Streaming<SubscribeResponse> {
    let s = d.subscribe(&[EventType::Auth], false).await;
    // The monitor is following the logs once it says so.
    wait_for("the auth monitor to run", Duration::from_secs(20), || {
        d.log_text()
            .contains("auth monitor: following")
            .then_some(())
    });
    s
}

async fn expect(
    s: &mut Streaming<SubscribeResponse>,
    what: &str,
    mut pred: impl FnMut(&AuthEvent) -> bool,
) -> (AuthEvent, Severity, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, s.next()).await;
        let Ok(Some(Ok(r))) = next else {
            panic!("no auth event for {what}; saw: {seen:#?}")
        };
        if let Some(Item::Event(e)) = r.item {
            if let Some(event::Details::Auth(a)) = &e.details {
                if pred(a) {
                    return (a.clone(), e.severity(), e.message.clone());
                }
                seen.push(e.message.clone());
            }
        }
    }
}

fn su(user: &str, script: &str) -> bool {
    Command::new("su")
        .args([user, "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_sudo_su_and_account_changes_are_reported_with_details() {
    if !require_root("auth") || !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let d = Daemon::start(Path::new(BIN), AUTH_ONLY);
    let mut s = subscribe(&d).await;
    let sshd = Sshd::start();

    // Account creation is itself an event.
    let alice = User::create("a");
    let (a, _, _) = expect(&mut s, "useradd", |a| {
        a.action().name() == "user_added" && a.user == alice.name
    })
    .await;
    assert_eq!(a.service, "useradd");
    assert!(a.verified, "the real useradd wrote it: {a:?}");

    // ssh with a key.
    let keydir = tempfile::tempdir().unwrap();
    let key = new_key(keydir.path());
    let home = PathBuf::from(format!("/home/{}", alice.name));
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::copy(key.with_extension("pub"), home.join(".ssh/authorized_keys")).unwrap();
    assert!(Command::new("chown")
        .args(["-R", &format!("{0}:{0}", alice.name)])
        .arg(home.join(".ssh"))
        .status()
        .unwrap()
        .success());
    let ok = sshd
        .ssh(
            &alice.name,
            &["-i", key.to_str().unwrap(), "-o", "BatchMode=yes"],
        )
        .status()
        .unwrap();
    assert!(ok.success(), "key login failed");
    let (a, sev, msg) = expect(&mut s, "ssh key login", |a| {
        a.action().name() == "ssh_accepted" && a.user == alice.name
    })
    .await;
    assert_eq!(a.method, "publickey");
    assert_eq!(a.source_address, "127.0.0.1");
    assert!(a.source_port > 0);
    assert!(a.success);
    assert!(a.verified, "sshd wrote it: {a:?}");
    assert_eq!(a.entity_id.len(), 32, "the sshd process is named: {a:?}");
    assert_eq!(sev, Severity::Info);
    assert!(msg.contains(&alice.name), "{msg}");
    expect(&mut s, "ssh logout", |a| {
        a.action().name() == "ssh_session_closed" && a.user == alice.name
    })
    .await;

    // ssh with a wrong password.
    assert!(!sshd.wrong_password(&alice.name).status().unwrap().success());
    let (a, sev, _) = expect(&mut s, "failed password", |a| {
        a.action().name() == "ssh_failed" && a.user == alice.name
    })
    .await;
    assert_eq!(a.method, "password");
    assert!(!a.success);
    assert_eq!(sev, Severity::Warning);

    // An invalid user.
    assert!(!sshd
        .wrong_password("nosuchuser-st")
        .status()
        .unwrap()
        .success());
    expect(&mut s, "invalid user", |a| {
        a.user == "nosuchuser-st"
            && (a.action().name() == "ssh_invalid_user" || a.action().name() == "ssh_failed")
    })
    .await;

    // sudo with rights.
    // id without a password, whoami with one.
    std::fs::write(
        format!("/etc/sudoers.d/{}", alice.name),
        format!(
            "{0} ALL=(root) NOPASSWD: /usr/bin/id\n{0} ALL=(root) /usr/bin/whoami\n",
            alice.name
        ),
    )
    .unwrap();
    assert!(su(&alice.name, "cd /tmp && sudo -n /usr/bin/id"));
    let (a, sev, _) = expect(&mut s, "sudo command", |a| {
        a.action().name() == "sudo_command" && a.user == alice.name
    })
    .await;
    assert_eq!(a.target_user, "root");
    assert_eq!(a.command, "/usr/bin/id");
    assert_eq!(a.cwd, "/tmp");
    assert_eq!(sev, Severity::Info);
    assert!(a.verified, "sudo wrote it: {a:?}");
    assert_eq!(a.entity_id.len(), 32, "the sudo process is named: {a:?}");

    // sudo with a wrong password.
    assert!(!su(
        &alice.name,
        "echo wrong | sudo -S -p '' /usr/bin/whoami"
    ));
    let (_, sev, _) = expect(&mut s, "sudo auth failure", |a| {
        a.action().name() == "sudo_auth_failure" && a.user == alice.name
    })
    .await;
    assert_eq!(sev, Severity::Warning);

    // sudo without rights.
    let bob = User::create("b");
    assert!(!su(
        &bob.name,
        &format!("echo {PASSWORD} | sudo -S -p '' /usr/bin/id")
    ));
    let (a, sev, _) = expect(&mut s, "not in sudoers", |a| {
        a.action().name() == "sudo_not_in_sudoers" && a.user == bob.name
    })
    .await;
    assert_eq!(a.command, "/usr/bin/id");
    assert_eq!(sev, Severity::Warning);

    // su from root.
    assert!(su(&bob.name, "true"));
    expect(&mut s, "su", |a| {
        a.action().name() == "su_success" && a.target_user == bob.name
    })
    .await;

    // Account changes.
    assert!(Command::new("usermod")
        .args(["-s", "/bin/bash", &bob.name])
        .status()
        .unwrap()
        .success());
    expect(&mut s, "usermod", |a| {
        a.action().name() == "user_changed" && a.user == bob.name
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_failed_logins_from_one_address_is_critical() {
    if !require_root("auth_burst") || !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let d = Daemon::start(Path::new(BIN), AUTH_ONLY);
    let mut s = subscribe(&d).await;
    let sshd = Sshd::start();
    let carol = User::create("c");
    let mut attempts: Vec<Child> = (0..5)
        .map(|_| sshd.wrong_password(&carol.name).spawn().unwrap())
        .collect();
    for a in &mut attempts {
        a.wait().unwrap();
    }
    let mut severities = Vec::new();
    while severities.len() < 5 {
        let (_, sev, _) = expect(&mut s, "failed logins", |a| {
            a.action().name() == "ssh_failed" && a.user == carol.name
        })
        .await;
        severities.push(sev);
    }
    assert_eq!(
        severities
            .iter()
            .filter(|s| **s == Severity::Critical)
            .count(),
        1,
        "{severities:?}"
    );
    assert_eq!(severities[4], Severity::Critical);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_followed_across_rotation() {
    if !require_root("auth_rotation") || !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let d = Daemon::start(Path::new(BIN), AUTH_ONLY);
    let mut s = subscribe(&d).await;
    let sshd = Sshd::start();
    let dave = User::create("d");
    // Rotate the way logrotate does (rename, then tell rsyslog to reopen).
    let log = Path::new("/var/log/auth.log");
    let rotated = Path::new("/var/log/auth.log.st-rotated");
    std::fs::rename(log, rotated).unwrap();
    let reopened = Command::new("pkill")
        .args(["-HUP", "-x", "rsyslogd"])
        .status()
        .unwrap()
        .success();
    assert!(reopened);
    wait_for(
        "rsyslog to reopen auth.log",
        Duration::from_secs(10),
        || {
            Command::new("logger")
                .args(["-p", "auth.info", "sec-tracker rotation probe"])
                .status()
                .ok();
            log.exists().then_some(())
        },
    );
    assert!(!sshd.wrong_password(&dave.name).status().unwrap().success());
    expect(&mut s, "a failure after rotation", |a| {
        a.action().name() == "ssh_failed" && a.user == dave.name
    })
    .await;
    // Put the old lines back in front so the machine's log stays whole.
    let mut all = std::fs::read(rotated).unwrap();
    all.extend(std::fs::read(log).unwrap());
    std::fs::write(rotated, all).unwrap();
    let _ = std::fs::remove_file(rotated);
}

/// Attack 2: an unprivileged user writes auth.log lines that read like sshd's and useradd's
/// (`logger -t sshd --id=PID`): a root login that never happened, six failures to make an innocent
/// address a brute-forcer, a backdoor account. Each must come out as a forged line (WARNING,
/// naming what it claimed), never as what it claims, and count toward no burst. And a sudo user
/// whose working directory repeats sudo's fields must not change the logged target user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_auth_lines_are_reported_as_forged_and_counted_nowhere() {
    if !require_root("attack_forged_auth") || !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let d = Daemon::start(Path::new(BIN), AUTH_ONLY);
    let mut s = subscribe(&d).await;
    let logger = |tag: &str, pid: &str, msg: &str| {
        let ok = sec_tracker_testkit::as_nobody(Path::new("/usr/bin/logger"), None)
            .args(["-p", "auth.info", "-t", tag, &format!("--id={pid}"), msg])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    // A pid that no process has: this test's own pid plus one far away is unlikely to be one,
    // and the check below only needs the line to be judged, not a particular pid.
    let fake_pid = (std::process::id() + 400_000).to_string();
    let accepted = "Accepted publickey for root from 203.0.113.66 port 2222 ssh2";
    // Lines written in the first seconds after start may predate the process monitor's watch:
    // repeat until one is judged forged.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let forged = loop {
        logger("sshd", &fake_pid, accepted);
        let next = tokio::time::timeout(Duration::from_secs(2), async {
            expect(&mut s, "the forged root login", |a| {
                a.source_address == "203.0.113.66"
            })
            .await
        })
        .await;
        if let Ok((a, sev, msg)) = next {
            if a.action().name() == "forged_log_line" {
                break (a, sev, msg);
            }
            assert!(!a.verified, "a forged root login was verified: {msg}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never judged forged"
        );
    };
    let (a, sev, msg) = forged;
    assert_eq!(sev, Severity::Warning, "{msg}");
    assert!(!a.verified && msg.contains("Forged auth log line"), "{msg}");
    assert!(msg.contains(&format!("sshd[{fake_pid}]")), "{msg}");

    // Six forged failures from one address: forged six times, never CRITICAL.
    for _ in 0..6 {
        logger(
            "sshd",
            &fake_pid,
            "Failed password for root from 203.0.113.77 port 4444 ssh2",
        );
    }
    for i in 0..6 {
        let (a, sev, msg) = expect(&mut s, "a forged failure", |a| {
            a.source_address == "203.0.113.77"
        })
        .await;
        assert_eq!(a.action().name(), "forged_log_line", "#{i}: {msg}");
        assert_ne!(sev, Severity::Critical, "#{i}: {msg}");
    }
    // A backdoor account that was never created, in useradd's words, with the pid of a real
    // process that is not useradd (this test).
    logger(
        "useradd",
        &std::process::id().to_string(),
        "new user: name=backdoor, UID=0, GID=0, home=/root, shell=/bin/bash, from=/dev/pts/9",
    );
    let (a, _, msg) = expect(&mut s, "the forged account", |a| a.user == "backdoor").await;
    assert_eq!(a.action().name(), "forged_log_line", "{msg}");
    assert!(
        msg.contains("but pid"),
        "names what the pid really is: {msg}"
    );

    // sudo from a working directory named to repeat sudo's fields.
    let eve = User::create("e");
    std::fs::write(
        format!("/etc/sudoers.d/{}", eve.name),
        format!("{} ALL=(ALL) NOPASSWD: /usr/bin/id\n", eve.name),
    )
    .unwrap();
    let trap = tempfile::Builder::new()
        .prefix("st-sudo")
        .tempdir()
        .unwrap();
    let cwd = trap.path().join("x ; USER=nobody ; COMMAND=/usr/bin/id");
    std::fs::create_dir_all(&cwd).unwrap();
    assert!(Command::new("chmod")
        .args(["-R", "a+rx"])
        .arg(trap.path())
        .status()
        .unwrap()
        .success());
    assert!(su(
        &eve.name,
        &format!("cd '{}' && sudo -n /usr/bin/id", cwd.display())
    ));
    let (a, sev, msg) = expect(&mut s, "sudo from the trap directory", |a| {
        a.action().name() == "sudo_command" && a.user == eve.name
    })
    .await;
    assert_eq!(a.target_user, "root", "{msg}");
    assert_eq!(a.command, "/usr/bin/id");
    assert!(
        a.cwd.ends_with("x ; USER=nobody ; COMMAND=/usr/bin/id"),
        "{a:?}"
    );
    assert!(!a.verified && a.verification.contains("ambiguous"), "{a:?}");
    assert_eq!(sev, Severity::Warning);
}

/// Root logging in over ssh (with a key, where the server allows it) is a WARNING naming the
/// rule; a user's key login stays INFO (the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_login_over_ssh_is_a_warning() {
    if !require_root("auth_root_login") || !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let d = Daemon::start(Path::new(BIN), AUTH_ONLY);
    let mut s = subscribe(&d).await;
    // root's key in a file of this test's own, not root's ~/.ssh.
    let keydir = tempfile::tempdir().unwrap();
    let key = new_key(keydir.path());
    let sshd = Sshd::start_with(&format!(
        "PermitRootLogin prohibit-password\nStrictModes no\nAuthorizedKeysFile {}\n",
        key.with_extension("pub").display()
    ));
    let ok = sshd
        .ssh(
            "root",
            &["-i", key.to_str().unwrap(), "-o", "BatchMode=yes"],
        )
        .status()
        .unwrap();
    assert!(ok.success(), "root key login failed");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(Some(Ok(r))) = tokio::time::timeout(left, s.next()).await else {
            panic!("root's ssh login not seen within 20 s");
        };
        let Some(Item::Event(e)) = r.item else {
            continue;
        };
        if let Some(event::Details::Auth(a)) = &e.details {
            if a.action().name() == "ssh_accepted" && a.user == "root" {
                assert_eq!(
                    (e.rule_id.as_str(), e.severity()),
                    ("ssh-root-login", Severity::Warning),
                    "{e:?}"
                );
                assert_eq!(a.method, "publickey");
                assert!(a.verified, "{a:?}");
                break;
            }
        }
    }
}
