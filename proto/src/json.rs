//! The JSON shapes: events and system information (`watch --json`, `snapshot --json`, the server
//! payloads), gap lines, shipperd's health metrics (the health report and `status --json`) and
//! collectord's status, each built here and only here.
//!
//! System information keeps the field names of the agent sec-tracker replaces
//! (`cpu_info.usage_percent`, …) so existing scripts keep working. Events are one flat object each
//! with typed `details`. Enums are spelled in JSON as [`Named::name`] gives them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::{json, Value};

use crate::v1::{
    event, AgentNotice, AuthAction, AuthEvent, CollectorStatus, Direction, Event, EventType,
    FileAction, FileEvent, Gap, GapReason, MonitorState, NetworkAction, NetworkEvent, OutputStatus,
    ProcessAction, ProcessEvent, ProcessRef, Severity, SeverityCounts, ShipperState, ShipperStatus,
    SocketState, SystemInfo,
};

/// How an enum of the contract is spelled in JSON, filters and the human output.
pub trait Named: Sized + Copy + 'static {
    fn name(self) -> &'static str;
}

macro_rules! named {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl Named for $ty {
            fn name(self) -> &'static str {
                match self {
                    $(<$ty>::$variant => $text),*
                }
            }
        }
    };
}

named!(EventType {
    Unspecified => "unknown", System => "system", Process => "process", File => "file",
    Auth => "auth", Network => "network",
});
named!(Severity { Info => "INFO", Warning => "WARNING", Critical => "CRITICAL" });
named!(ProcessAction {
    Unspecified => "unknown", Exec => "exec", Exit => "exit", UidChange => "uid_change",
    GidChange => "gid_change", PtraceAttach => "ptrace_attach", Renamed => "renamed",
});
named!(FileAction {
    Unspecified => "unknown", Created => "created", Modified => "modified",
    Deleted => "deleted", Renamed => "renamed", Attributes => "attributes",
});
named!(AuthAction {
    Unspecified => "unknown", SshAccepted => "ssh_accepted", SshFailed => "ssh_failed",
    SshInvalidUser => "ssh_invalid_user", SshSessionClosed => "ssh_session_closed",
    SshSessionOpened => "ssh_session_opened", SudoCommand => "sudo_command",
    SudoAuthFailure => "sudo_auth_failure", SudoNotInSudoers => "sudo_not_in_sudoers",
    SudoDenied => "sudo_denied", SuSuccess => "su_success", SuFailure => "su_failure",
    ConsoleLogin => "console_login", ConsoleLoginFailure => "console_login_failure",
    UserAdded => "user_added", UserChanged => "user_changed", UserDeleted => "user_deleted",
    GroupAdded => "group_added", GroupChanged => "group_changed",
    GroupDeleted => "group_deleted", PasswordChanged => "password_changed",
    ForgedLine => "forged_log_line",
});
named!(NetworkAction {
    Unspecified => "unknown", ListenOpened => "listen_opened", ListenClosed => "listen_closed",
    ConnectionEstablished => "connection_established",
    ConnectionClosed => "connection_closed",
});
named!(SocketState {
    Unknown => "UNKNOWN", Established => "ESTABLISHED", SynSent => "SYN_SENT",
    SynRecv => "SYN_RECV", FinWait1 => "FIN_WAIT1", FinWait2 => "FIN_WAIT2",
    TimeWait => "TIME_WAIT", Close => "CLOSE", CloseWait => "CLOSE_WAIT", LastAck => "LAST_ACK",
    Listen => "LISTEN", Closing => "CLOSING", NewSynRecv => "NEW_SYN_RECV", Unconn => "UNCONN",
    Closed => "CLOSED",
});
named!(Direction { Unspecified => "", Inbound => "inbound", Outbound => "outbound" });
named!(MonitorState {
    Starting => "starting", Running => "running", Fallback => "fallback",
    Disabled => "disabled", Failed => "failed", Stopped => "stopped", Stalled => "stalled",
});
named!(ShipperState {
    Idle => "idle", Sending => "sending", Retrying => "retrying", PausedAuth => "paused_auth",
    DiskError => "disk_error",
});
named!(GapReason {
    Unspecified => "unknown", RingOverrun => "ring_overrun",
    CollectorRestarted => "collector_restarted", SlowSubscriber => "slow_subscriber",
});

