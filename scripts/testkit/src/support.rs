//! What every integration test needs: waiting on a condition with a deadline, deciding what to
//! do when a test needs root, the readers' group, and the workspace's binaries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Set by `.ci/run`: a test that would skip (not root, no kernel interface) fails instead.
pub const REQUIRE_ALL_ENV: &str = "SEC_TRACKER_REQUIRE_ALL";

/// True when the test can run as root. Otherwise prints why it skips and returns false — or
/// panics when `SEC_TRACKER_REQUIRE_ALL` is set, so CI never skips silently.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let msg = format!("{test}: needs root (process connector, setuid, socket ownership)");
    if std::env::var_os(REQUIRE_ALL_ENV).is_some() {
        panic!("{msg}, and {REQUIRE_ALL_ENV} forbids skipping");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// Polls `cond` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// As [`wait_for`], for conditions that need to await (a gRPC call).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The gid of group `sec-tracker`, creating the group (as install.sh would) when it is missing.
/// For tests that run a process as a member of the socket group.
pub fn socket_group_gid() -> u32 {
    let ok = Command::new("sh")
        .args([
            "-c",
            "getent group sec-tracker >/dev/null || groupadd --system sec-tracker",
        ])
        .status()
        .expect("run groupadd");
    assert!(ok.success(), "cannot create group sec-tracker");
    nix::unistd::Group::from_name("sec-tracker")
        .ok()
        .flatten()
        .expect("group sec-tracker exists")
        .gid
        .as_raw()
}

/// A binary of the workspace beside `this_exe` (a test's `CARGO_BIN_EXE_…`), brought up to date
/// once per test process: `cargo test` builds another package's binaries only as test harnesses,
/// so a fresh `cargo test --workspace` would not have them, and `cargo test -p shipperd` after a
/// change to collectord would run the stale one.
pub fn workspace_bin(this_exe: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let p = Path::new(this_exe).with_file_name(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        built.push(name.to_owned());
        let package = match name {
            "collectord" | "shipperd" | "sec-trackerctl" => name,
            _ => "sec-tracker-testkit",
        };
        let release = p
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "-q", "-p", package, "--bin", name]);
        if release {
            build.arg("--release");
        }
        let status = build.status();
        assert!(
            matches!(status, Ok(s) if s.success()) && p.exists(),
            "{} is missing and `cargo build -p {package} --bin {name}` did not make it: {status:?}",
            p.display()
        );
    }
    p
}

/// Set to a directory of other builds of the daemons (say an earlier commit's
/// `target/release`) to run the tests against those: an attack test must fail there.
pub const BIN_DIR_ENV: &str = "SEC_TRACKER_TEST_BIN_DIR";

/// The program under test: `built` (a test's `CARGO_BIN_EXE_…`), or `name` in
/// `$SEC_TRACKER_TEST_BIN_DIR` when that is set.
pub fn under_test(name: &str, built: &str) -> PathBuf {
    match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) => Path::new(&dir).join(name),
        None => PathBuf::from(built),
    }
}

/// A copy of `bin` that any user can run (the build tree may not be reachable by them), in a
/// directory of its own that goes away with the returned guard.
pub fn runnable_by_anyone(bin: &Path) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("sec-tracker-bin")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join(bin.file_name().expect("a file name"));
    std::fs::copy(bin, &copy).expect("copy the binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, copy)
}

/// `program` run as user `nobody` (65534) with no supplementary group, or with `group` as its
/// only one: the unprivileged local user of the attack tests.
pub fn as_nobody(program: &Path, group: Option<u32>) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534"]);
    match group {
        Some(g) => c.arg(format!("--groups={g}")),
        None => c.arg("--clear-groups"),
    };
    c.arg(program).current_dir("/");
    c
}
