//! Attacks on collectord by the people it watches, performed for real by an unprivileged user
//! (`nobody`, through setpriv), each asserting what the operator would check.
//!
//! `SEC_TRACKER_TEST_BIN_DIR=<an older build's target/release>` runs them against that build.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use sec_tracker_proto::v1::subscribe_response::Item;
use sec_tracker_proto::v1::{event, Event, EventType, SubscribeRequest};
use sec_tracker_testkit::{
    as_nobody, require_root, runnable_by_anyone, under_test, workspace_bin, Daemon,
};

const BIN: &str = env!("CARGO_BIN_EXE_collectord");

fn collectord() -> PathBuf {
    under_test("collectord", BIN)
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// A temporary directory that other users can reach (mode 0755 down to it).
fn open_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("sec-tracker-attack")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Collects every file event until `done` returns true for one of them (or the deadline).
async fn file_events_until(
    d: &Daemon,
    timeout: Duration,
    mut done: impl FnMut(&Event) -> bool,
) -> (Vec<Event>, bool) {
    let mut s = d
        .client()
        .await
        .subscribe(SubscribeRequest {
            replay: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut all = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, s.next()).await {
            Ok(Some(Ok(r))) => {
                if let Some(Item::Event(e)) = r.item {
                    let finished = done(&e);
                    all.push(e);
                    if finished {
                        return (all, true);
                    }
                }
            }
            _ => return (all, false),
        }
    }
}

/// Attack 1: A user who can write in a watched tree swaps the file collectord is about to hash with a
/// FIFO (the open would never return) and with a link to /etc/shadow (its hash would be published
/// as theirs), thousands of times. The operator must not see /etc/shadow's hash, and the file
/// monitor must go on reporting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_swapped_for_a_fifo_or_a_link_neither_hangs_nor_leaks_the_file_monitor() {
    if !require_root("attack_file_swap") {
        return;
    }
    let dir = open_dir();
    let root = dir.path().join("watched");
    let up = root.join("uploads");
    std::fs::create_dir_all(&up).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&up, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = format!(
        r#"{{"agent": {{"state_dir": "@STATE@"}},
            "monitoring": {{"process_monitor": false, "auth_monitor": false, "network_monitor": false,
                           "system_info": false, "watch_paths": ["{}"]}}}}"#,
        root.display()
    );
    let d = Daemon::start(&collectord(), &config);
    let shadow = sha256sum(Path::new("/etc/shadow"));

    let (_bin_dir, race) = runnable_by_anyone(&workspace_bin(BIN, "swap-race"));
    let out = as_nobody(&race, None)
        .args([up.as_os_str(), "/etc/shadow".as_ref(), "3".as_ref()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let swaps = String::from_utf8_lossy(&out.stdout).into_owned();

    // Afterwards, the monitor still reports (as the same user) with the right hash.
    let after = up.join("after.txt");
    let sh = Path::new("/bin/sh");
    let wrote = as_nobody(sh, None)
        .args([
            "-c",
            &format!("echo written after the race > '{}'", after.display()),
        ])
        .status()
        .unwrap();
    assert!(wrote.success());
    let after_bytes = after.as_os_str().as_bytes().to_vec();
    let (events, seen) = file_events_until(&d, Duration::from_secs(30), |e| {
        matches!(&e.details, Some(event::Details::File(f)) if f.path == after_bytes && !f.sha256_after.is_empty())
    })
    .await;
    let leaked: Vec<&String> = events
        .iter()
        .filter(|e| match &e.details {
            Some(event::Details::File(f)) => f.sha256_before == shadow || f.sha256_after == shadow,
            _ => false,
        })
        .map(|e| &e.message)
        .collect();
    assert!(
        leaked.is_empty(),
        "/etc/shadow's hash was published {} times ({swaps}), e.g. {:?}",
        leaked.len(),
        leaked.first()
    );
    assert!(
        seen,
        "the file monitor reported nothing after the race ({swaps}; {} events before): hung? log:\n{}",
        events.len(),
        d.log_text()
    );
    let stalled = events.iter().any(|e| {
        e.r#type() == EventType::System
            && matches!(&e.details, Some(event::Details::Agent(a)) if a.kind == "monitor_stalled")
    });
    assert!(!stalled, "the file monitor stalled");
}
