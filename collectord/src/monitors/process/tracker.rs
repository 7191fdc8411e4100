//! Turns raw process facts (from the connector or from polling) into events, remembering what it
//! knows of each live process so that exits and uid changes can name the process.
//!
//! The table holds live processes only (an exit removes the entry) and is capped, so it cannot
//! grow without bound on a host that forks faster than it reaps.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use sec_tracker_proto::v1::{event, Event, EventType, ProcessAction, ProcessEvent, Severity};

use super::proc_reader::{Details, ProcReader};
use super::NAME;
use crate::severity;
use crate::users::UserNames;

const MAX_TRACKED: usize = 262_144;

#[derive(Clone, Debug, Default)]
struct Known {
    name: String,
    exe: Vec<u8>,
    uid: u32,
    euid: u32,
    /// Saved set-user-id.
    suid: u32,
    ppid: u32,
    /// When the exec (or fork) was seen, in the event clock; 0 when seen at start.
    started_ns: i64,
}

pub(super) struct Tracker {
    known: HashMap<u32, Known>,
    reader: ProcReader,
    users: UserNames,
    /// Entries not kept because the table was full.
    pub untracked: u64,
}

impl Tracker {
    pub(super) fn new(max_cmdline: usize) -> Tracker {
        Tracker {
            known: HashMap::new(),
            reader: ProcReader::new(max_cmdline),
            users: UserNames::new(),
            untracked: 0,
        }
    }

    /// Learns the processes already running, so that their exits can be named.
    pub(super) fn seed_from_proc(&mut self) {
        for pid in list_pids() {
            let d = self.reader.read(pid);
            if let Some(s) = &d.status {
                self.remember(
                    pid,
                    Known {
                        name: s.name.clone(),
                        exe: d.exe.clone(),
                        uid: s.uid,
                        euid: s.euid,
                        suid: s.suid,
                        ppid: s.ppid,
                        started_ns: 0,
                    },
                );
            }
        }
    }

    pub(super) fn is_known(&self, pid: u32) -> bool {
        self.known.contains_key(&pid)
    }

