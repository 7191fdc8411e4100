//! Severity rules, in one place so that they can be read and tested as a table.
//!
//! INFO by default. WARNING for failed logins, sudo failures, new listening ports and changes
//! under `/etc`. CRITICAL for changes to `/etc/passwd`, `/etc/shadow`, `/etc/sudoers*`, a
//! program executed from a world-writable scratch directory (`/tmp`, `/var/tmp`, `/dev/shm`:
//! where droppers put payloads), a process without root in any of its uids becoming uid 0 other
//! than by a setuid-root executable, and a burst of failed logins from one address.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sec_tracker_proto::v1::{NetworkAction, Severity};

const SCRATCH_DIRS: &[&[u8]] = &[b"/tmp/", b"/var/tmp/", b"/dev/shm/"];

pub fn exec(exe: &[u8]) -> Severity {
    if SCRATCH_DIRS.iter().any(|d| exe.starts_with(d)) {
        Severity::Critical
    } else {
        Severity::Info
    }
}

/// A uid change. `had_root`: whether the process already held root in any of its real,
/// effective or saved uids before (None: unknown); `exe_setuid_root`: its executable is setuid
/// and owned by root, so becoming root is its designed behaviour (sudo, su, passwd, mount, …).
/// Decided by the executable's mode, never its name: a copy of a program called `sudo` is not
/// sudo.
pub fn uid_change(
    had_root: Option<bool>,
    new_uid: u32,
    new_euid: u32,
    exe_setuid_root: bool,
) -> Severity {
    let becomes_root = new_uid == 0 || new_euid == 0;
    if becomes_root && had_root == Some(false) && !exe_setuid_root {
        Severity::Critical
    } else {
        Severity::Info
    }
}

/// Account and privilege databases: a change to one of them is how persistence or escalation
/// is set up.
const CRITICAL_FILES: &[&[u8]] = &[
    b"/etc/passwd",
    b"/etc/shadow",
    b"/etc/gshadow",
    b"/etc/sudoers",
];
const CRITICAL_DIRS: &[&[u8]] = &[b"/etc/sudoers.d/"];

/// A file created, modified, deleted, renamed or re-permissioned at `path` (for a rename, call
/// it for both names and keep the higher).
pub fn file_change(path: &[u8]) -> Severity {
    if CRITICAL_FILES.contains(&path) || CRITICAL_DIRS.iter().any(|d| path.starts_with(d)) {
        Severity::Critical
    } else if path.starts_with(b"/etc/") {
        Severity::Warning
    } else {
        Severity::Info
    }
}

/// A network change.
pub fn network(action: NetworkAction) -> Severity {
    if action == NetworkAction::ListenOpened {
        Severity::Warning
    } else {
        Severity::Info
    }
}

/// An authentication event: failures are warnings; a burst from one address is raised by
/// [`FailedLoginBurst`].
pub fn auth(success: bool) -> Severity {
    if success {
        Severity::Info
    } else {
        Severity::Warning
    }
}

/// Failed logins from one source address within a window; the threshold-th one inside the
/// window (and every one after it while the burst lasts) is CRITICAL. Memory is bounded: an
/// address's entries older than the window are dropped, and at most `MAX_SOURCES` addresses are
/// tracked (the least recently failing one goes first).
pub struct FailedLoginBurst {
    window: Duration,
    threshold: usize,
    by_source: HashMap<String, VecDeque<Instant>>,
}

const MAX_SOURCES: usize = 10_000;

impl Default for FailedLoginBurst {
    fn default() -> Self {
        Self::new(Duration::from_secs(60), 5)
    }
}

impl FailedLoginBurst {
    pub fn new(window: Duration, threshold: usize) -> Self {
        FailedLoginBurst {
            window,
            threshold,
            by_source: HashMap::new(),
        }
    }

