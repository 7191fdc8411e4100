//! The JSON shapes shared by `sec-trackerctl --json` and the server payloads.
//!
//! System information keeps the seed's field names (`cpu_info.usage_percent`, …) so existing
//! scripts keep working. Events are one flat object each with typed `details`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::v1::{
    event, AgentNotice, AuthEvent, Event, EventType, FileAction, FileEvent, NetworkEvent,
    ProcessAction, ProcessEvent, Severity, SystemInfo,
};

/// Lower-case type name used in JSON, filters and the human output.
pub fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Unspecified => "unknown",
        EventType::System => "system",
        EventType::Process => "process",
        EventType::File => "file",
        EventType::Auth => "auth",
        EventType::Network => "network",
    }
}

/// Parses a type name as the CLI accepts it (`process`, `file`, …).
pub fn parse_type(s: &str) -> Option<EventType> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "system" => EventType::System,
        "process" => EventType::Process,
        "file" => EventType::File,
        "auth" => EventType::Auth,
        "network" => EventType::Network,
        _ => return None,
    })
}

pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFO",
        Severity::Warning => "WARNING",
        Severity::Critical => "CRITICAL",
    }
}

pub fn parse_severity(s: &str) -> Option<Severity> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "info" => Severity::Info,
        "warning" | "warn" => Severity::Warning,
        "critical" | "crit" => Severity::Critical,
        _ => return None,
    })
}

pub fn process_action_name(a: ProcessAction) -> &'static str {
    match a {
        ProcessAction::Unspecified => "unknown",
        ProcessAction::Exec => "exec",
        ProcessAction::Exit => "exit",
        ProcessAction::UidChange => "uid_change",
        ProcessAction::GidChange => "gid_change",
    }
}

pub fn file_action_name(a: FileAction) -> &'static str {
    match a {
        FileAction::Unspecified => "unknown",
        FileAction::Created => "created",
        FileAction::Modified => "modified",
        FileAction::Deleted => "deleted",
        FileAction::Renamed => "renamed",
        FileAction::Attributes => "attributes",
    }
}

/// Renders bytes from the kernel (paths, arguments) on one printable line: valid UTF-8 is kept,
/// control characters become `\n`, `\t`, `\xNN`, invalid bytes `\xNN`, and a backslash `\\`, so
/// a file name with a newline can never forge a second output line and nothing is lost.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Bytes as a JSON string: exact when they are UTF-8 (JSON escapes control characters itself),
/// otherwise the `escape_bytes` form.
pub fn json_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => escape_bytes(bytes),
    }
}

/// A command line on one line: arguments escaped and joined by spaces.
pub fn join_argv(argv: &[Vec<u8>]) -> String {
    argv.iter()
        .map(|a| escape_bytes(a))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH
    }
}

/// RFC 3339 UTC with nanoseconds: `2024-01-15T10:30:45.123456789Z`.
pub fn rfc3339_nanos(ns: i64) -> String {
    humantime::format_rfc3339_nanos(system_time(ns)).to_string()
}

