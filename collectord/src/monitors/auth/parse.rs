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

use std::fmt;

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
        }
    }
}

/// The syslog header of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    /// As written: `Nov 26 14:09:18`, `Nov  6 14:09:18` or `2026-11-26T14:09:18.123456+00:00`.
    pub timestamp: &'a str,
    pub host: &'a str,
    /// The tag without `[pid]`, as written (may be a path).
    pub program: &'a str,
    pub pid: Option<u32>,
    /// After `tag: ` (one space removed; sudo's padding kept).
    pub message: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a syslog line at all (no timestamp, host and tag): the caller counts it.
    NotSyslog,
    /// An empty or whitespace-only line (e.g. a trailing newline): not an error worth counting.
    Empty,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotSyslog => f.write_str("not a syslog line"),
            ParseError::Empty => f.write_str("empty line"),
        }
    }
}

impl std::error::Error for ParseError {}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Length of the timestamp at the start of `b`: RFC 3164 `Mmm dd hh:mm:ss` (day space-padded)
/// or ISO 8601 `YYYY-MM-DDThh:mm:ss[.frac][Z|±hh:mm]`.
fn timestamp_len(b: &[u8]) -> Option<usize> {
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let is = |i: usize, c: u8| b.get(i) == Some(&c);
    let time_at = |i: usize| {
        digit(i)
            && digit(i + 1)
            && is(i + 2, b':')
            && digit(i + 3)
            && digit(i + 4)
            && is(i + 5, b':')
            && digit(i + 6)
            && digit(i + 7)
    };
    if b.len() >= 15
        && MONTHS.iter().any(|m| b[..3] == m[..])
        && is(3, b' ')
        && (is(4, b' ') || digit(4))
        && digit(5)
        && is(6, b' ')
        && time_at(7)
    {
        return Some(15);
    }
    if (0..4).all(digit)
        && is(4, b'-')
        && digit(5)
        && digit(6)
        && is(7, b'-')
        && digit(8)
        && digit(9)
        && is(10, b'T')
        && time_at(11)
    {
        let extra = b[19..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || matches!(c, b'.' | b':' | b'+' | b'-' | b'Z'))
            .count();
        return Some(19 + extra);
    }
    None
}

