//! Turns raw process facts (from the connector or from polling) into events, remembering what it
//! knows of each live process so that exits and uid changes can name the process.
//!
//! The table holds live processes only (an exit removes the entry) and is capped, so it cannot
//! grow without bound on a host that forks faster than it reaps. Each process's [`Node`] goes to
//! the shared table ([`Processes`]), pointing at its parent's: the lineage on an event comes from
//! there, and stays right when a parent exits before its child runs anything.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use sec_tracker_proto::v1::{
    event, Container, Event, EventType, Namespaces, ProcessAction, ProcessEvent, ProcessRef,
    Severity,
};

use super::context::{entity_id, ContextReader, ProcessContext};
use super::proc_reader::{Details, ProcDir, ProcReader};
use super::stdio::StdioSockets;
use super::NAME;
use crate::processes::{Node, Processes};
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
    /// Start time in clock ticks since boot (`/proc/<pid>/stat`), part of the entity id.
    starttime: Option<u64>,
    node: Option<Arc<Node>>,
    /// Read at exec (a fork inherits its parent's).
    context: Option<Arc<ProcessContext>>,
}

pub(super) struct Tracker {
    known: HashMap<u32, Known>,
    reader: ProcReader,
    context: ContextReader,
    processes: Arc<Processes>,
    users: UserNames,
    stdio: StdioSockets,
    /// The last attach reported (tracer, traced): a debugger attaches to each thread in turn,
    /// and the process is reported once.
    last_attach: Option<(u32, u32)>,
    /// Entries not kept because the table was full.
    pub untracked: u64,
}

impl Tracker {
    pub(super) fn new(max_cmdline: usize, processes: Arc<Processes>) -> Tracker {
        Tracker {
            known: HashMap::new(),
            reader: ProcReader::new(max_cmdline),
            context: ContextReader::new(),
            processes,
            users: UserNames::new(),
            stdio: StdioSockets::new(),
            last_attach: None,
            untracked: 0,
        }
    }

    /// Learns the processes already running, so that their exits can be named and their
    /// children's lineage told. Oldest first: a parent starts before its children.
    pub(super) fn seed_from_proc(&mut self) {
        let mut found = Vec::new();
        for pid in list_pids() {
            let d = self.reader.read(pid);
            if let Some(s) = d.status {
                let context = Arc::new(self.context.read_context(pid));
                found.push((context.starttime, pid, s, d.exe, context));
            }
        }
        found.sort_by_key(|(start, pid, ..)| (start.unwrap_or(u64::MAX), *pid));
        for (starttime, pid, s, exe, context) in found {
            let parent = self.processes.node(s.ppid);
            let node = self.new_node(pid, &s.name, &exe, s.uid, starttime, parent);
            self.remember(
                pid,
                Known {
                    name: s.name,
                    exe,
                    uid: s.uid,
                    euid: s.euid,
                    suid: s.suid,
                    ppid: s.ppid,
                    started_ns: 0,
                    starttime,
                    node: Some(node),
                    context: Some(context),
                },
            );
        }
    }

