//! Severity rules, in one place so that they can be read and tested as a table.
//!
//! INFO by default. CRITICAL for a program executed from a world-writable scratch directory
//! (`/tmp`, `/var/tmp`, `/dev/shm`: where droppers put payloads), and for an unprivileged
//! process becoming uid 0 other than through sudo, su or another setuid-root program.

use sec_tracker_proto::v1::Severity;

const SCRATCH_DIRS: &[&[u8]] = &[b"/tmp/", b"/var/tmp/", b"/dev/shm/"];

/// Programs whose job is to become root when the user is allowed to.
const PRIVILEGE_TOOLS: &[&str] = &[
    "sudo",
    "su",
    "sudoedit",
    "pkexec",
    "doas",
    "newgrp",
    "sg",
    "login",
    "sshd",
    "runuser",
    "polkit-agent-helper-1",
];

pub fn exec(exe: &[u8]) -> Severity {
    if SCRATCH_DIRS.iter().any(|d| exe.starts_with(d)) {
        Severity::Critical
    } else {
        Severity::Info
    }
}

/// A uid change. `exe_setuid_root`: the process's executable is setuid and owned by root, so
/// becoming root is its designed behaviour (passwd, mount, …).
pub fn uid_change(
    old_uid: Option<u32>,
    new_uid: u32,
    new_euid: u32,
    name: &str,
    exe_setuid_root: bool,
) -> Severity {
    let becomes_root = new_uid == 0 || new_euid == 0;
    let was_unprivileged = old_uid.is_some_and(|u| u != 0);
    if becomes_root && was_unprivileged && !exe_setuid_root && !PRIVILEGE_TOOLS.contains(&name) {
        Severity::Critical
    } else {
        Severity::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_rules() {
        let table: &[(&[u8], Severity)] = &[
            (b"/usr/bin/ls", Severity::Info),
            (b"/tmp/x", Severity::Critical),
            (b"/tmp/a/b/c", Severity::Critical),
            (b"/var/tmp/payload", Severity::Critical),
            (b"/dev/shm/.hidden", Severity::Critical),
            (b"/tmpfoo/bin", Severity::Info),
            (b"", Severity::Info),
        ];
        for (exe, want) in table {
            assert_eq!(exec(exe), *want, "{}", String::from_utf8_lossy(exe));
        }
    }

    #[test]
    fn uid_change_rules() {
        // (old uid, new uid, new euid, name, setuid-root exe) → severity
        type Row = (Option<u32>, u32, u32, &'static str, bool, Severity);
        let table: &[Row] = &[
            (Some(1000), 0, 0, "exploit", false, Severity::Critical),
            (Some(1000), 1000, 0, "exploit", false, Severity::Critical),
            (Some(1000), 0, 0, "sudo", false, Severity::Info),
            (Some(1000), 0, 0, "su", false, Severity::Info),
            (Some(1000), 0, 0, "passwd", true, Severity::Info),
            (Some(0), 1000, 1000, "sshd", false, Severity::Info),
            (Some(0), 0, 0, "cron", false, Severity::Info),
            (None, 0, 0, "unknown-before", false, Severity::Info),
            (Some(1000), 1001, 1001, "x", false, Severity::Info),
        ];
        for (old, uid, euid, name, suid, want) in table {
            assert_eq!(
                uid_change(*old, *uid, *euid, name, *suid),
                *want,
                "{old:?} {uid} {euid} {name} {suid}"
            );
        }
    }
}
