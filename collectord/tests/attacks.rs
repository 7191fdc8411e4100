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

/// A watched root (0755, root's) holding `uploads/`, a directory anyone may write in: the
/// ground every file attack starts from.
fn watched_tree_with_uploads(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let root = dir.path().join("watched");
    let up = root.join("uploads");
    std::fs::create_dir_all(&up).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&up, std::fs::Permissions::from_mode(0o777)).unwrap();
    (root, up)
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
    let (root, up) = watched_tree_with_uploads(&dir);
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

/// Attack 8: a process with no root uid and a non-setuid executable that happens to be named
/// `sudo` takes uid 0 (through an ambient CAP_SETUID) with a raw setresuid in a non-main
/// thread. The operator must get a CRITICAL event naming the process and the thread: not an
/// allow-listed name, not nothing because it was a thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn becoming_root_in_a_thread_of_a_program_named_sudo_is_critical() {
    if !require_root("attack_became_root") {
        return;
    }
    let d = Daemon::start(
        &collectord(),
        r#"{"agent": {"state_dir": "@STATE@"}, "monitoring": {"file_monitor": false,
            "auth_monitor": false, "network_monitor": false, "system_info": false}}"#,
    );
    // Subscribed before the attack, so that what it does is seen live.
    let mut s = d.subscribe(&[EventType::Process], false).await;
    let (_bin_dir, helper) = runnable_by_anyone(&workspace_bin(BIN, "become-root"));
    let sudo = helper.with_file_name("sudo");
    std::fs::rename(&helper, &sudo).unwrap();
    // As nobody (no root uid, no supplementary group) holding CAP_SETUID ambiently.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+setuid",
            "--ambient-caps=+setuid",
        ])
        .arg(&sudo)
        .arg("0.5")
        .current_dir("/")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && said.contains("is uid 0"),
        "the helper did not become root: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tid: u32 = said.split_whitespace().nth(1).unwrap().parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let Ok(Some(Ok(r))) = tokio::time::timeout_at(deadline, s.next()).await else {
            panic!("no uid-change event for thread {tid} of sudo; saw: {seen:#?}");
        };
        let Some(Item::Event(e)) = r.item else {
            continue;
        };
        if e.message.contains(&format!("thread {tid})")) {
            assert_eq!(
                e.severity(),
                sec_tracker_proto::v1::Severity::Critical,
                "{}",
                e.message
            );
            assert!(
                e.message.contains("sudo") && e.message.contains("-> 0"),
                "{}",
                e.message
            );
            assert!(
                e.message.contains("without a setuid-root program"),
                "{}",
                e.message
            );
            assert_eq!(e.rule_id, "root-gained-without-setuid", "{}", e.message);
            break;
        }
        if e.message.contains("sudo") {
            seen.push(e.message.clone());
        }
    }
}

