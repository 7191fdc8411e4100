//! A real `collectord` as a child process, on a private socket, config and state directory, and a
//! client for it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sec_tracker_proto::local::client::{self, Trust};
use sec_tracker_proto::v1::collector_client::CollectorClient;
use sec_tracker_proto::v1::{
    subscribe_response, EventType, MonitorState, StatusRequest, SubscribeRequest, SubscribeResponse,
};
use tonic::transport::Channel;
use tonic::Streaming;

use crate::support::wait_for;

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

    /// Waits until every enabled monitor says it is running (its watches and subscriptions in
    /// place), so that what a test does next is seen.
    pub async fn until_running(&self) {
        let client = self.client().await;
        crate::support::eventually("every monitor running", Duration::from_secs(30), || {
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
    }

    /// A subscription to `types` (with the replay of the ring when `replay`), returned once its
    /// Hello has arrived, so that whatever a test does next is seen live.
    pub async fn subscribe(
        &self,
        types: &[EventType],
        replay: bool,
    ) -> Streaming<SubscribeResponse> {
        let mut s = self
            .client()
            .await
            .subscribe(SubscribeRequest {
                types: types.iter().map(|t| *t as i32).collect(),
                replay,
                ..Default::default()
            })
            .await
            .expect("subscribe to collectord")
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(20), s.message())
            .await
            .expect("collectord's Hello within 20 s")
            .expect("a Hello, not an error")
            .expect("a Hello, not the end of the stream");
        assert!(
            matches!(first.item, Some(subscribe_response::Item::Hello(_))),
            "the stream opens with a Hello"
        );
        s
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

/// A Collector client over a Unix socket (its server checked as every client checks it).
pub async fn connect(path: &Path) -> CollectorClient<Channel> {
    let channel = client::connect(path, &Trust::collector())
        .await
        .expect("connect to collectord");
    CollectorClient::new(channel)
}
