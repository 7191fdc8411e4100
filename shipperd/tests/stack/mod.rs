//! The stack every end-to-end test runs: one collectord watching a tree, one shipperd, one HTTPS
//! management server, all real; and what the tests ask of it.
#![allow(dead_code)] // each test binary uses a part of it

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sec_tracker_testkit::server::{Mode, TestCa, TestCert, TestServer, TEST_API_KEY};
use sec_tracker_testkit::{wait_for, Daemon};
use serde_json::Value;

pub(crate) const SHIPPERD: &str = env!("CARGO_BIN_EXE_shipperd");

pub(crate) fn collectord_bin() -> PathBuf {
    sec_tracker_testkit::workspace_bin(SHIPPERD, "collectord")
}

/// One collectord watching `tree`, one shipperd, one server.
pub(crate) struct Stack {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) tree: PathBuf,
    pub(crate) collector: Daemon,
    pub(crate) shipper: Option<Child>,
    pub(crate) server: TestServer,
    pub(crate) config: PathBuf,
    pub(crate) counter: usize,
}

pub(crate) struct Setup<'a> {
    pub(crate) cert: &'a TestCert,
    pub(crate) ca_file: Option<&'a Path>,
    pub(crate) api_key: &'a str,
    pub(crate) max_queue: u64,
    pub(crate) host: &'a str,
    pub(crate) batch_size: u64,
    /// collectord's ring in bytes (None: the default).
    pub(crate) ring_bytes: Option<u64>,
    /// collectord's `monitoring.flood_limit` (None: the default).
    pub(crate) flood_limit: Option<u64>,
    /// shipperd's `agent.metrics_listen` (None: not served).
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    /// Also run the process monitor (CRITICAL for a program run from /tmp).
    pub(crate) process_monitor: bool,
    /// Start shipperd with the stack (else the test starts it).
    pub(crate) shipper_at_start: bool,
}

