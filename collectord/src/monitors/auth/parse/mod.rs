//! Pure parsers for authentication log lines: `/var/log/auth.log` / `/var/log/secure` lines
//! (RFC 3164 and rsyslog's ISO 8601 headers) and journald messages (identifier, pid and message
//! known separately). No I/O here: the auth monitor's runtime follows the files and the journal
//! and calls [`parse_line`] / [`parse_message`].
//!
//! Covered: OpenSSH `sshd` (and `sshd-session`, OpenSSH 9.8+), sudo 1.8–1.9, su (util-linux and
//! shadow), login (util-linux and shadow), shadow-utils account tools (useradd, usermod, userdel,
//! groupadd, groupmod, groupdel, gpasswd, passwd, chage, chsh, chfn) and pam_unix.
//!
//! Rules the parsers keep:
//! - They never panic, whatever the bytes: every slice is cut at a position found by a `str`
//!   search for ASCII text, so it is always on a character boundary; no indexing by arithmetic
//!   on untrusted lengths.
//! - One event per occurrence where a tool itself logs one action several times in a row:
//!   shadow-utils writes `group added to /etc/group…`, `group added to /etc/gshadow…` and then
//!   `new group: …` for one group, and `add 'bob' to group 'sudo'` then `add 'bob' to shadow
//!   group 'sudo'`: only the line that is always written (`new group:`, the non-shadow one) is an
//!   event. `pam_unix(sshd:auth): authentication failure` is not an event either: sshd's own
//!   `Failed password …` line, which carries the port and method, always follows it.
//!   Lines from different layers of one login (sshd's `Accepted …` and pam's `session opened`,
//!   sudo's `3 incorrect password attempts` and pam's `authentication failure`) are each
//!   events, with different kinds or `detail`, so the runtime can pair them.
//! - rsyslog's `message repeated N times: [ … ]` is parsed as its inner message, with
//!   `occurrences = N`.

/// What kind of authentication event a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AuthKind {
    /// sshd `Accepted METHOD for USER from ADDR port PORT ssh2[: KEYTYPE FP]`.
    /// (The `Default` exists only for struct-update syntax: parsers always set the kind.)
    #[default]
    SshAccepted,
    /// sshd `Failed METHOD for [invalid user ]USER from ADDR port PORT ssh2[: …]`.
    SshFailed,
    /// sshd `Invalid user X from ADDR[ port P]`, and `User X from ADDR not allowed because …`.
    SshInvalidUser,
    /// `pam_unix(sshd:session): session closed for user X`, sshd `Disconnected from user X ADDR port P`.
    SshSessionClosed,
    /// `pam_unix(sshd:session): session opened for user X(uid=N) by (uid=0)`.
    SshSessionOpened,
    /// sudo `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`.
    SudoCommand,
    /// sudo `N incorrect password attempt(s)` and `pam_unix(sudo:auth): authentication failure`.
    SudoAuthFailure,
    /// sudo `user NOT in sudoers` / `X is not in the sudoers file`.
    SudoNotInSudoers,
    /// sudo refused for another reason: `command not allowed`, `user NOT authorized on host`,
    /// `a password is required` (sudo -n), …; the reason is in `detail`.
    SudoDenied,
    /// su `(to root) alice on pts/0`, `Successful su for root by alice`,
    /// `pam_unix(su:session): session opened for user root by alice(uid=1000)`.
    SuSuccess,
    /// su `FAILED SU (to root) alice on pts/0`, `FAILED su for root by alice`,
    /// `pam_unix(su:auth): authentication failure …`.
    SuFailure,
    /// login `ROOT LOGIN  on '/dev/tty1'`, `LOGIN ON tty1 BY alice`,
    /// `pam_unix(login:session): session opened for user alice …`.
    ConsoleLogin,
    /// login `FAILED LOGIN (1) on '/dev/tty1' FOR 'alice', Authentication failure`,
    /// `FAILED LOGIN 1 FROM tty1 FOR alice, …`, `pam_unix(login:auth): authentication failure`.
    ConsoleLoginFailure,
    /// useradd `new user: name=bob, UID=1001, …`.
    UserAdded,
    /// usermod, chage, chsh, chfn; group membership changes (`add 'bob' to group 'sudo'`).
    UserChanged,
    /// userdel `delete user 'bob'`.
    UserDeleted,
    /// groupadd / useradd `new group: name=bob, GID=1001`.
    GroupAdded,
    /// groupmod `group changed in /etc/group (…)`, gpasswd `user alice added by root to group sudo`.
    GroupChanged,
    /// groupdel `group 'x' removed`, userdel `removed group 'bob' owned by 'bob'`.
    GroupDeleted,
    /// `pam_unix(passwd:chauthtok): password changed for bob`, shadow passwd
    /// `password for 'bob' changed by 'root'`.
    PasswordChanged,
}