/// Attack 6: a member of the readers' group opens 1,100 idle connections to collectord's socket
/// (more than its 1,024 descriptors). Root's `status` must still answer at once, collectord
/// must keep its descriptors bounded, and the member's own connections past its share are closed.
#[test]
fn a_member_holding_a_thousand_connections_cannot_lock_root_out() {
    if !require_root("attack_connection_exhaustion") {
        return;
    }
    let gid = sec_tracker_testkit::socket_group_gid();
    let d = Daemon::start(
        &collectord(),
        r#"{"agent": {"state_dir": "@STATE@"}, "monitoring": {"file_monitor": false,
            "auth_monitor": false, "network_monitor": false, "system_info": false}}"#,
    );
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_bin_dir, hold) = runnable_by_anyone(&workspace_bin(BIN, "hold-connections"));
    let mut attacker = as_nobody(&hold, Some(gid))
        .args([d.socket.as_os_str(), "1100".as_ref(), "6".as_ref()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(attacker.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert!(first.starts_with("connected "), "{first}");

    // While they are held: root asks for the status, with a deadline.
    let ctl = under_test(
        "sec-trackerctl",
        workspace_bin(BIN, "sec-trackerctl").to_str().unwrap(),
    );
    let started = std::time::Instant::now();
    let status = Command::new("timeout")
        .arg("10")
        .arg(&ctl)
        .arg("--socket")
        .arg(&d.socket)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let fds = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .unwrap()
        .count();
    assert!(
        status.status.success(),
        "root's status failed while a member held 1,100 connections ({first}): {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(took < Duration::from_secs(5), "status took {took:?}");
    assert!(fds < 400, "collectord holds {fds} descriptors");
    let mut last = String::new();
    std::io::BufRead::read_line(&mut out, &mut last).unwrap();
    attacker.wait().unwrap();
    let still_open: usize = last
        .trim()
        .strip_prefix("still-open ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        still_open <= 32,
        "the member kept {still_open} connections ({first}): more than its share"
    );
    assert!(
        d.log_text().contains("connection limit reached"),
        "{}",
        d.log_text()
    );
}

/// Attack 7: a user who can write in a watched tree fills it with files to grow collectord's
/// baseline until it dies (a crash loop at the unit's MemoryMax). The baseline stops at
/// `monitoring.max_files` and says so once; files past it are still reported when they change;
/// the saved baseline holds the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_flooded_with_files_keeps_the_baseline_bounded() {
    if !require_root("attack_baseline_flood") {
        return;
    }
    let dir = open_dir();
    let (root, up) = watched_tree_with_uploads(&dir);
    // The flood is there before collectord starts (its first scan meets it) and goes on after.
    let flood = |from: u32, to: u32| {
        let ok = as_nobody(Path::new("/bin/sh"), None)
            .args([
                "-c",
                &format!(
                    "cd '{}' && i={from}; while [ $i -lt {to} ]; do : > f$i; i=$((i+1)); done",
                    up.display()
                ),
            ])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    flood(0, 20_000);
    let state = dir.path().join("state");
    let config = format!(
        r#"{{"agent": {{"state_dir": "{}"}},
            "monitoring": {{"process_monitor": false, "auth_monitor": false, "network_monitor": false,
                           "system_info": false, "watch_paths": ["{}"], "max_files": 2000}}}}"#,
        state.display(),
        root.display()
    );
    let d = Daemon::start(&collectord(), &config);
    let (events, seen) = file_events_until(
        &d,
        Duration::from_secs(60),
        |e| matches!(&e.details, Some(event::Details::Agent(a)) if a.kind == "baseline_full"),
    )
    .await;
    assert!(seen, "no notice of the bound; {} events", events.len());
    flood(20_000, 25_000);
    // A file past the bound still has its changes reported.
    let late = up.join("f24999");
    std::fs::write(&late, b"changed\n").unwrap();
    let late_bytes = late.as_os_str().as_bytes().to_vec();
    let (_, seen) = file_events_until(&d, Duration::from_secs(60), |e| {
        matches!(&e.details, Some(event::Details::File(f)) if f.path == late_bytes && !f.sha256_after.is_empty())
    })
    .await;
    assert!(seen, "a change past the bound was not reported");
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", d.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    let mut d = d;
    assert_eq!(d.stop(), Some(0));
    let saved: i64 = rusqlite::Connection::open(state.join("collectord/file-baseline.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .unwrap();
    assert!(saved <= 2_000, "the saved baseline has {saved} entries");
    assert!(rss_kib < 64 * 1024, "collectord grew to {rss_kib} KiB");
}

/// From review: a user who can write a large file in a watched tree closes it after writing,
/// in a loop, to make collectord re-read all of it every time. A large file is hashed at most
/// once per interval; the writes in between come as one report, and the last content's hash is
/// reported (nothing lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_a_large_file_in_a_loop_does_not_make_collectord_rehash_it_each_time() {
    if !require_root("attack_rehash_loop") {
        return;
    }
    let dir = open_dir();
    let (root, up) = watched_tree_with_uploads(&dir);
    let big = up.join("big.bin");
    let config = format!(
        r#"{{"agent": {{"state_dir": "@STATE@"}},
            "monitoring": {{"process_monitor": false, "auth_monitor": false, "network_monitor": false,
                           "system_info": false, "watch_paths": ["{}"]}}}}"#,
        root.display()
    );
    let d = Daemon::start(&collectord(), &config);
    // 16 MiB, then 40 appends of one line, each a close-after-write, as nobody.
    let script = format!(
        "head -c 16777216 /dev/zero > '{0}' && i=0; while [ $i -lt 40 ]; do echo $i >> '{0}'; sleep 0.05; i=$((i+1)); done",
        big.display()
    );
    let ok = as_nobody(Path::new("/bin/sh"), None)
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(ok.success());
    let final_hash = sha256sum(&big);
    let big_bytes = big.as_os_str().as_bytes().to_vec();
    let (events, seen) = file_events_until(&d, Duration::from_secs(30), |e| {
        matches!(&e.details, Some(event::Details::File(f)) if f.path == big_bytes && f.sha256_after == final_hash)
    })
    .await;
    assert!(seen, "the last content's hash was never reported");
    let reports = events
        .iter()
        .filter(|e| matches!(&e.details, Some(event::Details::File(f)) if f.path == big_bytes))
        .count();
    assert!(
        reports <= 6,
        "{reports} reports (re-hashes) for 41 writes of a 16 MiB file"
    );
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("more writes before it")),
        "the folded writes are said"
    );
}
