//! Whether an auth record was written by the program it names.
//!
//! Anyone can write to syslog: `logger -t sshd --id=4242 'Accepted publickey for root …'` puts a
//! line in auth.log that reads like sshd's. So a record is checked against who wrote it:
//!
//! - a journal entry carries journald's own record of its sender (`_UID`, `_COMM`, `_EXE`, which
//!   the sender cannot choose): it must be root, running the program named;
//! - a text log line names a pid: the process monitor says what ran as that pid (running now, or
//!   ended lately), or that no such process ran since it started watching.
//!
//! A record whose writer is the program it names is verified; one that names another program's
//! pid, or a pid that never ran, is forged (and reported as that, not as what it claims); one
//! that cannot be checked (no pid in the line, the process monitor not watching, a line written
//! before it watched) is reported as claimed but marked unverified.

use std::time::Duration;

use super::parse::AuthRecord;
use crate::processes::{Processes, Program};

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Writer {
    Verified,
    /// Why it could not be checked.
    Unverified(String),
    /// Who wrote it instead, as far as is known.
    Forged(String),
}

/// How long the process monitor must have been watching before a pid it never saw counts as
/// never having run (a line read at start may have been written just before).
const SETTLED: Duration = Duration::from_secs(3);
/// How recently a program must have run to vouch for a line of its that names no pid (sudo's):
/// the auth monitor reads the log every quarter second.
const LATELY: Duration = Duration::from_secs(10);

/// journald's record of an entry's sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Sender {
    pub(super) uid: Option<u32>,
    pub(super) pid: u32,
    pub(super) comm: String,
    pub(super) exe: String,
}

/// Whether an executable's file name is the program a log line names: the same name, or a
/// variant of it (`sshd-session` for sshd, `sudo.ws` for sudo), case aside (`CRON` is cron).
fn is_program(claimed: &str, exe_name: &str) -> bool {
    let claimed = claimed.to_ascii_lowercase();
    let exe = exe_name.to_ascii_lowercase();
    fn family(name: &str) -> &str {
        match name {
            "sshd-session" | "sshd-auth" => "sshd",
            n => n,
        }
    }
    let (c, e) = (family(&claimed), family(&exe));
    e == c
        || e.strip_prefix(c)
            .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('.'))
}

/// A line of a text log (auth.log): the pid it names, against what the process monitor saw.
/// `fresh`: the line was written while the agent was running (not read from a backlog at start).
pub(super) fn text_line(processes: &Processes, r: &AuthRecord, fresh: bool) -> Writer {
    let settled = processes
        .watching_since()
        .is_some_and(|since| since.elapsed() >= SETTLED);
    if r.pid == 0 {
        // sudo logs no pid: the program it names must at least have run a moment ago.
        if !settled {
            return Writer::Unverified("the line names no pid".into());
        }
        if processes.ran_lately(LATELY, |name| is_program(&r.program, name)) {
            return Writer::Verified;
        }
        return if fresh {
            Writer::Forged(format!(
                "it claims {} (no pid), but no {} process ran in the last {} s",
                r.program,
                r.program,
                LATELY.as_secs()
            ))
        } else {
            Writer::Unverified(format!(
                "{} may have ended before the agent watched",
                r.program
            ))
        };
    }
    let claimed = format!("{}[{}]", r.program, r.pid);
    match processes.program(r.pid) {
        Program::Running(name) | Program::Exited(name) if is_program(&r.program, &name) => {
            Writer::Verified
        }
        Program::Running(name) => {
            Writer::Forged(format!("it claims {claimed}, but pid {} is {name}", r.pid))
        }
        Program::Exited(name) => {
            Writer::Forged(format!("it claims {claimed}, but pid {} was {name}", r.pid))
        }
        Program::NeverSeen => {
            if fresh && settled {
                Writer::Forged(format!(
                    "it claims {claimed}, but no process {} has run",
                    r.pid
                ))
            } else {
                Writer::Unverified(format!(
                    "{claimed} may have ended before the agent watched processes"
                ))
            }
        }
        Program::Unknown => Writer::Unverified(
            "the process monitor is not watching, so the writer cannot be checked".into(),
        ),
    }
}

