//! The processes as the process monitor sees them, for every monitor to use:
//!
//! - the live ones, each a [`Node`] pointing at its parent's, so that the chain of who started
//!   whom survives a parent's exit (a child keeps its parent's node alive), and a file, network or
//!   auth event can name a process by its stable `entity_id`;
//! - which program ran as which pid lately, to check a claim against. An auth log line says it
//!   was written by `sshd[4242]`; whoever can write to syslog can say that. The process monitor
//!   sees every process start and end, so it can say whether pid 4242 was sshd, some other
//!   program, or never ran at all.

use std::collections::{HashMap, VecDeque};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::monitors::process::context::ContextReader;

/// Ancestors shown on an event at most, and kept per chain (deeper chains are cut there).
pub const MAX_ANCESTORS: usize = 16;
const MAX_CHAIN: u16 = 64;
/// Live processes kept at most (far above any host's pid_max in practice: 4,194,304 is the
/// kernel's ceiling, but hosts run a few thousand).
const MAX_LIVE: usize = 262_144;

/// A process as its children remember it.
#[derive(Debug)]
pub struct Node {
    pub pid: u32,
    pub name: String,
    pub exe: Vec<u8>,
    /// The user it ran as when last seen (for a change it made after it was gone).
    pub user: String,
    /// Empty when it could not be read (the process was gone).
    pub entity_id: String,
    pub parent: Option<Arc<Node>>,
    depth: u16,
}

impl Node {
    pub fn new(
        pid: u32,
        name: String,
        exe: Vec<u8>,
        user: String,
        entity_id: String,
        parent: Option<Arc<Node>>,
    ) -> Arc<Node> {
        let depth = parent.as_ref().map_or(0, |p| p.depth + 1);
        // A chain deeper than any real process tree is cut rather than kept.
        let (parent, depth) = if depth > MAX_CHAIN {
            (None, 0)
        } else {
            (parent, depth)
        };
        Arc::new(Node {
            pid,
            name,
            exe,
            user,
            entity_id,
            parent,
            depth,
        })
    }

    /// Its ancestors, nearest first, at most [`MAX_ANCESTORS`], ending at pid 1.
    pub fn ancestors(&self) -> impl Iterator<Item = &Node> {
        let mut next = self.parent.as_deref();
        let mut n = 0;
        std::iter::from_fn(move || {
            let node = next?;
            n += 1;
            next = if node.pid <= 1 || n >= MAX_ANCESTORS {
                None
            } else {
                node.parent.as_deref()
            };
            Some(node)
        })
    }
}

/// Starts and ends remembered: about 8 s of a 1,000 exec/s storm, far longer at normal rates.
const MAX_SEEN: usize = 16_384;
/// How long they are remembered at most.
const KEEP: Duration = Duration::from_secs(600);

/// What is known of a pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// Running now: its executable's file name.
    Running(String),
    /// Ended lately; its executable's file name.
    Exited(String),
    /// Watched since the given moment, and no process with this pid ran since.
    NeverSeen,
    /// Nothing can be said: the process monitor is not watching (off, or polling /proc).
    Unknown,
}

/// A process start or end the process monitor saw.
struct Seen {
    pid: u32,
    exe: Vec<u8>,
    user: String,
    entity_id: String,
    at: Instant,
}

impl Seen {
    fn program(&self) -> String {
        file_name(&self.exe)
    }
}

#[derive(Default)]
pub struct Processes {
    /// Starts and ends, oldest first.
    seen: Mutex<VecDeque<Seen>>,
    /// Since when every process start and end is seen (the kernel process connector).
    watching_since: Mutex<Option<Instant>>,
    /// The live processes by pid.
    live: Mutex<HashMap<u32, Arc<Node>>>,
    /// For processes not in the table (none is watching, or it predates the table).
    reader: Mutex<Option<ContextReader>>,
}

impl Processes {
    /// `node` is the process now running as its pid.
    pub fn set_live(&self, node: Arc<Node>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        // Exits the kernel dropped would leave entries behind: the table stays bounded.
        if live.len() < MAX_LIVE || live.contains_key(&node.pid) {
            live.insert(node.pid, node);
        }
    }

