//! `test-connection`: DNS, TCP, TLS and the API key against the configured server, saying which
//! step failed.

use sec_tracker_proto::Config;

/// Returns the exit code: 0 when every step passed.
pub(crate) async fn run(config: &Config) -> anyhow::Result<u8> {
    if config.server.url.trim().is_empty() {
        println!("server.url is not set: there is no server to test (local mode needs none)");
        return Ok(1);
    }
    let sender = shipperd::sender::Sender::new(config)?;
    println!("Testing {} …", config.server.url);
    let steps = sender.test_connection().await;
    let mut ok = true;
    for s in &steps {
        println!(
            "  {} {:<4} {}",
            if s.ok { "ok  " } else { "FAIL" },
            s.name,
            s.detail
        );
        ok &= s.ok;
    }
    println!(
        "{}",
        if ok {
            "The server accepts this agent."
        } else {
            "The connection does not work: see the first FAIL."
        }
    );
    Ok(if ok { 0 } else { 1 })
}
