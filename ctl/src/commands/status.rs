//! `status`: is collectord up, and how are its monitors.

use serde_json::json;

use crate::cli::StatusArgs;
use crate::commands::Context;
use crate::render::{format_bytes, format_uptime};
use crate::source::{connect, probe, probe_for};
use sec_tracker_proto::json::{collector_status_json, escape_text, shipper_metrics_json, Named};
use sec_tracker_proto::local::client::{self, Probe};
use sec_tracker_proto::v1::shipper_client::ShipperClient;
use sec_tracker_proto::v1::{MonitorState, SeverityCounts, ShipperStatus, ShipperStatusRequest};

/// Exit code when the collector is not running, as `systemctl status` does.
pub(crate) const EXIT_NOT_RUNNING: u8 = 3;

pub(crate) async fn run(ctx: &Context, args: &StatusArgs) -> anyhow::Result<u8> {
    let shipper = shipper_status(ctx).await;
    if let Probe::Absent(why) = probe(&ctx.socket)? {
        if args.json {
            let v = json!({"collector": {"running": false, "socket": ctx.socket.display().to_string(), "error": why},
                           "shipper": shipper_json(ctx, &shipper)});
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("collectord: not running ({why})");
            print_shipper(&shipper);
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
        let v =
            json!({"shipper": shipper_json(ctx, &shipper), "collector": collector_status_json(&s)});
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
        "  buffer:      {} events, {} of {} held (oldest seq {}; at least {} events kept)",
        s.buffered,
        format_bytes(s.buffered_bytes),
        format_bytes(s.buffer_bytes),
        s.oldest_seq,
        s.buffer_size
    );
    println!(
        "  evicted:     {} (before any reader had them; the least severe go first)",
        by_severity(s.evicted.as_ref())
    );
    println!(
        "  floods:      {} held back, in {} summary events ({} waiting for the window to close)",
        by_severity(s.suppressed.as_ref()),
        s.flood_summaries,
        s.flood_pending
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
            m.state().name()
        } else {
            MonitorState::Disabled.name()
        };
        let mut line = format!("    {:<16} {:<11} events {:>8}", m.name, state, m.events);
        if m.lost > 0 {
            line.push_str(&format!("  lost {}", m.lost));
        }
        if m.errors > 0 {
            line.push_str(&format!("  errors {}", m.errors));
        }
        if !m.detail.is_empty() {
            line.push_str(&format!("  ({})", escape_text(&m.detail)));
        }
        println!("{line}");
    }
    print_shipper(&shipper);
    Ok(0)
}

/// shipperd's side: its status, or why there is none (not running is normal in local mode).
pub(crate) async fn shipper_status(ctx: &Context) -> Result<ShipperStatus, String> {
    let trust = client::Trust::shipper(&ctx.config.agent.shipper_user);
    match probe_for(&ctx.shipper_socket, &trust) {
        Ok(Probe::Up) => {}
        Ok(Probe::Absent(why) | Probe::Untrusted(why)) => return Err(why),
        Err(e) => return Err(format!("{e:#}")),
    }
    let channel = client::connect(&ctx.shipper_socket, &trust)
        .await
        .map_err(|e| format!("{e}"))?;
    ShipperClient::new(channel)
        .status(ShipperStatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| s.message().to_owned())
}

fn shipper_json(ctx: &Context, s: &Result<ShipperStatus, String>) -> serde_json::Value {
    match s {
        Err(why) => {
            json!({"running": false, "socket": ctx.shipper_socket.display().to_string(), "error": why})
        }
        Ok(s) => {
            let mut m = shipper_metrics_json(s);
            if let Some(o) = m.as_object_mut() {
                o.insert("running".into(), json!(true));
                o.insert("pid".into(), json!(s.pid));
                o.insert("version".into(), json!(s.version));
                o.insert("server".into(), json!(s.server_url));
                o.insert("queue_path".into(), json!(s.queue_path));
            }
            m
        }
    }
}

fn print_shipper(s: &Result<ShipperStatus, String>) {
    let s = match s {
        Err(why) => {
            println!("shipperd: not running ({why})");
            return;
        }
        Ok(s) => s,
    };
    println!(
        "shipperd: {} (pid {}, version {}, up {})",
        s.state().name(),
        s.pid,
        s.version,
        format_uptime(s.uptime_seconds)
    );
    println!("  server:      {}", escape_text(&s.server_url));
    println!(
        "  collector:   {}",
        if s.collector_connected {
            format!(
                "connected (stream {}, last seq {})",
                s.collector_stream_id, s.last_received_seq
            )
        } else {
            "not connected".into()
        }
    );
    println!(
        "  events:      {} received, {} sent, {} dropped (queue full), {} dead-lettered, {} missed (collector gaps)",
        s.events_received, s.events_sent, s.events_dropped, s.events_dead_lettered, s.collector_gaps_missed
    );
    if s.events_dropped > 0 {
        println!("  dropped:     {}", by_severity(s.dropped.as_ref()));
    }
    println!(
        "  queue:       {} events, {}, oldest {:.0}s old ({})",
        s.queue_depth,
        format_bytes(s.queue_bytes),
        s.oldest_queued_age_seconds,
        s.queue_path
    );
    println!(
        "  last send:   {}",
        if s.last_success_ns > 0 {
            sec_tracker_proto::json::rfc3339_seconds(s.last_success_ns)
        } else {
            "never".into()
        }
    );
    if !s.last_error.is_empty() {
        println!("  last error:  {}", escape_text(&s.last_error));
    }
    if s.outputs.len() > 1 {
        for o in &s.outputs {
            println!(
                "  output {:<6} {} {}: {} queued, {} sent, {} dropped, {} dead-lettered, last send {}{}",
                o.name,
                escape_text(&o.target),
                o.state().name(),
                o.queue_depth,
                o.events_sent,
                o.events_dropped,
                o.events_dead_lettered,
                if o.last_success_ns > 0 {
                    sec_tracker_proto::json::rfc3339_seconds(o.last_success_ns)
                } else {
                    "never".into()
                },
                if o.last_error.is_empty() {
                    String::new()
                } else {
                    format!("; last error: {}", escape_text(&o.last_error))
                }
            );
        }
    }
    println!("  memory:      {} RSS", format_bytes(s.rss_bytes));
}

/// "3 info, 0 warning, 0 critical".
fn by_severity(c: Option<&SeverityCounts>) -> String {
    let c = c.copied().unwrap_or_default();
    format!(
        "{} info, {} warning, {} critical",
        c.info, c.warning, c.critical
    )
}