impl AuthKind {
    pub const ALL: [AuthKind; 20] = [
        AuthKind::SshAccepted,
        AuthKind::SshFailed,
        AuthKind::SshInvalidUser,
        AuthKind::SshSessionClosed,
        AuthKind::SshSessionOpened,
        AuthKind::SudoCommand,
        AuthKind::SudoAuthFailure,
        AuthKind::SudoNotInSudoers,
        AuthKind::SudoDenied,
        AuthKind::SuSuccess,
        AuthKind::SuFailure,
        AuthKind::ConsoleLogin,
        AuthKind::ConsoleLoginFailure,
        AuthKind::UserAdded,
        AuthKind::UserChanged,
        AuthKind::UserDeleted,
        AuthKind::GroupAdded,
        AuthKind::GroupChanged,
        AuthKind::GroupDeleted,
        AuthKind::PasswordChanged,
    ];

    /// snake_case of the kind, for the protobuf `AuthEvent.action`.
    pub fn action(self) -> &'static str {
        match self {
            AuthKind::SshAccepted => "ssh_accepted",
            AuthKind::SshFailed => "ssh_failed",
            AuthKind::SshInvalidUser => "ssh_invalid_user",
            AuthKind::SshSessionClosed => "ssh_session_closed",
            AuthKind::SshSessionOpened => "ssh_session_opened",
            AuthKind::SudoCommand => "sudo_command",
            AuthKind::SudoAuthFailure => "sudo_auth_failure",
            AuthKind::SudoNotInSudoers => "sudo_not_in_sudoers",
            AuthKind::SudoDenied => "sudo_denied",
            AuthKind::SuSuccess => "su_success",
            AuthKind::SuFailure => "su_failure",
            AuthKind::ConsoleLogin => "console_login",
            AuthKind::ConsoleLoginFailure => "console_login_failure",
            AuthKind::UserAdded => "user_added",
            AuthKind::UserChanged => "user_changed",
            AuthKind::UserDeleted => "user_deleted",
            AuthKind::GroupAdded => "group_added",
            AuthKind::GroupChanged => "group_changed",
            AuthKind::GroupDeleted => "group_deleted",
            AuthKind::PasswordChanged => "password_changed",
        }
    }

    /// False for the failures and refusals (what the severity rules count), true otherwise.
    pub fn success(self) -> bool {
        !matches!(
            self,
            AuthKind::SshFailed
                | AuthKind::SshInvalidUser
                | AuthKind::SudoAuthFailure
                | AuthKind::SudoNotInSudoers
                | AuthKind::SudoDenied
                | AuthKind::SuFailure
                | AuthKind::ConsoleLoginFailure
        )
    }
}