/// Renders bytes from the kernel (paths, arguments) on one printable line: valid UTF-8 is kept,
/// control characters (C0 and C1, ESC among them) and the bidirectional formatting characters
/// become `\n`, `\t`, `\xNN`, invalid bytes `\xNN`, and a backslash `\\`, so a file or program
/// name can never forge a second output line, drive the terminal, or reorder what is shown, and
/// nothing is lost.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() || is_bidi_control(c) => {
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

/// [`escape_bytes`] for text: a string shown to a human (a host name, a user name, a program's
/// name, a mount point) that came from anyone but us.
pub fn escape_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars()
        .any(|c| c == '\\' || c.is_control() || is_bidi_control(c))
    {
        escape_bytes(s.as_bytes()).into()
    } else {
        s.into()
    }
}

/// The characters that reorder text on screen (Unicode's bidirectional controls): shown
/// escaped, so that `exe\u{202e}txt.sh` cannot pass for `exe.sh` backwards.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Bytes as a JSON string: exact when they are UTF-8 (JSON escapes control characters itself),
/// otherwise the `escape_bytes` form.
pub fn json_bytes(bytes: &[u8]) -> String {
    json_text(bytes).into_owned()
}

/// [`json_bytes`], borrowing when the bytes are UTF-8.
fn json_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.into(),
        Err(_) => escape_bytes(bytes).into(),
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

/// RFC 3339 UTC to the second, as existing consumers expect: `2024-01-15T10:30:45Z`.
pub fn rfc3339_seconds(ns: i64) -> String {
    humantime::format_rfc3339_seconds(system_time(ns)).to_string()
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The system-info object existing scripts read (plus disks, interfaces, uptime and load).
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

/// One event as a flat JSON object (one line of `watch --json`, one payload of a server batch).
pub fn event_json(e: &Event) -> Value {
    serde_json::to_value(EventJson(e)).expect("an event always serializes")
}

/// The event's `details` object alone.
pub fn details_json(d: &event::Details) -> Value {
    serde_json::to_value(DetailsJson(d)).expect("details always serialize")
}

/// An event in its JSON shape, serialized straight to the writer: no intermediate [`Value`],
/// which matters on the shipping path (one per event at tens of thousands a second).
/// `serde_json::to_vec(&EventJson(e))` gives the same bytes as `to_vec(&event_json(e))`.
pub struct EventJson<'a>(pub &'a Event);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("seq", &e.seq)?;
        m.serialize_entry("stream_id", &e.stream_id)?;
        m.serialize_entry(
            "timestamp",
            &Display(humantime::format_rfc3339_nanos(system_time(e.timestamp_ns))),
        )?;
        m.serialize_entry("type", e.r#type().name())?;
        m.serialize_entry("severity", e.severity().name())?;
        m.serialize_entry("source", &e.source)?;
        m.serialize_entry("message", &e.message)?;
        if let Some(d) = &e.details {
            m.serialize_entry("details", &DetailsJson(d))?;
        }
        if !e.rule_id.is_empty() {
            m.serialize_entry("rule_id", &e.rule_id)?;
            m.serialize_entry("rule_title", &e.rule_title)?;
            m.serialize_entry("mitre", &e.mitre)?;
        }
        m.end()
    }
}

struct DetailsJson<'a>(&'a event::Details);

impl Serialize for DetailsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            event::Details::System(x) => system_info_json(x).serialize(s),
            event::Details::Process(p) => process_details(p, s),
            event::Details::File(f) => file_details(f, s),
            event::Details::Auth(a) => auth_details(a, s),
            event::Details::Network(n) => network_details(n, s),
            event::Details::Agent(a) => agent_details(a, s),
        }
    }
}

/// Serializes with `collect_str`: the text is written out without an owned `String`.
struct Display<T>(T);

impl<T: std::fmt::Display> Serialize for Display<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Kernel bytes as a JSON string, as [`json_bytes`] renders them, without copying valid UTF-8.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&json_text(self.0))
    }
}

/// `argv` as one string: each argument as [`json_bytes`] renders it, joined by spaces.
struct Cmdline<'a>(&'a [Vec<u8>]);

impl std::fmt::Display for Cmdline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&json_text(a))?;
        }
        Ok(())
    }
}

struct Argv<'a>(&'a [Vec<u8>]);

impl Serialize for Argv<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|a| Bytes(a)))
    }
}

