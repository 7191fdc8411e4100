//! Auth monitor: ssh logins (accepted, failed, invalid user, logout), sudo (commands, failures,
//! not in sudoers), su, console logins, and account changes (useradd, usermod, passwd, groupadd…).
//!
//! Sources, detected at start and shown in `status`:
//! * `/var/log/auth.log` or `/var/log/secure` (`monitoring.auth_logs`), followed from the end
//!   across rotation ([`follow`]); the position is saved in the state directory, so lines written
//!   while collectord was down are read at its next start;
//! * the systemd journal (through `journalctl`), only where no such file exists — rsyslog
//!   copies the same messages into auth.log, and reading both would double every event;
//! * `wtmp` and `btmp` ([`utmp`]): a login or failed login that the text log already reported is
//!   not reported again; one it did not (a console login on a host without syslog) is.
//!
//! Parsing is [`parse`] (pure functions, golden-tested). A line that is not syslog is skipped and
//! counted in the monitor's `errors`.

mod follow;
pub mod parse;
pub mod utmp;
mod verify;

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sec_tracker_proto::json::{escape_bytes, now_ns};
use sec_tracker_proto::v1::{
    event, AuthAction, AuthEvent, Event, EventType, MonitorState, Severity,
};
use serde_json::Value;

use super::{Monitor, MonitorContext, MonitorFuture};
use crate::severity::FailedLoginBurst;
use follow::{Follower, Start};
use parse::{AuthKind, AuthRecord, ParseError};
use verify::Writer;

pub const NAME: &str = "auth_monitor";
const POLL: Duration = Duration::from_millis(250);
const SAVE_EVERY: Duration = Duration::from_secs(10);
const MAX_LINE: usize = 64 * 1024;
const RAW_KEPT: usize = 1024;
/// How long a wtmp/btmp record waits for the text log's version of the same login.
const CORRELATE_DELAY: Duration = Duration::from_secs(3);
const CORRELATE_WINDOW: Duration = Duration::from_secs(120);
/// The same occurrence logged twice by one process (pam's line and the program's own).
const DEDUP_WINDOW: Duration = Duration::from_secs(10);
const POSITIONS_FILE: &str = "auth-positions.json";
const JOURNAL_IDENTIFIERS: &[&str] = &[
    "sshd",
    "sshd-session",
    "sudo",
    "su",
    "login",
    "useradd",
    "usermod",
    "userdel",
    "groupadd",
    "groupmod",
    "groupdel",
    "gpasswd",
    "passwd",
    "chpasswd",
    "chage",
    "chsh",
    "chfn",
];

pub struct AuthMonitor;

impl Monitor for AuthMonitor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Box<Self>, ctx: MonitorContext) -> MonitorFuture {
        super::run_on_thread("auth-monitor", ctx, run)
    }
}

struct TextLog {
    follower: Follower,
    name: String,
}

struct UtmpLog {
    follower: Follower,
    name: &'static str,
    failed: bool,
    pending: Vec<u8>,
}

struct Journal {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(ctx: &MonitorContext) -> anyhow::Result<()> {
    let state_dir = ctx.config.agent.state_dir.join("collectord");
    let positions_path = state_dir.join(POSITIONS_FILE);
    let saved = load_positions(&positions_path);
    let start_for = |p: &Path| match saved.get(&p.display().to_string()) {
        Some(pos) => Start::Resume {
            ino: pos.ino,
            offset: pos.offset,
        },
        None => Start::End,
    };

    let mut texts: Vec<TextLog> = ctx
        .config
        .monitoring
        .auth_logs
        .iter()
        .filter(|p| p.exists())
        .map(|p| TextLog {
            follower: Follower::new(p, start_for(p), MAX_LINE),
            name: p.display().to_string(),
        })
        .collect();
    let mut journal = None;
    if texts.is_empty() {
        journal = start_journal();
    }
    let mut utmps: Vec<UtmpLog> = [
        ("/var/log/wtmp", "wtmp", false),
        ("/var/log/btmp", "btmp", true),
    ]
    .into_iter()
    .filter(|(p, _, _)| Path::new(p).exists())
    .map(|(p, name, failed)| UtmpLog {
        follower: Follower::new(Path::new(p), start_for(Path::new(p)), usize::MAX),
        name,
        failed,
        pending: Vec::new(),
    })
    .collect();

