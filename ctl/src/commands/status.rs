//! `status`: is collectord up, and how are its monitors.

use serde_json::json;

use crate::cli::StatusArgs;
use crate::commands::Context;
use crate::render::{format_bytes, format_uptime};
use crate::source::{connect, probe, Probe};

/// Exit code when the collector is not running, as `systemctl status` does.
pub const EXIT_NOT_RUNNING: u8 = 3;

pub async fn run(ctx: &Context, args: &StatusArgs) -> anyhow::Result<u8> {
    if let Probe::Absent(why) = probe(&ctx.socket)? {
        if args.json {
            println!(
                "{}",
                json!({"collector": {"running": false, "socket": ctx.socket.display().to_string(), "error": why}})
            );
        } else {
            println!("collectord: not running ({why})");
        }
        return Ok(EXIT_NOT_RUNNING);
    }
    let mut client = connect(&ctx.socket).await?;
    let s = client
        .status(sec_tracker_proto::v1::StatusRequest {})
        .await
        .map_err(|st| anyhow::anyhow!("collectord: {}", st.message()))?
        .into_inner();
    if args.json {
        let monitors: Vec<_> = s
            .monitors
            .iter()
            .map(|m| {
                json!({"name": m.name, "enabled": m.enabled, "state": m.state, "detail": m.detail,
                       "events": m.events, "lost": m.lost, "errors": m.errors})
            })
            .collect();
        let v = json!({"collector": {
            "running": true,
            "version": s.version,
            "pid": s.pid,
            "socket": s.socket_path,
            "config": s.config_path,
            "stream_id": s.stream_id,
            "uptime_seconds": s.uptime_seconds.round() as u64,
            "latest_seq": s.latest_seq,
            "oldest_seq": s.oldest_seq,
            "buffer_size": s.buffer_size,
            "buffered": s.buffered,
            "subscribers": s.subscribers,
            "subscriber_skipped": s.subscriber_skipped,
            "rss_bytes": s.rss_bytes,
            "capabilities": s.capabilities,
            "monitors": monitors,
        }});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!(
        "collectord: running (pid {}, version {}, up {})",
        s.pid,
        s.version,
        format_uptime(s.uptime_seconds)
    );
    println!("  socket:      {}", s.socket_path);
    if !s.config_path.is_empty() {
        println!("  config:      {}", s.config_path);
    }
    println!(
        "  stream:      {} (latest seq {})",
        s.stream_id, s.latest_seq
    );
    println!(
        "  buffer:      {} of {} events held (oldest seq {})",
        s.buffered, s.buffer_size, s.oldest_seq
    );
    println!(
        "  subscribers: {} ({} events skipped for slow readers)",
        s.subscribers, s.subscriber_skipped
    );
    println!("  memory:      {} RSS", format_bytes(s.rss_bytes));
    println!(
        "  capabilities: {}",
        if s.capabilities.is_empty() {
            "none".to_owned()
        } else {
            s.capabilities.join(" ")
        }
    );
    println!("  monitors:");
    for m in &s.monitors {
        let state = if m.enabled {
            m.state.as_str()
        } else {
            "disabled"
        };
        let mut line = format!("    {:<16} {:<11} events {:>8}", m.name, state, m.events);
        if m.lost > 0 {
            line.push_str(&format!("  lost {}", m.lost));
        }
        if m.errors > 0 {
            line.push_str(&format!("  errors {}", m.errors));
        }
        if !m.detail.is_empty() {
            line.push_str(&format!("  ({})", m.detail));
        }
        println!("{line}");
    }
    Ok(0)
}
