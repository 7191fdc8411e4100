//! The human-readable layout operators know: `== SYSTEM INFORMATION ==` and `>>> EVENT <<<` blocks.

use std::io::{self, Write};

use sec_tracker_proto::json::{
    details_json, escape_bytes, escape_text, join_argv, rfc3339_seconds, Named,
};
use sec_tracker_proto::v1::{event, Event, Gap, ProcessAction, ProcessEvent, Severity, SystemInfo};
use serde_json::Value;

use super::Style;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const HEADER: &str = "\x1b[1;36m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[1;31m";
const DIM: &str = "\x1b[2m";

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
    fn severity(&self, s: Severity) -> String {
        let code = match s {
            Severity::Info => GREEN,
            Severity::Warning => YELLOW,
            Severity::Critical => RED,
        };
        self.wrap(code, s.name())
    }
}

/// `2024-01-15 10:30:45 UTC`
pub(super) fn format_time(ns: i64) -> String {
    let t = rfc3339_seconds(ns);
    format!("{} UTC", t.trim_end_matches('Z').replacen('T', " ", 1))
}

/// Binary units with one decimal: `16.0 GB`.
pub(crate) fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// `45m`, `5.2h`, `2.5d`.
pub(crate) fn format_uptime(secs: f64) -> String {
    if secs < 3600.0 {
        format!("{}m", (secs / 60.0).floor() as u64)
    } else if secs < 86_400.0 {
        format!("{:.1}h", secs / 3600.0)
    } else {
        format!("{:.1}d", secs / 86_400.0)
    }
}

