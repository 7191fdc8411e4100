//! Which program ran as which pid lately, as the process monitor saw it: for other monitors to
//! check a claim against. An auth log line says it was written by `sshd[4242]`; whoever can write
//! to syslog can say that. The process monitor sees every process start and end, so it can say
//! whether pid 4242 was sshd, some other program, or never ran at all.

use std::collections::VecDeque;
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

#[derive(Default)]
pub struct Processes {
    /// (pid, executable's file name, when it started or ended), oldest first.
    seen: Mutex<VecDeque<(u32, String, Instant)>>,
    /// Since when every process start and end is seen (the kernel process connector).
    watching_since: Mutex<Option<Instant>>,
}

impl Processes {
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

    /// Process `pid` started running `exe`.
    pub fn started(&self, pid: u32, exe: &[u8]) {
        self.note(pid, exe);
    }

    /// Process `pid`, running `exe`, ended.
    pub fn exited(&self, pid: u32, exe: &[u8]) {
        self.note(pid, exe);
    }

    fn note(&self, pid: u32, exe: &[u8]) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while seen.len() >= MAX_SEEN
            || seen
                .front()
                .is_some_and(|(_, _, at)| now.duration_since(*at) > KEEP)
        {
            seen.pop_front();
        }
        seen.push_back((pid, file_name(exe), now));
    }

    /// Whether a process running a program that `is` accepts started or ended within `within`.
    pub fn ran_lately(&self, within: Duration, is: impl Fn(&str) -> bool) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .rev()
            .take_while(|(_, _, at)| at.elapsed() <= within)
            .any(|(_, name, _)| is(name))
    }

    /// What ran as `pid`: the live process first, then the latest exit.
    pub fn program(&self, pid: u32) -> Program {
        if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
            let name = file_name(exe.as_os_str().as_bytes());
            return Program::Running(name.trim_end_matches(" (deleted)").to_owned());
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, name, _)) = seen.iter().rev().find(|(p, _, _)| *p == pid) {
            return Program::Exited(name.clone());
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
        p.exited(u32::MAX - 7, b"/usr/sbin/sshd");
        assert_eq!(p.program(u32::MAX - 7), Program::Exited("sshd".into()));
        assert!(p.ran_lately(Duration::from_secs(5), |n| n == "sshd"));
        assert!(!p.ran_lately(Duration::from_secs(5), |n| n == "sudo"));
        let me = std::process::id();
        let Program::Running(name) = p.program(me) else {
            panic!("we are running")
        };
        assert!(!name.is_empty());
    }
}