    pub(super) fn known_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.known.keys().copied()
    }

    fn remember(&mut self, pid: u32, k: Known) {
        if self.known.len() >= MAX_TRACKED && !self.known.contains_key(&pid) {
            self.untracked += 1;
            return;
        }
        self.known.insert(pid, k);
    }

    /// A new process that has not exec'd: it carries its parent's identity until it does.
    pub(super) fn fork(&mut self, parent: u32, child: u32, ts_ns: i64) {
        let mut k = self.known.get(&parent).cloned().unwrap_or_default();
        k.ppid = parent;
        k.started_ns = ts_ns;
        self.remember(child, k);
    }

    /// Reads `/proc/<pid>` now and builds the exec event.
    pub(super) fn exec(&mut self, pid: u32, ts_ns: i64) -> Event {
        let d: Details = self.reader.read(pid);
        let before = self.known.get(&pid).cloned();
        let missing = d.missing();
        let (name, ppid, uid, euid, suid, gid, egid) = match &d.status {
            Some(s) => (s.name.clone(), s.ppid, s.uid, s.euid, s.suid, s.gid, s.egid),
            None => {
                let b = before.clone().unwrap_or_default();
                (String::new(), b.ppid, b.uid, b.euid, b.suid, 0, 0)
            }
        };
        let parent_name = self
            .known
            .get(&ppid)
            .map(|k| k.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                if ppid > 0 {
                    self.reader.comm(ppid)
                } else {
                    None
                }
            })
            .unwrap_or_default();
        let user = self.users.name(uid);
        let started_ns = before.as_ref().map_or(ts_ns, |b| {
            if b.started_ns > 0 {
                b.started_ns
            } else {
                ts_ns
            }
        });
        self.remember(
            pid,
            Known {
                name: name.clone(),
                exe: d.exe.clone(),
                uid,
                euid,
                suid,
                ppid,
                started_ns,
            },
        );
        let shown = if name.is_empty() {
            "?".to_owned()
        } else {
            name.clone()
        };
        let message = if missing {
            format!(
                "Process started: {shown} (PID: {pid}), exited before its details could be read"
            )
        } else {
            format!("Process started: {shown} (PID: {pid})")
        };
        let severity = severity::exec(&d.exe);
        event(
            ts_ns,
            severity,
            message,
            ProcessEvent {
                action: ProcessAction::Exec as i32,
                pid,
                ppid,
                uid,
                user,
                gid,
                euid,
                egid,
                exe: d.exe,
                argv: d.argv,
                name,
                parent_name,
                cwd: d.cwd,
                details_missing: missing,
                argv_truncated: d.argv_truncated,
                ..Default::default()
            },
        )
    }

    /// `wait_status` is the kernel's encoding (code << 8 | signal); None when unknown (polling).
    pub(super) fn exit(&mut self, pid: u32, wait_status: Option<u32>, ts_ns: i64) -> Event {
        let k = self.known.remove(&pid);
        let known = k.is_some();
        let k = k.unwrap_or_default();
        let (code, signal) = match wait_status {
            Some(w) => (((w >> 8) & 0xff) as i32, (w & 0x7f) as i32),
            None => (0, 0),
        };
        let shown = if k.name.is_empty() { "?" } else { &k.name };
        let how = match (wait_status, signal) {
            (None, _) => String::new(),
            (Some(_), 0) => format!(", exit code {code}"),
            (Some(_), s) => format!(", killed by signal {s}"),
        };
        let runtime_ms = if k.started_ns > 0 && ts_ns > k.started_ns {
            ((ts_ns - k.started_ns) / 1_000_000) as u64
        } else {
            0
        };
        let user = self.users.name(k.uid);
        event(
            ts_ns,
            Severity::Info,
            format!("Process exited: {shown} (PID: {pid}{how})"),
            ProcessEvent {
                action: ProcessAction::Exit as i32,
                pid,
                ppid: k.ppid,
                uid: k.uid,
                user,
                euid: k.euid,
                exe: k.exe,
                name: k.name,
                exit_code: code,
                exit_signal: signal,
                runtime_ms,
                details_missing: !known,
                ..Default::default()
            },
        )
    }

    /// A thread `tid` of process `pid` changed its real/effective uid. Every thread's change
    /// counts (a raw `setresuid` in one thread changes only that thread), but a process is
    /// reported once per change: glibc makes every thread change in turn, and those that bring
    /// nothing new are skipped (None).
    pub(super) fn uid_change(
        &mut self,
        pid: u32,
        tid: u32,
        ruid: u32,
        euid: u32,
        ts_ns: i64,
    ) -> Option<Event> {
        let before = self.known.get(&pid).cloned();
        if before
            .as_ref()
            .is_some_and(|k| k.uid == ruid && k.euid == euid)
        {
            return None;
        }
        let name = before
            .as_ref()
            .map(|k| k.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| self.reader.comm(pid))
            .unwrap_or_default();
        // The executable itself (the link followed): setuid and owned by root.
        let exe_setuid_root = std::fs::metadata(format!("/proc/{pid}/exe"))
            .map(|m| m.mode() & 0o4000 != 0 && m.uid() == 0)
            .unwrap_or(false);
        let had_root = before
            .as_ref()
            .map(|k| k.uid == 0 || k.euid == 0 || k.suid == 0);
        let severity = severity::uid_change(had_root, ruid, euid, exe_setuid_root);
        let old_uid = before.as_ref().map(|k| k.uid);
        let old_text = old_uid.map_or("?".to_owned(), |u| u.to_string());
        let user = self.users.name(ruid);
        let k = before.clone().unwrap_or_default();
        self.remember(
            pid,
            Known {
                uid: ruid,
                euid,
                // A change into root may have set the saved uid too; one out of it only if both
                // went (the saved uid is not in the event).
                suid: if ruid == 0 || euid == 0 { 0 } else { k.suid },
                name: name.clone(),
                ..k.clone()
            },
        );
        let thread = if tid != pid {
            format!(", thread {tid}")
        } else {
            String::new()
        };
        let why = if severity == Severity::Critical {
            ": uid 0 gained without a setuid-root program"
        } else {
            ""
        };
        Some(event(
            ts_ns,
            severity,
            format!("Process {name} (PID: {pid}{thread}) changed uid {old_text} -> {ruid} (euid {euid}, user {user}){why}"),
            ProcessEvent {
                action: ProcessAction::UidChange as i32,
                pid,
                ppid: k.ppid,
                uid: ruid,
                euid,
                user,
                exe: k.exe,
                name,
                old_uid: old_uid.unwrap_or(0),
                old_euid: before.map_or(0, |b| b.euid),
                details_missing: old_uid.is_none(),
                ..Default::default()
            },
        ))
    }

    pub(super) fn gid_change(&mut self, pid: u32, rgid: u32, egid: u32, ts_ns: i64) -> Event {
        let k = self.known.get(&pid).cloned().unwrap_or_default();
        let user = self.users.name(k.uid);
        event(
            ts_ns,
            Severity::Info,
            format!(
                "Process {} (PID: {pid}) changed gid to {rgid} (egid {egid})",
                k.name
            ),
            ProcessEvent {
                action: ProcessAction::GidChange as i32,
                pid,
                ppid: k.ppid,
                uid: k.uid,
                euid: k.euid,
                user,
                gid: rgid,
                egid,
                exe: k.exe,
                name: k.name,
                ..Default::default()
            },
        )
    }
}

fn event(ts_ns: i64, severity: Severity, message: String, p: ProcessEvent) -> Event {
    Event {
        timestamp_ns: ts_ns,
        r#type: EventType::Process as i32,
        severity: severity as i32,
        source: NAME.into(),
        message,
        details: Some(event::Details::Process(p)),
        ..Default::default()
    }
}

/// Every numeric entry of /proc.
pub(super) fn list_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}