/// One parsed authentication event. Empty strings / 0 mean "not in the line".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRecord {
    pub kind: AuthKind,
    /// The syslog tag's program (basename), e.g. sshd, sshd-session, sudo, su, login, useradd.
    pub program: String,
    /// 0 when the header has none.
    pub pid: u32,
    /// Who authenticated / who ran sudo or su / the account changed.
    pub user: String,
    /// sudo `USER=`, su target.
    pub target_user: String,
    /// ssh peer address (IPv4 or IPv6, as written), pam `rhost=`, login `FROM` host.
    pub source_address: String,
    pub source_port: u32,
    /// ssh: password, publickey, keyboard-interactive/pam, gssapi-with-mic, hostbased, none.
    pub method: String,
    /// False for failures and refusals (see [`AuthKind::success`]).
    pub success: bool,
    pub invalid_user: bool,
    /// Without `/dev/`: `pts/0`, `tty1`; pam's `ssh` for sshd.
    pub tty: String,
    pub cwd: String,
    pub command: String,
    /// Anything else worth one line: key type and fingerprint, `3 incorrect password attempts`,
    /// the refusal reason, sudo's other fields (`GROUP=adm`), the account tool's message.
    pub detail: String,
    /// The group of a group event or a membership change.
    pub group: String,
    /// How many occurrences the line stands for: 1, or N for rsyslog's
    /// `message repeated N times: [ … ]`.
    pub occurrences: u32,
    /// The syslog header's timestamp as written (`Nov  6 14:09:18` or ISO 8601); empty from
    /// [`parse_message`].
    pub timestamp: String,
    /// The syslog header's host; empty from [`parse_message`].
    pub host: String,
    /// The line can be read more than one way (sudo fields repeated in a user-chosen working
    /// directory or command); `detail` says how.
    pub ambiguous: bool,
}

impl Default for AuthRecord {
    fn default() -> AuthRecord {
        AuthRecord {
            kind: AuthKind::default(),
            program: String::new(),
            pid: 0,
            user: String::new(),
            target_user: String::new(),
            source_address: String::new(),
            source_port: 0,
            method: String::new(),
            success: false,
            invalid_user: false,
            tty: String::new(),
            cwd: String::new(),
            command: String::new(),
            detail: String::new(),
            group: String::new(),
            occurrences: 1,
            timestamp: String::new(),
            host: String::new(),
            ambiguous: false,
        }
    }
}

mod pam;
mod shadow;
mod sshd;
mod su_login;
mod sudo;
mod syslog;

pub use syslog::{split_syslog, ParseError, SyslogLine};

/// One auth.log / secure line: `Ok(Some)` for an auth event, `Ok(None)` for a syslog line that is
/// not one, `Err` for a line that is not syslog (invalid UTF-8 is decoded lossily).
pub fn parse_line(line: &[u8]) -> Result<Option<AuthRecord>, ParseError> {
    let text = String::from_utf8_lossy(line);
    let header = split_syslog(&text)?;
    Ok(
        parse_message(header.program, header.pid, header.message).map(|mut r| {
            r.timestamp = header.timestamp.to_owned();
            r.host = header.host.to_owned();
            r
        }),
    )
}

/// One message whose program and pid are known separately (journald `SYSLOG_IDENTIFIER`,
/// `_PID`, `MESSAGE`). `program` may be a path; its basename is used.
pub fn parse_message(program: &str, pid: Option<u32>, message: &str) -> Option<AuthRecord> {
    let program = program.rsplit('/').next().unwrap_or(program);
    let (msg, occurrences) = unwrap_repeated(message.trim());
    let mut rec = if let Some(pam) = msg.strip_prefix("pam_unix(") {
        pam::parse_pam(pam)?
    } else {
        match program {
            "sshd" | "sshd-session" | "sshd-auth" => sshd::parse_sshd(msg)?,
            "sudo" => sudo::parse_sudo(msg)?,
            "su" => su_login::parse_su(msg)?,
            "login" => su_login::parse_login(msg)?,
            "useradd" | "usermod" | "userdel" | "groupadd" | "groupmod" | "groupdel"
            | "gpasswd" | "passwd" | "chage" | "chsh" | "chfn" => {
                shadow::parse_account(program, msg)?
            }
            _ => return None,
        }
    };
    program.clone_into(&mut rec.program);
    rec.pid = pid.unwrap_or(0);
    rec.occurrences = occurrences;
    Some(rec)
}

impl AuthRecord {
    fn new(kind: AuthKind) -> AuthRecord {
        AuthRecord {
            kind,
            success: kind.success(),
            ..AuthRecord::default()
        }
    }