/// Splits one line into its syslog header. A trailing `\n` / `\r\n` is ignored.
pub fn split_syslog(line: &str) -> Result<SyslogLine<'_>, ParseError> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let ts_len = timestamp_len(line.as_bytes()).ok_or(ParseError::NotSyslog)?;
    let timestamp = &line[..ts_len];
    let rest = line[ts_len..]
        .strip_prefix(' ')
        .ok_or(ParseError::NotSyslog)?
        .trim_start_matches(' ');
    let (host, rest) = rest.split_once(' ').ok_or(ParseError::NotSyslog)?;
    let colon = rest.find(':').ok_or(ParseError::NotSyslog)?;
    let tag = &rest[..colon];
    if host.is_empty() || tag.is_empty() || tag.contains(char::is_whitespace) {
        return Err(ParseError::NotSyslog);
    }
    let message = &rest[colon + 1..];
    let message = message.strip_prefix(' ').unwrap_or(message);
    let (program, pid) = match tag.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((program, pid)) => (program, parse_digits(pid)),
        None => (tag, None),
    };
    if program.is_empty() {
        return Err(ParseError::NotSyslog);
    }
    Ok(SyslogLine {
        timestamp,
        host,
        program,
        pid,
        message,
    })
}

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
        parse_pam(pam)?
    } else {
        match program {
            "sshd" | "sshd-session" | "sshd-auth" => parse_sshd(msg)?,
            "sudo" => parse_sudo(msg)?,
            "su" => parse_su(msg)?,
            "login" => parse_login(msg)?,
            "useradd" | "usermod" | "userdel" | "groupadd" | "groupmod" | "groupdel"
            | "gpasswd" | "passwd" | "chage" | "chsh" | "chfn" => parse_account(program, msg)?,
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

// ---- helpers ----

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

// ---- sshd ----

fn parse_sshd(msg: &str) -> Option<AuthRecord> {
    let msg = msg.strip_suffix(" [preauth]").unwrap_or(msg).trim_end();
    if let Some(rest) = msg.strip_prefix("Accepted ") {
        return ssh_auth(AuthKind::SshAccepted, rest);
    }
    if let Some(rest) = msg.strip_prefix("Failed ") {
        return ssh_auth(AuthKind::SshFailed, rest);
    }
    if let Some(rest) = msg.strip_prefix("Invalid user ") {
        // OpenSSH 7.5+: `Invalid user X from ADDR port P`; before: `Invalid user X from ADDR`.
        // `Invalid user  from …` (empty name) keeps the empty user.
        let rest = format!(" {rest}");
        let (user, addr, port, _) = split_from_addr(&rest, false, tail_is_end)?;
        let mut r = AuthRecord::new(AuthKind::SshInvalidUser);
        r.user = user.strip_prefix(' ').unwrap_or(user).to_owned();
        r.source_address = addr.to_owned();
        r.source_port = port;
        r.invalid_user = true;
        return Some(r);
    }
    if let Some(rest) = msg.strip_prefix("User ") {
        // `User root from 203.0.113.9 not allowed because not listed in AllowUsers`
        let (who, reason) = rest.rsplit_once(" not allowed because ")?;
        let (user, addr) = who.rsplit_once(" from ")?;
        let mut r = AuthRecord::new(AuthKind::SshInvalidUser);
        r.user = user.to_owned();
        r.source_address = addr.to_owned();
        r.invalid_user = true;
        r.detail = format!("not allowed because {reason}");
        return Some(r);
    }
    if let Some(rest) = msg.strip_prefix("Disconnected from user ") {
        // `Disconnected from user alice 203.0.113.5 port 52144` (OpenSSH 7.6+)
        let (who, port) = rest.rsplit_once(" port ")?;
        let port = parse_digits(port)?;
        let (user, addr) = who.rsplit_once(' ')?;
        let mut r = AuthRecord::new(AuthKind::SshSessionClosed);
        r.user = user.to_owned();
        r.source_address = addr.to_owned();
        r.source_port = port;
        r.detail = "disconnected".to_owned();
        return Some(r);
    }
    None
}

/// `METHOD for [invalid user ]USER from ADDR port PORT ssh2[: extra]`.
fn ssh_auth(kind: AuthKind, rest: &str) -> Option<AuthRecord> {
    let (method, rest) = rest.split_once(" for ")?;
    if method.is_empty() || method.contains(' ') {
        return None;
    }
    // An empty invalid user name is logged as `for invalid user  from`: keep the space so
    // that ` from ` is still found.
    let rest = format!(" {rest}");
    let (who, addr, port, tail) = split_from_addr(&rest, true, tail_is_ssh_proto)?;
    let who = who.strip_prefix(' ').unwrap_or(who);
    let mut r = AuthRecord::new(kind);
    match who.strip_prefix("invalid user ") {
        Some(user) => {
            r.invalid_user = true;
            r.user = user.to_owned();
        }
        None => r.user = who.to_owned(),
    }
    method.clone_into(&mut r.method);
    r.source_address = addr.to_owned();
    r.source_port = port;
    // ` ssh2: ED25519 SHA256:…` → the key type and fingerprint.
    if let Some((_, extra)) = tail.split_once(": ") {
        extra.trim().clone_into(&mut r.detail);
    }
    Some(r)
}

// ---- pam_unix ----

/// After `pam_unix(`: `SERVICE:TYPE): text`.
fn parse_pam(rest: &str) -> Option<AuthRecord> {
    let (facility, text) = rest.split_once("):")?;
    let (service, kind) = facility.split_once(':')?;
    let text = text.trim();
    match kind {
        "session" => {
            if let Some(rest) = text.strip_prefix("session opened for user ") {
                // `alice(uid=1000) by (uid=0)` (Linux-PAM 1.4+), `alice by (uid=0)` (older),
                // `root(uid=0) by alice(uid=1000)` (su, sudo).
                let (who, by) = match rest.rsplit_once(" by ") {
                    Some((who, by)) => (who, by),
                    None => (rest, ""),
                };
                let (user, _) = name_uid(who);
                let (by_name, by_uid) = name_uid(by);
                let mut r = match service {
                    "sshd" => AuthRecord::new(AuthKind::SshSessionOpened),
                    "login" => AuthRecord::new(AuthKind::ConsoleLogin),
                    "su" | "su-l" => {
                        let mut r = AuthRecord::new(AuthKind::SuSuccess);
                        user.clone_into(&mut r.target_user);
                        by_name.clone_into(&mut r.user);
                        if by_name.is_empty() {
                            if let Some(uid) = by_uid {
                                r.detail = format!("by uid {uid}");
                            }
                        }
                        return Some(r);
                    }
                    _ => return None,
                };
                user.clone_into(&mut r.user);
                return Some(r);
            }
            if let Some(user) = text.strip_prefix("session closed for user ") {
                if service == "sshd" {
                    let mut r = AuthRecord::new(AuthKind::SshSessionClosed);
                    user.trim().clone_into(&mut r.user);
                    r.detail = "session closed".to_owned();
                    return Some(r);
                }
            }
            None
        }
        "auth" => {
            // `authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=root`
            let fields = text.strip_prefix("authentication failure;")?;
            let mut kv = PamFailure::default();
            for tok in fields.split_whitespace() {
                let Some((k, v)) = tok.split_once('=') else {
                    continue;
                };
                match k {
                    "logname" => kv.logname = v,
                    "tty" => kv.tty = v,
                    "ruser" => kv.ruser = v,
                    "rhost" => kv.rhost = v,
                    "user" => kv.user = v,
                    _ => {}
                }
            }
            let requester = if kv.ruser.is_empty() {
                kv.logname
            } else {
                kv.ruser
            };
            let mut r = match service {
                "sudo" | "sudo-i" => {
                    let mut r = AuthRecord::new(AuthKind::SudoAuthFailure);
                    r.user = if kv.user.is_empty() {
                        requester
                    } else {
                        kv.user
                    }
                    .to_owned();
                    r
                }
                "su" | "su-l" => {
                    let mut r = AuthRecord::new(AuthKind::SuFailure);
                    requester.clone_into(&mut r.user);
                    kv.user.clone_into(&mut r.target_user);
                    r
                }
                "login" => {
                    let mut r = AuthRecord::new(AuthKind::ConsoleLoginFailure);
                    kv.user.clone_into(&mut r.user);
                    kv.rhost.clone_into(&mut r.source_address);
                    r
                }
                // sshd: its own `Failed …` line follows with method and port; others: not ours.
                _ => return None,
            };
            r.tty = tty_name(kv.tty);
            r.detail = "pam_unix authentication failure".to_owned();
            Some(r)
        }
        "chauthtok" => {
            let user = text.strip_prefix("password changed for ")?;
            let mut r = AuthRecord::new(AuthKind::PasswordChanged);
            user.trim().clone_into(&mut r.user);
            r.detail = format!("via {service}");
            Some(r)
        }
        _ => None,
    }
}

#[derive(Default)]
struct PamFailure<'a> {
    logname: &'a str,
    tty: &'a str,
    ruser: &'a str,
    rhost: &'a str,
    user: &'a str,
}

// ---- sudo ----

/// `alice : [REASON ; ]TTY=pts/0 ; PWD=/home/alice ; USER=root[ ; GROUP=x][ ; ENV=…] ; COMMAND=…`
fn parse_sudo(msg: &str) -> Option<AuthRecord> {
    let Some((user, rest)) = msg.split_once(" : ") else {
        // `bob is not in the sudoers file.  This incident will be reported.`
        let (user, _) = msg.split_once(" is not in the sudoers file")?;
        if user.is_empty() || user.contains(' ') {
            return None;
        }
        let mut r = AuthRecord::new(AuthKind::SudoNotInSudoers);
        user.clone_into(&mut r.user);
        r.detail = "not in the sudoers file".to_owned();
        return Some(r);
    };
    let user = user.trim();
    if user.is_empty() || user.contains(char::is_whitespace) {
        return None;
    }
    // COMMAND is last and may itself contain ` ; `.
    let (head, command) = if let Some(c) = rest.strip_prefix("COMMAND=") {
        ("", Some(c))
    } else if let Some((h, c)) = rest.split_once(" ; COMMAND=") {
        (h, Some(c))
    } else {
        (rest, None)
    };
    let mut r = AuthRecord::new(AuthKind::SudoCommand);
    user.clone_into(&mut r.user);
    let mut known = command.is_some();
    let mut reason = "";
    let mut extra: Vec<&str> = Vec::new();
    for field in head.split(" ; ") {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        match sudo_kv(field) {
            Some(("TTY", v)) => {
                r.tty = tty_name(v);
                known = true;
            }
            Some(("PWD", v)) => {
                v.clone_into(&mut r.cwd);
                known = true;
            }
            Some(("USER", v)) => {
                v.clone_into(&mut r.target_user);
                known = true;
            }
            Some(_) => extra.push(field),
            None if reason.is_empty() => reason = field,
            None => extra.push(field),
        }
    }
    if !known {
        // `alice : unable to resolve host …` and other sudo diagnostics.
        return None;
    }
    if let Some(c) = command {
        c.trim().clone_into(&mut r.command);
    }
    let lower = reason.to_ascii_lowercase();
    r.kind = if reason.is_empty() {
        AuthKind::SudoCommand
    } else if lower.contains("incorrect password attempt") {
        AuthKind::SudoAuthFailure
    } else if lower.contains("not in sudoers") || lower.contains("not in the sudoers file") {
        AuthKind::SudoNotInSudoers
    } else {
        AuthKind::SudoDenied
    };
    r.success = r.kind.success();
    let mut detail: Vec<&str> = Vec::new();
    if !reason.is_empty() {
        detail.push(reason);
    }
    detail.extend(extra);
    r.detail = detail.join(" ; ");
    Some(r)
}

/// `KEY=value` with an upper-case key (sudo's field names).
fn sudo_kv(field: &str) -> Option<(&str, &str)> {
    let (k, v) = field.split_once('=')?;
    (!k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')).then_some((k, v))
}

// ---- su ----

fn parse_su(msg: &str) -> Option<AuthRecord> {
    // util-linux: `(to root) alice on pts/0`, `FAILED SU (to root) alice on pts/0`.
    let (kind, rest) = match msg.strip_prefix("FAILED SU ") {
        Some(rest) => (AuthKind::SuFailure, rest),
        None => (AuthKind::SuSuccess, msg),
    };
    if let Some(rest) = rest.strip_prefix("(to ") {
        let (target, rest) = rest.split_once(") ")?;
        let (user, tty) = match rest.rsplit_once(" on ") {
            Some((user, tty)) => (user, tty),
            None => (rest, ""),
        };
        let mut r = AuthRecord::new(kind);
        target.clone_into(&mut r.target_user);
        user.clone_into(&mut r.user);
        r.tty = tty_name(tty);
        return Some(r);
    }
    // shadow-utils: `Successful su for root by alice`, `FAILED su for root by alice`.
    // (Its sulog lines `+ /dev/pts/0 alice:root` / `- …` repeat these: not events.)
    let (kind, rest) = if let Some(rest) = msg.strip_prefix("Successful su for ") {
        (AuthKind::SuSuccess, rest)
    } else if let Some(rest) = msg.strip_prefix("FAILED su for ") {
        (AuthKind::SuFailure, rest)
    } else {
        return None;
    };
    let (target, user) = rest.rsplit_once(" by ")?;
    let mut r = AuthRecord::new(kind);
    target.clone_into(&mut r.target_user);
    user.clone_into(&mut r.user);
    Some(r)
}

// ---- login ----

fn parse_login(msg: &str) -> Option<AuthRecord> {
    if let Some(rest) = msg.strip_prefix("ROOT LOGIN ") {
        // shadow: `ROOT LOGIN  on '/dev/tty1'`; util-linux: `ROOT LOGIN ON tty1[ FROM host]`.
        let mut r = AuthRecord::new(AuthKind::ConsoleLogin);
        r.user = "root".to_owned();
        login_place(rest, &mut r);
        return Some(r);
    }
    if let Some(rest) = msg.strip_prefix("LOGIN ON ") {
        // util-linux: `LOGIN ON tty1 BY alice[ FROM host]`.
        let (tty, rest) = rest.split_once(" BY ")?;
        let (user, host) = match rest.rsplit_once(" FROM ") {
            Some((user, host)) => (user, host),
            None => (rest, ""),
        };
        let mut r = AuthRecord::new(AuthKind::ConsoleLogin);
        r.tty = tty_name(tty);
        user.clone_into(&mut r.user);
        host.clone_into(&mut r.source_address);
        return Some(r);
    }
    if msg.starts_with('\'') {
        // shadow with LOG_OK_LOGINS: `'alice' logged in  on '/dev/tty1'`.
        let (user, place) = msg.split_once(" logged in")?;
        let mut r = AuthRecord::new(AuthKind::ConsoleLogin);
        unquote(user).clone_into(&mut r.user);
        login_place(place, &mut r);
        return Some(r);
    }
    let (rest, too_many) = if let Some(rest) = msg.strip_prefix("FAILED LOGIN ") {
        (rest, false)
    } else if let Some(rest) = msg.strip_prefix("TOO MANY LOGIN TRIES ") {
        (rest, true)
    } else {
        return None;
    };
    // shadow: `(1) on '/dev/tty1'[ from 'host'] FOR 'alice', Authentication failure`
    // util-linux: `1 FROM tty1 FOR alice, Authentication failure`
    let rest = rest.trim_start();
    let count_end = rest.find(' ').unwrap_or(rest.len());
    let count = rest[..count_end]
        .trim_start_matches('(')
        .trim_end_matches(')');
    let rest = &rest[count_end..];
    let (place, rest) = rest.split_once(" FOR ")?;
    let (user, reason) = match rest.split_once(", ") {
        Some((user, reason)) => (user, reason),
        None => (rest, ""),
    };
    let mut r = AuthRecord::new(AuthKind::ConsoleLoginFailure);
    unquote(user).clone_into(&mut r.user);
    login_place(place, &mut r);
    let mut detail = String::new();
    if too_many {
        detail.push_str("too many tries, ");
    }
    if let Some(n) = parse_digits(count) {
        detail.push_str(&format!("attempt {n}: "));
    }
    detail.push_str(reason.trim());
    r.detail = detail.trim_end_matches([' ', ':', ',']).to_owned();
    Some(r)
}

/// ` on '/dev/tty1'[ from 'host']` (shadow) or `ON tty1[ FROM host]` / `FROM tty1` (util-linux
/// writes the tty after FROM when there is no remote host).
fn login_place(s: &str, r: &mut AuthRecord) {
    let s = s.trim();
    let (on, from) = if let Some(rest) = s.strip_prefix("on ").or_else(|| s.strip_prefix("ON ")) {
        match rest
            .split_once(" from ")
            .or_else(|| rest.split_once(" FROM "))
        {
            Some((on, from)) => (on, from),
            None => (rest, ""),
        }
    } else if let Some(rest) = s.strip_prefix("from ").or_else(|| s.strip_prefix("FROM ")) {
        ("", rest)
    } else {
        return;
    };
    let (on, from) = (unquote(on), unquote(from));
    if on.is_empty() && looks_like_tty(from) {
        r.tty = tty_name(from);
    } else {
        r.tty = tty_name(on);
        from.clone_into(&mut r.source_address);
    }
}

fn looks_like_tty(s: &str) -> bool {
    let s = s.strip_prefix("/dev/").unwrap_or(s);
    ["tty", "pts/", "console", "hvc", "ttyS", "ttyAMA"]
        .iter()
        .any(|p| s.starts_with(p))
}

// ---- shadow-utils account tools ----

fn parse_account(program: &str, msg: &str) -> Option<AuthRecord> {
    // Lines a tool writes twice for one change (/etc/gshadow after /etc/group): the first is the event.
    if msg.contains("/etc/gshadow") || msg.contains("shadow group") {
        return None;
    }
    if let Some(rest) = msg.strip_prefix("new user: ") {
        let mut r = AuthRecord::new(AuthKind::UserAdded);
        r.detail = key_values(rest, &mut r.user, &mut r.tty);
        return Some(r);
    }
    if let Some(rest) = msg.strip_prefix("new group: ") {
        let mut r = AuthRecord::new(AuthKind::GroupAdded);
        r.detail = key_values(rest, &mut r.group, &mut r.tty);
        return Some(r);
    }
    // `group added to /etc/group: name=bob, GID=1001` is always followed by `new group:`.
    if msg.starts_with("group added to ") {
        return None;
    }
    let q = quoted(msg);
    let first = q.first().copied().unwrap_or("");
    let second = q.get(1).copied().unwrap_or("");
    let mut r = if msg.starts_with("delete user ") {
        let mut r = AuthRecord::new(AuthKind::UserDeleted);
        first.clone_into(&mut r.user);
        return Some(r);
    } else if msg.starts_with("removed group ") {
        // userdel: `removed group 'bob' owned by 'bob'`
        let mut r = AuthRecord::new(AuthKind::GroupDeleted);
        first.clone_into(&mut r.group);
        second.clone_into(&mut r.user);
        r
    } else if msg.starts_with("group '") || msg.starts_with("group `") {
        // groupdel: `group 'x' removed from /etc/group`, then `group 'x' removed`.
        if msg.contains(" removed from ") || !msg.contains(" removed") {
            return None;
        }
        let mut r = AuthRecord::new(AuthKind::GroupDeleted);
        first.clone_into(&mut r.group);
        return Some(r);
    } else if (msg.starts_with("add '") || msg.starts_with("delete '")) && !second.is_empty() {
        // useradd -G / usermod -G / userdel: `add 'bob' to group 'sudo'`, `delete 'bob' from group 'sudo'`
        let mut r = AuthRecord::new(AuthKind::UserChanged);
        first.clone_into(&mut r.user);
        second.clone_into(&mut r.group);
        r
    } else if let Some(rest) = msg.strip_prefix("password for ") {
        // shadow passwd without PAM: `password for 'bob' changed by 'root'`
        let mut r = AuthRecord::new(AuthKind::PasswordChanged);
        first.clone_into(&mut r.user);
        if let Some((_, by)) = rest.split_once(" changed by ") {
            r.detail = format!("by {}", unquote(by));
        }
        return Some(r);
    } else if let Some(rest) = msg.strip_prefix("group changed in ") {
        // groupmod: `group changed in /etc/group (group test/1002, new name: test2)`
        let mut r = AuthRecord::new(AuthKind::GroupChanged);
        if let Some((_, g)) = rest.split_once("(group ") {
            let end = g.find(['/', ',', ')']).unwrap_or(g.len());
            g[..end].clone_into(&mut r.group);
        }
        r
    } else if program == "gpasswd" || program == "groupmod" {
        // gpasswd: `user alice added by root to group sudo`, `members of group sudo set by root to …`
        let mut r = AuthRecord::new(AuthKind::GroupChanged);
        if let Some(rest) = msg.strip_prefix("user ") {
            rest.split(' ').next().unwrap_or("").clone_into(&mut r.user);
        }
        if let Some((_, g)) = msg.rsplit_once("group ") {
            unquote(g.split(' ').next().unwrap_or("")).clone_into(&mut r.group);
        }
        if r.group.is_empty() {
            first.clone_into(&mut r.group);
        }
        r
    } else if let Some(rest) = msg.strip_prefix("changed password expiry for ") {
        // chage
        let mut r = AuthRecord::new(AuthKind::UserChanged);
        rest.trim().clone_into(&mut r.user);
        r
    } else if msg.starts_with("change user ")
        || msg.starts_with("changed user ")
        || msg.starts_with("lock user ")
        || msg.starts_with("unlock user ")
    {
        // usermod: `change user 'bob' shell from '/bin/sh' to '/bin/bash'`, `change user name 'bob' to 'rob'`,
        // `lock user 'bob' password`; chsh: `changed user 'bob' shell to '/bin/zsh'`; chfn.
        let mut r = AuthRecord::new(AuthKind::UserChanged);
        first.clone_into(&mut r.user);
        r
    } else {
        return None;
    };
    msg.clone_into(&mut r.detail);
    Some(r)
}

/// `name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0`: `name` into
/// `name`, `from` into `tty`, the rest returned joined (as written) for `detail`.
fn key_values(s: &str, name: &mut String, tty: &mut String) -> String {
    let mut rest = Vec::new();
    for field in s.split(", ") {
        match field.split_once('=') {
            Some(("name", v)) => v.trim().clone_into(name),
            Some(("from", v)) => *tty = tty_name(v),
            _ => rest.push(field.trim()),
        }
    }
    rest.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    const GOLDEN_IN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/monitors/auth/testdata/auth.log"
    );
    const GOLDEN_OUT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/monitors/auth/testdata/auth.expected.jsonl"
    );

    fn one(line: &str) -> AuthRecord {
        parse_line(line.as_bytes())
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .unwrap_or_else(|| panic!("{line}: not an auth event"))
    }

    /// The golden representation: fields that are set, in a fixed order, plus `message`.
    fn golden_json(r: &AuthRecord) -> String {
        use serde_json::Value;
        let mut fields: Vec<(&str, Value)> = vec![
            ("action", r.action().into()),
            ("program", r.program.as_str().into()),
        ];
        if r.pid != 0 {
            fields.push(("pid", r.pid.into()));
        }
        for (k, v) in [
            ("timestamp", &r.timestamp),
            ("host", &r.host),
            ("user", &r.user),
            ("target_user", &r.target_user),
            ("source_address", &r.source_address),
        ] {
            if !v.is_empty() {
                fields.push((k, v.as_str().into()));
            }
        }
        if r.source_port != 0 {
            fields.push(("source_port", r.source_port.into()));
        }
        for (k, v) in [
            ("method", &r.method),
            ("tty", &r.tty),
            ("cwd", &r.cwd),
            ("command", &r.command),
            ("group", &r.group),
            ("detail", &r.detail),
        ] {
            if !v.is_empty() {
                fields.push((k, v.as_str().into()));
            }
        }
        fields.push(("success", r.success.into()));
        if r.invalid_user {
            fields.push(("invalid_user", true.into()));
        }
        if r.occurrences != 1 {
            fields.push(("occurrences", r.occurrences.into()));
        }
        fields.push(("message", r.describe().into()));
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(*k), v))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    fn golden_result(line: &[u8]) -> String {
        match parse_line(line) {
            Ok(Some(r)) => golden_json(&r),
            Ok(None) => "null".to_owned(),
            Err(e) => format!("\"error: {e}\""),
        }
    }

    fn golden_lines() -> &'static Vec<Vec<u8>> {
        static LINES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        LINES.get_or_init(|| {
            let raw = std::fs::read(GOLDEN_IN).expect("read testdata/auth.log");
            let raw = raw.strip_suffix(b"\n").unwrap_or(&raw);
            raw.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
        })
    }

    #[test]
    fn golden() {
        let lines = golden_lines();
        let got: Vec<String> = lines.iter().map(|l| golden_result(l)).collect();
        if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
            let mut out = got.join("\n");
            out.push('\n');
            std::fs::write(GOLDEN_OUT, out).expect("write expected file");
            return;
        }
        let expected = std::fs::read_to_string(GOLDEN_OUT).expect("read expected file");
        let expected: Vec<&str> = expected.lines().collect();
        let mut bad = Vec::new();
        for (i, (line, got)) in lines.iter().zip(&got).enumerate() {
            let want = expected.get(i).copied().unwrap_or("<missing>");
            if want != got {
                bad.push(format!(
                    "line {}: {}\n  want {want}\n  got  {got}",
                    i + 1,
                    String::from_utf8_lossy(line)
                ));
            }
        }
        assert_eq!(
            expected.len(),
            lines.len(),
            "expected file has a different line count (UPDATE_GOLDEN=1 rewrites it)"
        );
        assert!(
            bad.is_empty(),
            "{} golden mismatches (UPDATE_GOLDEN=1 rewrites the expected file):\n{}",
            bad.len(),
            bad.join("\n")
        );
        // The golden input covers every kind.
        let kinds: std::collections::HashSet<AuthKind> = lines
            .iter()
            .filter_map(|l| parse_line(l).ok().flatten())
            .map(|r| r.kind)
            .collect();
        for k in AuthKind::ALL {
            assert!(kinds.contains(&k), "golden input has no {k:?} line");
        }
    }

    #[test]
    fn headers() {
        let h = split_syslog("Nov  6 04:09:18 web-1 sshd[812]: Server listening on :: port 22.")
            .unwrap();
        assert_eq!(
            h,
            SyslogLine {
                timestamp: "Nov  6 04:09:18",
                host: "web-1",
                program: "sshd",
                pid: Some(812),
                message: "Server listening on :: port 22."
            }
        );
        let h = split_syslog("2026-11-26T14:09:18.123456+00:00 db sudo:    alice : TTY=pts/0\n")
            .unwrap();
        assert_eq!(h.timestamp, "2026-11-26T14:09:18.123456+00:00");
        assert_eq!(h.program, "sudo");
        assert_eq!(h.pid, None);
        assert_eq!(h.message, "   alice : TTY=pts/0");
        let h = split_syslog("2024-05-01T10:00:00Z h gdm-password][2265]: x").unwrap();
        assert_eq!((h.program, h.pid), ("gdm-password]", Some(2265)));
        assert_eq!(split_syslog(""), Err(ParseError::Empty));
        assert_eq!(split_syslog(" \r\n"), Err(ParseError::Empty));
        for bad in [
            "hello world",
            "Nov 26 14:09:18",
            "Nov 26 14:09:18 host",
            "Nov 26 14:09:18 host no tag here",
            "Foo 26 14:09:18 host sshd[1]: x",
            "2026-11-26 14:09:18 host sshd[1]: x",
            "Nov 26 14:09:18 host : empty tag",
            "Nov 26 14:09:18 host [12]: empty program",
        ] {
            assert_eq!(split_syslog(bad), Err(ParseError::NotSyslog), "{bad}");
        }
    }

    #[test]
    fn ssh_user_names_with_spaces_and_spoofing() {
        let r = one("Nov 26 14:09:18 h sshd[1]: Failed password for invalid user a from 10.0.0.1 port 1 ssh2 from 198.51.100.7 port 40022 ssh2");
        assert_eq!(r.user, "a from 10.0.0.1 port 1 ssh2");
        assert_eq!(r.source_address, "198.51.100.7");
        assert_eq!(r.source_port, 40022);
        let r = one("Nov 26 14:09:18 h sshd[1]: Invalid user  from 198.51.100.7 port 22");
        assert_eq!((r.user.as_str(), r.source_port), ("", 22));
        let r = one("Nov 26 14:09:18 h sshd[1]: Failed none for invalid user  from 198.51.100.7 port 22 ssh2");
        assert_eq!((r.user.as_str(), r.invalid_user), ("", true));
    }

    #[test]
    fn journald_messages() {
        let r = parse_message(
            "sshd-session",
            Some(4242),
            "Accepted publickey for alice from 2001:db8::5 port 52144 ssh2: ED25519 SHA256:abc",
        )
        .unwrap();
        assert_eq!(r.kind, AuthKind::SshAccepted);
        assert_eq!((r.pid, r.timestamp.as_str()), (4242, ""));
        assert_eq!(r.detail, "ED25519 SHA256:abc");
        assert_eq!(
            r.describe(),
            "SSH login accepted: alice from 2001:db8::5 port 52144 (publickey)"
        );
        let r = parse_message(
            "/usr/bin/sudo",
            None,
            "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
        )
        .unwrap();
        assert_eq!(r.program, "sudo");
        assert_eq!(r.describe(), "sudo: alice ran /usr/bin/id as root on pts/0");
        assert!(parse_message("systemd-logind", Some(1), "New session 4 of user alice.").is_none());
        assert!(parse_message("sshd", None, "").is_none());
    }

    #[test]
    fn describe_examples() {
        let r = one("Nov 26 14:09:18 h sudo:      bob : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/usr/bin/id");
        assert_eq!(
            r.describe(),
            "sudo: bob is not in sudoers (tried /usr/bin/id as root)"
        );
        let r = one("Nov 26 14:09:18 h sshd[9]: Failed password for invalid user admin from 198.51.100.7 port 40022 ssh2");
        assert_eq!(
            r.describe(),
            "Failed SSH password for invalid user admin from 198.51.100.7 port 40022"
        );
        for k in AuthKind::ALL {
            let r = AuthRecord::new(k);
            assert!(!r.describe().is_empty());
            assert!(r
                .action()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }

    #[test]
    fn sudo_command_containing_separators() {
        let r = one("Nov 26 14:09:18 h sudo: alice : TTY=pts/1 ; PWD=/srv ; USER=root ; ENV=A=1 B=2 ; COMMAND=/bin/sh -c echo a ; echo b");
        assert_eq!(r.command, "/bin/sh -c echo a ; echo b");
        assert_eq!(r.detail, "ENV=A=1 B=2");
        assert_eq!((r.tty.as_str(), r.cwd.as_str()), ("pts/1", "/srv"));
    }

    #[test]
    fn huge_line() {
        let mut line = b"Nov 26 14:09:18 host sshd[1]: Failed password for invalid user ".to_vec();
        line.extend(std::iter::repeat_n(b'a', 1 << 20));
        line.extend_from_slice(b" from 198.51.100.7 port 22 ssh2");
        let r = parse_line(&line).unwrap().unwrap();
        assert_eq!(r.user.len(), 1 << 20);
        assert_eq!(r.source_port, 22);
        // 1 MiB of " from " and of garbage, one line each.
        let mut line = b"Nov 26 14:09:18 host sshd[1]: Failed password for".to_vec();
        line.extend(std::iter::repeat_n(&b" from "[..], (1 << 20) / 6).flatten());
        assert_eq!(parse_line(&line), Ok(None));
        let garbage: Vec<u8> = (0..(1u64 << 20)).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = parse_line(&garbage);
        let mut sudo = b"Nov 26 14:09:18 host sudo: alice : ".to_vec();
        sudo.extend(std::iter::repeat_n(&b"TTY= ; "[..], (1 << 20) / 7).flatten());
        assert!(parse_line(&sudo).unwrap().is_some());
    }

    fn check_no_panic(line: &[u8]) {
        if let Ok(Some(r)) = parse_line(line) {
            assert!(!r.action().is_empty());
            let _ = r.describe();
            assert!(r.occurrences >= 1);
        }
        let text = String::from_utf8_lossy(line);
        let _ = parse_message("sshd", Some(1), &text);
        let _ = parse_message("sudo", None, &text);
    }

    const TOKENS: &[&str] = &[
        "Accepted",
        "Failed",
        "password",
        "publickey",
        "for",
        "invalid",
        "user",
        "from",
        "port",
        "ssh2",
        "ssh2:",
        "ssh2: RSA SHA256:x",
        "203.0.113.5",
        "::1",
        "22",
        "99999999999",
        "root",
        "alice",
        "Invalid",
        "User",
        "not allowed because",
        "Disconnected",
        "(to",
        "root)",
        "on",
        "pts/0",
        "/dev/tty1",
        "'/dev/tty1'",
        ":",
        " : ",
        " ; ",
        ";",
        "TTY=",
        "PWD=/",
        "USER=",
        "COMMAND=",
        "COMMAND=/usr/bin/id",
        "user NOT in sudoers",
        "3 incorrect password attempts",
        "pam_unix(su:session):",
        "pam_unix(sshd:auth):",
        "pam_unix(sudo:auth):",
        "pam_unix(login:session):",
        "pam_unix(passwd:chauthtok):",
        "authentication failure;",
        "session",
        "opened",
        "closed",
        "by",
        "(uid=0)",
        "alice(uid=1000)",
        "'",
        "`",
        "FAILED",
        "SU",
        "su",
        "Successful",
        "LOGIN",
        "ROOT",
        "ON",
        "BY",
        "FROM",
        "FOR",
        "(1)",
        ",",
        "=",
        "name=",
        "new",
        "group:",
        "user:",
        "group",
        "shadow",
        "added",
        "to",
        "removed",
        "delete",
        "change",
        "message repeated 3 times: [",
        "]",
        "[preauth]",
        "é",
        "\u{fffd}",
        "(",
        ")",
        "logname=",
        "ruser=alice",
        "rhost=",
        "password changed for",
        "is not in the sudoers file",
    ];
    const PROGRAMS: &[&str] = &[
        "sshd[1]",
        "sshd-session[77]",
        "sudo",
        "su[5]",
        "login[3]",
        "useradd[9]",
        "usermod[9]",
        "userdel[9]",
        "groupadd[9]",
        "groupmod[9]",
        "groupdel[9]",
        "gpasswd[9]",
        "passwd[9]",
        "chage[9]",
        "chsh[9]",
        "chfn[9]",
        "cron[2]",
        "x",
    ];

    fn mutate(base: &[u8], ops: &[(u8, prop::sample::Index, u8, usize)]) -> Vec<u8> {
        let mut v = base.to_vec();
        for (op, at, byte, len) in ops {
            let i = if v.is_empty() {
                0
            } else {
                at.index(v.len() + 1)
            };
            match op % 5 {
                0 => v.truncate(i),
                1 => v.insert(i.min(v.len()), *byte),
                2 => {
                    if i < v.len() {
                        v[i] = *byte;
                    }
                }
                3 => {
                    let end = (i + len % 16).min(v.len());
                    v.drain(i.min(end)..end);
                }
                _ => {
                    let end = (i + len % 32).min(v.len());
                    let chunk = v[i.min(end)..end].to_vec();
                    let at = (i + len).min(v.len());
                    v.splice(at..at, chunk);
                }
            }
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn never_panics_on_random_bytes(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            check_no_panic(&b);
            let mut with_header = b"Nov 26 14:09:18 host sshd[1]: ".to_vec();
            with_header.extend_from_slice(&b);
            check_no_panic(&with_header);
        }

        #[test]
        fn never_panics_on_mutated_golden_lines(
            which in any::<prop::sample::Index>(),
            ops in proptest::collection::vec((any::<u8>(), any::<prop::sample::Index>(), any::<u8>(), any::<usize>()), 1..8),
        ) {
            let lines = golden_lines();
            let base = &lines[which.index(lines.len())];
            check_no_panic(&mutate(base, &ops));
        }

        #[test]
        fn never_panics_on_token_soup(
            prog in prop::sample::select(PROGRAMS),
            iso in any::<bool>(),
            toks in proptest::collection::vec((prop::sample::select(TOKENS), any::<bool>()), 0..24),
        ) {
            let mut line = String::from(if iso { "2026-11-26T14:09:18.1+00:00 h " } else { "Nov  6 14:09:18 h " });
            line.push_str(prog);
            line.push_str(": ");
            for (t, space) in toks {
                line.push_str(t);
                if space {
                    line.push(' ');
                }
            }
            check_no_panic(line.as_bytes());
        }
    }
}