fn process_details<S: Serializer>(p: &ProcessEvent, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("action", p.action().name())?;
    m.serialize_entry("pid", &p.pid)?;
    m.serialize_entry("ppid", &p.ppid)?;
    m.serialize_entry("uid", &p.uid)?;
    m.serialize_entry("user", &p.user)?;
    m.serialize_entry("gid", &p.gid)?;
    m.serialize_entry("euid", &p.euid)?;
    m.serialize_entry("egid", &p.egid)?;
    m.serialize_entry("name", &p.name)?;
    m.serialize_entry("parent_name", &p.parent_name)?;
    m.serialize_entry("exe", &Bytes(&p.exe))?;
    m.serialize_entry("cmdline", &Display(Cmdline(&p.argv)))?;
    m.serialize_entry("argv", &Argv(&p.argv))?;
    m.serialize_entry("cwd", &Bytes(&p.cwd))?;
    m.serialize_entry("tty", &p.tty)?;
    m.serialize_entry("details_missing", &p.details_missing)?;
    if p.argv_truncated {
        m.serialize_entry("argv_truncated", &true)?;
    }
    match p.action() {
        ProcessAction::Exit => {
            m.serialize_entry("exit_code", &p.exit_code)?;
            m.serialize_entry("exit_signal", &p.exit_signal)?;
            m.serialize_entry("runtime_ms", &p.runtime_ms)?;
        }
        ProcessAction::UidChange | ProcessAction::GidChange => {
            m.serialize_entry("old_uid", &p.old_uid)?;
            m.serialize_entry("old_euid", &p.old_euid)?;
        }
        ProcessAction::PtraceAttach => {
            if let Some(t) = &p.target {
                m.serialize_entry("target", &AncestorJson(t))?;
            }
            m.serialize_entry("target_is_descendant", &p.target_is_descendant)?;
        }
        ProcessAction::Renamed => {
            m.serialize_entry("old_name", &p.old_name)?;
        }
        _ => {}
    }
    if !p.stdio_socket.is_empty() {
        m.serialize_entry("stdio_socket", &p.stdio_socket)?;
    }
    if !p.ld_preload.is_empty() {
        m.serialize_entry("ld_preload", &Bytes(&p.ld_preload))?;
    }
    m.serialize_entry("entity_id", &p.entity_id)?;
    m.serialize_entry("parent_entity_id", &p.parent_entity_id)?;
    m.serialize_entry("ancestors", &Ancestors(&p.ancestors))?;
    if let Some(uid) = p.login_uid {
        m.serialize_entry("login_uid", &uid)?;
        m.serialize_entry("login_user", &p.login_user)?;
    }
    if let Some(session) = p.session_id {
        m.serialize_entry("session_id", &session)?;
    }
    if !p.unit.is_empty() {
        m.serialize_entry("unit", &p.unit)?;
    }
    if let Some(c) = &p.container {
        m.serialize_entry("container", &json!({"runtime": c.runtime, "id": c.id}))?;
    }
    if p.gained_root {
        m.serialize_entry("gained_root", &true)?;
    }
    if let Some(n) = &p.namespaces {
        m.serialize_entry(
            "namespaces",
            &json!({"pid": n.pid, "mnt": n.mnt, "net": n.net, "user": n.user}),
        )?;
    }
    m.end()
}

/// `[{"pid", "name", "exe", "entity_id"}, …]`, nearest first.
struct Ancestors<'a>(&'a [ProcessRef]);

impl Serialize for Ancestors<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for a in self.0 {
            seq.serialize_element(&AncestorJson(a))?;
        }
        seq.end()
    }
}

struct AncestorJson<'a>(&'a ProcessRef);

impl Serialize for AncestorJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("pid", &a.pid)?;
        m.serialize_entry("name", &a.name)?;
        m.serialize_entry("exe", &Bytes(&a.exe))?;
        m.serialize_entry("entity_id", &a.entity_id)?;
        m.end()
    }
}