pub(super) fn system_block(out: &mut impl Write, s: &SystemInfo, style: Style) -> io::Result<()> {
    let p = Paint(style.color);
    let cpu = s.cpu_info.clone().unwrap_or_default();
    let mem = s.memory_info.unwrap_or_default();
    let load = s.load_average.unwrap_or_default();
    writeln!(out, "{}", p.wrap(HEADER, "== SYSTEM INFORMATION =="))?;
    if style.show_timestamp {
        writeln!(out, "Timestamp: {}", format_time(s.timestamp_ns))?;
    }
    writeln!(out, "Hostname: {}", t(&s.hostname))?;
    writeln!(
        out,
        "OS: {}{}",
        t(&s.os),
        if s.os_release.is_empty() {
            String::new()
        } else {
            format!(" ({})", t(&s.os_release))
        }
    )?;
    writeln!(out, "Kernel: {}", t(&s.kernel))?;
    writeln!(out, "Architecture: {}", t(&s.architecture))?;
    writeln!(out)?;
    writeln!(out, "{}", p.wrap(BOLD, "--- CPU ---"))?;
    writeln!(out, "Cores: {}", cpu.cores)?;
    writeln!(out, "Model: {}", t(&cpu.model_name))?;
    writeln!(out, "Usage: {:.1}%", cpu.usage_percent)?;
    writeln!(out)?;
    writeln!(out, "{}", p.wrap(BOLD, "--- MEMORY ---"))?;
    writeln!(out, "Total: {}", format_bytes(mem.total))?;
    writeln!(out, "Available: {}", format_bytes(mem.available))?;
    writeln!(out, "Used: {}", format_bytes(mem.used))?;
    writeln!(out, "Usage: {:.1}%", mem.usage_percent)?;
    if !s.disks.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", p.wrap(BOLD, "--- DISKS ---"))?;
        for d in &s.disks {
            writeln!(
                out,
                "{}: {} of {} used ({:.1}%), {} free, {} on {}{}",
                t(&d.mount_point),
                format_bytes(d.used),
                format_bytes(d.total),
                d.usage_percent,
                format_bytes(d.available),
                t(&d.fs_type),
                t(&d.device),
                if d.read_only { ", read-only" } else { "" }
            )?;
        }
    }
    if !s.network_interfaces.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", p.wrap(BOLD, "--- NETWORK ---"))?;
        for n in &s.network_interfaces {
            let addrs = if n.addresses.is_empty() {
                "-".to_owned()
            } else {
                t(&n.addresses.join(" ")).into_owned()
            };
            writeln!(
                out,
                "{} ({}): {}  rx {}  tx {}",
                t(&n.name),
                if n.up { "up" } else { "down" },
                addrs,
                format_bytes(n.rx_bytes),
                format_bytes(n.tx_bytes)
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", p.wrap(BOLD, "--- STATUS ---"))?;
    writeln!(out, "Uptime: {}", format_uptime(s.uptime_seconds))?;
    writeln!(
        out,
        "Load Average: {:.2} {:.2} {:.2}",
        load.one, load.five, load.fifteen
    )?;
    if s.process_count > 0 {
        writeln!(out, "Processes: {}", s.process_count)?;
    }
    writeln!(out, "{}", "-".repeat(50))?;
    writeln!(out)
}

pub(super) fn event_block(out: &mut impl Write, e: &Event, style: Style) -> io::Result<()> {
    if let Some(event::Details::System(s)) = &e.details {
        return system_block(out, s, style);
    }
    let p = Paint(style.color);
    writeln!(out, "{}", p.wrap(HEADER, ">>> EVENT <<<"))?;
    if style.show_timestamp {
        writeln!(out, "Time: {}", format_time(e.timestamp_ns))?;
    }
    writeln!(out, "Type: {}", e.r#type().name())?;
    writeln!(out, "Severity: {}", p.severity(e.severity()))?;
    writeln!(out, "Source: {}", t(&e.source))?;
    writeln!(out, "Message: {}", one_line(&e.message))?;
    let details = details_line(e);
    if !details.is_empty() {
        writeln!(out, "Details: {details}")?;
    }
    if !e.rule_id.is_empty() {
        let mitre = if e.mitre.is_empty() {
            String::new()
        } else {
            format!(" [{}]", t(&e.mitre.join(", ")))
        };
        writeln!(out, "Rule: {} — {}{mitre}", t(&e.rule_id), t(&e.rule_title))?;
    }
    if let Some(event::Details::Process(pe)) = &e.details {
        if !pe.ancestors.is_empty() {
            writeln!(out, "Lineage: {}", lineage(pe))?;
        }
        let context = process_context(pe);
        if !context.is_empty() {
            writeln!(out, "Context: {context}")?;
        }
    }
    writeln!(out, "{}", "-".repeat(40))
}

/// `true(4242) ← sh(4241) ← sshd(702) ← systemd(1)`: the process, then who started it.
pub(super) fn lineage(p: &ProcessEvent) -> String {
    let name = if p.name.is_empty() { "?" } else { &p.name };
    std::iter::once(format!("{}({})", t(name), p.pid))
        .chain(p.ancestors.iter().map(|a| {
            let n = if a.name.is_empty() { "?" } else { &a.name };
            format!("{}({})", t(n), a.pid)
        }))
        .collect::<Vec<_>>()
        .join(" ← ")
}

/// The login, unit, container and namespaces of a process, as far as they say something.
fn process_context(p: &ProcessEvent) -> String {
    let mut parts = Vec::new();
    if let Some(uid) = p.login_uid {
        let session = p
            .session_id
            .map(|s| format!(", session {s}"))
            .unwrap_or_default();
        parts.push(format!("login {} (uid {uid}{session})", t(&p.login_user)));
    }
    if !p.unit.is_empty() {
        parts.push(format!("unit {}", t(&p.unit)));
    }
    if let Some(c) = &p.container {
        let id: String = c.id.chars().take(12).collect();
        parts.push(format!("container {} {}", t(&c.runtime), t(&id)));
    }
    if let Some(n) = &p.namespaces {
        let own: Vec<&str> = [
            (n.pid, "pid"),
            (n.mnt, "mnt"),
            (n.net, "net"),
            (n.user, "user"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if !own.is_empty() {
            parts.push(format!("own namespaces {}", own.join("+")));
        }
    }
    parts.join(", ")
}

pub(super) fn compact_line(out: &mut impl Write, e: &Event, style: Style) -> io::Result<()> {
    let p = Paint(style.color);
    if style.show_timestamp {
        write!(out, "{} ", p.wrap(DIM, &format_time(e.timestamp_ns)))?;
    }
    let sev = format!("{:<8}", e.severity().name());
    let sev = if style.color {
        p.severity(e.severity()) + &" ".repeat(8 - e.severity().name().len())
    } else {
        sev
    };
    write!(
        out,
        "{sev} {:<7} {}",
        e.r#type().name(),
        one_line(&e.message)
    )?;
    match &e.details {
        Some(event::Details::Process(pe)) if pe.action() == ProcessAction::Exec => {
            writeln!(out, " [{}]", process_command(pe))
        }
        _ => writeln!(out),
    }
}

pub(super) fn gap_line(
    out: &mut impl Write,
    g: &Gap,
    reason: &str,
    style: Style,
) -> io::Result<()> {
    let p = Paint(style.color);
    let range = if g.first_missed_seq > 0 {
        format!(" (seq {}..={})", g.first_missed_seq, g.last_missed_seq)
    } else {
        String::new()
    };
    let text = match reason {
        "collector_restarted" => format!("!!! collectord restarted: events of the previous run after the last one shown are unknown; {} of the new run missed{range}", g.missed),
        "slow_subscriber" => format!("!!! {} events skipped: this output fell behind{range}", g.missed),
        _ => format!("!!! {} events missed: no longer held by collectord{range}", g.missed),
    };
    writeln!(out, "{}", p.wrap(YELLOW, &text))
}

/// Messages come from the collector; never let one forge extra output lines.
fn one_line(s: &str) -> String {
    escape_bytes(s.as_bytes())
}

/// Every string shown that someone else chose (a program, user, host or mount name): escaped,
/// so that it cannot drive the terminal (`\e[8m` would hide what follows), forge a line or
/// reorder the text.
fn t(s: &str) -> std::borrow::Cow<'_, str> {
    escape_text(s)
}

fn process_command(p: &ProcessEvent) -> String {
    if p.argv.is_empty() {
        escape_bytes(&p.exe)
    } else {
        let mut c = join_argv(&p.argv);
        if p.argv_truncated {
            c.push_str(" …");
        }
        c
    }
}

fn details_line(e: &Event) -> String {
    match &e.details {
        Some(event::Details::Process(p)) => process_details(p),
        Some(d) => generic_details(&details_json(d)),
        None => String::new(),
    }
}

fn process_details(p: &ProcessEvent) -> String {
    let mut parts = vec![
        format!("PID={}", p.pid),
        format!("PPID={}", p.ppid),
        format!("User={}", t(&p.user)),
    ];
    match p.action() {
        ProcessAction::Exec => {
            parts.push(format!("Command={}", process_command(p)));
            if !p.exe.is_empty() {
                parts.push(format!("Exe={}", escape_bytes(&p.exe)));
            }
            if !p.parent_name.is_empty() {
                parts.push(format!("Parent={}", t(&p.parent_name)));
            }
            if p.uid != p.euid {
                parts.push(format!("EUID={}", p.euid));
            }
            if !p.stdio_socket.is_empty() {
                parts.push(format!("StdioSocket={}", t(&p.stdio_socket)));
            }
            if !p.ld_preload.is_empty() {
                parts.push(format!("LD_PRELOAD={}", escape_bytes(&p.ld_preload)));
            }
        }
        ProcessAction::PtraceAttach => {
            parts.push(format!("Name={}", t(&p.name)));
            if let Some(target) = &p.target {
                parts.push(format!(
                    "Traced={}({}) {}",
                    t(&target.name),
                    target.pid,
                    escape_bytes(&target.exe)
                ));
            }
            if p.target_is_descendant {
                parts.push("Descendant=yes".into());
            }
        }
        ProcessAction::Renamed => {
            parts.push(format!("Name={}", t(&p.name)));
            parts.push(format!("OldName={}", t(&p.old_name)));
            if !p.exe.is_empty() {
                parts.push(format!("Exe={}", escape_bytes(&p.exe)));
            }
        }
        ProcessAction::Exit => {
            parts.push(format!("Name={}", t(&p.name)));
            if p.exit_signal != 0 {
                parts.push(format!("Signal={}", p.exit_signal));
            } else {
                parts.push(format!("ExitCode={}", p.exit_code));
            }
            if p.runtime_ms > 0 {
                parts.push(format!("Runtime={}ms", p.runtime_ms));
            }
        }
        ProcessAction::UidChange | ProcessAction::GidChange => {
            parts.push(format!("Name={}", t(&p.name)));
            parts.push(format!("Action={}", p.action().name()));
            parts.push(format!("UID={}->{}", p.old_uid, p.uid));
            parts.push(format!("EUID={}", p.euid));
            if !p.exe.is_empty() {
                parts.push(format!("Exe={}", escape_bytes(&p.exe)));
            }
        }
        ProcessAction::Unspecified => {}
    }
    if p.details_missing {
        parts.push("Details=missing (process gone before it could be read)".into());
    }
    parts.join(", ")
}

/// `Key=value` for every field that says something (not empty, zero or false).
fn generic_details(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return String::new();
    };
    obj.iter()
        // Raw clock values say nothing at a glance; the JSON has them.
        .filter(|(k, _)| !k.ends_with("_ns"))
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) if !s.is_empty() => escape_bytes(s.as_bytes()),
                Value::Number(n) if n.as_f64() != Some(0.0) => n.to_string(),
                Value::Bool(true) => "yes".into(),
                _ => return None,
            };
            Some(format!("{k}={text}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_uptime_as_operators_know_them() {
        assert_eq!(format_bytes(17_179_869_184), "16.0 GB");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_uptime(216_000.0), "2.5d");
        assert_eq!(format_uptime(7200.0), "2.0h");
        assert_eq!(format_uptime(125.0), "2m");
    }

    #[test]
    fn time_is_readable_utc() {
        assert_eq!(
            format_time(1_705_314_645_000_000_000),
            "2024-01-15 10:30:45 UTC"
        );
    }
}
