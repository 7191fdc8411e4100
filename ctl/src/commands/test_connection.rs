//! `test-connection`: DNS, TCP, TLS and the API (or syslog, OTLP) step against every configured
//! output, saying which step failed.

use sec_tracker_proto::Config;
use shipperd::outputs::Output;

/// Returns the exit code: 0 when every step of every output passed.
pub(crate) async fn run(config: &Config) -> anyhow::Result<u8> {
    let outputs = Output::all(config)?;
    if outputs.is_empty() {
        println!(
            "server.url is not set and no other output is configured: there is nothing to test \
             (local mode needs none)"
        );
        return Ok(1);
    }
    let mut all_ok = true;
    for output in &outputs {
        println!("Testing {} ({}) …", output.target(), output.name());
        let steps = output.test_connection().await;
        let mut ok = !steps.is_empty();
        for s in &steps {
            println!(
                "  {} {:<6} {}",
                if s.ok { "ok  " } else { "FAIL" },
                s.name,
                s.detail
            );
            ok &= s.ok;
        }
        println!(
            "{}",
            match (ok, output) {
                (true, Output::Server(_)) => "The server accepts this agent.",
                (true, _) => "This output accepts this agent.",
                (false, _) => "The connection does not work: see the first FAIL.",
            }
        );
        all_ok &= ok;
    }
    Ok(if all_ok { 0 } else { 1 })
}
