//! Support for integration tests (feature `testing`): start a real `collectord` on a private
//! socket, connect a client, wait on conditions with a deadline, and decide what to do when a
//! test needs root.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use sec_tracker_proto::v1::collector_client::CollectorClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

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

/// A collectord child process with its own directory, config and socket. Stopped on drop.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts `binary` with `config_json` and waits until its socket accepts connections.
    /// `@STATE@` in the config is replaced by a state directory of the daemon's own.
    pub fn start(binary: &Path, config_json: &str) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("sec-tracker-test")
            .tempdir()
            .expect("tempdir");
        let socket = dir.path().join("collector.sock");
        let config = dir.path().join("config.json");
        let log = dir.path().join("collectord.log");
        let state = dir.path().join("state");
        std::fs::write(
            &config,
            config_json.replace("@STATE@", &state.display().to_string()),
        )
        .expect("write config");
        let mut d = Daemon {
            dir,
            socket,
            config,
            log,
            child: None,
        };
        d.spawn(binary);
        d
    }

    pub fn spawn(&mut self, binary: &Path) {
        let log = std::fs::File::create(&self.log).expect("log file");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&self.socket)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn collectord");
        self.child = Some(child);
        let socket = self.socket.clone();
        let log_path = self.log.clone();
        let child = self.child.as_mut().expect("child");
        wait_for("collectord's socket", Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "collectord exited early ({status}): {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::os::unix::net::UnixStream::connect(&socket)
                .ok()
                .map(|_| ())
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let status = wait_for("collectord to exit", Duration::from_secs(15), || {
            child.try_wait().ok().flatten()
        });
        status.code()
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub async fn client(&self) -> CollectorClient<Channel> {
        connect(&self.socket).await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A gRPC client over a Unix socket.
pub async fn connect(path: &Path) -> CollectorClient<Channel> {
    let path = path.to_owned();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .expect("connect to collectord");
    CollectorClient::new(channel)
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