/// RFC 3339 UTC to the second, as in the seed: `2024-01-15T10:30:45Z`.
pub fn rfc3339_seconds(ns: i64) -> String {
    humantime::format_rfc3339_seconds(system_time(ns)).to_string()
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The seed's system-info object (plus disks, interfaces, uptime and load).
pub fn system_info_json(s: &SystemInfo) -> Value {
    let cpu = s.cpu_info.clone().unwrap_or_default();
    let mem = s.memory_info.unwrap_or_default();
    let load = s.load_average.unwrap_or_default();
    json!({
        "hostname": s.hostname,
        "os": s.os,
        "kernel": s.kernel,
        "architecture": s.architecture,
        "machine": s.machine,
        "os_release": s.os_release,
        "cpu_info": {
            "cores": cpu.cores,
            "model_name": cpu.model_name,
            "usage_percent": round1(cpu.usage_percent),
        },
        "memory_info": {
            "total": mem.total,
            "available": mem.available,
            "used": mem.used,
            "usage_percent": round1(mem.usage_percent),
            "swap_total": mem.swap_total,
            "swap_free": mem.swap_free,
        },
        "disks": s.disks.iter().map(|d| json!({
            "mount_point": d.mount_point,
            "device": d.device,
            "fs_type": d.fs_type,
            "total": d.total,
            "available": d.available,
            "used": d.used,
            "usage_percent": round1(d.usage_percent),
            "inodes_total": d.inodes_total,
            "inodes_free": d.inodes_free,
            "read_only": d.read_only,
        })).collect::<Vec<_>>(),
        "network_interfaces": s.network_interfaces.iter().map(|n| json!({
            "name": n.name,
            "addresses": n.addresses,
            "mac": n.mac,
            "up": n.up,
            "rx_bytes": n.rx_bytes,
            "tx_bytes": n.tx_bytes,
            "rx_packets": n.rx_packets,
            "tx_packets": n.tx_packets,
            "rx_errors": n.rx_errors,
            "tx_errors": n.tx_errors,
        })).collect::<Vec<_>>(),
        "uptime_seconds": s.uptime_seconds.round() as u64,
        "load_average": [load.one, load.five, load.fifteen],
        "process_count": s.process_count,
        "timestamp": rfc3339_seconds(s.timestamp_ns),
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One event as a flat JSON object (one line of `watch --json`).
pub fn event_json(e: &Event) -> Value {
    let mut obj = Map::new();
    obj.insert("seq".into(), json!(e.seq));
    obj.insert("stream_id".into(), json!(e.stream_id));
    obj.insert("timestamp".into(), json!(rfc3339_nanos(e.timestamp_ns)));
    obj.insert("type".into(), json!(type_name(e.r#type())));
    obj.insert("severity".into(), json!(severity_name(e.severity())));
    obj.insert("source".into(), json!(e.source));
    obj.insert("message".into(), json!(e.message));
    if let Some(d) = &e.details {
        obj.insert("details".into(), details_json(d));
    }
    Value::Object(obj)
}

pub fn details_json(d: &event::Details) -> Value {
    match d {
        event::Details::System(s) => system_info_json(s),
        event::Details::Process(p) => process_json(p),
        event::Details::File(f) => file_json(f),
        event::Details::Auth(a) => auth_json(a),
        event::Details::Network(n) => network_json(n),
        event::Details::Agent(a) => agent_json(a),
    }
}

fn process_json(p: &ProcessEvent) -> Value {
    let mut v = json!({
        "action": process_action_name(p.action()),
        "pid": p.pid,
        "ppid": p.ppid,
        "uid": p.uid,
        "user": p.user,
        "gid": p.gid,
        "euid": p.euid,
        "egid": p.egid,
        "name": p.name,
        "parent_name": p.parent_name,
        "exe": json_bytes(&p.exe),
        "cmdline": p.argv.iter().map(|a| json_bytes(a)).collect::<Vec<_>>().join(" "),
        "argv": p.argv.iter().map(|a| json_bytes(a)).collect::<Vec<_>>(),
        "cwd": json_bytes(&p.cwd),
        "tty": p.tty,
        "details_missing": p.details_missing,
    });
    let m = v.as_object_mut().expect("object literal");
    if p.argv_truncated {
        m.insert("argv_truncated".into(), json!(true));
    }
    match p.action() {
        ProcessAction::Exit => {
            m.insert("exit_code".into(), json!(p.exit_code));
            m.insert("exit_signal".into(), json!(p.exit_signal));
            m.insert("runtime_ms".into(), json!(p.runtime_ms));
        }
        ProcessAction::UidChange | ProcessAction::GidChange => {
            m.insert("old_uid".into(), json!(p.old_uid));
            m.insert("old_euid".into(), json!(p.old_euid));
        }
        _ => {}
    }
    v
}

fn file_json(f: &FileEvent) -> Value {
    json!({
        "action": file_action_name(f.action()),
        "path": json_bytes(&f.path),
        "old_path": json_bytes(&f.old_path),
        "kind": f.kind,
        "size": f.size,
        "mode": format!("{:o}", f.mode),
        "uid": f.uid,
        "gid": f.gid,
        "sha256_before": f.sha256_before,
        "sha256_after": f.sha256_after,
        "hash_skipped": f.hash_skipped,
        "pid": f.pid,
        "exe": json_bytes(&f.exe),
        "user": f.user,
        "attribution_unavailable": f.attribution_unavailable,
        "while_agent_down": f.while_agent_down,
    })
}

fn auth_json(a: &AuthEvent) -> Value {
    json!({
        "action": a.action,
        "user": a.user,
        "target_user": a.target_user,
        "source_address": a.source_address,
        "source_port": a.source_port,
        "method": a.method,
        "success": a.success,
        "tty": a.tty,
        "cwd": a.cwd,
        "command": a.command,
        "service": a.service,
        "log_source": a.log_source,
        "pid": a.pid,
        "raw": a.raw,
    })
}

fn network_json(n: &NetworkEvent) -> Value {
    json!({
        "action": n.action,
        "protocol": n.protocol,
        "local_address": n.local_address,
        "local_port": n.local_port,
        "remote_address": n.remote_address,
        "remote_port": n.remote_port,
        "state": n.state,
        "direction": n.direction,
        "pid": n.pid,
        "exe": json_bytes(&n.exe),
        "process_name": n.process_name,
        "uid": n.uid,
        "user": n.user,
        "inode": n.inode,
    })
}

fn agent_json(a: &AgentNotice) -> Value {
    json!({ "kind": a.kind, "monitor": a.monitor, "lost": a.lost })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_text_and_neutralises_line_breaks_and_bad_bytes() {
        assert_eq!(escape_bytes(b"plain /etc/h\xc3\xa9"), "plain /etc/hé");
        assert_eq!(escape_bytes(b"a\nb"), "a\\nb");
        assert_eq!(escape_bytes(b"x\xffy"), "x\\xffy");
        assert_eq!(
            escape_bytes(b"back\\slash\t\x1b[31m"),
            "back\\\\slash\\t\\x1b[31m"
        );
    }

    #[test]
    fn json_bytes_is_exact_for_utf8() {
        assert_eq!(json_bytes(b"a\nb"), "a\nb");
        assert_eq!(json_bytes(b"\xfe"), "\\xfe");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(
            rfc3339_seconds(1_705_314_645_000_000_000),
            "2024-01-15T10:30:45Z"
        );
        assert_eq!(
            rfc3339_nanos(1_705_314_645_000_000_001),
            "2024-01-15T10:30:45.000000001Z"
        );
    }

    #[test]
    fn names_round_trip() {
        for t in [
            EventType::System,
            EventType::Process,
            EventType::File,
            EventType::Auth,
            EventType::Network,
        ] {
            assert_eq!(parse_type(type_name(t)), Some(t));
        }
        for s in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(parse_severity(severity_name(s)), Some(s));
        }
    }

    #[test]
    fn system_info_keeps_the_seed_names() {
        let s = SystemInfo {
            hostname: "h".into(),
            cpu_info: Some(crate::v1::CpuInfo {
                cores: 4,
                model_name: "m".into(),
                usage_percent: 15.24,
            }),
            ..Default::default()
        };
        let v = system_info_json(&s);
        assert_eq!(v["cpu_info"]["usage_percent"], json!(15.2));
        assert_eq!(v["cpu_info"]["cores"], json!(4));
        for key in [
            "hostname",
            "os",
            "kernel",
            "architecture",
            "memory_info",
            "timestamp",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }
}
