//! collectord starts as root and keeps only the capabilities its enabled monitors need, dropped
//! from every set (effective, permitted, inheritable, ambient, bounding), with no_new_privs set,
//! so that nothing it runs later — `journalctl`, or code an attacker got it to run — can regain
//! the rest.
//!
//! The set, and why each member is there:
//!
//! | capability | needed by | for |
//! |---|---|---|
//! | CAP_NET_ADMIN | process monitor | subscribing to the kernel process connector |
//! | CAP_SYS_NICE | process monitor with `realtime_priority` | SCHED_FIFO for the connector reader |
//! | CAP_SYS_PTRACE | process, network, file monitors | reading `/proc/<pid>/{exe,cwd,fd}` of every process (the file monitor: the writer's exe) |
//! | CAP_DAC_READ_SEARCH | process, file, auth, network monitors | reading and hashing any watched file, the auth logs, other users' `/proc` entries |
//! | CAP_SYS_ADMIN | file monitor | fanotify, to name the process that modified a file |
//!
//! CAP_CHOWN (giving the socket to its group) is used before the drop and not kept.

use caps::{CapSet, Capability, CapsHashSet};
use sec_tracker_proto::Config;

/// The capabilities the enabled monitors need.
pub fn needed(config: &Config) -> CapsHashSet {
    let m = &config.monitoring;
    let mut set = CapsHashSet::new();
    if m.process_monitor {
        set.extend([
            Capability::CAP_NET_ADMIN,
            Capability::CAP_SYS_PTRACE,
            Capability::CAP_DAC_READ_SEARCH,
        ]);
        if m.realtime_priority {
            set.insert(Capability::CAP_SYS_NICE);
        }
    }
    if m.file_monitor {
        set.extend([
            Capability::CAP_DAC_READ_SEARCH,
            Capability::CAP_SYS_ADMIN,
            Capability::CAP_SYS_PTRACE,
        ]);
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

/// Reduces this process to `keep` (those of them it has) in every capability set and sets
/// no_new_privs; returns what it kept. Must run
/// before any other thread exists that could hold on to the old sets (capabilities are per
/// thread; threads created afterwards inherit the reduced ones).
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
        assert_eq!(
            names(&needed(&c)),
            "CAP_DAC_READ_SEARCH CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_NICE CAP_SYS_PTRACE"
        );
        c.monitoring.file_monitor = false;
        c.monitoring.realtime_priority = false;
        assert_eq!(
            names(&needed(&c)),
            "CAP_DAC_READ_SEARCH CAP_NET_ADMIN CAP_SYS_PTRACE"
        );
        c.monitoring.process_monitor = false;
        c.monitoring.network_monitor = false;
        c.monitoring.auth_monitor = false;
        assert_eq!(names(&needed(&c)), "none");
    }
}