fn file_details<S: Serializer>(f: &FileEvent, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("action", f.action().name())?;
    m.serialize_entry("path", &Bytes(&f.path))?;
    m.serialize_entry("old_path", &Bytes(&f.old_path))?;
    m.serialize_entry("kind", &f.kind)?;
    m.serialize_entry("size", &f.size)?;
    m.serialize_entry("mode", &Display(format_args!("{:o}", f.mode)))?;
    m.serialize_entry("mode_before", &Display(format_args!("{:o}", f.mode_before)))?;
    m.serialize_entry("size_before", &f.size_before)?;
    m.serialize_entry("mtime_ns", &f.mtime_ns)?;
    m.serialize_entry("mtime_before_ns", &f.mtime_before_ns)?;
    m.serialize_entry("uid", &f.uid)?;
    m.serialize_entry("gid", &f.gid)?;
    m.serialize_entry("sha256_before", &f.sha256_before)?;
    m.serialize_entry("sha256_after", &f.sha256_after)?;
    m.serialize_entry("hash_skipped", &f.hash_skipped)?;
    m.serialize_entry("pid", &f.pid)?;
    m.serialize_entry("exe", &Bytes(&f.exe))?;
    m.serialize_entry("user", &f.user)?;
    m.serialize_entry("entity_id", &f.entity_id)?;
    m.serialize_entry("attribution_unavailable", &f.attribution_unavailable)?;
    if !f.attribution_note.is_empty() {
        m.serialize_entry("attribution_note", &f.attribution_note)?;
    }
    m.serialize_entry("while_agent_down", &f.while_agent_down)?;
    m.end()
}

fn auth_details<S: Serializer>(a: &AuthEvent, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("action", a.action().name())?;
    m.serialize_entry("user", &a.user)?;
    m.serialize_entry("target_user", &a.target_user)?;
    m.serialize_entry("source_address", &a.source_address)?;
    m.serialize_entry("source_port", &a.source_port)?;
    m.serialize_entry("method", &a.method)?;
    m.serialize_entry("success", &a.success)?;
    m.serialize_entry("tty", &a.tty)?;
    m.serialize_entry("cwd", &a.cwd)?;
    m.serialize_entry("command", &a.command)?;
    m.serialize_entry("service", &a.service)?;
    m.serialize_entry("log_source", &a.log_source)?;
    m.serialize_entry("pid", &a.pid)?;
    m.serialize_entry("entity_id", &a.entity_id)?;
    if a.burst {
        m.serialize_entry("burst", &true)?;
    }
    m.serialize_entry("verified", &a.verified)?;
    if !a.verification.is_empty() {
        m.serialize_entry("verification", &a.verification)?;
    }
    m.serialize_entry("raw", &a.raw)?;
    m.end()
}

fn network_details<S: Serializer>(n: &NetworkEvent, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("action", n.action().name())?;
    m.serialize_entry("protocol", &n.protocol)?;
    m.serialize_entry("local_address", &n.local_address)?;
    m.serialize_entry("local_port", &n.local_port)?;
    m.serialize_entry("remote_address", &n.remote_address)?;
    m.serialize_entry("remote_port", &n.remote_port)?;
    m.serialize_entry("state", n.state().name())?;
    m.serialize_entry("direction", n.direction().name())?;
    m.serialize_entry("pid", &n.pid)?;
    m.serialize_entry("exe", &Bytes(&n.exe))?;
    m.serialize_entry("process_name", &n.process_name)?;
    m.serialize_entry("uid", &n.uid)?;
    m.serialize_entry("user", &n.user)?;
    m.serialize_entry("inode", &n.inode)?;
    m.serialize_entry("entity_id", &n.entity_id)?;
    if n.between_scans {
        m.serialize_entry("between_scans", &true)?;
    }
    m.end()
}

fn agent_details<S: Serializer>(a: &AgentNotice, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("kind", &a.kind)?;
    m.serialize_entry("monitor", &a.monitor)?;
    m.serialize_entry("lost", &a.lost)?;
    m.end()
}

/// A gap line: events this reader missed, announced in the stream itself.
pub fn gap_json(g: &Gap) -> Value {
    json!({
        "type": "gap",
        "reason": g.reason().name(),
        "missed": g.missed,
        "first_missed_seq": g.first_missed_seq,
        "last_missed_seq": g.last_missed_seq,
        "previous_stream_id": g.previous_stream_id,
    })
}