/// A journal entry: its sender, as journald recorded it, must be root running the program the
/// entry names.
pub(super) fn journal(r: &AuthRecord, sender: &Sender) -> Writer {
    let name = if sender.exe.is_empty() {
        sender.comm.as_str()
    } else {
        sender.exe.rsplit('/').next().unwrap_or(&sender.exe)
    };
    let who = format!(
        "{} (pid {}, uid {})",
        if sender.exe.is_empty() {
            &sender.comm
        } else {
            &sender.exe
        },
        sender.pid,
        sender
            .uid
            .map_or_else(|| "unknown".to_owned(), |u| u.to_string())
    );
    match sender.uid {
        None => Writer::Unverified("the journal gave no sender".into()),
        Some(0) if is_program(&r.program, name) || is_program(&r.program, &sender.comm) => {
            Writer::Verified
        }
        Some(_) => Writer::Forged(format!(
            "it claims {}, but it was written by {who}",
            r.program
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(program: &str, pid: u32) -> AuthRecord {
        AuthRecord {
            program: program.into(),
            pid,
            ..AuthRecord::default()
        }
    }

    #[test]
    fn program_names_and_their_variants() {
        assert!(is_program("sshd", "sshd"));
        assert!(is_program("sshd", "sshd-session"));
        assert!(is_program("sshd-session", "sshd"));
        assert!(is_program("sudo", "sudo.ws"));
        assert!(is_program("CRON", "cron"));
        assert!(!is_program("sshd", "logger"));
        assert!(!is_program("sudo", "sudoedit-helper-x") || is_program("sudo", "sudo-rs"));
        assert!(!is_program("su", "sudo"));
    }

    #[test]
    fn text_lines_are_checked_against_the_pid_they_name() {
        let p = Processes::default();
        let me = std::process::id();
        let Program::Running(my_name) = p.program(me) else {
            panic!()
        };
        assert_eq!(text_line(&p, &rec(&my_name, me), true), Writer::Verified);
        assert!(
            matches!(text_line(&p, &rec("sshd", me), true), Writer::Forged(w) if w.contains(&my_name))
        );
        assert!(matches!(
            text_line(&p, &rec("sshd", 0), true),
            Writer::Unverified(_)
        ));
        // No pid (sudo's lines): the program must have run lately, once watching has settled.
        let w = Processes::default();
        w.watching();
        assert!(matches!(
            text_line(&w, &rec("sudo", 0), true),
            Writer::Unverified(_)
        ));
        // Not watching: nothing can be said of a pid that is gone.
        let gone = u32::MAX - 3;
        assert!(matches!(
            text_line(&p, &rec("sshd", gone), true),
            Writer::Unverified(_)
        ));
        p.watching();
        assert!(
            matches!(
                text_line(&p, &rec("sshd", gone), true),
                Writer::Unverified(_)
            ),
            "just started watching"
        );
        p.exited(gone, b"/usr/bin/logger", "", "");
        assert!(
            matches!(text_line(&p, &rec("sshd", gone), true), Writer::Forged(w) if w.contains("was logger"))
        );
        p.exited(gone, b"/usr/sbin/sshd", "", "");
        assert_eq!(text_line(&p, &rec("sshd", gone), true), Writer::Verified);
    }

    #[test]
    fn journal_entries_need_root_running_the_program() {
        let r = rec("sshd", 42);
        let s = |uid: Option<u32>, exe: &str| Sender {
            uid,
            pid: 42,
            comm: exe.rsplit('/').next().unwrap().into(),
            exe: exe.into(),
        };
        assert_eq!(journal(&r, &s(Some(0), "/usr/sbin/sshd")), Writer::Verified);
        assert!(
            matches!(journal(&r, &s(Some(65534), "/usr/bin/logger")), Writer::Forged(w) if w.contains("/usr/bin/logger (pid 42, uid 65534)"))
        );
        assert!(matches!(
            journal(&r, &s(Some(0), "/usr/bin/logger")),
            Writer::Forged(_)
        ));
        assert!(matches!(journal(&r, &s(None, "")), Writer::Unverified(_)));
    }
}
