//! A small management server for trying server mode on one machine: it speaks the agent API
//! (`POST /api/v1/agent/data`, `POST /api/v1/agent/health`, Bearer key, gzip) over HTTPS with a
//! throwaway CA, and prints what it receives.
//!
//! ```sh
//! cargo run --example management_server --features testing -- /tmp/sec-tracker-demo
//! ```
//! It writes `ca.pem` and a ready `config.json` for shipperd into that directory and prints the
//! commands to run.

use std::path::PathBuf;
use std::time::Duration;

use shipperd::testing::{Mode, TestCa, TestServer, TEST_API_KEY};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/tmp/sec-tracker-demo".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let ca = TestCa::new();
    let ca_path = dir.join("ca.pem");
    ca.write_ca_pem(&ca_path)?;
    let server = TestServer::start(&ca.localhost_cert(), Mode::Accept).await?;
    let config = serde_json::json!({
        "server": {"url": server.url, "api_key": TEST_API_KEY, "ca_file": ca_path, "batch_size": 100},
        "agent": {"id": "demo-agent", "report_interval": "5s", "state_dir": dir.join("state")},
    });
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    println!("management server listening on {}", server.url);
    println!("shipperd config written to {}", config_path.display());
    println!("in other terminals, as root:");
    println!(
        "  ./target/release/collectord --config {}",
        config_path.display()
    );
    println!(
        "  ./target/release/shipperd --config {} --allow-root",
        config_path.display()
    );
    let (mut batches, mut health) = (0, 0);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = server.batches();
        for b in &got[batches..] {
            println!(
                "batch {} from {}: {} events ({} bytes on the wire)",
                b.batch_id,
                b.agent_id,
                b.payloads.len(),
                b.wire_bytes
            );
            for p in b.payloads.iter().take(3) {
                println!(
                    "  {} {} {}",
                    p["severity"].as_str().unwrap_or(""),
                    p["type"].as_str().unwrap_or(""),
                    p["message"].as_str().unwrap_or("")
                );
            }
            if b.payloads.len() > 3 {
                println!("  … and {} more", b.payloads.len() - 3);
            }
        }
        batches = got.len();
        let reports = server.health_reports();
        for h in &reports[health..] {
            println!("health: {}", h);
        }
        health = reports.len();
    }
}