/// shipperd's counters: the `metrics` of its health report, and its part of `status --json`.
pub fn shipper_metrics_json(s: &ShipperStatus) -> Value {
    json!({
        "uptime_seconds": s.uptime_seconds.round() as u64,
        "events_received": s.events_received,
        "events_sent": s.events_sent,
        "events_dropped": s.events_dropped,
        "events_dropped_by_severity": severity_counts_json(s.dropped.as_ref()),
        "events_dead_lettered": s.events_dead_lettered,
        "collector_gaps_missed": s.collector_gaps_missed,
        "queue_depth": s.queue_depth,
        "queue_bytes": s.queue_bytes,
        "oldest_queued_age_seconds": s.oldest_queued_age_seconds,
        "last_success": if s.last_success_ns > 0 { rfc3339_seconds(s.last_success_ns) } else { String::new() },
        "last_error": s.last_error,
        "collector_connected": s.collector_connected,
        "last_received_seq": s.last_received_seq,
        "state": s.state().name(),
        "batches_sent": s.batches_sent,
        "batches_resent": s.batches_resent,
        "rss_bytes": s.rss_bytes,
        "outputs": s.outputs.iter().map(output_status_json).collect::<Vec<_>>(),
    })
}

/// One output of shipperd (the management server, syslog, OTLP) and its own queue.
pub fn output_status_json(o: &OutputStatus) -> Value {
    json!({
        "name": o.name,
        "target": o.target,
        "state": o.state().name(),
        "last_error": o.last_error,
        "last_success": if o.last_success_ns > 0 { rfc3339_seconds(o.last_success_ns) } else { String::new() },
        "queue_depth": o.queue_depth,
        "queue_bytes": o.queue_bytes,
        "oldest_queued_age_seconds": o.oldest_queued_age_seconds,
        "events_received": o.events_received,
        "events_sent": o.events_sent,
        "events_dropped": o.events_dropped,
        "events_dead_lettered": o.events_dead_lettered,
        "batches_sent": o.batches_sent,
        "batches_resent": o.batches_resent,
        "queue_path": o.queue_path,
    })
}

/// `{"info": n, "warning": n, "critical": n}` (zeros when absent).
pub fn severity_counts_json(c: Option<&SeverityCounts>) -> Value {
    let c = c.copied().unwrap_or_default();
    json!({"info": c.info, "warning": c.warning, "critical": c.critical})
}

/// What collectord lost and held back, by severity, for shipperd's health report.
pub fn collector_losses_json(s: &CollectorStatus) -> Value {
    json!({
        "stream_id": s.stream_id,
        "buffered": s.buffered,
        "buffered_bytes": s.buffered_bytes,
        "evicted": severity_counts_json(s.evicted.as_ref()),
        "suppressed": severity_counts_json(s.suppressed.as_ref()),
        "flood_summaries": s.flood_summaries,
        "flood_pending": s.flood_pending,
        "subscriber_skipped": s.subscriber_skipped,
    })
}

