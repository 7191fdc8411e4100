//! Attacks on what the operator sees and whom the CLI trusts, performed for real by an
//! unprivileged user (`nobody`, through setpriv).
//!
//! `SEC_TRACKER_TEST_BIN_DIR=<an older build's target/release>` runs them against that build.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sec_tracker_testkit::{as_nobody, require_root, under_test, workspace_bin, Daemon};

const CTL: &str = env!("CARGO_BIN_EXE_sec-trackerctl");

fn ctl() -> PathBuf {
    under_test("sec-trackerctl", CTL)
}

fn collectord() -> PathBuf {
    under_test(
        "collectord",
        workspace_bin(CTL, "collectord").to_str().unwrap(),
    )
}

const PROCESS_ONLY: &str = r#"{"agent": {"state_dir": "@STATE@"}, "monitoring": {"file_monitor": false,
  "auth_monitor": false, "network_monitor": false, "system_info": false}}"#;

/// Attack 3: A program named with terminal escapes (`ESC[8m` conceals what follows; `ESC]0;…BEL` retitles
/// the window) and a right-to-left override runs as nobody. The human output of `watch`, colour
/// off, must carry no escape byte at all, only the escaped text.
#[test]
fn program_names_cannot_drive_the_operators_terminal() {
    if !require_root("attack_terminal_escapes") {
        return;
    }
    let d = Daemon::start(&collectord(), PROCESS_ONLY);
    let dir = tempfile::Builder::new()
        .prefix("sec-tracker-attack")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut watch = Command::new(ctl())
        .args(["--socket"])
        .arg(&d.socket)
        .args(["watch", "--type", "process"])
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });

    // Until watch shows events, the attack would go unseen for a dull reason.
    let marker = format!("st-watch-ready-{}", std::process::id());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ready = false;
    while !ready && Instant::now() < deadline {
        Command::new("/bin/true").arg(&marker).status().unwrap();
        let until = Instant::now() + Duration::from_millis(300);
        while let Ok(line) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            ready |= String::from_utf8_lossy(&line).contains(&marker);
        }
    }
    assert!(ready, "watch showed no event");

    // The attacker's program: a shell (so that it has a child, named as its parent) under a name
    // full of escapes, in a directory of its own.
    let name = "\x1b[8mhidden\x1b]0;owned\x07\u{202e}gpj.sh";
    let evil = dir.path().join(name);
    std::fs::copy("/bin/sh", &evil).unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out: Vec<u8> = Vec::new();
    let (mut seen_exit, mut seen_parent) = (false, false);
    while Instant::now() < deadline && !(seen_exit && seen_parent) {
        let ran = as_nobody(&evil, None)
            .args(["-c", "/bin/true; sleep 0.2"])
            .status()
            .unwrap();
        assert!(ran.success());
        let until = Instant::now() + Duration::from_secs(2);
        while let Ok(line) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            out.extend_from_slice(&line);
            seen_exit |= line.windows(11).any(|w| w == b"Name=\\x1b[8");
            seen_parent |= line.windows(13).any(|w| w == b"Parent=\\x1b[8");
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let text = String::from_utf8_lossy(&out);
    assert!(
        !out.contains(&0x1b) && !out.contains(&0x07),
        "raw escape bytes reached the terminal:\n{}",
        text.escape_debug()
    );
    assert!(
        seen_exit,
        "the program's exit (Name=…, escaped) was not shown:\n{text}"
    );
    assert!(
        text.contains("Parent=\\x1b[8mhidden"),
        "its child names it as parent, escaped:\n{text}"
    );
    assert!(
        text.contains("\\xe2\\x80\\xae"),
        "the RTL override is shown escaped:\n{text}"
    );
}

/// Attack 4: A group member (or anyone) serves a socket where a client is told to look for collectord,
/// and feeds it forged events. The CLI must refuse a server that is not root before reading a
/// byte, and say why.
#[test]
fn a_collector_socket_served_by_a_user_is_refused() {
    if !require_root("attack_impersonated_collector") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("sec-tracker-attack")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = dir.path().join("collector.sock");
    // nobody listens on it (a Python one-liner stands in for a fake collector that would answer
    // anything it is asked).
    let mut fake = as_nobody(Path::new("/usr/bin/python3"), None)
        .args([
            "-c",
            "import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(8)\nwhile True:\n  c,_=s.accept()\n  c.sendall(b'\\0'*64)\n",
        ])
        .arg(&sock)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(ctl())
        .arg("--socket")
        .arg(&sock)
        .args(["watch", "--json"])
        .output()
        .unwrap();
    let _ = fake.kill();
    let _ = fake.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(out.stdout.is_empty(), "nothing read from it is shown");
    assert!(
        err.contains("served by uid 65534, not by root") && err.contains("refusing to trust"),
        "{err}"
    );
}
