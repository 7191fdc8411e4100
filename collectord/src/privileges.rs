//! collectord starts as root, opens what only its start-up capabilities can open, and then keeps
//! only the capabilities its enabled monitors need for as long as they run, dropped from every
//! set (effective, permitted, inheritable, ambient, bounding), with no_new_privs set, so that
//! nothing it runs later — `journalctl`, or code an attacker got it to run — can regain the rest.
//!
//! Used once, at start, then dropped:
//!
//! | capability | for |
//! |---|---|
//! | CAP_NET_ADMIN | subscribing to the kernel process connector (the socket is kept open) |
//! | CAP_SYS_ADMIN | `fanotify_init` (the group is kept; marking a directory needs only read access) |
//! | CAP_SYS_NICE | making the connector reader's thread SCHED_FIFO: that thread is created first, made real-time, and drops its own capabilities (they are per thread) before the rest |
//! | CAP_CHOWN | giving the socket and its directory to the readers' group |
//! | CAP_SETPCAP | dropping the rest from the bounding set |
//!
//! Kept while the monitors run:
//!
//! | capability | needed by | for |
//! |---|---|---|
//! | CAP_SYS_PTRACE | process, network, file monitors | reading `/proc/<pid>/{exe,cwd,fd}` of every process (the file monitor: the writer's exe) |
//! | CAP_DAC_READ_SEARCH | process, file, auth, network monitors | reading and hashing any watched file, the auth logs, other users' `/proc` entries |

use std::io;
use std::time::Duration;

use crate::monitors::file::FanotifyGroup;
use caps::{CapSet, Capability, CapsHashSet};
use sec_tracker_proto::Config;

use crate::monitors::file::open_fanotify;
use crate::monitors::process::{Connector, READER_PRIORITY};

/// What only the start-up capabilities can open, opened before they are dropped and handed to
/// the monitors. None: that monitor is off.
pub struct Opened {
    pub connector: Option<io::Result<Connector>>,
    pub fanotify: Option<nix::Result<FanotifyGroup>>,
    /// The connector reader's thread, already real-time (`monitoring.realtime_priority`).
    pub reader: Option<io::Result<RealtimeThread>>,
}

impl Opened {
    /// Opens the process connector (CAP_NET_ADMIN) and the fanotify group (CAP_SYS_ADMIN) for
    /// the enabled monitors, and makes the connector reader's thread real-time (CAP_SYS_NICE),
    /// that thread keeping `keep` of its capabilities (None: all it has, for in-process use).
    /// What fails is handed on as the error: the monitor says why and degrades.
    pub fn open(config: &Config, keep: Option<&CapsHashSet>) -> Opened {
        let m = &config.monitoring;
        Opened {
            connector: m
                .process_monitor
                .then(|| Connector::open(Duration::from_millis(200))),
            fanotify: m.file_monitor.then(open_fanotify),
            reader: (m.process_monitor && m.realtime_priority)
                .then(|| RealtimeThread::spawn("proc-connector", READER_PRIORITY, keep)),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread made while the start-up capabilities were held: at SCHED_FIFO `priority`, with its
/// own capabilities then dropped to the running set (capabilities, like the bounding set and
/// no_new_privs, are per thread), waiting for the one job it will run.
pub struct RealtimeThread {
    job: std::sync::mpsc::Sender<Job>,
}

impl RealtimeThread {
    fn spawn(name: &str, priority: i32, keep: Option<&CapsHashSet>) -> io::Result<RealtimeThread> {
        let keep = keep.cloned();
        let (job_tx, job_rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut ready = crate::kernel::set_thread_realtime(priority);
                if let (Ok(()), Some(keep)) = (&ready, &keep) {
                    if let Err(e) = drop_all_but(keep) {
                        ready = Err(io::Error::other(e.to_string()));
                    }
                }
                let failed = ready.is_err();
                let _ = ready_tx.send(ready);
                if failed {
                    return;
                }
                if let Ok(job) = job_rx.recv() {
                    job();
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the real-time thread ended at start"))??;
        Ok(RealtimeThread { job: job_tx })
    }

    /// Runs `job` on the thread.
    pub fn run(self, job: impl FnOnce() + Send + 'static) -> io::Result<()> {
        self.job
            .send(Box::new(job))
            .map_err(|_| io::Error::other("the real-time thread has ended"))
    }
}

/// The capabilities the enabled monitors need while they run (after [`Opened::open`]).
pub fn needed(config: &Config) -> CapsHashSet {
    let m = &config.monitoring;
    let mut set = CapsHashSet::new();
    if m.process_monitor {
        set.extend([Capability::CAP_SYS_PTRACE, Capability::CAP_DAC_READ_SEARCH]);
    }
    if m.file_monitor {
        set.extend([Capability::CAP_DAC_READ_SEARCH, Capability::CAP_SYS_PTRACE]);
    }
    if m.auth_monitor {
        set.insert(Capability::CAP_DAC_READ_SEARCH);
    }
    if m.network_monitor {
        set.extend([Capability::CAP_SYS_PTRACE, Capability::CAP_DAC_READ_SEARCH]);
    }
    set
}

#[derive(Debug, thiserror::Error)]
#[error("cannot drop capabilities ({step}): {source}")]
pub struct DropError {
    step: &'static str,
    #[source]
    source: caps::errors::CapsError,
}

/// Reduces the calling thread to `keep` (those of them it has) in every capability set and sets
/// no_new_privs; returns what it kept. Capabilities are per thread: run it in the main thread
/// before any other thread exists (threads created afterwards inherit the reduced sets), and in
/// any thread made before that ([`RealtimeThread`]).
pub fn drop_all_but(keep: &CapsHashSet) -> Result<CapsHashSet, DropError> {
    let err = |step| move |source| DropError { step, source };
    // What we were not given (a launcher with a narrower set) cannot be kept: keep the rest
    // and say what is missing.
    let permitted = caps::read(None, CapSet::Permitted).map_err(err("reading"))?;
    let keep: CapsHashSet = keep.intersection(&permitted).copied().collect();
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes below.
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(err("bounding"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(err("ambient"))?;
    caps::clear(None, CapSet::Inheritable).map_err(err("inheritable"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(err("effective"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(err("permitted"))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| DropError {
        step: "no_new_privs",
        source: caps::errors::CapsError::from(e.to_string()),
    })?;
    Ok(keep)
}

pub fn names(set: &CapsHashSet) -> String {
    if set.is_empty() {
        return "none".into();
    }
    let mut names: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    names.sort();
    names.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_follows_the_enabled_monitors() {
        let mut c = Config::default();
        assert_eq!(names(&needed(&c)), "CAP_DAC_READ_SEARCH CAP_SYS_PTRACE");
        c.monitoring.file_monitor = false;
        c.monitoring.process_monitor = false;
        c.monitoring.network_monitor = false;
        assert_eq!(names(&needed(&c)), "CAP_DAC_READ_SEARCH");
        c.monitoring.process_monitor = false;
        c.monitoring.network_monitor = false;
        c.monitoring.auth_monitor = false;
        assert_eq!(names(&needed(&c)), "none");
    }
}