    /// The node of a process now running as `pid`, entered in the shared table.
    fn new_node(
        &mut self,
        pid: u32,
        name: &str,
        exe: &[u8],
        uid: u32,
        starttime: Option<u64>,
        parent: Option<Arc<Node>>,
    ) -> Arc<Node> {
        let id = starttime
            .map(|s| entity_id(self.context.boot_id(), pid, s))
            .unwrap_or_default();
        let user = self.users.name(uid);
        let node = Node::new(pid, name.to_owned(), exe.to_vec(), user, id, parent);
        self.processes.set_live(Arc::clone(&node));
        node
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

    /// A new process that has not exec'd: it carries its parent's identity until it does, and
    /// has its own entity id from now on.
    pub(super) fn fork(&mut self, parent: u32, child: u32, ts_ns: i64) {
        let mut k = self.known.get(&parent).cloned().unwrap_or_default();
        let parent_node = self.processes.node(parent).or_else(|| k.node.clone());
        k.starttime = self.context.starttime(child);
        k.node = Some(self.new_node(child, &k.name, &k.exe, k.uid, k.starttime, parent_node));
        k.ppid = parent;
        k.started_ns = ts_ns;
        self.remember(child, k);
    }

    /// Reads `/proc/<pid>` now and builds the exec event.
    pub(super) fn exec(&mut self, pid: u32, ts_ns: i64) -> Event {
        // Everything below is read through this one directory descriptor.
        let dir = ProcDir::open(pid);
        let d: Details = dir
            .as_ref()
            .map(|dir| self.reader.read_in(dir))
            .unwrap_or_default();
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
        // Who started it: the parent its fork was seen from (or the program it replaced was
        // started by), else the one /proc names now.
        let parent_node = before
            .as_ref()
            .and_then(|b| b.node.as_ref())
            .and_then(|n| n.parent.clone())
            .or_else(|| self.processes.node(ppid));
        let context = Arc::new(
            dir.as_ref()
                .map(|dir| self.context.read_context_in(dir))
                .unwrap_or_default(),
        );
        let starttime = before
            .as_ref()
            .and_then(|b| b.starttime)
            .or(context.starttime);
        let node = self.new_node(pid, &name, &d.exe, uid, starttime, parent_node);
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
                starttime,
                node: Some(Arc::clone(&node)),
                context: Some(Arc::clone(&context)),
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
        // The rules judge it (crate::rules): a program run from /tmp, from memory, …
        let severity = Severity::Info;
        let mut p = ProcessEvent {
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
        };
        if let Some(dir) = dir.as_ref().filter(|_| !missing) {
            p.stdio_socket = self.stdio.describe(dir);
            // Only where it matters: a library forced into a program running as root.
            if euid == 0 {
                p.ld_preload = self
                    .reader
                    .env_var_in(dir, b"LD_PRELOAD")
                    .unwrap_or_default();
            }
        }
        self.with_context(&mut p, Some(&node), Some(&context));
        event(ts_ns, severity, message, p)
    }

    /// `tracer` attached to `traced` with ptrace (once per pair in a row: a debugger attaches to
    /// each thread). None for a repeat.
    pub(super) fn ptrace_attach(&mut self, tracer: u32, traced: u32, ts_ns: i64) -> Option<Event> {
        if self.last_attach == Some((tracer, traced)) {
            return None;
        }
        self.last_attach = Some((tracer, traced));
        let k = self.known_or_read(tracer);
        let t = self.known_or_read(traced);
        let target_node = t.node.clone().or_else(|| self.processes.node(traced));
        let tracer_node = k.node.clone().or_else(|| self.processes.node(tracer));
        // Its own program (a debugger's, strace's child): the tracer is among its ancestors.
        let target_is_descendant = match (&target_node, &tracer_node) {
            (Some(tn), Some(me)) => tn.ancestors().any(|a| {
                a.pid == me.pid && (me.entity_id.is_empty() || a.entity_id == me.entity_id)
            }),
            _ => false,
        };
        let target = ProcessRef {
            pid: traced,
            name: t.name.clone(),
            exe: t.exe.clone(),
            entity_id: target_node.map(|n| n.entity_id.clone()).unwrap_or_default(),
        };
        let user = self.users.name(k.uid);
        let message = format!(
            "Process {} (PID: {tracer}) attached to {} (PID: {traced}) with ptrace",
            k.name, t.name
        );
        let mut p = ProcessEvent {
            action: ProcessAction::PtraceAttach as i32,
            pid: tracer,
            ppid: k.ppid,
            uid: k.uid,
            euid: k.euid,
            user,
            exe: k.exe.clone(),
            name: k.name.clone(),
            target: Some(target),
            target_is_descendant,
            ..Default::default()
        };
        self.with_context(&mut p, tracer_node.as_ref(), k.context.as_deref());
        Some(event(ts_ns, Severity::Info, message, p))
    }

    /// Process `pid` gave itself a new name. None when the name is the one it had.
    pub(super) fn renamed(&mut self, pid: u32, comm: &[u8; 16], ts_ns: i64) -> Option<Event> {
        let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        let name = String::from_utf8_lossy(&comm[..len]).into_owned();
        let mut k = self.known_or_read(pid);
        if k.name == name {
            return None;
        }
        let old_name = std::mem::replace(&mut k.name, name.clone());
        if self.known.contains_key(&pid) {
            self.remember(pid, k.clone());
        }
        let user = self.users.name(k.uid);
        let message = format!("Process {old_name} (PID: {pid}) renamed itself {name}");
        let mut p = ProcessEvent {
            action: ProcessAction::Renamed as i32,
            pid,
            ppid: k.ppid,
            uid: k.uid,
            euid: k.euid,
            user,
            exe: k.exe.clone(),
            name,
            old_name,
            ..Default::default()
        };
        let node = k.node.clone().or_else(|| self.processes.node(pid));
        self.with_context(&mut p, node.as_ref(), k.context.as_deref());
        Some(event(ts_ns, Severity::Info, message, p))
    }

    /// What the table knows of `pid`, else what /proc says now.
    fn known_or_read(&mut self, pid: u32) -> Known {
        if let Some(k) = self.known.get(&pid) {
            return k.clone();
        }
        let mut k = Known::default();
        if let Some(s) = self.reader.status(pid) {
            (k.name, k.uid, k.euid, k.ppid) = (s.name, s.uid, s.euid, s.ppid);
        }
        k.exe = self.reader.exe(pid);
        k
    }

    /// Fills in who the process is (entity ids, lineage) and where it runs.
    fn with_context(
        &mut self,
        p: &mut ProcessEvent,
        node: Option<&Arc<Node>>,
        context: Option<&ProcessContext>,
    ) {
        if let Some(node) = node {
            p.entity_id.clone_from(&node.entity_id);
            if let Some(parent) = &node.parent {
                p.parent_entity_id.clone_from(&parent.entity_id);
            }
            // The chain is told when a program starts (and when it changes uid); an exit or a
            // gid change names the process by its ids, which join it to that exec.
            let with_chain = matches!(p.action(), ProcessAction::Exec | ProcessAction::UidChange);
            p.ancestors = node
                .ancestors()
                .filter(|_| with_chain)
                .map(|a| ProcessRef {
                    pid: a.pid,
                    name: a.name.clone(),
                    exe: a.exe.clone(),
                    entity_id: a.entity_id.clone(),
                })
                .collect();
        }
        if let Some(c) = context {
            if p.tty.is_empty() {
                p.tty = c.tty.clone().unwrap_or_default();
            }
            p.login_uid = c.login_uid;
            p.login_user = c.login_uid.map(|u| self.users.name(u)).unwrap_or_default();
            p.session_id = c.session_id;
            p.unit.clone_from(&c.cgroup.unit);
            p.container = c.cgroup.container.as_ref().map(|k| Container {
                runtime: k.runtime.to_owned(),
                id: k.id.clone(),
            });
            let ns = c.namespaces;
            if ns.pid || ns.mnt || ns.net || ns.user {
                p.namespaces = Some(Namespaces {
                    pid: ns.pid,
                    mnt: ns.mnt,
                    net: ns.net,
                    user: ns.user,
                });
            }
        }
    }

    /// `wait_status` is the kernel's encoding (code << 8 | signal); None when unknown (polling).
    pub(super) fn exit(&mut self, pid: u32, wait_status: Option<u32>, ts_ns: i64) -> Event {
        let node = self.processes.end(pid);
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
        let message = format!("Process exited: {shown} (PID: {pid}{how})");
        let mut p = ProcessEvent {
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
        };
        self.with_context(&mut p, node.or(k.node).as_ref(), k.context.as_deref());
        event(ts_ns, Severity::Info, message, p)
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
        let gained_root = severity::gained_root(had_root, ruid, euid, exe_setuid_root);
        let old_uid = before.as_ref().map(|k| k.uid);
        let old_text = old_uid.map_or("?".to_owned(), |u| u.to_string());
        let user = self.users.name(ruid);
        let mut k = before.clone().unwrap_or_default();
        // The shared table says who the process is now (the same entity, another user).
        if let Some(n) = &k.node {
            let now = Node::new(
                n.pid,
                n.name.clone(),
                n.exe.clone(),
                user.clone(),
                n.entity_id.clone(),
                n.parent.clone(),
            );
            self.processes.set_live(Arc::clone(&now));
            k.node = Some(now);
        }
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
        let why = if gained_root {
            ": uid 0 gained without a setuid-root program"
        } else {
            ""
        };
        let message = format!("Process {name} (PID: {pid}{thread}) changed uid {old_text} -> {ruid} (euid {euid}, user {user}){why}");
        let mut p = ProcessEvent {
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
            gained_root,
            ..Default::default()
        };
        self.with_context(&mut p, k.node.as_ref(), k.context.as_deref());
        Some(event(ts_ns, Severity::Info, message, p))
    }

    pub(super) fn gid_change(&mut self, pid: u32, rgid: u32, egid: u32, ts_ns: i64) -> Event {
        let k = self.known.get(&pid).cloned().unwrap_or_default();
        let user = self.users.name(k.uid);
        let message = format!(
            "Process {} (PID: {pid}) changed gid to {rgid} (egid {egid})",
            k.name
        );
        let mut p = ProcessEvent {
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
        };
        self.with_context(&mut p, k.node.as_ref(), k.context.as_deref());
        event(ts_ns, Severity::Info, message, p)
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