/// collectord's part of `status --json`.
pub fn collector_status_json(s: &CollectorStatus) -> Value {
    let monitors: Vec<Value> = s
        .monitors
        .iter()
        .map(|m| {
            json!({"name": m.name, "enabled": m.enabled, "state": m.state().name(),
                   "detail": m.detail, "events": m.events, "lost": m.lost, "errors": m.errors})
        })
        .collect();
    json!({
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
        "buffer_bytes": s.buffer_bytes,
        "buffered_bytes": s.buffered_bytes,
        "evicted": severity_counts_json(s.evicted.as_ref()),
        "suppressed": severity_counts_json(s.suppressed.as_ref()),
        "flood_summaries": s.flood_summaries,
        "flood_pending": s.flood_pending,
        "subscribers": s.subscribers,
        "subscriber_skipped": s.subscriber_skipped,
        "rss_bytes": s.rss_bytes,
        "capabilities": s.capabilities,
        "monitors": monitors,
    })
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
        // C1 (U+009B, a one-byte CSI) and a right-to-left override.
        assert_eq!(escape_bytes("a\u{9b}8m".as_bytes()), "a\\xc2\\x9b8m");
        assert_eq!(
            escape_text("evil\u{202e}hs.txt"),
            "evil\\xe2\\x80\\xaehs.txt"
        );
        assert_eq!(escape_text("plain-name"), "plain-name");
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
    fn process_event_shape_is_flat_with_typed_details() {
        let e = Event {
            seq: 7,
            stream_id: "s1".into(),
            timestamp_ns: 1_705_314_645_000_000_001,
            r#type: EventType::Process as i32,
            severity: Severity::Warning as i32,
            source: "process".into(),
            message: "m".into(),
            details: Some(event::Details::Process(ProcessEvent {
                action: ProcessAction::Exit as i32,
                pid: 10,
                ppid: 1,
                user: "root".into(),
                name: "sh".into(),
                exe: b"/bin/sh".to_vec(),
                argv: vec![b"sh".to_vec(), b"-c".to_vec(), b"a\nb\xff".to_vec()],
                argv_truncated: true,
                exit_code: 3,
                runtime_ms: 12,
                entity_id: "e10".into(),
                parent_entity_id: "e1".into(),
                ancestors: vec![ProcessRef {
                    pid: 1,
                    name: "init".into(),
                    exe: b"/sbin/init".to_vec(),
                    entity_id: "e1".into(),
                }],
                login_uid: Some(1000),
                login_user: "alice".into(),
                session_id: Some(3),
                unit: "session-3.scope".into(),
                container: Some(crate::v1::Container {
                    runtime: "docker".into(),
                    id: "abc".into(),
                }),
                namespaces: Some(crate::v1::Namespaces {
                    pid: true,
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut details = json!({
            "action": "exit", "pid": 10, "ppid": 1, "uid": 0, "user": "root", "gid": 0,
            "euid": 0, "egid": 0, "name": "sh", "parent_name": "", "exe": "/bin/sh",
            "cmdline": "sh -c a\\nb\\xff", "argv": ["sh", "-c", "a\\nb\\xff"], "cwd": "",
            "tty": "", "details_missing": false, "argv_truncated": true,
            "exit_code": 3, "exit_signal": 0, "runtime_ms": 12,
        });
        let context = json!({
            "entity_id": "e10", "parent_entity_id": "e1",
            "ancestors": [{"pid": 1, "name": "init", "exe": "/sbin/init", "entity_id": "e1"}],
            "login_uid": 1000, "login_user": "alice", "session_id": 3,
            "unit": "session-3.scope", "container": {"runtime": "docker", "id": "abc"},
            "namespaces": {"pid": true, "mnt": false, "net": false, "user": false},
        });
        for (k, v) in context.as_object().unwrap() {
            details[k] = v.clone();
        }
        let expected = json!({
            "seq": 7, "stream_id": "s1", "timestamp": "2024-01-15T10:30:45.000000001Z",
            "type": "process", "severity": "WARNING", "source": "process", "message": "m",
            "details": details,
        });
        assert_eq!(event_json(&e), expected);
        // The streaming form writes the same text, keys in the same order.
        assert_eq!(
            serde_json::to_string(&EventJson(&e)).unwrap(),
            expected.to_string()
        );
    }

    #[test]
    fn file_event_mode_is_octal_and_names_are_exact() {
        let d = event::Details::File(FileEvent {
            action: FileAction::Renamed as i32,
            path: b"/w/new\nname".to_vec(),
            old_path: b"/w/old".to_vec(),
            mode: 0o100644,
            ..Default::default()
        });
        let v = details_json(&d);
        assert_eq!(v["action"], json!("renamed"));
        assert_eq!(v["path"], json!("/w/new\nname"));
        assert_eq!(v["old_path"], json!("/w/old"));
        assert_eq!(v["mode"], json!("100644"));
        assert_eq!(v.as_object().unwrap().len(), 21);
    }

    #[test]
    fn enum_spellings_are_the_json_ones() {
        assert_eq!(AuthAction::SudoNotInSudoers.name(), "sudo_not_in_sudoers");
        assert_eq!(NetworkAction::ListenOpened.name(), "listen_opened");
        assert_eq!(SocketState::CloseWait.name(), "CLOSE_WAIT");
        assert_eq!(Direction::Unspecified.name(), "");
        assert_eq!(ShipperState::PausedAuth.name(), "paused_auth");
        assert_eq!(MonitorState::Fallback.name(), "fallback");
        assert_eq!(GapReason::RingOverrun.name(), "ring_overrun");
        let g = gap_json(&Gap {
            reason: GapReason::SlowSubscriber as i32,
            missed: 3,
            first_missed_seq: 5,
            last_missed_seq: 7,
            previous_stream_id: String::new(),
        });
        assert_eq!(
            g.to_string(),
            r#"{"type":"gap","reason":"slow_subscriber","missed":3,"first_missed_seq":5,"last_missed_seq":7,"previous_stream_id":""}"#
        );
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
