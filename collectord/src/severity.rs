//! The signals that take state or context to compute, which the rules then judge (see
//! [`crate::rules`]): a process taking root it did not hold, and a burst of failed logins from
//! one address. Everything else a rule decides from an event's own fields.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A uid change: whether the process took root it did not hold. `had_root`: whether it already
/// held root in any of its real, effective or saved uids before (None: unknown);
/// `exe_setuid_root`: its executable is setuid and owned by root, so becoming root is its
/// designed behaviour (sudo, su, passwd, mount, …). Decided by the executable's mode, never its
/// name: a copy of a program called `sudo` is not sudo. The rule `root-gained-without-setuid`
/// makes it CRITICAL.
pub fn gained_root(
    had_root: Option<bool>,
    new_uid: u32,
    new_euid: u32,
    exe_setuid_root: bool,
) -> bool {
    (new_uid == 0 || new_euid == 0) && had_root == Some(false) && !exe_setuid_root
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

    /// Records a failed login from `source` at `now`; returns whether it is part of a burst
    /// (the threshold-th inside the window, or any after it while the burst lasts).
    pub fn failed(&mut self, source: &str, now: Instant) -> bool {
        if source.is_empty() {
            return false;
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
        times.len() >= self.threshold
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
    fn five_failures_from_one_address_within_a_minute_are_a_burst() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut b = FailedLoginBurst::default();
        // (source, seconds after start) → in a burst
        let table: &[(&str, u64, bool)] = &[
            ("10.0.0.1", 0, false),
            ("10.0.0.1", 10, false),
            ("10.0.0.2", 11, false),
            ("10.0.0.1", 20, false),
            ("10.0.0.1", 30, false),
            ("10.0.0.1", 40, true), // 5th within 60 s
            ("10.0.0.1", 45, true),
            ("10.0.0.2", 50, false),  // other address unaffected
            ("10.0.0.1", 200, false), // window passed
            ("", 201, false),
        ];
        for (src, at, want) in table {
            assert_eq!(b.failed(src, s(*at)), *want, "{src} at {at}s");
        }
    }

    #[test]
    fn root_gained_only_without_root_before_and_without_setuid() {
        // (had root before, new uid, new euid, setuid-root exe) → gained
        type Row = (Option<bool>, u32, u32, bool, bool);
        let table: &[Row] = &[
            (Some(false), 0, 0, false, true),
            (Some(false), 1000, 0, false, true),
            (Some(false), 0, 0, true, false), // sudo, su, passwd: setuid root
            (Some(true), 0, 0, false, false), // a daemon taking back its saved root
            (Some(true), 1000, 1000, false, false),
            (None, 0, 0, false, false),
            (Some(false), 1001, 1001, false, false),
        ];
        for (had, uid, euid, suid, want) in table {
            assert_eq!(
                gained_root(*had, *uid, *euid, *suid),
                *want,
                "{had:?} {uid} {euid} {suid}"
            );
        }
    }
}