impl Stack {
    pub(crate) async fn start(ca: &TestCa, setup: Setup<'_>) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        let mut collector_config = serde_json::json!({
            "agent": {"state_dir": "@STATE@"},
            "monitoring": {"process_monitor": setup.process_monitor, "system_info": false,
                           "auth_monitor": false, "network_monitor": false, "watch_paths": [tree]},
        });
        if let Some(bytes) = setup.ring_bytes {
            collector_config["agent"]["buffer_bytes"] = bytes.into();
        }
        if let Some(limit) = setup.flood_limit {
            collector_config["monitoring"]["flood_limit"] = limit.into();
        }
        let collector = Daemon::start(&collectord_bin(), &collector_config.to_string());
        let server = TestServer::start(setup.cert, Mode::Accept).await.unwrap();
        let ca_path = dir.path().join("ca.pem");
        ca.write_ca_pem(&ca_path).unwrap();
        let ca_file = setup.ca_file.map(|_| ca_path.clone());
        let config = dir.path().join("shipper.json");
        let mut server_cfg = serde_json::json!({
            "url": server.url_for(setup.host), "api_key": setup.api_key, "timeout": "2s",
            "batch_size": setup.batch_size, "retry_max": 3
        });
        if let Some(ca) = &ca_file {
            server_cfg["ca_file"] = serde_json::json!(ca);
        }
        let cfg = serde_json::json!({
            "server": server_cfg,
            // shipper_user: the unprivileged test runs shipperd as nobody, and the CLI trusts its
            // status socket only when root or this user serves it.
            "agent": {"id": "e2e-agent", "report_interval": "1s", "max_queue_size": setup.max_queue,
                      "shipper_user": "nobody"},
        });
        let mut cfg = cfg;
        if let Some(addr) = setup.metrics_listen {
            cfg["agent"]["metrics_listen"] = addr.to_string().into();
        }
        std::fs::write(&config, serde_json::to_vec(&cfg).unwrap()).unwrap();
        let mut stack = Stack {
            dir,
            tree,
            collector,
            shipper: None,
            server,
            config,
            counter: 0,
        };
        if setup.shipper_at_start {
            stack.start_shipper();
        }
        stack
    }

    /// Adds `outputs` (the config's `outputs` section) to shipperd's config; call before
    /// starting shipperd.
    pub(crate) fn set_outputs(&self, outputs: Value) {
        let mut cfg: Value = serde_json::from_slice(&std::fs::read(&self.config).unwrap()).unwrap();
        cfg["outputs"] = outputs;
        std::fs::write(&self.config, serde_json::to_vec(&cfg).unwrap()).unwrap();
    }

    /// shipperd's status, read from its socket.
    pub(crate) async fn shipper_status(&self) -> sec_tracker_proto::v1::ShipperStatus {
        use sec_tracker_proto::local::client;
        use sec_tracker_proto::v1::shipper_client::ShipperClient;
        let channel = client::connect(&self.status_socket(), &client::Trust::shipper("nobody"))
            .await
            .unwrap();
        ShipperClient::new(channel)
            .status(sec_tracker_proto::v1::ShipperStatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir.path().join("shipper-state")
    }

    pub(crate) fn status_socket(&self) -> PathBuf {
        self.dir.path().join("shipper.sock")
    }

    pub(crate) fn start_shipper(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("shipperd.log"))
            .unwrap();
        let child = Command::new(SHIPPERD)
            .arg("--config")
            .arg(&self.config)
            .arg("--collector-socket")
            .arg(&self.collector.socket)
            .arg("--socket")
            .arg(self.status_socket())
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--allow-root")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.shipper = Some(child);
        let sock = self.status_socket();
        wait_for("shipperd's status socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&sock).ok()
        });
    }

    pub(crate) fn kill9_shipper(&mut self) {
        if let Some(mut c) = self.shipper.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub(crate) fn stop_shipper(&mut self) -> Option<i32> {
        let mut c = self.shipper.take()?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        wait_for("shipperd to stop", Duration::from_secs(20), || {
            c.try_wait().unwrap()
        })
        .code()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("shipperd.log")).unwrap_or_default()
    }

    /// Writes `n` files with unique names; returns the names.
    pub(crate) fn make_events(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.counter += 1;
                let name = format!("ev-{}-{}", std::process::id(), self.counter);
                std::fs::write(self.tree.join(&name), "x").unwrap();
                name
            })
            .collect()
    }

    /// status --json of the shipper, through sec-trackerctl's own socket client is not available
    /// here; read the health reports and the queue through the server and the log instead.
    pub(crate) fn delivered_names(&self) -> BTreeMap<String, Vec<String>> {
        // file name → batch ids that carried its "created" event
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for b in self.server.batches() {
            for p in &b.payloads {
                if p["type"] == "file" && p["details"]["action"] == "created" {
                    let path = p["details"]["path"].as_str().unwrap_or("");
                    let name = path.rsplit('/').next().unwrap_or("").to_owned();
                    out.entry(name).or_default().push(b.batch_id.clone());
                }
            }
        }
        out
    }

    pub(crate) async fn wait_delivered(&self, names: &[String], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.delivered_names();
            let missing: Vec<&String> = names.iter().filter(|n| !got.contains_key(*n)).collect();
            if missing.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} of {} events never reached the server, e.g. {:?}\nshipperd log:\n{}",
                    missing.len(),
                    names.len(),
                    &missing[..missing.len().min(5)],
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for a health report newer than the ones already received and returns it.
    pub(crate) fn next_health_report(&self, timeout: Duration) -> Value {
        let seen = self.server.health_reports().len();
        wait_for("a health report", timeout, || {
            self.server.health_reports().get(seen).cloned()
        })
    }

    /// Duplicates may only be whole batches sent again with the same id and content.
    pub(crate) fn assert_duplicates_are_resent_batches(&self) {
        let mut by_id: BTreeMap<String, Vec<Vec<Value>>> = BTreeMap::new();
        for b in self.server.batches() {
            by_id
                .entry(b.batch_id.clone())
                .or_default()
                .push(b.payloads.clone());
        }
        for (id, copies) in &by_id {
            assert!(
                copies.windows(2).all(|w| w[0] == w[1]),
                "batch {id} was re-sent with different content"
            );
        }
        for (name, ids) in self.delivered_names() {
            let distinct: BTreeSet<&String> = ids.iter().collect();
            assert_eq!(distinct.len(), 1, "{name} arrived in different batches {ids:?}: a duplicate that is not a re-sent batch");
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.kill9_shipper();
    }
}

pub(crate) fn setup<'a>(cert: &'a TestCert, ca: &'a Path) -> Setup<'a> {
    Setup {
        cert,
        ca_file: Some(ca),
        api_key: TEST_API_KEY,
        max_queue: 100_000,
        host: "localhost",
        batch_size: 20,
        ring_bytes: None,
        flood_limit: None,
        metrics_listen: None,
        process_monitor: false,
        shipper_at_start: true,
    }
}