    /// Records a failed login from `source` at `now`; returns the severity it deserves.
    pub fn failed(&mut self, source: &str, now: Instant) -> Severity {
        if source.is_empty() {
            return Severity::Warning;
        }
        if self.by_source.len() >= MAX_SOURCES && !self.by_source.contains_key(source) {
            self.evict(now);
        }
        let times = self.by_source.entry(source.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            times.pop_front();
        }
        times.push_back(now);
        if times.len() > self.threshold {
            times.pop_front();
        }
        if times.len() >= self.threshold {
            Severity::Critical
        } else {
            Severity::Warning
        }
    }

    fn evict(&mut self, now: Instant) {
        let window = self.window;
        self.by_source.retain(|_, t| {
            t.back()
                .is_some_and(|last| now.duration_since(*last) <= window)
        });
        if self.by_source.len() >= MAX_SOURCES {
            let oldest = self
                .by_source
                .iter()
                .min_by_key(|(_, t)| t.back().copied())
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.by_source.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_rules() {
        let table: &[(&[u8], Severity)] = &[
            (b"/etc/passwd", Severity::Critical),
            (b"/etc/shadow", Severity::Critical),
            (b"/etc/sudoers", Severity::Critical),
            (b"/etc/sudoers.d/90-cloud", Severity::Critical),
            (b"/etc/passwd-", Severity::Warning),
            (b"/etc/hosts", Severity::Warning),
            (b"/etc/ssh/sshd_config", Severity::Warning),
            (b"/usr/bin/ls", Severity::Info),
            (b"/var/log/syslog", Severity::Info),
            (b"/etcetera/x", Severity::Info),
        ];
        for (path, want) in table {
            assert_eq!(
                file_change(path),
                *want,
                "{}",
                String::from_utf8_lossy(path)
            );
        }
    }

    #[test]
    fn network_and_auth_rules() {
        assert_eq!(network(NetworkAction::ListenOpened), Severity::Warning);
        assert_eq!(network(NetworkAction::ListenClosed), Severity::Info);
        assert_eq!(
            network(NetworkAction::ConnectionEstablished),
            Severity::Info
        );
        assert_eq!(auth(true), Severity::Info);
        assert_eq!(auth(false), Severity::Warning);
    }

    #[test]
    fn five_failures_from_one_address_within_a_minute_are_critical() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut b = FailedLoginBurst::default();
        // (source, seconds after start) → severity
        let table: &[(&str, u64, Severity)] = &[
            ("10.0.0.1", 0, Severity::Warning),
            ("10.0.0.1", 10, Severity::Warning),
            ("10.0.0.2", 11, Severity::Warning),
            ("10.0.0.1", 20, Severity::Warning),
            ("10.0.0.1", 30, Severity::Warning),
            ("10.0.0.1", 40, Severity::Critical), // 5th within 60 s
            ("10.0.0.1", 45, Severity::Critical),
            ("10.0.0.2", 50, Severity::Warning), // other address unaffected
            ("10.0.0.1", 200, Severity::Warning), // window passed
            ("", 201, Severity::Warning),
        ];
        for (src, at, want) in table {
            assert_eq!(b.failed(src, s(*at)), *want, "{src} at {at}s");
        }
    }

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
        // (had root before, new uid, new euid, setuid-root exe) → severity
        type Row = (Option<bool>, u32, u32, bool, Severity);
        let table: &[Row] = &[
            (Some(false), 0, 0, false, Severity::Critical),
            (Some(false), 1000, 0, false, Severity::Critical),
            (Some(false), 0, 0, true, Severity::Info), // sudo, su, passwd: setuid root
            (Some(true), 0, 0, false, Severity::Info), // a daemon taking back its saved root
            (Some(true), 1000, 1000, false, Severity::Info),
            (None, 0, 0, false, Severity::Info),
            (Some(false), 1001, 1001, false, Severity::Info),
        ];
        for (had, uid, euid, suid, want) in table {
            assert_eq!(
                uid_change(*had, *uid, *euid, *suid),
                *want,
                "{had:?} {uid} {euid} {suid}"
            );
        }
    }
}