    /// `action` string for the protobuf `AuthEvent.action`, e.g. `ssh_accepted`.
    pub fn action(&self) -> &'static str {
        self.kind.action()
    }

    /// One human line, e.g. `SSH login accepted: alice from 203.0.113.5 port 52144 (publickey)`.
    /// Values are as logged (not escaped): the printer escapes.
    pub fn describe(&self) -> String {
        // su run by a process without a login name: pam says only `by (uid=0)`.
        let user = match self.detail.strip_prefix("by ") {
            Some(uid) if self.user.is_empty() && uid.starts_with("uid ") => uid,
            _ => or_unknown(&self.user),
        };
        let from = self.peer_part();
        let on_tty = if self.tty.is_empty() {
            String::new()
        } else {
            format!(" on {}", self.tty)
        };
        let mut s = match self.kind {
            AuthKind::SshAccepted => {
                format!(
                    "SSH login accepted: {user}{from} ({})",
                    or_unknown(&self.method)
                )
            }
            AuthKind::SshFailed => format!(
                "Failed SSH {} for {}{user}{from}",
                or_unknown(&self.method),
                if self.invalid_user {
                    "invalid user "
                } else {
                    ""
                }
            ),
            AuthKind::SshInvalidUser if self.detail.starts_with("not allowed") => {
                format!("SSH login refused for {user}{from}")
            }
            AuthKind::SshInvalidUser => format!("SSH login attempt for invalid user {user}{from}"),
            AuthKind::SshSessionOpened => format!("SSH session opened for {user}{from}"),
            AuthKind::SshSessionClosed => format!("SSH session closed for {user}{from}"),
            AuthKind::SudoCommand if self.command == "list" => {
                format!("sudo: {user} listed their sudo rights{on_tty}")
            }
            AuthKind::SudoCommand => format!(
                "sudo: {user} ran {} as {}{on_tty}",
                or_unknown(&self.command),
                or_unknown(&self.target_user)
            ),
            AuthKind::SudoAuthFailure => format!("sudo: authentication failure for {user}"),
            AuthKind::SudoNotInSudoers => format!("sudo: {user} is not in sudoers"),
            AuthKind::SudoDenied => format!("sudo: {user} was refused"),
            AuthKind::SuSuccess => {
                format!(
                    "su: {user} became {}{on_tty}",
                    or_unknown(&self.target_user)
                )
            }
            AuthKind::SuFailure => format!(
                "su: {user} failed to become {}{on_tty}",
                or_unknown(&self.target_user)
            ),
            AuthKind::ConsoleLogin => format!("Console login: {user}{on_tty}{from}"),
            AuthKind::ConsoleLoginFailure => {
                format!("Failed console login for {user}{on_tty}{from}")
            }
            AuthKind::UserAdded => format!("User added: {user}"),
            AuthKind::UserChanged => format!("User changed: {user}"),
            AuthKind::UserDeleted => format!("User deleted: {user}"),
            AuthKind::GroupAdded => format!("Group added: {}", or_unknown(&self.group)),
            AuthKind::GroupChanged => format!("Group changed: {}", or_unknown(&self.group)),
            AuthKind::GroupDeleted => format!("Group deleted: {}", or_unknown(&self.group)),
            AuthKind::PasswordChanged => format!("Password changed for {user}"),
        };
        match self.kind {
            AuthKind::SudoAuthFailure | AuthKind::SudoDenied | AuthKind::SudoNotInSudoers => {
                let mut parts = Vec::new();
                if self.kind != AuthKind::SudoNotInSudoers && !self.detail.is_empty() {
                    parts.push(self.detail.clone());
                }
                if !self.command.is_empty() {
                    let target = if self.target_user.is_empty() {
                        String::new()
                    } else {
                        format!(" as {}", self.target_user)
                    };
                    parts.push(format!("tried {}{target}", self.command));
                }
                if !parts.is_empty() {
                    s.push_str(&format!(" ({})", parts.join("; ")));
                }
            }
            AuthKind::UserAdded
            | AuthKind::UserChanged
            | AuthKind::GroupAdded
            | AuthKind::GroupChanged
            | AuthKind::ConsoleLoginFailure
            | AuthKind::SshInvalidUser
                if !self.detail.is_empty() =>
            {
                s.push_str(&format!(" ({})", self.detail));
            }
            _ => {}
        }
        if self.occurrences > 1 {
            s.push_str(&format!(" [{} times]", self.occurrences));
        }
        s
    }

    fn peer_part(&self) -> String {
        match (self.source_address.is_empty(), self.source_port) {
            (true, _) => String::new(),
            (false, 0) => format!(" from {}", self.source_address),
            (false, port) => format!(" from {} port {port}", self.source_address),
        }
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "?"
    } else {
        s
    }
}