    let mut sources: Vec<String> = texts.iter().map(|t| t.name.clone()).collect();
    if journal.is_some() {
        sources.push("journald".into());
    }
    sources.extend(utmps.iter().map(|u| u.name.to_owned()));
    let text_source = !texts.is_empty() || journal.is_some();
    if sources.is_empty() {
        let why = "no auth log, journal, wtmp or btmp found: nothing to follow".to_owned();
        ctx.health.set_state(MonitorState::Failed, why.clone());
        ctx.notice("monitor_unavailable", Severity::Warning, 0, why);
        return Ok(());
    }
    let detail = format!("sources: {}", sources.join(", "));
    tracing::info!("auth monitor: following {}", sources.join(", "));
    ctx.health.set_state(
        if text_source {
            MonitorState::Running
        } else {
            MonitorState::Fallback
        },
        detail,
    );

    let mut state = State::new(text_source);
    let mut lines = Vec::new();
    let mut last_save = Instant::now();
    // The first read is the backlog (lines written while the agent was down): their writers may
    // be long gone, so a pid no process has now is not proof of forgery there.
    let mut fresh = false;
    while !ctx.shutdown.is_cancelled() {
        let working = ctx.health.working();
        for t in &mut texts {
            lines.clear();
            if let Err(e) = t.follower.poll(&mut lines) {
                ctx.health.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, log = %t.name, "cannot read the auth log");
            }
            for line in &lines {
                match parse::parse_line(line) {
                    Ok(Some(r)) => {
                        let writer = verify::text_line(&ctx.processes, &r, fresh);
                        state.text_record(ctx, r, writer, &t.name, line)
                    }
                    Ok(None) | Err(ParseError::Empty) => {}
                    Err(_) => {
                        ctx.health.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if let Some(j) = &journal {
            while let Ok(line) = j.lines.try_recv() {
                match journal_record(&line) {
                    Some((r, sender)) => {
                        let writer = verify::journal(&r, &sender);
                        state.text_record(ctx, r, writer, "journald", line.as_bytes())
                    }
                    None if serde_json::from_str::<Value>(&line).is_err() => {
                        ctx.health.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {}
                }
            }
        }
        for u in &mut utmps {
            if let Err(e) = u.follower.poll_bytes(&mut u.pending) {
                tracing::warn!(error = %e, log = u.name, "cannot read");
            }
            let (records, rest) = utmp::parse_records(&u.pending);
            let consumed = u.pending.len() - rest;
            u.pending.drain(..consumed);
            for r in records {
                state.utmp_record(r, u.name, u.failed);
            }
        }
        state.flush_utmp(ctx, false);
        if last_save.elapsed() >= SAVE_EVERY {
            save_positions(&positions_path, &texts, &utmps);
            last_save = Instant::now();
        }
        drop(working);
        fresh = true;
        std::thread::sleep(POLL);
    }
    state.flush_utmp(ctx, true);
    save_positions(&positions_path, &texts, &utmps);
    Ok(())
}

/// Correlation and de-duplication state.
struct State {
    text_source: bool,
    burst: FailedLoginBurst,
    /// Recent text-log logins and failures: (kind, user, address, when).
    recent: VecDeque<(AuthKind, String, String, Instant)>,
    /// Occurrences already reported: (kind, program, pid or user) → when.
    seen: HashMap<(AuthKind, String, String), Instant>,
    /// wtmp/btmp records waiting to be compared with the text log.
    pending_utmp: Vec<(utmp::UtmpRecord, &'static str, bool, Instant)>,
    /// tty line → user, from wtmp logins, to name the user of a logout.
    line_users: HashMap<String, String>,
}

impl State {
    fn new(text_source: bool) -> State {
        State {
            text_source,
            burst: FailedLoginBurst::default(),
            recent: VecDeque::new(),
            seen: HashMap::new(),
            pending_utmp: Vec::new(),
            line_users: HashMap::new(),
        }
    }

    /// True when this record repeats an occurrence already reported.
    fn duplicate(&mut self, r: &AuthRecord) -> bool {
        let now = Instant::now();
        self.seen
            .retain(|_, at| now.duration_since(*at) < DEDUP_WINDOW);
        // sudo logs each failed attempt through pam, then one line that names the command and
        // the count: the latter is the occurrence.
        if r.kind == AuthKind::SudoAuthFailure && r.command.is_empty() {
            return true;
        }
        let by_process = (r.kind, r.program.clone(), format!("pid {}", r.pid));
        // A logout is logged by sshd's session process and by pam in its monitor: two pids.
        let by_user = (r.kind, r.program.clone(), format!("user {}", r.user));
        let dup = (r.pid != 0 && self.seen.contains_key(&by_process))
            || (r.kind == AuthKind::SshSessionClosed && self.seen.contains_key(&by_user))
            // The login itself was reported by the Accepted line.
            || r.kind == AuthKind::SshSessionOpened;
        if r.pid != 0 {
            self.seen.insert(by_process, now);
        }
        self.seen.insert(by_user, now);
        dup
    }

    fn text_record(
        &mut self,
        ctx: &MonitorContext,
        r: AuthRecord,
        writer: Writer,
        source: &str,
        raw: &[u8],
    ) {
        if let Writer::Forged(why) = &writer {
            // Reported as what it is, never as what it claims, and kept out of every count
            // (a forged failure must not make an innocent address a brute-forcer).
            ctx.emit(forged_event(&r, why, source, raw));
            return;
        }
        if self.duplicate(&r) {
            return;
        }
        let now = Instant::now();
        if matches!(
            r.kind,
            AuthKind::SshAccepted
                | AuthKind::SshFailed
                | AuthKind::SshInvalidUser
                | AuthKind::ConsoleLogin
                | AuthKind::ConsoleLoginFailure
        ) {
            self.recent
                .push_back((r.kind, r.user.clone(), r.source_address.clone(), now));
            while self
                .recent
                .front()
                .is_some_and(|(_, _, _, at)| now.duration_since(*at) > CORRELATE_WINDOW)
                || self.recent.len() > 10_000
            {
                self.recent.pop_front();
            }
        }
        // Failures and root logins are the rules' to judge; a burst of failures from one
        // address is a signal on the event. Only what is verified counts toward a burst.
        let burst = matches!(writer, Writer::Verified) && !r.ambiguous && self.burst(&r, now);
        let sev = if r.ambiguous {
            Severity::Warning
        } else {
            Severity::Info
        };
        let mut e = auth_event(&r, source, raw, sev, &writer);
        if let Some(event::Details::Auth(a)) = &mut e.details {
            a.burst = burst;
        }
        ctx.emit(e);
    }

    /// Whether this failure is part of a burst from its address.
    fn burst(&mut self, r: &AuthRecord, now: Instant) -> bool {
        let login_failure = matches!(
            r.kind,
            AuthKind::SshFailed
                | AuthKind::SshInvalidUser
                | AuthKind::ConsoleLoginFailure
                | AuthKind::SuFailure
        );
        if login_failure {
            let key = if r.source_address.is_empty() {
                String::new()
            } else {
                r.source_address.clone()
            };
            let mut burst = false;
            for _ in 0..r.occurrences.max(1) {
                burst |= self.burst.failed(&key, now);
            }
            burst
        } else {
            false
        }
    }

    fn utmp_record(&mut self, r: utmp::UtmpRecord, source: &'static str, failed: bool) {
        match r.kind {
            utmp::UtmpKind::UserProcess
            | utmp::UtmpKind::DeadProcess
            | utmp::UtmpKind::LoginProcess => {
                self.pending_utmp.push((r, source, failed, Instant::now()));
            }
            _ => {}
        }
    }

    /// Reports wtmp/btmp records that the text log did not already report.
    fn flush_utmp(&mut self, ctx: &MonitorContext, all: bool) {
        let now = Instant::now();
        let ready: Vec<_> = {
            let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_utmp)
                .into_iter()
                .partition(|(_, _, _, at)| all || now.duration_since(*at) >= CORRELATE_DELAY);
            self.pending_utmp = wait;
            ready
        };
        for (u, source, failed, _) in ready {
            let host = u
                .addr
                .map(|a| a.to_string())
                .filter(|a| a != "0.0.0.0" && a != "::")
                .unwrap_or_else(|| u.host.clone());
            let record = if failed {
                let kind = if u.line.starts_with("ssh") {
                    AuthKind::SshFailed
                } else {
                    AuthKind::ConsoleLoginFailure
                };
                AuthRecord {
                    kind,
                    user: u.user.clone(),
                    source_address: host.clone(),
                    tty: u.line.clone(),
                    program: source.into(),
                    success: false,
                    ..AuthRecord::default()
                }
            } else if u.kind == utmp::UtmpKind::UserProcess {
                self.line_users.insert(u.line.clone(), u.user.clone());
                if self.line_users.len() > 4096 {
                    self.line_users.clear();
                }
                let kind = if host.is_empty() {
                    AuthKind::ConsoleLogin
                } else {
                    AuthKind::SshAccepted
                };
                AuthRecord {
                    kind,
                    user: u.user.clone(),
                    source_address: host.clone(),
                    tty: u.line.clone(),
                    program: source.into(),
                    success: true,
                    ..AuthRecord::default()
                }
            } else if u.kind == utmp::UtmpKind::DeadProcess && !self.text_source {
                let Some(user) = self.line_users.remove(&u.line) else {
                    continue;
                };
                AuthRecord {
                    kind: AuthKind::SshSessionClosed,
                    user,
                    tty: u.line.clone(),
                    program: source.into(),
                    success: true,
                    ..AuthRecord::default()
                }
            } else {
                continue;
            };
            // Already reported by the text log (same kind of occurrence, same user, same place)?
            let reported = self.recent.iter().any(|(k, user, addr, _)| {
                let same_kind = match record.kind {
                    AuthKind::SshFailed => {
                        matches!(k, AuthKind::SshFailed | AuthKind::SshInvalidUser)
                    }
                    AuthKind::SshAccepted => *k == AuthKind::SshAccepted,
                    AuthKind::ConsoleLogin => {
                        matches!(k, AuthKind::ConsoleLogin | AuthKind::SshAccepted)
                    }
                    AuthKind::ConsoleLoginFailure => {
                        matches!(k, AuthKind::ConsoleLoginFailure | AuthKind::SshFailed)
                    }
                    _ => false,
                };
                same_kind
                    && (user == &record.user || record.user.is_empty())
                    && (record.source_address.is_empty() || addr == &record.source_address)
            });
            if reported {
                continue;
            }
            let raw = format!(
                "{source} record: type {:?}, user {:?}, line {:?}, host {:?}",
                u.kind, u.user, u.line, u.host
            );
            let burst = self.burst(&record, now);
            // wtmp and btmp are written by root and the login programs only.
            let mut e = auth_event(
                &record,
                source,
                raw.as_bytes(),
                Severity::Info,
                &Writer::Verified,
            );
            if let Some(event::Details::Auth(a)) = &mut e.details {
                a.burst = burst;
            }
            ctx.emit(e);
        }
    }
}

fn auth_event(
    r: &AuthRecord,
    source: &str,
    raw: &[u8],
    severity: Severity,
    writer: &Writer,
) -> Event {
    let mut message = escape_bytes(r.describe().as_bytes());
    if r.occurrences > 1 {
        message.push_str(&format!(" (x{})", r.occurrences));
    }
    let mut verification = match writer {
        Writer::Verified => String::new(),
        Writer::Unverified(why) | Writer::Forged(why) => why.clone(),
    };
    if r.ambiguous {
        verification = if verification.is_empty() {
            r.detail.clone()
        } else {
            format!("{verification}; {}", r.detail)
        };
    }
    if !verification.is_empty() {
        message.push_str(&format!(
            " (unverified: {})",
            escape_bytes(verification.as_bytes())
        ));
    }
    Event {
        timestamp_ns: now_ns(),
        r#type: EventType::Auth as i32,
        severity: severity as i32,
        source: NAME.into(),
        message,
        details: Some(event::Details::Auth(AuthEvent {
            action: auth_action(r.kind) as i32,
            user: r.user.clone(),
            target_user: r.target_user.clone(),
            source_address: r.source_address.clone(),
            source_port: r.source_port,
            method: r.method.clone(),
            success: r.success,
            tty: r.tty.clone(),
            cwd: r.cwd.clone(),
            command: r.command.clone(),
            service: r.program.clone(),
            log_source: source.into(),
            raw: String::from_utf8_lossy(&raw[..raw.len().min(RAW_KEPT)]).into_owned(),
            pid: r.pid,
            verified: verification.is_empty(),
            verification,
            entity_id: String::new(),
            burst: false,
        })),
        ..Default::default()
    }
}

/// A line that claims a program which did not write it: a WARNING of its own, carrying what it
/// claimed (in `raw`, `service`, `pid`) and who wrote it, as far as is known.
fn forged_event(r: &AuthRecord, why: &str, source: &str, raw: &[u8]) -> Event {
    let message = format!(
        "Forged auth log line in {}: {}; it reads: {}",
        escape_bytes(source.as_bytes()),
        escape_bytes(why.as_bytes()),
        escape_bytes(r.describe().as_bytes())
    );
    let mut e = auth_event(
        r,
        source,
        raw,
        Severity::Warning,
        &Writer::Forged(why.to_owned()),
    );
    e.message = message;
    if let Some(event::Details::Auth(a)) = &mut e.details {
        a.action = AuthAction::ForgedLine as i32;
        a.success = false;
    }
    e
}

/// The contract's name for a kind of record.
fn auth_action(k: AuthKind) -> AuthAction {
    match k {
        AuthKind::SshAccepted => AuthAction::SshAccepted,
        AuthKind::SshFailed => AuthAction::SshFailed,
        AuthKind::SshInvalidUser => AuthAction::SshInvalidUser,
        AuthKind::SshSessionClosed => AuthAction::SshSessionClosed,
        AuthKind::SshSessionOpened => AuthAction::SshSessionOpened,
        AuthKind::SudoCommand => AuthAction::SudoCommand,
        AuthKind::SudoAuthFailure => AuthAction::SudoAuthFailure,
        AuthKind::SudoNotInSudoers => AuthAction::SudoNotInSudoers,
        AuthKind::SudoDenied => AuthAction::SudoDenied,
        AuthKind::SuSuccess => AuthAction::SuSuccess,
        AuthKind::SuFailure => AuthAction::SuFailure,
        AuthKind::ConsoleLogin => AuthAction::ConsoleLogin,
        AuthKind::ConsoleLoginFailure => AuthAction::ConsoleLoginFailure,
        AuthKind::UserAdded => AuthAction::UserAdded,
        AuthKind::UserChanged => AuthAction::UserChanged,
        AuthKind::UserDeleted => AuthAction::UserDeleted,
        AuthKind::GroupAdded => AuthAction::GroupAdded,
        AuthKind::GroupChanged => AuthAction::GroupChanged,
        AuthKind::GroupDeleted => AuthAction::GroupDeleted,
        AuthKind::PasswordChanged => AuthAction::PasswordChanged,
    }
}

/// `journalctl --follow` for the programs we parse, as JSON lines.
fn start_journal() -> Option<Journal> {
    if !Path::new("/run/systemd/journal/socket").exists() {
        return None;
    }
    // By its absolute path: never whatever `journalctl` comes first in PATH.
    let journalctl = ["/usr/bin/journalctl", "/bin/journalctl"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let mut cmd = Command::new(journalctl);
    cmd.env_clear();
    cmd.args(["--follow", "--lines=0", "--output=json", "--no-pager"]);
    for id in JOURNAL_IDENTIFIERS {
        cmd.arg(format!("--identifier={id}"));
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let (tx, lines) = mpsc::sync_channel(10_000);
    std::thread::Builder::new()
        .name("auth-journal".into())
        .spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
        .ok()?;
    Some(Journal { child, lines })
}

/// One `journalctl -o json` entry → a record, and journald's record of its sender. MESSAGE may
/// be an array of bytes when it is not UTF-8.
fn journal_record(line: &str) -> Option<(AuthRecord, verify::Sender)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let program = v.get("SYSLOG_IDENTIFIER")?.as_str()?;
    let message = match v.get("MESSAGE")? {
        Value::String(s) => s.clone(),
        Value::Array(bytes) => String::from_utf8_lossy(
            &bytes
                .iter()
                .filter_map(|b| b.as_u64().map(|b| b as u8))
                .collect::<Vec<u8>>(),
        )
        .into_owned(),
        _ => return None,
    };
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let pid = field("_PID").parse().ok();
    let sender = verify::Sender {
        uid: field("_UID").parse().ok(),
        pid: pid.unwrap_or(0),
        comm: field("_COMM"),
        exe: field("_EXE"),
    };
    Some((parse::parse_message(program, pid, &message)?, sender))
}

/// Where each followed log was read to: `{"/var/log/auth.log": {"ino": …, "offset": …}, …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Position {
    ino: u64,
    offset: u64,
}

type Positions = std::collections::BTreeMap<String, Position>;

fn load_positions(path: &Path) -> Positions {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, path = %path.display(), "cannot parse the saved auth log positions; following from the end");
            Positions::new()
        }),
        Err(_) => Positions::new(),
    }
}

fn save_positions(path: &Path, texts: &[TextLog], utmps: &[UtmpLog]) {
    let mut map = Positions::new();
    let mut put = |p: &Path, (ino, offset): (u64, u64)| {
        if ino != 0 {
            map.insert(p.display().to_string(), Position { ino, offset });
        }
    };
    for t in texts {
        put(t.follower.path(), t.follower.position());
    }
    for u in utmps {
        let (ino, offset) = u.follower.position();
        // Never resume inside a record.
        put(u.follower.path(), (ino, offset - u.pending.len() as u64));
    }
    let result = sec_tracker_proto::fsutil::write_atomic(path, |w| {
        serde_json::to_writer(w, &map).map_err(std::io::Error::other)
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, path = %path.display(), "cannot save auth log positions");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_entries_are_parsed_including_byte_array_messages() {
        let line = r#"{"SYSLOG_IDENTIFIER":"sshd","_PID":"42","_UID":"0","_COMM":"sshd","_EXE":"/usr/sbin/sshd","MESSAGE":"Failed password for root from 192.0.2.9 port 4242 ssh2"}"#;
        let (r, sender) = journal_record(line).unwrap();
        assert_eq!((sender.uid, sender.comm.as_str()), (Some(0), "sshd"));
        assert_eq!(
            (r.kind, r.user.as_str(), r.pid, r.source_port),
            (AuthKind::SshFailed, "root", 42, 4242)
        );
        let bytes: Vec<u8> = b"Invalid user b\xffd from 192.0.2.9 port 1".to_vec();
        let line = serde_json::json!({"SYSLOG_IDENTIFIER": "sshd", "MESSAGE": bytes}).to_string();
        assert_eq!(
            journal_record(&line).unwrap().0.kind,
            AuthKind::SshInvalidUser
        );
        assert!(journal_record("not json").is_none());
    }

    #[test]
    fn every_kind_has_the_same_spelling_in_the_contract() {
        use sec_tracker_proto::json::Named;
        for k in AuthKind::ALL {
            assert_eq!(auth_action(k).name(), k.action());
        }
    }

    #[test]
    fn one_occurrence_logged_twice_is_one_event() {
        let mut s = State::new(true);
        let rec = |kind, pid, user: &str, command: &str| AuthRecord {
            kind,
            pid,
            user: user.into(),
            command: command.into(),
            program: "x".into(),
            ..AuthRecord::default()
        };
        assert!(!s.duplicate(&rec(AuthKind::SuSuccess, 10, "alice", "")));
        assert!(
            s.duplicate(&rec(AuthKind::SuSuccess, 10, "root", "")),
            "same su process"
        );
        assert!(
            !s.duplicate(&rec(AuthKind::SuSuccess, 11, "alice", "")),
            "another su"
        );
        assert!(
            s.duplicate(&rec(AuthKind::SudoAuthFailure, 12, "alice", "")),
            "pam's per-attempt line"
        );
        assert!(
            !s.duplicate(&rec(AuthKind::SudoAuthFailure, 12, "alice", "/usr/bin/id")),
            "sudo's summary"
        );
        assert!(!s.duplicate(&rec(AuthKind::SshSessionClosed, 20, "bob", "")));
        assert!(
            s.duplicate(&rec(AuthKind::SshSessionClosed, 21, "bob", "")),
            "pam and sshd both log the logout"
        );
        assert!(
            s.duplicate(&rec(AuthKind::SshSessionOpened, 22, "bob", "")),
            "the Accepted line is the login"
        );
    }
}