    /// The process `pid` ended: its node, for the exit event (its children keep it).
    pub fn end(&self, pid: u32) -> Option<Arc<Node>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid)
    }

    /// The live process `pid`, as the process monitor knows it.
    pub fn node(&self, pid: u32) -> Option<Arc<Node>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
            .cloned()
    }

    pub fn live_count(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The entity id of `pid`: from the table, else read from `/proc` while it lives, else the
    /// latest process seen with that pid. Empty when none of these knows it.
    pub fn entity_id(&self, pid: u32) -> String {
        if let Some(n) = self.node(pid).filter(|n| !n.entity_id.is_empty()) {
            return n.entity_id.clone();
        }
        let read = self
            .reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(ContextReader::new)
            .entity_id_of(pid);
        if let Some(id) = read {
            return id;
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .rev()
            .find(|s| s.pid == pid)
            .map(|s| s.entity_id.clone())
            .unwrap_or_default()
    }

    /// The entity id of the one process running `program` (an executable's file name) that
    /// started or ended within `within`; None when there was none, or more than one.
    pub fn sole_recent(&self, within: Duration, program: &str) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids = seen
            .iter()
            .rev()
            .take_while(|s| s.at.elapsed() <= within)
            .filter(|s| s.program() == program && !s.entity_id.is_empty())
            .map(|s| s.entity_id.as_str());
        let first = ids.next()?;
        ids.all(|id| id == first).then(|| first.to_owned())
    }

    /// The executable of `pid`, live or lately ended, as the process monitor saw it: for a
    /// change made by a process gone before its own `/proc` entry could be read.
    /// With the user it ran as.
    pub fn exe_and_user(&self, pid: u32) -> (Vec<u8>, String) {
        if let Some(n) = self.node(pid) {
            return (n.exe.clone(), n.user.clone());
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .rev()
            .find(|s| s.pid == pid)
            .map(|s| (s.exe.clone(), s.user.clone()))
            .unwrap_or_default()
    }

    /// The process monitor sees every process from now on.
    pub fn watching(&self) {
        *self
            .watching_since
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Since when every process has been seen; None when they are not.
    pub fn watching_since(&self) -> Option<Instant> {
        *self
            .watching_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Process `pid` (`entity_id`) started running `exe` as `user`.
    pub fn started(&self, pid: u32, exe: &[u8], user: &str, entity_id: &str) {
        self.note(pid, exe, user, entity_id);
    }

    /// Process `pid` (`entity_id`), running `exe` as `user`, ended.
    pub fn exited(&self, pid: u32, exe: &[u8], user: &str, entity_id: &str) {
        self.note(pid, exe, user, entity_id);
    }

    fn note(&self, pid: u32, exe: &[u8], user: &str, entity_id: &str) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while seen.len() >= MAX_SEEN
            || seen
                .front()
                .is_some_and(|s| now.duration_since(s.at) > KEEP)
        {
            seen.pop_front();
        }
        seen.push_back(Seen {
            pid,
            exe: exe.to_vec(),
            user: user.to_owned(),
            entity_id: entity_id.to_owned(),
            at: now,
        });
    }

    /// Whether a process running a program that `is` accepts started or ended within `within`.
    pub fn ran_lately(&self, within: Duration, is: impl Fn(&str) -> bool) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .rev()
            .take_while(|s| s.at.elapsed() <= within)
            .any(|s| is(&s.program()))
    }

    /// What ran as `pid`: the live process first, then the latest exit.
    pub fn program(&self, pid: u32) -> Program {
        if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
            let name = file_name(exe.as_os_str().as_bytes());
            return Program::Running(name.trim_end_matches(" (deleted)").to_owned());
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = seen.iter().rev().find(|s| s.pid == pid) {
            return Program::Exited(s.program());
        }
        if self.watching_since().is_some() {
            Program::NeverSeen
        } else {
            Program::Unknown
        }
    }
}

fn file_name(exe: &[u8]) -> String {
    let name = exe.rsplit(|b| *b == b'/').next().unwrap_or(exe);
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_then_exited_then_never_seen() {
        let p = Processes::default();
        assert_eq!(p.program(u32::MAX - 7), Program::Unknown);
        p.watching();
        assert_eq!(p.program(u32::MAX - 7), Program::NeverSeen);
        p.exited(u32::MAX - 7, b"/usr/sbin/sshd", "root", "e1");
        assert_eq!(p.entity_id(u32::MAX - 7), "e1");
        assert_eq!(p.program(u32::MAX - 7), Program::Exited("sshd".into()));
        assert!(p.ran_lately(Duration::from_secs(5), |n| n == "sshd"));
        assert!(!p.ran_lately(Duration::from_secs(5), |n| n == "sudo"));
        let me = std::process::id();
        let Program::Running(name) = p.program(me) else {
            panic!("we are running")
        };
        assert!(!name.is_empty());
    }

    #[test]
    fn a_chain_outlives_the_parents_that_exited() {
        let p = Processes::default();
        let init = Node::new(
            1,
            "systemd".into(),
            b"/sbin/init".to_vec(),
            "root".into(),
            "e-1".into(),
            None,
        );
        let sh = Node::new(
            100,
            "sh".into(),
            b"/bin/sh".to_vec(),
            "root".into(),
            "e-100".into(),
            Some(init),
        );
        let child = Node::new(
            101,
            "true".into(),
            b"/bin/true".to_vec(),
            "root".into(),
            "e-101".into(),
            Some(Arc::clone(&sh)),
        );
        p.set_live(sh);
        p.set_live(Arc::clone(&child));
        assert!(p.end(100).is_some());
        let names: Vec<(u32, &str)> = child
            .ancestors()
            .map(|a| (a.pid, a.name.as_str()))
            .collect();
        assert_eq!(names, [(100, "sh"), (1, "systemd")]);
        assert_eq!(
            p.node(101).unwrap().parent.as_ref().unwrap().entity_id,
            "e-100"
        );
    }

    #[test]
    fn chains_are_bounded() {
        let mut node = Node::new(
            1,
            "init".into(),
            Vec::new(),
            String::new(),
            String::new(),
            None,
        );
        for pid in 2..1000 {
            node = Node::new(
                pid,
                "sh".into(),
                Vec::new(),
                String::new(),
                String::new(),
                Some(node),
            );
        }
        assert_eq!(node.ancestors().count(), MAX_ANCESTORS);
        let mut depth = 0;
        let mut at = Some(&node);
        while let Some(n) = at {
            depth += 1;
            at = n.parent.as_ref();
        }
        assert!(depth <= usize::from(MAX_CHAIN) + 1, "{depth}");
    }
}