// ---- helpers shared by the programs' parsers ----

fn parse_digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// rsyslog's `message repeated N times: [ inner]` → (inner, N).
fn unwrap_repeated(msg: &str) -> (&str, u32) {
    let Some(rest) = msg.strip_prefix("message repeated ") else {
        return (msg, 1);
    };
    let Some((n, inner)) = rest.split_once(" times: [") else {
        return (msg, 1);
    };
    let Some(n) = parse_digits(n) else {
        return (msg, 1);
    };
    // rsyslog cuts the inner message at 800 characters, and the `]` with it.
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    (inner.trim(), n.max(1))
}

/// `/dev/pts/0` → `pts/0`; `unknown`, `none` → empty.
fn tty_name(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix("/dev/").unwrap_or(s);
    match s {
        "unknown" | "none" | "(none)" | "???" => String::new(),
        _ => s.to_owned(),
    }
}

/// Strips one pair of quotes: `'bob'`, `` `bob' `` (older shadow-utils), `"bob"`.
fn unquote(s: &str) -> &str {
    let s = s.trim();
    for (open, close) in [('\'', '\''), ('`', '\''), ('"', '"')] {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            return inner;
        }
    }
    s
}

/// The quoted strings of a message, in order: `add 'bob' to group 'sudo'` → [bob, sudo].
fn quoted(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(['\'', '`']) {
        let after = &rest[start + 1..];
        let Some(end) = after.find('\'') else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

/// `alice(uid=1000)` → (alice, Some(1000)); `(uid=0)` → ("", Some(0)); `alice` → (alice, None).
fn name_uid(s: &str) -> (&str, Option<u32>) {
    let s = s.trim();
    if let Some((name, uid)) = s.strip_suffix(')').and_then(|t| t.rsplit_once("(uid=")) {
        return (name, parse_digits(uid));
    }
    (s, None)
}

/// Finds, from the right, ` from ADDR port N` (port optional unless `port_required`) whose tail
/// `accept_tail` accepts; returns (text before, addr, port, tail). Scanning from the right makes
/// a user name that itself contains ` from X port Y` (invalid users are chosen by the client)
/// end up in the user, not in the address.
fn split_from_addr(
    s: &str,
    port_required: bool,
    accept_tail: fn(&str) -> bool,
) -> Option<(&str, &str, u32, &str)> {
    for (i, _) in s.rmatch_indices(" from ") {
        let after = &s[i + " from ".len()..];
        let addr_end = after.find(' ').unwrap_or(after.len());
        let addr = &after[..addr_end];
        if addr.is_empty() {
            continue;
        }
        let rest = &after[addr_end..];
        if let Some(p) = rest.strip_prefix(" port ") {
            let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            let Some(port) = parse_digits(&p[..end]) else {
                continue;
            };
            let tail = &p[end..];
            if accept_tail(tail) {
                return Some((&s[..i], addr, port, tail));
            }
        } else if !port_required && accept_tail(rest) {
            return Some((&s[..i], addr, 0, rest));
        }
    }
    None
}

fn tail_is_end(t: &str) -> bool {
    t.is_empty()
}

fn tail_is_ssh_proto(t: &str) -> bool {
    t.is_empty() || t.starts_with(" ssh")
}

#[cfg(test)]
mod tests;
